"""The exceptions of mailtls: one class per error category of libmailtls.

Every exception the package raises for a failed library call is a
:class:`Error`; its ``code`` is the library's category (``MAILTLS_E_*``),
``codename`` the library's short name for it, and ``temporary`` says whether
a mail program should retry later (qmail's "Z" / exit 111) or not.  System
errors are also :class:`OSError` (with ``errno``), timeouts also the builtin
:class:`TimeoutError`, usage errors also :class:`ValueError`.
"""
from __future__ import annotations

import builtins
import errno as _errno
import os
from typing import Any, Dict, Optional, Type

from . import mailtls_raw as _raw

__all__ = [
    "Error", "WantRead", "WantWrite", "SystemCallError", "TLSError", "VerifyError",
    "VerifyUntrustedError", "VerifyNameError", "VerifyExpiredError", "VerifySelfSignedError",
    "VerifyPinError", "VerifyHookError", "VerifyNoCertError", "VerifyDaneError", "TruncatedError", "ProtocolError",
    "InjectionError", "TimeoutError", "UsageError", "ConfigError", "NoMemoryError",
    "StartTLSUnavailable",
]


class Error(Exception):
    """Base of every libmailtls failure.

    Attributes: ``code`` (int, a ``MAILTLS_E_*`` category), ``codename``
    (str, e.g. ``"verify-name"``), ``message`` (the library's message) and
    ``temporary`` (bool: retry later, or fails the same way again)."""

    code: int = _raw.MAILTLS_E_NONE
    message: str = ""

    @property
    def codename(self) -> str:
        """The library's short stable name of ``code``."""
        return _raw.mailtls_errcode_name(self.code)

    @property
    def temporary(self) -> bool:
        """True when the failure should be retried later (mailtls_error_temporary)."""
        return bool(_raw.mailtls_error_temporary(self.code))

    def __str__(self) -> str:
        return self.message or super().__str__()


class WantRead(Error):
    """A non-blocking call needs the read descriptor to become readable
    (MAILTLS_WANT_READ); call again with the same arguments.  Temporary."""

    message = "the operation needs to read (MAILTLS_WANT_READ)"

    @property
    def temporary(self) -> bool:
        return True


class WantWrite(Error):
    """A non-blocking call needs the write descriptor to become writable
    (MAILTLS_WANT_WRITE); call again with the same arguments.  Temporary."""

    message = "the operation needs to write (MAILTLS_WANT_WRITE)"

    @property
    def temporary(self) -> bool:
        return True


class SystemCallError(Error, builtins.OSError):
    """A system call failed (MAILTLS_E_SYSTEM); ``errno`` says which error."""

    code = _raw.MAILTLS_E_SYSTEM

    def __str__(self) -> str:
        return self.message or builtins.OSError.__str__(self)


class TLSError(Error):
    """TLS protocol failure: an alert, no shared cipher or version (MAILTLS_E_TLS)."""

    code = _raw.MAILTLS_E_TLS


class VerifyError(Error):
    """The peer's certificate failed verification (MAILTLS_E_VERIFY and the
    subclasses below, one per MAILTLS_E_VERIFY_* category)."""

    code = _raw.MAILTLS_E_VERIFY


class VerifyUntrustedError(VerifyError):
    """The chain does not lead to a trust anchor (unknown CA)."""

    code = _raw.MAILTLS_E_VERIFY_UNTRUSTED


class VerifyNameError(VerifyError):
    """The certificate does not name the host."""

    code = _raw.MAILTLS_E_VERIFY_NAME


class VerifyExpiredError(VerifyError):
    """A certificate is expired or not yet valid."""

    code = _raw.MAILTLS_E_VERIFY_EXPIRED


class VerifySelfSignedError(VerifyError):
    """A self-signed certificate that is not a trust anchor."""

    code = _raw.MAILTLS_E_VERIFY_SELFSIGNED


class VerifyPinError(VerifyError):
    """No pinned digest matched the peer."""

    code = _raw.MAILTLS_E_VERIFY_PIN


class VerifyHookError(VerifyError):
    """The verification hook refused the peer (an exception it raised is
    this exception's ``__cause__``)."""

    code = _raw.MAILTLS_E_VERIFY_HOOK


class VerifyNoCertError(VerifyError):
    """The peer sent no certificate where one is required."""

    code = _raw.MAILTLS_E_VERIFY_NOCERT


class VerifyDaneError(VerifyError):
    """DANE: no TLSA record matched, or none was usable (MAILTLS_E_VERIFY_DANE)."""

    code = _raw.MAILTLS_E_VERIFY_DANE


class TruncatedError(Error):
    """The peer ended the stream without close_notify."""

    code = _raw.MAILTLS_E_TRUNCATED


class ProtocolError(Error):
    """The mail protocol around TLS went wrong (a bad reply, ...)."""

    code = _raw.MAILTLS_E_PROTOCOL


class InjectionError(Error):
    """Plaintext arrived where only TLS may follow (the CVE-2011-0411 class)."""

    code = _raw.MAILTLS_E_INJECTION


class TimeoutError(Error, builtins.TimeoutError):
    """A deadline passed (MAILTLS_E_TIMEOUT); also the builtin TimeoutError."""

    code = _raw.MAILTLS_E_TIMEOUT

    def __str__(self) -> str:
        return self.message or builtins.TimeoutError.__str__(self)


class UsageError(Error, ValueError):
    """The caller broke a precondition of mailtls.h (MAILTLS_E_USAGE); the one
    permanent category."""

    code = _raw.MAILTLS_E_USAGE


class ConfigError(Error):
    """A certificate, key or CA file is missing, unreadable or wrong."""

    code = _raw.MAILTLS_E_CONFIG


class NoMemoryError(Error, MemoryError):
    """Out of memory (MAILTLS_E_NOMEM)."""

    code = _raw.MAILTLS_E_NOMEM


class StartTLSUnavailable(Error):
    """A STARTTLS client helper found no TLS: the server did not offer it
    (``refused`` False) or refused the command (``refused`` True).  Nothing
    was read past the server's last reply, so the caller may go on in
    plaintext on the same connection; ``info`` is what was learned."""

    code = _raw.MAILTLS_E_NONE
    refused: bool = False
    info: Any = None

    @property
    def temporary(self) -> bool:
        return True


_BY_CODE: Dict[int, Type[Error]] = {
    c.code: c for c in (SystemCallError, TLSError, VerifyError, VerifyUntrustedError, VerifyNameError,
                        VerifyExpiredError, VerifySelfSignedError, VerifyPinError, VerifyHookError,
                        VerifyNoCertError, VerifyDaneError, TruncatedError, ProtocolError, InjectionError, TimeoutError,
                        UsageError, ConfigError, NoMemoryError)
}


def make_error(code: int, message: str, err: int = 0) -> Error:
    """The exception for library category |code| with |message| (and, for
    system errors, |err| as errno)."""
    cls = _BY_CODE.get(code, Error)
    if issubclass(cls, builtins.OSError):
        if cls is TimeoutError:
            err = _errno.ETIMEDOUT      # errno means something for system errors only
        exc: Error = cls(err, message or (os.strerror(err) if err else ""))
    else:
        exc = cls(message)
    if cls is Error:
        exc.code = code
    exc.message = message
    return exc


def want_error(rc: int) -> Optional[Error]:
    """WantRead / WantWrite for MAILTLS_WANT_READ / MAILTLS_WANT_WRITE, else None."""
    if rc == _raw.MAILTLS_WANT_READ:
        return WantRead()
    if rc == _raw.MAILTLS_WANT_WRITE:
        return WantWrite()
    return None
