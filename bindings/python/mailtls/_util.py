"""What the package's classes share: the lifetime of an object that frees a C
object, and the parsing of "NAME=value\\0...\\0" blocks."""
from __future__ import annotations

from typing import Any, Dict


class Closing:
    """close() is the subclass's; this gives the context manager and the
    finalizer that call it."""

    def close(self) -> None:
        """Frees what the object holds; safe to call again."""
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 -- at interpreter exit the raw module may be gone
            pass


def env_block(block: bytes) -> Dict[str, str]:
    """{"NAME": "value"} of an environment block "NAME=value\\0...\\0"."""
    out = {}
    for item in block.split(b"\0"):
        if item:
            k, _, v = item.partition(b"=")
            out[k.decode("ascii")] = v.decode("ascii")
    return out
