/* proxy.c -- the server STARTTLS proxy's state machine: entry points and
 * shared helpers.  No I/O.  See mailtls.h ("Server STARTTLS proxy") and
 * proxy.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mailreply.h"
#include "proxy.h"

struct mailtls_proxy *mailtls_proxy_new(int proto, int flags)
{
	struct mailtls_proxy *p;
	if ((proto != MAILTLS_SMTP && proto != MAILTLS_POP3 && proto != MAILTLS_IMAP) ||
	    (flags & ~(MAILTLS_PROXY_REQUIRE_TLS | MAILTLS_PROXY_HIDE_AUTH))) {
		errno = EINVAL;
		return NULL;
	}
	if (!(p = calloc(1, sizeof *p))) {
		errno = ENOMEM;
		return NULL;
	}
	p->proto = proto;
	p->flags = flags;
	p->data_bol = 1;
	if (proto != MAILTLS_IMAP)
		mt_px_push(p, K_GREETING, NULL, 0);
	return p;
}

void mailtls_proxy_free(struct mailtls_proxy *p)
{
	free(p);
}

void mt_px_split(const char *s, size_t len, struct mt_px_line *l)
{
	l->p = s;
	l->len = len;
	l->lf = len > 0 && s[len - 1] == '\n';
	l->n = len;
	if (l->lf) {
		l->n--;
		if (l->n > 0 && s[l->n - 1] == '\r')
			l->n--;
	}
}

void mt_px_client(struct mailtls_proxy *p, const char *s, size_t n)
{
	if (n > PX_OUT - p->coutlen)
		n = PX_OUT - p->coutlen;
	memcpy(p->cout + p->coutlen, s, n);
	p->coutlen += n;
}

void mt_px_client_str(struct mailtls_proxy *p, const char *s)
{
	mt_px_client(p, s, strlen(s));
}

int mt_px_answer(struct mailtls_proxy *p, const char *text)
{
	mt_px_client_str(p, text);
	return MAILTLS_PROXY_CONTINUE;
}

void mt_px_prog(struct mailtls_proxy *p, const char *s, size_t n)
{
	if (n > sizeof p->pout - p->poutlen)
		n = sizeof p->pout - p->poutlen;
	memcpy(p->pout + p->poutlen, s, n);
	p->poutlen += n;
}

int mt_px_push(struct mailtls_proxy *p, int kind, const char *tag, size_t taglen)
{
	struct mt_px_cmd *c;
	if (p->qlen == PX_QUEUE)
		return -1;
	c = &p->q[(p->qhead + p->qlen++) % PX_QUEUE];
	c->kind = kind;
	c->tag[0] = 0;
	if (tag && taglen < PX_TAG) {
		memcpy(c->tag, tag, taglen);
		c->tag[taglen] = 0;
	}
	return 0;
}

struct mt_px_cmd *mt_px_head(struct mailtls_proxy *p)
{
	return p->qlen ? &p->q[p->qhead] : NULL;
}

void mt_px_pop(struct mailtls_proxy *p)
{
	if (!p->qlen)
		return;
	p->qhead = (p->qhead + 1) % PX_QUEUE;
	p->qlen--;
}

int mt_px_queued(const struct mailtls_proxy *p, int kind)
{
	for (size_t i = 0; i < p->qlen; i++)
		if (p->q[(p->qhead + i) % PX_QUEUE].kind == kind)
			return 1;
	return 0;
}

int mt_px_remove_tag(struct mailtls_proxy *p, const char *tag, size_t taglen)
{
	for (size_t i = 0; i < p->qlen; i++) {
		struct mt_px_cmd *c = &p->q[(p->qhead + i) % PX_QUEUE];
		int kind;
		if (taglen >= PX_TAG || strlen(c->tag) != taglen || memcmp(c->tag, tag, taglen) != 0)
			continue;
		kind = c->kind;
		/* Close the gap: later entries move up by one. */
		for (size_t j = i; j + 1 < p->qlen; j++)
			p->q[(p->qhead + j) % PX_QUEUE] = p->q[(p->qhead + j + 1) % PX_QUEUE];
		p->qlen--;
		return kind;
	}
	return -1;
}

int mt_px_has_arg(const struct mt_px_line *l)
{
	const char *sp = memchr(l->p, ' ', l->n);
	if (sp)
		for (; sp < l->p + l->n; sp++)
			if (*sp != ' ')
				return 1;
	return 0;
}

int mt_px_verb(const struct mt_px_line *l, const char *verb, int *has_arg)
{
	const char *sp = memchr(l->p, ' ', l->n);
	if (!mt_word_eq(l->p, sp ? (size_t)(sp - l->p) : l->n, verb))
		return 0;
	if (has_arg)
		*has_arg = mt_px_has_arg(l);
	return 1;
}

int mt_px_literal(const char *s, size_t n, unsigned long long *size)
{
	size_t i, digits = 0;
	unsigned long long v = 0;
	int plus;
	if (n < 3 || s[n - 1] != '}')
		return 0;
	i = n - 2;
	plus = s[i] == '+';
	if (plus)
		i--;
	while (i > 0 && s[i] >= '0' && s[i] <= '9') {
		i--;
		digits++;
	}
	if (!digits || digits > 18 || s[i] != '{')
		return 0;
	for (size_t k = i + 1; k < i + 1 + digits; k++)
		v = v * 10 + (unsigned)(s[k] - '0');
	*size = v;
	return plus ? 2 : 1;
}

static int bad_args(struct mailtls_proxy *p, const char *line, size_t len, struct mailtls_proxy_out *out)
{
	if (out)
		memset(out, 0, sizeof *out);
	if (!p || !out || (!line && len) || len > MAILTLS_PROXY_CHUNK) {
		errno = EINVAL;
		return 1;
	}
	p->coutlen = p->poutlen = 0;
	return 0;
}

static void fill(struct mailtls_proxy *p, struct mailtls_proxy_out *out)
{
	out->client = p->cout;
	out->client_len = p->coutlen;
	out->prog = p->pout;
	out->prog_len = p->poutlen;
}

int mailtls_proxy_client_line(struct mailtls_proxy *p, const char *line, size_t len, int more,
    struct mailtls_proxy_out *out)
{
	struct mt_px_line l;
	int r;
	if (bad_args(p, line, len, out))
		return -1;
	if (p->closing)
		return MAILTLS_PROXY_CLOSE;
	if (p->starttls) {
		/* Nothing may come between STARTTLS and the handshake. */
		errno = EINVAL;
		return -1;
	}
	mt_px_split(line ? line : "", len, &l);
	if (p->proto == MAILTLS_SMTP)
		r = mt_px_smtp_client(p, &l, more);
	else if (p->proto == MAILTLS_POP3)
		r = mt_px_pop3_client(p, &l, more);
	else
		r = mt_px_imap_client(p, &l, more);
	if (r == MAILTLS_PROXY_WAIT)
		p->coutlen = p->poutlen = 0;
	else if (r == MAILTLS_PROXY_STARTTLS)
		p->starttls = 1;
	else if (r == MAILTLS_PROXY_CLOSE)
		p->closing = 1;
	fill(p, out);
	return r;
}

int mailtls_proxy_server_line(struct mailtls_proxy *p, const char *line, size_t len,
    struct mailtls_proxy_out *out)
{
	struct mt_px_line l;
	if (bad_args(p, line, len, out))
		return -1;
	mt_px_split(line ? line : "", len, &l);
	if (p->proto == MAILTLS_SMTP)
		mt_px_smtp_server(p, &l);
	else if (p->proto == MAILTLS_POP3)
		mt_px_pop3_server(p, &l);
	else
		mt_px_imap_server(p, &l);
	fill(p, out);
	return MAILTLS_PROXY_CONTINUE;
}

int mailtls_proxy_tls_started(struct mailtls_proxy *p, struct mailtls_proxy_out *out)
{
	if (bad_args(p, NULL, 0, out))
		return -1;
	if (!p->starttls) {
		errno = EINVAL;
		return -1;
	}
	p->starttls = 0;
	p->tls = 1;
	p->authed = 0;
	if (p->proto == MAILTLS_SMTP)
		mt_px_smtp_tls(p);
	fill(p, out);
	return 0;
}
