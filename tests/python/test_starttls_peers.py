"""The STARTTLS client helpers of mailtls against the real Postfix (SMTP) and
Dovecot (POP3 STLS, IMAP STARTTLS) of the interop tests (tests/interop/peers.py:
private instances on free loopback ports, the test PKI's server-ec certificate
for localhost).  A missing server, or not being root for Postfix, skips (fails
under CI)."""
import socket

import pytest

import mailtls
from peers import dovecot, instdir, postfix  # noqa: F401 (fixtures)


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=20)


def test_postfix_smtp_starttls(postfix, client_config):
    mark = postfix.proc.mark()
    with connect(postfix.ports["tls"]) as sock:
        with mailtls.smtp_starttls(sock, client_config, "localhost", ehlo_name="client.test.example",
                                   timeout=20) as s:
            info = s.starttls_info
            assert info.greeting_code == 220 and info.ehlo_code == 250 and info.starttls_code == 220
            assert info.has_capability("STARTTLS") and info.has_capability("PIPELINING")
            assert not info.used_helo
            assert s.peer_verified and s.servername == "localhost"
            protocol, cipher = s.protocol, s.cipher
            assert s.smtp_ehlo("client.test.example") == 250
            assert not s.starttls_info.has_capability("STARTTLS")
            s.sendall(b"MAIL FROM:<a@mx.test.example>\r\nRCPT TO:<nobody@mx.test.example>\r\nQUIT\r\n")
            replies = b""
            while b"221" not in replies:
                chunk = s.read()
                if not chunk:
                    break
                replies += chunk
            assert replies.startswith(b"250") and b"221" in replies
    m = postfix.wait_log(r"TLS connection established from localhost\[127\.0\.0\.1\]: (TLSv1\.[23]) "
                         r"with cipher (\S+)", since=mark)
    assert m, postfix.log(mark)
    assert (m.group(1), m.group(2)) == (protocol, cipher)


def test_postfix_not_offered_and_wrong_name(postfix, client_config):
    with connect(postfix.ports["plain"]) as sock:
        with pytest.raises(mailtls.StartTLSUnavailable) as ei:
            mailtls.smtp_starttls(sock, client_config, "localhost", timeout=20)
        assert not ei.value.refused and ei.value.info.ehlo_code == 250
        sock.sendall(b"QUIT\r\n")                  # nothing was read past the EHLO reply
        assert sock.recv(100).startswith(b"221")
    with connect(postfix.ports["tls"]) as sock:
        with pytest.raises(mailtls.VerifyNameError):
            mailtls.smtp_starttls(sock, client_config, "mx.other.example", timeout=20)


def test_dovecot_pop3_stls(dovecot, client_config):
    with connect(dovecot.ports["pop3"]) as sock:
        with mailtls.pop3_starttls(sock, client_config, "localhost", timeout=20) as s:
            assert s.starttls_info.starttls_code == 200 and "STLS" in s.starttls_info.capabilities
            assert s.peer_verified
            s.sendall(b"USER someone\r\n")
            assert s.read().startswith(b"+OK")
            s.sendall(b"PASS secret\r\n")
            assert s.read().startswith(b"+OK")
            s.sendall(b"QUIT\r\n")
            assert s.read().startswith(b"+OK")


def test_dovecot_imap_starttls(dovecot, client_config):
    with connect(dovecot.ports["imap"]) as sock:
        with mailtls.imap_starttls(sock, client_config, "localhost", timeout=20) as s:
            assert "STARTTLS" in s.starttls_info.capabilities and s.peer_verified
            s.sendall(b"a1 LOGIN someone secret\r\n")
            got = b""
            while b"a1 " not in got:
                got += s.read()
            assert b"a1 OK" in got
            s.sendall(b"a2 LOGOUT\r\n")


def test_dovecot_implicit_tls(dovecot, client_config):
    with connect(dovecot.ports["imaps"]) as sock:
        with mailtls.wrap_client(sock, client_config, "localhost", timeout=20) as s:
            assert s.read().startswith(b"* OK") and s.peer_verified
