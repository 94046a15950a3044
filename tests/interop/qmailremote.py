"""What the qmail-remote tests share: a QMAILHOME to run it in, a delivery's run
and its check against a Postfix, and the TLS-RPT events it recorded (tlsrpt.h)."""

import os
import re
import subprocess

from conftest import RUN_TIMEOUT, qmail_remote

EVENT_FIELDS = ("policy_type", "policy_domain", "domain", "mx_host", "addr", "sending_ip", "result", "detail",
                "policy")


def qmail_home(q, timeoutremote=10, queue=(), **control):
    """|q| made a QMAILHOME for qmail-remote (again, if it was one): control/me,
    timeoutconnect (5) and timeoutremote, the control files of |control| (name=text),
    and the directories queue/|queue| (mode 0700).  Returns |q|."""
    ctl = q / "control"
    ctl.mkdir(parents=True, exist_ok=True)
    files = {"me": "client.test.example\n", "timeoutconnect": "5\n", "timeoutremote": f"{timeoutremote}\n"}
    for name, text in {**files, **control}.items():
        (ctl / name).write_text(text)
    for d in queue:
        (q / "queue" / d).mkdir(parents=True, mode=0o700, exist_ok=True)
    return q


def deliver(q, domain, msg):
    """qmail-remote |domain| s@client.test u@|domain| with |msg|, under QMAILHOME |q|:
    its report, once it exited 0 with nothing on stderr (qmail-remote's contract)."""
    p = subprocess.run([qmail_remote(), domain, "s@client.test", f"u@{domain}"], input=msg, capture_output=True,
                       env={"QMAILHOME": str(q), "PATH": os.environ.get("PATH", "")}, timeout=RUN_TIMEOUT * 2)
    assert p.returncode == 0 and p.stderr == b"", p
    return p.stdout.decode("latin-1")


def delivered(mta, out, mark, msg, n=None):
    """The report says the Postfix |mta| at 127.0.0.2 accepted the message, and it
    is the newest of its maildir (of |n| there, if given); returns it with Postfix's
    header lines."""
    assert re.match(r"r\0K127\.0\.0\.2 accepted message\.\nRemote host said: 250 2\.0\.0 Ok: queued as "
                    r"[0-9A-Za-z]+\n", out), f"{out}\nPostfix said:\n{mta.log(mark)}"
    assert mta.wait_log(r"status=sent \(delivered to maildir\)", since=mark, timeout=RUN_TIMEOUT), mta.log(mark)
    files = sorted((mta.vmail / "new").iterdir(), key=lambda f: f.stat().st_mtime_ns)
    assert files and (n is None or len(files) == n), files
    assert files[-1].read_bytes().endswith(msg), files
    return files[-1].read_text("latin-1")


def unescape(field):
    """A field of an event line with its %XX escapes undone (bytes as latin-1)."""
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), field)


def event(line):
    """One event line as a dict of EVENT_FIELDS."""
    f = line.split("\t")
    assert len(f) == 11 and f[0] == "tlsrpt1" and f[1].isdigit(), line
    return dict(zip(EVENT_FIELDS, (unescape(x) for x in f[2:])))


def events(q):
    """The events qmail-remote recorded in |q|/queue/tlsrpt, the oldest day first."""
    return [event(ln) for f in sorted((q / "queue" / "tlsrpt").iterdir())
            for ln in f.read_text("latin-1").splitlines()]
