"""qmail-remote's MX, A and CNAME handling against a DNS server of the tests.

Each scenario runs in private mount and network namespaces (`unshare -mn`, as
root): loopback brought up, /etc/resolv.conf bind-mounted to one naming
127.0.0.1, dnsmasq (Debian's dnsmasq-base) answering from static records on
127.0.0.1:53, scripted SMTP servers (test_qmail_remote.Server) on 127.0.0.2-5
port 25, and qmail-remote run with no smtproutes.  This file is both the pytest
module and, run as a program inside the namespaces, the scenario runner: it
prints one JSON object (the report, the lines each server got, dnsmasq's log).

The zone (dnsmasq options):
  multi.test   MX 10 mx1.multi.test (127.0.0.2), MX 20 mx2.multi.test (127.0.0.3)
  down.test    MX 10 mxd.down.test (127.0.0.4, nothing listens), MX 20 mx2.multi.test
  plain.test   no MX, A 127.0.0.5
  alias.test   CNAME canon.test; canon.test MX 10 mx2.multi.test, A 127.0.0.3
  me.test      MX 10 me.me.test (127.0.0.1, this host), MX 20 mx2.multi.test
  alias-me.test  CNAME me.test
  fail.test    every query answered SERVFAIL (forwarded to a server that is not there)
  nx.test      does not exist
"""
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from conftest import RUN_TIMEOUT, in_namespace, qmail_remote  # noqa: E402
from qmailremote import qmail_home  # noqa: E402
import dnszone  # noqa: E402

ZONE = [
    "--mx-host=multi.test,mx1.multi.test,10", "--mx-host=multi.test,mx2.multi.test,20",
    "--host-record=mx1.multi.test,127.0.0.2", "--host-record=mx2.multi.test,127.0.0.3",
    "--mx-host=down.test,mxd.down.test,10", "--mx-host=down.test,mx2.multi.test,20",
    "--host-record=mxd.down.test,127.0.0.4",
    "--host-record=plain.test,127.0.0.5",
    "--host-record=canon.test,127.0.0.3", "--mx-host=canon.test,mx2.multi.test,10",
    "--cname=alias.test,canon.test",
    "--host-record=me.test,127.0.0.9", "--mx-host=me.test,me.me.test,10", "--mx-host=me.test,mx2.multi.test,20",
    "--host-record=me.me.test,127.0.0.1",
    "--cname=alias-me.test,me.test",
    "--server=/fail.test/127.0.0.1#5399",
    "--address=/nx.test/",
    "--local=/test/",            # the rest of .test answered here (no data, no such name), never forwarded
]

# scenario: (host argument, recipients, addresses with a scripted server)
SCENARIOS = {
    "preference": ("multi.test", ["u@multi.test"], ["127.0.0.2", "127.0.0.3"]),
    "next_mx": ("down.test", ["u@down.test"], ["127.0.0.3"]),
    "a_fallback": ("plain.test", ["u@plain.test"], ["127.0.0.5"]),
    "cname": ("alias.test", ["u@alias.test", "v@multi.test"], ["127.0.0.3"]),
    "cname_soft": ("multi.test", ["u@multi.test", "u@fail.test"], ["127.0.0.2"]),
    "mx_soft": ("fail.test", ["u@multi.test"], []),
    "nxdomain": ("nx.test", ["u@nx.test"], []),
    "own_mx": ("me.test", ["u@me.test"], ["127.0.0.3"]),
    "own_literal": ("[127.0.0.1]", ["u@plain.test"], []),
    "all_aliases": ("me.test", ["u@alias-me.test"], ["127.0.0.3"]),
    "some_aliases": ("me.test", ["u@alias-me.test", "v@me.test"], ["127.0.0.3"]),
    "no_resolv_conf": ("multi.test", ["u@multi.test"], ["127.0.0.2", "127.0.0.3"]),
    "dane_root_anchor": ("multi.test", ["u@multi.test"], ["127.0.0.2"]),
    "dane_no_validation": ("multi.test", ["u@multi.test"], ["127.0.0.2"]),
}

# control files of a scenario beyond me and the timeouts.  None of the
# others has control/dnssecanchor or a DANE level: qmail-remote as a
# drop-in, where dnsmasq (which strips DNSSEC records) must serve as it
# served netqmail.
CONTROLS = {
    # DANE asked for, the root's anchor (dns-root-data) by default: dnsmasq
    # cannot prove .test unsigned, so every answer is bogus: deferred
    "dane_root_anchor": {"tlspolicy": ":dane\n"},
    # DANE asked for with validation off: no answer is secure, dane is may
    "dane_no_validation": {"tlspolicy": ":dane\n", "dnssecanchor": ""},
}


# --------------------------------------------------------------------------- inside the namespaces

def accept_all(s):
    """Any number of recipients accepted; the message taken."""
    s.send("220 test ESMTP\r\n")
    while True:
        ln = s.line().upper()
        if ln.startswith("DATA"):
            s.send("354 go\r\n")
            s.read_data()
            s.send("250 ok\r\n")
        elif ln.startswith("QUIT"):
            return
        else:
            s.send("250 ok\r\n")


def inside(name, workdir, prog):
    from test_qmail_remote import Server
    work = Path(workdir)
    if name == "no_resolv_conf":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=RUN_TIMEOUT)
        # a copy of /etc without resolv.conf in its place (glibc then asks 127.0.0.1)
        etc = work / "etc"
        shutil.copytree("/etc", etc, symlinks=True, ignore=lambda d, names: ["resolv.conf"] if d == "/etc" else [])
        subprocess.run(["mount", "--bind", str(etc), "/etc"], check=True, timeout=RUN_TIMEOUT)
    else:
        dnszone.resolve_locally(work, "timeout:2 attempts:2")
    log = open(work / "dnsmasq.log", "wb")
    dns = dnszone.start_dnsmasq(ZONE, log)
    result = {}
    try:
        host, recips, addrs = SCENARIOS[name]
        servers = {}
        for a in addrs:
            servers[a] = start_server(Server, accept_all, a)
        qhome = qmail_home(work / "qmail", **CONTROLS.get(name, {}))
        p = subprocess.run([prog, host, "s@client.test", *recips], input=b"Subject: x\n\nbody\n",
                           capture_output=True, env={"QMAILHOME": str(qhome), "PATH": os.environ["PATH"]},
                           timeout=RUN_TIMEOUT)
        result["rc"] = p.returncode
        result["stderr"] = p.stderr.decode("latin-1")
        result["report"] = p.stdout.decode("latin-1")
        result["servers"] = {}
        for a, s in servers.items():
            # a server that got no connection is told to stop by one of ours
            if not s.lines:
                import socket
                try:
                    socket.create_connection((a, 25), timeout=2).close()
                except OSError:
                    pass
            s.join()
            result["servers"][a] = s.lines
    finally:
        dnszone.end(dns)
        log.close()
    result["dnsmasq"] = (work / "dnsmasq.log").read_text("latin-1")
    print(json.dumps(result))


def start_server(Server, handler, addr):
    """test_qmail_remote.Server on |addr|:25 (it binds 127.0.0.1:0; here the address is given);
    .ports holds the client port of each connection it took."""
    import socket

    def tolerant(s):
        s.ports.append(s.sock.getpeername()[1])
        try:
            handler(s)
        except (EOFError, OSError):
            pass                # the stop connection of inside(): no SMTP on it
    s = Server.__new__(Server)
    s.conns, s.expect_hangup, s.handler, s.pki = 1, True, tolerant, None
    s.lsock = socket.socket()
    s.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.lsock.bind((addr, 25))
    s.lsock.listen(2)
    s.lsock.settimeout(RUN_TIMEOUT)
    s.port = 25
    s.lines, s.data, s.tls, s.errors, s.ports = [], b"", False, [], []
    s.t = threading.Thread(target=s.run, daemon=True)
    s.t.start()
    return s


# --------------------------------------------------------------------------- the tests


def scenario(name):
    return in_namespace(__file__, "-mn", name, "qmr-dns.", [qmail_remote()], needs=("mount", "dnsmasq"),
                        timeout=RUN_TIMEOUT * 3)


def ok(r, addr, recipients=1):
    assert r["rc"] == 0 and r["stderr"] == "", r
    assert r["report"] == "r\0" * recipients + f"K{addr} accepted message.\nRemote host said: 250 ok\n\0", r


def test_lowest_preference_first():
    r = scenario("preference")
    ok(r, "127.0.0.2")
    assert r["servers"]["127.0.0.2"][:3] == ["EHLO client.test.example", "MAIL FROM:<s@client.test>",
                                             "RCPT TO:<u@multi.test>"]
    assert r["servers"]["127.0.0.3"] == []
    assert "query[MX] multi.test" in r["dnsmasq"]


def test_without_resolv_conf_the_local_server_is_asked():
    """As glibc's resolver: no /etc/resolv.conf means 127.0.0.1."""
    r = scenario("no_resolv_conf")
    ok(r, "127.0.0.2")
    assert "query[MX] multi.test" in r["dnsmasq"]


def test_no_dane_no_validation():
    """Without a DANE level nothing asks for DNSSEC: a resolver that strips its records (dnsmasq) serves,
    with the root's trust anchor installed (dns-root-data) and no control/dnssecanchor."""
    assert os.access("/usr/share/dns/root.key", os.R_OK), "dns-root-data is not installed"
    r = scenario("preference")
    ok(r, "127.0.0.2")


def test_dane_validates_against_the_root_anchor_by_default():
    """tlspolicy naming dane turns validation on with the root's anchor: through a resolver that strips
    DNSSEC records every answer is bogus, a temporary failure (never 'no such host'): the first lookup
    is the recipient domain's CNAME."""
    r = scenario("dane_root_anchor")
    assert r["report"] == "ZCNAME lookup failed temporarily. (#4.4.3)\n\0", r
    assert r["servers"]["127.0.0.2"] == [], r
    assert "query[DNSKEY]" in r["dnsmasq"] or "query[DS]" in r["dnsmasq"], r["dnsmasq"]


def test_dane_with_validation_off_is_may():
    """An empty control/dnssecanchor: nothing is secure, so dane delivers as may (plaintext here)."""
    r = scenario("dane_no_validation")
    assert r["report"].startswith("r\0K127.0.0.2 accepted message.\nRemote host said: 250 ok\n"), r
    assert "DANE" in r["report"], r


def test_next_mx_when_the_first_is_down():
    r = scenario("next_mx")
    ok(r, "127.0.0.3")
    assert "query[A] mxd.down.test" in r["dnsmasq"]


def test_a_record_without_mx():
    r = scenario("a_fallback")
    ok(r, "127.0.0.5")
    assert "query[MX] plain.test" in r["dnsmasq"] and "query[A] plain.test" in r["dnsmasq"]


def test_recipient_domain_canonicalised():
    r = scenario("cname")
    ok(r, "127.0.0.3", recipients=2)
    rcpts = [ln for ln in r["servers"]["127.0.0.3"] if ln.startswith("RCPT")]
    assert rcpts == ["RCPT TO:<u@canon.test>", "RCPT TO:<v@multi.test>"], r
    assert "query[CNAME] alias.test" in r["dnsmasq"]


def test_cname_lookup_failed_temporarily():
    r = scenario("cname_soft")
    assert r["report"] == "ZCNAME lookup failed temporarily. (#4.4.3)\n\0", r
    assert r["servers"]["127.0.0.2"] == [], r     # nothing sent


def test_mx_lookup_servfail_is_temporary():
    r = scenario("mx_soft")
    assert r["report"] == "ZSorry, I couldn't find any host by that name. (#4.1.2)\n\0", r


def test_nxdomain_is_permanent():
    r = scenario("nxdomain")
    assert r["report"] == "DSorry, I couldn't find any host named nx.test. (#5.1.2)\n\0", r


def test_own_mx_cuts_the_list():
    r = scenario("own_mx")
    assert r["report"].startswith("DSorry. Although I'm listed as a best-preference MX or A for that host,\n"), r
    assert r["report"].endswith("(#5.4.6)\n\0") and r["servers"]["127.0.0.3"] == [], r


def test_own_address_literal_is_5_4_6():
    r = scenario("own_literal")
    assert r["report"].startswith("DSorry. Although I'm listed as a best-preference MX or A for that host,\n"), r
    assert r["report"].endswith("(#5.4.6)\n\0"), r


def test_all_aliases_rule_keeps_every_mx():
    """Every recipient domain an alias of the host: no MX is cut (netqmail's flagalias); this host's
    own MX (127.0.0.1, nothing on port 25) is tried, then the next."""
    r = scenario("all_aliases")
    ok(r, "127.0.0.3")
    assert "RCPT TO:<u@me.test>" in r["servers"]["127.0.0.3"], r


def test_one_recipient_not_an_alias_keeps_the_cut():
    r = scenario("some_aliases")
    assert r["report"].endswith("(#5.4.6)\n\0") and r["servers"]["127.0.0.3"] == [], r


if __name__ == "__main__":
    inside(sys.argv[1], sys.argv[2], sys.argv[3])
