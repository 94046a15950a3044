"""tcpserver-ssl behind a load balancer: a real HAProxy (TCP mode, send-proxy-v2 and
send-proxy) on loopback in front of two tcpserver-ssl instances that share a ticket
key file ($TICKETKEYFILE), as two hosts of a fleet would.

  - The program's environment (standins/env-dumper) and the -x rules (a cdb made
    by tcprules) see the client's address, a distinct 127.0.0.x, not HAProxy's;
    HAProxy's own connection is in PROXYREMOTEIP/PROXYREMOTEPORT; the log lines
    name the client; on an -e smtp (STARTTLS) port the header is read before the
    greeting.
  - A session begun through one instance resumes on the other (openssl s_client
    -sess_out, then -sess_in: "Reused"); after a rotation (a new key first in the
    file, replaced by rename and taken by the privileged loader without a
    restart) the old ticket still resumes while its key is listed, and no longer
    once it is removed; a ticket issued under the new key resumes on both.
  - Spoofing: a PROXY header from an address -k does not list is refused (logged,
    nothing started); a client's own PROXY header sent through HAProxy does not
    replace HAProxy's; a trusted address without a header, or with a malformed
    one, is dropped; a key file open to others is refused at start.

Needs root (the servers drop to nobody with -u/-g; the key file is root's, 0600).
"""
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import free_port, listening
from tss_util import (DUMPER, GREETING, PROG, WAIT, must_have, qmail_pem, read_to_close,  # noqa: F401
                      read_until, tls_connect, tss, tss_server, user, work)

CLIENT = "127.0.0.9"       # the client's source address; HAProxy connects from 127.0.0.1
DENIED = "127.0.0.10"
RULES = (f'{CLIENT}:allow,RULE="client"\n'
         f'{DENIED}:deny\n'
         '127.0.0.1:allow,RULE="balancer"\n'
         ':allow,RULE="other"\n')


def keyfile(path, keys):
    """Writes |keys| (80-byte records) to |path| as an admin would: 0600, by rename."""
    tmp = path.with_suffix(".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(b"".join(keys))
    os.rename(tmp, path)


class Fleet:
    """Two tcpserver-ssl instances (implicit TLS) and one -e smtp instance, behind
    HAProxy: frontend fe1 -> tss1 (v2), fe2 -> tss2 (v2), fev1 -> tss1 (v1),
    fesmtp -> the -e smtp instance (v2)."""

    def __init__(self, work, tss, pem, user, haproxy):
        self.work = work
        self.keys = work.dir / "ticket.keys"
        self.key_a = os.urandom(80)
        keyfile(self.keys, [self.key_a])
        self.cdb = work.rules(RULES)
        env = work.env(TICKETKEYFILE=str(self.keys))
        common = ["-v", "-l0", "-HR", "-u", str(user[0]), "-g", str(user[1]), "-k", "127.0.0.0/31,::1/128",
                  "-x", str(self.cdb), "-n", str(pem)]
        self.tss1 = tss_server(work, tss, common, [DUMPER, "--say=220 host ESMTP"], env=env)
        self.tss2 = tss_server(work, tss, common, [DUMPER, "--say=220 host ESMTP"], env=env)
        self.smtp = tss_server(work, tss, [*common, "-e", "smtp"], [DUMPER, "--say=220 host ESMTP"], env=env)
        self.ports = {name: free_port() for name in ("fe1", "fe2", "fev1", "fesmtp", "fe6")}
        cfg = work.dir / "haproxy.cfg"
        cfg.write_text(
            "global\n  maxconn 100\n"
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n"
            + "".join(f"frontend {fe}\n  bind {'[::1]' if fe == 'fe6' else '127.0.0.1'}:{port}\n"
                      f"  default_backend be_{fe}\n" for fe, port in self.ports.items())
            + f"backend be_fe1\n  server s1 127.0.0.1:{self.tss1.port} send-proxy-v2\n"
            + f"backend be_fe2\n  server s2 127.0.0.1:{self.tss2.port} send-proxy-v2\n"
            + f"backend be_fev1\n  server s1 127.0.0.1:{self.tss1.port} send-proxy\n"
            + f"backend be_fesmtp\n  server s3 127.0.0.1:{self.smtp.port} send-proxy-v2\n"
            + f"backend be_fe6\n  server s1 127.0.0.1:{self.tss1.port} send-proxy-v2\n")
        self.haproxy = work.procs.start([haproxy, "-db", "-f", str(cfg)], name="haproxy")
        deadline = time.monotonic() + WAIT
        while not all(listening(p) for p in self.ports.values()):
            if not self.haproxy.running() or time.monotonic() > deadline:
                pytest.fail(f"haproxy did not listen on {self.ports}:\n{self.haproxy.text()}")
            time.sleep(0.05)

    def rotate(self, keys):
        """Replaces the key file and waits until both instances took it."""
        marks = [(s, s.mark()) for s in (self.tss1, self.tss2)]
        keyfile(self.keys, keys)
        for s, m in marks:
            s.wait_for(rf"^{PROG}: renewed certificates loaded$", since=m)


@pytest.fixture
def haproxy(need):
    return need("haproxy")


@pytest.fixture
def fleet(work, tss, qmail_pem, user, haproxy):
    return Fleet(work, tss, qmail_pem, user, haproxy)


def record_of(work, port):
    """The env-dumper record of the connection whose TCPREMOTEPORT is |port|."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for r in work.records():
            if r["env"].get("TCPREMOTEPORT") == str(port) and r["done"]:
                return r
        time.sleep(0.05)
    pytest.fail(f"no record for remote port {port}: {work.records()}\n{work.logs()}")


def greet_from(pki, port, source, host="127.0.0.1"):
    """A TLS client from |source| through a frontend; returns (its local port, greeting)."""
    with tls_connect(pki, port, host=host, source=source) as s:
        local = s.getsockname()[1]
        return local, read_until(s, rb"220 host ESMTP\r\n")


@pytest.mark.parametrize("fe,version", [("fe1", 2), ("fev1", 1)])
def test_client_address_through_haproxy(fleet, pki, fe, version):
    srv = fleet.tss1
    m = srv.mark()
    cport, greeting = greet_from(pki, fleet.ports[fe], CLIENT)
    assert greeting.endswith(b"220 host ESMTP\r\n")
    rec = record_of(fleet.work, cport)
    env = rec["env"]
    assert env["TCPREMOTEIP"] == CLIENT and env["TCPREMOTEPORT"] == str(cport)
    assert env["PROTO"] == "TCP" and "TCP6REMOTEIP" not in env
    # The address the client connected to: HAProxy's frontend.
    assert env["TCPLOCALIP"] == "127.0.0.1" and env["TCPLOCALPORT"] == str(fleet.ports[fe])
    # The rules matched the client, not the balancer.
    assert env["RULE"] == "client"
    # HAProxy's own connection to tcpserver-ssl.
    assert env["PROXYREMOTEIP"] == "127.0.0.1"
    assert env["PROXYLOCALPORT"] == str(srv.port)
    hport = int(env["PROXYREMOTEPORT"])
    assert hport not in (cport, 0)
    assert "TCPREMOTEINFO" not in env
    pid = rec["ppid"]
    srv.wait_for(rf"^{PROG}: proxy header {pid} v{version} from 127\.0\.0\.1:{hport}$", since=m)
    srv.wait_for(rf"^{PROG}: pid {pid} from {re.escape(CLIENT)}$", since=m)
    srv.wait_for(rf"^{PROG}: ok {pid} 0:127\.0\.0\.1:{fleet.ports[fe]} :{re.escape(CLIENT)}::{cport}$", since=m)


def test_ipv6_client_through_haproxy(fleet, pki):
    """An IPv6 client of HAProxy, which reaches tcpserver-ssl over IPv4: PROTO=TCP6
    and the TCP6 names from the header, the balancer in PROXYREMOTEIP."""
    srv = fleet.tss1
    m = srv.mark()
    cport, greeting = greet_from(pki, fleet.ports["fe6"], "::1", host="::1")
    assert greeting.endswith(b"220 host ESMTP\r\n")
    rec = record_of(fleet.work, cport)
    env = rec["env"]
    assert env["PROTO"] == "TCP6"
    assert env["TCPREMOTEIP"] == env["TCP6REMOTEIP"] == "::1"
    assert env["TCP6REMOTEPORT"] == str(cport) and env["TCP6LOCALPORT"] == str(fleet.ports["fe6"])
    assert env["PROXYREMOTEIP"] == "127.0.0.1" and env["RULE"] == "other"
    srv.wait_for(rf"^{PROG}: pid {rec['ppid']} from ::1$", since=m)


def test_rules_deny_the_client_not_the_balancer(fleet, pki):
    srv = fleet.tss1
    m = srv.mark()
    raw = socket.create_connection(("127.0.0.1", fleet.ports["fe1"]), timeout=WAIT, source_address=(DENIED, 0))
    cport = raw.getsockname()[1]
    data, how = read_to_close(raw)
    raw.close()
    assert data == b"" and how in ("eof", "reset")
    m2 = srv.wait_for(rf"^{PROG}: deny (\d+) 0:127\.0\.0\.1:{fleet.ports['fe1']} :{re.escape(DENIED)}::{cport}$",
                      since=m)
    pid = int(m2.group(1))
    srv.wait_for(rf"^{PROG}: end {pid} status 25600$", since=m)


def test_starttls_port_header_before_greeting(fleet, pki):
    """-e smtp: the header is read before the program starts (and greets); a client's
    own PROXY line sent first through HAProxy changes nothing."""
    srv = fleet.smtp
    m = srv.mark()
    raw = socket.create_connection(("127.0.0.1", fleet.ports["fesmtp"]), timeout=WAIT, source_address=(CLIENT, 0))
    cport = raw.getsockname()[1]
    raw.sendall(b"PROXY TCP4 6.6.6.6 127.0.0.1 4444 25\r\n")
    greeting = read_until(raw, rb"220 host ESMTP\r\n")
    raw.close()
    assert greeting.startswith(b"220 host ESMTP")
    env = record_of(fleet.work, cport)["env"]
    assert env["TCPREMOTEIP"] == CLIENT and env["RULE"] == "client" and env["PROXYREMOTEIP"] == "127.0.0.1"
    assert "6.6.6.6" not in srv.text(m)


def test_own_header_through_haproxy_does_not_override(fleet, pki):
    """Implicit TLS: HAProxy's header is read; the client's forged one is what its TLS
    stream begins with, so the handshake fails, and 6.6.6.6 is never taken."""
    srv = fleet.tss1
    m = srv.mark()
    raw = socket.create_connection(("127.0.0.1", fleet.ports["fe1"]), timeout=WAIT, source_address=(CLIENT, 0))
    raw.sendall(b"PROXY TCP4 6.6.6.6 127.0.0.1 4444 465\r\n")
    data, how = read_to_close(raw)
    raw.close()
    m2 = srv.wait_for(rf"^{PROG}: pid (\d+) from {re.escape(CLIENT)}$", since=m)
    pid = m2.group(1)
    srv.wait_for(rf"^{PROG}: tls failed {pid} ", since=m)
    srv.wait_for(rf"^{PROG}: end {pid} status 28416$", since=m)
    assert "6.6.6.6" not in srv.text(m)
    assert not any(r["env"].get("TCPREMOTEIP") == "6.6.6.6" for r in fleet.work.records())


def test_untrusted_source_header_refused(fleet, pki):
    """A PROXY header straight from 127.0.0.9 (not in -k): dropped, nothing started;
    a plain TLS client from there is served as itself."""
    srv = fleet.tss1
    for header in (b"PROXY TCP4 6.6.6.6 127.0.0.1 4444 465\r\n",
                   b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\x06\x06\x06\x06\x7f\x00\x00\x01\x11\x5c\x01\xd1"):
        m = srv.mark()
        before = len(fleet.work.records())
        raw = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT, source_address=(CLIENT, 0))
        cport = raw.getsockname()[1]
        raw.sendall(header)
        data, how = read_to_close(raw)
        raw.close()
        assert data == b""
        m2 = srv.wait_for(rf"^{PROG}: proxy header dropped (\d+) from {re.escape(CLIENT)}:{cport}: "
                          r"a PROXY header from an address not trusted \(-k\)$", since=m)
        srv.wait_for(rf"^{PROG}: end {m2.group(1)} status 25600$", since=m)
        assert f"pid {m2.group(1)} from" not in srv.text(m)
        assert len(fleet.work.records()) == before
    cport, greeting = greet_from(pki, srv.port, CLIENT)
    env = record_of(fleet.work, cport)["env"]
    assert env["TCPREMOTEIP"] == CLIENT and "PROXYREMOTEIP" not in env


@pytest.mark.parametrize("send,why", [
    (b"", "the connection ended before a PROXY header"),
    (b"\x16\x03\x01\x00\x05hello", "no PROXY header"),
    (b"PROXY TCP4 6.6.6.6 127.0.0.1 4444\r\n", "PROXY v1 header: not four fields separated by single spaces"),
    (b"PROXY TCP4 6.6.6.6 127.0", "the connection ended inside the PROXY header"),
])
def test_trusted_without_valid_header_dropped(fleet, pki, send, why):
    srv = fleet.tss2
    m = srv.mark()
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT, source_address=("127.0.0.1", 0))
    cport = raw.getsockname()[1]
    if send:
        raw.sendall(send)
    raw.shutdown(socket.SHUT_WR)
    read_to_close(raw)
    raw.close()
    m2 = srv.wait_for(rf"^{PROG}: proxy header dropped (\d+) from 127\.0\.0\.1:{cport}: {re.escape(why)}$", since=m)
    srv.wait_for(rf"^{PROG}: end {m2.group(1)} status 25600$", since=m)


def s_client_to(work, openssl, port, *args):
    p = work.procs.start([openssl, "s_client", "-connect", f"127.0.0.1:{port}", *args], name="s_client", stdin=True)
    p.wait_for(GREETING, timeout=WAIT)
    rc, out = p.finish(WAIT)
    assert re.search(GREETING, out, re.M), out
    return out


def reused(out):
    m = re.search(r"^(New|Reused), (TLSv[\d.]+)", out, re.M)
    assert m, out
    return m.group(1) == "Reused"


@pytest.mark.parametrize("proto", ["-tls1_3", "-tls1_2"])
def test_resume_across_instances_and_rotation(fleet, need, proto):
    openssl = need("openssl")
    w = fleet.work
    sess_a = w.dir / f"a{proto}.pem"
    sess_b = w.dir / f"b{proto}.pem"
    fe1, fe2 = fleet.ports["fe1"], fleet.ports["fe2"]
    # Begun on tss1, resumed on tss2 (another "host" with the same key file).
    assert not reused(s_client_to(w, openssl, fe1, proto, "-sess_out", str(sess_a)))
    m = fleet.tss2.mark()
    assert reused(s_client_to(w, openssl, fe2, proto, "-sess_in", str(sess_a)))
    fleet.tss2.wait_for(rf"^{PROG}: tls \d+ .* resumed$", since=m)
    # Rotation: B first, A still listed: A's ticket resumes on both, and a new
    # session gets a ticket under B.
    key_b = os.urandom(80)
    fleet.rotate([key_b, fleet.key_a])
    assert reused(s_client_to(w, openssl, fe1, proto, "-sess_in", str(sess_a)))
    assert reused(s_client_to(w, openssl, fe2, proto, "-sess_in", str(sess_a)))
    assert not reused(s_client_to(w, openssl, fe1, proto, "-sess_out", str(sess_b)))
    # A removed: its tickets get a full handshake on both; B's resume.
    fleet.rotate([key_b])
    assert not reused(s_client_to(w, openssl, fe1, proto, "-sess_in", str(sess_a)))
    assert not reused(s_client_to(w, openssl, fe2, proto, "-sess_in", str(sess_a)))
    assert reused(s_client_to(w, openssl, fe2, proto, "-sess_in", str(sess_b)))


def test_key_file_open_to_others_refused(work, tss, qmail_pem, user):
    keys = work.dir / "open.keys"
    keys.write_bytes(os.urandom(160))
    os.chmod(keys, 0o644)
    r = subprocess.run([tss, "-v", "-HR", "-n", str(qmail_pem), "127.0.0.1", "0", "/bin/true"],
                       env=work.env(TICKETKEYFILE=str(keys)), capture_output=True, timeout=WAIT)
    assert r.returncode == 111
    assert re.search(rb"^tcpserver-ssl: fatal: unable to load the certificate and key: .*open\.keys: "
                     rb"ticket key file is open to group or others \(mode 644; make it 600\)$", r.stderr, re.M), r.stderr
    os.chmod(keys, 0o600)
    keys.write_bytes(os.urandom(81))
    r = subprocess.run([tss, "-v", "-HR", "-n", str(qmail_pem), "127.0.0.1", "0", "/bin/true"],
                       env=work.env(TICKETKEYFILE=str(keys)), capture_output=True, timeout=WAIT)
    assert r.returncode == 111 and b"81 bytes are not 1 to 16 records of 80 bytes" in r.stderr, r.stderr


def test_k_usage(tss, work):
    for bad in ("", "127.0.0.1,", "10.0.0.0/33", "::1/129", "host.example", "1.2.3.4/x"):
        r = subprocess.run([tss, "-k", bad, "127.0.0.1", "0", "/bin/true"], env=work.env(), capture_output=True,
                           timeout=WAIT)
        assert r.returncode == 100, (bad, r.stderr)
        assert b"fatal: -k takes addresses" in r.stderr
