"""TLS-layer edge cases against tcpserver-ssl (security.md S7), on loopback.

The server runs /bin/cat behind TLS (an echo), with -T 10.  Peers: openssl s_client
(-max_send_frag, -split_send_frag, the k/K KeyUpdate and R renegotiation commands,
-no_tls1_3, -tls1 and -tls1_1), and hand-built records: the first flight of Python's ssl
(over memory BIOs, robust_util.client_hello) sent as it is, cut into one-byte records,
behind empty records, changed into an SSLv3/TLS 1.0/TLS 1.1 hello; oversize records, an
oversize ClientHello, an SSLv2-style hello, an HTTP request.  Each bad case must get the
right fatal alert (where BoringSSL sends one), a "tls failed" line naming the reason,
exit 111 of the child, and the server must serve the next connection.

Truncation (QUIT, then FIN without close_notify): the library reports it as such
(MAILTLS_E_TRUNCATED: mailtls-probe prints end=truncated, end=close_notify for a clean
end); tcpserver-ssl -v logs it as such (no error line), and the program's exit code is
the child's; tcpclient-ssl -v logs a server's truncation.
"""
import random
import re
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

from robust_util import (ALERT, ALERTS, APPDATA, HANDSHAKE, PROG, SMTPD, WAIT, client_hello, ctx_ca,  # noqa: F401
                         executable_from_env, need, pki, probe, procs, qmail_pem, read_to_close, read_until, record,
                         records_of, reply, tls_alert, tls_connect, tss, tss_server, user, work)

CHILD_111 = 28416          # the wait status of a child that exited 111


@pytest.fixture
def echo(work, tss, qmail_pem):
    srv = tss_server(work, tss, ["-v", "-l0", "-HR", "-T", "10", "-n", str(qmail_pem)], ["/bin/cat"])
    srv.wait_for(rf"^{PROG}: status: 0/40$")
    return srv


def still_serving(srv, pki):
    """A normal TLS exchange with the echo works, and the parent runs."""
    mark = srv.mark()
    with tls_connect(pki, srv.port) as s:
        s.sendall(b"still serving\n")
        assert read_until(s, rb"still serving\n") == b"still serving\n"
        s.unwrap()
    assert srv.proc.running()
    pid, status = srv.end_of(since=mark)
    assert status == 0, srv.text(mark)


def raw(port, data):
    """Sends |data| on a plain TCP connection; returns (bytes until the server closed, how)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    with s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_to_close(s)


def finish_handshake(sock, obj, inc, out):
    """Drives an SSLObject over |sock| until its handshake is done."""
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            pending = out.read()
            if pending:
                sock.sendall(pending)
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("server closed during the handshake")
            inc.write(chunk)
    pending = out.read()
    if pending:
        sock.sendall(pending)


def read_obj(sock, obj, inc, want):
    data = b""
    while not data.endswith(want):
        try:
            data += obj.read(65536)
        except ssl.SSLWantReadError:
            chunk = sock.recv(65536)
            if not chunk:
                break
            inc.write(chunk)
    return data


def hello_body(pki, **opts):
    ch, *_ = client_hello(pki, **opts)
    [(t, v, body)] = records_of(ch)
    assert t == HANDSHAKE and body[0] == 1, ch[:10]
    return ch, body


def old_hello(pki, version):
    """A ClientHello of OpenSSL limited to TLS 1.2 (no supported_versions extension), its
    legacy_version and record version set to |version|: what an SSLv3, TLS 1.0 or TLS 1.1
    client sends."""
    _, body = hello_body(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    b = bytearray(body)
    b[4:6] = struct.pack("!H", version)
    return record(HANDSHAKE, bytes(b), version)


def v2_hello(version):
    """An SSLv2 CLIENT-HELLO (the format SSLv2 and some old SSLv3/TLS clients sent), one
    suite (ECDHE-RSA-AES128-GCM-SHA256), no session id, a 16-byte challenge."""
    body = b"\x01" + struct.pack("!HHHH", version, 3, 0, 16) + bytes.fromhex("00c02f") + bytes(range(16))
    return struct.pack("!H", 0x8000 | len(body)) + body


def bad_cases(pki):
    ch, body = hello_body(pki)
    rnd = random.Random(7)
    return {
        "appdata-before-hello": (record(APPDATA, b"") + ch, 10, "UNEXPECTED_RECORD"),
        "40-empty-records": (record(HANDSHAKE, b"") * 40 + ch, 10, "TOO_MANY_EMPTY_FRAGMENTS"),
        # 2^14 + 257 bytes of plaintext: one more than any record may carry.
        "oversize-record": (record(HANDSHAKE, b"\x01" + bytes(16640)), 22, "DATA_LENGTH_TOO_LONG"),
        "oversize-record-header": (record(HANDSHAKE, bytes(65535)), 22, "ENCRYPTED_LENGTH_TOO_LONG"),
        # A ClientHello that says it is 64 KiB long, in full records.
        "oversize-clienthello": (record(HANDSHAKE, b"\x01\x01\x00\x00" + bytes(16380))
                                 + record(HANDSHAKE, bytes(16384)) * 4, 47, "EXCESSIVE_MESSAGE_SIZE"),
        "sslv3-hello": (old_hello(pki, 0x0300), 70, "UNSUPPORTED_PROTOCOL"),
        "tls1.0-hello": (old_hello(pki, 0x0301), 70, "UNSUPPORTED_PROTOCOL"),
        "tls1.1-hello": (old_hello(pki, 0x0302), 70, "UNSUPPORTED_PROTOCOL"),
        "sslv2-hello": (v2_hello(0x0002), 70, "WRONG_VERSION_NUMBER"),
        "v2-format-tls1.0-hello": (v2_hello(0x0301), 70, "UNSUPPORTED_PROTOCOL"),
        # In the SSLv2 format a hello has no extensions, so no curve for ECDHE: no suite fits.
        "v2-format-tls1.2-hello": (v2_hello(0x0303), 40, "NO_SHARED_CIPHER"),
        # Another protocol: no alert, just the end.
        "http-request": (b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n", None, "HTTP_REQUEST"),
        "garbage": (bytes(rnd.randrange(256) for _ in range(300)), 70, "WRONG_VERSION_NUMBER"),
    }


CASES = ["appdata-before-hello", "40-empty-records", "oversize-record", "oversize-record-header",
         "oversize-clienthello", "sslv3-hello", "tls1.0-hello", "tls1.1-hello", "sslv2-hello",
         "v2-format-tls1.0-hello", "v2-format-tls1.2-hello",
         "http-request", "garbage"]


@pytest.mark.parametrize("case", CASES)
def test_hand_built_records_refused(echo, pki, case):
    data, alert, reason = bad_cases(pki)[case]
    mark = echo.mark()
    got, how = raw(echo.port, data)
    assert how in ("eof", "reset"), (how, got[:40])
    if alert is None:
        assert got == b"", got[:40]
    else:
        recs = records_of(got)
        assert recs and recs[0][0] == ALERT, got[:40]
        assert tls_alert(got) == alert, f"alert {tls_alert(got)}, expected {alert} ({ALERTS[alert]}): {got[:40]}"
    pid, status = echo.end_of(since=mark)
    assert status == CHILD_111, echo.text(mark)
    assert re.search(rf"^{PROG}: tls failed {pid} tls: handshake: {reason}$", echo.text(mark), re.M), \
        echo.text(mark)
    still_serving(echo, pki)


@pytest.mark.parametrize("maxver", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
@pytest.mark.parametrize("empties", [0, 3])
def test_one_byte_records(echo, pki, maxver, empties):
    """The ClientHello in one-byte records (after |empties| empty ones, which BoringSSL
    tolerates up to its limit), then application data one byte per record: the
    handshake completes and every byte comes back in order."""
    ch, obj, inc, out = client_hello(pki, maximum_version=maxver)
    [(t, v, body)] = records_of(ch)
    with socket.create_connection(("127.0.0.1", echo.port), timeout=WAIT) as s:
        s.sendall(record(HANDSHAKE, b"") * empties + b"".join(record(HANDSHAKE, body[i:i + 1])
                                                             for i in range(len(body))))
        finish_handshake(s, obj, inc, out)
        assert obj.version() == {ssl.TLSVersion.TLSv1_3: "TLSv1.3", ssl.TLSVersion.TLSv1_2: "TLSv1.2"}[maxver]
        line = b"one byte per record \x00\xff .\r\n"
        for b in line:
            obj.write(bytes([b]))
            sent = out.read()
            [(rt, _, rbody)] = records_of(sent)
            assert rt == APPDATA
            s.sendall(sent)
        assert read_obj(s, obj, inc, b"\r\n") == line
    still_serving(echo, pki)


def s_client(work, openssl, port, *args):
    return work.procs.start([openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                             *args], name="s_client", stdin=True)


def strip_msg(text):
    """s_client's output without the lines of -msg (a header line, then hex dump lines)."""
    return re.sub(r"(?:<<<|>>>) [^\n]*\n(?:    (?:[0-9a-f]{2} ?)+\s*\n)*", "", text)


def sent_appdata_lengths(text):
    """The lengths of the application data records s_client -msg says it sent."""
    return [int(m.group(1) + m.group(2), 16) for m in
            re.finditer(r"^>>> [^\n]*RecordHeader \[length 0005\]\n\s+17 03 03 ([0-9a-f]{2}) ([0-9a-f]{2})",
                        text, re.M)]


@pytest.mark.parametrize("opts,size,most", [(["-max_send_frag", "512"], 3000, 512),
                                            (["-split_send_frag", "1"], 200, 1)])
def test_s_client_fragments(echo, work, pki, need, opts, size, most):
    """s_client cutting its data into small records; the echo is intact and the records
    were as small as asked (their length is the data plus 17 bytes of TLS 1.3)."""
    openssl = need("openssl")
    p = s_client(work, openssl, echo.port, "-CAfile", pki / "ca.pem", "-msg", *opts)
    assert p.wait_for(r"^\s*Verify return code: 0 \(ok\)$") and re.search(r"^New, TLSv1\.3, ", p.text(), re.M), p.text()
    mark = p.mark()
    line = "".join(chr(0x41 + i % 26) for i in range(size))
    p.send(line + "\n")
    # cat echoes the bytes as they come, so -msg's lines may cut the echoed line.
    deadline = time.monotonic() + WAIT
    while line not in strip_msg(p.text(mark)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert line in strip_msg(p.text(mark)), p.text(mark)[-2000:]
    lengths = sent_appdata_lengths(p.text(mark))
    assert lengths and max(lengths) <= most + 17, lengths
    assert sum(n - 17 for n in lengths) >= size + 1, lengths
    rc, out = p.finish()
    assert rc == 0, out[-2000:]
    pid, status = echo.end_of()
    assert status == 0, echo.text()
    assert not re.search(rf"^{PROG}: relay ", echo.text(), re.M), echo.text()


def test_keyupdate(echo, work, pki, need):
    """TLS 1.3 KeyUpdate from the client, not requested (k) and requested (K): data before
    and after goes through, the session ends cleanly."""
    openssl = need("openssl")
    p = s_client(work, openssl, echo.port, "-CAfile", pki / "ca.pem")
    assert p.wait_for(r"^\s*Verify return code: 0 \(ok\)$") and re.search(r"^New, TLSv1\.3, ", p.text(), re.M), p.text()
    for i, cmd in enumerate(["k", "K", "k"]):
        mark = p.mark()
        p.send(f"before {i}\n")
        assert p.wait_for(rf"^before {i}$", since=mark), p.text(mark)
        p.send(cmd + "\n")
        assert p.wait_for(r"^KEYUPDATE$", since=mark), p.text(mark)
        p.send(f"after {i}\n")
        assert p.wait_for(rf"^after {i}$", since=mark), p.text(mark)
    rc, out = p.finish()
    assert rc == 0, out
    pid, status = echo.end_of()
    assert status == 0 and not re.search(rf"^{PROG}: relay ", echo.text(), re.M), echo.text()
    still_serving(echo, pki)


def test_renegotiation_refused(echo, work, pki, need):
    """A TLS 1.2 client asking to renegotiate (R) gets the no_renegotiation alert; the
    relay logs why it ended; the program's exit code is the child's."""
    openssl = need("openssl")
    p = s_client(work, openssl, echo.port, "-CAfile", pki / "ca.pem", "-no_tls1_3")
    assert p.wait_for(r"^\s*Verify return code: 0 \(ok\)$") and re.search(r"^New, TLSv1\.2, ", p.text(), re.M), p.text()
    p.send("before\n")
    assert p.wait_for(r"^before$"), p.text()
    mark = p.mark()
    p.send("R\n")
    assert p.wait_for(r"^RENEGOTIATING$", since=mark), p.text(mark)
    assert p.wait_for(r"alert no renegotiation.*SSL alert number 100", since=mark), p.text(mark)
    p.finish()
    pid, status = echo.end_of()
    assert re.search(rf"^{PROG}: relay {pid}: read: NO_RENEGOTIATION$", echo.text(), re.M), echo.text()
    assert status == 0, echo.text()          # cat saw end of file
    still_serving(echo, pki)


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_old_versions_refused(echo, work, pki, need, version):
    """s_client speaking only TLS 1.0 or 1.1 (its security level lowered so it may) gets
    the protocol_version alert."""
    openssl = need("openssl")
    p = s_client(work, openssl, echo.port, "-CAfile", pki / "ca.pem", version, "-cipher", "DEFAULT@SECLEVEL=0")
    rc, out = p.finish()
    assert rc != 0 and re.search(r"alert protocol version.*SSL alert number 70", out), out
    pid, status = echo.end_of()
    assert status == CHILD_111
    assert re.search(rf"^{PROG}: tls failed {pid} tls: handshake: UNSUPPORTED_PROTOCOL$", echo.text(), re.M), \
        echo.text()
    still_serving(echo, pki)


def test_quit_then_fin_without_close_notify_tcpserver(work, tss, qmail_pem, pki):
    """QUIT, the 221, then the client's FIN with no close_notify: the program ended as it
    should (its exit code is the child's) and tcpserver-ssl logs no relay error.  A client
    that vanishes without close_notify while the program still reads: tcpserver-ssl -v
    logs the truncation as such (the program sees the end of its input); with
    close_notify instead, no truncation line."""
    srv = tss_server(work, tss, ["-v", "-l0", "-HR", "-n", str(qmail_pem)], [SMTPD, "host", "/bin/true"])
    s = tls_connect(pki, srv.port)
    assert reply(s).startswith(b"220 host ESMTP")
    s.sendall(b"QUIT\r\n")
    assert reply(s).startswith(b"221 ")
    s.close()                       # FIN, without close_notify
    pid, status = srv.end_of()
    assert status == 0, srv.text()
    [rec] = work.wait_records(1)
    assert rec["end"] == "quit", rec
    assert not re.search(rf"^{PROG}: (relay|tls failed) ", srv.text(), re.M), srv.text()
    # (Whether this end counts as a truncation depends on which came first: the program's
    # exit ends the relay's reading of TLS.)  Gone while the program reads:
    seen = {rec["pid"]}
    for clean in (False, True):
        mark = srv.mark()
        s = tls_connect(pki, srv.port)
        assert reply(s).startswith(b"220 host ESMTP")
        s.sendall(b"NOOP\r\n")
        assert reply(s).startswith(b"250 ")
        if clean:
            s = s.unwrap()
        s.close()
        pid, status = srv.end_of(since=mark)
        assert status == 0, srv.text(mark)
        line = re.search(rf"^{PROG}: tls truncated {pid}: the client ended the session without close_notify$",
                         srv.text(mark), re.M)
        assert bool(line) != clean and not re.search(rf"^{PROG}: relay ", srv.text(mark), re.M), srv.text(mark)
        [new] = [r for r in work.wait_records(len(seen) + 1) if r["pid"] not in seen]
        seen.add(new["pid"])
        assert new["end"] == "eof", new           # the program saw the end of its input


@pytest.mark.parametrize("clean", [False, True])
def test_truncation_reported_by_the_library(probe, pki, clean):
    """The same end seen by the library (mailtls-probe server, which echoes): without
    close_notify it is MAILTLS_E_TRUNCATED (end=truncated), with it end=close_notify."""
    srv = probe.server("--cert", pki / "server-ec.pem", "--key", pki / "server-ec.key")
    s = tls_connect(pki, srv.port)
    assert read_until(s, rb"hello TLSv1\.3\n") == b"hello TLSv1.3\n"
    s.sendall(b"QUIT\r\n")
    assert read_until(s, rb"QUIT\r\n") == b"QUIT\r\n"
    if clean:
        s = s.unwrap()
    s.close()
    [kv] = srv.results()
    assert kv["result"] == "ok", kv
    assert kv["end"] == ("close_notify" if clean else "truncated"), kv


@pytest.mark.parametrize("clean", [False, True])
def test_truncation_logged_by_tcpclient(pki, clean):
    """A server (Python's ssl) that sends a line and ends with or without close_notify:
    tcpclient-ssl -v says "server ended the connection without close_notify" for the
    second only; the program gets the line either way and its exit code is kept."""
    tcs = executable_from_env("MAILTLS_TCPCLIENT_SSL", "tcpclient-ssl")
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(WAIT)
    errors = []

    def serve():
        try:
            c, _ = ls.accept()
            c.settimeout(WAIT)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(pki / "server-ec-combined.pem")
            s = ctx.wrap_socket(c, server_side=True)
            s.sendall(b"bye\n")
            if clean:
                s = s.unwrap()
            s.close()
        except Exception as e:          # noqa: BLE001 - reported below
            errors.append(e)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        p = subprocess.run([tcs, "-v", "-RH", "-a", pki / "ca.pem", "-N", "localhost", "127.0.0.1",
                            str(ls.getsockname()[1]), "sh", "-c", "cat <&6; exit 5"],
                           capture_output=True, timeout=3 * WAIT, stdin=subprocess.DEVNULL)
    finally:
        t.join(WAIT)
        ls.close()
    assert not errors, errors
    assert (p.returncode, p.stdout) == (5, b"bye\n"), p
    said = b"tcpclient-ssl: server ended the connection without close_notify\n" in p.stderr
    assert said == (not clean), p.stderr
