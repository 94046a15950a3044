/* names.c -- ident (-r, RFC 1413) for TCPREMOTEINFO.  The DNS names (-h,
 * -p, TCPLOCALHOST), the ident socket and the answer's user id:
 * examples/common/names.c. */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tcpserver-ssl.h"

/* ident_lookup asks the client's identd (port 113) who owns the
 * connection, within |secs|.  Returns 1 with the user id, 0 without. */
int ident_lookup(const struct conninfo *ci, int secs, char *out, size_t len)
{
	char q[64], a[512];
	size_t got = 0;
	struct pollfd p;
	int fd, ok = 0;
	time_t end = time(NULL) + secs;
	char *user;
	fd = ucspi_ident_socket(ci);
	if (fd < 0)
		return 0;
	snprintf(q, sizeof q, "%u , %u\r\n", ci->remoteport, ci->localport);
	p.fd = fd;
	p.events = POLLOUT;
	if (poll(&p, 1, secs * 1000) <= 0 || write(fd, q, strlen(q)) != (ssize_t)strlen(q))
		goto out;
	while (got < sizeof a - 1 && !memchr(a, '\n', got)) {
		ssize_t n;
		long left = (long)(end - time(NULL));
		p.events = POLLIN;
		if (left <= 0 || poll(&p, 1, (int)left * 1000) <= 0)
			goto out;
		n = read(fd, a + got, sizeof a - 1 - got);
		if (n <= 0)
			goto out;
		got += (size_t)n;
	}
	user = ucspi_ident_user(a, got);
	if (!user)
		goto out;
	/* tcpserver keeps the user id without spaces. */
	{
		size_t o = 0;
		for (; *user && o + 1 < len; user++)
			if (*user != ' ' && *user != '\t')
				out[o++] = *user;
		out[o] = 0;
	}
	ok = *out != 0;
out:
	close(fd);
	return ok;
}
