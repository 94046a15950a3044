/* keys.c -- certificate and key files to a TLS configuration.  See keys.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keys.h"

extern char **environ;

#define PEM_MAX (1024 * 1024)

static void add(struct keyfiles *kf, char kind, const char *name, const char *path)
{
	if (kf->n >= sizeof kf->f / sizeof kf->f[0])
		return;
	kf->f[kf->n].kind = kind;
	kf->f[kf->n].name = name ? strdup(name) : NULL;
	kf->f[kf->n].path = strdup(path);
	kf->n++;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

void keyfiles_init(struct keyfiles *kf, const char *pemfile, int verify)
{
	const char *cert = env("CERTFILE"), *key = env("KEYFILE");
	size_t nsni = 0;
	memset(kf, 0, sizeof *kf);
	if (!cert)
		cert = env("CERTCHAINFILE");
	if (!cert) {
		cert = pemfile;
		key = NULL;
	}
	add(kf, 'D', NULL, cert);
	if (key)
		add(kf, 'K', NULL, key);
	for (char **e = environ; e && *e; e++) {
		char var[512], keyvar[600];
		const char *eq = strchr(*e, '='), *k;
		size_t n;
		if (strncmp(*e, "CERTFILE:", 9) || !eq || nsni >= KEYS_MAX_SNI)
			continue;
		n = (size_t)(eq - *e);
		if (n >= sizeof var || n == 9 || !eq[1])
			continue;
		memcpy(var, *e, n);
		var[n] = 0;
		add(kf, 's', var + 9, eq + 1);
		snprintf(keyvar, sizeof keyvar, "KEYFILE:%s", var + 9);
		if ((k = env(keyvar)))
			add(kf, 'k', var + 9, k);
		nsni++;
	}
	if (env("CAFILE"))
		add(kf, 'C', NULL, env("CAFILE"));
	if (env("TICKETKEYFILE")) {
		add(kf, 'T', NULL, env("TICKETKEYFILE"));
		kf->ticketfile = 1;
	}
	kf->cadir = env("CADIR");
	kf->ciphers = env("CIPHERS");
	kf->verify = verify;
}

static int read_all(const char *path, int private_only, char **out, size_t *outlen, char *err, size_t errlen)
{
	struct stat st;
	size_t got = 0;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "unable to open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > PEM_MAX) {
		snprintf(err, errlen, "%s: not a regular file of at most 1 MiB", path);
		close(fd);
		return -1;
	}
	/* The same rule as mailtls_config_set_ticket_keys_file's, applied here
	 * because the parent builds from bytes the loader sends. */
	if (private_only && (st.st_mode & (S_IRWXG | S_IRWXO))) {
		snprintf(err, errlen, "%s: ticket key file is open to group or others (mode %03o; make it 600)", path,
		    (unsigned)(st.st_mode & 0777));
		close(fd);
		return -1;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		snprintf(err, errlen, "out of memory reading %s", path);
		close(fd);
		return -1;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* A file cut short must not load as fewer anchors: the loader retries. */
			snprintf(err, errlen, "unable to read %s: %s", path, n < 0 ? strerror(errno) : "it shrank while read");
			close(fd);
			free(buf);
			return -1;
		}
		got += (size_t)n;
	}
	close(fd);
	buf[got] = 0;
	*out = buf;
	*outlen = got;
	return 0;
}

int keyblobs_read(const struct keyfiles *kf, struct keyblobs *kb, char *err, size_t errlen)
{
	memset(kb, 0, sizeof *kb);
	for (size_t i = 0; i < kf->n; i++) {
		if (read_all(kf->f[i].path, kf->f[i].kind == 'T', &kb->data[i], &kb->len[i], err, errlen) < 0) {
			keyblobs_free(kb);
			return -1;
		}
		kb->n = i + 1;
	}
	return 0;
}

void keyblobs_free(struct keyblobs *kb)
{
	for (size_t i = 0; i < kb->n; i++) {
		if (kb->data[i]) {
			/* volatile: the compiler may not drop the wipe of memory it frees next. */
			volatile char *p = kb->data[i];
			for (size_t j = 0; j < kb->len[i]; j++)
				p[j] = 0;
			free(kb->data[i]);
		}
		kb->data[i] = NULL;
		kb->len[i] = 0;
	}
	kb->n = 0;
}

/* The key file that goes with certificate |i| (the next entry), if any. */
static ssize_t key_for(const struct keyfiles *kf, size_t i, char keykind)
{
	return i + 1 < kf->n && kf->f[i + 1].kind == keykind ? (ssize_t)(i + 1) : -1;
}

struct mailtls_config *keys_build(const struct keyfiles *kf, const struct keyblobs *kb, char *err, size_t errlen)
{
	struct mailtls_config *cfg = mailtls_config_new();
	if (!cfg) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < kf->n && i < kb->n; i++) {
		const struct keyfile *f = &kf->f[i];
		ssize_t k;
		int r = 0;
		switch (f->kind) {
		case 'D':
			k = key_for(kf, i, 'K');
			r = mailtls_config_set_keypair_mem(cfg, kb->data[i], kb->len[i],
			    k >= 0 ? kb->data[k] : NULL, k >= 0 ? kb->len[k] : 0);
			break;
		case 's':
			k = key_for(kf, i, 'k');
			r = mailtls_config_add_sni_keypair_mem(cfg, f->name, kb->data[i], kb->len[i],
			    k >= 0 ? kb->data[k] : NULL, k >= 0 ? kb->len[k] : 0);
			break;
		case 'C':
			r = mailtls_config_set_ca_mem(cfg, kb->data[i], kb->len[i]);
			break;
		case 'T':
			r = mailtls_config_set_ticket_keys_mem(cfg, (const unsigned char *)kb->data[i], kb->len[i]);
			break;
		}
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", f->path, mailtls_config_error(cfg));
			mailtls_config_free(cfg);
			return NULL;
		}
	}
	if ((kf->cadir && mailtls_config_set_ca(cfg, NULL, kf->cadir) < 0) ||
	    (kf->ciphers && mailtls_config_set_ciphers(cfg, kf->ciphers) < 0) ||
	    (kf->verify != MAILTLS_VERIFY_NONE && mailtls_config_set_verify(cfg, kf->verify) < 0)) {
		snprintf(err, errlen, "%s", mailtls_config_error(cfg));
		mailtls_config_free(cfg);
		return NULL;
	}
	return cfg;
}

void keys_stamp(const struct keyfiles *kf, struct stat *st)
{
	for (size_t i = 0; i < kf->n; i++)
		if (stat(kf->f[i].path, &st[i]) < 0)
			memset(&st[i], 0, sizeof st[i]);
}

int keys_stamp_same(const struct keyfiles *kf, const struct stat *a, const struct stat *b)
{
	for (size_t i = 0; i < kf->n; i++)
		if (a[i].st_dev != b[i].st_dev || a[i].st_ino != b[i].st_ino || a[i].st_size != b[i].st_size ||
		    a[i].st_mtim.tv_sec != b[i].st_mtim.tv_sec || a[i].st_mtim.tv_nsec != b[i].st_mtim.tv_nsec ||
		    a[i].st_ctim.tv_sec != b[i].st_ctim.tv_sec || a[i].st_ctim.tv_nsec != b[i].st_ctim.tv_nsec)
			return 0;
	return 1;
}
