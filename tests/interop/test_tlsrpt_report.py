"""tlsrpt-report: a recorded day of qmail-remote's TLS-RPT event lines into RFC 8460 JSON reports.

The day (2026-11-27) is written here line by line in tlsrpt.h's format, with damaged and foreign lines among
the events.  Each report is checked field by field against RFC 8460 section 4.4's structure: the members and
their types, the counts, the failure-details groups.  The _smtp._tls TXT lookup (-r) runs in private
namespaces against dnsmasq, as test_qmail_remote_dns.py does.
"""
import calendar
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from conftest import RUN_TIMEOUT, executable_from_env, in_namespace  # noqa: E402
import dnszone  # noqa: E402

DAY = "2026-11-27"
T0 = calendar.timegm(time.strptime(DAY, "%Y-%m-%d"))
STS_POLICY = "version: STSv1\nmode: enforce\nmx: mx1.a.test\nmx: *.mx.a.test\nmax_age: 604800"

# RFC 8460 section 4.4: the members a report, a policy entry, its policy, summary and failure details have
TOP = {"organization-name", "date-range", "contact-info", "report-id", "policies"}
POLICY = {"policy-type", "policy-string", "policy-domain", "mx-host"}
SUMMARY = {"total-successful-session-count", "total-failure-session-count"}
FAILURE = {"result-type", "sending-mta-ip", "receiving-mx-hostname", "receiving-mx-helo", "receiving-ip",
           "failed-session-count", "additional-information", "failure-reason-code"}


def esc(s):
    return "".join(c if 0x21 <= ord(c) <= 0x7e and c != "%" else "%%%02X" % ord(c) for c in s)


def line(t, ptype, pdom, mx, addr, sip, result, detail="", policy=""):
    return "\t".join(["tlsrpt1", str(T0 + t)] + [esc(x) for x in (ptype, pdom, pdom, mx, addr, sip, result,
                                                                 detail, policy)]) + "\n"


def recorded_day():
    ev = [
        line(10, "sts", "a.test", "mx1.a.test", "192.0.2.1", "198.51.100.7", "success", policy=STS_POLICY),
        line(20, "sts", "a.test", "mx1.a.test", "192.0.2.1", "198.51.100.7", "success", policy=STS_POLICY),
        line(30, "sts", "a.test", "mx1.a.test", "192.0.2.1", "198.51.100.7", "certificate-expired",
             "TLS handshake failed (verify-expired)", STS_POLICY),
        line(40, "sts", "a.test", "mx1.a.test", "192.0.2.1", "198.51.100.7", "certificate-expired",
             "second of the same group", STS_POLICY),
        line(50, "sts", "a.test", "evil.test", "192.0.2.9", "", "validation-failure",
             "the MX host matches no mx pattern of the policy", STS_POLICY),
        line(60, "no-policy-found", "a.test", "mx1.a.test", "192.0.2.1", "198.51.100.7", "success"),
        line(70, "no-policy-found", "b.test", "mx.b.test", "2001:db8::25", "2001:db8::1", "starttls-not-supported"),
        # a hostile MX name: an escaped TAB and LF and a quote stay inside one JSON string
        line(80, "tlsa", "b.test", 'mx.b.test\t"x\n', "2001:db8::25", "2001:db8::1", "tlsa-invalid",
             'DANE: "no usable" \\ TLSA'),
        line(90, "tlsa", "b.test", "mx.b.test", "2001:db8::25", "2001:db8::1", "success"),
        line(100, "sts", "c.test", "mta-sts.c.test", "", "", "sts-policy-fetch-error", "cannot connect"),
    ]
    damaged = [
        "tlsrpt1\t%d\tsts\ta.test\ta.test\tmx1.a.test\t192.0.2.1\t\tsuccess\t\n" % (T0 + 5),  # 10 fields
        line(5, "sts", "a.test", "mx1.a.test", "192.0.2.1", "", "no-such-result"),
        line(5, "sts", "a.test", "mx1.a.test", "192.0.2.1", "", "success").replace("mx1.a.test", "mx1 a.test", 1),
        line(5, "sts", "a.test", "mx1.a.test", "192.0.2.1", "", "success").replace("mx1.a.test", "mx%41.a.test", 1),
        "garbage\n",
    ]
    outside = [line(86400, "sts", "a.test", "mx1.a.test", "192.0.2.1", "", "success", policy=STS_POLICY),
               line(-1, "sts", "a.test", "mx1.a.test", "192.0.2.1", "", "success", policy=STS_POLICY)]
    cut = line(200, "sts", "a.test", "mx1.a.test", "192.0.2.1", "", "success")[:-9]    # a write cut short
    return "".join(ev[:3] + damaged[:2] + ev[3:6] + outside + damaged[2:] + ev[6:]) + cut


def prog():
    return executable_from_env("MAILTLS_TLSRPT_REPORT", "tlsrpt-report")


def run(*args, env=None):
    return subprocess.run([prog(), *args], capture_output=True, text=True, timeout=RUN_TIMEOUT,
                          env=env if env is not None else {"PATH": os.environ.get("PATH", "")})


@pytest.fixture
def day(tmp_path):
    logs = tmp_path / "tlsrpt"
    logs.mkdir()
    (logs / DAY).write_text(recorded_day(), "latin-1")
    out = tmp_path / "out"
    out.mkdir()
    return logs, out


def reports(logs, out, *extra):
    p = run("-o", "Sender Org", "-c", "tlsrpt@sender.test", "-d", DAY, "-l", str(logs), "-w", str(out), *extra)
    assert p.returncode == 0, p.stderr
    return p


def test_one_report_per_policy_domain(day):
    logs, out = day
    p = reports(logs, out)
    end = T0 + 86399
    want = {d: str(out / f"sender.test!{d}!{T0}!{end}.json") for d in ("a.test", "b.test", "c.test")}
    assert p.stdout.splitlines() == [f"{d}\t{f}" for d, f in sorted(want.items())]
    assert sorted(x.name for x in out.iterdir()) == sorted(Path(f).name for f in want.values())
    assert "6 damaged lines skipped" in p.stderr and "2 events outside 2026-11-27 skipped" in p.stderr, p.stderr


def load(out, domain):
    (f,) = list(out.glob(f"sender.test!{domain}!*.json"))
    return json.loads(f.read_text())


def check_structure(r, domain):
    assert set(r) == TOP
    assert r["organization-name"] == "Sender Org" and r["contact-info"] == "tlsrpt@sender.test"
    assert r["date-range"] == {"start-datetime": f"{DAY}T00:00:00Z", "end-datetime": f"{DAY}T23:59:59Z"}
    assert isinstance(r["report-id"], str) and domain in r["report-id"]
    assert isinstance(r["policies"], list) and r["policies"]
    for p in r["policies"]:
        assert set(p) <= {"policy", "summary", "failure-details"} and {"policy", "summary"} <= set(p)
        assert set(p["policy"]) <= POLICY and p["policy"]["policy-domain"] == domain
        assert p["policy"]["policy-type"] in ("sts", "tlsa", "no-policy-found")
        assert set(p["summary"]) == SUMMARY and all(isinstance(v, int) for v in p["summary"].values())
        for f in p.get("failure-details", []):
            assert set(f) <= FAILURE and isinstance(f["failed-session-count"], int) and f["result-type"]
        fails = sum(f["failed-session-count"] for f in p.get("failure-details", []))
        assert fails == p["summary"]["total-failure-session-count"]


def by_type(r):
    return {p["policy"]["policy-type"]: p for p in r["policies"]}


def test_sts_report_field_by_field(day):
    logs, out = day
    reports(logs, out)
    r = load(out, "a.test")
    check_structure(r, "a.test")
    assert r["report-id"] == f"{DAY}.a.test@sender.test"
    pol = by_type(r)
    assert set(pol) == {"sts", "no-policy-found"}
    sts = pol["sts"]
    assert sts["policy"] == {"policy-type": "sts", "policy-string": STS_POLICY.split("\n"), "policy-domain": "a.test",
                             "mx-host": ["mx1.a.test", "*.mx.a.test"]}
    assert sts["summary"] == {"total-successful-session-count": 2, "total-failure-session-count": 3}
    assert sts["failure-details"] == [
        {"result-type": "certificate-expired", "sending-mta-ip": "198.51.100.7", "receiving-mx-hostname": "mx1.a.test",
         "receiving-ip": "192.0.2.1", "failed-session-count": 2,
         "failure-reason-code": "TLS handshake failed (verify-expired)"},
        {"result-type": "validation-failure", "receiving-mx-hostname": "evil.test", "receiving-ip": "192.0.2.9",
         "failed-session-count": 1, "failure-reason-code": "the MX host matches no mx pattern of the policy"},
    ]
    none = pol["no-policy-found"]
    assert none["policy"] == {"policy-type": "no-policy-found", "policy-domain": "a.test"}
    assert none["summary"] == {"total-successful-session-count": 1, "total-failure-session-count": 0}
    assert "failure-details" not in none


def test_hostile_fields_stay_in_their_strings(day):
    logs, out = day
    reports(logs, out)
    r = load(out, "b.test")
    check_structure(r, "b.test")
    pol = by_type(r)
    tlsa = pol["tlsa"]
    assert tlsa["policy"] == {"policy-type": "tlsa", "policy-domain": "b.test",
                              "mx-host": ['mx.b.test\t"x\n', "mx.b.test"]}
    assert tlsa["summary"] == {"total-successful-session-count": 1, "total-failure-session-count": 1}
    (f,) = tlsa["failure-details"]
    assert f["receiving-mx-hostname"] == 'mx.b.test\t"x\n' and f["failure-reason-code"] == 'DANE: "no usable" \\ TLSA'
    assert f["sending-mta-ip"] == "2001:db8::1" and f["receiving-ip"] == "2001:db8::25"
    assert pol["no-policy-found"]["failure-details"][0]["result-type"] == "starttls-not-supported"
    c = load(out, "c.test")
    check_structure(c, "c.test")
    (p,) = c["policies"]
    assert p["policy"] == {"policy-type": "sts", "policy-domain": "c.test"}
    assert p["failure-details"] == [{"result-type": "sts-policy-fetch-error", "receiving-mx-hostname": "mta-sts.c.test",
                                     "failed-session-count": 1, "failure-reason-code": "cannot connect"}]


def test_missing_log_is_a_day_without_reports(tmp_path):
    p = run("-o", "O", "-c", "a@s.test", "-d", DAY, "-l", str(tmp_path), "-w", str(tmp_path))
    assert (p.returncode, p.stdout) == (0, "") and list(tmp_path.iterdir()) == []


def test_default_log_directory_is_the_qmail_trees(tmp_path):
    logs = tmp_path / "queue" / "tlsrpt"
    logs.mkdir(parents=True)
    (logs / DAY).write_text(line(1, "sts", "a.test", "mx1.a.test", "192.0.2.1", "", "success"))
    p = run("-o", "O", "-c", "a@s.test", "-d", DAY, "-w", str(tmp_path),
            env={"QMAILHOME": str(tmp_path), "PATH": os.environ.get("PATH", "")})
    assert p.returncode == 0 and p.stdout.startswith("a.test\t"), p


@pytest.mark.parametrize("args", [
    [], ["-c", "a@s.test"], ["-o", "O"], ["-o", "O", "-c", "no-domain"], ["-o", "O", "-c", "a@s.test", "-d", "2026-02-30"],
    ["-o", "O", "-c", "a@s.test", "-d", "yesterday"], ["-o", "O", "-c", "a@s.test", "-x"],
    ["-o", "O", "-c", "a@s.test", "extra"], ["-o", "O", "-c", "a@s.test", "-s", "bad/sender"],
])
def test_usage_is_100(args, tmp_path):
    p = run(*args, "-l", str(tmp_path), "-w", str(tmp_path))
    assert p.returncode == 100 and p.stdout == "" and "usage" in p.stderr, p


def test_unreadable_log_is_111(tmp_path):
    (tmp_path / DAY).mkdir()                       # read(2) fails with EISDIR, even for root
    p = run("-o", "O", "-c", "a@s.test", "-d", DAY, "-l", str(tmp_path), "-w", str(tmp_path))
    assert p.returncode == 111 and "cannot read" in p.stderr, p


def test_unwritable_output_is_111(day):
    logs, out = day
    p = run("-o", "O", "-c", "a@s.test", "-d", DAY, "-l", str(logs), "-w", str(out / "missing"))
    assert p.returncode == 111 and "cannot write" in p.stderr, p
    assert list(out.iterdir()) == []


# --------------------------------------------------------------------------- -r, inside namespaces

# dnsmasq splits a TXT value at its commas into strings; a record's strings are joined (RFC 8460 section 3)
ZONE = ["--txt-record=_smtp._tls.a.test,v=TLSRPTv1; rua=mailto:tlsrpt,@a.test",
        "--txt-record=_smtp._tls.b.test,v=TLSRPTv1; rua=mailto:one@b.test",
        "--txt-record=_smtp._tls.b.test,v=TLSRPTv1; rua=mailto:two@b.test",   # two records: no reporting
        "--server=/c.test/127.0.0.1#5399",                                       # SERVFAIL: temporary
        # the domain's own record is hostile: a TAB and a newline in its rua would forge an output line
        "--txt-record=_smtp._tls.d.test,v=TLSRPTv1; rua=mailto:a@d.test\nvictim.test\t/etc/shadow\tmailto:x@d.test",
        # an answer over 8 KiB (TCP): three records of ~3 KB, the one TLSRPTv1 among them usable
        "--txt-record=_smtp._tls.e.test,v=TLSRPTv1; rua=mailto:r@e.test",
        "--txt-record=_smtp._tls.e.test," + ",".join(["x" * 250] * 12),
        "--txt-record=_smtp._tls.e.test," + ",".join(["y" * 250] * 12),
        "--txt-record=_smtp._tls.e.test," + ",".join(["z" * 250] * 12),
        "--local=/test/"]


def inside(name, workdir, program):
    work = Path(workdir)
    dnszone.resolve_locally(work, "timeout:1 attempts:1")
    dns = dnszone.start_dnsmasq(ZONE)
    try:
        p = subprocess.run([program, "-o", "O", "-c", "a@s.test", "-d", DAY, "-l", str(work / "logs"),
                            "-w", str(work / "out"), "-r"], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    finally:
        dnszone.end(dns)
    print(json.dumps({"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}))


def test_rua_lookup():
    def prepare(work):
        (work / "logs").mkdir()
        (work / "out").mkdir()
        more = [line(300, "no-policy-found", d, "mx." + d, "192.0.2.9", "", "success") for d in ("d.test", "e.test")]
        (work / "logs" / DAY).write_text("".join(more) + recorded_day(), "latin-1")   # it ends in a cut line
    r = in_namespace(__file__, "-mn", "rua", "tlsrpt.", [prog()], needs=("mount", "dnsmasq"),
                     timeout=RUN_TIMEOUT * 3, prepare=prepare)
    lines = r["stdout"].splitlines()
    assert all(len(ln.split("\t")) == 3 for ln in lines), r     # no line forged by a record
    rua = {ln.split("\t")[0]: ln.split("\t")[2] for ln in lines}
    assert rua == {"a.test": "mailto:tlsrpt@a.test", "b.test": "", "c.test": "", "d.test": "",
                   "e.test": "mailto:r@e.test"}, r
    assert "_smtp._tls.d.test: rua holds bytes other than printable ASCII: not used" in r["stderr"], r
    # c.test's lookup failed temporarily: every report is written, and the exit says try again
    assert r["rc"] == 111 and "_smtp._tls.c.test: temporary DNS failure" in r["stderr"], r


if __name__ == "__main__":
    inside(*sys.argv[1:4])
