/*
 * fuzz_smtp_reply.c -- the SMTP reply parser (mailreply.h:
 * mt_smtp_parse_line) and what the STARTTLS client builds from a reply:
 * the bounded texts (mt_text_add, mt_text_add_whole), the capability
 * keyword test (mt_keyword_is, mailtls_smtp_has_capability) and the
 * printable copy for messages (mt_printable).
 *
 * Input: byte 0 is the capacity of a small text buffer (0-255), then a
 * keyword line (up to the first LF), then the reply: lines ending at LF,
 * with CR LF or LF removed as the line reader does.
 *
 * Checks: the parser agrees with RFC 5321 4.2 as mailreply.h states it
 * (three digits, [2-5][0-5][0-9], then end, SP or '-'), its text lies inside
 * the line; texts are the exact concatenation of the lines (NUL -> '?'),
 * cut, never overrun, always NUL-terminated; capability lists hold whole
 * lines only; has_capability answers as a plain reading of the list does.
 * ISC license: see LICENSE.
 */
#include "fuzz.h"
#include "lineread.h"
#include "mailreply.h"

/* The grammar, written from the header, not from mailreply.c. */
static int ref_parse(const char *b, size_t len, int *code, int *last, size_t *off)
{
	if (len < 3)
		return -1;
	if (!(b[0] >= '2' && b[0] <= '5') || !(b[1] >= '0' && b[1] <= '5') || !(b[2] >= '0' && b[2] <= '9'))
		return -1;
	*code = (b[0] - '0') * 100 + (b[1] - '0') * 10 + (b[2] - '0');
	if (len == 3) {
		*last = 1;
		*off = 3;
		return 0;
	}
	if (b[3] != ' ' && b[3] != '-')
		return -1;
	*last = b[3] == ' ';
	*off = 4;
	return 0;
}

static int ci_eq(const char *a, size_t an, const char *b, size_t bn)
{
	if (an != bn)
		return 0;
	for (size_t i = 0; i < an; i++) {
		int x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x >= 'A' && x <= 'Z')
			x += 32;
		if (y >= 'A' && y <= 'Z')
			y += 32;
		if (x != y)
			return 0;
	}
	return 1;
}

/* An expected text: the whole concatenation, and the rule to cut it. */
struct ref_text {
	char buf[1 << 17];
	size_t len;
};

static void ref_add(struct ref_text *r, const char *p, size_t n)
{
	for (size_t i = 0; i < n && r->len < sizeof r->buf - 1; i++)
		r->buf[r->len++] = p[i] ? p[i] : '?';
	if (r->len < sizeof r->buf - 1)
		r->buf[r->len++] = '\n';
}

static void check_text(const struct mt_text *t, size_t cap, const struct ref_text *r, const char *what)
{
	if (cap == 0) {
		FUZZ_CHECK(t->len == 0, "%s: %zu bytes in a text of capacity 0", what, t->len);
		return;
	}
	FUZZ_CHECK(t->len <= cap - 1, "%s: length %zu, capacity %zu", what, t->len, cap);
	FUZZ_CHECK(t->buf[t->len] == 0, "%s: not NUL-terminated", what);
	FUZZ_CHECK(memchr(t->buf, 0, t->len) == NULL, "%s: a NUL inside", what);
	FUZZ_CHECK(t->len <= r->len && memcmp(t->buf, r->buf, t->len) == 0, "%s: not the lines as sent", what);
	/* Cut only where the capacity ran out. */
	FUZZ_CHECK(t->len == r->len || t->len == cap - 1 || r->len >= sizeof r->buf - 1,
	    "%s: cut at %zu of %zu with capacity %zu", what, t->len, r->len, cap);
}

static struct ref_text full, capref;
static struct mailtls_starttls_info info;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	size_t smallcap = fz_u8(&f), kwlen;
	const char *kwp;
	char kw[MT_LINE_MAX + 1];
	char *small = malloc(smallcap ? smallcap : 1); /* exactly: ASan sees an overrun */
	struct mt_text text, caps, stext;
	const char *p, *end;
	int code = 0, nlines = 0, has_ref[3] = { 0, 0, 0 };
	static const char *const fixed[2] = { "STARTTLS", "PIPELINING" };

	/* The keyword. */
	kwp = (const char *)f.p;
	p = memchr(f.p, '\n', f.n);
	kwlen = p ? (size_t)(p - kwp) : f.n;
	if (kwlen > MT_LINE_MAX)
		kwlen = MT_LINE_MAX;
	memcpy(kw, kwp, kwlen);
	kw[kwlen] = 0;
	kwlen = strlen(kw); /* as a C string, the way a caller passes it */
	f.p += p ? (size_t)(p - kwp) + 1 : f.n;
	f.n = size - (size_t)(f.p - data);

	memset(&info, 0, sizeof info);
	full.len = capref.len = 0;
	mt_text_init(&text, info.ehlo, sizeof info.ehlo);
	mt_text_init(&caps, info.capabilities, sizeof info.capabilities);
	mt_text_init(&stext, small, smallcap);

	p = (const char *)f.p;
	end = p + f.n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct mt_smtp_line l;
		int rc, rcode = 0, rlast = 0, r;
		size_t roff = 0;
		char shown[101];
		const char *line;
		char *copy;

		if (len > 0 && nl && p[len - 1] == '\r')
			len--; /* what the line reader hands over */
		if (len > MT_LINE_MAX)
			len = MT_LINE_MAX;
		/* The line alone in a buffer of its size: a read past it is seen. */
		copy = malloc(len ? len : 1);
		memcpy(copy, p, len);
		line = copy;
		p = nl ? nl + 1 : end;

		rc = mt_smtp_parse_line(line, len, &l);
		r = ref_parse(line, len, &rcode, &rlast, &roff);
		FUZZ_CHECK((rc == 0) == (r == 0), "parser says %d, the grammar %d", rc, r);
		if (rc == 0) {
			FUZZ_CHECK(l.code == rcode && l.last == rlast, "code %d/%d last %d/%d", l.code, rcode, l.last, rlast);
			FUZZ_CHECK(l.text == line + roff && l.textlen == len - roff, "text at %td+%zu, not %zu+%zu",
			    l.text - line, l.textlen, roff, len - roff);
			FUZZ_CHECK(l.code >= 200 && l.code <= 559, "code %d", l.code);
		}

		/* What smtp_reply does with the line. */
		mt_text_add(&text, line, len);
		mt_text_add(&stext, line, len);
		ref_add(&full, line, len);
		if (rc == 0) {
			if (nlines == 0)
				code = l.code;
			if (nlines > 0 && l.code == code) {
				size_t before = caps.len;
				int added = mt_text_add_whole(&caps, l.text, l.textlen);
				if (added == 0) {
					ref_add(&capref, l.text, l.textlen);
					for (int k = 0; k < 3; k++) {
						const char *w = k < 2 ? fixed[k] : kw;
						const char *sp = memchr(l.text, ' ', l.textlen);
						size_t wl = sp ? (size_t)(sp - l.text) : l.textlen;
						/* has_capability reads the list, where NUL is '?'. */
						char word[MT_LINE_MAX];
						for (size_t i = 0; i < wl; i++)
							word[i] = l.text[i] ? l.text[i] : '?';
						if (*w && ci_eq(word, wl, w, strlen(w)))
							has_ref[k] = 1;
					}
				} else {
					FUZZ_CHECK(caps.len == before, "a refused capability line changed the list");
					FUZZ_CHECK(before + l.textlen + 2 > caps.cap, "a line that fits was refused");
				}
				FUZZ_CHECK(mt_keyword_is(l.text, l.textlen, "STARTTLS") ==
				        (l.textlen >= 8 && ci_eq(l.text, 8, "STARTTLS", 8) && (l.textlen == 8 || l.text[8] == ' ')),
				    "mt_keyword_is STARTTLS");
			}
			nlines++;
		}
		mt_printable(shown, 100, line, len);
		FUZZ_CHECK(strlen(shown) == (len < 100 ? len : 100), "printable copy of %zu bytes has %zu", len, strlen(shown));
		for (size_t i = 0; shown[i]; i++)
			FUZZ_CHECK(shown[i] >= 0x20 && shown[i] <= 0x7e, "byte 0x%02x in a printable copy",
			    (unsigned char)shown[i]);
		free(copy);
	}
	check_text(&text, sizeof info.ehlo, &full, "reply text");
	check_text(&stext, smallcap, &full, "small text");
	/* The capability list: exactly the whole lines accepted. */
	FUZZ_CHECK(caps.len == capref.len && memcmp(caps.buf, capref.buf, caps.len) == 0 && caps.buf[caps.len] == 0,
	    "capability list is not the whole lines added");
	for (int k = 0; k < 3; k++) {
		const char *w = k < 2 ? fixed[k] : kw;
		int got = mailtls_smtp_has_capability(&info, w);
		FUZZ_CHECK(got == has_ref[k], "has_capability(\"%s\") = %d, the list says %d", w, got, has_ref[k]);
	}
	FUZZ_CHECK(mailtls_smtp_has_capability(&info, "") == 0, "empty keyword");
	FUZZ_CHECK(mailtls_smtp_has_capability(NULL, "STARTTLS") == 0, "NULL info");
	free(small);
	return 0;
}
