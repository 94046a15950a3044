"""qmail-remote's MTA-STS delivering to a real Postfix as the MX.

The whole module runs in private mount and network namespaces (dnszone.enter_namespace): dnsmasq answers on
127.0.0.1:53, the policies are served over HTTPS by Python's http.server on 127.0.0.10:443 (chosen by the Host
header, so each domain has its own), and Postfix listens on 127.0.0.2:25 (STARTTLS, a certificate for
mx.sts.test from this module's trustme CA) and 127.0.0.3:25 (no STARTTLS).  qmail-remote trusts the CA through
control/tlscafile, for the policy fetch and the MX alike.

  domain          MX host (address)                   policy
  sts.test        mx.sts.test (127.0.0.2)             as each test serves it
  plain.test      mx.plain.test (127.0.0.3, no TLS)   enforce, mx: mx.plain.test

Environment: MAILTLS_QMAIL_REMOTE (the program), MAILTLS_TEST_PKI (conftest).
"""
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import RUN_TIMEOUT, must_have
from peers import instdir, start_postfix  # noqa: F401 - fixtures
import dnszone

MX_ADDR, PLAIN_ADDR, POLICY_ADDR = "127.0.0.2", "127.0.0.3", "127.0.0.10"
NOCONN = "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"
MSG = (b"From: s@client.test\nSubject: MTA-STS\nDate: Sat, 28 Nov 2026 04:00:00 +0000\n"
       b"Message-ID: <sts@client.test>\n\nbody\n")
ZONE = ["--mx-host=sts.test,mx.sts.test,10", f"--host-record=mx.sts.test,{MX_ADDR}",
        f"--host-record=mta-sts.sts.test,{POLICY_ADDR}", "--txt-record=_mta-sts.sts.test,v=STSv1; id=1",
        "--mx-host=plain.test,mx.plain.test,10", f"--host-record=mx.plain.test,{PLAIN_ADDR}",
        f"--host-record=mta-sts.plain.test,{POLICY_ADDR}", "--txt-record=_mta-sts.plain.test,v=STSv1; id=1",
        "--local=/test/"]


def policy(mode, *mx):
    return ("version: STSv1\r\nmode: %s\r\n%smax_age: 86400\r\n" % (mode, "".join(f"mx: {m}\r\n" for m in mx)))\
        .encode()


def prog():
    p = os.environ.get("MAILTLS_QMAIL_REMOTE")
    if not p or not os.access(p, os.X_OK):
        pytest.fail(f"MAILTLS_QMAIL_REMOTE={p!r} is not executable; run through ctest")
    return str(Path(p).resolve())


class PolicyServer:
    """https://mta-sts.<domain>/.well-known/mta-sts.txt for every domain of |bodies| (Host header)."""

    def __init__(self, work):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        self.bodies, self.requests = {}, []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                host = self.headers.get("Host", "")
                outer.requests.append((host, self.path))
                body = outer.bodies.get(host)
                if body is None or self.path != "/.well-known/mta-sts.txt":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(work / "policy.pem", work / "policy.key")
        self.httpd = ThreadingHTTPServer((POLICY_ADDR, 443), H)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def world():
    """The namespaces, the CA, DNS and the policy server, for the whole module."""
    try:
        import trustme
    except ImportError:
        must_have(False, "python3-trustme is not installed")
    must_have(shutil.which("dnsmasq") or os.access("/usr/sbin/dnsmasq", os.X_OK), "dnsmasq is not installed")
    work = Path(tempfile.mkdtemp(prefix="qmr-sts-pf."))
    work.chmod(0o755)
    dnszone.enter_namespace(work)
    ca = trustme.CA()
    (work / "ca.pem").write_bytes(ca.cert_pem.bytes())
    for name, host in (("policy", "mta-sts.sts.test"), ("mx", "mx.sts.test")):
        leaf = ca.issue_cert(host, "mta-sts.plain.test") if name == "policy" else ca.issue_cert(host)
        leaf.private_key_pem.write_to_path(str(work / f"{name}.key"))
        (work / f"{name}.pem").write_bytes(b"".join(c.bytes() for c in leaf.cert_chain_pems))
        os.chmod(work / f"{name}.key", 0o600)
    dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    dns = subprocess.Popen([dnsmasq, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                            "--listen-address=127.0.0.1", "--bind-interfaces", "--port=53", "--pid-file=",
                            "--user=root", *ZONE], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while dns.poll() is None and time.monotonic() < deadline and not dnszone.udp_listening("127.0.0.1", 53):
        time.sleep(0.05)
    pol = PolicyServer(work)
    pol.work = work
    yield pol
    pol.stop()
    dns.terminate()
    dns.wait(5)
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def mta(world, tmp_path_factory):
    """Postfix as both MX hosts (module-wide: its start is the slow part)."""
    from conftest import ProcSet
    import peers
    d = Path(tempfile.mkdtemp(prefix="mailtls-peer."))
    d.chmod(0o755)
    vmail = d / "vmail"
    vmail.mkdir()
    shutil.chown(vmail, user="nobody", group="nogroup")
    for f in ("mx.pem", "mx.key"):
        shutil.copy(world.work / f, d / f)

    def services():
        # reached through lo's 127/8 route without being interface addresses (no #5.4.6)
        return {"smtp": 25}, [f"{MX_ADDR}:25 inet n - n - - smtpd",
                              f"{PLAIN_ADDR}:25 inet n - n - - smtpd -o smtpd_tls_security_level=none",
                              "virtual unix - n n - - virtual"]
    main = ["inet_interfaces = all", f"smtpd_tls_cert_file = {d}/mx.pem", f"smtpd_tls_key_file = {d}/mx.key",
            "virtual_mailbox_domains = sts.test, plain.test", f"virtual_mailbox_base = {vmail}",
            "virtual_mailbox_maps = static:u/Maildir/", "virtual_uid_maps = static:65534",
            "virtual_gid_maps = static:65534", "smtpd_tls_received_header = yes"]
    procs = ProcSet(tmp_path_factory.mktemp("postfix-logs"))
    pki = Path(os.environ["MAILTLS_TEST_PKI"]).resolve() if os.environ.get("MAILTLS_TEST_PKI") else None
    if pki is None:
        pytest.fail("MAILTLS_TEST_PKI is not set; run through ctest")

    def need(binary):
        path = shutil.which(binary)
        must_have(path, f"peer binary {binary} is not installed")
        return path
    inst = peers.start_postfix(need, procs, pki, d, main=main, services=services)
    inst.vmail = vmail / "u" / "Maildir"
    yield inst
    inst.stop()
    procs.stop_all()
    shutil.rmtree(d, ignore_errors=True)


def deliver(world, tmp_path, domain):
    q = tmp_path / "qmail"
    (q / "control").mkdir(parents=True)
    (q / "control" / "me").write_text("client.test.example\n")
    (q / "control" / "timeoutremote").write_text("15\n")
    (q / "control" / "timeoutconnect").write_text("5\n")
    (q / "control" / "tlscafile").write_text(f"{world.work / 'ca.pem'}\n")
    (q / "control" / "tlsmtasts").write_text("1\n")
    (q / "control" / "dnssecanchor").write_text("")          # dnsmasq's zone is unsigned: validation off
    for d in ("tlsrpt", "mtastscache"):
        (q / "queue" / d).mkdir(parents=True, mode=0o700)
    p = subprocess.run([prog(), domain, "s@client.test", f"u@{domain}"], input=MSG, capture_output=True,
                       env={"QMAILHOME": str(q), "PATH": os.environ.get("PATH", "")}, timeout=RUN_TIMEOUT * 2)
    assert p.returncode == 0 and p.stderr == b"", p
    return p.stdout.decode("latin-1")


def events(tmp_path):
    """(policy type, policy domain, MX host, result) of each event line (tlsrpt.h)."""
    out = []
    for f in sorted((tmp_path / "qmail" / "queue" / "tlsrpt").iterdir()):
        for ln in f.read_text("latin-1").splitlines():
            x = [re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), v) for v in ln.split("\t")]
            assert len(x) == 11 and x[0] == "tlsrpt1", ln
            out.append((x[2], x[3], x[5], x[8]))
    return out


ACCEPTED = re.compile(r"r\0K127\.0\.0\.2 accepted message\.\nRemote host said: 250 2\.0\.0 Ok: queued as "
                      r"[0-9A-Za-z]+\n")


def delivered(mta, out, mark):
    assert ACCEPTED.match(out), out
    assert mta.wait_log(r"status=sent \(delivered to maildir\)", since=mark, timeout=RUN_TIMEOUT), mta.log(mark)
    files = sorted((mta.vmail / "new").iterdir(), key=lambda f: f.stat().st_mtime_ns)
    assert files and files[-1].read_bytes().endswith(MSG), files
    return files[-1].read_text("latin-1")


def test_enforce_matching_mx_delivers_verified(world, mta, tmp_path):
    world.bodies["mta-sts.sts.test"] = policy("enforce", "mx.sts.test")
    mark = len(mta.log())
    out = deliver(world, tmp_path, "sts.test")
    head = delivered(mta, out, mark)
    assert re.search(r"\nTLS: TLSv1\.3 TLS_\w+, Verified peer mx\.sts\.test \(against .*ca\.pem\)\n\0$", out), out
    assert "(using TLSv1.3 with cipher" in head, head
    assert events(tmp_path) == [("sts", "sts.test", "mx.sts.test", "success")]


def test_enforce_mismatching_mx_is_never_contacted(world, mta, tmp_path):
    world.bodies["mta-sts.sts.test"] = policy("enforce", "*.elsewhere.test")
    mark = len(mta.log())
    out = deliver(world, tmp_path, "sts.test")
    assert out == NOCONN + "MTA-STS: MX host mx.sts.test does not match the policy of sts.test\n\0", out
    # a connection of ours after qmail-remote ended: once Postfix logged its end, a connection
    # qmail-remote had made before it would be in the log too
    import socket
    with socket.create_connection((MX_ADDR, 25), timeout=RUN_TIMEOUT) as c:
        c.recv(100)
        c.sendall(b"QUIT\r\n")
        c.recv(100)
    assert mta.wait_log(r"disconnect from \S+\[127\.0\.0\.1\]", since=mark, timeout=RUN_TIMEOUT), mta.log(mark)
    assert len(re.findall(r"smtpd\[\d+\]: connect from", mta.log(mark))) == 1, mta.log(mark)
    assert events(tmp_path) == [("sts", "sts.test", "mx.sts.test", "validation-failure")]


def test_testing_mode_delivers_and_records(world, mta, tmp_path):
    world.bodies["mta-sts.sts.test"] = policy("testing", "*.elsewhere.test")
    mark = len(mta.log())
    out = deliver(world, tmp_path, "sts.test")
    delivered(mta, out, mark)
    assert "MTA-STS (testing): MX host mx.sts.test does not match the policy of sts.test\n" in out, out
    assert events(tmp_path) == [("sts", "sts.test", "mx.sts.test", "validation-failure")]


def test_enforce_mx_without_starttls_is_refused(world, mta, tmp_path):
    world.bodies["mta-sts.plain.test"] = policy("enforce", "mx.plain.test")
    mark = len(mta.log())
    out = deliver(world, tmp_path, "plain.test")
    assert out == NOCONN + "MTA-STS (enforce, policy of plain.test): TLS is required (policy verify) but " \
        "mx.plain.test [127.0.0.3] did not offer STARTTLS\n\0", out
    m = mta.wait_log(r"disconnect from \S+\[127\.0\.0\.1\] (.*)", since=mark)
    assert m and "mail=" not in m.group(1), mta.log(mark)
    assert events(tmp_path) == [("sts", "plain.test", "mx.plain.test", "starttls-not-supported")]
