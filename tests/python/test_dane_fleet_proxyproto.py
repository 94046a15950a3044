"""DANE (TLSA records instead of a CA), fleet ticket keys (resumption across
two servers' configurations), and the PROXY protocol header."""
import os
import socket

import pytest

import mailtls
from conftest import memory_handshake


def tlsa_records(pki, name, usage, selector=1, mtype=1):
    for line in (pki / f"{name}.tlsa").read_text().splitlines():
        sel, mt, hexdata = line.split()
        if int(sel) == selector and int(mt) == mtype:
            return [mailtls.TLSA.parse(f"{usage} {sel} {mt} {hexdata}")]
    raise AssertionError(f"no {selector} {mtype} record in {name}.tlsa")


def test_dane_ee_match_and_mismatch(pki, server_config):
    with mailtls.Config() as cc:                # trusts no CA: DANE alone decides
        s = mailtls.Session.server(server_config)
        c = mailtls.Session.client(cc, None, "mx.elsewhere.example")
        assert c.dane_result.status == mailtls.DANE_OFF
        assert c.set_dane(tlsa_records(pki, "server-ec", 3)) == 1
        assert c.dane_result.status == mailtls.DANE_UNCHECKED
        memory_handshake(s, c)
        r = c.dane_result
        assert c.peer_verified and r.status == mailtls.DANE_MATCHED and r.depth == 0 and r.usage == 3
        s = mailtls.Session.server(server_config)
        c = mailtls.Session.client(cc, None, "localhost")
        c.set_dane(tlsa_records(pki, "server-rsa", 3))
        with pytest.raises(mailtls.VerifyDaneError) as ei:
            memory_handshake(s, c)
        assert isinstance(ei.value, mailtls.VerifyError) and ei.value.temporary
        assert c.dane_result.status == mailtls.DANE_FAILED


def test_dane_ta_checks_names(pki, server_config):
    with mailtls.Config() as cc:
        s = mailtls.Session.server(server_config)
        c = mailtls.Session.client(cc, None, "mx.example.net")
        c.set_dane(tlsa_records(pki, "int", 2, selector=0, mtype=2), ["mail.test.example"])
        memory_handshake(s, c)
        assert c.peer_verified and c.dane_result.depth == 1


def test_tlsa_parse_rejects():
    with pytest.raises(ValueError):
        mailtls.TLSA.parse("not a record")


def test_fleet_ticket_keys_resume_across_configs(pki, client_config, tmp_path):
    keys = os.urandom(2 * 80)
    keyfile = tmp_path / "tickets"
    keyfile.write_bytes(keys)
    keyfile.chmod(0o600)
    one = mailtls.Config(certfile=pki / "server-ec.pem", keyfile=pki / "server-ec.key")
    two = mailtls.Config(certfile=pki / "server-ec.pem", keyfile=pki / "server-ec.key")
    one.set_ticket_key_set(keys)
    two.load_ticket_key_set(keyfile)
    s, c = mailtls.Session.server(one), mailtls.Session.client(client_config, None, "localhost")
    memory_handshake(s, c)
    s.write(b"t")
    c.feed(s.drain())
    c.read()
    saved = c.get_session()
    s2, c2 = mailtls.Session.server(two), mailtls.Session.client(client_config, None, "localhost")
    c2.set_session(saved)
    memory_handshake(s2, c2)
    assert c2.session_reused                # the other server's configuration resumed it
    with pytest.raises(mailtls.ConfigError):
        one.set_ticket_key_set(b"x" * 79)
    keyfile.chmod(0o644)
    with pytest.raises(mailtls.ConfigError):
        two.load_ticket_key_set(keyfile)    # readable by others: refused
    one.close()
    two.close()


def test_proxyproto_read_stops_at_the_header():
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 25\r\nEHLO x\r\n")
        h = mailtls.proxyproto_read(b, timeout=5)
        assert (h.version, h.v6, h.srcip, h.srcport, h.dstport) == (1, True, "2001:db8::1", 4000, 25)
        assert b.recv(100) == b"EHLO x\r\n"       # not a byte past the header
        with pytest.raises(mailtls.TimeoutError):
            mailtls.proxyproto_read(b, timeout=1)
        a.sendall(b"EHLO not a header\r\n")
        with pytest.raises(mailtls.ProtocolError):
            mailtls.proxyproto_read(b, timeout=5)
    h, need = mailtls.proxyproto_parse(b"\r\n\r\n\0\r\nQUIT\n\x21\x11\0\x0c" + bytes([127, 0, 0, 1, 127, 0, 0, 2])
                                       + (1234).to_bytes(2, "big") + (25).to_bytes(2, "big"))
    assert h.version == 2 and h.srcip == "127.0.0.1" and h.srcport == 1234 and need == 0
    assert mailtls.proxyproto_parse(b"PROXY ") == (None, need) or mailtls.proxyproto_parse(b"PROXY ")[1] >= 1
