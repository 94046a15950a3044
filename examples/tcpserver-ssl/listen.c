/* listen.c -- binding the listening sockets and reading a connection's
 * addresses as tcpserver prints them. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tcpserver-ssl.h"

static int bind_one(const struct opts *o, int family, const void *addr, unsigned port, int v6only)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	memset(&ss, 0, sizeof ss);
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((unsigned short)port);
		memcpy(&sin->sin_addr, addr, 4);
		len = sizeof *sin;
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((unsigned short)port);
		memcpy(&sin6->sin6_addr, addr, 16);
		if (o->iface)
			sin6->sin6_scope_id = if_nametoindex(o->iface);
		len = sizeof *sin6;
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0)
			goto fail;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, o->backlog) < 0)
		goto fail;
	return fd;
fail:
	{
		int e = errno;
		close(fd);
		errno = e;
	}
	return -1;
}

int listen_sockets(const struct opts *o, int *fds, int max, unsigned *port)
{
	unsigned char a4[4], a6[16];
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	int fd;
	if (max < 1 || ucspi_port(o->port, port) < 0)
		fatal(100, "unable to figure out port number for %s", o->port);
	if (!strcmp(o->host, "0")) {
		/* Every address: one dual-stack socket, or one family with -4 / -6. */
		if (o->family == 4) {
			memset(a4, 0, 4);
			fd = bind_one(o, AF_INET, a4, *port, 0);
		} else {
			fd = bind_one(o, AF_INET6, &in6addr_any, *port, o->family == 6);
			if (fd < 0 && errno == EAFNOSUPPORT && o->family != 6) {
				memset(a4, 0, 4);
				fd = bind_one(o, AF_INET, a4, *port, 0);
			}
		}
	} else if (o->family != 6 && inet_pton(AF_INET, o->host, a4) == 1) {
		fd = bind_one(o, AF_INET, a4, *port, 0);
	} else if (o->family != 4 && inet_pton(AF_INET6, o->host, a6) == 1) {
		fd = bind_one(o, AF_INET6, a6, *port, 1);
	} else {
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
		hints.ai_family = o->family == 4 ? AF_INET : o->family == 6 ? AF_INET6 : AF_UNSPEC;
		if (getaddrinfo(o->host, NULL, &hints, &res) != 0)
			fatal(111, "temporarily unable to figure out IP address for %s", o->host);
		fd = res->ai_family == AF_INET ?
		    bind_one(o, AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, *port, 0) :
		    bind_one(o, AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, *port, 1);
		freeaddrinfo(res);
	}
	if (fd < 0)
		fatal(111, "unable to bind: %s", strerror(errno));
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		*port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port :
		    ((struct sockaddr_in6 *)&ss)->sin6_port);
	fds[0] = fd;
	return 1;
}

/* A v4-mapped address is an IPv4 client of a dual-stack socket: shown as
 * IPv4, with PROTO=TCP, as tcpserver's IPv6 patch does. */
static void addr_text(const struct sockaddr_storage *ss, char *out, size_t len, unsigned *port,
    int *v6, unsigned *scope)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)len);
		*port = ntohs(sin->sin_port);
		*v6 = 0;
		return;
	}
	{
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		*port = ntohs(sin6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			inet_ntop(AF_INET, (const unsigned char *)&sin6->sin6_addr + 12, out, (socklen_t)len);
			*v6 = 0;
		} else {
			inet_ntop(AF_INET6, &sin6->sin6_addr, out, (socklen_t)len);
			*v6 = 1;
			if (scope)
				*scope = sin6->sin6_scope_id;
		}
	}
}

int conn_addresses(int fd, const struct sockaddr_storage *r, struct conninfo *ci)
{
	struct sockaddr_storage l;
	socklen_t ll = sizeof l;
	int lv6, rv6;
	if (getsockname(fd, (struct sockaddr *)&l, &ll) < 0)
		return -1;
	ci->fd = fd;
	addr_text(&l, ci->localip, sizeof ci->localip, &ci->localport, &lv6, NULL);
	addr_text(r, ci->remoteip, sizeof ci->remoteip, &ci->remoteport, &rv6, &ci->scope);
	ci->v6 = rv6;
	return 0;
}
