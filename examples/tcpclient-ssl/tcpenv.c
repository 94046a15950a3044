/* tcpenv.c -- the environment tcpclient gives its program: PROTO=TCP,
 * TCPLOCALIP, TCPLOCALPORT, TCPLOCALHOST, TCPREMOTEIP, TCPREMOTEPORT,
 * TCPREMOTEHOST, TCPREMOTEINFO (and, for IPv6, PROTO=TCP6 with each
 * variable under TCP6* as well, as the IPv6 patch names them).  The names,
 * the ident socket and answer, and the variables themselves:
 * examples/common. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tcpclient-ssl.h"

/* RFC 1413: ask the server's identd who we are, within |secs|.  Returns 1
 * with the user id, 0 without. */
static int ident_lookup(const struct conninfo *ci, unsigned secs, char *out, size_t len)
{
	char q[64], a[512];
	size_t got = 0;
	struct pollfd p;
	struct timespec end, now;
	int fd, ok = 0;
	char *user;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += secs;
	fd = ucspi_ident_socket(ci);
	if (fd < 0)
		return 0;
	/* The identd's port (the server's) first, then ours. */
	snprintf(q, sizeof q, "%u , %u\r\n", ci->remoteport, ci->localport);
	p.fd = fd;
	for (int sent = 0; !memchr(a, '\n', got);) {
		ssize_t n;
		long ms;
		clock_gettime(CLOCK_MONOTONIC, &now);
		ms = (end.tv_sec - now.tv_sec) * 1000 + (end.tv_nsec - now.tv_nsec) / 1000000;
		p.events = sent ? POLLIN : POLLOUT;
		if (ms <= 0 || poll(&p, 1, (int)ms) <= 0)
			goto out;
		if (!sent) {
			if (write(fd, q, strlen(q)) != (ssize_t)strlen(q))
				goto out;
			sent = 1;
			continue;
		}
		if (got >= sizeof a - 1)
			goto out;
		n = read(fd, a + got, sizeof a - 1 - got);
		if (n <= 0)
			goto out;
		got += (size_t)n;
	}
	user = ucspi_ident_user(a, got);
	if (!user)
		goto out;
	{
		size_t o = 0;
		for (; *user && o + 4 < len; user++) {
			unsigned char c = (unsigned char)*user;
			if (c == ' ' || c == '\t')
				continue;
			if (c < 0x20 || c > 0x7e || c == '\\')
				o += (size_t)snprintf(out + o, len - o, "\\%03o", c);
			else
				out[o++] = (char)c;
		}
		out[o] = 0;
	}
	ok = *out != 0;
out:
	close(fd);
	return ok;
}

void tcp_env(const struct opts *o, const struct conninfo *ci)
{
	char lhost[256], rhost[256], rinfo[256];
	const char *lh = o->localname, *rh = NULL, *ri = NULL;
	if (!lh) {
		name_of(ci->localip, 0, lhost, sizeof lhost);   /* "" without a name: set empty */
		lh = lhost;
	}
	if (o->lookup_remote) {
		name_of(ci->remoteip, 0, rhost, sizeof rhost);
		rh = rhost;
	}
	if (o->ident && ident_lookup(ci, o->ident_timeout, rinfo, sizeof rinfo))
		ri = rinfo;
	ucspi_tcp_env(ci, lh, rh, ri);
}
