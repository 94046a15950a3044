/* test_proxy.c -- the server STARTTLS proxy's state machine
 * (mailtls_proxy_*_line): capability rewriting, STARTTLS answered, the
 * injection rule (S1), message data and literals never read as commands,
 * refusals (S3-S5), IMAP tags that could not be tracked; and its driver
 * mailtls_proxy_run with a TLS client over a socketpair or over pipes
 * (the reason a refused session gives). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mailtls.h"
#include "testutil.h"

static struct mailtls_proxy_out o;
static char got[16384];

static const char *str(const char *p, size_t n)
{
	memcpy(got, p, n);
	got[n] = 0;
	return got;
}

/* client line -> action; the bytes are in |o| */
static int cl(struct mailtls_proxy *p, const char *line, int more)
{
	int a = mailtls_proxy_client_line(p, line, strlen(line), more, &o);
	CHECK(a >= 0);
	return a;
}

static const char *sv(struct mailtls_proxy *p, const char *line)
{
	CHECK_EQ(mailtls_proxy_server_line(p, line, strlen(line), &o), MAILTLS_PROXY_CONTINUE);
	return str(o.client, o.client_len);
}

static const char *toprog(void) { return str(o.prog, o.prog_len); }
static const char *toclient(void) { return str(o.client, o.client_len); }

static struct mailtls_proxy *smtp(int flags)
{
	struct mailtls_proxy *p = mailtls_proxy_new(MAILTLS_SMTP, flags);
	CHECK(p);
	CHECK_STR(sv(p, "220 mx ESMTP\r\n"), "220 mx ESMTP\r\n");
	return p;
}

static void ehlo(struct mailtls_proxy *p)
{
	CHECK_EQ(cl(p, "EHLO c\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(toprog(), "EHLO c\r\n");
	sv(p, "250-mx\r\n");
	sv(p, "250 PIPELINING\r\n");
}

static void to_tls(struct mailtls_proxy *p, const char *cmd)
{
	CHECK_EQ(cl(p, cmd, 0), MAILTLS_PROXY_STARTTLS);
	CHECK_EQ(mailtls_proxy_tls_started(p, &o), 0);
}

static void test_smtp_ehlo_rewrite(void)
{
	struct mailtls_proxy *p = smtp(0);
	CHECK_EQ(cl(p, "EHLO c\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(sv(p, "250-mx\r\n"), "");
	CHECK_STR(sv(p, "250-PIPELINING\r\n"), "250-mx\r\n");
	CHECK_STR(sv(p, "250-CHUNKING\r\n"), "");
	CHECK_STR(sv(p, "250-AUTH LOGIN PLAIN\r\n"), "250-PIPELINING\r\n");
	CHECK_STR(sv(p, "250 8BITMIME\r\n"), "250-AUTH LOGIN PLAIN\r\n250-8BITMIME\r\n250 STARTTLS\r\n");
	/* a one-line reply */
	CHECK_EQ(cl(p, "EHLO c\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(sv(p, "250 mx\r\n"), "250-mx\r\n250 STARTTLS\r\n");
	/* HELO untouched */
	CHECK_EQ(cl(p, "HELO c\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(sv(p, "250 mx\r\n"), "250 mx\r\n");
	/* a refused EHLO untouched */
	CHECK_EQ(cl(p, "EHLO c\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(sv(p, "502 unimplemented\r\n"), "502 unimplemented\r\n");
	mailtls_proxy_free(p);
}

static void test_smtp_starttls(void)
{
	struct mailtls_proxy *p = smtp(0);
	ehlo(p);
	CHECK_EQ(cl(p, "STARTTLS x\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK(!strncmp(toclient(), "501 ", 4));
	CHECK_EQ(cl(p, "starttls\r\n", 0), MAILTLS_PROXY_STARTTLS);
	CHECK_STR(toclient(), "220 2.0.0 Ready to start TLS\r\n");
	CHECK_EQ(o.prog_len, 0);
	CHECK_EQ(mailtls_proxy_tls_started(p, &o), 0);
	CHECK_STR(toprog(), "RSET\r\n");
	CHECK_STR(sv(p, "250 flushed\r\n"), "");      /* swallowed */
	/* S3: a new EHLO first */
	CHECK_EQ(cl(p, "RCPT TO:<a@b>\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK(!strncmp(toclient(), "503 5.5.1", 9));
	CHECK_EQ(o.prog_len, 0);
	CHECK_EQ(cl(p, "EHLO c\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(sv(p, "250-mx\r\n"), "");
	CHECK_STR(sv(p, "250-STARTTLS\r\n"), "");     /* a patched program's: hidden */
	CHECK_STR(sv(p, "250 PIPELINING\r\n"), "250-mx\r\n250 PIPELINING\r\n");
	/* S4: a second STARTTLS */
	CHECK_EQ(cl(p, "STARTTLS\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK(!strncmp(toclient(), "503 ", 4));
	CHECK_EQ(cl(p, "RCPT TO:<a@b>\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(toprog(), "RCPT TO:<a@b>\r\n");
	mailtls_proxy_free(p);
}

static void test_smtp_pipelined(void)
{
	/* S1: bytes after STARTTLS: one 503, then close. */
	struct mailtls_proxy *p = smtp(0);
	ehlo(p);
	CHECK_EQ(cl(p, "STARTTLS\r\n", 1), MAILTLS_PROXY_CLOSE);
	CHECK_STR(toclient(), "503 5.5.1 Plaintext pipelined after STARTTLS, closing\r\n");
	CHECK_EQ(o.prog_len, 0);
	CHECK_EQ(cl(p, "RSET\r\n", 0), MAILTLS_PROXY_CLOSE);
	CHECK_EQ(o.client_len + o.prog_len, 0);
	mailtls_proxy_free(p);
	/* EHLO, STARTTLS pipelined before the EHLO reply: STARTTLS waits for it. */
	p = smtp(0);
	CHECK_EQ(cl(p, "EHLO x\r\n", 1), MAILTLS_PROXY_CONTINUE);
	CHECK_EQ(cl(p, "STARTTLS\r\n", 1), MAILTLS_PROXY_WAIT);
	sv(p, "250 mx\r\n");
	CHECK_EQ(cl(p, "STARTTLS\r\n", 1), MAILTLS_PROXY_CLOSE);
	mailtls_proxy_free(p);
}

static void test_smtp_data(void)
{
	struct mailtls_proxy *p = smtp(0);
	ehlo(p);
	CHECK_EQ(cl(p, "MAIL FROM:<a@b>\r\n", 0), MAILTLS_PROXY_CONTINUE);
	sv(p, "250 ok\r\n");
	/* S4: STARTTLS inside a transaction */
	CHECK_EQ(cl(p, "STARTTLS\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK(!strncmp(toclient(), "503 ", 4));
	CHECK_EQ(cl(p, "RCPT TO:<c@d>\r\n", 0), MAILTLS_PROXY_CONTINUE);
	sv(p, "250 ok\r\n");
	CHECK_EQ(cl(p, "DATA\r\n", 0), MAILTLS_PROXY_CONTINUE);
	/* before the 354 nothing is read as a command */
	CHECK_EQ(cl(p, "STARTTLS\r\n", 0), MAILTLS_PROXY_WAIT);
	sv(p, "354 go ahead\r\n");
	CHECK_EQ(cl(p, "STARTTLS\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(toprog(), "STARTTLS\r\n");
	CHECK_EQ(o.client_len, 0);
	/* a chunk without LF, then its end: not a line start */
	CHECK_EQ(mailtls_proxy_client_line(p, "xx", 2, 0, &o), MAILTLS_PROXY_CONTINUE);
	CHECK_EQ(cl(p, ".\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_EQ(cl(p, "..\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_EQ(cl(p, ".\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(toprog(), ".\r\n");
	CHECK_EQ(cl(p, "STARTTLS\r\n", 0), MAILTLS_PROXY_WAIT);   /* the reply to the dot first */
	sv(p, "250 ok 1\r\n");
	CHECK_EQ(cl(p, "STARTTLS\r\n", 0), MAILTLS_PROXY_STARTTLS);
	mailtls_proxy_free(p);
}

static void test_smtp_auth(void)
{
	struct mailtls_proxy *p = smtp(MAILTLS_PROXY_HIDE_AUTH);
	CHECK_EQ(cl(p, "EHLO c\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(sv(p, "250-mx\r\n"), "");
	CHECK_STR(sv(p, "250 AUTH LOGIN\r\n"), "250-mx\r\n250 STARTTLS\r\n");
	CHECK_EQ(cl(p, "AUTH LOGIN\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_EQ(cl(p, "STARTTLS\r\n", 0), MAILTLS_PROXY_WAIT);
	sv(p, "334 VXNlcm5hbWU6\r\n");
	CHECK_EQ(cl(p, "STARTTLS\r\n", 0), MAILTLS_PROXY_CONTINUE);   /* a SASL response */
	CHECK_STR(toprog(), "STARTTLS\r\n");
	sv(p, "235 ok\r\n");
	CHECK_EQ(cl(p, "STARTTLS\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(toclient(), "503 5.5.1 STARTTLS not allowed after AUTH\r\n");
	mailtls_proxy_free(p);
	/* S5: require TLS */
	p = smtp(MAILTLS_PROXY_REQUIRE_TLS);
	ehlo(p);
	CHECK_EQ(cl(p, "AUTH PLAIN AGIAYw==\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK(!strncmp(toclient(), "530 5.7.0", 9));
	CHECK_EQ(o.prog_len, 0);
	CHECK_EQ(cl(p, "MAIL FROM:<a@b>\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK(!strncmp(toclient(), "530 5.7.0", 9));
	to_tls(p, "STARTTLS\r\n");
	sv(p, "250 flushed\r\n");
	ehlo(p);
	CHECK_EQ(cl(p, "MAIL FROM:<a@b>\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(toprog(), "MAIL FROM:<a@b>\r\n");
	mailtls_proxy_free(p);
}

static void test_pop3(void)
{
	struct mailtls_proxy *p = mailtls_proxy_new(MAILTLS_POP3, MAILTLS_PROXY_REQUIRE_TLS);
	CHECK(p);
	sv(p, "+OK <1.2@h>\r\n");
	/* qmail-popup has no CAPA: answered here */
	CHECK_EQ(cl(p, "CAPA\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(sv(p, "-ERR authorization first\r\n"), "+OK Capability list follows\r\nSTLS\r\nUSER\r\n.\r\n");
	CHECK_EQ(cl(p, "USER u\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK(!strncmp(toclient(), "-ERR", 4));
	CHECK_EQ(o.prog_len, 0);
	CHECK_EQ(cl(p, "STLS\r\n", 1), MAILTLS_PROXY_CLOSE);   /* S1 */
	CHECK(!strncmp(toclient(), "-ERR", 4));
	mailtls_proxy_free(p);

	p = mailtls_proxy_new(MAILTLS_POP3, MAILTLS_PROXY_HIDE_AUTH);
	sv(p, "+OK <1.2@h>\r\n");
	CHECK_EQ(cl(p, "CAPA\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(sv(p, "+OK\r\n"), "+OK\r\n");
	CHECK_STR(sv(p, "SASL PLAIN\r\n"), "");
	CHECK_STR(sv(p, "STLS\r\n"), "");
	CHECK_STR(sv(p, "USER\r\n"), "USER\r\n");
	CHECK_STR(sv(p, ".\r\n"), "STLS\r\n.\r\n");
	CHECK_EQ(cl(p, "STLS\r\n", 0), MAILTLS_PROXY_STARTTLS);
	CHECK_STR(toclient(), "+OK Begin TLS negotiation\r\n");
	CHECK_EQ(mailtls_proxy_tls_started(p, &o), 0);
	CHECK_EQ(o.prog_len, 0);
	CHECK_EQ(cl(p, "STLS\r\n", 0), MAILTLS_PROXY_CONTINUE);   /* S4 */
	CHECK(!strncmp(toclient(), "-ERR", 4));
	CHECK_EQ(cl(p, "CAPA\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(sv(p, "-ERR no\r\n"), "+OK Capability list follows\r\nUSER\r\n.\r\n");
	/* a message body holding ".STLS" and "STLS" is not a CAPA */
	CHECK_EQ(cl(p, "RETR 1\r\n", 0), MAILTLS_PROXY_CONTINUE);
	sv(p, "+OK\r\n");
	CHECK_STR(sv(p, "STLS\r\n"), "STLS\r\n");
	sv(p, ".\r\n");
	mailtls_proxy_free(p);

	/* after USER, STLS is refused */
	p = mailtls_proxy_new(MAILTLS_POP3, 0);
	sv(p, "+OK <1.2@h>\r\n");
	CHECK_EQ(cl(p, "USER u\r\n", 0), MAILTLS_PROXY_CONTINUE);
	sv(p, "+OK\r\n");
	CHECK_EQ(cl(p, "STLS\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK(!strncmp(toclient(), "-ERR", 4));
	mailtls_proxy_free(p);
}

static void test_imap(void)
{
	struct mailtls_proxy *p = mailtls_proxy_new(MAILTLS_IMAP, MAILTLS_PROXY_REQUIRE_TLS | MAILTLS_PROXY_HIDE_AUTH);
	CHECK(p);
	CHECK_STR(sv(p, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"),
	    "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n");
	CHECK_EQ(cl(p, "a CAPABILITY\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(sv(p, "* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN\r\n"),
	    "* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n");
	CHECK_EQ(cl(p, "b NOOP\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_EQ(cl(p, "c STARTTLS\r\n", 0), MAILTLS_PROXY_WAIT);
	sv(p, "a OK done\r\n");
	CHECK_EQ(cl(p, "c STARTTLS\r\n", 0), MAILTLS_PROXY_WAIT);
	sv(p, "b OK done\r\n");
	/* S5 */
	CHECK_EQ(cl(p, "d LOGIN u p\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(toclient(), "d NO [PRIVACYREQUIRED] TLS required: use STARTTLS first\r\n");
	CHECK_EQ(o.prog_len, 0);
	/* a non-synchronizing literal of a refused command is dropped, not read */
	CHECK_EQ(cl(p, "e LOGIN {12+}\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_EQ(cl(p, "a STARTTLS\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_EQ(o.client_len + o.prog_len, 0);
	CHECK_EQ(cl(p, " x\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_EQ(o.client_len + o.prog_len, 0);
	/* a literal forwarded: its bytes are data */
	CHECK_EQ(cl(p, "f APPEND inbox {12+}\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_EQ(cl(p, "a STARTTLS\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(toprog(), "a STARTTLS\r\n");
	CHECK_EQ(cl(p, "\r\n", 0), MAILTLS_PROXY_CONTINUE);
	sv(p, "f NO not now\r\n");
	/* a synchronizing literal: data once the program says "+" */
	CHECK_EQ(cl(p, "g APPEND inbox {12}\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_EQ(cl(p, "a STARTTLS\r\n", 0), MAILTLS_PROXY_WAIT);
	sv(p, "+ go\r\n");
	CHECK_EQ(cl(p, "a STARTTLS\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(toprog(), "a STARTTLS\r\n");
	CHECK_EQ(cl(p, "\r\n", 0), MAILTLS_PROXY_CONTINUE);
	sv(p, "g NO not now\r\n");
	/* ... refused before the "+": no literal follows */
	CHECK_EQ(cl(p, "h APPEND inbox {12}\r\n", 0), MAILTLS_PROXY_CONTINUE);
	sv(p, "h NO no\r\n");
	/* S1 */
	CHECK_EQ(cl(p, "a STARTTLS\r\n", 1), MAILTLS_PROXY_CLOSE);
	CHECK_STR(toclient(), "a BAD plaintext pipelined after STARTTLS, closing\r\n");
	mailtls_proxy_free(p);

	p = mailtls_proxy_new(MAILTLS_IMAP, 0);
	sv(p, "* OK ready\r\n");
	CHECK_EQ(cl(p, "a STARTTLS\r\n", 0), MAILTLS_PROXY_STARTTLS);
	CHECK_STR(toclient(), "a OK Begin TLS negotiation now\r\n");
	CHECK_EQ(mailtls_proxy_tls_started(p, &o), 0);
	CHECK_EQ(cl(p, "b CAPABILITY\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(sv(p, "* CAPABILITY IMAP4rev1 AUTH=PLAIN STARTTLS\r\n"), "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n");
	sv(p, "b OK done\r\n");
	CHECK_EQ(cl(p, "c STARTTLS\r\n", 0), MAILTLS_PROXY_CONTINUE);   /* S4 */
	CHECK_STR(toclient(), "c BAD TLS already active\r\n");
	/* a server literal holding a tagged line is not a completion */
	CHECK_EQ(cl(p, "d LOGIN u p\r\n", 0), MAILTLS_PROXY_CONTINUE);
	sv(p, "d OK logged in\r\n");
	CHECK_EQ(cl(p, "e FETCH 1 BODY[]\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(sv(p, "* 1 FETCH (BODY[] {32}\r\n"), "* 1 FETCH (BODY[] {32}\r\n");
	CHECK_STR(sv(p, "* CAPABILITY STARTTLS\r\n"), "* CAPABILITY STARTTLS\r\n");
	sv(p, "e OK x\r\n");   /* 8 bytes: 31 ... */
	sv(p, ")\r\n");
	mailtls_proxy_free(p);
}

static void test_imap_tags(void)
{
	char tag[80], line[256];
	struct mailtls_proxy *p = mailtls_proxy_new(MAILTLS_IMAP, 0);
	CHECK(p);
	sv(p, "* OK ready\r\n");
	/* 63 bytes: tracked (its STARTTLS waits for its completion) */
	memset(tag, 'a', 63);
	tag[63] = 0;
	snprintf(line, sizeof line, "%s NOOP\r\n", tag);
	CHECK_EQ(cl(p, line, 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(toprog(), line);
	CHECK_EQ(cl(p, "s STARTTLS\r\n", 0), MAILTLS_PROXY_WAIT);
	snprintf(line, sizeof line, "%s OK done\r\n", tag);
	sv(p, line);
	/* 64 bytes and more, "*", "+", a tag with a bracket or a quote: refused
	 * here, never queued; no number of them fills the queue */
	memset(tag, 'b', 64);
	tag[64] = 0;
	snprintf(line, sizeof line, "%s NOOP\r\n", tag);
	for (int i = 0; i < 200; i++) {
		CHECK_EQ(cl(p, line, 0), MAILTLS_PROXY_CONTINUE);
		CHECK_STR(toclient(), "* BAD invalid or overlong command tag\r\n");
		CHECK_EQ(o.prog_len, 0);
	}
	CHECK_EQ(cl(p, "* NOOP\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_STR(toclient(), "* BAD invalid or overlong command tag\r\n");
	CHECK_EQ(cl(p, "+ NOOP\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_EQ(cl(p, "a(b NOOP\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_EQ(cl(p, "\"a\" NOOP\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_EQ(o.prog_len, 0);
	/* the literal of a refused command is dropped, not read as a command */
	snprintf(line, sizeof line, "%s APPEND inbox {12+}\r\n", tag);
	CHECK_EQ(cl(p, line, 0), MAILTLS_PROXY_CONTINUE);
	CHECK_EQ(cl(p, "c STARTTLS\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_EQ(o.client_len + o.prog_len, 0);
	CHECK_EQ(cl(p, "\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_EQ(o.client_len + o.prog_len, 0);
	/* behind a queued command the refusal waits its turn */
	CHECK_EQ(cl(p, "d NOOP\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK_EQ(cl(p, "* NOOP\r\n", 0), MAILTLS_PROXY_WAIT);
	sv(p, "d OK done\r\n");
	CHECK_EQ(cl(p, "* NOOP\r\n", 0), MAILTLS_PROXY_CONTINUE);
	CHECK(!strncmp(toclient(), "* BAD", 5));
	/* a tag with "]" is fine (RFC 3501 ASTRING-CHAR) */
	CHECK_EQ(cl(p, "e] STARTTLS\r\n", 0), MAILTLS_PROXY_STARTTLS);
	CHECK_STR(toclient(), "e] OK Begin TLS negotiation now\r\n");
	mailtls_proxy_free(p);
}

/* ---- mailtls_proxy_run: the proxy in a thread; the test is the client
 * (plaintext, then TLS) and the program (two pipes). */

#define WAIT_MS 20000   /* a guard against a hang, never a measure */

struct run {
	pthread_t th;
	struct mailtls_proxy *px;
	struct mailtls *s;
	struct mailtls_proxy_io io;
	int ret, errcode;
	int prog_out;   /* the program's output: the test writes */
	int prog_in;    /* the program's input: the test reads */
};

static void *run_thread(void *arg)
{
	struct run *r = arg;
	r->ret = mailtls_proxy_run(r->px, r->s, &r->io);
	r->errcode = mailtls_errcode(r->s);
	return NULL;
}

static void run_start(struct run *r, int proto, struct mailtls_config *cfg, int rfd, int wfd)
{
	int out[2], in[2];
	memset(r, 0, sizeof *r);
	CHECK(pipe(out) == 0 && pipe(in) == 0);
	CHECK((r->px = mailtls_proxy_new(proto, 0)) != NULL);
	CHECK((r->s = mailtls_server(cfg, rfd, wfd)) != NULL);
	r->io.prog_rfd = out[0];
	r->io.prog_wfd = in[1];
	r->io.handshake_secs = 20;
	r->io.io_secs = 20;
	r->prog_out = out[1];
	r->prog_in = in[0];
	CHECK(pthread_create(&r->th, NULL, run_thread, r) == 0);
}

static void run_end(struct run *r)
{
	if (r->prog_out >= 0)
		close(r->prog_out);
	CHECK(pthread_join(r->th, NULL) == 0);
	close(r->prog_in);
	close(r->io.prog_rfd);     /* io.prog_wfd: closed by mailtls_proxy_run */
	mailtls_free(r->s);
	mailtls_proxy_free(r->px);
}

static void put(int fd, const char *text)
{
	CHECK_EQ(write(fd, text, strlen(text)), (ssize_t)strlen(text));
}

/* One line from a plain descriptor, up to its LF; "" at end of file. */
static const char *fd_line(int fd)
{
	size_t n = 0;
	while (n < sizeof got - 1) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		ssize_t k;
		CHECK(poll(&pf, 1, WAIT_MS) == 1);
		k = read(fd, got + n, 1);
		CHECK(k >= 0);
		if (k == 0 || got[n++] == '\n')
			break;
	}
	got[n] = 0;
	return got;
}

/* One line through a TLS session; "" at its end. */
static const char *tls_line(struct mailtls *c)
{
	size_t n = 0;
	while (n < sizeof got - 1) {
		ssize_t k = mailtls_timeoutread(WAIT_MS / 1000, c, got + n, 1);
		CHECK_OK(c, k);
		if (k == 0 || got[n++] == '\n')
			break;
	}
	got[n] = 0;
	return got;
}

static void tls_put(struct mailtls *c, const char *text)
{
	CHECK_OK(c, mailtls_timeoutwrite(WAIT_MS / 1000, c, text, strlen(text)));
}

/* The SMTP dialogue up to TLS: greeting, EHLO, STARTTLS, handshake, the
 * proxy's RSET.  |crfd|/|cwfd|: the client's descriptors. */
static void smtp_to_tls(struct run *r, struct mailtls *c, int crfd, int cwfd)
{
	put(r->prog_out, "220 mx ESMTP\r\n");
	CHECK_STR(fd_line(crfd), "220 mx ESMTP\r\n");
	put(cwfd, "EHLO c\r\n");
	CHECK_STR(fd_line(r->prog_in), "EHLO c\r\n");
	put(r->prog_out, "250 mx\r\n");
	CHECK_STR(fd_line(crfd), "250-mx\r\n");
	CHECK_STR(fd_line(crfd), "250 STARTTLS\r\n");
	put(cwfd, "STARTTLS\r\n");
	CHECK_STR(fd_line(crfd), "220 2.0.0 Ready to start TLS\r\n");
	CHECK_OK(c, mailtls_handshake_timeout(c, WAIT_MS / 1000));
	CHECK_STR(fd_line(r->prog_in), "RSET\r\n");
	put(r->prog_out, "250 flushed\r\n");
}

/* The client on two pipes, not a socket: lines before TLS, the handshake
 * and the session after it all work there. */
static void test_run_pipes(void)
{
	struct mailtls_config *scfg = tu_server_config("server-ec.pem", "server-ec.key"), *ccfg = tu_client_config();
	int c2p[2], p2c[2];
	struct mailtls *c;
	struct run r;
	CHECK(pipe(c2p) == 0 && pipe(p2c) == 0);
	run_start(&r, MAILTLS_SMTP, scfg, c2p[0], p2c[1]);
	CHECK((c = mailtls_client(ccfg, p2c[0], c2p[1], "localhost")) != NULL);
	smtp_to_tls(&r, c, p2c[0], c2p[1]);
	tls_put(c, "EHLO c\r\n");
	CHECK_STR(fd_line(r.prog_in), "EHLO c\r\n");
	/* A multi-line reply in one write reaches the client in one record
	 * (one read returns all of it), not a record a line. */
	put(r.prog_out, "250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
	{
		ssize_t k = mailtls_timeoutread(WAIT_MS / 1000, c, got, sizeof got - 1);
		CHECK_OK(c, k);
		got[k] = 0;
		CHECK_STR(got, "250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
	}
	tls_put(c, "QUIT\r\n");
	CHECK_STR(fd_line(r.prog_in), "QUIT\r\n");
	put(r.prog_out, "221 bye\r\n");
	close(r.prog_out);
	r.prog_out = -1;
	CHECK_STR(tls_line(c), "221 bye\r\n");
	CHECK_STR(tls_line(c), "");            /* close_notify */
	run_end(&r);
	CHECK_EQ(r.ret, 0);
	mailtls_free(c);
	for (int i = 0; i < 2; i++) {
		close(c2p[i]);
		close(p2c[i]);
	}
	mailtls_config_free(scfg);
	mailtls_config_free(ccfg);
}

/* Before TLS the client sends |text| after the greeting, gets |reply|, and
 * the proxy ends with -1 and |code|. */
static void plain_refusal(struct mailtls_config *scfg, const char *text, const char *reply, int code)
{
	struct run r;
	int sv[2];
	tu_socketpair(sv);
	run_start(&r, MAILTLS_SMTP, scfg, sv[0], sv[0]);
	put(r.prog_out, "220 mx ESMTP\r\n");
	CHECK_STR(fd_line(sv[1]), "220 mx ESMTP\r\n");
	put(sv[1], text);
	CHECK_STR(fd_line(sv[1]), reply);
	run_end(&r);
	CHECK_EQ(r.ret, -1);
	CHECK_EQ(r.errcode, code);
	close(sv[0]);
	close(sv[1]);
}

/* A refused session says why: plaintext pipelined after STARTTLS is an
 * injection, an overlong command line (here under TLS) a protocol error. */
static void test_run_close_reasons(void)
{
	struct mailtls_config *scfg = tu_server_config("server-ec.pem", "server-ec.key"), *ccfg = tu_client_config();
	char big[MAILTLS_PROXY_CHUNK + 100];
	struct mailtls *c;
	struct run r;
	int sv[2];

	plain_refusal(scfg, "STARTTLS\r\nRSET\r\n", "503 5.5.1 Plaintext pipelined after STARTTLS, closing\r\n",
	    MAILTLS_E_INJECTION);
	/* before TLS the limit is 1000 bytes */
	memset(big, 'x', 1100);
	memcpy(big, "EHLO ", 5);
	memcpy(big + 1100, "\r\n", 3);
	plain_refusal(scfg, big, "500 5.5.2 Line too long\r\n", MAILTLS_E_PROTOCOL);

	tu_socketpair(sv);
	run_start(&r, MAILTLS_SMTP, scfg, sv[0], sv[0]);
	CHECK((c = mailtls_client(ccfg, sv[1], sv[1], "localhost")) != NULL);
	smtp_to_tls(&r, c, sv[1], sv[1]);
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = 0;
	memcpy(big, "EHLO ", 5);
	tls_put(c, big);
	CHECK_STR(tls_line(c), "500 5.5.2 Line too long\r\n");
	run_end(&r);
	CHECK_EQ(r.ret, -1);
	CHECK_EQ(r.errcode, MAILTLS_E_PROTOCOL);
	mailtls_free(c);
	close(sv[0]);
	close(sv[1]);
	mailtls_config_free(scfg);
	mailtls_config_free(ccfg);
}

/* Before TLS a message line longer than a command may be (3000 bytes,
 * and a bare LF) reaches the program as it came, in parts; the lone dot
 * still ends the data. */
static void test_run_plain_long_data_line(void)
{
	struct mailtls_config *scfg = tu_server_config("server-ec.pem", "server-ec.key");
	char line[3003];
	struct run r;
	int sv[2];
	tu_socketpair(sv);
	run_start(&r, MAILTLS_SMTP, scfg, sv[0], sv[0]);
	put(r.prog_out, "220 mx ESMTP\r\n");
	CHECK_STR(fd_line(sv[1]), "220 mx ESMTP\r\n");
	put(sv[1], "HELO c\r\n");
	CHECK_STR(fd_line(r.prog_in), "HELO c\r\n");
	put(r.prog_out, "250 mx\r\n");
	CHECK_STR(fd_line(sv[1]), "250 mx\r\n");
	put(sv[1], "DATA\r\n");
	CHECK_STR(fd_line(r.prog_in), "DATA\r\n");
	put(r.prog_out, "354 go\r\n");
	CHECK_STR(fd_line(sv[1]), "354 go\r\n");
	for (size_t i = 0; i < 3000; i++)
		line[i] = (char)('a' + i % 26);
	memcpy(line + 3000, "\r\n", 3);
	put(sv[1], line);
	put(sv[1], "bare\n.\r\n");
	CHECK_STR(fd_line(r.prog_in), line);
	CHECK_STR(fd_line(r.prog_in), "bare\n");
	CHECK_STR(fd_line(r.prog_in), ".\r\n");
	put(r.prog_out, "250 queued\r\n");
	CHECK_STR(fd_line(sv[1]), "250 queued\r\n");
	put(sv[1], "QUIT\r\n");
	CHECK_STR(fd_line(r.prog_in), "QUIT\r\n");
	put(r.prog_out, "221 bye\r\n");
	close(r.prog_out);
	r.prog_out = -1;
	CHECK_STR(fd_line(sv[1]), "221 bye\r\n");
	run_end(&r);
	CHECK_EQ(r.ret, 0);
	close(sv[0]);
	close(sv[1]);
	mailtls_config_free(scfg);
}

static void test_args(void)
{
	struct mailtls_proxy *p = mailtls_proxy_new(MAILTLS_SMTP, 0);
	CHECK(!mailtls_proxy_new(9, 0));
	CHECK(!mailtls_proxy_new(MAILTLS_SMTP, 64));
	CHECK_EQ(mailtls_proxy_tls_started(p, &o), -1);
	/* an overlong command: one error, close */
	CHECK_EQ(mailtls_proxy_client_line(p, "EHLO xxxx", 9, 0, &o), MAILTLS_PROXY_CLOSE);
	mailtls_proxy_free(p);
	mailtls_proxy_free(NULL);
}

int main(void)
{
	RUN(test_smtp_ehlo_rewrite);
	RUN(test_smtp_starttls);
	RUN(test_smtp_pipelined);
	RUN(test_smtp_data);
	RUN(test_smtp_auth);
	RUN(test_pop3);
	RUN(test_imap);
	RUN(test_imap_tags);
	RUN(test_args);
	signal(SIGPIPE, SIG_IGN);
	RUN(test_run_pipes);
	RUN(test_run_close_reasons);
	RUN(test_run_plain_long_data_line);
	return 0;
}
