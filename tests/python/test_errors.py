"""Each exception class of mailtls raised by a real cause: bad keys, unknown CA,
wrong name, expired and self-signed certificates, pins, the hook, a missing
client certificate, truncation, timeouts, system errors, TLS failures, mail
protocol errors, injection, usage errors, want codes."""
import builtins
import errno
import os
import socket

import pytest

import mailtls
from conftest import handshake_both, in_thread, memory_handshake

raw = mailtls.mailtls_raw


def client_error(server_cfg, client_cfg, servername="localhost"):
    s = mailtls.Session.server(server_cfg)
    c = mailtls.Session.client(client_cfg, None, servername)
    with pytest.raises(mailtls.Error) as ei:
        memory_handshake(s, c)
    return ei.value


def keyed(pki, name):
    return mailtls.Config(certfile=pki / f"{name}.pem", keyfile=pki / f"{name}.key")


def test_bad_key_is_config_error(pki):
    with pytest.raises(mailtls.ConfigError) as ei:
        mailtls.Config(certfile=pki / "server-ec.pem", keyfile=pki / "server-rsa.key")
    e = ei.value
    assert e.code == raw.MAILTLS_E_CONFIG and e.codename == "config" and e.temporary
    with pytest.raises(mailtls.ConfigError):
        mailtls.Config(certfile=pki / "garbage.pem", keyfile=pki / "server-ec.key")
    with pytest.raises(mailtls.ConfigError):
        mailtls.Config().add_ca_pem(b"not a certificate")


def test_unknown_ca(pki, client_config):
    e = client_error(keyed(pki, "unknown"), client_config)
    assert type(e) is mailtls.VerifyUntrustedError and isinstance(e, mailtls.VerifyError)
    assert e.temporary and e.code == raw.MAILTLS_E_VERIFY_UNTRUSTED


def test_wrong_name(pki, client_config):
    e = client_error(keyed(pki, "wrongname"), client_config)
    assert type(e) is mailtls.VerifyNameError
    e = client_error(keyed(pki, "server-ec"), client_config, servername="other.example")
    assert type(e) is mailtls.VerifyNameError


def test_expired_and_selfsigned(pki, client_config):
    assert type(client_error(keyed(pki, "expired"), client_config)) is mailtls.VerifyExpiredError
    assert type(client_error(keyed(pki, "selfsigned"), client_config)) is mailtls.VerifySelfSignedError


def test_pin_mismatch(server_config):
    with mailtls.Config() as cc:
        cc.add_pin("SHA256:" + "00" * 32)
        assert type(client_error(server_config, cc)) is mailtls.VerifyPinError


def test_hook_refusal_keeps_the_exception(server_config, client_config):
    class Nope(Exception):
        pass

    def hook(session, chain, result):
        raise Nope("not this one")
    client_config.set_verify_callback(hook)
    e = client_error(server_config, client_config)
    assert type(e) is mailtls.VerifyHookError and isinstance(e.__cause__, Nope)
    client_config.set_verify_callback(lambda s, ch, r: "refused by policy")
    e = client_error(server_config, client_config)
    assert type(e) is mailtls.VerifyHookError and "refused by policy" in str(e)


def test_no_client_certificate(pki, server_config, client_config):
    server_config.add_ca_pem((pki / "ca.pem").read_bytes())
    server_config.set_verify(mailtls.VERIFY_REQUIRE)
    s = mailtls.Session.server(server_config)
    c = mailtls.Session.client(client_config, None, "localhost")
    with pytest.raises(mailtls.Error):
        memory_handshake(s, c)
    with pytest.raises(mailtls.VerifyNoCertError):
        s.handshake()
    assert s.errcode == raw.MAILTLS_E_VERIFY_NOCERT


def test_truncation(server_config, client_config):
    a, b = socket.socketpair()
    s = mailtls.Session.server(server_config, a, own=True)
    c = mailtls.Session.client(client_config, b, "localhost")
    handshake_both(s, c)
    s._free()                     # gone without close_notify (and the socket closed)
    with pytest.raises(mailtls.TruncatedError) as ei:
        c.read()
    assert ei.value.temporary and ei.value.code == raw.MAILTLS_E_TRUNCATED
    c.close()
    b.close()


def test_timeout(server_config, client_config, sockpair):
    a, b = sockpair
    c = mailtls.Session.client(client_config, b, "localhost", timeout=1)
    with pytest.raises(mailtls.TimeoutError) as ei:
        c.handshake()             # nobody answers
    e = ei.value
    assert isinstance(e, builtins.TimeoutError) and isinstance(e, mailtls.Error)
    assert e.code == raw.MAILTLS_E_TIMEOUT and e.temporary and e.errno == errno.ETIMEDOUT


def test_system_error_is_oserror(client_config):
    r, w = os.pipe()
    c = mailtls.Session.client(client_config, (r, w), "localhost")
    os.close(r)
    os.close(w)
    with pytest.raises(OSError) as ei:
        c.handshake()
    assert isinstance(ei.value, mailtls.SystemCallError)
    assert ei.value.errno == errno.EBADF and ei.value.code == raw.MAILTLS_E_SYSTEM
    c.close()


def test_tls_failure(server_config, client_config):
    server_config.set_max_protocol(mailtls.TLS1_2)
    client_config.set_min_protocol(mailtls.TLS1_3)
    assert type(client_error(server_config, client_config)) is mailtls.TLSError


def scripted(sock, replies):
    """A fake mail server: sends each reply after reading one line (the first at once)."""
    f = sock.makefile("rb")
    for i, r in enumerate(replies):
        if i:
            f.readline()
        sock.sendall(r)


def test_protocol_error_and_injection_and_not_offered(client_config, sockpair):
    a, b = sockpair
    j = in_thread(scripted, a, [b"554 go away\r\n"])
    c = mailtls.Session.client(client_config, b, "localhost")
    with pytest.raises(mailtls.ProtocolError) as ei:
        c.starttls("smtp", timeout=5)
    j()
    assert ei.value.code == raw.MAILTLS_E_PROTOCOL and c.starttls_info.greeting_code == 554
    c.close()

    a, b = socket.socketpair()
    j = in_thread(scripted, a, [b"220 hi\r\n", b"250-x\r\n250 STARTTLS\r\n", b"220 go ahead\r\nINJECTED\r\n"])
    with pytest.raises(mailtls.InjectionError):
        mailtls.smtp_starttls(b, client_config, "localhost", timeout=5)
    j()

    a2, b2 = socket.socketpair()
    j = in_thread(scripted, a2, [b"220 hi\r\n", b"250-x\r\n250 PIPELINING\r\n"])
    with pytest.raises(mailtls.StartTLSUnavailable) as ei:
        mailtls.smtp_starttls(b2, client_config, "localhost", timeout=5)
    j()
    assert not ei.value.refused and "PIPELINING" in ei.value.info.capabilities
    assert b2.fileno() >= 0        # not owned: left open for plaintext
    for x in (a, b, a2, b2):
        x.close()


def test_usage_error(server_config):
    s = mailtls.Session.server(server_config)
    with pytest.raises(mailtls.UsageError) as ei:
        s.relay(0, 1)                       # the relay refuses a memory session
    assert isinstance(ei.value, ValueError) and not ei.value.temporary
    s.close()
    with pytest.raises(mailtls.UsageError):
        s.read()                            # closed


def test_want_write(server_config, client_config, sockpair):
    a, b = sockpair
    s, c = (mailtls.Session.server(server_config, a), mailtls.Session.client(client_config, b, "localhost"))
    handshake_both(s, c)
    b.setblocking(False)
    with pytest.raises(mailtls.WantWrite) as ei:
        for _ in range(10000):              # nobody reads: the socket buffer fills up
            c.write(b"x" * 65536)
    assert ei.value.temporary
    s.close()
    c.close()
