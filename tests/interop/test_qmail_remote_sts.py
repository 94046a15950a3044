"""qmail-remote's MTA-STS (RFC 8461) and its TLS-RPT events, end to end.

Each scenario runs in private mount and network namespaces (`unshare -mn`, as
root), as test_qmail_remote_dns.py does: dnsmasq on 127.0.0.1:53 with the zone
below, the policy served over HTTPS by Python's http.server on
mta-sts.sts.test (127.0.0.10:443) with certificates of a trustme CA, and a
scripted SMTP server with STARTTLS on mx.sts.test (127.0.0.2:25) whose
certificate comes from the same CA.  qmail-remote trusts that CA through
control/tlscafile, for the MX hosts and the policy fetch alike.

A scenario is a list of steps; each step sets the TXT records, the policy
served and the certificates, runs qmail-remote once, and records the report,
what the SMTP server saw, the HTTP requests, the policy cache and the day's
TLS-RPT event log.  This file is both the pytest module and, run as a program
inside the namespaces, the scenario runner (it prints one JSON object).

The zone: sts.test MX 10 mx.sts.test (127.0.0.2); mta-sts.sts.test 127.0.0.10;
_mta-sts.sts.test TXT as each step says; the rest of .test answered locally.
"""
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from conftest import RUN_TIMEOUT, in_namespace, must_have, qmail_remote  # noqa: E402
import mtasts_server  # noqa: E402
from mtasts_server import PolicyServer  # noqa: E402
from qmailremote import event, qmail_home  # noqa: E402
import dnszone  # noqa: E402

DOMAIN = "sts.test"
MX = "mx.sts.test"
ZONE = [
    f"--mx-host={DOMAIN},{MX},10", f"--host-record={MX},127.0.0.2",
    f"--host-record=mta-sts.{DOMAIN},127.0.0.10",
    "--local=/test/",
]


def policy(mode="enforce", mx=(MX,), max_age=86400):
    return mtasts_server.policy(mode, mx, max_age)


ENFORCE_MATCH = policy()
ENFORCE_OTHER = policy(mx=("*.other.test",))
TESTING_OTHER = policy(mode="testing", mx=("*.other.test",))
TESTING_MATCH = policy(mode="testing", mx=("*.sts.test",))
# valid lines, but more than 64 KiB of them
TOO_LARGE = ENFORCE_OTHER + b"".join(b"ext%d: %s\r\n" % (i, b"a" * 900) for i in range(80))


def step(txt=("v=STSv1; id=1",), body=ENFORCE_MATCH, policy_cert="good", mx_cert="good", damage_cache=False,
         expire_cache=False, cache_mode=0o700, tlspolicy=None):
    return {"txt": list(txt), "body": body.decode("latin-1"), "policy_cert": policy_cert, "mx_cert": mx_cert,
            "damage_cache": damage_cache, "expire_cache": expire_cache, "cache_mode": cache_mode,
            "tlspolicy": tlspolicy}


SCENARIOS = {
    "enforce_match": [step()],
    "enforce_mismatch": [step(body=ENFORCE_OTHER)],
    "enforce_mx_wrong_name": [step(mx_cert="wrongname")],
    "enforce_mx_expired": [step(mx_cert="expired")],
    "enforce_mx_untrusted": [step(mx_cert="untrusted")],
    "testing_mx_untrusted": [step(body=TESTING_MATCH, mx_cert="untrusted")],
    "testing_mismatch": [step(body=TESTING_OTHER)],
    "testing_mx_wrong_name": [step(body=TESTING_MATCH, mx_cert="wrongname")],
    "enforce_no_starttls": [step(mx_cert="none")],
    "enforce_starttls_refused": [step(mx_cert="refuse")],
    "policy_cert_expired": [step(body=ENFORCE_OTHER, policy_cert="expired")],
    "policy_cert_wrong_name": [step(body=ENFORCE_OTHER, policy_cert="wrongname")],
    "policy_too_large": [step(body=TOO_LARGE)],
    "no_record": [step(txt=(), body=ENFORCE_OTHER)],
    "two_records": [step(txt=("v=STSv1; id=1", "v=STSv1; id=2"), body=ENFORCE_OTHER)],
    # RFC 8461 3.1: a malformed STS record still counts as one; other TXT records do not
    "record_and_malformed": [step(txt=("v=STSv1; id=1", "v=STSv1; id=bad_id"), body=ENFORCE_OTHER)],
    "record_and_other_txt": [step(txt=("v=spf1 -all", "v=STSv1; id=1"), body=ENFORCE_OTHER)],
    # cached for id 1; the policy served changes, the id does not: the cache holds; then the id changes
    "id_change": [step(), step(body=ENFORCE_OTHER), step(txt=("v=STSv1; id=2",), body=ENFORCE_OTHER)],
    "damaged_cache": [step(), step(damage_cache=True)],
    # the cached entry (the enforce policy that refuses the MX) made to have expired: fetched again
    "expired_cache": [step(body=ENFORCE_OTHER), step(body=ENFORCE_MATCH, expire_cache=True)],
    # a cache directory others may read is not used: every delivery fetches
    "open_cache_dir": [step(cache_mode=0o755), step(cache_mode=0o755)],
    # the cached policy refuses the MX; RFC 8461 5.1: fetched again before deferring
    "recheck": [step(body=ENFORCE_OTHER), step(body=ENFORCE_MATCH)],
    # dane with no TLSA to go by (no DNSSEC here), from the default line or one naming the domain, is
    # may: MTA-STS applies
    "dane_default_enforce": [step(tlspolicy=":dane\n"), step(mx_cert="wrongname", tlspolicy=":dane\n")],
    "dane_named_enforce": [step(tlspolicy="sts.test:dane\n"),
                           step(mx_cert="wrongname", tlspolicy="sts.test:dane\n")],
    # the default line at encrypt authenticates nothing either: MTA-STS applies
    "encrypt_default_enforce": [step(tlspolicy=":encrypt\n"), step(mx_cert="wrongname", tlspolicy=":encrypt\n")],
    # a line naming the domain at may is the administrator's word: no MTA-STS
    "named_may_mismatch": [step(body=ENFORCE_OTHER, tlspolicy="sts.test:may\n")],
    "dane_default_no_record": [step(txt=(), body=ENFORCE_OTHER, tlspolicy=":dane\n")],
}


# --------------------------------------------------------------------------- inside the namespaces

def make_pki(work):
    import trustme
    ca = trustme.CA()
    (work / "ca.pem").write_bytes(ca.cert_pem.bytes())
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)
    certs = {
        "mx-good": ca.issue_cert(MX),
        "mx-wrongname": ca.issue_cert("mx.elsewhere.test"),
        "mx-expired": ca.issue_cert(MX, not_after=past.replace(tzinfo=None)),
        "mx-untrusted": trustme.CA().issue_cert(MX),      # a CA qmail-remote does not trust
        "policy-good": ca.issue_cert(f"mta-sts.{DOMAIN}"),
        "policy-wrongname": ca.issue_cert("mta-sts.elsewhere.test"),
        "policy-expired": ca.issue_cert(f"mta-sts.{DOMAIN}", not_after=past.replace(tzinfo=None)),
    }
    for name, c in certs.items():
        c.private_key_pem.write_to_path(str(work / f"{name}.key"))
        c.cert_chain_pems[0].write_to_path(str(work / f"{name}.pem"))


def tls_ok(cert):
    def handler(s):
        if cert == "mx-none":                      # no STARTTLS offered: enforce QUITs
            s.send("220 mx ESMTP\r\n")
            s.expect("EHLO", "250 mx\r\n")
            from test_qmail_remote import mail_tail
            return mail_tail(s, may_quit=True)
        if cert == "mx-refuse":                    # refused, with a reply that tries to forge an event line
            s.send("220 mx ESMTP\r\n")
            s.expect("EHLO", "250-mx\r\n250 STARTTLS\r\n")
            s.expect("STARTTLS", "454 no %0A\ttlsrpt1\t1\tsts\tsts.test \x01\r\n")
            s.line()
            return
        s.send("220 mx ESMTP\r\n")
        s.expect("EHLO", "250-mx\r\n250 STARTTLS\r\n")
        s.expect("STARTTLS", "220 go\r\n")
        s.starttls(cert)
        s.expect("EHLO", "250 mx\r\n")
        from test_qmail_remote import mail_tail
        mail_tail(s)
    return handler


def inside(name, workdir, prog):
    import socket

    from test_qmail_remote_dns import start_server
    from test_qmail_remote import Server
    work = Path(workdir)
    dnszone.resolve_locally(work, "timeout:2 attempts:2")
    make_pki(work)
    qhome = qmail_home(work / "qmail", queue=("mtastscache", "tlsrpt"), tlscafile=f"{work / 'ca.pem'}\n",
                       tlsmtasts="1\n", dnssecanchor="")       # a test zone without DNSSEC: validation off
    ctl = qhome / "control"
    cache = qhome / "queue" / "mtastscache"
    steps, seen = [], 0
    for st in SCENARIOS[name]:
        cache.chmod(st["cache_mode"])
        (ctl / "tlspolicy").unlink(missing_ok=True)
        if st["tlspolicy"] is not None:
            (ctl / "tlspolicy").write_text(st["tlspolicy"])
        if st["expire_cache"]:
            import re
            now = int(time.time())
            for f in cache.iterdir():
                if f.name.startswith("s") and f.name != "sweep":
                    t = f.read_text("latin-1")
                    t = re.sub(r"\nfetched \d+\n", f"\nfetched {now - 86400 - 10}\n", t)
                    t = re.sub(r"\nexpires \d+\n", f"\nexpires {now - 10}\n", t)
                    f.write_text(t, "latin-1")
        if st["damage_cache"]:
            for f in cache.iterdir():
                if f.name.startswith("s") and f.name != "sweep":
                    f.write_bytes(b"qmail-remote mtastscache 1\nkey garbage\n\x00\xff")
        log = open(work / "dnsmasq.log", "ab")
        dns = dnszone.start_dnsmasq(ZONE + [f"--txt-record=_mta-sts.{DOMAIN},{t}" for t in st["txt"]], log)
        pol = PolicyServer("127.0.0.10", work / f"policy-{st['policy_cert']}.pem",
                           work / f"policy-{st['policy_cert']}.key", {None: st["body"].encode("latin-1")})
        srv = start_server(Server, tls_ok(f"mx-{st['mx_cert']}"), "127.0.0.2")
        srv.pki = work
        r = {}
        try:
            p = subprocess.run([prog, DOMAIN, "s@client.test", f"u@{DOMAIN}"], input=b"Subject: x\n\nbody\n",
                               capture_output=True, env={"QMAILHOME": str(qhome), "PATH": os.environ["PATH"]},
                               timeout=RUN_TIMEOUT * 2)
            r["rc"], r["stderr"], r["report"] = p.returncode, p.stderr.decode("latin-1"), p.stdout.decode("latin-1")
            poke = None
            if not srv.lines:                      # a server that got no SMTP is told to stop by ours
                try:
                    with socket.create_connection(("127.0.0.2", 25), timeout=2) as c:
                        poke = c.getsockname()[1]
                except OSError:
                    pass
            srv.join()
            r["smtp"], r["smtp_tls"] = srv.lines, srv.tls
            r["connections"] = len([x for x in srv.ports if x != poke])   # qmail-remote's
            r["http"] = pol.paths()
        finally:
            pol.stop()
            dnszone.end(dns)
            log.close()
        r["cache"] = {f.name: {"mode": f.stat().st_mode & 0o777, "data": f.read_bytes().decode("latin-1")}
                      for f in cache.iterdir() if f.name.startswith("s") and f.name != "sweep"}
        logs = sorted((qhome / "queue" / "tlsrpt").iterdir())
        lines = [ln for f in logs for ln in f.read_text("latin-1").splitlines()]
        r["events"], seen = lines[seen:], len(lines)      # this step's
        r["event_modes"] = [f.stat().st_mode & 0o777 for f in logs]
        r["event_files"] = [f.name for f in logs]
        steps.append(r)
    print(json.dumps({"steps": steps, "dnsmasq": (work / "dnsmasq.log").read_text("latin-1")}))


# --------------------------------------------------------------------------- the tests


def scenario(name):
    try:
        import trustme  # noqa: F401
    except ImportError:
        must_have(False, "python3-trustme is not installed")
    out = in_namespace(__file__, "-mn", name, "qmr-sts.", [qmail_remote()], needs=("mount", "dnsmasq"),
                       timeout=RUN_TIMEOUT * 6)
    for r in out["steps"]:
        assert r["rc"] == 0 and r["stderr"] == "", r
    return out["steps"]


def events(r):
    """The step's events (qmailremote.event's dicts)."""
    return [event(ln) for ln in r["events"]]


def delivered(r, tls=True):
    assert r["report"].startswith("r\0K127.0.0.2 accepted message.\nRemote host said: 250 ok\n"), r
    assert r["report"].endswith("\0"), r
    assert "RCPT TO:<u@sts.test>" in r["smtp"] and r["smtp_tls"] == tls, r


def deferred(r):
    assert r["report"].startswith("ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"), r
    assert r["report"].endswith("\0") and "RCPT TO:<u@sts.test>" not in r["smtp"], r


def cached_ok(r):
    assert len(r["cache"]) == 1, r["cache"]
    (c,) = r["cache"].values()
    assert c["mode"] == 0o600 and c["data"].startswith("qmail-remote mtastscache 1\nkey sts.test\nid "), c
    return c["data"]


def test_enforce_matching_mx_delivers_verified():
    (r,) = scenario("enforce_match")
    delivered(r)
    assert "Verified peer mx.sts.test" in r["report"], r
    assert r["http"] == ["/.well-known/mta-sts.txt"]
    assert "\nid 1\n" in cached_ok(r) and cached_ok(r).endswith(ENFORCE_MATCH.decode())
    (e,) = events(r)
    assert (e["policy_type"], e["policy_domain"], e["mx_host"], e["addr"], e["result"]) == \
        ("sts", DOMAIN, MX, "127.0.0.2", "success"), e
    assert e["sending_ip"].startswith("127."), e
    assert e["policy"] == ENFORCE_MATCH.decode().replace("\r", "").strip(), e
    assert r["event_modes"] == [0o600] and r["event_files"] == [time.strftime("%Y-%m-%d", time.gmtime())]


def test_enforce_mismatching_mx_is_skipped_and_rechecked():
    (r,) = scenario("enforce_mismatch")
    deferred(r)
    assert "MTA-STS: MX host mx.sts.test does not match the policy of sts.test" in r["report"], r
    assert r["smtp"] == [] and r["connections"] == 0, r      # never connected
    # fetched, then fetched again before deferring (RFC 8461 section 5.1)
    assert r["http"] == ["/.well-known/mta-sts.txt"] * 2, r
    ev = events(r)
    # the same policy again: the MX host is not tried a second time
    assert [(e["policy_type"], e["result"], e["mx_host"], e["sending_ip"]) for e in ev] == \
        [("sts", "validation-failure", MX, "")], ev


def test_enforce_mx_certificate_for_another_name_is_refused():
    (r,) = scenario("enforce_mx_wrong_name")
    deferred(r)
    assert "MTA-STS (enforce, policy of sts.test): TLS certificate verification failed with mx.sts.test" \
        in r["report"], r
    assert [e["result"] for e in events(r)] == ["certificate-host-mismatch"], r
    assert len(r["http"]) == 2, r                  # the re-check before deferring


@pytest.mark.parametrize("name,result", [("enforce_mx_expired", "certificate-expired"),
                                         ("enforce_mx_untrusted", "certificate-not-trusted")])
def test_enforce_mx_certificate_failures_are_named(name, result):
    (r,) = scenario(name)
    deferred(r)
    assert "MTA-STS (enforce, policy of sts.test): TLS certificate verification failed with mx.sts.test" \
        in r["report"], r
    assert [e["result"] for e in events(r)] == [result], r


def test_testing_mode_records_an_untrusted_certificate():
    (r,) = scenario("testing_mx_untrusted")
    delivered(r)
    assert "Untrusted peer mx.sts.test" in r["report"], r
    assert [(e["policy_type"], e["result"]) for e in events(r)] == [("sts", "certificate-not-trusted")], r


def test_testing_mode_delivers_and_records():
    (r,) = scenario("testing_mismatch")
    delivered(r)
    assert "MTA-STS (testing): MX host mx.sts.test does not match the policy of sts.test" in r["report"], r
    (e,) = events(r)
    assert (e["policy_type"], e["result"]) == ("sts", "validation-failure"), e
    assert "mode: testing" in e["policy"]


def test_testing_mode_records_a_certificate_enforce_would_refuse():
    (r,) = scenario("testing_mx_wrong_name")
    delivered(r)                                   # may: the unverified TLS session is used
    assert "Trusted peer mx.sts.test" in r["report"], r
    assert "MTA-STS (testing): mx.sts.test [127.0.0.2] would have failed the policy of sts.test " \
        "(certificate-host-mismatch)" in r["report"], r
    (e,) = events(r)
    assert (e["policy_type"], e["result"], e["mx_host"]) == ("sts", "certificate-host-mismatch", MX), e


def test_enforce_without_starttls_is_refused():
    (r,) = scenario("enforce_no_starttls")
    deferred(r)
    assert "MTA-STS (enforce, policy of sts.test): TLS is required (policy verify) but mx.sts.test [127.0.0.2] " \
        "did not offer STARTTLS" in r["report"], r
    assert "MAIL FROM:<s@client.test>" not in r["smtp"], r
    assert [e["result"] for e in events(r)] == ["starttls-not-supported"], r


def test_a_hostile_reply_stays_inside_its_event_field():
    (r,) = scenario("enforce_starttls_refused")
    deferred(r)
    assert len(r["events"]) == 1, r               # one line, whatever the reply held
    (e,) = events(r)
    assert e["result"] == "starttls-not-supported", e
    assert e["detail"].endswith("refused STARTTLS: 454 no %0A?tlsrpt1?1?sts?sts.test ?"), e


def fetch_failed(r, result):
    delivered(r)                                   # as without a policy: the enforce policy is not used
    assert r["cache"] == {}, r
    ev = events(r)
    assert (ev[0]["policy_type"], ev[0]["mx_host"], ev[0]["result"]) == ("sts", "mta-sts.sts.test", result), ev
    assert [(e["policy_type"], e["result"]) for e in ev[1:]] == [("no-policy-found", "success")], ev
    assert "MTA-STS: the policy of sts.test could not be fetched" in r["report"], r


def test_policy_certificate_expired():
    (r,) = scenario("policy_cert_expired")
    assert r["http"] == [], r
    fetch_failed(r, "sts-webpki-invalid")


def test_policy_certificate_for_another_name():
    (r,) = scenario("policy_cert_wrong_name")
    assert r["http"] == [], r
    fetch_failed(r, "sts-webpki-invalid")


def test_policy_too_large():
    (r,) = scenario("policy_too_large")
    assert r["http"] == ["/.well-known/mta-sts.txt"], r
    fetch_failed(r, "sts-policy-invalid")


def test_no_record_no_policy():
    (r,) = scenario("no_record")
    delivered(r)
    assert r["http"] == [] and r["cache"] == {}, r
    assert [(e["policy_type"], e["result"]) for e in events(r)] == [("no-policy-found", "success")]


def test_two_records_no_policy():
    (r,) = scenario("two_records")
    delivered(r)
    assert r["http"] == [] and r["cache"] == {}, r


def test_malformed_second_record_means_no_policy():
    (r,) = scenario("record_and_malformed")
    delivered(r)
    assert r["http"] == [] and r["cache"] == {}, r


def test_other_txt_records_are_ignored():
    (r,) = scenario("record_and_other_txt")
    deferred(r)
    assert r["http"] == ["/.well-known/mta-sts.txt"] * 2, r


def test_id_change_refetches():
    r1, r2, r3 = scenario("id_change")
    delivered(r1)
    assert len(r1["http"]) == 1
    delivered(r2)                                  # the cached policy, same id: no fetch
    assert r2["http"] == [] and cached_ok(r2) == cached_ok(r1), r2
    deferred(r3)                                   # id 2: fetched, the new policy refuses the MX
    assert len(r3["http"]) == 2 and "\nid 2\n" in cached_ok(r3), r3     # fetched, and again before deferring
    assert "does not match the policy of sts.test" in r3["report"]


def test_damaged_cache_is_ignored_and_replaced():
    r1, r2 = scenario("damaged_cache")
    delivered(r1)
    delivered(r2)
    assert r2["http"] == ["/.well-known/mta-sts.txt"], r2      # the damaged file was a miss
    assert cached_ok(r2).endswith(ENFORCE_MATCH.decode())


def test_expired_cache_entry_is_fetched_again():
    r1, r2 = scenario("expired_cache")
    deferred(r1)
    delivered(r2)                                  # the expired refusing policy was not used...
    assert r2["http"] == ["/.well-known/mta-sts.txt"], r2
    assert [e["result"] for e in events(r2)] == ["success"], r2     # ...not even once before a re-check
    assert cached_ok(r2).endswith(ENFORCE_MATCH.decode())


def test_cache_directory_open_to_others_is_not_used():
    r1, r2 = scenario("open_cache_dir")
    delivered(r1)
    delivered(r2)
    assert r1["http"] == r2["http"] == ["/.well-known/mta-sts.txt"], (r1, r2)
    assert r1["cache"] == r2["cache"] == {}


def test_recheck_before_deferring_finds_the_new_policy():
    r1, r2 = scenario("recheck")
    deferred(r1)
    delivered(r2)                                  # the cache said no; the re-fetch says yes
    assert r2["http"] == ["/.well-known/mta-sts.txt"], r2
    assert cached_ok(r2).endswith(ENFORCE_MATCH.decode())
    assert [e["result"] for e in events(r2)][-1] == "success"


DANE_MAY = "DANE: address records not DNSSEC-validated for mx.sts.test [127.0.0.2], TLS opportunistic (policy dane)"


def test_default_encrypt_comes_under_mta_sts():
    """:encrypt in tlspolicy: the enforce policy raises the MX to verify, so a certificate for
    another name, which encrypt alone would take, is refused."""
    r1, r2 = scenario("encrypt_default_enforce")
    delivered(r1)
    assert "Verified peer mx.sts.test" in r1["report"], r1
    assert [(e["policy_type"], e["result"]) for e in events(r1)] == [("sts", "success")], r1
    deferred(r2)
    assert "MTA-STS (enforce, policy of sts.test): TLS certificate verification failed with mx.sts.test" \
        in r2["report"], r2
    assert [(e["policy_type"], e["result"]) for e in events(r2)] == [("sts", "certificate-host-mismatch")], r2


@pytest.mark.parametrize("line", ["default", "named"])
def test_dane_without_tlsa_comes_under_mta_sts(line):
    """dane, from the default line or from one naming the domain, finds no DNSSEC here: may, so the
    enforce policy applies, and each attempt is one sts event (no tlsa one: no DANE policy applied)."""
    r1, r2 = scenario(f"dane_{line}_enforce")
    delivered(r1)
    assert DANE_MAY in r1["report"] and "Verified peer mx.sts.test" in r1["report"], r1
    assert [(e["policy_type"], e["result"]) for e in events(r1)] == [("sts", "success")], r1
    deferred(r2)
    assert DANE_MAY in r2["report"], r2
    assert "MTA-STS (enforce, policy of sts.test): TLS certificate verification failed with mx.sts.test" \
        in r2["report"], r2
    assert [(e["policy_type"], e["result"]) for e in events(r2)] == [("sts", "certificate-host-mismatch")], r2


def test_named_may_line_keeps_mta_sts_out():
    """sts.test:may in tlspolicy: the enforce policy that refuses the MX is not applied."""
    (r,) = scenario("named_may_mismatch")
    delivered(r)
    assert "MTA-STS" not in r["report"], r
    assert [e["policy_type"] for e in events(r)] == [], r


def test_dane_without_tlsa_or_mta_sts_is_no_policy_found():
    (r,) = scenario("dane_default_no_record")
    delivered(r)
    assert DANE_MAY in r["report"] and r["http"] == [], r
    assert [(e["policy_type"], e["result"]) for e in events(r)] == [("no-policy-found", "success")], r


def test_events_make_an_rfc8460_report(tmp_path):
    """qmail-remote's own event lines, through tlsrpt-report: one policy entry per policy text met."""
    agg = os.environ.get("MAILTLS_TLSRPT_REPORT")
    if not agg or not os.access(agg, os.X_OK):
        pytest.fail(f"MAILTLS_TLSRPT_REPORT={agg!r} is not executable; run through ctest")
    r1, r2 = scenario("recheck")
    day = r2["event_files"][-1]
    (tmp_path / day).write_text("".join(ln + "\n" for ln in r1["events"] + r2["events"]), "latin-1")
    p = subprocess.run([agg, "-o", "Test", "-c", "tlsrpt@client.test", "-d", day, "-l", str(tmp_path), "-w",
                        str(tmp_path)], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert p.returncode == 0 and p.stderr == "", p
    (f,) = tmp_path.glob("client.test!sts.test!*.json")
    rep = json.loads(f.read_text())
    pols = {tuple(x["policy"]["mx-host"]): x for x in rep["policies"]}
    assert set(pols) == {("*.other.test",), (MX,)}, rep
    other, match = pols[("*.other.test",)], pols[(MX,)]
    assert other["policy"]["policy-string"] == ["version: STSv1", "mode: enforce", "mx: *.other.test",
                                                "max_age: 86400"]
    assert other["summary"] == {"total-successful-session-count": 0, "total-failure-session-count": 2}
    assert other["failure-details"] == [{"result-type": "validation-failure", "receiving-mx-hostname": MX,
                                         "receiving-ip": "127.0.0.2", "failed-session-count": 2,
                                         "failure-reason-code": "the MX host matches no mx pattern of the policy"}]
    assert match["summary"] == {"total-successful-session-count": 1, "total-failure-session-count": 0}


if __name__ == "__main__":
    inside(*sys.argv[1:4])
