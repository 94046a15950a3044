/* MTA-STS for qmail-remote (examples/qmail-remote/mtasts.c, compiled in):
 *
 *  - the _mta-sts TXT record: v=STSv1 first, the id, extension fields,
 *    other records ignored, malformed ones refused;
 *  - the policy: CRLF and LF, every field's rules, wildcards only as the
 *    leftmost label, max_age bounds, size and count bounds;
 *  - MX matching: case, trailing dot, one label under a wildcard;
 *  - the HTTP/1.1 response parser: fed byte by byte, Content-Length,
 *    chunked (extensions, trailers), the end of the connection, and what
 *    it refuses;
 *  - the fetch from a loopback HTTPS server run by a thread of this test
 *    with libmailtls as the server (the PKI's *.wild.test.example leaf, so
 *    the client verifies mta-sts.wild.test.example): good policies in each
 *    body framing, the request and SNI sent, a redirect not followed,
 *    other statuses, a wrong media type, a body too large, a bad policy, a
 *    certificate for another name or expired, truncation of an
 *    undelimited body, a server that stalls (1 s deadline), no server. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mtasts.h"
#include "testutil.h"

/* ------------------------------------------------------------------ */
/* TXT                                                                  */
/* ------------------------------------------------------------------ */

static int txt(const char *t, char *id)
{
	return mtasts_txt_parse(t, strlen(t), id);
}

static void test_txt(void)
{
	char id[MTASTS_ID_MAX + 1];
	static const char *const bad[] = {
		"v=STSv1", "v=STSv1;", "v=STSv1; id=", "v=STSv1; id=abc-def", "v=STSv1; id=a b",
		"v=STSv1; id=123456789012345678901234567890123", "v=STSv1; id=1; id=2", "v=STSv1 id=1",
		"v=STSv1; id=1; v=STSv1", "v=STSv1; =x; id=1", "v=STSv1; _x=1; id=1", "v=STSv1; x=; id=1",
		"v=STSv1; x=a=b; id=1", "v=STSv1;; id=1", "v=STSv1; id=1 x", "v=STSv1; id",
	};
	CHECK_EQ(txt("v=STSv1; id=20160831085700Z;", id), 1);
	CHECK_STR(id, "20160831085700Z");
	CHECK_EQ(txt("v=STSv1;id=abc", id), 1);
	CHECK_STR(id, "abc");
	CHECK_EQ(txt("v=STSv1 ;\t id=12345678901234567890123456789012 ; ext.x-y_z=!%:<>~ ;", id), 1);
	CHECK_STR(id, "12345678901234567890123456789012");
	CHECK_EQ(txt("v=STSv1; foo=bar; id=Z9", id), 1);
	CHECK_STR(id, "Z9");
	/* Not an STS record at all: ignored. */
	CHECK_EQ(txt("v=spf1 -all", id), 0);
	CHECK_EQ(txt("v=STSv10; id=1", id), 0);
	CHECK_EQ(txt(" v=STSv1; id=1", id), 0);
	CHECK_EQ(txt("id=1; v=STSv1", id), 0);
	CHECK_EQ(txt("", id), 0);
	CHECK_EQ(txt("V=STSV1; id=1", id), 0);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (txt(bad[i], id) != -1)
			T_FAIL("\"%s\" was not refused", bad[i]);
	/* |len| bounds the record: "id=12" cut to "id=1". */
	CHECK_EQ(mtasts_txt_parse("v=STSv1; id=12", 13, id), 1);
	CHECK_STR(id, "1");
}

/* ------------------------------------------------------------------ */
/* Policy and MX matching                                               */
/* ------------------------------------------------------------------ */

static const char *policy_fails(const char *text)
{
	static struct mtasts_policy p;
	const char *why = NULL;
	if (mtasts_policy_parse(text, strlen(text), &p, &why) != -1)
		T_FAIL("policy accepted: \"%s\"", text);
	CHECK(why && *why);
	return why;
}

static void policy_ok(const char *text, struct mtasts_policy *p)
{
	const char *why = NULL;
	if (mtasts_policy_parse(text, strlen(text), p, &why) != 0)
		T_FAIL("policy refused (%s): \"%s\"", why, text);
}

static void test_policy(void)
{
	struct mtasts_policy p;
	char *big;
	size_t n;
	policy_ok("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
	    "mx: backupmx.example.com\r\nmax_age: 604800\r\n", &p);
	CHECK_EQ(p.mode, MTASTS_MODE_ENFORCE);
	CHECK_EQ(p.max_age, 604800);
	CHECK_EQ(p.nmx, 3);
	CHECK_STR(p.mx[0], "mail.example.com");
	CHECK_STR(p.mx[1], "*.example.net");
	/* LF only, no final line end, blanks, case of patterns, unknown keys. */
	policy_ok("version:STSv1\nmode:   testing \t\nmax_age: 86400\nfuture_key: anything at all\n"
	    "mx: MX1.Example.COM.\nmx: mx2.example.com", &p);
	CHECK_EQ(p.mode, MTASTS_MODE_TESTING);
	CHECK_EQ(p.nmx, 2);
	CHECK_STR(p.mx[0], "mx1.example.com");
	CHECK_STR(p.mx[1], "mx2.example.com");
	/* mode none needs no mx; repeated keys: the first counts. */
	policy_ok("version: STSv1\nmode: none\nmax_age: 0\nmode: enforce\nmax_age: 5\n", &p);
	CHECK_EQ(p.mode, MTASTS_MODE_NONE);
	CHECK_EQ(p.max_age, 0);
	CHECK_EQ(p.nmx, 0);
	/* max_age: at most a year, larger values cut to it. */
	policy_ok("version: STSv1\nmode: none\nmax_age: 9999999999\n", &p);
	CHECK_EQ(p.max_age, MTASTS_MAX_AGE_MAX);
	policy_ok("version: STSv1\nmode: none\nmax_age: 31557600\n", &p);
	CHECK_EQ(p.max_age, 31557600);

	policy_fails("mode: enforce\nmx: a.example\nmax_age: 1\n");
	policy_fails("version: STSv1\nmx: a.example\nmax_age: 1\n");
	policy_fails("version: STSv1\nmode: enforce\nmx: a.example\n");
	policy_fails("version: STSv1\nmode: enforce\nmax_age: 1\n");             /* no mx */
	policy_fails("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n");
	policy_fails("version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n");
	policy_fails("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n");
	policy_fails("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n");
	policy_fails("version: STSv1\nmode: enforce\nmx: a.example\nmax_age:\n");
	policy_fails("version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n");
	policy_fails("version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 1\n");
	policy_fails("version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n");
	policy_fails("version: STSv1\nmode: enforce\nmx: *a.example\nmax_age: 1\n");
	policy_fails("version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n");
	policy_fails("version: STSv1\nmode: enforce\nmx: -a.example\nmax_age: 1\n");
	policy_fails("version: STSv1\nmode: enforce\nmx: a_b.example\nmax_age: 1\n");
	policy_fails("version: STSv1\nmode: enforce\nmx: a.example extra\nmax_age: 1\n");
	policy_fails("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\njunk line\n");
	policy_fails("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\nbad key: x\n");
	policy_fails("version: STSv1\nmode: enforce\nmx: a\001.example\nmax_age: 1\n");
	/* A NUL byte, counted by |len|. */
	{
		const char *why;
		static const char t[] = "version: STSv1\nmode: none\nmax_age: 1\n\0";
		CHECK_EQ(mtasts_policy_parse(t, sizeof t - 1, &p, &why), -1);
	}
	/* Bounds: 32 patterns fit, 33 do not; a line of 1001 bytes; 64 KiB. */
	big = malloc(MTASTS_POLICY_MAX + 2);
	CHECK(big);
	n = (size_t)sprintf(big, "version: STSv1\nmode: enforce\nmax_age: 1\n");
	for (int i = 0; i < MTASTS_MX_MAX; i++)
		n += (size_t)sprintf(big + n, "mx: mx%d.example\n", i);
	policy_ok(big, &p);
	CHECK_EQ(p.nmx, MTASTS_MX_MAX);
	sprintf(big + n, "mx: one-more.example\n");
	policy_fails(big);
	n = (size_t)sprintf(big, "version: STSv1\nmode: none\nmax_age: 1\nx: ");
	memset(big + n, 'a', 1001 - 3);
	big[n + 998] = 0;
	policy_fails(big);
	n = (size_t)sprintf(big, "version: STSv1\nmode: none\nmax_age: 1\n");
	while (n < MTASTS_POLICY_MAX + 1)
		big[n++] = '\n';
	big[n] = 0;
	CHECK(strstr(policy_fails(big), "64 KiB"));
	big[MTASTS_POLICY_MAX] = 0;
	policy_ok(big, &p);
	free(big);
}

static void test_mx_match(void)
{
	struct mtasts_policy p;
	policy_ok("version: STSv1\nmode: enforce\nmax_age: 1\nmx: mail.example.com\nmx: *.example.net\n", &p);
	CHECK_EQ(mtasts_mx_match(&p, "mail.example.com"), 1);
	CHECK_EQ(mtasts_mx_match(&p, "MAIL.Example.COM."), 1);
	CHECK_EQ(mtasts_mx_match(&p, "mx1.example.net"), 1);
	CHECK_EQ(mtasts_mx_match(&p, "MX1.EXAMPLE.NET."), 1);
	CHECK_EQ(mtasts_mx_match(&p, "a.b.example.net"), 0);    /* one label only */
	CHECK_EQ(mtasts_mx_match(&p, "example.net"), 0);
	CHECK_EQ(mtasts_mx_match(&p, ".example.net"), 0);
	CHECK_EQ(mtasts_mx_match(&p, "xmail.example.com"), 0);
	CHECK_EQ(mtasts_mx_match(&p, "mail.example.com.evil"), 0);
	CHECK_EQ(mtasts_mx_match(&p, "example.com"), 0);
	CHECK_EQ(mtasts_mx_match(&p, ""), 0);
	CHECK_EQ(mtasts_mx_match(&p, "."), 0);
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                 */
/* ------------------------------------------------------------------ */

/* http_whole feeds |resp| byte by byte: every proper prefix needs more
 * (and is an error at end of file, unless |eof_body|: the body ends with
 * the connection); the whole gives |body|. */
static void http_whole(const char *resp, const char *body, int eof_body, int status)
{
	size_t len = strlen(resp);
	char out[256];
	struct mtasts_http h;
	const char *why;
	int r;
	for (size_t i = 0; i < len; i++) {
		r = mtasts_http_parse(resp, i, 0, out, sizeof out, &h, &why);
		if (r != 0)
			T_FAIL("prefix of %zu bytes gave %d (%s)", i, r, why ? why : "");
	}
	r = mtasts_http_parse(resp, len, eof_body, out, sizeof out, &h, &why);
	if (r != 1)
		T_FAIL("whole response gave %d (%s)", r, why ? why : "");
	CHECK_EQ(h.status, status);
	CHECK_EQ(h.body_len, strlen(body));
	CHECK(!memcmp(out, body, h.body_len));
	if (!eof_body) {
		CHECK_EQ(h.consumed, len);
		/* Cut short at end of file: an error, never a shorter body. */
		CHECK_EQ(mtasts_http_parse(resp, len - 1, 1, out, sizeof out, &h, &why), -1);
	}
}

static void http_fails(const char *resp, const char *why_part)
{
	char out[64];
	struct mtasts_http h;
	const char *why = NULL;
	if (mtasts_http_parse(resp, strlen(resp), 1, out, sizeof out, &h, &why) != -1)
		T_FAIL("accepted: \"%s\"", resp);
	if (!why || !strstr(why, why_part))
		T_FAIL("\"%s\" refused with \"%s\", expected \"%s\"", resp, why ? why : "(null)", why_part);
}

static void test_http(void)
{
	char out[64];
	struct mtasts_http h;
	const char *why;
	http_whole("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n\r\nhello",
	    "hello", 0, 200);
	{
		const char *r = "HTTP/1.1 200 OK\r\nContent-Type: Text/Plain;x=y\r\nContent-Length: 0\r\n\r\n";
		CHECK_EQ(mtasts_http_parse(r, strlen(r), 0, out, sizeof out, &h, &why), 1);
	}
	CHECK_STR(h.content_type, "text/plain");
	http_whole("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n5;ext=1\nhello\n1\r\n!\r\n0\r\nX-Trailer: y\r\n\r\n",
	    "hello!", 0, 200);
	http_whole("HTTP/1.1 200 OK\r\ntransfer-encoding:  Chunked \r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
	    "0123456789", 0, 200);
	http_whole("HTTP/1.0 404 Not Found\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nno!", "no!", 0, 404);
	http_whole("HTTP/1.1 200\r\nServer: x\r\n\r\nuntil the end", "until the end", 1, 200);
	http_whole("HTTP/1.1 301 Moved\r\nLocation: https://elsewhere/\r\nContent-Length: 0\r\n\r\n", "", 0, 301);
	/* Bytes after a delimited body are not the body. */
	CHECK_EQ(mtasts_http_parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabEXTRA", 45, 0, out, sizeof out, &h, &why), 1);
	CHECK_EQ(h.body_len, 2);
	CHECK_EQ(h.consumed, 40);

	http_fails("HTTP/1.1 100 Continue\r\n\r\n", "interim");
	http_fails("HTTP/2 200 OK\r\n\r\n", "status line");
	http_fails("HTTP/1.1 2000 OK\r\n\r\n", "status line");
	http_fails("HTTP/1.1 20 OK\r\n\r\n", "status line");
	http_fails("HTTP/1.1 099 OK\r\n\r\n", "status line");
	http_fails("http/1.1 200 OK\r\n\r\n", "status line");
	http_fails("SMTP 220 hello\r\n", "status line");
	http_fails("HTTP/1.1 200 O\001K\r\n\r\n", "control byte");
	http_fails("HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n", "folded");
	http_fails("HTTP/1.1 200 OK\r\nNo colon\r\n\r\n", "malformed");
	http_fails("HTTP/1.1 200 OK\r\n: empty name\r\n\r\n", "malformed");
	http_fails("HTTP/1.1 200 OK\r\nX: a\001b\r\n\r\n", "control byte");
	http_fails("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", "Content-Length");
	http_fails("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length");
	http_fails("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "differ");
	http_fails("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "transfer coding");
	http_fails("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n", "both");
	http_fails("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size");
	http_fails("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", "chunk size");
	http_fails("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n123456789\r\n", "too large");
	http_fails("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", "line end");
	http_fails("HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n", "larger");
	http_fails("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n"
	    "0123456789012345678901234567890123456789012345678901234567890123\r\n1\r\nx\r\n0\r\n\r\n", "larger");
	{
		/* Undelimited, more than |cap| already: refused before the end. */
		char resp[200];
		int n = snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\n\r\n%070d", 0);
		CHECK_EQ(mtasts_http_parse(resp, (size_t)n, 0, out, sizeof out, &h, &why), -1);
		CHECK(strstr(why, "larger"));
	}
	{
		/* A header section over 16 KiB, with or without its end. */
		size_t n = MTASTS_HTTP_HEAD_MAX + 100;
		char *big = malloc(n + 1);
		CHECK(big);
		memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
		memset(big + 20, 'a', n - 20);
		CHECK_EQ(mtasts_http_parse(big, n, 0, out, sizeof out, &h, &why), -1);
		CHECK(strstr(why, "too long"));
		memcpy(big + n - 4, "\r\n\r\n", 4);
		CHECK_EQ(mtasts_http_parse(big, n, 0, out, sizeof out, &h, &why), -1);
		CHECK(strstr(why, "too long"));
		free(big);
	}
}

/* ------------------------------------------------------------------ */
/* The fetch, from a loopback HTTPS server of ours                       */
/* ------------------------------------------------------------------ */

struct srv {
	int lfd;
	unsigned port;
	const char *cert, *key;
	const char *resp;           /* sent after the request (NULL: send nothing, wait for the client to go) */
	size_t resp_len;            /* 0: strlen */
	int no_close_notify;
	pthread_t th;
	char request[2048];
	char sni[256];
	int requests;               /* connections that sent a request */
	int hs;                     /* server handshake result */
};

static void *serve(void *arg)
{
	struct srv *v = arg;
	struct mailtls_config *sc = tu_server_config(v->cert, v->key);
	int fd = accept(v->lfd, NULL, NULL);
	struct mailtls *s;
	size_t got = 0;
	CHECK(fd >= 0);
	s = mailtls_server(sc, fd, fd);
	CHECK(s);
	v->hs = mailtls_handshake(s);
	if (v->hs == 0) {
		snprintf(v->sni, sizeof v->sni, "%s", mailtls_servername(s) ? mailtls_servername(s) : "");
		while (got < sizeof v->request - 1 && !strstr(v->request, "\r\n\r\n")) {
			ssize_t r = mailtls_read(s, v->request + got, sizeof v->request - 1 - got);
			if (r <= 0)
				break;
			got += (size_t)r;
			v->request[got] = 0;
		}
		if (strstr(v->request, "\r\n\r\n"))
			v->requests++;
		if (v->resp) {
			size_t len = v->resp_len ? v->resp_len : strlen(v->resp);
			/* In small pieces, so the client reads many records. */
			for (size_t off = 0; off < len; off += 7) {
				size_t k = len - off < 7 ? len - off : 7;
				if (mailtls_write(s, v->resp + off, k) != (ssize_t)k)
					break;
			}
			if (!v->no_close_notify && mailtls_close(s) < 0) {
				/* the client may have gone already */
			}
		} else {
			char c;
			/* Stall: wait until the client gives up and closes. */
			while (mailtls_read(s, &c, 1) > 0)
				;
		}
	}
	mailtls_free(s);
	close(fd);
	mailtls_config_free(sc);
	return NULL;
}

static void srv_start(struct srv *v, const char *cert, const char *key, const char *resp)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	memset(v, 0, sizeof *v);
	v->cert = cert;
	v->key = key;
	v->resp = resp;
	v->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(v->lfd >= 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(v->lfd, (struct sockaddr *)&sa, sizeof sa) == 0);
	CHECK(listen(v->lfd, 4) == 0);
	CHECK(getsockname(v->lfd, (struct sockaddr *)&sa, &sl) == 0);
	v->port = ntohs(sa.sin_port);
}

static void srv_go(struct srv *v)
{
	CHECK(pthread_create(&v->th, NULL, serve, v) == 0);
}

static void srv_join(struct srv *v)
{
	pthread_join(v->th, NULL);
	close(v->lfd);
}

#define DOMAIN "wild.test.example"
#define GOOD_POLICY "version: STSv1\r\nmode: enforce\r\nmx: mail.wild.test.example\r\nmx: *.mx.example\r\nmax_age: 86400\r\n"

/* A response: the status line and fields |head| (each ending CR LF), a
 * Content-Length for |body|, the body (static, until 4 more calls). */
static const char *with_length(const char *head, const char *body)
{
	static char res[4][1024];
	static int n;
	char *r = res[n++ % 4];
	snprintf(r, sizeof res[0], "%sContent-Length: %zu\r\n\r\n%s", head, strlen(body), body);
	return r;
}

/* The same body in chunks of 16 and the rest, with an extension. */
static const char *chunked(const char *head, const char *body)
{
	static char r[1024];
	size_t len = strlen(body);
	snprintf(r, sizeof r, "%sTransfer-Encoding: chunked\r\n\r\n10\r\n%.16s\r\n%zx;name=val\r\n%s\r\n0\r\n\r\n",
	    head, body, len - 16, body + 16);
	return r;
}

/* One fetch against a server answering |resp|; returns the outcome. */
static int fetch_with(struct srv *v, const char *cert, const char *key, const char *resp, int no_close_notify,
    int secs, struct mtasts_policy *p, char *err, size_t errlen)
{
	struct mailtls_config *cc = tu_client_config();
	struct mtasts_fetch_opts o = { "127.0.0.1", 0, secs };
	int rc;
	srv_start(v, cert, key, resp);
	v->no_close_notify = no_close_notify;
	o.port = v->port;
	srv_go(v);
	rc = mtasts_fetch(cc, DOMAIN, &o, p, NULL, NULL, err, errlen);
	srv_join(v);
	mailtls_config_free(cc);
	fprintf(stderr, "   fetch: %d %s\n", rc, err);
	return rc;
}

static void expect_fetch(const char *resp, int no_close_notify, int want, const char *err_part)
{
	struct srv v;
	struct mtasts_policy p;
	char err[512];
	int rc = fetch_with(&v, "sni-wild.pem", "sni-wild.key", resp, no_close_notify, 30, &p, err, sizeof err);
	CHECK_EQ(rc, want);
	CHECK_EQ(v.requests, 1);
	CHECK_STR(v.sni, "mta-sts." DOMAIN);
	if (strncmp(v.request, "GET /.well-known/mta-sts.txt HTTP/1.1\r\n", 39) != 0)
		T_FAIL("request: \"%s\"", v.request);
	CHECK(strstr(v.request, "\r\nHost: mta-sts." DOMAIN "\r\n"));
	CHECK(strstr(v.request, "\r\nConnection: close\r\n"));
	if (want == MTASTS_OK) {
		CHECK_EQ(p.mode, MTASTS_MODE_ENFORCE);
		CHECK_EQ(p.max_age, 86400);
		CHECK_EQ(p.nmx, 2);
		CHECK_EQ(mtasts_mx_match(&p, "mail.wild.test.example"), 1);
		CHECK_EQ(mtasts_mx_match(&p, "a.mx.example"), 1);
		CHECK_EQ(mtasts_mx_match(&p, "other.test.example"), 0);
		CHECK_STR(err, "");
	} else if (!strstr(err, err_part)) {
		T_FAIL("error \"%s\" lacks \"%s\"", err, err_part);
	}
}

static void test_fetch_good(void)
{
	const char *head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n";
	expect_fetch(with_length(head, GOOD_POLICY), 0, MTASTS_OK, NULL);
	/* Delimited bodies survive a server that closes without close_notify. */
	expect_fetch(with_length(head, GOOD_POLICY), 1, MTASTS_OK, NULL);
	expect_fetch(chunked(head, GOOD_POLICY), 1, MTASTS_OK, NULL);
	expect_fetch(with_length(head, "version: STSv1\nmode: enforce\nmx: mail.wild.test.example\n"
	    "mx: *.mx.example\nmax_age: 86400"), 0, MTASTS_OK, NULL);
	expect_fetch("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" GOOD_POLICY, 0, MTASTS_OK, NULL);
}

static void test_fetch_refused(void)
{
	/* An undelimited body cut without close_notify may be cut short. */
	expect_fetch("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" GOOD_POLICY, 1, MTASTS_FETCH_ERROR,
	    "close_notify");
	expect_fetch("HTTP/1.1 301 Moved Permanently\r\nLocation: https://mta-sts." DOMAIN "/other.txt\r\n"
	    "Content-Length: 0\r\n\r\n", 0, MTASTS_FETCH_ERROR, "redirects are not followed");
	expect_fetch("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 0, MTASTS_FETCH_ERROR, "status 404");
	expect_fetch(with_length("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n", GOOD_POLICY),
	    0, MTASTS_POLICY_INVALID, "text/html");
	expect_fetch(with_length("HTTP/1.1 200 OK\r\n", GOOD_POLICY), 0, MTASTS_POLICY_INVALID, "media type");
	expect_fetch("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 70000\r\n\r\n", 0,
	    MTASTS_POLICY_INVALID, "larger");
	expect_fetch("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\r\nversion: STSv1\r\nmode",
	    0, MTASTS_POLICY_INVALID, "policy");
	expect_fetch("garbage\r\n\r\n", 0, MTASTS_FETCH_ERROR, "status line");
}

static void test_fetch_large_undelimited(void)
{
	/* More than the policy's bound, with no length: refused while it
	 * arrives, the server's writes failing once the client has gone. */
	size_t n = 40 + 70000;
	char *resp = malloc(n + 1);
	CHECK(resp);
	memcpy(resp, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", 45);
	memset(resp + 45, 'x', n - 45);
	resp[n] = 0;
	expect_fetch(resp, 0, MTASTS_POLICY_INVALID, "larger");
	free(resp);
}

static void test_fetch_webpki(void)
{
	struct srv v;
	struct mtasts_policy p;
	char err[512];
	const char *ok = with_length("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n", GOOD_POLICY);
	CHECK_EQ(fetch_with(&v, "server-ec.pem", "server-ec.key", ok, 0, 30, &p, err, sizeof err),
	    MTASTS_WEBPKI_INVALID);
	CHECK(strstr(err, "does not name mta-sts." DOMAIN));
	CHECK_EQ(v.requests, 0);
	CHECK_EQ(fetch_with(&v, "expired.pem", "expired.key", ok, 0, 30, &p, err, sizeof err), MTASTS_WEBPKI_INVALID);
	CHECK(strstr(err, "expired"));
	CHECK_EQ(v.requests, 0);
	CHECK_EQ(fetch_with(&v, "unknown.pem", "unknown.key", ok, 0, 30, &p, err, sizeof err), MTASTS_WEBPKI_INVALID);
	CHECK_EQ(v.requests, 0);
	/* A configuration that does not verify is refused all the same. */
	{
		struct mailtls_config *cc = tu_client_config();
		struct mtasts_fetch_opts o = { "127.0.0.1", 0, 30 };
		CHECK_CFG_OK(cc, mailtls_config_set_verify(cc, MAILTLS_VERIFY_NONE));
		srv_start(&v, "server-ec.pem", "server-ec.key", ok);
		o.port = v.port;
		srv_go(&v);
		CHECK_EQ(mtasts_fetch(cc, DOMAIN, &o, &p, NULL, NULL, err, sizeof err), MTASTS_WEBPKI_INVALID);
		srv_join(&v);
		CHECK(strstr(err, "not verified"));
		CHECK_EQ(v.requests, 0);
		mailtls_config_free(cc);
	}
}

static void test_fetch_stall_and_no_server(void)
{
	struct srv v;
	struct mtasts_policy p;
	char err[512];
	struct mailtls_config *cc = tu_client_config();
	struct mtasts_fetch_opts o = { "127.0.0.1", 0, 1 };
	double t0 = tu_now();
	CHECK_EQ(fetch_with(&v, "sni-wild.pem", "sni-wild.key", NULL, 0, 1, &p, err, sizeof err), MTASTS_FETCH_ERROR);
	CHECK(tu_now() - t0 >= 0.9);   /* the deadline was waited for, not skipped */
	CHECK(strstr(err, "time") || strstr(err, "deadline"));
	CHECK_EQ(v.requests, 1);
	/* A port nobody listens on. */
	srv_start(&v, "sni-wild.pem", "sni-wild.key", NULL);
	o.port = v.port;
	close(v.lfd);
	CHECK_EQ(mtasts_fetch(cc, DOMAIN, &o, &p, NULL, NULL, err, sizeof err), MTASTS_FETCH_ERROR);
	CHECK(strstr(err, "cannot connect"));
	/* Not a domain. */
	CHECK_EQ(mtasts_fetch(cc, "a/b", &o, &p, NULL, NULL, err, sizeof err), MTASTS_FETCH_ERROR);
	CHECK_EQ(mtasts_fetch(cc, "", &o, &p, NULL, NULL, err, sizeof err), MTASTS_FETCH_ERROR);
	mailtls_config_free(cc);
}

int main(void)
{
	RUN_ISOLATED(test_txt);
	RUN_ISOLATED(test_policy);
	RUN_ISOLATED(test_mx_match);
	RUN_ISOLATED(test_http);
	RUN_ISOLATED(test_fetch_good);
	RUN_ISOLATED(test_fetch_refused);
	RUN_ISOLATED(test_fetch_large_undelimited);
	RUN_ISOLATED(test_fetch_webpki);
	RUN_ISOLATED(test_fetch_stall_and_no_server);
	return tu_isolated_result();
}
