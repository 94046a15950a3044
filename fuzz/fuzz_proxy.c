/*
 * fuzz_proxy.c -- the server STARTTLS proxy's state machine (proxy.c,
 * proxy_smtp.c, proxy_pop3.c, proxy_imap.c): mailtls_proxy_client_line,
 * mailtls_proxy_server_line and mailtls_proxy_tls_started, driven as
 * mailtls_proxy_run drives them, with lines from the input.
 *
 * Input: byte 0: bits 0-1 the protocol (0 SMTP, 1 POP3, 2 IMAP, 3 SMTP),
 * bit 2 MAILTLS_PROXY_REQUIRE_TLS, bit 3 MAILTLS_PROXY_HIDE_AUTH.  Then
 * events: a byte (bit 0: 1 a client line, 0 a program line; bit 1: the
 * |more| flag of a client line) and the line: the bytes up to and with the
 * next LF, at most MAILTLS_PROXY_CHUNK.  As the driver does: after
 * MAILTLS_PROXY_STARTTLS the handshake "succeeds" (tls_started); after
 * MAILTLS_PROXY_WAIT the line is kept and handed in again after the next
 * program line (client lines meanwhile are not read); MAILTLS_PROXY_CLOSE
 * ends the input.
 *
 * Checks (mailtls.h, "Server STARTTLS proxy", and security.md S1, S3-S5):
 * results are the documented ones; WAIT, STARTTLS and CLOSE send nothing
 * to the program (the STARTTLS line and a line pipelined after it never
 * reach it); STARTTLS is accepted only for a STARTTLS/STLS line with
 * nothing pipelined after it, only before TLS, and the go-ahead is one
 * line (220 / +OK / the line's tag and OK); tls_started works exactly
 * after an accepted STARTTLS, and for SMTP sends the program RSET; after
 * TLS an SMTP MAIL/RCPT/DATA/AUTH/BDAT before a new EHLO/HELO never
 * reaches the program; with REQUIRE_TLS, SMTP MAIL/AUTH, POP3
 * USER/PASS/APOP/AUTH and IMAP LOGIN/AUTHENTICATE never reach it before
 * TLS (where the harness can tell a command from message, literal or SASL
 * data); an IMAP command whose tag the proxy could not match to its
 * completion (64 bytes or more, "*", "+") never reaches the program, so
 * none can fill its queue; output sizes stay in their buffers.
 * ISC license: see LICENSE.
 */
#include <errno.h>

#include "fuzz.h"
#include "mailtls.h"

static int verbose = -1; /* FUZZ_VERBOSE set: each client line's result on stderr */

static int lc(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* The first word of |p| (|n| bytes, terminator included) equals |w|.  The
 * terminator is LF or CR LF, as qmail-smtpd reads it: "DATA\r\r\n" is the
 * command "DATA\r", not DATA. */
static int verb_is(const char *p, size_t n, const char *w)
{
	size_t i, wl = strlen(w);
	if (n > 0 && p[n - 1] == '\n') {
		n--;
		if (n > 0 && p[n - 1] == '\r')
			n--;
	}
	for (i = 0; i < n && p[i] != ' '; i++)
		if (i >= wl || lc((unsigned char)p[i]) != lc((unsigned char)w[i]))
			return 0;
	return i == wl;
}

/* The word after the IMAP tag. */
static int imap_verb_is(const char *p, size_t n, const char *w, size_t *taglen)
{
	const char *sp = memchr(p, ' ', n);
	if (!sp)
		return 0;
	*taglen = (size_t)(sp - p);
	return verb_is(sp + 1, n - *taglen - 1, w);
}

/* A whole line: the out bytes form exactly one CR LF line starting with |start|. */
static int one_line(const char *p, size_t n, const char *start, size_t startlen)
{
	return n >= startlen + 2 && memcmp(p, start, startlen) == 0 && p[n - 2] == '\r' && p[n - 1] == '\n' &&
	    memchr(p, '\n', n - 1) == NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	unsigned h = fz_u8(&f);
	int proto = (h & 3) == 1 ? MAILTLS_POP3 : (h & 3) == 2 ? MAILTLS_IMAP : MAILTLS_SMTP;
	int flags = (int)((h >> 2) & 3);
	struct mailtls_proxy *p = mailtls_proxy_new(proto, flags);
	struct mailtls_proxy_out out;
	static char held[MAILTLS_PROXY_CHUNK];
	size_t heldlen = 0;
	int have_held = 0, heldmore = 0, tls = 0, ehlo_since_tls = 0, client_bol = 1;
	int data_seen = 0, sasl_seen = 0, literal_seen = 0;

	FUZZ_CHECK(p, "mailtls_proxy_new: %s", strerror(errno));
	if (verbose < 0)
		verbose = getenv("FUZZ_VERBOSE") != NULL;
	FUZZ_CHECK(mailtls_proxy_tls_started(p, &out) == -1, "tls_started without STARTTLS");

	while (f.n || have_held) {
		unsigned e = 0;
		const char *line;
		size_t len;
		int client, more, r;

		if (f.n) {
			const uint8_t *nl;
			e = fz_u8(&f);
			nl = memchr(f.p, '\n', f.n < MAILTLS_PROXY_CHUNK ? f.n : MAILTLS_PROXY_CHUNK);
			line = (const char *)fz_bytes(&f, nl ? (size_t)(nl - f.p) + 1 : MAILTLS_PROXY_CHUNK, &len);
		} else {
			/* Only the held line is left: the program never answers. */
			break;
		}
		client = e & 1;
		more = (e >> 1) & 1;
		if (client && have_held)
			continue; /* the driver reads no more of the client meanwhile */

		if (!client) {
			const char *a = line;
			r = mailtls_proxy_server_line(p, line, len, &out);
			if (verbose)
				fprintf(stderr, "proxy: program %.*s -> client gets %zu bytes\n", (int)(len > 40 ? 40 : len), line,
				    out.client_len);
			FUZZ_CHECK(r == MAILTLS_PROXY_CONTINUE, "server_line returned %d", r);
			FUZZ_CHECK(out.prog_len == 0, "a program line sent %zu bytes to the program", out.prog_len);
			FUZZ_CHECK(out.client_len <= 3 * MAILTLS_PROXY_CHUNK + 512, "client output of %zu bytes", out.client_len);
			if ((proto == MAILTLS_SMTP && len >= 3 && !memcmp(a, "334", 3)) ||
			    (proto == MAILTLS_IMAP && len >= 1 && a[0] == '+') ||   /* the proxy takes any "+" line so */
			    (proto == MAILTLS_POP3 && len >= 1 && a[0] == '+' &&
			        (len == 1 || a[1] == ' ' || a[1] == '\r' || a[1] == '\n')))
				sasl_seen = 1;
			if (!have_held)
				continue;
			/* The held line again, after this program line. */
			line = held;
			len = heldlen;
			more = heldmore;
			have_held = 0;
			client = 1;
		}

		/* A client line. */
		{
			int bol = client_bol, cmd_ok;
			size_t taglen = 0;
			if (memchr(line, '{', len))
				literal_seen = 1;
			r = mailtls_proxy_client_line(p, line, len, more, &out);
			if (verbose)
				fprintf(stderr, "proxy: client %.*s -> %d, %zu bytes to the program, client gets %.*s\n",
				    (int)(len > 40 ? 40 : len), line, r, out.prog_len,
				    (int)(out.client_len > 60 ? 60 : out.client_len), out.client ? out.client : "");
			FUZZ_CHECK(r >= MAILTLS_PROXY_CONTINUE && r <= MAILTLS_PROXY_CLOSE, "client_line returned %d (%s)", r,
			    strerror(errno));
			FUZZ_CHECK(out.client_len <= 3 * MAILTLS_PROXY_CHUNK + 512 && out.prog_len <= MAILTLS_PROXY_CHUNK + 64,
			    "output sizes %zu, %zu", out.client_len, out.prog_len);
			if (r == MAILTLS_PROXY_WAIT) {
				FUZZ_CHECK(out.client_len == 0 && out.prog_len == 0, "WAIT with output");
				memcpy(held, line, len);
				heldlen = len;
				heldmore = more;
				have_held = 1;
				continue;
			}
			client_bol = len > 0 && line[len - 1] == '\n';
			/* Is this line surely a command (not message, literal or SASL data)? */
			cmd_ok = bol && client_bol && !data_seen && !sasl_seen && !literal_seen;
			if (r == MAILTLS_PROXY_STARTTLS) {
				FUZZ_CHECK(!tls, "STARTTLS accepted with TLS on");
				FUZZ_CHECK(!more, "STARTTLS accepted with plaintext pipelined after it");
				FUZZ_CHECK(out.prog_len == 0, "the STARTTLS line went to the program");
				if (proto == MAILTLS_SMTP)
					FUZZ_CHECK(verb_is(line, len, "STARTTLS") && one_line(out.client, out.client_len, "220 ", 4),
					    "SMTP STARTTLS go-ahead");
				else if (proto == MAILTLS_POP3)
					FUZZ_CHECK(verb_is(line, len, "STLS") && one_line(out.client, out.client_len, "+OK", 3),
					    "POP3 STLS go-ahead");
				else
					FUZZ_CHECK(imap_verb_is(line, len, "STARTTLS", &taglen) &&
					        one_line(out.client, out.client_len, line, taglen) &&
					        out.client_len > taglen + 3 && !memcmp(out.client + taglen, " OK", 3),
					    "IMAP STARTTLS go-ahead");
				FUZZ_CHECK(mailtls_proxy_client_line(p, "NOOP\r\n", 6, 0, &out) == -1,
				    "a line taken between STARTTLS and the handshake");
				r = mailtls_proxy_tls_started(p, &out);
				FUZZ_CHECK(r == 0, "tls_started after STARTTLS: %d", r);
				if (proto == MAILTLS_SMTP)
					FUZZ_CHECK(out.prog_len == 6 && !memcmp(out.prog, "RSET\r\n", 6), "no RSET after TLS");
				else
					FUZZ_CHECK(out.prog_len == 0, "program output after TLS");
				FUZZ_CHECK(mailtls_proxy_tls_started(p, &out) == -1, "tls_started twice");
				tls = 1;
				ehlo_since_tls = 0;
				continue;
			}
			if (r == MAILTLS_PROXY_CLOSE) {
				FUZZ_CHECK(out.prog_len == 0, "CLOSE sent %zu bytes to the program", out.prog_len);
				FUZZ_CHECK(out.client_len > 0 && out.client[out.client_len - 1] == '\n', "CLOSE without a reply");
				FUZZ_CHECK(mailtls_proxy_client_line(p, "QUIT\r\n", 6, 0, &out) == MAILTLS_PROXY_CLOSE &&
				        out.prog_len == 0, "a line taken after CLOSE");
				break;
			}
			/* CONTINUE. */
			if (proto == MAILTLS_SMTP) {
				int fwd = out.prog_len > 0;
				if (tls && !ehlo_since_tls && cmd_ok &&
				    (verb_is(line, len, "MAIL") || verb_is(line, len, "RCPT") || verb_is(line, len, "DATA") ||
				        verb_is(line, len, "AUTH") || verb_is(line, len, "BDAT")))
					FUZZ_CHECK(!fwd, "after STARTTLS, a command before EHLO reached the program");
				if (!tls && (flags & MAILTLS_PROXY_REQUIRE_TLS) && cmd_ok &&
				    (verb_is(line, len, "MAIL") || verb_is(line, len, "AUTH")))
					FUZZ_CHECK(!fwd, "REQUIRE_TLS: MAIL/AUTH reached the program before TLS");
				if (fwd && (verb_is(line, len, "DATA") || verb_is(line, len, "BDAT")))
					data_seen = 1;
				if (fwd && tls && (verb_is(line, len, "EHLO") || verb_is(line, len, "HELO")))
					ehlo_since_tls = 1;
			} else if (proto == MAILTLS_POP3) {
				if (!tls && (flags & MAILTLS_PROXY_REQUIRE_TLS) && cmd_ok &&
				    (verb_is(line, len, "USER") || verb_is(line, len, "PASS") || verb_is(line, len, "APOP") ||
				        verb_is(line, len, "AUTH")))
					FUZZ_CHECK(out.prog_len == 0, "REQUIRE_TLS: a POP3 login reached the program before TLS");
			} else {
				const char *sp = memchr(line, ' ', len);
				if (cmd_ok && sp && ((size_t)(sp - line) >= 64 || (sp - line == 1 && (line[0] == '*' || line[0] == '+'))))
					FUZZ_CHECK(out.prog_len == 0, "an IMAP command with the tag \"%.*s\" reached the program",
					    (int)(sp - line > 70 ? 70 : sp - line), line);
				if (!tls && (flags & MAILTLS_PROXY_REQUIRE_TLS) && cmd_ok &&
				    (imap_verb_is(line, len, "LOGIN", &taglen) || imap_verb_is(line, len, "AUTHENTICATE", &taglen)))
					FUZZ_CHECK(out.prog_len == 0, "REQUIRE_TLS: an IMAP login reached the program before TLS");
			}
		}
	}
	mailtls_proxy_free(p);
	return 0;
}
