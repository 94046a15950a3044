/* mtasts.c -- MTA-STS (RFC 8461): the TXT record, the policy, MX matching,
 * the HTTP/1.1 response, and the fetch.  See mtasts.h.
 * ISC license: see LICENSE. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cachefile.h"
#include "mailtls.h"
#include "mtasts.h"

static int is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* The value of a "name: value" line whose ':' is at |colon|, blanks
 * around it trimmed, into *v..*ve; 0 when it holds a control byte. */
static int field_value(const char *colon, const char *eol, const char **v, const char **ve)
{
	const char *a = colon + 1, *b = eol;
	while (a < b && is_wsp(*a))
		a++;
	while (b > a && is_wsp(b[-1]))
		b--;
	for (const char *q = a; q < b; q++)
		if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
			return 0;
	*v = a;
	*ve = b;
	return 1;
}

/* ---- TXT ---- */

/* sts-ext-name: (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / "."). */
static int ext_name_ok(const char *p, size_t n)
{
	if (n < 1 || n > 32 || !(is_alpha(p[0]) || is_digit(p[0])))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!(is_alpha(p[i]) || is_digit(p[i]) || p[i] == '_' || p[i] == '-' || p[i] == '.'))
			return 0;
	return 1;
}

/* An STS id: 1 to 32 letters and digits (RFC 8461 section 3.1). */
static int id_ok(const char *id, size_t n)
{
	if (n < 1 || n > MTASTS_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_alpha(id[i]) && !is_digit(id[i]))
			return 0;
	return 1;
}

int mtasts_txt_parse(const char *txt, size_t len, char id[MTASTS_ID_MAX + 1])
{
	const char *p = txt, *end = txt + len;
	int have_id = 0;
	if (len < 7 || memcmp(txt, "v=STSv1", 7))
		return 0;
	p += 7;
	if (p < end && !is_wsp(*p) && *p != ';')
		return 0;   /* "v=STSv10...": another version */
	for (;;) {
		const char *name, *eq, *val;
		while (p < end && is_wsp(*p))
			p++;
		if (p == end)
			break;
		if (*p++ != ';')
			return -1;
		while (p < end && is_wsp(*p))
			p++;
		if (p == end)
			break;   /* a final ';' */
		name = p;
		while (p < end && *p != '=' && *p != ';' && !is_wsp(*p))
			p++;
		if (p == end || *p != '=')
			return -1;
		eq = p++;
		val = p;
		while (p < end && *p >= 0x21 && *p <= 0x7e && *p != ';' && *p != '=')
			p++;
		if (p == val || (p < end && !is_wsp(*p) && *p != ';'))
			return -1;
		if (eq - name == 2 && !memcmp(name, "id", 2)) {
			if (have_id || !id_ok(val, (size_t)(p - val)))
				return -1;
			memcpy(id, val, (size_t)(p - val));
			id[p - val] = 0;
			have_id = 1;
		} else if (!ext_name_ok(name, (size_t)(eq - name)) || (eq - name == 1 && *name == 'v')) {
			return -1;
		}
	}
	return have_id ? 1 : -1;
}

/* ---- Policy ---- */

/* A Domain of RFC 5321 (labels of letters, digits and inner hyphens, at
 * most 63 bytes each, 253 in all), lowercased into |out| without a final
 * dot.  |wild| allows "*." as the whole first label. */
static int domain_ok(const char *p, size_t n, int wild, char out[254])
{
	size_t o = 0, label = 0;
	if (n && p[n - 1] == '.')
		n--;
	if (wild && n >= 2 && p[0] == '*' && p[1] == '.') {
		out[o++] = '*';
		out[o++] = '.';
		p += 2;
		n -= 2;
	}
	if (n == 0 || n + o > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)p[i];
		if (c == '.') {
			if (label == 0 || p[i - 1] == '-')
				return 0;
			label = 0;
		} else if (is_alpha(c) || is_digit(c) || (c == '-' && label > 0)) {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
		out[o++] = (char)lower(c);
	}
	if (label == 0 || p[n - 1] == '-')
		return 0;
	out[o] = 0;
	return 1;
}

static int word_is(const char *p, size_t n, const char *w)
{
	return strlen(w) == n && !memcmp(p, w, n);
}

int mtasts_policy_parse(const char *text, size_t len, struct mtasts_policy *out, const char **why)
{
	const char *p = text, *end = text + len;
	int have_version = 0, have_mode = 0, have_age = 0;
	*why = NULL;
	memset(out, 0, sizeof *out);
	if (len > MTASTS_POLICY_MAX) {
		*why = "the policy is larger than 64 KiB";
		return -1;
	}
	if (memchr(text, 0, len)) {
		*why = "the policy holds a NUL byte";
		return -1;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end, *key, *colon, *v, *ve;
		if (eol > p && eol[-1] == '\r' && nl)
			eol--;
		if (eol - p > 1000) {
			*why = "a policy line is longer than 1000 bytes";
			return -1;
		}
		key = p;
		p = nl ? nl + 1 : end;
		while (key < eol && is_wsp(*key))
			key++;
		if (key == eol)
			continue;   /* a blank line */
		colon = memchr(key, ':', (size_t)(eol - key));
		if (!colon || !ext_name_ok(key, (size_t)(colon - key))) {
			*why = "a policy line is not \"key: value\"";
			return -1;
		}
		if (!field_value(colon, eol, &v, &ve)) {
			*why = "a policy value holds a control byte";
			return -1;
		}
		if (word_is(key, (size_t)(colon - key), "version")) {
			if (have_version++)
				continue;
			if (!word_is(v, (size_t)(ve - v), "STSv1")) {
				*why = "the policy's version is not STSv1";
				return -1;
			}
		} else if (word_is(key, (size_t)(colon - key), "mode")) {
			if (have_mode++)
				continue;
			if (word_is(v, (size_t)(ve - v), "enforce"))
				out->mode = MTASTS_MODE_ENFORCE;
			else if (word_is(v, (size_t)(ve - v), "testing"))
				out->mode = MTASTS_MODE_TESTING;
			else if (word_is(v, (size_t)(ve - v), "none"))
				out->mode = MTASTS_MODE_NONE;
			else {
				*why = "the policy's mode is not enforce, testing or none";
				return -1;
			}
		} else if (word_is(key, (size_t)(colon - key), "max_age")) {
			unsigned long long a = 0;
			if (have_age++)
				continue;
			if (ve == v || ve - v > 10) {
				*why = "the policy's max_age is not 1 to 10 digits";
				return -1;
			}
			for (const char *q = v; q < ve; q++) {
				if (!is_digit(*q)) {
					*why = "the policy's max_age is not 1 to 10 digits";
					return -1;
				}
				a = a * 10 + (unsigned)(*q - '0');
			}
			out->max_age = a > MTASTS_MAX_AGE_MAX ? MTASTS_MAX_AGE_MAX : (unsigned long)a;
		} else if (word_is(key, (size_t)(colon - key), "mx")) {
			if (out->nmx == MTASTS_MX_MAX) {
				*why = "the policy has too many mx patterns";
				return -1;
			}
			if (!domain_ok(v, (size_t)(ve - v), 1, out->mx[out->nmx])) {
				*why = "a policy mx pattern is not a host name (wildcard only as the leftmost label)";
				return -1;
			}
			out->nmx++;
		}
	}
	if (!have_version || !have_mode || !have_age) {
		*why = !have_version ? "the policy has no version" : !have_mode ? "the policy has no mode" :
		    "the policy has no max_age";
		return -1;
	}
	if (out->nmx == 0 && out->mode != MTASTS_MODE_NONE) {
		*why = "the policy has no mx pattern";
		return -1;
	}
	return 0;
}

int mtasts_mx_match(const struct mtasts_policy *p, const char *host)
{
	size_t n = strlen(host);
	char h[254];
	if (n && host[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++)
		h[i] = (char)lower((unsigned char)host[i]);
	h[n] = 0;
	for (size_t i = 0; i < p->nmx; i++) {
		const char *pat = p->mx[i];
		if (pat[0] == '*') {
			const char *dot = strchr(h, '.');
			if (dot && dot != h && !strcmp(dot, pat + 1))
				return 1;
		} else if (!strcmp(pat, h)) {
			return 1;
		}
	}
	return 0;
}

/* ---- HTTP ---- */

static const char too_large[] = "the HTTP body is larger than allowed";

/* The next line of |p|..|end|: its end (before CR LF or LF) in *eol and
 * the start of the next line returned; NULL when no LF is there yet. */
static const char *next_line(const char *p, const char *end, const char **eol)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	if (!nl)
		return NULL;
	*eol = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
	return nl + 1;
}

static int tchar(int c)
{
	return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int name_is(const char *p, size_t n, const char *w)
{
	if (strlen(w) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)p[i]) != w[i])
			return 0;
	return 1;
}

int mtasts_http_parse(const char *buf, size_t len, int eof, char *body, size_t cap,
    struct mtasts_http *out, const char **why)
{
	const char *p = buf, *end = buf + len, *eol, *next;
	int chunked = 0, have_cl = 0;
	unsigned long long cl = 0;
	memset(out, 0, sizeof *out);
	*why = NULL;
#define FAIL(msg) do { *why = (msg); return -1; } while (0)
#define MORE(msg) do { if (eof) FAIL(msg); return 0; } while (0)

	/* The status line. */
	next = next_line(p, end, &eol);
	if (!next) {
		if (len > MTASTS_HTTP_HEAD_MAX)
			FAIL("the HTTP header is too long");
		MORE("the connection ended inside the HTTP status line");
	}
	/* RFC 9112 wants the space before an empty reason; some servers omit it. */
	if (eol - p < 12 || (memcmp(p, "HTTP/1.1 ", 9) && memcmp(p, "HTTP/1.0 ", 9)) ||
	    !is_digit(p[9]) || !is_digit(p[10]) || !is_digit(p[11]) || (eol - p > 12 && p[12] != ' ') ||
	    p[9] == '0')
		FAIL("not an HTTP/1.x status line");
	out->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (out->status < 200)
		FAIL("an interim (1xx) HTTP response");
	for (const char *q = p + 13; q < eol; q++)
		if ((unsigned char)*q < 0x20 && *q != '\t')
			FAIL("a control byte in the HTTP status line");
	p = next;

	/* Header fields. */
	for (;;) {
		const char *colon, *v, *ve;
		next = next_line(p, end, &eol);
		if (!next) {
			if (len > MTASTS_HTTP_HEAD_MAX)
				FAIL("the HTTP header is too long");
			MORE("the connection ended inside the HTTP header");
		}
		if ((size_t)(next - buf) > MTASTS_HTTP_HEAD_MAX)
			FAIL("the HTTP header is too long");
		if (eol == p) {
			p = next;
			break;
		}
		if (is_wsp(*p))
			FAIL("a folded HTTP header line");
		colon = p;
		while (colon < eol && tchar((unsigned char)*colon))
			colon++;
		if (colon == p || colon == eol || *colon != ':')
			FAIL("a malformed HTTP header field");
		if (!field_value(colon, eol, &v, &ve))
			FAIL("a control byte in an HTTP header field");
		if (name_is(p, (size_t)(colon - p), "content-length")) {
			unsigned long long n = 0;
			if (ve == v || ve - v > 15)
				FAIL("a bad Content-Length");
			for (const char *q = v; q < ve; q++) {
				if (!is_digit(*q))
					FAIL("a bad Content-Length");
				n = n * 10 + (unsigned)(*q - '0');
			}
			if (have_cl && n != cl)
				FAIL("Content-Length values that differ");
			cl = n;
			have_cl = 1;
		} else if (name_is(p, (size_t)(colon - p), "transfer-encoding")) {
			if (!name_is(v, (size_t)(ve - v), "chunked") || chunked)
				FAIL("a transfer coding other than chunked");
			chunked = 1;
		} else if (name_is(p, (size_t)(colon - p), "content-type")) {
			size_t n = 0;
			const char *q = v;
			while (q < ve && *q != ';' && !is_wsp(*q) && n < sizeof out->content_type - 1)
				out->content_type[n++] = (char)lower((unsigned char)*q++);
			out->content_type[n] = 0;
		}
		p = next;
	}
	if (chunked && have_cl)
		FAIL("both Transfer-Encoding and Content-Length");

	/* The body. */
	if (have_cl) {
		if (cl > cap)
			FAIL(too_large);
		if ((size_t)(end - p) < cl)
			MORE("the connection ended inside the HTTP body");
		memcpy(body, p, (size_t)cl);
		out->body_len = (size_t)cl;
		out->consumed = (size_t)(p - buf) + (size_t)cl;
		return 1;
	}
	if (!chunked) {
		if ((size_t)(end - p) > cap)
			FAIL(too_large);
		if (!eof)
			return 0;
		memcpy(body, p, (size_t)(end - p));
		out->body_len = (size_t)(end - p);
		out->consumed = len;
		return 1;
	}
	for (;;) {
		unsigned long long n = 0;
		const char *q;
		int digits = 0;
		next = next_line(p, end, &eol);
		if (!next)
			MORE("the connection ended inside a chunk size");
		for (q = p; q < eol; q++) {
			int c = lower((unsigned char)*q), d = is_digit(c) ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
			if (d < 0)
				break;
			if (++digits > 8)
				FAIL("a chunk size too large");
			n = n * 16 + (unsigned)d;
		}
		if (!digits || (q < eol && *q != ';' && !is_wsp(*q)))
			FAIL("a malformed chunk size");
		p = next;
		if (n == 0)
			break;
		if (n > cap - out->body_len)
			FAIL(too_large);
		if ((size_t)(end - p) < n + 1)
			MORE("the connection ended inside a chunk");
		memcpy(body + out->body_len, p, (size_t)n);
		out->body_len += (size_t)n;
		p += n;
		if (*p == '\r') {
			if (end - p < 2)
				MORE("the connection ended inside a chunk");
			p++;
		}
		if (*p++ != '\n')
			FAIL("a chunk not followed by a line end");
	}
	/* Trailer fields, skipped, up to the empty line. */
	for (;;) {
		next = next_line(p, end, &eol);
		if (!next)
			MORE("the connection ended inside the HTTP trailer");
		if ((size_t)(next - buf) > MTASTS_HTTP_HEAD_MAX + cap + 4096 && eol != p)
			FAIL("the HTTP trailer is too long");
		if (eol == p) {
			out->consumed = (size_t)(next - buf);
			return 1;
		}
		p = next;
	}
#undef FAIL
#undef MORE
}

/* ---- Fetch ---- */

static int left_ms(const struct timespec *dl)
{
	struct timespec now;
	long long ms;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(dl->tv_sec - now.tv_sec) * 1000 + (dl->tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : ms > 600000 ? 600000 : (int)ms;
}

/* The library's deadlines are whole seconds: rounded up, so a fetch never
 * gives up before its deadline (at most a second after it). */
static int left_secs(const struct timespec *dl)
{
	return (left_ms(dl) + 999) / 1000;
}

/* A connected blocking socket to one of |host|'s addresses, or -1 with
 * the reason in |err|. */
static int dial(const char *host, int numeric, unsigned port, const struct timespec *dl, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	char ports[12];
	int fd = -1, rc, saved = ETIMEDOUT;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = numeric ? AI_NUMERICHOST : AI_ADDRCONFIG;
	snprintf(ports, sizeof ports, "%u", port);
	if ((rc = getaddrinfo(host, ports, &hints, &res)) != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
		return -1;
	}
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		struct pollfd pfd;
		socklen_t sl = sizeof saved;
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
			saved = errno;
			goto next;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		do
			rc = poll(&pfd, 1, left_ms(dl));
		while (rc < 0 && errno == EINTR);
		if (rc <= 0) {
			saved = rc == 0 ? ETIMEDOUT : errno;
			goto next;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &saved, &sl) < 0 || saved != 0)
			goto next;
		/* Our own descriptor: blocking again, so the deadline calls wait in poll. */
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		freeaddrinfo(res);
		return fd;
next:
		close(fd);
		fd = -1;
		if (left_ms(dl) == 0)
			break;
	}
	freeaddrinfo(res);
	snprintf(err, errlen, "cannot connect to %s port %u: %s", host, port, strerror(saved));
	return -1;
}

int mtasts_fetch(struct mailtls_config *cfg, const char *domain, const struct mtasts_fetch_opts *opts,
    struct mtasts_policy *out, char *text, size_t *text_len, char *err, size_t errlen)
{
	static const struct mtasts_fetch_opts defaults = { NULL, 0, 0 };
	const size_t bufmax = MTASTS_HTTP_HEAD_MAX + 2 * MTASTS_POLICY_MAX;
	char host[300], req[512], dom[254], *buf = NULL, *body = NULL;
	struct mailtls *s = NULL;
	struct mtasts_http h;
	struct timespec dl;
	const char *why;
	size_t got = 0;
	int fd = -1, rc = MTASTS_FETCH_ERROR, eof = 0, n;
	if (!opts)
		opts = &defaults;
	err[0] = 0;
	if (!domain || !domain_ok(domain, strlen(domain), 0, dom)) {
		snprintf(err, errlen, "not a domain name");
		return MTASTS_FETCH_ERROR;
	}
	snprintf(host, sizeof host, "mta-sts.%s", dom);
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += opts->secs > 0 ? opts->secs : 60;
	fd = dial(opts->addr ? opts->addr : host, opts->addr != NULL, opts->port ? opts->port : 443, &dl, err, errlen);
	if (fd < 0)
		return MTASTS_FETCH_ERROR;
	s = mailtls_client(cfg, fd, fd, host);
	buf = malloc(bufmax);
	body = malloc(MTASTS_POLICY_MAX + 1);
	if (!s || !buf || !body) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (mailtls_handshake_timeout(s, left_secs(&dl)) < 0) {
		rc = mailtls_errcode_is_verify(mailtls_errcode(s)) ? MTASTS_WEBPKI_INVALID : MTASTS_FETCH_ERROR;
		snprintf(err, errlen, "%s: %s", host, mailtls_error(s));
		goto out;
	}
	if (!mailtls_peer_verified(s)) {
		rc = MTASTS_WEBPKI_INVALID;
		snprintf(err, errlen, "%s: the certificate was not verified", host);
		goto out;
	}
	n = snprintf(req, sizeof req, "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: %s\r\n"
	    "User-Agent: qmail-remote (libmailtls)\r\nAccept: text/plain\r\nConnection: close\r\n\r\n", host);
	if (mailtls_timeoutwrite(left_secs(&dl), s, req, (size_t)n) < 0) {
		snprintf(err, errlen, "%s: %s", host, mailtls_error(s));
		goto out;
	}
	for (;;) {
		int r = mtasts_http_parse(buf, got, eof, body, MTASTS_POLICY_MAX, &h, &why);
		ssize_t k;
		if (r < 0) {
			rc = why == too_large ? MTASTS_POLICY_INVALID : MTASTS_FETCH_ERROR;
			snprintf(err, errlen, "%s: %s", host, why);
			goto out;
		}
		if (r == 1)
			break;
		if (got == bufmax) {
			rc = MTASTS_POLICY_INVALID;
			snprintf(err, errlen, "%s: the HTTP response is too large", host);
			goto out;
		}
		k = mailtls_timeoutread(left_secs(&dl), s, buf + got, bufmax - got);
		if (k < 0) {
			/* An end without close_notify may cut an undelimited body short:
			 * only a body with its own end survives it. */
			snprintf(err, errlen, "%s: %s", host, mailtls_error(s));
			goto out;
		}
		if (k == 0)
			eof = 1;
		got += (size_t)k;
	}
	if (h.status != 200) {
		snprintf(err, errlen, "%s: HTTP status %d%s", host, h.status,
		    h.status >= 300 && h.status < 400 ? " (redirects are not followed)" : "");
		goto out;
	}
	if (strcmp(h.content_type, "text/plain")) {
		rc = MTASTS_POLICY_INVALID;
		snprintf(err, errlen, "%s: the policy's media type is \"%s\", not text/plain", host, h.content_type);
		goto out;
	}
	if (mtasts_policy_parse(body, h.body_len, out, &why) < 0) {
		rc = MTASTS_POLICY_INVALID;
		snprintf(err, errlen, "%s: %s", host, why);
		goto out;
	}
	if (text) {
		memcpy(text, body, h.body_len);
		*text_len = h.body_len;
	}
	rc = MTASTS_OK;
out:
	if (s && mailtls_close_timeout(s, 0) < 0) {
		/* the peer may be gone: nothing more to do */
	}
	mailtls_free(s);
	close(fd);
	free(buf);
	free(body);
	return rc;
}

/* ---- The policy cache's file ---- */

static const char cache_magic[] = "qmail-remote mtastscache 1\n";

/* |d| (|n| bytes) is a host name as domain_ok writes it (lowercase, no
 * final dot, no wildcard). */
static int key_ok(const char *d, size_t n)
{
	char norm[254];
	return n > 0 && n <= 253 && d[n - 1] != '.' && domain_ok(d, n, 0, norm) && !memcmp(norm, d, n);
}

size_t mtasts_cache_format(char *out, size_t outlen, const char *domain, const char *id, long long fetched,
    long long expires, const char *text, size_t len)
{
	int h;
	if (!key_ok(domain, strlen(domain)) || !id_ok(id, strlen(id)) || !len || len > MTASTS_POLICY_MAX ||
	    fetched <= 0 || expires <= fetched || expires - fetched > MTASTS_MAX_AGE_MAX)
		return 0;
	h = snprintf(out, outlen, "%skey %s\nid %s\nfetched %lld\nexpires %lld\nsize %zu\n\n", cache_magic, domain,
	    id, fetched, expires, len);
	if (h < 0 || (size_t)h >= outlen || outlen - (size_t)h < len)
		return 0;
	memcpy(out + h, text, len);
	return (size_t)h + len;
}

int mtasts_cache_parse(const char *buf, size_t len, const char *domain, long long now, struct mtasts_cached *out)
{
	const char *p = buf, *end = buf + len, *v, *key;
	size_t vl, kl, ml = sizeof cache_magic - 1;
	long long size;
	if (len < ml || memcmp(buf, cache_magic, ml))
		return -1;
	p += ml;
	if (!(key = cache_field(&p, end, "key", &kl)) || !key_ok(key, kl))
		return -1;
	if (!(v = cache_field(&p, end, "id", &vl)) || !id_ok(v, vl))
		return -1;
	memcpy(out->id, v, vl);
	out->id[vl] = 0;
	if (!(v = cache_field(&p, end, "fetched", &vl)) || cache_decimal(v, vl, &out->fetched) < 0 ||
	    !(v = cache_field(&p, end, "expires", &vl)) || cache_decimal(v, vl, &out->expires) < 0)
		return -1;
	if (out->fetched <= 0 || out->expires <= out->fetched || out->expires - out->fetched > MTASTS_MAX_AGE_MAX ||
	    out->fetched > now || out->expires <= now)
		return -1;
	if (!(v = cache_field(&p, end, "size", &vl)) || cache_decimal(v, vl, &size) < 0 || size < 1 ||
	    size > MTASTS_POLICY_MAX || p == end || *p != '\n')
		return -1;
	p++;
	if ((size_t)(end - p) != (size_t)size)
		return -1;
	if (kl != strlen(domain) || memcmp(key, domain, kl))
		return 1;
	out->text = p;
	out->len = (size_t)size;
	return 0;
}

int mtasts_domain(const char *name, char out[254])
{
	return domain_ok(name, strlen(name), 0, out);
}
