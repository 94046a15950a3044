/*
 * fuzz_mail_reply.c -- the POP3 and IMAP reply parsers of mailreply.h:
 * mt_pop3_status, mt_pop3_body_line, mt_imap_parse_line, mt_imap_status,
 * mt_imap_resp_code, mt_next_atom, mt_word_eq, mt_keyword_is.
 *
 * Input: byte 0 picks the IMAP tag ("", "a1", "a2", or up to 8 bytes taken
 * from the input), then lines ending at LF (CR LF or LF removed, as the
 * line reader does).  Each line is parsed alone, in a buffer of exactly
 * its size.
 *
 * Checks: each result agrees with the grammar written in mailreply.h (RFC
 * 1939, RFC 3501 as far as the not-authenticated state needs), every
 * pointer returned lies inside the line, atoms hold no space and the atom
 * loop ends.  ISC license: see LICENSE.
 */
#include "fuzz.h"
#include "lineread.h"
#include "mailreply.h"

static int lc(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int ref_ci_eq(const char *p, size_t n, const char *w)
{
	if (strlen(w) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (lc((unsigned char)p[i]) != lc((unsigned char)w[i]))
			return 0;
	return 1;
}

#define INSIDE(ptr, len, line, linelen) \
	((ptr) >= (line) && (size_t)((ptr) - (line)) <= (linelen) && (len) <= (linelen) - (size_t)((ptr) - (line)))

/* POP3: "+OK" or "-ERR", then end or SP and text. */
static void check_pop3(const char *b, size_t len)
{
	const char *text = NULL, *p;
	size_t textlen = 0, n;
	int st = mt_pop3_status(b, len, &text, &textlen), want = -1;
	size_t off = 0;
	if (len >= 3 && memcmp(b, "+OK", 3) == 0 && (len == 3 || b[3] == ' '))
		want = MT_ST_OK, off = len == 3 ? 3 : 4;
	else if (len >= 4 && memcmp(b, "-ERR", 4) == 0 && (len == 4 || b[4] == ' '))
		want = MT_ST_BAD, off = len == 4 ? 4 : 5;
	FUZZ_CHECK(st == want, "pop3 status %d, grammar %d", st, want);
	if (st >= 0)
		FUZZ_CHECK(text == b + off && textlen == len - off, "pop3 text at %td+%zu", text - b, textlen);

	p = b;
	n = len;
	st = mt_pop3_body_line(&p, &n);
	if (len == 1 && b[0] == '.')
		FUZZ_CHECK(st == 1, "\".\" does not end the body");
	else if (len >= 1 && b[0] == '.')
		FUZZ_CHECK(st == 0 && p == b + 1 && n == len - 1, "byte-stuffed line not undone");
	else
		FUZZ_CHECK(st == 0 && p == b && n == len, "plain body line changed");
}

/* A literal "{digits}" or "{digits+}" at the end of the line. */
static int ref_literal(const char *b, size_t len)
{
	size_t j, digits = 0;
	if (len < 3 || b[len - 1] != '}')
		return 0;
	j = len - 1; /* index of '}' */
	if (b[j - 1] == '+')
		j--;
	while (j > 0 && b[j - 1] >= '0' && b[j - 1] <= '9')
		j--, digits++;
	return digits > 0 && j > 0 && b[j - 1] == '{';
}

static int ref_cond(const char *w, size_t n)
{
	if (ref_ci_eq(w, n, "OK"))
		return MT_IMAP_OK;
	if (ref_ci_eq(w, n, "NO"))
		return MT_IMAP_NO;
	if (ref_ci_eq(w, n, "BAD"))
		return MT_IMAP_BAD;
	if (ref_ci_eq(w, n, "BYE"))
		return MT_IMAP_BYE;
	if (ref_ci_eq(w, n, "PREAUTH"))
		return MT_IMAP_PREAUTH;
	return MT_IMAP_DATA;
}

static void check_atoms(const char *line, size_t linelen, const char *p, size_t n)
{
	const char *a;
	size_t al, rounds = 0, total = 0;
	while (mt_next_atom(&p, &n, &a, &al)) {
		FUZZ_CHECK(++rounds <= linelen, "atom loop does not end");
		FUZZ_CHECK(al > 0 && INSIDE(a, al, line, linelen), "atom outside the line");
		FUZZ_CHECK(memchr(a, ' ', al) == NULL, "space inside an atom");
		FUZZ_CHECK(INSIDE(p, n, line, linelen) && p == a + al, "cursor not after the atom");
		FUZZ_CHECK(mt_word_eq(a, al, "STARTTLS") == ref_ci_eq(a, al, "STARTTLS"), "mt_word_eq STARTTLS");
		total += al;
	}
	FUZZ_CHECK(n == 0, "atoms left %zu bytes", n);
	(void)total;
}

static void check_imap(const char *b, size_t len, const char *tag)
{
	struct mt_imap_line l;
	size_t tl = strlen(tag);
	int rc = mt_imap_parse_line(b, len, tag, &l);
	const char *name, *args;
	size_t namelen, argslen;

	if (ref_literal(b, len)) {
		FUZZ_CHECK(rc < 0, "a line ending in a literal was accepted");
		return;
	}
	if (len >= 1 && b[0] == '+') {
		FUZZ_CHECK(rc == 0 && l.kind == MT_IMAP_CONTINUE && l.rest == b + 1 && l.restlen == len - 1,
		    "continuation request");
		return;
	}
	if (len >= 2 && b[0] == '*' && b[1] == ' ') {
		size_t wl = 0;
		while (2 + wl < len && b[2 + wl] != ' ')
			wl++;
		if (wl == 0) {
			FUZZ_CHECK(rc < 0, "untagged line without a word accepted");
			return;
		}
		FUZZ_CHECK(rc == 0 && l.kind == MT_IMAP_UNTAGGED, "untagged line refused (rc %d)", rc);
		FUZZ_CHECK(l.word == b + 2 && l.wordlen == wl, "untagged word");
		FUZZ_CHECK(l.cond == ref_cond(l.word, l.wordlen), "untagged condition %d", l.cond);
	} else if (tl && len > tl && memcmp(b, tag, tl) == 0 && b[tl] == ' ') {
		size_t wl = 0;
		int cond;
		while (tl + 1 + wl < len && b[tl + 1 + wl] != ' ')
			wl++;
		cond = ref_cond(b + tl + 1, wl);
		if (wl == 0 || (cond != MT_IMAP_OK && cond != MT_IMAP_NO && cond != MT_IMAP_BAD)) {
			FUZZ_CHECK(rc < 0, "tagged line that is not OK/NO/BAD accepted");
			return;
		}
		FUZZ_CHECK(rc == 0 && l.kind == MT_IMAP_TAGGED && l.cond == cond, "tagged line (rc %d)", rc);
		FUZZ_CHECK(l.word == b + tl + 1 && l.wordlen == wl, "tagged word");
	} else {
		FUZZ_CHECK(rc < 0, "line with another tag (or none) accepted, tag \"%s\"", tag);
		return;
	}
	/* rest: after the word and one space, to the end. */
	{
		size_t after = (size_t)(l.word - b) + l.wordlen;
		size_t roff = after < len ? after + 1 : len;
		FUZZ_CHECK(l.rest == b + roff && l.restlen == len - roff, "rest at %td+%zu", l.rest - b, l.restlen);
	}
	switch (l.cond) {
	case MT_IMAP_OK: case MT_IMAP_PREAUTH:
		FUZZ_CHECK(mt_imap_status(l.cond) == MT_ST_OK, "status OK"); break;
	case MT_IMAP_NO:
		FUZZ_CHECK(mt_imap_status(l.cond) == MT_ST_NO, "status NO"); break;
	case MT_IMAP_BAD: case MT_IMAP_BYE:
		FUZZ_CHECK(mt_imap_status(l.cond) == MT_ST_BAD, "status BAD"); break;
	default:
		FUZZ_CHECK(mt_imap_status(l.cond) == 0, "status of data"); break;
	}

	rc = mt_imap_resp_code(l.rest, l.restlen, &name, &namelen, &args, &argslen);
	if (l.restlen == 0 || l.rest[0] != '[') {
		FUZZ_CHECK(rc == 0, "response code found without '['");
	} else {
		const char *close = memchr(l.rest, ']', l.restlen);
		if (!close) {
			FUZZ_CHECK(rc < 0, "unclosed response code accepted");
		} else {
			const char *sp = memchr(l.rest + 1, ' ', (size_t)(close - l.rest - 1));
			FUZZ_CHECK(rc == 1, "response code missed");
			FUZZ_CHECK(name == l.rest + 1 && INSIDE(name, namelen, b, len), "code name outside");
			FUZZ_CHECK(namelen == (size_t)((sp ? sp : close) - name), "code name length");
			FUZZ_CHECK(INSIDE(args, argslen, b, len) && args + argslen <= close, "code args outside");
			FUZZ_CHECK(sp ? args == sp + 1 && args + argslen == close : argslen == 0, "code args");
			check_atoms(b, len, args, argslen);
		}
	}
	check_atoms(b, len, l.rest, l.restlen);
	FUZZ_CHECK(mt_keyword_is(l.rest, l.restlen, "STLS") ==
	        ref_ci_eq(l.rest, memchr(l.rest, ' ', l.restlen) ? (size_t)((const char *)memchr(l.rest, ' ', l.restlen) - l.rest)
	                                                            : l.restlen, "STLS"),
	    "mt_keyword_is STLS");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	char tagbuf[9];
	const char *tag;
	unsigned sel = fz_u8(&f);
	const char *p, *end;

	switch (sel & 3) {
	case 0: tag = ""; break;
	case 1: tag = "a1"; break;
	case 2: tag = "a2"; break;
	default: {
		size_t got, n = (sel >> 2) & 7;
		const uint8_t *t = fz_bytes(&f, n, &got);
		for (size_t i = 0; i < got; i++)
			tagbuf[i] = t[i] ? (char)t[i] : 'x';
		tagbuf[got] = 0;
		tag = tagbuf;
	}
	}
	p = (const char *)f.p;
	end = p + f.n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char *line;
		if (len > 0 && nl && p[len - 1] == '\r')
			len--;
		if (len > MT_LINE_MAX)
			len = MT_LINE_MAX;
		line = malloc(len ? len : 1);
		memcpy(line, p, len);
		p = nl ? nl + 1 : end;
		check_pop3(line, len);
		check_imap(line, len, tag);
		free(line);
	}
	return 0;
}
