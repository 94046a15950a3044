"""The package installed as users install it: by cmake --install into a prefix,
and by pip (--no-index --no-build-isolation, Debian's setuptools) into a venv
made with /usr/bin/python3 -m venv --system-site-packages, against the build
tree's libmailtls; each then imported from outside the build tree and made to
run a handshake over the memory transport."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import must_have

SRC = Path(os.environ.get("MAILTLS_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BUILD = os.environ.get("MAILTLS_BUILD_DIR")

CHECK = """
import mailtls, sys
assert mailtls.__file__.startswith(sys.argv[1]), mailtls.__file__
pki = sys.argv[2]
s = mailtls.Session.server(mailtls.Config(certfile=pki + "/server-ec.pem", keyfile=pki + "/server-ec.key"))
c = mailtls.Session.client(mailtls.Config(cafile=pki + "/ca.pem"), None, "localhost")
for _ in range(10):
    for a, b in ((c, s), (s, c)):
        try:
            a.handshake()
        except mailtls.WantRead:
            pass
        b.feed(a.drain())
assert c.peer_verified and s.protocol == c.protocol
import mailtls.testing
print("ok", mailtls.version(), c.protocol)
"""


def run(argv, **kw):
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=600, **kw)
    assert p.returncode == 0, f"{argv} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


@pytest.fixture
def build():
    must_have(BUILD and Path(BUILD, "CMakeCache.txt").is_file(), "MAILTLS_BUILD_DIR names no build tree")
    return Path(BUILD)


def clean_env():
    env = dict(os.environ)
    for k in ("PYTHONPATH", "LD_LIBRARY_PATH", "PYTHONHOME"):
        env.pop(k, None)
    return env


def test_cmake_install(build, tmp_path, pki):
    prefix = tmp_path / "prefix"
    run(["cmake", "--install", build, "--prefix", prefix])
    site = list(prefix.glob("lib/python3*/dist-packages"))
    assert len(site) == 1, list(prefix.rglob("mailtls"))
    pkg = site[0] / "mailtls"
    names = {p.name for p in pkg.iterdir()}
    assert {"__init__.py", "mailtls_raw.py", "testing.py", "py.typed"} <= names
    assert any(n.startswith("_mailtls_raw.") and n.endswith(".so") for n in names)
    env = clean_env()
    env["PYTHONPATH"] = str(site[0])
    out = run(["/usr/bin/python3", "-c", CHECK, pkg, pki], env=env, cwd=tmp_path)
    assert out.startswith("ok ")


def test_pip_install_into_venv(build, tmp_path, pki):
    must_have(shutil.which("swig"), "swig is not installed")
    venv = tmp_path / "venv"
    run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv])
    src = tmp_path / "src"                # pip builds in place: not in the checkout
    shutil.copytree(SRC / "bindings" / "python", src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    env = clean_env()
    env["MAILTLS_BUILD_DIR"] = str(build)
    env["MAILTLS_INCLUDE_DIR"] = str(SRC / "libmailtls" / "include")
    env["PIP_NO_INDEX"] = "1"
    run([venv / "bin" / "pip", "install", "--no-index", "--no-build-isolation", src], env=env, cwd=tmp_path)
    env = clean_env()
    site = run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
               env=env).strip()
    assert site.startswith(str(venv))
    out = run([venv / "bin" / "python", "-c", CHECK, site, pki], env=env, cwd=tmp_path)
    assert out.startswith("ok ")
