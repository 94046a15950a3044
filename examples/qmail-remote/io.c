/* io.c -- the report qmail-rspawn reads on fd 1 (records ending in NUL,
 * written once at the end), netqmail's fixed texts, and the connection to
 * the remote host: buffered reads and writes with timeouts, in plaintext
 * or through libmailtls, and netqmail's reply reader. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qmail-remote.h"

/* The report goes out through a fixed buffer, written whenever it fills
 * and at the end (qmail-rspawn reads to end of file), so no report text
 * depends on memory being available. */
static char rep[4096];
static size_t replen;

static void rep_flush(void)
{
	size_t off = 0;
	while (off < replen) {
		ssize_t w = write(1, rep + off, replen - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;   /* nobody reads the report: nothing else to do with it */
		off += (size_t)w;
	}
	replen = 0;
}

void outn(const char *s, size_t n)
{
	while (n) {
		size_t k = sizeof rep - replen;
		if (!k) {
			rep_flush();
			continue;
		}
		if (k > n)
			k = n;
		memcpy(rep + replen, s, k);
		replen += k;
		s += k;
		n -= k;
	}
}

void out(const char *s) { outn(s, strlen(s)); }

/* netqmail's outsafe: bytes outside 33..126 become '?'. */
void outsafe(const char *s)
{
	for (; *s; s++) {
		char ch = (unsigned char)*s < 33 || (unsigned char)*s > 126 ? '?' : *s;
		outn(&ch, 1);
	}
}

void zero(void) { outn("", 1); }

void zerodie(void)
{
	zero();
	rep_flush();
	_exit(0);
}

void temp_nomem(void) { out("ZOut of memory. (#4.3.0)\n"); zerodie(); }
void temp_oserr(void) { out("ZSystem resources temporarily unavailable. (#4.3.0)\n"); zerodie(); }
void temp_read(void) { out("ZUnable to read message. (#4.3.0)\n"); zerodie(); }
void temp_dns(void) { out("ZSorry, I couldn't find any host by that name. (#4.1.2)\n"); zerodie(); }
void temp_dnscanon(void) { out("ZCNAME lookup failed temporarily. (#4.4.3)\n"); zerodie(); }
void temp_chdir(void) { out("ZUnable to switch to home directory. (#4.3.0)\n"); zerodie(); }
void temp_control(void) { out("ZUnable to read control files. (#4.3.0)\n"); zerodie(); }
void temp_control_line(const char *file, size_t line)
{
	char n[32];
	snprintf(n, sizeof n, "%zu", line);
	out("ZUnable to read control files. (#4.3.0)\n");
	out(file);
	out(" line ");
	out(n);
	out(" is malformed.\n");
	zerodie();
}
void perm_partialline(void)
{
	out("DSMTP cannot transfer messages with partial final lines. (#5.6.2)\n");
	zerodie();
}
void perm_usage(void) { out("DI (qmail-remote) was invoked improperly. (#5.3.5)\n"); zerodie(); }
void perm_dns(const char *host)
{
	out("DSorry, I couldn't find any host named ");
	outsafe(host);
	out(". (#5.1.2)\n");
	zerodie();
}
void perm_nomx(void)
{
	out("DSorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n");
	zerodie();
}
void perm_ambigmx(void)
{
	out("DSorry. Although I'm listed as a best-preference MX or A for that host,\n"
	    "it isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n");
	zerodie();
}

/* Notes: the TLS summary and fallbacks, one line each, after the remote text. */
static char notes[4096];

/* safe_copy copies |src| with bytes outside 32..126 as '?'. */
void safe_copy(char *dst, size_t n, const char *src)
{
	size_t i = 0;
	if (!n)
		return;
	for (; src && *src && i + 1 < n; src++)
		dst[i++] = (unsigned char)*src < 32 || (unsigned char)*src > 126 ? '?' : *src;
	dst[i] = 0;
}

void note_add(const char *fmt, ...)
{
	char line[1024], safe[1024];
	size_t l = strlen(notes);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	safe_copy(safe, sizeof safe, line);
	snprintf(notes + l, sizeof notes - l, "%s\n", safe);
}

void note_out(void) { out(notes); }

void temp_noconn(void)
{
	out("ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n");
	note_out();
	zerodie();
}

/* ------------------------------------------------------------ the connection */

char partner[64];
int flagcritical;
char smtptext[HUGESMTPTEXT + 1];
size_t smtptext_len;

void dropped(struct conn *c)
{
	(void)c;
	out("ZConnected to ");
	out(partner);
	out(" but connection died. ");
	if (flagcritical)
		out("Possible duplicate! ");
	out("(#4.4.2)\n");
	note_out();
	zerodie();
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Plaintext: wait up to |ms| for |ev| on the socket. */
static int wait_fd(int fd, short ev, long long ms)
{
	struct pollfd p = { fd, ev, 0 };
	int r;
	if (ms < 0)
		ms = 0;
	do
		r = poll(&p, 1, (int)ms);
	while (r < 0 && errno == EINTR);
	return r;
}

static ssize_t raw_read(struct conn *c, char *b, size_t n, int secs)
{
	ssize_t r;
	if (c->tls)
		return mailtls_timeoutread(secs, c->tls, b, n);
	if (wait_fd(c->fd, POLLIN, (long long)secs * 1000) <= 0)
		return -1;
	do
		r = read(c->fd, b, n);
	while (r < 0 && errno == EINTR);
	return r;
}

static void raw_write(struct conn *c, const char *b, size_t n)
{
	long long deadline = now_ms() + (long long)c->timeout * 1000;
	if (c->tls) {
		if (mailtls_timeoutwrite(c->timeout, c->tls, b, n) != (ssize_t)n)
			dropped(c);
		return;
	}
	while (n) {
		ssize_t w;
		if (wait_fd(c->fd, POLLOUT, deadline - now_ms()) <= 0)
			dropped(c);
		w = send(c->fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w <= 0)
			dropped(c);
		b += w;
		n -= (size_t)w;
	}
}

void conn_flush(struct conn *c)
{
	if (c->olen)
		raw_write(c, c->obuf, c->olen);
	c->olen = 0;
}

void conn_put(struct conn *c, const char *s, size_t n)
{
	while (n) {
		size_t k = sizeof c->obuf - c->olen;
		if (!k) {
			conn_flush(c);
			continue;
		}
		if (k > n)
			k = n;
		memcpy(c->obuf + c->olen, s, k);
		c->olen += k;
		s += k;
		n -= k;
	}
}

void conn_puts(struct conn *c, const char *s) { conn_put(c, s, strlen(s)); }

/* One byte of the reply; the whole reply must come within the timeout. */
static long long reply_deadline;

static char get(struct conn *c)
{
	char ch;
	if (c->ipos == c->ilen) {
		long long left = reply_deadline - now_ms();
		ssize_t r;
		if (left <= 0)
			dropped(c);
		r = raw_read(c, c->ibuf, sizeof c->ibuf, (int)((left + 999) / 1000));
		if (r <= 0)
			dropped(c);
		c->ipos = 0;
		c->ilen = (size_t)r;
	}
	ch = c->ibuf[c->ipos++];
	if (ch != '\r' && smtptext_len < HUGESMTPTEXT)
		smtptext[smtptext_len++] = ch;
	return ch;
}

/* netqmail's smtpcode() (replyparse.c): the code of the first line, the
 * reply read to its end; endless replies are given up on like a dead
 * connection. */
unsigned long smtpcode(struct conn *c)
{
	struct reply_parse p;
	int r;
	smtptext_len = 0;
	reply_deadline = now_ms() + (long long)c->timeout * 1000;
	reply_start(&p);
	while ((r = reply_byte(&p, get(c))) == 0)
		;
	if (r < 0)
		dropped(c);
	return p.code;
}

void smtptext_set(const char *s)
{
	size_t n = strlen(s);
	if (n > HUGESMTPTEXT)
		n = HUGESMTPTEXT;
	memcpy(smtptext, s, n);
	smtptext_len = n;
	if (n && smtptext[n - 1] != '\n' && n < HUGESMTPTEXT)
		smtptext[smtptext_len++] = '\n';
}

void outsmtptext(void)
{
	size_t i;
	if (!smtptext_len)
		return;
	out("Remote host said: ");
	for (i = 0; i < smtptext_len; i++)
		if (!smtptext[i])
			smtptext[i] = '?';
	outn(smtptext, smtptext_len);
	smtptext_len = 0;
}

/* QUIT without waiting for the answer, then close. */
void conn_quit_close(struct conn *c)
{
	c->olen = 0;
	if (c->tls) {
		if (mailtls_timeoutwrite(c->timeout, c->tls, "QUIT\r\n", 6) < 0) {
			/* going anyway */
		}
		if (mailtls_close_timeout(c->tls, 2) < 0) {
			/* going anyway */
		}
		mailtls_free(c->tls);
		c->tls = NULL;
	} else {
		(void)send(c->fd, "QUIT\r\n", 6, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	close(c->fd);
	c->fd = -1;
}

void quit(struct conn *c, const char *prepend, const char *append)
{
	if (c->tls) {
		if (mailtls_timeoutwrite(c->timeout, c->tls, "QUIT\r\n", 6) < 0) {
			/* going anyway */
		}
		if (mailtls_close_timeout(c->tls, 1) < 0) {
			/* going anyway */
		}
	} else {
		(void)send(c->fd, "QUIT\r\n", 6, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	out(prepend);
	out(partner);
	out(append);
	out(".\n");
	outsmtptext();
	note_out();
	zerodie();
}

/* The connection: non-blocking connect within |secs|, then blocking. */
int tcp_connect(const struct ip *ip, unsigned port, int secs)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, fl, e = 0, one = 1;
	socklen_t el = sizeof e;
	memset(&ss, 0, sizeof ss);
	if (ip->family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((unsigned short)port);
		memcpy(&s4->sin_addr, ip->a, 4);
		len = sizeof *s4;
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((unsigned short)port);
		memcpy(&s6->sin6_addr, ip->a, 16);
		len = sizeof *s6;
	}
	fd = socket(ip->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		temp_oserr();
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		if (errno != EINPROGRESS)
			goto fail;
		e = wait_fd(fd, POLLOUT, (long long)secs * 1000);
		if (e <= 0) {
			e = e ? errno : ETIMEDOUT;
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
			e = errno;
		if (e)
			goto fail;
	}
	fcntl(fd, F_SETFL, fl);
	/* each write is a whole command or TLS flight: Nagle would hold the
	 * second of two (a resumed handshake's Finished, then EHLO) for the
	 * peer's delayed ACK, some 40 ms a delivery */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
fail:
	if (!e)
		e = errno;
	close(fd);
	errno = e;
	return -1;
}
