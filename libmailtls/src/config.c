/* config.c -- the shared, reference-counted configuration.  See mailtls.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "internal.h"

/* AEAD suites with forward secrecy, in the server's order for TLS 1.2. */
static const char secure_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";
/* For opportunistic MTA-to-MTA TLS, whose alternative is plaintext: the
 * above first, then CBC and static-RSA suites old servers still need. */
static const char compat_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:"
    "AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA:AES256-SHA";

static int servername_cb(SSL *ssl, int *alert, void *arg);

struct mailtls_config *mailtls_config_new(void)
{
	struct mailtls_config *cfg = calloc(1, sizeof *cfg);
	uint8_t keys[48];
	if (!cfg)
		return NULL;
	cfg->refs = 1;
	pthread_mutex_init(&cfg->ca_lock, NULL);
	SHA256_Init(&cfg->ca_sha);
	cfg->ctx = SSL_CTX_new(TLS_method());
	if (!cfg->ctx)
		goto fail;
	cfg->min_proto = TLS1_2_VERSION;
	cfg->max_proto = TLS1_3_VERSION;
	cfg->verify_mode = MAILTLS_VERIFY_REQUIRE;
	if (!SSL_CTX_set_min_proto_version(cfg->ctx, cfg->min_proto) ||
	    !SSL_CTX_set_max_proto_version(cfg->ctx, cfg->max_proto) ||
	    !SSL_CTX_set_strict_cipher_list(cfg->ctx, secure_ciphers))
		goto fail;
	SSL_CTX_set_options(cfg->ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	/* Ticket keys made now, before any fork, so sibling processes agree. */
	RAND_bytes(keys, sizeof keys);
	if (!SSL_CTX_set_tlsext_ticket_keys(cfg->ctx, keys, sizeof keys))
		goto fail;
	OPENSSL_cleanse(keys, sizeof keys);
	SSL_CTX_set_session_id_context(cfg->ctx, (const uint8_t *)"mailtls", 7);
	SSL_CTX_set_session_cache_mode(cfg->ctx, SSL_SESS_CACHE_BOTH | SSL_SESS_CACHE_NO_INTERNAL);
	SSL_CTX_sess_set_new_cb(cfg->ctx, mt_new_session_cb);
	SSL_CTX_set_cert_cb(cfg->ctx, mt_cert_cb, cfg);
	SSL_CTX_set_select_certificate_cb(cfg->ctx, mt_select_cb);
	SSL_CTX_set_tlsext_servername_callback(cfg->ctx, servername_cb);
	SSL_CTX_set_tlsext_servername_arg(cfg->ctx, cfg);
	/* Trust anchors need not be self-signed: tlshosts/<host>.pem may hold
	 * an intermediate or the server's own certificate. */
	X509_STORE_set_flags(SSL_CTX_get_cert_store(cfg->ctx), X509_V_FLAG_PARTIAL_CHAIN);
	return cfg;
fail:
	OPENSSL_cleanse(keys, sizeof keys);
	SSL_CTX_free(cfg->ctx);
	pthread_mutex_destroy(&cfg->ca_lock);
	free(cfg);
	ERR_clear_error();
	errno = ENOMEM;
	return NULL;
}

void mailtls_config_ref(struct mailtls_config *cfg)
{
	if (cfg)
		__atomic_add_fetch(&cfg->refs, 1, __ATOMIC_RELAXED);
}

static void keyset_clear(struct mt_keyset *ks)
{
	free(ks->name);
	ks->name = NULL;
	for (int i = 0; i < MT_KEYTYPES; i++) {
		mt_keypair_free(ks->pairs[i]);
		ks->pairs[i] = NULL;
	}
}

void mailtls_config_free(struct mailtls_config *cfg)
{
	if (!cfg || __atomic_sub_fetch(&cfg->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	keyset_clear(&cfg->def);
	for (size_t i = 0; i < cfg->nsni; i++)
		keyset_clear(&cfg->sni[i]);
	free(cfg->sni);
	free(cfg->pins);
	mt_ca_free(cfg);
	pthread_mutex_destroy(&cfg->ca_lock);
	SSL_CTX_free(cfg->ctx);
	free(cfg);
}

int mailtls_config_set_verify(struct mailtls_config *cfg, int mode)
{
	mt_cfg_clearerr(cfg);
	if (mode != MAILTLS_VERIFY_NONE && mode != MAILTLS_VERIFY_OPTIONAL && mode != MAILTLS_VERIFY_REQUIRE) {
		mt_cfg_seterr(cfg, MAILTLS_E_USAGE, "unknown verification mode %d", mode);
		return -1;
	}
	cfg->verify_mode = mode;
	cfg->verify_mode_set = 1;
	return 0;
}

static int apply_ciphers(struct mailtls_config *cfg, const char *list, const char *shown)
{
	if (!SSL_CTX_set_strict_cipher_list(cfg->ctx, list)) {
		ERR_clear_error();
		mt_cfg_seterr(cfg, MAILTLS_E_CONFIG, "cipher list \"%s\" names an unknown cipher or none", shown);
		return -1;
	}
	return 0;
}

int mailtls_config_set_ciphers(struct mailtls_config *cfg, const char *list)
{
	mt_cfg_clearerr(cfg);
	if (!list) {
		mt_cfg_seterr(cfg, MAILTLS_E_USAGE, "no cipher list");
		return -1;
	}
	if (apply_ciphers(cfg, !strcmp(list, "secure") ? secure_ciphers :
	    !strcmp(list, "compat") ? compat_ciphers : list, list) < 0)
		return -1;
	cfg->ciphers_set = strcmp(list, "secure") != 0;
	return 0;
}

static int valid_version(int v)
{
	return v >= MAILTLS_TLS1_0 && v <= MAILTLS_TLS1_3;
}

int mailtls_config_set_min_protocol(struct mailtls_config *cfg, int version)
{
	mt_cfg_clearerr(cfg);
	if (!valid_version(version) || !SSL_CTX_set_min_proto_version(cfg->ctx, (uint16_t)version)) {
		mt_cfg_seterr(cfg, MAILTLS_E_USAGE, "unknown protocol version 0x%x", version);
		return -1;
	}
	cfg->min_proto = version;
	if (!cfg->ciphers_set)
		return apply_ciphers(cfg, version < MAILTLS_TLS1_2 ? compat_ciphers : secure_ciphers, "default");
	return 0;
}

int mailtls_config_set_max_protocol(struct mailtls_config *cfg, int version)
{
	mt_cfg_clearerr(cfg);
	if (!valid_version(version) || !SSL_CTX_set_max_proto_version(cfg->ctx, (uint16_t)version)) {
		mt_cfg_seterr(cfg, MAILTLS_E_USAGE, "unknown protocol version 0x%x", version);
		return -1;
	}
	cfg->max_proto = version;
	return 0;
}

int mailtls_config_add_pin(struct mailtls_config *cfg, const char *pin)
{
	struct mt_pin p, *v;
	mt_cfg_clearerr(cfg);
	if (!pin || mt_pin_parse(pin, &p) < 0) {
		mt_cfg_seterr(cfg, MAILTLS_E_USAGE, "pin \"%s\" is not SHA256:<hex> or SPKI-SHA256:<hex>",
		    pin ? pin : "(null)");
		return -1;
	}
	v = realloc(cfg->pins, (cfg->npins + 1) * sizeof *v);
	if (!v) {
		mt_cfg_seterr(cfg, MAILTLS_E_NOMEM, "out of memory");
		return -1;
	}
	v[cfg->npins++] = p;
	cfg->pins = v;
	return 0;
}

void mailtls_config_set_verify_cb(struct mailtls_config *cfg, mailtls_verify_cb cb, void *arg)
{
	cfg->vcb = cb;
	cfg->varg = arg;
}

void mailtls_config_set_sni_strict(struct mailtls_config *cfg, int strict)
{
	cfg->sni_strict = strict != 0;
}

/* keypair.c picks the certificate; this only refuses unknown names when
 * asked to, with the alert RFC 6066 names for it. */
static int servername_cb(SSL *ssl, int *alert, void *arg)
{
	struct mailtls_config *cfg = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (!cfg->sni_strict)
		return SSL_TLSEXT_ERR_OK;
	if (mt_keyset_find(cfg, name, 1))
		return SSL_TLSEXT_ERR_OK;
	*alert = SSL_AD_UNRECOGNIZED_NAME;
	{
		struct mailtls *s = mt_from_ssl(ssl);
		if (s)
			mt_seterr(s, MAILTLS_E_TLS, "handshake: SNI name \"%.200s\" matches no certificate",
			    name ? name : "(none)");
	}
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}
