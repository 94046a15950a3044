/* mailreply.c -- strict, bounded parsers for mail server replies.  See
 * mailreply.h. */
#include <string.h>

#include "mailreply.h"

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

int mt_word_eq(const char *p, size_t n, const char *w)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (!w[i] || lower((unsigned char)p[i]) != lower((unsigned char)w[i]))
			return 0;
	return w[i] == 0;
}

int mt_keyword_is(const char *p, size_t n, const char *kw)
{
	const char *sp = memchr(p, ' ', n);
	return mt_word_eq(p, sp ? (size_t)(sp - p) : n, kw);
}

int mt_next_atom(const char **p, size_t *n, const char **atom, size_t *atomlen)
{
	const char *s = *p, *e = *p + *n, *a;
	while (s < e && *s == ' ')
		s++;
	if (s == e) {
		*p = s;
		*n = 0;
		return 0;
	}
	a = s;
	while (s < e && *s != ' ')
		s++;
	*atom = a;
	*atomlen = (size_t)(s - a);
	*p = s;
	*n = (size_t)(e - s);
	return 1;
}

/* SMTP */

int mt_smtp_parse_line(const char *b, size_t len, struct mt_smtp_line *out)
{
	memset(out, 0, sizeof *out);
	if (len < 3)
		return -1;
	if (b[0] < '2' || b[0] > '5' || b[1] < '0' || b[1] > '5' || b[2] < '0' || b[2] > '9')
		return -1;
	out->code = (b[0] - '0') * 100 + (b[1] - '0') * 10 + (b[2] - '0');
	if (len == 3) {
		out->last = 1;
		out->text = b + 3;
		return 0;
	}
	if (b[3] == ' ')
		out->last = 1;
	else if (b[3] != '-')
		return -1;
	out->text = b + 4;
	out->textlen = len - 4;
	return 0;
}

/* POP3 */

static int indicator(const char *b, size_t len, const char *ind, const char **text, size_t *textlen)
{
	size_t n = strlen(ind);
	if (len < n || memcmp(b, ind, n) != 0)
		return 0;
	if (len == n) {
		*text = b + n;
		*textlen = 0;
		return 1;
	}
	if (b[n] != ' ')
		return 0;
	*text = b + n + 1;
	*textlen = len - n - 1;
	return 1;
}

int mt_pop3_status(const char *b, size_t len, const char **text, size_t *textlen)
{
	if (indicator(b, len, "+OK", text, textlen))
		return MT_ST_OK;
	if (indicator(b, len, "-ERR", text, textlen))
		return MT_ST_BAD;
	return -1;
}

int mt_pop3_body_line(const char **p, size_t *n)
{
	if (*n >= 1 && (*p)[0] == '.') {
		if (*n == 1)
			return 1;
		(*p)++;
		(*n)--;
	}
	return 0;
}

/* IMAP */

static int has_literal(const char *b, size_t len)
{
	size_t i;
	if (len < 3 || b[len - 1] != '}')
		return 0;
	i = len - 2;
	if (b[i] == '+')
		i--;
	if (b[i] < '0' || b[i] > '9')
		return 0;
	while (i > 0 && b[i] >= '0' && b[i] <= '9')
		i--;
	return b[i] == '{';
}

static int cond_of(const char *w, size_t n)
{
	if (mt_word_eq(w, n, "OK"))
		return MT_IMAP_OK;
	if (mt_word_eq(w, n, "NO"))
		return MT_IMAP_NO;
	if (mt_word_eq(w, n, "BAD"))
		return MT_IMAP_BAD;
	if (mt_word_eq(w, n, "BYE"))
		return MT_IMAP_BYE;
	if (mt_word_eq(w, n, "PREAUTH"))
		return MT_IMAP_PREAUTH;
	return MT_IMAP_DATA;
}

/* The word after |b|[start] up to a space, and the rest after one space. */
static int split_word(const char *b, size_t len, size_t start, struct mt_imap_line *out)
{
	const char *w = b + start, *sp;
	size_t n = len - start;
	sp = memchr(w, ' ', n);
	out->word = w;
	out->wordlen = sp ? (size_t)(sp - w) : n;
	if (out->wordlen == 0)
		return -1;
	out->rest = sp ? sp + 1 : w + n;
	out->restlen = sp ? n - out->wordlen - 1 : 0;
	return 0;
}

int mt_imap_parse_line(const char *b, size_t len, const char *tag, struct mt_imap_line *out)
{
	size_t tl = strlen(tag);
	memset(out, 0, sizeof *out);
	if (has_literal(b, len))
		return -1;
	if (len >= 1 && b[0] == '+') {
		out->kind = MT_IMAP_CONTINUE;
		out->rest = b + 1;
		out->restlen = len - 1;
		return 0;
	}
	if (len >= 2 && b[0] == '*' && b[1] == ' ') {
		out->kind = MT_IMAP_UNTAGGED;
		if (split_word(b, len, 2, out) < 0)
			return -1;
		out->cond = cond_of(out->word, out->wordlen);
		return 0;
	}
	if (tl && len > tl && memcmp(b, tag, tl) == 0 && b[tl] == ' ') {
		out->kind = MT_IMAP_TAGGED;
		if (split_word(b, len, tl + 1, out) < 0)
			return -1;
		out->cond = cond_of(out->word, out->wordlen);
		if (out->cond != MT_IMAP_OK && out->cond != MT_IMAP_NO && out->cond != MT_IMAP_BAD)
			return -1;
		return 0;
	}
	return -1;
}

int mt_imap_status(int cond)
{
	switch (cond) {
	case MT_IMAP_OK:
	case MT_IMAP_PREAUTH:
		return MT_ST_OK;
	case MT_IMAP_NO:
		return MT_ST_NO;
	case MT_IMAP_BAD:
	case MT_IMAP_BYE:
		return MT_ST_BAD;
	default:
		return 0;
	}
}

int mt_imap_resp_code(const char *p, size_t n, const char **name, size_t *namelen,
    const char **args, size_t *argslen)
{
	const char *end, *sp;
	size_t in;
	if (n == 0 || p[0] != '[')
		return 0;
	end = memchr(p, ']', n);
	if (!end)
		return -1;
	p++;
	in = (size_t)(end - p);
	sp = memchr(p, ' ', in);
	*name = p;
	*namelen = sp ? (size_t)(sp - p) : in;
	*args = sp ? sp + 1 : end;
	*argslen = sp ? (size_t)(end - sp - 1) : 0;
	return 1;
}

/* Texts */

void mt_text_init(struct mt_text *t, char *buf, size_t cap)
{
	t->buf = buf;
	t->cap = cap;
	t->len = 0;
	if (cap)
		buf[0] = 0;
}

static void put(struct mt_text *t, const char *p, size_t n)
{
	for (size_t i = 0; i < n && t->len + 1 < t->cap; i++)
		t->buf[t->len++] = p[i] ? p[i] : '?';
	if (t->cap)
		t->buf[t->len] = 0;
}

void mt_text_add(struct mt_text *t, const char *p, size_t n)
{
	put(t, p, n);
	put(t, "\n", 1);
}

int mt_text_add_whole(struct mt_text *t, const char *p, size_t n)
{
	if (t->len + n + 1 + 1 > t->cap)
		return -1;
	mt_text_add(t, p, n);
	return 0;
}

const char *mt_printable(char *out, size_t max, const char *p, size_t n)
{
	size_t i;
	for (i = 0; i < n && i < max; i++)
		out[i] = p[i] >= 0x20 && p[i] <= 0x7e ? p[i] : '?';
	out[i] = 0;
	return out;
}
