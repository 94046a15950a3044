/* proxy_imap.c -- the STARTTLS proxy for IMAP (RFC 3501 6.2.1, RFC 2595):
 * STARTTLS (and LOGINDISABLED) in CAPABILITY responses and [CAPABILITY]
 * response codes, "tag STARTTLS" answered here; literals on both sides
 * and AUTHENTICATE exchanges tracked, so their bytes are never read as
 * commands or responses.  See proxy.h. */
#include <string.h>

#include "mailreply.h"
#include "proxy.h"

static int answer(struct mailtls_proxy *p, const char *tag, size_t taglen, const char *text)
{
	mt_px_client(p, tag, taglen);
	return mt_px_answer(p, text);
}

static int starttls(struct mailtls_proxy *p, const char *tag, size_t taglen, int arg, int more)
{
	if (arg)
		return answer(p, tag, taglen, " BAD STARTTLS takes no arguments\r\n");
	if (p->tls)
		return answer(p, tag, taglen, " BAD TLS already active\r\n");
	if (p->authed)
		return answer(p, tag, taglen, " BAD STARTTLS only before login\r\n");
	if (more) {
		p->injection = 1;
		answer(p, tag, taglen, " BAD plaintext pipelined after STARTTLS, closing\r\n");
		return MAILTLS_PROXY_CLOSE;
	}
	answer(p, tag, taglen, " OK Begin TLS negotiation now\r\n");
	return MAILTLS_PROXY_STARTTLS;
}

/* RFC 3501 tag: ASTRING-CHARs but "+", here shorter than PX_TAG.  A tag
 * the program could answer in another form ("*", "+ ...") or that the
 * queue cannot hold would never be matched to its completion: its queue
 * entry would stay, and once the queue is full every command would wait. */
static int good_tag(const char *t, size_t n)
{
	if (n == 0 || n >= PX_TAG)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\+", c))
			return 0;
	}
	return 1;
}

/* The rest of a command (or response) after literal bytes: |s|, |n| up to
 * and with the LF when |lf|.  Sets what follows. */
static void after_literal(struct mailtls_proxy *p, const char *s, size_t n, int lf, int client)
{
	struct mt_px_line l;
	unsigned long long size;
	int k;
	mt_px_split(s, n, &l);
	if (!lf) {
		*(client ? &p->c_cont : &p->s_cont) = 1;
		return;
	}
	*(client ? &p->c_cont : &p->s_cont) = 0;
	k = mt_px_literal(l.p, l.n, &size);
	if (!client) {
		if (k)
			p->s_lit = size;
		return;
	}
	if (k == 2) {
		p->c_lit = size;          /* dropped too when the command was refused */
	} else if (k == 1 && !p->c_drop) {
		p->c_lit_wait = size;     /* sent once the program says "+" */
	} else {
		p->c_drop = 0;            /* the command ends (a refused {n} is never sent) */
	}
}

/* Literal bytes, then maybe the rest of the line.  Returns 1 when the
 * chunk was taken so. */
static int literal_chunk(struct mailtls_proxy *p, const struct mt_px_line *l, int client)
{
	unsigned long long *lit = client ? &p->c_lit : &p->s_lit;
	int *cont = client ? &p->c_cont : &p->s_cont;
	size_t k;
	if (*lit == 0 && !*cont)
		return 0;
	if (client && !p->c_drop)
		mt_px_prog(p, l->p, l->len);
	else if (!client)
		mt_px_client(p, l->p, l->len);
	if (*lit == 0) {
		after_literal(p, l->p, l->len, l->lf, client);
		return 1;
	}
	k = *lit < l->len ? (size_t)*lit : l->len;
	*lit -= k;
	if (k < l->len)
		after_literal(p, l->p + k, l->len - k, l->lf, client);
	else if (*lit == 0)
		*cont = 1;
	return 1;
}

int mt_px_imap_client(struct mailtls_proxy *p, const struct mt_px_line *l, int more)
{
	const char *tag = l->p, *sp;
	size_t taglen;
	int arg, kind = K_OTHER;
	struct mt_px_line c;
	p->c_mid = !l->lf;
	if (literal_chunk(p, l, 1))
		return MAILTLS_PROXY_CONTINUE;
	if (p->raw_next) {
		mt_px_prog(p, l->p, l->len);
		if (l->lf)
			p->raw_next = 0;
		return MAILTLS_PROXY_CONTINUE;
	}
	if (!l->lf) {
		mt_px_client_str(p, "* BAD line too long\r\n");
		return MAILTLS_PROXY_CLOSE;
	}
	if (p->qlen == PX_QUEUE || p->c_lit_wait || mt_px_queued(p, K_AUTH))
		return MAILTLS_PROXY_WAIT;
	sp = memchr(l->p, ' ', l->n);
	if (!sp) {
		mt_px_prog(p, l->p, l->len);
		return MAILTLS_PROXY_CONTINUE;
	}
	taglen = (size_t)(sp - tag);
	if (!good_tag(tag, taglen)) {
		if (p->qlen)
			return MAILTLS_PROXY_WAIT;
		mt_px_client_str(p, "* BAD invalid or overlong command tag\r\n");
		p->c_drop = 1;
		after_literal(p, l->p, l->len, 1, 1);
		return MAILTLS_PROXY_CONTINUE;
	}
	mt_px_split(sp + 1, l->len - taglen - 1, &c);   /* "command args" */
	arg = mt_px_has_arg(&c);
	if (mt_px_verb(&c, "STARTTLS", NULL))
		return p->qlen ? MAILTLS_PROXY_WAIT : starttls(p, tag, taglen, arg, more);
	if (mt_px_verb(&c, "LOGIN", NULL))
		kind = K_LOGIN;
	else if (mt_px_verb(&c, "AUTHENTICATE", NULL))
		kind = K_AUTH;
	if (kind != K_OTHER && !p->tls && (p->flags & MAILTLS_PROXY_REQUIRE_TLS)) {
		if (p->qlen)
			return MAILTLS_PROXY_WAIT;
		answer(p, tag, taglen, " NO [PRIVACYREQUIRED] TLS required: use STARTTLS first\r\n");
		p->c_drop = 1;
		after_literal(p, l->p, l->len, 1, 1);
		return MAILTLS_PROXY_CONTINUE;
	}
	mt_px_prog(p, l->p, l->len);
	mt_px_push(p, kind, tag, taglen);
	after_literal(p, l->p, l->len, 1, 1);
	if (p->c_lit_wait) {
		memcpy(p->lit_tag, tag, taglen);
		p->lit_tag[taglen] = 0;
	}
	return MAILTLS_PROXY_CONTINUE;
}

/* The capability atoms |s| (|n| bytes), rewritten, each after a space. */
static void caps(struct mailtls_proxy *p, const char *s, size_t n)
{
	const char *a;
	size_t an;
	int logindisabled = !p->tls && (p->flags & MAILTLS_PROXY_REQUIRE_TLS);
	while (mt_next_atom(&s, &n, &a, &an)) {
		if (mt_word_eq(a, an, "STARTTLS") || (logindisabled && mt_word_eq(a, an, "LOGINDISABLED")))
			continue;
		if (!p->tls && (p->flags & MAILTLS_PROXY_HIDE_AUTH) && an >= 5 && mt_word_eq(a, 5, "AUTH="))
			continue;
		mt_px_client_str(p, " ");
		mt_px_client(p, a, an);
	}
	if (!p->tls)
		mt_px_client_str(p, " STARTTLS");
	if (logindisabled)
		mt_px_client_str(p, " LOGINDISABLED");
}

/* "[CAPABILITY ...]" at the start of |rest|: rewritten, 1; else 0.
 * |head| is what comes before |rest| on the line. */
static int caps_code(struct mailtls_proxy *p, const struct mt_px_line *l, const char *rest, size_t restlen)
{
	const char *name, *args;
	size_t namelen, argslen;
	if (mt_imap_resp_code(rest, restlen, &name, &namelen, &args, &argslen) != 1 ||
	    !mt_word_eq(name, namelen, "CAPABILITY"))
		return 0;
	mt_px_client(p, l->p, (size_t)(name + namelen - l->p));
	caps(p, args, argslen);
	mt_px_client(p, args + argslen, (size_t)(l->p + l->len - (args + argslen)));
	return 1;
}

void mt_px_imap_server(struct mailtls_proxy *p, const struct mt_px_line *l)
{
	const char *s = l->p, *w, *rest;
	size_t n = l->n, wn, tn;
	unsigned long long size;
	int mid = p->s_mid, kind;
	p->s_mid = !l->lf;
	if (literal_chunk(p, l, 0))
		return;
	if (mid || !l->lf) {
		mt_px_client(p, l->p, l->len);
		return;
	}
	if (mt_px_literal(l->p, l->n, &size)) {
		mt_px_client(p, l->p, l->len);
		p->s_lit = size;
		return;
	}
	if (n >= 1 && s[0] == '+') {
		mt_px_client(p, l->p, l->len);
		if (p->c_lit_wait) {
			p->c_lit = p->c_lit_wait;
			p->c_lit_wait = 0;
		} else if (mt_px_queued(p, K_AUTH)) {
			p->raw_next = 1;
		}
		return;
	}
	if (!mt_next_atom(&s, &n, &w, &tn)) {
		mt_px_client(p, l->p, l->len);
		return;
	}
	if (tn == 1 && w[0] == '*') {
		if (!mt_next_atom(&s, &n, &w, &wn)) {
			mt_px_client(p, l->p, l->len);
			return;
		}
		rest = n ? s + 1 : s;
		if (mt_word_eq(w, wn, "CAPABILITY")) {
			mt_px_client(p, l->p, (size_t)(w + wn - l->p));
			caps(p, rest, n ? n - 1 : 0);
			mt_px_client_str(p, "\r\n");
			return;
		}
		if (mt_word_eq(w, wn, "PREAUTH"))
			p->authed = 1;
		if (!caps_code(p, l, rest, n ? n - 1 : 0))
			mt_px_client(p, l->p, l->len);
		return;
	}
	/* Tagged: "tag OK|NO|BAD [code] text". */
	kind = mt_px_remove_tag(p, l->p, tn);
	if (p->c_lit_wait && strlen(p->lit_tag) == tn && memcmp(p->lit_tag, l->p, tn) == 0) {
		p->c_lit_wait = 0;    /* refused before its literal was asked for */
		p->c_cont = 0;
	}
	if (mt_next_atom(&s, &n, &w, &wn) && mt_word_eq(w, wn, "OK")) {
		if (kind == K_LOGIN || kind == K_AUTH)
			p->authed = 1;
		if (caps_code(p, l, n ? s + 1 : s, n ? n - 1 : 0))
			return;
	}
	mt_px_client(p, l->p, l->len);
}
