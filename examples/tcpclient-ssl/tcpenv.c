/* tcpenv.c -- the environment tcpclient gives its program: PROTO=TCP,
 * TCPLOCALIP, TCPLOCALPORT, TCPLOCALHOST, TCPREMOTEIP, TCPREMOTEPORT,
 * TCPREMOTEHOST, TCPREMOTEINFO (and, for IPv6, PROTO=TCP6 with each
 * variable under TCP6* as well, as the IPv6 patch names them). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tcpclient-ssl.h"

extern char **environ;

void setenv_or_die(const char *name, const char *value)
{
	if (setenv(name, value, 1) < 0)
		fatal(111, "out of memory");
}

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

/* A name as tcpclient keeps it: lower case, no final dot, and any byte but
 * a-z 0-9 - _ . as \ooo, so a hostile PTR record cannot put bytes of its
 * choice into the program's environment. */
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

/* The PTR name of |ip|, or "" (tcpclient sets the variable empty then). */
static void name_of(const char *ip, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char raw[1025];
	*out = 0;
	if (to_sockaddr(ip, 0, &ss, &sl) == 0 &&
	    getnameinfo((struct sockaddr *)&ss, sl, raw, sizeof raw, NULL, 0, NI_NAMEREQD) == 0)
		clean_name(raw, out, len);
}

/* RFC 1413: ask the server's identd who we are, within |secs|.  Returns 1
 * with the user id, 0 without. */
static int ident_lookup(const struct conninfo *ci, unsigned secs, char *out, size_t len)
{
	struct sockaddr_storage ra, la;
	socklen_t rl, ll;
	char q[64], a[512];
	size_t got = 0;
	struct pollfd p;
	struct timespec end, now;
	int fd, ok = 0;
	char *user;
	if (to_sockaddr(ci->remoteip, 113, &ra, &rl) < 0 || to_sockaddr(ci->localip, 0, &la, &ll) < 0)
		return 0;
	fd = socket(ra.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += secs;
	if (bind(fd, (struct sockaddr *)&la, ll) < 0 ||
	    (connect(fd, (struct sockaddr *)&ra, rl) < 0 && errno != EINPROGRESS))
		goto out;
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

static void set_var(const char *proto, const char *suffix, const char *value)
{
	char name[32];
	snprintf(name, sizeof name, "%s%s", proto, suffix);
	if (value)
		setenv_or_die(name, value);
	else
		unsetenv(name);
}

void tcp_env(const struct opts *o, const struct conninfo *ci)
{
	static const char *const protos[] = { "TCP", "TCP6" };
	char lport[16], rport[16], lhost[256], rhost[256], rinfo[256];
	const char *lh = o->localname, *rh = NULL, *ri = NULL;
	if (!lh) {
		name_of(ci->localip, lhost, sizeof lhost);
		lh = lhost;
	}
	if (o->lookup_remote) {
		name_of(ci->remoteip, rhost, sizeof rhost);
		rh = rhost;
	}
	if (o->ident && ident_lookup(ci, o->ident_timeout, rinfo, sizeof rinfo))
		ri = rinfo;
	snprintf(lport, sizeof lport, "%u", ci->localport);
	snprintf(rport, sizeof rport, "%u", ci->remoteport);
	setenv_or_die("PROTO", protos[ci->v6]);
	for (int i = 0; i <= ci->v6; i++) {
		set_var(protos[i], "LOCALHOST", lh);
		set_var(protos[i], "LOCALIP", ci->localip);
		set_var(protos[i], "LOCALPORT", lport);
		set_var(protos[i], "REMOTEHOST", rh);
		set_var(protos[i], "REMOTEIP", ci->remoteip);
		set_var(protos[i], "REMOTEPORT", rport);
		set_var(protos[i], "REMOTEINFO", ri);
	}
}

/* Only this connection's TLS layer says what SSL_* means (and whether the
 * program may take UCSPI-TLS descriptors): whatever this process inherited
 * under those names goes. */
void drop_ssl_vars(void)
{
	char name[256];
	for (size_t i = 0; environ[i];) {
		const char *eq = strchr(environ[i], '=');
		size_t n = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		if (n < sizeof name && (!strncmp(environ[i], "SSL_", 4) || (n == 8 && !strncmp(environ[i], "SSLCTLFD", 8)) ||
		    (n == 9 && !strncmp(environ[i], "SSLREADFD", 9)) || (n == 10 && !strncmp(environ[i], "SSLWRITEFD", 10)))) {
			memcpy(name, environ[i], n);
			name[n] = 0;
			unsetenv(name);
			continue;
		}
		i++;
	}
}

/* "NAME=value\0...\0" blocks (the TLS facts, the UCSPI-TLS descriptors)
 * into the environment. */
void put_block(const char *b, size_t len)
{
	const char *end = b + len;
	while (b < end && *b) {
		size_t n = strnlen(b, (size_t)(end - b));
		const char *eq = memchr(b, '=', n);
		char name[256];
		if (eq && eq != b && (size_t)(eq - b) < sizeof name) {
			memcpy(name, b, (size_t)(eq - b));
			name[eq - b] = 0;
			setenv_or_die(name, eq + 1);
		}
		b += n + 1;
	}
}
