/*
 * fuzz_proxy_run.c -- mailtls_proxy_run (proxy_run.c), the server
 * STARTTLS proxy's I/O, between a scripted client and a scripted program
 * whose bytes arrive in pieces the fuzzer chooses, with the server-side
 * injection oracle (security.md S1, S2).
 *
 * Input: byte 0: bits 0-1 the protocol (0 SMTP, 1 POP3, 2 IMAP, 3 SMTP),
 * bit 2 MAILTLS_PROXY_REQUIRE_TLS, bit 3 MAILTLS_PROXY_HIDE_AUTH.  Then
 * pieces, each a byte (bit 0: 1 the client's, 0 the program's) and the
 * piece's bytes up to a byte 0xff (0xff 0xff stands for one 0xff byte).
 *
 * Lock-step, in one thread: the harness takes over poll(2) (ld --wrap):
 * when none of the descriptors polled is ready, the next piece is written
 * to the client's socket or the program's output pipe; when none is left,
 * both end (end of file), and a poll with nothing ready after that is a
 * hang (abort).  What the proxy sends to the client and to the program is
 * read back each time.
 *
 * The oracle: each part the plaintext reader returns (mt_plain_readpart,
 * wrapped) is exactly the client's next bytes, up to its LF and not one
 * byte further, or the first MT_LINE_MAX bytes of a longer line; when the handshake starts (mt_handshake_step,
 * wrapped) no byte the client sent is waiting unread (the pending check
 * would have had to refuse it) or was read beyond that line, the last line
 * is a STARTTLS (STLS, "tag STARTTLS") command, the client's last bytes
 * received are the go-ahead, and the program got nothing but earlier
 * client lines (never the STARTTLS line nor what follows it).  Then the
 * rest of the client's pieces go to the TLS engine, and end of file.  No
 * timeout ever.
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

int __real_poll(struct pollfd *fds, nfds_t n, int timeout);
int __real_mt_plain_readpart(struct mailtls *s, struct mt_line *line, const struct timespec *dl);
int __real_mt_handshake_step(struct mailtls *s);

#define SCRIPT_MAX 60000
#define PIECES_MAX 4096
#define LINES_MAX 2048

static struct harness {
	int active;
	int proto;
	int cli, srv;                 /* the client's end, the proxy's end */
	int prog_out_w, prog_out_r;   /* the program's output: harness writes, proxy reads */
	int prog_in_w, prog_in_r;     /* the program's input: proxy writes, harness reads */
	unsigned char cs[SCRIPT_MAX], ps[SCRIPT_MAX]; /* the client's and the program's bytes */
	size_t clen, plen, csent, psent;
	struct { int client; size_t end; } piece[PIECES_MAX];
	size_t npieces, next;
	int eof;
	size_t pos;                   /* client bytes returned as parts */
	size_t line_off[LINES_MAX], line_len[LINES_MAX]; /* the parts in cs, terminators included */
	size_t nlines;
	char got_client[1 << 16];     /* what the client received */
	size_t gclen;
	char got_prog[1 << 16];       /* what the program received */
	size_t gplen;
	int handshake;
} H;

static struct mailtls_config *cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	signal(SIGPIPE, SIG_IGN);
	cfg = mailtls_config_new();
	if (!cfg)
		abort();
	return 0;
}

static size_t waiting(int fd)
{
	int n = 0;
	if (ioctl(fd, FIONREAD, &n) != 0)
		return 0;
	return (size_t)n;
}

static void collect(void)
{
	for (;;) {
		ssize_t n = recv(H.cli, H.got_client + H.gclen, sizeof H.got_client - H.gclen, MSG_DONTWAIT);
		if (n <= 0)
			break;
		H.gclen += (size_t)n;
		if (H.gclen == sizeof H.got_client)
			H.gclen = 0; /* only the end matters */
	}
	for (;;) {
		ssize_t n = read(H.prog_in_r, H.got_prog + H.gplen, sizeof H.got_prog - H.gplen);
		if (n <= 0)
			break;
		H.gplen += (size_t)n;
		FUZZ_CHECK(H.gplen < sizeof H.got_prog, "harness: the program got too much");
	}
}

static void put(int fd, const unsigned char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		FUZZ_CHECK(w > 0, "harness: write: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

static void end_all(void)
{
	if (H.eof)
		return;
	shutdown(H.cli, SHUT_WR);
	close(H.prog_out_w);
	H.prog_out_w = -1;
	H.eof = 1;
}

/* The next piece; 0 when none is left. */
static int deliver(void)
{
	while (H.next < H.npieces) {
		size_t i = H.next++;
		if (H.piece[i].client) {
			size_t a = H.csent, b = H.piece[i].end;
			if (a == b)
				continue;
			put(H.cli, H.cs + a, b - a);
			H.csent = b;
		} else {
			size_t a = H.psent, b = H.piece[i].end;
			if (a == b)
				continue;
			put(H.prog_out_w, H.ps + a, b - a);
			H.psent = b;
		}
		return 1;
	}
	return 0;
}

int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	if (!H.active)
		return __real_poll(fds, n, timeout);
	for (;;) {
		int r;
		collect();
		r = __real_poll(fds, n, 0);
		if (r != 0)
			return r;
		if (deliver())
			continue;
		if (!H.eof) {
			end_all();
			continue;
		}
		FUZZ_CHECK(0, "the proxy waits with both peers at end of file (%d descriptors, first %d events 0x%x)", (int)n,
		    n ? fds[0].fd : -1, n ? fds[0].events : 0);
	}
}

int __wrap_mt_plain_readpart(struct mailtls *s, struct mt_line *line, const struct timespec *dl)
{
	int r;
	size_t consumed, k;
	const unsigned char *nl;
	if (!H.active)
		return __real_mt_plain_readpart(s, line, dl);
	FUZZ_CHECK(!H.handshake, "plaintext read after the handshake started");
	r = __real_mt_plain_readpart(s, line, dl);
	consumed = H.csent - waiting(H.srv);
	nl = memchr(H.cs + H.pos, '\n', H.clen - H.pos);
	k = nl ? (size_t)(nl - (H.cs + H.pos)) + 1 : H.clen - H.pos;
	if (k > MT_LINE_MAX)
		k = MT_LINE_MAX;
	if (r == 0) {
		FUZZ_CHECK(line->len == k && memcmp(line->buf, H.cs + H.pos, k) == 0,
		    "the part (%zu bytes) is not the client's next %zu", line->len, k);
		FUZZ_CHECK(H.nlines < LINES_MAX, "harness: too many lines");
		H.line_off[H.nlines] = H.pos;
		H.line_len[H.nlines++] = k;
		H.pos += k;
		FUZZ_CHECK(consumed == H.pos, "read %zu bytes past the client's part", consumed - H.pos);
	} else {
		FUZZ_CHECK(mailtls_errcode(s) == MAILTLS_E_PROTOCOL, "line reader: %s", mailtls_error(s));
		FUZZ_CHECK(memchr(H.cs + H.pos, '\n', consumed - H.pos) == NULL, "a failed read went past a LF");
	}
	return r;
}

static int ci_word(const char *p, size_t n, const char *w)
{
	size_t wl = strlen(w), i;
	for (i = 0; i < n && p[i] != ' '; i++)
		if (i >= wl || ((p[i] >= 'a' && p[i] <= 'z') ? p[i] - 32 : p[i]) != w[i])
			return 0;
	return i == wl;
}

int __wrap_mt_handshake_step(struct mailtls *s)
{
	size_t w, li, off, len, g;
	const char *l;
	if (!H.active || H.handshake)
		return __real_mt_handshake_step(s);
	collect();
	w = waiting(H.srv);
	FUZZ_CHECK(w == 0, "TLS handshake started with %zu plaintext bytes of the client waiting (the pending "
	    "check missed them)", w);
	FUZZ_CHECK(H.csent - w == H.pos, "TLS handshake started with %zu client bytes read beyond the last line",
	    H.csent - w - H.pos);
	FUZZ_CHECK(H.nlines > 0, "TLS handshake without a client line");
	li = H.nlines - 1;
	l = (const char *)H.cs + H.line_off[li];
	len = H.line_len[li];
	FUZZ_CHECK(len && l[len - 1] == '\n', "TLS started after a part of a line");
	len -= len >= 2 && l[len - 2] == '\r' ? 2 : 1;
	if (H.proto == MAILTLS_SMTP) {
		FUZZ_CHECK(ci_word(l, len, "STARTTLS"), "TLS started after the line \"%.*s\"", (int)len, l);
		FUZZ_CHECK(H.gclen >= 5 && !memcmp(H.got_client + H.gclen - 2, "\r\n", 2), "no go-ahead before TLS");
	} else if (H.proto == MAILTLS_POP3) {
		FUZZ_CHECK(ci_word(l, len, "STLS"), "TLS started after the line \"%.*s\"", (int)len, l);
	} else {
		const char *sp = memchr(l, ' ', len);
		FUZZ_CHECK(sp && ci_word(sp + 1, len - (size_t)(sp + 1 - l), "STARTTLS"), "TLS started after \"%.*s\"",
		    (int)len, l);
	}
	/* The go-ahead is the last the client got: one line, right before. */
	{
		const char *ga = H.proto == MAILTLS_SMTP ? "220 " : H.proto == MAILTLS_POP3 ? "+OK" : NULL;
		const char *last = H.got_client + H.gclen;
		size_t i = H.gclen >= 2 ? H.gclen - 2 : 0;
		while (i > 0 && H.got_client[i - 1] != '\n')
			i--;
		FUZZ_CHECK(H.gclen >= 2 && last[-1] == '\n', "the client's last bytes are no whole line");
		if (ga)
			FUZZ_CHECK(!memcmp(H.got_client + i, ga, strlen(ga)), "the last line to the client is no go-ahead");
	}
	/* The program got earlier client parts only, each as it came (the last
	 * one may be cut short by a partial write). */
	for (off = 0, g = 0; off < H.gplen;) {
		size_t left = H.gplen - off, tl;
		while (g < li && memcmp(H.cs + H.line_off[g], H.got_prog + off,
		                        H.line_len[g] < left ? H.line_len[g] : left))
			g++;
		tl = g < li && H.line_len[g] < left ? H.line_len[g] : left;
		FUZZ_CHECK(g < li, "the program got \"%.*s\", which is no client part before STARTTLS", (int)tl,
		    H.got_prog + off);
		g++;
		off += tl;
	}
	H.handshake = 1;
	/* The rest of the client's bytes for the TLS engine, then the end. */
	if (H.csent < H.clen) {
		put(H.cli, H.cs + H.csent, H.clen - H.csent);
		H.csent = H.clen;
	}
	H.next = H.npieces;
	end_all();
	return __real_mt_handshake_step(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mailtls_proxy *p;
	struct mailtls *s;
	struct mailtls_proxy_io io;
	int sv[2], po[2], pi[2], rc, e, h, client;

	if (size < 1)
		return 0;
	memset(&H, 0, sizeof H);
	h = data[0];
	H.proto = (h & 3) == 1 ? MAILTLS_POP3 : (h & 3) == 2 ? MAILTLS_IMAP : MAILTLS_SMTP;
	/* Parse: [type][bytes...] 0xff [type][bytes...] ... */
	{
		size_t i = 1;
		while (i < size) {
			if (H.npieces == PIECES_MAX)
				return 0;
			client = data[i++] & 1;
			while (i < size) {
				unsigned char c = data[i];
				if (c == 0xff && i + 1 < size && data[i + 1] == 0xff) {
					i += 2;
				} else if (c == 0xff) {
					i++;
					break;
				} else {
					i++;
				}
				if (client) {
					if (H.clen == SCRIPT_MAX)
						return 0;
					H.cs[H.clen++] = c;
				} else {
					if (H.plen == SCRIPT_MAX)
						return 0;
					H.ps[H.plen++] = c;
				}
			}
			H.piece[H.npieces].client = client;
			H.piece[H.npieces++].end = client ? H.clen : H.plen;
		}
	}

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || pipe(po) < 0 || pipe(pi) < 0)
		abort();
	H.cli = sv[1];
	H.srv = sv[0];
	H.prog_out_r = po[0];
	H.prog_out_w = po[1];
	H.prog_in_r = pi[0];
	H.prog_in_w = pi[1];
	fcntl(H.prog_in_r, F_SETFL, O_NONBLOCK);
	p = mailtls_proxy_new(H.proto, (h >> 2) & 3);
	s = mailtls_server(cfg, H.srv, H.srv);
	if (!p || !s)
		abort();
	memset(&io, 0, sizeof io);
	io.prog_rfd = H.prog_out_r;
	io.prog_wfd = H.prog_in_w;
	io.handshake_secs = 2;
	io.io_secs = 2;
	H.active = 1;
	rc = mailtls_proxy_run(p, s, &io);
	H.active = 0;
	collect();
	e = mailtls_errcode(s);
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "proxy_run: rc %d handshake %d: %s: %s; the client got %zu bytes, the program %zu\n", rc,
		    H.handshake, mailtls_errcode_name(e), mailtls_error(s), H.gclen, H.gplen);
	FUZZ_CHECK(rc == 0 || rc == -1, "mailtls_proxy_run returned %d", rc);
	FUZZ_CHECK(e != MAILTLS_E_TIMEOUT && e != MAILTLS_E_USAGE, "%s: %s", mailtls_errcode_name(e), mailtls_error(s));
	FUZZ_CHECK(rc == 0 || *mailtls_error(s), "an error without a message");
	if (H.handshake)
		FUZZ_CHECK(rc == -1, "the proxy went on after a handshake with no TLS client");

	mailtls_free(s);
	mailtls_proxy_free(p);
	close(sv[0]);
	close(sv[1]);
	close(po[0]);
	if (H.prog_out_w >= 0)
		close(H.prog_out_w);
	close(pi[0]); /* pi[1] was closed by mailtls_proxy_run */
	return 0;
}
