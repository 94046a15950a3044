"""Every function of mailtls.h reaches Python: each MAILTLS_EXPORT name is either
wrapped by SWIG as it is (mailtls.mailtls_raw) or stood for by a helper of
mailtls_raw.i, and the package calls it (through either).  Every public name of
the package has a docstring and every public function its type hints."""
import inspect
import os
import re
from pathlib import Path

import mailtls
import mailtls.testing

SRC = Path(os.environ.get("MAILTLS_SOURCE_DIR", Path(__file__).resolve().parents[2]))
HEADER = SRC / "libmailtls" / "include" / "mailtls.h"
IFACE = SRC / "bindings" / "python" / "mailtls_raw.i"
PKG = Path(mailtls.__file__).parent


def exported():
    text = HEADER.read_text()
    names = re.findall(r"MAILTLS_EXPORT[^;(]*?\b(mailtls_\w+)\s*\(", text, re.S)
    assert len(names) > 60
    return sorted(set(names))


def test_every_function_reaches_python():
    iface = IFACE.read_text()
    helpers = {m.group(1): m.group(0)
               for m in re.finditer(r"\n(?:PyObject \*|void |int )(mt_\w+)\(.*?\n}\n", iface, re.S)}
    pkg_src = "".join(p.read_text() for p in PKG.glob("*.py") if p.name != "mailtls_raw.py")
    raw = mailtls.mailtls_raw
    missing = []
    for name in exported():
        direct = hasattr(raw, name) and f"_raw.{name}(" in pkg_src
        via = [h for h, body in helpers.items() if re.search(rf"\b{name}\(", body) and f"_raw.{h}(" in pkg_src]
        # the trampolines and ucspitls fd accessors call some functions from C
        in_c = re.search(rf"\b{name}\(", iface.split("%inline")[0]) is not None
        if not (direct or via or in_c):
            missing.append(name)
    assert not missing, f"functions of mailtls.h the package does not reach: {missing}"


def public(cls):
    """The public members a class of the package defines itself (not those of
    builtins such as Exception.args)."""
    seen = {}
    for k in cls.__mro__:
        if k.__module__.startswith("mailtls"):
            for n, v in vars(k).items():
                if not n.startswith("_") and n not in seen and (callable(v) or isinstance(v, property)):
                    seen[n] = v
    return list(seen.items())


def test_docstrings_and_type_hints():
    undocumented, unhinted = [], []
    for modname, mod in (("mailtls", mailtls), ("mailtls.testing", mailtls.testing)):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if isinstance(obj, (int, str)) or name == "mailtls_raw" or getattr(obj, "__module__", "").startswith("typing"):
                continue
            if not (inspect.getdoc(obj) or "").strip():
                undocumented.append(f"{modname}.{name}")
            members = [(name, obj)] + (public(obj) if inspect.isclass(obj) else [])
            for mname, m in members:
                if inspect.isclass(obj) and mname != name:
                    if not (inspect.getdoc(m) or "").strip():
                        undocumented.append(f"{modname}.{name}.{mname}")
                f = m.fget if isinstance(m, property) else m
                if inspect.isfunction(f) or inspect.ismethod(f):
                    sig = inspect.signature(f)
                    if sig.return_annotation is inspect.Signature.empty and f.__name__ != "__init__":
                        unhinted.append(f"{modname}.{name}.{mname}")
                    for p in sig.parameters.values():
                        if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty \
                                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                            unhinted.append(f"{modname}.{name}.{mname}({p.name})")
    assert not undocumented, undocumented
    assert not unhinted, unhinted
