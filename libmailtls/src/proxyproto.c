/* proxyproto.c -- the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2) that a load balancer sends before anything else: a
 * parser over a buffer, and a reader that takes exactly the header from a
 * descriptor.  See mailtls.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

static const unsigned char v2sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };
static const char v1sig[6] = "PROXY ";

/* The shortest header of either version: "PROXY UNKNOWN\r\n" (15 bytes);
 * a v2 header has 16.  Reading this many never passes a header's end. */
#define PP_MIN 15
#define PP_V2_FIXED 16

static int fail(struct mailtls_proxyproto *out, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct mailtls_proxyproto *out, int code, const char *fmt, ...)
{
	va_list ap;
	out->errcode = code;
	va_start(ap, fmt);
	vsnprintf(out->error, sizeof out->error, fmt, ap);
	va_end(ap);
	return -1;
}

/* A decimal port of v1: 0 to 65535, no sign, no leading zero. */
static int v1_port(const char *s, size_t n, unsigned *port)
{
	unsigned long v = 0;
	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = (unsigned)v;
	return 0;
}

/* One address of v1, taken only in the form inet_ntop gives back for it,
 * so no two spellings of one address pass (and none reaches the caller
 * other than as the canonical text). */
static int v1_addr(const char *s, size_t n, int af, char *out, size_t outlen)
{
	char tmp[64];
	unsigned char bin[16];
	if (n == 0 || n >= sizeof tmp)
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = 0;
	if (inet_pton(af, tmp, bin) != 1 || !inet_ntop(af, bin, out, (socklen_t)outlen))
		return -1;
	return strcmp(out, tmp) == 0 ? 0 : -1;
}

/* "PROXY TCP4|TCP6 src dst sport dport\r\n" or "PROXY UNKNOWN...\r\n";
 * |line| holds the whole line, CR LF included. */
static int v1_line(const char *line, size_t len, struct mailtls_proxyproto *out)
{
	const char *f[4];
	size_t fl[4], nf = 0, i, end = len - 2;
	int af;
	if (line[end] != '\r')
		return fail(out, MAILTLS_E_PROTOCOL, "PROXY v1 header: the line does not end in CR LF");
	if (end - 6 >= 7 && !memcmp(line + 6, "UNKNOWN", 7) && (end == 13 || line[13] == ' ')) {
		/* Whatever follows UNKNOWN is to be ignored (proxy-protocol.txt 2.1). */
		out->local = 1;
		return 0;
	}
	if (end - 6 < 5 || (memcmp(line + 6, "TCP4 ", 5) && memcmp(line + 6, "TCP6 ", 5)))
		return fail(out, MAILTLS_E_PROTOCOL, "PROXY v1 header: the protocol is not TCP4, TCP6 or UNKNOWN");
	af = line[9] == '4' ? AF_INET : AF_INET6;
	i = 11;
	while (i <= end && nf < 4) {
		size_t j = i;
		while (j < end && line[j] != ' ')
			j++;
		f[nf] = line + i;
		fl[nf++] = j - i;
		if (j == end) {
			i = j + 1;
			break;
		}
		i = j + 1;
	}
	if (nf != 4 || i != end + 1)
		return fail(out, MAILTLS_E_PROTOCOL, "PROXY v1 header: not four fields separated by single spaces");
	if (v1_addr(f[0], fl[0], af, out->srcip, sizeof out->srcip) < 0 ||
	    v1_addr(f[1], fl[1], af, out->dstip, sizeof out->dstip) < 0)
		return fail(out, MAILTLS_E_PROTOCOL, "PROXY v1 header: an address is not a %s address in its usual form",
		    af == AF_INET ? "TCP4" : "TCP6");
	if (v1_port(f[2], fl[2], &out->srcport) < 0 || v1_port(f[3], fl[3], &out->dstport) < 0)
		return fail(out, MAILTLS_E_PROTOCOL, "PROXY v1 header: a port is not a number from 0 to 65535");
	out->v6 = af == AF_INET6;
	return 0;
}

static int parse_v1(const unsigned char *b, size_t len, struct mailtls_proxyproto *out, size_t *need)
{
	size_t max = len < MAILTLS_PROXYPROTO_V1_MAX ? len : MAILTLS_PROXYPROTO_V1_MAX;
	const unsigned char *lf = memchr(b, '\n', max);
	size_t end = lf ? (size_t)(lf - b) : max;
	for (size_t i = 6; i < end; i++)
		if (b[i] < 0x20 && b[i] != '\r')
			return fail(out, MAILTLS_E_PROTOCOL, "PROXY v1 header: a control byte in the line");
		else if (b[i] > 0x7e)
			return fail(out, MAILTLS_E_PROTOCOL, "PROXY v1 header: a byte that is not ASCII in the line");
	if (!lf) {
		if (len >= MAILTLS_PROXYPROTO_V1_MAX)
			return fail(out, MAILTLS_E_PROTOCOL, "PROXY v1 header: no line end within %d bytes",
			    MAILTLS_PROXYPROTO_V1_MAX);
		*need = len < PP_MIN ? PP_MIN - len : 1;
		return 0;
	}
	out->version = 1;
	if (lf - b < PP_MIN - 1)
		return fail(out, MAILTLS_E_PROTOCOL, "PROXY v1 header: the line is too short");
	if (v1_line((const char *)b, (size_t)(lf - b) + 1, out) < 0)
		return -1;
	return (int)(lf - b) + 1;
}

static int parse_v2(const unsigned char *b, size_t len, struct mailtls_proxyproto *out, size_t *need)
{
	size_t body, addrlen;
	int cmd, fam;
	if (len < PP_V2_FIXED) {
		*need = PP_V2_FIXED - len;
		return 0;
	}
	if ((b[12] >> 4) != 2)
		return fail(out, MAILTLS_E_PROTOCOL, "PROXY v2 header: version %d", b[12] >> 4);
	cmd = b[12] & 0x0f;
	if (cmd > 1)
		return fail(out, MAILTLS_E_PROTOCOL, "PROXY v2 header: unknown command %d", cmd);
	fam = b[13];
	body = (size_t)b[14] << 8 | b[15];
	if (len < PP_V2_FIXED + body) {
		*need = PP_V2_FIXED + body - len;
		return 0;
	}
	out->version = 2;
	addrlen = fam == 0x11 ? 12 : fam == 0x21 ? 36 : 0;
	if (cmd == 0 || fam == 0x00) {
		/* LOCAL (the balancer's own connection, a health check) or PROXY
		 * over an unspecified transport: the connection's own endpoints
		 * stand (2.2); whatever address block there is, is skipped. */
		out->local = 1;
		return (int)(PP_V2_FIXED + body);
	}
	if (!addrlen)
		return fail(out, MAILTLS_E_PROTOCOL, "PROXY v2 header: transport and family 0x%02x is not TCP over IPv4 or IPv6",
		    fam);
	if (body < addrlen)
		return fail(out, MAILTLS_E_PROTOCOL, "PROXY v2 header: %zu bytes cannot hold the addresses", body);
	b += PP_V2_FIXED;
	if (fam == 0x11) {
		inet_ntop(AF_INET, b, out->srcip, sizeof out->srcip);
		inet_ntop(AF_INET, b + 4, out->dstip, sizeof out->dstip);
		b += 8;
	} else {
		inet_ntop(AF_INET6, b, out->srcip, sizeof out->srcip);
		inet_ntop(AF_INET6, b + 16, out->dstip, sizeof out->dstip);
		out->v6 = 1;
		b += 32;
	}
	out->srcport = (unsigned)b[0] << 8 | b[1];
	out->dstport = (unsigned)b[2] << 8 | b[3];
	/* The TLVs after the addresses (ALPN, authority, CRC, SSL...) are
	 * skipped: nothing in them is used. */
	return (int)(PP_V2_FIXED + body);
}

int mailtls_proxyproto_parse(const void *buf, size_t len, struct mailtls_proxyproto *out, size_t *need)
{
	const unsigned char *b = buf;
	size_t n;
	if (!out || !need || (!buf && len)) {
		errno = EINVAL;
		return -1;
	}
	memset(out, 0, sizeof *out);
	*need = 0;
	/* The bytes so far must begin one of the two signatures. */
	n = len < sizeof v2sig ? len : sizeof v2sig;
	if (n && b[0] == v2sig[0]) {
		if (memcmp(b, v2sig, n))
			return fail(out, MAILTLS_E_PROTOCOL, "no PROXY header (the v2 signature is wrong)");
		if (len < sizeof v2sig) {
			*need = PP_V2_FIXED - len;
			return 0;
		}
		return parse_v2(b, len, out, need);
	}
	n = len < sizeof v1sig ? len : sizeof v1sig;
	if (n && memcmp(b, v1sig, n))
		return fail(out, MAILTLS_E_PROTOCOL, "no PROXY header");
	if (len < sizeof v1sig) {
		*need = PP_MIN - len;
		return 0;
	}
	return parse_v1(b, len, out, need);
}

/* How many bytes the reader may take now: what the parser says certainly
 * belongs to the header, and on a socket, for v1, everything already
 * received up to the line's end (seen with MSG_PEEK), so a v1 line costs
 * one or two reads rather than one per byte. */
static size_t take_now(int fd, int sock, const unsigned char *have, size_t len, size_t need)
{
	unsigned char peek[MAILTLS_PROXYPROTO_V1_MAX];
	ssize_t n;
	const unsigned char *lf;
	if (!sock || len < sizeof v1sig || have[0] != 'P' || len >= sizeof peek)
		return need;
	do
		n = recv(fd, peek, sizeof peek - len, MSG_PEEK | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return need;
	lf = memchr(peek, '\n', (size_t)n);
	n = lf ? lf - peek + 1 : n;
	return (size_t)n > need ? (size_t)n : need;
}

ssize_t mailtls_proxyproto_read(int fd, int secs, struct mailtls_proxyproto *out)
{
	unsigned char small[MAILTLS_PROXYPROTO_V1_MAX], *buf = small, *big = NULL;
	size_t len = 0, size = sizeof small, need;
	struct timespec dl;
	int sock, r;
	if (!out || fd < 0) {
		errno = EINVAL;
		if (out)
			fail(out, MAILTLS_E_USAGE, "no descriptor or no result");
		return -1;
	}
	sock = mt_is_socket(fd);
	mt_deadline(&dl, secs);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		size_t want;
		ssize_t got;
		r = mailtls_proxyproto_parse(buf, len, out, &need);
		if (r != 0)
			break;
		if (len + need > size) {
			/* A v2 header with TLVs: up to 16 + 65535 bytes. */
			unsigned char *nb = malloc(len + need);
			if (!nb) {
				r = fail(out, MAILTLS_E_NOMEM, "out of memory for a PROXY header");
				break;
			}
			memcpy(nb, buf, len);
			free(big);
			buf = big = nb;
			size = len + need;
		}
		want = take_now(fd, sock, buf, len, need);
		if (want > size - len)
			want = size - len;
		r = poll(&p, 1, mt_ms_left(&dl));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			r = fail(out, MAILTLS_E_SYSTEM, "waiting for the PROXY header: %s", strerror(errno));
			break;
		}
		if (r == 0) {
			r = fail(out, MAILTLS_E_TIMEOUT, len ? "timed out inside the PROXY header" :
			    "timed out waiting for the PROXY header");
			break;
		}
		got = sock ? recv(fd, buf + len, want, MSG_DONTWAIT) : read(fd, buf + len, want);
		if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (got < 0) {
			r = fail(out, MAILTLS_E_SYSTEM, "reading the PROXY header: %s", strerror(errno));
			break;
		}
		if (got == 0) {
			r = fail(out, MAILTLS_E_PROTOCOL, len ? "the connection ended inside the PROXY header" :
			    "the connection ended before a PROXY header");
			break;
		}
		len += (size_t)got;
	}
	{
		int e = errno;
		free(big);
		errno = e;
	}
	return r;
}
