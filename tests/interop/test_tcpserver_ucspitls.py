"""tcpserver-ssl -y (UCSPI-TLS, ucspi-tls(2); as sslserver -n and s6-ucspitlsd) with real STARTTLS clients.

The program is standins/ucspitls-smtpd, a UCSPI-TLS-aware qmail-smtpd: plaintext on
fds 0/1 (the socket itself), STARTTLS offered only when a rule set UCSPITLS, then
"220 ready", 'Y' (or 'y') on SSLCTLFD, the facts read back, its input buffer
dropped, and the dialogue goes on on SSLREADFD/SSLWRITEFD.  It records its
environment, descriptors, commands per phase, the facts and the messages as JSON.
Clients: swaks --tls, openssl s_client -starttls smtp, Python's smtplib, and raw
sockets for the attacks of the NO STARTTLS study: plaintext pipelined after
STARTTLS (S1; the program's discarding is what protects, tcpserver-ssl cannot see
that buffer) and bytes sent after the "220 ready" but before the ClientHello (S2;
they reach the TLS engine: the handshake fails, the program is ended, exit 111).

Fixtures and helpers come from conftest.py and tss_util.py (shared with
test_tcpserver_ssl.py).  Loopback only; every wait bounded.  The servers drop to
nobody/nogroup with -u/-g after reading the 0600 PEM, as qmail sites run them:
that needs root, and without it those tests are skipped (fail under CI).
Environment: MAILTLS_TCPSERVER_SSL (set by ctest), MAILTLS_TEST_PKI, CI (a missing
peer binary, or not being root, fails instead of skipping).
"""
import os
import re
import smtplib
import socket
import time
from pathlib import Path

import pytest

from conftest import wait_gone
from tss_util import (PROG, WAIT, ctx_ca, must_have, qmail_pem, read_to_close, read_until,  # noqa: F401
                      reply, tls_log_line, tss, tss_server, user, work)

STANDIN = Path(__file__).resolve().parent / "standins" / "ucspitls-smtpd"
# The admin turns STARTTLS on through the rules, as for qmail-smtpd's UCSPI-TLS patch.
RULES = '127.0.0.1:allow,UCSPITLS=""\n:allow\n'
MSG = ("From: sender@example.org\r\nTo: rcpt@example.org\r\nSubject: ucspi-tls test\r\n\r\n"
       "first line\r\n.a line that starts with a dot\r\nlast line\r\n")
GREETING = b"220 host ESMTP\r\n"
READY = b"220 ready for tls\r\n"
SSL_FDS = ("SSLCTLFD", "SSLREADFD", "SSLWRITEFD")
EXIT_111 = 111 << 8


@pytest.fixture
def drop(request):
    """-u/-g of the unprivileged user (the qmail sites' way): needs root, else a skip
    (a failure under CI) through must_have."""
    must_have(os.geteuid() == 0, "tcpserver-ssl -y with -u/-g (as the qmail sites run it) needs root")
    uid, gid = request.getfixturevalue("user")
    return ["-u", str(uid), "-g", str(gid)]


def ucspi_server(work, tss, pem, drop, rules=RULES, opts=(), args=()):
    """tcpserver-ssl -v -l0 -HR -y [-u U -g G] -n PEM [-x rules.cdb] [opts] 127.0.0.1 PORT
    ucspitls-smtpd [args] host"""
    rx = ["-x", str(work.rules(rules))] if rules is not None else []
    return tss_server(work, tss, ["-v", "-l0", "-HR", "-y", *drop, "-n", str(pem), *rx, *opts],
                      [STANDIN, *args, "host"])


def plain_connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def to_ready(port, ehlo=True):
    """A raw client up to the server's "220 ready": (socket, bytes of the last read)."""
    s = plain_connect(port)
    assert reply(s) == GREETING
    if ehlo:
        s.sendall(b"EHLO raw.example\r\n")
        assert b"250-STARTTLS\r\n" in reply(s)
    s.sendall(b"STARTTLS\r\n")
    return s, reply(s)


def assert_ucspi_env(rec, port):
    """tcpserver's variables, the rule's UCSPITLS, the three descriptors (and nothing
    else inherited); no SSL_* (the facts come over SSLCTLFD); the socket on fds 0/1."""
    env = rec["env"]
    assert env.get("PROTO") == "TCP" and env.get("TCPLOCALPORT") == str(port), env
    assert env.get("TCPREMOTEIP") == "127.0.0.1" and env.get("TCPLOCALHOST") == "0", env
    assert env.get("UCSPITLS") == "", env
    assert not [k for k in env if k.startswith("SSL_")], env
    fds = rec["ssl_fds"]
    assert sorted(fds) == sorted(SSL_FDS), rec
    assert [fds[n][1] for n in SSL_FDS] == ["socket", "fifo", "fifo"], fds
    assert all(str(fds[n][0]) == env[n] for n in SSL_FDS), (fds, env)
    assert rec["fds"]["0"] == "socket" and rec["fds"]["1"] == "socket", rec["fds"]
    assert rec["extra_fds"] == sorted(fds[n][0] for n in SSL_FDS), \
        f"prog inherited fds {rec['extra_fds']}, expected only {fds}"


def assert_facts(rec, env_names=("SSL_PROTOCOL", "SSL_CIPHER", "SSL_CIPHER_USEKEYSIZE", "SSL_CLIENT_VERIFY")):
    """The facts block: NAME=value entries only, each name once, printable values."""
    block = rec["tls_block"]
    assert block is not None, rec
    names = [e.split("=", 1)[0] for e in block]
    assert all("=" in e and e.split("=", 1)[0] for e in block), block
    assert len(set(names)) == len(names), block
    assert all(n.startswith("SSL_") for n in names), block
    assert all(re.fullmatch(r"[\x20-\x7e]*", e) for e in block), block
    for n in env_names:
        assert n in names, block
    facts = rec["tls_facts"]
    assert facts["SSL_PROTOCOL"] == "TLSv1.3", facts
    assert facts["SSL_CLIENT_VERIFY"] == "NONE", facts
    return facts


# ------------------------------------------------------------------ real clients

def test_swaks_starttls(work, tss, drop, qmail_pem, pki, need):
    swaks = need("swaks")
    srv = ucspi_server(work, tss, qmail_pem, drop)
    rc, out = work.procs.run([swaks, "--tls", "--server", f"127.0.0.1:{srv.port}", "--tls-verify",
                              "--tls-ca-path", pki / "ca.pem", "--ehlo", "client.example",
                              "--from", "sender@example.org", "--to", "rcpt@example.org",
                              "--header", "Subject: swaks STARTTLS via tcpserver-ssl -y",
                              "--body", "hello from swaks"], name="swaks")
    # With only the root as CA, a verified session proves the chain was sent.
    assert rc == 0, out
    assert re.search(r"^<-  220 host ESMTP$", out, re.M), out
    assert re.search(r"^<-  250-STARTTLS$", out, re.M), out               # offered in plaintext
    assert re.search(r"^<-  220 ready for tls$", out, re.M), out
    assert re.search(r"^=== TLS started with cipher TLSv1\.3", out, re.M), out
    assert re.search(r"^<~  250 ok 1 qp \d+$", out, re.M), out            # the message, under TLS
    assert not re.search(r"^<~  250-STARTTLS$", out, re.M), out           # not offered again
    [rec] = work.wait_records(1)
    assert rec["end"] == "quit" and rec["state"] == "tls", rec
    assert rec["plain_commands"] == ["EHLO client.example", "STARTTLS"], rec
    assert rec["tls_commands"][0] == "EHLO client.example" and rec["tls_commands"][-1] == "QUIT", rec
    assert rec["fds_tls"] == {"0": "fifo", "1": "fifo"}, rec
    [msg] = rec["messages"]
    assert msg["tls"] and msg["from"] == "<sender@example.org>" and msg["rcpt"] == ["<rcpt@example.org>"], msg
    assert "hello from swaks" in msg["data"], msg
    assert_ucspi_env(rec, srv.port)
    facts = assert_facts(rec)
    pid, status = srv.end_of()
    assert status == 0, srv.text()
    proto, cipher, sni, client = tls_log_line(srv, pid)
    assert (proto, client) == ("TLSv1.3", "none") and cipher == facts["SSL_CIPHER"], srv.text()
    assert (rec["uid"], rec["gid"]) == (int(drop[1]), int(drop[3])), rec

    # Control: swaks does verify (a CA that did not sign: no session, nothing delivered); the
    # failed handshake is logged, the program ended, the child exits 111.
    mark = srv.mark()
    rc, out = work.procs.run([swaks, "--tls", "--server", f"127.0.0.1:{srv.port}", "--tls-verify",
                              "--tls-ca-path", pki / "unknown-ca.pem", "--from", "sender@example.org",
                              "--to", "rcpt@example.org"], name="swaks-wrongca")
    assert rc != 0 and not re.search(r"^<~ ", out, re.M), out
    pid, status = srv.end_of(since=mark)
    assert status == EXIT_111, srv.text(mark)
    assert re.search(rf"^{PROG}: tls failed {pid} \S+: ", srv.text(mark), re.M), srv.text(mark)
    recs = work.wait_records(2, done=False)
    assert sum(len(r["messages"]) for r in recs) == 1, recs


def test_openssl_s_client_starttls(work, tss, drop, qmail_pem, pki, need):
    openssl = need("openssl")
    srv = ucspi_server(work, tss, qmail_pem, drop)
    p = work.procs.start([openssl, "s_client", "-connect", f"127.0.0.1:{srv.port}", "-starttls", "smtp",
                          "-name", "sclient.example", "-servername", "localhost", "-CAfile", pki / "ca.pem",
                          "-verify_return_error", "-crlf", "-nocommands"], name="s_client", stdin=True)
    assert p.wait_for(r"Verify return code: 0 \(ok\)", timeout=WAIT), p.text()
    mark = p.mark()
    p.send("EHLO inside.example\n")
    assert p.wait_for(r"^250 8BITMIME\r?$", since=mark, timeout=WAIT), p.text()
    p.send("QUIT\n")
    rc = p.wait(WAIT)
    out = p.text()
    assert rc == 0, out
    assert "STARTTLS" not in out[mark:], out                                # not offered under TLS
    assert re.search(r"^221 host\r?$", out[mark:], re.M), out
    [rec] = work.wait_records(1)
    assert rec["plain_commands"] == ["EHLO sclient.example", "STARTTLS"], rec
    assert rec["tls_commands"] == ["EHLO inside.example", "QUIT"], rec
    facts = assert_facts(rec)
    assert facts.get("SSL_TLS_SNI_SERVERNAME") == "localhost", facts
    pid, status = srv.end_of()
    assert status == 0, srv.text()
    assert tls_log_line(srv, pid)[2] == "localhost", srv.text()


@pytest.mark.parametrize("request_byte", ["Y", "y"])
def test_smtplib_starttls(work, tss, drop, qmail_pem, pki, request_byte):
    srv = ucspi_server(work, tss, qmail_pem, drop, args=[f"--request={request_byte}"])
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=WAIT) as s:
        s.ehlo("client.example")
        assert s.has_extn("starttls"), s.esmtp_features
        s._host = "localhost"                 # the name verified and sent as SNI
        code, text = s.starttls(context=ctx_ca(pki))
        assert (code, text) == (220, b"ready for tls")
        assert s.sock.version() == "TLSv1.3"
        s.ehlo("client.example")
        assert not s.has_extn("starttls"), s.esmtp_features
        assert s.sendmail("sender@example.org", ["rcpt@example.org", "other@example.org"], MSG) == {}
        assert s.docmd("STARTTLS")[0] == 503             # S4: no second STARTTLS
        assert s.noop()[0] == 250
    [rec] = work.wait_records(1)
    assert rec["end"] == "quit" and rec["tls_request"] == request_byte, rec
    [msg] = rec["messages"]
    assert msg["tls"] and msg["data"] == MSG and msg["rcpt"] == ["<rcpt@example.org>", "<other@example.org>"], msg
    assert_ucspi_env(rec, srv.port)
    pid, status = srv.end_of()
    assert status == 0, srv.text()
    proto, cipher, sni, client = tls_log_line(srv, pid)
    assert (proto, sni, client) == ("TLSv1.3", "localhost", "none"), srv.text()
    if request_byte == "Y":
        facts = assert_facts(rec)
        assert facts["SSL_CIPHER"] == cipher and facts["SSL_TLS_SNI_SERVERNAME"] == "localhost", facts
    else:
        assert rec["tls_block"] is None, rec                   # 'y' asks for no facts


# ------------------------------------------------------------ staying in plaintext

@pytest.mark.parametrize("code", [0, 3])
def test_never_asking_stays_plaintext(work, tss, drop, qmail_pem, code):
    """A client that never says STARTTLS: the program keeps the plaintext connection to its
    end (it is not killed for not asking) and the child exits with its status."""
    srv = ucspi_server(work, tss, qmail_pem, drop, args=[f"--exit={code}"])
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=WAIT) as s:
        s.ehlo("plain.example")
        assert s.has_extn("starttls")
        time.sleep(0.5)
        assert s.sendmail("sender@example.org", ["rcpt@example.org"], MSG) == {}
        code_, _ = s.docmd("QUIT")
        assert code_ == 221
        data, how = read_to_close(s.sock)                 # the connection ends with the program
        assert (data, how) == (b"", "eof")
    [rec] = work.wait_records(1)
    assert rec["end"] == "quit" and rec["state"] == "plain" and rec["tls_block"] is None, rec
    [msg] = rec["messages"]
    assert not msg["tls"] and msg["data"] == MSG, msg
    pid, status = srv.end_of()
    assert status == code << 8, srv.text()
    assert not re.search(rf"^{PROG}: tls", srv.text(), re.M), srv.text()


def test_program_closing_sslctlfd_keeps_the_connection(work, tss, drop, qmail_pem):
    """The program closes SSLCTLFD at once (s6 semantics: it declined): the child drops its
    copy of the socket and waits; the session goes on in plaintext."""
    srv = ucspi_server(work, tss, qmail_pem, drop, args=["--close-ctl=1"])
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=WAIT) as s:
        s.ehlo("plain.example")
        assert not s.has_extn("starttls")
        time.sleep(0.5)
        assert s.sendmail("sender@example.org", ["rcpt@example.org"], MSG) == {}
        assert s.docmd("QUIT")[0] == 221
        assert read_to_close(s.sock) == (b"", "eof")
    [rec] = work.wait_records(1)
    assert rec["end"] == "quit" and len(rec["messages"]) == 1, rec
    pid, status = srv.end_of()
    assert status == 0, srv.text()


def test_connection_ends_with_the_program(work, tss, drop, qmail_pem):
    """The program exits while a process it left behind still holds SSLCTLFD (not the
    socket): the connection closes and the child ends now, not when that process does."""
    # The helper lingers far longer than any wait here: a connection or a child that
    # waited for it would show as a timeout.
    srv = ucspi_server(work, tss, qmail_pem, drop, args=[f"--linger={10 * WAIT}"])
    mark = srv.mark()
    with plain_connect(srv.port) as s:
        assert reply(s) == GREETING
        s.sendall(b"QUIT\r\n")
        data, how = read_to_close(s, timeout=WAIT)
        assert how == "eof", f"the connection outlived the program: {how}"
        assert data == b"221 host\r\n", data
    pid, status = srv.end_of(since=mark)
    assert status == 0, srv.text()


def test_without_rule_no_starttls(work, tss, drop, qmail_pem):
    """tcpserver-ssl never sets UCSPITLS itself: without a rule the program offers no STARTTLS."""
    srv = ucspi_server(work, tss, qmail_pem, drop, rules=None)
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=WAIT) as s:
        s.ehlo("plain.example")
        assert not s.has_extn("starttls"), s.esmtp_features
        assert s.docmd("STARTTLS")[0] == 502
        assert s.sendmail("sender@example.org", ["rcpt@example.org"], MSG) == {}
    [rec] = work.wait_records(1)
    assert "UCSPITLS" not in rec["env"], rec["env"]
    assert all(n in rec["env"] for n in SSL_FDS), rec["env"]
    assert srv.end_of()[1] == 0


def test_descriptors_environment_and_banner(work, tss, drop, qmail_pem):
    """A rule cannot name the descriptors or forge TLS facts; -B is written in plaintext
    before the program's greeting, as plain tcpserver writes it."""
    rules = '127.0.0.1:allow,UCSPITLS="",SSLCTLFD="0",SSLREADFD="1",SSLWRITEFD="2",SSL_PROTOCOL="TLSv9"\n'
    srv = ucspi_server(work, tss, qmail_pem, drop, rules=rules, opts=["-B", "banner line\r\n"])
    with plain_connect(srv.port) as s:
        data = read_until(s, rb"^220 [^\r\n]*\r\n")
        assert data == b"banner line\r\n" + GREETING, data
        s.sendall(b"QUIT\r\n")
        read_to_close(s)
    [rec] = work.wait_records(1)
    assert_ucspi_env(rec, srv.port)
    assert all(int(rec["env"][n]) > 2 for n in SSL_FDS), rec["env"]
    assert srv.end_of()[1] == 0


def test_y_then_S_is_plain_tcpserver(work, tss, qmail_pem):
    srv = tss_server(work, tss, ["-v", "-l0", "-HR", "-y", "-S", "-n", str(qmail_pem)], [STANDIN, "host"])
    with plain_connect(srv.port) as s:
        assert reply(s) == GREETING
        s.sendall(b"QUIT\r\n")
        read_to_close(s)
    [rec] = work.wait_records(1)
    assert not any(n in rec["env"] for n in SSL_FDS) and rec["extra_fds"] == [], rec
    assert srv.end_of()[1] == 0


def test_usage(work, tss):
    rc, out = work.procs.run([tss, "-y", "127.0.0.1"], name="usage")
    assert rc == 100 and "usage: tcpserver-ssl [ -1UXpPhHrRoOdDqQvsSwWy46 ]" in out, out
    rc, out = work.procs.run([tss, "-e", "smtp", "-y", "127.0.0.1", "0", "true"], name="e-and-y")
    assert rc == 100 and "-e and -y exclude each other" in out, out


# ------------------------------------------------------------------------- attacks

@pytest.mark.parametrize("ehlo,payload,injected", [
    (True, b"STARTTLS\r\nRSET\r\n", "RSET"),
    (False, b"EHLO x.example\r\nSTARTTLS\r\nMAIL FROM:<evil@example.org>\r\n", "MAIL FROM:<evil@example.org>"),
], ids=["STARTTLS+RSET", "EHLO+STARTTLS+MAIL"])
def test_s1_pipelined_plaintext_not_executed_in_tls(work, tss, drop, qmail_pem, pki, ehlo, payload, injected):
    """S1 (CVE-2011-0411): plaintext in the STARTTLS segment is dropped by the program; the
    first reply under TLS answers the client's EHLO, and the injected MAIL counts for nothing."""
    srv = ucspi_server(work, tss, qmail_pem, drop)
    with plain_connect(srv.port) as raw:
        assert reply(raw) == GREETING
        if ehlo:
            raw.sendall(b"EHLO raw.example\r\n")
            assert b"250-STARTTLS\r\n" in reply(raw)
        raw.sendall(payload)                                 # one segment (TCP_NODELAY, one send)
        got = read_until(raw, rb"^220 ready for tls\r\n")
        assert got.endswith(READY) and b"250 flushed" not in got and b"250 ok" not in got, got
        with ctx_ca(pki).wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"EHLO inside.example\r\n")
            first = reply(s)
            assert first.startswith(b"250-host\r\n") and first.endswith(b"250 8BITMIME\r\n"), first
            s.sendall(b"RCPT TO:<rcpt@example.org>\r\n")
            assert reply(s).startswith(b"503 "), "a MAIL from before TLS counted inside TLS"
            s.sendall(b"QUIT\r\n")
            assert reply(s) == b"221 host\r\n"
    [rec] = work.wait_records(1)
    assert rec["discarded"] == injected + "\r\n", rec
    assert rec["tls_commands"] == ["EHLO inside.example", "RCPT TO:<rcpt@example.org>", "QUIT"], rec
    assert srv.end_of()[1] == 0


def test_s1_control_program_that_keeps_its_buffer(work, tss, drop, qmail_pem, pki):
    """Control for the test above: a program that keeps what it buffered (the CVE-2011-0411 bug)
    executes the injected RSET inside TLS, and the client sees its answer first.  tcpserver-ssl
    cannot tell: the bytes were read by the program in plaintext."""
    srv = ucspi_server(work, tss, qmail_pem, drop, args=["--keep-buffer=1"])
    with plain_connect(srv.port) as raw:
        assert reply(raw) == GREETING
        raw.sendall(b"STARTTLS\r\nRSET\r\n")
        assert read_until(raw, rb"^220 ready for tls\r\n") == READY
        with ctx_ca(pki).wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"EHLO inside.example\r\n")
            first = reply(s)                                 # perhaps with the EHLO reply after it
            assert first.startswith(b"250 flushed\r\n"), first
            s.sendall(b"QUIT\r\n")
            read_to_close(s)
    [rec] = work.wait_records(1)
    assert rec["tls_commands"][0] == "RSET", rec


@pytest.mark.parametrize("junk", [b"RSET\r\n", b"MAIL FROM:<", b"\x16\x03"], ids=["line", "half-line", "short"])
def test_s2_bytes_before_clienthello_fail_the_handshake(work, tss, drop, qmail_pem, junk):
    """S2: bytes sent after the "220 ready" and before a ClientHello go to the TLS engine: the
    handshake fails (or times out with -T for too few bytes), nothing is answered in
    plaintext, "tls failed" is logged, the program is ended and the child exits 111."""
    srv = ucspi_server(work, tss, qmail_pem, drop, opts=["-T", "3"])
    mark = srv.mark()
    s, got = to_ready(srv.port)
    with s:
        assert got == READY, got
        s.sendall(junk)
        data, how = read_to_close(s, timeout=WAIT)
    assert not re.search(rb"(^|\n)\d{3}[ -]", data), f"a plaintext answer after STARTTLS: {data!r}"
    assert data == b"" or data[:1] == b"\x15", data           # nothing, or a TLS alert
    pid, status = srv.end_of(since=mark)
    assert status == EXIT_111, srv.text(mark)
    m = srv.wait_for(rf"^{PROG}: tls failed {pid} (\S+): (.*)$", since=mark)
    assert m.group(1) == ("timeout" if junk == b"\x16\x03" else "tls"), srv.text(mark)
    assert not re.search(rf"^{PROG}: tls {pid} TLS", srv.text(mark), re.M), srv.text(mark)
    [rec] = work.wait_records(1, done=False)
    assert rec["state"] == "requested" and not rec["done"] and rec["tls_commands"] == [], rec
    assert wait_gone([rec["pid"]], WAIT) == [], "the program outlived the failed handshake"


def test_bad_request_byte(work, tss, drop, qmail_pem):
    """A program that writes something else than y or Y on SSLCTLFD is broken: logged as a
    failed start of TLS, the program ended, exit 111."""
    srv = ucspi_server(work, tss, qmail_pem, drop, args=["--request=x"])
    s, got = to_ready(srv.port)
    with s:
        assert got == READY
        data, how = read_to_close(s)
    assert data == b"", data
    pid, status = srv.end_of()
    assert status == EXIT_111, srv.text()
    assert re.search(rf"^{PROG}: tls failed {pid} protocol: UCSPI-TLS: the program asked for 0x78, not y or Y$",
                     srv.text(), re.M), srv.text()
    [rec] = work.wait_records(1, done=False)
    assert wait_gone([rec["pid"]], WAIT) == [], rec
