"""tcpserver-ssl test helpers shared by test_tcpserver_ssl.py and test_tcpserver_keys.py.

Fixtures (import them by name into a test module; pytest finds them there):
  tss        path of the tcpserver-ssl binary (MAILTLS_TCPSERVER_SSL, set by ctest)
  user       (uid, gid) the servers drop to with -u/-g: nobody/nogroup (needs root)
  work       Work: a directory every user may traverse, a ProcSet, out/ for stand-in records
  qmail_pem  the qmail.pem layout (server-ec-combined.pem), 0600 root

Helpers: must_have (skip, or fail under CI), tss_server, Server, ctx_ca, tls_connect,
read_until, read_to_close, reply (one SMTP reply), tls_log_line (the server's "tls PID"
line), s_client.  Every wait is bounded (WAIT seconds unless told).
"""
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import ProcSet, executable_from_env, must_have  # noqa: F401 (must_have: for the test modules)

HERE = Path(__file__).resolve().parent
STANDINS = HERE / "standins"
SMTPD = STANDINS / "fake-qmail-smtpd"
POPUP = STANDINS / "fake-qmail-popup"
DUMPER = STANDINS / "env-dumper"

PROG = "tcpserver-ssl"
# tcprules source of the qmail sites' tcp.smtp, plus a deny for 127.0.0.2.
RULES = '127.0.0.1:allow,RELAYCLIENT=""\n127.0.0.2:deny\n:allow\n'
# s_client writes what it reads unbuffered, its own reports buffered: the greeting
# may land in the middle of one of their lines.
GREETING = r"(?:^|\s)220 host ESMTP\r?$"
WAIT = 10           # seconds: the bound of every wait for a log line, record or reply


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def tss():
    return executable_from_env("MAILTLS_TCPSERVER_SSL", "tcpserver-ssl")


@pytest.fixture(scope="module")
def user():
    """(uid, gid) of the unprivileged user the servers drop to: nobody/nogroup."""
    must_have(os.geteuid() == 0, "tcpserver-ssl with -u/-g needs root")
    try:
        uid = pwd.getpwnam("nobody").pw_uid
        gid = grp.getgrnam("nogroup").gr_gid
    except KeyError:
        name = "mailtlstest"
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--user-group",
                            "--shell", "/usr/sbin/nologin", name], check=True, timeout=30)
        uid, gid = pwd.getpwnam(name).pw_uid, pwd.getpwnam(name).pw_gid
    return uid, gid


class Work:
    """A directory every user may traverse (the servers run as nobody), holding the
    logs, the rules, the PEM copy and out/ (owned by the unprivileged user) where
    the stand-ins write their records."""

    def __init__(self, user):
        self.dir = Path(tempfile.mkdtemp(prefix="tcpserver-ssl-"))
        os.chmod(self.dir, 0o755)
        self.out = self.dir / "out"
        self.out.mkdir()
        if user and os.geteuid() == 0:
            os.chown(self.out, *user)
            os.chmod(self.out, 0o700)
        self.procs = ProcSet(self.dir)
        self.servers = []

    def env(self, **extra):
        e = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "STANDIN_OUT": str(self.out)}
        e.update(extra)
        return e

    def records(self):
        recs = []
        for f in sorted(self.out.glob("*.json")):
            try:
                recs.append(json.loads(f.read_text()))
            except (OSError, ValueError):
                pass
        return recs

    def wait_records(self, n, done=True, timeout=WAIT):
        """At least |n| records (all of them done, when |done|); fails after |timeout|."""
        deadline = time.monotonic() + timeout
        while True:
            recs = self.records()
            if len(recs) >= n and (not done or all(r["done"] for r in recs)):
                return recs
            if time.monotonic() > deadline:
                pytest.fail(f"expected {n} stand-in record(s){' done' if done else ''} within {timeout}s; "
                            f"have: {json.dumps(recs, indent=1)}\nlogs:\n{self.logs()}")
            time.sleep(0.05)

    def logs(self):
        return "\n".join(f"--- {p.argv}\n{p.text()}" for p in self.procs.procs)

    def rules(self, text=RULES, name="rules"):
        """A cdb made by Debian's tcprules from |text|, readable by every user."""
        must_have(shutil.which("tcprules"), "tcprules (Debian package ucspi-tcp) is not installed")
        src = self.dir / f"{name}.txt"
        src.write_text(text)
        cdb = self.dir / f"{name}.cdb"
        r = subprocess.run(["tcprules", str(cdb), str(self.dir / f"{name}.tmp")], input=text.encode(),
                           capture_output=True, timeout=10)
        assert r.returncode == 0, r.stderr
        os.chmod(cdb, 0o644)
        return cdb

    def start(self, argv, name, env=None):
        """Start a server listening on 127.0.0.1/::1 at the port given to argv(port);
        returns a Server once it listens."""
        proc, port = self.procs.start_server(argv, name=name, env=env or self.env())
        srv = Server(proc, port)
        self.servers.append(srv)
        return srv

    def cleanup(self):
        self.procs.stop_all()
        for srv in self.servers:
            srv.kill_group()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def work(request):
    user = request.getfixturevalue("user") if os.geteuid() == 0 else None
    w = Work(user)
    yield w
    w.cleanup()


@pytest.fixture(scope="module")
def qmail_pem(pki):
    """The qmail.pem layout (key, server certificate, intermediate, root): the PKI's
    server-ec-combined.pem copied into a directory everyone may traverse, 0600 root."""
    d = Path(tempfile.mkdtemp(prefix="tcpserver-ssl-pem-"))
    os.chmod(d, 0o755)
    pem = d / "qmail.pem"
    shutil.copyfile(pki / "server-ec-combined.pem", pem)
    os.chmod(pem, 0o600)
    text = pem.read_text()
    assert text.startswith("-----BEGIN PRIVATE KEY-----") and text.count("BEGIN CERTIFICATE") == 3
    yield pem
    shutil.rmtree(d, ignore_errors=True)


class Server:
    def __init__(self, proc, port):
        self.proc = proc
        self.port = port
        self.pid = proc.pid

    def mark(self):
        return self.proc.mark()

    def text(self, since=0):
        return self.proc.text(since)

    def wait_for(self, pattern, since=0, timeout=WAIT):
        m = self.proc.wait_for(pattern, timeout=timeout, since=since)
        assert m, f"no /{pattern}/ in the server's log within {timeout}s:\n{self.text()}"
        return m

    def end_of(self, since=0, timeout=WAIT):
        """(child pid, wait status) of the first connection ended after |since|."""
        m = self.wait_for(rf"^{PROG}: end (\d+) status (\d+)$", since=since, timeout=timeout)
        return int(m.group(1)), int(m.group(2))

    def kill_group(self):
        """Stop what is left of the per-connection children: the server was started in
        its own session, so its process group id is its pid."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def tss_server(work, tss, opts, prog, host="127.0.0.1", env=None):
    return work.start(lambda port: [tss, *opts, host, str(port), *prog], name=PROG, env=env)


def ctx_ca(pki, cert=None):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if cert:
        ctx.load_cert_chain(str(pki / f"{cert}.pem"), str(pki / f"{cert}.key"))
    return ctx


def tls_connect(pki, port, host="127.0.0.1", servername="localhost", source=None, ctx=None, timeout=WAIT):
    raw = socket.create_connection((host, port), timeout=timeout,
                                   source_address=(source, 0) if source else None)
    try:
        return (ctx or ctx_ca(pki)).wrap_socket(raw, server_hostname=servername)
    except BaseException:
        raw.close()
        raise


def read_until(sock, pattern, timeout=WAIT):
    """Bytes read from |sock| until regex |pattern| (bytes) matches them, or the peer
    closes, or |timeout| passes; never more than that."""
    rx = re.compile(pattern, re.M)
    data = b""
    deadline = time.monotonic() + timeout
    while not rx.search(data):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            break
        except (ConnectionResetError, ssl.SSLError, OSError):
            break
        if not chunk:
            break
        data += chunk
    return data


def read_to_close(sock, timeout=WAIT):
    """(bytes, how) read until the peer closes: how is "eof", "reset", "tls-error" or "timeout"."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, "timeout"
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return data, "timeout"
        except ssl.SSLError:
            return data, "tls-error"
        except (ConnectionResetError, OSError):
            return data, "reset"
        if not chunk:
            return data, "eof"
        data += chunk


def reply(sock, timeout=WAIT):
    """One whole SMTP reply (up to its last line) and whatever came with it."""
    return read_until(sock, rb"^\d{3} [^\r\n]*\r\n", timeout)


def tls_log_line(srv, pid, since=0):
    """(protocol, cipher, sni, client) from the server's "tls PID ..." log line of child |pid|."""
    m = srv.wait_for(rf"^{PROG}: tls {pid} (\S+) (\S+) sni=(\S*) client=(.*)$", since=since)
    return m.groups()


def s_client(work, openssl, port, *args, until=GREETING, timeout=WAIT):
    """openssl s_client to 127.0.0.1:port; waits for the greeting (so tickets were read),
    then closes its stdin; returns (rc, output)."""
    p = work.procs.start([openssl, "s_client", "-connect", f"127.0.0.1:{port}", *args], name="s_client",
                         stdin=True)
    p.wait_for(until, timeout=timeout)
    return p.finish(timeout)
