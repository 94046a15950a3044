/* verify.c -- peer verification: the chain against the trust anchors, the
 * names, pins, and the caller's hook, each failure with its own category.
 * See mailtls.h. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "internal.h"

int mt_pin_parse(const char *text, struct mt_pin *out)
{
	const char *p;
	size_t n = 0;
	if (!strncasecmp(text, "SHA256:", 7)) {
		out->spki = 0;
		p = text + 7;
	} else if (!strncasecmp(text, "SPKI-SHA256:", 12)) {
		out->spki = 1;
		p = text + 12;
	} else {
		return -1;
	}
	while (*p && n < 32) {
		int hi, lo;
		if (*p == ':') {
			p++;
			continue;
		}
		if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]))
			return -1;
		hi = isdigit((unsigned char)p[0]) ? p[0] - '0' : tolower((unsigned char)p[0]) - 'a' + 10;
		lo = isdigit((unsigned char)p[1]) ? p[1] - '0' : tolower((unsigned char)p[1]) - 'a' + 10;
		out->digest[n++] = (uint8_t)(hi << 4 | lo);
		p += 2;
	}
	return n == 32 && *p == 0 ? 0 : -1;
}

static int pin_match(const struct mailtls_config *cfg, X509 *leaf, const CRYPTO_BUFFER *der)
{
	uint8_t cert_digest[32], spki_digest[32];
	uint8_t *spki = NULL;
	int spki_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(leaf), &spki);
	SHA256(CRYPTO_BUFFER_data(der), CRYPTO_BUFFER_len(der), cert_digest);
	if (spki_len > 0)
		SHA256(spki, (size_t)spki_len, spki_digest);
	OPENSSL_free(spki);
	for (size_t i = 0; i < cfg->npins; i++) {
		const struct mt_pin *p = &cfg->pins[i];
		if (!p->spki && !memcmp(p->digest, cert_digest, 32))
			return 1;
		if (p->spki && spki_len > 0 && !memcmp(p->digest, spki_digest, 32))
			return 1;
	}
	return 0;
}

static int classify(int x509err)
{
	switch (x509err) {
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return MAILTLS_E_VERIFY_NAME;
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return MAILTLS_E_VERIFY_EXPIRED;
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
		return MAILTLS_E_VERIFY_SELFSIGNED;
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:   /* a chain to a root nobody trusts */
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		return MAILTLS_E_VERIFY_UNTRUSTED;
	default:
		return MAILTLS_E_VERIFY;
	}
}

/* The leaf has a dNSName; then its subject CN does not count (RFC 6125). */
static int has_dns_san(X509 *leaf)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	int found = 0;
	for (size_t i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++)
		if (sk_GENERAL_NAME_value(gens, i)->type == GEN_DNS)
			found = 1;
	GENERAL_NAMES_free(gens);
	return found;
}

/* |pattern| from a certificate against |name|: equal ignoring case, or
 * "*.rest" covering exactly one more leftmost label, never a bare "*.tld". */
static int host_match(const char *pattern, const char *name)
{
	const char *dot;
	if (!strncmp(pattern, "*.", 2)) {
		dot = strchr(name, '.');
		return dot && dot != name && strchr(pattern + 2, '.') && !strcasecmp(pattern + 1, dot);
	}
	return !strcasecmp(pattern, name);
}

static int cn_matches(X509 *leaf, const char *name)
{
	X509_NAME *subj = X509_get_subject_name(leaf);
	int i = -1, last = -1, ok = 0;
	unsigned char *utf8 = NULL;
	int len;
	while ((i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0)
		last = i;
	if (last < 0)
		return 0;
	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, last)));
	if (len > 0 && memchr(utf8, 0, (size_t)len) == NULL)
		ok = host_match((const char *)utf8, name);
	OPENSSL_free(utf8);
	return ok;
}

static int name_matches(X509 *leaf, const char *name)
{
	if (mt_is_ip_literal(name))
		return X509_check_ip_asc(leaf, name, 0) == 1;
	if (X509_check_host(leaf, name, strlen(name),
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, NULL) == 1)
		return 1;
	return !has_dns_san(leaf) && cn_matches(leaf, name);
}

/* A client's names: any one of them must be in the certificate. */
static int check_names(struct mailtls *s, X509 *leaf)
{
	const char *const *names = (const char *const *)s->vnames;
	size_t n = s->nvnames;
	if (n == 0 && s->servername) {
		names = (const char *const *)&s->servername;
		n = 1;
	}
	if (n == 0) {
		mt_seterr(s, MAILTLS_E_VERIFY_NAME, "verify: no name to check the certificate against");
		return MAILTLS_E_VERIFY_NAME;
	}
	for (size_t i = 0; i < n; i++)
		if (name_matches(leaf, names[i]))
			return MAILTLS_E_NONE;
	mt_seterr(s, MAILTLS_E_VERIFY_NAME, "verify: the server certificate does not name %.200s%s",
	    names[0], n > 1 ? " or the other names checked" : "");
	return MAILTLS_E_VERIFY_NAME;
}

/* The first notAfter of the chain |ctx| built: after it, that chain's
 * verdict no longer holds (0 when a date cannot be read). */
static int64_t chain_until(X509_STORE_CTX *ctx)
{
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
	time_t now = time(NULL);
	ASN1_TIME *t = ASN1_TIME_set(NULL, now);
	int64_t until = chain && t ? INT64_MAX : 0;
	for (size_t i = 0; until && i < sk_X509_num(chain); i++) {
		int days, secs;
		int64_t u;
		if (!ASN1_TIME_diff(&days, &secs, t, X509_get0_notAfter(sk_X509_value(chain, i)))) {
			until = 0;
			break;
		}
		u = (int64_t)now + (int64_t)days * 86400 + secs;
		if (u < until)
			until = u;
	}
	ASN1_TIME_free(t);
	return until;
}

int mt_check_chain(struct mailtls *s, X509_STORE *anchor, X509 *leaf, STACK_OF(X509) *rest)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int rc = MAILTLS_E_VERIFY;
	if (!anchor)
		mt_ca_load(s->cfg);
	if (!ctx || !X509_STORE_CTX_init(ctx, anchor ? anchor : SSL_CTX_get_cert_store(s->cfg->ctx), leaf, rest)) {
		mt_seterr(s, MAILTLS_E_NOMEM, "verify: out of memory");
		goto out;
	}
	X509_STORE_CTX_set_default(ctx, s->is_server ? "ssl_client" : "ssl_server");
	if (anchor)   /* a DANE-TA anchor may be an intermediate */
		X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
	if (X509_verify_cert(ctx) == 1) {
		s->verdict_until = chain_until(ctx);
		rc = s->is_server ? MAILTLS_E_NONE : check_names(s, leaf);
	} else {
		int e = X509_STORE_CTX_get_error(ctx);
		rc = classify(e);
		mt_seterr(s, rc, "verify: %s certificate: %s", s->is_server ? "client" : "server",
		    X509_verify_cert_error_string(e));
	}
out:
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

static uint8_t alert_for(int code)
{
	switch (code) {
	case MAILTLS_E_VERIFY_UNTRUSTED:
	case MAILTLS_E_VERIFY_SELFSIGNED:
		return SSL_AD_UNKNOWN_CA;
	case MAILTLS_E_VERIFY_EXPIRED:
		return SSL_AD_CERTIFICATE_EXPIRED;
	case MAILTLS_E_VERIFY_NOCERT:
		return SSL_AD_CERTIFICATE_REQUIRED;
	default:
		return SSL_AD_BAD_CERTIFICATE;
	}
}

static int run_hook(struct mailtls *s, const STACK_OF(CRYPTO_BUFFER) *chain, int result)
{
	size_t n = sk_CRYPTO_BUFFER_num(chain);
	const unsigned char **der = calloc(n ? n : 1, sizeof *der);
	size_t *len = calloc(n ? n : 1, sizeof *len);
	int r;
	if (!der || !len) {
		free(der);
		free(len);
		mt_seterr(s, MAILTLS_E_NOMEM, "verify: out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		const CRYPTO_BUFFER *b = sk_CRYPTO_BUFFER_value(chain, i);
		der[i] = CRYPTO_BUFFER_data(b);
		len[i] = CRYPTO_BUFFER_len(b);
	}
	free(s->vhook_msg);
	s->vhook_msg = NULL;
	r = s->cfg->vcb(s->cfg->varg, s, der, len, n, result);
	free(der);
	free(len);
	if (r == 0)
		return 0;
	mt_seterr(s, MAILTLS_E_VERIFY_HOOK, "verify: %s", s->vhook_msg ? s->vhook_msg : "refused by the verification hook");
	return -1;
}

void mailtls_set_verify_error(struct mailtls *s, const char *msg)
{
	free(s->vhook_msg);
	s->vhook_msg = mt_strdup(msg);
}

int mt_verify_peer(struct mailtls *s, uint8_t *alert)
{
	const STACK_OF(CRYPTO_BUFFER) *chain = SSL_get0_peer_certificates(s->ssl);
	const struct mailtls_config *cfg = s->cfg;
	STACK_OF(X509) *rest = NULL;
	X509 *leaf = NULL;
	int dane = mt_dane_active(s);
	int result, optional = s->verify_mode == MAILTLS_VERIFY_OPTIONAL && (dane || cfg->npins == 0);
	s->verified = 0;
	s->verdict_until = INT64_MAX;   /* a pin or a failure has no date to pass */
	if (!chain || sk_CRYPTO_BUFFER_num(chain) == 0) {
		s->has_peer_cert = 0;
		result = MAILTLS_E_VERIFY_NOCERT;
		mt_seterr(s, result, "verify: the peer sent no certificate");
		goto done;
	}
	s->has_peer_cert = 1;
	leaf = X509_parse_from_buffer(sk_CRYPTO_BUFFER_value(chain, 0));
	rest = sk_X509_new_null();
	if (!leaf || !rest) {
		result = MAILTLS_E_VERIFY;
		mt_seterr(s, result, "verify: the peer's certificate cannot be parsed");
		goto hook;
	}
	for (size_t i = 1; i < sk_CRYPTO_BUFFER_num(chain); i++) {
		X509 *x = X509_parse_from_buffer(sk_CRYPTO_BUFFER_value(chain, i));
		if (x && !sk_X509_push(rest, x))
			X509_free(x);
	}
	if (dane) {
		result = mt_dane_check(s, chain, leaf, rest);
	} else if (cfg->npins) {
		result = pin_match(cfg, leaf, sk_CRYPTO_BUFFER_value(chain, 0)) ? MAILTLS_E_NONE : MAILTLS_E_VERIFY_PIN;
		if (result)
			mt_seterr(s, result, "verify: the certificate matches no pinned digest");
	} else {
		result = mt_check_chain(s, NULL, leaf, rest);
	}
hook:
	if (cfg->vcb && (s->is_server || s->verify_mode != MAILTLS_VERIFY_NONE)) {
		int before = result;
		result = run_hook(s, chain, result) == 0 ? MAILTLS_E_NONE :
		    (s->errcode == MAILTLS_E_NOMEM ? MAILTLS_E_VERIFY : MAILTLS_E_VERIFY_HOOK);
		if (result == MAILTLS_E_NONE && before != MAILTLS_E_NONE)
			mt_clearerr(s);
	}
done:
	X509_free(leaf);
	sk_X509_pop_free(rest, X509_free);
	s->verify_result = result;
	s->verified = result == MAILTLS_E_NONE;
	if (s->verified || optional) {
		if (!s->verified)
			mt_clearerr(s);   /* recorded in verify_result, not an error */
		if (!s->is_server)
			mt_verdict_record(s);
		return 1;
	}
	*alert = alert_for(result);
	return 0;
}

enum ssl_verify_result_t mt_verify_cb(SSL *ssl, uint8_t *out_alert)
{
	struct mailtls *s = mt_from_ssl(ssl);
	if (!s)
		return ssl_verify_invalid;
	return mt_verify_peer(s, out_alert) ? ssl_verify_ok : ssl_verify_invalid;
}
