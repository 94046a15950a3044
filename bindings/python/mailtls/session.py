"""mailtls.Session: one TLS session over a socket, descriptors, or memory."""
from __future__ import annotations

import math
import os
import select
import weakref
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from . import mailtls_raw as _raw
from ._util import Closing
from ._util import env_block as _env_dict
from .config import Config
from .errors import (Error, StartTLSUnavailable, UsageError, VerifyHookError, WantRead, WantWrite,
                     make_error, want_error)

Bytes = Union[bytes, bytearray, memoryview]
#: What a Session runs over: a socket (anything with fileno()), a descriptor, a pair
#: (read descriptor, write descriptor), or None for the memory transport.
Transport = Union[None, int, Tuple[int, int], Any]

SMTP: int = _raw.MAILTLS_SMTP
POP3: int = _raw.MAILTLS_POP3
IMAP: int = _raw.MAILTLS_IMAP
_PROTOS = {"smtp": SMTP, "pop3": POP3, "imap": IMAP}

RELAY_DONE: int = _raw.MAILTLS_RELAY_DONE
RELAY_IDLE: int = _raw.MAILTLS_RELAY_IDLE
RELAY_ERROR: int = _raw.MAILTLS_RELAY_ERROR

_UNSET: Any = object()


def _secs(timeout: Optional[float]) -> int:
    """A Python timeout in seconds as the library's whole seconds (rounded up)."""
    return -1 if timeout is None else max(0, math.ceil(timeout))


def proto_number(proto: Union[int, str]) -> int:
    """SMTP, POP3 or IMAP from an int or a name ("smtp", "pop3", "imap")."""
    if isinstance(proto, str):
        try:
            return _PROTOS[proto.lower()]
        except KeyError:
            raise ValueError(f"unknown protocol {proto!r}") from None
    return proto


@dataclass
class RelayResult:
    """What mailtls_relay reports: why it ended (RELAY_DONE, RELAY_IDLE,
    RELAY_ERROR), whether each side ended and how, and the bytes moved."""

    reason: int
    tls_eof: bool
    tls_clean: bool
    plain_eof: bool
    tls_to_plain: int
    plain_to_tls: int


@dataclass(frozen=True)
class TLSA:
    """One TLSA record (usage, selector, matching type, data), as DNS gave it."""

    usage: int
    selector: int
    mtype: int
    data: bytes

    @classmethod
    def parse(cls, text: Union[str, bytes]) -> "TLSA":
        """A record from its presentation form, "3 1 1 <hex>" (mailtls_tlsa_parse);
        ValueError when it is not one."""
        r = _raw.mt_tlsa_parse(text)
        if r[0] < 0:
            raise ValueError(f"not a TLSA record: {text!r} ({os.strerror(r[1])})")
        return cls(*r)


@dataclass
class DaneResult:
    """mailtls_dane_result: the DANE status (DANE_OFF, DANE_UNCHECKED,
    DANE_UNUSABLE, DANE_MATCHED, DANE_FAILED) and, when MATCHED, which record
    (its index and fields) matched the certificate at which chain depth."""

    status: int
    record: int
    usage: int
    selector: int
    mtype: int
    depth: int


class StartTLSInfo:
    """What a STARTTLS client learned in the plaintext phase (struct
    mailtls_starttls_info): reply codes and texts (CR LF as "\\n")."""

    def __init__(self) -> None:
        self._raw = _raw.mailtls_starttls_info()

    def _text(self, which: str) -> str:
        return _raw.mt_info_text(self._raw, which).decode("utf-8", "replace")

    @property
    def greeting_code(self) -> int:
        """The greeting's code (SMTP's three digits; 200/400/500 for POP3 and IMAP)."""
        return self._raw.greeting_code

    @property
    def greeting(self) -> str:
        """The greeting's text."""
        return self._text("greeting")

    @property
    def ehlo_code(self) -> int:
        """SMTP: the EHLO reply's code; POP3: CAPA's; IMAP: CAPABILITY's."""
        return self._raw.ehlo_code

    @property
    def ehlo(self) -> str:
        """The text of the EHLO (CAPA, CAPABILITY) reply."""
        return self._text("ehlo")

    @property
    def used_helo(self) -> bool:
        """SMTP: EHLO was refused and HELO used."""
        return bool(self._raw.used_helo)

    @property
    def capabilities(self) -> List[str]:
        """The capabilities, one per item (SMTP EHLO keywords with parameters)."""
        return [c for c in self._text("capabilities").split("\n") if c]

    @property
    def starttls_code(self) -> int:
        """The code of the reply to STARTTLS (STLS), 0 when it was not sent."""
        return self._raw.starttls_code

    @property
    def starttls_reply(self) -> str:
        """The text of the reply to STARTTLS (STLS)."""
        return self._text("starttls_reply")

    def has_capability(self, keyword: str) -> bool:
        """SMTP: whether the EHLO keywords hold |keyword| (case-insensitive)."""
        return bool(_raw.mailtls_smtp_has_capability(self._raw, keyword))

    def __repr__(self) -> str:
        return (f"StartTLSInfo(greeting_code={self.greeting_code}, ehlo_code={self.ehlo_code}, "
                f"starttls_code={self.starttls_code}, capabilities={self.capabilities!r})")


class Session(Closing):
    """A TLS session (struct mailtls) in the server or the client role.

    |transport|: a socket object (or anything with fileno()), a descriptor, a
    pair (rfd, wfd), or None for the memory transport (feed/drain).  The
    session never changes the descriptors' flags: a blocking descriptor makes
    blocking calls, a non-blocking one raises WantRead/WantWrite.
    |timeout|: None waits as long as it takes; a number makes every call use
    the library's deadline calls (whole seconds, rounded up).  For a socket it
    defaults to the socket's own timeout (0.0, a non-blocking socket, means
    WantRead/WantWrite).  |own|: close() also closes the transport (the socket
    or descriptors); by default the caller keeps them.  Calls that wait run
    without the GIL.  Use one session from one thread at a time."""

    _live: "weakref.WeakValueDictionary[int, Session]" = weakref.WeakValueDictionary()

    def __init__(self, config: Config, transport: Transport = None, *, server_side: bool = False,
                 server_hostname: Optional[str] = None, own: bool = False,
                 timeout: Optional[float] = _UNSET) -> None:
        self._ptr: Any = None
        self._config = config
        self._transport = transport
        self._own = own
        self._hook_exc: Optional[BaseException] = None
        self.starttls_info: Optional[StartTLSInfo] = None
        self.memory = transport is None
        if timeout is _UNSET:
            timeout = None
            if hasattr(transport, "gettimeout"):
                t = transport.gettimeout()
                timeout = None if t == 0.0 else t
        self.timeout: Optional[float] = timeout
        if transport is None:
            rfd = wfd = -1
        elif isinstance(transport, int):
            rfd = wfd = transport
        elif isinstance(transport, tuple):
            rfd, wfd = transport
        else:
            rfd = wfd = transport.fileno()
        if self.memory:
            ptr = (_raw.mailtls_server_mem(config.raw) if server_side
                   else _raw.mailtls_client_mem(config.raw, server_hostname))
        else:
            ptr = (_raw.mailtls_server(config.raw, rfd, wfd) if server_side
                   else _raw.mailtls_client(config.raw, rfd, wfd, server_hostname))
        if ptr is None:
            err = _raw.mt_errno()
            raise OSError(err, os.strerror(err))
        self._ptr = ptr
        self.server_side = server_side
        Session._live[int(ptr)] = self

    # -- constructors by role ----------------------------------------------------------

    @classmethod
    def server(cls, config: Config, transport: Transport = None, **kw: Any) -> "Session":
        """A server session (mailtls_server, or mailtls_server_mem for None)."""
        return cls(config, transport, server_side=True, **kw)

    @classmethod
    def client(cls, config: Config, transport: Transport = None, servername: Optional[str] = None,
               **kw: Any) -> "Session":
        """A client session sending |servername| as SNI and verifying it
        (mailtls_client, or mailtls_client_mem for None)."""
        return cls(config, transport, server_side=False, server_hostname=servername, **kw)

    @classmethod
    def _by_pointer(cls, ptr: Any) -> Optional["Session"]:
        return cls._live.get(int(ptr))

    # -- errors --------------------------------------------------------------------

    @property
    def raw(self) -> Any:
        """The raw ``struct mailtls *`` (for mailtls.mailtls_raw)."""
        if self._ptr is None:
            raise UsageError("the session is closed")
        return self._ptr

    def _error(self, rc: int, err: int) -> Error:
        w = want_error(rc)
        if w is not None:
            return w
        exc = make_error(_raw.mailtls_errcode(self._ptr), _raw.mailtls_error(self._ptr), err)
        if isinstance(exc, VerifyHookError) and self._hook_exc is not None:
            exc.__cause__, self._hook_exc = self._hook_exc, None
        return exc

    def _check(self, rc: int, err: Optional[int] = None) -> int:
        if rc < 0:
            raise self._error(rc, _raw.mt_errno() if err is None else err)
        return rc

    @property
    def error(self) -> str:
        """The message of the session's last error ("" when none)."""
        return _raw.mailtls_error(self.raw)

    @property
    def errcode(self) -> int:
        """The category of the session's last error (MAILTLS_E_*)."""
        return _raw.mailtls_errcode(self.raw)

    # -- the session ----------------------------------------------------------------

    def handshake(self) -> None:
        """Runs the handshake to its end (optional: read, write and relay start it)."""
        if self.timeout is None or self.memory:
            self._check(_raw.mailtls_handshake(self.raw))
        else:
            self._check(_raw.mailtls_handshake_timeout(self.raw, _secs(self.timeout)))

    do_handshake = handshake

    def read(self, n: int = 16384) -> bytes:
        """Up to |n| decrypted bytes; b"" once the peer sent close_notify.  A peer
        gone without close_notify raises TruncatedError."""
        rc, data, err = _raw.mt_read(self.raw, n, -1 if self.memory else _secs(self.timeout))
        self._check(rc, err)
        return data

    def recv(self, n: int = 16384) -> bytes:
        """The same as read()."""
        return self.read(n)

    def write(self, data: Bytes) -> int:
        """Encrypts and sends |data|; returns how many bytes were sent (all of them on
        a blocking descriptor or with a timeout; maybe fewer on a non-blocking one)."""
        rc, err = _raw.mt_write(self.raw, data, -1 if self.memory else _secs(self.timeout))
        return self._check(rc, err)

    def send(self, data: Bytes) -> int:
        """The same as write()."""
        return self.write(data)

    def sendall(self, data: Bytes) -> None:
        """Sends all of |data|.  On a non-blocking descriptor it waits (with poll,
        without the GIL) whenever the library wants to read or write."""
        view = memoryview(data).cast("B")
        while len(view):
            try:
                n = self.write(view)
            except (WantRead, WantWrite) as w:
                if self.memory:
                    raise
                self._wait(w)
                continue
            view = view[n:]

    def _wait(self, w: Error) -> None:
        rfd, wfd = self.read_fd, self.write_fd
        fd, ev = (rfd, select.POLLIN) if isinstance(w, WantRead) else (wfd, select.POLLOUT)
        p = select.poll()
        p.register(fd, ev)
        p.poll(None if self.timeout is None else max(0, self.timeout) * 1000)

    def close_notify(self) -> None:
        """Sends close_notify (once); does not wait for the peer's, closes nothing."""
        if self.timeout is None or self.memory:
            self._check(_raw.mailtls_close(self.raw))
        else:
            self._check(_raw.mailtls_close_timeout(self.raw, _secs(self.timeout)))

    def close(self) -> None:
        """Sends close_notify when it can (errors are ignored: the connection is
        ending), frees the session, and closes the transport if the session owns it.
        Safe to call again."""
        ptr = self._ptr
        if ptr is None:
            return
        try:
            if self.timeout is None or self.memory:
                _raw.mailtls_close(ptr)
            else:
                _raw.mailtls_close_timeout(ptr, _secs(self.timeout))
        finally:
            self._free()

    def _free(self) -> None:
        ptr, self._ptr = self._ptr, None
        if ptr is None:
            return
        Session._live.pop(int(ptr), None)
        _raw.mailtls_free(ptr)
        if self._own:
            t = self._transport
            if isinstance(t, int):
                os.close(t)
            elif isinstance(t, tuple):
                os.close(t[0])
                if t[1] != t[0]:
                    os.close(t[1])
            elif t is not None:
                t.close()

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._ptr is None

    def __del__(self) -> None:
        # the finalizer frees without close_notify: a session dropped unclosed ends as a
        # vanished peer would (TruncatedError on the other side)
        try:
            self._free()
        except Exception:  # noqa: BLE001 -- at interpreter exit the raw module may be gone
            pass

    def pending(self) -> int:
        """Decrypted bytes waiting inside the library (read them before polling)."""
        return _raw.mailtls_pending(self.raw)

    @property
    def peer_closed(self) -> bool:
        """True once the peer's close_notify has been read."""
        return bool(_raw.mailtls_peer_closed(self.raw))

    @property
    def read_fd(self) -> int:
        """The read descriptor (-1 for a memory session)."""
        return _raw.mailtls_read_fd(self.raw)

    @property
    def write_fd(self) -> int:
        """The write descriptor (-1 for a memory session)."""
        return _raw.mailtls_write_fd(self.raw)

    def fileno(self) -> int:
        """The read descriptor, for select() and poll()."""
        return self.read_fd

    def release_config(self) -> None:
        """After the handshake: drops the session's reference to its configuration
        (with the last reference its keys are freed and cleansed)."""
        self._check(_raw.mailtls_release_config(self.raw))

    def set_verify_names(self, names: Iterable[str]) -> None:
        """Client, before the handshake: the names the peer certificate is checked
        against (any one must match); an empty list restores the servername."""
        self._check(_raw.mt_set_verify_names(self.raw, list(names)))

    def set_dane(self, records: Iterable[TLSA], names: Iterable[str] = ()) -> int:
        """Client, before the handshake, once: verification by these (DNSSEC-validated)
        TLSA records instead of the CA, checking |names| under DANE-TA (default: the
        servername).  Returns the number of usable records."""
        recs = [(r.usage, r.selector, r.mtype, bytes(r.data)) for r in records]
        return self._check(_raw.mt_set_dane(self.raw, recs, list(names)))

    @property
    def dane_result(self) -> DaneResult:
        """The DANE outcome of the session (see DaneResult)."""
        out = _raw.mailtls_dane_result_t()
        status = _raw.mailtls_dane_result(self.raw, out)
        return DaneResult(status, out.record, out.usage, out.selector, out.mtype, out.depth)

    def set_verify_error(self, message: str) -> None:
        """From a verification hook: the message reported when the hook refuses."""
        _raw.mailtls_set_verify_error(self.raw, message)

    def get_session(self) -> Optional[bytes]:
        """Client, after the handshake: the resumable session (secret bytes), or None."""
        r = _raw.mt_get_session(self.raw)
        if isinstance(r, int):
            self._check(r)
        return r

    def set_session(self, data: Bytes) -> None:
        """Client, before the handshake: offer a session saved by get_session()."""
        self._check(_raw.mt_set_session(self.raw, data))

    # -- the memory transport ------------------------------------------------------

    def feed(self, data: Bytes) -> int:
        """Memory session: bytes from the peer."""
        return _raw.mt_mem_feed(self.raw, data)

    def feed_eof(self) -> None:
        """Memory session: the peer's bytes end here."""
        _raw.mailtls_mem_feed_eof(self.raw)

    def drain(self, n: Optional[int] = None) -> bytes:
        """Memory session: up to |n| (None: all) bytes waiting for the peer."""
        if n is not None:
            return _raw.mt_mem_drain(self.raw, n)
        parts = []
        while True:
            b = _raw.mt_mem_drain(self.raw, 65536)
            if not b:
                return b"".join(parts)
            parts.append(b)

    # -- the relay -----------------------------------------------------------------

    def relay(self, plain_rfd: Union[int, Any], plain_wfd: Union[int, Any, None] = None, *,
              own_fds: bool = False, idle: float = 0) -> RelayResult:
        """Moves bytes both ways between this session and a plaintext pair (a socket,
        or descriptors; |plain_wfd| None: the same as |plain_rfd|) until both
        directions end, without the GIL.  |idle| > 0 ends it after that many idle
        seconds; |own_fds| lets it close the plaintext descriptors.  Returns a
        RelayResult; on error raises, with the RelayResult as the exception's
        ``relay_result``."""
        rfd = plain_rfd if isinstance(plain_rfd, int) else plain_rfd.fileno()
        if plain_wfd is None:
            wfd = rfd
        else:
            wfd = plain_wfd if isinstance(plain_wfd, int) else plain_wfd.fileno()
        out = _raw.mailtls_relay_result()
        rc = _raw.mailtls_relay(self.raw, rfd, wfd, _raw.MAILTLS_RELAY_OWN_FDS if own_fds else 0,
                                _secs(idle) if idle else 0, out)
        err = _raw.mt_errno()
        res = RelayResult(out.reason, bool(out.tls_eof), bool(out.tls_clean), bool(out.plain_eof),
                          int(out.tls_to_plain), int(out.plain_to_tls))
        if rc < 0:
            exc = self._error(rc, err)
            exc.relay_result = res  # type: ignore[attr-defined]
            raise exc
        return res

    # -- STARTTLS, client side -----------------------------------------------------

    def starttls(self, proto: Union[int, str], ehlo_name: str = "localhost",
                 timeout: Optional[float] = None) -> StartTLSInfo:
        """Client: the plaintext phase of |proto| (SMTP, POP3, IMAP or their names)
        on the session's descriptors, then the handshake; each step within |timeout|
        seconds (default: the session's timeout, else 60).  Returns what was learned
        (also kept as ``starttls_info``).  Raises StartTLSUnavailable when the server
        did not offer STARTTLS or refused it (the connection may go on in plaintext),
        ProtocolError / InjectionError / ... on failure."""
        t = timeout if timeout is not None else (self.timeout if self.timeout is not None else 60)
        info = StartTLSInfo()
        self.starttls_info = info
        rc = _raw.mailtls_starttls_client(self.raw, proto_number(proto), ehlo_name, _secs(t), info._raw)
        self._check(rc)
        if rc != _raw.MAILTLS_STARTTLS_DONE:
            refused = rc == _raw.MAILTLS_STARTTLS_REFUSED
            exc = StartTLSUnavailable("STARTTLS refused by the server: " + info.starttls_reply.strip()
                                      if refused else "the server does not offer STARTTLS")
            exc.message = str(exc.args[0])
            exc.refused = refused
            exc.info = info
            raise exc
        return info

    def smtp_ehlo(self, name: str = "localhost", timeout: Optional[float] = None) -> int:
        """Client, SMTP after STARTTLS: sends EHLO |name| under TLS and returns the
        reply code; ``starttls_info`` then holds the new capabilities."""
        if self.starttls_info is None:
            self.starttls_info = StartTLSInfo()
        t = timeout if timeout is not None else (self.timeout if self.timeout is not None else 60)
        return self._check(_raw.mailtls_smtp_ehlo(self.raw, name, _secs(t), self.starttls_info._raw))

    # -- facts ----------------------------------------------------------------------

    @property
    def protocol(self) -> Optional[str]:
        """"TLSv1.3", "TLSv1.2"...; None before the handshake."""
        return _raw.mailtls_protocol(self.raw)

    @property
    def cipher(self) -> Optional[str]:
        """The cipher suite's IANA name."""
        return _raw.mailtls_cipher(self.raw)

    @property
    def cipher_bits(self) -> int:
        """Symmetric key bits."""
        return _raw.mailtls_cipher_bits(self.raw)

    @property
    def servername(self) -> Optional[str]:
        """SNI sent (client) or received (server)."""
        return _raw.mailtls_servername(self.raw)

    @property
    def session_reused(self) -> bool:
        """True when the session was resumed."""
        return bool(_raw.mailtls_session_reused(self.raw))

    @property
    def peer_verified(self) -> bool:
        """True when the peer's certificate passed verification (chain and names, a
        pin, or the hook)."""
        return bool(_raw.mailtls_peer_verified(self.raw))

    @property
    def peer_verify_result(self) -> int:
        """MAILTLS_E_NONE when verified, else the category verification failed with."""
        return _raw.mailtls_peer_verify_result(self.raw)

    @property
    def peer_has_cert(self) -> bool:
        """True when the peer sent a certificate."""
        return bool(_raw.mailtls_peer_has_cert(self.raw))

    @property
    def peer_subject(self) -> Optional[str]:
        """The peer certificate's subject (RFC 4514, escaped)."""
        return _raw.mailtls_peer_subject(self.raw)

    @property
    def peer_issuer(self) -> Optional[str]:
        """The peer certificate's issuer (RFC 4514, escaped)."""
        return _raw.mailtls_peer_issuer(self.raw)

    @property
    def peer_cn(self) -> Optional[str]:
        """The peer certificate's common name (escaped)."""
        return _raw.mailtls_peer_cn(self.raw)

    @property
    def peer_fingerprint(self) -> Optional[str]:
        """"SHA256:<64 lowercase hex>" of the peer certificate."""
        return _raw.mailtls_peer_fingerprint(self.raw)

    @property
    def peer_serial(self) -> Optional[str]:
        """The peer certificate's serial number (uppercase hex)."""
        return _raw.mailtls_peer_serial(self.raw)

    @property
    def peer_not_before(self) -> Optional[str]:
        """Start of the peer certificate's validity ("Jan  2 03:04:05 2026 GMT")."""
        return _raw.mailtls_peer_not_before(self.raw)

    @property
    def peer_not_after(self) -> Optional[str]:
        """End of the peer certificate's validity."""
        return _raw.mailtls_peer_not_after(self.raw)

    @property
    def env_block(self) -> bytes:
        """The facts as the UCSPI-TLS block "NAME=value\\0...\\0\\0" (mailtls_env)."""
        b = _raw.mt_env(self.raw)
        if b is None:
            self._check(-1)
        return b

    @property
    def env(self) -> Dict[str, str]:
        """The facts as environment variables (SSL_PROTOCOL, SSL_CIPHER, ...)."""
        return _env_dict(self.env_block)

    def __repr__(self) -> str:
        if self._ptr is None:
            return "<mailtls.Session closed>"
        role = "server" if self.server_side else "client"
        return f"<mailtls.Session {role} fd={self.read_fd}/{self.write_fd} protocol={self.protocol}>"

