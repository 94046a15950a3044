"""libmailtls's client STARTTLS against real mail servers, on loopback.

Peers: Postfix (SMTP STARTTLS, RFC 3207) and Dovecot (POP3 STLS, IMAP STARTTLS),
each started in a private temporary directory on free loopback ports with a
certificate of the test PKI (server-ec, issued by the test intermediate for
localhost), and stopped by its own pid when the test ends.  Our side is
"mailtls-probe client --starttls ..." (tests/helpers/probe.c), which prints
key=value lines.  Fixtures pki, need, procs and probe are in conftest.py.

A missing peer (binary, or root for Postfix) skips the test, or fails it when
the environment variable CI is set.
"""
import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from conftest import START_TIMEOUT, STOP_TIMEOUT, alive, free_port, listening, must_have, wait_gone

SBIN = "/usr/sbin:/sbin"
POSTFIX_DIST_MASTER = Path("/usr/share/postfix/master.cf.dist")
# The unix services a Postfix instance needs (as in peers.md).
POSTFIX_SERVICES = ("pickup", "cleanup", "qmgr", "tlsmgr", "rewrite", "bounce", "defer", "trace",
                    "verify", "flush", "proxymap", "proxywrite", "smtp", "relay", "showq", "error",
                    "retry", "discard", "local", "lmtp", "anvil", "scache", "postlog")


def peer(need, name):
    """Absolute path of a server binary that may live in /usr/sbin (not always on PATH)."""
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":" + SBIN)
    return path or need(name)


@pytest.fixture
def instdir():
    """A private directory for one server instance.  Not pytest's tmp_path: the
    servers' unprivileged processes (postfix, dovenull) must be able to reach it."""
    d = Path(tempfile.mkdtemp(prefix="mailtls-peer."))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def install_keypair(pki, d):
    shutil.copy(pki / "server-ec.pem", d / "cert.pem")   # leaf + intermediate
    shutil.copy(pki / "server-ec.key", d / "key.pem")
    os.chmod(d / "key.pem", 0o600)


def probe_starttls(probe, port, proto, pki, *extra, servername="localhost"):
    args = ["--starttls", proto, "--servername", servername, "--ca", str(pki / "ca.pem"),
            "--verify", "require", *extra]
    return probe.client(port, *args)


# --------------------------------------------------------------------------- Postfix

class Postfix:
    def __init__(self, proc, d, ports):
        self.proc = proc
        self.dir = d
        self.ports = ports   # name -> port

    def log(self, since=0):
        return self.proc.text(since)

    def wait_log(self, pattern, since=0, timeout=5):
        return self.proc.wait_for(pattern, timeout=timeout, since=since)

    def master_pid(self):
        try:
            return int((self.dir / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        """"postfix start-fg" is a shell whose child is the master: stop the master by
        the pid it wrote (after checking that pid is a Postfix master), then the shell."""
        pid = self.master_pid()
        if pid and alive(pid):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                cmd = b""
            if b"master" in cmd:
                os.kill(pid, signal.SIGTERM)
                if wait_gone([pid], STOP_TIMEOUT):
                    os.kill(pid, signal.SIGKILL)
        self.proc.stop()


def postfix_config(d, ports):
    main_cf = f"""\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.test.example
mydestination = mx.test.example, localhost
alias_maps =
alias_database =
local_recipient_maps =
home_mailbox = Maildir/
smtpd_tls_cert_file = {d}/cert.pem
smtpd_tls_key_file = {d}/key.pem
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
maillog_file = /dev/stdout
"""
    (d / "main.cf").write_text(main_cf)
    lines = [f"{ports['tls']} inet n - n - - smtpd",
             # the same server without TLS: STARTTLS is not advertised
             f"{ports['plain']} inet n - n - - smtpd -o smtpd_tls_security_level=none"]
    for line in POSTFIX_DIST_MASTER.read_text().splitlines():
        f = line.split()
        if len(f) >= 8 and f[0] in POSTFIX_SERVICES and f[1] in ("unix", "unix-dgram"):
            f[4] = "n"   # no chroot: the instance lives in its own directory
            lines.append(" ".join(f))
    (d / "master.cf").write_text("\n".join(lines) + "\n")


@pytest.fixture
def postfix(need, procs, pki, instdir):
    binary = peer(need, "postfix")
    if os.geteuid() != 0:
        must_have(False, "a Postfix instance needs root")
    if not POSTFIX_DIST_MASTER.is_file() or not Path("/usr/lib/postfix/sbin/master").is_file():
        must_have(False, "Postfix is installed without master.cf.dist or its daemons")
    d = instdir
    install_keypair(pki, d)
    (d / "queue").mkdir()
    (d / "data").mkdir()
    shutil.chown(d / "data", user="postfix")
    inst, out = None, ""
    for _ in range(3):
        ports = {"tls": free_port(), "plain": free_port()}
        postfix_config(d, ports)
        p = procs.start([binary, "-c", str(d), "start-fg"], name="postfix")
        inst = Postfix(p, d, ports)
        deadline = time.monotonic() + START_TIMEOUT
        while p.running() and time.monotonic() < deadline and not all(listening(x) for x in ports.values()):
            time.sleep(0.05)
        if p.running() and all(listening(x) for x in ports.values()):
            break
        out = p.text()
        inst.stop()
        inst = None
    if inst is None:
        pytest.fail(f"Postfix did not start; its output:\n{out}")
    yield inst
    inst.stop()


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

def dovecot_config(d, ports):
    return f"""\
base_dir = {d}/run
state_dir = {d}/state
log_path = /dev/stderr
listen = 127.0.0.1
protocols = imap pop3
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
passdb {{
  driver = static
  args = password=secret
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%u
}}
mail_location = maildir:{d}/mail/%u
default_internal_user = dovecot
default_login_user = dovenull
service imap-login {{
  inet_listener imap {{
    port = {ports['imap']}
  }}
  inet_listener imaps {{
    port = {ports.get('imaps', 0)}
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {ports['pop3']}
  }}
  inet_listener pop3s {{
    port = {ports.get('pop3s', 0)}
  }}
}}
"""


class Dovecot:
    def __init__(self, proc, ports):
        self.proc = proc
        self.ports = ports

    def wait_log(self, pattern, since=0, timeout=5):
        return self.proc.wait_for(pattern, timeout=timeout, since=since)


@pytest.fixture
def dovecot(need, procs, pki, instdir):
    binary = peer(need, "dovecot")
    d = instdir
    install_keypair(pki, d)
    (d / "mail").mkdir()
    shutil.chown(d / "mail", user="nobody")
    out = ""
    for _ in range(3):
        # imaps and pop3s: implicit TLS, for the tests of tcpclient-ssl that import this fixture
        ports = {"imap": free_port(), "pop3": free_port(), "imaps": free_port(), "pop3s": free_port()}
        (d / "dovecot.conf").write_text(dovecot_config(d, ports))
        # "dovecot -F" stays in the foreground: the pid started is its master.
        p = procs.start([binary, "-F", "-c", str(d / "dovecot.conf")], name="dovecot")
        deadline = time.monotonic() + START_TIMEOUT
        while p.running() and time.monotonic() < deadline and not all(listening(x) for x in ports.values()):
            time.sleep(0.05)
        if p.running() and all(listening(x) for x in ports.values()):
            yield Dovecot(p, ports)
            p.stop()
            return
        out = p.text()
        p.stop()
    pytest.fail(f"Dovecot did not start; its output:\n{out}")


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
