"""qmail-remote (examples/qmail-remote) delivering to a real Postfix on loopback.

Postfix (peers.py) accepts mail for dest.test into a Maildir through its virtual
delivery agent, with STARTTLS and the test PKI's server-ec certificate on port
"tls", the same server with the wrongname certificate on port "wrong", and asks
for client certificates (smtpd_tls_ask_ccert) checked against the test CA.  Each
test runs qmail-remote as qmail-rspawn would, in a qmail tree of its own
($QMAILHOME), and checks the report bytes, Postfix's log and the Maildir file.

Environment: MAILTLS_QMAIL_REMOTE (the program), MAILTLS_TEST_PKI (conftest).
"""
import base64
import hashlib
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import RUN_TIMEOUT, free_port, qmail_remote
from qmailremote import qmail_home
from peers import instdir, start_postfix  # noqa: F401 - fixtures

# Date and Message-ID given, so Postfix's cleanup adds headers only above the message
MSG = (b"From: s@client.test\nTo: u@dest.test\nSubject: qmail-remote to Postfix\n"
       b"Date: Sat, 28 Nov 2026 04:00:00 +0000\nMessage-ID: <1@client.test>\n\n"
       b"first line\n.a line with a leading dot\n..two dots\n\nlast line\n")
ACCEPTED = re.compile(rb"^r\0K127\.0\.0\.1 accepted message\.\nRemote host said: 250 2\.0\.0 Ok: queued as "
                      rb"[0-9A-Za-z]+\n")
NOCONN = b"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"



def fingerprint(pki, name):
    pem = (pki / f"{name}-leaf.pem").read_text()
    der = base64.b64decode("".join(pem.split("-----")[2].split()))
    return "SHA256:" + hashlib.sha256(der).hexdigest()


@pytest.fixture
def mta(need, procs, pki, instdir):  # noqa: F811 - the fixture of peers.py
    d = instdir
    vmail = d / "vmail"
    vmail.mkdir()
    shutil.chown(vmail, user="nobody", group="nogroup")
    shutil.copy(pki / "wrongname.pem", d / "wrong-cert.pem")
    shutil.copy(pki / "wrongname.key", d / "wrong-key.pem")
    os.chmod(d / "wrong-key.pem", 0o600)

    def services():
        ports = {"tls": free_port(), "wrong": free_port()}
        # smtpd_tls_loglevel 2: the client certificate's facts and session reuse are logged
        return ports, [f"{ports['tls']} inet n - n - - smtpd -o smtpd_tls_loglevel=2",
                       f"{ports['wrong']} inet n - n - - smtpd -o smtpd_tls_cert_file={d}/wrong-cert.pem"
                       f" -o smtpd_tls_key_file={d}/wrong-key.pem -o smtpd_tls_loglevel=2",
                       "virtual unix - n n - - virtual"]
    main = ["virtual_mailbox_domains = dest.test",
            f"virtual_mailbox_base = {vmail}",
            "virtual_mailbox_maps = static:u/Maildir/",
            "virtual_uid_maps = static:65534",
            "virtual_gid_maps = static:65534",
            "smtpd_tls_ask_ccert = yes",
            f"smtpd_tls_CAfile = {pki / 'ca.pem'}",
            "smtpd_tls_received_header = yes"]
    inst = start_postfix(need, procs, pki, d, main=main, services=services)
    inst.vmail = vmail / "u" / "Maildir"
    yield inst
    inst.stop()


@pytest.fixture
def qhome(tmp_path, pki):
    return qmail_home(tmp_path / "qmail", timeoutremote=15, queue=("tlscache",), tlscafile=f"{pki / 'ca.pem'}\n")


def destination(qhome, port, level=None, opts=""):
    (qhome / "control" / "smtproutes").write_text(f"dest.test:[127.0.0.1]:{port}\n")
    if level:
        (qhome / "control" / "tlspolicy").write_text(f"dest.test:{level}{opts}\n")


def deliver(qhome, msg=MSG):
    p = subprocess.run([qmail_remote(), "dest.test", "s@client.test", "u@dest.test"], input=msg, capture_output=True,
                       env={"QMAILHOME": str(qhome), "PATH": os.environ.get("PATH", "")}, timeout=RUN_TIMEOUT)
    assert p.returncode == 0 and p.stderr == b"", p
    return p.stdout


def tls_line(out):
    lines = [ln for ln in out.split(b"\0")[-2].split(b"\n") if ln.startswith(b"TLS: ")]
    assert len(lines) == 1, out
    return lines[0].decode()


def wait_delivered(mta, n, since=0):
    """The Maildir's files once |n| are there (Postfix delivers after the 250)."""
    assert mta.wait_log(r"status=sent \(delivered to maildir\)" + r"(?:.|\n)*status=sent" * (n - 1),
                        since=since, timeout=RUN_TIMEOUT), mta.log(since)
    files = sorted((mta.vmail / "new").iterdir(), key=lambda f: f.stat().st_mtime_ns)
    assert len(files) == n, files
    return files


def stored(f):
    """A Maildir file: Postfix's header lines, then the message as qmail-remote had it."""
    data = f.read_bytes()
    assert data.endswith(MSG), data
    return data[:-len(MSG)].decode("latin-1")


# --------------------------------------------------------------------------- each policy level

@pytest.mark.parametrize("level,opts,word", [
    ("may", "", "Verified"), ("encrypt", "", "Verified"), ("verify", "", "Verified"),
    ("secure", ":match=mail.test.example", "Verified"), ("fingerprint", None, "Verified")])
def test_level_delivers_over_tls(mta, qhome, pki, level, opts, word):
    if opts is None:
        opts = f":fingerprint={fingerprint(pki, 'server-ec')}"
    destination(qhome, mta.ports["tls"], level, opts)
    mark = len(mta.log())
    out = deliver(qhome)
    assert ACCEPTED.match(out), out
    t = tls_line(out)
    assert re.fullmatch(rf"TLS: TLSv1\.3 TLS_\w+, {word} peer 127\.0\.0\.1 \((against|fingerprint) .+\)", t), t
    if level == "fingerprint":
        assert t.endswith(f"(fingerprint {fingerprint(pki, 'server-ec')})")
    assert mta.wait_log(r"Anonymous TLS connection established from localhost\[127\.0\.0\.1\]: TLSv1\.3 with "
                        r"cipher ", since=mark), mta.log(mark)
    head = stored(wait_delivered(mta, 1, since=mark)[0])
    assert "(using TLSv1.3 with cipher" in head, head
    assert "Received: from client.test.example" in head, head


def test_level_none_is_plaintext(mta, qhome):
    destination(qhome, mta.ports["tls"], "none")
    mark = len(mta.log())
    out = deliver(qhome)
    assert ACCEPTED.match(out) and b"TLS" not in out, out
    head = stored(wait_delivered(mta, 1, since=mark)[0])
    assert "using TLS" not in head, head
    assert "TLS connection established" not in mta.log(mark)


def test_default_policy_is_may(mta, qhome):
    destination(qhome, mta.ports["tls"])
    out = deliver(qhome)
    assert ACCEPTED.match(out), out
    assert tls_line(out).startswith("TLS: TLSv1.3 ")
    wait_delivered(mta, 1)


# --------------------------------------------------------------------------- names and pins

@pytest.mark.parametrize("level,opts,cause", [
    ("verify", "", "verify-name"),
    ("secure", ":match=mail.test.example", "verify-name"),
    ("fingerprint", ":fingerprint=SHA256:" + "ab" * 32, "verify-pin")])
def test_bad_name_or_pin_defers_and_sends_nothing(mta, qhome, pki, level, opts, cause):
    port = mta.ports["wrong"] if cause == "verify-name" else mta.ports["tls"]
    destination(qhome, port, level, opts)
    mark = len(mta.log())
    out = deliver(qhome)
    assert out.startswith(NOCONN), out
    assert f"TLS certificate verification failed with 127.0.0.1 [127.0.0.1] (policy {level}):".encode() in out
    assert f"({cause})\n\0".encode() in out, out
    m = mta.wait_log(r"disconnect from localhost\[127\.0\.0\.1\] (.*)", since=mark)
    assert m, mta.log(mark)
    assert "starttls=" in m.group(1) and "mail=" not in m.group(1), m.group(0)   # nothing sent in the clear
    assert "status=sent" not in mta.log(mark)
    assert not (mta.vmail / "new").exists() or not any((mta.vmail / "new").iterdir())


def test_secure_refuses_the_mx_name_alone(mta, qhome):
    """secure checks the destination domain (and match= names), not the MX host name:
    a certificate for 127.0.0.1 and localhost does not name dest.test."""
    destination(qhome, mta.ports["tls"], "secure")
    out = deliver(qhome)
    assert out.startswith(NOCONN) and b"(policy secure)" in out and b"(verify-name)" in out, out


def test_may_with_wrong_name_delivers_as_trusted(mta, qhome):
    destination(qhome, mta.ports["wrong"], "may")
    out = deliver(qhome)
    assert ACCEPTED.match(out), out
    assert ", Trusted peer 127.0.0.1" in tls_line(out)
    wait_delivered(mta, 1)


# --------------------------------------------------------------------------- the client certificate

def test_client_certificate_seen_by_postfix(mta, qhome, pki):
    cc = qhome / "control" / "clientcert.pem"
    cc.write_bytes((pki / "client.key").read_bytes() + (pki / "client.pem").read_bytes())
    cc.chmod(0o600)
    destination(qhome, mta.ports["tls"], "verify")
    mark = len(mta.log())
    out = deliver(qhome)
    assert ACCEPTED.match(out), out
    fp = fingerprint(pki, "client")[7:]
    fp_colons = ":".join(fp[i:i + 2] for i in range(0, len(fp), 2)).upper()
    m = mta.wait_log(r"localhost\[127\.0\.0\.1\]: subject_CN=client\.test\.example, "
                     r"issuer=mailtls Test Intermediate CA, fingerprint=([0-9A-F:]+)", since=mark)
    assert m, mta.log(mark)
    assert mta.wait_log(r"Trusted TLS connection established from localhost\[127\.0\.0\.1\]", since=mark)
    head = stored(wait_delivered(mta, 1, since=mark)[0])
    assert '(Client CN "client.test.example", Issuer "mailtls Test Intermediate CA" (verified OK))' in head, head
    assert m.group(1) == fp_colons    # smtpd_tls_fingerprint_digest: sha256 since compatibility level 3.6


def test_no_client_certificate_without_the_file(mta, qhome):
    destination(qhome, mta.ports["tls"], "encrypt")
    mark = len(mta.log())
    assert ACCEPTED.match(deliver(qhome))
    assert mta.wait_log(r"Anonymous TLS connection established from localhost\[127\.0\.0\.1\]", since=mark)
    assert "subject_CN=" not in mta.log(mark)
    wait_delivered(mta, 1, since=mark)


# --------------------------------------------------------------------------- the session cache

def slot(key):
    """The file name of |key| (cachefile.c): FNV-1a 64 folded to 10 bits."""
    h = 14695981039346656037
    for b in key.encode():
        h = ((h ^ b) * 1099511628211) % 2**64
    return "s%03x" % ((h ^ (h >> 32)) % 1024)


def cache_files(qhome):
    return sorted(p for p in (qhome / "queue" / "tlscache").iterdir() if p.name.startswith("s")
                  and p.name != "sweep")


@pytest.mark.parametrize("level", ["may", "verify", "fingerprint"])
def test_second_delivery_resumes(mta, qhome, pki, level):
    opts = f":fingerprint={fingerprint(pki, 'server-ec')}" if level == "fingerprint" else ""
    destination(qhome, mta.ports["tls"], level, opts)
    mark = len(mta.log())
    out1 = deliver(qhome)
    assert ACCEPTED.match(out1) and not tls_line(out1).endswith(", resumed"), out1
    files = cache_files(qhome)
    assert [f.name for f in files] == [slot(f"{level} 127.0.0.1 127.0.0.1 {mta.ports['tls']}")], files
    st = files[0].stat()
    assert (st.st_mode & 0o777) == 0o600 and st.st_uid == os.geteuid()
    head = files[0].read_bytes().split(b"\n\n", 1)[0].decode("latin-1")
    assert head.splitlines()[:2] == ["qmail-remote tlscache 1",
                                     f"key {level} 127.0.0.1 127.0.0.1 {mta.ports['tls']}"], head
    expires = int(head.splitlines()[2].split()[1])
    assert 3500 < expires - time.time() <= 3600
    assert mta.wait_log(r"Issuing session ticket", since=mark), mta.log(mark)
    assert "Reusing old session" not in mta.log(mark)
    mark = len(mta.log())
    out2 = deliver(qhome)
    assert ACCEPTED.match(out2), out2
    t = tls_line(out2)
    assert t.endswith(", resumed") and " Verified peer 127.0.0.1 " in t, t
    # Postfix (smtpd_tls_loglevel 2) says it took the session ticket
    assert mta.wait_log(r"localhost\[127\.0\.0\.1\]: Reusing old session \(RFC 5077 session ticket\)",
                        since=mark), mta.log(mark)
    wait_delivered(mta, 2)
    assert len(cache_files(qhome)) == 1


def test_resumed_session_still_checks_the_policy(mta, qhome, pki, tmp_path):
    """A session saved under verify, offered again once the trust anchors changed: the
    resumed peer is verified again, fails, and the entry is dropped."""
    destination(qhome, mta.ports["tls"], "verify")
    assert ACCEPTED.match(deliver(qhome))
    assert len(cache_files(qhome)) == 1
    (qhome / "control" / "tlscafile").write_text(f"{pki / 'unknown-ca.pem'}\n")
    out = deliver(qhome)
    assert out.startswith(NOCONN) and b"certificate verification failed" in out, out
    assert b"(verify-untrusted)" in out or b"(verify-" in out, out
    assert cache_files(qhome) == []
    wait_delivered(mta, 1)


def test_levels_do_not_share_sessions(mta, qhome):
    destination(qhome, mta.ports["tls"], "may")
    assert ACCEPTED.match(deliver(qhome))
    destination(qhome, mta.ports["tls"], "encrypt")
    out = deliver(qhome)
    assert ACCEPTED.match(out) and not tls_line(out).endswith(", resumed"), out
    destination(qhome, mta.ports["tls"], "may")
    out = deliver(qhome)
    assert tls_line(out).endswith(", resumed"), out
    wait_delivered(mta, 3)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "expired", "far-future", "symlink"])
def test_damaged_cache_entry_is_ignored(mta, qhome, damage, tmp_path):
    destination(qhome, mta.ports["tls"], "may")
    assert ACCEPTED.match(deliver(qhome))
    f = cache_files(qhome)[0]
    data = f.read_bytes()
    if damage == "garbage":
        f.write_bytes(b"\0garbage" * 100)
    elif damage == "truncated":
        f.write_bytes(data[:-10])
    elif damage in ("expired", "far-future"):
        when = int(time.time()) + (-10 if damage == "expired" else 10 * 86400)
        f.write_bytes(re.sub(rb"\nexpires \d+\n", b"\nexpires %d\n" % when, data))
    else:
        target = tmp_path / "elsewhere"
        target.write_bytes(data)
        target.chmod(0o600)
        f.unlink()
        f.symlink_to(target)
    out = deliver(qhome)
    assert ACCEPTED.match(out), out
    assert not tls_line(out).endswith(", resumed"), out
    # the entry was dropped and the new session saved in its place
    files = cache_files(qhome)
    assert len(files) == 1 and not files[0].is_symlink() and files[0].read_bytes().startswith(
        b"qmail-remote tlscache 1\nkey may "), files
    assert tls_line(deliver(qhome)).endswith(", resumed")
    wait_delivered(mta, 3)


@pytest.mark.parametrize("how", ["missing", "open-to-others", "unwritable-file"])
def test_unusable_cache_never_costs_a_delivery(mta, qhome, how):
    cache = qhome / "queue" / "tlscache"
    destination(qhome, mta.ports["tls"], "may")
    if how == "missing":
        cache.rmdir()
    elif how == "open-to-others":
        cache.chmod(0o755)
    else:
        # a slot taken by a directory: nothing can be written or read there
        assert ACCEPTED.match(deliver(qhome))
        slot = cache_files(qhome)[0]
        slot.unlink()
        slot.mkdir()
    out = deliver(qhome)
    assert ACCEPTED.match(out), out
    out = deliver(qhome)
    assert ACCEPTED.match(out) and not tls_line(out).endswith(", resumed"), out
    if how == "open-to-others":
        assert cache_files(qhome) == []
    if how != "missing":
        assert not any(p.name.startswith("t") for p in cache.iterdir())
    wait_delivered(mta, 3 if how == "unwritable-file" else 2)


def test_cache_directory_from_control(mta, qhome, tmp_path):
    other = tmp_path / "sessions"
    other.mkdir(mode=0o700)
    (qhome / "control" / "tlscachedir").write_text(f"{other}\n")
    destination(qhome, mta.ports["tls"], "encrypt")
    assert ACCEPTED.match(deliver(qhome))
    assert cache_files(qhome) == []
    assert len([p for p in other.iterdir() if p.name.startswith("s") and p.name != "sweep"]) == 1
    assert tls_line(deliver(qhome)).endswith(", resumed")
    wait_delivered(mta, 2)


def test_expired_entries_are_swept(mta, qhome):
    """Entries whose time is over go at the next sweep, whoever's they are."""
    cache = qhome / "queue" / "tlscache"
    ours = slot(f"may 127.0.0.1 127.0.0.1 {mta.ports['tls']}")
    stale = cache / ("s3ff" if ours != "s3ff" else "s3fe")
    stale.write_bytes(b"qmail-remote tlscache 1\nkey may other.example 192.0.2.1 25\nexpires 1\nsize 1\n\nx")
    stale.chmod(0o600)
    os.utime(stale, (1, 1))
    leftover = cache / "t99999"
    leftover.write_bytes(b"half")
    os.utime(leftover, (time.time() - 3600, time.time() - 3600))
    destination(qhome, mta.ports["tls"], "may")
    assert ACCEPTED.match(deliver(qhome))
    names = sorted(p.name for p in cache.iterdir())
    assert names == sorted(["sweep", ours]), names
    wait_delivered(mta, 1)
