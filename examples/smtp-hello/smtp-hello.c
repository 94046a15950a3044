/*
 * smtp-hello -- a tiny SMTP responder for ucspi servers: the program the
 * README demo runs behind tcpserver-ssl.  It speaks SMTP on fd 0 (client to
 * server) and fd 1 (server to client) and delivers nothing: every message
 * is read to its final dot and thrown away.
 *
 * Interface:
 *   smtp-hello [ -t secs ] [ hostname ]
 * hostname names this server in the replies (default: gethostname()).
 * -t secs: the idle deadline (default 60, at most 86400); when the client
 * sends nothing for that long, smtp-hello answers 421 and exits.
 *
 * The session:
 *   greeting   220 HOST ESMTP smtp-hello, then SSL_PROTOCOL and SSL_CIPHER
 *              from the environment when set (tcpserver-ssl sets them)
 *   EHLO x     250-HOST smtp-hello, 250-PIPELINING, 250-8BITMIME, 250 SIZE
 *   HELO x     250 HOST smtp-hello
 *   MAIL FROM: 250 (503 before HELO/EHLO, 501 without "FROM:")
 *   RCPT TO:   250 (503 before MAIL, 501 without "TO:")
 *   DATA       354, the message to the lone ".", then 250 with its size
 *              in bytes (dot-unstuffed, line ends counted as CR LF),
 *              552 when it is over SIZE; 503 before RCPT
 *   RSET, NOOP 250;  QUIT 221 and exit 0
 *   anything else 502; a command line over 1000 bytes (CR LF included)
 *   500 (inside a message long lines are only counted).
 * Lines may end in CR LF or a bare LF.  Commands may be pipelined: replies
 * are buffered and sent whenever smtp-hello is about to wait for input.
 *
 * Exit codes: 0 after QUIT or the client's end of stream; 1 after the idle
 * timeout (421), a read or write error, or bad usage.
 *
 * Uses only the C library.  ISC license: see LICENSE.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define LINEMAX 1000 /* RFC 5321 4.5.3.1.6: a text line, CR LF included */
#define SIZEMAX 10240000UL

static char host[256];
static int idle_secs = 60;

static char inbuf[4096];
static size_t inpos, inlen;

/* put formats one reply line into stdout's buffer; the CR LF is added here. */
static void put(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void put(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputs("\r\n", stdout);
}

static void flush(void)
{
	if (fflush(stdout) == EOF)
		exit(1);
}

/* fill waits up to idle_secs for input and reads it.  Returns 1 with
 * bytes in inbuf, 0 at end of stream; exits after 421 on timeout. */
static int fill(void)
{
	struct pollfd p = { .fd = 0, .events = POLLIN };
	ssize_t n;
	int r;
	flush();
	while ((r = poll(&p, 1, idle_secs * 1000)) < 0)
		if (errno != EINTR)
			exit(1);
	if (r == 0) {
		put("421 4.4.2 %s timeout, closing connection", host);
		flush();
		exit(1);
	}
	while ((n = read(0, inbuf, sizeof inbuf)) < 0)
		if (errno != EINTR)
			exit(1);
	inpos = 0;
	inlen = (size_t)n;
	return n > 0;
}

/* getline_ reads one line into line (NUL-terminated, without its CR LF or
 * LF, cut at LINEMAX bytes).  Returns the length kept, or -1 at end of
 * stream (a last line without LF is dropped).  *size gets the line's full
 * length without its line end; *toolong is set when the line with CR LF
 * is over LINEMAX bytes. */
static long getline_(char *line, unsigned long long *size, int *toolong)
{
	size_t len = 0;
	unsigned long long total = 0; /* bytes before the LF */
	char c, last = 0;
	for (;;) {
		if (inpos == inlen && !fill())
			return -1;
		c = inbuf[inpos++];
		if (c == '\n')
			break;
		if (len < LINEMAX)
			line[len++] = c;
		total++;
		last = c;
	}
	if (last == '\r') {
		total--;
		if (len > total)
			len = (size_t)total;
	}
	line[len] = 0;
	*size = total;
	*toolong = total + 2 > LINEMAX;
	return (long)len;
}

/* verb returns 1 when line starts with the command word w followed by the
 * end of the line or a space (case-insensitive). */
static int verb(const char *line, const char *w)
{
	size_t n = strlen(w);
	return !strncasecmp(line, w, n) && (line[n] == 0 || line[n] == ' ');
}

/* printable copies at most max bytes of s, each byte outside 0x21..0x7e
 * turned into '?', so a value from the environment cannot break a reply. */
static const char *printable(const char *s, char *out, size_t max)
{
	size_t i;
	for (i = 0; s[i] && i < max; i++)
		out[i] = s[i] > 0x20 && s[i] < 0x7f ? s[i] : '?';
	out[i] = 0;
	return out;
}

/* data reads the message to the lone dot; returns its size, or -1 at end
 * of stream. */
static long long data(void)
{
	static char line[LINEMAX + 1];
	unsigned long long size = 0, n;
	int toolong;
	long len;
	while ((len = getline_(line, &n, &toolong)) >= 0) {
		if (n == 1 && line[0] == '.')
			return (long long)size;
		if (line[0] == '.')
			n--; /* dot-stuffing: the client doubled a leading dot */
		size += n + 2;
	}
	return -1;
}

int main(int argc, char **argv)
{
	static char line[LINEMAX + 1];
	char proto[64], cipher[128];
	const char *p;
	unsigned long long n;
	int c, toolong, hello = 0, mail = 0, rcpt = 0;
	long len;

	signal(SIGPIPE, SIG_IGN); /* a vanished client is a write error: exit 1 */
	while ((c = getopt(argc, argv, "t:")) != -1) {
		if (c != 't' || (idle_secs = atoi(optarg)) <= 0 || idle_secs > 86400) {
			fprintf(stderr, "usage: smtp-hello [ -t secs ] [ hostname ]\n");
			return 1;
		}
	}
	if (optind < argc)
		printable(argv[optind], host, sizeof host - 1);
	else if (gethostname(host, sizeof host) < 0 || !*host)
		strcpy(host, "localhost");
	host[sizeof host - 1] = 0;
	printable(host, host, sizeof host - 1);

	proto[0] = cipher[0] = 0;
	if ((p = getenv("SSL_PROTOCOL")))
		printable(p, proto, sizeof proto - 1);
	if ((p = getenv("SSL_CIPHER")))
		printable(p, cipher, sizeof cipher - 1);
	put("220 %s ESMTP smtp-hello%s%s%s%s", host, *proto ? " " : "", proto, *cipher ? " " : "", cipher);

	while ((len = getline_(line, &n, &toolong)) >= 0) {
		if (toolong) {
			put("500 5.5.2 line too long");
		} else if (verb(line, "EHLO")) {
			hello = 1;
			mail = rcpt = 0;
			put("250-%s smtp-hello", host);
			put("250-PIPELINING");
			put("250-8BITMIME");
			put("250 SIZE %lu", SIZEMAX);
		} else if (verb(line, "HELO")) {
			hello = 1;
			mail = rcpt = 0;
			put("250 %s smtp-hello", host);
		} else if (verb(line, "MAIL")) {
			if (!hello)
				put("503 5.5.1 send HELO or EHLO first");
			else if (mail)
				put("503 5.5.1 nested MAIL command");
			else if (strncasecmp(line + 4, " FROM:", 6))
				put("501 5.5.4 syntax: MAIL FROM:<address>");
			else {
				mail = 1;
				put("250 2.1.0 sender ok");
			}
		} else if (verb(line, "RCPT")) {
			if (!mail)
				put("503 5.5.1 send MAIL first");
			else if (strncasecmp(line + 4, " TO:", 4))
				put("501 5.5.4 syntax: RCPT TO:<address>");
			else {
				rcpt = 1;
				put("250 2.1.5 recipient ok");
			}
		} else if (verb(line, "DATA")) {
			long long size;
			if (!rcpt) {
				put("503 5.5.1 send RCPT first");
				continue;
			}
			put("354 go ahead, end with <CRLF>.<CRLF>");
			size = data();
			if (size < 0)
				break;
			mail = rcpt = 0;
			if ((unsigned long long)size > SIZEMAX)
				put("552 5.3.4 message of %lld bytes is over SIZE %lu", size, SIZEMAX);
			else
				put("250 2.0.0 message of %lld bytes discarded", size);
		} else if (verb(line, "RSET")) {
			mail = rcpt = 0;
			put("250 2.0.0 ok");
		} else if (verb(line, "NOOP")) {
			put("250 2.0.0 ok");
		} else if (verb(line, "QUIT")) {
			put("221 2.0.0 %s closing connection", host);
			flush();
			return 0;
		} else {
			put("502 5.5.2 command not implemented");
		}
	}
	flush();
	return 0;
}
