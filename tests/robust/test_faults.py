"""Faults around tcpserver-ssl's relay: resets, a slow client, programs that exit early,
close their output, stop reading, or write to a client that is gone; SIGPIPE.

After each: the connection's child ends (its end line, with the status the case
implies), none of the server's children is left but the certificate loader, and the
server serves the next connection.  The programs are /bin/cat, /bin/true, head, yes and
small sh scripts; what they report goes to the server's standard error (the log).
Every wait is bounded.
"""
import re
import socket
import struct
import time

import pytest

from robust_util import (PROG, WAIT, children, client_hello, pki, qmail_pem, read_to_close,  # noqa: F401
                         read_until, tls_connect, tss, tss_server, user, work)

CHILD_111 = 28416


def server(work, tss, pem, prog, *opts):
    srv = tss_server(work, tss, ["-v", "-l0", "-HR", *opts, "-n", str(pem)], prog)
    srv.wait_for(rf"^{PROG}: status: 0/40$")
    srv.loader = set(children(srv.pid))
    assert len(srv.loader) == 1
    return srv


def settle(srv, pki, mark):
    """The connection since |mark| ended; only the loader is left; the server still serves
    (a TLS connection that completes its handshake).  Returns (pid, status) of the end."""
    pid, status = srv.end_of(since=mark)
    deadline = time.monotonic() + WAIT
    while set(children(srv.pid)) != srv.loader and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(children(srv.pid)) == srv.loader, (children(srv.pid), srv.loader)
    with tls_connect(pki, srv.port) as s:
        assert s.version()
    assert srv.proc.running()
    return pid, status


def reset(sock):
    """Closes |sock| with an RST (SO_LINGER 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_reset_mid_handshake(work, tss, qmail_pem, pki):
    srv = server(work, tss, qmail_pem, ["/bin/cat"])
    mark = srv.mark()
    ch, *_ = client_hello(pki)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT)
    s.sendall(ch)
    assert s.recv(5)[:1] == b"\x16"             # the server's first flight is coming
    reset(s)
    pid, status = settle(srv, pki, mark)
    assert status == CHILD_111, srv.text(mark)
    assert re.search(rf"^{PROG}: tls failed {pid} (system|truncated|tls): ", srv.text(mark), re.M), srv.text(mark)


def test_reset_mid_transfer_program_still_writing(work, tss, qmail_pem, pki):
    """The client resets while the program writes as fast as it can, SIGPIPE ignored (so
    it sees EPIPE and exits 7): the relay does not die of SIGPIPE itself writing to the
    reset socket, it closes the pipe from the program, and the program's exit code is
    the child's."""
    srv = server(work, tss, qmail_pem, ["/bin/sh", "-c", "trap '' PIPE; yes 2>/dev/null; exit 7"])
    mark = srv.mark()
    s = tls_connect(pki, srv.port)
    assert read_until(s, rb"(y\n){1000}").count(b"y\n") >= 1000
    reset(s)
    pid, status = settle(srv, pki, mark)
    assert status == 7 << 8, srv.text(mark)


def test_reset_mid_transfer_client_sending(work, tss, qmail_pem, pki):
    srv = server(work, tss, qmail_pem, ["/bin/sh", "-c", "n=$(wc -c); echo \"read $n\" >&2"])
    mark = srv.mark()
    s = tls_connect(pki, srv.port)
    for _ in range(64):
        s.sendall(b"x" * 16384)
    reset(s)
    pid, status = settle(srv, pki, mark)
    assert status == 0, srv.text(mark)
    m = srv.wait_for(r"^read (\d+)$", since=mark)
    assert int(m.group(1)) <= 64 * 16384


def test_one_byte_per_second_handshake_deadline(work, tss, qmail_pem, pki):
    """A client that sends its ClientHello one byte a second: -T 2 ends it long before
    the hello is complete."""
    srv = server(work, tss, qmail_pem, ["/bin/cat"], "-T", "2")
    mark = srv.mark()
    ch, *_ = client_hello(pki)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT)
    sent, how = 0, None
    with s:
        for b in ch[:30]:
            try:
                s.sendall(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                how = "reset"
                break
            sent += 1
            s.settimeout(1)
            try:
                if s.recv(100) == b"":
                    how = "eof"
                    break
            except (socket.timeout, TimeoutError):
                continue
            except ConnectionResetError:
                how = "reset"
                break
    assert how in ("eof", "reset") and sent < 30, (how, sent)
    pid, status = settle(srv, pki, mark)
    assert status == CHILD_111
    assert re.search(rf"^{PROG}: tls failed {pid} timeout: ", srv.text(mark), re.M), srv.text(mark)


@pytest.mark.parametrize("prog,code", [("/bin/true", 0), ("/bin/false", 1)])
def test_program_exits_at_once(work, tss, qmail_pem, pki, prog, code):
    srv = server(work, tss, qmail_pem, [prog])
    mark = srv.mark()
    s = tls_connect(pki, srv.port)
    data, how = read_to_close(s)
    assert (data, how) == (b"", "eof")          # close_notify: recv gives b""
    s.close()
    pid, status = settle(srv, pki, mark)
    assert status == code << 8, srv.text(mark)
    assert not re.search(rf"^{PROG}: relay ", srv.text(mark), re.M), srv.text(mark)


def test_program_exits_while_data_flows(work, tss, qmail_pem, pki):
    """head -c 1000 reads its 1000 bytes, echoes them and exits while the client keeps
    sending: the client gets exactly those bytes, then the end; the relay writing to a
    pipe nobody reads does not die of SIGPIPE (the child's status is head's 0)."""
    srv = server(work, tss, qmail_pem, ["head", "-c", "1000"])
    mark = srv.mark()
    s = tls_connect(pki, srv.port)
    payload = bytes(range(256)) * 4096
    try:
        s.sendall(payload)
    except (BrokenPipeError, ConnectionResetError, OSError):
        pass
    data, how = read_to_close(s)
    s.close()
    assert data == payload[:1000], (len(data), how)
    pid, status = settle(srv, pki, mark)
    assert status == 0, srv.text(mark)


def test_program_closes_stdout_but_reads_stdin(work, tss, qmail_pem, pki):
    """The program closes its output at once and goes on reading: the client gets the end
    of the server's stream (close_notify), and what it sends afterwards still reaches the
    program, to the last byte."""
    srv = server(work, tss, qmail_pem, ["/bin/sh", "-c", "exec 1>&-; n=$(wc -c); echo \"read $n\" >&2; exit 3"])
    mark = srv.mark()
    s = tls_connect(pki, srv.port)
    assert read_to_close(s) == (b"", "eof")
    payload = b"after the server's close_notify\n" * 10000
    s.sendall(payload)
    s = s.unwrap()
    s.close()
    m = srv.wait_for(r"^read (\d+)$", since=mark)
    assert int(m.group(1)) == len(payload)
    pid, status = settle(srv, pki, mark)
    assert status == 3 << 8, srv.text(mark)


def test_full_pipe_both_ways(work, tss, qmail_pem, pki):
    """The program does not read for a second while the client sends 4 MB (the pipe to it
    fills), and writes 4 MB while the client does not read: the relay keeps the other
    direction moving (the program's first line arrives while the pipe is full), and
    every byte arrives both ways."""
    n = 4 << 20
    script = (f"echo started; sleep 1; got=$(head -c {n} | wc -c); echo \"got $got\" >&2; "
              f"head -c {n} /dev/zero; echo; echo end")
    srv = server(work, tss, qmail_pem, ["/bin/sh", "-c", script])
    mark = srv.mark()
    s = tls_connect(pki, srv.port)
    s.settimeout(WAIT)
    assert read_until(s, rb"started\n") == b"started\n"
    s.sendall(b"z" * n)
    assert int(srv.wait_for(r"^got (\d+)$", since=mark).group(1)) == n
    time.sleep(1)                    # the program's 4 MB wait in the pipe and the socket
    data = read_until(s, rb"\nend\n", timeout=3 * WAIT)
    assert data == bytes(n) + b"\nend\n", len(data)
    s = s.unwrap()
    s.close()
    pid, status = settle(srv, pki, mark)
    assert status == 0, srv.text(mark)
