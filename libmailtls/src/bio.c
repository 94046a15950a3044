/* bio.c -- the BIO that carries TLS records over the caller's descriptors.
 * BoringSSL's own socket BIO would raise SIGPIPE and can only block or not
 * as the descriptor's flags say; this one never raises SIGPIPE on a socket
 * and, while s->nonblock is set, never blocks without touching the
 * descriptor's flags (which may be shared with other processes). */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

struct mt_bio {
	struct mailtls *s;
	int reading;
};

int mt_is_socket(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

static int ready_now(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;
	do
		r = poll(&p, 1, 0);
	while (r < 0 && errno == EINTR);
	/* An error or hangup condition lets the call through, so it reports. */
	return r != 0;
}

static int bio_read(BIO *b, char *out, int len)
{
	struct mt_bio *d = BIO_get_data(b);
	struct mailtls *s = d->s;
	ssize_t n;
	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	for (;;) {
		if (s->nonblock && s->r.sock) {
			n = recv(s->r.fd, out, (size_t)len, MSG_DONTWAIT);
		} else if (s->nonblock && !ready_now(s->r.fd, POLLIN)) {
			BIO_set_retry_read(b);
			return -1;
		} else {
			n = read(s->r.fd, out, (size_t)len);
		}
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
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
	struct mt_bio *d = BIO_get_data(b);
	struct mailtls *s = d->s;
	ssize_t n;
	size_t want = len > 0 ? (size_t)len : 0;
	BIO_clear_retry_flags(b);
	for (;;) {
		if (s->w.sock) {
			n = send(s->w.fd, in, want, MSG_NOSIGNAL | (s->nonblock ? MSG_DONTWAIT : 0));
		} else if (s->nonblock && !ready_now(s->w.fd, POLLOUT)) {
			BIO_set_retry_write(b);
			return -1;
		} else {
			/* A pipe that polled writable takes PIPE_BUF bytes without blocking. */
			n = write(s->w.fd, in, s->nonblock && want > PIPE_BUF ? PIPE_BUF : want);
		}
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
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

static int bio_destroy(BIO *b)
{
	OPENSSL_free(BIO_get_data(b));
	BIO_set_data(b, NULL);
	return 1;
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
	BIO_meth_set_destroy(m, bio_destroy);
	method = m;
}

BIO *mt_bio_new(struct mailtls *s, int reading)
{
	BIO *b;
	struct mt_bio *d;
	pthread_once(&method_once, method_init);
	if (!method)
		return NULL;
	b = BIO_new(method);
	d = OPENSSL_malloc(sizeof *d);
	if (!b || !d) {
		BIO_free(b);
		OPENSSL_free(d);
		return NULL;
	}
	d->s = s;
	d->reading = reading;
	BIO_set_data(b, d);
	BIO_set_init(b, 1);
	return b;
}
