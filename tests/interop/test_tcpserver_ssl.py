"""tcpserver-ssl (examples/tcpserver-ssl, interface in its SPEC.md) with real clients, on loopback.

The programs it runs are stand-ins (tests/interop/standins/): fake-qmail-smtpd,
fake-qmail-popup and env-dumper each write a JSON record of their environment,
uid/gid, fds and what they were told into a directory (STANDIN_OUT) that the
unprivileged user may write.  Clients: swaks, curl, Python's smtplib/poplib/ssl,
openssl s_client, sslscan; Debian's tcpserver (ucspi-tcp 0.88) and tcprules for
the comparison and the rules.  Fixtures: pki, need and ProcSet from conftest.py;
tss, user, work, qmail_pem and the client helpers from tss_util.py (shared with
test_tcpserver_keys.py).  Every server listens on 127.0.0.1 (or ::1) on a free
port and is stopped by its pid (its process group, made by us, for the
per-connection children) when the test ends.  Every wait is bounded.

Environment: MAILTLS_TCPSERVER_SSL (the binary; set by ctest), MAILTLS_TEST_PKI,
CI (missing binaries, peers or root fail instead of skipping).

The tests that use -u/-g (the real command lines) need root: the server loads
the 0600 root-owned PEM before it drops to nobody/nogroup.
"""
import os
import re
import signal
import smtplib
import socket
import ssl
import poplib
import subprocess
import threading
import time

import pytest

from conftest import listening
from tss_util import (DUMPER, GREETING, POPUP, PROG, SMTPD, WAIT, Server, ctx_ca, must_have,  # noqa: F401
                      qmail_pem, read_to_close, read_until, s_client, tls_connect, tls_log_line, tss,
                      tss_server, user, work)

SERVER_FIRST = "ECDHE-ECDSA-AES128-GCM-SHA256"   # first in the library's default server order
SERVER_LATER = "ECDHE-ECDSA-AES256-GCM-SHA384"
AEAD = re.compile(r"GCM|CHACHA20|POLY1305|CCM")
MSG = ("From: sender@example.org\r\nTo: rcpt@example.org\r\nSubject: tcpserver-ssl test\r\n\r\n"
       "first line\r\n.a line that starts with a dot\r\n..two dots\r\nlast line\r\n")
BIG = "Subject: big\r\n\r\n" + "".join(f"{i:07d} " + "x" * 120 + "\r\n" for i in range(16384))


class SMTPS(smtplib.SMTP_SSL):
    """smtplib.SMTP_SSL to 127.0.0.1 that verifies the certificate for (and sends SNI) localhost."""

    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection((host, port), timeout, self.source_address)
        return self.context.wrap_socket(sock, server_hostname="localhost")


class POP3S(poplib.POP3_SSL):
    """poplib.POP3_SSL to 127.0.0.1 that verifies the certificate for (and sends SNI) localhost."""

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout)
        return self.context.wrap_socket(sock, server_hostname="localhost")


def qmail_smtpd_line(work, tss, user, pem, rules, *extra_prog_args):
    """The qmail site's command line, paths adapted:
    tcpserver-ssl -qv -l0 -sHR -u UID -g GID -s -n PEM -x RULES.cdb 127.0.0.1 PORT qmail-smtpd host /bin/true"""
    uid, gid = user
    return tss_server(work, tss, ["-qv", "-l0", "-sHR", "-u", str(uid), "-g", str(gid), "-s", "-n", str(pem),
                                  "-x", str(rules)], [SMTPD, *extra_prog_args, "host", "/bin/true"])


def qmail_popup_line(work, tss, user, pem):
    """tcpserver-ssl -qvsRH -u UID -g GID -s -n PEM 127.0.0.1 PORT qmail-popup host checkpassword qmail-pop3d Maildir"""
    uid, gid = user
    return tss_server(work, tss, ["-qvsRH", "-u", str(uid), "-g", str(gid), "-s", "-n", str(pem)],
                      [POPUP, "host", "/bin/true", "qmail-pop3d", "Maildir"])


def assert_qmail_env(rec, port, user):
    """The environment tcpserver -l0 -HR gives, plus the rule's RELAYCLIENT and the TLS facts."""
    env = rec["env"]
    assert env.get("PROTO") == "TCP", env
    assert env.get("TCPLOCALIP") == "127.0.0.1", env
    assert env.get("TCPLOCALPORT") == str(port), env
    assert env.get("TCPLOCALHOST") == "0", env                    # -l0
    assert env.get("TCPREMOTEIP") == "127.0.0.1", env
    assert re.fullmatch(r"[1-9]\d*", env.get("TCPREMOTEPORT", "")), env
    assert "TCPREMOTEHOST" not in env, env                        # -H
    assert "TCPREMOTEINFO" not in env, env                        # -R
    assert env.get("RELAYCLIENT") == "", env                      # from the rule
    assert env.get("SSL_PROTOCOL") == "TLSv1.3", env
    assert re.fullmatch(r"TLS_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)",
                        env.get("SSL_CIPHER", "")), env
    assert "SMTPS" not in env, env                                # would make a patched qmail-smtpd start TLS again
    uid, gid = user
    assert (rec["uid"], rec["euid"], rec["gid"], rec["egid"]) == (uid, uid, gid, gid), rec
    assert 0 not in rec["groups"], rec


# ------------------------------------------------------------ the real command lines

def test_qmail_smtpd_line_swaks(work, tss, user, qmail_pem, pki, need):
    swaks = need("swaks")
    srv = qmail_smtpd_line(work, tss, user, qmail_pem, work.rules())
    srv.wait_for(rf"^{PROG}: status: 0/40$")
    rc, out = work.procs.run([swaks, "--tls-on-connect", "--server", f"127.0.0.1:{srv.port}", "--tls-verify",
                              "--tls-ca-path", pki / "ca.pem", "--ehlo", "client.example",
                              "--from", "sender@example.org", "--to", "rcpt@example.org",
                              "--header", "Subject: swaks via tcpserver-ssl", "--body", "hello from swaks"],
                             name="swaks")
    # With only the root as CA, a verified session proves the intermediate was sent.
    assert rc == 0, out
    assert re.search(r"<~  220 host ESMTP", out), out
    assert re.search(r"<~  250 ok 1 qp", out), out
    [rec] = work.wait_records(1)
    assert rec["end"] == "quit" and rec["argv"] == ["host", "/bin/true"], rec
    [msg] = rec["messages"]
    assert msg["from"] == "<sender@example.org>" and msg["rcpt"] == ["<rcpt@example.org>"], msg
    assert "Subject: swaks via tcpserver-ssl\r\n" in msg["data"] and "hello from swaks" in msg["data"], msg
    assert_qmail_env(rec, srv.port, user)
    pid, status = srv.end_of()
    assert status == 0, srv.text()
    assert re.search(rf"^{PROG}: pid {pid} from 127\.0\.0\.1$", srv.text(), re.M), srv.text()
    assert re.search(rf"^{PROG}: ok {pid} 0:127\.0\.0\.1:{srv.port} :127\.0\.0\.1::{rec['env']['TCPREMOTEPORT']}$",
                     srv.text(), re.M), srv.text()

    # Control: swaks --tls-verify does verify (another CA: no session, nothing delivered).
    rc, out = work.procs.run([swaks, "--tls-on-connect", "--server", f"127.0.0.1:{srv.port}", "--tls-verify",
                              "--tls-ca-path", pki / "unknown-ca.pem", "--to", "rcpt@example.org",
                              "--from", "sender@example.org"], name="swaks-wrongca")
    assert rc != 0 and "220 host" not in out, out
    assert len(work.records()) == 1

    # swaks --pipeline: MAIL, RCPT and DATA in one burst through the relay.
    rc, out = work.procs.run([swaks, "--tls-on-connect", "--server", f"127.0.0.1:{srv.port}", "--tls-verify",
                              "--tls-ca-path", pki / "ca.pem", "--pipeline", "--from", "sender@example.org",
                              "--to", "rcpt@example.org,other@example.org", "--body", "pipelined"],
                             name="swaks-pipeline")
    assert rc == 0 and re.search(r"<~  250 ok 1 qp", out), out
    recs = work.wait_records(2)
    msgs = [m for r in recs for m in r["messages"] if "pipelined" in m["data"]]
    assert len(msgs) == 1 and msgs[0]["rcpt"] == ["<rcpt@example.org>", "<other@example.org>"], recs


def test_qmail_smtpd_line_smtplib(work, tss, user, qmail_pem, pki):
    srv = qmail_smtpd_line(work, tss, user, qmail_pem, work.rules())
    with SMTPS("127.0.0.1", srv.port, context=ctx_ca(pki), timeout=WAIT) as s:
        code, ehlo = s.ehlo("client.example")
        assert code == 250 and b"PIPELINING" in ehlo, ehlo
        refused = s.sendmail("sender@example.org", ["rcpt@example.org", "other@example.org"], MSG)
        assert refused == {}
        # A big one (2 MiB, many TLS records each way through the relay).
        assert s.sendmail("sender@example.org", ["rcpt@example.org"], BIG) == {}
        s.rset()
        assert s.noop()[0] == 250
        assert s.sock.version() == "TLSv1.3"
    [rec] = work.wait_records(1)
    assert rec["end"] == "quit", rec
    msg, big = rec["messages"]
    assert big["data"] == BIG, "the 2 MiB message arrived changed"
    assert msg["data"] == MSG, msg                                # dots stuffed by smtplib, unstuffed by the stand-in
    assert msg["rcpt"] == ["<rcpt@example.org>", "<other@example.org>"], msg
    assert_qmail_env(rec, srv.port, user)
    pid, status = srv.end_of()
    assert status == 0
    proto, cipher, sni, client = tls_log_line(srv, pid)
    assert (proto, sni, client) == ("TLSv1.3", "localhost", "none"), srv.text()
    assert cipher == rec["env"]["SSL_CIPHER"], srv.text()
    assert rec["env"].get("SSL_TLS_SNI_SERVERNAME") == "localhost", rec["env"]


def test_program_gets_pipes_and_no_socket(work, tss, user, qmail_pem, pki):
    """SPEC: prog gets plaintext pipes on fds 0 and 1; it must not inherit the TCP
    socket (it could read the ciphertext or bypass TLS) or the listening socket."""
    srv = qmail_smtpd_line(work, tss, user, qmail_pem, work.rules())
    with SMTPS("127.0.0.1", srv.port, context=ctx_ca(pki), timeout=WAIT) as s:
        s.ehlo("client.example")
    [rec] = work.wait_records(1)
    assert rec["fds"]["0"] == "fifo" and rec["fds"]["1"] == "fifo", rec["fds"]
    assert rec["extra_fds"] == [], f"prog inherited fds {rec['extra_fds']} beyond 0, 1, 2"


def test_qmail_popup_line_curl(work, tss, user, qmail_pem, pki, need):
    curl = need("curl")
    srv = qmail_popup_line(work, tss, user, qmail_pem)
    url = f"pop3s://127.0.0.1:{srv.port}/"
    rc, out = work.procs.run([curl, "-sS", "--max-time", str(WAIT), "--cacert", pki / "ca.pem", url,
                              "-u", "user:pass"], name="curl-list")
    assert rc == 0, out
    assert re.fullmatch(r"1 \d+\r?\n2 \d+\r?\n", out), repr(out)
    rc, out = work.procs.run([curl, "-sS", "--max-time", str(WAIT), "--cacert", pki / "ca.pem", url + "2",
                              "-u", "user:pass"], name="curl-retr")
    assert rc == 0 and "Subject: second" in out and "\n.leading dot" in out, out
    recs = work.wait_records(2)
    assert all(r["user"] == "user" and r["end"] == "quit" for r in recs), recs
    assert sorted(sum((r["retrieved"] for r in recs), [])) == [2], recs
    for rec in recs:
        env = rec["env"]
        assert rec["argv"] == ["host", "/bin/true", "qmail-pop3d", "Maildir"], rec
        assert env.get("PROTO") == "TCP" and env.get("TCPLOCALPORT") == str(srv.port), env
        assert env.get("TCPREMOTEIP") == "127.0.0.1", env
        assert "TCPREMOTEHOST" not in env and "TCPREMOTEINFO" not in env, env   # -H, -R
        assert env.get("SSL_PROTOCOL") == "TLSv1.3", env
        assert (rec["uid"], rec["gid"]) == user, rec
    # curl with the wrong password: authentication fails (the stand-in said so inside TLS).
    rc, out = work.procs.run([curl, "-sS", "--max-time", str(WAIT), "--cacert", pki / "ca.pem", url,
                              "-u", "user:wrong"], name="curl-wrong")
    assert rc == 67, out


def test_qmail_popup_line_poplib(work, tss, user, qmail_pem, pki):
    srv = qmail_popup_line(work, tss, user, qmail_pem)
    p = POP3S("127.0.0.1", srv.port, context=ctx_ca(pki), timeout=WAIT)
    try:
        assert p.getwelcome().startswith(b"+OK <"), p.getwelcome()
        p.user("user")
        p.pass_("pass")
        count, size = p.stat()
        assert count == 2 and size > 0
        resp, listing, _ = p.list()
        assert [ln.split()[0] for ln in listing] == [b"1", b"2"], listing
        resp, lines, _ = p.retr(1)
        assert b"Subject: first" in lines and b"hello one" in lines, lines
        assert p.sock.version() == "TLSv1.3"
        p.quit()
    finally:
        p.close()
    [rec] = work.wait_records(1)
    assert rec["auth"] == "user" and rec["retrieved"] == [1] and rec["end"] == "quit", rec
    assert (rec["uid"], rec["gid"]) == user, rec
    pid, status = srv.end_of()
    assert status == 0, srv.text()


# --------------------------------------------------- the same as Debian's tcpserver

def normalise(text, prog, port):
    """The log lines with the program name, the pids (numbered in order of appearance),
    the local port and the remote ports replaced; tcpserver-ssl's tls lines left out."""
    pids, lines = {}, []
    for line in text.splitlines():
        if not line.startswith(prog + ": "):
            continue
        line = "PROG: " + line[len(prog) + 2:]
        if re.match(r"PROG: tls ", line):
            continue
        line = re.sub(rf":{port}( |$)", r":LPORT\1", line)
        line = re.sub(r"::\d+$", "::RPORT", line)
        line = re.sub(r"^(PROG: (?:pid|ok|deny|end)) (\d+)",
                      lambda m: f"{m.group(1)} P{pids.setdefault(m.group(2), len(pids) + 1)}", line)
        lines.append(line)
    return lines


def run_connections(srv, prog, connect, sources):
    """One connection from each source address in turn, each to its end; returns the
    log chunk of each connection (from its connect to the status line after its end)."""
    chunks = []
    # The startup status line may follow the listen the harness saw: it belongs to no connection.
    srv.wait_for(rf"^{prog}: status: 0/40$")
    for src in sources:
        mark = srv.mark()
        connect(src)
        srv.wait_for(rf"^{prog}: end \d+ status \d+\n(?:.*\n)*?{prog}: status: 0/40$", since=mark)
        chunks.append(srv.text(mark))
    return chunks


def test_same_log_and_env_as_tcpserver(work, tss, user, qmail_pem, pki, need):
    tcpserver = need("tcpserver")
    rules = work.rules()
    uid, gid = user
    opts = ["-v", "-l0", "-HR", "-u", str(uid), "-g", str(gid), "-x", str(rules)]

    # Debian's tcpserver: plain connections.
    ref = work.start(lambda port: [tcpserver, *opts, "127.0.0.1", str(port), DUMPER, "--say=dumped"],
                     name="tcpserver")

    def plain(src):
        with socket.create_connection(("127.0.0.1", ref.port), timeout=WAIT, source_address=(src, 0)) as s:
            read_to_close(s)

    ref_chunks = run_connections(ref, "tcpserver", plain, ["127.0.0.1", "127.0.0.2"])
    [ref_rec] = work.wait_records(1)
    for f in work.out.glob("*.json"):
        f.unlink()

    srv = tss_server(work, tss, [*opts, "-n", str(qmail_pem)], [DUMPER, "--say=dumped"])

    def tls(src):
        if src == "127.0.0.1":
            with tls_connect(pki, srv.port, source=src) as s:
                data, how = read_to_close(s)
                assert data == b"dumped\r\n", (data, how)
        else:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT, source_address=(src, 0)) as s:
                data, how = read_to_close(s)
                assert data == b"" and how in ("eof", "reset"), (data, how)

    chunks = run_connections(srv, PROG, tls, ["127.0.0.1", "127.0.0.2"])
    [rec] = work.wait_records(1)

    for name, ref_chunk, chunk in zip(("allowed", "denied"), ref_chunks, chunks):
        want = normalise(ref_chunk, "tcpserver", ref.port)
        got = normalise(chunk, PROG, srv.port)
        # Parent (status, end) and child (pid, ok/deny) lines may interleave differently:
        # the same lines, and in each the same order as tcpserver's.
        assert sorted(got) == sorted(want), f"{name} connection:\ntcpserver:\n{ref_chunk}\n{PROG}:\n{chunk}"
        for kind in (r"PROG: status", r"PROG: (?:pid|ok|deny|end)"):
            assert [ln for ln in got if re.match(kind, ln)] == [ln for ln in want if re.match(kind, ln)], \
                f"{name} connection:\ntcpserver:\n{ref_chunk}\n{PROG}:\n{chunk}"
    assert any(re.match(r"PROG: deny P1 0:127\.0\.0\.1:LPORT :127\.0\.0\.2::RPORT$", ln)
               for ln in normalise(chunks[1], PROG, srv.port)), chunks[1]

    def tcp_env(r, port):
        env = {k: v for k, v in r["env"].items() if not k.startswith("SSL_")}
        assert env["TCPLOCALPORT"] == str(port)
        env["TCPLOCALPORT"] = env["TCPREMOTEPORT"] = "PORT"
        return env

    assert tcp_env(rec, srv.port) == tcp_env(ref_rec, ref.port)
    assert (rec["uid"], rec["gid"], rec["groups"]) == (ref_rec["uid"], ref_rec["gid"], ref_rec["groups"])
    assert any(k.startswith("SSL_") for k in rec["env"]), rec["env"]


# ------------------------------------------------------------------------ rules

def test_deny_closes_before_tls(work, tss, user, qmail_pem, pki):
    srv = qmail_smtpd_line(work, tss, user, qmail_pem, work.rules())
    mark = srv.mark()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT, source_address=("127.0.0.2", 0)) as s:
        data, how = read_to_close(s)
    assert data == b"" and how in ("eof", "reset"), (data, how)
    pid, status = srv.end_of(since=mark)
    assert status == 25600, srv.text()                            # exit 100
    assert re.search(rf"^{PROG}: deny {pid} 0:127\.0\.0\.1:{srv.port} :127\.0\.0\.2::\d+$", srv.text(mark), re.M), \
        srv.text(mark)
    assert not re.search(rf"^{PROG}: tls", srv.text(mark), re.M), srv.text(mark)
    # A TLS client from the denied address gets no session either.
    try:
        with tls_connect(pki, srv.port, source="127.0.0.2") as s:
            got = ("session", read_to_close(s))
    except (ssl.SSLError, OSError) as e:
        got = ("no session", e)
    assert got[0] == "no session", got
    assert work.records() == []


@pytest.mark.parametrize("allow_missing", [True, False], ids=["-X", "no-X"])
def test_missing_rules_cdb(work, tss, qmail_pem, pki, allow_missing):
    missing = work.dir / "missing.cdb"
    opts = ["-v", "-l0", "-HR", "-n", str(qmail_pem), "-x", str(missing)] + (["-X"] if allow_missing else [])
    srv = tss_server(work, tss, opts, [DUMPER, "--say=dumped"])
    try:
        with tls_connect(pki, srv.port) as s:
            data, how = read_to_close(s)
    except (ssl.SSLError, ConnectionError, OSError) as e:
        data, how = b"", f"handshake: {e}"
    pid, status = srv.end_of()
    if allow_missing:
        assert data == b"dumped\r\n", (data, how)
        assert status == 0 and len(work.wait_records(1)) == 1, srv.text()
        assert re.search(rf"^{PROG}: ok {pid} ", srv.text(), re.M), srv.text()
    else:
        assert data == b"", (data, how)
        assert status == 28416, srv.text()                        # exit 111, as tcpserver's drop
        # tcpserver says "warning: dropping connection, unable to read missing.cdb: file does not exist".
        assert re.search(rf"^{PROG}: warning: dropping connection, unable to read {re.escape(str(missing))}: "
                         r"file does not exist$", srv.text(), re.M), srv.text()
        assert work.records() == []


# ---------------------------------------------------------------- options

def test_concurrency_limit_c1(work, tss, qmail_pem, pki):
    """-c 1: a second client waits in the listen queue until the first one ends."""
    srv = tss_server(work, tss, ["-v", "-c", "1", "-l0", "-HR", "-n", str(qmail_pem)], [SMTPD, "host"])
    srv.wait_for(rf"^{PROG}: status: 0/1$")
    first = SMTPS("127.0.0.1", srv.port, context=ctx_ca(pki), timeout=WAIT)
    second = {}

    def second_client():
        try:
            with tls_connect(pki, srv.port, timeout=WAIT) as s:
                second["greeting"] = read_until(s, rb"^220 .*\r\n", timeout=WAIT)
                second["t"] = time.monotonic()
                s.sendall(b"QUIT\r\n")
                read_to_close(s, timeout=3)
        except Exception as e:          # reported below
            second["error"] = repr(e)

    t = threading.Thread(target=second_client, daemon=True)
    t.start()
    time.sleep(1.5)
    assert "t" not in second and "error" not in second, f"second client served while the first runs: {second}"
    first.ehlo("first.example")
    t_quit = time.monotonic()
    first.quit()
    t.join(WAIT + 5)
    assert second.get("greeting", b"").startswith(b"220 host"), second
    assert second["t"] >= t_quit, "second greeting before the first client quit"
    assert f"{PROG}: status: 1/1" in srv.text(), srv.text()
    assert len(work.wait_records(2)) == 2


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def v6_record(work, tss, qmail_pem, pki):
    """One TLS connection over ::1 to tcpserver-ssl -6 ... ::1 PORT env-dumper:
    (record, server, log text)."""
    must_have(ipv6_loopback(), "no IPv6 loopback (::1) here")
    srv = tss_server(work, tss, ["-6", "-v", "-l0", "-HR", "-n", str(qmail_pem)], [DUMPER, "--say=dumped"],
                     host="::1")
    with tls_connect(pki, srv.port, host="::1") as s:
        data, how = read_to_close(s)
    assert data == b"dumped\r\n", (data, how, srv.text())
    [rec] = work.wait_records(1)
    srv.end_of()
    return rec, srv


def test_ipv6_tcp6_environment_and_log(v6_record):
    """The IPv6 patch (Debian ucspi-tcp-ipv6 0.88-7, seen here): PROTO=TCP6 and TCP6* names; log
    "ok PID 0:::1:PORT :::1::RPORT"."""
    rec, srv = v6_record
    env = rec["env"]
    assert env.get("PROTO") == "TCP6", env
    assert env.get("TCP6LOCALIP") == "::1" and env.get("TCP6REMOTEIP") == "::1", env
    assert env.get("TCP6LOCALPORT") == str(srv.port), env
    assert re.fullmatch(r"[1-9]\d*", env.get("TCP6REMOTEPORT", "")), env
    assert env.get("TCP6LOCALHOST") == "0", env
    assert "TCP6REMOTEHOST" not in env and "TCP6REMOTEINFO" not in env, env
    assert re.search(rf"^{PROG}: pid \d+ from ::1$", srv.text(), re.M), srv.text()
    assert re.search(rf"^{PROG}: ok \d+ 0:::1:{srv.port} :::1::{env.get('TCP6REMOTEPORT')}$", srv.text(), re.M), \
        srv.text()


def test_ipv6_also_tcp_names(v6_record):
    """ucspi-tcp-ipv6's tcpserver sets the TCP* names too on an IPv6 connection (TCPREMOTEIP=::1 ...):
    qmail-smtpd, rblsmtpd and the rules read TCPREMOTEIP."""
    rec, srv = v6_record
    env = rec["env"]
    for name in ("LOCALIP", "LOCALPORT", "REMOTEIP", "REMOTEPORT", "LOCALHOST"):
        assert env.get("TCP" + name) == env.get("TCP6" + name), (name, env)


def test_banner_inside_tls_before_greeting(work, tss, qmail_pem, pki):
    srv = tss_server(work, tss, ["-B", "banner line\r\n", "-l0", "-HR", "-n", str(qmail_pem)], [SMTPD, "host"])
    with tls_connect(pki, srv.port) as s:        # a plaintext banner would break this handshake
        data = read_until(s, rb"^220 .*\r\n")
        s.sendall(b"QUIT\r\n")
        read_to_close(s, timeout=3)
    assert data.startswith(b"banner line\r\n220 host ESMTP\r\n"), data


def test_dash_1_prints_port(work, tss, qmail_pem, pki):
    p = work.procs.start([tss, "-1", "-l0", "-HR", "-n", qmail_pem, "127.0.0.1", "0", SMTPD, "host"],
                         name=PROG, env=work.env())
    work.servers.append(Server(p, 0))
    m = p.wait_for(r"^(\d+)$")
    assert m, p.text()
    port = int(m.group(1))
    assert port > 0 and listening(port), p.text()
    with SMTPS("127.0.0.1", port, context=ctx_ca(pki), timeout=WAIT) as s:
        assert s.noop()[0] == 250
    [rec] = work.wait_records(1)
    assert rec["env"]["TCPLOCALPORT"] == str(port)


def test_handshake_timeout(work, tss, qmail_pem):
    srv = tss_server(work, tss, ["-v", "-T", "2", "-l0", "-HR", "-n", str(qmail_pem)], [SMTPD, "host"])
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as s:
        data, how = read_to_close(s, timeout=WAIT)
    elapsed = time.monotonic() - t0
    assert how in ("eof", "reset") and elapsed >= 1.5, (how, elapsed, data)
    assert b"220" not in data
    pid, status = srv.end_of()
    assert re.search(rf"^{PROG}: tls failed {pid} .*timeout", srv.text(), re.M | re.I), srv.text()
    assert status == 28416, srv.text()                            # 111: temporary failure
    assert work.records() == [], "the program was started although the handshake never happened"


def test_plaintext_to_tls_port(work, tss, qmail_pem):
    srv = tss_server(work, tss, ["-v", "-l0", "-HR", "-n", str(qmail_pem)], [SMTPD, "host"])
    with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as s:
        s.sendall(b"EHLO client.example\r\n")
        data, how = read_to_close(s, timeout=WAIT)
    assert how in ("eof", "reset"), (how, data)
    # No plaintext answer: at most a TLS alert record (content type 21).
    assert data == b"" or data[0] == 0x15, data
    assert b"220" not in data and b"250" not in data, data
    pid, status = srv.end_of()
    assert re.search(rf"^{PROG}: tls failed {pid} ", srv.text(), re.M), srv.text()
    assert status == 28416, srv.text()
    assert work.records() == []


def test_sni_two_names(work, tss, qmail_pem, pki, need):
    openssl = need("openssl")
    env = work.env(**{"CERTFILE:a.test.example": str(pki / "sni-a.pem"),
                      "KEYFILE:a.test.example": str(pki / "sni-a.key")})
    srv = tss_server(work, tss, ["-v", "-l0", "-HR", "-n", str(qmail_pem)], [SMTPD, "host"], env=env)
    ca = ["-CAfile", pki / "ca.pem", "-verify_return_error"]
    for name, cn in (("a.test.example", "a.test.example"), ("localhost", "localhost"),
                     ("mail.test.example", "localhost"), (None, "localhost")):
        sn = ["-servername", name] if name else ["-noservername"]
        mark = srv.mark()
        rc, out = s_client(work, openssl, srv.port, *ca, *sn)
        assert rc == 0 and "Verify return code: 0 (ok)" in out, out
        assert re.search(rf"^subject=.*CN ?= ?{re.escape(cn)}$", out, re.M), (name, out)
        assert re.search(GREETING, out, re.M), out
        pid, _ = srv.end_of(since=mark)
        _, _, sni, _ = tls_log_line(srv, pid, since=mark)
        assert sni == (name or "") or (name is None and sni in ("", "-", "none")), (name, srv.text(mark))
    recs = work.wait_records(4)
    snis = sorted(r["env"].get("SSL_TLS_SNI_SERVERNAME", "") for r in recs)
    assert snis == ["", "a.test.example", "localhost", "mail.test.example"], snis


def test_client_certificate_required(work, tss, qmail_pem, pki):
    env = work.env(CAFILE=str(pki / "ca.pem"))
    srv = tss_server(work, tss, ["-v", "-W", "-l0", "-HR", "-n", str(qmail_pem)], [SMTPD, "host"], env=env)

    # Without a certificate: no session (TLS 1.3 reports it after the client's handshake).
    mark = srv.mark()
    data = b""
    try:
        with tls_connect(pki, srv.port) as s:
            data, how = read_to_close(s)
    except (ssl.SSLError, ConnectionError, OSError):
        pass
    assert b"220" not in data, data
    pid, status = srv.end_of(since=mark)
    assert re.search(rf"^{PROG}: tls failed {pid} ", srv.text(mark), re.M), srv.text(mark)
    assert status == 28416, srv.text(mark)
    assert work.records() == []

    # With one (client.pem: leaf + intermediate; the server has only the root).
    mark = srv.mark()
    with tls_connect(pki, srv.port, ctx=ctx_ca(pki, cert="client")) as s:
        data = read_until(s, rb"^220 .*\r\n")
        s.sendall(b"QUIT\r\n")
        read_to_close(s, timeout=3)
    assert data.startswith(b"220 host"), data
    [rec] = work.wait_records(1)
    assert rec["env"].get("SSL_CLIENT_VERIFY") == "SUCCESS", rec["env"]
    assert rec["env"].get("SSL_CLIENT_S_DN_CN") == "client.test.example", rec["env"]
    pid, status = srv.end_of(since=mark)
    _, _, _, client = tls_log_line(srv, pid, since=mark)
    assert client.startswith("verified:") and "client.test.example" in client, srv.text(mark)


def test_resumption(work, tss, qmail_pem, pki, need):
    openssl = need("openssl")
    srv = tss_server(work, tss, ["-l0", "-HR", "-n", str(qmail_pem)], [SMTPD, "host"])
    sess = work.dir / "session.pem"
    ca = ["-CAfile", pki / "ca.pem", "-verify_return_error", "-servername", "localhost"]
    rc, out = s_client(work, openssl, srv.port, *ca, "-sess_out", sess)
    assert rc == 0 and re.search(r"^New, TLSv1\.3", out, re.M), out
    assert sess.is_file() and sess.stat().st_size > 0, out
    rc, out = s_client(work, openssl, srv.port, *ca, "-sess_in", sess)
    assert rc == 0 and re.search(r"^Reused, TLSv1\.3", out, re.M), out
    assert re.search(GREETING, out, re.M), out


def test_end_status_is_program_exit(work, tss, qmail_pem, pki):
    srv = tss_server(work, tss, ["-v", "-l0", "-HR", "-n", str(qmail_pem)], [SMTPD, "--exit=3", "host"])
    with SMTPS("127.0.0.1", srv.port, context=ctx_ca(pki), timeout=WAIT) as s:
        s.ehlo("client.example")
    pid, status = srv.end_of()
    assert status == 768, srv.text()
    assert re.search(rf"^{PROG}: end {pid} status 768$", srv.text(), re.M)


def test_sslscan_audit(work, tss, qmail_pem, need):
    sslscan = need("sslscan")
    srv = tss_server(work, tss, ["-l0", "-HR", "-n", str(qmail_pem)], [SMTPD, "host"])
    rc, out = work.procs.run([sslscan, "--no-colour", f"127.0.0.1:{srv.port}"], name="sslscan", timeout=60)
    assert rc == 0, out
    protos = dict(re.findall(r"^(SSLv[23]|TLSv1\.[0-3])\s+(enabled|disabled)$", out, re.M))
    assert len(protos) == 6, out
    assert {p for p, s in protos.items() if s == "enabled"} == {"TLSv1.2", "TLSv1.3"}, out
    suites = re.findall(r"^(?:Preferred|Accepted)\s+(\S+)\s+\d+ bits\s+(\S+)", out, re.M)
    assert {v for v, _ in suites} == {"TLSv1.2", "TLSv1.3"}, out
    assert [c for _, c in suites if not AEAD.search(c)] == [], out
    assert re.search(r"^Preferred TLSv1\.2\s+\d+ bits\s+" + SERVER_FIRST, out, re.M), out
    assert "Insecure session renegotiation supported" not in out, out


@pytest.mark.parametrize("order", [[SERVER_FIRST, SERVER_LATER], [SERVER_LATER, SERVER_FIRST]],
                         ids=["server-order", "reversed"])
def test_tls12_server_cipher_order_wins(work, tss, qmail_pem, pki, need, order):
    openssl = need("openssl")
    srv = tss_server(work, tss, ["-l0", "-HR", "-n", str(qmail_pem)], [SMTPD, "host"])
    rc, out = s_client(work, openssl, srv.port, "-CAfile", pki / "ca.pem", "-verify_return_error",
                       "-servername", "localhost", "-tls1_2", "-cipher", ":".join(order))
    assert rc == 0 and re.search(GREETING, out, re.M), out
    assert re.search(rf"^New, TLSv1\.2, Cipher is {SERVER_FIRST}$", out, re.M), out
    [rec] = work.wait_records(1)
    assert rec["env"]["SSL_PROTOCOL"] == "TLSv1.2", rec["env"]


def test_sigterm_stops_accepting_lets_session_finish(work, tss, qmail_pem, pki):
    srv = tss_server(work, tss, ["-v", "-l0", "-HR", "-n", str(qmail_pem)], [SMTPD, "host"])
    s = SMTPS("127.0.0.1", srv.port, context=ctx_ca(pki), timeout=WAIT)
    s.ehlo("client.example")
    os.kill(srv.pid, signal.SIGTERM)
    deadline = time.monotonic() + 3
    while listening(srv.port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not listening(srv.port), f"port {srv.port} still listening 3s after SIGTERM (a child keeps the socket?)"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
    # The running session goes on to its end.
    assert s.sendmail("sender@example.org", ["rcpt@example.org"], MSG) == {}
    s.quit()
    [rec] = work.wait_records(1)
    assert rec["end"] == "quit" and rec["messages"][0]["data"] == MSG, rec
    assert srv.proc.wait(5) is not None, f"server still running after its last session:\n{srv.text()}"


# ------------------------------------------------------------------- usage errors

def run_tss(work, tss, args, timeout=5, **kw):
    try:
        return subprocess.run([tss, *map(str, args)], capture_output=True, timeout=timeout, cwd=work.dir,
                              env=work.env(), **kw)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{PROG} {args} still running after {timeout}s (expected an immediate exit)")


@pytest.mark.parametrize("args", [["-Z", "127.0.0.1", "0", "/bin/true"], [], ["127.0.0.1"], ["127.0.0.1", "0"],
                                  ["-c"]],
                         ids=["unknown-option", "no-args", "host-only", "no-prog", "option-without-value"])
def test_usage(work, tss, args):
    r = run_tss(work, tss, args)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 100, (r.returncode, err)
    assert re.search(rf"^{PROG}: usage: {PROG} ", err, re.M), err
    assert r.stdout == b""


def test_missing_pem(work, tss):
    missing = work.dir / "no-such.pem"
    r = run_tss(work, tss, ["-n", missing, "127.0.0.1", "0", "/bin/true"])
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 111 and str(missing) in err and err.startswith(f"{PROG}: "), (r.returncode, err)
    # The default -n is ./cert.pem.
    r = run_tss(work, tss, ["127.0.0.1", "0", "/bin/true"])
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 111 and "cert.pem" in err, (r.returncode, err)


def test_unreadable_pem(work, tss, user, qmail_pem, pki):
    """The root-only PEM as seen by a server started as nobody: exit 111 naming the file;
    a garbage PEM likewise."""
    uid, gid = user
    r = run_tss(work, tss, ["-n", qmail_pem, "127.0.0.1", "0", "/bin/true"], user=uid, group=gid, extra_groups=[])
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 111 and str(qmail_pem) in err, (r.returncode, err)
    r = run_tss(work, tss, ["-n", pki / "garbage.pem", "127.0.0.1", "0", "/bin/true"])
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 111 and "garbage.pem" in err, (r.returncode, err)
