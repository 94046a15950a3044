/*
 * facts.c -- facts about an established session: protocol, cipher, SNI,
 * verification, and the peer certificate's names, fingerprint, serial and
 * dates.  See mailtls.h for each function's contract.
 *
 * The peer certificate comes from SSL_get0_peer_certificates (the
 * CRYPTO_BUFFER chain kept in the TLS session), so the facts are there on
 * a client and on a server alike, and after the handshake configuration
 * was shed.  Strings are made on first request and cached in the f_*
 * fields of the session (freed by mailtls_free).
 *
 * Distinguished names (mailtls_peer_subject, mailtls_peer_issuer) are
 * written in RFC 4514 form, most specific RDN first (the reverse of the
 * DER order), multi-valued RDNs joined with '+'.  Attribute types are the
 * short names BoringSSL knows (CN, O, OU, C, L, ST, DC, emailAddress...),
 * other types dotted OIDs.  Values are converted to UTF-8 (falling back
 * to their raw bytes when they cannot be) and escaped so that the result
 * holds printable ASCII only (0x20..0x7e):
 *   - ',' '+' '"' '<' '>' ';', a leading '#' or space and a trailing
 *     space: a backslash before the character (RFC 4514 section 2.4);
 *   - backslash, '=', bytes below 0x20 (NUL included), 0x7f and every
 *     byte above: \XX, uppercase hex (so a UTF-8 "é" is "\C3\A9");
 *   - a value whose type is not a string: '#' and the hex of its DER.
 * mailtls_peer_cn is the value of the most specific (last in DER order)
 * commonName, escaped the same way.
 *
 * ISC license: see LICENSE.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/mem.h>
#include <openssl/obj.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "internal.h"

/* ------------------------------------------------------------------ */
/* A small growing string                                               */
/* ------------------------------------------------------------------ */

struct sbuf {
	char *p;
	size_t len, cap;
	int failed;
};

static void sb_addn(struct sbuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->cap - b->len <= n) {
		size_t cap = b->cap ? b->cap : 64;
		char *np;
		while (cap - b->len <= n) {
			if (cap > ((size_t)1 << 24)) { /* no name is that long */
				b->failed = 1;
				return;
			}
			cap *= 2;
		}
		np = realloc(b->p, cap);
		if (!np) {
			b->failed = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void sb_adds(struct sbuf *b, const char *s)
{
	sb_addn(b, s, strlen(s));
}

static void sb_addc(struct sbuf *b, char c)
{
	sb_addn(b, &c, 1);
}

static void sb_addhex(struct sbuf *b, uint8_t c)
{
	static const char hex[] = "0123456789ABCDEF";
	char e[3] = { '\\', hex[c >> 4], hex[c & 15] };
	sb_addn(b, e, 3);
}

/* sb_take returns the string (never NULL unless allocation failed). */
static char *sb_take(struct sbuf *b)
{
	if (b->failed) {
		free(b->p);
		return NULL;
	}
	if (!b->p)
		sb_addn(b, "", 0);
	return b->failed ? NULL : b->p;
}

/* ------------------------------------------------------------------ */
/* The peer certificate                                                 */
/* ------------------------------------------------------------------ */

/* The leaf certificate as the peer sent it, or NULL. */
static CRYPTO_BUFFER *leaf_buffer(struct mailtls *s)
{
	const STACK_OF(CRYPTO_BUFFER) *chain;
	if (!s || !s->handshake_done || !s->ssl)
		return NULL;
	chain = SSL_get0_peer_certificates(s->ssl);
	if (!chain || sk_CRYPTO_BUFFER_num(chain) == 0)
		return NULL;
	return sk_CRYPTO_BUFFER_value(chain, 0);
}

/* The leaf certificate parsed (free with X509_free), or NULL. */
static X509 *leaf_x509(struct mailtls *s)
{
	CRYPTO_BUFFER *buf = leaf_buffer(s);
	if (!buf)
		return NULL;
	return X509_parse_from_buffer(buf);
}

static const char *nomem(struct mailtls *s)
{
	mt_seterr(s, MAILTLS_E_NOMEM, "out of memory making a certificate fact");
	return NULL;
}

/* ------------------------------------------------------------------ */
/* RFC 4514 names                                                       */
/* ------------------------------------------------------------------ */

/* escape_value appends |n| bytes of an attribute value, escaped as said at
 * the top of this file. */
static void escape_value(struct sbuf *b, const uint8_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t c = v[i];
		if (c < 0x20 || c >= 0x7f || c == '\\' || c == '=')
			sb_addhex(b, c);
		else if (c == ',' || c == '+' || c == '"' || c == '<' || c == '>' || c == ';' ||
		    (i == 0 && (c == '#' || c == ' ')) || (i == n - 1 && c == ' ')) {
			sb_addc(b, '\\');
			sb_addc(b, (char)c);
		} else
			sb_addc(b, (char)c);
	}
}

static int is_string_type(int type)
{
	switch (type) {
	case V_ASN1_UTF8STRING:
	case V_ASN1_PRINTABLESTRING:
	case V_ASN1_IA5STRING:
	case V_ASN1_T61STRING:
	case V_ASN1_VIDEOTEXSTRING:
	case V_ASN1_GRAPHICSTRING:
	case V_ASN1_VISIBLESTRING:
	case V_ASN1_GENERALSTRING:
	case V_ASN1_NUMERICSTRING:
	case V_ASN1_BMPSTRING:
	case V_ASN1_UNIVERSALSTRING:
		return 1;
	}
	return 0;
}

/* append_hexform appends '#' and the hex of the DER of a value that is
 * not a string (RFC 4514 section 2.4). */
static void append_hexform(struct sbuf *b, const ASN1_STRING *str)
{
	static const char hex[] = "0123456789ABCDEF";
	int type = ASN1_STRING_type(str);
	ASN1_TYPE *t;
	uint8_t *der = NULL;
	int n = -1;

	if (type == V_ASN1_BOOLEAN || type == V_ASN1_NULL || type == V_ASN1_OBJECT) {
		/* Never an ASN1_STRING; a name entry cannot hold them. */
		sb_adds(b, "#");
		return;
	}
	t = ASN1_TYPE_new();
	if (t && ASN1_TYPE_set1(t, type, str))
		n = i2d_ASN1_TYPE(t, &der);
	ASN1_TYPE_free(t);
	if (n < 0) {
		b->failed = 1;
		return;
	}
	sb_addc(b, '#');
	for (int i = 0; i < n; i++) {
		sb_addc(b, hex[der[i] >> 4]);
		sb_addc(b, hex[der[i] & 15]);
	}
	OPENSSL_free(der);
}

static void append_entry_value(struct sbuf *b, const X509_NAME_ENTRY *e)
{
	const ASN1_STRING *str = X509_NAME_ENTRY_get_data(e);
	unsigned char *utf8 = NULL;
	int n;

	if (!str)
		return;
	if (!is_string_type(ASN1_STRING_type(str))) {
		append_hexform(b, str);
		return;
	}
	n = ASN1_STRING_to_UTF8(&utf8, str);
	if (n >= 0) {
		escape_value(b, utf8, (size_t)n);
		OPENSSL_free(utf8);
	} else {
		/* Not convertible (bad UTF-8, odd BMP length...): its raw bytes,
		 * escaped all the same. */
		escape_value(b, ASN1_STRING_get0_data(str), (size_t)ASN1_STRING_length(str));
	}
}

static int is_keychar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

static void append_entry_type(struct sbuf *b, const X509_NAME_ENTRY *e)
{
	const ASN1_OBJECT *obj = X509_NAME_ENTRY_get_object(e);
	int nid = OBJ_obj2nid(obj);
	const char *sn = nid != NID_undef ? OBJ_nid2sn(nid) : NULL;
	char oid[128];
	int ok = sn && *sn && ((*sn >= 'a' && *sn <= 'z') || (*sn >= 'A' && *sn <= 'Z'));

	for (const char *p = sn; ok && *p; p++)
		if (!is_keychar(*p))
			ok = 0;
	if (ok) {
		sb_adds(b, sn);
		return;
	}
	if (OBJ_obj2txt(oid, sizeof oid, obj, 1) <= 0) {
		sb_adds(b, "0.0");
		return;
	}
	/* A dotted OID holds digits and dots only; keep it so. */
	for (char *p = oid; *p; p++)
		if (!((*p >= '0' && *p <= '9') || *p == '.'))
			*p = '.';
	sb_adds(b, oid);
}

/* name_string formats |name| in RFC 4514 form, most specific RDN first. */
static char *name_string(const X509_NAME *name)
{
	struct sbuf b = { 0 };
	int n = X509_NAME_entry_count(name);
	int end = n; /* entries [start, end) form one RDN */

	while (end > 0) {
		int set = X509_NAME_ENTRY_set(X509_NAME_get_entry(name, end - 1));
		int start = end - 1;
		while (start > 0 && X509_NAME_ENTRY_set(X509_NAME_get_entry(name, start - 1)) == set)
			start--;
		if (end != n)
			sb_addc(&b, ',');
		for (int i = start; i < end; i++) {
			const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
			if (i != start)
				sb_addc(&b, '+');
			append_entry_type(&b, e);
			sb_addc(&b, '=');
			append_entry_value(&b, e);
		}
		end = start;
	}
	return sb_take(&b);
}

/* name_fact caches the subject (issuer 0) or issuer (issuer 1) string. */
static const char *name_fact(struct mailtls *s, char **slot, int issuer)
{
	X509 *x;
	if (!s || !s->handshake_done)
		return NULL;
	if (*slot)
		return *slot;
	x = leaf_x509(s);
	if (!x)
		return NULL;
	*slot = name_string(issuer ? X509_get_issuer_name(x) : X509_get_subject_name(x));
	X509_free(x);
	return *slot ? *slot : nomem(s);
}

/* ------------------------------------------------------------------ */
/* Session facts                                                        */
/* ------------------------------------------------------------------ */

const char *mailtls_protocol(struct mailtls *s)
{
	if (!s || !s->handshake_done || !s->ssl)
		return NULL;
	return SSL_get_version(s->ssl);
}

const char *mailtls_cipher(struct mailtls *s)
{
	const SSL_CIPHER *c;
	if (!s || !s->handshake_done || !s->ssl)
		return NULL;
	c = SSL_get_current_cipher(s->ssl);
	return c ? SSL_CIPHER_standard_name(c) : NULL;
}

int mailtls_cipher_bits(struct mailtls *s)
{
	const SSL_CIPHER *c;
	if (!s || !s->handshake_done || !s->ssl)
		return 0;
	c = SSL_get_current_cipher(s->ssl);
	return c ? SSL_CIPHER_get_bits(c, NULL) : 0;
}

const char *mailtls_servername(struct mailtls *s)
{
	if (!s || !s->handshake_done)
		return NULL;
	/* A client's own name, or the one a server received; an address literal
	 * is never sent, so never reported. */
	return s->ssl ? SSL_get_servername(s->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

int mailtls_session_reused(struct mailtls *s)
{
	/* Also after a resumed peer failed its check, so a caller can tell why. */
	if (!s || !(s->handshake_done || s->hs_failed) || !s->ssl)
		return 0;
	return SSL_session_reused(s->ssl) ? 1 : 0;
}

int mailtls_peer_verified(struct mailtls *s)
{
	if (!s || !s->handshake_done)
		return 0;
	return s->verified ? 1 : 0;
}

int mailtls_peer_has_cert(struct mailtls *s)
{
	if (!s || !s->handshake_done)
		return 0;
	return s->has_peer_cert || leaf_buffer(s) != NULL;
}

/* Before the handshake there is no result: MAILTLS_E_NONE, as for the
 * other facts' 0.  A peer that was not verified although no check failed
 * (verification off) gives MAILTLS_E_VERIFY, never MAILTLS_E_NONE. */
int mailtls_peer_verify_result(struct mailtls *s)
{
	if (!s || !s->handshake_done)
		return MAILTLS_E_NONE;
	if (s->verified)
		return MAILTLS_E_NONE;
	if (!mailtls_peer_has_cert(s))
		return MAILTLS_E_VERIFY_NOCERT;
	if (s->verify_result != MAILTLS_E_NONE)
		return s->verify_result;
	return MAILTLS_E_VERIFY;
}

/* ------------------------------------------------------------------ */
/* Certificate facts                                                    */
/* ------------------------------------------------------------------ */

const char *mailtls_peer_subject(struct mailtls *s)
{
	return s ? name_fact(s, &s->f_subject, 0) : NULL;
}

const char *mailtls_peer_issuer(struct mailtls *s)
{
	return s ? name_fact(s, &s->f_issuer, 1) : NULL;
}

const char *mailtls_peer_cn(struct mailtls *s)
{
	X509 *x;
	const X509_NAME *name;
	int i, last = -1;
	struct sbuf b = { 0 };

	if (!s || !s->handshake_done)
		return NULL;
	if (s->f_cn)
		return s->f_cn;
	x = leaf_x509(s);
	if (!x)
		return NULL;
	name = X509_get_subject_name(x);
	for (i = -1; (i = X509_NAME_get_index_by_NID(name, NID_commonName, i)) >= 0;)
		last = i;
	if (last < 0) {
		X509_free(x);
		return NULL;
	}
	append_entry_value(&b, X509_NAME_get_entry(name, last));
	X509_free(x);
	s->f_cn = sb_take(&b);
	return s->f_cn ? s->f_cn : nomem(s);
}

const char *mailtls_peer_fingerprint(struct mailtls *s)
{
	CRYPTO_BUFFER *buf;
	uint8_t md[SHA256_DIGEST_LENGTH];
	char *fp;

	if (!s || !s->handshake_done)
		return NULL;
	if (s->f_fp)
		return s->f_fp;
	buf = leaf_buffer(s);
	if (!buf)
		return NULL;
	SHA256(CRYPTO_BUFFER_data(buf), CRYPTO_BUFFER_len(buf), md);
	fp = malloc(7 + 2 * sizeof md + 1);
	if (!fp)
		return nomem(s);
	memcpy(fp, "SHA256:", 7);
	mt_hex(fp + 7, md, sizeof md, 0);
	s->f_fp = fp;
	return fp;
}

const char *mailtls_peer_serial(struct mailtls *s)
{
	X509 *x;
	const ASN1_INTEGER *serial;
	const uint8_t *data;
	size_t n, off;
	int neg;
	char *out;

	if (!s || !s->handshake_done)
		return NULL;
	if (s->f_serial)
		return s->f_serial;
	x = leaf_x509(s);
	if (!x)
		return NULL;
	serial = X509_get0_serialNumber(x);
	if (!serial) {
		X509_free(x);
		return NULL;
	}
	data = ASN1_STRING_get0_data(serial);
	n = (size_t)ASN1_STRING_length(serial);
	neg = ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER;
	while (n > 1 && data[0] == 0) { /* minimal magnitude */
		data++;
		n--;
	}
	out = malloc(1 + 2 * (n ? n : 1) + 1);
	if (!out) {
		X509_free(x);
		return nomem(s);
	}
	off = 0;
	if (neg)
		out[off++] = '-';
	if (n)
		mt_hex(out + off, data, n, 1);
	else
		strcpy(out + off, "00");
	X509_free(x);
	s->f_serial = out;
	return out;
}

/* time_fact caches notBefore (after 0) or notAfter (after 1) as
 * ASN1_TIME_print writes it: "Jan  2 03:04:05 2026 GMT". */
static const char *time_fact(struct mailtls *s, char **slot, int after)
{
	X509 *x;
	BIO *bio;
	const uint8_t *p;
	size_t n;
	char *out = NULL;

	if (!s || !s->handshake_done)
		return NULL;
	if (*slot)
		return *slot;
	x = leaf_x509(s);
	if (!x)
		return NULL;
	bio = BIO_new(BIO_s_mem());
	if (!bio) {
		X509_free(x);
		return nomem(s);
	}
	if (ASN1_TIME_print(bio, after ? X509_get0_notAfter(x) : X509_get0_notBefore(x)) &&
	    BIO_mem_contents(bio, &p, &n)) {
		out = malloc(n + 1);
		if (out) {
			/* ASN1_TIME_print writes printable ASCII; make sure. */
			for (size_t i = 0; i < n; i++)
				out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
			out[n] = 0;
		}
	} else {
		BIO_free(bio);
		X509_free(x);
		return NULL;
	}
	BIO_free(bio);
	X509_free(x);
	if (!out)
		return nomem(s);
	*slot = out;
	return out;
}

const char *mailtls_peer_not_before(struct mailtls *s)
{
	return s ? time_fact(s, &s->f_nb, 0) : NULL;
}

const char *mailtls_peer_not_after(struct mailtls *s)
{
	return s ? time_fact(s, &s->f_na, 1) : NULL;
}
