/* bio.c -- the BIO that carries TLS records over the caller's descriptors.
 * BoringSSL's own socket BIO would raise SIGPIPE and can only block or not
 * as the descriptor's flags say; this one never raises SIGPIPE on a socket
 * and, while s->nonblock is set, never blocks without touching the
 * descriptor's flags (which may be shared with other processes): the I/O
 * itself is fdio.c's. */
#include <errno.h>
#include <pthread.h>

#include "internal.h"

static int bio_read(BIO *b, char *out, int len)
{
	struct mailtls *s = BIO_get_data(b);
	ssize_t n;
	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	n = mt_fd_read(&s->r, out, (size_t)len, s->nonblock);
	if (n == 0) {
		errno = 0;
		return 0;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		BIO_set_retry_read(b);
		return -1;
	}
	return (int)n;
}

static int bio_write(BIO *b, const char *in, int len)
{
	struct mailtls *s = BIO_get_data(b);
	ssize_t n;
	BIO_clear_retry_flags(b);
	n = mt_fd_write(&s->w, in, len > 0 ? (size_t)len : 0, s->nonblock);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		BIO_set_retry_write(b);
		return -1;
	}
	return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO_METHOD *method;
static pthread_once_t method_once = PTHREAD_ONCE_INIT;

static void method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOURCE_SINK | 0x80, "mailtls fd");
	if (!m)
		return;
	BIO_meth_set_read(m, bio_read);
	BIO_meth_set_write(m, bio_write);
	BIO_meth_set_ctrl(m, bio_ctrl);
	method = m;
}

/* The BIO only points at the session, which outlives it (SSL_free frees
 * the BIOs first). */
BIO *mt_bio_new(struct mailtls *s)
{
	BIO *b;
	pthread_once(&method_once, method_init);
	if (!method || !(b = BIO_new(method)))
		return NULL;
	BIO_set_data(b, s);
	BIO_set_init(b, 1);
	return b;
}
