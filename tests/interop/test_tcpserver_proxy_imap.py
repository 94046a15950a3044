"""tcpserver-ssl -e imap (the STARTTLS protocol proxy) with real IMAP clients.

The program is standins/fake-imapd, an IMAP server that knows nothing of TLS (its
greeting carries a [CAPABILITY] code without STARTTLS; APPEND takes {n} and {n+}
literals).  The proxy adds STARTTLS (and, with -E, LOGINDISABLED) to the greeting's
response code and to CAPABILITY replies before TLS only, answers "tag STARTTLS",
runs the handshake and keeps relaying.  Clients: Python's imaplib.starttls,
openssl s_client -starttls imap, curl --ssl-reqd imap://, and raw sockets for S1
("a STARTTLS\\r\\nb NOOP\\r\\n" in one segment: one BAD, closed, nothing reaches the
program), S5 (-E: LOGIN gets NO, LOGINDISABLED advertised) and literals holding
"STARTTLS", which are message data, never a command.
"""
import imaplib
import re
import socket

import pytest  # noqa: F401

from tss_util import (PROG, STANDINS, WAIT, ctx_ca, qmail_pem, read_to_close, read_until, tss,  # noqa: F401
                      tss_server, user, work)

IMAPD = STANDINS / "fake-imapd"
MESSAGE = "From: a@example.org\r\nSubject: imap\r\n\r\na STARTTLS\r\n. STARTTLS\r\nbye\r\n"


def imap_server(work, tss, pem, opts=()):
    return tss_server(work, tss, ["-v", "-l0", "-HR", "-e", "imap", "-n", str(pem), *opts], [IMAPD, "host"])


def tagged(sock, tag):
    """Responses up to and with the tagged completion of |tag|."""
    return read_until(sock, rb"^" + re.escape(tag) + rb" [^\r\n]*\r\n")


def raw(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    greeting = read_until(s, rb"^\* [^\r\n]*\r\n")
    return s, greeting


def record(work, done=True):
    [rec] = work.wait_records(1, done=done)
    return rec


def tls(sock, pki, tag=b"t"):
    sock.sendall(tag + b" STARTTLS\r\n")
    assert tagged(sock, tag) == tag + b" OK Begin TLS negotiation now\r\n"
    return ctx_ca(pki).wrap_socket(sock, server_hostname="localhost")


def test_imaplib_starttls(work, tss, qmail_pem, pki):
    srv = imap_server(work, tss, qmail_pem, opts=("-A",))
    c = imaplib.IMAP4("127.0.0.1", srv.port, timeout=WAIT)
    # From the greeting's [CAPABILITY] code, rewritten by the proxy; AUTH hidden (-A).
    assert "STARTTLS" in c.capabilities and "AUTH=PLAIN" not in c.capabilities, c.capabilities
    c.host = "localhost"                      # the name imaplib verifies
    typ, _ = c.starttls(ssl_context=ctx_ca(pki))
    assert typ == "OK"
    # imaplib asked CAPABILITY again under TLS: no STARTTLS, AUTH back.
    assert "STARTTLS" not in c.capabilities and "AUTH=PLAIN" in c.capabilities, c.capabilities
    assert c.login("user", "pass")[0] == "OK"
    assert c.append("INBOX", None, None, MESSAGE.encode())[0] == "OK"
    typ, data = c.select("INBOX")
    assert typ == "OK" and data == [b"1"], data
    assert c.logout()[0] == "BYE"
    rec = record(work)
    verbs = [cmd.split(" ")[1] for cmd in rec["commands"]]
    assert verbs == ["CAPABILITY", "CAPABILITY", "LOGIN", "APPEND", "SELECT", "LOGOUT"], rec["commands"]
    assert rec["appended"] == [MESSAGE] and rec["user"] == "user" and rec["end"] == "logout"
    srv.wait_for(rf"^{PROG}: tls \d+ TLSv1\.3 ")


def test_s_client_starttls_imap(work, tss, qmail_pem, pki, need):
    openssl = need("openssl")
    srv = imap_server(work, tss, qmail_pem)
    rc, out = work.procs.run([openssl, "s_client", "-starttls", "imap", "-connect", f"127.0.0.1:{srv.port}",
                              "-CAfile", pki / "ca.pem", "-verify_return_error", "-servername", "localhost",
                              "-quiet"], input=b"a LOGIN user pass\r\nb SELECT INBOX\r\nc LOGOUT\r\n",
                             name="s_client")
    assert rc == 0, out
    assert "a OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] LOGIN completed" in out, out
    assert "b OK [READ-WRITE] SELECT completed" in out and "c OK LOGOUT" in out, out
    rec = record(work)
    assert [c.split(" ", 1)[1] for c in rec["commands"]] == ["CAPABILITY", "LOGIN user ****", "SELECT INBOX",
                                                            "LOGOUT"], rec["commands"]


def test_curl_imap_append(work, tss, qmail_pem, pki, need, tmp_path):
    curl = need("curl")
    srv = imap_server(work, tss, qmail_pem, opts=("-E",))
    msg = tmp_path / "m.eml"
    msg.write_bytes(MESSAGE.encode())
    rc, out = work.procs.run([curl, "-sS", "--ssl-reqd", "--cacert", pki / "ca.pem",
                              "--resolve", f"localhost:{srv.port}:127.0.0.1", "-u", "user:pass",
                              f"imap://localhost:{srv.port}/INBOX", "-T", msg], name="curl")
    assert rc == 0, out
    rec = record(work)
    assert rec["appended"] == [MESSAGE], rec
    assert not [c for c in rec["commands"] if "STARTTLS" in c.upper()], rec["commands"]
    srv.wait_for(rf"^{PROG}: tls \d+ TLSv1\.3 ")


def test_s1_pipelined_after_starttls(work, tss, qmail_pem):
    srv = imap_server(work, tss, qmail_pem)
    s, greeting = raw(srv.port)
    assert b"STARTTLS" in greeting
    s.sendall(b"a STARTTLS\r\nb NOOP\r\n")
    data, how = read_to_close(s)
    assert data == b"a BAD plaintext pipelined after STARTTLS, closing\r\n", (data, how)
    assert how in ("eof", "reset"), how
    srv.wait_for(rf"^{PROG}: proxy \d+ injection: ")
    srv.end_of()
    assert record(work, done=False)["commands"] == []      # neither line reached the program


def test_s5_logindisabled_before_tls(work, tss, qmail_pem, pki):
    srv = imap_server(work, tss, qmail_pem, opts=("-E",))
    s, greeting = raw(srv.port)
    assert greeting == b"* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN STARTTLS LOGINDISABLED] host ready\r\n"
    s.sendall(b"a CAPABILITY\r\n")
    assert tagged(s, b"a") == (b"* CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN STARTTLS LOGINDISABLED\r\n"
                               b"a OK CAPABILITY completed\r\n")
    s.sendall(b"b LOGIN user pass\r\n")
    assert tagged(s, b"b").startswith(b"b NO [PRIVACYREQUIRED]")
    # A refused LOGIN's literal is not read as a command either.
    s.sendall(b"c LOGIN user {12+}\r\nd STARTTLS\r\n\r\n")
    assert tagged(s, b"c").startswith(b"c NO [PRIVACYREQUIRED]")
    t = tls(s, pki)
    t.sendall(b"e CAPABILITY\r\n")
    assert tagged(t, b"e") == b"* CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN\r\ne OK CAPABILITY completed\r\n"
    t.sendall(b"f LOGIN user pass\r\n")
    assert tagged(t, b"f") == b"f OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] LOGIN completed\r\n"
    t.sendall(b"g STARTTLS\r\n")
    assert tagged(t, b"g").startswith(b"g BAD")            # S4: TLS already on
    t.sendall(b"h LOGOUT\r\n")
    assert tagged(t, b"h").endswith(b"h OK LOGOUT completed\r\n")
    assert [c.split(" ", 1)[1] for c in record(work)["commands"]] == ["CAPABILITY", "CAPABILITY", "LOGIN user ****",
                                                                     "LOGOUT"]


def test_literal_holding_starttls_is_data(work, tss, qmail_pem, pki):
    srv = imap_server(work, tss, qmail_pem)
    s, _ = raw(srv.port)
    # Before login, a synchronizing literal (the password) holding a STARTTLS line:
    # sent once the program asked for it, and data to it.
    s.sendall(b"a LOGIN user {12}\r\n")
    assert read_until(s, rb"^\+ [^\r\n]*\r\n") == b"+ Ready for literal data\r\n"
    s.sendall(b"b STARTTLS\r\n\r\n")
    assert tagged(s, b"a") == b"a NO [AUTHENTICATIONFAILED] wrong password\r\n"
    # A non-synchronizing literal in the same segment as its command.
    s.sendall(b"c LOGIN user {12+}\r\nd STARTTLS\r\n\r\n")
    assert tagged(s, b"c") == b"c NO [AUTHENTICATIONFAILED] wrong password\r\n"
    # STARTTLS itself still works, and after login literals go on being data.
    t = tls(s, pki, b"e")
    t.sendall(b"f LOGIN user pass\r\n")
    assert tagged(t, b"f").startswith(b"f OK")
    t.sendall(b"g APPEND INBOX {12}\r\n")
    assert read_until(t, rb"^\+ [^\r\n]*\r\n") == b"+ Ready for literal data\r\n"
    t.sendall(b"h STARTTLS\r\n\r\n")
    assert tagged(t, b"g") == b"g OK [APPENDUID 1 1] APPEND completed\r\n"
    t.sendall(b"i APPEND INBOX {12+}\r\nj STARTTLS\r\n\r\nk LOGOUT\r\n")
    out = tagged(t, b"k")
    assert out == (b"i OK [APPENDUID 1 2] APPEND completed\r\n* BYE host logging out\r\n"
                   b"k OK LOGOUT completed\r\n"), out
    rec = record(work)
    assert rec["commands"] == ["a LOGIN user ****", "c LOGIN user ****", "f LOGIN user ****", "g APPEND INBOX {12}",
                               "i APPEND INBOX {12}", "k LOGOUT"], rec["commands"]
    assert rec["appended"] == ["h STARTTLS\r\n", "j STARTTLS\r\n"], rec["appended"]


def test_tags_that_cannot_be_tracked(work, tss, qmail_pem):
    """Commands with tags of 64 bytes or more, "*" or "+" are answered "* BAD" by the
    proxy and never reach the program; more of them than the proxy's queue holds
    (64) leave the session working (they once filled it and the session hung)."""
    srv = imap_server(work, tss, qmail_pem)
    s, _ = raw(srv.port)
    long_tag = b"t" * 64
    s.sendall(b"".join(long_tag + b"%d NOOP\r\n" % i for i in range(70)) + b"* NOOP\r\n+ NOOP\r\na NOOP\r\n")
    out = tagged(s, b"a")
    assert out == b"* BAD invalid or overlong command tag\r\n" * 72 + b"a OK NOOP completed\r\n", out
    s.sendall(b"b LOGOUT\r\n")
    assert tagged(s, b"b").endswith(b"b OK LOGOUT completed\r\n")
    assert record(work)["commands"] == ["a NOOP", "b LOGOUT"]
