/* deadline.c -- waiting with poll(2) until a deadline, never with signals,
 * and the deadline forms of the session calls.  See mailtls.h. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>

#include "internal.h"

void mt_deadline(struct timespec *dl, int secs)
{
	clock_gettime(CLOCK_MONOTONIC, dl);
	if (secs < 0)
		secs = 0;
	dl->tv_sec += secs;
}

int mt_ms_left(const struct timespec *dl)
{
	struct timespec now;
	long long ms;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(dl->tv_sec - now.tv_sec) * 1000 + (dl->tv_nsec - now.tv_nsec) / 1000000;
	if (ms < 0)
		return 0;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

int mt_wait(struct mailtls *s, int fd, short events, const struct timespec *dl)
{
	struct pollfd p = { .fd = fd, .events = events };
	for (;;) {
		int ms = mt_ms_left(dl);
		int r = poll(&p, 1, ms);
		if (r > 0)
			return 1;
		if (r == 0) {
			if (ms == 0 || mt_ms_left(dl) == 0) {
				mt_seterr(s, MAILTLS_E_TIMEOUT, "timed out waiting for the peer");
				return 0;
			}
			continue;
		}
		if (errno == EINTR)
			continue;
		mt_seterr(s, MAILTLS_E_SYSTEM, "poll: %s", strerror(errno));
		return -1;
	}
}

ssize_t mt_drive(struct mailtls *s, mt_op op, void *arg, const struct timespec *dl)
{
	int saved = s->nonblock;
	ssize_t r;
	if (s->is_mem) {
		mt_seterr(s, MAILTLS_E_USAGE, "deadline calls need descriptors, not the memory transport");
		return -1;
	}
	s->nonblock = 1;
	for (;;) {
		r = op(s, arg);
		if (r == MAILTLS_WANT_READ || r == MAILTLS_WANT_WRITE) {
			int fd = r == MAILTLS_WANT_READ ? s->r.fd : s->w.fd;
			int w = mt_wait(s, fd, r == MAILTLS_WANT_READ ? POLLIN : POLLOUT, dl);
			if (w <= 0) {
				r = -1;
				break;
			}
			continue;
		}
		break;
	}
	s->nonblock = saved;
	return r;
}

static ssize_t op_handshake(struct mailtls *s, void *arg)
{
	return mt_handshake_step(s);
}

int mt_handshake_until(struct mailtls *s, const struct timespec *dl)
{
	return mt_drive(s, op_handshake, NULL, dl) < 0 ? -1 : 0;
}

int mailtls_handshake_timeout(struct mailtls *s, int secs)
{
	struct timespec dl;
	mt_clearerr(s);
	mt_deadline(&dl, secs);
	return mt_handshake_until(s, &dl);
}

struct rw {
	void *buf;
	size_t len;
};

static ssize_t op_read(struct mailtls *s, void *arg)
{
	struct rw *a = arg;
	return mt_read_step(s, a->buf, a->len);
}

ssize_t mailtls_timeoutread(int secs, struct mailtls *s, void *buf, size_t len)
{
	struct timespec dl;
	struct rw a = { buf, len };
	mt_clearerr(s);
	mt_deadline(&dl, secs);
	return mt_drive(s, op_read, &a, &dl);
}

static ssize_t op_write_all(struct mailtls *s, void *arg)
{
	struct rw *a = arg;
	while (a->len > 0) {
		ssize_t r = mt_write_step(s, a->buf, a->len);
		if (r < 0)
			return r;
		a->buf = (char *)a->buf + r;
		a->len -= (size_t)r;
	}
	return 0;
}

int mt_tls_write(struct mailtls *s, const void *buf, size_t len, const struct timespec *dl)
{
	struct rw a = { (void *)buf, len };
	return mt_drive(s, op_write_all, &a, dl) < 0 ? -1 : 0;
}

ssize_t mailtls_timeoutwrite(int secs, struct mailtls *s, const void *buf, size_t len)
{
	struct timespec dl;
	mt_clearerr(s);
	mt_deadline(&dl, secs);
	if (mt_tls_write(s, buf, len, &dl) < 0)
		return -1;
	return (ssize_t)len;
}

static ssize_t op_close(struct mailtls *s, void *arg)
{
	return mailtls_close(s);
}

int mailtls_close_timeout(struct mailtls *s, int secs)
{
	struct timespec dl;
	mt_clearerr(s);
	mt_deadline(&dl, secs);
	return (int)mt_drive(s, op_close, NULL, &dl);
}
