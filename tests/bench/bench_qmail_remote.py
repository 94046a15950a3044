"""bench_qmail_remote.py -- deliveries per second of qmail-remote to a local Postfix.

Usage (as root: Postfix runs as a test instance, tests/interop/peers.py):
  /usr/bin/python3 tests/bench/bench_qmail_remote.py [-n N] [--system-ca] BUILD_DIR

control/tlscafile is the test CA alone, or with --system-ca the system bundle
(/etc/ssl/certs/ca-certificates.crt) with the test CA after it, as a real
installation's would be (qmail-remote's default CA file is the system bundle).

Makes a fresh test PKI, starts Postfix with STARTTLS (virtual mailbox domain,
Maildir), then delivers one small message N times (default 200) in a row, one
qmail-remote process per delivery as qmail-rspawn runs them, in three modes:
  plain     TLS off (control/tlspolicy: none)
  tls       STARTTLS (level encrypt), no session cache (no queue/tlscache)
  tls+cache STARTTLS (level encrypt), with the session cache
and prints, for each, deliveries per second (wall clock, bounded by Postfix's
own work), the CPU time (user+system, from wait4) of one qmail-remote per
delivery, the share of resumed sessions, and the TLS CPU per delivery (the mode's
CPU per delivery less that of plain).  One RESULT line per mode for scripts.
It asserts no speed; it exits non-zero when a delivery fails.
"""
import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests" / "interop"))

from conftest import ProcSet, free_port  # noqa: E402
from peers import start_postfix  # noqa: E402

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
MSG = b"From: s@client.test\nTo: u@dest.test\nSubject: bench\nDate: Sat, 28 Nov 2026 04:00:00 +0000\n" \
      b"Message-ID: <b@client.test>\n\nA small message.\n"


def deliver(prog, qhome):
    """One delivery: (report, stderr).  Its CPU time lands in RUSAGE_CHILDREN once it is
    reaped; Postfix's processes are not ours to reap before the end, so they do not."""
    p = subprocess.run([prog, "dest.test", "s@client.test", "u@dest.test"], input=MSG, capture_output=True,
                       env={"QMAILHOME": str(qhome), "PATH": os.environ.get("PATH", "")}, timeout=60)
    return p.stdout, p.stderr


def run_mode(prog, qhome, n, level, cache):
    (qhome / "control" / "tlspolicy").write_text(f"dest.test:{level}\n")
    cdir = qhome / "queue" / "tlscache"
    shutil.rmtree(cdir, ignore_errors=True)
    if cache:
        cdir.mkdir(parents=True, mode=0o700)
    # one delivery first, so the cached modes measure repeat deliveries
    out, err = deliver(prog, qhome)
    if not out.startswith(b"r\0K"):
        sys.exit(f"delivery failed: {out!r} {err!r}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    resumed = 0
    t0 = time.monotonic()
    for _ in range(n):
        out, err = deliver(prog, qhome)
        if not out.startswith(b"r\0K") or err:
            sys.exit(f"delivery failed: {out!r} {err!r}")
        resumed += b", resumed\n" in out
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"per_s": n / wall, "cpu_ms": cpu / n * 1000, "resumed": resumed / n}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--system-ca", action="store_true", help="the system CA bundle with the test CA appended")
    ap.add_argument("build")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_qmail_remote: needs root (a Postfix instance)")
    prog = str(Path(a.build, "examples", "qmail-remote", "qmail-remote").resolve())
    work = Path(tempfile.mkdtemp(prefix="qmr-bench."))
    work.chmod(0o755)
    procs = ProcSet(work)
    mta = None
    try:
        pki = work / "pki"
        subprocess.run([sys.executable, str(ROOT / "tests" / "pki" / "mkpki.py"), str(pki)], check=True,
                       timeout=120)
        d = work / "postfix"
        d.mkdir(mode=0o755)
        vmail = d / "vmail"
        vmail.mkdir()
        shutil.chown(vmail, user="nobody", group="nogroup")

        def services():
            ports = {"tls": free_port()}
            return ports, [f"{ports['tls']} inet n - n - - smtpd", "virtual unix - n n - - virtual"]

        def need(b):
            path = shutil.which(b, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
            if not path:
                sys.exit(f"bench_qmail_remote: {b} is not installed")
            return path
        mta = start_postfix(need, procs, pki, d, services=services,
                            main=["virtual_mailbox_domains = dest.test", f"virtual_mailbox_base = {vmail}",
                                  "virtual_mailbox_maps = static:u/Maildir/", "virtual_uid_maps = static:65534",
                                  "virtual_gid_maps = static:65534", "smtpd_tls_loglevel = 0"])
        qhome = work / "qmail"
        (qhome / "control").mkdir(parents=True)
        (qhome / "control" / "me").write_text("client.test.example\n")
        cafile = pki / "ca.pem"
        if a.system_ca:
            cafile = work / "bundle.pem"
            cafile.write_bytes(Path(SYSTEM_BUNDLE).read_bytes() + (pki / "ca.pem").read_bytes())
        (qhome / "control" / "tlscafile").write_text(f"{cafile}\n")
        (qhome / "control" / "smtproutes").write_text(f"dest.test:[127.0.0.1]:{mta.ports['tls']}\n")
        print(f"# {a.n} deliveries per mode, one qmail-remote each, to Postfix on 127.0.0.1, CA file "
              f"{'system bundle + test CA' if a.system_ca else 'test CA'} "
              f"(load average at start: {os.getloadavg()[0]:.2f})")
        res = {}
        for name, level, cache in (("plain", "none", False), ("tls", "encrypt", False),
                                   ("tls+cache", "encrypt", True)):
            res[name] = run_mode(prog, qhome, a.n, level, cache)
        print(f"{'mode':10} {'deliveries/s':>13} {'CPU ms/delivery':>16} {'TLS CPU ms':>11} {'resumed':>8}")
        for name, r in res.items():
            tls_cpu = r["cpu_ms"] - res["plain"]["cpu_ms"]
            print(f"{name:10} {r['per_s']:13.1f} {r['cpu_ms']:16.2f} {tls_cpu:11.2f} {r['resumed'] * 100:7.1f}%")
            print(f"RESULT qmail_remote mode={name} ca={'system' if a.system_ca else 'test'} deliveries_per_s={r['per_s']:.1f} cpu_ms={r['cpu_ms']:.3f} "
                  f"tls_cpu_ms={tls_cpu:.3f} resumed={r['resumed']:.3f}")
        print(f"# load average at end: {os.getloadavg()[0]:.2f}")
    finally:
        if mta:
            mta.stop()
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
