"""tcpserver-ssl audited by testssl.sh (Debian package testssl.sh) on loopback.

Two ports, one scan each (a module fixture, parametrized): the implicit-TLS port with
standins/fake-qmail-smtpd behind it, and the STARTTLS proxy (-e smtp) in front of the same
stand-in, scanned with "-t smtp".  Both serve the PKI's server-ec-combined.pem (the qmail.pem
layout: key, leaf, intermediate, root); testssl trusts the test CA through --add-ca.

The checks are narrowed to what an audit reports (see /work/shared/reference/security.md):
-p protocols, -s cipher categories, -e every cipher offered, -P server preference, -S server
defaults (the certificate chain), -U vulnerabilities; no client simulation, no DNS (--nodns
none: the CAA check is skipped).  About a minute per port.  testssl.sh writes its findings to
a JSON file (a flat list of {id, severity, finding}); the tests assert on named ids with the
finding texts of testssl.sh 3.0 (Debian 12), never on "no LOW finding": an offline scan
against a test CA flags things that are no property of the server (cert_revocation: the test
CA has neither CRL nor OCSP URI).

Environment: MAILTLS_TCPSERVER_SSL (set by ctest), MAILTLS_TEST_PKI, CI (a missing testssl.sh
fails instead of skipping).
"""
import json
import os
import re
import shutil
import signal
import subprocess

import pytest

from tss_util import PROG, SMTPD, Work, must_have, qmail_pem, tss, tss_server, user  # noqa: F401

SCAN_TIMEOUT = 300      # seconds: the bound of one testssl.sh run (about 60-70 s here)
CHECKS = ["-p", "-s", "-e", "-P", "-S", "-U"]
# testssl.sh's own errors (ERR_CHILD .. ERR_BASH); below that its exit status only sums
# the return values of its checks.
TESTSSL_ERRORS = range(242, 256)

MODES = {
    # name: (tcpserver-ssl options before -n, testssl.sh options)
    "implicit": ([], []),
    "starttls-smtp": (["-e", "smtp"], ["-t", "smtp"]),
}


def find_testssl():
    path = shutil.which("testssl") or shutil.which("testssl.sh")
    must_have(path, "testssl.sh (Debian package testssl.sh) is not installed")
    return path


class Scan:
    """The findings of one testssl.sh run: by id, plus the raw list."""

    def __init__(self, mode, findings, output, rc):
        self.mode = mode
        self.findings = findings
        self.output = output
        self.rc = rc
        self.by_id = {}
        for f in findings:
            self.by_id.setdefault(f["id"], f)

    def get(self, fid):
        f = self.by_id.get(fid)
        assert f is not None, (f"[{self.mode}] testssl.sh reported no {fid!r}; ids: {sorted(self.by_id)}\n"
                               f"{self.output[-3000:]}")
        return f

    def expect(self, fid, finding, severity=None, prefix=False):
        f = self.get(fid)
        text = f["finding"].strip()
        ok = text.startswith(finding) if prefix else text == finding
        assert ok, f"[{self.mode}] {fid}: {text!r} (severity {f['severity']}), expected {finding!r}"
        if severity:
            assert f["severity"] == severity, f"[{self.mode}] {fid}: severity {f['severity']} ({text!r}), expected {severity}"
        return f


def run_testssl(work, testssl, pki, port, extra, mode):
    jsonfile = work.dir / f"testssl-{mode}.json"
    jsonfile.unlink(missing_ok=True)        # testssl.sh refuses to overwrite a non-empty file
    argv = [testssl, "--warnings", "batch", "--color", "0", "--nodns", "none",
            "--add-ca", str(pki / "ca.pem"), "--connect-timeout", "10", "--openssl-timeout", "10",
            *extra, *CHECKS, "--jsonfile", str(jsonfile), f"127.0.0.1:{port}"]
    # No terminal: stdin is a closed pipe, output goes to a log file.
    p = work.procs.start(argv, name=f"testssl-{mode}", stdin=True,
                         env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(work.dir)})
    p.close_stdin()
    rc = p.wait(SCAN_TIMEOUT)
    if rc is None:
        # testssl.sh runs in its own session (its pid is the group id): stop it and its openssl children.
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(5)
        pytest.fail(f"testssl.sh still running after {SCAN_TIMEOUT}s:\n{p.text()[-3000:]}")
    out = p.text()
    assert rc not in TESTSSL_ERRORS, f"testssl.sh failed (exit {rc}):\n{out[-3000:]}"
    assert jsonfile.is_file(), f"testssl.sh wrote no {jsonfile} (exit {rc}):\n{out[-3000:]}"
    findings = json.loads(jsonfile.read_text())
    assert isinstance(findings, list) and findings, findings
    return Scan(mode, findings, out, rc)


@pytest.fixture(scope="module", params=list(MODES))
def scan(request, tss, qmail_pem, pki):
    testssl = find_testssl()
    mode = request.param
    srv_opts, scan_opts = MODES[mode]
    uid_gid = request.getfixturevalue("user") if os.geteuid() == 0 else None
    work = Work(uid_gid)
    try:
        srv = tss_server(work, tss, ["-v", "-l0", "-HR", *srv_opts, "-n", str(qmail_pem)], [SMTPD, "host"])
        result = run_testssl(work, testssl, pki, srv.port, scan_opts, mode)
        # The server lived through some hundred hostile handshakes.
        assert srv.proc.running(), f"{PROG} ended during the scan:\n{srv.text()[-3000:]}"
        t = result.by_id.get("scanTime", {}).get("finding")
        print(f"\n[{mode}] testssl.sh scanTime {t}s, exit {result.rc}")
        yield result
    finally:
        work.cleanup()


# --------------------------------------------------------------------------- the scan itself

def test_scan_complete(scan):
    """The run reached its end (scanTime) and reported no scan problem (testssl.sh's WARN/FATAL
    severities mark timeouts and connection trouble, which would make every "not vulnerable" void)."""
    scan.get("scanTime")
    problems = [f for f in scan.findings if f["severity"] in ("WARN", "FATAL")]
    assert not problems, f"[{scan.mode}] scan problems: {problems}"
    if scan.mode == "starttls-smtp":
        scan.expect("service", "smtp")


def test_no_high_or_critical_but_the_test_ca(scan):
    """HIGH/CRITICAL findings: only cert_revocation, a property of the test CA (no CRL, no OCSP URI)."""
    bad = [f for f in scan.findings if f["severity"] in ("HIGH", "CRITICAL") and f["id"] != "cert_revocation"]
    assert not bad, f"[{scan.mode}] {bad}"


# --------------------------------------------------------------------------- protocols

def test_protocols(scan):
    for fid in ("SSLv2", "SSLv3"):
        scan.expect(fid, "not offered", "OK")
    for fid in ("TLS1", "TLS1_1"):
        scan.expect(fid, "not offered")
    scan.expect("TLS1_2", "offered", "OK")
    scan.expect("TLS1_3", "offered", "OK", prefix=True)      # "offered with final"
    scan.expect("protocol_negotiated", "Default protocol TLS1.3", "OK")


# --------------------------------------------------------------------------- ciphers

# testssl.sh 3.0's categories; 3.1+ name the obsoleted ones cipherlist_OBSOLETED (instead of
# cipherlist_AVERAGE): one of the two must be there.
NOT_OFFERED_CATEGORIES = ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
                          "cipherlist_3DES_IDEA")
AEAD_RFC = re.compile(r"^TLS_(?:AES_(?:128|256)_GCM_SHA(?:256|384)|CHACHA20_POLY1305_SHA256|AES_128_CCM_SHA256"
                      r"|ECDHE_(?:ECDSA|RSA)_WITH_(?:AES_(?:128|256)_GCM_SHA(?:256|384)"
                      r"|CHACHA20_POLY1305_SHA256))$")


def test_cipher_categories(scan):
    for fid in NOT_OFFERED_CATEGORIES:
        scan.expect(fid, "not offered")
    obsoleted = [fid for fid in ("cipherlist_AVERAGE", "cipherlist_OBSOLETED") if fid in scan.by_id]
    assert obsoleted, f"[{scan.mode}] neither cipherlist_AVERAGE nor cipherlist_OBSOLETED: {sorted(scan.by_id)}"
    for fid in obsoleted:
        scan.expect(fid, "not offered")
    strong = [fid for fid in ("cipherlist_STRONG", "cipherlist_STRONG_FS") if fid in scan.by_id]
    assert strong, f"[{scan.mode}] no cipherlist_STRONG: {sorted(scan.by_id)}"
    scan.expect(strong[0], "offered", "OK")


def test_only_aead_forward_secret_suites(scan):
    """-e lists every suite the server accepts (cipher_x<hex>): the RFC name is the last column.
    Only TLS 1.3 suites and ECDHE with AES-GCM or ChaCha20-Poly1305 for TLS 1.2."""
    offered = {f["id"]: f["finding"].split()[-1] for f in scan.findings if re.match(r"^cipher_x[0-9a-f]+$", f["id"])}
    assert offered, f"[{scan.mode}] no cipher_x* findings"
    bad = {k: v for k, v in offered.items() if not AEAD_RFC.match(v)}
    assert not bad, f"[{scan.mode}] suites that are not AEAD with forward secrecy: {bad}"
    names = set(offered.values())
    assert "TLS_AES_128_GCM_SHA256" in names and any(n.startswith("TLS_ECDHE_") for n in names), names
    # The TLS 1.2 order the server announced holds only AEAD suites too.
    order = scan.get("cipherorder_TLSv1_2")["finding"].split()
    assert order and all(re.search(r"-(?:AES(?:128|256)-GCM-SHA(?:256|384)|CHACHA20-POLY1305)$", c)
                         and c.startswith("ECDHE-") for c in order), order


def test_server_cipher_order(scan):
    """The server's order decides for TLS 1.2 (TLS 1.3: the client's, testssl.sh says so)."""
    if "cipher_order-tls1_2" in scan.by_id:                 # testssl.sh 3.1+: per protocol
        scan.expect("cipher_order-tls1_2", "server", "OK", prefix=True)
    else:
        scan.expect("cipher_order", "server", "OK", prefix=True)   # "server -- TLS 1.3 client determined"


# --------------------------------------------------------------------------- vulnerabilities

# id: the beginning of the finding testssl.sh 3.0 writes when the server is fine (severity OK).
VULNS = {
    "heartbleed": "not vulnerable",             # ", no heartbeat extension"
    "CCS": "not vulnerable",
    "ROBOT": "not vulnerable",                  # ", no RSA key transport cipher"
    "secure_renego": "supported",
    "secure_client_renego": "not vulnerable",
    "CRIME_TLS": "not vulnerable",
    "POODLE_SSL": "not vulnerable",             # ", no SSLv3"
    "fallback_SCSV": "no protocol below TLS 1.2 offered",
    "SWEET32": "not vulnerable",
    "FREAK": "not vulnerable",
    "DROWN": "not vulnerable",                  # " on this host and port"
    "LOGJAM": "not vulnerable",                 # ", no DH EXPORT ciphers,"
    "LOGJAM-common_primes": "no DH key",        # " with <= TLS 1.2"
    "BEAST": "not vulnerable",                  # ", no SSL3 or TLS1"
    "LUCKY13": "not vulnerable",
    "RC4": "not vulnerable",
}


@pytest.mark.parametrize("fid", list(VULNS))
def test_vulnerability(scan, fid):
    scan.expect(fid, VULNS[fid], "OK", prefix=True)


def test_http_only_checks(scan):
    """BREACH is HTTP-only: testssl.sh skips it on a mail port.  Ticketbleed likewise: on the
    implicit port it says "not applicable, not HTTP"; with -t smtp it is not run."""
    if "BREACH" in scan.by_id:
        scan.expect("BREACH", "not vulnerable", prefix=True)
    if scan.mode == "implicit":
        scan.expect("ticketbleed", "not applicable", prefix=True)
    elif "ticketbleed" in scan.by_id:
        assert re.match(r"not (?:vulnerable|applicable)", scan.by_id["ticketbleed"]["finding"]), scan.by_id["ticketbleed"]


# --------------------------------------------------------------------------- certificate

def test_certificate_chain(scan):
    """The full chain is sent (leaf, intermediate, root of qmail.pem, in order) and verifies
    against the test CA given with --add-ca."""
    scan.expect("cert_chain_of_trust", "passed.", "OK")
    scan.expect("cert_trust", "Ok via SAN", "OK", prefix=True)
    count = int(scan.get("certs_countServer")["finding"])
    assert count == 3, f"[{scan.mode}] the server sent {count} certificate(s), qmail.pem holds 3"
    scan.expect("certs_list_ordering_problem", "no")
    scan.expect("cert_keySize", "EC 256 bits", "OK")
    scan.expect("cert_signatureAlgorithm", "ECDSA with SHA256", "OK")
