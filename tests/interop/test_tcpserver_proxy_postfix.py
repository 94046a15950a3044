"""A real Postfix relaying into tcpserver-ssl -e smtp (the STARTTLS protocol proxy).

Postfix (an instance of its own, peers.py) sends every message to relayhost
[127.0.0.1]:PORT, our -e smtp port in front of standins/fake-qmail-smtpd, with TLS
mandatory: smtp_tls_security_level=encrypt, and verify against the test CA with the
name "localhost" matched and sent as SNI.  The
message is submitted with Postfix's own sendmail.  Asserted: Postfix's log shows the
TLS connection to our port and status=sent, the stand-in got the message exactly
(Postfix adds only its Received: header), and Postfix said EHLO again after TLS.
Needs root (a Postfix instance).
"""
import re
import shutil
import subprocess

import pytest  # noqa: F401

from conftest import RUN_TIMEOUT, free_port
from peers import instdir, peer, start_postfix  # noqa: F401 (fixtures)
from tss_util import PROG, SMTPD, qmail_pem, tss, tss_server, user, work  # noqa: F401

MESSAGE = ("From: sender@example.org\r\nTo: rcpt@example.org\r\nSubject: relayed by Postfix\r\n"
           "Message-ID: <proxy-test-1@example.org>\r\nDate: Sat, 28 Nov 2026 04:00:00 +0000\r\n\r\n"
           "STARTTLS\r\n.leading dot\r\n..two dots\r\nlast line\r\n")
DELIVERY_WAIT = RUN_TIMEOUT    # Postfix picks the message up, queues it and relays it


def one_smtpd():
    """A plain smtpd port: it listening tells that the master runs."""
    ports = {"smtpd": free_port()}
    return ports, [f"{ports['smtpd']} inet n - n - - smtpd"]


def relay_through_proxy(need, work, tss, qmail_pem, pki, instdir, tls_main, tss_opts=()):
    srv = tss_server(work, tss, ["-v", "-l0", "-HR", "-e", "smtp", "-n", str(qmail_pem), *tss_opts],
                     [SMTPD, "host"])
    pf = start_postfix(need, work.procs, pki, instdir, services=one_smtpd,
                       main=[f"relayhost = [127.0.0.1]:{srv.port}", "smtp_tls_loglevel = 1", *tls_main])
    try:
        sendmail = peer(need, "sendmail")
        r = subprocess.run([sendmail, "-C", str(instdir), "-f", "sender@example.org", "rcpt@example.org"],
                           input=MESSAGE.encode(), capture_output=True, timeout=RUN_TIMEOUT)
        assert r.returncode == 0, r.stderr
        sent = pf.wait_log(rf"to=<rcpt@example\.org>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:{srv.port},.*"
                           r"status=(\w+).*", timeout=DELIVERY_WAIT)
        assert sent and sent.group(1) == "sent", pf.log()
        return srv, pf, work.wait_records(1)[0]
    finally:
        pf.stop()


def check_delivery(srv, rec):
    [msg] = rec["messages"]
    assert msg["from"].startswith("<sender@example.org>") and msg["rcpt"] == ["<rcpt@example.org>"], msg
    data = msg["data"]
    assert data.endswith(MESSAGE), data
    added = data[:-len(MESSAGE)]
    assert re.fullmatch(r"Received: [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*", added), added
    verbs = [c.split(" ", 1)[0].upper() for c in rec["commands"]]
    # EHLO before TLS, the proxy's RSET, EHLO again under TLS, then the transaction.
    assert verbs[:3] == ["EHLO", "RSET", "EHLO"] and verbs[3:6] == ["MAIL", "RCPT", "DATA"], rec["commands"]
    srv.wait_for(rf"^{PROG}: tls \d+ TLSv1\.3 ")


def test_postfix_encrypt_into_proxy(need, work, tss, qmail_pem, pki, instdir):
    srv, pf, rec = relay_through_proxy(need, work, tss, qmail_pem, pki, instdir,
                                       ["smtp_tls_security_level = encrypt"])
    assert re.search(rf"TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:{srv.port}: TLSv1\.3 ",
                     pf.log()), pf.log()
    check_delivery(srv, rec)


def test_postfix_verify_into_proxy(need, work, tss, qmail_pem, pki, instdir):
    shutil.copy(pki / "ca.pem", instdir / "ca.pem")
    srv, pf, rec = relay_through_proxy(need, work, tss, qmail_pem, pki, instdir,
                                       ["smtp_tls_security_level = verify", f"smtp_tls_CAfile = {instdir}/ca.pem",
                                        "smtp_tls_verify_cert_match = localhost", "smtp_tls_servername = localhost"])
    assert re.search(rf"Verified TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:{srv.port}: TLSv1\.3 ",
                     pf.log()), pf.log()
    check_delivery(srv, rec)
    srv.wait_for(rf"^{PROG}: tls \d+ TLSv1\.3 \S+ sni=localhost ")
