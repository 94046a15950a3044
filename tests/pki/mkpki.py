#!/usr/bin/python3
"""Make a throwaway test PKI in DIR (fresh keys every run; nothing secret is committed).

Usage: mkpki.py DIR

Files (PEM): ca.pem (root), int.pem (intermediate), and for each leaf NAME
NAME.pem (leaf + intermediate), NAME.key, NAME-leaf.pem (leaf alone):
  server-ec      ECDSA P-256, SAN localhost, mail.test.example, 127.0.0.1, ::1
  server-rsa     RSA-2048, same names
  sni-a          SAN a.test.example
  sni-wild       SAN *.wild.test.example
  wrongname      SAN other.example.net
  expired        validity ended a year ago
  cnonly         no SAN, CN localhost
  client         client certificate CN=client.test.example
  evil-client    client certificate whose subject holds a newline, '=', a backslash escape
  unknown        a leaf for localhost from a CA nobody trusts (unknown-ca.pem)
  selfsigned     self-signed localhost (selfsigned.pem is the leaf)
plus server-ec-combined.pem (key, leaf, intermediate, root: the qmail.pem
layout), garbage.pem, empty.pem, truncated.pem.
For DANE tests, NAME.tlsa for ca, int, selfsigned and each leaf: the data
of its TLSA records, one "SELECTOR MTYPE HEX" line for each selector (0
certificate, 1 SubjectPublicKeyInfo) and matching type (0 full, 1 SHA-256,
2 SHA-512), so tests need no TLS library to compute them.
"""
import hashlib
import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def name(cn, **extra):
    attrs = []
    if "o" in extra:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, extra["o"]))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def pem_cert(c):
    return c.public_bytes(serialization.Encoding.PEM)


def pem_key(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


def new_key(kind="ec"):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def make_cert(subject, key, issuer, issuer_key, ca=False, pathlen=None, sans=None,
              start=None, end=None, client=False, server=True):
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start or NOW - DAY).not_valid_after(end or NOW + 365 * DAY))
    b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen), critical=True)
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, key_cert_sign=True, crl_sign=True,
                                          encipher_only=False, decipher_only=False), critical=True)
    else:
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        b = b.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if sans:
        entries = []
        for s in sans:
            try:
                entries.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                entries.append(x509.DNSName(s))
        b = b.add_extension(x509.SubjectAlternativeName(entries), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def write_tlsa(d, base, cert):
    lines = []
    for sel, data in ((0, cert.public_bytes(serialization.Encoding.DER)),
                      (1, cert.public_key().public_bytes(serialization.Encoding.DER,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))):
        for mtype, val in ((0, data), (1, hashlib.sha256(data).digest()), (2, hashlib.sha512(data).digest())):
            lines.append("%d %d %s\n" % (sel, mtype, val.hex()))
    write(d, base + ".tlsa", "".join(lines).encode())


def write(d, fname, data):
    with open(os.path.join(d, fname), "wb") as f:
        f.write(data)


def main():
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    ca_key = new_key()
    ca = make_cert(name("mailtls Test Root CA", o="mailtls tests"), ca_key,
                   name("mailtls Test Root CA", o="mailtls tests"), ca_key, ca=True, pathlen=1,
                   end=NOW + 3650 * DAY)
    int_key = new_key()
    inter = make_cert(name("mailtls Test Intermediate CA", o="mailtls tests"), int_key, ca.subject,
                      ca_key, ca=True, pathlen=0, end=NOW + 3000 * DAY)
    write(d, "ca.pem", pem_cert(ca))
    write(d, "ca.key", pem_key(ca_key))
    write(d, "int.pem", pem_cert(inter))
    write(d, "int.key", pem_key(int_key))
    write_tlsa(d, "ca", ca)
    write_tlsa(d, "int", inter)

    names = ["localhost", "mail.test.example", "127.0.0.1", "::1"]
    leaves = {
        "server-ec": dict(cn="localhost", sans=names),
        "server-rsa": dict(cn="localhost", sans=names, kind="rsa"),
        "sni-a": dict(cn="a.test.example", sans=["a.test.example"]),
        "sni-wild": dict(cn="*.wild.test.example", sans=["*.wild.test.example"]),
        "wrongname": dict(cn="other.example.net", sans=["other.example.net"]),
        "expired": dict(cn="localhost", sans=names, start=NOW - 400 * DAY, end=NOW - 365 * DAY),
        "cnonly": dict(cn="localhost", sans=None),
        "client": dict(cn="client.test.example", sans=["client.test.example"], client=True, server=False),
        "evil-client": dict(cn="evil\nSSL_PROTOCOL=SSLv2", o="a=b,c\\00d\x7f", sans=None,
                            client=True, server=False),
    }
    for leaf, o in leaves.items():
        k = new_key(o.get("kind", "ec"))
        subj = name(o["cn"], **({"o": o["o"]} if "o" in o else {}))
        c = make_cert(subj, k, inter.subject, int_key, sans=o.get("sans"), start=o.get("start"),
                      end=o.get("end"), client=o.get("client", False), server=o.get("server", True))
        write(d, leaf + ".pem", pem_cert(c) + pem_cert(inter))
        write(d, leaf + "-leaf.pem", pem_cert(c))
        write(d, leaf + ".key", pem_key(k))
        write_tlsa(d, leaf, c)
        if leaf == "server-ec":
            write(d, "server-ec-combined.pem", pem_key(k) + pem_cert(c) + pem_cert(inter) + pem_cert(ca))
            write(d, "truncated.pem", (pem_key(k) + pem_cert(c))[:-200])

    other_key = new_key()
    other = make_cert(name("Unknown CA"), other_key, name("Unknown CA"), other_key, ca=True, pathlen=0)
    write(d, "unknown-ca.pem", pem_cert(other))
    k = new_key()
    c = make_cert(name("localhost"), k, other.subject, other_key, sans=names)
    write(d, "unknown.pem", pem_cert(c) + pem_cert(other))
    write(d, "unknown.key", pem_key(k))

    k = new_key()
    c = make_cert(name("localhost"), k, name("localhost"), k, sans=names)
    write(d, "selfsigned.pem", pem_cert(c))
    write(d, "selfsigned.key", pem_key(k))
    write_tlsa(d, "selfsigned", c)

    write(d, "garbage.pem", b"-----BEGIN CERTIFICATE-----\nnot base64 at all!!\n-----END CERTIFICATE-----\n"
          + os.urandom(64))
    write(d, "empty.pem", b"")
    for f in os.listdir(d):
        if f.endswith(".key") or f.endswith("combined.pem"):
            os.chmod(os.path.join(d, f), 0o600)


if __name__ == "__main__":
    main()
