"""Load: 1000 concurrent TLS connections to tcpserver-ssl -c 1000 -b 1024, twice.

Each connection (a thread of this process, Python's ssl) completes an exchange with
/bin/cat behind the server (a line sent, the same line back), and all 1000 are held open
together (a barrier) before each ends with close_notify; the server logs "status:
1000/1000" on the way.  After each round: every child ended (status 0), none is left
and none is a zombie (only the certificate loader remains), the parent holds the
descriptors it held before the first round, and across the second round its anonymous
memory does not grow (the first round is the warm-up: malloc arenas, the log buffer).

RLIMIT_NOFILE is raised in this process before the server starts, so the server inherits
it too (checked in /proc/PID/limits).  Every wait is bounded.
"""
import re
import socket
import threading
import time

from robust_util import (PROG, children, ctx_ca, fd_count, mem, must_have, pki, qmail_pem,  # noqa: F401
                         raise_nofile, read_until, tss, tss_server, user, work)

N = 1000
T = 240                 # seconds: the bound of each connection's every step, and of each wait
# A leak of 16 bytes per connection would add 16 KB over a round of 1000; below that,
# page granularity (4 KiB) and malloc's trimming decide, not the program.
GROWTH_KB = 12


def one(ctx, port, i, barrier, results):
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=T)
        try:
            s = ctx.wrap_socket(raw, server_hostname="localhost")
        except BaseException:
            raw.close()
            raise
        with s:
            msg = f"hello {i} {'x' * (i % 200)}\n".encode()
            s.sendall(msg)
            got = read_until(s, re.escape(msg), timeout=T)
            if got != msg:
                raise AssertionError(f"echo: sent {msg!r}, got {got!r}")
            barrier.wait(T)         # all N connections open and exchanged at once
            s.unwrap()              # close_notify, and the server's after cat ended
        results[i] = "ok"
    except Exception as e:          # noqa: BLE001 - every failure is reported by the test
        results[i] = repr(e)
        barrier.abort()


def round_of(srv, ctx, n):
    mark = srv.mark()
    barrier = threading.Barrier(n)
    results = [None] * n
    threads = [threading.Thread(target=one, args=(ctx, srv.port, i, barrier, results), daemon=True)
               for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 2 * T
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "client threads still running"
    bad = [(i, r) for i, r in enumerate(results) if r != "ok"]
    assert not bad, f"{len(bad)} of {n} connections failed, first: {bad[:5]}"
    # Every child's end line, then the parent's quiet status.
    deadline = time.monotonic() + T
    while True:
        text = srv.text(mark)
        ends = re.findall(rf"^{PROG}: end (\d+) status (\d+)$", text, re.M)
        if len(ends) >= n or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(ends) == n, f"{len(ends)} end lines of {n}:\n{text[-3000:]}"
    assert all(st == "0" for _, st in ends), [e for e in ends if e[1] != "0"][:10]
    assert len(set(pid for pid, _ in ends)) == n
    assert re.search(rf"^{PROG}: status: {n}/{n}$", text, re.M), "never 1000 connections at once"
    assert re.search(rf"^{PROG}: status: 0/{n}$", text[text.rindex(f"{PROG}: end "):], re.M), text[-500:]
    return text


def test_thousand_concurrent_connections_twice(work, tss, qmail_pem, pki):
    raise_nofile(4 * N)
    must_have(int(open("/proc/sys/net/core/somaxconn").read()) >= N,
              "net.core.somaxconn is below 1000: the listen queue would be cut")
    threading.stack_size(256 * 1024)
    srv = tss_server(work, tss, ["-v", "-l0", "-HR", "-c", str(N), "-b", "1024", "-T", str(T),
                                 "-n", str(qmail_pem)], ["/bin/cat"])
    srv.wait_for(rf"^{PROG}: status: 0/{N}$")
    limits = open(f"/proc/{srv.pid}/limits").read()
    m = re.search(r"^Max open files\s+(\d+)", limits, re.M)
    assert m and int(m.group(1)) >= 4 * N, limits
    # The certificate loader is the parent's one child while no connection runs.
    kids = children(srv.pid)
    assert len(kids) == 1 and "Z" not in kids.values(), kids
    ctx = ctx_ca(pki)
    fds0 = fd_count(srv.pid)

    round_of(srv, ctx, N)
    time.sleep(0.5)                 # any late exit of a child would show in the next look
    assert children(srv.pid) == kids, f"children after round 1: {children(srv.pid)} (loader: {kids})"
    fds1, mem1 = fd_count(srv.pid), mem(srv.pid)
    assert fds1 == fds0, f"the parent held {fds0} descriptors before, {fds1} after 1000 connections"

    round_of(srv, ctx, N)
    time.sleep(0.5)
    assert children(srv.pid) == kids, f"children after round 2: {children(srv.pid)} (loader: {kids})"
    fds2, mem2 = fd_count(srv.pid), mem(srv.pid)
    assert fds2 == fds0, f"the parent held {fds0} descriptors before, {fds2} after 2000 connections"
    rss1, anon1, pss1 = mem1
    rss2, anon2, pss2 = mem2
    print(f"parent memory after round 1: VmRSS {rss1} RssAnon {anon1} Pss {pss1} KiB; "
          f"after round 2: VmRSS {rss2} RssAnon {anon2} Pss {pss2} KiB")
    assert anon2 - anon1 <= GROWTH_KB, f"the parent's anonymous memory grew {anon2 - anon1} KiB in round 2"
    assert rss2 - rss1 <= GROWTH_KB, f"the parent's VmRSS grew {rss2 - rss1} KiB in round 2"
    assert srv.proc.running()
