"""qmail-remote's TLS version floor: an smtproutes route to port 465 (implicit TLS, RFC 8314) keeps the
library's floor (TLS 1.2, AEAD suites) even at policy may, while STARTTLS at may takes TLS 1.0.

Port 465 is what makes a route implicit TLS, so the 465 servers must listen on 127.0.0.1:465: each
scenario runs in a private network namespace (`unshare -n`, as root; loopback brought up), where nothing
else holds that port.  This file is both the pytest module and, run as a program inside the namespace,
the scenario runner: it starts the server, runs qmail-remote, and prints one JSON object (the report, the
server's output or the lines it got).

Scenarios on 127.0.0.1:465:
  tls10    openssl s_server -tls1 -cipher DEFAULT@SECLEVEL=0 (an old server: TLS 1.0 only)
  cbc12    openssl s_server -tls1_2 -cipher ECDHE-ECDSA-AES128-SHA (TLS 1.2, a CBC suite only)
  aead12   a Python server taking TLS 1.0 to 1.2 with any suite, serving SMTP (the control: the same
           route delivers when the server can meet the floor)
The STARTTLS case needs no namespace: a scripted server on a free port that speaks TLS 1.0 only.
"""
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from conftest import RUN_TIMEOUT, in_namespace, qmail_remote  # noqa: E402
from qmailremote import qmail_home  # noqa: E402
from test_qmail_remote import (NOCONN, Server, mail_tail, old_tls_context, policy, qhome, route,  # noqa: E402,F401
                               run, tls_line)

S_SERVER_ARGS = {
    "tls10": ["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"],
    "cbc12": ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"],
}


# --------------------------------------------------------------------------- inside the namespace

def listening(port):
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout
    return bool(out.strip())


def runner(name, work, program, pki, level):
    """Runs scenario |name| (in the namespace); prints the JSON result."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    q = qmail_home(Path(work) / "qmail", smtproutes="example.test:[127.0.0.1]:465\n",
                   tlspolicy=f"example.test:{level}\n", tlscafile=f"{pki / 'ca.pem'}\n")
    result = {}
    server = None
    pyserver = None
    try:
        if name in S_SERVER_ARGS:
            log = open(Path(work) / "s_server.log", "wb")
            # stdin a pipe kept open: s_server ends its session at EOF on stdin
            server = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:465", "-naccept", "2",
                                       "-cert", str(pki / "server-ec.pem"), "-key", str(pki / "server-ec.key"),
                                       *S_SERVER_ARGS[name]], stdin=subprocess.PIPE, stdout=log,
                                      stderr=subprocess.STDOUT)
        else:
            ctx = old_tls_context(pki, ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_2)

            def implicit(s):
                s.starttls(ctx=ctx)
                s.send("220 x ESMTP\r\n")
                s.expect("EHLO", "250 x\r\n")
                mail_tail(s)
            pyserver = ImplicitServer(implicit, pki)
        deadline = time.monotonic() + RUN_TIMEOUT
        while not listening(465):
            if time.monotonic() > deadline or (server and server.poll() is not None):
                raise RuntimeError("the 465 server did not start")
            time.sleep(0.05)
        p = subprocess.run([program, "example.test", "s@client.test", "u@example.test"],
                           input=b"Subject: hi\n\nbody\n", capture_output=True,
                           env={"QMAILHOME": str(q), "PATH": os.environ.get("PATH", "")}, timeout=RUN_TIMEOUT * 2)
        result = {"rc": p.returncode, "stderr": p.stderr.decode("latin-1"), "report": p.stdout.decode("latin-1")}
        if pyserver:
            pyserver.join()
            result["lines"] = pyserver.lines
    finally:
        if server:
            server.kill()
            server.wait()
            result["server"] = (Path(work) / "s_server.log").read_text("latin-1")
    print(json.dumps(result))


class ImplicitServer(Server):
    """test_qmail_remote.Server, one connection, on 127.0.0.1:465 (its own binds a free port)."""

    def __init__(self, handler, pki):
        self.conns = 1
        self.expect_hangup = False
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 465))
        self.lsock.listen(2)
        self.lsock.settimeout(RUN_TIMEOUT)
        self.port = 465
        self.handler = handler
        self.pki = pki
        self.lines = []
        self.data = b""
        self.tls = False
        self.errors = []
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()


# --------------------------------------------------------------------------- the tests

def scenario(name, level):
    r = in_namespace(__file__, "-n", name, "qmr-465.", [qmail_remote(), os.environ["MAILTLS_TEST_PKI"], level],
                     needs=("openssl",), timeout=RUN_TIMEOUT * 4)
    assert r["rc"] == 0 and r["stderr"] == "", r
    return r


FAILED = "TLS handshake failed with 127.0.0.1 [127.0.0.1] (policy {level}): handshake: {why} (tls)"


@pytest.mark.parametrize("level", ["may", "encrypt"])
def test_465_refuses_tls10_even_at_may(level):
    """A TLS 1.0-only server on 465: the handshake fails on the version (the server's protocol_version
    alert), the message is deferred with a Z naming it, and nothing of SMTP was sent."""
    r = scenario("tls10", level)
    rep = r["report"]
    assert rep.startswith(NOCONN.decode()), r
    assert FAILED.format(level=level, why="TLSV1_ALERT_PROTOCOL_VERSION") in rep, r
    assert rep.endswith("\n\0") and "accepted" not in rep, r
    assert "unsupported protocol" in r["server"], r["server"]


@pytest.mark.parametrize("level", ["may", "encrypt"])
def test_465_refuses_tls12_without_aead_even_at_may(level):
    """TLS 1.2 with only a CBC suite on 465: no suite in common (AEAD only), a Z naming the failure."""
    r = scenario("cbc12", level)
    rep = r["report"]
    assert rep.startswith(NOCONN.decode()), r
    assert FAILED.format(level=level, why="SSLV3_ALERT_HANDSHAKE_FAILURE") in rep, r
    assert "no shared cipher" in r["server"], r["server"]


def test_465_delivers_when_the_server_meets_the_floor():
    """The control: the same route at may, to a server that also takes old versions, delivers over
    TLS 1.2 with an AEAD suite."""
    r = scenario("aead12", "may")
    rep = r["report"]
    assert rep.startswith("r\0K127.0.0.1 accepted message.\n"), r
    tls = [ln for ln in rep.split("\0")[-2].split("\n") if ln.startswith("TLS")]
    assert len(tls) == 1 and tls[0].startswith("TLS: TLSv1.2 TLS_ECDHE_ECDSA_WITH_"), r
    suite = tls[0].split()[2]
    assert suite.endswith(("_GCM_SHA256,", "_GCM_SHA384,", "_CHACHA20_POLY1305_SHA256,")), r
    assert r["lines"][0].startswith("EHLO"), r


def test_465_failure_never_claims_plaintext():
    """At may, a failed STARTTLS handshake is retried in plaintext; port 465 has no plaintext: a Z, no retry."""
    rep = scenario("tls10", "may")["report"]
    assert "plaintext" not in rep, rep
    assert rep.startswith("Z"), rep


def tls10_starttls_server(s):
    """STARTTLS offered, then TLS 1.0 only (CBC suites)."""
    s.send("220 x\r\n")
    s.expect("EHLO", "250-x\r\n250 STARTTLS\r\n")
    s.expect("STARTTLS", "220 go\r\n")
    s.starttls(ctx=old_tls_context(s.pki, ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1))
    s.expect("EHLO", "250 x\r\n")
    mail_tail(s)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1 is deprecated:DeprecationWarning")
def test_starttls_at_may_takes_tls10(qhome, pki):
    """STARTTLS at may: TLS 1.0 with a CBC suite is better than plaintext (Postfix's reasoning)."""
    s = Server(tls10_starttls_server, pki=pki)
    route(qhome, s.port)
    policy(qhome, pki, "may")
    out = run(qhome)
    s.join()
    assert out.startswith(b"r\0K127.0.0.1 accepted message.\nRemote host said: 250 ok\n"), out
    assert s.tls and s.data == b"Subject: hi\r\n\r\nbody\r\n", s.data
    tls = tls_line(out)
    assert len(tls) == 1 and tls[0].startswith(b"TLS: TLSv1 TLS_ECDHE_ECDSA_WITH_AES_"), out
    assert b"_CBC_SHA," in tls[0], out


if __name__ == "__main__":
    runner(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4]), sys.argv[5])
