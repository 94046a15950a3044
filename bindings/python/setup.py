"""Builds the extension mailtls._mailtls_raw with SWIG (pyproject.toml has the rest).

libmailtls is found, in this order:
  MAILTLS_BUILD_DIR=<cmake build dir>  a built, uninstalled tree: the header from
      this checkout (or MAILTLS_INCLUDE_DIR), the library from <dir>/libmailtls;
  MAILTLS_INCLUDE_DIR and MAILTLS_LIB_DIR  explicit directories;
  pkg-config mailtls  an installed libmailtls (PKG_CONFIG_PATH=<prefix>/lib/pkgconfig
      for a prefix off pkg-config's path).
The module gets an rpath to the library's directory, so it loads without
LD_LIBRARY_PATH.  SWIG (swig) must be installed.
"""
import os
import shutil
import subprocess
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


def pkg_config(*args):
    return subprocess.run(["pkg-config", *args, "mailtls"], check=True, capture_output=True,
                          text=True).stdout.split()


def locate():
    """(include dirs, library dirs)."""
    build = os.environ.get("MAILTLS_BUILD_DIR")
    inc = os.environ.get("MAILTLS_INCLUDE_DIR")
    lib = os.environ.get("MAILTLS_LIB_DIR")
    if build:
        inc = inc or str(HERE.parent.parent / "libmailtls" / "include")
        lib = lib or str(Path(build).resolve() / "libmailtls")
    if inc and lib:
        return [inc], [lib]
    try:
        incs = [f[2:] for f in pkg_config("--cflags-only-I")]
        libs = [f[2:] for f in pkg_config("--libs-only-L")]
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit("setup.py: libmailtls not found: set MAILTLS_BUILD_DIR, or "
                         "MAILTLS_INCLUDE_DIR and MAILTLS_LIB_DIR, or make pkg-config find mailtls "
                         f"({e})") from None
    return incs, libs


class BuildSwig(build_ext):
    """Runs SWIG on mailtls_raw.i into the build directory; the generated
    mailtls_raw.py joins the package."""

    def build_extension(self, ext):
        incs, _ = locate()
        swig = shutil.which("swig") or shutil.which("swig4.0")
        if not swig:
            raise SystemExit("setup.py: swig is not installed (Debian: apt-get install swig)")
        tmp = Path(self.build_temp).resolve()
        tmp.mkdir(parents=True, exist_ok=True)
        wrap = tmp / "mailtls_raw_wrap.c"
        subprocess.run([swig, "-python", *[f"-I{i}" for i in incs], "-o", str(wrap), "-outdir", str(tmp),
                        str(HERE / "mailtls_raw.i")], check=True)
        ext.sources = [str(wrap)]
        super().build_extension(ext)
        pkgdir = Path(self.get_ext_fullpath(ext.name)).parent
        pkgdir.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp / "mailtls_raw.py", pkgdir / "mailtls_raw.py")


incs, libs = locate()
setup(
    ext_modules=[Extension("mailtls._mailtls_raw", sources=["mailtls_raw.i"], include_dirs=incs,
                           library_dirs=libs, libraries=["mailtls"], runtime_library_dirs=libs)],
    cmdclass={"build_ext": BuildSwig},
)
