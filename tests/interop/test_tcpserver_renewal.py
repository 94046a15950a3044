"""Certificate renewal in tcpserver-ssl (examples/tcpserver-ssl: loader.c, keys.c, server.c).

The server runs as the qmail sites run it: started as root with -u/-g
nobody/nogroup, the PEM files 0600 root in a directory only root may enter
(0700), so the parent, once it dropped its privileges, cannot read them itself.
Renewal goes through the privileged loader, forked before the drop: it looks at
the files every 2 s (device, inode, size, mtime, ctime), re-reads and validates
them, retries a pair caught half-replaced (5 reads, 1 s apart), refuses a broken
replacement with a log line, and hands the contents to the parent over a
socketpair; new children use the new configuration, running sessions are left
alone, and the ticket keys are kept.

What these tests do (every wait bounded; loopback only):
  - renewal mid-run (-n, replaced by rename): new connections see the new
    certificate, the log says so, a session opened before goes on after;
  - a pair replaced in two non-atomic writes, the certificate first: the new
    pair is served in the end, no refusal, and every connection meanwhile works;
  - a broken replacement (garbage, a key that never matches, a truncated file,
    the file removed): refused once, with a log line naming the file, the old
    certificate keeps serving; a good one after it is picked up;
  - CERTFILE/KEYFILE from the environment, and CERTFILE:name/KEYFILE:name (SNI),
    renewed likewise;
  - a session ticket from before a renewal resumes after it (s_client -sess_out,
    -sess_in: Reused), TLS 1.3 and TLS 1.2;
  - the loader runs as root beside the unprivileged parent, and ends with it on
    SIGTERM (with or without a session still open); the per-connection relay
    does not hold the loader's socket;
  - SSL_* variables set by a rule or present in the server's environment never
    reach the program: only the TLS layer's;
  - -B banner written exactly once, with -S and with TLS.

Fixtures pki and need from conftest.py; tss, user, work and the client helpers
from tss_util.py (shared with test_tcpserver_ssl.py and test_tcpserver_keys.py).
Environment: MAILTLS_TCPSERVER_SSL (the binary; set by ctest), MAILTLS_TEST_PKI,
CI (missing binaries, peers or root fail instead of skipping).  Needs root.
"""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import alive, proc_stat, wait_gone
from tss_util import (DUMPER, GREETING, PROG, SMTPD, WAIT, must_have, read_to_close,  # noqa: F401
                      read_until, s_client, tls_connect, tss, tss_server, user, work)

CHECK_SECS = 2                  # the loader's look at the files (main.c RENEW_CHECK_SECS)
RENEW_WAIT = 10                 # bound (s) of each wait for a renewal: its log line, new connections seeing it
REFUSE_WAIT = CHECK_SECS + 5 + 15  # a poll, five reads one second apart, and slack for a loaded machine
LOADED = rf"^{PROG}: renewed certificates loaded$"
REFUSED = rf"^{PROG}: warning: renewed certificates refused, the old ones keep serving: (.*)$"


# ------------------------------------------------------------------ key directory

class KeyDir:
    """A directory only root may enter (0700), holding 0600 root PEM files made from
    the test PKI's files; replaced atomically (rename) or written in place."""

    def __init__(self, pki, user):
        self.pki = pki
        self.dir = Path(tempfile.mkdtemp(prefix="tcpserver-ssl-keys-"))
        os.chown(self.dir, 0, 0)
        os.chmod(self.dir, 0o700)
        self.user = user

    def text(self, *sources):
        return "".join((self.pki / s).read_text() for s in sources)

    def put(self, name, *sources):
        """dir/name made of the PKI files |sources|, by rename (atomic)."""
        path = self.dir / name
        tmp = self.dir / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.text(*sources))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
        return path

    def write_in_place(self, name, *sources):
        """dir/name rewritten in place: truncated, then written (not atomic)."""
        path = self.dir / name
        with open(path, "w") as f:
            f.write(self.text(*sources))
        return path

    def garbage(self, name, data):
        path = self.dir / f".{name}.tmp"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.rename(path, self.dir / name)
        return self.dir / name

    def assert_private(self, *paths):
        """The files are 0600 root in a 0700 root directory, and the unprivileged
        user cannot read them: only the loader can."""
        st = self.dir.stat()
        assert (st.st_uid, st.st_mode & 0o777) == (0, 0o700), oct(st.st_mode)
        for p in paths:
            st = p.stat()
            assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600), (p, oct(st.st_mode))
        uid, gid = self.user
        r = subprocess.run(["cat", str(paths[0])], user=uid, group=gid, extra_groups=[], capture_output=True,
                           timeout=10)
        assert r.returncode != 0 and r.stdout == b"", "the unprivileged user can read the key file"

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def keys(pki, user):
    must_have(os.geteuid() == 0, "the root-only key directory needs root")
    k = KeyDir(pki, user)
    yield k
    k.cleanup()


# ------------------------------------------------------------------ clients

def ctx_chain(pki):
    """Verifies the chain against the test CA, whatever name the certificate is for:
    the tests look at which certificate is served."""
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    ctx.check_hostname = False
    return ctx


def subject_cn(cert):
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


def leaf_der(pki, name):
    return ssl.PEM_cert_to_DER_cert((pki / f"{name}-leaf.pem").read_text())


class Session:
    """A TLS session with fake-qmail-smtpd: handshake and greeting at once, more later."""

    def __init__(self, pki, port, servername="localhost"):
        self.s = tls_connect(pki, port, servername=servername, ctx=ctx_chain(pki))
        self.cn = subject_cn(self.s.getpeercert())
        self.der = self.s.getpeercert(binary_form=True)
        self.greeting = read_until(self.s, rb"^220 .*\r\n")
        assert self.greeting.startswith(b"220 host ESMTP\r\n"), self.greeting

    def command(self, line, reply=rb"^\d{3} .*\r\n"):
        self.s.sendall(line.encode() + b"\r\n")
        return read_until(self.s, reply)

    def quit(self):
        data = self.command("QUIT")
        rest, how = read_to_close(self.s, timeout=5)
        self.s.close()
        return data + rest, how

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def served(pki, port, servername="localhost"):
    """(CN, DER) of the certificate a new connection gets; the session is a whole one:
    greeting, QUIT, close."""
    sess = Session(pki, port, servername)
    try:
        data, how = sess.quit()
        assert data.startswith(b"221 "), data
    finally:
        sess.close()
    return sess.cn, sess.der


def wait_served(pki, port, cn, timeout, servername="localhost"):
    """Seconds until a new connection gets the certificate with |cn|; fails after |timeout|."""
    t0 = time.monotonic()
    seen = None
    while True:
        seen, _ = served(pki, port, servername)
        if seen == cn:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"new connections still get CN={seen!r}, not {cn!r}, {timeout}s after the renewal")
        time.sleep(0.2)


def server_line(work, tss, user, pem=None, env=None, extra=(), prog=None):
    """tcpserver-ssl -v -l0 -HR -u UID -g GID [-n PEM] 127.0.0.1 PORT fake-qmail-smtpd host"""
    uid, gid = user
    opts = ["-v", "-l0", "-HR", "-u", str(uid), "-g", str(gid), *extra]
    if pem:
        opts += ["-n", str(pem)]
    srv = tss_server(work, tss, opts, prog or [SMTPD, "host"], env=env)
    srv.wait_for(rf"^{PROG}: status: 0/40$")
    return srv


# ------------------------------------------------------------------ /proc

def live_processes(pred):
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st and st[0] not in ("Z", "X") and pred(int(d), st):
                pids.append(int(d))
    return sorted(pids)


def proc_uid(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])       # effective
    return None


def socket_inodes(pid):
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", link)
        if m:
            out.add(int(m.group(1)))
    return out


def unix_socket_inodes():
    lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    return {int(line.split()[6]) for line in lines if len(line.split()) > 6}


# ------------------------------------------------------------------ renewal

def test_renewal_mid_run(work, tss, user, keys, pki):
    pem = keys.put("qmail.pem", "server-ec-combined.pem")
    keys.assert_private(pem)
    srv = server_line(work, tss, user, pem)
    assert served(pki, srv.port)[0] == "localhost"

    old = Session(pki, srv.port)                  # opened before the renewal
    assert old.cn == "localhost"
    assert old.command("EHLO before.example").startswith(b"250-host"), "EHLO before the renewal"

    mark = srv.mark()
    keys.put("qmail.pem", "sni-a.key", "sni-a.pem")
    srv.wait_for(LOADED, since=mark, timeout=RENEW_WAIT)
    wait_served(pki, srv.port, "a.test.example", timeout=RENEW_WAIT)
    assert served(pki, srv.port)[1] == leaf_der(pki, "sni-a")
    assert not re.search(REFUSED, srv.text(), re.M), srv.text()

    # The session from before goes on, untouched by the renewal.
    assert old.command("EHLO after.example").startswith(b"250-host"), "EHLO after the renewal"
    assert old.command("MAIL FROM:<a@example.org>").startswith(b"250 ")
    data, how = old.quit()
    assert data.startswith(b"221 ") and how == "eof", (data, how)
    recs = [r for r in work.wait_records(3) if "EHLO after.example" in r["commands"]]
    assert len(recs) == 1 and recs[0]["env"]["SSL_PROTOCOL"].startswith("TLSv1."), recs
    assert srv.proc.running(), srv.text()


@pytest.mark.parametrize("gap", [0.5, CHECK_SECS + 0.5], ids=["key-0.5s-later", "key-2.5s-later"])
def test_half_replaced_pair_retried(work, tss, user, keys, pki, gap):
    """CERTFILE and KEYFILE rewritten in place, the certificate first and the key |gap|
    seconds later: with 2.5 s the loader certainly sees the half-replaced pair at one
    of its looks, and must retry rather than refuse.  A client connects all along:
    every connection must work."""
    cert = keys.put("cert.pem", "server-ec.pem")
    key = keys.put("key.pem", "server-ec.key")
    keys.assert_private(key, cert)
    srv = server_line(work, tss, user, env=work.env(CERTFILE=str(cert), KEYFILE=str(key)))
    assert served(pki, srv.port)[0] == "localhost"

    stop = threading.Event()
    results, errors = [], []

    def client():
        while not stop.is_set():
            try:
                results.append(served(pki, srv.port)[0])
            except Exception as e:           # noqa: BLE001 -- every failure counts
                errors.append(repr(e))
            time.sleep(0.1)

    th = threading.Thread(target=client, daemon=True)
    mark = srv.mark()
    th.start()
    try:
        time.sleep(0.3)
        keys.write_in_place("cert.pem", "sni-a.pem")          # the new certificate, the old key
        time.sleep(gap)
        keys.write_in_place("key.pem", "sni-a.key")
        srv.wait_for(LOADED, since=mark, timeout=RENEW_WAIT + 4)
        wait_served(pki, srv.port, "a.test.example", timeout=RENEW_WAIT)
        time.sleep(0.5)
    finally:
        stop.set()
        th.join(WAIT)
    assert errors == [], f"connections failed during the replacement: {errors}\n{srv.text()}"
    assert set(results) <= {"localhost", "a.test.example"} and "a.test.example" in results, results
    assert not re.search(REFUSED, srv.text(), re.M), srv.text()
    assert srv.proc.running() and not re.search(rf"^{PROG}: fatal", srv.text(), re.M), srv.text()


@pytest.mark.parametrize("broken", ["garbage", "key-never-matches", "truncated", "removed"])
def test_broken_replacement_refused(work, tss, user, keys, pki, broken):
    pem = keys.put("qmail.pem", "server-ec-combined.pem")
    keys.assert_private(pem)
    srv = server_line(work, tss, user, pem)
    mark = srv.mark()
    if broken == "garbage":
        keys.garbage("qmail.pem", (pki / "garbage.pem").read_bytes())
    elif broken == "key-never-matches":
        keys.put("qmail.pem", "server-ec.key", "sni-a.pem")
    elif broken == "truncated":
        keys.garbage("qmail.pem", (pki / "server-ec-combined.pem").read_bytes()[:700])
    else:
        pem.unlink()
    m = srv.wait_for(REFUSED, since=mark, timeout=REFUSE_WAIT)
    assert str(pem) in m.group(1), m.group(0)
    assert not re.search(LOADED, srv.text(mark), re.M), srv.text(mark)
    # The old configuration keeps serving, and the server is still there.
    cn, der = served(pki, srv.port)
    assert cn == "localhost" and der == leaf_der(pki, "server-ec"), cn
    assert srv.proc.running(), srv.text()
    # Refused once, not again and again: the broken file stays long enough for the loader
    # to look again and, were it to take the same file for a new change, to read it five
    # times, one second apart, and refuse it a second time.
    time.sleep(CHECK_SECS + 5 + 1)

    # A good replacement after it is picked up.
    good = srv.mark()
    keys.put("qmail.pem", "sni-a.key", "sni-a.pem")
    loaded = srv.wait_for(LOADED, since=good, timeout=RENEW_WAIT)
    wait_served(pki, srv.port, "a.test.example", timeout=RENEW_WAIT)
    # Counted now that the loader has looked again (it loaded the good pair): the
    # refusals from the broken replacement up to that load.
    between = srv.text()[mark:good + loaded.start()]
    assert len(re.findall(REFUSED, between, re.M)) == 1, between


def test_certfile_keyfile_environment_renewed(work, tss, user, keys, pki):
    cert = keys.put("cert.pem", "server-ec.pem")
    key = keys.put("key.pem", "server-ec.key")
    keys.assert_private(key, cert)
    srv = server_line(work, tss, user, env=work.env(CERTFILE=str(cert), KEYFILE=str(key)))
    cn, der = served(pki, srv.port)
    assert cn == "localhost" and der == leaf_der(pki, "server-ec")
    mark = srv.mark()
    keys.put("key.pem", "server-rsa.key")
    keys.put("cert.pem", "server-rsa.pem")
    srv.wait_for(LOADED, since=mark, timeout=RENEW_WAIT)
    deadline = time.monotonic() + RENEW_WAIT
    while served(pki, srv.port)[1] != leaf_der(pki, "server-rsa"):
        assert time.monotonic() < deadline, "the renewed CERTFILE/KEYFILE pair is not served"
        time.sleep(0.2)


def test_sni_files_renewed(work, tss, user, keys, pki):
    pem = keys.put("qmail.pem", "server-ec-combined.pem")
    sni_cert = keys.put("a.pem", "sni-a.pem")
    sni_key = keys.put("a.key", "sni-a.key")
    keys.assert_private(sni_key, sni_cert, pem)
    env = work.env(**{"CERTFILE:a.test.example": str(sni_cert), "KEYFILE:a.test.example": str(sni_key)})
    srv = server_line(work, tss, user, pem, env=env)
    assert served(pki, srv.port, "a.test.example")[0] == "a.test.example"
    assert served(pki, srv.port, "localhost")[0] == "localhost"
    mark = srv.mark()
    keys.put("a.key", "sni-wild.key")
    keys.put("a.pem", "sni-wild.pem")
    srv.wait_for(LOADED, since=mark, timeout=RENEW_WAIT)
    wait_served(pki, srv.port, "*.wild.test.example", timeout=RENEW_WAIT, servername="a.test.example")
    assert served(pki, srv.port, "localhost")[0] == "localhost"      # the default keypair as it was
    assert not re.search(REFUSED, srv.text(), re.M), srv.text()


@pytest.mark.parametrize("proto,new", [("-tls1_3", "server-rsa"), ("-tls1_2", "sni-a")],
                         ids=["tls1_3-ec-to-rsa", "tls1_2-ec-to-ec"])
def test_resumption_survives_renewal(work, tss, user, keys, pki, need, proto, new):
    """A ticket from before the renewal resumes after it: the ticket keys are kept.
    TLS 1.3 with another key type (EC to RSA); TLS 1.2 with another EC keypair, as a
    TLS 1.2 session's ECDHE-ECDSA suite cannot resume on an RSA key."""
    openssl = need("openssl")
    pem = keys.put("qmail.pem", "server-ec-combined.pem")
    srv = server_line(work, tss, user, pem)
    sess = work.dir / "session.pem"
    ca = ["-CAfile", pki / "ca.pem", "-verify_return_error", "-servername", "localhost", proto]
    version = {"-tls1_3": "TLSv1.3", "-tls1_2": "TLSv1.2"}[proto]
    rc, out = s_client(work, openssl, srv.port, *ca, "-sess_out", sess)
    assert rc == 0 and re.search(rf"^New, {re.escape(version)}", out, re.M), out
    assert sess.is_file() and sess.stat().st_size > 0, out

    mark = srv.mark()
    keys.put("qmail.pem", f"{new}.key", f"{new}.pem")
    srv.wait_for(LOADED, since=mark, timeout=RENEW_WAIT)
    assert served(pki, srv.port)[1] == leaf_der(pki, new), "not renewed"

    mark = srv.mark()
    rc, out = s_client(work, openssl, srv.port, *ca, "-sess_in", sess)
    assert rc == 0 and re.search(rf"^Reused, {re.escape(version)}", out, re.M), out
    assert re.search(GREETING, out, re.M), out
    srv.wait_for(rf"^{PROG}: tls \d+ {re.escape(version)} \S+ sni=localhost client=none resumed$", since=mark)


# ------------------------------------------------------------------ the loader's life

@pytest.mark.parametrize("session_open", [False, True], ids=["idle", "session-open"])
def test_loader_ends_with_server(work, tss, user, keys, pki, session_open):
    pem = keys.put("qmail.pem", "server-ec-combined.pem")
    srv = server_line(work, tss, user, pem)
    uid, _ = user
    loaders = live_processes(lambda pid, st: st[1] == srv.pid)
    assert len(loaders) == 1, f"expected the loader alone as the server's child: {loaders}"
    [loader] = loaders
    assert proc_uid(srv.pid) == uid, "the server did not drop its privileges"
    assert proc_uid(loader) == 0, "the loader does not keep root"

    sess = Session(pki, srv.port) if session_open else None
    relay = None
    if sess:
        [rec] = work.wait_records(1, done=False)
        relay = rec["ppid"]
        assert alive(relay)
    os.kill(srv.pid, signal.SIGTERM)
    assert srv.proc.wait(5) == 0, srv.text()
    left = wait_gone([loader], 3)
    assert left == [], f"the loader {loader} still runs 3s after the server ended:\n{srv.text()}"
    if sess:
        # The running session is not the loader's business: it goes on to its end.
        assert alive(relay)
        assert sess.command("EHLO still.example").startswith(b"250-host")
        data, how = sess.quit()
        assert data.startswith(b"221 "), data
        assert wait_gone([relay], 5) == []
    group = live_processes(lambda pid, st: st[2] == srv.pid)
    assert group == [], f"processes of the server's group left: {group}"


def test_relay_holds_no_loader_socket(work, tss, user, keys, pki):
    """The relay (the per-connection child, which faces the network for the whole
    session) must not hold the parent's end of the loader's socketpair: renewed
    private keys arrive on it."""
    pem = keys.put("qmail.pem", "server-ec-combined.pem")
    srv = server_line(work, tss, user, pem)
    unix = unix_socket_inodes()
    loader_ends = socket_inodes(srv.pid) & unix
    assert loader_ends, "no unix socket (the loader's socketpair) in the server"
    sess = Session(pki, srv.port)
    try:
        [rec] = work.wait_records(1, done=False)
        relay = rec["ppid"]
        held = socket_inodes(relay) & loader_ends
        assert held == set(), (f"the relay {relay} holds the loader's socketpair end "
                               f"(socket inode {sorted(held)}), the channel of renewed private keys")
    finally:
        sess.quit()
        sess.close()


# ------------------------------------------------------------------ SSL_* forgery

@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain-S"])
def test_ssl_variables_not_forged(work, tss, user, keys, pki, tls):
    rules = work.rules('127.0.0.1:allow,SSL_CLIENT_S_DN="forged",SSL_CLIENT_VERIFY="SUCCESS",RELAYCLIENT=""\n'
                       ':allow\n')
    pem = keys.put("qmail.pem", "server-ec-combined.pem")
    env = work.env(SSL_PROTOCOL="fake", SSL_CLIENT_S_DN_CN="forged-in-env", SSL_X="x")
    srv = server_line(work, tss, user, pem, env=env, extra=["-x", str(rules)] + ([] if tls else ["-S"]),
                      prog=[DUMPER, "--say=dumped"])
    if tls:
        with tls_connect(pki, srv.port) as s:
            data, how = read_to_close(s)
    else:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as s:
            data, how = read_to_close(s)
    assert data == b"dumped\r\n", (data, how)
    [rec] = work.wait_records(1)
    e = rec["env"]
    assert e.get("RELAYCLIENT") == "", e                       # the rule applies ...
    ssl_vars = {k: v for k, v in e.items() if k.startswith("SSL_")}
    assert "forged" not in "".join(ssl_vars.values()) and "SSL_X" not in e, ssl_vars   # ... but not its SSL_*
    assert "SSL_CLIENT_S_DN" not in e and "SSL_CLIENT_S_DN_CN" not in e, ssl_vars
    if tls:
        assert e.get("SSL_PROTOCOL") == "TLSv1.3", ssl_vars
        assert e.get("SSL_CLIENT_VERIFY") == "NONE", ssl_vars
    else:
        assert ssl_vars == {}, ssl_vars


# ------------------------------------------------------------------ -B

@pytest.mark.parametrize("tls", [False, True], ids=["plain-S", "tls"])
def test_banner_once(work, tss, user, keys, pki, tls):
    pem = keys.put("qmail.pem", "server-ec-combined.pem")
    srv = server_line(work, tss, user, pem, extra=["-B", "banner line\r\n"] + ([] if tls else ["-S"]))
    if tls:
        s = tls_connect(pki, srv.port)
    else:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT)
    with s:
        data = read_until(s, rb"^220 .*\r\n")
        s.sendall(b"QUIT\r\n")
        rest, how = read_to_close(s, timeout=5)
    data += rest
    assert data.count(b"banner line") == 1, data
    assert data.startswith(b"banner line\r\n220 host ESMTP\r\n"), data
