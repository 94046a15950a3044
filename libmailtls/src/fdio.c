/* fdio.c -- reading and writing a caller's descriptor without ever
 * blocking when asked not to, and without touching its flags (which other
 * processes may share): sockets take MSG_DONTWAIT; pipes take RWF_NOWAIT
 * where the kernel supports it on pipes (recent ones do), so a whole
 * buffer moves in one call; any other descriptor, or a kernel that
 * refuses RWF_NOWAIT (EOPNOTSUPP), is polled first and
 * then written at most PIPE_BUF bytes at a time (what a pipe that polls
 * writable is sure to take). */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

void mt_fd_init(struct mt_fd *f, int fd)
{
	struct stat st;
	int ok = fstat(fd, &st) == 0;
	f->fd = fd;
	f->sock = ok && S_ISSOCK(st.st_mode);
	f->pipe = ok && S_ISFIFO(st.st_mode);
}

int mt_is_socket(int fd)
{
	struct mt_fd f;
	mt_fd_init(&f, fd);
	return f.sock;
}

/* ready says whether |fd| is ready for |events| now; an error or hangup
 * condition counts as ready, so the call that follows reports it. */
static int ready(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;
	do
		r = poll(&p, 1, 0);
	while (r < 0 && errno == EINTR);
	return r != 0;
}

/* A pipe whose kernel refuses RWF_NOWAIT is handled as any other
 * descriptor from then on. */
static int no_nowait(struct mt_fd *f)
{
	if (errno != EOPNOTSUPP && errno != EINVAL)
		return 0;
	f->pipe = 0;
	return 1;
}

ssize_t mt_fd_read(struct mt_fd *f, void *buf, size_t len, int nowait)
{
	ssize_t n;
	for (;;) {
		if (f->sock) {
			n = recv(f->fd, buf, len, nowait ? MSG_DONTWAIT : 0);
		} else if (nowait && f->pipe) {
			struct iovec v = { buf, len };
			n = preadv2(f->fd, &v, 1, -1, RWF_NOWAIT);
			if (n < 0 && no_nowait(f))
				continue;
		} else if (nowait && !ready(f->fd, POLLIN)) {
			errno = EAGAIN;
			return -1;
		} else {
			n = read(f->fd, buf, len);
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n;
	}
}

ssize_t mt_fd_write(struct mt_fd *f, const void *buf, size_t len, int nowait)
{
	ssize_t n;
	for (;;) {
		if (f->sock) {
			n = send(f->fd, buf, len, MSG_NOSIGNAL | (nowait ? MSG_DONTWAIT : 0));
		} else if (nowait && f->pipe) {
			struct iovec v = { (void *)buf, len };
			n = pwritev2(f->fd, &v, 1, -1, RWF_NOWAIT);
			if (n < 0 && no_nowait(f))
				continue;
		} else if (nowait && !ready(f->fd, POLLOUT)) {
			errno = EAGAIN;
			return -1;
		} else {
			n = write(f->fd, buf, nowait && len > PIPE_BUF ? PIPE_BUF : len);
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n;
	}
}
