"""tcpserver-ssl -e smtp|pop3 (the STARTTLS protocol proxy) with real STARTTLS clients.

The programs are the plain stand-ins standins/fake-qmail-smtpd and fake-qmail-popup,
which know nothing of TLS (qmail-popup has no CAPA): the proxy adds STARTTLS / STLS,
answers it, runs the handshake and keeps relaying.  Clients: swaks --tls (verified
against the test CA), openssl s_client -starttls smtp|pop3, curl --ssl-reqd, Python's
smtplib and poplib, and raw sockets for the attacks of the NO STARTTLS study: S1
(plaintext pipelined after STARTTLS: one 503, closed, nothing reaches the program),
S3 (state after TLS: EHLO again; RCPT without MAIL refused by the program thanks to
the proxy's RSET), S4 (STARTTLS mid-transaction and a second STARTTLS refused), S5
(-E: AUTH and MAIL before TLS get 530; -A hides AUTH); for POP3 curl --ssl-reqd pop3://,
USER sent before the greeting refused under -E, and the proxy's own CAPA answer
(before TLS with STLS, after it without).  IMAP: test_tcpserver_proxy_imap.py.

Fixtures and helpers from conftest.py and tss_util.py.  Environment:
MAILTLS_TCPSERVER_SSL (set by ctest), MAILTLS_TEST_PKI, CI (a missing peer fails).
"""
import poplib
import re
import smtplib
import socket
import ssl
import time

import pytest  # noqa: F401

from tss_util import (POPUP, PROG, SMTPD, WAIT, ctx_ca, qmail_pem, read_to_close, read_until,  # noqa: F401
                      reply, tls_log_line, tss, tss_server, user, work)


def smtp_server(work, tss, pem, opts=()):
    return tss_server(work, tss, ["-v", "-l0", "-HR", "-e", "smtp", "-n", str(pem), *opts], [SMTPD, "host"])


def pop3_server(work, tss, pem, opts=()):
    return tss_server(work, tss, ["-v", "-l0", "-HR", "-e", "pop3", "-n", str(pem), *opts],
                      [POPUP, "host", "/bin/true", "qmail-pop3d", "Maildir"])


def program_commands(work):
    """The commands in the program's record: written at its start, saved with each
    command before the answer (standins/fake-qmail-smtpd), so it is there and holds every
    command the client saw answered, even when the program was killed right after."""
    [rec] = work.wait_records(1, done=False)
    return rec["commands"]


def commands(work, n=1):
    """The program's commands once its record holds |n| of them (it saves after each)."""
    deadline = time.monotonic() + WAIT
    while True:
        recs = work.records()
        if recs and len(recs[0].get("commands", [])) >= n or time.monotonic() > deadline:
            return recs[0].get("commands") if recs else None
        time.sleep(0.05)


def raw(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    assert reply(s) == b"220 host ESMTP\r\n"
    return s


def ehlo(sock, name=b"raw.example"):
    sock.sendall(b"EHLO " + name + b"\r\n")
    return reply(sock)


def test_swaks_starttls(work, tss, qmail_pem, pki, need):
    swaks = need("swaks")
    srv = smtp_server(work, tss, qmail_pem)
    rc, out = work.procs.run([swaks, "--tls", "--server", f"127.0.0.1:{srv.port}", "--tls-verify",
                              "--tls-ca-path", pki / "ca.pem", "--ehlo", "client.example",
                              "--from", "sender@example.org", "--to", "rcpt@example.org",
                              "--body", "hello from swaks"], name="swaks")
    assert rc == 0, out
    assert "TLS started" in out, out
    rec = work.wait_records(1)[0]
    assert rec["commands"][:3] == ["EHLO client.example", "RSET", "EHLO client.example"], rec["commands"]
    assert len(rec["messages"]) == 1 and "hello from swaks" in rec["messages"][0]["data"]
    srv.wait_for(rf"^{PROG}: tls \d+ TLSv1\.3 ")
    # The program's environment was made before TLS: no SSL_* there.
    assert not [k for k in rec["env"] if k.startswith("SSL_")], rec["env"]


def test_smtplib_starttls(work, tss, qmail_pem, pki):
    srv = smtp_server(work, tss, qmail_pem)
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=WAIT) as c:
        c.ehlo("client.example")
        assert c.has_extn("starttls")
        c._host = "localhost"              # the name smtplib verifies
        c.starttls(context=ctx_ca(pki))
        c.ehlo("client.example")
        assert not c.has_extn("starttls")
        c.sendmail("a@example.org", ["b@example.org"], "Subject: x\r\n\r\nSTARTTLS\r\n.line\r\n")
    rec = work.wait_records(1)[0]
    assert rec["messages"][0]["data"] == "Subject: x\r\n\r\nSTARTTLS\r\n.line\r\n", rec


def test_s_client_starttls_smtp(work, tss, qmail_pem, pki, need):
    openssl = need("openssl")
    srv = smtp_server(work, tss, qmail_pem)
    rc, out = work.procs.run([openssl, "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{srv.port}",
                              "-CAfile", pki / "ca.pem", "-verify_return_error", "-servername", "localhost",
                              "-quiet"], input=b"EHLO x\r\nQUIT\r\n", name="s_client")
    assert rc == 0, out
    assert "250-STARTTLS" not in out and "221 host" in out, out


def test_curl_smtp(work, tss, qmail_pem, pki, need, tmp_path):
    curl = need("curl")
    srv = smtp_server(work, tss, qmail_pem)
    msg = tmp_path / "m.txt"
    msg.write_text("Subject: curl\r\n\r\nhello curl\r\n")
    rc, out = work.procs.run([curl, "-sS", "--ssl-reqd", "--cacert", pki / "ca.pem",
                              "--resolve", f"localhost:{srv.port}:127.0.0.1",
                              f"smtp://localhost:{srv.port}", "--mail-from", "a@example.org",
                              "--mail-rcpt", "b@example.org", "-T", msg], name="curl")
    assert rc == 0, out
    assert "hello curl" in work.wait_records(1)[0]["messages"][0]["data"]


def test_s1_pipelined_after_starttls(work, tss, qmail_pem):
    srv = smtp_server(work, tss, qmail_pem)
    s = raw(srv.port)
    assert ehlo(s).endswith(b"250 STARTTLS\r\n")
    s.sendall(b"STARTTLS\r\nRSET\r\n")
    data, how = read_to_close(s)
    assert data == b"503 5.5.1 Plaintext pipelined after STARTTLS, closing\r\n", (data, how)
    srv.wait_for(rf"^{PROG}: proxy \d+ injection: ")
    assert srv.end_of()[1] == 111 << 8                # the child exits 111 for a refused session
    # The EHLO it answered, and no RSET; to the program the client hung up: it saw the
    # end of its input and ended on its own (no signal).
    [rec] = work.wait_records(1)
    assert rec["commands"] == ["EHLO raw.example"] and rec["end"] == "eof", rec


def test_s1_ehlo_starttls_mail_in_one_segment(work, tss, qmail_pem):
    srv = smtp_server(work, tss, qmail_pem)
    s = raw(srv.port)
    s.sendall(b"EHLO x\r\nSTARTTLS\r\nMAIL FROM:<a@b>\r\n")
    data, how = read_to_close(s)
    assert data.endswith(b"250 STARTTLS\r\n503 5.5.1 Plaintext pipelined after STARTTLS, closing\r\n"), data
    srv.end_of()
    assert program_commands(work) == ["EHLO x"]


def tls_after_starttls(sock, pki):
    sock.sendall(b"STARTTLS\r\n")
    assert reply(sock) == b"220 2.0.0 Ready to start TLS\r\n"
    return ctx_ca(pki).wrap_socket(sock, server_hostname="localhost")


def test_s3_s4_state_after_tls(work, tss, qmail_pem, pki):
    srv = smtp_server(work, tss, qmail_pem)
    s = raw(srv.port)
    ehlo(s)
    t = tls_after_starttls(s, pki)
    t.sendall(b"RCPT TO:<b@example.org>\r\n")
    assert reply(t).startswith(b"503 5.5.1")           # EHLO first
    r = ehlo(t)
    assert b"STARTTLS" not in r and r.startswith(b"250-host\r\n"), r
    t.sendall(b"RCPT TO:<b@example.org>\r\n")
    assert reply(t) == b"503 MAIL first (#5.5.1)\r\n"   # from the program
    t.sendall(b"STARTTLS\r\n")
    assert reply(t).startswith(b"503 ")                 # S4: a second STARTTLS
    t.sendall(b"QUIT\r\n")
    assert reply(t) == b"221 host\r\n"
    rec = work.wait_records(1)[0]
    assert rec["commands"] == ["EHLO raw.example", "RSET", "EHLO raw.example", "RCPT TO:<b@example.org>",
                               "QUIT"], rec["commands"]


def test_s4_starttls_in_transaction(work, tss, qmail_pem):
    srv = smtp_server(work, tss, qmail_pem)
    s = raw(srv.port)
    ehlo(s)
    s.sendall(b"MAIL FROM:<a@example.org>\r\n")
    assert reply(s) == b"250 ok\r\n"
    s.sendall(b"STARTTLS\r\n")
    assert reply(s).startswith(b"503 5.5.1")


def test_s5_require_tls_hide_auth(work, tss, qmail_pem):
    srv = smtp_server(work, tss, qmail_pem, opts=("-E", "-A"))
    s = raw(srv.port)
    assert b"AUTH" not in ehlo(s)
    s.sendall(b"AUTH PLAIN AGEAYg==\r\n")
    assert reply(s).startswith(b"530 5.7.0")
    s.sendall(b"MAIL FROM:<a@example.org>\r\n")
    assert reply(s).startswith(b"530 5.7.0")
    s.sendall(b"NOOP\r\n")
    assert reply(s) == b"250 ok\r\n"
    assert commands(work, 2) == ["EHLO raw.example", "NOOP"]


def test_poplib_stls(work, tss, qmail_pem, pki):
    srv = pop3_server(work, tss, qmail_pem, opts=("-E",))
    c = poplib.POP3("127.0.0.1", srv.port, timeout=WAIT)
    caps = c.capa()
    assert "STLS" in caps, caps                        # answered by the proxy: qmail-popup has no CAPA
    try:
        c.user("user")
        raise AssertionError("USER accepted before TLS under -E")
    except poplib.error_proto as e:
        assert str(e).startswith("b'-ERR")
    c.stls(context=ctx_ca(pki))
    assert "STLS" not in c.capa()
    c.user("user")
    c.pass_("pass")
    assert c.stat()[0] == 2
    c.quit()


def test_s1_pop3(work, tss, qmail_pem):
    srv = pop3_server(work, tss, qmail_pem)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT)
    assert read_until(s, rb"^\+OK [^\r\n]*\r\n").startswith(b"+OK <")
    s.sendall(b"STLS\r\nCAPA\r\n")
    data, how = read_to_close(s)
    assert data.startswith(b"-ERR") and data.count(b"\r\n") == 1, data


def test_s_client_starttls_pop3(work, tss, qmail_pem, pki, need):
    openssl = need("openssl")
    srv = pop3_server(work, tss, qmail_pem)
    rc, out = work.procs.run([openssl, "s_client", "-starttls", "pop3", "-connect", f"127.0.0.1:{srv.port}",
                              "-CAfile", pki / "ca.pem", "-verify_return_error", "-servername", "localhost",
                              "-quiet"], input=b"USER user\r\nPASS pass\r\nSTAT\r\nQUIT\r\n", name="s_client")
    assert "+OK 2 " in out, out


def test_curl_pop3(work, tss, qmail_pem, pki, need):
    curl = need("curl")
    srv = pop3_server(work, tss, qmail_pem, opts=("-E",))
    rc, out = work.procs.run([curl, "-sS", "--ssl-reqd", "--cacert", pki / "ca.pem",
                              "--resolve", f"localhost:{srv.port}:127.0.0.1", "-u", "user:pass",
                              f"pop3://localhost:{srv.port}/2"], name="curl")
    assert rc == 0, out
    assert out.endswith("Subject: second\r\n\r\n.leading dot\r\nbye\r\n"), out    # unstuffed by curl
    rec = work.wait_records(1)[0]
    assert rec["retrieved"] == [2] and rec["auth"] == "apop", rec          # curl uses the greeting's timestamp
    # curl's CAPA before TLS reached qmail-popup (which refused it; the proxy answered).
    assert rec["commands"][0] == "CAPA" and "STLS" not in rec["commands"], rec["commands"]
    srv.wait_for(rf"^{PROG}: tls \d+ TLSv1\.3 ")


def pop3_raw(port):
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT)


def pop3_stls(sock, pki):
    sock.sendall(b"STLS\r\n")
    assert read_until(sock, rb"^\+OK[^\r\n]*\r\n") == b"+OK Begin TLS negotiation\r\n"
    return ctx_ca(pki).wrap_socket(sock, server_hostname="localhost")


def test_pop3_require_tls_before_greeting(work, tss, qmail_pem, pki):
    srv = pop3_server(work, tss, qmail_pem, opts=("-E",))
    s = pop3_raw(srv.port)
    s.sendall(b"USER user\r\n")            # before the greeting was read (or even sent)
    data = read_until(s, rb"^-ERR[^\r\n]*\r\n")
    assert re.fullmatch(rb"\+OK <[^>]+>\r\n-ERR TLS required: use STLS first\r\n", data), data
    s.sendall(b"PASS pass\r\n")
    assert read_until(s, rb"^-ERR[^\r\n]*\r\n").startswith(b"-ERR TLS required")
    t = pop3_stls(s, pki)
    t.sendall(b"USER user\r\n")
    assert read_until(t, rb"^[+-][^\r\n]*\r\n") == b"+OK \r\n"
    t.sendall(b"PASS pass\r\nQUIT\r\n")
    assert read_until(t, rb"^\+OK \r\n\+OK \r\n") == b"+OK \r\n+OK \r\n"
    rec = work.wait_records(1)[0]
    assert rec["commands"] == ["USER user", "PASS ****", "QUIT"], rec["commands"]


def test_pop3_capa_answered_by_proxy(work, tss, qmail_pem, pki):
    srv = pop3_server(work, tss, qmail_pem)
    s = pop3_raw(srv.port)
    assert read_until(s, rb"^\+OK [^\r\n]*\r\n").startswith(b"+OK <")
    s.sendall(b"CAPA\r\n")
    assert read_until(s, rb"^\.\r\n") == b"+OK Capability list follows\r\nSTLS\r\nUSER\r\n.\r\n"
    t = pop3_stls(s, pki)
    t.sendall(b"CAPA\r\n")
    assert read_until(t, rb"^\.\r\n") == b"+OK Capability list follows\r\nUSER\r\n.\r\n"
    t.sendall(b"STLS\r\n")
    assert read_until(t, rb"^-ERR[^\r\n]*\r\n") == b"-ERR TLS already active\r\n"   # S4
    t.sendall(b"QUIT\r\n")
    assert read_until(t, rb"^\+OK[^\r\n]*\r\n") == b"+OK \r\n"
    # Both CAPAs reached qmail-popup, whose -ERR the proxy replaced; no STLS did.
    assert work.wait_records(1)[0]["commands"] == ["CAPA", "CAPA", "QUIT"]


def test_overlong_command_line_before_tls(work, tss, qmail_pem):
    srv = smtp_server(work, tss, qmail_pem)
    s = raw(srv.port)
    s.sendall(b"EHLO " + b"x" * 1100 + b"\r\n")
    data, how = read_to_close(s)
    assert data == b"500 5.5.2 Line too long\r\n", (data, how)
    srv.wait_for(rf"^{PROG}: proxy \d+ protocol: ")      # not "injection"
    assert program_commands(work) == []


def test_strict_sni(work, tss, qmail_pem, pki):
    """-N with -e: after STARTTLS, a handshake whose SNI names a configured keypair
    gets that one; one naming none fails (unrecognized_name), and the program got
    nothing but the plaintext EHLO: no fallback, nothing in the clear."""
    env = work.env(**{"CERTFILE:a.test.example": str(pki / "sni-a.pem"),
                      "KEYFILE:a.test.example": str(pki / "sni-a.key")})
    srv = tss_server(work, tss, ["-v", "-l0", "-HR", "-e", "smtp", "-N", "-n", str(qmail_pem)], [SMTPD, "host"],
                     env=env)
    s = raw(srv.port)
    ehlo(s)
    s.sendall(b"STARTTLS\r\n")
    assert reply(s) == b"220 2.0.0 Ready to start TLS\r\n"
    t = ctx_ca(pki).wrap_socket(s, server_hostname="a.test.example")
    assert dict(x[0] for x in t.getpeercert()["subject"])["commonName"] == "a.test.example"
    t.sendall(b"EHLO a\r\n")
    assert b"STARTTLS" not in reply(t)
    t.close()
    pid, _ = srv.end_of()
    assert tls_log_line(srv, pid)[2] == "a.test.example"

    mark = srv.mark()
    s = raw(srv.port)
    ehlo(s)
    s.sendall(b"STARTTLS\r\n")
    assert reply(s) == b"220 2.0.0 Ready to start TLS\r\n"
    ctx = ctx_ca(pki)
    ctx.check_hostname = False
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
        ctx.wrap_socket(s, server_hostname="other.example")
    pid, status = srv.end_of(since=mark)
    assert re.search(rf"^{PROG}: tls failed {pid} ", srv.text(mark), re.M), srv.text(mark)
    assert status == 111 << 8
    cmds = sorted(r["commands"] for r in work.wait_records(2, done=False))
    assert cmds == [["EHLO raw.example"], ["EHLO raw.example", "RSET", "EHLO a"]], cmds
