/* dane.c -- DANE for SMTP (RFC 6698, RFC 7671, RFC 7672): TLSA records
 * given to a client session, matched against the chain the server sent,
 * in place of the configuration's trust anchors and pins.  See mailtls.h.
 *
 * The records live in the SSL object's ex_data, freed with it, so a
 * session without DANE carries nothing for it.  mt_verify_peer (verify.c)
 * asks mt_dane_check whenever records were given, also for a resumed
 * session, which is verified again after its handshake. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "internal.h"

struct mt_tlsa {
	uint8_t usage, selector, mtype;
	int usable;
	uint8_t *data;
	size_t len;
};

struct mt_dane {
	struct mt_tlsa *recs;
	size_t n, nusable;
	struct mailtls_dane_result res;
};

static int dane_index = -1;
static pthread_once_t dane_once = PTHREAD_ONCE_INIT;

static void dane_free(struct mt_dane *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->recs[i].data);
	free(d->recs);
	free(d);
}

static void dane_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int index, long argl, void *argp)
{
	(void)parent, (void)ad, (void)index, (void)argl, (void)argp;
	dane_free(ptr);
}

static void dane_init(void)
{
	dane_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, dane_ex_free);
}

static struct mt_dane *dane_of(const struct mailtls *s)
{
	pthread_once(&dane_once, dane_init);
	return dane_index < 0 || !s->ssl ? NULL : SSL_get_ex_data(s->ssl, dane_index);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int mailtls_tlsa_parse(const char *text, size_t len, struct mailtls_tlsa *out,
    unsigned char *buf, size_t buflen)
{
	const char *p = text, *end = text + len;
	int field[3];
	size_t n = 0;
	int hi = -1;
	if (!text || !out || (!buf && buflen)) {
		errno = EINVAL;
		return -1;
	}
	for (int f = 0; f < 3; f++) {
		int v = 0, digits = 0;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		while (p < end && *p >= '0' && *p <= '9' && digits < 4) {
			v = v * 10 + (*p++ - '0');
			digits++;
		}
		/* A field is a decimal octet followed by a blank. */
		if (!digits || v > 255 || p == end || (*p != ' ' && *p != '\t')) {
			errno = EINVAL;
			return -1;
		}
		field[f] = v;
	}
	/* The data: hex digits, which zone files may split with blanks. */
	for (; p < end; p++) {
		int x;
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			continue;
		if ((x = hexval((unsigned char)*p)) < 0) {
			errno = EINVAL;
			return -1;
		}
		if (hi < 0) {
			hi = x;
			continue;
		}
		if (n == buflen) {
			errno = ENOSPC;
			return -1;
		}
		buf[n++] = (unsigned char)(hi << 4 | x);
		hi = -1;
	}
	if (hi >= 0 || n == 0) {
		errno = EINVAL;
		return -1;
	}
	out->usage = field[0];
	out->selector = field[1];
	out->mtype = field[2];
	out->data = buf;
	out->len = n;
	return 0;
}

/* RFC 7672 section 3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP;
 * a digest of the wrong length, or empty data, is a malformed record,
 * which is unusable too (RFC 7671 section 4.1). */
static int usable(const struct mailtls_tlsa *r)
{
	if ((r->usage != MAILTLS_TLSA_DANE_TA && r->usage != MAILTLS_TLSA_DANE_EE) || r->selector > 1)
		return 0;
	switch (r->mtype) {
	case 0:
		return r->len > 0;
	case 1:
		return r->len == SHA256_DIGEST_LENGTH;
	case 2:
		return r->len == SHA512_DIGEST_LENGTH;
	default:
		return 0;
	}
}

/* Digest algorithm agility (RFC 7671 section 9): among the usable records
 * of one usage and selector, only those with the strongest digest count,
 * so an attacker who can break the weaker digest gains nothing.  Full(0)
 * is no digest and always counts. */
static void apply_agility(struct mt_dane *d)
{
	for (size_t i = 0; i < d->n; i++) {
		struct mt_tlsa *r = &d->recs[i];
		if (!r->usable || r->mtype == 0)
			continue;
		for (size_t j = 0; j < d->n; j++) {
			const struct mt_tlsa *o = &d->recs[j];
			if (o->usable && o->usage == r->usage && o->selector == r->selector && o->mtype > r->mtype) {
				r->usable = 0;
				break;
			}
		}
	}
}

int mailtls_set_dane(struct mailtls *s, const struct mailtls_tlsa *recs, size_t n,
    const char *const *names, size_t nnames)
{
	struct mt_dane *d;
	mt_clearerr(s);
	if (s->is_server || s->hs_begun || n == 0 || !recs ||
	    (nnames && !names) || dane_of(s)) {
		mt_seterr(s, MAILTLS_E_USAGE, "DANE: records are set once, on a client before its handshake");
		return -1;
	}
	if (dane_index < 0)
		goto nomem;
	if (nnames && mailtls_set_verify_names(s, names, nnames) < 0)
		return -1;
	d = calloc(1, sizeof *d);
	if (!d || !(d->recs = calloc(n, sizeof *d->recs))) {
		free(d);
		goto nomem;
	}
	d->n = n;
	for (size_t i = 0; i < n; i++) {
		struct mt_tlsa *r = &d->recs[i];
		if (recs[i].usage < 0 || recs[i].usage > 255 || recs[i].selector < 0 || recs[i].selector > 255 ||
		    recs[i].mtype < 0 || recs[i].mtype > 255 || (recs[i].len && !recs[i].data))
			continue;   /* no TLSA record: left unusable */
		r->usage = (uint8_t)recs[i].usage;
		r->selector = (uint8_t)recs[i].selector;
		r->mtype = (uint8_t)recs[i].mtype;
		r->usable = usable(&recs[i]);
		if (!r->usable)
			continue;
		if (!(r->data = malloc(recs[i].len))) {
			dane_free(d);
			goto nomem;
		}
		memcpy(r->data, recs[i].data, recs[i].len);
		r->len = recs[i].len;
	}
	apply_agility(d);
	for (size_t i = 0; i < n; i++)
		d->nusable += d->recs[i].usable;
	d->res.status = MAILTLS_DANE_UNCHECKED;
	d->res.record = d->res.depth = d->res.usage = d->res.selector = d->res.mtype = -1;
	if (!SSL_set_ex_data(s->ssl, dane_index, d)) {
		dane_free(d);
		goto nomem;
	}
	/* Usable records: authentication is required whatever the
	 * configuration says.  None usable: TLS without authentication, the
	 * outcome recorded, the handshake going on (RFC 7672 section 2.2). */
	s->verify_mode = d->nusable ? MAILTLS_VERIFY_REQUIRE : MAILTLS_VERIFY_OPTIONAL;
	SSL_set_custom_verify(s->ssl, SSL_VERIFY_PEER, mt_verify_cb);
	return (int)d->nusable;
nomem:
	mt_seterr(s, MAILTLS_E_NOMEM, "DANE: out of memory");
	return -1;
}

int mailtls_dane_result(struct mailtls *s, struct mailtls_dane_result *out)
{
	const struct mt_dane *d = dane_of(s);
	struct mailtls_dane_result off = { MAILTLS_DANE_OFF, -1, -1, -1, -1, -1 };
	if (out)
		*out = d ? d->res : off;
	return d ? d->res.status : MAILTLS_DANE_OFF;
}

int mt_dane_active(const struct mailtls *s)
{
	return dane_of(s) != NULL;
}

/* What a record's selector picks from one certificate of the chain: its
 * DER, or its SubjectPublicKeyInfo (made on first need). */
struct mt_cand {
	CRYPTO_BUFFER *der;
	X509 *x;                 /* NULL when it cannot be parsed */
	uint8_t *spki;
	int spki_len;
};

static size_t selected(int selector, struct mt_cand *c, const uint8_t **out)
{
	if (selector == 0) {
		*out = CRYPTO_BUFFER_data(c->der);
		return CRYPTO_BUFFER_len(c->der);
	}
	if (!c->spki && c->x && (c->spki_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(c->x), &c->spki)) <= 0) {
		OPENSSL_free(c->spki);
		c->spki = NULL;
	}
	*out = c->spki;
	return c->spki ? (size_t)c->spki_len : 0;
}

static int record_matches(const struct mt_tlsa *r, struct mt_cand *c)
{
	const uint8_t *sel;
	uint8_t md[SHA512_DIGEST_LENGTH];
	size_t len = selected(r->selector, c, &sel);
	if (!len)
		return 0;
	switch (r->mtype) {
	case 0:
		return r->len == len && !memcmp(r->data, sel, len);
	case 1:
		SHA256(sel, len, md);
		return !memcmp(r->data, md, SHA256_DIGEST_LENGTH);
	default:
		SHA512(sel, len, md);
		return !memcmp(r->data, md, SHA512_DIGEST_LENGTH);
	}
}

static void matched(struct mt_dane *d, size_t i, int depth)
{
	d->res.status = MAILTLS_DANE_MATCHED;
	d->res.record = (int)i;
	d->res.depth = depth;
	d->res.usage = d->recs[i].usage;
	d->res.selector = d->recs[i].selector;
	d->res.mtype = d->recs[i].mtype;
}

/* DANE-TA: the leaf verified up to |ta| alone, names included. */
static int check_to_anchor(struct mailtls *s, X509 *ta, X509 *leaf, STACK_OF(X509) *rest)
{
	X509_STORE *store = X509_STORE_new();
	int rc;
	if (!store || !X509_STORE_add_cert(store, ta)) {
		X509_STORE_free(store);
		mt_seterr(s, MAILTLS_E_NOMEM, "DANE: out of memory");
		return MAILTLS_E_VERIFY;
	}
	rc = mt_check_chain(s, store, leaf, rest);
	X509_STORE_free(store);
	return rc;
}

int mt_dane_check(struct mailtls *s, const STACK_OF(CRYPTO_BUFFER) *chain, X509 *leaf, STACK_OF(X509) *rest)
{
	struct mt_dane *d = dane_of(s);
	size_t n = sk_CRYPTO_BUFFER_num(chain);
	int ta_fail = MAILTLS_E_NONE;
	char why[MT_ERRLEN] = "";
	d->res.record = d->res.depth = d->res.usage = d->res.selector = d->res.mtype = -1;
	if (!d->nusable) {
		d->res.status = MAILTLS_DANE_UNUSABLE;
		mt_seterr(s, MAILTLS_E_VERIFY_DANE, "DANE: no usable TLSA records, TLS required without authentication");
		return MAILTLS_E_VERIFY_DANE;
	}
	d->res.status = MAILTLS_DANE_FAILED;
	for (size_t depth = 0; depth < n; depth++) {
		struct mt_cand c = { sk_CRYPTO_BUFFER_value(chain, depth), NULL, NULL, 0 };
		int done = 0;
		c.x = depth == 0 ? leaf : X509_parse_from_buffer(c.der);
		for (size_t i = 0; i < d->n && !done; i++) {
			const struct mt_tlsa *r = &d->recs[i];
			int rc;
			if (!r->usable || !record_matches(r, &c))
				continue;
			if (r->usage == MAILTLS_TLSA_DANE_EE) {
				/* The leaf's key is the server's: no chain, name or date. */
				if (depth == 0) {
					/* An earlier DANE-TA record's failed check set an error. */
					matched(d, i, 0);
					mt_clearerr(s);
					done = 1;
				}
				continue;
			}
			if (!c.x)
				continue;
			rc = check_to_anchor(s, c.x, leaf, rest);
			if (rc == MAILTLS_E_NONE) {
				matched(d, i, (int)depth);
				mt_clearerr(s);
				done = 1;
			} else if (ta_fail == MAILTLS_E_NONE) {
				ta_fail = rc;
				snprintf(why, sizeof why, "DANE: TLSA %d %d %d matches the certificate at depth %zu, but %.300s",
				    r->usage, r->selector, r->mtype, depth,
				    strncmp(s->errmsg, "verify: ", 8) ? s->errmsg : s->errmsg + 8);
			}
		}
		OPENSSL_free(c.spki);
		if (depth > 0)
			X509_free(c.x);
		if (done)
			return MAILTLS_E_NONE;
	}
	if (ta_fail != MAILTLS_E_NONE) {
		mt_seterr(s, ta_fail, "%s", why);
		return ta_fail;
	}
	mt_seterr(s, MAILTLS_E_VERIFY_DANE, "DANE: TLSA mismatch: no usable record matches the server's chain");
	return MAILTLS_E_VERIFY_DANE;
}
