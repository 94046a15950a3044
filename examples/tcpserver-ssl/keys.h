/* keys.h -- the certificate and key files, read into memory and turned
 * into a TLS configuration; the same path serves the start and every
 * renewal handed over by the privileged loader. */
#ifndef TCPSERVER_SSL_KEYS_H
#define TCPSERVER_SSL_KEYS_H

#include <stddef.h>
#include <sys/stat.h>

#include "mailtls.h"

#define KEYS_MAX_SNI 64

/* What the files are: the default keypair, SNI keypairs, the CA file. */
struct keyfile {
	char kind;                /* 'D' default certificate, 'K' its key, 's' SNI certificate, 'k' SNI key, 'C' CA,
	                             'T' session ticket keys */
	char *name;               /* SNI name, else NULL */
	char *path;
};

struct keyfiles {
	struct keyfile f[2 * KEYS_MAX_SNI + 4];
	size_t n;
	const char *cadir, *ciphers;
	int verify;               /* MAILTLS_VERIFY_* for client certificates */
	int ticketfile;           /* 1: $TICKETKEYFILE gives the ticket keys (else the parent makes them) */
};

/* The files' contents, in the order of keyfiles.f (len 0: none). */
struct keyblobs {
	char *data[2 * KEYS_MAX_SNI + 4];
	size_t len[2 * KEYS_MAX_SNI + 4];
	size_t n;
};

/* keyfiles_init lists the files from -n and the environment (CERTFILE,
 * KEYFILE, CERTCHAINFILE, CAFILE, CADIR, CIPHERS, CERTFILE:name,
 * KEYFILE:name), as sslserver and s6-tlsd read them, and TICKETKEYFILE. */
void keyfiles_init(struct keyfiles *kf, const char *pemfile, int verify);

/* keyblobs_read reads every file; -1 with a message naming the file.  The
 * ticket key file must be closed to group and others (mode 600 or 400). */
int keyblobs_read(const struct keyfiles *kf, struct keyblobs *kb, char *err, size_t errlen);
/* keyblobs_free cleanses and frees the contents. */
void keyblobs_free(struct keyblobs *kb);

/* keys_build makes a configuration from the contents; NULL with a message. */
struct mailtls_config *keys_build(const struct keyfiles *kf, const struct keyblobs *kb, char *err, size_t errlen);

/* keys_stamp fills |st| with each file's identity (device, inode, size,
 * mtime, ctime); a missing file has st_ino 0. */
void keys_stamp(const struct keyfiles *kf, struct stat *st);
int keys_stamp_same(const struct keyfiles *kf, const struct stat *a, const struct stat *b);

/* loader.c: the privileged loader.  loader_start forks a process that keeps
 * this process's privileges, watches the files every |secs| seconds, and
 * when they changed and read as a valid configuration, sends their contents
 * over a socketpair.  Returns the parent's end (the loader's pid in
 * *loader_pid), or -1. */
int loader_start(const struct keyfiles *kf, int secs, pid_t *loader_pid);
/* loader_receive reads one message from the loader and builds the new
 * configuration: the new one, or NULL (loader gone: *gone = 1; or refused,
 * with the message in |err|). */
struct mailtls_config *loader_receive(int fd, const struct keyfiles *kf, int *gone, char *err, size_t errlen);

#endif
