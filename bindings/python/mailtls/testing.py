"""mailtls.testing: helpers for a test suite that needs TLS mail servers.

- :class:`CA`: a throwaway certificate authority (Debian's python3-trustme)
  issuing server and client certificates, with ready-made mailtls Configs and
  an ``ssl`` context for Python's own clients;
- :class:`MailServer`: a small SMTP, POP3 or IMAP server on loopback, with
  implicit TLS (SMTPS, POP3S, IMAPS) or STARTTLS, served through libmailtls
  (implicit TLS: mailtls_relay; STARTTLS: the library's protocol proxy in
  front of a plaintext server), to point a client under test at.  It keeps
  what it received (``messages``) and each connection's TLS facts.

Example (pytest)::

    ca = mailtls.testing.CA()
    with mailtls.testing.MailServer("smtp", ca.server_config(), tls="starttls") as srv:
        with smtplib.SMTP(srv.host, srv.port) as smtp:
            smtp.starttls(context=ca.ssl_context())
            smtp.sendmail("a@example.org", ["b@example.org"], b"Subject: hi\\r\\n\\r\\nhello\\r\\n")
        assert srv.messages[0].tls["protocol"] == "TLSv1.3"
"""
from __future__ import annotations

import os
import shutil
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Dict, List, Optional, Sequence, Union

from .config import VERIFY_OPTIONAL, VERIFY_REQUIRE, Config
from .errors import Error
from .server import PROXY_HIDE_AUTH, PROXY_REQUIRE_TLS, Proxy
from .session import Session

__all__ = ["CA", "Keypair", "MailServer", "Message", "Connection"]


@dataclass
class Keypair:
    """A certificate (with its chain) and its key, as PEM bytes and as files."""

    cert_pem: bytes
    key_pem: bytes
    certfile: Path
    keyfile: Path


class CA:
    """A throwaway CA (trustme) whose files live in a temporary directory until
    close().  A context manager."""

    def __init__(self, organization: str = "mailtls testing CA") -> None:
        import trustme   # Debian: python3-trustme
        self._ca = trustme.CA(organization_name=organization)
        self.dir = Path(tempfile.mkdtemp(prefix="mailtls-testing-ca."))
        self.cert_pem: bytes = self._ca.cert_pem.bytes()
        self.cafile: Path = self.dir / "ca.pem"
        self.cafile.write_bytes(self.cert_pem)
        self._n = 0

    def issue(self, *names: str, common_name: Optional[str] = None) -> Keypair:
        """A certificate for |names| (host names, addresses; default "localhost"
        and "127.0.0.1"), usable by servers and clients, written to files."""
        names = names or ("localhost", "127.0.0.1")
        c = self._ca.issue_cert(*names, common_name=common_name or names[0])
        self._n += 1
        cert = b"".join(b.bytes() for b in c.cert_chain_pems)
        key = c.private_key_pem.bytes()
        kp = Keypair(cert, key, self.dir / f"cert{self._n}.pem", self.dir / f"key{self._n}.pem")
        kp.certfile.write_bytes(cert)
        kp.keyfile.write_bytes(key)
        os.chmod(kp.keyfile, 0o600)
        return kp

    def server_config(self, *names: str, verify_clients: bool = False) -> Config:
        """A server Config with a certificate for |names|; |verify_clients| asks for
        (and verifies, optionally) client certificates of this CA."""
        kp = self.issue(*names)
        cfg = Config()
        cfg.load_keypair_pem(kp.cert_pem, kp.key_pem)
        if verify_clients:
            cfg.add_ca_pem(self.cert_pem)
            cfg.set_verify(VERIFY_OPTIONAL)
        return cfg

    def client_config(self, *client_names: str) -> Config:
        """A client Config trusting this CA (verification required); with
        |client_names|, also a client certificate for them."""
        cfg = Config()
        cfg.add_ca_pem(self.cert_pem)
        cfg.set_verify(VERIFY_REQUIRE)
        if client_names:
            kp = self.issue(*client_names)
            cfg.load_keypair_pem(kp.cert_pem, kp.key_pem)
        return cfg

    def ssl_context(self, server: bool = False, *names: str) -> ssl.SSLContext:
        """A context of Python's ssl module trusting this CA: a client's (default),
        or a server's with a certificate for |names|."""
        if server:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            kp = self.issue(*names)
            ctx.load_cert_chain(str(kp.certfile), str(kp.keyfile))
            return ctx
        return ssl.create_default_context(cadata=self.cert_pem.decode("ascii"))

    def close(self) -> None:
        """Removes the CA's files."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "CA":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class Connection:
    """One client connection: its TLS facts once the handshake is done (None
    before or without TLS), and the error that ended it, if any."""

    tls: Optional[Dict[str, Any]] = None
    error: Optional[BaseException] = None
    commands: List[bytes] = field(default_factory=list)


@dataclass
class Message:
    """A message an SMTP MailServer accepted."""

    mail_from: str
    rcpt_to: List[str]
    data: bytes
    tls: Optional[Dict[str, Any]]


def _address(arg: str) -> str:
    """The address of "FROM:<a@b> SIZE=..." / "TO:<a@b>"."""
    path = arg.partition(":")[2].strip()
    return path[1:path.index(">")] if path.startswith("<") and ">" in path else path.split(" ")[0]


def _facts(s: Session) -> Dict[str, Any]:
    return {"protocol": s.protocol, "cipher": s.cipher, "servername": s.servername,
            "peer_verified": s.peer_verified, "peer_subject": s.peer_subject,
            "peer_fingerprint": s.peer_fingerprint, "env": s.env}


class MailServer:
    """A loopback SMTP, POP3 or IMAP server (|proto| "smtp", "pop3", "imap")
    with |tls| "implicit" (TLS at once), "starttls" (offered through the
    library's proxy) or "none", using |config| (a server Config).

    SMTP takes any sender and recipient and keeps each message in
    ``messages``; POP3 and IMAP serve ``mailbox`` (a list of messages, bytes)
    to the user |user| with |password|.  |require_tls| refuses MAIL / USER /
    LOGIN before STARTTLS; |hide_auth| hides AUTH before it.  ``connections``
    holds each connection's TLS facts.  start() (or the context manager) runs
    it on a free port (``host``, ``port``); stop() ends it and every
    connection."""

    def __init__(self, proto: str, config: Optional[Config] = None, *, tls: str = "starttls",
                 host: str = "127.0.0.1", port: int = 0, mailbox: Optional[Sequence[bytes]] = None,
                 user: str = "user", password: str = "secret", require_tls: bool = False,
                 hide_auth: bool = False, timeout: float = 30, hostname: str = "mail.test") -> None:
        if proto not in ("smtp", "pop3", "imap"):
            raise ValueError(f"unknown protocol {proto!r}")
        if tls not in ("implicit", "starttls", "none"):
            raise ValueError(f"tls must be implicit, starttls or none, not {tls!r}")
        if tls != "none" and config is None:
            raise ValueError("a TLS server needs a Config")
        self.proto, self.config, self.tls = proto, config, tls
        self.host, self.port = host, port
        self.mailbox: List[bytes] = list(mailbox or [])
        self.user, self.password, self.hostname = user, password, hostname
        self.flags = (PROXY_REQUIRE_TLS if require_tls else 0) | (PROXY_HIDE_AUTH if hide_auth else 0)
        self.timeout = timeout
        self.messages: List[Message] = []
        self.connections: List[Connection] = []
        self._sock: Optional[socket.socket] = None
        self._threads: List[threading.Thread] = []
        self._open: List[Any] = []
        self._lock = threading.Lock()
        self._stopping = False

    # -- lifetime ------------------------------------------------------------------

    def start(self) -> "MailServer":
        """Listens and serves connections in threads; returns self."""
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._sock = socket.socket(fam, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.host, self.port))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name="mailtls-testing-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        """Stops listening, shuts every connection down and waits for the threads
        (at most ``timeout`` seconds each)."""
        self._stopping = True
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        with self._lock:
            for c in self._open:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for t in list(self._threads):
            t.join(self.timeout)

    def __enter__(self) -> "MailServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self._open.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), name="mailtls-testing-conn", daemon=True)
            self._threads.append(t)
            t.start()

    # -- one connection ------------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        c = Connection()
        self.connections.append(c)
        conn.settimeout(None)
        try:
            if self.tls == "none":
                with conn.makefile("rb") as rf, conn.makefile("wb") as wf:
                    self._program(rf, wf, c)
            elif self.tls == "implicit":
                self._serve_implicit(conn, c)
            else:
                self._serve_starttls(conn, c)
        except (Error, OSError) as e:
            c.error = e
        finally:
            conn.close()

    def _serve_implicit(self, conn: socket.socket, c: Connection) -> None:
        assert self.config is not None
        plain, prog = socket.socketpair()
        t = threading.Thread(target=self._program_on_socket, args=(prog, c), daemon=True)
        with Session.server(self.config, conn, timeout=self.timeout) as s:
            s.handshake()
            c.tls = _facts(s)
            self._threads.append(t)
            t.start()
            try:
                s.timeout = None
                s.relay(plain, idle=self.timeout)
            finally:
                plain.close()
                t.join(self.timeout)

    def _serve_starttls(self, conn: socket.socket, c: Connection) -> None:
        assert self.config is not None
        to_prog_r, to_prog_w = os.pipe()
        from_prog_r, from_prog_w = os.pipe()
        rf = os.fdopen(to_prog_r, "rb")
        wf = os.fdopen(from_prog_w, "wb")
        t = threading.Thread(target=self._program_closing, args=(rf, wf, c), daemon=True)
        self._threads.append(t)
        t.start()
        try:
            with Session.server(self.config, conn) as s, Proxy(self.proto, self.flags) as p:
                def on_tls(sess: Session) -> bool:
                    c.tls = _facts(sess)
                    return True
                p.run(s, from_prog_r, to_prog_w, handshake_timeout=self.timeout, io_timeout=self.timeout,
                      on_tls=on_tls)
        finally:
            os.close(from_prog_r)       # run() closed to_prog_w, the program's input
            t.join(self.timeout)

    def _program_on_socket(self, sock: socket.socket, c: Connection) -> None:
        with sock, sock.makefile("rb") as rf, sock.makefile("wb") as wf:
            try:
                self._program(rf, wf, c)
            except OSError:
                pass

    def _program_closing(self, rf: BinaryIO, wf: BinaryIO, c: Connection) -> None:
        with rf, wf:
            try:
                self._program(rf, wf, c)
            except OSError:
                pass

    # -- the plaintext servers -------------------------------------------------------

    def _program(self, rf: BinaryIO, wf: BinaryIO, c: Connection) -> None:
        def out(*lines: Union[str, bytes]) -> None:
            wf.write(b"".join((ln.encode() if isinstance(ln, str) else ln) + b"\r\n" for ln in lines))
            wf.flush()
        {"smtp": self._smtp, "pop3": self._pop3, "imap": self._imap}[self.proto](rf, out, c)

    def _smtp(self, rf: BinaryIO, out: Any, c: Connection) -> None:
        out(f"220 {self.hostname} ESMTP mailtls.testing")
        mail_from, rcpts = None, []
        for raw in iter(rf.readline, b""):
            c.commands.append(raw)
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            verb = line.split(" ", 1)[0].upper()
            arg = line[len(verb) + 1:]
            if verb == "EHLO":
                out(f"250-{self.hostname}", "250-PIPELINING", "250-8BITMIME", "250 SIZE 10485760")
            elif verb == "HELO":
                out(f"250 {self.hostname}")
            elif verb == "MAIL":
                mail_from, rcpts = _address(arg), []
                out("250 2.1.0 ok")
            elif verb == "RCPT":
                rcpts.append(_address(arg))
                out("250 2.1.5 ok")
            elif verb == "DATA":
                if mail_from is None or not rcpts:
                    out("503 5.5.1 MAIL and RCPT first")
                    continue
                out("354 go ahead")
                data = []
                for d in iter(rf.readline, b""):
                    if d in (b".\r\n", b".\n"):
                        break
                    data.append(d[1:] if d.startswith(b".") else d)
                self.messages.append(Message(mail_from, rcpts, b"".join(data), c.tls))
                mail_from, rcpts = None, []
                out("250 2.0.0 queued")
            elif verb == "RSET":
                mail_from, rcpts = None, []
                out("250 2.0.0 ok")
            elif verb == "NOOP":
                out("250 2.0.0 ok")
            elif verb == "QUIT":
                out("221 2.0.0 bye")
                return
            else:
                out("502 5.5.2 not implemented")

    def _pop3(self, rf: BinaryIO, out: Any, c: Connection) -> None:
        out("+OK mailtls.testing POP3 ready")
        user, authed, deleted = None, False, set()
        for raw in iter(rf.readline, b""):
            c.commands.append(raw)
            words = raw.rstrip(b"\r\n").decode("utf-8", "replace").split()
            verb = words[0].upper() if words else ""
            arg = words[1] if len(words) > 1 else ""
            live = [(i + 1, m) for i, m in enumerate(self.mailbox) if i + 1 not in deleted]
            if verb == "CAPA":
                out("+OK capabilities", "USER", "UIDL", ".")
            elif verb == "USER":
                user = arg
                out("+OK")
            elif verb == "PASS":
                authed = user == self.user and arg == self.password
                out("+OK logged in" if authed else "-ERR bad login")
            elif verb == "QUIT":
                out("+OK bye")
                return
            elif verb == "NOOP":
                out("+OK")
            elif not authed:
                out("-ERR log in first")
            elif verb == "STAT":
                out(f"+OK {len(live)} {sum(len(m) for _, m in live)}")
            elif verb in ("LIST", "UIDL"):
                out("+OK", *[f"{i} {len(m) if verb == 'LIST' else 'uid%d' % i}" for i, m in live], ".")
            elif verb == "RETR" and arg.isdigit() and 0 < int(arg) <= len(self.mailbox):
                body = self.mailbox[int(arg) - 1].replace(b"\r\n", b"\n").split(b"\n")
                if body and body[-1] == b"":
                    body.pop()
                out("+OK message follows", *[b"." + ln if ln.startswith(b".") else ln for ln in body], ".")
            elif verb == "DELE" and arg.isdigit():
                deleted.add(int(arg))
                out("+OK deleted")
            else:
                out("-ERR unknown command")

    def _imap(self, rf: BinaryIO, out: Any, c: Connection) -> None:
        out("* OK mailtls.testing IMAP ready")
        authed = False
        for raw in iter(rf.readline, b""):
            c.commands.append(raw)
            words = raw.rstrip(b"\r\n").decode("utf-8", "replace").split(" ")
            if len(words) < 2:
                out("* BAD no tag")
                continue
            tag, verb, args = words[0], words[1].upper(), [w.strip('"') for w in words[2:]]
            if verb == "CAPABILITY":
                out("* CAPABILITY IMAP4rev1 AUTH=PLAIN", f"{tag} OK CAPABILITY done")
            elif verb == "NOOP":
                out(f"{tag} OK NOOP done")
            elif verb == "LOGOUT":
                out("* BYE bye", f"{tag} OK LOGOUT done")
                return
            elif verb == "LOGIN":
                authed = args[:2] == [self.user, self.password]
                out(f"{tag} OK LOGIN done" if authed else f"{tag} NO bad login")
            elif not authed:
                out(f"{tag} NO log in first")
            elif verb in ("SELECT", "EXAMINE"):
                out(f"* {len(self.mailbox)} EXISTS", "* 0 RECENT", "* FLAGS (\\Seen \\Deleted)",
                    "* OK [UIDVALIDITY 1] ok", f"{tag} OK [READ-WRITE] {verb} done")
            elif verb == "FETCH" and args and args[0].isdigit() and 0 < int(args[0]) <= len(self.mailbox):
                m = self.mailbox[int(args[0]) - 1]
                out(b"* " + args[0].encode() + b" FETCH (RFC822 {" + str(len(m)).encode() + b"}\r\n" + m + b")",
                    f"{tag} OK FETCH done")
            else:
                out(f"{tag} BAD unknown command")
