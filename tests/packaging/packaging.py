#!/usr/bin/python3
"""packaging.py -- the packaging tests of libmailtls, run by ctest.

Each consumer test installs the build tree into a fresh prefix of its own
(cmake --install BUILD --prefix TMP), builds tests/packaging/consumer.c
against the installed copy one way, runs it and checks what it printed: the
version of the library actually loaded and the file it was loaded from (the
installed libmailtls.so, or the program itself when linked statically).

  packaging.py install   --build B --work W           what is installed
  packaging.py pkgconfig --build B --src S --work W   pkg-config + cc
  packaging.py cmake     --build B --src S --work W   find_package(mailtls)
  packaging.py libtool   --build B --src S --work W   libtool compile/link
  packaging.py symbols   --lib L --list symbols.list --header mailtls.h [--archive A]
  packaging.py soname    --lib L --cmakelists libmailtls/CMakeLists.txt

Environment: CC (default cc), CMAKE (default cmake), MAILTLS_CONSUMER_CFLAGS
(extra compiler and linker flags, e.g. the sanitizers of the build tree).
Exit status 0 when every check passed, 1 otherwise.  ISC license: see LICENSE.
"""

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

PROG = "packaging.py"


class Failure(Exception):
    pass


def log(msg):
    print(f"{PROG}: {msg}", flush=True)


def run(cmd, env=None, cwd=None, check=True, quiet=False):
    """Runs |cmd| (a list), echoing it and (unless |quiet|) its output;
    returns the output and the exit status."""
    log("$ " + " ".join(shlex.quote(c) for c in cmd))
    p = subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if p.stdout and (not quiet or p.returncode != 0):
        sys.stdout.write(p.stdout if p.stdout.endswith("\n") else p.stdout + "\n")
    if check and p.returncode != 0:
        raise Failure(f"command failed with status {p.returncode}: {cmd[0]}")
    return p.stdout, p.returncode


def clean_env(**extra):
    """The environment without anything that would find libraries for us."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD", "PKG_CONFIG_PATH",
                        "PKG_CONFIG_LIBDIR", "CMAKE_PREFIX_PATH", "CFLAGS",
                        "LDFLAGS", "CPPFLAGS")}
    env.update(extra)
    return env


def cc():
    return shlex.split(os.environ.get("CC") or "cc")


def extra_flags():
    return shlex.split(os.environ.get("MAILTLS_CONSUMER_CFLAGS", ""))


def cmake():
    return os.environ.get("CMAKE") or "cmake"


def header_version(include_dir):
    text = open(os.path.join(include_dir, "mailtls.h")).read()
    m = re.search(r'#define\s+MAILTLS_VERSION_STRING\s+"([^"]+)"', text)
    if not m:
        raise Failure("no MAILTLS_VERSION_STRING in the installed mailtls.h")
    return m.group(1)


class Prefix:
    """A fresh install of the build tree."""

    def __init__(self, args):
        os.makedirs(args.work, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="prefix-", dir=args.work)
        run([cmake(), "--install", args.build, "--prefix", self.dir])
        self.include = os.path.join(self.dir, args.includedir)
        self.lib = os.path.join(self.dir, args.libdir)
        for f in ("libmailtls.so", "libmailtls.a", "libmailtls.la", "pkgconfig/mailtls.pc",
                  "cmake/mailtls/mailtlsConfig.cmake", "cmake/mailtls/mailtlsConfigVersion.cmake"):
            if not os.path.exists(os.path.join(self.lib, f)):
                raise Failure(f"{f} was not installed into {self.lib}")
        if not os.path.isfile(os.path.join(self.include, "mailtls.h")):
            raise Failure(f"mailtls.h was not installed into {self.include}")
        self.version = header_version(self.include)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def check_consumer(exe, prefix, static, env=None, from_dir=None):
    """Runs the consumer |exe| and checks its report."""
    out, rc = run([exe], env=env or clean_env(), check=False)
    if rc != 0:
        raise Failure(f"{exe} exited with status {rc}")
    m = re.search(r"^mailtls-consumer ok version=(\S+) header=(\S+) tls=(\S+) from=(.*)$",
                  out, re.M)
    if not m:
        raise Failure(f"{exe} did not print its report line")
    version, header, _, loaded_from = m.groups()
    if version != prefix.version or header != prefix.version:
        raise Failure(f"{exe}: library {version}, header {header}, installed {prefix.version}")
    real = os.path.realpath(loaded_from)
    ldd, _ = run(["ldd", exe], env=env or clean_env(), quiet=True)
    openssl = re.findall(r"\blib(?:ssl|crypto)\.so\.(?:3|1\.1)\b", ldd)
    if openssl:
        raise Failure(f"{exe} loads OpenSSL ({', '.join(openssl)}) beside BoringSSL")
    if static:
        if real != os.path.realpath(exe):
            raise Failure(f"{exe} was linked statically but took mailtls from {loaded_from}")
        if "libmailtls" in ldd:
            raise Failure(f"{exe} was linked statically but needs libmailtls.so")
    else:
        want = os.path.realpath(from_dir or prefix.lib)
        if os.path.dirname(real) != want:
            raise Failure(f"{exe} loaded libmailtls from {loaded_from}, not from {want}")
    log(f"ok: {os.path.basename(exe)} ({'static' if static else 'shared'}) "
        f"runs with libmailtls {version} from {loaded_from}")


def test_pkgconfig(args):
    prefix = Prefix(args)
    out = tempfile.mkdtemp(prefix="pkgconfig-", dir=args.work)
    pcdir = os.path.join(prefix.lib, "pkgconfig")
    env = clean_env(PKG_CONFIG_PATH=pcdir)

    def pkgconf(*a):
        text, _ = run(["pkg-config", *a, "mailtls"], env=env)
        return shlex.split(text)

    modversion = pkgconf("--modversion")
    if modversion != [prefix.version]:
        raise Failure(f"pkg-config --modversion says {modversion}, mailtls.h {prefix.version}")
    cflags = pkgconf("--cflags")
    libs = pkgconf("--libs")
    libdir = pkgconf("--variable=libdir")[0]
    if os.path.realpath(libdir) != os.path.realpath(prefix.lib):
        raise Failure(f"pkg-config libdir {libdir} is not {prefix.lib}")
    if "-lmailtls" not in libs or any(f in libs for f in ("-lssl", "-lcrypto")):
        raise Failure(f"Libs should be -L<libdir> -lmailtls only: {libs}")
    static_libs = pkgconf("--static", "--libs")
    if not {"-lssl", "-lcrypto"} <= set(static_libs) \
            or not any(f.startswith("-Wl,-rpath,") for f in static_libs):
        raise Failure(f"Libs.private lacks BoringSSL or its rpath: {static_libs}")
    src = os.path.join(args.src, "consumer.c")

    # 1. The documented command, with LD_LIBRARY_PATH at run time.
    exe = os.path.join(out, "consumer-ldpath")
    run([*cc(), *extra_flags(), "-o", exe, src, *cflags, *libs], env=env)
    check_consumer(exe, prefix, False, env=clean_env(LD_LIBRARY_PATH=prefix.lib))
    # 2. With an rpath to the install libdir: runs with no environment.
    exe = os.path.join(out, "consumer-rpath")
    run([*cc(), *extra_flags(), "-o", exe, src, *cflags, *libs,
         f"-Wl,-rpath,{libdir}"], env=env)
    check_consumer(exe, prefix, False)
    # 3. The static archive with Libs.private (pkg-config --static).
    exe = os.path.join(out, "consumer-static")
    run([*cc(), *extra_flags(), "-o", exe, src, *cflags,
         *[("-l:libmailtls.a" if f == "-lmailtls" else f) for f in static_libs]], env=env)
    check_consumer(exe, prefix, True)
    prefix.remove()
    shutil.rmtree(out, ignore_errors=True)


def test_cmake(args):
    prefix = Prefix(args)
    bdir = tempfile.mkdtemp(prefix="cmake-consumer-", dir=args.work)
    proj = os.path.join(args.src, "cmake-consumer")
    env = clean_env()
    flags = " ".join(extra_flags())
    common = [f"-DCMAKE_PREFIX_PATH={prefix.dir}", "-DCMAKE_BUILD_TYPE=RelWithDebInfo"]
    if os.environ.get("CC"):
        common.append(f"-DCMAKE_C_COMPILER={cc()[0]}")
    if flags:
        common += [f"-DCMAKE_C_FLAGS={flags}", f"-DCMAKE_EXE_LINKER_FLAGS={flags}"]
    run([cmake(), "-S", proj, "-B", bdir, *common], env=env)
    run([cmake(), "--build", bdir], env=env)
    check_consumer(os.path.join(bdir, "consumer_shared"), prefix, False)
    check_consumer(os.path.join(bdir, "consumer_static"), prefix, True)
    # SameMajorVersion: asking for the next major version must fail.
    major = int(prefix.version.split(".")[0])
    bad = tempfile.mkdtemp(prefix="cmake-consumer-major-", dir=args.work)
    text, rc = run([cmake(), "-S", proj, "-B", bad, *common,
                    f"-DMAILTLS_WANT_VERSION={major + 1}.0"], env=env, check=False)
    if rc == 0:
        raise Failure(f"find_package(mailtls {major + 1}.0) was accepted by {prefix.version}")
    # CMake's words (wrapped at any space): "Could not find a configuration file for package
    # "mailtls" that is compatible with requested version "N.0"", then the file it refused.
    said = " ".join(text.split())
    want = f'compatible with requested version "{major + 1}.0"'
    if want not in said or f"mailtlsConfig.cmake, version: {prefix.version}" not in said:
        raise Failure(f"find_package(mailtls {major + 1}.0) failed, but not for the version: "
                      f"no '{want}' naming the installed mailtlsConfig.cmake {prefix.version}")
    log(f"ok: find_package(mailtls {major + 1}.0) refused, as SameMajorVersion says")
    for d in (bad, bdir):
        shutil.rmtree(d, ignore_errors=True)
    prefix.remove()


def test_libtool(args):
    prefix = Prefix(args)
    out = tempfile.mkdtemp(prefix="libtool-", dir=args.work)
    env = clean_env()
    lt = [shutil.which("libtool") or "libtool", "--tag=CC"]
    compiler = [*cc(), *extra_flags()]
    run([*lt, "--mode=compile", *compiler, f"-I{prefix.include}", "-c",
         os.path.join(args.src, "consumer.c"), "-o", "consumer.lo"], env=env, cwd=out)
    la = os.path.join(prefix.lib, "libmailtls.la")
    # 1. Against the installed .la: libtool adds the rpath to libdir itself.
    run([*lt, "--mode=link", *compiler, "-o", "consumer-la", "consumer.lo", la],
        env=env, cwd=out)
    check_consumer(os.path.join(out, "consumer-la"), prefix, False)
    # 2. -static-libtool-libs: libmailtls.a and the .la's dependency_libs.
    run([*lt, "--mode=link", *compiler, "-static-libtool-libs", "-o", "consumer-la-static",
         "consumer.lo", la], env=env, cwd=out)
    check_consumer(os.path.join(out, "consumer-la-static"), prefix, True)
    # 3. Plain -L/-l with -R, from a directory holding no .la file.
    nola = os.path.join(out, "nola")
    os.mkdir(nola)
    for f in os.listdir(prefix.lib):
        if f.startswith("libmailtls.so"):
            src = os.path.join(prefix.lib, f)
            if os.path.islink(src):
                os.symlink(os.readlink(src), os.path.join(nola, f))
            else:
                shutil.copy2(src, nola)
    run([*lt, "--mode=link", *compiler, "-o", "consumer-l", "consumer.lo",
         f"-L{nola}", "-lmailtls", f"-R{nola}"], env=env, cwd=out)
    check_consumer(os.path.join(out, "consumer-l"), prefix, False, from_dir=nola)
    prefix.remove()
    shutil.rmtree(out, ignore_errors=True)


# The programs under examples/ that have an install rule; install_rule_programs() reads
# the rules themselves, these names make sure that reading found them.
INSTALLED_PROGRAMS = {"tcpserver-ssl", "tcpclient-ssl", "qmail-remote", "tlsrpt-report"}


def install_rule_programs(build):
    """Names of the programs built under BUILD/examples that an install rule puts into
    the prefix, from the cmake_install.cmake files there."""
    examples = os.path.join(os.path.realpath(build), "examples") + os.sep
    names = set()
    for root, _, files in os.walk(examples):
        if "cmake_install.cmake" not in files:
            continue
        text = open(os.path.join(root, "cmake_install.cmake")).read()
        for rule in re.findall(r"file\(INSTALL\b[^)]*\bTYPE EXECUTABLE\b[^)]*\)", text):
            files_part = rule.split(" FILES ", 1)[1] if " FILES " in rule else ""
            for f in re.findall(r'"([^"]+)"', files_part):
                if os.path.realpath(f).startswith(examples):
                    names.add(os.path.basename(f))
    return names


def test_install(args):
    """What cmake --install puts into a prefix: exactly the library's files
    under include/ and the libdir, every program of examples/ that has an install
    rule under bin/, and programs that run from there."""
    prefix = Prefix(args)
    problems = []
    real = os.path.basename(os.path.realpath(os.path.join(prefix.lib, "libmailtls.so")))
    m = re.fullmatch(r"libmailtls\.so\.(\d+)\.\d+\.\d+", real)
    if not m:
        raise Failure(f"libmailtls.so points to {real}, not libmailtls.so.N.A.R")
    want = {os.path.join(args.includedir, "mailtls.h")}
    lib = args.libdir
    want |= {os.path.join(lib, f) for f in (
        "libmailtls.so", f"libmailtls.so.{m.group(1)}", real, "libmailtls.a", "libmailtls.la",
        "pkgconfig/mailtls.pc", "cmake/mailtls/mailtlsConfig.cmake",
        "cmake/mailtls/mailtlsConfigVersion.cmake", "cmake/mailtls/mailtlsTargets.cmake")}
    have = set()
    for root, _, files in os.walk(prefix.dir):
        for f in files:
            have.add(os.path.relpath(os.path.join(root, f), prefix.dir))
    ours = {f for f in have if f.startswith(args.includedir + "/") or f.startswith(lib + "/")}
    ours = {f for f in ours if not re.fullmatch(
        re.escape(lib) + r"/cmake/mailtls/mailtlsTargets-[a-z]+\.cmake", f)
        and not re.match(r"lib/python3[^/]*/", f)}   # the Python bindings, if installed
    if want - have:
        problems.append(f"not installed: {' '.join(sorted(want - have))}")
    if ours - want:
        problems.append(f"installed but not part of the library: {' '.join(sorted(ours - want))}")
    # Installed programs: they find libmailtls in the prefix (by LD_LIBRARY_PATH
    # here; by ldconfig or an rpath in real installations), load no OpenSSL,
    # and keep no path into the build tree.
    build = os.path.realpath(args.build)
    progs = sorted(f for f in have if f.startswith("bin/"))
    ruled = install_rule_programs(args.build)
    if INSTALLED_PROGRAMS - ruled:
        problems.append(f"no install rule found under {args.build}/examples for "
                        f"{' '.join(sorted(INSTALLED_PROGRAMS - ruled))}")
    for name in sorted(ruled):
        if f"bin/{name}" not in have:
            problems.append(f"{name} has an install rule but is not installed as bin/{name}")
    for f in progs:
        before = len(problems)
        path = os.path.join(prefix.dir, f)
        dyn, _ = run(["readelf", "-d", "-W", path], quiet=True)
        if build in dyn:
            problems.append(f"{f} keeps a path into the build tree: {dyn.strip()}")
        env = clean_env(LD_LIBRARY_PATH=prefix.lib)
        ldd, _ = run(["ldd", path], env=env, quiet=True)
        if "not found" in ldd:
            problems.append(f"{f}: a library is not found: {ldd.strip()}")
        if re.search(r"\blib(?:ssl|crypto)\.so\.(?:3|1\.1)\b", ldd):
            problems.append(f"{f} loads OpenSSL")
        if "libmailtls" in ldd and os.path.realpath(prefix.lib) not in \
                {os.path.dirname(os.path.realpath(p)) for p in re.findall(r"=> (\S*libmailtls\S*)", ldd)}:
            problems.append(f"{f} does not take libmailtls from {prefix.lib}: {ldd.strip()}")
        # Started without arguments, it must at least get past the loader.
        try:
            r = subprocess.run([path], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=10)
            if r.returncode == 127 or "error while loading shared libraries" in r.stderr:
                problems.append(f"{f} does not start: {r.stderr.strip()}")
        except subprocess.TimeoutExpired:
            pass
        log(f"installed program {f}: {'ok' if len(problems) == before else 'BAD'}")
    if problems:
        raise Failure("; ".join(problems))
    log(f"ok: the prefix holds exactly the library's {len(want)} files under {args.includedir}/ "
        f"and {lib}/, and {len(progs)} programs that resolve from it")
    prefix.remove()


def header_exports(path):
    """The function names declared with MAILTLS_EXPORT in mailtls.h."""
    text = open(path).read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"^\s*#.*$", " ", text, flags=re.M)
    names = set()
    for decl in re.findall(r"\bMAILTLS_EXPORT\b([^;]*);", text):
        m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", decl)
        if not m:
            raise Failure(f"cannot read the MAILTLS_EXPORT declaration: {decl.strip()}")
        names.add(m.group(1))
    return names


def list_names(path):
    names = set()
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(line)
    return names


def test_symbols(args):
    out, _ = run(["nm", "-D", "--defined-only", args.lib], quiet=True)
    exported = set()
    versions = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        kind, name = parts[1], parts[2]
        base, _, ver = name.partition("@")
        ver = ver.lstrip("@")
        if kind == "A" and not ver:
            versions.add(base)          # the version node itself
            continue
        exported.add(base)
        if ver:
            versions.add(ver)
    listed = list_names(args.list)
    declared = header_exports(args.header)
    problems = []
    for what, names in (("exported but not in symbols.list", exported - listed),
                        ("in symbols.list but not exported", listed - exported),
                        ("in symbols.list but not MAILTLS_EXPORT in mailtls.h", listed - declared),
                        ("MAILTLS_EXPORT in mailtls.h but not in symbols.list", declared - listed)):
        if names:
            problems.append(f"{what}: {' '.join(sorted(names))}")
    bad_versions = {v for v in versions if not re.fullmatch(r"MAILTLS_\d+", v)}
    if bad_versions:
        problems.append(f"unexpected symbol versions: {' '.join(sorted(bad_versions))}")
    if args.archive:
        # A program linked to libmailtls.a sees every global symbol of the
        # archive: besides the API, only the internal mt_ prefix is allowed.
        out, _ = run(["nm", "-g", "--defined-only", args.archive], quiet=True)
        stray = set()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2] not in listed and not parts[2].startswith("mt_"):
                stray.add(parts[2])
        if stray:
            problems.append(f"global symbols of libmailtls.a outside the API and the mt_ "
                            f"prefix: {' '.join(sorted(stray))}")
        else:
            log("ok: every other global symbol of libmailtls.a has the mt_ prefix")
    if problems:
        raise Failure("; ".join(problems))
    log(f"ok: {len(exported)} exported symbols = symbols.list = MAILTLS_EXPORT in mailtls.h"
        f" (version {' '.join(sorted(versions)) or 'none'})")


def test_soname(args):
    text = open(args.cmakelists).read()
    nums = {}
    for k in ("CURRENT", "REVISION", "AGE"):
        m = re.search(rf"set\(MAILTLS_LT_{k}\s+(\d+)\)", text)
        if not m:
            raise Failure(f"no MAILTLS_LT_{k} in {args.cmakelists}")
        nums[k] = int(m.group(1))
    c, r, a = nums["CURRENT"], nums["REVISION"], nums["AGE"]
    if a > c:
        raise Failure(f"libtool numbers {c}:{r}:{a}: age is greater than current")
    want_soname = f"libmailtls.so.{c - a}"
    want_file = f"libmailtls.so.{c - a}.{a}.{r}"
    out, _ = run(["readelf", "-d", args.lib])
    m = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", out)
    if not m:
        raise Failure(f"{args.lib} has no SONAME")
    if m.group(1) != want_soname:
        raise Failure(f"SONAME is {m.group(1)}, libtool {c}:{r}:{a} says {want_soname}")
    real = os.path.basename(os.path.realpath(args.lib))
    if real != want_file:
        raise Failure(f"library file is {real}, libtool {c}:{r}:{a} says {want_file}")
    libdir = os.path.dirname(args.lib)
    link = os.path.join(libdir, want_soname)
    if not os.path.islink(link) or os.path.basename(os.path.realpath(link)) != want_file:
        raise Failure(f"{link} is not a symbolic link to {want_file}")
    log(f"ok: SONAME {want_soname}, file {want_file} (libtool {c}:{r}:{a})")


def main():
    ap = argparse.ArgumentParser(prog=PROG)
    ap.add_argument("test", choices=("install", "pkgconfig", "cmake", "libtool", "symbols", "soname"))
    ap.add_argument("--build", help="the build tree to install")
    ap.add_argument("--src", help="tests/packaging in the source tree")
    ap.add_argument("--work", help="scratch directory for prefixes and builds")
    ap.add_argument("--libdir", default="lib", help="CMAKE_INSTALL_LIBDIR (relative)")
    ap.add_argument("--includedir", default="include", help="CMAKE_INSTALL_INCLUDEDIR (relative)")
    ap.add_argument("--lib", help="libmailtls.so of the build tree")
    ap.add_argument("--list", help="libmailtls/symbols.list")
    ap.add_argument("--header", help="libmailtls/include/mailtls.h")
    ap.add_argument("--archive", help="libmailtls.a (symbols: also check its global names)")
    ap.add_argument("--cmakelists", help="libmailtls/CMakeLists.txt")
    args = ap.parse_args()
    need = {"install": ("build", "work"), "pkgconfig": ("build", "src", "work"), "cmake": ("build", "src", "work"),
            "libtool": ("build", "src", "work"), "symbols": ("lib", "list", "header"),
            "soname": ("lib", "cmakelists")}[args.test]
    missing = [n for n in need if not getattr(args, n)]
    if missing:
        ap.error("missing " + " ".join("--" + n for n in missing))
    try:
        globals()["test_" + args.test](args)
    except (Failure, OSError) as e:
        log(f"FAIL: {args.test}: {e}")
        return 1
    log(f"PASS: {args.test}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
