"""Real mail servers as test peers: Postfix and Dovecot instances (peers.md).

Each instance lives in a private directory (mode 0755: the servers' unprivileged
users must reach it) with the test PKI's server-ec key pair (localhost, chain with
the intermediate), listens on free loopback ports, and is stopped by its own pid
when the test ends.  Import the fixtures by name into a test module:

  instdir   the private directory of one instance
  postfix   a Postfix with two smtpd ports: ports["tls"] (STARTTLS offered) and
            ports["plain"] (none); needs root (skips, or fails under CI)
  dovecot   a Dovecot with ports imap, pop3 (STARTTLS/STLS), imaps, pop3s; user
            any, password "secret", mail under DIR/mail/USER

For another Postfix setup, call start_postfix(need, procs, pki, d, main=...,
services=...) with main.cf lines to add and master.cf smtpd lines of one's own;
start_mx_postfix is one, an MX on port 25 of given addresses.
"""
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from conftest import (START_TIMEOUT, STOP_TIMEOUT, alive, free_port, group_members, listening, must_have,
                      proc_stat, wait_gone)

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


def wait_listening(p, ports):
    """True once process |p| runs and every port of |ports| listens (START_TIMEOUT)."""
    deadline = time.monotonic() + START_TIMEOUT
    while p.running() and time.monotonic() < deadline and not all(listening(x) for x in ports):
        time.sleep(0.05)
    return p.running() and all(listening(x) for x in ports)


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
        """The pid the master wrote; before it wrote one, the shell's child."""
        try:
            return int((self.dir / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
        for d in Path("/proc").iterdir():
            st = proc_stat(int(d.name)) if d.name.isdigit() else None
            if st and st[1] == self.proc.pid:
                return int(d.name)
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
            st = proc_stat(pid)
            if b"master" in cmd and st:
                os.kill(pid, signal.SIGTERM)
                if wait_gone([pid], STOP_TIMEOUT):
                    os.kill(pid, signal.SIGKILL)
                # its smtpd children hold the listening sockets a moment longer: a next
                # instance on the same address would find them listening, be taken for
                # started, fail to bind, and the children would drop its first connection
                for child in wait_gone(group_members(st[2]), STOP_TIMEOUT):
                    os.kill(child, signal.SIGKILL)
        self.proc.stop()


def postfix_config(d, main, services):
    """main.cf (the base of peers.md, then the lines of |main|) and master.cf (the
    lines of |services|, then the unix services, unchrooted)."""
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
    (d / "main.cf").write_text(main_cf + "".join(f"{line}\n" for line in main))
    lines = list(services)
    for line in POSTFIX_DIST_MASTER.read_text().splitlines():
        f = line.split()
        if len(f) >= 8 and f[0] in POSTFIX_SERVICES and f[1] in ("unix", "unix-dgram"):
            f[4] = "n"   # no chroot: the instance lives in its own directory
            lines.append(" ".join(f))
    (d / "master.cf").write_text("\n".join(lines) + "\n")


def start_postfix(need, procs, pki, d, main=(), services=None):
    """A running Postfix in |d|.  |main|: main.cf lines added to the base; |services|:
    a function of a dict of free ports (names -> port) giving (ports, master.cf smtpd
    lines); by default two smtpd ports, "tls" (STARTTLS offered) and "plain" (none).
    The caller stops it (Postfix.stop)."""
    binary = peer(need, "postfix")
    must_have(os.geteuid() == 0, "a Postfix instance needs root")
    must_have(POSTFIX_DIST_MASTER.is_file() and Path("/usr/lib/postfix/sbin/master").is_file(),
              "Postfix is installed without master.cf.dist or its daemons")
    if services is None:
        def services():
            ports = {"tls": free_port(), "plain": free_port()}
            return ports, [f"{ports['tls']} inet n - n - - smtpd",
                           # the same server without TLS: STARTTLS is not advertised
                           f"{ports['plain']} inet n - n - - smtpd -o smtpd_tls_security_level=none"]
    install_keypair(pki, d)
    for sub in ("queue", "data"):
        (d / sub).mkdir(exist_ok=True)
    shutil.chown(d / "data", user="postfix")
    out = ""
    for _ in range(3):
        ports, lines = services()
        # a fixed port may still be held by the instance a test before stopped: a listener
        # found after the start must be this one
        deadline = time.monotonic() + START_TIMEOUT
        while any(listening(x) for x in ports.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        postfix_config(d, main, lines)
        p = procs.start([binary, "-c", str(d), "start-fg"], name="postfix")
        inst = Postfix(p, d, ports)
        if wait_listening(p, ports.values()):
            return inst
        out = p.text()
        inst.stop()
    pytest.fail(f"Postfix did not start; its output:\n{out}")


def start_mx_postfix(need, procs, pki, d, cert, key, domains, mx_addr, plain_addr):
    """A Postfix MX in |d|, on port 25 of |mx_addr| (STARTTLS with the key pair
    |cert|, |key|) and of |plain_addr| (no STARTTLS), delivering mail for any user of
    |domains| to one maildir, the instance's .vmail.  Tests reach such addresses
    through lo's 127/8 route without making them interface addresses (qmail-remote
    counts an interface's address as its own, #5.4.6)."""
    vmail = d / "vmail"
    vmail.mkdir()
    shutil.chown(vmail, user="nobody", group="nogroup")
    shutil.copy(cert, d / "mx-cert.pem")
    shutil.copy(key, d / "mx-key.pem")

    def services():
        return {"smtp": 25}, [f"{mx_addr}:25 inet n - n - - smtpd",
                              f"{plain_addr}:25 inet n - n - - smtpd -o smtpd_tls_security_level=none",
                              "virtual unix - n n - - virtual"]
    main = ["inet_interfaces = all", f"smtpd_tls_cert_file = {d}/mx-cert.pem",
            f"smtpd_tls_key_file = {d}/mx-key.pem", "virtual_mailbox_domains = " + ", ".join(domains),
            f"virtual_mailbox_base = {vmail}", "virtual_mailbox_maps = static:u/Maildir/",
            "virtual_uid_maps = static:65534", "virtual_gid_maps = static:65534", "smtpd_tls_received_header = yes"]
    inst = start_postfix(need, procs, pki, d, main=main, services=services)
    inst.vmail = vmail / "u" / "Maildir"
    return inst


@pytest.fixture
def postfix(need, procs, pki, instdir):
    inst = start_postfix(need, procs, pki, instdir)
    yield inst
    inst.stop()


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
        # imaps and pop3s: implicit TLS, for the tests of tcpclient-ssl
        ports = {"imap": free_port(), "pop3": free_port(), "imaps": free_port(), "pop3s": free_port()}
        (d / "dovecot.conf").write_text(dovecot_config(d, ports))
        # "dovecot -F" stays in the foreground: the pid started is its master.
        p = procs.start([binary, "-F", "-c", str(d / "dovecot.conf")], name="dovecot")
        if wait_listening(p, ports.values()):
            yield Dovecot(p, ports)
            p.stop()
            return
        out = p.text()
        p.stop()
    pytest.fail(f"Dovecot did not start; its output:\n{out}")
