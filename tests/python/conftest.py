"""Fixtures of the Python binding tests.

The fixtures and helpers of tests/interop/conftest.py (pki, need, procs,
must_have, ...) are loaded from there and re-exported here, so that
tests/interop/peers.py (Postfix and Dovecot), which imports them from the
module "conftest", finds them in this one.

Environment (set by ctest, tests/python/CMakeLists.txt): PYTHONPATH names the
built package; MAILTLS_TEST_PKI the test PKI; MAILTLS_SOURCE_DIR and
MAILTLS_BUILD_DIR the trees (for the packaging test).
"""
import importlib.util
import os
import socket
import sys
import threading
from pathlib import Path

import pytest

INTEROP = Path(__file__).resolve().parent.parent / "interop"
_spec = importlib.util.spec_from_file_location("mailtls_interop_conftest", INTEROP / "conftest.py")
_interop = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_interop)
globals().update({k: v for k, v in vars(_interop).items() if not k.startswith("__")})
if str(INTEROP) not in sys.path:
    sys.path.append(str(INTEROP))      # for "from peers import ..."

import mailtls  # noqa: E402 -- after the path is known

if not Path(mailtls.__file__).resolve().is_relative_to(Path(os.environ.get("MAILTLS_PYTHON_BUILD_DIR", "/"))):
    pytest.exit(f"mailtls imported from {mailtls.__file__}, not from the build tree", returncode=1)


@pytest.fixture
def server_config(pki):
    with mailtls.Config(certfile=pki / "server-ec.pem", keyfile=pki / "server-ec.key") as c:
        yield c


@pytest.fixture
def client_config(pki):
    with mailtls.Config(cafile=pki / "ca.pem") as c:
        yield c


@pytest.fixture
def sockpair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def in_thread(fn, *args):
    """Runs fn(*args) in a thread; returns a function that joins it (bounded) and
    returns fn's result or raises its exception."""
    box = {}

    def run():
        try:
            box["r"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 -- handed to the joiner
            box["e"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()

    def join(timeout=30):
        t.join(timeout)
        assert not t.is_alive(), f"{fn} still running after {timeout}s"
        if "e" in box:
            raise box["e"]
        return box.get("r")
    join.thread = t
    return join


def pair(server_config, client_config, a, b, servername="localhost", **kw):
    """A server session on |a| and a client session on |b|."""
    return (mailtls.Session.server(server_config, a, **kw),
            mailtls.Session.client(client_config, b, servername, **kw))


def handshake_both(s, c):
    j = in_thread(s.handshake)
    c.handshake()
    j()


def memory_handshake(s, c, rounds=20):
    """Drives both memory sessions' handshakes by moving bytes between them."""
    done = set()
    for _ in range(rounds):
        for me, peer in ((c, s), (s, c)):
            if me not in done:
                try:
                    me.handshake()
                    done.add(me)
                except mailtls.WantRead:
                    pass
            out = me.drain()
            if out:
                peer.feed(out)
        if len(done) == 2:
            return
    raise AssertionError("memory handshake did not finish")
