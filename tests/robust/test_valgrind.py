"""valgrind memcheck on the programs in a representative run: tcpserver-ssl (with its
certificate loader and every connection's child, all forks of it) through 5 and then 50
TLS connections to /bin/cat, each a line echoed and a close_notify; tcpclient-ssl
talking to it; qmail-remote delivering over STARTTLS (policy verify) to a scripted server.

Every process under valgrind writes its own log (--log-file=...%p); in none may there be
an error (invalid access, uninitialised value, bad free...) or a definitely lost block,
and the run with 50 connections must leave the server's parent with no more memory in
use at its exit than the run with 5: nothing is kept per connection.  Processes that
valgrind follows into an exec (the programs behind the servers) are skipped
(--trace-children-skip).  Debian's BoringSSL needed no suppression.
"""
import os
import re
import signal
import subprocess
import time
from pathlib import Path


from robust_util import (PROG, children, executable_from_env, free_port, need, pki, qmail_pem,  # noqa: F401
                         read_until, tls_connect, tss, tss_server, user, work)
from conftest import listening
from test_qmail_remote import Server, qhome, tls_server  # noqa: F401 (qhome: a fixture)

VG_WAIT = 120          # seconds: the bound of each step under valgrind (10-50 times slower)
ERRORS = re.compile(r"^==\d+== (Invalid (read|write|free)|Conditional jump|Use of uninitialised|Syscall param|"
                    r"Mismatched free|Source and destination overlap|Argument '.*' of function|"
                    r"Process terminating with default action)", re.M)


def valgrind_argv(need, logdir, prog_argv):
    vg = need("valgrind")
    return [vg, "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
            "--track-fds=no", "--trace-children=yes", "--trace-children-skip=/bin/*,/usr/bin/*",
            f"--log-file={logdir}/vg.%p.log", *map(str, prog_argv)]


def summaries(logdir):
    """{pid: (command, log text)} of every valgrind log in |logdir|."""
    out = {}
    for f in sorted(Path(logdir).glob("vg.*.log")):
        text = f.read_text(errors="replace")
        m = re.search(r"^==\d+== Command: (.*)$", text, re.M)
        out[int(f.name.split(".")[1])] = (m.group(1) if m else "", text)
    return out


def check_logs(logdir, what):
    """No error in any log; no definitely lost block in any process that ended with a
    summary.  Returns the logs."""
    logs = summaries(logdir)
    assert logs, f"no valgrind log in {logdir}"
    for pid, (cmd, text) in logs.items():
        m = ERRORS.search(text)
        assert not m, f"{what}: valgrind found an error in pid {pid} ({cmd}):\n{text[-6000:]}"
        m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
        if m:
            assert m.group(1) == "0", f"{what}: pid {pid} ({cmd}):\n{text[-6000:]}"
        m = re.search(r"definitely lost: ([\d,]+) bytes", text)
        if m:
            assert m.group(1) == "0", f"{what}: pid {pid} ({cmd}) lost memory:\n{text[-6000:]}"
    return logs


def in_use_at_exit(text):
    m = re.search(r"in use at exit: ([\d,]+) bytes in ([\d,]+) blocks", text)
    if m:
        return int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))
    assert "All heap blocks were freed" in text, text[-3000:]
    return 0, 0


def server_run(work, tss, pem, pki, need, n):
    """tcpserver-ssl under valgrind through |n| connections, then SIGTERM; returns (parent
    pid, logs)."""
    logdir = work.dir / f"vg-{n}"
    logdir.mkdir()
    for _ in range(3):
        port = free_port()
        p = work.procs.start(valgrind_argv(need, logdir, [tss, "-v", "-l0", "-HR", "-n", pem, "127.0.0.1",
                                                          port, "/bin/cat"]), name=f"vg-tcpserver-ssl-{n}")
        if p.wait_for(rf"^{PROG}: status: 0/40$", timeout=VG_WAIT) and listening(port):
            break
        p.stop()
    assert p.running() and listening(port), p.text()
    [loader] = children(p.pid)
    for i in range(n):
        with tls_connect(pki, port, timeout=VG_WAIT) as s:
            line = f"connection {i}\n".encode()
            s.sendall(line)
            assert read_until(s, re.escape(line), timeout=VG_WAIT) == line
            s.unwrap()
    deadline = time.monotonic() + VG_WAIT
    while len(re.findall(rf"^{PROG}: end \d+ status", p.text(), re.M)) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    ends = re.findall(rf"^{PROG}: end (\d+) status (\d+)$", p.text(), re.M)
    # A child with a valgrind error would have exited 99 (wait status 25344).
    assert len(ends) == n and all(st == "0" for _, st in ends), p.text()[-3000:]
    os.kill(p.pid, signal.SIGTERM)
    assert p.wait(VG_WAIT) == 0, p.text()[-3000:]
    # The loader ends with the parent; its log is complete once it has its summary.
    loader_log = logdir / f"vg.{loader}.log"
    deadline = time.monotonic() + VG_WAIT
    while "ERROR SUMMARY" not in loader_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    logs = check_logs(logdir, f"tcpserver-ssl, {n} connections")
    with_summary = [q for q, (c, t) in logs.items() if "ERROR SUMMARY" in t]
    # The parent, the loader and each connection's child (forks: no exec) ended under valgrind.
    assert {p.pid, loader} | {int(c) for c, _ in ends} <= set(with_summary), (sorted(with_summary), ends)
    return p.pid, logs


def test_tcpserver_ssl_5_and_50_connections(work, tss, qmail_pem, pki, need):
    pid5, logs5 = server_run(work, tss, qmail_pem, pki, need, 5)
    pid50, logs50 = server_run(work, tss, qmail_pem, pki, need, 50)
    used5 = in_use_at_exit(logs5[pid5][1])
    used50 = in_use_at_exit(logs50[pid50][1])
    print(f"parent in use at exit (bytes, blocks): {used5} after 5 connections, {used50} after 50")
    assert used50 == used5, f"the parent keeps memory per connection: {used5} after 5, {used50} after 50"


def test_tcpclient_ssl(work, tss, qmail_pem, pki, need):
    tcs = executable_from_env("MAILTLS_TCPCLIENT_SSL", "tcpclient-ssl")
    srv = tss_server(work, tss, ["-v", "-l0", "-HR", "-n", str(qmail_pem)], ["/bin/cat"])
    logdir = work.dir / "vg-client"
    logdir.mkdir()
    prog = ["/bin/sh", "-c", "echo hello through tcpclient-ssl >&7; exec 7>&-; read line <&6; echo \"got $line\""]
    for i in range(3):
        rc, out = work.procs.run(valgrind_argv(need, logdir, [tcs, "-R", "-H", "-a", pki / "ca.pem", "-N",
                                                              "localhost", "127.0.0.1", srv.port, *prog]),
                                 name="vg-tcpclient-ssl", timeout=VG_WAIT)
        assert rc == 0 and "got hello through tcpclient-ssl" in out, out
    logs = check_logs(logdir, "tcpclient-ssl")
    assert sum("ERROR SUMMARY" in t for c, t in logs.values()) >= 3, sorted(logs)


def test_qmail_remote_starttls_deliveries(tmp_path, qhome, pki, need):
    qmr = executable_from_env("MAILTLS_QMAIL_REMOTE", "qmail-remote")
    (qhome / "control" / "timeoutremote").write_text(f"{VG_WAIT}\n")
    (qhome / "control" / "tlscafile").write_text(f"{pki / 'ca.pem'}\n")
    (qhome / "control" / "tlspolicy").write_text("example.test:verify\n")
    logdir = tmp_path / "vg-qmr"
    logdir.mkdir()
    for i in range(3):
        s = Server(tls_server(), pki=pki)
        (qhome / "control" / "smtproutes").write_text(f"example.test:[127.0.0.1]:{s.port}\n")
        p = subprocess.run(valgrind_argv(need, logdir, [qmr, "example.test", "s@client.test", "u@example.test"]),
                           input=b"Subject: valgrind\n\nbody\n", capture_output=True,
                           env={"QMAILHOME": str(qhome), "PATH": "/usr/bin:/bin"}, timeout=VG_WAIT)
        s.join()
        assert p.returncode == 0, p
        assert p.stdout.startswith(b"r\0K127.0.0.1 accepted message.") and b"TLS: TLSv1.3" in p.stdout, p.stdout
        assert s.tls
    logs = check_logs(logdir, "qmail-remote")
    assert sum("ERROR SUMMARY" in t for c, t in logs.values()) >= 3, sorted(logs)
