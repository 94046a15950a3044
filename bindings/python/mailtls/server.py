"""The server-side helpers of libmailtls: UCSPI-TLS and the STARTTLS proxy."""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional, Tuple, Union

from . import mailtls_raw as _raw
from ._util import Closing, env_block
from .session import Session, _secs, proto_number

PROXY_REQUIRE_TLS: int = _raw.MAILTLS_PROXY_REQUIRE_TLS
PROXY_HIDE_AUTH: int = _raw.MAILTLS_PROXY_HIDE_AUTH
PROXY_CONTINUE: int = _raw.MAILTLS_PROXY_CONTINUE
PROXY_WAIT: int = _raw.MAILTLS_PROXY_WAIT
PROXY_STARTTLS: int = _raw.MAILTLS_PROXY_STARTTLS
PROXY_CLOSE: int = _raw.MAILTLS_PROXY_CLOSE
PROXY_CHUNK: int = _raw.MAILTLS_PROXY_CHUNK


class UcspiTls(Closing):
    """The descriptors of one UCSPI-TLS connection (struct mailtls_ucspitls),
    made by mailtls_ucspitls_open: the program's ends (``program_ctl``,
    ``program_read``, ``program_write``: SSLCTLFD, SSLREADFD, SSLWRITEFD) and
    ours (``ctl``, ``read``, ``write``).  A context manager closing all that is
    still open (it owns every one of them)."""

    def __init__(self) -> None:
        self._u = _raw.mailtls_ucspitls()
        for i in range(6):
            self._u.set_fd(i, -1)
        if _raw.mailtls_ucspitls_open(self._u) < 0:
            err = _raw.mt_errno()
            raise OSError(err, os.strerror(err))

    @property
    def program_ctl(self) -> int:
        """SSLCTLFD: the program's end of the control socket. (-1 once closed)"""
        return self._u.fd(0)

    @property
    def ctl(self) -> int:
        """Our end of the control socket. (-1 once closed)"""
        return self._u.fd(1)

    @property
    def program_read(self) -> int:
        """SSLREADFD: the program reads the decrypted bytes here. (-1 once closed)"""
        return self._u.fd(2)

    @property
    def write(self) -> int:
        """We write the decrypted bytes for the program here. (-1 once closed)"""
        return self._u.fd(3)

    @property
    def read(self) -> int:
        """We read the program's cleartext here. (-1 once closed)"""
        return self._u.fd(4)

    @property
    def program_write(self) -> int:
        """SSLWRITEFD: the program writes its cleartext here. (-1 once closed)"""
        return self._u.fd(5)

    @property
    def env(self) -> Dict[str, str]:
        """{"SSLCTLFD": ..., "SSLREADFD": ..., "SSLWRITEFD": ...} for the program."""
        return env_block(_raw.mt_ucspitls_env(self._u))

    def program_fds(self) -> Tuple[int, int, int]:
        """(SSLCTLFD, SSLREADFD, SSLWRITEFD): e.g. pass_fds for subprocess."""
        return self.program_ctl, self.program_read, self.program_write

    def close_program(self) -> None:
        """Closes the program's ends (in the TLS side, once the program started)."""
        _raw.mailtls_ucspitls_close_program(self._u)

    def close_ours(self) -> None:
        """Closes our ends (in the program, before it runs)."""
        _raw.mailtls_ucspitls_close_ours(self._u)

    def close(self) -> None:
        """Closes every descriptor still open."""
        self.close_program()
        self.close_ours()

    def wait(self, session: Session, timeout: float = 0) -> Optional[str]:
        """Waits (without the GIL) for the program's request: "y", "Y", or None when
        it closed its end without asking (the connection stays plaintext).
        |timeout| 0 waits as long as the program runs.  Errors go on |session|."""
        rc = _raw.mailtls_ucspitls_wait(session.raw, self._u, _secs(timeout) if timeout else 0)
        session._check(rc)
        return chr(rc) if rc else None

    def reply(self, session: Session, timeout: float = 30) -> None:
        """After the handshake of a "Y" request: sends the facts to the program."""
        session._check(_raw.mailtls_ucspitls_reply(session.raw, self._u, _secs(timeout)))


class Proxy(Closing):
    """The server-side STARTTLS proxy (struct mailtls_proxy) for |proto|
    (SMTP, POP3, IMAP or their names) with |flags| (PROXY_REQUIRE_TLS,
    PROXY_HIDE_AUTH): the state machine (client_line, server_line,
    tls_started) and its driver run().  A context manager freeing itself."""

    def __init__(self, proto: Union[int, str], flags: int = 0) -> None:
        self._p = _raw.mailtls_proxy_new(proto_number(proto), flags)
        if self._p is None:
            err = _raw.mt_errno()
            raise OSError(err, os.strerror(err))
        self._on_tls_exc: Optional[BaseException] = None

    def _out(self, r: Tuple[int, bytes, bytes]) -> Tuple[int, bytes, bytes]:
        if r[0] < 0:
            err = _raw.mt_errno()
            raise OSError(err, os.strerror(err))
        return r

    def client_line(self, line: bytes, more: bool = False) -> Tuple[int, bytes, bytes]:
        """One client line (or chunk of at most PROXY_CHUNK bytes); |more|: bytes
        beyond it were already received.  Returns (action, to_client, to_program)."""
        return self._out(_raw.mt_proxy_client_line(self._p, line, 1 if more else 0))

    def server_line(self, line: bytes) -> bytes:
        """One line of the program's output; returns what the client gets."""
        return self._out(_raw.mt_proxy_server_line(self._p, line))[1]

    def tls_started(self) -> bytes:
        """Records the finished handshake; returns what the program gets (SMTP: RSET)."""
        return self._out(_raw.mt_proxy_tls_started(self._p))[2]

    def run(self, session: Session, prog_rfd: int, prog_wfd: int, handshake_timeout: float = 60,
            io_timeout: float = 0, on_tls: Optional[Callable[[Session], Any]] = None) -> None:
        """Drives the proxy (without the GIL) between the client on |session| (a
        server session before its handshake) and a program (its output |prog_rfd|,
        its input |prog_wfd|, which run() closes).  |on_tls|(session) is called once
        the handshake is done; a false result or an exception ends the proxy (the
        exception becomes the cause of the error raised)."""
        cb = None
        if on_tls is not None:
            def cb(sptr: Any) -> bool:
                try:
                    r = on_tls(session)
                    return r is None or bool(r)
                except BaseException as e:  # noqa: BLE001 -- re-raised below as the cause
                    self._on_tls_exc = e
                    return False
        rc, err = _raw.mt_proxy_run(self._p, session.raw, prog_rfd, prog_wfd, _secs(handshake_timeout),
                                    _secs(io_timeout) if io_timeout else 0, cb)
        if rc < 0:
            exc = session._error(rc, err)
            if self._on_tls_exc is not None:
                exc.__cause__, self._on_tls_exc = self._on_tls_exc, None
            raise exc

    def close(self) -> None:
        """Frees the proxy state."""
        p, self._p = self._p, None
        if p is not None:
            _raw.mailtls_proxy_free(p)
