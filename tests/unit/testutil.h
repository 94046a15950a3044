/* testutil.h -- helpers shared by the C unit tests. */
#ifndef MAILTLS_TESTUTIL_H
#define MAILTLS_TESTUTIL_H
#include <pthread.h>
#include "mailtls.h"
#include "t.h"

/* pki returns the path of |file| in the test PKI (MAILTLS_TEST_PKI, made by
 * tests/pki/mkpki.py).  The result lives until 16 more calls. */
const char *pki(const char *file);

/* A server config with |cert| (and |key|, NULL: in cert) from the PKI, and a
 * client config trusting ca.pem.  Both abort the test on failure. */
struct mailtls_config *tu_server_config(const char *cert, const char *key);
struct mailtls_config *tu_client_config(void);

/* tu_socketpair makes a connected AF_UNIX stream pair; aborts on failure. */
void tu_socketpair(int sv[2]);

/* A server handshake run in a thread, so a test can drive the client in
 * its own thread over a socketpair. */
struct tu_server {
	pthread_t th;
	struct mailtls *s;
	int result;      /* of mailtls_handshake */
	int errcode;
	char error[512];
};
void tu_server_start(struct tu_server *ts, struct mailtls *s);
void tu_server_join(struct tu_server *ts);

/* tu_handshake_pair runs both handshakes (server in a thread) and returns
 * the client's result; the server's is in *server_result (may be NULL). */
int tu_handshake_pair(struct mailtls *client, struct mailtls *server, int *server_result);

/* tu_fill_random fills |buf| with pseudo-random bytes from |seed|. */
void tu_fill_random(void *buf, size_t len, unsigned seed);

/* tu_set_nonblock sets O_NONBLOCK on |fd| (tests own their descriptors). */
void tu_set_nonblock(int fd, int on);

/* tu_now is the monotonic clock (CLOCK_MONOTONIC) in seconds. */
double tu_now(void);

/* tu_tmpdir makes a fresh private temporary directory. */
const char *tu_tmpdir(void);

/* tu_scratch_dir makes a private temporary directory that is removed when
 * the test's process exits, also after a failed check (call it in the
 * process that uses it: a forked child that exits removes its own).  A
 * child forked after it calls tu_scratch_dirs_forget to leave them to the
 * parent. */
const char *tu_scratch_dir(void);
void tu_scratch_dirs_forget(void);

/* tu_sh runs a shell command that must succeed; tu_sh_line also returns its
 * first output line (without the newline) in |out|, and it must print one. */
void tu_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tu_sh_line(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The first certificate in |file| as openssl(1) sees it: tu_x509_field is
 * what follows the first '=' in "openssl x509 -noout |opt|";
 * tu_fingerprint_of "SHA256:<64 lowercase hex>", the form
 * mailtls_peer_fingerprint promises (the result lives until 8 more calls);
 * tu_der_of its DER (malloc'd, *len its length). */
void tu_x509_field(const char *file, const char *opt, char *out, size_t outlen);
const char *tu_fingerprint_of(const char *file);
unsigned char *tu_der_of(const char *file, size_t *len);

/* A server and a client session of ours on a socketpair. */
struct tu_conn {
	int sv[2];
	struct mailtls *s, *c;
	int cr, sr;       /* handshake results */
	int cerr, serr;   /* error categories after the handshake */
};
void tu_conn_open(struct tu_conn *k, struct mailtls_config *sc, struct mailtls_config *cc,
    const char *servername);
int tu_conn_hs(struct tu_conn *k);   /* both handshakes; the client's result */
int tu_conn_run(struct tu_conn *k, struct mailtls_config *sc, struct mailtls_config *cc,
    const char *servername);         /* tu_conn_open, then tu_conn_hs */
void tu_conn_close(struct tu_conn *k);

/* The session client |c| would save (mailtls_get_session), malloc'd;
 * *len its length.  Fails the test when there is none. */
unsigned char *tu_session_of(struct mailtls *c, size_t *len);

/* EXPECT_HS_OK: both ends of a tu_conn completed the handshake. */
#define EXPECT_HS_OK(k) do { \
	if ((k)->cr != 0 || (k)->sr != 0) \
		T_FAIL("handshake failed: client %d %s (%s), server %d %s (%s)", (k)->cr, \
		    mailtls_error((k)->c), mailtls_errcode_name((k)->cerr), (k)->sr, \
		    mailtls_error((k)->s), mailtls_errcode_name((k)->serr)); \
	} while (0)

/* RUN_ISOLATED runs a test in its own child process (120 seconds at the
 * most), so one failing expectation does not hide the others;
 * tu_isolated_result reports the failed ones and is main's status. */
void tu_run_isolated(const char *name, void (*fn)(void));
#define RUN_ISOLATED(fn) tu_run_isolated(#fn, fn)
int tu_isolated_result(void);

/* SHA-256 (FIPS 180-4) for the tests, which link
 * only mailtls.h, not BoringSSL. */
struct tu_sha256 {
	unsigned int h[8];
	unsigned long long n;        /* bytes hashed */
	unsigned char buf[64];
	size_t fill;
};
void tu_sha256_init(struct tu_sha256 *c);
void tu_sha256_update(struct tu_sha256 *c, const void *data, size_t len);
void tu_sha256_final(struct tu_sha256 *c, unsigned char out[32]);
#endif
