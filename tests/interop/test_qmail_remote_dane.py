"""qmail-remote's levels dane and dane-only (RFC 7672) against a signed zone and a real Postfix.

The whole module runs in private mount and network namespaces (dnszone.enter_namespace):
nsd serves the signed zone dane.example (and its unsigned child insec.dane.example,
delegated without DS) on 127.0.0.53, unbound resolves on 127.0.0.1 (resolv.conf), and
qmail-remote validates with the zone's key as its trust anchor (control/dnssecanchor).
Every MX host is 127.0.0.2, where Postfix listens on port 25 (bound to all addresses) with a certificate for all
the MX names, issued by a CA of this module and sent with it (leaf, CA).

  domain                MX host            _25._tcp.<MX host>
  good311.dane.example  mx311              TLSA 3 1 1 (the leaf's key)
  good201.dane.example  mx201              TLSA 2 0 1 (the CA certificate)
  mismatch.dane.example mxbad              TLSA 3 1 1 (another key)
  unusable.dane.example mxunus             TLSA 0 0 1 and 1 1 1 (PKIX usages, unusable for SMTP)
  bogus.dane.example    mxbogus            TLSA 3 1 1, changed after signing (bogus)
  servfail.dane.example mxfail             under _tcp.mxfail, delegated to a server that is not there
  notlsa.dane.example   mxnotlsa           none (NXDOMAIN, signed)
  tawrong.dane.example  mxtawrong          TLSA 2 0 1 (the CA), but the certificate does not name mxtawrong
  nostarttls.dane.example mxplain (127.0.0.3, no STARTTLS) TLSA 3 1 1 (the leaf's key)
  nomx.dane.example     (no MX: itself)    TLSA 3 1 1 (the leaf's key)
  twomx.dane.example    mxbogus (10), mx311 (20)
  bogusaddr.dane.example mxbogusa          its A record changed after signing (bogus)
  named.dane.example    mxtawrong          (the certificate names the domain, not the MX host)
  other.insec.dane.example  mx311          an insecure MX record, a secure MX host
  named2.insec.dane.example mxtawrong      the same, the certificate naming the domain only
  insec.dane.example    mx.insec (unsigned) TLSA 3 1 1 of another key, insecure: must be ignored
  alias.dane.example    mxalias CNAME mx311   none at mxalias: mx311's found at the alias's end
  alias2.dane.example   mxalias2 CNAME mxnotlsa  TLSA 3 1 1 (the leaf's key) at mxalias2 only
  alias3.dane.example   mxalias3 CNAME mxbad  TLSA 3 1 1 (the leaf's key) at mxalias3, mxbad's another key
  alias4.dane.example   mxalias4 CNAME mx201  none at mxalias4 (which the certificate does not name)

Each case delivers (and Postfix's Maildir holds the message, its log the TLS session) or
is refused with the exact report and no MAIL FROM reaching Postfix (no connection at all
when DNS alone refuses the MX); the TLS-RPT event of each DANE outcome (policy type tlsa,
the result type, the TLSA records as the policy string) is checked too.
Environment: MAILTLS_QMAIL_REMOTE (the program), MAILTLS_TEST_PKI (conftest).
"""
import datetime
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

import qmailremote
from qmailremote import qmail_home
from peers import instdir, start_mx_postfix  # noqa: F401 - fixtures
import dnszone

ORIGIN = "dane.example."
MX_ADDR = "127.0.0.2"
PLAIN_ADDR = "127.0.0.3"   # the same Postfix without STARTTLS
NOCONN = b"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"
MSG = (b"From: s@client.test\nSubject: DANE\nDate: Sat, 28 Nov 2026 04:00:00 +0000\n"
       b"Message-ID: <dane@client.test>\n\nbody\n")
DOMAINS = ["good311", "good201", "mismatch", "unusable", "bogus", "servfail", "notlsa", "insec", "tawrong",
           "nostarttls", "nomx", "twomx", "bogusaddr", "named", "other.insec", "named2.insec",
           "alias", "alias2", "alias3", "alias4"]



def make_pki(d):
    """A CA and a leaf for every MX name (P-256), as PEM files in |d|; returns the DER
    of the CA certificate, of the leaf's SubjectPublicKeyInfo, and of another key's."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("DANE test CA")).issuer_name(name("DANE test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    # every MX name but mxtawrong's
    names = [f"mx{x}.{ORIGIN[:-1]}" for x in ("311", "201", "bad", "unus", "bogus", "fail", "notlsa", "plain")]
    names += [f"mx.insec.{ORIGIN[:-1]}", f"nomx.{ORIGIN[:-1]}", f"named.{ORIGIN[:-1]}",
              f"named2.insec.{ORIGIN[:-1]}"]
    leaf = (x509.CertificateBuilder().subject_name(name(names[0])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (d / "dane-cert.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    (d / "dane-key.pem").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    os.chmod(d / "dane-key.pem", 0o600)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(der, spki)
    return ca.public_bytes(der), key.public_key().public_bytes(der, spki), other


def sha256(b):
    return hashlib.sha256(b).hexdigest()


@pytest.fixture(scope="module")
def world():
    """The namespaces, the PKI and the signed zone, for the whole module."""
    work = Path(tempfile.mkdtemp(prefix="qmr-dane."))
    work.chmod(0o755)
    dnszone.enter_namespace(work)
    ca_der, spki, other = make_pki(work)
    good, ta, wrong = sha256(spki), sha256(ca_der), sha256(other)
    recs = []
    for dom, mx in (("good311", "mx311"), ("good201", "mx201"), ("mismatch", "mxbad"), ("unusable", "mxunus"),
                    ("bogus", "mxbogus"), ("servfail", "mxfail"), ("notlsa", "mxnotlsa"), ("tawrong", "mxtawrong")):
        recs += [f"{dom} MX 10 {mx}", f"{mx} A {MX_ADDR}"]
    recs += ["nostarttls MX 10 mxplain", f"mxplain A {PLAIN_ADDR}", f"_25._tcp.mxplain TLSA 3 1 1 {good}",
             f"_25._tcp.mxtawrong TLSA 2 0 1 {ta}",
             f"nomx A {MX_ADDR}", f"_25._tcp.nomx TLSA 3 1 1 {good}",
             "twomx MX 10 mxbogus", "twomx MX 20 mx311",
             "bogusaddr MX 10 mxbogusa", f"mxbogusa A {MX_ADDR}",
             "named MX 10 mxtawrong"]
    for i, target in (("", "mx311"), ("2", "mxnotlsa"), ("3", "mxbad"), ("4", "mx201")):
        recs += [f"alias{i} MX 10 mxalias{i}", f"mxalias{i} CNAME {target}"]
    recs += [f"_25._tcp.mxalias2 TLSA 3 1 1 {good}", f"_25._tcp.mxalias3 TLSA 3 1 1 {good}"]
    recs += [f"_25._tcp.mx311 TLSA 3 1 1 {good}", f"_25._tcp.mx201 TLSA 2 0 1 {ta}",
             f"_25._tcp.mxbad TLSA 3 1 1 {wrong}",
             f"_25._tcp.mxunus TLSA 0 0 1 {ta}", f"_25._tcp.mxunus TLSA 1 1 1 {good}",
             f"_25._tcp.mxbogus TLSA 3 1 1 {good}",
             "_tcp.mxfail NS nslame", "nslame A 127.0.0.99",   # nothing answers there: SERVFAIL
             "insec NS ns"]                                       # no DS: an insecure delegation
    zone = dnszone.SignedZone(
        work, ORIGIN, recs,
        after_signing=lambda s: dnszone.spoil_rdata(dnszone.spoil_rdata(s, f"_25._tcp.mxbogus.{ORIGIN}", "TLSA"),
                                                    f"mxbogusa.{ORIGIN}", "A"),
        children={f"insec.{ORIGIN}": ["@ MX 10 mx", f"mx A {MX_ADDR}", f"_25._tcp.mx TLSA 3 1 1 {wrong}",
                                      f"other MX 10 mx311.{ORIGIN}", f"named2 MX 10 mxtawrong.{ORIGIN}"]})
    zone.work = work
    zone.digests = {"good": good.upper(), "ta": ta.upper(), "wrong": wrong.upper()}
    yield zone
    zone.stop()
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def mta(world, need, procs, pki, instdir):  # noqa: F811 - the fixture of peers.py
    inst = start_mx_postfix(need, procs, pki, instdir, world.work / "dane-cert.pem", world.work / "dane-key.pem",
                            [f"{x}.{ORIGIN[:-1]}" for x in DOMAINS], MX_ADDR, PLAIN_ADDR)
    yield inst
    inst.stop()


def deliver(world, tmp_path, dom, level, anchor=None, routes=None):
    q = qmail_home(tmp_path / "qmail", timeoutremote=15, queue=("tlsrpt", "tlscache"),
                   dnssecanchor=f"{anchor or world.anchor}\n", tlspolicy=f":{level}\n")
    if routes:
        (q / "control" / "smtproutes").write_text(routes)
    return qmailremote.deliver(q, f"{dom}.{ORIGIN[:-1]}", MSG)


def events(tmp_path):
    """The TLS-RPT events qmail-remote recorded, as (policy type, domain, MX host,
    result, policy string)."""
    return [(e["policy_type"], e["domain"], e["mx_host"], e["result"], e["policy"])
            for e in qmailremote.events(tmp_path / "qmail")]


def tlsa_events(tmp_path):
    return [e for e in events(tmp_path) if e[0] == "tlsa"]


def delivered(mta, out, mark, n=1):
    return qmailremote.delivered(mta, out, mark, MSG, n)


def tls_line(out):
    lines = [ln for ln in out.split("\n") if ln.startswith("TLS: ")]
    assert len(lines) == 1, out
    return lines[0]


def nothing_sent(mta, mark, connected):
    """Postfix got no MAIL FROM and stored nothing; |connected|: whether qmail-remote
    was to reach it at all (a refusal before connecting must not)."""
    log = mta.log(mark)
    assert "from=<" not in log and "status=sent" not in log, log
    assert not (mta.vmail / "new").exists() or not any((mta.vmail / "new").iterdir())
    if connected:
        m = mta.wait_log(r"disconnect from \S+\[127\.0\.0\.1\] (.*)", since=mark)
        assert m and "mail=" not in m.group(1), log
    else:
        assert "connect from" not in log, log


def refused(world, mta, tmp_path, dom, level, report, connected):
    """A delivery to |dom| at |level| that sends nothing: qmail-remote reports NOCONN
    then |report|, and Postfix got no mail (nothing_sent)."""
    mark = len(mta.log())
    out = deliver(world, tmp_path, dom, level)
    assert out == NOCONN.decode() + report + "\n\0", out
    nothing_sent(mta, mark, connected)


# --------------------------------------------------------------------------- usable TLSA: authenticated

@pytest.mark.parametrize("level", ["dane", "dane-only"])
@pytest.mark.parametrize("dom,mx,how", [("good311", "mx311", "DANE TLSA 3 1 1, the certificate itself"),
                                        ("good201", "mx201", "DANE TLSA 2 0 1, trust anchor in the chain")])
def test_good_tlsa_delivers_verified(world, mta, tmp_path, level, dom, mx, how):
    mark = len(mta.log())
    out = deliver(world, tmp_path, dom, level)
    head = delivered(mta, out, mark)
    t = tls_line(out)
    assert re.fullmatch(rf"TLS: TLSv1\.3 TLS_\w+, Verified peer {mx}\.dane\.example \({how}\)", t), out
    assert out.endswith(t + "\n\0"), out
    assert "(using TLSv1.3 with cipher" in head, head
    assert mta.wait_log(r"TLS connection established from \S+\[127\.0\.0\.1\]: TLSv1\.3", since=mark)
    rec = f"3 1 1 {world.digests['good']}" if dom == "good311" else f"2 0 1 {world.digests['ta']}"
    assert tlsa_events(tmp_path) == [("tlsa", f"{dom}.dane.example", f"{mx}.dane.example", "success", rec)]


def test_mismatched_tlsa_refuses(world, mta, tmp_path):
    refused(world, mta, tmp_path, "mismatch", "dane", "TLS certificate verification failed with "
            "mxbad.dane.example [127.0.0.2] (policy dane): TLS handshake after STARTTLS: DANE: TLSA mismatch: "
            "no usable record matches the server's chain (verify-dane)", connected=True)
    assert tlsa_events(tmp_path) == [("tlsa", "mismatch.dane.example", "mxbad.dane.example", "tlsa-invalid",
                                      f"3 1 1 {world.digests['wrong']}")]


def test_dane_ta_checks_the_mx_host_name(world, mta, tmp_path):
    """2 0 1 matches the CA the server sent, but its certificate does not name mxtawrong
    (nor the domain): refused, nothing sent."""
    mark = len(mta.log())
    out = deliver(world, tmp_path, "tawrong", "dane")
    assert out.startswith(NOCONN.decode() + "TLS certificate verification failed with mxtawrong.dane.example "
                          "[127.0.0.2] (policy dane): TLS handshake after STARTTLS: DANE: "), out
    assert out.endswith(" (verify-name)\n\0"), out
    nothing_sent(mta, mark, connected=True)
    assert [e[3] for e in tlsa_events(tmp_path)] == ["certificate-host-mismatch"]


@pytest.mark.parametrize("level", ["dane", "dane-only"])
def test_usable_tlsa_without_starttls_sends_nothing(world, mta, tmp_path, level):
    """No fallback to plaintext: an MX with usable TLSA records that offers no STARTTLS."""
    refused(world, mta, tmp_path, "nostarttls", level, f"DANE: TLS is required (policy {level}) but "
            "mxplain.dane.example [127.0.0.3] did not offer STARTTLS", connected=True)
    assert [e[3] for e in tlsa_events(tmp_path)] == ["starttls-not-supported"]


# --------------------------------------------------------------------------- records, none usable

def test_unusable_tlsa_dane_requires_tls_unauthenticated(world, mta, tmp_path):
    mark = len(mta.log())
    out = deliver(world, tmp_path, "unusable", "dane")
    delivered(mta, out, mark)
    assert re.fullmatch(r"TLS: TLSv1\.[23] \S+, Untrusted peer mxunus\.dane\.example "
                        r"\(DANE: no usable TLSA, TLS required\)", tls_line(out)), out
    (e,) = tlsa_events(tmp_path)
    assert e[:4] == ("tlsa", "unusable.dane.example", "mxunus.dane.example", "tlsa-invalid"), e
    assert sorted(e[4].split("\n")) == [f"0 0 1 {world.digests['ta']}", f"1 1 1 {world.digests['good']}"], e


def test_unusable_tlsa_dane_only_refuses(world, mta, tmp_path):
    refused(world, mta, tmp_path, "unusable", "dane-only", "DANE: no usable TLSA records for "
            "mxunus.dane.example [127.0.0.2], not used (policy dane-only)", connected=False)
    assert [e[3] for e in tlsa_events(tmp_path)] == ["tlsa-invalid"]


# --------------------------------------------------------------------------- DNSSEC failures: MX unusable

@pytest.mark.parametrize("level", ["dane", "dane-only"])
def test_bogus_tlsa_makes_the_mx_unusable(world, mta, tmp_path, level):
    refused(world, mta, tmp_path, "bogus", level, "DANE: TLSA lookup bogus (DNSSEC validation failed) for "
            f"_25._tcp.mxbogus.dane.example [127.0.0.2], not used (policy {level})", connected=False)
    assert [e[3] for e in tlsa_events(tmp_path)] == ["dnssec-invalid"]


def test_servfail_for_tlsa_makes_the_mx_unusable(world, mta, tmp_path):
    refused(world, mta, tmp_path, "servfail", "dane", "DANE: TLSA lookup failed temporarily for "
            "_25._tcp.mxfail.dane.example [127.0.0.2], not used (policy dane)", connected=False)
    assert [e[3] for e in tlsa_events(tmp_path)] == ["dnssec-invalid"]


# --------------------------------------------------------------------------- no TLSA to go by

@pytest.mark.parametrize("dom,mx,why", [
    ("notlsa", "mxnotlsa", "no TLSA records"),
    ("insec", "mx.insec", "address records not DNSSEC-validated")])
def test_without_tlsa_dane_is_may(world, mta, tmp_path, dom, mx, why):
    """dane: TLS opportunistic.  For insec, the TLSA there (another key) is insecure and must
    not be used: the delivery goes through."""
    mark = len(mta.log())
    out = deliver(world, tmp_path, dom, "dane")
    delivered(mta, out, mark)
    assert f"\nDANE: {why} for {mx}.dane.example [127.0.0.2], TLS opportunistic (policy dane)\n" in out, out
    assert re.fullmatch(rf"TLS: TLSv1\.3 TLS_\w+, (Untrusted|Trusted) peer {mx}\.dane\.example", tls_line(out)), out
    assert out.count("DANE: ") == 1, out
    # no DANE policy applied: one event, as a may delivery's (RFC 8460's dane-required is dane-only's)
    assert events(tmp_path) == [("no-policy-found", f"{dom}.dane.example", f"{mx}.dane.example", "success", "")]


@pytest.mark.parametrize("dom,mx,why", [
    ("notlsa", "mxnotlsa", "no TLSA records"),
    ("insec", "mx.insec", "address records not DNSSEC-validated")])
def test_without_tlsa_dane_only_refuses(world, mta, tmp_path, dom, mx, why):
    refused(world, mta, tmp_path, dom, "dane-only", f"DANE: {why} for {mx}.dane.example [127.0.0.2], "
            "not used (policy dane-only)", connected=False)
    assert [(e[0], e[3]) for e in events(tmp_path)] == [("tlsa", "dane-required")]


# --------------------------------------------------------------------------- an MX host that is an alias

@pytest.mark.parametrize("n,rec,how", [
    ("", "3 1 1 {good}", "DANE TLSA 3 1 1, the certificate itself"),
    ("2", "3 1 1 {good}", "DANE TLSA 3 1 1, the certificate itself"),
    ("4", "2 0 1 {ta}", "DANE TLSA 2 0 1, trust anchor in the chain")])
def test_alias_mx_tlsa_at_the_alias_end_then_at_the_name(world, mta, tmp_path, n, rec, how):
    """RFC 7672 2.2.2: mxalias leads (validated CNAME) to mx311, whose TLSA is used; mxalias2 leads
    to a host without TLSA, so its own is; mxalias4's end mx201 has 2 0 1 and is the name the
    certificate must carry (section 3.2.2): the certificate does not name mxalias4."""
    mark = len(mta.log())
    out = deliver(world, tmp_path, f"alias{n}", "dane-only")
    delivered(mta, out, mark)
    assert re.fullmatch(rf"TLS: TLSv1\.3 TLS_\w+, Verified peer mxalias{n}\.dane\.example \({re.escape(how)}\)",
                        tls_line(out)), out
    rec = rec.format(**{k: v for k, v in world.digests.items()})
    assert tlsa_events(tmp_path) == [("tlsa", f"alias{n}.dane.example", f"mxalias{n}.dane.example", "success",
                                      rec)]


def test_alias_mx_records_at_the_alias_end_decide(world, mta, tmp_path):
    """mxalias3's end mxbad has TLSA records (another key): they decide, and the leaf's key
    published at mxalias3 itself is not looked at."""
    refused(world, mta, tmp_path, "alias3", "dane", "TLS certificate verification failed with "
            "mxalias3.dane.example [127.0.0.2] (policy dane): TLS handshake after STARTTLS: DANE: TLSA mismatch: "
            "no usable record matches the server's chain (verify-dane)", connected=True)
    assert [e[3] for e in tlsa_events(tmp_path)] == ["tlsa-invalid"]


# --------------------------------------------------------------------------- more of RFC 7672 section 2.2

def test_domain_without_mx_is_its_own_tlsa_base(world, mta, tmp_path):
    """No MX (denied securely): the domain is the host, _25._tcp.<domain> its TLSA."""
    mark = len(mta.log())
    out = deliver(world, tmp_path, "nomx", "dane-only")
    delivered(mta, out, mark)
    assert re.fullmatch(r"TLS: TLSv1\.3 TLS_\w+, Verified peer nomx\.dane\.example "
                        r"\(DANE TLSA 3 1 1, the certificate itself\)", tls_line(out)), out


def test_an_unusable_mx_passes_to_the_next(world, mta, tmp_path):
    """The first MX's TLSA are bogus: that MX is not used, the second delivers under DANE."""
    mark = len(mta.log())
    out = deliver(world, tmp_path, "twomx", "dane")
    delivered(mta, out, mark)
    assert "Verified peer mx311.dane.example (DANE TLSA 3 1 1" in tls_line(out), out
    assert [(e[2], e[3]) for e in tlsa_events(tmp_path)] == [("mxbogus.dane.example", "dnssec-invalid"),
                                                             ("mx311.dane.example", "success")]


@pytest.mark.parametrize("level", ["may", "dane"])
def test_bogus_address_records_are_a_temporary_failure(world, mta, tmp_path, level):
    """A validating resolver's SERVFAIL, whatever the level: never "no such host"."""
    mark = len(mta.log())
    out = deliver(world, tmp_path, "bogusaddr", level)
    assert out == "ZSorry, I couldn't find any host by that name. (#4.1.2)\n\0", out
    nothing_sent(mta, mark, connected=False)


@pytest.mark.parametrize("content", ["not a key\n", None])
def test_an_unusable_trust_anchor_is_a_control_failure(world, mta, tmp_path, content):
    """The file control/dnssecanchor names holds no key unbound takes, or is missing:
    no delivery without the validation asked for."""
    bad = tmp_path / "anchor.key"
    if content is not None:
        bad.write_text(content)
    mark = len(mta.log())
    out = deliver(world, tmp_path, "good311", "dane", anchor=bad)
    assert out == "ZUnable to read control files. (#4.3.0)\ncontrol/dnssecanchor line 1 is malformed.\n\0", out
    nothing_sent(mta, mark, connected=False)


def test_resumed_session_is_checked_against_the_tlsa_again(world, mta, tmp_path):
    """The session cache (queue/tlscache): the second delivery resumes, and its peer is
    still authenticated by the TLSA record, not by a verdict carried in the cache."""
    mark = len(mta.log())
    first = deliver(world, tmp_path, "good311", "dane")
    delivered(mta, first, mark)
    assert not tls_line(first).endswith(", resumed"), first
    mark = len(mta.log())
    second = deliver(world, tmp_path, "good311", "dane")
    delivered(mta, second, mark, n=2)
    assert re.fullmatch(r"TLS: TLSv1\.3 TLS_\w+, Verified peer mx311\.dane\.example "
                        r"\(DANE TLSA 3 1 1, the certificate itself\), resumed", tls_line(second)), second


def test_dane_ta_of_a_relay_checks_the_relay_name_only(world, mta, tmp_path):
    """smtproutes sends nomx.dane.example to mxtawrong (TLSA 2 0 1): the certificate names
    nomx.dane.example but not mxtawrong, and a relay is no MX of the domain, so the
    domain is no reference identifier: refused."""
    mark = len(mta.log())
    out = deliver(world, tmp_path, "nomx", "dane", routes="nomx.dane.example:mxtawrong.dane.example\n")
    assert out.startswith(NOCONN.decode() + "TLS certificate verification failed with mxtawrong.dane.example "
                          "[127.0.0.2] (policy dane): TLS handshake after STARTTLS: DANE: "), out
    assert out.endswith(" (verify-name)\n\0"), out
    nothing_sent(mta, mark, connected=True)


def test_dane_ta_accepts_the_domain_name_of_a_secure_mx(world, mta, tmp_path):
    """The reverse: named.dane.example's MX mxtawrong is not named by the certificate, but
    the recipient domain is, and the MX records were validated (RFC 7672 section 3.2.2):
    delivered."""
    mark = len(mta.log())
    out = deliver(world, tmp_path, "named", "dane")
    delivered(mta, out, mark)
    assert "Verified peer mxtawrong.dane.example (DANE TLSA 2 0 1, trust anchor in the chain)" in out, out


def test_insecure_mx_records_with_a_secure_mx_host_use_its_tlsa(world, mta, tmp_path):
    """RFC 7672 section 2.2: the MX host's validated address records are what counts; the
    MX RRset in an unsigned zone only keeps the domain out of the names (below)."""
    mark = len(mta.log())
    out = deliver(world, tmp_path, "other.insec", "dane-only")
    delivered(mta, out, mark)
    assert re.fullmatch(r"TLS: TLSv1\.3 TLS_\w+, Verified peer mx311\.dane\.example "
                        r"\(DANE TLSA 3 1 1, the certificate itself\)", tls_line(out)), out


def test_insecure_mx_records_keep_the_domain_out_of_dane_ta_names(world, mta, tmp_path):
    """named2.insec's MX records are unsigned: an attacker could have chosen mxtawrong, so the
    certificate naming named2.insec.dane.example proves nothing (RFC 7672 section 3.2.2)."""
    mark = len(mta.log())
    out = deliver(world, tmp_path, "named2.insec", "dane")
    assert out.startswith(NOCONN.decode() + "TLS certificate verification failed with mxtawrong.dane.example "
                          "[127.0.0.2] (policy dane): TLS handshake after STARTTLS: DANE: "), out
    assert out.endswith(" (verify-name)\n\0"), out
    nothing_sent(mta, mark, connected=True)
