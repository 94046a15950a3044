/* keypair.c -- certificates and keys: loading PEM (the combined key+chain
 * file qmail sites keep), and choosing per handshake by SNI name and by the
 * key types the client accepts.  See mailtls.h. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "internal.h"

/* A PEM file larger than this is not a certificate file. */
#define MT_PEM_MAX (1024 * 1024)

void mt_free_secret(char *buf, size_t len)
{
	if (buf) {
		OPENSSL_cleanse(buf, len);
		free(buf);
	}
}

int mt_read_file(struct mailtls_config *cfg, const char *path, char **out, size_t *outlen)
{
	return mt_read_file_mode(cfg, path, 0, NULL, out, outlen);
}

int mt_read_file_mode(struct mailtls_config *cfg, const char *path, mode_t forbid, const char *why,
    char **out, size_t *outlen)
{
	struct stat st;
	char *buf, extra;
	size_t got = 0;
	ssize_t n;
	/* O_NONBLOCK: a FIFO put in the file's place must not hang the open;
	 * what is read is the file that was checked (fstat of this descriptor). */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		mt_cfg_seterr(cfg, errno == ENOENT ? MAILTLS_E_CONFIG : MAILTLS_E_SYSTEM,
		    "unable to open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		mt_cfg_seterr(cfg, MAILTLS_E_SYSTEM, "unable to stat %s: %s", path, strerror(e));
		errno = e;
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > MT_PEM_MAX) {
		close(fd);
		mt_cfg_seterr(cfg, MAILTLS_E_CONFIG, "%s: %s", path, !S_ISREG(st.st_mode) ?
		    "not a regular file" : "larger than 1 MiB, not a PEM file");
		return -1;
	}
	if (st.st_mode & forbid) {
		close(fd);
		mt_cfg_seterr(cfg, MAILTLS_E_CONFIG, "%s: %s (mode %03o; make it %03o)", path, why,
		    (unsigned)(st.st_mode & 0777), (unsigned)(st.st_mode & 0777 & ~forbid));
		return -1;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		mt_cfg_seterr(cfg, MAILTLS_E_NOMEM, "out of memory reading %s", path);
		return -1;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : 0;
			close(fd);
			mt_free_secret(buf, got);
			mt_cfg_seterr(cfg, e ? MAILTLS_E_SYSTEM : MAILTLS_E_CONFIG, "unable to read %s: %s", path,
			    e ? strerror(e) : "file shrank while being read");
			return -1;
		}
		got += (size_t)n;
	}
	/* A file that grows while it is read (rewritten in place) is not the
	 * one that was measured: a cut that still parses would be taken. */
	do
		n = read(fd, &extra, 1);
	while (n < 0 && errno == EINTR);
	if (n != 0) {
		int e = n < 0 ? errno : 0;
		close(fd);
		mt_free_secret(buf, got);
		mt_cfg_seterr(cfg, e ? MAILTLS_E_SYSTEM : MAILTLS_E_CONFIG, "unable to read %s: %s", path,
		    e ? strerror(e) : "file grew while being read");
		return -1;
	}
	close(fd);
	buf[got] = 0;
	*out = buf;
	*outlen = got;
	return 0;
}

void mt_keypair_free(struct mt_keypair *kp)
{
	if (!kp)
		return;
	for (size_t i = 0; i < kp->ncerts; i++)
		CRYPTO_BUFFER_free(kp->certs[i]);
	free(kp->certs);
	EVP_PKEY_free(kp->key);   /* BoringSSL cleanses key memory it frees */
	free(kp);
}

static int add_cert(struct mt_keypair *kp, const uint8_t *der, long len)
{
	CRYPTO_BUFFER **v = realloc(kp->certs, (kp->ncerts + 1) * sizeof *v);
	if (!v)
		return -1;
	kp->certs = v;
	v[kp->ncerts] = CRYPTO_BUFFER_new(der, (size_t)len, NULL);
	if (!v[kp->ncerts])
		return -1;
	kp->ncerts++;
	return 0;
}

/* Walks the PEM blocks of |text|, taking certificates into |kp| (when
 * |take_certs|) and the first private key into |*key|. */
static int parse_pem(struct mailtls_config *cfg, const char *text, size_t len, const char *fname,
    struct mt_keypair *kp, int take_certs, EVP_PKEY **key)
{
	BIO *bio = BIO_new_mem_buf(text, (long)len);
	int blocks = 0, rc = -1;
	if (!bio) {
		mt_cfg_seterr(cfg, MAILTLS_E_NOMEM, "out of memory");
		return -1;
	}
	for (;;) {
		char *name = NULL, *header = NULL;
		uint8_t *data = NULL;
		long dlen = 0;
		if (!PEM_read_bio(bio, &name, &header, &data, &dlen)) {
			uint32_t e = ERR_peek_last_error();
			ERR_clear_error();
			if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE && blocks > 0)
				break;
			mt_cfg_seterr(cfg, MAILTLS_E_CONFIG, "%s: %s", fname,
			    blocks == 0 && ERR_GET_REASON(e) == PEM_R_NO_START_LINE ? "no PEM data" :
			    "damaged PEM data (bad base64 or a truncated block)");
			goto out;
		}
		blocks++;
		if (!strcmp(name, "CERTIFICATE") || !strcmp(name, "TRUSTED CERTIFICATE")) {
			X509 *x;
			const uint8_t *p = data;
			if (!(x = d2i_X509(NULL, &p, dlen))) {
				mt_cfg_seterr(cfg, MAILTLS_E_CONFIG, "%s: certificate %d cannot be parsed", fname, blocks);
				ERR_clear_error();
			} else if (take_certs && add_cert(kp, data, dlen) < 0) {
				mt_cfg_seterr(cfg, MAILTLS_E_NOMEM, "out of memory");
			}
			X509_free(x);
		} else if (strstr(name, "PRIVATE KEY")) {
			const uint8_t *p = data;
			if (!strcmp(name, "ENCRYPTED PRIVATE KEY") || (header && strstr(header, "ENCRYPTED"))) {
				mt_cfg_seterr(cfg, MAILTLS_E_CONFIG, "%s: the private key is encrypted; "
				    "a server cannot ask for its passphrase", fname);
			} else if (!*key && !(*key = d2i_AutoPrivateKey(NULL, &p, dlen))) {
				mt_cfg_seterr(cfg, MAILTLS_E_CONFIG, "%s: the private key cannot be parsed", fname);
				ERR_clear_error();
			}
		}
		OPENSSL_free(name);
		OPENSSL_free(header);
		if (data) {
			OPENSSL_cleanse(data, (size_t)dlen);
			OPENSSL_free(data);
		}
		if (cfg->errcode != MAILTLS_E_NONE)
			goto out;
	}
	rc = 0;
out:
	BIO_free(bio);
	return rc;
}

struct mt_keypair *mt_keypair_load(struct mailtls_config *cfg,
    const char *cert, size_t certlen, const char *certname,
    const char *key, size_t keylen, const char *keyname)
{
	struct mt_keypair *kp = calloc(1, sizeof *kp);
	X509 *leaf = NULL;
	if (!kp) {
		mt_cfg_seterr(cfg, MAILTLS_E_NOMEM, "out of memory");
		return NULL;
	}
	if (parse_pem(cfg, cert, certlen, certname, kp, 1, &kp->key) < 0)
		goto fail;
	if (key && parse_pem(cfg, key, keylen, keyname, kp, 0, &kp->key) < 0)
		goto fail;
	if (kp->ncerts == 0) {
		mt_cfg_seterr(cfg, MAILTLS_E_CONFIG, "%s: no certificate", certname);
		goto fail;
	}
	if (!kp->key) {
		mt_cfg_seterr(cfg, MAILTLS_E_CONFIG, "%s: no private key", key ? keyname : certname);
		goto fail;
	}
	leaf = X509_parse_from_buffer(kp->certs[0]);
	if (!leaf || !X509_check_private_key(leaf, kp->key)) {
		ERR_clear_error();
		mt_cfg_seterr(cfg, MAILTLS_E_CONFIG, "%s: the private key%s%s does not match the first certificate",
		    certname, key ? " in " : "", key ? keyname : "");
		goto fail;
	}
	X509_free(leaf);
	kp->type = EVP_PKEY_id(kp->key);
	if (kp->type == EVP_PKEY_EC) {
		const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(kp->key);
		kp->curve = EC_GROUP_get_curve_name(EC_KEY_get0_group(ec));
	}
	return kp;
fail:
	X509_free(leaf);
	mt_keypair_free(kp);
	return NULL;
}

int mt_keypair_slot(const struct mt_keypair *kp)
{
	return kp->type == EVP_PKEY_RSA ? 1 : 0;
}

static void keyset_put(struct mt_keyset *ks, struct mt_keypair *kp)
{
	int slot = mt_keypair_slot(kp);
	mt_keypair_free(ks->pairs[slot]);
	ks->pairs[slot] = kp;
}

static struct mt_keypair *load_files(struct mailtls_config *cfg, const char *certfile, const char *keyfile)
{
	char *cert = NULL, *key = NULL;
	size_t certlen = 0, keylen = 0;
	struct mt_keypair *kp = NULL;
	if (!certfile) {
		mt_cfg_seterr(cfg, MAILTLS_E_USAGE, "no certificate file");
		return NULL;
	}
	if (mt_read_file(cfg, certfile, &cert, &certlen) == 0 &&
	    (!keyfile || mt_read_file(cfg, keyfile, &key, &keylen) == 0))
		kp = mt_keypair_load(cfg, cert, certlen, certfile, key, keylen, keyfile);
	mt_free_secret(cert, certlen);
	mt_free_secret(key, keylen);
	return kp;
}

int mailtls_config_set_keypair_file(struct mailtls_config *cfg, const char *certfile, const char *keyfile)
{
	struct mt_keypair *kp;
	mt_cfg_clearerr(cfg);
	if (!(kp = load_files(cfg, certfile, keyfile)))
		return -1;
	keyset_put(&cfg->def, kp);
	return 0;
}

int mailtls_config_add_keypair_file(struct mailtls_config *cfg, const char *certfile, const char *keyfile)
{
	return mailtls_config_set_keypair_file(cfg, certfile, keyfile);
}

int mailtls_config_set_keypair_mem(struct mailtls_config *cfg, const char *cert, size_t certlen,
    const char *key, size_t keylen)
{
	struct mt_keypair *kp;
	mt_cfg_clearerr(cfg);
	if (!cert) {
		mt_cfg_seterr(cfg, MAILTLS_E_USAGE, "no certificate");
		return -1;
	}
	if (!(kp = mt_keypair_load(cfg, cert, certlen, "certificate", key, keylen, "key")))
		return -1;
	keyset_put(&cfg->def, kp);
	return 0;
}

static int valid_sni_name(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 253)
		return 0;
	if (!strncmp(name, "*.", 2))
		name += 2;
	for (; *name; name++)
		if (!isalnum((unsigned char)*name) && *name != '-' && *name != '.' && *name != '_')
			return 0;
	return 1;
}

/* Puts |kp| (NULL: loading failed, error on |cfg|) under SNI |name|. */
static int sni_put(struct mailtls_config *cfg, const char *name, struct mt_keypair *kp)
{
	struct mt_keyset *ks = NULL, *v;
	if (!kp)
		return -1;
	for (size_t i = 0; i < cfg->nsni; i++)
		if (!strcasecmp(cfg->sni[i].name, name))
			ks = &cfg->sni[i];
	if (!ks) {
		v = realloc(cfg->sni, (cfg->nsni + 1) * sizeof *v);
		if (!v)
			goto nomem;
		cfg->sni = v;
		ks = &v[cfg->nsni];
		memset(ks, 0, sizeof *ks);
		if (!(ks->name = mt_strdup(name)))
			goto nomem;
		for (char *p = ks->name; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		cfg->nsni++;
	}
	keyset_put(ks, kp);
	return 0;
nomem:
	mt_keypair_free(kp);
	mt_cfg_seterr(cfg, MAILTLS_E_NOMEM, "out of memory");
	return -1;
}

static int check_sni_name(struct mailtls_config *cfg, const char *name)
{
	mt_cfg_clearerr(cfg);
	if (!name || !valid_sni_name(name)) {
		mt_cfg_seterr(cfg, MAILTLS_E_USAGE, "SNI name \"%s\" is not a host name or *.name",
		    name ? name : "(null)");
		return -1;
	}
	return 0;
}

int mailtls_config_add_sni_keypair_file(struct mailtls_config *cfg, const char *name,
    const char *certfile, const char *keyfile)
{
	if (check_sni_name(cfg, name) < 0)
		return -1;
	return sni_put(cfg, name, load_files(cfg, certfile, keyfile));
}

int mailtls_config_add_sni_keypair_mem(struct mailtls_config *cfg, const char *name,
    const char *cert, size_t certlen, const char *key, size_t keylen)
{
	if (check_sni_name(cfg, name) < 0)
		return -1;
	if (!cert) {
		mt_cfg_seterr(cfg, MAILTLS_E_USAGE, "no certificate");
		return -1;
	}
	return sni_put(cfg, name, mt_keypair_load(cfg, cert, certlen, "certificate", key, keylen, "key"));
}

static int has_pair(const struct mt_keyset *ks)
{
	return ks->pairs[0] || ks->pairs[1];
}

const struct mt_keyset *mt_keyset_find(const struct mailtls_config *cfg, const char *name, int strict)
{
	if (name && *name) {
		const char *dot = strchr(name, '.');
		for (size_t i = 0; i < cfg->nsni; i++)
			if (!strcasecmp(cfg->sni[i].name, name))
				return &cfg->sni[i];
		/* "*.example.org" covers exactly one more label: "a.example.org". */
		if (dot && dot != name)
			for (size_t i = 0; i < cfg->nsni; i++)
				if (!strncmp(cfg->sni[i].name, "*.", 2) && !strcasecmp(cfg->sni[i].name + 1, dot))
					return &cfg->sni[i];
		if (strict)
			return NULL;
	}
	return has_pair(&cfg->def) ? &cfg->def : NULL;
}

/* The TLS 1.3 signature scheme of each curve (RFC 8446 4.2.3). */
static uint16_t ecdsa_sigalg(int curve)
{
	switch (curve) {
	case NID_X9_62_prime256v1: return SSL_SIGN_ECDSA_SECP256R1_SHA256;
	case NID_secp384r1: return SSL_SIGN_ECDSA_SECP384R1_SHA384;
	case NID_secp521r1: return SSL_SIGN_ECDSA_SECP521R1_SHA512;
	default: return 0;
	}
}

/* Notes, from the raw ClientHello, whether the client offered a cipher
 * suite an ECDSA key can serve (TLS 1.2 and below tie suites to key types;
 * the certificate callback runs too late to see the offer). */
enum ssl_select_cert_result_t mt_select_cb(const SSL_CLIENT_HELLO *ch)
{
	struct mailtls *s = mt_from_ssl(ch->ssl);
	if (!s)
		return ssl_select_cert_success;
	s->ecdsa_suites = 0;
	for (size_t i = 0; i + 1 < ch->cipher_suites_len; i += 2) {
		const SSL_CIPHER *c = SSL_get_cipher_by_value((uint16_t)(ch->cipher_suites[i] << 8 | ch->cipher_suites[i + 1]));
		if (c && SSL_CIPHER_get_auth_nid(c) == NID_auth_ecdsa)
			s->ecdsa_suites = 1;
	}
	return ssl_select_cert_success;
}

/* Whether the client accepts signatures from an ECDSA key on |curve|. */
static int client_takes_ecdsa(SSL *ssl, const struct mailtls *s, int curve)
{
	const uint16_t *algs;
	size_t n = SSL_get0_peer_verify_algorithms(ssl, &algs);
	int tls13 = SSL_version(ssl) >= TLS1_3_VERSION;
	if (!tls13 && !s->ecdsa_suites)
		return 0;
	if (n == 0)
		return !tls13;   /* before TLS 1.2, ECDSA with SHA-1 is implied */
	for (size_t i = 0; i < n; i++) {
		if (tls13 ? algs[i] == ecdsa_sigalg(curve) :
		    (algs[i] == SSL_SIGN_ECDSA_SHA1 || algs[i] == SSL_SIGN_ECDSA_SECP256R1_SHA256 ||
		     algs[i] == SSL_SIGN_ECDSA_SECP384R1_SHA384 || algs[i] == SSL_SIGN_ECDSA_SECP521R1_SHA512))
			return 1;
	}
	return 0;
}

int mt_cert_cb(SSL *ssl, void *arg)
{
	struct mailtls_config *cfg = arg;
	struct mailtls *s = mt_from_ssl(ssl);
	const struct mt_keyset *ks;
	const struct mt_keypair *kp;
	if (!s || !s->is_server) {
		/* A client presents the default keypair when it has one. */
		kp = cfg->def.pairs[0] ? cfg->def.pairs[0] : cfg->def.pairs[1];
		if (kp && !SSL_set_chain_and_key(ssl, kp->certs, kp->ncerts, kp->key, NULL))
			return 0;
		return 1;
	}
	ks = mt_keyset_find(cfg, SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), cfg->sni_strict);
	if (!ks) {
		mt_seterr(s, MAILTLS_E_CONFIG, "handshake: no certificate configured");
		return 0;
	}
	kp = ks->pairs[0];
	if (!kp || (kp->type == EVP_PKEY_EC && ks->pairs[1] && !client_takes_ecdsa(ssl, s, kp->curve)))
		kp = ks->pairs[1] ? ks->pairs[1] : ks->pairs[0];
	if (!SSL_set_chain_and_key(ssl, kp->certs, kp->ncerts, kp->key, NULL)) {
		mt_seterr(s, MAILTLS_E_NOMEM, "handshake: out of memory");
		return 0;
	}
	return 1;
}
