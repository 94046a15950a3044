"""Shared fixtures for the interop tests with real peers (loopback only).

Environment (set by ctest, see tests/interop/CMakeLists.txt):
  MAILTLS_TEST_PKI  the test PKI made by tests/pki/mkpki.py (ctest fixture
                    "pki"); when unset, a fresh one is made for this run
  MAILTLS_PROBE     the mailtls-probe binary (tests/helpers/probe.c)
  CI                when set, a missing peer binary fails the test instead
                    of skipping it

Fixtures:
  pki     pathlib.Path of the PKI directory
  need    need("openssl") -> absolute path of a peer binary, or skip/fail

Helpers: must_have(cond, msg) skips (fails under CI) when a precondition of the
machine is missing; executable_from_env(var, what) is the program ctest names in
$var, or skip/fail; proc_stat(pid), alive(pid) and wait_gone(pids, timeout) tell
from /proc whether processes run (a zombie counts as gone).
  procs   ProcSet: starts processes (stdout+stderr in a log file each, own
          session), stops every one of them by its pid when the test ends
  probe   Probe: probe.server(...) and probe.client(...) on top of procs

The probe prints key=value lines; KV parses them (KV.split parses a probe
server's output into one KV per connection).
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
MKPKI = HERE.parent / "pki" / "mkpki.py"

# Every wait is bounded by one of these (seconds).
START_TIMEOUT = 10
RUN_TIMEOUT = 20
STOP_TIMEOUT = 3


class KV:
    """key=value lines of the probe; other lines are ignored."""

    LINE = re.compile(r"^([a-z_]+)=(.*)$")

    def __init__(self, text):
        self.text = text
        self.items = []
        for line in text.splitlines():
            m = self.LINE.match(line)
            if m:
                self.items.append((m.group(1), m.group(2)))

    @classmethod
    def split(cls, text):
        """One KV per connection of a probe server: each starts at a result= line."""
        chunks, cur = [], None
        for line in text.splitlines():
            if line.startswith("result="):
                cur = []
                chunks.append(cur)
            if cur is not None:
                cur.append(line)
        return [cls("\n".join(c)) for c in chunks]

    def all(self, key):
        return [v for k, v in self.items if k == key]

    def get(self, key, default=None):
        vals = self.all(key)
        return vals[0] if vals else default

    def __getitem__(self, key):
        vals = self.all(key)
        if not vals:
            raise KeyError(f"{key}= missing in probe output:\n{self.text}")
        return vals[0]

    def __contains__(self, key):
        return bool(self.all(key))

    def __repr__(self):
        return f"KV({self.text!r})"


class Proc:
    """One started process; its stdout and stderr go to one log file."""

    def __init__(self, argv, log, stdin=False, env=None, cwd=None):
        self.argv = [str(a) for a in argv]
        self.log = Path(log)
        self._logf = open(self.log, "wb")
        self.p = subprocess.Popen(self.argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  stdout=self._logf, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                  start_new_session=True)
        self.pid = self.p.pid

    def text(self, since=0):
        return self.log.read_bytes().decode("utf-8", "replace")[since:]

    def mark(self):
        """Position in the log, for text(since=...) / wait_for(since=...)."""
        return len(self.text())

    def running(self):
        return self.p.poll() is None

    def wait_for(self, pattern, timeout=START_TIMEOUT, since=0):
        """The first match of regex |pattern| (multiline) in the log, waiting at most
        |timeout| seconds; None when the process ended or time ran out without it."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            alive = self.running()
            m = rx.search(self.text(since))
            if m or not alive or time.monotonic() > deadline:
                return m
            time.sleep(0.02)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def close_stdin(self):
        if self.p.stdin and not self.p.stdin.closed:
            try:
                self.p.stdin.close()
            except BrokenPipeError:
                pass

    def wait(self, timeout=RUN_TIMEOUT):
        """The exit status, or None when the process still runs after |timeout|."""
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def finish(self, timeout=RUN_TIMEOUT):
        """Close stdin (a client ends its session at EOF) and wait for the end; returns
        (exit status, output).  Fails the test when it still runs after |timeout|."""
        self.close_stdin()
        rc = self.wait(timeout)
        if rc is None:
            self.stop()
            pytest.fail(f"{self} still running after {timeout}s; output:\n{self.text()}")
        return rc, self.text()

    def stop(self):
        """Stop this process by its own pid: SIGTERM, then SIGKILL."""
        self.close_stdin()
        if self.running():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait(STOP_TIMEOUT) is None:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.wait(STOP_TIMEOUT)
        if not self._logf.closed:
            self._logf.close()

    def __repr__(self):
        return f"Proc(pid={self.pid}, {' '.join(self.argv)!r})"


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    """True when some socket listens on TCP |port| (IPv4 or IPv6), per /proc/net/tcp*.
    Checking this way costs the server no connection."""
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(f).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def proc_stat(pid):
    """(state, ppid, pgrp) of process |pid| from /proc/PID/stat, or None when there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = text[text.rindex(")") + 2:].split()
    return f[0], int(f[1]), int(f[2])


def alive(pid):
    """True while |pid| runs: a process that is gone, or ended and not yet reaped by its
    parent (a zombie), is not alive."""
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def group_members(pgrp):
    """The live processes of process group |pgrp|."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            st = proc_stat(int(d.name))
            if st is not None and st[2] == pgrp and st[0] not in ("Z", "X"):
                pids.append(int(d.name))
    return pids


def wait_gone(pids, timeout):
    """Waits at most |timeout| seconds for every process of |pids| to be gone (zombies
    count as gone); returns those still alive then."""
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [p for p in pids if alive(p)]


class ProcSet:
    """Processes of one test; stop_all() (run by the fixture) stops them all."""

    def __init__(self, logdir):
        self.logdir = Path(logdir)
        self.procs = []

    def start(self, argv, name=None, stdin=False, env=None):
        name = name or Path(str(argv[0])).name
        log = self.logdir / f"{len(self.procs):02d}-{name}.log"
        p = Proc(argv, log, stdin=stdin, env=env, cwd=self.logdir)
        self.procs.append(p)
        return p

    def run(self, argv, name=None, input=None, timeout=RUN_TIMEOUT, env=None):
        """Run to the end; returns (exit status, output). Fails the test on timeout."""
        p = self.start(argv, name=name, stdin=True, env=env)
        if input:
            try:
                p.send(input)
            except BrokenPipeError:
                pass
        return p.finish(timeout)

    def start_server(self, make_argv, name=None, attempts=3, env=None):
        """Start a server that listens on the port given to make_argv(port), on a free
        port (another if that one was taken meanwhile); returns (Proc, port) once it listens."""
        out = ""
        for _ in range(attempts):
            port = free_port()
            p = self.start(make_argv(port), name=name, env=env)
            deadline = time.monotonic() + START_TIMEOUT
            while p.running() and not listening(port) and time.monotonic() < deadline:
                time.sleep(0.02)
            if p.running() and listening(port):
                return p, port
            out = p.text()
            p.stop()
        pytest.fail(f"server {make_argv('PORT')} did not start; output:\n{out}")

    def stop_all(self):
        for p in reversed(self.procs):
            p.stop()


class ProbeServer:
    def __init__(self, proc, port):
        self.proc = proc
        self.port = port

    def results(self, timeout=RUN_TIMEOUT):
        """One KV per connection, once the server served its --count and exited."""
        if self.proc.wait(timeout) is None:
            self.proc.stop()
            pytest.fail(f"probe server still running after {timeout}s; output:\n{self.proc.text()}")
        return KV.split(self.proc.text())

    def result(self, timeout=RUN_TIMEOUT):
        """The KV of the one connection of a --count 1 server."""
        res = self.results(timeout)
        assert len(res) == 1, f"expected one connection, probe server said:\n{self.proc.text()}"
        return res[0]


class Probe:
    """mailtls-probe as a server or a client (see tests/helpers/probe.c)."""

    def __init__(self, path, procs, timeout=5):
        self.path = path
        self.procs = procs
        self.timeout = timeout

    def server(self, *args, count=1):
        """Start "probe server ARGS" on a port it picks; returns a ProbeServer."""
        p = self.procs.start([self.path, "server", "--port", "0", "--count", str(count),
                              "--timeout", str(self.timeout), *args], name="probe-server")
        m = p.wait_for(r"^port=(\d+)$")
        if not m:
            p.stop()
            pytest.fail(f"probe server did not start: {p.argv}\n{p.text()}")
        return ProbeServer(p, int(m.group(1)))

    def client(self, port, *args, host="127.0.0.1"):
        """Run "probe client --connect HOST:PORT ARGS"; returns (exit status, KV)."""
        rc, out = self.procs.run([self.path, "client", "--connect", f"{host}:{port}",
                                  "--timeout", str(self.timeout), *args], name="probe-client")
        return rc, KV(out)


def must_have(cond, msg):
    """Skip (or fail under CI) when a precondition of the machine is missing."""
    if cond:
        return
    if os.environ.get("CI"):
        pytest.fail(msg + " (CI is set)")
    pytest.skip(msg)


def executable_from_env(var, what):
    """The absolute path of the program |what| that ctest names in $|var|."""
    path = os.environ.get(var)
    must_have(path and os.access(path, os.X_OK),
              f"{var}={path!r} is not an executable {what} (run through ctest)")
    return str(Path(path).resolve())


def qmail_remote():
    """Our qmail-remote (ctest names it in $MAILTLS_QMAIL_REMOTE)."""
    return executable_from_env("MAILTLS_QMAIL_REMOTE", "qmail-remote")


def in_namespace(script, unshare, name, prefix, args=(), needs=(), timeout=RUN_TIMEOUT, prepare=None):
    """Runs scenario |name| of the test module |script|, run as a program under
    "unshare |unshare|" with the arguments |name|, a fresh work directory (given first
    to |prepare|, if any) and |args|, once the programs of |needs| are found; returns
    the JSON of its last output line."""
    must_have(os.geteuid() == 0, f"private namespaces (unshare {unshare}) need root")
    for b in ("unshare", "ip", "ss", *needs):
        must_have(shutil.which(b) or shutil.which(b, path="/usr/sbin:/sbin"), f"{b} is not installed")
    work = tempfile.mkdtemp(prefix=prefix)
    try:
        if prepare:
            prepare(Path(work))
        env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        p = subprocess.run(["unshare", unshare, "/usr/bin/python3", str(script), name, work, *args],
                           capture_output=True, env=env, timeout=timeout)
        assert p.returncode == 0, p.stderr.decode("latin-1")
        return json.loads(p.stdout.decode().strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    d = os.environ.get("MAILTLS_TEST_PKI")
    if d:
        d = Path(d).resolve()       # processes run in their own temporary directory
        if not (d / "ca.pem").is_file():
            pytest.fail(f"MAILTLS_TEST_PKI={d} holds no ca.pem: did the ctest fixture pki_setup run?")
        return d
    d = tmp_path_factory.mktemp("pki")
    subprocess.run([sys.executable, str(MKPKI), str(d)], check=True, timeout=60)
    return d


@pytest.fixture(scope="session")
def need():
    def need(binary):
        path = shutil.which(binary)
        must_have(path, f"peer binary {binary} is not installed")
        return path
    return need


@pytest.fixture
def procs(tmp_path):
    ps = ProcSet(tmp_path)
    yield ps
    ps.stop_all()


@pytest.fixture
def probe(procs):
    path = os.environ.get("MAILTLS_PROBE")
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"MAILTLS_PROBE={path!r} is not an executable mailtls-probe; run through ctest")
    return Probe(str(Path(path).resolve()), procs)
