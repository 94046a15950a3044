"""The PROXY protocol header a load balancer sends before the client's bytes."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Tuple, Union

from . import mailtls_raw as _raw
from .errors import make_error


@dataclass
class ProxyHeader:
    """What a PROXY protocol header says (struct mailtls_proxyproto): its
    version (1, 2), whether it names no client (``local``: the connection's own
    addresses stand), and the client's (src) and balancer's (dst) addresses."""

    length: int
    version: int
    local: bool
    v6: bool
    srcip: str
    srcport: int
    dstip: str
    dstport: int


def _header(n: int, o: Any) -> ProxyHeader:
    return ProxyHeader(n, o.version, bool(o.local), bool(o.v6), o.srcip, o.srcport, o.dstip, o.dstport)


def proxyproto_parse(data: bytes) -> Tuple[Optional[ProxyHeader], int]:
    """Looks at the start of a connection (mailtls_proxyproto_parse): returns
    (header, 0) for a whole header (``header.length`` bytes of |data|), or
    (None, need) when more bytes are needed (|need| of them certainly belong to
    it).  Raises ProtocolError when |data| cannot begin a header."""
    o = _raw.mailtls_proxyproto()
    rc, need = _raw.mt_proxyproto_parse(data, o)
    if rc < 0:
        raise make_error(o.errcode or _raw.MAILTLS_E_PROTOCOL, o.error or "not a PROXY protocol header")
    if rc == 0:
        return None, need
    return _header(rc, o), 0


def proxyproto_read(transport: Union[int, Any], timeout: float = 10) -> ProxyHeader:
    """Reads one header from a socket or descriptor within |timeout| seconds
    (without the GIL), never a byte past it.  Raises ProtocolError, TimeoutError,
    SystemCallError... (drop the connection then)."""
    fd = transport if isinstance(transport, int) else transport.fileno()
    o = _raw.mailtls_proxyproto()
    n = _raw.mailtls_proxyproto_read(fd, max(0, math.ceil(timeout)), o)
    if n < 0:
        raise make_error(o.errcode, o.error, _raw.mt_errno())
    return _header(n, o)
