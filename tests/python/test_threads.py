"""The GIL is released around the calls that wait: a second thread makes
progress while a session's handshake (or read, or relay) is blocked."""
import socket
import threading
import time

import mailtls
from conftest import in_thread


def counter_while_blocked(blocked_call, unblock, secs=0.5):
    """Runs blocked_call in a thread; while it waits, this thread counts.  Returns
    (count, whether the call was still running when counting ended); then
    unblock() lets the call finish."""
    entered = threading.Event()

    def run():
        entered.set()
        return blocked_call()
    j = in_thread(run)
    assert entered.wait(10)
    time.sleep(0.05)                 # let the thread get into the C call
    n = 0
    end = time.monotonic() + secs
    while time.monotonic() < end:
        n += 1
    still_blocked = j.thread.is_alive()
    unblock()
    j()
    return n, still_blocked


def test_gil_released_during_blocking_handshake(server_config, client_config, sockpair):
    a, b = sockpair
    # A deadline bounds the call: were the GIL held, this thread could not count until
    # the handshake timed out, and the handshake would no longer be running then.
    c = mailtls.Session.client(client_config, b, "localhost", timeout=20)
    s = mailtls.Session.server(server_config, a)
    n, still_blocked = counter_while_blocked(c.handshake, s.handshake)
    assert still_blocked and n > 1000
    assert c.peer_verified
    s.close()
    c.close()


def test_gil_released_during_blocking_read_and_relay(server_config, client_config, sockpair):
    a, b = sockpair
    s = mailtls.Session.server(server_config, a)
    c = mailtls.Session.client(client_config, b, "localhost")
    j = in_thread(s.handshake)
    c.handshake()
    j()
    n, still_blocked = counter_while_blocked(lambda: c.read(10), lambda: s.write(b"wake"))
    assert still_blocked and n > 1000
    plain, prog = socket.socketpair()
    n, still_blocked = counter_while_blocked(lambda: s.relay(plain),
                                             lambda: (prog.shutdown(socket.SHUT_WR), c.close_notify()))
    assert still_blocked and n > 1000
    plain.close()
    prog.close()
    s.close()
    c.close()
