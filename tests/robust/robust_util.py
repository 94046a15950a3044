"""What the robustness tests share: the interop fixtures, and facts about processes.

The fixtures and helpers come from tests/interop (conftest.py, tss_util.py), put on
sys.path here; a test module imports the fixtures it uses by name from this module, so
pytest finds them there (tests/robust has no conftest.py of its own: a second module
named conftest would replace the interop one that tss_util imports).

Helpers: children(pid) (the pids whose parent is pid, with their state), fd_count(pid),
mem(pid) (VmRSS, RssAnon and Pss in KiB), raise_nofile(n), server_pem(pki, dir) (the
qmail.pem layout, readable by root), tls_alert(data) (the fatal alert in the bytes a
server sent before it closed, if any), and the hand-built records of TLS: record(),
client_hello() (a real one, from Python's ssl over memory BIOs).
"""
import os
import resource
import shutil
import ssl
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
INTEROP = HERE.parent / "interop"
sys.path.insert(0, str(INTEROP))

from conftest import (KV, ProcSet, alive, executable_from_env, free_port, must_have, need, pki,  # noqa: E402,F401
                      probe, procs, wait_gone)
from tss_util import (GREETING, PROG, SMTPD, WAIT, ctx_ca, qmail_pem, read_to_close, read_until,  # noqa: E402,F401
                      reply, tls_connect, tss, tss_server, user, work)

STANDINS = INTEROP / "standins"

# TLS record content types and the alerts the tests expect (RFC 8446 B.1, B.2).
HANDSHAKE, ALERT, APPDATA = 0x16, 0x15, 0x17
ALERTS = {10: "unexpected_message", 20: "bad_record_mac", 22: "record_overflow", 40: "handshake_failure",
          47: "illegal_parameter", 50: "decode_error", 70: "protocol_version", 80: "internal_error",
          100: "no_renegotiation", 109: "missing_extension"}


def children(pid):
    """{child pid: state letter} of every process whose parent is |pid|, from /proc."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            text = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        f = text[text.rindex(")") + 2:].split()
        if int(f[1]) == pid:
            out[int(d)] = f[0]
    return out


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def mem(pid):
    """(VmRSS, RssAnon, Pss) of |pid| in KiB."""
    st = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon"):
            st[k] = int(v.split()[0])
    pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1])
    return st["VmRSS"], st["RssAnon"], pss


def raise_nofile(n):
    """Raises this process's RLIMIT_NOFILE soft limit to at least |n| (skip, or fail under
    CI, when the hard limit is lower and we may not raise it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= n:
        return
    if hard != resource.RLIM_INFINITY and hard < n:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
            return
        except (ValueError, PermissionError):
            must_have(False, f"RLIMIT_NOFILE hard limit {hard} < {n} and cannot be raised")
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def server_pem(pki, d):
    """The qmail.pem layout (key, certificate, intermediate, root) in |d|, 0600."""
    pem = Path(d) / "qmail.pem"
    shutil.copyfile(pki / "server-ec-combined.pem", pem)
    os.chmod(pem, 0o600)
    return pem


def record(ctype, body, version=0x0301):
    return struct.pack("!BHH", ctype, version, len(body)) + body


def records_of(data):
    """[(type, version, body)] of the whole records in |data|."""
    out = []
    while len(data) >= 5:
        t, v, n = struct.unpack("!BHH", data[:5])
        if len(data) < 5 + n:
            break
        out.append((t, v, data[5:5 + n]))
        data = data[5 + n:]
    return out


def tls_alert(data):
    """The description of the first fatal alert record in |data| (plaintext: sent before
    the handshake ended), or None."""
    for t, _, body in records_of(data):
        if t == ALERT and len(body) == 2 and body[0] == 2:
            return body[1]
    return None


def client_hello(pki, **ctxopts):
    """(ClientHello records, SSLObject, incoming BIO, outgoing BIO): the first flight of
    Python's ssl (OpenSSL) over memory BIOs, verifying against the test CA for
    localhost, so a test can send its bytes cut as it likes and finish the handshake by
    feeding the server's answer back in."""
    ctx = ctx_ca(pki)
    for k, v in ctxopts.items():
        setattr(ctx, k, v)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read(), obj, inc, out
