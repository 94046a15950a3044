/* ticketkeys.c -- session ticket keys: the one random key of a
 * configuration, or a set of named keys shared by a fleet (the first
 * issues, all accept).  See mailtls.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "internal.h"

#define NAME_LEN 16
#define HMAC_LEN 32

struct keyset {
	size_t n;
	uint8_t k[MAILTLS_TICKET_KEYS_MAX][MAILTLS_TICKET_KEY_LEN];
};

/* The set hangs on the SSL_CTX, not on the configuration: a session that
 * released its configuration still issues its TLS 1.3 tickets (they are
 * sent with its first write), and the SSL_CTX lives as long as any such
 * session does. */
static void keyset_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int index, long argl, void *argp)
{
	(void)parent, (void)ad, (void)index, (void)argl, (void)argp;
	if (ptr) {
		OPENSSL_cleanse(ptr, sizeof(struct keyset));
		free(ptr);
	}
}

static int ex_idx = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void ex_init(void)
{
	ex_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, keyset_free);
}

static struct keyset *keyset_of(SSL_CTX *ctx)
{
	pthread_once(&ex_once, ex_init);
	return ex_idx < 0 ? NULL : SSL_CTX_get_ex_data(ctx, ex_idx);
}

/* BoringSSL's ticket callback: see SSL_CTX_set_tlsext_ticket_key_cb in
 * ssl.h for its modes and its return values. */
static int ticket_cb(SSL *ssl, uint8_t *name, uint8_t *iv, EVP_CIPHER_CTX *cctx, HMAC_CTX *hctx, int encrypt)
{
	struct keyset *ks = keyset_of(SSL_get_SSL_CTX(ssl));
	const uint8_t *k;
	size_t i;
	if (!ks || !ks->n)
		return encrypt ? -1 : 0;
	if (encrypt) {
		k = ks->k[0];
		if (!RAND_bytes(iv, EVP_CIPHER_iv_length(EVP_aes_256_cbc())))
			return -1;
		memcpy(name, k, NAME_LEN);
		if (!EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k + NAME_LEN + HMAC_LEN, iv) ||
		    !HMAC_Init_ex(hctx, k + NAME_LEN, HMAC_LEN, EVP_sha256(), NULL))
			return -1;
		return 1;
	}
	for (i = 0; i < ks->n; i++)
		if (CRYPTO_memcmp(name, ks->k[i], NAME_LEN) == 0)
			break;
	if (i == ks->n)
		return 0;
	k = ks->k[i];
	if (!HMAC_Init_ex(hctx, k + NAME_LEN, HMAC_LEN, EVP_sha256(), NULL) ||
	    !EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k + NAME_LEN + HMAC_LEN, iv))
		return -1;
	/* An older key: the client gets a new ticket under the first. */
	return i == 0 ? 1 : 2;
}

int mailtls_config_set_ticket_keys(struct mailtls_config *cfg, const unsigned char *keys, size_t len)
{
	mt_cfg_clearerr(cfg);
	if (!keys || len != 48 || !SSL_CTX_set_tlsext_ticket_keys(cfg->ctx, keys, len)) {
		mt_cfg_seterr(cfg, MAILTLS_E_USAGE, "ticket keys are 48 bytes");
		return -1;
	}
	/* One key again: the set (if any) no longer decides. */
	SSL_CTX_set_tlsext_ticket_key_cb(cfg->ctx, NULL);
	if (keyset_of(cfg->ctx)) {
		keyset_free(NULL, keyset_of(cfg->ctx), NULL, 0, 0, NULL);
		SSL_CTX_set_ex_data(cfg->ctx, ex_idx, NULL);
	}
	return 0;
}

int mailtls_config_set_ticket_keys_mem(struct mailtls_config *cfg, const unsigned char *keys, size_t len)
{
	struct keyset *ks, *old;
	mt_cfg_clearerr(cfg);
	if (!keys || !len || len % MAILTLS_TICKET_KEY_LEN || len / MAILTLS_TICKET_KEY_LEN > MAILTLS_TICKET_KEYS_MAX) {
		mt_cfg_seterr(cfg, MAILTLS_E_CONFIG, "ticket keys: %zu bytes are not 1 to %d records of %d bytes",
		    len, MAILTLS_TICKET_KEYS_MAX, MAILTLS_TICKET_KEY_LEN);
		return -1;
	}
	for (size_t i = 0; i < len / MAILTLS_TICKET_KEY_LEN; i++)
		for (size_t j = 0; j < i; j++)
			if (!memcmp(keys + i * MAILTLS_TICKET_KEY_LEN, keys + j * MAILTLS_TICKET_KEY_LEN, NAME_LEN)) {
				mt_cfg_seterr(cfg, MAILTLS_E_CONFIG, "ticket keys: keys %zu and %zu have the same name",
				    j + 1, i + 1);
				return -1;
			}
	if (!(ks = calloc(1, sizeof *ks))) {
		mt_cfg_seterr(cfg, MAILTLS_E_NOMEM, "out of memory");
		return -1;
	}
	ks->n = len / MAILTLS_TICKET_KEY_LEN;
	memcpy(ks->k, keys, len);
	old = keyset_of(cfg->ctx);
	if (ex_idx < 0 || !SSL_CTX_set_ex_data(cfg->ctx, ex_idx, ks)) {
		keyset_free(NULL, ks, NULL, 0, 0, NULL);
		ERR_clear_error();
		mt_cfg_seterr(cfg, MAILTLS_E_NOMEM, "out of memory");
		return -1;
	}
	keyset_free(NULL, old, NULL, 0, 0, NULL);
	SSL_CTX_set_tlsext_ticket_key_cb(cfg->ctx, ticket_cb);
	return 0;
}

int mailtls_config_set_ticket_keys_file(struct mailtls_config *cfg, const char *path)
{
	char *buf;
	size_t len;
	int r;
	mt_cfg_clearerr(cfg);
	if (!path) {
		mt_cfg_seterr(cfg, MAILTLS_E_USAGE, "no ticket key file");
		return -1;
	}
	/* Anyone who reads the keys can decrypt every session they protected
	 * before TLS 1.3 and impersonate the fleet: refuse a file the admin
	 * left open rather than use it. */
	if (mt_read_file_mode(cfg, path, S_IRWXG | S_IRWXO, "ticket key file is open to group or others",
	    &buf, &len) < 0)
		return -1;
	r = mailtls_config_set_ticket_keys_mem(cfg, (const unsigned char *)buf, len);
	mt_free_secret(buf, len);
	if (r < 0) {
		char msg[MT_ERRLEN];
		memcpy(msg, cfg->errmsg, sizeof msg);
		mt_cfg_seterr(cfg, cfg->errcode, "%s: %s", path, msg);
	}
	return r;
}
