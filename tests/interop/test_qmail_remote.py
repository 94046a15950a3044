"""qmail-remote (examples/qmail-remote) against scripted SMTP servers and a real Postfix, on loopback.

The report on fd 1 is compared byte for byte with netqmail 1.06's texts.  Each
scripted server is a Python thread serving one connection with a handler that
reads commands and answers them; it records every line it received.  The
qmail tree (control/) is a temporary directory given as $QMAILHOME.

Environment: MAILTLS_QMAIL_REMOTE (the program), MAILTLS_TEST_PKI (conftest).
"""
import os
import socket
import ssl
import subprocess
import threading

import pytest

from conftest import free_port, must_have, qmail_remote
from qmailremote import qmail_home

TIMEOUT = 15



class Server:
    """One connection (or |conns|) on 127.0.0.1, served by handler(self) in a thread.
    Every error of the server's side is recorded and fails the test at join(), except,
    when the test says expect_hangup=True, qmail-remote hanging up (EOFError) or
    breaking the connection or its TLS (OSError, ssl.SSLError) in the middle of the
    server's script."""

    def __init__(self, handler, pki=None, conns=1, expect_hangup=False):
        self.conns = conns
        self.expect_hangup = expect_hangup
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(2)
        self.lsock.settimeout(TIMEOUT)
        self.port = self.lsock.getsockname()[1]
        self.handler = handler
        self.pki = pki
        self.lines = []        # every line received, in order, without CRLF
        self.data = b""       # the DATA body as received (up to the final dot)
        self.tls = False
        self.errors = []      # (connection number, exception) of each connection that failed
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        for n in range(self.conns):
            self.n = n
            self.one()
        self.lsock.close()

    def one(self):
        try:
            self.sock, _ = self.lsock.accept()
            self.sock.settimeout(TIMEOUT)
            self.f = self.sock.makefile("rb")
            self.handler(self)
        except Exception as e:      # noqa: BLE001 - reported by join()
            self.errors.append((self.n, e))
        finally:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except Exception:       # noqa: BLE001
                pass
            try:
                self.sock.close()
                self.f.close()
            except Exception:       # noqa: BLE001
                pass

    def send(self, b):
        if isinstance(b, str):
            b = b.encode()
        self.sock.sendall(b)

    def line(self):
        ln = self.f.readline()
        if not ln:
            raise EOFError("client closed")
        ln = ln.rstrip(b"\r\n").decode("latin-1")
        self.lines.append(ln)
        return ln

    def expect(self, prefix, reply):
        ln = self.line()
        assert ln.upper().startswith(prefix.upper()), (ln, prefix)
        if reply is not None:
            self.send(reply)
        return ln

    def read_data(self):
        body = b""
        while True:
            ln = self.f.readline()
            if not ln:
                raise EOFError("client closed in DATA")
            if ln == b".\r\n":
                break
            body += ln
        self.data = body

    def starttls(self, certname="server-ec", max_version=None, ctx=None):
        """TLS from here on, with the test PKI's key pair |certname|, or with |ctx|."""
        if ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.pki / f"{certname}.pem", self.pki / f"{certname}.key")
            if max_version:
                ctx.maximum_version = max_version
        self.sock = ctx.wrap_socket(self.sock, server_side=True)
        self.f = self.sock.makefile("rb")
        self.tls = True

    def join(self):
        self.t.join(TIMEOUT)
        assert not self.t.is_alive(), f"the scripted server still runs after {TIMEOUT}s"
        for n, e in self.errors:
            if self.expect_hangup and isinstance(e, (EOFError, OSError)):
                continue
            raise AssertionError(f"scripted server, connection {n}: {e!r}; lines: {self.lines}") from e


def mail_tail(s, final="250 ok\r\n", may_quit=False):
    """MAIL, RCPT, DATA, the message, the final reply, QUIT; |may_quit|: a client that
    QUITs instead of MAIL is answered and let go."""
    ln = s.line()
    if may_quit and ln.upper() == "QUIT":
        s.send("221 bye\r\n")
        return
    assert ln.upper().startswith("MAIL FROM:"), ln
    s.send("250 ok\r\n")
    s.expect("RCPT TO:", "250 ok\r\n")
    s.expect("DATA", "354 go\r\n")
    s.read_data()
    s.send(final)
    try:
        s.line()
    except (EOFError, OSError):
        pass


def plain_ok(s):
    s.send("220 test ESMTP\r\n")
    s.expect("EHLO", "250-test\r\n250 8BITMIME\r\n")
    mail_tail(s)


@pytest.fixture
def qhome(tmp_path):
    return qmail_home(tmp_path / "qmail")


def route(qhome, port, host="[127.0.0.1]", extra=""):
    (qhome / "control" / "smtproutes").write_text(f"example.test:{host}:{port}\n{extra}")


def run(qhome, msg=b"Subject: hi\n\nbody\n", host="example.test", recips=("u@example.test",),
        sender="s@client.test"):
    p = subprocess.run([qmail_remote(), host, sender, *recips], input=msg, capture_output=True,
                       env={"QMAILHOME": str(qhome), "PATH": os.environ.get("PATH", "")}, timeout=TIMEOUT * 2)
    assert p.returncode == 0
    assert p.stderr == b""
    return p.stdout


# --------------------------------------------------------------------------- the netqmail contract

def test_usage(qhome):
    p = subprocess.run([qmail_remote(), "x", "y"], capture_output=True, env={"QMAILHOME": str(qhome)}, timeout=TIMEOUT)
    assert (p.returncode, p.stdout, p.stderr) == (0, b"DI (qmail-remote) was invoked improperly. (#5.3.5)\n\0", b"")


def test_no_me_is_temporary(tmp_path):
    (tmp_path / "control").mkdir()
    out = run(tmp_path)
    assert out == b"ZUnable to read control files. (#4.3.0)\n\0"


def test_unreadable_control_is_temporary(qhome):
    if os.geteuid() == 0:
        (qhome / "control" / "smtproutes").mkdir()     # read() fails with EISDIR even for root
    else:
        (qhome / "control" / "smtproutes").write_text("x")
        (qhome / "control" / "smtproutes").chmod(0)
    assert run(qhome) == b"ZUnable to read control files. (#4.3.0)\n\0"


def test_accepted_dot_stuffing_crlf(qhome, pki):
    s = Server(plain_ok)
    route(qhome, s.port)
    out = run(qhome, msg=b"a\n.b\n..c\n")
    s.join()
    assert out == b"r\0K127.0.0.1 accepted message.\nRemote host said: 250 ok\n\0"
    assert s.data == b"a\r\n..b\r\n...c\r\n"
    assert s.lines[0] == "EHLO client.test.example"
    assert s.lines[1] == "MAIL FROM:<s@client.test>"
    assert s.lines[2] == "RCPT TO:<u@example.test>"
    assert s.lines[-1] == "QUIT"


def test_helohost_and_subdomain_route(qhome):
    (qhome / "control" / "helohost").write_text("helo.test.example\n")
    s = Server(plain_ok)
    (qhome / "control" / "smtproutes").write_text(f".example.test:[127.0.0.1]:{s.port}\n")
    out = run(qhome, host="mx.sub.example.test")
    s.join()
    assert out.startswith(b"r\0K127.0.0.1 accepted")
    assert s.lines[0] == "EHLO helo.test.example"


def test_default_route(qhome):
    s = Server(plain_ok)
    (qhome / "control" / "smtproutes").write_text(f":[127.0.0.1]:{s.port}\n")
    assert run(qhome, host="anything.invalid").startswith(b"r\0K127.0.0.1 accepted")
    s.join()


def test_ehlo_refused_falls_back_to_helo(qhome):
    def h(s):
        s.send("220 old\r\n")
        s.expect("EHLO", "500 what\r\n")
        s.expect("HELO", "250 hi\r\n")
        mail_tail(s)
    s = Server(h)
    route(qhome, s.port)
    assert run(qhome).startswith(b"r\0K127.0.0.1 accepted")
    s.join()


def test_partial_last_line(qhome):
    def h(s):
        s.send("220 x\r\n")
        s.expect("EHLO", "250 x\r\n")
        s.expect("MAIL", "250 ok\r\n")
        s.expect("RCPT", "250 ok\r\n")
        s.expect("DATA", "354 go\r\n")
        try:
            s.read_data()
        except EOFError:
            pass
    s = Server(h)
    route(qhome, s.port)
    assert run(qhome, msg=b"a\nno newline") == \
        b"r\0DSMTP cannot transfer messages with partial final lines. (#5.6.2)\n\0"
    s.join()


def test_recipients_5xx_4xx_giving_up(qhome):
    def h(s):
        s.send("220 x\r\n")
        s.expect("EHLO", "250 x\r\n")
        s.expect("MAIL", "250 ok\r\n")
        s.expect("RCPT TO:<a@", "550 no\r\n")
        s.expect("RCPT TO:<b@", "450-later\r\n450 really\r\n")
        s.expect("QUIT", None)
    s = Server(h)
    route(qhome, s.port)
    out = run(qhome, recips=("a@example.test", "b@example.test"))
    s.join()
    assert out == (b"h127.0.0.1 does not like recipient.\nRemote host said: 550 no\n\0"
                   b"s127.0.0.1 does not like recipient.\nRemote host said: 450-later\n450 really\n\0"
                   b"DGiving up on 127.0.0.1.\n\0")


def test_one_recipient_of_two(qhome):
    def h(s):
        s.send("220 x\r\n")
        s.expect("EHLO", "250 x\r\n")
        s.expect("MAIL", "250 ok\r\n")
        s.expect("RCPT TO:<a@", "250 ok\r\n")
        s.expect("RCPT TO:<b@", "551 gone\r\n")
        s.expect("DATA", "354 go\r\n")
        s.read_data()
        s.send("250 queued\r\n")
    s = Server(h)
    route(qhome, s.port)
    out = run(qhome, recips=("a@example.test", "b@example.test"))
    s.join()
    assert out == (b"r\0h127.0.0.1 does not like recipient.\nRemote host said: 551 gone\n\0"
                   b"K127.0.0.1 accepted message.\nRemote host said: 250 queued\n\0")


def test_greeting_not_220(qhome):
    s = Server(lambda s: (s.send("421 busy\r\n"), s.line()))
    route(qhome, s.port)
    out = run(qhome)
    s.join()
    assert out == b"ZConnected to 127.0.0.1 but greeting failed.\nRemote host said: 421 busy\n\0"


@pytest.mark.parametrize("code,kind", [("553", b"D"), ("451", b"Z")])
def test_mail_refused(qhome, code, kind):
    def h(s):
        s.send("220 x\r\n")
        s.expect("EHLO", "250 x\r\n")
        s.expect("MAIL", f"{code} no\r\n")
        s.expect("QUIT", None)
    s = Server(h)
    route(qhome, s.port)
    out = run(qhome)
    s.join()
    assert out == kind + b"Connected to 127.0.0.1 but sender was rejected.\nRemote host said: " + \
        code.encode() + b" no\n\0"


@pytest.mark.parametrize("code,kind", [("554", b"D"), ("452", b"Z")])
def test_data_refused_and_after_message(qhome, code, kind):
    def h(s):
        s.send("220 x\r\n")
        s.expect("EHLO", "250 x\r\n")
        mail_tail(s, final=f"{code} nope\r\n")
    s = Server(h)
    route(qhome, s.port)
    out = run(qhome)
    s.join()
    assert out == b"r\0" + kind + b"127.0.0.1 failed after I sent the message.\nRemote host said: " + \
        code.encode() + b" nope\n\0"


def test_connection_refused(qhome):
    route(qhome, free_port())
    assert run(qhome) == b"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\0"


def test_cut_after_final_dot_is_possible_duplicate(qhome):
    def h(s):
        s.send("220 x\r\n")
        s.expect("EHLO", "250 x\r\n")
        s.expect("MAIL", "250 ok\r\n")
        s.expect("RCPT", "250 ok\r\n")
        s.expect("DATA", "354 go\r\n")
        s.read_data()
        s.send("25")           # half a reply, then the connection dies
    s = Server(h)
    route(qhome, s.port)
    out = run(qhome)
    s.join()
    assert out == b"r\0ZConnected to 127.0.0.1 but connection died. Possible duplicate! (#4.4.2)\n\0"


def test_cut_before_data_is_no_duplicate(qhome):
    def h(s):
        s.send("220 x\r\n")
        s.expect("EHLO", "250 x\r\n")
        s.expect("MAIL", None)
    s = Server(h)
    route(qhome, s.port)
    assert run(qhome) == b"ZConnected to 127.0.0.1 but connection died. (#4.4.2)\n\0"
    s.join()


def test_remote_text_cut_at_5000_and_crs_removed(qhome):
    long = "x" * 6000

    def h(s):
        s.send("220 x\r\n")
        s.expect("EHLO", "250 x\r\n")
        s.expect("MAIL", f"550-a\rb\r\n550 {long}\r\n")
        s.expect("QUIT", None)
    s = Server(h)
    route(qhome, s.port)
    out = run(qhome)
    s.join()
    text = ("550-ab\n550 " + long).encode()[:5000]
    assert out == b"DConnected to 127.0.0.1 but sender was rejected.\nRemote host said: " + text + b"\0"


def test_endless_continuation_is_temporary(qhome):
    def h(s):
        s.send("220 x\r\n")
        s.expect("EHLO", "250 x\r\n")
        s.line()
        try:
            for _ in range(100000):
                s.send("250-more\r\n" * 10)
        except OSError:
            pass
    s = Server(h)
    route(qhome, s.port)
    assert run(qhome) == b"ZConnected to 127.0.0.1 but connection died. (#4.4.2)\n\0"
    s.join()


def test_ipv6_literal(qhome):
    try:
        ls = socket.socket(socket.AF_INET6)
        ls.bind(("::1", 0))
    except OSError:
        must_have(False, "no IPv6 loopback")
    ls.listen(1)
    port = ls.getsockname()[1]
    (qhome / "control" / "smtproutes").write_text(f"example.test:[::1]:{port}\n")

    def serve():
        c, _ = ls.accept()
        c.settimeout(TIMEOUT)
        f = c.makefile("rb")
        c.sendall(b"220 x\r\n")
        for reply in (b"250 x\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"):
            f.readline()
            c.sendall(reply)
        while f.readline() != b".\r\n":
            pass
        c.sendall(b"250 ok\r\n")
        f.readline()
        c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert run(qhome) == b"r\0K::1 accepted message.\nRemote host said: 250 ok\n\0"
    t.join(TIMEOUT)
    ls.close()


# --------------------------------------------------------------------------- TLS by policy (C1-C6)

NOCONN = b"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"


def policy(qhome, pki, level, opts=""):
    (qhome / "control" / "tlspolicy").write_text(f"example.test:{level}{opts}\n")
    (qhome / "control" / "tlscafile").write_text(f"{pki / 'ca.pem'}\n")


def tls_server(certname="server-ec", pre_caps="250-x\r\n250-SIZE 10\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n",
               starttls_reply="220 go\r\n"):
    def h(s):
        s.send("220 x ESMTP\r\n")
        s.expect("EHLO", pre_caps)
        ln = s.line()
        if ln.upper() != "STARTTLS":
            return
        s.send(starttls_reply)
        if not starttls_reply.startswith("220"):
            s.expect("QUIT", None)
            return
        s.starttls(certname)
        s.expect("EHLO", "250-x\r\n250 8BITMIME\r\n")
        mail_tail(s)
    return h


def tls_line(out):
    return [ln for ln in out.split(b"\0")[-2].split(b"\n") if ln.startswith(b"TLS")]


@pytest.mark.parametrize("level", ["may", "encrypt", "verify"])
def test_starttls_levels_deliver(qhome, pki, level):
    s = Server(tls_server(), pki=pki)
    route(qhome, s.port)
    policy(qhome, pki, level)
    out = run(qhome)
    s.join()
    assert out.startswith(b"r\0K127.0.0.1 accepted message.\nRemote host said: 250 ok\n"), out
    assert s.tls
    # C3: EHLO again under TLS; nothing learned before it (SIZE, AUTH) is used
    assert [ln.split()[0] for ln in s.lines] == ["EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert s.lines[3] == "MAIL FROM:<s@client.test>"
    t = tls_line(out)
    assert len(t) == 1 and t[0].startswith(b"TLS: TLSv1.3 TLS_"), out
    assert t[0].endswith(f", Verified peer 127.0.0.1 (against {pki / 'ca.pem'})".encode()), out


def test_tlshosts_pem_means_verify(qhome, pki):
    (qhome / "control" / "tlshosts").mkdir()
    (qhome / "control" / "tlshosts" / "127.0.0.1.pem").write_bytes((pki / "ca.pem").read_bytes())
    s = Server(tls_server("wrongname"), pki=pki, expect_hangup=True)     # the client fails TLS
    route(qhome, s.port)
    out = run(qhome)
    s.join()
    assert out.startswith(NOCONN) and b"TLS certificate verification failed with 127.0.0.1" in out, out
    assert b"policy verify" in out and b"(verify-name)" in out, out
    assert not any(ln.startswith("MAIL") for ln in s.lines)


def test_notlshosts_means_plaintext(qhome, pki):
    (qhome / "control" / "notlshosts").mkdir()
    (qhome / "control" / "notlshosts" / "127.0.0.1").write_text("")

    def h(s):
        s.send("220 x\r\n")
        s.expect("EHLO", "250-x\r\n250 STARTTLS\r\n")
        mail_tail(s)
    s = Server(h)
    route(qhome, s.port)
    out = run(qhome)
    s.join()
    assert out == b"r\0K127.0.0.1 accepted message.\nRemote host said: 250 ok\n\0"
    assert "STARTTLS" not in s.lines and not s.tls


@pytest.mark.parametrize("level", ["encrypt", "verify"])
def test_required_tls_not_offered(qhome, pki, level):
    def h(s):
        s.send("220 x\r\n")
        s.expect("EHLO", "250-x\r\n250 8BITMIME\r\n")
        s.expect("QUIT", None)
    s = Server(h)
    route(qhome, s.port)
    policy(qhome, pki, level)
    out = run(qhome)
    s.join()
    assert out == NOCONN + (f"TLS is required (policy {level}) but 127.0.0.1 [127.0.0.1] did not offer "
                            "STARTTLS\n\0").encode()
    assert [ln.split()[0] for ln in s.lines] == ["EHLO", "QUIT"]


def test_required_tls_454(qhome, pki):
    s = Server(tls_server(starttls_reply="454 TLS not available\r\n"), pki=pki)
    route(qhome, s.port)
    policy(qhome, pki, "encrypt")
    out = run(qhome)
    s.join()
    assert out == NOCONN + (b"TLS is required (policy encrypt) but 127.0.0.1 [127.0.0.1] refused STARTTLS: "
                            b"454 TLS not available\n\0")
    assert not any(ln.startswith("MAIL") for ln in s.lines)


def test_may_454_goes_on_in_plaintext(qhome, pki):
    def h(s):
        s.send("220 x\r\n")
        s.expect("EHLO", "250-x\r\n250 STARTTLS\r\n")
        s.expect("STARTTLS", "454 not now\r\n")
        mail_tail(s)
    s = Server(h)
    route(qhome, s.port)
    out = run(qhome)
    s.join()
    assert out.startswith(b"r\0K127.0.0.1 accepted message.\nRemote host said: 250 ok\n")
    assert b"TLS: STARTTLS refused by 127.0.0.1 [127.0.0.1] (454 not now), sent in plaintext\n\0" in out


@pytest.mark.parametrize("level", ["encrypt", "may"])
def test_injection_after_220(qhome, pki, level):
    """C2: a reply injected behind the 220 is never read as a TLS reply; may retries in plaintext."""
    def h(s):
        if s.n == 0:
            s.send("220 x\r\n")
            s.expect("EHLO", "250-x\r\n250 STARTTLS\r\n")
            s.expect("STARTTLS", "220 go\r\n250-x\r\n250 AUTH LOGIN\r\n")
            s.line()
        else:
            s.send("220 x\r\n")
            s.expect("EHLO", "250-x\r\n250 STARTTLS\r\n")
            mail_tail(s)
    s = Server(h, conns=2 if level == "may" else 1)
    route(qhome, s.port)
    policy(qhome, pki, level)
    out = run(qhome)
    s.join()
    if level == "encrypt":
        assert out.startswith(NOCONN) and b"refused: plaintext injected after STARTTLS" in out, out
        assert b"(injection)" in out
        assert not any(ln.startswith("MAIL") for ln in s.lines)
    else:
        assert out.startswith(b"r\0K127.0.0.1 accepted message.\n"), out
        assert b"failed before (TLS refused: plaintext injected" in out and b"sent in plaintext" in out


@pytest.mark.parametrize("cert,level,ok,word", [
    ("wrongname", "may", True, b"Trusted"), ("unknown", "may", True, b"Untrusted"),
    ("selfsigned", "encrypt", True, b"Untrusted"), ("expired", "encrypt", True, b"Untrusted"),
    ("wrongname", "verify", False, b"verify-name"), ("unknown", "verify", False, b"verify-"),
    ("selfsigned", "verify", False, b"verify-"), ("expired", "verify", False, b"verify-expired"),
    ("wrongname", "secure", False, b"verify-name")])
def test_certificates_per_level(qhome, pki, cert, level, ok, word):
    s = Server(tls_server(cert), pki=pki, expect_hangup=not ok)         # a refused certificate: TLS fails
    route(qhome, s.port)
    policy(qhome, pki, level)
    out = run(qhome)
    s.join()
    if ok:
        assert out.startswith(b"r\0K127.0.0.1 accepted message.\n"), out
        assert word + b" peer 127.0.0.1" in tls_line(out)[0], out
    else:
        assert out.startswith(NOCONN) and word in out, out
        assert not any(ln.startswith("MAIL") for ln in s.lines)


def test_secure_matches_domain(qhome, pki):
    s = Server(tls_server(), pki=pki)
    route(qhome, s.port)
    policy(qhome, pki, "secure", ":match=mail.test.example")
    out = run(qhome)
    s.join()
    assert out.startswith(b"r\0K127.0.0.1 accepted message.\n") and b"Verified peer" in out, out


def test_fingerprint(qhome, pki):
    import hashlib
    import base64
    pem = (pki / "server-ec-leaf.pem").read_text()
    der = base64.b64decode("".join(pem.split("-----")[2].split()))
    fp = "SHA256:" + hashlib.sha256(der).hexdigest()
    s = Server(tls_server(), pki=pki)
    route(qhome, s.port)
    policy(qhome, pki, "fingerprint", f":fingerprint=SHA256:{'0' * 64}|{fp}")
    out = run(qhome)
    s.join()
    assert out.startswith(b"r\0K127.0.0.1 accepted message.\n"), out
    assert f"Verified peer 127.0.0.1 (fingerprint {fp})".encode() in out


def test_tls_truncated_after_final_dot(qhome, pki):
    """C6: the TLS stream cut (no close_notify) during the reply to the final dot."""
    def h(s):
        s.send("220 x\r\n")
        s.expect("EHLO", "250-x\r\n250 STARTTLS\r\n")
        s.expect("STARTTLS", "220 go\r\n")
        s.starttls()
        s.expect("EHLO", "250 x\r\n")
        s.expect("MAIL", "250 ok\r\n")
        s.expect("RCPT", "250 ok\r\n")
        s.expect("DATA", "354 go\r\n")
        s.read_data()
        s.send("250 o")
        s.sock.shutdown(socket.SHUT_RDWR)        # no close_notify
    s = Server(h, pki=pki)
    route(qhome, s.port)
    policy(qhome, pki, "encrypt")
    out = run(qhome)
    s.join()
    assert out.startswith(b"r\0ZConnected to 127.0.0.1 but connection died. Possible duplicate! (#4.4.2)\n"), out


def test_implicit_tls_port_465_route(qhome, pki):
    """smtproutes to port 465 means TLS at once.  The server binds a free port; the route says 465
    only when that port is free to bind (root), so this runs where it can."""
    must_have(os.geteuid() == 0, "port 465 needs root")
    try:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", 465))
    except OSError:
        must_have(False, "port 465 is taken")
    ls.listen(1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "server-ec.pem", pki / "server-ec.key")
    lines = []

    def serve():
        c, _ = ls.accept()
        c = ctx.wrap_socket(c, server_side=True)
        c.settimeout(TIMEOUT)
        f = c.makefile("rb")
        c.sendall(b"220 x\r\n")
        for reply in (b"250 x\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"):
            lines.append(f.readline())
            c.sendall(reply)
        while f.readline() != b".\r\n":
            pass
        c.sendall(b"250 ok\r\n")
        c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    route(qhome, 465)
    policy(qhome, pki, "verify")
    out = run(qhome)
    t.join(TIMEOUT)
    ls.close()
    assert out.startswith(b"r\0K127.0.0.1 accepted message.\n") and b"Verified peer 127.0.0.1" in out, out
    assert lines[0].startswith(b"EHLO")


# --------------------------------------------------------------------------- queue/lock/tcpto

def tcpto_file(qhome, records=()):
    """queue/lock/tcpto as qmail's installation makes it (1024 bytes), with |records|
    (ip, count, when) in netqmail's layout."""
    import struct
    buf = bytearray(1024)
    for i, (ip, count, when) in enumerate(records):
        buf[i * 16:i * 16 + 16] = socket.inet_aton(ip) + bytes([count, 0, 0, 0]) + struct.pack("<I", when) + \
            bytes(4)
    f = qhome / "queue" / "lock" / "tcpto"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(bytes(buf))
    return f


def tcpto_records(f):
    import struct
    data = f.read_bytes()
    assert len(data) == 1024
    out = []
    for i in range(64):
        r = data[i * 16:i * 16 + 16]
        if r[:4] != bytes(4):
            out.append((socket.inet_ntoa(r[:4]), r[4], struct.unpack("<I", r[8:12])[0]))
    return out


def test_tcpto_recent_timeouts_skip_the_address(qhome):
    import time
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.setblocking(False)
    route(qhome, ls.getsockname()[1])
    now = int(time.time())
    f = tcpto_file(qhome, [("192.0.2.7", 5, now), ("127.0.0.1", 2, now - 60)])
    assert run(qhome) == NOCONN + b"\0"
    with pytest.raises(BlockingIOError):
        ls.accept()            # not even a connection was tried
    ls.close()
    assert tcpto_records(f) == [("192.0.2.7", 5, now), ("127.0.0.1", 2, now - 60)]


def test_tcpto_old_timeouts_and_one_timeout_are_tried_and_cleared(qhome):
    import time
    now = int(time.time())
    for count, when in ((2, now - 2 * 3600), (1, now)):
        s = Server(plain_ok)
        route(qhome, s.port)
        f = tcpto_file(qhome, [("127.0.0.1", count, when)])
        assert run(qhome).startswith(b"r\0K127.0.0.1 accepted message.\n")
        s.join()
        assert tcpto_records(f) == [("127.0.0.1", 0, when)]     # a connection clears the count


def test_tcpto_connect_timeout_is_counted(qhome):
    """A listener whose queue is full drops the SYN: the connect times out (timeoutconnect 1)."""
    import time
    (qhome / "control" / "timeoutconnect").write_text("1\n")
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    port = ls.getsockname()[1]
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        fillers.append(c)
    route(qhome, port)
    f = tcpto_file(qhome, [("192.0.2.7", 3, 1000)])
    t0 = int(time.time())
    assert run(qhome) == NOCONN + b"\0"
    recs = tcpto_records(f)
    assert recs[0] == ("192.0.2.7", 3, 1000) and recs[1][:2] == ("127.0.0.1", 1) and recs[1][2] >= t0, recs
    # the same outage (within two minutes) is counted once
    assert run(qhome) == NOCONN + b"\0"
    assert tcpto_records(f)[1][:2] == ("127.0.0.1", 1)
    # a later one makes two: the address is then skipped
    tcpto_file(qhome, [("192.0.2.7", 3, 1000), ("127.0.0.1", 1, t0 - 600)])
    assert run(qhome) == NOCONN + b"\0"
    assert tcpto_records(f)[1][:2] == ("127.0.0.1", 2)
    for c in fillers:
        c.close()
    ls.close()


def test_tcpto_refused_is_no_timeout(qhome):
    route(qhome, free_port())
    f = tcpto_file(qhome)
    assert run(qhome) == NOCONN + b"\0"
    assert tcpto_records(f) == []


# --------------------------------------------------------------------------- control/tlsclientciphers

def tls12_server(s):
    s.send("220 x\r\n")
    s.expect("EHLO", "250-x\r\n250 STARTTLS\r\n")
    s.expect("STARTTLS", "220 go\r\n")
    s.starttls(max_version=ssl.TLSVersion.TLSv1_2)
    s.expect("EHLO", "250 x\r\n")
    mail_tail(s)


@pytest.mark.parametrize("level,cipher", [
    ("may", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"),
    ("encrypt", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"),
    ("verify", "TLS_ECDHE_ECDSA_WITH_AES_")])   # the file does not apply: the library's AEAD list
def test_tlsclientciphers(qhome, pki, level, cipher):
    (qhome / "control" / "tlsclientciphers").write_text("ECDHE-ECDSA-AES256-SHA\n")
    s = Server(tls12_server, pki=pki)
    route(qhome, s.port)
    policy(qhome, pki, level)
    out = run(qhome)
    s.join()
    assert out.startswith(b"r\0K127.0.0.1 accepted message.\n"), out
    t = tls_line(out)[0].decode()
    assert t.startswith(f"TLS: TLSv1.2 {cipher}"), t
    if level == "verify":
        assert "_GCM_" in t or "CHACHA20" in t, t


def test_tlsclientciphers_naming_nothing_usable(qhome, pki):
    (qhome / "control" / "tlsclientciphers").write_text("NO-SUCH-CIPHER\n")
    route(qhome, free_port())
    s = Server(lambda s: (s.send("220 x\r\n"), s.line()), expect_hangup=True)
    route(qhome, s.port)
    policy(qhome, pki, "encrypt")
    out = run(qhome)
    s.join()
    assert out.startswith(NOCONN) and b"TLS configuration failed (policy encrypt): " in out, out


@pytest.mark.parametrize("port", ["0", "65536", "99999999999999999999", "25x", "", "-25", " 25"])
def test_smtproutes_bad_port_is_a_control_failure(qhome, port):
    (qhome / "control" / "smtproutes").write_text(f"example.test:[127.0.0.1]:{port}\n")
    assert run(qhome) == b"ZUnable to read control files. (#4.3.0)\n\0"


def old_tls_context(pki, lo, hi):
    """A server context of TLS versions |lo| to |hi|, old suites (CBC) allowed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = lo
    ctx.maximum_version = hi
    ctx.load_cert_chain(pki / "server-ec.pem", pki / "server-ec.key")
    return ctx


def tls11_server(s):
    """A server stuck at TLS 1.1 (CBC suites only)."""
    s.send("220 x\r\n")
    s.expect("EHLO", "250-x\r\n250 STARTTLS\r\n")
    s.expect("STARTTLS", "220 go\r\n")
    s.starttls(ctx=old_tls_context(s.pki, ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1))
    s.expect("EHLO", "250 x\r\n")
    mail_tail(s)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
@pytest.mark.parametrize("level", ["may", "encrypt", "verify"])
def test_tls11_only_for_opportunistic_levels(qhome, pki, level):
    """may and encrypt take TLS 1.0/1.1 with CBC suites (the alternative is plaintext); verify keeps
    the library's floor, TLS 1.2 with AEAD suites, and defers."""
    s = Server(tls11_server, pki=pki, expect_hangup=level == "verify")
    route(qhome, s.port)
    policy(qhome, pki, level)
    out = run(qhome)
    s.join()
    if level == "verify":
        assert out.startswith(NOCONN) and b"TLS handshake failed with 127.0.0.1 [127.0.0.1] (policy verify)" in out, out
        assert not any(ln.startswith("MAIL") for ln in s.lines)
    else:
        assert out.startswith(b"r\0K127.0.0.1 accepted message.\n"), out
        assert tls_line(out)[0].startswith(b"TLS: TLSv1.1 TLS_ECDHE_ECDSA_WITH_AES_"), out


def test_local_parts_quoted_as_qmail_does(qhome):
    """qmail's quote.c: a local part that is not a dot-atom goes as a quoted string."""
    def h(s):
        s.send("220 x\r\n")
        s.expect("EHLO", "250 x\r\n")
        s.expect("MAIL", "250 ok\r\n")
        for _ in range(5):
            s.expect("RCPT", "250 ok\r\n")
        s.expect("DATA", "354 go\r\n")
        s.read_data()
        s.send("250 ok\r\n")
        s.line()
    s = Server(h)
    route(qhome, s.port)
    recips = ("a b@example.test", ".x@example.test", "a..b@example.test", "ok.name+tag@example.test",
              'q"\\@example.test')
    out = run(qhome, sender='c"d@client.test', recips=recips)
    s.join()
    assert out == b"r\0" * 5 + b"K127.0.0.1 accepted message.\nRemote host said: 250 ok\n\0"
    assert s.lines[1:7] == ['MAIL FROM:<"c\\"d"@client.test>', 'RCPT TO:<"a b"@example.test>',
                            'RCPT TO:<".x"@example.test>', 'RCPT TO:<"a..b"@example.test>',
                            "RCPT TO:<ok.name+tag@example.test>", 'RCPT TO:<"q\\"\\\\"@example.test>']


def test_bounce_sender_stays_empty(qhome):
    s = Server(plain_ok)
    route(qhome, s.port)
    assert run(qhome, sender="").startswith(b"r\0K127.0.0.1 accepted")
    s.join()
    assert s.lines[1] == "MAIL FROM:<>"
