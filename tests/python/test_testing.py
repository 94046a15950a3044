"""mailtls.testing as a user's suite would use it: a throwaway CA and the
loopback mail server, with Python's smtplib, poplib and imaplib as the clients
under test (implicit TLS and STARTTLS); the STARTTLS server side is the
library's proxy, implicit TLS its relay."""
import imaplib
import poplib
import smtplib
import ssl

import pytest

import mailtls
import mailtls.testing as mt

MSG = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: test\r\n\r\nhello\r\n.leading dot\r\n"


@pytest.fixture(scope="module")
def ca():
    with mt.CA() as ca:
        yield ca


def test_smtp_starttls(ca):
    with mt.MailServer("smtp", ca.server_config(), tls="starttls", require_tls=True) as srv:
        with smtplib.SMTP("localhost", srv.port, timeout=20) as smtp:
            smtp.ehlo()
            assert smtp.has_extn("starttls")
            with pytest.raises(smtplib.SMTPSenderRefused):
                smtp.sendmail("a@example.org", ["b@example.org"], MSG)     # TLS required first
            smtp.starttls(context=ca.ssl_context())
            smtp.ehlo()
            assert not smtp.has_extn("starttls")
            smtp.sendmail("a@example.org", ["b@example.org", "c@example.org"], MSG)
        assert len(srv.messages) == 1
        m = srv.messages[0]
        assert m.mail_from == "a@example.org" and m.rcpt_to == ["b@example.org", "c@example.org"]
        assert m.data == MSG
        assert m.tls["protocol"] == "TLSv1.3" and m.tls["servername"] == "localhost"


def test_smtps_implicit_with_client_certificate(ca):
    with mt.MailServer("smtp", ca.server_config(verify_clients=True), tls="implicit") as srv:
        ctx = ca.ssl_context()
        kp = ca.issue("client.example")
        ctx.load_cert_chain(str(kp.certfile), str(kp.keyfile))
        with smtplib.SMTP_SSL("localhost", srv.port, context=ctx, timeout=20) as smtp:
            smtp.sendmail("x@example.org", ["y@example.org"], b"Subject: s\r\n\r\nbody\r\n")
        assert srv.messages[0].tls["peer_verified"]
        assert "client.example" in srv.messages[0].tls["peer_subject"]


def test_smtp_bad_certificate_seen_by_client(ca):
    with mt.CA() as other, mt.MailServer("smtp", other.server_config(), tls="implicit") as srv:
        with pytest.raises(ssl.SSLCertVerificationError):
            smtplib.SMTP_SSL(srv.host, srv.port, context=ca.ssl_context(), timeout=20)


def test_pop3_stls_and_pop3s(ca):
    box = [b"Subject: one\r\n\r\nfirst\r\n", b"Subject: two\r\n\r\n.dotted\r\n"]
    with mt.MailServer("pop3", ca.server_config(), tls="starttls", mailbox=box) as srv:
        pop = poplib.POP3(srv.host, srv.port, timeout=20)
        assert "STLS" in pop.capa()
        pop.stls(context=ca.ssl_context())
        pop.user("user")
        pop.pass_("secret")
        assert pop.stat() == (2, sum(map(len, box)))
        assert b"\r\n".join(pop.retr(2)[1]) + b"\r\n" == box[1]
        pop.quit()
        assert srv.connections[0].tls["protocol"].startswith("TLSv1.")
    with mt.MailServer("pop3", ca.server_config(), tls="implicit", mailbox=box) as srv:
        pop = poplib.POP3_SSL(srv.host, srv.port, context=ca.ssl_context(), timeout=20)
        pop.user("user")
        pop.pass_("secret")
        assert b"first" in pop.retr(1)[1]
        pop.quit()


def test_imap_starttls_and_imaps(ca):
    box = [b"Subject: imap\r\n\r\nover imap\r\n"]
    with mt.MailServer("imap", ca.server_config(), tls="starttls", mailbox=box, require_tls=True) as srv:
        imap = imaplib.IMAP4(srv.host, srv.port, timeout=20)
        assert "STARTTLS" in imap.capabilities and "LOGINDISABLED" in imap.capabilities
        imap.starttls(ssl_context=ca.ssl_context())
        assert "STARTTLS" not in imap.capabilities
        imap.login("user", "secret")
        typ, data = imap.select("INBOX")
        assert typ == "OK" and data == [b"1"]
        typ, data = imap.fetch("1", "(RFC822)")
        assert typ == "OK" and data[0][1] == box[0]
        imap.logout()
    with mt.MailServer("imap", ca.server_config(), tls="implicit", mailbox=box) as srv:
        imap = imaplib.IMAP4_SSL(srv.host, srv.port, ssl_context=ca.ssl_context(), timeout=20)
        assert imap.login("user", "secret")[0] == "OK"
        imap.logout()


def test_mailtls_clients_against_the_test_server(ca):
    """The STARTTLS helpers of mailtls as the clients (the server is the proxy)."""
    import socket
    with mt.MailServer("smtp", ca.server_config(), tls="starttls") as srv:
        with ca.client_config() as cc, socket.create_connection((srv.host, srv.port), timeout=20) as sock:
            s = mailtls.smtp_starttls(sock, cc, "localhost", ehlo_name="client.test", timeout=20)
            assert s.starttls_info.has_capability("STARTTLS") and s.peer_verified
            assert s.smtp_ehlo("client.test") == 250
            assert not s.starttls_info.has_capability("STARTTLS")
            s.sendall(b"QUIT\r\n")
            assert s.read().startswith(b"221")
            s.close()
    with mt.MailServer("pop3", ca.server_config(), tls="starttls") as srv:
        with ca.client_config() as cc, socket.create_connection((srv.host, srv.port)) as sock:
            with mailtls.pop3_starttls(sock, cc, "localhost", timeout=20) as s:
                assert s.starttls_info.starttls_code == 200
    with mt.MailServer("imap", ca.server_config(), tls="starttls") as srv:
        with ca.client_config() as cc, socket.create_connection((srv.host, srv.port)) as sock:
            with mailtls.imap_starttls(sock, cc, "localhost", timeout=20) as s:
                assert "STARTTLS" in s.starttls_info.capabilities
    with mt.MailServer("smtp", tls="none") as srv:
        with ca.client_config() as cc, socket.create_connection((srv.host, srv.port)) as sock:
            with pytest.raises(mailtls.StartTLSUnavailable):
                mailtls.smtp_starttls(sock, cc, "localhost", timeout=20)
