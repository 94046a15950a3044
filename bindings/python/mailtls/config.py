"""mailtls.Config: certificates, keys, trust anchors and policy, shared by sessions."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Union

from . import mailtls_raw as _raw
from ._util import Closing
from .errors import UsageError, make_error

if TYPE_CHECKING:
    from .session import Session

PathLike = Union[str, "os.PathLike[str]"]
Bytes = Union[bytes, bytearray, memoryview, str]
#: The verification hook: hook(session, chain_der_leaf_first, result) returns True to
#: accept the peer, False to refuse it, or a str to refuse it with that message.
VerifyHook = Callable[["Session", List[bytes], int], Union[bool, str]]

VERIFY_NONE: int = _raw.MAILTLS_VERIFY_NONE
VERIFY_OPTIONAL: int = _raw.MAILTLS_VERIFY_OPTIONAL
VERIFY_REQUIRE: int = _raw.MAILTLS_VERIFY_REQUIRE
TLS1_0: int = _raw.MAILTLS_TLS1_0
TLS1_1: int = _raw.MAILTLS_TLS1_1
TLS1_2: int = _raw.MAILTLS_TLS1_2
TLS1_3: int = _raw.MAILTLS_TLS1_3


def _path(p: Optional[PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)


class Config(Closing):
    """A libmailtls configuration (mailtls_config): the safe defaults of
    mailtls_config_new (TLS 1.2 minimum, AEAD only, client verification
    required against no anchors until some are set, server verification
    off), changed by the keyword arguments or the methods below.

    Sessions take their own reference, so a Config may be closed once its
    sessions exist.  A Config is a context manager that closes itself.
    Methods raise :class:`mailtls.ConfigError` (or another
    :class:`mailtls.Error`) on failure."""

    def __init__(self, *, certfile: Optional[PathLike] = None, keyfile: Optional[PathLike] = None,
                 cafile: Optional[PathLike] = None, cadir: Optional[PathLike] = None,
                 verify: Optional[int] = None, ciphers: Optional[str] = None,
                 min_protocol: Optional[int] = None, max_protocol: Optional[int] = None,
                 _ptr: Any = None) -> None:
        if _ptr is None:
            _ptr = _raw.mailtls_config_new()
            if _ptr is None:
                raise MemoryError("mailtls_config_new failed")
        self._ptr = _ptr
        self._hook: Optional[Callable[..., Any]] = None
        if certfile is not None:
            self.load_keypair(certfile, keyfile)
        if cafile is not None or cadir is not None:
            self.load_ca(cafile, cadir)
        if verify is not None:
            self.set_verify(verify)
        if ciphers is not None:
            self.set_ciphers(ciphers)
        if min_protocol is not None:
            self.set_min_protocol(min_protocol)
        if max_protocol is not None:
            self.set_max_protocol(max_protocol)

    @classmethod
    def from_env(cls, **kwargs: Any) -> "Config":
        """A new Config (with |kwargs| as for Config()) to which the environment
        names of sslserver and s6-tlsd are applied (see :meth:`load_env`)."""
        cfg = cls(**kwargs)
        try:
            cfg.load_env()
        except BaseException:
            cfg.close()
            raise
        return cfg

    @classmethod
    def from_raw(cls, ptr: Any) -> "Config":
        """A Config for a raw ``struct mailtls_config *`` made elsewhere (the raw
        module, or C code); it takes a reference of its own (mailtls_config_ref)."""
        _raw.mailtls_config_ref(ptr)
        return cls(_ptr=ptr)

    @property
    def raw(self) -> Any:
        """The raw ``struct mailtls_config *`` (for mailtls.mailtls_raw)."""
        if self._ptr is None:
            raise UsageError("the configuration is closed")
        return self._ptr

    def _check(self, rc: int) -> int:
        if rc < 0:
            err = _raw.mt_errno()
            raise make_error(_raw.mailtls_config_errcode(self._ptr), _raw.mailtls_config_error(self._ptr), err)
        return rc

    # -- keys and certificates --------------------------------------------------------

    def load_keypair(self, certfile: PathLike, keyfile: Optional[PathLike] = None) -> None:
        """The default certificate (with its chain) and key; |keyfile| None: the key is
        in |certfile| too (the combined PEM of qmail sites)."""
        self._check(_raw.mailtls_config_set_keypair_file(self.raw, _path(certfile), _path(keyfile)))

    def load_keypair_pem(self, cert: Bytes, key: Optional[Bytes] = None) -> None:
        """load_keypair with the PEM text in memory."""
        self._check(_raw.mt_config_keypair_mem(self.raw, None, cert, key))

    def add_keypair(self, certfile: PathLike, keyfile: Optional[PathLike] = None) -> None:
        """A keypair of another key type beside the default one (RSA beside ECDSA)."""
        self._check(_raw.mailtls_config_add_keypair_file(self.raw, _path(certfile), _path(keyfile)))

    def add_sni_keypair(self, name: str, certfile: PathLike, keyfile: Optional[PathLike] = None) -> None:
        """A keypair served to clients whose SNI matches |name| ("host" or "*.domain")."""
        self._check(_raw.mailtls_config_add_sni_keypair_file(self.raw, name, _path(certfile), _path(keyfile)))

    def add_sni_keypair_pem(self, name: str, cert: Bytes, key: Optional[Bytes] = None) -> None:
        """add_sni_keypair with the PEM text in memory."""
        self._check(_raw.mt_config_keypair_mem(self.raw, name, cert, key))

    def set_sni_strict(self, strict: bool = True) -> None:
        """A server refuses a handshake whose SNI matches no SNI keypair."""
        _raw.mailtls_config_set_sni_strict(self.raw, 1 if strict else 0)

    # -- trust and verification -------------------------------------------------------

    def load_ca(self, cafile: Optional[PathLike] = None, cadir: Optional[PathLike] = None) -> None:
        """Trust anchors from a PEM file and/or a hashed directory."""
        self._check(_raw.mailtls_config_set_ca(self.raw, _path(cafile), _path(cadir)))

    def add_ca_pem(self, pem: Bytes) -> None:
        """Trust anchors from PEM text."""
        self._check(_raw.mt_config_set_ca_mem(self.raw, pem))

    def set_verify(self, mode: int) -> None:
        """VERIFY_NONE, VERIFY_OPTIONAL or VERIFY_REQUIRE, for sessions made afterwards."""
        self._check(_raw.mailtls_config_set_verify(self.raw, mode))

    def add_pin(self, pin: str) -> None:
        """A pinned digest: "SHA256:<hex>" of the certificate or "SPKI-SHA256:<hex>"."""
        self._check(_raw.mailtls_config_add_pin(self.raw, pin))

    def set_verify_callback(self, hook: Optional[VerifyHook]) -> None:
        """The verification hook, called during the handshake (without other Python
        threads being blocked) as hook(session, chain, result): |chain| the peer's
        certificates as DER bytes, leaf first; |result| MAILTLS_E_NONE or the
        MAILTLS_E_VERIFY* category of the library's own checks.  Return True to accept
        the peer, False or a message (str) to refuse it.  An exception refuses the peer
        and becomes the ``__cause__`` of the VerifyHookError.  None removes the hook."""
        if hook is None:
            _raw.mt_config_set_verify_cb(self.raw, None)
            self._hook = None
            return
        from .session import Session

        def tramp(sptr: Any, chain: List[bytes], result: int) -> Union[int, str]:
            sess = Session._by_pointer(sptr)
            try:
                r = hook(sess, chain, result)  # type: ignore[arg-type]
            except BaseException as e:  # noqa: BLE001 -- kept and re-raised as the cause
                if sess is not None:
                    sess._hook_exc = e
                return f"verification hook raised {type(e).__name__}: {e}"
            if isinstance(r, str):
                return r
            return 0 if r is True else -1

        self._hook = tramp   # the raw layer borrows it: it lives as long as this Config
        _raw.mt_config_set_verify_cb(self.raw, tramp)

    # -- protocol ------------------------------------------------------------------

    def set_ciphers(self, ciphers: str) -> None:
        """The TLS 1.2-and-below cipher list (OpenSSL syntax, or "secure" / "compat")."""
        self._check(_raw.mailtls_config_set_ciphers(self.raw, ciphers))

    def set_min_protocol(self, version: int) -> None:
        """The lowest TLS version accepted (TLS1_0 ... TLS1_3)."""
        self._check(_raw.mailtls_config_set_min_protocol(self.raw, version))

    def set_max_protocol(self, version: int) -> None:
        """The highest TLS version (TLS1_0 ... TLS1_3)."""
        self._check(_raw.mailtls_config_set_max_protocol(self.raw, version))

    def set_ticket_keys(self, keys: bytes) -> None:
        """48 bytes of session ticket key material, to share tickets among servers."""
        self._check(_raw.mt_config_set_ticket_keys(self.raw, keys))

    def set_ticket_key_set(self, keys: bytes) -> None:
        """A fleet's ticket key set: 1 to 16 records of 80 bytes (name, HMAC key, AES
        key); the first issues tickets, all accept them (mailtls_config_set_ticket_keys_mem)."""
        self._check(_raw.mt_config_set_ticket_keys_mem(self.raw, keys))

    def load_ticket_key_set(self, path: PathLike) -> None:
        """set_ticket_key_set from a file only its owner may read (mode 0600 or 0400)."""
        self._check(_raw.mailtls_config_set_ticket_keys_file(self.raw, _path(path)))

    def load_env(self) -> int:
        """Applies CERTFILE, KEYFILE, CERTCHAINFILE, CAFILE, CADIR, CIPHERS and
        "CERTFILE:name"/"KEYFILE:name" from os.environ (as sslserver and s6-tlsd read
        them); returns the number of keypairs loaded."""
        return self._check(_raw.mailtls_config_from_env(self.raw))

    # -- lifetime ------------------------------------------------------------------

    def close(self) -> None:
        """Drops this object's reference (mailtls_config_free); sessions keep theirs."""
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            _raw.mailtls_config_free(ptr)

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._ptr is None
