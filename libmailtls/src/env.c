/*
 * env.c -- the connection facts as an environment block (mailtls_env)
 * and the escaping of environment values (mailtls_escape).  See mailtls.h.
 *
 * The block, in this order (a name is left out when its fact does not
 * apply; each name appears at most once):
 *   SSL_PROTOCOL            "TLSv1.3"
 *   SSL_CIPHER              IANA name, "TLS_AES_128_GCM_SHA256"
 *   SSL_SESSION_ID          uppercase hex of the session ID (left out when
 *                           the session has none)
 *   SSL_CIPHER_USEKEYSIZE   symmetric key bits in use
 *   SSL_CIPHER_ALGKEYSIZE   symmetric key bits of the algorithm
 *   SSL_VERSION_INTERFACE   "libmailtls/0.1.0"
 *   SSL_VERSION_LIBRARY     "BoringSSL"
 *   SSL_TLS_SNI_SERVERNAME  the SNI name (only when there was one)
 *   with a peer certificate (the "CLIENT" of the mod_ssl names is the
 *   peer, whichever side this session is):
 *   SSL_CLIENT_S_DN         mailtls_peer_subject
 *   SSL_CLIENT_S_DN_CN      mailtls_peer_cn (only when the subject has a CN)
 *   SSL_CLIENT_I_DN         mailtls_peer_issuer
 *   SSL_CLIENT_V_START      mailtls_peer_not_before
 *   SSL_CLIENT_V_END        mailtls_peer_not_after
 *   SSL_CLIENT_M_SERIAL     mailtls_peer_serial
 *   SSL_PEER_CERT_HASH      mailtls_peer_fingerprint, "SHA256:<hex>"
 *   SSL_PEER_CERT_SUBJECT   mailtls_peer_subject
 *   and always:
 *   SSL_CLIENT_VERIFY       "SUCCESS" (verified), "FAILED:<reason>" (a check
 *                           failed; reason is mailtls_errcode_name of
 *                           mailtls_peer_verify_result, e.g.
 *                           "FAILED:verify-untrusted"), or "NONE" (no peer
 *                           certificate, or it was not checked).
 * Before the handshake is done the block is empty ("\0\0").
 *
 * Every value is escaped.  Values that come out of the certificate
 * name code (the DNs and the CN) are already RFC 4514 strings of printable
 * ASCII whose backslashes start escapes; they pass through the same filter
 * with backslash left alone (so "\0A" stays "\0A", not "\5C0A"), while any
 * byte outside 0x20..0x7e would still become \XX.  All other values (the
 * SNI name, which a client chooses, among them) are escaped exactly as
 * mailtls_escape does, backslash included.
 *
 * ISC license: see LICENSE.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/ssl.h>

#include "internal.h"

/* escape_into writes |in| escaped into |out| (when not NULL) and returns
 * the escaped length.  Bytes below 0x20, 0x7f and above become \XX; so
 * does backslash unless |keep_backslash|. */
static size_t escape_into(char *out, const uint8_t *in, size_t n, int keep_backslash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = in[i];
		if (c < 0x20 || c >= 0x7f || (c == '\\' && !keep_backslash)) {
			if (out) {
				out[o] = '\\';
				out[o + 1] = hex[c >> 4];
				out[o + 2] = hex[c & 15];
			}
			o += 3;
		} else {
			if (out)
				out[o] = (char)c;
			o++;
		}
	}
	return o;
}

ssize_t mailtls_escape(char *out, size_t outlen, const void *in, size_t inlen)
{
	const uint8_t *p = in;
	size_t need, o;

	if ((!in && inlen) || inlen > ((size_t)SSIZE_MAX - 1) / 3) {
		if (out && outlen)
			out[0] = 0;
		return -1;
	}
	need = escape_into(NULL, p, inlen, 0) + 1;
	if (!out)
		return (ssize_t)need;
	if (outlen >= need) {
		o = escape_into(out, p, inlen, 0);
		out[o] = 0;
		return (ssize_t)o;
	}
	/* Too small: write what fits, never half an escape, and end it. */
	if (outlen) {
		o = 0;
		for (size_t i = 0; i < inlen; i++) {
			size_t k = escape_into(NULL, p + i, 1, 0);
			if (o + k >= outlen)
				break;
			o += escape_into(out + o, p + i, 1, 0);
		}
		out[o] = 0;
	}
	return -1;
}

/* ------------------------------------------------------------------ */
/* The block                                                            */
/* ------------------------------------------------------------------ */

/* One pass over the facts: with buf NULL it only counts.  It never
 * writes past cap, and always counts what it would have written. */
struct emit {
	char *buf;
	size_t cap;
	size_t pos;
	int nvars;
};

static int fits(const struct emit *e, size_t n)
{
	return e->buf && e->pos <= e->cap && n <= e->cap - e->pos;
}

static void put(struct emit *e, const void *p, size_t n)
{
	if (fits(e, n))
		memcpy(e->buf + e->pos, p, n);
	e->pos += n;
}

static void var(struct emit *e, const char *name, const char *value, int escaped)
{
	size_t n;
	if (!value)
		return;
	put(e, name, strlen(name));
	put(e, "=", 1);
	n = strlen(value);
	if (fits(e, escape_into(NULL, (const uint8_t *)value, n, escaped)))
		escape_into(e->buf + e->pos, (const uint8_t *)value, n, escaped);
	e->pos += escape_into(NULL, (const uint8_t *)value, n, escaped);
	put(e, "", 1);
	e->nvars++;
}

static void var_num(struct emit *e, const char *name, int v)
{
	char num[32];
	snprintf(num, sizeof num, "%d", v);
	var(e, name, num, 0);
}

/* The peer's certificate, in mod_ssl's names: a server's peer is the
 * client (SSL_CLIENT_*), a client's peer the server (SSL_SERVER_*, as
 * sslclient names it). */
static const char *peer_name(const struct mailtls *s, const char *what, char *buf, size_t len)
{
	snprintf(buf, len, "SSL_%s_%s", s->is_server ? "CLIENT" : "SERVER", what);
	return buf;
}

/* build writes (buf not NULL) or measures the block; returns its length. */
static size_t build(struct mailtls *s, char *buf, size_t cap)
{
	struct emit e = { buf, cap, 0, 0 };

	if (s->handshake_done && s->ssl) {
		const SSL_CIPHER *c = SSL_get_current_cipher(s->ssl);
		SSL_SESSION *sess = SSL_get_session(s->ssl);
		int has_cert = mailtls_peer_has_cert(s);
		const char *verify;
		char name[32];

		var(&e, "SSL_PROTOCOL", mailtls_protocol(s), 0);
		var(&e, "SSL_CIPHER", mailtls_cipher(s), 0);
		if (sess) {
			unsigned idlen = 0;
			const uint8_t *id = SSL_SESSION_get_id(sess, &idlen);
			char hex[2 * SSL_MAX_SSL_SESSION_ID_LENGTH + 1];
			if (id && idlen > 0 && idlen <= SSL_MAX_SSL_SESSION_ID_LENGTH) {
				mt_hex(hex, id, idlen, 1);
				var(&e, "SSL_SESSION_ID", hex, 0);
			}
		}
		if (c) {
			int alg = 0;
			int use = SSL_CIPHER_get_bits(c, &alg);
			var_num(&e, "SSL_CIPHER_USEKEYSIZE", use);
			var_num(&e, "SSL_CIPHER_ALGKEYSIZE", alg);
		}
		var(&e, "SSL_VERSION_INTERFACE", "libmailtls/" MAILTLS_VERSION_STRING, 0);
		var(&e, "SSL_VERSION_LIBRARY", "BoringSSL", 0);
		var(&e, "SSL_TLS_SNI_SERVERNAME", mailtls_servername(s), 0);
		if (has_cert) {
			var(&e, peer_name(s, "S_DN", name, sizeof name), mailtls_peer_subject(s), 1);
			var(&e, peer_name(s, "S_DN_CN", name, sizeof name), mailtls_peer_cn(s), 1);
			var(&e, peer_name(s, "I_DN", name, sizeof name), mailtls_peer_issuer(s), 1);
			var(&e, peer_name(s, "V_START", name, sizeof name), mailtls_peer_not_before(s), 0);
			var(&e, peer_name(s, "V_END", name, sizeof name), mailtls_peer_not_after(s), 0);
			var(&e, peer_name(s, "M_SERIAL", name, sizeof name), mailtls_peer_serial(s), 0);
			var(&e, "SSL_PEER_CERT_HASH", mailtls_peer_fingerprint(s), 0);
			var(&e, "SSL_PEER_CERT_SUBJECT", mailtls_peer_subject(s), 1);
		}
		if (!has_cert)
			verify = "NONE";
		else if (mailtls_peer_verified(s))
			verify = "SUCCESS";
		else if (s->verify_result != MAILTLS_E_NONE)
			verify = NULL;
		else
			verify = "NONE"; /* not checked (verification off) */
		if (verify) {
			var(&e, peer_name(s, "VERIFY", name, sizeof name), verify, 0);
		} else {
			char failed[64];
			snprintf(failed, sizeof failed, "FAILED:%s",
			    mailtls_errcode_name(mailtls_peer_verify_result(s)));
			var(&e, peer_name(s, "VERIFY", name, sizeof name), failed, 0);
		}
	}
	if (e.nvars == 0)
		put(&e, "", 1); /* the empty set is "\0\0" */
	put(&e, "", 1);
	return e.pos;
}

ssize_t mailtls_env(struct mailtls *s, char *buf, size_t len)
{
	size_t need;

	if (!s)
		return -1;
	mt_clearerr(s);
	need = build(s, NULL, 0);
	if (s->errcode == MAILTLS_E_NOMEM)
		return -1; /* a fact could not be made: no block that silently lacks it */
	if (!buf)
		return (ssize_t)need;
	if (len < need) {
		mt_seterr(s, MAILTLS_E_USAGE, "mailtls_env: buffer of %zu bytes, %zu needed", len, need);
		return -1;
	}
	if (build(s, buf, len) != need) { /* cannot happen: facts are cached */
		mt_seterr(s, MAILTLS_E_USAGE, "mailtls_env: facts changed while writing");
		return -1;
	}
	return (ssize_t)need;
}
