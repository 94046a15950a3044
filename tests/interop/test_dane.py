"""DANE (RFC 7672) on our client against real servers: openssl s_server and Postfix.

Our client (mailtls-probe --tlsa) trusts no CA: every handshake that succeeds does so
because of a TLSA record.  The TLSA data is the PKI's NAME.tlsa files (mkpki.py,
Python's hashlib).  Against s_server, OpenSSL's own DANE client (s_client
-dane_tlsa_rrdata, with -dane_ee_no_namechecks as RFC 7672 wants for DANE-EE) judges
the same records and must come to the same verdict: an oracle that is not our code.
Against Postfix, the server has a self-signed certificate no CA vouches for (as most
MX hosts under DANE-EE do): a good 3 1 1 gives STARTTLS, the handshake and EHLO under
TLS, and Postfix logs the TLS connection; a mismatched record makes our client refuse
the handshake, and Postfix logs no TLS connection; records that are all unusable give
TLS without authentication.
"""
import re
import shutil

import pytest

from conftest import must_have
from peers import instdir, start_postfix  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def openssl():
    path = shutil.which("openssl")
    must_have(path, "peer binary openssl is not installed")
    return path


def tlsa(pki, cert, usage, selector, mtype):
    """The presentation form "U S M HEX" of a TLSA record for |cert|'s data."""
    for line in (pki / f"{cert}.tlsa").read_text().splitlines():
        s, m, hexdata = line.split()
        if int(s) == selector and int(m) == mtype:
            return f"{usage} {selector} {mtype} {hexdata}"
    raise AssertionError(f"no {selector} {mtype} line in {cert}.tlsa")


def spoil(record):
    """The same record with its first data byte changed."""
    u, s, m, h = record.split()
    return f"{u} {s} {m} {'%02x' % (int(h[:2], 16) ^ 0xff)}{h[2:]}"


# s_server files per leaf: -cert, -key, -cert_chain (what the server sends above the leaf).
LEAVES = {
    "selfsigned": ("selfsigned.pem", "selfsigned.key", None),
    "server-ec": ("server-ec-leaf.pem", "server-ec.key", "int.pem"),
    "wrongname": ("wrongname-leaf.pem", "wrongname.key", "int.pem"),
    "expired": ("expired-leaf.pem", "expired.key", "int.pem"),
}


def s_server(procs, openssl, pki, leaf):
    cert, key, chain = LEAVES[leaf]
    files = ["-cert", pki / cert, "-key", pki / key] + (["-cert_chain", pki / chain] if chain else [])
    return procs.start_server(lambda port: [openssl, "s_server", "-accept", f"127.0.0.1:{port}", *files,
                                            "-rev", "-tlsextdebug"], name="s_server")


def openssl_dane(procs, openssl, port, records, name):
    """OpenSSL's verdict on |records| for the server at |port|: True when it verified."""
    args = [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name, "-brief",
            "-verify_return_error", "-dane_tlsa_domain", name, "-dane_ee_no_namechecks"]
    for r in records:
        args += ["-dane_tlsa_rrdata", r]
    rc, out = procs.run(args, name="s_client", input=b"")
    return "Verification: OK" in out and rc == 0, out


def our_dane(probe, port, records, name, *args):
    argv = ["--servername", name, "--send", "ping\n", "--read", *args]
    for r in records:
        argv += ["--tlsa", r]
    return probe.client(port, *argv)


CASES = [
    # leaf, records (usage, cert, selector, mtype), name, our verdict: errcode (None: verified), depth
    ("selfsigned", [(3, "selfsigned", 1, 1)], "mx.test.example", None, 0),
    ("selfsigned", [(3, "selfsigned", 0, 1)], "mx.test.example", None, 0),
    ("selfsigned", [(3, "selfsigned", 1, 2)], "mx.test.example", None, 0),
    ("server-ec", [(3, "server-ec", 0, 0)], "mx.test.example", None, 0),
    ("server-ec", [(2, "int", 0, 1)], "mail.test.example", None, 1),
    ("server-ec", [(2, "int", 1, 1)], "mail.test.example", None, 1),
    ("expired", [(3, "expired", 1, 1)], "mx.test.example", None, 0),
    ("expired", [(2, "int", 0, 1)], "mail.test.example", "verify-expired", None),
    ("wrongname", [(2, "int", 0, 1)], "mail.test.example", "verify-name", None),
    ("selfsigned", [(3, "server-ec", 1, 1)], "mx.test.example", "verify-dane", None),
    ("server-ec", [(2, "ca", 0, 1)], "mail.test.example", "verify-dane", None),   # root not sent
]


@pytest.mark.parametrize("leaf,recs,name,errcode,depth", CASES)
def test_dane_against_openssl(probe, openssl, pki, procs, leaf, recs, name, errcode, depth):
    ss, port = s_server(procs, openssl, pki, leaf)
    records = [tlsa(pki, cert, u, s, m) for (u, cert, s, m) in recs]
    mark = ss.mark()
    rc, kv = our_dane(probe, port, records, name)
    ss.wait_for(r"^CONNECTION (?:CLOSED|FAILURE)", timeout=5, since=mark)
    log = ss.text(mark)
    assert kv["dane_usable"] == str(len(records)), kv.text
    if errcode is None:
        assert rc == 0 and kv["result"] == "ok", kv.text
        assert kv["verified"] == "1" and kv["dane"] == "matched", kv.text
        assert kv["dane_usage"] == str(recs[0][0]) and kv["dane_depth"] == str(depth), kv.text
        assert kv["read"] == "gnip", kv.text         # s_server -rev answered under TLS
    else:
        assert rc != 0 and kv["result"] == "error", kv.text
        assert kv["errcode"] == errcode and kv["error"].startswith("DANE: "), kv.text
        assert kv["dane"] == "failed" and "read" not in kv, kv.text
    # The MX host name went over the wire as SNI.
    assert re.search(r'extension "server name" \(id=0\), len=\d+\n0000 - .*' + re.escape(name[:8]), log), log
    # OpenSSL's DANE client agrees.
    ok, out = openssl_dane(procs, openssl, port, records, name)
    assert ok == (errcode is None), out


def test_dane_mismatch_then_agility_against_openssl(probe, openssl, pki, procs):
    """A spoiled SHA-512 record beside a good SHA-256 one of the same usage and selector:
    the stronger digest alone counts (RFC 7671 section 9), so the good one is ignored."""
    ss, port = s_server(procs, openssl, pki, "selfsigned")
    good = tlsa(pki, "selfsigned", 3, 1, 1)
    bad512 = spoil(tlsa(pki, "selfsigned", 3, 1, 2))
    rc, kv = our_dane(probe, port, [good, bad512], "mx.test.example")
    assert rc != 0 and kv["errcode"] == "verify-dane", kv.text
    rc, kv = our_dane(probe, port, [spoil(good)], "mx.test.example")
    assert rc != 0 and kv["errcode"] == "verify-dane", kv.text
    ok, out = openssl_dane(procs, openssl, port, [spoil(good)], "mx.test.example")
    assert not ok, out
    rc, kv = our_dane(probe, port, [spoil(good), tlsa(pki, "selfsigned", 3, 1, 2)], "mx.test.example")
    assert rc == 0 and kv["dane"] == "matched" and kv["dane_record"] == "1", kv.text


def test_dane_unusable_only_against_openssl(probe, openssl, pki, procs):
    ss, port = s_server(procs, openssl, pki, "selfsigned")
    records = [tlsa(pki, "selfsigned", 1, 1, 1), tlsa(pki, "server-ec", 0, 0, 1), "3 1 1 00ff"]
    rc, kv = our_dane(probe, port, records, "mx.test.example")
    assert kv["dane_usable"] == "0", kv.text
    assert rc == 0 and kv["result"] == "ok" and kv["read"] == "gnip", kv.text
    assert kv["verified"] == "0" and kv["verify_result"] == "verify-dane" and kv["dane"] == "unusable", kv.text


# ------------------------------------------------------------------------ Postfix

@pytest.fixture
def postfix_selfsigned(need, procs, pki, instdir):
    """Postfix offering STARTTLS with the PKI's self-signed certificate (no CA vouches for it)."""
    shutil.copy(pki / "selfsigned.pem", instdir / "ss.pem")
    shutil.copy(pki / "selfsigned.key", instdir / "ss.key")
    (instdir / "ss.key").chmod(0o600)
    inst = start_postfix(need, procs, pki, instdir,
                         main=[f"smtpd_tls_cert_file = {instdir}/ss.pem", f"smtpd_tls_key_file = {instdir}/ss.key"])
    yield inst
    inst.stop()


def starttls(probe, port, records, *args):
    argv = ["--starttls", "smtp", "--ehlo", "client.test.example", "--servername", "mx.test.example", *args]
    for r in records:
        argv += ["--tlsa", r]
    return probe.client(port, *argv)


def test_postfix_dane_ee_good(postfix_selfsigned, probe, pki):
    pf = postfix_selfsigned
    mark = pf.proc.mark()
    rc, kv = starttls(probe, pf.ports["tls"], [tlsa(pki, "selfsigned", 3, 1, 1)])
    assert rc == 0 and kv["result"] == "ok", kv.text
    assert kv["starttls_code"] == "220" and kv["tls_ehlo_code"] == "250", kv.text
    assert kv["verified"] == "1" and kv["dane"] == "matched" and kv["dane_usage"] == "3", kv.text
    assert kv["sni"] == "mx.test.example", kv.text
    m = pf.wait_log(r"TLS connection established from localhost\[127\.0\.0\.1\]: (TLSv1\.[23])", since=mark)
    assert m, pf.log(mark)
    assert kv["protocol"] == m.group(1), kv.text
    # Control: without DANE the same client trusts nothing and refuses this server.
    rc, kv = probe.client(pf.ports["tls"], "--starttls", "smtp", "--servername", "mx.test.example")
    assert rc != 0 and kv["errcode"] == "verify-selfsigned", kv.text


def test_postfix_dane_mismatch_refused(postfix_selfsigned, probe, pki):
    pf = postfix_selfsigned
    mark = pf.proc.mark()
    rc, kv = starttls(probe, pf.ports["tls"], [tlsa(pki, "server-ec", 3, 1, 1),
                                               spoil(tlsa(pki, "selfsigned", 3, 0, 1))])
    assert rc != 0 and kv["result"] == "error", kv.text
    assert kv["errcode"] == "verify-dane" and "TLSA mismatch" in kv["error"], kv.text
    assert kv["dane"] == "failed" and "tls_ehlo_code" not in kv, kv.text
    m = pf.wait_log(r"disconnect from localhost\[127\.0\.0\.1\].*", since=mark)
    assert m, pf.log(mark)
    assert "TLS connection established" not in pf.log(mark), pf.log(mark)


def test_postfix_dane_unusable_only(postfix_selfsigned, probe, pki):
    pf = postfix_selfsigned
    mark = pf.proc.mark()
    rc, kv = starttls(probe, pf.ports["tls"], [tlsa(pki, "selfsigned", 1, 1, 1)])
    assert rc == 0 and kv["tls_ehlo_code"] == "250", kv.text
    assert kv["dane_usable"] == "0" and kv["dane"] == "unusable" and kv["verified"] == "0", kv.text
    assert pf.wait_log(r"TLS connection established from localhost", since=mark), pf.log(mark)
