/* error.c -- the one error convention: a category and a message kept on
 * the object.  See mailtls.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "internal.h"

static void vset(int *codep, char *msg, int code, const char *fmt, va_list ap)
{
	int saved = errno;
	*codep = code;
	vsnprintf(msg, MT_ERRLEN, fmt, ap);
	errno = saved;
}

void mt_seterr(struct mailtls *s, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(&s->errcode, s->errmsg, code, fmt, ap);
	va_end(ap);
}

void mt_cfg_seterr(struct mailtls_config *cfg, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(&cfg->errcode, cfg->errmsg, code, fmt, ap);
	va_end(ap);
}

void mt_clearerr(struct mailtls *s)
{
	s->errcode = MAILTLS_E_NONE;
	s->errmsg[0] = 0;
	ERR_clear_error();
}

void mt_cfg_clearerr(struct mailtls_config *cfg)
{
	cfg->errcode = MAILTLS_E_NONE;
	cfg->errmsg[0] = 0;
	ERR_clear_error();
}

const char *mt_ssl_errstr(char *buf, size_t len)
{
	uint32_t e = ERR_get_error();
	const char *reason;
	if (!e) {
		snprintf(buf, len, "unknown TLS error");
	} else {
		reason = ERR_reason_error_string(e);
		snprintf(buf, len, "%s", reason ? reason : "unknown TLS error");
	}
	ERR_clear_error();
	return buf;
}

int mt_ssl_result(struct mailtls *s, int ret, const char *what)
{
	char buf[256];
	int saved = errno;
	int err = SSL_get_error(s->ssl, ret);
	switch (err) {
	case SSL_ERROR_WANT_READ:
		return MAILTLS_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return MAILTLS_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		s->peer_closed = 1;
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		/* The descriptor BIO leaves errno 0 at end of file. */
		if (saved == 0) {
			mt_seterr(s, MAILTLS_E_TRUNCATED, "%s: connection closed by peer without close_notify", what);
		} else {
			errno = saved;
			mt_seterr(s, MAILTLS_E_SYSTEM, "%s: %s", what, strerror(saved));
		}
		errno = saved;
		return -1;
	default:
		if (s->errcode != MAILTLS_E_NONE) {
			/* A callback of ours already said what went wrong. */
			ERR_clear_error();
		} else if (ERR_GET_LIB(ERR_peek_error()) == ERR_LIB_SSL &&
		    ERR_GET_REASON(ERR_peek_error()) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
			ERR_clear_error();
			mt_seterr(s, MAILTLS_E_VERIFY_NOCERT, "%s: the client sent no certificate", what);
		} else {
			mt_seterr(s, MAILTLS_E_TLS, "%s: %s", what, mt_ssl_errstr(buf, sizeof buf));
		}
		return -1;
	}
}

int mailtls_error_temporary(int code)
{
	return code != MAILTLS_E_USAGE;
}

int mailtls_errcode_is_verify(int code)
{
	return (code >= MAILTLS_E_VERIFY && code <= MAILTLS_E_VERIFY_NOCERT) || code == MAILTLS_E_VERIFY_DANE;
}

const char *mailtls_errcode_name(int code)
{
	static const char *const names[] = {
		"none", "system", "tls", "verify", "verify-untrusted", "verify-name",
		"verify-expired", "verify-selfsigned", "verify-pin", "verify-hook",
		"verify-nocert", "truncated", "protocol", "injection", "timeout",
		"usage", "config", "nomem", "verify-dane",
	};
	if (code < 0 || (size_t)code >= sizeof names / sizeof names[0])
		return "unknown";
	return names[code];
}

const char *mailtls_error(struct mailtls *s)
{
	return s ? s->errmsg : "no session";
}

int mailtls_errcode(struct mailtls *s)
{
	return s ? s->errcode : MAILTLS_E_USAGE;
}

const char *mailtls_config_error(struct mailtls_config *cfg)
{
	return cfg ? cfg->errmsg : "no configuration";
}

int mailtls_config_errcode(struct mailtls_config *cfg)
{
	return cfg ? cfg->errcode : MAILTLS_E_USAGE;
}
