/*
 * internal.h -- what the sources of libmailtls share.  BoringSSL types
 * live here and in the .c files of this directory, never in mailtls.h.
 * ISC license: see LICENSE.
 */
#ifndef MAILTLS_INTERNAL_H
#define MAILTLS_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <time.h>

#include <openssl/sha.h>
#include <openssl/ssl.h>

#include "mailtls.h"

#define MT_HIDDEN __attribute__((visibility("hidden")))
#define MT_ERRLEN 512

/* One certificate chain and its key. */
struct mt_keypair {
	CRYPTO_BUFFER **certs;   /* leaf first */
	size_t ncerts;
	EVP_PKEY *key;
	int type;                /* EVP_PKEY_EC or EVP_PKEY_RSA (or other) */
	int curve;               /* NID of the EC curve, 0 for RSA */
};

#define MT_KEYTYPES 2            /* slot 0: ECDSA (and others), slot 1: RSA */

/* The keypairs served for one SNI name (name NULL: the default set). */
struct mt_keyset {
	char *name;                  /* lowercase; "*.x.y" for a wildcard */
	struct mt_keypair *pairs[MT_KEYTYPES];
};

struct mt_pin {
	int spki;                    /* 0: whole certificate, 1: public key */
	uint8_t digest[32];
};

/* A CA file's bytes, parsed from |off| when first needed (ca.c). */
struct mt_capem {
	char *pem;
	size_t len, off;
};

struct mailtls_config {
	int refs;
	SSL_CTX *ctx;
	int errcode;
	char errmsg[MT_ERRLEN];
	int verify_mode;             /* MAILTLS_VERIFY_* */
	int verify_mode_set;         /* 1 once set explicitly */
	int have_ca;
	struct mt_capem *ca_pending;  /* CA files not parsed yet, under ca_lock */
	size_t nca_pending;
	pthread_mutex_t ca_lock;
	SHA256_CTX ca_sha;           /* every CA source given, in order (ca.c) */
	int ca_opaque;               /* a CA directory: no digest stands for it */
	struct mt_keyset def;
	struct mt_keyset *sni;
	size_t nsni;
	int sni_strict;
	struct mt_pin *pins;
	size_t npins;
	mailtls_verify_cb vcb;
	void *varg;
	int ciphers_set;             /* the caller chose a cipher list */
	int min_proto, max_proto;
};

/* How a descriptor is read and written (fdio.c). */
struct mt_fd {
	int fd;
	int sock;                    /* 1: a socket (recv/send with MSG_* flags) */
	int pipe;                    /* 1: a pipe taking RWF_NOWAIT (until the kernel refuses it) */
};

/* A client's verification outcome and the digest of the trust settings
 * it was reached under (verdict.c). */
struct mt_verdict {
	int set;
	uint8_t trust[32];
	int result;                  /* MAILTLS_E_NONE or a verify category */
	int has_peer_cert;
	int64_t until;               /* seconds since the epoch it holds until */
};

struct mailtls {
	struct mailtls_config *cfg;
	SSL *ssl;
	struct mt_fd r, w;
	int is_server;
	int is_mem;
	/* While set, the descriptor BIOs never block (mt_fd_read/mt_fd_write
	 * with |nowait|).  Deadline calls and the relay set it, so they can wait
	 * in poll(2) without changing descriptor flags. */
	int nonblock;
	BIO *mem_in, *mem_out;       /* memory transport */
	int errcode;
	char errmsg[MT_ERRLEN];
	char *servername;            /* client: SNI sent (NULL: none) */
	char **vnames;               /* client: names to verify */
	size_t nvnames;
	char *vhook_msg;
	int verify_mode;             /* in force for this session (servers: NONE unless set) */
	int verify_result;           /* MAILTLS_E_NONE or a MAILTLS_E_VERIFY* code */
	int verified;
	int has_peer_cert;
	int handshake_done;
	int hs_begun;                /* SSL_do_handshake was called: the client's settings are fixed */
	int hs_failed;               /* the category a finished handshake failed verification with */
	int close_sent;
	int peer_closed;
	int ecdsa_suites;            /* server: the client offered an ECDSA suite (TLS <= 1.2) */
	SSL_SESSION *last_session;   /* client: newest resumable session */
	struct mt_verdict verdict;   /* client: of this session's verification */
	struct mt_verdict offered;   /* client: carried by the saved session offered */
	int64_t verdict_until;       /* the verified chain's first notAfter (verify.c) */
	/* facts, made on first request */
	char *f_subject, *f_issuer, *f_cn, *f_fp, *f_serial, *f_nb, *f_na;
};

/* error.c */
MT_HIDDEN void mt_seterr(struct mailtls *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
MT_HIDDEN void mt_cfg_seterr(struct mailtls_config *cfg, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
MT_HIDDEN void mt_clearerr(struct mailtls *s);
MT_HIDDEN void mt_cfg_clearerr(struct mailtls_config *cfg);
/* The first BoringSSL error on the thread's queue as text (queue cleared). */
MT_HIDDEN const char *mt_ssl_errstr(char *buf, size_t len);
/* Maps the result |ret| of an SSL_* call to the library's convention,
 * setting the session's error; |what| names the operation. */
MT_HIDDEN int mt_ssl_result(struct mailtls *s, int ret, const char *what);

/* bio.c: descriptor BIOs that honour s->nonblock and never raise SIGPIPE
 * on a socket. */
MT_HIDDEN BIO *mt_bio_new(struct mailtls *s);

/* fdio.c: a caller's descriptor read and written as read(2)/write(2) do,
 * EINTR retried; with |nowait| never blocking (-1, errno EAGAIN, when
 * nothing can move now) and without changing its flags.  Writes never
 * raise SIGPIPE on a socket (on a pipe they do, as write(2) does). */
MT_HIDDEN void mt_fd_init(struct mt_fd *f, int fd);
MT_HIDDEN int mt_is_socket(int fd);
MT_HIDDEN ssize_t mt_fd_read(struct mt_fd *f, void *buf, size_t len, int nowait);
MT_HIDDEN ssize_t mt_fd_write(struct mt_fd *f, const void *buf, size_t len, int nowait);

/* deadline.c */
/* mt_deadline sets *dl to now + secs (CLOCK_MONOTONIC). */
MT_HIDDEN void mt_deadline(struct timespec *dl, int secs);
/* mt_wait polls |fd| for |events| until it is ready (1) or |dl| passes
 * (0, with MAILTLS_E_TIMEOUT set on |s|), -1 on poll failure. EINTR restarts. */
MT_HIDDEN int mt_wait(struct mailtls *s, int fd, short events, const struct timespec *dl);
/* mt_ms_left returns the milliseconds until |dl| (0 when passed), capped. */
MT_HIDDEN int mt_ms_left(const struct timespec *dl);
/* mt_drive runs |op| on |s| in non-blocking mode, waiting in poll for
 * want codes until |dl|.  |op| returns the library convention. */
typedef ssize_t (*mt_op)(struct mailtls *s, void *arg);
MT_HIDDEN ssize_t mt_drive(struct mailtls *s, mt_op op, void *arg, const struct timespec *dl);
/* mt_handshake_until runs the handshake to its end before |dl|: 0 or -1. */
MT_HIDDEN int mt_handshake_until(struct mailtls *s, const struct timespec *dl);
/* mt_tls_write sends all |len| bytes through the TLS session before |dl|
 * (the handshake first if it is not done): 0 or -1. */
MT_HIDDEN int mt_tls_write(struct mailtls *s, const void *buf, size_t len, const struct timespec *dl);

/* session.c */
MT_HIDDEN int mt_handshake_step(struct mailtls *s);
MT_HIDDEN ssize_t mt_read_step(struct mailtls *s, void *buf, size_t len);
MT_HIDDEN ssize_t mt_write_step(struct mailtls *s, const void *buf, size_t len);

/* keypair.c */
MT_HIDDEN struct mt_keypair *mt_keypair_load(struct mailtls_config *cfg,
    const char *cert, size_t certlen, const char *certname,
    const char *key, size_t keylen, const char *keyname);
MT_HIDDEN void mt_keypair_free(struct mt_keypair *kp);
MT_HIDDEN int mt_keypair_slot(const struct mt_keypair *kp);
MT_HIDDEN int mt_cert_cb(SSL *ssl, void *arg);
MT_HIDDEN enum ssl_select_cert_result_t mt_select_cb(const SSL_CLIENT_HELLO *ch);
/* mt_keyset_find returns the keyset serving SNI |name| (exact, then
 * wildcard), else the default set when it has a keypair and !strict. */
MT_HIDDEN const struct mt_keyset *mt_keyset_find(const struct mailtls_config *cfg,
    const char *name, int strict);
/* mt_read_file reads a whole file (bounded) into a NUL-terminated buffer;
 * -1 with the error on |cfg| naming |path|. */
MT_HIDDEN int mt_read_file(struct mailtls_config *cfg, const char *path, char **out, size_t *outlen);
/* mt_read_file_mode is mt_read_file refusing (MAILTLS_E_CONFIG, "|why|
 * (mode M; make it N)") a file with any of the mode bits |forbid|, checked
 * on the descriptor that is read. */
MT_HIDDEN int mt_read_file_mode(struct mailtls_config *cfg, const char *path, mode_t forbid, const char *why,
    char **out, size_t *outlen);
MT_HIDDEN void mt_free_secret(char *buf, size_t len);

/* mt_be64 writes |n| big-endian into |out| (the trust digest's lengths,
 * a saved session's verdict). */
static inline void mt_be64(uint8_t out[8], uint64_t n)
{
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(n >> (56 - 8 * i));
}

/* ca.c */
/* mt_ca_load parses the CA files set and not parsed yet (thread-safe). */
MT_HIDDEN void mt_ca_load(struct mailtls_config *cfg);
/* mt_ca_free drops them (the configuration is being freed). */
MT_HIDDEN void mt_ca_free(struct mailtls_config *cfg);

/* verdict.c */
/* mt_verdict_record keeps the outcome of the verification just made on a
 * client |s| with the digest of its trust settings (none when they cannot
 * be digested: DANE, a hook, a CA directory). */
MT_HIDDEN void mt_verdict_record(struct mailtls *s);
/* mt_verdict_keep: on a resumed client |s|, 1 when the verdict the saved
 * session carried stands (same trust digest, not past its time, and a
 * failure only where verification is optional), set on |s| as if
 * verified now; 0 when the peer must be verified again. */
MT_HIDDEN int mt_verdict_keep(struct mailtls *s);
#define MT_VERDICT_LEN 46
/* mt_verdict_put writes the header of a saved session (MT_VERDICT_LEN
 * bytes) into |out| when |s| has a verdict to carry: 1, else 0. */
MT_HIDDEN int mt_verdict_put(const struct mailtls *s, uint8_t *out);
/* mt_verdict_take reads the header of a saved session offered on |s|:
 * returns the number of header bytes (0 for a session saved without one),
 * or -1 for a damaged header. */
MT_HIDDEN int mt_verdict_take(struct mailtls *s, const uint8_t *buf, size_t len);

/* verify.c */
MT_HIDDEN enum ssl_verify_result_t mt_verify_cb(SSL *ssl, uint8_t *out_alert);
MT_HIDDEN int mt_pin_parse(const char *text, struct mt_pin *out);
/* mt_verify_peer checks the peer's chain per the configuration and sets
 * s->verify_result, s->verified, s->has_peer_cert; returns 1 when the
 * handshake may go on (verified, or verification optional). */
MT_HIDDEN int mt_verify_peer(struct mailtls *s, uint8_t *alert);
/* mt_check_chain: the chain to |anchor| (NULL: the configuration's trust
 * anchors; else partial chains to it count), dates, and a client's names.
 * Returns MAILTLS_E_NONE or a verify category, with the message on |s|. */
MT_HIDDEN int mt_check_chain(struct mailtls *s, X509_STORE *anchor, X509 *leaf, STACK_OF(X509) *rest);

/* dane.c */
/* mt_dane_active: TLSA records were given to the session. */
MT_HIDDEN int mt_dane_active(const struct mailtls *s);
/* mt_dane_check matches the records against the peer's chain (leaf and
 * rest parsed from it) per RFC 7672 and records the outcome; returns
 * MAILTLS_E_NONE or a verify category, with the message on |s|. */
MT_HIDDEN int mt_dane_check(struct mailtls *s, const STACK_OF(CRYPTO_BUFFER) *chain, X509 *leaf,
    STACK_OF(X509) *rest);

/* session ex_data index that maps SSL* -> struct mailtls* */
MT_HIDDEN int mt_new_session_cb(SSL *ssl, SSL_SESSION *sess);
MT_HIDDEN int mt_ex_index(void);
MT_HIDDEN struct mailtls *mt_from_ssl(const SSL *ssl);

/* util */
MT_HIDDEN char *mt_strdup(const char *s);
MT_HIDDEN int mt_is_ip_literal(const char *name);
MT_HIDDEN void mt_hex(char *out, const uint8_t *in, size_t n, int upper);

#endif
