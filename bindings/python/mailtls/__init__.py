"""mailtls: Python bindings of libmailtls, TLS on file descriptors for mail programs.

The raw layer, :mod:`mailtls.mailtls_raw`, is made by SWIG from mailtls.h and
follows it one to one; this package is the API meant for use:

- :class:`Config`: certificates, keys, trust anchors, verification, protocols;
- :class:`Session`: one TLS session (server or client role) over a socket, a
  descriptor, a pair of descriptors, or memory (feed/drain), with handshake,
  read/recv, write/send/sendall, close, pending, the facts and relay;
- STARTTLS clients: :func:`smtp_starttls`, :func:`pop3_starttls`,
  :func:`imap_starttls` (and :meth:`Session.starttls`);
- the server side: :class:`UcspiTls` (UCSPI-TLS) and :class:`Proxy` (STARTTLS
  in front of a plaintext program);
- exceptions: :class:`Error` and one subclass per library category;
- :mod:`mailtls.testing`: a throwaway CA and a loopback mail server for tests.

Calls that wait on a descriptor release the GIL.  Python's own :mod:`ssl`
(OpenSSL) may be used in the same process: extension modules are loaded
RTLD_LOCAL, so OpenSSL's and BoringSSL's equal names do not meet.
"""
from __future__ import annotations

from typing import Any, Optional

from . import mailtls_raw
from . import mailtls_raw as _raw
from .config import (TLS1_0, TLS1_1, TLS1_2, TLS1_3, VERIFY_NONE, VERIFY_OPTIONAL, VERIFY_REQUIRE,
                     Config, VerifyHook)
from .errors import (ConfigError, Error, InjectionError, NoMemoryError, ProtocolError,
                     StartTLSUnavailable, SystemCallError, TimeoutError, TLSError, TruncatedError,
                     UsageError, VerifyError, VerifyExpiredError, VerifyHookError, VerifyNameError,
                     VerifyDaneError, VerifyNoCertError, VerifyPinError, VerifySelfSignedError, VerifyUntrustedError,
                     WantRead, WantWrite)
from .server import (PROXY_CHUNK, PROXY_CLOSE, PROXY_CONTINUE, PROXY_HIDE_AUTH, PROXY_REQUIRE_TLS,
                     PROXY_STARTTLS, PROXY_WAIT, Proxy, UcspiTls)
from .session import (IMAP, POP3, RELAY_DONE, RELAY_ERROR, RELAY_IDLE, SMTP, TLSA, DaneResult,
                      RelayResult, Session, StartTLSInfo, Transport)
from .proxyproto import ProxyHeader, proxyproto_parse, proxyproto_read

__version__: str = _raw.MAILTLS_VERSION_STRING

DANE_OFF: int = _raw.MAILTLS_DANE_OFF
DANE_UNCHECKED: int = _raw.MAILTLS_DANE_UNCHECKED
DANE_UNUSABLE: int = _raw.MAILTLS_DANE_UNUSABLE
DANE_MATCHED: int = _raw.MAILTLS_DANE_MATCHED
DANE_FAILED: int = _raw.MAILTLS_DANE_FAILED

__all__ = [
    "Config", "Session", "StartTLSInfo", "RelayResult", "TLSA", "DaneResult", "ProxyHeader",
    "proxyproto_parse", "proxyproto_read", "VerifyDaneError",
    "DANE_OFF", "DANE_UNCHECKED", "DANE_UNUSABLE", "DANE_MATCHED", "DANE_FAILED", "UcspiTls", "Proxy", "VerifyHook", "Transport",
    "Error", "WantRead", "WantWrite", "SystemCallError", "TLSError", "VerifyError", "VerifyUntrustedError",
    "VerifyNameError", "VerifyExpiredError", "VerifySelfSignedError", "VerifyPinError", "VerifyHookError",
    "VerifyNoCertError", "TruncatedError", "ProtocolError", "InjectionError", "TimeoutError", "UsageError",
    "ConfigError", "NoMemoryError", "StartTLSUnavailable",
    "VERIFY_NONE", "VERIFY_OPTIONAL", "VERIFY_REQUIRE", "TLS1_0", "TLS1_1", "TLS1_2", "TLS1_3",
    "SMTP", "POP3", "IMAP", "RELAY_DONE", "RELAY_IDLE", "RELAY_ERROR",
    "PROXY_REQUIRE_TLS", "PROXY_HIDE_AUTH", "PROXY_CONTINUE", "PROXY_WAIT", "PROXY_STARTTLS",
    "PROXY_CLOSE", "PROXY_CHUNK",
    "version", "escape", "errcode_name", "error_temporary", "errcode_is_verify",
    "wrap_server", "wrap_client", "smtp_starttls", "pop3_starttls", "imap_starttls", "mailtls_raw",
]


def version() -> str:
    """The version of the libmailtls actually loaded (mailtls_version)."""
    return _raw.mailtls_version()


def escape(data: bytes) -> str:
    """|data| escaped as an environment value: bytes below 0x20, 0x7f and above,
    and backslash become \\XX (mailtls_escape)."""
    return _raw.mt_escape(data)


def errcode_name(code: int) -> str:
    """The short stable name of an error category ("tls", "verify-name", ...)."""
    return _raw.mailtls_errcode_name(code)


def error_temporary(code: int) -> bool:
    """Whether a failure of category |code| should be retried later."""
    return bool(_raw.mailtls_error_temporary(code))


def errcode_is_verify(code: int) -> bool:
    """Whether |code| is one of the MAILTLS_E_VERIFY* categories."""
    return bool(_raw.mailtls_errcode_is_verify(code))


def _handshaken(s: Session, handshake: bool) -> Session:
    if handshake:
        try:
            s.handshake()
        except BaseException:
            s.close()
            raise
    return s


def wrap_server(transport: Transport, config: Config, *, own: bool = False,
                timeout: Optional[float] = None, handshake: bool = True) -> Session:
    """A server session on |transport| with its handshake done (unless |handshake|
    is False).  On failure the session is closed (the transport only if owned)."""
    return _handshaken(Session.server(config, transport, own=own, timeout=timeout), handshake)


def wrap_client(transport: Transport, config: Config, servername: Optional[str], *, own: bool = False,
                timeout: Optional[float] = None, handshake: bool = True) -> Session:
    """A client session on |transport| sending and verifying |servername|, with its
    handshake done (unless |handshake| is False)."""
    return _handshaken(Session.client(config, transport, servername, own=own, timeout=timeout), handshake)


def _starttls(proto: int, sock: Any, config: Config, servername: Optional[str], ehlo_name: str,
              timeout: float, own: bool) -> Session:
    s = Session.client(config, sock, servername, own=own, timeout=None)
    try:
        s.starttls(proto, ehlo_name, timeout)
    except BaseException:
        if own:
            s.close()
        else:
            s._free()      # no close_notify: TLS may never have started
        raise
    s.timeout = timeout
    return s


def smtp_starttls(sock: Any, config: Config, servername: Optional[str], ehlo_name: str = "localhost",
                  timeout: float = 60, own: bool = False) -> Session:
    """SMTP STARTTLS on a connected socket (or descriptor): greeting, EHLO,
    STARTTLS, handshake, each step within |timeout| seconds.  Returns the
    session (its ``starttls_info`` holds the plaintext replies); send EHLO again
    (:meth:`Session.smtp_ehlo`) before anything else.  Raises
    StartTLSUnavailable when the server does not offer or refuses it."""
    return _starttls(SMTP, sock, config, servername, ehlo_name, timeout, own)


def pop3_starttls(sock: Any, config: Config, servername: Optional[str], timeout: float = 60,
                  own: bool = False) -> Session:
    """POP3 STLS (RFC 2595) on a connected socket: greeting, CAPA, STLS, handshake."""
    return _starttls(POP3, sock, config, servername, "", timeout, own)


def imap_starttls(sock: Any, config: Config, servername: Optional[str], timeout: float = 60,
                  own: bool = False) -> Session:
    """IMAP STARTTLS (RFC 3501) on a connected socket: greeting, CAPABILITY,
    STARTTLS, handshake."""
    return _starttls(IMAP, sock, config, servername, "", timeout, own)
