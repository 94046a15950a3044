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
from pathlib import Path

import pytest

from conftest import free_port

TIMEOUT = 15


def prog():
    p = os.environ.get("MAILTLS_QMAIL_REMOTE")
    if not p or not os.access(p, os.X_OK):
        pytest.fail(f"MAILTLS_QMAIL_REMOTE={p!r} is not executable; run through ctest")
    return p


class Server:
    """One connection on 127.0.0.1, served by handler(self) in a thread."""

    def __init__(self, handler, pki=None):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.lsock.settimeout(TIMEOUT)
        self.port = self.lsock.getsockname()[1]
        self.handler = handler
        self.pki = pki
        self.lines = []        # every line received, in order, without CRLF
        self.data = b""       # the DATA body as received (up to the final dot)
        self.tls = False
        self.error = None
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        try:
            self.sock, _ = self.lsock.accept()
            self.sock.settimeout(TIMEOUT)
            self.f = self.sock.makefile("rb")
            self.handler(self)
        except Exception as e:      # noqa: BLE001 - reported by join()
            self.error = e
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
            self.lsock.close()

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

    def starttls(self, certname="server-ec"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pki / f"{certname}.pem", self.pki / f"{certname}.key")
        self.sock = ctx.wrap_socket(self.sock, server_side=True)
        self.f = self.sock.makefile("rb")
        self.tls = True

    def join(self):
        self.t.join(TIMEOUT)
        assert not self.t.is_alive()
        if self.error and not isinstance(self.error, (EOFError, OSError)):
            raise self.error


def mail_tail(s, final="250 ok\r\n"):
    """MAIL, RCPT, DATA, the message, the final reply, QUIT."""
    s.expect("MAIL FROM:", "250 ok\r\n")
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
    d = tmp_path / "qmail"
    (d / "control").mkdir(parents=True)
    (d / "control" / "me").write_text("client.test.example\n")
    (d / "control" / "timeoutremote").write_text("10\n")
    (d / "control" / "timeoutconnect").write_text("5\n")
    return d


def route(qhome, port, host="[127.0.0.1]", extra=""):
    (qhome / "control" / "smtproutes").write_text(f"example.test:{host}:{port}\n{extra}")


def run(qhome, msg=b"Subject: hi\n\nbody\n", host="example.test", recips=("u@example.test",),
        sender="s@client.test"):
    p = subprocess.run([prog(), host, sender, *recips], input=msg, capture_output=True,
                       env={"QMAILHOME": str(qhome), "PATH": os.environ.get("PATH", "")}, timeout=TIMEOUT * 2)
    assert p.returncode == 0
    assert p.stderr == b""
    return p.stdout


# --------------------------------------------------------------------------- the netqmail contract

def test_usage(qhome):
    p = subprocess.run([prog(), "x", "y"], capture_output=True, env={"QMAILHOME": str(qhome)}, timeout=TIMEOUT)
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
        pytest.skip("no IPv6 loopback")
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


def test_own_address_without_route_is_5_4_6(qhome):
    out = run(qhome, host="[127.0.0.1]")
    assert out.startswith(b"DSorry. Although I'm listed as a best-preference MX or A for that host,\n")
    assert out.endswith(b"(#5.4.6)\n\0")
