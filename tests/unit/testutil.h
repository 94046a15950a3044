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

/* tu_tmpdir makes a fresh private temporary directory. */
const char *tu_tmpdir(void);

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
