/* names.c -- DNS names (-h, -p, TCPLOCALHOST) and ident (-r, RFC 1413) for
 * the TCP* variables. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tcpserver-ssl.h"

static int to_sockaddr(const char *ip, unsigned port, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		((struct sockaddr_in *)ss)->sin_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons((unsigned short)port);
		*len = sizeof(struct sockaddr_in);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)ss)->sin6_port = htons((unsigned short)port);
		*len = sizeof(struct sockaddr_in6);
		return 0;
	}
	return -1;
}

/* tcpserver's form of a name: lower case, no final dot, and any byte but
 * a-z 0-9 - _ . as \ooo, so a hostile PTR record cannot smuggle bytes into
 * TCPREMOTEHOST or the rules lookup. */
static void clean_name(const char *in, char *out, size_t len)
{
	size_t o = 0, n = strlen(in);
	if (n && in[n - 1] == '.')
		n--;
	for (size_t i = 0; i < n && o + 5 < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, len - o, "\\%03o", c);
	}
	out[o] = 0;
}

/* name_of: the PTR name of |ip|; with |paranoid| only when that name maps
 * back to |ip|.  Returns 1 with a name, 0 without. */
int name_of(const char *ip, int paranoid, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int ok = 0;
	char raw[1025];
	if (to_sockaddr(ip, 0, &ss, &sl) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, sl, raw, sizeof raw, NULL, 0, NI_NAMEREQD) != 0)
		return 0;
	clean_name(raw, out, len);
	if (!paranoid)
		return 1;
	if (getaddrinfo(raw, NULL, &hints, &res) != 0)
		return 0;
	for (ai = res; ai && !ok; ai = ai->ai_next) {
		char text[64];
		const void *a = ai->ai_family == AF_INET ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr :
		    (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
		if (inet_ntop(ai->ai_family, a, text, sizeof text) && !strcmp(text, ip))
			ok = 1;
	}
	freeaddrinfo(res);
	return ok;
}

/* ident_lookup asks the client's identd (port 113) who owns the
 * connection, within |secs|.  Returns 1 with the user id, 0 without. */
int ident_lookup(const struct conninfo *ci, int secs, char *out, size_t len)
{
	struct sockaddr_storage ra, la;
	socklen_t rl, ll;
	char q[64], a[512];
	size_t got = 0;
	struct pollfd p;
	int fd, ok = 0;
	time_t end = time(NULL) + secs;
	char *user;
	if (to_sockaddr(ci->remoteip, 113, &ra, &rl) < 0 || to_sockaddr(ci->localip, 0, &la, &ll) < 0)
		return 0;
	fd = socket(ra.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	if (bind(fd, (struct sockaddr *)&la, ll) < 0 ||
	    (connect(fd, (struct sockaddr *)&ra, rl) < 0 && errno != EINPROGRESS))
		goto out;
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
	a[got] = 0;
	a[strcspn(a, "\r\n")] = 0;
	/* "rport , lport : USERID : OS : user" */
	if (!strstr(a, ": USERID") && !strstr(a, ":USERID"))
		goto out;
	user = strrchr(a, ':');
	if (!user)
		goto out;
	for (user++; *user == ' '; user++)
		;
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
