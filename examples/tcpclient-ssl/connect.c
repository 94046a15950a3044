/* connect.c -- the outgoing connection as tcpclient makes it: host 0 is
 * this machine, several addresses are tried in turn, each for x seconds of
 * -T x+y, then those that timed out once more for y seconds; -i and -p
 * bind the local side.  The socket ends up blocking (the program may get
 * it) and close-on-exec. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tcpclient-ssl.h"

#define MAX_ADDRS 16

struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
	int timed_out;
};

/* fd_high moves |fd| to FD_FLOOR or above (close-on-exec when |cloexec|). */
int fd_high(int fd, int cloexec)
{
	int n;
	if (fd < 0 || fd >= FD_FLOOR) {
		if (fd >= 0 && cloexec)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
		return fd;
	}
	n = fcntl(fd, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, FD_FLOOR);
	if (n < 0)
		fatal(111, "unable to move a descriptor: %s", errstr(errno));
	close(fd);
	return n;
}

static void set_port(struct sockaddr_storage *ss, unsigned port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((unsigned short)port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons((unsigned short)port);
}

/* An address literal (with an optional %scope for IPv6) without DNS. */
static int literal(const char *host, int family, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST }, *res;
	hints.ai_family = family == 4 ? AF_INET : family == 6 ? AF_INET6 : AF_UNSPEC;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return -1;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int resolve(const struct opts *o, const char *host, struct addr *a, int max)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int n = 0, e;
	memset(a, 0, sizeof *a * (size_t)max);
	if (!strcmp(host, "0")) {
		/* tcpclient: 0 is the local machine. */
		return literal(o->family == 6 ? "::1" : "127.0.0.1", 0, &a[0].ss, &a[0].len) == 0;
	}
	if (literal(host, o->family, &a[0].ss, &a[0].len) == 0)
		return 1;
	hints.ai_family = o->family == 4 ? AF_INET : o->family == 6 ? AF_INET6 : AF_UNSPEC;
	e = getaddrinfo(host, NULL, &hints, &res);
	if (e == EAI_NONAME || e == EAI_NODATA || e == EAI_FAMILY)
		fatal(111, "no IP address for %s", host);
	if (e != 0)
		fatal(111, "temporarily unable to figure out IP address for %s: %s", host, gai_strerror(e));
	for (ai = res; ai && n < max; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		memcpy(&a[n].ss, ai->ai_addr, ai->ai_addrlen);
		a[n].len = ai->ai_addrlen;
		n++;
	}
	freeaddrinfo(res);
	if (!n)
		fatal(111, "no IP address for %s", host);
	return n;
}

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t len, unsigned *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)len);
		*port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, out, (socklen_t)len);
		*port = ntohs(sin6->sin6_port);
	}
}

/* One attempt: 0 connected (*fd set), else -1 with errno (ETIMEDOUT when
 * |secs| passed). */
static int try_connect(const struct opts *o, const struct addr *a, const struct sockaddr_storage *local,
    socklen_t locallen, unsigned secs, int *fd)
{
	struct pollfd p;
	int s, e = 0, r;
	socklen_t el = sizeof e;
	struct timespec end, now;
	s = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	if (locallen) {
		int one = 1;
		if (o->localport)
			setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(s, (const struct sockaddr *)local, locallen) < 0) {
			e = errno;
			close(s);
			fatal(111, "unable to bind socket: %s", errstr(e));
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += secs;
	if (connect(s, (const struct sockaddr *)&a->ss, a->len) < 0) {
		if (errno != EINPROGRESS)
			goto fail;
		p.fd = s;
		p.events = POLLOUT;
		for (;;) {
			long ms;
			clock_gettime(CLOCK_MONOTONIC, &now);
			ms = (end.tv_sec - now.tv_sec) * 1000 + (end.tv_nsec - now.tv_nsec) / 1000000;
			if (ms <= 0) {
				errno = ETIMEDOUT;
				goto fail;
			}
			r = poll(&p, 1, (int)ms);
			if (r > 0)
				break;
			if (r < 0 && errno != EINTR)
				goto fail;
		}
		if (getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
			goto fail;
		if (e) {
			errno = e;
			goto fail;
		}
	}
	/* Blocking from here on: the library and the program expect it. */
	if (fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK) < 0)
		goto fail;
	*fd = s;
	return 0;
fail:
	e = errno;
	close(s);
	errno = e;
	return -1;
}

static void connect_failed(const struct addr *a, int e)
{
	char ip[64];
	unsigned port;
	addr_text(&a->ss, ip, sizeof ip, &port);
	log_error("unable to connect to %s port %u: %s", ip, port, errstr(e));
}

void tcp_connect(const struct opts *o, struct conninfo *ci)
{
	struct addr a[MAX_ADDRS];
	struct sockaddr_storage local, l, r;
	socklen_t locallen = 0, ll = sizeof l, rl = sizeof r;
	unsigned port, lport = 0;
	int n, fd = -1, one = 1, localfamily = 0;

	memset(ci, 0, sizeof *ci);
	if (ucspi_port(o->port, &port) < 0)
		fatal(111, "unable to figure out port number for %s", o->port);
	if (o->localport && ucspi_port(o->localport, &lport) < 0)
		fatal(111, "unable to figure out port number for %s", o->localport);
	memset(&local, 0, sizeof local);
	if (o->localip) {
		if (literal(o->localip, o->family, &local, &locallen) < 0)
			fatal(111, "unable to parse local IP address %s", o->localip);
		localfamily = local.ss_family;
	}
	n = resolve(o, o->host, a, MAX_ADDRS);
	for (int i = 0; i < n; i++)
		set_port(&a[i].ss, port);

	/* First round: x seconds each; a second round of y seconds for those
	 * that timed out. */
	for (int round = 0; round < 2 && fd < 0; round++) {
		unsigned secs = round ? o->conn_second : o->conn_first;
		for (int i = 0; i < n && fd < 0; i++) {
			struct sockaddr_storage lo;
			socklen_t lolen = 0;
			memset(&lo, 0, sizeof lo);
			if (round && !a[i].timed_out)
				continue;
			if (localfamily && a[i].ss.ss_family != localfamily)
				continue;
			if (locallen || lport) {
				if (locallen) {
					lo = local;
					lolen = locallen;
				} else {
					lo.ss_family = a[i].ss.ss_family;
					lolen = lo.ss_family == AF_INET ? sizeof(struct sockaddr_in) :
					    sizeof(struct sockaddr_in6);
				}
				set_port(&lo, lport);
			}
			if (try_connect(o, &a[i], &lo, lolen, secs, &fd) == 0)
				break;
			a[i].timed_out = errno == ETIMEDOUT;
			if (!a[i].timed_out || round || !o->conn_second)
				connect_failed(&a[i], errno);
		}
	}
	if (fd < 0) {
		if (localfamily && n > 0) {
			int any = 0;
			for (int i = 0; i < n; i++)
				any |= a[i].ss.ss_family == localfamily;
			if (!any)
				fatal(111, "no IP address for %s of the family of %s", o->host, o->localip);
		}
		_exit(111);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	ci->fd = fd_high(fd, 1);
	if (getsockname(ci->fd, (struct sockaddr *)&l, &ll) < 0 ||
	    getpeername(ci->fd, (struct sockaddr *)&r, &rl) < 0)
		fatal(111, "unable to get the connection's addresses: %s", errstr(errno));
	addr_text(&l, ci->localip, sizeof ci->localip, &ci->localport);
	addr_text(&r, ci->remoteip, sizeof ci->remoteip, &ci->remoteport);
	ci->v6 = r.ss_family == AF_INET6;
	log_status("connected to %s port %u", ci->remoteip, ci->remoteport);
}
