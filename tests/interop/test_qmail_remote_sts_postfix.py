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
import tempfile
from pathlib import Path

import pytest

from conftest import RUN_TIMEOUT, must_have
import qmailremote
from qmailremote import qmail_home
import dnszone
import mtasts_server
from mtasts_server import PolicyServer

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
    return mtasts_server.policy(mode, mx)


@pytest.fixture(scope="module")
def world():
    """The namespaces, the CA, DNS and the policy server, for the whole module."""
    try:
        import trustme
    except ImportError:
        must_have(False, "python3-trustme is not installed")
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
    dns = dnszone.start_dnsmasq(ZONE)
    pol = PolicyServer(POLICY_ADDR, work / "policy.pem", work / "policy.key")
    pol.work = work
    yield pol
    pol.stop()
    dnszone.end(dns)
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def mta(world, tmp_path_factory):
    """Postfix as both MX hosts (module-wide: its start is the slow part)."""
    from conftest import ProcSet
    import peers
    d = Path(tempfile.mkdtemp(prefix="mailtls-peer."))
    d.chmod(0o755)
    procs = ProcSet(tmp_path_factory.mktemp("postfix-logs"))
    pki = Path(os.environ["MAILTLS_TEST_PKI"]).resolve() if os.environ.get("MAILTLS_TEST_PKI") else None
    if pki is None:
        pytest.fail("MAILTLS_TEST_PKI is not set; run through ctest")

    def need(binary):
        path = shutil.which(binary)
        must_have(path, f"peer binary {binary} is not installed")
        return path
    inst = peers.start_mx_postfix(need, procs, pki, d, world.work / "mx.pem", world.work / "mx.key",
                                  ["sts.test", "plain.test"], MX_ADDR, PLAIN_ADDR)
    yield inst
    inst.stop()
    procs.stop_all()
    shutil.rmtree(d, ignore_errors=True)


def deliver(world, tmp_path, domain):
    q = qmail_home(tmp_path / "qmail", timeoutremote=15, queue=("tlsrpt", "mtastscache"),
                   tlscafile=f"{world.work / 'ca.pem'}\n", tlsmtasts="1\n",
                   dnssecanchor="")          # dnsmasq's zone is unsigned: validation off
    return qmailremote.deliver(q, domain, MSG)


def events(tmp_path):
    """(policy type, policy domain, MX host, result) of each event."""
    return [(e["policy_type"], e["policy_domain"], e["mx_host"], e["result"])
            for e in qmailremote.events(tmp_path / "qmail")]


def delivered(mta, out, mark):
    return qmailremote.delivered(mta, out, mark, MSG)


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
