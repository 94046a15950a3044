"""The server-side helpers: UCSPI-TLS (a program asks for TLS on SSLCTLFD and
gets the facts), the STARTTLS proxy's state machine, and the relay."""
import os
import socket

import pytest

import mailtls
from conftest import in_thread


def test_ucspitls_program_asks_for_tls(server_config, client_config, sockpair):
    a, b = sockpair
    with mailtls.UcspiTls() as u:
        env = u.env
        assert env == {"SSLCTLFD": str(u.program_ctl), "SSLREADFD": str(u.program_read),
                       "SSLWRITEFD": str(u.program_write)}
        assert len(set(u.program_fds()) | {u.ctl, u.read, u.write}) == 6

        def program():
            os.write(u.program_ctl, b"Y")
            facts = b""
            while not facts.endswith(b"\0\0"):
                chunk = os.read(u.program_ctl, 4096)
                assert chunk, "control socket closed before the facts"
                facts += chunk
            line = os.read(u.program_read, 100)
            os.write(u.program_write, b"program got " + line)
            os.close(u.program_write)
            return facts

        prog = in_thread(program)
        with mailtls.Session.server(server_config, a) as s:
            assert u.wait(s, timeout=10) == "Y"
            cl = in_thread(lambda: mailtls.wrap_client(b, client_config, "localhost"))
            s.handshake()
            c = cl()
            u.reply(s, timeout=10)
            c.sendall(b"hi\n")
            relay = in_thread(lambda: s.relay(u.read, u.write, idle=20))
            assert c.read() == b"program got hi\n"
            facts = prog()
            c.close_notify()
            res = relay()
            assert res.reason == mailtls.RELAY_DONE and res.tls_clean and res.plain_eof
            assert res.tls_to_plain == 3 and res.plain_to_tls == len(b"program got hi\n")
            assert b"SSL_PROTOCOL=" + c.protocol.encode() + b"\0" in facts
            c.close()


def test_ucspitls_program_stays_plain(server_config):
    with mailtls.UcspiTls() as u, mailtls.Session.server(server_config) as s:
        u.close_program()                     # the "program" exits without asking
        assert u.program_ctl == -1 and u.ctl >= 0
        assert u.wait(s, timeout=5) is None
        u.close_ours()
        assert u.ctl == -1


def test_proxy_state_machine_smtp():
    with mailtls.Proxy("smtp") as p:
        assert p.server_line(b"220 mx ESMTP\r\n") == b"220 mx ESMTP\r\n"
        act, to_client, to_prog = p.client_line(b"EHLO client\r\n")
        assert act == mailtls.PROXY_CONTINUE and to_prog == b"EHLO client\r\n"
        out = p.server_line(b"250-mx\r\n") + p.server_line(b"250-CHUNKING\r\n") + p.server_line(b"250 SIZE 1000\r\n")
        assert b"STARTTLS" in out and b"CHUNKING" not in out
        act, to_client, to_prog = p.client_line(b"STARTTLS\r\n")
        assert act == mailtls.PROXY_STARTTLS and to_client.startswith(b"220") and to_prog == b""
        assert p.tls_started() == b"RSET\r\n"
    with mailtls.Proxy(mailtls.POP3, mailtls.PROXY_REQUIRE_TLS) as p:
        p.server_line(b"+OK ready\r\n")
        act, to_client, to_prog = p.client_line(b"STLS\r\n", more=True)   # pipelined: refused
        assert act == mailtls.PROXY_CLOSE and to_client.startswith(b"-ERR")
    with pytest.raises(OSError):
        mailtls.Proxy(99)
    with pytest.raises(OSError):
        mailtls.Proxy("imap").tls_started()     # no STARTTLS was accepted


def test_relay_with_owned_pipes(server_config, client_config, sockpair):
    a, b = sockpair
    to_prog_r, to_prog_w = os.pipe()
    from_prog_r, from_prog_w = os.pipe()
    s = mailtls.Session.server(server_config, a)
    cj = in_thread(lambda: mailtls.wrap_client(b, client_config, "localhost"))
    relay = in_thread(lambda: s.relay(from_prog_r, to_prog_w, own_fds=True, idle=20))
    c = cj()
    c.sendall(b"to the program")
    assert os.read(to_prog_r, 100) == b"to the program"
    os.write(from_prog_w, b"from the program")
    assert c.read() == b"from the program"
    os.close(from_prog_w)                      # program's output ends: close_notify
    assert c.read() == b""
    c.close()                                  # our close_notify: the relay ends
    res = relay()
    assert res.reason == mailtls.RELAY_DONE and res.plain_to_tls == 16 and res.tls_to_plain == 14
    assert os.read(to_prog_r, 100) == b""      # the relay closed the program's input (owned)
    os.close(to_prog_r)
    with pytest.raises(OSError):
        os.fstat(from_prog_r)                  # and its output, at end of file
    s.close()


def test_relay_idle_raises_with_result(server_config, client_config, sockpair):
    a, b = sockpair
    plain, prog = socket.socketpair()
    s = mailtls.Session.server(server_config, a)
    cj = in_thread(lambda: mailtls.wrap_client(b, client_config, "localhost"))
    relay = in_thread(lambda: s.relay(plain, idle=1))
    c = cj()
    with pytest.raises(mailtls.TimeoutError) as ei:
        relay()
    assert ei.value.relay_result.reason == mailtls.RELAY_IDLE
    for x in (c, s, plain, prog):
        x.close()
