/* Client STARTTLS (mailtls_starttls_client, mailtls_smtp_ehlo) against
 * honest and hostile in-process servers: a thread plays a scripted SMTP,
 * POP3 or IMAP server over a socketpair or a pair of pipes and uses our own
 * mailtls_server for its TLS part.  See security.md C1-C5. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* ------------------------------------------------------------------ */
/* The scripted server                                                  */
/* ------------------------------------------------------------------ */

/* Script steps (one string each):
 *   ">text"   send text in plaintext (one write)
 *   "<line"   expect this plaintext line (without CR LF) from the client
 *   "T"       TLS handshake as server (must succeed); "T?" may fail (then stop)
 *   "t>text"  send text under TLS;  "t<line"  expect this line under TLS
 *   "C"       close the server's sending direction (the client sees end of file)
 *   "E"       expect end of file with no byte at all (nothing was sent)
 *   "W"       read and discard until end of file
 *   "L"       send "250-x\r\n" until the client goes away
 *   "Snnn"    sleep nnn milliseconds
 * A NULL ends the script. */
struct srv {
	pthread_t th;
	int rfd, wfd;
	const char *const *script;
	const char *cert, *key;
	int failed;
	int lenient;             /* the client is expected to give up: a failed write ends the script */
	atomic_int step;         /* index in script of the step the server is at */
	char why[4400];
	struct mailtls *tls;
};

static void srv_fail(struct srv *v, const char *fmt, const char *a, const char *b)
{
	if (!v->failed) {
		v->failed = 1;
		snprintf(v->why, sizeof v->why, fmt, a, b);
	}
}

static int srv_write(struct srv *v, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(v->wfd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads one byte within 5 s: 1, 0 at EOF, -1 on error or timeout. */
static int srv_byte(struct srv *v, char *c)
{
	struct pollfd p = { .fd = v->rfd, .events = POLLIN };
	ssize_t n;
	if (poll(&p, 1, 5000) != 1)
		return -1;
	n = read(v->rfd, c, 1);
	return n < 0 ? -1 : (int)n;
}

static int srv_line(struct srv *v, char *buf, size_t cap)
{
	size_t len = 0;
	for (;;) {
		char c;
		int r;
		if (v->tls) {
			ssize_t n = mailtls_timeoutread(5, v->tls, &c, 1);
			r = n == 1 ? 1 : -1;
		} else {
			r = srv_byte(v, &c);
		}
		if (r != 1 || len + 1 >= cap)
			return -1;
		if (c == '\n') {
			if (len && buf[len - 1] == '\r')
				len--;
			buf[len] = 0;
			return 0;
		}
		buf[len++] = c;
	}
}

static void *srv_main(void *arg)
{
	struct srv *v = arg;
	struct mailtls_config *cfg = NULL;
	char line[2048];
	for (const char *const *st = v->script; *st; st++) {
		const char *s = *st;
		atomic_store(&v->step, (int)(st - v->script));
		if (s[0] == '>') {
			if (srv_write(v, s + 1, strlen(s + 1)) < 0) {
				if (!v->lenient)
					srv_fail(v, "write %s failed%s", s, "");
				break;
			}
		} else if (s[0] == '<') {
			if (srv_line(v, line, sizeof line) < 0) {
				srv_fail(v, "no line where %s was expected%s", s, "");
				break;
			}
			if (strcmp(line, s + 1)) {
				srv_fail(v, "got \"%s\" where \"%s\" was expected", line, s + 1);
				break;
			}
		} else if (s[0] == 'T') {
			cfg = tu_server_config(v->cert ? v->cert : "server-ec.pem", v->key ? v->key : "server-ec.key");
			v->tls = mailtls_server(cfg, v->rfd, v->wfd);
			CHECK(v->tls);
			if (mailtls_handshake_timeout(v->tls, 5) < 0) {
				if (s[1] != '?')
					srv_fail(v, "server handshake failed: %s%s", mailtls_error(v->tls), "");
				break;
			}
		} else if (s[0] == 't' && s[1] == '>') {
			if (mailtls_timeoutwrite(5, v->tls, s + 2, strlen(s + 2)) < 0) {
				srv_fail(v, "TLS write failed: %s%s", mailtls_error(v->tls), "");
				break;
			}
		} else if (s[0] == 't' && s[1] == '<') {
			if (srv_line(v, line, sizeof line) < 0) {
				srv_fail(v, "no TLS line where %s was expected: %s", s, mailtls_error(v->tls));
				break;
			}
			if (strcmp(line, s + 2)) {
				srv_fail(v, "got \"%s\" under TLS where \"%s\" was expected", line, s + 2);
				break;
			}
		} else if (s[0] == 'C') {
			if (shutdown(v->wfd, SHUT_WR) < 0) {
				/* a pipe: put /dev/null in its place, which closes the pipe's write end */
				int nul = open("/dev/null", O_WRONLY);
				CHECK(nul >= 0 && dup2(nul, v->wfd) == v->wfd);
				close(nul);
			}
		} else if (s[0] == 'E') {
			char c;
			int r = srv_byte(v, &c);
			if (r != 0)
				srv_fail(v, "expected end of file with no byte sent, got %s%s",
				    r > 0 ? "a byte" : "an error or a timeout", "");
		} else if (s[0] == 'W') {
			char c;
			while (srv_byte(v, &c) == 1)
				;
		} else if (s[0] == 'L') {
			static const char cont[] = "250-x\r\n";
			for (int i = 0; i < 1000000; i++)
				if (srv_write(v, cont, sizeof cont - 1) < 0)
					break;
		} else if (s[0] == 'S') {
			usleep((useconds_t)atoi(s + 1) * 1000);
		} else {
			srv_fail(v, "bad script step %s%s", s, "");
			break;
		}
	}
	if (v->tls) {
		if (mailtls_close_timeout(v->tls, 1) < 0) {
			/* the client may be gone already */
		}
		mailtls_free(v->tls);
		v->tls = NULL;
	}
	mailtls_config_free(cfg);
	return NULL;
}

/* A connection: the client's descriptors and the server thread. */
struct conn {
	int crfd, cwfd;          /* client side */
	int fds[4];              /* everything to close */
	int nfds;
	struct srv srv;
};

static void conn_start(struct conn *c, int use_pipes, const char *const *script)
{
	memset(c, 0, sizeof *c);
	if (use_pipes) {
		int a[2], b[2];
		CHECK(pipe(a) == 0 && pipe(b) == 0);
		/* client reads a[0], server writes a[1]; server reads b[0], client writes b[1] */
		c->crfd = a[0];
		c->cwfd = b[1];
		c->srv.rfd = b[0];
		c->srv.wfd = a[1];
		c->fds[0] = a[0]; c->fds[1] = a[1]; c->fds[2] = b[0]; c->fds[3] = b[1];
		c->nfds = 4;
	} else {
		int sv[2];
		tu_socketpair(sv);
		c->crfd = c->cwfd = sv[0];
		c->srv.rfd = c->srv.wfd = sv[1];
		c->fds[0] = sv[0]; c->fds[1] = sv[1];
		c->nfds = 2;
	}
	c->srv.script = script;
}

static void conn_run_server(struct conn *c)
{
	CHECK(pthread_create(&c->srv.th, NULL, srv_main, &c->srv) == 0);
}

/* Ends the client's side (so the server sees EOF and its writes fail),
 * joins the server and reports its verdict. */
static void conn_finish(struct conn *c)
{
	if (c->crfd == c->cwfd) {
		shutdown(c->crfd, SHUT_RDWR);
	} else {
		for (int i = 0; i < c->nfds; i++)
			if (c->fds[i] == c->crfd || c->fds[i] == c->cwfd) {
				close(c->fds[i]);
				c->fds[i] = -1;
			}
	}
	pthread_join(c->srv.th, NULL);
	for (int i = 0; i < c->nfds; i++)
		if (c->fds[i] >= 0)
			close(c->fds[i]);
	if (c->srv.failed)
		T_FAIL("server: %s", c->srv.why);
}

static struct mailtls_config *ccfg;

static struct mailtls *client_for(struct conn *c)
{
	struct mailtls *s = mailtls_client(ccfg, c->crfd, c->cwfd, "localhost");
	CHECK(s);
	return s;
}

/* Reads what is waiting on the client's descriptor (the server's next
 * plaintext line), proving nothing of it was consumed by the library. */
static void expect_next_plain(struct conn *c, const char *want)
{
	char buf[256];
	size_t len = 0, wl = strlen(want);
	while (len < wl) {
		struct pollfd p = { .fd = c->crfd, .events = POLLIN };
		ssize_t n;
		CHECK(poll(&p, 1, 2000) == 1);
		n = read(c->crfd, buf + len, wl - len);
		CHECK(n > 0);
		len += (size_t)n;
	}
	buf[len] = 0;
	CHECK_STR(buf, want);
}

/* conn_client: the scripted server started on a fresh connection, and our
 * client session on its other end. */
static struct mailtls *conn_client(struct conn *c, int use_pipes, const char *const *script)
{
	conn_start(c, use_pipes, script);
	conn_run_server(c);
	return client_for(c);
}

/* conn_close_tls: close_notify within 2 seconds, then the connection's end. */
static void conn_close_tls(struct conn *c, struct mailtls *s)
{
	CHECK_OK(s, mailtls_close_timeout(s, 2));
	mailtls_free(s);
	conn_finish(c);
}

/* Reads the server's next TLS bytes: exactly |want|. */
static void expect_tls_read(struct mailtls *s, const char *want)
{
	char buf[256];
	ssize_t n, got = 0, wl = (ssize_t)strlen(want);
	while (got < wl && (n = mailtls_timeoutread(2, s, buf + got, sizeof buf - 1 - (size_t)got)) > 0)
		got += n;
	buf[got] = 0;
	CHECK_STR(buf, want);
}

static void expect_err(struct mailtls *s, int rc, int code)
{
	if (rc != -1 || mailtls_errcode(s) != code)
		T_FAIL("rc %d errcode %s (%s), expected -1 and %s", rc, mailtls_errcode_name(mailtls_errcode(s)),
		    mailtls_error(s), mailtls_errcode_name(code));
	fprintf(stderr, "   ok: %s\n", mailtls_error(s));
}

/* ------------------------------------------------------------------ */
/* Honest servers                                                      */
/* ------------------------------------------------------------------ */

static const char *const smtp_honest[] = {
	">220 mx.test.example ESMTP ready\r\n",
	"<EHLO client.test.example",
	">250-mx.test.example hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-AUTH PLAIN LOGIN\r\n"
	    "250-8BITMIME\r\n250 STARTTLS\r\n",
	"<STARTTLS",
	">220 2.0.0 Ready to start TLS\r\n",
	"T",
	"t<EHLO client.test.example",
	"t>250-mx.test.example hello again\r\n250-SIZE 20480000\r\n250 8BITMIME\r\n",
	"t<QUIT",
	"t>221 bye\r\n",
	"W",
	NULL
};

static void smtp_honest_on(int use_pipes)
{
	struct conn c;
	struct mailtls_starttls_info info;
	struct mailtls *s;
	int rc;
	char buf[64];
	s = conn_client(&c, use_pipes, smtp_honest);
	memset(&info, 0x55, sizeof info);
	rc = mailtls_starttls_client(s, MAILTLS_SMTP, "client.test.example", 2, &info);
	if (rc != MAILTLS_STARTTLS_DONE)
		T_FAIL("rc %d: %s", rc, mailtls_error(s));
	CHECK_EQ(info.greeting_code, 220);
	CHECK_STR(info.greeting, "220 mx.test.example ESMTP ready\n");
	CHECK_EQ(info.ehlo_code, 250);
	CHECK_EQ(info.used_helo, 0);
	CHECK_STR(info.capabilities, "PIPELINING\nSIZE 10240000\nAUTH PLAIN LOGIN\n8BITMIME\nSTARTTLS\n");
	CHECK(!strncmp(info.ehlo, "250-mx.test.example hello\n250-PIPELINING\n", 41));
	CHECK(mailtls_smtp_has_capability(&info, "auth"));
	CHECK(mailtls_smtp_has_capability(&info, "STARTTLS"));
	CHECK(!mailtls_smtp_has_capability(&info, "START"));
	CHECK(!mailtls_smtp_has_capability(&info, "PLAIN"));
	CHECK_EQ(info.starttls_code, 220);
	CHECK_STR(info.starttls_reply, "220 2.0.0 Ready to start TLS\n");
	CHECK(mailtls_protocol(s) != NULL);
	CHECK(mailtls_peer_verified(s));
	/* RFC 3207 4.2: EHLO again; only what is said under TLS counts. */
	CHECK_EQ(mailtls_smtp_ehlo(s, "client.test.example", 2, &info), 250);
	CHECK_EQ(info.ehlo_code, 250);
	CHECK_STR(info.capabilities, "SIZE 20480000\n8BITMIME\n");
	CHECK(!mailtls_smtp_has_capability(&info, "AUTH"));
	CHECK(!mailtls_smtp_has_capability(&info, "STARTTLS"));
	CHECK(!mailtls_smtp_has_capability(&info, "PIPELINING"));
	CHECK(mailtls_smtp_has_capability(&info, "size"));
	CHECK_EQ(mailtls_timeoutwrite(2, s, "QUIT\r\n", 6), 6);
	CHECK_EQ(mailtls_timeoutread(2, s, buf, sizeof buf), 9);
	CHECK(!memcmp(buf, "221 bye\r\n", 9));
	conn_close_tls(&c, s);
}

static void test_smtp_honest_socket(void) { smtp_honest_on(0); }
static void test_smtp_honest_pipes(void) { smtp_honest_on(1); }

static void test_smtp_out_null_and_bare_lf(void)
{
	/* Bare LF line ends are tolerated; |out| may be NULL. */
	static const char *const script[] = {
		">220 mx\n", "<EHLO c.example", ">250-mx\n250 STARTTLS\n",
		"<STARTTLS", ">220 go\n", "T", "t<EHLO c.example", "t>250 mx\r\n", "W", NULL
	};
	struct conn c;
	struct mailtls *s;
	s = conn_client(&c, 0, script);
	CHECK_EQ(mailtls_starttls_client(s, MAILTLS_SMTP, "c.example", 2, NULL), MAILTLS_STARTTLS_DONE);
	CHECK_EQ(mailtls_smtp_ehlo(s, "c.example", 2, NULL), 250);
	conn_close_tls(&c, s);
}

static const char *const pop3_honest[] = {
	">+OK POP3 ready <1.2@mx>\r\n",
	"<CAPA",
	">+OK Capability list follows\r\nTOP\r\nUSER\r\n..STUFFED\r\nSASL PLAIN\r\nSTLS\r\n.\r\n",
	"<STLS",
	">+OK Begin TLS negotiation now\r\n",
	"T",
	"t<CAPA",
	"t>+OK\r\nUSER\r\n.\r\n",
	"W",
	NULL
};

static void test_pop3_honest(void)
{
	struct conn c;
	struct mailtls_starttls_info info;
	struct mailtls *s;
	s = conn_client(&c, 0, pop3_honest);
	CHECK_EQ(mailtls_starttls_client(s, MAILTLS_POP3, NULL, 2, &info), MAILTLS_STARTTLS_DONE);
	CHECK_EQ(info.greeting_code, 200);
	CHECK_STR(info.greeting, "+OK POP3 ready <1.2@mx>\n");
	CHECK_EQ(info.ehlo_code, 200);
	CHECK_STR(info.capabilities, "TOP\nUSER\n.STUFFED\nSASL PLAIN\nSTLS\n");
	CHECK(mailtls_smtp_has_capability(&info, "stls"));
	CHECK(mailtls_smtp_has_capability(&info, ".STUFFED"));
	CHECK_EQ(info.starttls_code, 200);
	CHECK(mailtls_peer_verified(s));
	CHECK_EQ(mailtls_timeoutwrite(2, s, "CAPA\r\n", 6), 6);
	expect_tls_read(s, "+OK\r\nUSER\r\n.\r\n");
	conn_close_tls(&c, s);
}

static void test_imap_honest_greeting_caps(void)
{
	static const char *const script[] = {
		">* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS LOGINDISABLED] "
		    "Dovecot ready.\r\n",
		"<a2 STARTTLS",
		">a2 OK Begin TLS negotiation now.\r\n",
		"T", "t<a3 CAPABILITY", "t>* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\na3 OK done\r\n", "W", NULL
	};
	struct conn c;
	struct mailtls_starttls_info info;
	struct mailtls *s;
	s = conn_client(&c, 0, script);
	CHECK_EQ(mailtls_starttls_client(s, MAILTLS_IMAP, NULL, 2, &info), MAILTLS_STARTTLS_DONE);
	CHECK_EQ(info.greeting_code, 200);
	CHECK_EQ(info.ehlo_code, 0);    /* no CAPABILITY command was needed */
	CHECK_STR(info.capabilities, "IMAP4rev1\nSASL-IR\nLOGIN-REFERRALS\nID\nENABLE\nIDLE\nLITERAL+\nSTARTTLS\n"
	    "LOGINDISABLED\n");
	CHECK_EQ(info.starttls_code, 200);
	CHECK_STR(info.starttls_reply, "a2 OK Begin TLS negotiation now.\n");
	CHECK_EQ(mailtls_timeoutwrite(2, s, "a3 CAPABILITY\r\n", 15), 15);
	expect_tls_read(s, "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\na3 OK done\r\n");
	conn_close_tls(&c, s);
}

static void test_imap_honest_capability_command(void)
{
	static const char *const script[] = {
		">* OK IMAP server ready\r\n",
		"<a1 CAPABILITY",
		">* CAPABILITY IMAP4rev1 starttls\r\n* OK [ALERT] hello\r\n* CAPABILITY AUTH=PLAIN\r\na1 OK done\r\n",
		"<a2 STARTTLS",
		">* OK noise before the tagged reply\r\na2 ok go\r\n",
		"T", "W", NULL
	};
	struct conn c;
	struct mailtls_starttls_info info;
	struct mailtls *s;
	s = conn_client(&c, 1, script);
	CHECK_EQ(mailtls_starttls_client(s, MAILTLS_IMAP, NULL, 2, &info), MAILTLS_STARTTLS_DONE);
	CHECK_EQ(info.ehlo_code, 200);
	CHECK_STR(info.capabilities, "IMAP4rev1\nstarttls\nAUTH=PLAIN\n");
	CHECK(mailtls_smtp_has_capability(&info, "AUTH=PLAIN"));
	CHECK_STR(info.starttls_reply, "* OK noise before the tagged reply\na2 ok go\n");
	conn_close_tls(&c, s);
}

/* ------------------------------------------------------------------ */
/* Response injection (C2)                                              */
/* ------------------------------------------------------------------ */

static void injection(int proto, int use_pipes, const char *const *script)
{
	struct conn c;
	struct mailtls_starttls_info info;
	struct mailtls *s;
	int rc;
	s = conn_client(&c, use_pipes, script);
	rc = mailtls_starttls_client(s, proto, "client.test.example", 2, &info);
	expect_err(s, rc, MAILTLS_E_INJECTION);
	CHECK(mailtls_error_temporary(MAILTLS_E_INJECTION));
	CHECK(mailtls_protocol(s) == NULL);
	mailtls_free(s);
	conn_finish(&c);   /* the server checks that no ClientHello came */
}

static void test_smtp_injection(void)
{
	static const char *const script[] = {
		">220 mx ESMTP\r\n", "<EHLO client.test.example", ">250-mx\r\n250 STARTTLS\r\n",
		"<STARTTLS", ">220 go\r\n250 x\r\n", "E", NULL
	};
	injection(MAILTLS_SMTP, 0, script);
	injection(MAILTLS_SMTP, 1, script);
}

static void test_smtp_injection_multiline_220(void)
{
	static const char *const script[] = {
		">220 mx ESMTP\r\n", "<EHLO client.test.example", ">250-mx\r\n250 STARTTLS\r\n",
		"<STARTTLS", ">220-go\r\n220 Ready\r\n250-x\r\n250 AUTH LOGIN\r\n", "E", NULL
	};
	injection(MAILTLS_SMTP, 0, script);
}

static void test_smtp_injection_half_line(void)
{
	/* Even one byte without its LF counts. */
	static const char *const script[] = {
		">220 mx ESMTP\r\n", "<EHLO client.test.example", ">250-mx\r\n250 STARTTLS\r\n",
		"<STARTTLS", ">220 go\r\n2", "E", NULL
	};
	injection(MAILTLS_SMTP, 0, script);
	injection(MAILTLS_SMTP, 1, script);
}

static void test_pop3_injection(void)
{
	static const char *const script[] = {
		">+OK hi\r\n", "<CAPA", ">+OK\r\nSTLS\r\n.\r\n", "<STLS", ">+OK go\r\n+OK injected\r\n", "E", NULL
	};
	injection(MAILTLS_POP3, 0, script);
}

static void test_imap_injection(void)
{
	static const char *const script[] = {
		">* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n", "<a2 STARTTLS",
		">a2 OK go\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n", "E", NULL
	};
	injection(MAILTLS_IMAP, 1, script);
}

static void test_smtp_late_plaintext_breaks_handshake(void)
{
	/* Plaintext that arrives after the check goes to the TLS engine: the
	 * handshake fails; it is never read as a reply. */
	static const char *const script[] = {
		">220 mx ESMTP\r\n", "<EHLO client.test.example", ">250-mx\r\n250 STARTTLS\r\n",
		"<STARTTLS", ">220 go\r\n", "S300", ">250-x\r\n250 AUTH LOGIN\r\n", "W", NULL
	};
	struct conn c;
	struct mailtls *s;
	int rc;
	s = conn_client(&c, 0, script);
	rc = mailtls_starttls_client(s, MAILTLS_SMTP, "client.test.example", 2, NULL);
	CHECK_EQ(rc, -1);
	CHECK(mailtls_errcode(s) == MAILTLS_E_TLS || mailtls_errcode(s) == MAILTLS_E_INJECTION);
	fprintf(stderr, "   ok: %s\n", mailtls_error(s));
	mailtls_free(s);
	conn_finish(&c);
}

/* ------------------------------------------------------------------ */
/* Not offered, refused, HELO (C1)                                      */
/* ------------------------------------------------------------------ */

static void not_offered_on(int use_pipes)
{
	/* The EHLO reply and the server's next line come in one write: the
	 * library must stop right after the reply. */
	static const char *const script[] = {
		">220 mx ESMTP\r\n", "<EHLO client.test.example",
		">250-mx\r\n250-PIPELINING\r\n250 STARTTLSX\r\n421 next line\r\n", "W", NULL
	};
	struct conn c;
	struct mailtls_starttls_info info;
	struct mailtls *s;
	s = conn_client(&c, use_pipes, script);
	CHECK_EQ(mailtls_starttls_client(s, MAILTLS_SMTP, "client.test.example", 2, &info),
	    MAILTLS_STARTTLS_NOT_OFFERED);
	CHECK_EQ(mailtls_errcode(s), MAILTLS_E_NONE);
	CHECK_EQ(info.ehlo_code, 250);
	CHECK_STR(info.capabilities, "PIPELINING\nSTARTTLSX\n");
	CHECK(!mailtls_smtp_has_capability(&info, "STARTTLS"));
	CHECK_EQ(info.starttls_code, 0);
	CHECK_STR(info.starttls_reply, "");
	expect_next_plain(&c, "421 next line\r\n");
	mailtls_free(s);
	conn_finish(&c);
}

static void test_smtp_not_offered_socket(void) { not_offered_on(0); }
static void test_smtp_not_offered_pipes(void) { not_offered_on(1); }

static void test_smtp_454(void)
{
	static const char *const script[] = {
		">220 mx ESMTP\r\n", "<EHLO client.test.example", ">250-mx\r\n250 STARTTLS\r\n",
		"<STARTTLS", ">454 4.7.0 TLS not available due to local problem\r\n250 next\r\n", "W", NULL
	};
	struct conn c;
	struct mailtls_starttls_info info;
	struct mailtls *s;
	s = conn_client(&c, 0, script);
	CHECK_EQ(mailtls_starttls_client(s, MAILTLS_SMTP, "client.test.example", 2, &info),
	    MAILTLS_STARTTLS_REFUSED);
	CHECK_EQ(info.starttls_code, 454);
	CHECK_STR(info.starttls_reply, "454 4.7.0 TLS not available due to local problem\n");
	expect_next_plain(&c, "250 next\r\n");
	mailtls_free(s);
	conn_finish(&c);
}

static void starttls_reply_is(const char *reply, int want_rc, int want_code)
{
	const char *script[] = {
		">220 mx ESMTP\r\n", "<EHLO client.test.example", ">250-mx\r\n250 STARTTLS\r\n",
		"<STARTTLS", reply, "W", NULL
	};
	struct conn c;
	struct mailtls_starttls_info info;
	struct mailtls *s;
	int rc;
	s = conn_client(&c, 0, script);
	rc = mailtls_starttls_client(s, MAILTLS_SMTP, "client.test.example", 2, &info);
	if (want_rc == -1)
		expect_err(s, rc, MAILTLS_E_PROTOCOL);
	else
		CHECK_EQ(rc, want_rc);
	CHECK_EQ(info.starttls_code, want_code);
	mailtls_free(s);
	conn_finish(&c);
}

static void test_smtp_starttls_odd_replies(void)
{
	starttls_reply_is(">502 5.5.1 unrecognized command\r\n", MAILTLS_STARTTLS_REFUSED, 502);
	starttls_reply_is(">530 5.7.0 must authenticate\r\n", MAILTLS_STARTTLS_REFUSED, 530);
	starttls_reply_is(">500 syntax\r\n", MAILTLS_STARTTLS_REFUSED, 500);
	starttls_reply_is(">421 4.3.2 shutting down\r\n", -1, 421);
	starttls_reply_is(">354 go ahead\r\n", -1, 354);
	starttls_reply_is(">250 ok\r\n", -1, 250);
}

static void test_smtp_helo_only(void)
{
	static const char *const script[] = {
		">220 old.example SMTP\r\n", "<EHLO client.test.example", ">502 unimplemented\r\n",
		"<HELO client.test.example", ">250 old.example\r\n", "W", NULL
	};
	struct conn c;
	struct mailtls_starttls_info info;
	struct mailtls *s;
	s = conn_client(&c, 0, script);
	CHECK_EQ(mailtls_starttls_client(s, MAILTLS_SMTP, "client.test.example", 2, &info),
	    MAILTLS_STARTTLS_NOT_OFFERED);
	CHECK_EQ(info.used_helo, 1);
	CHECK_EQ(info.ehlo_code, 250);
	CHECK_STR(info.ehlo, "250 old.example\n");
	CHECK_STR(info.capabilities, "");
	mailtls_free(s);
	conn_finish(&c);
}

static void test_smtp_helo_refused(void)
{
	static const char *const script[] = {
		">220 old.example SMTP\r\n", "<EHLO client.test.example", ">500 what\r\n",
		"<HELO client.test.example", ">550 go away\r\n", "W", NULL
	};
	struct conn c;
	struct mailtls_starttls_info info;
	struct mailtls *s;
	s = conn_client(&c, 0, script);
	expect_err(s, mailtls_starttls_client(s, MAILTLS_SMTP, "client.test.example", 2, &info), MAILTLS_E_PROTOCOL);
	CHECK_EQ(info.used_helo, 1);
	CHECK_EQ(info.ehlo_code, 550);
	mailtls_free(s);
	conn_finish(&c);
}

/* ------------------------------------------------------------------ */
/* Bad greetings and malformed replies (C5)                             */
/* ------------------------------------------------------------------ */

/* Runs |proto| against |script| and expects -1 with |code|. */
static struct mailtls_starttls_info last_info;
static double last_elapsed;   /* seconds the client took */
static int last_server_step;  /* the server's step in its script when the client returned */
static void expect_failure(int proto, int use_pipes, const char *const *script, int code, int secs)
{
	struct conn c;
	struct mailtls *s;
	double t0;
	int rc;
	conn_start(&c, use_pipes, script);
	c.srv.lenient = 1;
	conn_run_server(&c);
	s = client_for(&c);
	t0 = tu_now();
	rc = mailtls_starttls_client(s, proto, "client.test.example", secs, &last_info);
	last_elapsed = tu_now() - t0;
	last_server_step = atomic_load(&c.srv.step);
	expect_err(s, rc, code);
	CHECK(mailtls_error_temporary(mailtls_errcode(s)));
	mailtls_free(s);
	conn_finish(&c);
}

static void test_smtp_greeting_421(void)
{
	static const char *const script[] = { ">421 4.3.2 busy, try later\r\n", "W", NULL };
	expect_failure(MAILTLS_SMTP, 0, script, MAILTLS_E_PROTOCOL, 2);
	CHECK_EQ(last_info.greeting_code, 421);
	CHECK_STR(last_info.greeting, "421 4.3.2 busy, try later\n");
	CHECK_EQ(last_info.ehlo_code, 0);
}

static void test_smtp_greeting_554_multiline(void)
{
	static const char *const script[] = { ">554-no\r\n554 service\r\n", "W", NULL };
	expect_failure(MAILTLS_SMTP, 0, script, MAILTLS_E_PROTOCOL, 2);
	CHECK_EQ(last_info.greeting_code, 554);
	CHECK_STR(last_info.greeting, "554-no\n554 service\n");
}

static void test_smtp_mixed_codes(void)
{
	static const char *const script[] = {
		">220 mx\r\n", "<EHLO client.test.example", ">250-mx\r\n251-PIPELINING\r\n250 STARTTLS\r\n", "W", NULL
	};
	expect_failure(MAILTLS_SMTP, 0, script, MAILTLS_E_PROTOCOL, 2);
	CHECK_EQ(last_info.greeting_code, 220);
}

static void test_smtp_malformed_lines(void)
{
	static const char *const a[] = { ">220mx\r\n", "W", NULL };
	static const char *const b[] = { ">22 mx\r\n", "W", NULL };
	static const char *const d[] = { ">hello\r\n", "W", NULL };
	static const char *const e[] = { ">620 mx\r\n", "W", NULL };
	static const char *const f[] = { ">\r\n", "W", NULL };
	expect_failure(MAILTLS_SMTP, 0, a, MAILTLS_E_PROTOCOL, 2);
	expect_failure(MAILTLS_SMTP, 0, b, MAILTLS_E_PROTOCOL, 2);
	expect_failure(MAILTLS_SMTP, 0, d, MAILTLS_E_PROTOCOL, 2);
	expect_failure(MAILTLS_SMTP, 0, e, MAILTLS_E_PROTOCOL, 2);
	expect_failure(MAILTLS_SMTP, 1, f, MAILTLS_E_PROTOCOL, 2);
}

static void test_smtp_endless_continuation(void)
{
	static const char *const script[] = { ">220 mx\r\n", "<EHLO client.test.example", "L", NULL };
	expect_failure(MAILTLS_SMTP, 0, script, MAILTLS_E_PROTOCOL, 2);
	CHECK(strlen(last_info.ehlo) <= MAILTLS_TEXT_MAX - 1);
	CHECK(strlen(last_info.capabilities) <= MAILTLS_TEXT_MAX - 1);
	expect_failure(MAILTLS_SMTP, 1, script, MAILTLS_E_PROTOCOL, 2);
}

static void test_smtp_overlong_line(void)
{
	static char greeting[2100];
	static const char *script[] = { greeting, "W", NULL };
	greeting[0] = '>';
	memcpy(greeting + 1, "220 ", 4);
	memset(greeting + 5, 'a', 1500);
	memcpy(greeting + 1505, "\r\n", 3);
	expect_failure(MAILTLS_SMTP, 0, script, MAILTLS_E_PROTOCOL, 2);
	expect_failure(MAILTLS_SMTP, 1, script, MAILTLS_E_PROTOCOL, 2);
	CHECK_EQ(strlen(last_info.greeting), 0);
}

static void test_smtp_line_limit_exact(void)
{
	/* 998 bytes + CR LF = 1000: accepted. */
	static char greeting[1100];
	static const char *script[] = { greeting, "<EHLO client.test.example", ">250 mx\r\n", "W", NULL };
	struct conn c;
	struct mailtls_starttls_info info;
	struct mailtls *s;
	greeting[0] = '>';
	memcpy(greeting + 1, "220 ", 4);
	memset(greeting + 5, 'b', 994);
	memcpy(greeting + 999, "\r\n", 3);
	s = conn_client(&c, 0, script);
	CHECK_EQ(mailtls_starttls_client(s, MAILTLS_SMTP, "client.test.example", 2, &info),
	    MAILTLS_STARTTLS_NOT_OFFERED);
	CHECK_EQ(strlen(info.greeting), 999);
	mailtls_free(s);
	conn_finish(&c);
}

static void test_smtp_eof_mid_reply(void)
{
	static const char *const script[] = { ">220 mx\r\n", "<EHLO client.test.example", ">250-mx\r\n250-PIPE", "C", "W", NULL };
	static const char *const at_start[] = { ">220 mx\r\n", "<EHLO client.test.example", "C", "W", NULL };
	expect_failure(MAILTLS_SMTP, 0, script, MAILTLS_E_PROTOCOL, 2);
	expect_failure(MAILTLS_SMTP, 1, script, MAILTLS_E_PROTOCOL, 2);
	expect_failure(MAILTLS_SMTP, 1, at_start, MAILTLS_E_PROTOCOL, 2);
}

static void test_smtp_nul_in_greeting(void)
{
	static const char greeting[] = ">220 mx\0evil\r\n";
	struct conn c;
	struct mailtls_starttls_info info;
	struct mailtls *s;
	static const char *const script[] = { "W", NULL };
	conn_start(&c, 0, script);
	/* The NUL cannot go through a script string: write it here. */
	CHECK(write(c.srv.wfd, greeting + 1, sizeof greeting - 2) == (ssize_t)sizeof greeting - 2);
	CHECK(write(c.srv.wfd, "250 mx\r\n", 8) == 8);
	conn_run_server(&c);
	s = client_for(&c);
	/* The EHLO reply was sent ahead; a NOT_OFFERED proves the greeting parsed. */
	CHECK_EQ(mailtls_starttls_client(s, MAILTLS_SMTP, "client.test.example", 2, &info),
	    MAILTLS_STARTTLS_NOT_OFFERED);
	CHECK_STR(info.greeting, "220 mx?evil\n");
	mailtls_free(s);
	conn_finish(&c);
}

static void test_silent_server_timeout(void)
{
	static const char *const script[] = { "W", NULL };
	expect_failure(MAILTLS_SMTP, 0, script, MAILTLS_E_TIMEOUT, 1);
	CHECK(last_elapsed >= 0.95);
	expect_failure(MAILTLS_IMAP, 1, script, MAILTLS_E_TIMEOUT, 1);
	CHECK(last_elapsed >= 0.95);
}

static void test_slow_drip_timeout(void)
{
	/* A server that dribbles a byte every 300 ms (for 5.7 s) never finishes
	 * its line: the deadline is for the whole reply, not per byte, so the
	 * client gives up while the server is still dribbling; a deadline per
	 * byte would wait past the last byte, to the server's "W". */
	static const char *const script[] = {
		">2", "S300", ">2", "S300", ">0", "S300", ">-", "S300", ">x", "S300", ">x", "S300", ">x", "S300",
		">x", "S300", ">x", "S300", ">x", "S300", ">x", "S300", ">x", "S300", ">x", "S300", ">x", "S300",
		">x", "S300", ">x", "S300", ">x", "S300", ">x", "S300", ">x", "S300", ">x", "W", NULL
	};
	int last = (int)(sizeof script / sizeof script[0]) - 2;   /* the "W" */
	expect_failure(MAILTLS_SMTP, 0, script, MAILTLS_E_TIMEOUT, 1);
	CHECK(last_elapsed >= 0.95);
	CHECK(last_server_step < last);
}

static void test_imap_preauth_and_bye(void)
{
	static const char *const preauth[] = { ">* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] logged in\r\n", "W", NULL };
	static const char *const bye[] = { ">* BYE too many connections\r\n", "W", NULL };
	static const char *const tagged[] = { ">* OK hi\r\n", "<a1 CAPABILITY", ">a9 OK done\r\n", "W", NULL };
	static const char *const literal[] = { ">* OK hi\r\n", "<a1 CAPABILITY", ">* CAPABILITY {5}\r\n", "W", NULL };
	static const char *const bye_later[] = {
		">* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n", "<a2 STARTTLS", ">* BYE going down\r\n", "W", NULL
	};
	expect_failure(MAILTLS_IMAP, 0, preauth, MAILTLS_E_PROTOCOL, 2);
	CHECK_EQ(last_info.greeting_code, 200);
	CHECK(!strncmp(last_info.greeting, "* PREAUTH", 9));
	CHECK_EQ(last_info.starttls_code, 0);
	expect_failure(MAILTLS_IMAP, 0, bye, MAILTLS_E_PROTOCOL, 2);
	CHECK_EQ(last_info.greeting_code, 500);
	CHECK_STR(last_info.greeting, "* BYE too many connections\n");
	expect_failure(MAILTLS_IMAP, 0, tagged, MAILTLS_E_PROTOCOL, 2);
	expect_failure(MAILTLS_IMAP, 0, literal, MAILTLS_E_PROTOCOL, 2);
	expect_failure(MAILTLS_IMAP, 0, bye_later, MAILTLS_E_PROTOCOL, 2);
}

static void test_imap_not_offered_and_refused(void)
{
	static const char *const none[] = { ">* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n", "W", NULL };
	static const char *const no[] = {
		">* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n", "<a2 STARTTLS", ">a2 NO not now\r\n", "W", NULL
	};
	struct conn c;
	struct mailtls_starttls_info info;
	struct mailtls *s;
	s = conn_client(&c, 0, none);
	CHECK_EQ(mailtls_starttls_client(s, MAILTLS_IMAP, NULL, 2, &info), MAILTLS_STARTTLS_NOT_OFFERED);
	CHECK_STR(info.capabilities, "IMAP4rev1\nAUTH=PLAIN\n");
	mailtls_free(s);
	conn_finish(&c);

	s = conn_client(&c, 0, no);
	CHECK_EQ(mailtls_starttls_client(s, MAILTLS_IMAP, NULL, 2, &info), MAILTLS_STARTTLS_REFUSED);
	CHECK_EQ(info.starttls_code, 400);
	mailtls_free(s);
	conn_finish(&c);
}

static void test_pop3_without_capa(void)
{
	static const char *const script[] = {
		">+OK old POP3\r\n", "<CAPA", ">-ERR unknown command\r\n+OK next\r\n", "W", NULL
	};
	struct conn c;
	struct mailtls_starttls_info info;
	struct mailtls *s;
	s = conn_client(&c, 0, script);
	CHECK_EQ(mailtls_starttls_client(s, MAILTLS_POP3, NULL, 2, &info), MAILTLS_STARTTLS_NOT_OFFERED);
	CHECK_EQ(info.greeting_code, 200);
	CHECK_EQ(info.ehlo_code, 500);
	CHECK_STR(info.ehlo, "-ERR unknown command\n");
	CHECK_STR(info.capabilities, "");
	expect_next_plain(&c, "+OK next\r\n");
	mailtls_free(s);
	conn_finish(&c);
}

static void test_pop3_bad(void)
{
	static const char *const err_greeting[] = { ">-ERR go away\r\n", "W", NULL };
	static const char *const lower[] = { ">+ok hi\r\n", "W", NULL };
	static const char *const stls_err[] = {
		">+OK hi\r\n", "<CAPA", ">+OK\r\nSTLS\r\n.\r\n", "<STLS", ">-ERR not now\r\n", "W", NULL
	};
	static const char *const no_end[] = { ">+OK hi\r\n", "<CAPA", ">+OK\r\nSTLS\r\n", "C", "W", NULL };
	struct conn c;
	struct mailtls_starttls_info info;
	struct mailtls *s;
	expect_failure(MAILTLS_POP3, 0, err_greeting, MAILTLS_E_PROTOCOL, 2);
	CHECK_EQ(last_info.greeting_code, 500);
	expect_failure(MAILTLS_POP3, 0, lower, MAILTLS_E_PROTOCOL, 2);
	expect_failure(MAILTLS_POP3, 0, no_end, MAILTLS_E_PROTOCOL, 2);
	s = conn_client(&c, 0, stls_err);
	CHECK_EQ(mailtls_starttls_client(s, MAILTLS_POP3, NULL, 2, &info), MAILTLS_STARTTLS_REFUSED);
	CHECK_EQ(info.starttls_code, 500);
	mailtls_free(s);
	conn_finish(&c);
}

/* ------------------------------------------------------------------ */
/* Verification, usage                                                  */
/* ------------------------------------------------------------------ */

static void test_smtp_wrong_name(void)
{
	static const char *const script[] = {
		">220 mx ESMTP\r\n", "<EHLO client.test.example", ">250-mx\r\n250 STARTTLS\r\n",
		"<STARTTLS", ">220 go\r\n", "T?", NULL
	};
	struct conn c;
	struct mailtls *s;
	conn_start(&c, 0, script);
	c.srv.cert = "wrongname.pem";
	c.srv.key = "wrongname.key";
	conn_run_server(&c);
	s = client_for(&c);
	expect_err(s, mailtls_starttls_client(s, MAILTLS_SMTP, "client.test.example", 2, NULL),
	    MAILTLS_E_VERIFY_NAME);
	mailtls_free(s);
	conn_finish(&c);
}

static void test_usage(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_starttls_info info;
	struct mailtls *s;
	int sv[2];
	tu_socketpair(sv);
	s = mailtls_server(sc, sv[0], sv[0]);
	CHECK(s);
	expect_err(s, mailtls_starttls_client(s, MAILTLS_SMTP, "x.example", 1, &info), MAILTLS_E_USAGE);
	mailtls_free(s);
	s = mailtls_client(ccfg, sv[0], sv[0], "localhost");
	expect_err(s, mailtls_starttls_client(s, MAILTLS_SMTP, "a b", 1, &info), MAILTLS_E_USAGE);
	expect_err(s, mailtls_starttls_client(s, MAILTLS_SMTP, "a\r\nRSET", 1, &info), MAILTLS_E_USAGE);
	expect_err(s, mailtls_starttls_client(s, MAILTLS_SMTP, NULL, 1, &info), MAILTLS_E_USAGE);
	expect_err(s, mailtls_starttls_client(s, 9, "x", 1, &info), MAILTLS_E_USAGE);
	expect_err(s, mailtls_smtp_ehlo(s, "x.example", 1, &info), MAILTLS_E_USAGE);
	mailtls_free(s);
	s = mailtls_client_mem(ccfg, "localhost");
	expect_err(s, mailtls_starttls_client(s, MAILTLS_POP3, NULL, 1, &info), MAILTLS_E_USAGE);
	mailtls_free(s);
	CHECK_EQ(mailtls_starttls_client(NULL, MAILTLS_SMTP, "x", 1, &info), -1);
	CHECK_EQ(mailtls_smtp_has_capability(NULL, "X"), 0);
	close(sv[0]);
	close(sv[1]);
	mailtls_config_free(sc);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	ccfg = tu_client_config();
	RUN(test_smtp_honest_socket);
	RUN(test_smtp_honest_pipes);
	RUN(test_smtp_out_null_and_bare_lf);
	RUN(test_pop3_honest);
	RUN(test_imap_honest_greeting_caps);
	RUN(test_imap_honest_capability_command);
	RUN(test_smtp_injection);
	RUN(test_smtp_injection_multiline_220);
	RUN(test_smtp_injection_half_line);
	RUN(test_pop3_injection);
	RUN(test_imap_injection);
	RUN(test_smtp_late_plaintext_breaks_handshake);
	RUN(test_smtp_not_offered_socket);
	RUN(test_smtp_not_offered_pipes);
	RUN(test_smtp_454);
	RUN(test_smtp_starttls_odd_replies);
	RUN(test_smtp_helo_only);
	RUN(test_smtp_helo_refused);
	RUN(test_smtp_greeting_421);
	RUN(test_smtp_greeting_554_multiline);
	RUN(test_smtp_mixed_codes);
	RUN(test_smtp_malformed_lines);
	RUN(test_smtp_endless_continuation);
	RUN(test_smtp_overlong_line);
	RUN(test_smtp_line_limit_exact);
	RUN(test_smtp_eof_mid_reply);
	RUN(test_smtp_nul_in_greeting);
	RUN(test_silent_server_timeout);
	RUN(test_slow_drip_timeout);
	RUN(test_imap_preauth_and_bye);
	RUN(test_imap_not_offered_and_refused);
	RUN(test_pop3_without_capa);
	RUN(test_pop3_bad);
	RUN(test_smtp_wrong_name);
	RUN(test_usage);
	mailtls_config_free(ccfg);
	fprintf(stderr, "all passed\n");
	return 0;
}
