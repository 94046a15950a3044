"""libmailtls against real TLS peers of other stacks (OpenSSL, GnuTLS), on loopback.

Our side is mailtls-probe (tests/helpers/probe.c): "probe server" greets with
"hello <protocol>" and echoes; "probe client" prints key=value facts.  Peers:
openssl s_client / s_server, gnutls-cli / gnutls-serv.  Fixtures (pki, need,
procs, probe) are in conftest.py.  Every process is started on a free port and
stopped by its pid; every wait is bounded.

gnutls-serv has no option to choose its listening address: it listens on
0.0.0.0 and :: for the second it lives; all its traffic here is on loopback.
"""
import hashlib
import re
import ssl

import pytest

# s_client writes what it reads unbuffered, its own reports (ticket hex dumps)
# buffered: our greeting may land in the middle of one of their lines.
GREETING = r"(?:^|\s)hello (TLSv1(?:\.[0-3])?)\r?$"
INTERMEDIATE = "mailtls Test Intermediate CA"
ECDHE_AEAD = r"^ECDHE-(?:ECDSA|RSA)-(?:AES(?:128|256)-GCM-SHA(?:256|384)|CHACHA20-POLY1305)$"
SERVER_FIRST = "ECDHE-ECDSA-AES128-GCM-SHA256"   # first in the library's default server order
SERVER_LATER = "ECDHE-ECDSA-AES256-GCM-SHA384"   # later in that order
TLS12 = ["--max", "1.2"]
# OpenSSL 3 refuses SHA-1 (needed below TLS 1.2) at its default security level:
# level 0 makes the OpenSSL side really offer / accept TLS 1.0 and 1.1.
OLD_OPENSSL = ["-cipher", "DEFAULT@SECLEVEL=0"]


# --------------------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def openssl(need):
    return need("openssl")


def s_client_start(procs, openssl, port, *args):
    return procs.start([openssl, "s_client", "-connect", f"127.0.0.1:{port}", *args],
                       name="s_client", stdin=True)


def s_client(procs, openssl, port, *args, until=GREETING):
    """openssl s_client against our server: waits until |until| shows (by default our
    greeting, so the whole handshake and any TLS 1.3 tickets were read) or s_client ends."""
    p = s_client_start(procs, openssl, port, *args)
    p.wait_for(until)
    return p.finish()   # s_client ends the session at EOF on its stdin


def greeting(out):
    m = re.search(GREETING, out, re.M)
    return m.group(1) if m else None


def cipher_of(out):
    m = re.search(r"^(?:New|Reused), (?:TLSv1(?:\.[0-3])?|SSLv3), Cipher is (\S+)", out, re.M)
    return m.group(1) if m else None


def verify_ca(pki, servername="localhost"):
    return ["-CAfile", pki / "ca.pem", "-verify_return_error", "-servername", servername]


# s_server certificate files per leaf: -cert (only its first certificate is used), -key, -cert_chain.
S_SERVER_LEAVES = {
    "server-ec": ("server-ec-leaf.pem", "server-ec.key", "int.pem"),
    "wrongname": ("wrongname-leaf.pem", "wrongname.key", "int.pem"),
    "expired": ("expired-leaf.pem", "expired.key", "int.pem"),
    "unknown": ("unknown.pem", "unknown.key", "unknown-ca.pem"),   # leaf + its own (untrusted) root
    "unknown-leafonly": ("unknown.pem", "unknown.key", None),
    "selfsigned": ("selfsigned.pem", "selfsigned.key", None),
}


def s_server(procs, openssl, pki, leaf, *args):
    """openssl s_server in -rev mode (answers each line reversed) with -tlsextdebug
    (logs the client's extensions); returns (Proc, port)."""
    cert, key, chain = S_SERVER_LEAVES[leaf]
    files = ["-cert", pki / cert, "-key", pki / key] + (["-cert_chain", pki / chain] if chain else [])
    return procs.start_server(lambda port: [openssl, "s_server", "-accept", f"127.0.0.1:{port}",
                                            *files, "-rev", "-tlsextdebug", *args], name="s_server")


def s_server_log(p, since):
    """s_server's log of the connection(s) made after |since|, once it logged their end."""
    p.wait_for(r"^CONNECTION (?:CLOSED|FAILURE)", timeout=5, since=since)
    return p.text(since)


def probe_client(probe, pki, port, *args, servername="localhost"):
    """Our client with the test CA, sending "ping" and reading the answer."""
    sn = ["--servername", servername] if servername else []
    return probe.client(port, "--ca", pki / "ca.pem", *sn, "--send", "ping\n", "--read", *args)


def sha256_pin(pem_file):
    """The pin "SHA256:<hex>" of the first certificate in |pem_file|."""
    der = ssl.PEM_cert_to_DER_cert(pem_file.read_text())
    return "SHA256:" + hashlib.sha256(der).hexdigest()


def assert_ok(rc, kv):
    assert rc == 0 and kv.get("result") == "ok", f"probe client failed:\n{kv.text}"


# ------------------------------------------------- our server, openssl s_client as client

def test_server_sends_chain_and_greets(probe, openssl, pki):
    srv = probe.server("--cert", pki / "server-ec-combined.pem")
    rc, out = s_client(probe.procs, openssl, srv.port, *verify_ca(pki), "-showcerts")
    res = srv.result()
    assert rc == 0, out
    assert "Verify return code: 0 (ok)" in out, out
    # The combined PEM (key, leaf, intermediate, root) sends the chain: the
    # intermediate is shown as certificate 1, after the leaf.
    assert re.search(r"^ 0 s:CN = localhost", out, re.M), out
    assert re.search(rf"^ 1 s:.*CN = {INTERMEDIATE}", out, re.M), out
    assert greeting(out) == "TLSv1.3", out
    assert res["result"] == "ok" and res["protocol"] == "TLSv1.3", res.text
    assert res["sni"] == "localhost", res.text
    assert res["end"] == "close_notify", res.text


def test_server_tls12_ecdhe_aead(probe, openssl, pki):
    srv = probe.server("--cert", pki / "server-ec-combined.pem")
    rc, out = s_client(probe.procs, openssl, srv.port, *verify_ca(pki), "-tls1_2")
    res = srv.result()
    assert rc == 0 and greeting(out) == "TLSv1.2", out
    assert re.match(ECDHE_AEAD, cipher_of(out) or ""), out
    assert res["protocol"] == "TLSv1.2", res.text
    assert re.match(r"^TLS_ECDHE_(?:ECDSA|RSA)_WITH_(?:AES_\d+_GCM_SHA\d+|CHACHA20_POLY1305_SHA256)$",
                    res["cipher"]), res.text


@pytest.mark.parametrize("flag,minimum", [("-tls1_1", "1.1"), ("-tls1", "1.0")])
def test_server_refuses_old_versions(probe, openssl, pki, flag, minimum):
    srv = probe.server("--cert", pki / "server-ec-combined.pem")
    rc, out = s_client(probe.procs, openssl, srv.port, *verify_ca(pki), flag, *OLD_OPENSSL)
    res = srv.result()
    assert rc != 0 and greeting(out) is None, out
    assert re.search(r"alert protocol version|unsupported protocol", out), out
    assert res["result"] == "error", res.text

    # Control: the same client does get through to a server that allows the old
    # version, so the refusal above was the floor at TLS 1.2, not a client limit.
    srv = probe.server("--cert", pki / "server-ec-combined.pem", "--min", minimum)
    rc, out = s_client(probe.procs, openssl, srv.port, *verify_ca(pki), flag, *OLD_OPENSSL)
    expect = "TLSv1" if minimum == "1.0" else "TLSv1.1"
    assert greeting(out) == expect, out
    assert srv.result()["protocol"] == expect


@pytest.mark.parametrize("client_order", [[SERVER_FIRST, SERVER_LATER], [SERVER_LATER, SERVER_FIRST]],
                         ids=["server-order", "reversed"])
def test_server_cipher_order_wins(probe, openssl, pki, client_order):
    srv = probe.server("--cert", pki / "server-ec-combined.pem")
    rc, out = s_client(probe.procs, openssl, srv.port, *verify_ca(pki), "-tls1_2",
                       "-cipher", ":".join(client_order))
    res = srv.result()
    assert rc == 0 and greeting(out) == "TLSv1.2", out
    assert cipher_of(out) == SERVER_FIRST, out
    assert res["cipher"] == "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", res.text


def test_server_refuses_cbc_only_client(probe, openssl, pki):
    cbc = ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"]
    srv = probe.server("--cert", pki / "server-ec-combined.pem")
    rc, out = s_client(probe.procs, openssl, srv.port, *verify_ca(pki), *cbc)
    res = srv.result()
    assert rc != 0 and greeting(out) is None, out
    assert re.search(r"alert handshake failure|no shared cipher|no cipher", out, re.I), out
    assert res["result"] == "error", res.text

    # Control: the "compat" list (CBC for opportunistic MTA use) takes that client.
    srv = probe.server("--cert", pki / "server-ec-combined.pem", "--ciphers", "compat")
    rc, out = s_client(probe.procs, openssl, srv.port, *verify_ca(pki), *cbc)
    assert cipher_of(out) == "ECDHE-ECDSA-AES128-SHA" and greeting(out) == "TLSv1.2", out
    assert srv.result()["result"] == "ok"


def test_server_refuses_renegotiation(probe, openssl, pki):
    srv = probe.server("--cert", pki / "server-ec-combined.pem")
    p = s_client_start(probe.procs, openssl, srv.port, *verify_ca(pki), "-tls1_2")
    assert p.wait_for(GREETING), p.text()
    mark = p.mark()
    p.send("R\n")                       # s_client: "R" at the start of a line renegotiates
    p.wait_for(r"RENEGOTIATING", timeout=5, since=mark)
    p.wait_for(r"alert|error|^depth=0", timeout=5, since=mark)
    try:
        p.send("after-R\n")             # would come back echoed if the session lived on
    except BrokenPipeError:
        pass
    p.wait_for(r"^after-R\r?$", timeout=2, since=mark)
    rc, out = p.finish()
    res = srv.result()
    after = out[mark:]
    assert "RENEGOTIATING" in after, out
    # Refused: the server answers the new ClientHello with a no_renegotiation alert,
    # no second handshake happens (no new certificate verification) and the
    # session is over (nothing echoed any more).
    assert re.search(r"alert no renegotiation", after), out
    assert not re.search(r"^depth=0", after, re.M), out
    assert not re.search(r"^after-R\r?$", after, re.M), out
    assert res["result"] == "ok", res.text             # the first handshake was fine
    assert res.get("end") != "close_notify", res.text  # the session ended on the refusal


@pytest.mark.parametrize("version", [[], ["-tls1_2"]], ids=["tls1.3", "tls1.2"])
def test_server_resumption(probe, openssl, pki, procs, tmp_path, version):
    sess = tmp_path / "s_client.sess"
    srv = probe.server("--cert", pki / "server-ec-combined.pem", count=2)
    # Reading the greeting before closing means the TLS 1.3 ticket was read and saved.
    rc1, out1 = s_client(procs, openssl, srv.port, *verify_ca(pki), *version, "-sess_out", sess)
    rc2, out2 = s_client(procs, openssl, srv.port, *verify_ca(pki), *version, "-sess_in", sess)
    first, second = srv.results()
    assert rc1 == 0 and greeting(out1) and re.search(r"^New, ", out1, re.M), out1
    assert rc2 == 0 and greeting(out2), out2
    assert re.search(r"^Reused, ", out2, re.M), out2
    assert first["reused"] == "0", first.text
    assert second["reused"] == "1", second.text


def test_server_client_certificate_verified(probe, openssl, pki):
    srv = probe.server("--cert", pki / "server-ec-combined.pem", "--verify", "require", "--ca", pki / "ca.pem")
    rc, out = s_client(probe.procs, openssl, srv.port, *verify_ca(pki), "-cert", pki / "client-leaf.pem",
                       "-key", pki / "client.key", "-cert_chain", pki / "int.pem")
    res = srv.result()
    assert rc == 0 and greeting(out), out
    assert res["result"] == "ok", res.text
    assert res["verified"] == "1" and res["peer_cert"] == "1", res.text
    assert "CN=client.test.example" in res["subject"], res.text


@pytest.mark.parametrize("version", [[], ["-tls1_2"]], ids=["tls1.3", "tls1.2"])
def test_server_client_certificate_missing(probe, openssl, pki, version):
    srv = probe.server("--cert", pki / "server-ec-combined.pem", "--verify", "require", "--ca", pki / "ca.pem")
    rc, out = s_client(probe.procs, openssl, srv.port, *verify_ca(pki), *version)
    res = srv.result()
    assert greeting(out) is None, out
    assert re.search(r"alert (?:certificate required|handshake failure)", out), out
    assert res["result"] == "error", res.text
    assert res["errcode"] == "verify-nocert", res.text


@pytest.mark.parametrize("sigalg,bits,sigtype", [("rsa_pss_rsae_sha256", 2048, "RSA-PSS"),
                                                 ("ecdsa_secp256r1_sha256", 256, "ECDSA")],
                         ids=["rsa", "ecdsa"])
@pytest.mark.parametrize("version", [[], ["-tls1_2"]], ids=["tls1.3", "tls1.2"])
def test_server_rsa_and_ecdsa_keypairs(probe, openssl, pki, sigalg, bits, sigtype, version):
    srv = probe.server("--cert", pki / "server-ec.pem", "--key", pki / "server-ec.key",
                       "--cert", pki / "server-rsa.pem", "--key", pki / "server-rsa.key")
    rc, out = s_client(probe.procs, openssl, srv.port, *verify_ca(pki), *version, "-sigalgs", sigalg)
    res = srv.result()
    assert rc == 0 and greeting(out), out
    assert f"Server public key is {bits} bit" in out, out
    assert f"Peer signature type: {sigtype}" in out, out
    if version:
        kind = "RSA" if bits == 2048 else "ECDSA"
        assert res["cipher"].startswith(f"TLS_ECDHE_{kind}_WITH_"), res.text


def test_server_sni_keypair(probe, openssl, pki, procs):
    srv = probe.server("--cert", pki / "server-ec-combined.pem",
                       "--sni", f"a.test.example={pki / 'sni-a.pem'},{pki / 'sni-a.key'}", count=2)
    rc1, out1 = s_client(procs, openssl, srv.port, *verify_ca(pki, "a.test.example"),
                         "-verify_hostname", "a.test.example")
    rc2, out2 = s_client(procs, openssl, srv.port, *verify_ca(pki, "localhost"))
    first, second = srv.results()
    assert rc1 == 0 and greeting(out1), out1
    assert re.search(r"^subject=CN = a\.test\.example$", out1, re.M), out1
    assert first["sni"] == "a.test.example", first.text
    # Another name gets the default keypair.
    assert rc2 == 0 and re.search(r"^subject=CN = localhost$", out2, re.M), out2
    assert second["sni"] == "localhost", second.text


# ------------------------------------------------------ our server, gnutls-cli as client

@pytest.mark.parametrize("trusted", [True, False], ids=["ca", "wrong-ca"])
def test_server_with_gnutls_cli(probe, need, pki, trusted):
    gnutls_cli = need("gnutls-cli")
    srv = probe.server("--cert", pki / "server-ec-combined.pem")
    ca = pki / ("ca.pem" if trusted else "unknown-ca.pem")
    p = probe.procs.start([gnutls_cli, "--x509cafile", ca, "-p", str(srv.port),
                           "--sni-hostname", "localhost", "--verify-hostname", "localhost", "127.0.0.1"],
                          name="gnutls-cli", stdin=True)
    if p.wait_for(GREETING):
        p.send("ping\n")
        p.wait_for(r"^ping\r?$", timeout=5)
    rc, out = p.finish()
    res = srv.result()
    if trusted:
        assert rc == 0, out
        assert "Status: The certificate is trusted" in out, out
        assert "Handshake was completed" in out, out
        assert greeting(out) == "TLSv1.3", out
        assert re.search(r"^ping\r?$", out, re.M), out
        assert res["result"] == "ok" and res["sni"] == "localhost", res.text
        assert res["end"] == "close_notify", res.text
    else:
        # Control: gnutls-cli really verifies, so "trusted" above means something.
        assert rc != 0 and "certificate is NOT trusted" in out, out
        assert greeting(out) is None, out


# -------------------------------------------------- our client, openssl s_server as server

def test_client_verifies_openssl_server(probe, openssl, pki, procs):
    ss, port = s_server(procs, openssl, pki, "server-ec")
    mark = ss.mark()
    rc, kv = probe_client(probe, pki, port)
    log = s_server_log(ss, mark)
    assert_ok(rc, kv)
    assert kv["verified"] == "1" and kv["verify_result"] == "none", kv.text
    assert kv["read"] == "gnip", kv.text      # s_server -rev answered
    assert kv["sni"] == "localhost", kv.text
    # The SNI really went over the wire.
    assert re.search(r'extension "server name" \(id=0\), len=\d+\n0000 - .*localhost', log), log


@pytest.mark.parametrize("leaf,errcode", [
    ("wrongname", "verify-name"),
    ("expired", "verify-expired"),
    ("unknown", "verify-untrusted"),            # leaf + its own root, which nobody trusts
    ("unknown-leafonly", "verify-untrusted"),
    ("selfsigned", "verify-selfsigned"),
])
def test_client_verify_failures(probe, openssl, pki, procs, leaf, errcode):
    ss, port = s_server(procs, openssl, pki, leaf)
    rc, kv = probe_client(probe, pki, port)
    assert rc != 0 and kv["result"] == "error", kv.text
    assert kv["errcode"] == errcode, kv.text
    assert "read" not in kv, kv.text


def test_client_pin_accepts_wrongname(probe, openssl, pki, procs):
    ss, port = s_server(procs, openssl, pki, "wrongname")
    rc, kv = probe_client(probe, pki, port)
    assert kv["errcode"] == "verify-name", kv.text
    rc, kv = probe_client(probe, pki, port, "--pin", sha256_pin(pki / "wrongname-leaf.pem"))
    assert_ok(rc, kv)
    assert kv["verified"] == "1" and kv["read"] == "gnip", kv.text
    assert kv["subject"] == "CN=other.example.net", kv.text
    # A pin that does not match refuses even a server that would verify.
    ss2, port2 = s_server(procs, openssl, pki, "server-ec")
    rc, kv = probe_client(probe, pki, port2, "--pin", "SHA256:" + "00" * 32)
    assert rc != 0 and kv["errcode"] == "verify-pin", kv.text


def test_client_no_sni_for_ip_literal(probe, openssl, pki, procs):
    ss, port = s_server(procs, openssl, pki, "server-ec")
    mark = ss.mark()
    rc, kv = probe_client(probe, pki, port, servername="127.0.0.1")
    log = s_server_log(ss, mark)
    assert_ok(rc, kv)
    assert kv["verified"] == "1", kv.text                # the IP SAN 127.0.0.1 matched
    assert "CONNECTION ESTABLISHED" in log, log
    assert 'extension "server name"' not in log, log     # no SNI on the wire
    # mailtls_servername() is "SNI sent (client)": none was sent, so no fact.
    assert "sni" not in kv, kv.text


def test_client_presents_certificate(probe, openssl, pki, procs):
    ss, port = s_server(procs, openssl, pki, "server-ec", "-Verify", "1", "-CAfile", pki / "ca.pem")
    mark = ss.mark()
    rc, kv = probe_client(probe, pki, port, "--cert", pki / "client.pem", "--key", pki / "client.key")
    log = s_server_log(ss, mark)
    assert_ok(rc, kv)
    assert kv["read"] == "gnip", kv.text
    assert re.search(r"^Peer certificate: CN = client\.test\.example$", log, re.M), log
    assert "Verification: OK" in log, log
    # Without a certificate the same server refuses us.  In TLS 1.3 the client's
    # handshake is over before the server sees no certificate: the refusal comes
    # as an alert after it, and nothing is answered.
    mark = ss.mark()
    rc, kv = probe_client(probe, pki, port)
    log = s_server_log(ss, mark)
    assert "read" not in kv, kv.text
    assert re.search(r"peer did not return a certificate", log), log


def test_client_floor_is_tls12(probe, openssl, pki, procs):
    ss, port = s_server(procs, openssl, pki, "server-ec", "-tls1_1", *OLD_OPENSSL)
    rc, kv = probe_client(probe, pki, port)
    assert rc != 0 and kv["result"] == "error" and kv["errcode"] == "tls", kv.text
    # Control: lowered on purpose, the same server works, so it really spoke TLS 1.1.
    rc, kv = probe_client(probe, pki, port, "--min", "1.1")
    assert_ok(rc, kv)
    assert kv["protocol"] == "TLSv1.1" and kv["read"] == "gnip", kv.text


@pytest.mark.parametrize("version", [[], TLS12], ids=["tls1.3", "tls1.2"])
def test_client_resumption(probe, openssl, pki, procs, tmp_path, version):
    sess = tmp_path / "probe.sess"
    ss, port = s_server(procs, openssl, pki, "server-ec")
    rc, kv = probe_client(probe, pki, port, *version, "--sess-out", sess)
    assert_ok(rc, kv)
    assert kv["reused"] == "0" and kv["session_saved"] == "1", kv.text
    rc, kv = probe_client(probe, pki, port, *version, "--sess-in", sess)
    assert_ok(rc, kv)
    assert kv["reused"] == "1", kv.text
    assert kv["verified"] == "1" and kv["read"] == "gnip", kv.text
    assert "session_error" not in kv, kv.text


# ------------------------------------------------- our client, gnutls-serv as server

def test_client_with_gnutls_serv(probe, need, pki, procs):
    gnutls_serv = need("gnutls-serv")
    gs, port = procs.start_server(lambda port: [gnutls_serv, "--x509certfile", pki / "server-ec.pem",
                                                "--x509keyfile", pki / "server-ec.key", "-p", str(port),
                                                "--echo"], name="gnutls-serv")
    rc, kv = probe_client(probe, pki, port)
    assert_ok(rc, kv)
    assert kv["verified"] == "1" and kv["verify_result"] == "none", kv.text
    assert kv["read"] == "ping", kv.text
    assert gs.wait_for(r"Given server name\[1\]: localhost", timeout=5), gs.text()
