/* resume.c -- client session resumption: the newest resumable session
 * (TLS 1.3 tickets arrive after the handshake) kept on the session, saved
 * and offered as bytes so separate processes can share it, with the
 * verification verdict in front (verdict.c).  See mailtls.h. */
#include <string.h>

#include "internal.h"

int mt_new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct mailtls *s = mt_from_ssl(ssl);
	if (!s || s->is_server)
		return 0;
	SSL_SESSION_free(s->last_session);
	s->last_session = sess;   /* takes the reference */
	return 1;
}

int mailtls_set_session(struct mailtls *s, const unsigned char *buf, size_t len)
{
	SSL_SESSION *sess = NULL;
	int ok, hdr;
	mt_clearerr(s);
	if (s->is_server || s->hs_begun || !buf || !s->cfg) {
		mt_seterr(s, MAILTLS_E_USAGE, "a saved session is offered by a client before its handshake");
		return -1;
	}
	hdr = mt_verdict_take(s, buf, len);
	if (hdr >= 0)
		sess = SSL_SESSION_from_bytes(buf + hdr, len - (size_t)hdr, s->cfg->ctx);
	if (!sess) {
		char e[200];
		memset(&s->offered, 0, sizeof s->offered);
		if (hdr < 0)
			mt_seterr(s, MAILTLS_E_TLS, "saved session unusable: a damaged verdict");
		else
			mt_seterr(s, MAILTLS_E_TLS, "saved session unusable: %s", mt_ssl_errstr(e, sizeof e));
		return -1;
	}
	ok = SSL_set_session(s->ssl, sess);
	SSL_SESSION_free(sess);
	if (!ok) {
		memset(&s->offered, 0, sizeof s->offered);
		mt_seterr(s, MAILTLS_E_TLS, "saved session refused");
		return -1;
	}
	return 0;
}

ssize_t mailtls_get_session(struct mailtls *s, unsigned char *buf, size_t len)
{
	SSL_SESSION *sess = s->last_session;
	uint8_t *der = NULL, hdr[MT_VERDICT_LEN];
	size_t dlen = 0, hlen;
	mt_clearerr(s);
	if (!sess)
		sess = SSL_get_session(s->ssl);
	if (s->is_server || !sess || !SSL_SESSION_is_resumable(sess))
		return 0;
	if (!SSL_SESSION_to_bytes(sess, &der, &dlen)) {
		mt_seterr(s, MAILTLS_E_NOMEM, "out of memory");
		return -1;
	}
	hlen = mt_verdict_put(s, hdr) ? sizeof hdr : 0;
	if (buf && hlen + dlen > len) {
		OPENSSL_free(der);
		mt_seterr(s, MAILTLS_E_USAGE, "buffer too small for the session (%zu bytes needed)", hlen + dlen);
		return -1;
	}
	if (buf) {
		memcpy(buf, hdr, hlen);
		memcpy(buf + hlen, der, dlen);
	}
	OPENSSL_free(der);   /* cleansed by BoringSSL */
	return (ssize_t)(hlen + dlen);
}
