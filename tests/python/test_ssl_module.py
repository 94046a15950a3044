"""Python's ssl module (OpenSSL) and mailtls (BoringSSL) in one process: a real
handshake with data both ways, an ssl client against a mailtls server and a
mailtls client against an ssl server.  The extension modules are loaded
RTLD_LOCAL, so the two libraries' equal symbol names do not meet
(shared/reference/boringssl.md); this test is the proof."""
import ssl
from pathlib import Path

import mailtls
from conftest import in_thread


def maps():
    return Path("/proc/self/maps").read_text()


def test_both_libraries_are_loaded():
    m = maps()
    assert "libssl.so.3" in m and "libcrypto.so.3" in m, "Python's ssl module did not load OpenSSL"
    assert "/android/libssl.so" in m or "libmailtls" in m


def test_ssl_client_mailtls_server(server_config, pki, sockpair):
    a, b = sockpair
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    s = mailtls.Session.server(server_config, a)
    j = in_thread(s.handshake)
    with ctx.wrap_socket(b, server_hostname="localhost") as tls:
        j()
        assert tls.version() == s.protocol
        assert tls.cipher()[2] == s.cipher_bits
        tls.sendall(b"from OpenSSL")
        assert s.read() == b"from OpenSSL"
        s.sendall(b"from BoringSSL")
        assert tls.recv(100) == b"from BoringSSL"
        s.close_notify()
        assert tls.recv(100) == b""
    s.close()


def test_mailtls_client_ssl_server(client_config, pki, sockpair):
    a, b = sockpair
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki / "server-rsa.pem"), str(pki / "server-rsa.key"))

    def serve():
        with ctx.wrap_socket(a, server_side=True) as tls:
            data = tls.recv(100)
            tls.sendall(data.upper())
            return tls.version()
    j = in_thread(serve)
    with mailtls.Session.client(client_config, b, "localhost") as c:
        c.handshake()
        assert c.peer_verified and c.peer_cn == "localhost"
        c.sendall(b"hello openssl")
        assert c.read() == b"HELLO OPENSSL"
        assert j() == c.protocol
