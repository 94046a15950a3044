/* verdict.c -- a client's verification verdict, carried in the session it
 * saves and kept when that session is resumed under the same trust
 * settings.  Verifying a resumed peer's chain again costs more than the
 * resumed handshake itself (and parsing a CA bundle for it far more); the
 * verdict needs neither, and a digest of everything verification depends
 * on keeps a verdict reached under other settings from ever standing.
 *
 * A saved session is the SSL_SESSION's DER (which starts with 0x30), or
 * that DER after this header:
 *   "mTv1"            magic
 *   trust[32]         the trust digest (trust_digest)
 *   result            MAILTLS_E_NONE or a verify category, one byte
 *   has_peer_cert     one byte, 0 or 1
 *   until[8]          big-endian seconds since the epoch
 * See mailtls.h (mailtls_set_session, mailtls_get_session). */
#include <string.h>
#include <time.h>

#include "internal.h"

static const uint8_t magic[4] = { 'm', 'T', 'v', '1' };

static void put_len(SHA256_CTX *c, uint64_t n)
{
	uint8_t b[8];
	mt_be64(b, n);
	SHA256_Update(c, b, sizeof b);
}

static void put_str(SHA256_CTX *c, const char *str)
{
	if (!str) {
		put_len(c, UINT64_MAX);
		return;
	}
	put_len(c, strlen(str));
	SHA256_Update(c, str, strlen(str));
}

/* The digest of what verifying |s|'s peer depends on: the mode, every
 * trust anchor given (CA files and texts by content), the pins, the SNI
 * name and the verify names.  0 when there is no such digest: no
 * verification, DANE records (their own outcome is reported), a hook
 * (the caller's code decides), a CA directory (read at each lookup). */
static int trust_digest(const struct mailtls *s, uint8_t out[32])
{
	const struct mailtls_config *cfg = s->cfg;
	SHA256_CTX c, ca;
	uint8_t cad[32], mode = (uint8_t)s->verify_mode;
	if (!cfg || s->is_server || (s->verify_mode == MAILTLS_VERIFY_NONE && !cfg->npins) || mt_dane_active(s) ||
	    cfg->vcb || cfg->ca_opaque)
		return 0;
	ca = cfg->ca_sha;
	SHA256_Final(cad, &ca);
	SHA256_Init(&c);
	SHA256_Update(&c, "mailtls trust 1", 16);
	SHA256_Update(&c, &mode, 1);
	SHA256_Update(&c, cad, sizeof cad);
	put_len(&c, cfg->npins);
	for (size_t i = 0; i < cfg->npins; i++) {
		uint8_t spki = (uint8_t)cfg->pins[i].spki;
		SHA256_Update(&c, &spki, 1);
		SHA256_Update(&c, cfg->pins[i].digest, sizeof cfg->pins[i].digest);
	}
	put_str(&c, s->servername);
	put_len(&c, s->nvnames);
	for (size_t i = 0; i < s->nvnames; i++)
		put_str(&c, s->vnames[i]);
	SHA256_Final(out, &c);
	return 1;
}

void mt_verdict_record(struct mailtls *s)
{
	struct mt_verdict *v = &s->verdict;
	v->set = trust_digest(s, v->trust);
	v->result = s->verify_result;
	v->has_peer_cert = s->has_peer_cert;
	v->until = s->verified ? s->verdict_until : INT64_MAX;
}

int mt_verdict_keep(struct mailtls *s)
{
	const struct mt_verdict *o = &s->offered;
	uint8_t now[32];
	if (!o->set || !trust_digest(s, now) || memcmp(now, o->trust, sizeof now) != 0 ||
	    (int64_t)time(NULL) >= o->until)
		return 0;
	/* a failure stands only where it would not have ended the handshake */
	if (o->result != MAILTLS_E_NONE && s->verify_mode != MAILTLS_VERIFY_OPTIONAL)
		return 0;
	s->verify_result = o->result;
	s->verified = o->result == MAILTLS_E_NONE;
	s->has_peer_cert = o->has_peer_cert;
	s->verdict = *o;   /* carried on in the sessions this one saves */
	return 1;
}

int mt_verdict_put(const struct mailtls *s, uint8_t *out)
{
	const struct mt_verdict *v = &s->verdict;
	if (!v->set)
		return 0;
	memcpy(out, magic, 4);
	memcpy(out + 4, v->trust, 32);
	out[36] = (uint8_t)v->result;
	out[37] = (uint8_t)(v->has_peer_cert != 0);
	mt_be64(out + 38, (uint64_t)v->until);
	return 1;
}

int mt_verdict_take(struct mailtls *s, const uint8_t *buf, size_t len)
{
	struct mt_verdict *o = &s->offered;
	uint64_t until = 0;
	memset(o, 0, sizeof *o);
	if (len < 4 || memcmp(buf, magic, 4) != 0)
		return 0;
	if (len < MT_VERDICT_LEN || buf[37] > 1 || (buf[36] != MAILTLS_E_NONE && !mailtls_errcode_is_verify(buf[36])))
		return -1;
	for (int i = 0; i < 8; i++)
		until = until << 8 | buf[38 + i];
	if (until > INT64_MAX)
		return -1;
	memcpy(o->trust, buf + 4, 32);
	o->result = buf[36];
	o->has_peer_cert = buf[37];
	o->until = (int64_t)until;
	o->set = 1;
	return MT_VERDICT_LEN;
}
