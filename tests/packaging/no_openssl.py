#!/usr/bin/python3
"""no_openssl.py -- no process that loads libmailtls (or BoringSSL) may load OpenSSL.

BoringSSL exports OpenSSL's names unversioned; in one process with OpenSSL's
libssl.so.3 / libcrypto.so.3, glibc binds OpenSSL's references into BoringSSL
(docs: shared/reference/boringssl.md).  This check looks three ways:

 1. static: every ELF executable and shared object in the build tree that
    links libmailtls (by DT_NEEDED, or statically: it defines
    mailtls_version) or BoringSSL, and libmailtls itself: its whole
    dependency closure as the loader resolves it (ldd, i.e.
    LD_TRACE_LOADED_OBJECTS) must hold no OpenSSL and nothing "not found";
 2. running: long-lived programs (examples/tls-hello, examples/tcpserver-ssl)
    are started and given a real TLS connection; the /proc/PID/maps of the
    server and of every process under it must not show OpenSSL beside
    libmailtls (and at least the server and its connection process must
    show libmailtls, or the check would be looking at the wrong thing);
 3. --run-tests LABEL: the ctest tests with that label are run again, each
    under LD_DEBUG=files, which logs every object each process (and each
    program a process execs) loads, dlopen(3) included; a program image
    that loaded libmailtls or BoringSSL must not have loaded OpenSSL.
    Python interpreters are the one allowed exception: they load extension
    modules RTLD_LOCAL, so `import ssl` beside the BoringSSL-linked module
    is safe (tested by a handshake in tests/python).

A self-test first checks that the detector does see OpenSSL where it is
(/usr/bin/openssl), so a silently broken check cannot pass.  Under CI (the
environment variable CI set) a missing openssl command, or a RUNNING program
that was not built, is a problem; elsewhere a note.  Running no RUNNING program
at all is always a problem.

Usage: no_openssl.py BUILD_DIR [--run-tests LABEL] [--skip DIR]...
Exit status 0 clean, 1 OpenSSL found (or a check could not run), 100 usage.
ISC license: see LICENSE.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

PROG = "no_openssl.py"
OPENSSL_RE = re.compile(r"\blib(ssl|crypto)\.so\.(3|1\.1|1\.0\.[0-9])\b")
MAILTLS_RE = re.compile(r"\blibmailtls\.so(\.[0-9]+)*\b")
BSSL_NAMES = {"libssl.so.0", "libcrypto.so.0"}


def log(msg):
    print(f"{PROG}: {msg}", flush=True)


def unmet(msg):
    """A precondition of the machine or the build that is missing: a problem under
    CI, a note elsewhere.  Returns the list of problems to add."""
    if os.environ.get("CI"):
        return [f"{msg} (CI is set)"]
    log(f"note: {msg}")
    return []


def is_elf_object(path):
    """Returns the ELF type (2 exec, 3 dyn) of |path|, or 0."""
    try:
        with open(path, "rb") as f:
            head = f.read(18)
    except OSError:
        return 0
    if len(head) < 18 or head[:4] != b"\x7fELF":
        return 0
    etype = int.from_bytes(head[16:18], "little" if head[5] == 1 else "big")
    return etype if etype in (2, 3) else 0


def dynamic_info(path):
    """(NEEDED list, SONAME or None) of an ELF file."""
    p = subprocess.run(["readelf", "-d", "-W", path], capture_output=True, text=True)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", p.stdout)
    m = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", p.stdout)
    return needed, (m.group(1) if m else None)


def defines_mailtls(path):
    for opts in (["--defined-only"], ["-D", "--defined-only"]):
        p = subprocess.run(["nm", *opts, path], capture_output=True, text=True)
        if re.search(r"\s[TtWw]\s+mailtls_version(@.*)?$", p.stdout, re.M):
            return True
    return False


def ldd_closure(path):
    """The loader's view of |path|'s dependencies: list of (name, resolved)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD",)}
    p = subprocess.run(["ldd", path], capture_output=True, text=True, env=env,
                       stdin=subprocess.DEVNULL, timeout=60)
    deps = []
    for line in (p.stdout + p.stderr).splitlines():
        line = line.strip()
        m = re.match(r"(\S+) => (not found|\S+)", line)
        if m:
            deps.append((m.group(1), m.group(2)))
            continue
        m = re.match(r"(/\S+) \(0x", line)
        if m:
            deps.append((os.path.basename(m.group(1)), m.group(1)))
    if p.returncode != 0 and not deps:
        deps.append(("(ldd failed)", (p.stdout + p.stderr).strip() or f"status {p.returncode}"))
    return deps


def openssl_in(deps):
    return [f"{n} => {r}" for n, r in deps if OPENSSL_RE.search(n) or OPENSSL_RE.search(r)]


def self_test():
    exe = shutil.which("openssl")
    if not exe:
        return unmet("no openssl command, detector self-test skipped")
    if not openssl_in(ldd_closure(exe)):
        return [f"self-test: the detector does not see OpenSSL in {exe}"]
    log(f"self-test: ok, the detector sees OpenSSL in {exe}")
    return []


def static_check(build, skips):
    problems, checked = [], 0
    for root, dirs, files in os.walk(build):
        dirs[:] = sorted(d for d in dirs if d != "CMakeFiles"
                         and os.path.join(root, d) not in skips)
        for f in sorted(files):
            path = os.path.join(root, f)
            if os.path.islink(path) or not is_elf_object(path):
                continue
            needed, soname = dynamic_info(path)
            links = (any(MAILTLS_RE.search(n) for n in needed)
                     or any(n in BSSL_NAMES for n in needed)
                     or (soname and MAILTLS_RE.search(soname))
                     or defines_mailtls(path))
            if not links:
                continue
            checked += 1
            deps = ldd_closure(path)
            rel = os.path.relpath(path, build)
            bad = openssl_in(deps)
            missing = [n for n, r in deps if r == "not found" or n == "(ldd failed)"]
            has_bssl = any(n in BSSL_NAMES for n, _ in deps)
            if bad:
                problems.append(f"{rel} loads OpenSSL: {', '.join(bad)}")
            if missing:
                problems.append(f"{rel}: cannot resolve {', '.join(missing)}")
            log(f"{'BAD' if bad or missing else 'ok '} {rel}: {len(deps)} objects"
                f"{', BoringSSL' if has_bssl else ''}{', OpenSSL!' if bad else ''}")
    if checked == 0:
        problems.append(f"no program or library linking libmailtls found under {build}")
    log(f"static: {checked} files linking libmailtls or BoringSSL checked")
    return problems


def maps_of(pid):
    with open(f"/proc/{pid}/maps") as f:
        return {line.split()[-1] for line in f if len(line.split()) >= 6}


# Long-lived programs checked running: (path in the build tree, argv after
# the program given cert, key and combined PEM, regex for the port in the
# first line of stdout).  Each serves one TLS connection while we look.
RUNNING = [
    ("examples/tls-hello/tls-hello",
     lambda cert, key, both: ["-t", "20", cert, key],
     r"listening on 127\.0\.0\.1:(\d+)"),
    ("examples/tcpserver-ssl/tcpserver-ssl",
     lambda cert, key, both: ["-1", "-H", "-R", "-l0", "-n", both, "127.0.0.1", "0", "/bin/cat"],
     r"^(\d+)$"),
]


def descendants(pid):
    out = []
    for kid in children_of(pid, wait=False):
        out.append(kid)
        out += descendants(kid)
    return out


def runtime_programs(build):
    """Starts each long-lived program, connects with TLS, reads /proc/PID/maps
    of it and of every process under it while the connection is up."""
    openssl = shutil.which("openssl")
    if not openssl:
        return ["the openssl command is missing: cannot make a certificate"]
    tmp = tempfile.mkdtemp(prefix="no-openssl-")
    problems, ran = [], 0
    try:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        both = os.path.join(tmp, "both.pem")
        subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj",
                        "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                        "-keyout", key, "-out", cert],
                       check=True, capture_output=True, stdin=subprocess.DEVNULL)
        with open(both, "w") as f:
            f.write(open(key).read() + open(cert).read())
        for rel, argv, port_re in RUNNING:
            exe = os.path.join(build, rel)
            if not os.path.exists(exe):
                problems += unmet(f"{rel} not built, its running check skipped")
                continue
            problems += running_check(rel, [exe, *argv(cert, key, both)], port_re, cert, tmp)
            ran += 1
    except (OSError, subprocess.CalledProcessError) as e:
        problems.append(f"running check failed: {e}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if ran == 0:
        problems.append(f"no program of {', '.join(rel for rel, _, _ in RUNNING)} ran: "
                        "the running check looked at nothing")
    return problems


def running_check(rel, cmd, port_re, cert, cwd):
    problems = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()
        m = re.search(port_re, line.strip())
        if not m:
            proc.kill()
            return [f"{rel} did not start: {line!r} {proc.stderr.read()!r}"]
        port = int(m.group(1))
        ctx = ssl.create_default_context(cafile=cert)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"ping\r\n")
                tls.recv(1000)
                # Every process serving this connection is up now.
                pids = [proc.pid] + descendants(proc.pid)
                with_mailtls = 0
                for pid in pids:
                    try:
                        mapped = maps_of(pid)
                    except OSError:
                        continue
                    names = {os.path.basename(p) for p in mapped}
                    uses = any(MAILTLS_RE.search(n) for n in names)
                    with_mailtls += uses
                    bad = sorted(p for p in mapped if OPENSSL_RE.search(os.path.basename(p)))
                    what = "server" if pid == proc.pid else "descendant"
                    if bad and (uses or names & BSSL_NAMES):
                        problems.append(f"{rel}: {what} maps OpenSSL beside libmailtls: "
                                        f"{', '.join(bad)}")
                    log(f"{'BAD' if bad and uses else 'ok '} running {rel}, {what} "
                        f"(pid {pid}, {os.path.basename(os.readlink(f'/proc/{pid}/exe'))}): "
                        f"{'libmailtls and BoringSSL' if uses else 'no libmailtls'}, "
                        f"{'OpenSSL too!' if bad else 'no OpenSSL'}")
                if with_mailtls < 2:
                    problems.append(f"{rel}: fewer than two processes (server and connection) "
                                    f"map libmailtls, so this check looks at the wrong thing")
    except (OSError, ssl.SSLError) as e:
        problems.append(f"{rel}: running check failed: {e}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return problems


def children_of(pid, wait=True):
    for _ in range(50 if wait else 1):
        kids = []
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    kids += [int(x) for x in f.read().split()]
        except OSError:
            pass
        if kids or not wait:
            return kids
        time.sleep(0.1)
    return []


def parse_ld_debug(path):
    """Splits an LD_DEBUG=files log (one per pid; exec keeps the pid and the
    file) into program images: list of (program, set of loaded names)."""
    images = []
    cur = {"program": None, "loaded": set(), "started": False}
    pending = []   # (needed_by, name) lines seen since the last "transferring control"
    with open(path, errors="replace") as f:
        for raw in f:
            line = raw.split(":", 1)[1].strip() if ":" in raw else raw.strip()
            m = re.match(r"file=(\S+) \[\d+\];\s+(needed by|dynamically loaded by) (\S+)", line)
            if m:
                name, how, by = m.groups()
                if cur["started"]:
                    pending.append((by, name, how))
                else:
                    cur["loaded"].add(os.path.basename(name))
                continue
            m = re.match(r"initialize program: (\S+)", line)
            if m:
                prog = m.group(1)
                if cur["started"]:
                    # A new image (exec): its startup lines begin with the
                    # first "needed by PROG"; what came before were dlopens
                    # of the previous image.
                    cut = next((i for i, (by, _, how) in enumerate(pending)
                                if how == "needed by" and by == prog), len(pending))
                    cur["loaded"].update(os.path.basename(n) for _, n, _ in pending[:cut])
                    images.append((cur["program"], cur["loaded"]))
                    cur = {"program": prog, "started": False,
                           "loaded": {os.path.basename(n) for _, n, _ in pending[cut:]}}
                    pending = []
                else:
                    cur["program"] = prog
                continue
            if line.startswith("transferring control:"):
                cur["started"] = True
    cur["loaded"].update(os.path.basename(n) for _, n, _ in pending)
    images.append((cur["program"], cur["loaded"]))
    return images


def run_tests(build, label):
    """Runs the ctest tests labelled |label| under LD_DEBUG=files."""
    ctest = shutil.which("ctest") or "ctest"
    p = subprocess.run([ctest, "--test-dir", build, "-L", label, "--show-only=json-v1"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return [f"ctest --show-only failed: {p.stderr.strip()}"]
    tests = json.loads(p.stdout).get("tests", [])
    if not tests:
        return [f"no ctest test has the label {label}"]
    problems = []
    logdir = tempfile.mkdtemp(prefix="no-openssl-ld-")
    images_seen = 0
    try:
        for t in tests:
            props = {pr["name"]: pr["value"] for pr in t.get("properties", [])}
            if props.get("DISABLED"):
                continue
            env = dict(os.environ)
            for kv in props.get("ENVIRONMENT", []):
                k, _, v = kv.partition("=")
                env[k] = v
            tdir = os.path.join(logdir, re.sub(r"[^A-Za-z0-9_.-]", "_", t["name"]))
            os.mkdir(tdir)
            env["LD_DEBUG"] = "files"
            env["LD_DEBUG_OUTPUT"] = os.path.join(tdir, "ld")
            try:
                r = subprocess.run(t["command"], env=env, cwd=props.get("WORKING_DIRECTORY", build),
                                   stdin=subprocess.DEVNULL, capture_output=True,
                                   timeout=float(props.get("TIMEOUT", 600)))
                status = r.returncode
            except subprocess.TimeoutExpired:
                status = "timeout"
            except OSError as e:
                problems.append(f"{t['name']}: cannot run: {e}")
                continue
            bad_here = []
            n_images = n_uses = 0
            for f in sorted(os.listdir(tdir)):
                for program, loaded in parse_ld_debug(os.path.join(tdir, f)):
                    n_images += 1
                    uses = any(MAILTLS_RE.search(n) for n in loaded) or (loaded & BSSL_NAMES)
                    n_uses += bool(uses)
                    openssl = sorted(n for n in loaded if OPENSSL_RE.search(n))
                    if not (uses and openssl):
                        continue
                    if program and re.match(r"python3(\.\d+)?$", os.path.basename(program)):
                        log(f"note: {t['name']}: {program} loads BoringSSL and "
                            f"{', '.join(openssl)} (allowed: Python loads modules RTLD_LOCAL)")
                        continue
                    bad_here.append(f"{program or '?'} loaded {', '.join(openssl)}")
            if bad_here:
                problems.append(f"{t['name']}: {'; '.join(bad_here)}")
            images_seen += n_images
            log(f"{'BAD' if bad_here else 'ok '} {t['name']} under LD_DEBUG: {n_images} program "
                f"images, {n_uses} with libmailtls or BoringSSL (exit {status}: whether "
                f"the test passed is ctest's business)")
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    log(f"running: {len(tests)} tests, {images_seen} program images looked at")
    if images_seen == 0:
        problems.append("LD_DEBUG logged nothing: the running check saw no process")
    return problems


def main():
    ap = argparse.ArgumentParser(prog=PROG)
    ap.add_argument("build", help="the build tree")
    ap.add_argument("--run-tests", metavar="LABEL",
                    help="also run the ctest tests with this label under LD_DEBUG=files")
    ap.add_argument("--skip", action="append", default=[],
                    help="a directory of the build tree not to scan (repeatable)")
    ap.add_argument("--no-running", action="store_true", help="skip the running programs' check")
    try:
        args = ap.parse_args()
    except SystemExit as e:
        return 100 if e.code else 0
    build = os.path.abspath(args.build)
    if not os.path.isdir(build):
        log(f"fatal: no build tree {build}")
        return 100
    skips = {os.path.abspath(s) for s in args.skip}
    problems = self_test()
    problems += static_check(build, skips)
    if not args.no_running:
        problems += runtime_programs(build)
    if args.run_tests:
        problems += run_tests(build, args.run_tests)
    for p in problems:
        log(f"FAIL: {p}")
    if problems:
        return 1
    log("PASS: no process of libmailtls loads OpenSSL")
    return 0


if __name__ == "__main__":
    sys.exit(main())
