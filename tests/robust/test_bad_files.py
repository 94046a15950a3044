"""Bad files given to the programs: each a clear error naming the file, the exit code of
the man page (111: temporary), never a crash; qmail-remote reports Z (temporary) so no
mail is lost.

PEM files (tcpserver-ssl -n; tcpclient-ssl -a, -c, -k): empty, cut in the middle of a
certificate, binary, over 1 MiB, and a key only root may read given to a program that runs
as nobody.  tcpserver-ssl -x with a file that is not a cdb: each connection is dropped
(exit 111) with the warning line, and the server keeps running.  qmail-remote with a
control/tlspolicy with a line naming an unknown level or option, or no policy line at all
(the report names the line), or with a huge control/tlspolicy or
control/smtproutes, or a ca= file that is not there, against a scripted SMTP server on
loopback that must never get a message.
"""
import os
import re
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from robust_util import (PROG, WAIT, executable_from_env, must_have, pki, qmail_pem, tls_connect,  # noqa: F401
                         tss, tss_server, user, work)
from test_qmail_remote import qhome  # noqa: F401 (fixture: a qmail tree with control/me and timeouts)

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def bad_pems(pki, d):
    """{kind: path} of bad PEM files in |d| (mode 0644: every user may read them)."""
    good = (pki / "server-ec-combined.pem").read_bytes()
    cert = good[good.index(b"-----BEGIN CERTIFICATE-----"):]
    files = {
        "empty": b"",
        # The key whole, the certificate cut in the middle of its base64.
        "truncated": good[:good.index(b"-----BEGIN CERTIFICATE-----") + len(cert) // 5],
        "binary": bytes((i * 167 + 13) % 256 for i in range(4096)),
        "huge": good + b"# padding\n" * 120000,
    }
    out = {}
    for kind, data in files.items():
        p = Path(d) / f"{kind}.pem"
        p.write_bytes(data)
        os.chmod(p, 0o644)
        out[kind] = p
    return out


MESSAGES = {
    "empty": r"no PEM data|no certificate",
    "truncated": r"damaged PEM data|no certificate",
    "binary": r"no PEM data|no certificate",
    "huge": r"1 MiB",
}


def run(argv, timeout=WAIT):
    p = subprocess.run([str(a) for a in argv], capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")


def not_a_crash(rc):
    assert rc >= 0, f"killed by signal {-rc} ({signal.Signals(-rc).name})"


@pytest.mark.parametrize("kind", ["empty", "truncated", "binary", "huge"])
def test_tcpserver_bad_pem(work, tss, pki, kind):
    pem = bad_pems(pki, work.dir)[kind]
    rc, out = run([tss, "-v", "-n", pem, "127.0.0.1", "0", "/bin/cat"])
    not_a_crash(rc)
    assert rc == 111, out
    assert re.search(rf"^{PROG}: fatal: unable to load the certificate and key: {re.escape(str(pem))}: "
                     rf".*({MESSAGES[kind]})", out, re.M), out


def test_tcpserver_unreadable_key(work, tss, qmail_pem):
    must_have(os.geteuid() == 0, "a key only root may read needs root to set up")
    rc, out = run([*NOBODY, tss, "-v", "-n", qmail_pem, "127.0.0.1", "0", "/bin/cat"])
    not_a_crash(rc)
    assert rc == 111, out
    assert re.search(rf"^{PROG}: fatal: .*{re.escape(str(qmail_pem))}: Permission denied$", out, re.M), out


@pytest.mark.parametrize("kind", ["empty", "truncated", "binary", "huge"])
@pytest.mark.parametrize("opt", ["-a", "-c"])
def test_tcpclient_bad_pem(work, pki, kind, opt):
    """A broken trust anchor file or client certificate is reported before any
    connection (port 1 on loopback: nothing is tried)."""
    tcs = executable_from_env("MAILTLS_TCPCLIENT_SSL", "tcpclient-ssl")
    pem = bad_pems(pki, work.dir)[kind]
    args = ["-a", pem] if opt == "-a" else ["-a", pki / "ca.pem", "-c", pem]
    rc, out = run([tcs, *args, "127.0.0.1", "1", "/bin/true"])
    not_a_crash(rc)
    assert rc == 111, out
    what = "trust anchors" if opt == "-a" else "client certificate"
    assert re.search(rf"^tcpclient-ssl: fatal: unable to load the {what}: {re.escape(str(pem))}: "
                     rf".*({MESSAGES[kind]})", out, re.M), out


def test_tcpclient_unreadable_key(work, pki, qmail_pem):
    must_have(os.geteuid() == 0, "a key only root may read needs root to set up")
    tcs = executable_from_env("MAILTLS_TCPCLIENT_SSL", "tcpclient-ssl")
    rc, out = run([*NOBODY, tcs, "-a", pki / "ca.pem", "-c", pki / "client.pem", "-k", qmail_pem,
                   "127.0.0.1", "1", "/bin/true"])
    not_a_crash(rc)
    assert rc == 111, out
    assert re.search(rf"^tcpclient-ssl: fatal: .*{re.escape(str(qmail_pem))}: Permission denied", out, re.M), out


# Text; shorter than a cdb's 2048-byte header; a header whose tables point past the end.
# (2048 zero bytes would be a valid empty cdb: no rule, allow.)
@pytest.mark.parametrize("content", [b"this is not a cdb\n", bytes(100), bytes(range(256)) * 16],
                         ids=["text", "short", "bad-tables"])
def test_tcpserver_not_a_cdb(work, tss, qmail_pem, pki, content):
    cdb = work.dir / "rules.cdb"
    cdb.write_bytes(content)
    os.chmod(cdb, 0o644)
    srv = tss_server(work, tss, ["-v", "-l0", "-HR", "-x", str(cdb), "-n", str(qmail_pem)], ["/bin/cat"])
    for _ in range(2):                  # the server goes on: the next connection gets the same
        mark = srv.mark()
        with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as c:
            c.settimeout(WAIT)
            assert c.recv(100) == b""
        pid, status = srv.end_of(since=mark)
        assert status == 28416, srv.text(mark)
        assert re.search(rf"^{PROG}: warning: dropping connection, unable to read {re.escape(str(cdb))}: not a cdb file \(damaged or truncated\)$", srv.text(mark), re.M), \
            srv.text(mark)
    assert srv.proc.running()


# --------------------------------------------------------------------------- qmail-remote

def qmail_remote(qhome):
    prog = executable_from_env("MAILTLS_QMAIL_REMOTE", "qmail-remote")
    p = subprocess.run([prog, "example.test", "s@client.test", "u@example.test"], input=b"Subject: x\n\nbody\n",
                       capture_output=True, env={"QMAILHOME": str(qhome), "PATH": "/usr/bin:/bin"}, timeout=3 * WAIT)
    not_a_crash(p.returncode)
    assert p.returncode == 0 and p.stderr == b"", p
    return p.stdout


def huge(line_fmt, n=300000):
    return "".join(line_fmt % i for i in range(n)).encode()


MALFORMED = b"ZUnable to read control files. (#4.3.0)\ncontrol/tlspolicy line %d is malformed.\n"
QR_CASES = {
    "tlspolicy-unknown-level": ("tlspolicy", b"# levels\n\nexample.test:bogus\n", MALFORMED % 3),
    "tlspolicy-unknown-option": ("tlspolicy", b"example.test:verify:nonsense=1\n", MALFORMED % 1),
    # Lines no lookup would find: without the check, the destination would get "may".
    "tlspolicy-no-colon": ("tlspolicy", b"other.test:none\nexample.test verify\n", MALFORMED % 2),
    "tlspolicy-semicolon": ("tlspolicy", b"example.test;secure\n", MALFORMED % 1),
    "tlspolicy-binary": ("tlspolicy", bytes(range(1, 256)) * 8, MALFORMED % 1),
    "tlspolicy-huge": ("tlspolicy", huge("d%d.example:none\n"), None),
    "smtproutes-huge": ("smtproutes", None, None),
    "tlspolicy-ca-missing": ("tlspolicy", b"example.test:verify:ca=/nonexistent/ca.pem\n",
                             b"TLS configuration failed (policy verify): unable to open /nonexistent/ca.pem: "),
}


class Sink:
    """A scripted SMTP server for one connection on 127.0.0.1: 220, then 250 to every
    command (354 to DATA); it records the commands it got."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.lsock.settimeout(0.05)
        self.stop = threading.Event()
        self.port = self.lsock.getsockname()[1]
        self.lines = []
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while True:                 # accept() in short turns, so close() can end it
            try:
                c, _ = self.lsock.accept()
                break
            except (socket.timeout, TimeoutError):
                if self.stop.is_set():
                    return
            except OSError:
                return
        with c:
            c.settimeout(3 * WAIT)
            f = c.makefile("rb")
            try:
                c.sendall(b"220 sink ESMTP\r\n")
                for line in f:
                    self.lines.append(line.rstrip(b"\r\n"))
                    c.sendall(b"354 go\r\n" if line.upper().startswith(b"DATA") else b"250 ok\r\n")
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.t.join(3 * WAIT)
        self.lsock.close()


@pytest.mark.parametrize("case", list(QR_CASES))
def test_qmail_remote_bad_control(qhome, case):
    """The message is never offered (the scripted server gets no MAIL), and the report
    is a Z."""
    sink = Sink()
    try:
        routes = f"example.test:[127.0.0.1]:{sink.port}\n".encode()
        f, data, text = QR_CASES[case]
        if case == "smtproutes-huge":
            data = huge("d%d.example:[127.0.0.1]:1\n") + routes
        (qhome / "control" / "smtproutes").write_bytes(routes)
        (qhome / "control" / f).write_bytes(data)
        out = qmail_remote(qhome)
    finally:
        sink.close()
    assert not any(ln.upper().startswith((b"MAIL", b"RCPT", b"DATA")) for ln in sink.lines), sink.lines
    assert out.startswith(b"Z") and out.endswith(b"\0") and out.count(b"\0") == 1, out
    if text and text.startswith(b"Z"):
        assert out == text + b"\0", out
    elif text:
        assert text in out, out
    else:
        assert out == b"ZUnable to read control files. (#4.3.0)\n\0", out
