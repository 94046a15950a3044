"""mailtls.Session and mailtls.Config: handshakes and data both ways over
socketpairs (blocking, non-blocking, with deadlines), over descriptor pairs and
over the memory transport; the facts; resumption; configuration calls."""
import os
import select
import socket
import subprocess

import pytest

import mailtls
from conftest import handshake_both, in_thread, memory_handshake, pair


def test_blocking_socketpair_both_ways(server_config, client_config, sockpair):
    a, b = sockpair
    s, c = pair(server_config, client_config, a, b)
    with s, c:
        handshake_both(s, c)
        c.sendall(b"hello server\n")
        assert s.recv(100) == b"hello server\n"
        big = os.urandom(300000)
        j = in_thread(s.sendall, big)
        got = bytearray()
        while len(got) < len(big):
            got += c.read(65536)
        j()
        assert bytes(got) == big
        assert c.pending() == 0
        c.close_notify()
        assert s.read() == b""
        assert s.peer_closed and not c.peer_closed
    # the caller's sockets stay open: the sessions did not own them
    assert a.fileno() >= 0 and b.fileno() >= 0


def test_facts(server_config, client_config, sockpair, pki):
    server_config.add_ca_pem((pki / "ca.pem").read_bytes())
    server_config.set_verify(mailtls.VERIFY_REQUIRE)
    client_config.load_keypair(pki / "client.pem", pki / "client.key")
    s, c = pair(server_config, client_config, *sockpair)
    with s, c:
        assert c.protocol is None and c.peer_subject is None
        handshake_both(s, c)
        assert c.protocol == s.protocol and c.protocol in ("TLSv1.2", "TLSv1.3")
        assert c.cipher == s.cipher and ("GCM" in c.cipher or "CHACHA20" in c.cipher)
        assert c.cipher_bits in (128, 256)
        assert c.servername == s.servername == "localhost"
        assert c.peer_verified and c.peer_verify_result == 0 and c.peer_has_cert
        assert c.peer_cn == "localhost" and "CN=localhost" in c.peer_subject
        assert "Intermediate" in c.peer_issuer or "CN=" in c.peer_issuer
        assert c.peer_fingerprint.startswith("SHA256:") and len(c.peer_fingerprint) == 7 + 64
        assert c.peer_serial and all(ch in "0123456789ABCDEF" for ch in c.peer_serial)
        assert c.peer_not_before.endswith("GMT") and c.peer_not_after.endswith("GMT")
        assert s.peer_verified and s.peer_cn == "client.test.example"
        assert not c.session_reused
        env = s.env
        assert env["SSL_PROTOCOL"] == s.protocol and env["SSL_CIPHER"] == s.cipher
        assert env["SSL_CLIENT_VERIFY"] == "SUCCESS"
        assert env["SSL_CLIENT_S_DN_CN"] == "client.test.example"
        assert env["SSL_TLS_SNI_SERVERNAME"] == "localhost"
        assert c.env["SSL_SERVER_S_DN_CN"] == "localhost"
        assert s.env_block.endswith(b"\0\0")
        assert s.fileno() == s.read_fd == s.write_fd == sockpair[0].fileno()
        assert s.error == "" and s.errcode == 0
        assert "server" in repr(s)


def test_nonblocking_socketpair(server_config, client_config, sockpair):
    a, b = sockpair
    a.setblocking(False)
    b.setblocking(False)
    s, c = pair(server_config, client_config, a, b)
    assert s.timeout is None          # a non-blocking socket: want codes
    wants = 0
    done = set()
    with s, c:
        for _ in range(200):
            for x in (c, s):
                if x in done:
                    continue
                try:
                    x.handshake()
                    done.add(x)
                except (mailtls.WantRead, mailtls.WantWrite) as w:
                    assert w.temporary
                    wants += 1
            if len(done) == 2:
                break
            select.select([a, b], [], [], 5)
        assert len(done) == 2 and wants > 0
        with pytest.raises(mailtls.WantRead):
            s.read()
        assert c.write(b"ping") == 4
        select.select([a], [], [], 5)
        assert s.read() == b"ping"
        data = os.urandom(200000)
        sent = in_thread(c.sendall, data)    # waits with poll on WantWrite
        got = bytearray()
        while len(got) < len(data):
            select.select([a], [], [], 5)
            try:
                got += s.read(65536)
            except mailtls.WantRead:
                pass
        sent()
        assert bytes(got) == data


def test_socket_timeout_uses_deadlines(server_config, client_config, sockpair):
    a, b = sockpair
    b.settimeout(7.5)
    c = mailtls.Session.client(client_config, b, "localhost")
    assert c.timeout == 7.5
    s = mailtls.Session.server(server_config, a)
    with s, c:
        handshake_both(s, c)
        s.write(b"x")
        assert c.read() == b"x"


def test_descriptor_pair_and_owned_fds(server_config, client_config):
    # client -> server on one pipe pair, server -> client on another
    c2s_r, c2s_w = os.pipe()
    s2c_r, s2c_w = os.pipe()
    s = mailtls.Session.server(server_config, (c2s_r, s2c_w), own=True)
    c = mailtls.Session.client(client_config, (s2c_r, c2s_w), "localhost", own=True)
    assert (s.read_fd, s.write_fd) == (c2s_r, s2c_w)
    handshake_both(s, c)
    c.write(b"over pipes")
    assert s.read() == b"over pipes"
    s.write(b"and back")
    assert c.read() == b"and back"
    c.close()
    s.close()
    s.close()                          # again: nothing
    for fd in (c2s_r, c2s_w, s2c_r, s2c_w):
        with pytest.raises(OSError):
            os.fstat(fd)               # owned: closed with the sessions


def test_context_manager_closes_only_what_it_owns(server_config, client_config):
    a, b = socket.socketpair()
    with mailtls.Session.server(server_config, a, own=True):
        pass
    assert a.fileno() == -1            # owned socket closed
    with mailtls.Session.client(client_config, b, "localhost") as c:
        assert not c.closed
    assert c.closed and b.fileno() >= 0
    b.close()
    fd = os.dup(0)
    with mailtls.Session.server(server_config, fd):
        pass
    os.fstat(fd)                       # not owned: still open
    os.close(fd)
    with mailtls.Config() as cfg:
        assert not cfg.closed
    assert cfg.closed


def test_memory_transport_full_handshake(server_config, client_config):
    s = mailtls.Session.server(server_config)
    c = mailtls.Session.client(client_config, None, "localhost")
    with s, c:
        assert c.memory and c.read_fd == -1 and c.write_fd == -1
        with pytest.raises(mailtls.WantRead):
            c.handshake()
        first = c.drain(5)
        assert len(first) == 5                     # a ClientHello, 5 bytes at a time
        s.feed(first + c.drain())
        memory_handshake(s, c)
        assert c.peer_verified and s.protocol == c.protocol
        c.write(b"no socket at all")
        s.feed(c.drain())
        assert s.read() == b"no socket at all"
        s.write(b"reply")
        c.feed(s.drain())
        assert c.read() == b"reply"
        c.feed_eof()
        with pytest.raises(mailtls.TruncatedError) as ei:
            c.read()
        assert ei.value.temporary


def test_resumption_get_set_session(server_config, client_config):
    s = mailtls.Session.server(server_config)
    c = mailtls.Session.client(client_config, None, "localhost")
    memory_handshake(s, c)
    s.write(b"x")                   # the server's TLS 1.3 tickets go with its first write
    c.feed(s.drain())
    assert c.read() == b"x"
    saved = c.get_session()
    assert saved and isinstance(saved, bytes)
    s.close()
    c.close()
    s2 = mailtls.Session.server(server_config)
    c2 = mailtls.Session.client(client_config, None, "localhost")
    c2.set_session(saved)
    memory_handshake(s2, c2)
    assert c2.session_reused and s2.session_reused and c2.peer_verified
    with pytest.raises(mailtls.TLSError):
        mailtls.Session.client(client_config, None, "localhost").set_session(b"garbage")


def test_verify_names_and_pins(server_config, pki):
    with mailtls.Config(cafile=pki / "ca.pem") as cc:
        s = mailtls.Session.server(server_config)
        c = mailtls.Session.client(cc, None, "mx.example.net")
        c.set_verify_names(["mail.test.example"])
        memory_handshake(s, c)
        assert c.peer_verified and c.servername == "mx.example.net"
        fp = c.peer_fingerprint
    with mailtls.Config() as pinned:     # no CA at all: the pin alone decides
        pinned.add_pin(fp)
        s = mailtls.Session.server(server_config)
        c = mailtls.Session.client(pinned, None, "whatever.example")
        memory_handshake(s, c)
        assert c.peer_verified


def test_verify_hook(server_config, client_config):
    seen = []

    def hook(session, chain, result):
        seen.append((session, [len(d) for d in chain], result))
        return True
    client_config.set_verify_callback(hook)
    s = mailtls.Session.server(server_config)
    c = mailtls.Session.client(client_config, None, "wrong.example")   # the hook overrides
    memory_handshake(s, c)
    assert c.peer_verified
    assert seen and seen[0][0] is c and len(seen[0][1]) >= 1
    assert seen[0][2] == mailtls.mailtls_raw.MAILTLS_E_VERIFY_NAME
    client_config.set_verify_callback(None)


def test_release_config_and_verify_error(server_config, client_config):
    s = mailtls.Session.server(server_config)
    c = mailtls.Session.client(client_config, None, "localhost")
    with pytest.raises(mailtls.UsageError):
        c.release_config()              # before the handshake
    memory_handshake(s, c)
    c.release_config()
    c.write(b"still works")
    s.feed(c.drain())
    assert s.read() == b"still works"
    c.set_verify_error("only meaningful inside a hook")   # harmless outside one


def test_config_calls(pki, tmp_path, monkeypatch):
    with mailtls.Config() as cfg:
        cfg.load_keypair(pki / "server-ec-combined.pem")          # key inside the cert file
        cfg.load_keypair_pem((pki / "server-ec.pem").read_bytes(), (pki / "server-ec.key").read_text())
        cfg.add_keypair(pki / "server-rsa.pem", pki / "server-rsa.key")
        cfg.add_sni_keypair("a.test.example", pki / "sni-a.pem", pki / "sni-a.key")
        cfg.add_sni_keypair_pem("*.wild.test.example", (pki / "sni-wild.pem").read_bytes(),
                                (pki / "sni-wild.key").read_bytes())
        cfg.set_sni_strict(True)
        cfg.load_ca(pki / "ca.pem", None)
        cfg.set_ciphers("ECDHE+AESGCM")
        cfg.set_min_protocol(mailtls.TLS1_2)
        cfg.set_max_protocol(mailtls.TLS1_2)
        cfg.set_ticket_keys(os.urandom(48))
        with pytest.raises(mailtls.Error):
            cfg.set_ticket_keys(b"short")
        with pytest.raises(mailtls.ConfigError):
            cfg.set_ciphers("NO-SUCH-CIPHER")
        with pytest.raises(mailtls.UsageError):
            cfg.set_verify(99)
        with pytest.raises(mailtls.Error):
            cfg.add_pin("SHA256:nothex")
        with mailtls.Config(cafile=pki / "ca.pem", verify=mailtls.VERIFY_REQUIRE) as cc:
            s = mailtls.Session.server(cfg)
            c = mailtls.Session.client(cc, None, "x.wild.test.example")
            memory_handshake(s, c)
            assert c.protocol == "TLSv1.2" and c.peer_verified
            assert "wild" in c.peer_subject or c.peer_cn.startswith("*.")
            s2 = mailtls.Session.server(cfg)
            c2 = mailtls.Session.client(cc, None, "nomatch.example")
            with pytest.raises(mailtls.Error):
                memory_handshake(s2, c2)          # strict SNI: refused
    monkeypatch.setenv("CERTFILE", str(pki / "server-ec.pem"))
    monkeypatch.setenv("KEYFILE", str(pki / "server-ec.key"))
    monkeypatch.setenv("CAFILE", str(pki / "ca.pem"))
    with mailtls.Config.from_env() as env_cfg:
        assert env_cfg.load_env() == 1
    monkeypatch.setenv("CERTFILE", str(tmp_path / "missing.pem"))
    with pytest.raises(mailtls.ConfigError) as ei:
        mailtls.Config.from_env()
    assert "CERTFILE" in str(ei.value)


def test_ca_directory(pki, server_config, tmp_path, need):
    cadir = tmp_path / "certs"
    cadir.mkdir()
    (cadir / "test-ca.pem").write_bytes((pki / "ca.pem").read_bytes())
    subprocess.run([need("openssl"), "rehash", str(cadir)], check=True, timeout=60)
    with mailtls.Config(cadir=cadir) as cc:
        s, c = mailtls.Session.server(server_config), mailtls.Session.client(cc, None, "localhost")
        memory_handshake(s, c)
        assert c.peer_verified
    with mailtls.Config(cadir=tmp_path) as cc:      # a directory without the hashed names
        s, c = mailtls.Session.server(server_config), mailtls.Session.client(cc, None, "localhost")
        with pytest.raises(mailtls.VerifyUntrustedError):
            memory_handshake(s, c)


def test_from_raw_shares_a_reference(pki):
    raw = mailtls.mailtls_raw
    ptr = raw.mailtls_config_new()
    assert raw.mailtls_config_set_keypair_file(ptr, str(pki / "server-ec.pem"), str(pki / "server-ec.key")) == 0
    cfg = mailtls.Config.from_raw(ptr)
    raw.mailtls_config_free(ptr)          # the raw owner lets go; cfg still holds one
    with cfg, mailtls.Config(cafile=pki / "ca.pem") as cc:
        s, c = mailtls.Session.server(cfg), mailtls.Session.client(cc, None, "localhost")
        memory_handshake(s, c)
        assert c.peer_verified


def test_module_functions():
    assert mailtls.version() == mailtls.__version__ == mailtls.mailtls_raw.MAILTLS_VERSION_STRING
    assert mailtls.escape(b"a\nb\\c=\xff") == "a\\0Ab\\5Cc=\\FF"
    assert mailtls.errcode_name(mailtls.mailtls_raw.MAILTLS_E_VERIFY_NAME) == "verify-name"
    assert mailtls.error_temporary(mailtls.mailtls_raw.MAILTLS_E_TLS)
    assert not mailtls.error_temporary(mailtls.mailtls_raw.MAILTLS_E_USAGE)
    assert mailtls.errcode_is_verify(mailtls.mailtls_raw.MAILTLS_E_VERIFY_PIN)
    assert not mailtls.errcode_is_verify(mailtls.mailtls_raw.MAILTLS_E_TLS)
