/* ucspitls.c -- the descriptors and the control protocol of UCSPI-TLS
 * (ucspi-tls(2)).  See mailtls.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

static void close_pair_end(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int mailtls_ucspitls_open(struct mailtls_ucspitls *u)
{
	int e;
	u->ctl[0] = u->ctl[1] = u->rd[0] = u->rd[1] = u->wr[0] = u->wr[1] = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, u->ctl) < 0 || pipe(u->rd) < 0 || pipe(u->wr) < 0)
		goto fail;
	/* Ours are close-on-exec; the program's are inherited. */
	if (fcntl(u->ctl[1], F_SETFD, FD_CLOEXEC) < 0 || fcntl(u->rd[1], F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(u->wr[0], F_SETFD, FD_CLOEXEC) < 0)
		goto fail;
	return 0;
fail:
	e = errno;
	mailtls_ucspitls_close_program(u);
	mailtls_ucspitls_close_ours(u);
	errno = e;
	return -1;
}

void mailtls_ucspitls_close_program(struct mailtls_ucspitls *u)
{
	close_pair_end(&u->ctl[0]);
	close_pair_end(&u->rd[0]);
	close_pair_end(&u->wr[1]);
}

void mailtls_ucspitls_close_ours(struct mailtls_ucspitls *u)
{
	close_pair_end(&u->ctl[1]);
	close_pair_end(&u->rd[1]);
	close_pair_end(&u->wr[0]);
}

ssize_t mailtls_ucspitls_env(const struct mailtls_ucspitls *u, char *buf, size_t len)
{
	char tmp[128];
	int n = snprintf(tmp, sizeof tmp, "SSLCTLFD=%d%cSSLREADFD=%d%cSSLWRITEFD=%d%c",
	    u->ctl[0], 0, u->rd[0], 0, u->wr[1], 0);
	if (n < 0 || !buf || (size_t)n > len)
		return -1;
	memcpy(buf, tmp, (size_t)n);
	return n;
}

int mailtls_ucspitls_wait(struct mailtls *s, const struct mailtls_ucspitls *u, int secs)
{
	struct timespec dl = { 0, 0 };
	unsigned char c;
	ssize_t n;
	mt_clearerr(s);
	if (u->ctl[1] < 0) {
		/* poll(2) would ignore it and wait forever. */
		mt_seterr(s, MAILTLS_E_USAGE, "UCSPI-TLS: the control socket is closed");
		return -1;
	}
	if (secs > 0)
		mt_deadline(&dl, secs);
	/* Always poll, then take what is there: a control socket the caller
	 * made non-blocking neither spins nor fails with EAGAIN. */
	for (;;) {
		struct pollfd p = { .fd = u->ctl[1], .events = POLLIN };
		int r = poll(&p, 1, secs > 0 ? mt_ms_left(&dl) : -1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			mt_seterr(s, MAILTLS_E_SYSTEM, "UCSPI-TLS control socket: poll: %s", strerror(errno));
			return -1;
		}
		if (r == 0) {
			if (mt_ms_left(&dl) > 0)
				continue;
			mt_seterr(s, MAILTLS_E_TIMEOUT, "UCSPI-TLS: timed out waiting for the program's request");
			return -1;
		}
		n = recv(u->ctl[1], &c, 1, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		break;
	}
	if (n == 0 || (n < 0 && errno == ECONNRESET))
		return 0;   /* the program keeps its plaintext session */
	if (n < 0) {
		mt_seterr(s, MAILTLS_E_SYSTEM, "UCSPI-TLS control socket: %s", strerror(errno));
		return -1;
	}
	if (c != 'y' && c != 'Y') {
		mt_seterr(s, MAILTLS_E_PROTOCOL, "UCSPI-TLS: the program asked for 0x%02x, not y or Y", c);
		return -1;
	}
	return c;
}

int mailtls_ucspitls_reply(struct mailtls *s, const struct mailtls_ucspitls *u, int secs)
{
	struct timespec dl;
	ssize_t len = mailtls_env(s, NULL, 0), off = 0;
	char *buf;
	mt_clearerr(s);
	if (!s->handshake_done) {
		/* Before the handshake the block would be empty: the program
		 * would take a plaintext session for an encrypted one. */
		mt_seterr(s, MAILTLS_E_USAGE, "UCSPI-TLS: no facts to send before the handshake is done");
		return -1;
	}
	if (len < 0 || !(buf = malloc((size_t)len))) {
		mt_seterr(s, MAILTLS_E_NOMEM, "out of memory");
		return -1;
	}
	if (mailtls_env(s, buf, (size_t)len) != len) {
		free(buf);
		mt_seterr(s, MAILTLS_E_USAGE, "UCSPI-TLS: the facts changed while being written");
		return -1;
	}
	mt_deadline(&dl, secs);
	while (off < len) {
		ssize_t n = send(u->ctl[1], buf + off, (size_t)(len - off), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (mt_wait(s, u->ctl[1], POLLOUT, &dl) <= 0)
				break;
			continue;
		}
		mt_seterr(s, MAILTLS_E_SYSTEM, "UCSPI-TLS control socket: %s", n < 0 ? strerror(errno) : "closed");
		break;
	}
	free(buf);
	return off == len ? 0 : -1;
}
