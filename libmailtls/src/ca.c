/* ca.c -- trust anchors.  A CA file is read whole when it is set, and its
 * first certificate parsed then (a file without one is refused at once);
 * the rest is parsed when a session first checks a chain against the
 * anchors (mt_ca_load).  A bundle like Debian's (about 140 certificates)
 * costs far more to parse than a resumed handshake whose earlier verdict
 * stands (verdict.c), which then never parses it.  See mailtls.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "internal.h"

/* Adds the certificates of |pem| to the store, at most |max| of them (0:
 * all); returns how many were added, and in *used how many bytes were
 * read.  As PEM_read_bio_X509 goes, other PEM blocks are skipped and a
 * damaged certificate ends the list. */
static int add_certs(struct mailtls_config *cfg, const char *pem, size_t len, int max, size_t *used)
{
	X509_STORE *store = SSL_CTX_get_cert_store(cfg->ctx);
	BIO *bio = BIO_new_mem_buf(pem, (long)len);
	int n = 0;
	X509 *x;
	if (!bio)
		return -1;
	while ((max == 0 || n < max) && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (X509_STORE_add_cert(store, x))
			n++;
		X509_free(x);
	}
	if (used)
		*used = len - (size_t)BIO_pending(bio);
	BIO_free(bio);
	ERR_clear_error();
	return n;
}

/* The anchors' part of the trust digest (verdict.c): what was given, in
 * order, each source as a tag, its length and its bytes. */
static void ca_digest_add(struct mailtls_config *cfg, char tag, const char *pem, size_t len)
{
	uint8_t hdr[9];
	hdr[0] = (uint8_t)tag;
	mt_be64(hdr + 1, len);
	SHA256_Update(&cfg->ca_sha, hdr, sizeof hdr);
	SHA256_Update(&cfg->ca_sha, pem, len);
}

/* Keeps |pem| (owned from now on) to parse from |off| when needed. */
static int defer(struct mailtls_config *cfg, char *pem, size_t len, size_t off)
{
	struct mt_capem *v;
	pthread_mutex_lock(&cfg->ca_lock);
	v = realloc(cfg->ca_pending, (cfg->nca_pending + 1) * sizeof *v);
	if (v) {
		v[cfg->nca_pending].pem = pem;
		v[cfg->nca_pending].len = len;
		v[cfg->nca_pending].off = off;
		cfg->ca_pending = v;
		cfg->nca_pending++;
	}
	pthread_mutex_unlock(&cfg->ca_lock);
	return v ? 0 : -1;
}

void mt_ca_load(struct mailtls_config *cfg)
{
	pthread_mutex_lock(&cfg->ca_lock);
	for (size_t i = 0; i < cfg->nca_pending; i++) {
		struct mt_capem *p = &cfg->ca_pending[i];
		(void)add_certs(cfg, p->pem + p->off, p->len - p->off, 0, NULL);
		free(p->pem);
	}
	free(cfg->ca_pending);
	cfg->ca_pending = NULL;
	cfg->nca_pending = 0;
	pthread_mutex_unlock(&cfg->ca_lock);
}

void mt_ca_free(struct mailtls_config *cfg)
{
	for (size_t i = 0; i < cfg->nca_pending; i++)
		free(cfg->ca_pending[i].pem);
	free(cfg->ca_pending);
	cfg->ca_pending = NULL;
	cfg->nca_pending = 0;
}

static int set_cafile(struct mailtls_config *cfg, const char *cafile)
{
	char *pem;
	size_t len, used = 0;
	int n;
	if (mt_read_file(cfg, cafile, &pem, &len) < 0)
		return -1;
	n = add_certs(cfg, pem, len, 1, &used);
	if (n <= 0) {
		free(pem);
		if (n < 0)
			mt_cfg_seterr(cfg, MAILTLS_E_NOMEM, "out of memory");
		else
			mt_cfg_seterr(cfg, MAILTLS_E_CONFIG, "%s: no certificate", cafile);
		return -1;
	}
	ca_digest_add(cfg, 'F', pem, len);
	cfg->have_ca = 1;
	if (used < len && defer(cfg, pem, len, used) == 0)
		return 0;
	if (used < len)   /* no memory to keep it: parsed now */
		(void)add_certs(cfg, pem + used, len - used, 0, NULL);
	free(pem);
	return 0;
}

int mailtls_config_set_ca(struct mailtls_config *cfg, const char *cafile, const char *cadir)
{
	struct stat st;
	mt_cfg_clearerr(cfg);
	if (cafile && set_cafile(cfg, cafile) < 0)
		return -1;
	if (cadir) {
		int e = stat(cadir, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
		if (e) {
			mt_cfg_seterr(cfg, MAILTLS_E_CONFIG, "CA directory %s: %s", cadir, strerror(e));
			return -1;
		}
		if (!X509_STORE_load_locations(SSL_CTX_get_cert_store(cfg->ctx), NULL, cadir)) {
			ERR_clear_error();
			mt_cfg_seterr(cfg, MAILTLS_E_CONFIG, "CA directory %s cannot be used", cadir);
			return -1;
		}
		/* its files are read at each lookup: no digest can stand for them */
		cfg->ca_opaque = 1;
		cfg->have_ca = 1;
	}
	return 0;
}

int mailtls_config_set_ca_mem(struct mailtls_config *cfg, const char *pem, size_t len)
{
	int n;
	mt_cfg_clearerr(cfg);
	if (!pem) {
		mt_cfg_seterr(cfg, MAILTLS_E_USAGE, "no CA text");
		return -1;
	}
	n = add_certs(cfg, pem, len, 0, NULL);
	if (n < 0) {
		mt_cfg_seterr(cfg, MAILTLS_E_NOMEM, "out of memory");
		return -1;
	}
	if (n == 0) {
		mt_cfg_seterr(cfg, MAILTLS_E_CONFIG, "CA text: no certificate");
		return -1;
	}
	ca_digest_add(cfg, 'M', pem, len);
	cfg->have_ca = 1;
	return 0;
}
