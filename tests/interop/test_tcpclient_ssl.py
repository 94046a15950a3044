"""tcpclient-ssl (examples/tcpclient-ssl, interface in its man page) against real servers, on loopback.

Peers: Dovecot (IMAP and POP3, STARTTLS with -e and implicit TLS on its imaps/pop3s
listeners), Postfix (SMTP STARTTLS with -e, and client-side UCSPI-TLS with -y),
openssl s_server (-rev: it sends back each line reversed) for implicit TLS with
good, wrong-name and unknown-CA certificates, a client certificate and IPv6,
Debian's tcpclient for the environment, and a tiny Python server that injects a
line after its "220" to STARTTLS.  Postfix and Dovecot are started by the fixtures
of test_starttls_peers.py (imported, not copied); pki, need and procs come from
conftest.py.  Every server certificate comes from the test PKI ($MAILTLS_TEST_PKI:
server-ec.pem, leaf + intermediate for localhost, 127.0.0.1 and ::1, issued under
ca.pem), and verification is on unless a test says -z.

The program tcpclient-ssl runs is the stand-in standins/mail-client: it follows a
script of send/expect steps on fds 6/7 (or, after "ucspitls:Y", on SSLREADFD and
SSLWRITEFD) and writes a JSON record of its environment, the lines it read and
the UCSPI-TLS facts.

Environment: MAILTLS_TCPCLIENT_SSL (the binary; set by ctest), MAILTLS_TEST_PKI,
MAILTLS_TCPSERVER_SSL (for the end-to-end test of -y on both sides), CI (a missing
peer fails instead of skipping).  Every wait is bounded.
"""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import RUN_TIMEOUT, executable_from_env, must_have
from peers import dovecot, instdir, postfix  # noqa: F401 (fixtures)

HERE = Path(__file__).resolve().parent
CLIENT = HERE / "standins" / "mail-client"
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
WAIT = 10


@pytest.fixture(scope="module")
def tcs():
    return executable_from_env("MAILTLS_TCPCLIENT_SSL", "tcpclient-ssl")


class Result:
    def __init__(self, rc, out, record):
        self.rc = rc            # exit status (negative: killed by that signal)
        self.out = out          # tcpclient-ssl's stderr and the program's stdout/stderr
        self.rec = record       # the stand-in's record, or None when it never ran

    @property
    def env(self):
        return self.rec["env"]

    def __repr__(self):
        return f"rc={self.rc}\noutput:\n{self.out}\nrecord:\n{json.dumps(self.rec, indent=1)}"


class Client:
    """Runs tcpclient-ssl with the stand-in as its program."""

    def __init__(self, tcs, procs, pki):
        self.tcs = tcs
        self.procs = procs
        self.pki = pki
        self.n = 0

    def env(self, **extra):
        e = {"PATH": PATH}
        e.update(extra)
        return e

    def run(self, opts, host, port, steps=(), exit=0, env=None, prog=None, ca=True, timeout=RUN_TIMEOUT):
        self.n += 1
        rec = self.procs.logdir / f"record-{self.n}.json"
        if prog is None:
            prog = [str(CLIENT), f"--out={rec}", f"--exit={exit}", *steps]
        argv = [self.tcs, *(["-a", str(self.pki / "ca.pem")] if ca else []), *opts, host, str(port), *prog]
        rc, out = self.procs.run(argv, name="tcpclient-ssl", env=env or self.env(), timeout=timeout)
        record = json.loads(rec.read_text()) if rec.exists() else None
        return Result(rc, out, record)


@pytest.fixture
def client(tcs, procs, pki):
    return Client(tcs, procs, pki)


def s_server(need, procs, pki, cert="server-ec", *extra, host="127.0.0.1"):
    """openssl s_server -rev with |cert| (its leaf, then the intermediate; s_server sends
    only the first certificate of -cert) on a free port."""
    openssl = need("openssl")
    leaf = pki / f"{cert}-leaf.pem"
    chain = ["-cert_chain", str(pki / "int.pem")] if leaf.exists() else []
    if not leaf.exists():
        leaf = pki / f"{cert}.pem"      # "unknown": a leaf of a CA nobody trusts
    args = lambda port: [openssl, "s_server", "-rev", "-accept", f"[{host}]:{port}" if ":" in host else
                         f"{host}:{port}", "-cert", str(leaf), *chain, "-key", str(pki / f"{cert}.key"), *extra]
    return procs.start_server(args, name="s_server")


def fatal_line(out):
    m = re.search(r"^tcpclient-ssl: fatal: (.*)$", out, re.M)
    assert m, out
    return m.group(1)


def assert_tls_env(env, sni="localhost"):
    assert env["PROTO"] == "TCP"
    assert env["SSL_PROTOCOL"] in ("TLSv1.2", "TLSv1.3"), env
    assert env["SSL_SERVER_VERIFY"] == "SUCCESS", env
    assert env["SSL_SERVER_S_DN_CN"] == "localhost", env
    assert re.fullmatch(r"SHA256:[0-9a-f]{64}", env["SSL_PEER_CERT_HASH"]), env
    if sni:
        assert env["SSL_TLS_SNI_SERVERNAME"] == sni
    else:
        assert "SSL_TLS_SNI_SERVERNAME" not in env
    assert env["TCPREMOTEIP"] in ("127.0.0.1", "::1") and env["TCPLOCALIP"] == env["TCPREMOTEIP"]
    assert env["TCPREMOTEPORT"].isdigit() and env["TCPLOCALPORT"].isdigit()
    assert "SSLCTLFD" not in env


# --------------------------------------------------------------------------- openssl s_server, implicit TLS

def test_implicit_tls_verified(client, need, procs, pki):
    srv, port = s_server(need, procs, pki)
    r = client.run(["-R", "-v"], "localhost", port, ["send:hello from the program", "expect:^margorp eht morf olleh$"])
    assert r.rc == 0 and r.rec and r.rec["error"] is None, r
    assert f"tcpclient-ssl: connected to 127.0.0.1 port {port}\n" in r.out, r.out
    assert re.search(r"^tcpclient-ssl: tls TLSv1\.3 TLS_\S+ sni=localhost server=verified:CN=localhost$", r.out, re.M), r.out
    assert_tls_env(r.env)
    assert "TCPREMOTEINFO" not in r.env
    # The program's descriptors 6 and 7 are the relay's pipes.
    assert r.rec["fd6"] == "fifo" and r.rec["fd7"] == "fifo"
    assert srv.wait_for(r"CONNECTION CLOSED", timeout=WAIT), srv.text()


def test_exit_code_and_signal_of_the_program(client, need, procs, pki):
    _, port = s_server(need, procs, pki)
    r = client.run(["-R"], "localhost", port, ["send:x", "expect:^x$"], exit=42)
    assert r.rc == 42, r
    r = client.run(["-R"], "localhost", port, prog=["sh", "-c", "kill -TERM $$"])
    assert r.rc == -signal.SIGTERM, r
    # The relay ignores SIGPIPE; the program gets it at its default action.
    r = client.run(["-R"], "localhost", port, prog=["sh", "-c", "grep '^SigIgn:' /proc/self/status"])
    m = re.search(r"^SigIgn:\s*([0-9a-f]+)$", r.out, re.M)
    assert r.rc == 0 and m, r
    assert not int(m.group(1), 16) & (1 << (signal.SIGPIPE - 1)), r.out


def test_sigterm_is_passed_on(tcs, need, procs, pki):
    """SIGTERM to tcpclient-ssl reaches the program (as it would under tcpclient, which
    execs it); tcpclient-ssl then dies of the program's signal."""
    _, port = s_server(need, procs, pki)
    rec = procs.logdir / "sigterm.json"
    p = procs.start([tcs, "-R", "-a", str(pki / "ca.pem"), "localhost", str(port), str(CLIENT), f"--out={rec}",
                     "expect:^never comes$"], name="tcpclient-ssl", env={"PATH": PATH})
    deadline = time.monotonic() + WAIT
    while not rec.exists() and p.running() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rec.exists(), p.text()
    os.kill(p.pid, signal.SIGTERM)
    assert p.wait(WAIT) == -signal.SIGTERM, p.text()
    assert not json.loads(rec.read_text())["done"]


def test_wrong_name_fails_closed(client, need, procs, pki):
    _, port = s_server(need, procs, pki, "wrongname")
    r = client.run(["-R"], "localhost", port, ["send:never"])
    assert r.rc == 111 and r.rec is None, r
    line = fatal_line(r.out)
    assert line.startswith(f"unable to start TLS with 127.0.0.1 port {port}: ") and line.endswith("(verify-name)"), line


def test_insecure_z_connects_and_reports(client, need, procs, pki):
    _, port = s_server(need, procs, pki, "wrongname")
    r = client.run(["-R", "-z"], "localhost", port, ["send:abc", "expect:^cba$"])
    assert r.rc == 0 and r.rec["error"] is None, r
    assert r.env["SSL_SERVER_VERIFY"] == "FAILED:verify-name", r.env
    assert r.env["SSL_SERVER_S_DN_CN"] == "other.example.net"


def test_unknown_ca_fails_closed(client, need, procs, pki):
    _, port = s_server(need, procs, pki, "unknown")
    r = client.run(["-R"], "localhost", port, ["send:never"])
    assert r.rc == 111 and r.rec is None, r
    assert fatal_line(r.out).endswith("(verify-untrusted)")


def test_trust_anchors_from_cafile_env_and_none(client, need, procs, pki):
    _, port = s_server(need, procs, pki)
    # CAFILE instead of -a.
    r = client.run(["-R"], "localhost", port, ["send:ok", "expect:^ko$"], ca=False,
                   env=client.env(CAFILE=str(pki / "ca.pem")))
    assert r.rc == 0 and r.env["SSL_SERVER_VERIFY"] == "SUCCESS", r
    # Neither: the system's anchors (which do not hold the test CA), or none at all.
    r = client.run(["-R"], "localhost", port, ["send:never"], ca=False)
    assert r.rc == 111 and r.rec is None, r
    line = fatal_line(r.out)
    assert line.endswith("(verify-untrusted)") or "no trust anchors" in line, line
    # A CA file that cannot be read is reported before any connection.
    r = client.run(["-R", "-a", "/nonexistent/ca.pem"], "localhost", port, ["send:never"], ca=False)
    assert r.rc == 111 and r.rec is None, r
    assert "unable to load the trust anchors" in fatal_line(r.out) and "(config)" in r.out


def test_ip_literal_and_ipv6(client, need, procs, pki):
    """An address literal sends no SNI and is checked against the IP SANs (server-ec has
    127.0.0.1 and ::1); an IPv6 connection gives PROTO=TCP6 and TCP6* beside TCP*."""
    _, port = s_server(need, procs, pki)
    r = client.run(["-R"], "127.0.0.1", port, ["send:v4", "expect:^4v$"])
    assert r.rc == 0, r
    assert_tls_env(r.env, sni=None)
    must_have(socket.has_ipv6 and Path("/proc/net/tcp6").exists(), "no IPv6 on this machine")
    _, port6 = s_server(need, procs, pki, host="::1")
    r = client.run(["-R"], "::1", port6, ["send:v6", "expect:^6v$"])
    assert r.rc == 0, r
    assert r.env["PROTO"] == "TCP6" and r.env["TCP6REMOTEIP"] == "::1" and r.env["TCPREMOTEIP"] == "::1"
    assert r.env["SSL_SERVER_VERIFY"] == "SUCCESS" and "SSL_TLS_SNI_SERVERNAME" not in r.env
    # -N gives the name to send and verify.
    r = client.run(["-R", "-N", "mail.test.example"], "127.0.0.1", port, ["send:n", "expect:^n$"])
    assert r.rc == 0 and r.env["SSL_TLS_SNI_SERVERNAME"] == "mail.test.example", r
    r = client.run(["-R", "-N", "other.example.net"], "127.0.0.1", port, ["send:never"])
    assert r.rc == 111 and fatal_line(r.out).endswith("(verify-name)"), r


def test_client_certificate(client, need, procs, pki):
    srv, port = s_server(need, procs, pki, "server-ec", "-Verify", "1", "-CAfile", str(pki / "ca.pem"))
    r = client.run(["-R"], "localhost", port, ["send:cert", "expect:^trec$"],
                   env=client.env(CERTFILE=str(pki / "client.pem"), KEYFILE=str(pki / "client.key")))
    assert r.rc == 0, r
    assert srv.wait_for(r"client\.test\.example", timeout=WAIT), srv.text()
    mark = srv.mark()
    r = client.run(["-R", "-c", str(pki / "client.pem"), "-k", str(pki / "client.key")], "localhost", port,
                   ["send:opt", "expect:^tpo$"])
    assert r.rc == 0, r
    assert srv.wait_for(r"client\.test\.example", since=mark, timeout=WAIT), srv.text(mark)
    # A key without its certificate is a usage error.
    r = client.run(["-R", "-k", str(pki / "client.key")], "localhost", port, ["send:never"])
    assert r.rc == 100 and r.rec is None, r


def test_environment_names_match_tcpclient(client, need, procs, pki):
    """The TCP* variables and PROTO are tcpclient's (Debian ucspi-tcp), name for name;
    SSL_* inherited from the caller is dropped, and -H/-l behave as tcpclient's."""
    tcpclient = need("tcpclient")
    _, port = s_server(need, procs, pki)
    rec = procs.logdir / "tcpclient.json"
    rc, out = procs.run([tcpclient, "-R", "127.0.0.1", str(port), str(CLIENT), f"--out={rec}"], name="tcpclient",
                        env={"PATH": PATH})
    assert rc == 0, out
    theirs = {k for k in json.loads(rec.read_text())["env"] if k.startswith("TCP") or k == "PROTO"}
    r = client.run(["-R"], "127.0.0.1", port, ["send:e", "expect:^e$"],
                   env=client.env(SSL_PROTOCOL="forged", SSL_CLIENT_VERIFY="SUCCESS", SSLCTLFD="0"))
    assert r.rc == 0, r
    ours = {k for k in r.env if k.startswith("TCP") or k == "PROTO"}
    assert ours == theirs, (ours, theirs)
    assert r.env["SSL_PROTOCOL"] != "forged" and "SSLCTLFD" not in r.env
    r = client.run(["-R", "-H", "-l", "client.test.example"], "127.0.0.1", port, ["send:e", "expect:^e$"])
    assert r.rc == 0 and "TCPREMOTEHOST" not in r.env and r.env["TCPLOCALHOST"] == "client.test.example", r
    # Without -R: tcpclient's default ident lookup; nothing answers on port 113 here.
    r = client.run([], "127.0.0.1", port, ["send:e", "expect:^e$"])
    assert r.rc == 0 and "TCPREMOTEINFO" not in r.env, r


def identd(host, answer):
    """An identd on |host| port 113 for one question: answers answer(question) and
    closes; returns (thread, list that gets the question)."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, 113))
    ls.listen(1)
    ls.settimeout(WAIT)
    asked = []

    def serve():
        try:
            c, _ = ls.accept()
            with c:
                c.settimeout(WAIT)
                q = b""
                while b"\n" not in q:
                    chunk = c.recv(100)
                    if not chunk:
                        return
                    q += chunk
                asked.append(q.decode())
                c.sendall(answer(q.decode()))
        except OSError:
            pass
        finally:
            ls.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t, asked


def test_ident_answer_escaped(client, need, procs, pki):
    """-r (the default): the server's identd is asked "server port , our port"; its user
    id reaches TCPREMOTEINFO without spaces and with what is not printable escaped."""
    must_have(os.geteuid() == 0, "an identd on port 113 needs root")
    host = "127.0.0.113"
    srv, port = s_server(need, procs, pki, host=host)
    t, asked = identd(host, lambda q: q.strip().encode() + b" : USERID : UNIX : mail user\x01\\x\r\n")
    r = client.run(["-N", "localhost"], host, port, ["send:e", "expect:^e$"])
    t.join(WAIT)
    assert r.rc == 0, r
    assert len(asked) == 1 and re.fullmatch(rf"{port} , \d+\r\n", asked[0]), asked
    assert asked[0].split(",")[1].strip() == r.env["TCPLOCALPORT"], (asked, r.env)
    assert r.env["TCPREMOTEINFO"] == "mailuser\\001\\134x", r.env


def test_usage_and_connection_errors(client, need, procs, pki):
    r = client.run(["-e", "smtp", "-y"], "localhost", 25, ["send:never"])
    assert r.rc == 100 and r.rec is None and "usage:" in r.out, r
    r = client.run(["-e", "gopher"], "localhost", 25, ["send:never"])
    assert r.rc == 100 and r.rec is None, r
    r = client.run(["-Z"], "localhost", 25, ["send:never"])
    assert r.rc == 100 and "illegal option -- Z" in r.out, r
    r = client.run(["-q", "-Z"], "localhost", 25, ["send:never"])
    assert r.rc == 100 and r.out == "", r
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]     # bound, not listening: refused
        r = client.run(["-R", "-T", "2"], "127.0.0.1", closed, ["send:never"])
    assert r.rc == 111 and r.rec is None, r
    assert f"tcpclient-ssl: unable to connect to 127.0.0.1 port {closed}: connection refused" in r.out, r
    r = client.run(["-R"], "127.0.0.1", "no-such-service", ["send:never"])
    assert r.rc == 111 and "unable to figure out port number for no-such-service" in r.out, r
    # A server that accepts and never speaks TLS: the handshake deadline (-w).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        r = client.run(["-R", "-w", "1"], "127.0.0.1", s.getsockname()[1], ["send:never"])
    assert r.rc == 111 and r.rec is None and fatal_line(r.out).endswith("(timeout)"), r


# --------------------------------------------------------------------------- STARTTLS injection

class InjectingServer:
    """One SMTP connection: greeting, EHLO with STARTTLS, then "220" to STARTTLS followed in
    the same packet by a line the client must not take as coming from under TLS."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(WAIT)
        self.port = self.sock.getsockname()[1]
        self.commands, self.after = [], b""
        self.t = threading.Thread(target=self.serve, daemon=True)
        self.t.start()

    def serve(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        with c:
            c.settimeout(WAIT)
            f = c.makefile("rb")
            c.sendall(b"220 inject.test ESMTP\r\n")
            for reply in (b"250-inject.test\r\n250 STARTTLS\r\n", b"220 go ahead\r\n250 injected\r\n"):
                line = f.readline()
                self.commands.append(line.decode("latin-1").strip())
                c.sendall(reply)
            try:
                self.after = c.recv(4096)    # a TLS ClientHello would start with 0x16
            except OSError:
                pass

    def join(self):
        self.t.join(WAIT)
        self.sock.close()


def test_starttls_injection_is_refused(client):
    srv = InjectingServer()
    r = client.run(["-R", "-e", "smtp", "-E", "client.test.example"], "127.0.0.1", srv.port, ["send:never"])
    srv.join()
    assert r.rc == 111 and r.rec is None, r
    assert fatal_line(r.out).endswith("(injection)"), r.out
    assert srv.commands == ["EHLO client.test.example", "STARTTLS"], srv.commands
    assert not srv.after.startswith(b"\x16"), "a handshake was started after the injected line"


# --------------------------------------------------------------------------- Postfix: SMTP STARTTLS, UCSPI-TLS

def disconnect_line(postfix, since):
    m = postfix.wait_log(r"disconnect from localhost\[127\.0\.0\.1\].*", since=since, timeout=WAIT)
    assert m, postfix.log(since)
    return m.group(0)


SMTP_UNDER_TLS = ["send:EHLO client.test.example", "expect:^250 ", "send:MAIL FROM:<sender@example.org>",
                  "expect:^250 ", "send:RCPT TO:<postmaster@localhost>", "expect:^250 ", "send:RSET",
                  "expect:^250 ", "send:QUIT", "expect:^221 "]


def test_postfix_smtp_starttls(client, postfix):
    mark = postfix.proc.mark()
    r = client.run(["-R", "-e", "smtp", "-E", "client.test.example"], "localhost", postfix.ports["tls"],
                   SMTP_UNDER_TLS)
    assert r.rc == 0 and r.rec["error"] is None, r
    assert_tls_env(r.env)
    # The program starts under TLS with no greeting waiting; it sees the capabilities of
    # the TLS session, where STARTTLS is no longer offered.
    assert not r.rec["lines"][0].startswith("220"), r.rec["lines"]
    assert not any("STARTTLS" in x for x in r.rec["lines"]), r.rec["lines"]
    assert postfix.wait_log(r"TLS connection established from localhost\[127\.0\.0\.1\]", since=mark)
    line = disconnect_line(postfix, mark)
    for word in ("ehlo=2", "starttls=1", "mail=1", "rcpt=1", "rset=1", "quit=1"):
        assert word in line, line


def test_postfix_starttls_not_offered_and_wrong_name(client, postfix):
    mark = postfix.proc.mark()
    r = client.run(["-R", "-e", "smtp"], "localhost", postfix.ports["plain"], ["send:never"])
    assert r.rc == 111 and r.rec is None, r
    assert fatal_line(r.out) == (f"unable to start TLS with 127.0.0.1 port {postfix.ports['plain']}: "
                                 "the server did not offer STARTTLS (protocol)")
    line = disconnect_line(postfix, mark)
    assert "starttls" not in line and "quit=1" in line, line
    mark = postfix.proc.mark()
    r = client.run(["-R", "-e", "smtp", "-N", "mx.other.example"], "127.0.0.1", postfix.ports["tls"], ["send:never"])
    assert r.rc == 111 and r.rec is None, r
    assert fatal_line(r.out).endswith("(verify-name)"), r.out
    disconnect_line(postfix, mark)
    assert "TLS connection established" not in postfix.log(mark)


UCSPITLS_SMTP = ["expect:^220 ", "send:EHLO client.test.example", "expect:^250 ", "send:STARTTLS", "expect:^220 ",
                 "ucspitls:Y", *SMTP_UNDER_TLS]


def test_postfix_ucspitls_client(client, postfix):
    """-y: the program speaks EHLO and STARTTLS in plaintext on fds 6/7 (the socket), writes
    Y, reads the facts, and goes on with EHLO on SSLWRITEFD / SSLREADFD."""
    mark = postfix.proc.mark()
    r = client.run(["-R", "-y"], "localhost", postfix.ports["tls"], UCSPITLS_SMTP)
    assert r.rc == 0 and r.rec["error"] is None, r
    env, facts = r.env, r.rec["facts"]
    assert r.rec["fd6"] == "socket" and r.rec["fd7"] == "socket"
    assert {"SSLCTLFD", "SSLREADFD", "SSLWRITEFD"} <= env.keys(), env
    assert not any(k.startswith("SSL_") for k in env), env      # TLS had not started yet
    assert facts["SSL_PROTOCOL"] in ("TLSv1.2", "TLSv1.3") and facts["SSL_SERVER_VERIFY"] == "SUCCESS", facts
    assert facts["SSL_TLS_SNI_SERVERNAME"] == "localhost" and facts["SSL_SERVER_S_DN_CN"] == "localhost"
    assert r.rec["facts_raw"].endswith("\0\0")
    before = r.rec["lines"][:r.rec["lines"].index("220 2.0.0 Ready to start TLS") + 1]
    after = r.rec["lines"][len(before):]
    assert any("STARTTLS" in x for x in before) and not any("STARTTLS" in x for x in after), r.rec["lines"]
    m = postfix.wait_log(r"TLS connection established from localhost\[127\.0\.0\.1\]: (TLSv1\.[23]) with cipher (\S+)",
                         since=mark)
    assert m and m.group(1) == facts["SSL_PROTOCOL"] and m.group(2) == facts["SSL_CIPHER"], postfix.log(mark)
    line = disconnect_line(postfix, mark)
    assert "ehlo=2" in line and "starttls=1" in line and "quit=1" in line, line


def test_postfix_ucspitls_never_asked(client, postfix):
    """-y with a program that never asks: the session stays plaintext and works; the exit
    code is the program's.  Once with SSLCTLFD closed early, once by just exiting."""
    for steps in (["expect:^220 ", "closectl", "send:EHLO client.test.example", "expect:^250 ", "send:QUIT",
                   "expect:^221 "],
                  ["expect:^220 ", "send:EHLO client.test.example", "expect:^250 ", "send:QUIT", "expect:^221 "]):
        mark = postfix.proc.mark()
        r = client.run(["-R", "-y"], "localhost", postfix.ports["tls"], steps, exit=7)
        assert r.rc == 7 and r.rec["error"] is None, r
        line = disconnect_line(postfix, mark)
        assert "ehlo=1" in line and "quit=1" in line and "starttls" not in line, line
        assert "TLS connection established" not in postfix.log(mark)


def test_postfix_ucspitls_wrong_name_ends_program(client, postfix):
    r = client.run(["-R", "-y", "-N", "mx.other.example"], "127.0.0.1", postfix.ports["tls"], UCSPITLS_SMTP)
    assert r.rc == 111, r
    assert fatal_line(r.out).endswith("(verify-name)"), r.out
    # The program asked, got no facts, and was told to stop.
    assert r.rec is not None and not r.rec["facts"] and r.rec["steps"] == 5, r


def test_postfix_ucspitls_program_ends_connection_ends(client, postfix):
    """The program exits without asking for TLS while a process it left behind still holds
    SSLCTLFD: tcpclient-ssl ends with the program (its exit code), not with that process."""
    steps = ["expect:^220 ", f"holdctl:{10 * WAIT}", "send:QUIT", "expect:^221 "]
    r = client.run(["-R", "-y"], "localhost", postfix.ports["tls"], steps, exit=7, timeout=WAIT)
    try:
        assert r.rc == 7 and r.rec["error"] is None, r
    finally:
        if r.rec and r.rec["holder"]:
            os.kill(r.rec["holder"], signal.SIGKILL)
    assert r.rec["holder"], r


# --------------------------------------------------------------------------- Dovecot: IMAP and POP3

def login_line(dovecot, proto, since):
    m = dovecot.wait_log(rf"{proto}-login: Info: Login: user=<user>.*", since=since, timeout=WAIT)
    assert m, dovecot.proc.text(since)
    return m.group(0)


IMAP_UNDER_TLS = ["send:a1 CAPABILITY", "expect:^a1 OK", "send:a2 LOGIN user secret", "expect:^a2 OK",
                  "send:a3 LOGOUT", "expect:^a3 OK"]
POP3_UNDER_TLS = ["send:CAPA", r"expect:^\.$", "send:USER user", r"expect:^\+OK", "send:PASS secret",
                  r"expect:^\+OK", "send:QUIT", r"expect:^\+OK"]


def test_dovecot_imap_starttls(client, dovecot):
    mark = dovecot.proc.mark()
    r = client.run(["-R", "-e", "imap"], "localhost", dovecot.ports["imap"], IMAP_UNDER_TLS)
    assert r.rc == 0 and r.rec["error"] is None, r
    assert_tls_env(r.env)
    caps = [x for x in r.rec["lines"] if x.startswith("* CAPABILITY ")]
    assert caps and "STARTTLS" not in caps[0].split() and "AUTH=PLAIN" in caps[0].split(), r.rec["lines"]
    assert re.search(r"\bTLS\b", login_line(dovecot, "imap", mark))


def test_dovecot_pop3_starttls(client, dovecot):
    mark = dovecot.proc.mark()
    r = client.run(["-R", "-e", "pop3"], "localhost", dovecot.ports["pop3"], POP3_UNDER_TLS)
    assert r.rc == 0 and r.rec["error"] is None, r
    assert_tls_env(r.env)
    assert "STLS" not in r.rec["lines"] and "USER" in r.rec["lines"], r.rec["lines"]
    assert re.search(r"\bTLS\b", login_line(dovecot, "pop3", mark))


def test_dovecot_imaps_implicit(client, dovecot):
    mark = dovecot.proc.mark()
    r = client.run(["-R"], "localhost", dovecot.ports["imaps"], [r"expect:^\* OK", *IMAP_UNDER_TLS])
    assert r.rc == 0 and r.rec["error"] is None, r
    assert_tls_env(r.env)
    assert re.search(r"\bTLS\b", login_line(dovecot, "imap", mark))


def test_dovecot_pop3s_implicit(client, dovecot):
    mark = dovecot.proc.mark()
    r = client.run(["-R"], "localhost", dovecot.ports["pop3s"], [r"expect:^\+OK", *POP3_UNDER_TLS])
    assert r.rc == 0 and r.rec["error"] is None, r
    assert_tls_env(r.env)
    assert re.search(r"\bTLS\b", login_line(dovecot, "pop3", mark))


def test_dovecot_imap_starttls_wrong_name(client, dovecot):
    r = client.run(["-R", "-e", "imap", "-N", "imap.other.example"], "127.0.0.1", dovecot.ports["imap"],
                   ["send:never"])
    assert r.rc == 111 and r.rec is None and fatal_line(r.out).endswith("(verify-name)"), r


# --------------------------------------------------------------------------- tcpserver-ssl -y on the other side

UCSPITLS_SMTPD = HERE / "standins" / "ucspitls-smtpd"


def test_ucspitls_both_sides_with_tcpserver_ssl(client, procs, pki):
    """tcpclient-ssl -y against tcpserver-ssl -y: both programs do STARTTLS themselves over
    UCSPI-TLS, each asks for the facts with Y, and both see the same session."""
    tss = os.environ.get("MAILTLS_TCPSERVER_SSL")
    must_have(tss and os.access(tss, os.X_OK), f"MAILTLS_TCPSERVER_SSL={tss!r} is not an executable tcpserver-ssl")
    assert UCSPITLS_SMTPD.exists(), f"{UCSPITLS_SMTPD} (the server-side UCSPI-TLS stand-in) is missing from the repo"
    srv_rec = procs.logdir / "server-record.json"
    srv, port = procs.start_server(
        lambda port: [tss, "-y", "-RH", "-l0", "-n", str(pki / "server-ec-combined.pem"), "127.0.0.1", str(port),
                      str(UCSPITLS_SMTPD), f"--out={srv_rec}", "mx.test.example"],
        name="tcpserver-ssl", env={"PATH": PATH, "UCSPITLS": ""})
    steps = ["expect:^220 ", "send:EHLO client.test.example", "expect:^250 ", "send:STARTTLS", "expect:^220 ",
             "ucspitls:Y", *SMTP_UNDER_TLS]
    r = client.run(["-R", "-y"], "localhost", port, steps)
    assert r.rc == 0 and r.rec["error"] is None, r
    ours = r.rec["facts"]
    assert ours["SSL_SERVER_VERIFY"] == "SUCCESS" and ours["SSL_SERVER_S_DN_CN"] == "localhost", ours
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and not (srv_rec.exists() and json.loads(srv_rec.read_text())["done"]):
        time.sleep(0.05)
    theirs = json.loads(srv_rec.read_text())
    assert theirs["done"] and theirs["state"] == "tls", theirs
    assert theirs["plain_commands"] == ["EHLO client.test.example", "STARTTLS"], theirs
    assert theirs["tls_commands"][:1] == ["EHLO client.test.example"] and theirs["tls_commands"][-1] == "QUIT"
    facts = theirs["tls_facts"]
    assert facts["SSL_TLS_SNI_SERVERNAME"] == "localhost", facts
    for k in ("SSL_PROTOCOL", "SSL_CIPHER"):
        assert facts[k] == ours[k], (facts, ours)
    assert theirs["discarded"] == "" and r.rec["dropped"] == 0
