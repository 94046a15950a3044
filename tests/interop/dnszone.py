"""A DNSSEC-signed test zone served for real, inside the tests' own network namespace.

  enter_namespace(work)   this process into new mount and network namespaces (root):
                          loopback up, /etc/resolv.conf bind-mounted to one naming
                          127.0.0.1; every process started afterwards lives there
  SignedZone(work, ...)   zone files written, the parent zone signed (ldns-keygen,
                          ldns-signzone), served by nsd on 127.0.0.53:53, and unbound
                          on 127.0.0.1:53 as the recursive resolver (iterator only: it
                          passes RRSIGs on, the client validates), its stub zone
                          pointing at nsd.  zone.anchor is the trust anchor file (the
                          KSK's DNSKEY) for the validating client.

Real DNSSEC semantics, as a validator sees them on the Internet: a record whose
signature no longer matches (changed after signing) is bogus; a child zone
delegated without DS is insecure, its absence of DS proven by the parent's NSEC;
a name under a delegation to a server that does not answer is SERVFAIL (lame).
Nothing here touches the machine's port 53 or its resolv.conf.
"""
import ctypes
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from conftest import START_TIMEOUT, STOP_TIMEOUT, must_have

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
PR_SET_PDEATHSIG = 1
SBIN = ":/usr/sbin:/sbin"


def tools():
    """The binaries the zone needs, found or the test skipped (failed under CI)."""
    must_have(os.geteuid() == 0, "private namespaces (unshare) need root")
    found = {}
    for name, pkg in (("nsd", "nsd"), ("unbound", "unbound"), ("ldns-keygen", "ldnsutils"),
                      ("ldns-signzone", "ldnsutils"), ("ip", "iproute2"), ("mount", "mount")):
        found[name] = shutil.which(name, path=os.environ.get("PATH", "") + SBIN)
        must_have(found[name], f"{name} is not installed (Debian's {pkg})")
    return found


def enter_namespace(work):
    """Moves this process (and all it starts later) into private mount and network
    namespaces, with lo up and /etc/resolv.conf naming 127.0.0.1."""
    tools()   # found, or the test skipped (failed under CI) before anything changed
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS | CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS|CLONE_NEWNET)")
    # private propagation first: the bind mount below must not reach the host
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    resolve_locally(work)


def resolve_locally(work, options=None):
    """In namespaces of this process's own: lo up, and /etc/resolv.conf naming
    127.0.0.1 (|work|/resolv.conf bind-mounted there) with the resolver |options|."""
    path = os.environ.get("PATH", "") + SBIN
    subprocess.run([shutil.which("ip", path=path), "link", "set", "lo", "up"], check=True, timeout=10)
    resolv = Path(work) / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\n" + (f"options {options}\n" if options else ""))
    subprocess.run([shutil.which("mount", path=path), "--bind", str(resolv), "/etc/resolv.conf"], check=True,
                   timeout=10)


def udp_listening(addr, port):
    """True when a UDP socket is bound to |addr|:|port| (per /proc/net/udp)."""
    want = "%08X:%04X" % (int.from_bytes(bytes(int(x) for x in addr.split(".")), "little"), port)
    try:
        return any(ln.split()[1] == want for ln in Path("/proc/net/udp").read_text().splitlines()[1:])
    except OSError:
        return False


class SignedZone:
    """|origin| (e.g. "dane.example.") signed, with |records| (zone file lines, names
    relative to the origin); |after_signing| edits the signed text (to make records
    bogus); |children| maps a child zone's origin to its lines, served unsigned and
    delegated without DS (the parent's lines must hold the NS for it).  Stop with
    stop()."""

    NSD_ADDR = "127.0.0.53"

    def __init__(self, work, origin, records, after_signing=None, children=None):
        self.t = tools()
        self.work = Path(work)
        self.origin = origin
        self.procs = []
        d = self.work / "dns"
        d.mkdir()
        self.dir = d
        zone = d / "parent.zone"
        zone.write_text(f"$ORIGIN {origin}\n$TTL 300\n"
                        f"@ SOA ns.{origin} admin.{origin} 1 3600 600 86400 300\n"
                        f"@ NS ns.{origin}\nns A {self.NSD_ADDR}\n" + "".join(f"{r}\n" for r in records))
        ksk = self.keygen(origin, ksk=True)
        zsk = self.keygen(origin, ksk=False)
        subprocess.run([self.t["ldns-signzone"], "-o", origin, "-f", str(d / "parent.signed"), str(zone),
                        str(d / ksk), str(d / zsk)], check=True, cwd=d, capture_output=True, timeout=60)
        signed = (d / "parent.signed").read_text()
        if after_signing:
            signed = after_signing(signed)
            (d / "parent.signed").write_text(signed)
        self.signed = signed
        self.anchor = d / "anchor.key"
        shutil.copy(d / f"{ksk}.key", self.anchor)
        zones = [(origin, "parent.signed")]
        for i, (child, lines) in enumerate((children or {}).items()):
            (d / f"child{i}.zone").write_text(
                f"$ORIGIN {child}\n$TTL 300\n@ SOA ns.{origin} admin.{origin} 1 3600 600 86400 300\n"
                f"@ NS ns.{origin}\n" + "".join(f"{r}\n" for r in lines))
            zones.append((child, f"child{i}.zone"))
        self.start_nsd(zones)
        self.start_unbound()

    def keygen(self, origin, ksk):
        p = subprocess.run([self.t["ldns-keygen"], "-a", "ECDSAP256SHA256"] + (["-k"] if ksk else []) + [origin],
                           check=True, cwd=self.dir, capture_output=True, text=True, timeout=60)
        return p.stdout.strip()

    def start(self, argv, name, addr):
        log = open(self.dir / f"{name}.out", "wb")
        libc = ctypes.CDLL(None)
        # a test run killed outright takes its servers along (no teardown runs then)
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                             preexec_fn=lambda: libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL))
        log.close()
        self.procs.append(p)
        deadline = time.monotonic() + START_TIMEOUT
        while p.poll() is None and time.monotonic() < deadline and not udp_listening(addr, 53):
            time.sleep(0.05)
        if p.poll() is not None or not udp_listening(addr, 53):
            raise AssertionError(f"{name} did not start: {self.log(name)}")

    def log(self, name):
        return (self.dir / f"{name}.out").read_text("latin-1")

    def start_nsd(self, zones):
        d = self.dir
        conf = d / "nsd.conf"
        conf.write_text(f"""server:
  ip-address: {self.NSD_ADDR}
  port: 53
  username: ""
  chroot: ""
  zonesdir: "{d}"
  database: ""
  zonelistfile: "{d}/zone.list"
  xfrdfile: "{d}/xfrd.state"
  xfrdir: "{d}"
  pidfile: "{d}/nsd.pid"
  server-count: 1
  verbosity: 2
remote-control:
  control-enable: no
""" + "".join(f"zone:\n  name: {z}\n  zonefile: {f}\n" for z, f in zones))
        self.start([self.t["nsd"], "-d", "-c", str(conf)], "nsd", self.NSD_ADDR)

    def start_unbound(self):
        d = self.dir
        conf = d / "unbound.conf"
        # iterator only: this resolver passes the signatures on and the client
        # (libunbound in qmail-remote) validates, as behind any non-validating
        # recursive resolver; a lame server gives the client a real SERVFAIL
        conf.write_text(f"""server:
  interface: 127.0.0.1
  port: 53
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  module-config: "iterator"
  username: ""
  chroot: ""
  directory: "{d}"
  pidfile: "{d}/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 1
  log-queries: yes
  log-servfail: yes
  num-threads: 1
  so-reuseport: no
  qname-minimisation: no
  harden-referral-path: no
  infra-cache-max-rtt: 1000
remote-control:
  control-enable: no
stub-zone:
  name: "{self.origin}"
  stub-addr: {self.NSD_ADDR}
""")
        self.start([self.t["unbound"], "-d", "-c", str(conf)], "unbound", "127.0.0.1")

    def stop(self):
        for p in reversed(self.procs):
            end(p)


def end(p):
    """Ends |p|, a Popen of ours: SIGTERM, then SIGKILL."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(STOP_TIMEOUT)


def start_dnsmasq(records, log=None):
    """dnsmasq (Debian's dnsmasq-base) answering on 127.0.0.1:53 from |records|, its
    options (--mx-host=..., --txt-record=...), nothing forwarded unless they say so;
    with |log| (a file open for writing) every query logged there.  Returns the Popen
    once it listens (RuntimeError when it does not); stop it with end()."""
    dnsmasq = shutil.which("dnsmasq", path=os.environ.get("PATH", "") + SBIN)
    must_have(dnsmasq, "dnsmasq is not installed (Debian's dnsmasq-base)")
    logging = ["--log-queries", "--log-facility=-"] if log else []
    p = subprocess.Popen([dnsmasq, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                          "--listen-address=127.0.0.1", "--bind-interfaces", "--port=53", "--pid-file=",
                          *logging, "--user=root", *records],
                         stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT if log else subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT
    while p.poll() is None and time.monotonic() < deadline and not udp_listening("127.0.0.1", 53):
        time.sleep(0.05)
    if p.poll() is not None or not udp_listening("127.0.0.1", 53):
        end(p)
        raise RuntimeError(f"dnsmasq does not answer on 127.0.0.1:53 (exit status {p.returncode})")
    return p


def spoil_rdata(signed, owner, rrtype):
    """The signed zone text with the data of |owner|'s |rrtype| record changed (its
    last hex digit flipped): its RRSIG no longer matches, the RRset is bogus."""
    pat = re.compile(rf"^({re.escape(owner)}\s+\d+\s+IN\s+{rrtype}\s+.*)([0-9a-fA-F])$", re.M)
    m = pat.search(signed)
    assert m, f"no {rrtype} record for {owner} in the signed zone"
    last = "0" if m.group(2) != "0" else "1"
    return signed[:m.start()] + m.group(1) + last + signed[m.end():]
