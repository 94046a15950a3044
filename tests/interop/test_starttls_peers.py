"""libmailtls's client STARTTLS against real mail servers, on loopback.

Peers: Postfix (SMTP STARTTLS, RFC 3207) and Dovecot (POP3 STLS, IMAP STARTTLS),
each started in a private temporary directory on free loopback ports with a
certificate of the test PKI (server-ec, issued by the test intermediate for
localhost), and stopped by its own pid when the test ends.  Our side is
"mailtls-probe client --starttls ..." (tests/helpers/probe.c), which prints
key=value lines.  Fixtures pki, need, procs and probe are in conftest.py;
postfix and dovecot in peers.py.

A missing peer (binary, or root for Postfix) skips the test, or fails it when
the environment variable CI is set.
"""
import re

from peers import dovecot, instdir, postfix  # noqa: F401 (fixtures)


def probe_starttls(probe, port, proto, pki, *extra, servername="localhost"):
    args = ["--starttls", proto, "--servername", servername, "--ca", str(pki / "ca.pem"),
            "--verify", "require", *extra]
    return probe.client(port, *args)


# --------------------------------------------------------------------------- Postfix

def test_postfix_smtp_starttls_verified(postfix, probe, pki):
    mark = postfix.proc.mark()
    rc, kv = probe_starttls(probe, postfix.ports["tls"], "smtp", pki, "--ehlo", "client.test.example")
    assert rc == 0 and kv["result"] == "ok", kv.text
    assert kv["greeting_code"] == "220"
    assert kv["ehlo_code"] == "250"
    assert kv["used_helo"] == "0"
    assert kv["starttls_code"] == "220"
    assert kv["verified"] == "1" and kv["verify_result"] == "none"
    assert kv["sni"] == "localhost"
    assert kv["protocol"] in ("TLSv1.2", "TLSv1.3")
    caps = kv.all("cap")
    assert "STARTTLS" in caps and "PIPELINING" in caps, caps
    # RFC 3207 4.2: EHLO again under TLS; STARTTLS is no longer offered.
    assert kv["tls_ehlo_code"] == "250"
    tlscaps = kv.all("tlscap")
    assert tlscaps and "STARTTLS" not in tlscaps, tlscaps
    assert "PIPELINING" in tlscaps
    # Postfix's own account of the connection.
    m = postfix.wait_log(r"TLS connection established from localhost\[127\.0\.0\.1\]: (TLSv1\.[23]) "
                         r"with cipher (\S+)", since=mark)
    assert m, postfix.log(mark)
    assert m.group(1) == kv["protocol"]
    assert m.group(2) == kv["cipher"]
    m = postfix.wait_log(r"disconnect from localhost\[127\.0\.0\.1\].*", since=mark)
    assert m, postfix.log(mark)
    assert "ehlo=2" in m.group(0) and "starttls=1" in m.group(0), m.group(0)


def test_postfix_helo_name_and_optional_verify(postfix, probe, pki):
    """With verification optional and a name the certificate does not hold, TLS is
    still established (opportunistic MTA use) and reported as unverified."""
    rc, kv = probe.client(postfix.ports["tls"], "--starttls", "smtp", "--servername", "mx.other.example",
                          "--ca", str(pki / "ca.pem"), "--verify", "optional", "--ehlo", "[127.0.0.1]")
    assert rc == 0 and kv["result"] == "ok", kv.text
    assert kv["verified"] == "0"
    assert kv["verify_result"] == "verify-name"
    m = postfix.wait_log(r"disconnect from localhost\[127\.0\.0\.1\].*")
    assert m and "starttls=1" in m.group(0), postfix.log()


def test_postfix_wrong_name_fails_closed(postfix, probe, pki):
    mark = postfix.proc.mark()
    rc, kv = probe_starttls(probe, postfix.ports["tls"], "smtp", pki, servername="mx.other.example")
    assert rc != 0 and kv["result"] == "error", kv.text
    assert kv["errcode"] == "verify-name", kv.text
    assert kv["starttls_code"] == "220"
    m = postfix.wait_log(r"disconnect from localhost\[127\.0\.0\.1\].*", since=mark)
    assert m, postfix.log(mark)
    assert "TLS connection established" not in postfix.log(mark)


def test_postfix_starttls_not_offered(postfix, probe, pki):
    mark = postfix.proc.mark()
    rc, kv = probe_starttls(probe, postfix.ports["plain"], "smtp", pki)
    assert rc != 0 and kv["result"] == "not-offered", kv.text
    assert kv["ehlo_code"] == "250" and kv["starttls_code"] == "0"
    caps = kv.all("cap")
    assert caps and "STARTTLS" not in caps, caps
    m = postfix.wait_log(r"disconnect from localhost\[127\.0\.0\.1\].*", since=mark)
    assert m, postfix.log(mark)
    assert "starttls" not in m.group(0) and "ehlo=1" in m.group(0), m.group(0)


# --------------------------------------------------------------------------- Dovecot

def test_dovecot_pop3_stls(dovecot, probe, pki):
    mark = dovecot.proc.mark()
    rc, kv = probe_starttls(probe, dovecot.ports["pop3"], "pop3", pki, "--send", "CAPA\r\n", "--read")
    assert rc == 0 and kv["result"] == "ok", kv.text
    assert kv["greeting_code"] == "200" and kv["ehlo_code"] == "200" and kv["starttls_code"] == "200"
    caps = kv.all("cap")
    assert "STLS" in caps and "USER" in caps, caps
    assert kv["verified"] == "1"
    assert kv["protocol"] in ("TLSv1.2", "TLSv1.3")
    # Under TLS the server speaks POP3 through our session, and no longer offers STLS.
    read = kv.all("read")
    assert read and read[0].startswith("+OK"), kv.text
    assert "STLS" not in read, read
    m = dovecot.wait_log(r"pop3-login: Info: Disconnected.*rip=127\.0\.0\.1.*", since=mark)
    assert m, dovecot.proc.text(mark)
    assert re.search(r"\bTLS\b", m.group(0)), m.group(0)


def test_dovecot_imap_starttls(dovecot, probe, pki):
    mark = dovecot.proc.mark()
    rc, kv = probe_starttls(probe, dovecot.ports["imap"], "imap", pki, "--send", "a3 CAPABILITY\r\n", "--read")
    assert rc == 0 and kv["result"] == "ok", kv.text
    assert kv["greeting_code"] == "200" and kv["starttls_code"] == "200"
    caps = kv.all("cap")
    assert "STARTTLS" in caps and "IMAP4rev1" in caps, caps
    assert kv["verified"] == "1"
    read = kv.all("read")
    capline = [r for r in read if r.startswith("* CAPABILITY ")]
    assert capline, kv.text
    assert "STARTTLS" not in capline[0].split(), capline
    m = dovecot.wait_log(r"imap-login: Info: Disconnected.*rip=127\.0\.0\.1.*", since=mark)
    assert m, dovecot.proc.text(mark)
    assert re.search(r"\bTLS\b", m.group(0)), m.group(0)


def test_dovecot_imap_wrong_name_fails_closed(dovecot, probe, pki):
    rc, kv = probe_starttls(probe, dovecot.ports["imap"], "imap", pki, servername="imap.other.example")
    assert rc != 0 and kv["result"] == "error", kv.text
    assert kv["errcode"] == "verify-name", kv.text
    assert kv["starttls_code"] == "200"
