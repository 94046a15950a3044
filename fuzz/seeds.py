#!/usr/bin/python3
"""seeds.py -- writes the seed corpora fuzz/corpus/<name>/ (run from
anywhere; files are rewritten, others left alone).  Each seed is a small,
meaningful input: real server replies, the injection cases of
shared/reference/security.md, tcprules values and cdbs, certificates with
odd names.  The input format of each target is described at the top of its
fuzz_<name>.c.  Needs Debian's python3 with python3-cryptography, and
tcprules (ucspi-tcp) for the tcprules cdbs."""
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("latin-1")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- smtp_reply
def smtp_reply():
    seeds = {
        "ehlo-postfix": (255, "STARTTLS", "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
                         "250-VRFY\r\n250-ETRN\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n"
                         "250-8BITMIME\r\n250-DSN\r\n250 CHUNKING\r\n"),
        "ehlo-auth": (40, "AUTH", "250-mx\r\n250-AUTH LOGIN PLAIN\r\n250-AUTH=LOGIN\r\n250 starttls\r\n"),
        "greeting-multiline": (16, "x", "220-mx.example.org ESMTP\r\n220-no UCE\r\n220 ready\r\n"),
        "mixed-codes": (255, "STARTTLS", "250-mx\r\n251-STARTTLS\r\n250 STARTTLS\r\n"),
        "bare-lf-and-cr": (255, "PIPELINING", "250-mx\n250-PIPELINING\r\r\n250 8BITMIME\n"),
        "odd-codes": (8, "", "220\r\n199 no\r\n600 no\r\n2a0 x\r\n260 x\r\n22\r\n220x\r\n554 5.7.1 go away\r\n"),
        "nul-in-reply": (255, "STARTTLS", "250-mx\r\n250-STAR\0TTLS\r\n250-\0\r\n250 STARTTLS \0\r\n"),
        "continuation-only": (3, "SIZE", "250-a\r\n" * 40),
        "starttls-replies": (255, "", "220 2.0.0 Ready to start TLS\r\n454 4.7.0 TLS not available\r\n"
                             "502 5.5.1 unknown\r\n421 4.3.2 shutting down\r\n354 go\r\n"),
        "keyword-space": (255, "SIZE 1000", "250-mx\r\n250-SIZE 1000\r\n250 SIZE\r\n"),
    }
    for name, (cap, kw, reply) in seeds.items():
        write("smtp_reply", name, bytes([cap]) + kw.encode("latin-1") + b"\n" + reply.encode("latin-1"))
    long = "250-" + "A" * 1100 + "\r\n250 " + "B" * 995 + "\r\n"
    write("smtp_reply", "long-lines", bytes([255]) + b"STARTTLS\n" + long.encode())


# ---------------------------------------------------------------- mail_reply
def mail_reply():
    seeds = {
        # sel & 3: 0 tag "", 1 "a1", 2 "a2", 3 a tag of (sel >> 2) & 7 bytes from the input
        "pop3-greeting": (0, "+OK Dovecot ready.\r\n+OK\r\n-ERR\r\n-ERR go away\r\n+OKx\r\n+ok\r\n-ERRx\r\n"),
        "pop3-capa": (0, "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nSTLS\r\nSASL PLAIN\r\n..STLS\r\n.\r\n"),
        "imap-greeting": (0, "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
                             "STARTTLS LOGINDISABLED] Dovecot ready.\r\n"),
        "imap-greeting-odd": (0, "* PREAUTH ok\r\n* BYE go\r\n* \r\n*\r\n* OK [ALERT\r\n* OK []\r\n"
                                 "* OK [CAPABILITY] x\r\n* ok [capability  starttls  ] x\r\n"),
        "imap-capability": (1, "* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na1 OK done\r\n"
                               "a1 NO no\r\na1 BAD bad\r\na1 BYE x\r\na1 PREAUTH x\r\na1\r\na1 \r\na2 OK x\r\n"),
        "imap-starttls": (2, "a2 OK Begin TLS negotiation now.\r\na2 BAD\r\na2 ok\r\n+ go on\r\n+\r\n"),
        "imap-literals": (2, "* OK x {5}\r\na2 OK {0}\r\n* OK {12+}\r\n* OK {}\r\n* OK {+}\r\n{1}\r\n5}\r\n"),
        "imap-own-tag": (3 | (3 << 2), "tag" + "tag OK x\r\ntagOK\r\ntag  OK\r\n* OK\r\n"),
        "imap-star-tag": (3 | (1 << 2), "*" + "* OK\r\n*  OK\r\n"),
    }
    for name, (sel, text) in seeds.items():
        write("mail_reply", name, bytes([sel]) + text.encode("latin-1"))


# ---------------------------------------------------------------- starttls
def pieces(*ps):
    return b"\xff".join(p.encode("latin-1").replace(b"\xff", b"\xff\xff") for p in ps)


def starttls():
    SMTP, POP3, IMAP, PIPES = 0, 1, 2, 4
    ehlo = "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
    seeds = {
        # SMTP
        "smtp-honest": (SMTP, ["220 mx.example.org ESMTP\r\n", ehlo, "220 2.0.0 Ready to start TLS\r\n"]),
        "smtp-honest-pipes": (SMTP | PIPES, ["220 mx.example.org ESMTP\r\n", ehlo, "220 2.0.0 Ready\r\n"]),
        # security.md C2: the reply injected behind the 220, in one segment
        "smtp-injection-c2": (SMTP, ["220 mx ESMTP\r\n", "250-mx\r\n250 STARTTLS\r\n",
                                     "220 Ready\r\n250-x\r\n250 AUTH LOGIN\r\n"]),
        "smtp-injection-c2-pipes": (SMTP | PIPES, ["220 mx ESMTP\r\n", "250-mx\r\n250 STARTTLS\r\n",
                                                   "220 Ready\r\n250-x\r\n250 AUTH LOGIN\r\n"]),
        "smtp-injection-one-byte": (SMTP, ["220 mx\r\n", "250-mx\r\n250 STARTTLS\r\n", "220 go\r\nX"]),
        "smtp-all-at-once": (SMTP, ["220 mx\r\n250-mx\r\n250 STARTTLS\r\n220 go\r\n"]),
        "smtp-all-at-once-injected": (SMTP, ["220 mx\r\n250-mx\r\n250 STARTTLS\r\n220 go\r\n\x16\x03\x01"]),
        "smtp-late-bytes": (SMTP, ["220 mx\r\n", "250-mx\r\n250 STARTTLS\r\n", "220 go\r\n", "250 late\r\n"]),
        "smtp-split-crlf": (SMTP, ["22", "0 mx\r", "\n", "250-mx\r\n250 START", "TLS\r\n", "220 go\r", "\n"]),
        "smtp-bytewise": (SMTP, list("220 m\r\n250-m\r\n250 STARTTLS\r\n220 g\r\n")),
        "smtp-not-offered": (SMTP, ["220 mx\r\n", "250-mx\r\n250 PIPELINING\r\n", "250 extra\r\n"]),
        "smtp-refused-454": (SMTP, ["220 mx\r\n", "250-mx\r\n250 STARTTLS\r\n", "454 4.7.0 TLS not available\r\n"]),
        "smtp-refused-421": (SMTP, ["220 mx\r\n", "250-mx\r\n250 STARTTLS\r\n", "421 bye\r\n"]),
        "smtp-starttls-354": (SMTP, ["220 mx\r\n", "250-mx\r\n250 STARTTLS\r\n", "354 go\r\n"]),
        "smtp-helo-fallback": (SMTP, ["220 mx\r\n", "502 5.5.2 EHLO unknown\r\n", "250 mx\r\n"]),
        "smtp-ehlo-4xx": (SMTP, ["220 mx\r\n", "451 later\r\n"]),
        "smtp-greeting-554": (SMTP, ["554 5.7.1 no\r\n"]),
        "smtp-greeting-multi": (SMTP, ["220-mx\r\n220-more\r\n220 ok\r\n", "250-mx\r\n250 STARTTLS\r\n", "220 go\r\n"]),
        "smtp-mixed-codes": (SMTP, ["220 mx\r\n", "250-mx\r\n251 STARTTLS\r\n"]),
        "smtp-multiline-go": (SMTP, ["220 mx\r\n", "250-mx\r\n250 STARTTLS\r\n", "220-one\r\n220 two\r\n"]),
        "smtp-bare-lf": (SMTP, ["220 mx\n", "250-mx\n250 STARTTLS\n", "220 go\n"]),
        "smtp-eof-in-line": (SMTP, ["220 mx\r\n", "250-mx\r\n250 STARTTLS\r\n", "220 go"]),
        "smtp-nul": (SMTP, ["220 m\0x\r\n", "250-\0\r\n250 STARTTLS\r\n", "220 \0\r\n"]),
        "smtp-line-1000-bytes": (SMTP, ["220 " + "x" * 994 + "\r\n", "250-mx\r\n250 STARTTLS\r\n", "220 go\r\n"]),
        "smtp-line-1001-bytes": (SMTP, ["220 " + "x" * 995 + "\r\n", "250-mx\r\n250 STARTTLS\r\n", "220 go\r\n"]),
        "smtp-line-1002-bytes": (SMTP, ["220 " + "x" * 996 + "\r\n", "250-mx\r\n250 STARTTLS\r\n", "220 go\r\n"]),
        "smtp-100-lines": (SMTP, ["220 mx\r\n", "250-x\r\n" * 98 + "250-STARTTLS\r\n250 x\r\n", "220 go\r\n"]),
        "smtp-101-lines": (SMTP, ["220 mx\r\n", "250-x\r\n" * 99 + "250-STARTTLS\r\n250 x\r\n", "220 go\r\n"]),
        "smtp-ehlo-injected-before": (SMTP, ["220 mx\r\n250-mx\r\n250 STARTTLS\r\n", "220 go\r\n"]),
        # POP3
        "pop3-honest": (POP3, ["+OK Dovecot ready.\r\n", "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nSTLS\r\nSASL PLAIN\r\n.\r\n",
                               "+OK Begin TLS negotiation now.\r\n"]),
        "pop3-injection": (POP3, ["+OK hi\r\n", "+OK\r\nSTLS\r\n.\r\n", "+OK go\r\n+OK injected\r\n"]),
        "pop3-injection-pipes": (POP3 | PIPES, ["+OK hi\r\n", "+OK\r\nSTLS\r\n.\r\n", "+OK go\r\n+OK injected\r\n"]),
        "pop3-capa-err": (POP3, ["+OK hi\r\n", "-ERR unknown command\r\n"]),
        "pop3-stls-err": (POP3, ["+OK hi\r\n", "+OK\r\nSTLS\r\n.\r\n", "-ERR no\r\n"]),
        "pop3-stuffed": (POP3, ["+OK hi\r\n", "+OK\r\n..STLS\r\n.STLS\r\nstls x\r\n.\r\n", "+OK\r\n"]),
        "pop3-greeting-err": (POP3, ["-ERR go away\r\n"]),
        "pop3-bytewise": (POP3, list("+OK\r\n+OK\r\nSTLS\r\n.\r\n+OK\r\n")),
        # IMAP
        "imap-honest-capcode": (IMAP, ["* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] Dovecot ready.\r\n",
                                       "a2 OK Begin TLS negotiation now.\r\n"]),
        "imap-honest": (IMAP, ["* OK hi\r\n", "* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\n",
                               "a2 OK go\r\n"]),
        "imap-injection": (IMAP, ["* OK [CAPABILITY STARTTLS] hi\r\n", "a2 OK go\r\n* OK [CAPABILITY AUTH=PLAIN]\r\n"]),
        "imap-injection-pipes": (IMAP | PIPES, ["* OK [CAPABILITY STARTTLS] hi\r\n", "a2 OK go\r\n* x\r\n"]),
        "imap-untagged-before-ok": (IMAP, ["* OK [CAPABILITY STARTTLS] hi\r\n", "* OK still\r\n* 3 EXISTS\r\n",
                                           "a2 OK go\r\n"]),
        "imap-preauth": (IMAP, ["* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] logged in\r\n"]),
        "imap-bye": (IMAP, ["* BYE too busy\r\n"]),
        "imap-no": (IMAP, ["* OK hi\r\n", "* CAPABILITY STARTTLS\r\na1 NO no\r\n"]),
        "imap-starttls-bad": (IMAP, ["* OK [CAPABILITY STARTTLS] hi\r\n", "a2 BAD no\r\n"]),
        "imap-literal": (IMAP, ["* OK hi\r\n", "* CAPABILITY {8}\r\n"]),
        "imap-continuation": (IMAP, ["* OK [CAPABILITY STARTTLS] hi\r\n", "+ go ahead\r\n"]),
        "imap-other-tag": (IMAP, ["* OK [CAPABILITY STARTTLS] hi\r\n", "a1 OK go\r\n"]),
        "imap-unclosed-code": (IMAP, ["* OK [CAPABILITY STARTTLS hi\r\n"]),
        "imap-lowercase": (IMAP, ["* ok [capability starttls] hi\r\n", "a2 ok go\r\n"]),
    }
    for name, (h, ps) in seeds.items():
        write("starttls", name, bytes([h]) + pieces(*ps))


TARGETS = {"smtp_reply": smtp_reply, "mail_reply": mail_reply, "starttls": starttls}


# ---------------------------------------------------------------- escape
def escape():
    def rec(name, value):
        name = name.encode("latin-1") if isinstance(name, str) else name
        value = value.encode("latin-1") if isinstance(value, str) else value
        return bytes([len(name)]) + name + bytes([len(value)]) + value
    seeds = {
        "ssl-facts": rec("SSL_PROTOCOL", "TLSv1.3") + rec("SSL_CIPHER", "TLS_AES_128_GCM_SHA256")
        + rec("SSL_CLIENT_S_DN", "CN=mx.example.org,O=Example\\, Inc.") + rec("SSL_CLIENT_VERIFY", "SUCCESS"),
        "control-bytes": rec("SSL_TLS_SNI_SERVERNAME", "evil\nSSL_CLIENT_VERIFY=SUCCESS\0x")
        + rec("X", "\r\n\t\x1b[0m\x7f\x80\xff"),
        "backslash": rec("V", "\\") + rec("W", "\\5C") + rec("Y", "a\\\\b"),
        "utf8": rec("CN", "M\xc3\xbcller \xe2\x82\xac"),
        "duplicate-names": rec("A", "1") + rec("a", "2") + rec("A", "3") + rec("", "empty name") + rec("9x", "digit"),
        "empty-values": rec("E", "") + rec("F", "") ,
        "all-bytes": rec("ALL", bytes(range(0, 255))),
    }
    for i, (name, body) in enumerate(seeds.items()):
        write("escape", name, bytes([i * 37 % 256]) + body)
    write("escape", "empty-set", b"\x05")


# ---------------------------------------------------------------- facts
def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag, body):
    return bytes([tag]) + der_len(len(body)) + body


def oid(dotted):
    parts = [int(x) for x in dotted.split(".")]
    body = b""
    for p in [parts[0] * 40 + parts[1]] + parts[2:]:
        enc = [p & 0x7f]
        p >>= 7
        while p:
            enc.insert(0, 0x80 | (p & 0x7f))
            p >>= 7
        body += bytes(enc)
    return tlv(0x06, body)


def name(rdns):
    """rdns: list of RDNs (DER order), each a list of (oid, tag, value bytes)."""
    out = b""
    for rdn in rdns:
        avas = [tlv(0x30, oid(o) + tlv(tag, v)) for (o, tag, v) in rdn]
        out += tlv(0x31, b"".join(sorted(avas)))
    return tlv(0x30, out)


def cert(subject, issuer, serial=b"\x01", nb=b"260101000000Z", na=b"360101000000Z", na_tag=0x17):
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives import serialization
    key = ec.derive_private_key(12345, ec.SECP256R1())
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    alg = tlv(0x30, oid("1.2.840.10045.4.3.2"))
    tbs = tlv(0x30, tlv(0xa0, tlv(0x02, b"\x02")) + tlv(0x02, serial) + alg + name(issuer)
              + tlv(0x30, tlv(0x17, nb) + tlv(na_tag, na)) + name(subject) + spki)
    sig = tlv(0x30, tlv(0x02, b"\x01" * 32) + tlv(0x02, b"\x02" * 32))
    return tlv(0x30, tbs + alg + tlv(0x03, b"\x00" + sig))


CN, O, OU, C, L, DC, EMAIL, UID = ("2.5.4.3", "2.5.4.10", "2.5.4.11", "2.5.4.6", "2.5.4.7",
                                   "0.9.2342.19200300.100.1.25", "1.2.840.113549.1.9.1", "2.5.4.45")
UTF8, PRINTABLE, IA5, T61, BMP, UNIVERSAL, NUMERIC, VISIBLE, BITSTR, OCTETS, INTEGER = (
    0x0c, 0x13, 0x16, 0x14, 0x1e, 0x1c, 0x12, 0x1a, 0x03, 0x04, 0x02)


def u(s):
    return s.encode("utf-8")


def facts():
    ca = [[(C, PRINTABLE, b"DE")], [(O, UTF8, b"Example CA")], [(CN, UTF8, b"Example Root")]]
    certs = {
        "plain": [[(C, PRINTABLE, b"DE")], [(O, UTF8, b"Example")], [(CN, UTF8, b"mx.example.org")]],
        "specials": [[(O, UTF8, u('a,b+c"d<e>f;g=h\\i'))], [(CN, UTF8, u("#lead"))], [(OU, UTF8, u(" both "))]],
        "control-bytes": [[(CN, UTF8, b"evil\nSSL_CLIENT_VERIFY=SUCCESS\x00\x01\x1b\x7f")]],
        "multi-valued": [[(DC, IA5, b"org")], [(DC, IA5, b"example")], [(CN, UTF8, b"a"), (UID, BITSTR, b"\x00\x01"),
                                                                          (OU, UTF8, b"b+c")]],
        "type-bmp": [[(CN, BMP, "bmp \u00e9".encode("utf-16-be"))]],
        "type-universal": [[(O, UNIVERSAL, "u\u20ac".encode("utf-32-be"))]],
        "type-t61": [[(OU, T61, b"t61 \xe9")]],
        "type-numeric": [[(L, NUMERIC, b"123")]],
        "type-visible": [[(OU, VISIBLE, b"vis")]],
        "type-ia5": [[(EMAIL, IA5, b"root@example.org")]],
        "odd-bmp": [[(CN, BMP, b"\x00a\x00")]],
        "odd-universal": [[(O, UNIVERSAL, b"\x00\x00\x00a\x00")]],
        "bad-utf8": [[(OU, UTF8, b"\xc3\x28\xff")]],
        "octet-string": [[(CN, OCTETS, b"\x01\x02")]],
        "integer": [[("1.2.3.4.5", INTEGER, b"\x05")], [(O, UTF8, b"x")]],
        "two-cns": [[(CN, UTF8, b"first")], [(O, UTF8, b"o")], [(CN, UTF8, b"second, really")]],
        "unknown-oid": [[("1.3.6.1.4.1.99999.1", UTF8, b"v")], [("2.999", PRINTABLE, b"w")]],
        "utf8": [[(CN, UTF8, u("M\u00fcller \u20ac \U0001f600"))], [(O, UTF8, u("\u202eevil"))]],
        "empty": [],
        "empty-value": [[(CN, UTF8, b"")], [(O, UTF8, b" ")]],
    }
    hdrs = [
        (0x04, ord("Y"), 255, b"mx.example.org"),
        (0x00, ord("y"), 20, b"mx.example.org"),
        (0x01, 0, 60, None),
        (0x08 | 0x04, ord("Y"), 58, b"a\\b\x01"),
        (0x40, ord("x"), 0, b"192.0.2.1"),
        (0x30, ord("Y"), 59, b"\xff" * 3),
    ]
    for i, (nm, subj) in enumerate(certs.items()):
        flags, req, envlen, sni = hdrs[i % len(hdrs)]
        sni_b = b"\xff" if sni is None else bytes([len(sni)]) + sni
        serials = [b"\x01", b"\x00\x80", b"\xff", b"\x00", b"\x12\x34\x56\x78\x9a\xbc\xde\xf0\x11"]
        der = cert(subj, ca, serial=serials[i % len(serials)],
                   na=b"20500101000000Z" if i % 2 else b"360101000000Z", na_tag=0x18 if i % 2 else 0x17)
        write("facts", "cert-" + nm, bytes([flags, req, envlen]) + sni_b + der)
    write("facts", "no-chain", bytes([0x02 | 0x04, ord("Y"), 255, 0]))
    write("facts", "garbage-der", bytes([0x00, ord("Y"), 255, 3]) + b"a.b" + b"\x30\x03\x02\x01\x01")


TARGETS.update({"escape": escape, "facts": facts})


# ---------------------------------------------------------------- tcprules
def tcprules():
    def s8(x):
        if x is None:
            return b"\xff"
        x = x.encode("latin-1")
        return bytes([len(x)]) + x

    values = {
        "allow": b"",
        "deny": b"D\0",
        "deny-and-vars": b"D\0+RELAYCLIENT=\0+X=a=b\0",
        "vars": b"+RELAYCLIENT=\0+SMTPAUTH=!\0+DATABYTES=1000000\0+X=\0",
        "unterminated": b"+X=1",
        "empty-record": b"\0",
        "bare-plus": b"+\0+=x\0",
        "d-more": b"DX\0",
        "no-equals": b"+X\0",
        "later-overrides": b"+X=1\0+X=2\0D\0",
    }
    for name, v in values.items():
        write("tcprules", "value-" + name, b"\x00" + v)

    lookups = [("1.2.3.4", "host.example.org", "joe"), ("10.2.3.4", None, None),
               ("2001:db8::1", "mx.example.org", None), ("192.0.2.7", "a.b.c.example", "root")]
    rules = (b'1.2.3.4:allow,RELAYCLIENT=""\n'
             b'joe@1.2.3.4:allow,IDENT="joe",X="a=b"\n'
             b'10.2.:deny\n'
             b'10.3-5.:allow,RANGE="yes"\n'
             b'=host.example.org:allow,TCPREMOTEHOST="seen"\n'
             b'=.example.org:allow,A="1",B="2"\n'
             b'root@=a.b.c.example:deny\n'
             b'=:allow,ANYHOST="1"\n'
             b':deny\n')
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "rules")
        with open(src, "wb") as f:
            f.write(rules)
        out, tmp = os.path.join(d, "rules.cdb"), os.path.join(d, "rules.tmp")
        try:
            subprocess.run(["tcprules", out, tmp], stdin=open(src, "rb"), check=True)
            cdb = open(out, "rb").read()
        except (OSError, subprocess.CalledProcessError) as e:
            print("seeds.py: tcprules failed (%s): no cdb seeds from it" % e)
            cdb = None
    for i, (ip, host, info) in enumerate(lookups):
        hdr = s8(ip) + s8(host) + s8(info)
        if cdb:
            write("tcprules", "cdb-tcprules-%d" % i, b"\x01" + hdr + cdb)
        # mode 2: records; k < 0x80 picks a candidate key, else an own key
        recs = b""
        for k, v in [(0, b"+HIT=first\0"), (3, b"D\0"), (5, b"+X=y\0"), (0x80, (b"\x07" + b"1.2.3.4", b"D\0")),
                     (7, b"bad"), (1, b"")]:
            if isinstance(v, tuple):
                key, v = v
                recs += bytes([k]) + key
            else:
                recs += bytes([k])
            recs += struct.pack(">H", len(v)) + v
        write("tcprules", "records-%d" % i, b"\x02" + hdr + recs)
    write("tcprules", "cdb-empty-file", b"\x01" + s8("1.2.3.4") + s8(None) + s8(None))
    write("tcprules", "cdb-truncated", b"\x01" + s8("1.2.3.4") + s8(None) + s8(None) + (cdb or b"")[:1500])


TARGETS.update({"tcprules": tcprules})


# ---------------------------------------------------------------- proxy
def proxy():
    SMTP, POP3, IMAP, REQ, HIDE = 0, 1, 2, 4, 8
    C, CM, P = 1, 3, 0   # client line, client line with more bytes behind it, program line

    def ev(*evs):
        out = b""
        for kind, line in evs:
            out += bytes([kind]) + line.encode("latin-1")
        return out
    ehlo = [(P, "250-mx.example.org\r\n"), (P, "250-PIPELINING\r\n"), (P, "250-AUTH LOGIN PLAIN\r\n"),
            (P, "250-CHUNKING\r\n"), (P, "250 8BITMIME\r\n")]
    seeds = {
        "smtp-session": (SMTP, [(P, "220 mx ESMTP\r\n"), (C, "EHLO client\r\n")] + ehlo
                         + [(C, "STARTTLS\r\n"), (P, "250 flushed\r\n"), (C, "MAIL FROM:<a@b>\r\n"),
                            (C, "EHLO client\r\n")] + ehlo
                         + [(C, "MAIL FROM:<a@b>\r\n"), (P, "250 ok\r\n"), (C, "RCPT TO:<c@d>\r\n"), (P, "250 ok\r\n"),
                            (C, "DATA\r\n"), (P, "354 go\r\n"), (C, "MAIL FROM:<x@y>\r\n"), (C, ".\r\n"),
                            (P, "250 queued\r\n"), (C, "QUIT\r\n"), (P, "221 bye\r\n")]),
        # security.md S1: STARTTLS and a command in one segment
        "smtp-injection-s1": (SMTP, [(P, "220 mx\r\n"), (C, "EHLO x\r\n")] + ehlo + [(CM, "STARTTLS\r\n"),
                                                                                      (C, "RSET\r\n")]),
        "smtp-pipelined-ehlo-starttls": (SMTP, [(P, "220 mx\r\n"), (CM, "EHLO x\r\n"), (C, "STARTTLS\r\n")] + ehlo
                                         + [(C, "EHLO x\r\n")]),
        "smtp-require-tls": (SMTP | REQ | HIDE, [(P, "220 mx\r\n"), (C, "EHLO x\r\n")] + ehlo
                             + [(C, "MAIL FROM:<a@b>\r\n"), (C, "AUTH PLAIN AGI=\r\n"), (C, "STARTTLS x\r\n"),
                                (C, "STARTTLS\r\n"), (P, "250 ok\r\n"), (C, "STARTTLS\r\n")]),
        "smtp-auth-sasl": (SMTP, [(P, "220 mx\r\n"), (C, "AUTH LOGIN\r\n"), (P, "334 VXNlcm5hbWU6\r\n"),
                                  (C, "STARTTLS\r\n"), (P, "535 no\r\n"), (C, "STARTTLS\r\n")]),
        "smtp-in-transaction": (SMTP, [(P, "220 mx\r\n"), (C, "MAIL FROM:<a@b>\r\n"), (P, "250 ok\r\n"),
                                       (C, "STARTTLS\r\n"), (C, "RSET\r\n"), (P, "250 ok\r\n"), (C, "STARTTLS\r\n")]),
        "smtp-long-line": (SMTP, [(P, "220 mx\r\n"), (C, "X" * 4096)]),
        "pop3-session": (POP3, [(P, "+OK ready\r\n"), (C, "CAPA\r\n"), (P, "-ERR unknown\r\n"), (C, "STLS\r\n"),
                                (C, "USER a\r\n"), (P, "+OK\r\n"), (C, "PASS b\r\n"), (P, "+OK in\r\n"),
                                (C, "RETR 1\r\n"), (P, "+OK\r\n"), (P, "..STLS\r\n"), (P, ".\r\n"), (C, "STLS\r\n")]),
        "pop3-injection": (POP3, [(P, "+OK ready\r\n"), (CM, "STLS\r\n"), (C, "USER a\r\n")]),
        "pop3-require-tls": (POP3 | REQ | HIDE, [(P, "+OK ready\r\n"), (C, "USER a\r\n"), (C, "AUTH PLAIN\r\n"),
                                                 (C, "CAPA\r\n"), (P, "+OK\r\n"), (P, "SASL PLAIN\r\n"), (P, "USER\r\n"),
                                                 (P, ".\r\n"), (C, "STLS\r\n"), (C, "USER a\r\n")]),
        "imap-session": (IMAP, [(P, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"), (C, "a1 CAPABILITY\r\n"),
                                (P, "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n"), (P, "a1 OK done\r\n"),
                                (C, "a2 STARTTLS\r\n"), (C, "a3 LOGIN u {4}\r\n"), (P, "+ go\r\n"), (C, "pass\r\n"),
                                (P, "a3 OK in\r\n"), (C, "a4 STARTTLS\r\n")]),
        "imap-injection": (IMAP, [(P, "* OK ready\r\n"), (CM, "a STARTTLS\r\n"), (C, "b NOOP\r\n")]),
        "imap-require-tls": (IMAP | REQ, [(P, "* OK ready\r\n"), (C, "a LOGIN u p\r\n"), (C, "b LOGIN u {3+}\r\n"),
                                          (C, "pwd\r\n"), (C, "c AUTHENTICATE PLAIN\r\n"), (C, "d STARTTLS\r\n"),
                                          (C, "e LOGIN u p\r\n")]),
        "imap-literal-starttls": (IMAP, [(P, "* OK ready\r\n"), (C, "a APPEND x {13+}\r\n"), (C, "b STARTTLS\r\n"),
                                         (C, "\r\n"), (C, "c STARTTLS\r\n")]),
    }
    for name, (h, evs) in seeds.items():
        write("proxy", name, bytes([h]) + ev(*evs))


TARGETS.update({"proxy": proxy})


# ---------------------------------------------------------------- proxy_run
def proxy_run():
    SMTP, POP3, IMAP, REQ = 0, 1, 2, 4
    C, P = 1, 0

    def script(*ps):
        return b"\xff".join(bytes([who]) + p.encode("latin-1").replace(b"\xff", b"\xff\xff") for who, p in ps)
    ehlo = "250-mx.example.org\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 8BITMIME\r\n"
    seeds = {
        "smtp-starttls": (SMTP, [(P, "220 mx ESMTP\r\n"), (C, "EHLO x\r\n"), (P, ehlo), (C, "STARTTLS\r\n")]),
        # security.md S1: a command behind STARTTLS in one segment
        "smtp-injection-s1": (SMTP, [(P, "220 mx\r\n"), (C, "EHLO x\r\n"), (P, ehlo), (C, "STARTTLS\r\nRSET\r\n")]),
        "smtp-injection-s1-mail": (SMTP, [(P, "220 mx\r\n"), (C, "EHLO x\r\nSTARTTLS\r\nMAIL FROM:<a@b>\r\n"), (P, ehlo)]),
        # S2: the injected bytes come later, after the check: they reach the TLS engine
        "smtp-injection-s2": (SMTP, [(P, "220 mx\r\n"), (C, "EHLO x\r\n"), (P, ehlo), (C, "STARTTLS\r\n"), (C, "RSET\r\n")]),
        "smtp-half-line": (SMTP, [(P, "220 mx\r\n"), (C, "EHLO x\r\n"), (P, ehlo), (C, "STARTTLS\r\nRS")]),
        "smtp-pipelined-ehlo": (SMTP, [(P, "220 mx\r\n"), (C, "EHLO x\r\nSTARTTLS\r\n"), (P, ehlo)]),
        "smtp-split-lines": (SMTP, [(P, "22"), (P, "0 mx\r\n"), (C, "EH"), (C, "LO x\r"), (C, "\n"), (P, ehlo),
                                    (C, "STAR"), (C, "TTLS\r\n")]),
        "smtp-data": (SMTP, [(P, "220 mx\r\n"), (C, "EHLO x\r\n"), (P, ehlo), (C, "MAIL FROM:<a@b>\r\n"), (P, "250 ok\r\n"),
                             (C, "RCPT TO:<c@d>\r\n"), (P, "250 ok\r\n"), (C, "DATA\r\n"), (P, "354 go\r\n"),
                             (C, "STARTTLS\r\n.\r\n"), (P, "250 queued\r\n"), (C, "QUIT\r\n"), (P, "221 bye\r\n")]),
        "smtp-require-tls": (SMTP | REQ, [(P, "220 mx\r\n"), (C, "MAIL FROM:<a@b>\r\n"), (C, "EHLO x\r\n"), (P, ehlo),
                                          (C, "STARTTLS\r\n")]),
        "smtp-overlong": (SMTP, [(P, "220 mx\r\n"), (C, "EHLO " + "x" * 1100 + "\r\n")]),
        "smtp-program-ends": (SMTP, [(P, "220 mx\r\n"), (C, "QUIT\r\n"), (P, "221 bye\r\n")]),
        "pop3-stls": (POP3, [(P, "+OK ready\r\n"), (C, "CAPA\r\n"), (P, "-ERR no\r\n"), (C, "STLS\r\n")]),
        "pop3-injection": (POP3, [(P, "+OK ready\r\n"), (C, "STLS\r\nUSER a\r\n")]),
        "imap-starttls": (IMAP, [(P, "* OK [CAPABILITY IMAP4rev1] ready\r\n"), (C, "a STARTTLS\r\n")]),
        "imap-injection": (IMAP, [(P, "* OK ready\r\n"), (C, "a STARTTLS\r\nb NOOP\r\n")]),
        "imap-literal": (IMAP, [(P, "* OK ready\r\n"), (C, "a APPEND x {12+}\r\nb STARTTLS\r\n"), (C, "c STARTTLS\r\n")]),
    }
    for name, (h, ps) in seeds.items():
        write("proxy_run", name, bytes([h]) + script(*ps))


TARGETS.update({"proxy_run": proxy_run})


if __name__ == "__main__":
    for t in sys.argv[1:] or TARGETS:
        TARGETS[t]()
        print("seeds.py: wrote corpus/%s" % t)
