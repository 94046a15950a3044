/* names.c -- DNS names (TCPLOCALHOST, TCPREMOTEHOST) and the parts of an
 * ident lookup (RFC 1413) that tcpserver-ssl and tcpclient-ssl share. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ucspi.h"

int ucspi_sockaddr(const char *ip, unsigned port, struct sockaddr_storage *ss, socklen_t *len)
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

/* A name as tcpserver and tcpclient keep it: lower case, no final dot, and
 * any byte but a-z 0-9 - _ . as \ooo, so a hostile PTR record cannot put
 * bytes of its choice into the program's environment or the rules lookup. */
void ucspi_clean_name(const char *in, char *out, size_t len)
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

int name_of(const char *ip, int paranoid, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int ok = 0;
	char raw[1025];
	*out = 0;
	if (ucspi_sockaddr(ip, 0, &ss, &sl) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, sl, raw, sizeof raw, NULL, 0, NI_NAMEREQD) != 0)
		return 0;
	ucspi_clean_name(raw, out, len);
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

int ucspi_ident_socket(const struct conninfo *ci)
{
	struct sockaddr_storage ra, la;
	socklen_t rl, ll;
	int fd;
	if (ucspi_sockaddr(ci->remoteip, 113, &ra, &rl) < 0 || ucspi_sockaddr(ci->localip, 0, &la, &ll) < 0)
		return -1;
	fd = socket(ra.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&la, ll) < 0 ||
	    (connect(fd, (struct sockaddr *)&ra, rl) < 0 && errno != EINPROGRESS)) {
		close(fd);
		return -1;
	}
	return fd;
}

char *ucspi_ident_user(char *a, size_t got)
{
	char *user;
	a[got] = 0;
	a[strcspn(a, "\r\n")] = 0;
	if (!strstr(a, ": USERID") && !strstr(a, ":USERID"))
		return NULL;
	user = strrchr(a, ':');
	if (!user)
		return NULL;
	for (user++; *user == ' '; user++)
		;
	return user;
}

int ucspi_ident(const struct conninfo *ci, unsigned secs, char *out, size_t len)
{
	char q[64], a[512];
	size_t got = 0, o = 0;
	struct pollfd p;
	struct timespec end, now;
	int fd, ok = 0;
	char *user;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += secs;
	fd = ucspi_ident_socket(ci);
	if (fd < 0)
		return 0;
	/* The identd's side (the remote port) first, then ours. */
	snprintf(q, sizeof q, "%u , %u\r\n", ci->remoteport, ci->localport);
	p.fd = fd;
	for (int sent = 0; !memchr(a, '\n', got);) {
		ssize_t n;
		long long ms;
		clock_gettime(CLOCK_MONOTONIC, &now);
		ms = (long long)(end.tv_sec - now.tv_sec) * 1000 + (end.tv_nsec - now.tv_nsec) / 1000000;
		int r;
		if (ms <= 0)
			goto out;
		p.events = sent ? POLLIN : POLLOUT;
		r = poll(&p, 1, ms > INT_MAX ? INT_MAX : (int)ms);
		if (r == 0 || (r < 0 && errno == EINTR))
			continue;
		if (r < 0)
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
	/* Spaces go, as tcpserver drops them; what is not printable ASCII (the
	 * identd is the peer's) is escaped \ooo. */
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
	ok = o != 0;
out:
	close(fd);
	return ok;
}
