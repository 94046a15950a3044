/*
 * fuzz_starttls.c -- mailtls_starttls_client (SMTP, POP3, IMAP) against a
 * scripted server whose bytes arrive in pieces the fuzzer chooses, with an
 * oracle for plaintext injection (CVE-2011-0411 class, security.md C2).
 *
 * Input: byte 0: bits 0-1 the protocol (0 SMTP, 1 POP3, 2 IMAP, 3 SMTP),
 * bit 2 pipes instead of a socketpair.  The rest is what the server sends,
 * cut into pieces at each byte 0xff (0xff 0xff stands for one 0xff byte).
 * After the last piece the server ends its stream (end of file).
 *
 * Lock-step, in one thread, with no timing in it: the harness takes over
 * the library's poll wait (mt_wait, by ld --wrap).  When the client waits
 * for bytes on its read descriptor and none are waiting, the next piece is
 * written into the server's end (so each piece is what one read() may
 * see); when none is left, end of file.  The client's commands are read
 * from the other direction and kept.
 *
 * The oracle:
 *  - every line the plaintext reader returns (mt_plain_readline, wrapped)
 *    is exactly the next line of the script, its CR LF or LF removed, and
 *    the descriptor was read up to its LF and not one byte further; a line
 *    whose LF comes within MT_LINE_MAX bytes is never refused, a longer
 *    one never accepted;
 *  - when the client starts the handshake (mt_handshake_step, wrapped),
 *    no byte of the script that had arrived may be waiting unread (the
 *    injection check would have had to refuse) and none may have been
 *    read beyond the lines returned (bytes hidden in a buffer of ours);
 *    the last line must be a go-ahead (220 / +OK / a2 OK) answering the
 *    STARTTLS command the client sent last.  The rest of the script then
 *    goes to the TLS engine at once, and end of file after it: there is no
 *    real TLS server, so DONE would be a handshake reported done that is
 *    not (mailtls_protocol must then say which protocol);
 *  - MAILTLS_E_INJECTION only with a byte really waiting; after
 *    NOT_OFFERED or REFUSED nothing was read past the last reply; no
 *    timeout and no usage error ever; the texts are NUL-terminated.
 * ISC license: see LICENSE.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "lineread.h"

int __real_mt_wait(struct mailtls *s, int fd, short events, const struct timespec *dl);
int __real_mt_plain_readline(struct mailtls *s, struct mt_line *line, const struct timespec *dl);
int __real_mt_handshake_step(struct mailtls *s);

#define SCRIPT_MAX 60000 /* below a pipe's capacity: a piece is written at once */
#define PIECES_MAX 4096

static struct harness {
	int active;
	int proto;
	int cli_r, cli_w;      /* the client's descriptors */
	int srv_w, srv_r;      /* the server's ends */
	unsigned char script[SCRIPT_MAX];
	size_t len;            /* script bytes */
	size_t cut[PIECES_MAX + 1]; /* piece i is script[cut[i], cut[i + 1]) */
	size_t npieces, next;
	size_t sent;           /* script bytes written so far */
	int eof;               /* the server ended its stream */
	size_t pos;            /* script bytes returned as lines (terminators included) */
	struct mt_line last;   /* the last line returned */
	int have_last;
	char cmds[8192];       /* what the client sent */
	size_t ncmds;
	int handshake;         /* the client reached the handshake */
} H;

static struct mailtls_config *cfg;
static int verbose; /* FUZZ_VERBOSE set: each input's result on stderr */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	signal(SIGPIPE, SIG_IGN);
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	cfg = mailtls_config_new();
	if (!cfg)
		abort();
	return 0;
}

/* Bytes waiting unread on the client's read descriptor. */
static size_t waiting(void)
{
	int n = 0;
	if (ioctl(H.cli_r, FIONREAD, &n) != 0)
		abort();
	return (size_t)n;
}

static void read_commands(void)
{
	for (;;) {
		ssize_t n = H.cli_r == H.cli_w ? recv(H.srv_r, H.cmds + H.ncmds, sizeof H.cmds - 1 - H.ncmds, MSG_DONTWAIT)
		                               : read(H.srv_r, H.cmds + H.ncmds, sizeof H.cmds - 1 - H.ncmds);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		H.ncmds += (size_t)n;
		FUZZ_CHECK(H.ncmds < sizeof H.cmds - 1, "the client sent over %zu bytes of commands", H.ncmds);
	}
	H.cmds[H.ncmds] = 0;
}

static void put(size_t a, size_t b)
{
	/* Blocking, and always fits: the script is smaller than a pipe's or
	 * a socket's buffer, and the client has read what came before. */
	while (a < b) {
		ssize_t n = write(H.srv_w, H.script + a, b - a);
		if (n < 0 && errno == EINTR)
			continue;
		FUZZ_CHECK(n > 0, "harness: write: %s", strerror(errno));
		a += (size_t)n;
		H.sent += (size_t)n;
	}
}

/* Writes the next piece, or ends the stream when none is left; |all|:
 * every piece left in one write, then the end. */
static void deliver(int all)
{
	if (all && H.next < H.npieces) {
		put(H.cut[H.next], H.len);
		H.next = H.npieces;
	}
	while (H.next < H.npieces) {
		size_t a = H.cut[H.next], b = H.cut[H.next + 1];
		H.next++;
		if (a == b)
			continue;
		put(a, b);
		return;
	}
	if (!H.eof) {
		if (H.cli_r == H.cli_w)
			shutdown(H.srv_w, SHUT_WR);
		else
			close(H.srv_w), H.srv_w = -1;
		H.eof = 1;
	}
}

int __wrap_mt_wait(struct mailtls *s, int fd, short events, const struct timespec *dl)
{
	if (!H.active || fd != H.cli_r || !(events & POLLIN))
		return __real_mt_wait(s, fd, events, dl);
	read_commands();
	if (waiting() == 0)
		deliver(0);
	return 1; /* readable: bytes, or end of file */
}

int __wrap_mt_plain_readline(struct mailtls *s, struct mt_line *line, const struct timespec *dl)
{
	int r;
	size_t consumed, k;
	const unsigned char *nl;
	if (!H.active)
		return __real_mt_plain_readline(s, line, dl);
	FUZZ_CHECK(!H.handshake, "plaintext read after the handshake started");
	r = __real_mt_plain_readline(s, line, dl);
	consumed = H.sent - waiting();
	FUZZ_CHECK(consumed >= H.pos, "harness: consumed %zu < %zu", consumed, H.pos);
	/* Where the next LF of the whole script is (arrived or not). */
	nl = memchr(H.script + H.pos, '\n', H.len - H.pos);
	k = nl ? (size_t)(nl - (H.script + H.pos)) + 1 : 0; /* the line's length with its LF */
	if (r == 0) {
		size_t len = line->len, term;
		FUZZ_CHECK(nl != NULL, "a line returned where the script has no LF left");
		FUZZ_CHECK(k <= MT_LINE_MAX, "a line of %zu bytes (LF included) accepted, limit %d", k, MT_LINE_MAX);
		term = len + 2 == k && H.script[H.pos + len] == '\r' ? 2 : 1;
		FUZZ_CHECK(len + term == k, "line of %zu bytes returned for a script line of %zu", len, k);
		FUZZ_CHECK(memcmp(line->buf, H.script + H.pos, len) == 0, "the line is not the script's");
		FUZZ_CHECK(line->buf[len] == 0, "line not NUL-terminated");
		FUZZ_CHECK(term == 2 || len == 0 || line->buf[len - 1] != '\r', "CR LF not removed");
		H.pos += k;
		FUZZ_CHECK(consumed == H.pos, "read %zu bytes past the end of the line (LF at %zu)", consumed - H.pos, H.pos);
		H.last = *line;
		H.have_last = 1;
	} else {
		int e = mailtls_errcode(s);
		FUZZ_CHECK(e == MAILTLS_E_PROTOCOL, "line reader failed with %s: %s", mailtls_errcode_name(e),
		    mailtls_error(s));
		FUZZ_CHECK(!nl || k > MT_LINE_MAX, "a line of %zu bytes (LF included) refused: %s", k, mailtls_error(s));
		FUZZ_CHECK(memchr(H.script + H.pos, '\n', consumed - H.pos) == NULL, "a failed read went past a LF");
		H.have_last = 0;
	}
	return r;
}

static int ci_prefix(const char *p, size_t n, const char *w)
{
	size_t wl = strlen(w);
	if (n < wl)
		return 0;
	for (size_t i = 0; i < wl; i++) {
		int a = (unsigned char)p[i], b = (unsigned char)w[i];
		if (a >= 'a' && a <= 'z')
			a -= 32;
		if (a != b)
			return 0;
	}
	return 1;
}

static int is_go_ahead(const struct mt_line *l)
{
	switch (H.proto) {
	case MAILTLS_SMTP:
		return l->len >= 3 && memcmp(l->buf, "220", 3) == 0 && (l->len == 3 || l->buf[3] == ' ');
	case MAILTLS_POP3:
		return l->len >= 3 && memcmp(l->buf, "+OK", 3) == 0 && (l->len == 3 || l->buf[3] == ' ');
	default:
		return ci_prefix(l->buf, l->len, "A2 OK") && (l->len == 5 || l->buf[5] == ' ');
	}
}

static const char *starttls_cmd(void)
{
	return H.proto == MAILTLS_SMTP ? "STARTTLS\r\n" : H.proto == MAILTLS_POP3 ? "STLS\r\n" : "a2 STARTTLS\r\n";
}

int __wrap_mt_handshake_step(struct mailtls *s)
{
	size_t w, consumed;
	const char *cmd = starttls_cmd();
	if (!H.active)
		return __real_mt_handshake_step(s);
	read_commands();
	w = waiting();
	consumed = H.sent - w;
	/* The injection oracle. */
	if (H.cli_r == H.cli_w) { /* a socket: what recv would still see */
		static char peek[SCRIPT_MAX];
		ssize_t n = recv(H.cli_r, peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT);
		FUZZ_CHECK((size_t)(n < 0 ? 0 : n) == w, "harness: FIONREAD %zu, MSG_PEEK %zd", w, n);
	}
	FUZZ_CHECK(w == 0, "TLS handshake started with %zu plaintext bytes waiting after the go-ahead "
	    "(the injection check missed them)", w);
	FUZZ_CHECK(consumed == H.pos, "TLS handshake started with %zu plaintext bytes read beyond the last line "
	    "(buffered in our code)", consumed - H.pos);
	FUZZ_CHECK(H.have_last && is_go_ahead(&H.last), "TLS handshake started without a go-ahead line");
	FUZZ_CHECK(H.ncmds >= strlen(cmd) && strcmp(H.cmds + H.ncmds - strlen(cmd), cmd) == 0,
	    "TLS handshake started, but the last command was not %s", cmd);
	if (!H.handshake) {
		/* What is left of the script is the TLS peer's: all of it at once,
		 * then end of file, so the handshake never waits (its waits are
		 * inside deadline.c, out of reach of --wrap). */
		H.handshake = 1;
		deliver(1);
	}
	return __real_mt_handshake_step(s);
}

static void check_text(const char *t, const char *what)
{
	FUZZ_CHECK(memchr(t, 0, MAILTLS_TEXT_MAX) != NULL, "%s not NUL-terminated", what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mailtls_starttls_info info;
	struct mailtls *s;
	int sv[2], p1[2], p2[2], rc, e;
	unsigned h;

	if (size < 1)
		return 0;
	memset(&H, 0, sizeof H);
	h = data[0];
	H.proto = (h & 3) == 1 ? MAILTLS_POP3 : (h & 3) == 2 ? MAILTLS_IMAP : MAILTLS_SMTP;
	/* The pieces. */
	H.cut[0] = 0;
	H.npieces = 1;
	for (size_t i = 1; i < size; i++) {
		if (data[i] == 0xff && i + 1 < size && data[i + 1] == 0xff) {
			i++;
		} else if (data[i] == 0xff) {
			if (H.npieces == PIECES_MAX)
				return 0;
			H.cut[H.npieces++] = H.len;
			continue;
		}
		if (H.len == SCRIPT_MAX)
			return 0;
		H.script[H.len++] = data[i];
	}
	H.cut[H.npieces] = H.len;

	if (h & 4) {
		if (pipe(p1) < 0 || pipe(p2) < 0)
			abort();
		H.cli_r = p1[0], H.srv_w = p1[1];
		H.srv_r = p2[0], H.cli_w = p2[1];
	} else {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
			abort();
		H.cli_r = H.cli_w = sv[0];
		H.srv_w = H.srv_r = sv[1];
	}
	if (h & 4)
		fcntl(H.srv_r, F_SETFL, fcntl(H.srv_r, F_GETFL) | O_NONBLOCK);
	s = mailtls_client(cfg, H.cli_r, H.cli_w, "mx.fuzz.example");
	if (!s)
		abort();
	deliver(0); /* the first piece is there before the client starts */
	H.active = 1;
	rc = mailtls_starttls_client(s, H.proto, "client.fuzz.example", 2, &info);
	H.active = 0;
	read_commands();
	e = mailtls_errcode(s);
	if (verbose)
		fprintf(stderr, "starttls: proto %d %s: rc %d handshake %d: %s: %s\n", H.proto, h & 4 ? "pipes" : "socket",
		    rc, H.handshake, mailtls_errcode_name(e), mailtls_error(s));

	FUZZ_CHECK(rc >= -1 && rc <= MAILTLS_STARTTLS_REFUSED, "result %d", rc);
	FUZZ_CHECK(e != MAILTLS_E_TIMEOUT && e != MAILTLS_E_USAGE && e != MAILTLS_E_SYSTEM,
	    "error %s: %s", mailtls_errcode_name(e), mailtls_error(s));
	if (rc == MAILTLS_STARTTLS_DONE) {
		/* No TLS server is here, and no fuzzer forges one: DONE can only
		 * be a handshake reported done that is not (mailtls.h: "offered,
		 * accepted, handshake done"). */
		FUZZ_CHECK(H.handshake, "DONE without a handshake");
		FUZZ_CHECK(mailtls_protocol(s) != NULL, "STARTTLS reported DONE, but the TLS handshake is not done "
		    "(mailtls_protocol is NULL; error \"%s\")", mailtls_error(s));
	}
	if (H.handshake)
		FUZZ_CHECK(rc == -1 || rc == MAILTLS_STARTTLS_DONE, "handshake started, result %d", rc);
	if (e == MAILTLS_E_INJECTION) {
		FUZZ_CHECK(!H.handshake && waiting() > 0, "injection reported with nothing waiting");
		FUZZ_CHECK(H.have_last && is_go_ahead(&H.last), "injection reported after a line that is no go-ahead");
	}
	if (rc == MAILTLS_STARTTLS_NOT_OFFERED || rc == MAILTLS_STARTTLS_REFUSED) {
		FUZZ_CHECK(H.sent - waiting() == H.pos, "read past the last reply before going on in plaintext");
		if (rc == MAILTLS_STARTTLS_REFUSED)
			FUZZ_CHECK(strstr(H.cmds, starttls_cmd()) != NULL, "REFUSED without a STARTTLS command");
	}
	if (rc == MAILTLS_STARTTLS_NOT_OFFERED)
		FUZZ_CHECK(strstr(H.cmds, starttls_cmd()) == NULL, "NOT_OFFERED after sending %s", starttls_cmd());
	if (rc == -1)
		FUZZ_CHECK(*mailtls_error(s), "error without a message");
	check_text(info.greeting, "greeting");
	check_text(info.ehlo, "ehlo");
	check_text(info.capabilities, "capabilities");
	check_text(info.starttls_reply, "starttls_reply");

	mailtls_free(s);
	if (h & 4) {
		close(p1[0]);
		if (H.srv_w >= 0)
			close(H.srv_w);
		close(p2[0]);
		close(p2[1]);
	} else {
		close(sv[0]);
		close(sv[1]);
	}
	return 0;
}
