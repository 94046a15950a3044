"""Key isolation in tcpserver-ssl (examples/tcpserver-ssl; the design's process model).

The server loads the private key as root, drops to nobody/nogroup (-u/-g) and
forks one child per connection, which does the handshake and then stays as the
relay between the TLS connection and the program for as long as the session
lasts.  The design says:
  - the server and the relay are not dumpable (prctl PR_SET_DUMPABLE 0), so the
    program, which runs with the same uid, cannot read their memory;
  - after the handshake the relay calls mailtls_release_config and frees its
    configuration, so no private key remains in it (BoringSSL cleanses what it
    frees; the library's PEM buffers are cleansed);
  - the session ticket keys are made in the server, so any child resumes a
    session another child began.

What these tests do, for the qmail.pem layout with an EC key (the PKI's
server-ec-combined.pem) and with an RSA key (server-rsa.key + server-rsa.pem
in one file):
  1. the program is standins/key-thief: it tries /proc/<relay>/mem, environ and
     maps, ptrace(PTRACE_ATTACH) and process_vm_readv on the relay (its parent)
     and on the server (its grandparent); every attempt must be refused with
     EACCES/EPERM, while the same attempts on a dumpable child of its own work.
     Under -u/-g the kernel already clears the dumpable flag when the uid
     changes, so the same test runs with the server started as nobody itself
     (setpriv, as "setuidgid qmaild tcpserver-ssl ..." under daemontools), where
     only the server's prctl protects it;
  2. as root (CAP_SYS_PTRACE), while the session is open, every readable mapping
     of the relay is read through /proc/<relay>/mem and searched for the key:
     the secret numbers (EC scalar; RSA p, q, d and the CRT values) big-endian
     and little-endian (BoringSSL keeps bignums as little-endian words), the
     PKCS#8 and SEC1/PKCS#1 DER and each base64 line of the PEM.  None may be
     there.  Control: the same search in the server, which holds the key, finds
     the secret numbers, and a marker in the relay's environment is found in the
     relay, so the search can see what it looks for.  TLS 1.3 and TLS 1.2 (the
     signature in ServerKeyExchange).  The server itself holds the key parsed
     only: no PEM text or DER copy of it;
  3. openssl s_client -sess_out, then -sess_in against a new child after the
     first one ended: "Reused", with TLS 1.3 and TLS 1.2.

Needs root (for -u/-g and for reading another user's non-dumpable process),
python3-cryptography, openssl, setpriv (util-linux); without them the tests skip, or fail when CI is
set.  Every wait is bounded.
"""
import base64
import os
import re
import secrets
import shutil
import ssl
import tempfile
import time
from pathlib import Path

import pytest

from tss_util import (GREETING, PROG, SMTPD, STANDINS, WAIT, must_have, read_to_close,  # noqa: F401
                      read_until, s_client, tls_connect, tss, tss_server, user, work)

KEY_THIEF = STANDINS / "key-thief"
MARK_VAR = "MAILTLS_KEYTEST_MARK"
SCAN_TIMEOUT = 60           # seconds: the bound of one process's memory search
REFUSED = {"EACCES", "EPERM"}
ATTEMPTS = ("mem", "environ", "maps", "ptrace_attach", "process_vm_readv")
CAP_SYS_PTRACE = 19


# ------------------------------------------------------------------------ the keys

class ServerKey:
    """The PEM the server loads and what its private key looks like in memory."""

    def __init__(self, kind, pem):
        try:
            from cryptography.hazmat.primitives import serialization
        except ImportError:
            must_have(False, "python3-cryptography is not installed")
        self.kind = kind
        self.pem = pem
        text = pem.read_text()
        m = re.search(r"-----BEGIN PRIVATE KEY-----\n(.*?)-----END PRIVATE KEY-----", text, re.S)
        assert m and text.startswith("-----BEGIN PRIVATE KEY-----"), f"{pem}: no PKCS#8 key first"
        self.pem_lines = m.group(1).split()
        self.der = base64.b64decode("".join(self.pem_lines))
        key = serialization.load_der_private_key(self.der, None)
        self.inner_der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption())
        pn = key.private_numbers()
        if kind == "ec":
            size = (key.curve.key_size + 7) // 8
            self.numbers = {"EC private scalar": (pn.private_value, size)}
            self.critical = ["EC private scalar"]
        else:
            self.numbers = {f"RSA {n}": (getattr(pn, n), (getattr(pn, n).bit_length() + 7) // 8)
                            for n in ("p", "q", "d", "dmp1", "dmq1", "iqmp")}
            self.critical = ["RSA p", "RSA q", "RSA d"]

    def needles(self):
        """name -> bytes: every form of the key searched for."""
        n = {}
        for name, (value, size) in self.numbers.items():
            n[f"{name} (big-endian)"] = value.to_bytes(size, "big")
            n[f"{name} (little-endian)"] = value.to_bytes(size, "little")
        n["PKCS#8 DER of the key"] = self.der
        n[("SEC1" if self.kind == "ec" else "PKCS#1") + " DER of the key"] = self.inner_der
        for i, line in enumerate(self.pem_lines):
            if len(line) >= 24:         # a short last line could turn up by chance
                n[f"PEM base64 line {i + 1} of the key ({line[:12]}...)"] = line.encode()
        return n

    def number_forms(self, name):
        return [f"{name} (big-endian)", f"{name} (little-endian)"]


@pytest.fixture(scope="module", params=["ec", "rsa"])
def server_key(request, pki, user):
    """The qmail.pem layout (key first, then the chain), 0600 root, in a directory every
    user may traverse: the PKI's server-ec-combined.pem, or server-rsa.key + server-rsa.pem."""
    d = Path(tempfile.mkdtemp(prefix="tcpserver-keys-pem-"))
    try:
        os.chmod(d, 0o755)
        pem = d / "qmail.pem"
        with open(os.open(pem, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            if request.param == "ec":
                f.write((pki / "server-ec-combined.pem").read_text())
            else:
                f.write((pki / "server-rsa.key").read_text() + (pki / "server-rsa.pem").read_text())
        assert pem.read_text().count("BEGIN CERTIFICATE") >= 2
        yield ServerKey(request.param, pem)
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------- reading memory

class Scan:
    """What a search of one process's readable mappings found."""

    def __init__(self, pid):
        self.pid = pid
        self.hits = []           # (needle name, mapping line, address)
        self.read = 0            # bytes read
        self.regions = []        # mapping lines read (wholly or in part)
        self.unreadable = []     # mapping lines that gave nothing

    def found(self, name):
        return [h for h in self.hits if h[0] == name]

    def describe(self, names=None):
        hits = [h for h in self.hits if names is None or h[0] in names]
        return "\n".join(f"  {name} at {addr:#x} in mapping {line}" for name, line, addr in hits) or "  nothing"


def scan(pid, needles, timeout=SCAN_TIMEOUT):
    """Reads every readable mapping of |pid| through /proc/PID/mem (root with
    CAP_SYS_PTRACE may, the process being another user's and not dumpable) and
    finds every occurrence of each needle."""
    sc = Scan(pid)
    deadline = time.monotonic() + timeout
    overlap = max(len(v) for v in needles.values()) - 1
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            if not fields[1].startswith("r"):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            addr, tail, got_any = start, b"", False
            while addr < end:
                if time.monotonic() > deadline:
                    pytest.fail(f"searching the memory of pid {pid} took more than {timeout}s")
                n = min(1 << 20, end - addr)
                try:
                    mem.seek(addr)
                    chunk = mem.read(n)
                except OSError:
                    chunk = b""
                if not chunk:               # unreadable ([vvar], guard pages): go on after it
                    addr, tail = addr + n, b""
                    continue
                got_any = True
                sc.read += len(chunk)
                # The previous chunk's tail goes first, so a needle across the two is found;
                # one that ends inside the tail was found with the previous chunk.
                data = tail + chunk
                for name, needle in needles.items():
                    i = data.find(needle)
                    while i >= 0:
                        if i + len(needle) > len(tail):
                            sc.hits.append((name, line, addr - len(tail) + i))
                        i = data.find(needle, i + 1)
                tail = data[-overlap:] if overlap else b""
                addr += len(chunk)
            (sc.regions if got_any else sc.unreadable).append(line)
    return sc


def has_cap(bit):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> bit & 1)
    return False


def proc_ids(pid):
    """(real uid, parent pid) of |pid| from /proc."""
    uid = ppid = None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[1])
        elif line.startswith("PPid:"):
            ppid = int(line.split()[1])
    return uid, ppid


# ------------------------------------------------------------ one thief session

class ThiefSession:
    """tcpserver-ssl -v -l0 -HR -u nobody -g nogroup -n qmail.pem ... key-thief, one TLS client
    connected and the thief's attempts made: it waits for a line while the session is open.

    With |setpriv| the server is instead started as nobody/nogroup (the daemontools way,
    "setuidgid qmaild tcpserver-ssl ...", here with util-linux's setpriv) with a copy of the
    PEM that user owns, and no -u/-g: then no change of uid makes the kernel clear the
    dumpable flag, and only the server's own prctl protects it."""

    def __init__(self, work, tss, user, key, pki, tls_max=None, setpriv=None):
        uid, gid = user
        self.mark = "mark-" + secrets.token_hex(16)
        opts, prefix, pem = ["-u", str(uid), "-g", str(gid)], [], key.pem
        if setpriv:
            opts = []
            prefix = [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
            pem = work.dir / "qmail-user.pem"
            shutil.copyfile(key.pem, pem)
            os.chown(pem, uid, gid)
            os.chmod(pem, 0o600)
        self.srv = work.start(lambda port: [*prefix, tss, "-v", "-l0", "-HR", *opts, "-n", str(pem), "127.0.0.1",
                                            str(port), KEY_THIEF, f"--wait={SCAN_TIMEOUT * 3}"],
                              name=PROG, env=work.env(**{MARK_VAR: self.mark}))
        ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        if tls_max:
            ctx.maximum_version = tls_max
        self.sock = tls_connect(pki, self.srv.port, ctx=ctx)
        self.work = work
        got = read_until(self.sock, rb"ready\r\n")
        assert got == b"ready\r\n", f"key-thief did not report ready: {got!r}\n{work.logs()}"
        [self.rec] = work.wait_records(1, done=False)
        assert "attempts" in self.rec, self.rec
        self.relay = self.rec["ppid"]
        self.tls_line = self.srv.wait_for(rf"^{PROG}: tls {self.relay} .*$").group(0)

    def close(self):
        """Ends the session: the thief reads its line and exits."""
        try:
            self.sock.sendall(b"done\r\n")
            read_to_close(self.sock, timeout=WAIT)
        finally:
            self.sock.close()
        [rec] = self.work.wait_records(1)
        assert rec["end"] == "line", rec
        return rec


@pytest.fixture
def thief(request, work, tss, user, server_key, pki, need):
    """A ThiefSession: TLS 1.3 and -u/-g unless the test's parameter (a dict) says
    tls_max=ssl.TLSVersion... or setpriv=True."""
    param = getattr(request, "param", None) or {}
    s = ThiefSession(work, tss, user, server_key, pki, tls_max=param.get("tls_max"),
                     setpriv=need("setpriv") if param.get("setpriv") else None)
    yield s
    try:
        s.sock.close()
    except OSError:
        pass


# ------------------------------------------------------------------------ the tests

@pytest.mark.parametrize("thief", [{}, {"setpriv": True}], ids=["u-g", "started-as-user"], indirect=True)
def test_program_cannot_read_relay_or_server(thief, user):
    """The program runs as the relay's and the server's uid, yet none of /proc/PID/mem,
    environ, maps, ptrace(PTRACE_ATTACH), process_vm_readv reaches them; on a dumpable
    process of its own they all work, so the refusals come from the processes being
    not dumpable.  Under -u/-g the kernel clears the dumpable flag at the change of uid
    anyway; started as the user itself only the server's prctl does it."""
    rec, srv = thief.rec, thief.srv
    uid, gid = user
    assert (rec["uid"], rec["euid"], rec["gid"]) == (uid, uid, gid), rec
    assert rec["targets"] == {"relay": thief.relay, "server": srv.pid}, (rec["targets"], srv.pid)
    ctl = rec["attempts"]["control"]
    assert all(ctl[a]["ok"] for a in ATTEMPTS), \
        f"the control (a dumpable child of the thief) could not be read, so the refusals prove nothing: {ctl}"
    problems = []
    for target, pid in rec["targets"].items():
        got = rec["attempts"][target]
        for a in ATTEMPTS:
            r = got[a]
            if r["ok"] or r["errno"] not in REFUSED:
                problems.append(f"the program reached the {target} (pid {pid}) by {a}: {r}")
        # Same uid all three: only non-dumpability protects the relay and the server.
        puid, _ = proc_ids(pid)
        assert puid == uid, f"the {target} (pid {pid}) runs as uid {puid}, not {uid}"
        # The kernel hands the files of a non-dumpable process's /proc directory to root.
        owner = os.stat(f"/proc/{pid}/environ").st_uid
        if owner != 0:
            problems.append(f"the {target} (pid {pid}, uid {puid}) is dumpable: "
                            f"/proc/{pid}/environ belongs to uid {owner}, not root")
    assert not problems, "\n".join(problems)
    thief.close()


@pytest.mark.parametrize("thief", [{}, {"tls_max": ssl.TLSVersion.TLSv1_2}], ids=["tls13", "tls12"], indirect=True)
def test_relay_holds_no_private_key(thief, server_key):
    """The relay, after the handshake and while the session is open, holds the private key in
    no form: not the numbers (either byte order), not its DER, not its PEM text.  The control
    finds the numbers in the server and a marker in the relay."""
    must_have(has_cap(CAP_SYS_PTRACE), "reading another user's non-dumpable process needs CAP_SYS_PTRACE")
    needles = server_key.needles()
    needles["marker"] = f"{MARK_VAR}={thief.mark}".encode()
    _, relay_parent = proc_ids(thief.relay)
    assert relay_parent == thief.srv.pid, (thief.relay, relay_parent, thief.srv.pid)

    parent = scan(thief.srv.pid, needles)
    relay = scan(thief.relay, needles)
    where = (f"server pid {thief.srv.pid}, relay pid {thief.relay} ({thief.tls_line}); "
             f"read {parent.read} bytes of the server, {relay.read} of the relay")

    # Control: the search sees the key where it is held, in BoringSSL's form.
    missing = [n for n in server_key.critical if not any(parent.found(f) for f in server_key.number_forms(n))]
    assert not missing, (f"control failed: {missing} not found in the server, which holds the key, so a clean "
                         f"relay would prove nothing; {where}; the server's matches:\n{parent.describe()}")
    # ... and it reads the relay's memory (its environment is on its stack).
    assert relay.found("marker"), f"control failed: the marker was not found in the relay; {where}"
    assert any(r.endswith("[heap]") for r in relay.regions), f"the relay's heap was not read: {relay.regions}"
    assert any(r.endswith("[stack]") for r in relay.regions), f"the relay's stack was not read: {relay.regions}"

    key_hits = [h for h in relay.hits if h[0] != "marker"]
    assert not key_hits, (f"the relay still holds the {server_key.kind.upper()} private key after the handshake "
                          f"({where}):\n{relay.describe([h[0] for h in key_hits])}")
    thief.close()


def test_server_holds_no_pem_or_der_copy(thief, server_key):
    """The server holds the key parsed (the control above), but no copy of the file's text
    or of the DER it decoded: the PEM buffers are cleansed after loading."""
    must_have(has_cap(CAP_SYS_PTRACE), "reading another user's non-dumpable process needs CAP_SYS_PTRACE")
    needles = {k: v for k, v in server_key.needles().items() if "DER" in k or "PEM" in k}
    parent = scan(thief.srv.pid, needles)
    assert any(r.endswith("[heap]") for r in parent.regions), parent.regions
    assert not parent.hits, (f"the server (pid {thief.srv.pid}) keeps the key's text or DER after loading it:\n"
                             f"{parent.describe()}")
    thief.close()


@pytest.mark.parametrize("proto", ["-tls1_3", "-tls1_2"], ids=["tls13", "tls12"])
def test_resumption_across_children(work, tss, user, server_key, pki, need, proto):
    """A session begun with one child resumes with another, forked after the first one
    ended: the ticket keys come from the server, not from the child that issued the ticket."""
    openssl = need("openssl")
    uid, gid = user
    srv = tss_server(work, tss, ["-v", "-l0", "-HR", "-u", str(uid), "-g", str(gid), "-n", str(server_key.pem)],
                     [SMTPD, "host"])
    sess = work.dir / "session.pem"
    version = {"-tls1_3": "TLSv1.3", "-tls1_2": "TLSv1.2"}[proto]
    args = ["-CAfile", pki / "ca.pem", "-verify_return_error", "-servername", "localhost", proto]

    mark = srv.mark()
    rc, out = s_client(work, openssl, srv.port, *args, "-sess_out", sess)
    assert rc == 0 and re.search(rf"^New, {re.escape(version)}", out, re.M), out
    assert re.search(GREETING, out, re.M), out
    assert sess.is_file() and sess.stat().st_size > 0, out
    first, status = srv.end_of(since=mark)
    assert status == 0, srv.text()
    line1 = srv.wait_for(rf"^{PROG}: tls {first} .*$", since=mark).group(0)
    assert not line1.endswith(" resumed"), line1

    mark = srv.mark()
    rc, out = s_client(work, openssl, srv.port, *args, "-sess_in", sess)
    assert rc == 0 and re.search(rf"^Reused, {re.escape(version)}", out, re.M), out
    assert re.search(GREETING, out, re.M), out
    second, status = srv.end_of(since=mark)
    assert status == 0 and second != first, srv.text()
    line2 = srv.wait_for(rf"^{PROG}: tls {second} .*$", since=mark).group(0)
    assert line2.endswith(" resumed") and f" {version} " in line2, line2
