/* lineread.c -- bounded line I/O for the STARTTLS helpers: never a byte
 * read past the current line in the plaintext phase.  See lineread.h. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lineread.h"

/* A line read up to its LF (len >= 1 and buf[len - 1] is the LF): the
 * terminator removed, unless |raw|. */
static void finish_line(struct mt_line *line, size_t len, int raw)
{
	if (raw) {
		line->buf[len] = 0;
		line->len = len;
		return;
	}
	len--;
	if (len > 0 && line->buf[len - 1] == '\r')
		len--;
	line->buf[len] = 0;
	line->len = len;
}

/* Whom the lines come from: the STARTTLS client helpers read a server, the
 * server-side proxy reads a client. */
static const char *peer(const struct mailtls *s)
{
	return s->is_server ? "client" : "server";
}

static int overlong(struct mailtls *s)
{
	mt_seterr(s, MAILTLS_E_PROTOCOL, "line longer than %d bytes from the %s", MT_LINE_MAX, peer(s));
	return -1;
}

static int closed(struct mailtls *s, size_t len)
{
	mt_seterr(s, MAILTLS_E_PROTOCOL, "connection closed by the %s%s", peer(s), len ? " inside a line" : "");
	return -1;
}

static int syserr(struct mailtls *s, const char *what)
{
	mt_seterr(s, MAILTLS_E_SYSTEM, "%s: %s", what, strerror(errno));
	return -1;
}

/* MT_LINE_MAX bytes and no LF: an error, or with |raw| the first part. */
static int full(struct mailtls *s, struct mt_line *line, int raw)
{
	if (!raw)
		return overlong(s);
	line->buf[MT_LINE_MAX] = 0;
	line->len = MT_LINE_MAX;
	return 0;
}

/* A socket: peek to find the LF, then take exactly up to it. */
static int sock_readline(struct mailtls *s, struct mt_line *line, const struct timespec *dl, int raw)
{
	int fd = s->r.fd;
	char *b = line->buf;
	size_t len = 0;
	for (;;) {
		size_t want;
		ssize_t n, k;
		char *nl;
		if (len >= MT_LINE_MAX)
			return full(s, line, raw);
		n = recv(fd, b + len, MT_LINE_MAX - len, MSG_PEEK | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (mt_wait(s, fd, POLLIN, dl) <= 0)
					return -1;
				continue;
			}
			return syserr(s, "recv");
		}
		if (n == 0)
			return closed(s, len);
		nl = memchr(b + len, '\n', (size_t)n);
		want = nl ? (size_t)(nl - (b + len)) + 1 : (size_t)n;
		do
			k = recv(fd, b + len, want, MSG_DONTWAIT);
		while (k < 0 && errno == EINTR);
		if (k < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			return syserr(s, "recv");
		}
		if (k == 0)
			return closed(s, len);
		/* What was taken is a prefix of what was peeked: it holds the LF
		 * only when it is the whole line. */
		nl = memchr(b + len, '\n', (size_t)k);
		len += (size_t)k;
		if (nl) {
			finish_line(line, (size_t)(nl - b) + 1, raw);
			return 0;
		}
	}
}

/* Any other descriptor (a pipe, a tty): one byte at a time, each after
 * poll(2) said it is there, so a blocking descriptor never blocks. */
static int byte_readline(struct mailtls *s, struct mt_line *line, const struct timespec *dl, int raw)
{
	int fd = s->r.fd;
	size_t len = 0;
	for (;;) {
		ssize_t n;
		if (len >= MT_LINE_MAX)
			return full(s, line, raw);
		if (mt_wait(s, fd, POLLIN, dl) <= 0)
			return -1;
		n = read(fd, line->buf + len, 1);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			return syserr(s, "read");
		}
		if (n == 0)
			return closed(s, len);
		if (line->buf[len++] == '\n') {
			finish_line(line, len, raw);
			return 0;
		}
	}
}

int mt_plain_readline(struct mailtls *s, struct mt_line *line, const struct timespec *dl)
{
	line->len = 0;
	line->buf[0] = 0;
	return s->r.sock ? sock_readline(s, line, dl, 0) : byte_readline(s, line, dl, 0);
}

int mt_plain_readpart(struct mailtls *s, struct mt_line *line, const struct timespec *dl)
{
	line->len = 0;
	line->buf[0] = 0;
	return s->r.sock ? sock_readline(s, line, dl, 1) : byte_readline(s, line, dl, 1);
}

int mt_plain_pending(struct mailtls *s)
{
	int fd = s->r.fd;
	if (s->r.sock) {
		char c;
		ssize_t n;
		do
			n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		if (n > 0)
			return 1;
		if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		syserr(s, "recv");
		return -1;
	} else {
		int avail = 0;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r;
		if (ioctl(fd, FIONREAD, &avail) == 0)
			return avail > 0;
		/* No byte count for this kind of descriptor: readable counts as
		 * pending (fail closed; end of file is reported the same way). */
		do
			r = poll(&p, 1, 0);
		while (r < 0 && errno == EINTR);
		if (r < 0) {
			syserr(s, "poll");
			return -1;
		}
		return r > 0 && (p.revents & POLLIN);
	}
}

int mt_plain_write(struct mailtls *s, const void *buf, size_t len, const struct timespec *dl)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = mt_fd_write(&s->w, p, len, 1);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return syserr(s, s->w.sock ? "send" : "write");
			if (mt_wait(s, s->w.fd, POLLOUT, dl) <= 0)
				return -1;
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The TLS side. */

static ssize_t op_read1(struct mailtls *s, void *arg)
{
	return mt_read_step(s, arg, 1);
}

int mt_tls_readline(struct mailtls *s, struct mt_line *line, const struct timespec *dl)
{
	size_t len = 0;
	line->len = 0;
	line->buf[0] = 0;
	for (;;) {
		ssize_t r;
		if (len >= MT_LINE_MAX)
			return overlong(s);
		r = mt_drive(s, op_read1, line->buf + len, dl);
		if (r < 0)
			return -1;
		if (r == 0) {
			mt_seterr(s, MAILTLS_E_PROTOCOL, "TLS session closed by the %s%s", peer(s),
			    len ? " inside a line" : "");
			return -1;
		}
		if (line->buf[len++] == '\n') {
			finish_line(line, len, 0);
			return 0;
		}
	}
}
