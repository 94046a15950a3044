/* ca.c -- trust anchors.  See mailtls.h. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "internal.h"

static int add_pem(struct mailtls_config *cfg, const char *pem, size_t len, const char *what)
{
	X509_STORE *store = SSL_CTX_get_cert_store(cfg->ctx);
	BIO *bio = BIO_new_mem_buf(pem, (long)len);
	int n = 0;
	X509 *x;
	if (!bio) {
		mt_cfg_seterr(cfg, MAILTLS_E_NOMEM, "out of memory");
		return -1;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (X509_STORE_add_cert(store, x))
			n++;
		X509_free(x);
	}
	BIO_free(bio);
	ERR_clear_error();
	if (n == 0) {
		mt_cfg_seterr(cfg, MAILTLS_E_CONFIG, "%s: no certificate", what);
		return -1;
	}
	cfg->have_ca = 1;
	return 0;
}

int mailtls_config_set_ca(struct mailtls_config *cfg, const char *cafile, const char *cadir)
{
	struct stat st;
	mt_cfg_clearerr(cfg);
	if (cafile) {
		char *pem;
		size_t len;
		int r;
		if (mt_read_file(cfg, cafile, &pem, &len) < 0)
			return -1;
		r = add_pem(cfg, pem, len, cafile);
		mt_free_secret(pem, len);
		if (r < 0)
			return -1;
	}
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
		cfg->have_ca = 1;
	}
	return 0;
}

int mailtls_config_set_ca_mem(struct mailtls_config *cfg, const char *pem, size_t len)
{
	mt_cfg_clearerr(cfg);
	if (!pem) {
		mt_cfg_seterr(cfg, MAILTLS_E_USAGE, "no CA text");
		return -1;
	}
	return add_pem(cfg, pem, len, "CA text");
}
