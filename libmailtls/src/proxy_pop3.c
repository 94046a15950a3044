/* proxy_pop3.c -- the STARTTLS proxy for POP3 (RFC 2595 STLS, RFC 2449
 * CAPA): STLS added to CAPA (CAPA answered here when the program has none,
 * as qmail-popup), STLS answered here; multi-line replies tracked.  See
 * proxy.h. */
#include <string.h>

#include "mailreply.h"
#include "proxy.h"

static int stls(struct mailtls_proxy *p, int more)
{
	if (p->tls)
		return mt_px_answer(p, "-ERR TLS already active\r\n");
	if (p->authed)
		return mt_px_answer(p, "-ERR STLS only in the AUTHORIZATION state\r\n");
	if (p->user_sent)
		return mt_px_answer(p, "-ERR STLS not allowed after USER\r\n");
	if (more) {
		p->injection = 1;
		mt_px_client_str(p, "-ERR plaintext pipelined after STLS, closing\r\n");
		return MAILTLS_PROXY_CLOSE;
	}
	mt_px_client_str(p, "+OK Begin TLS negotiation\r\n");
	return MAILTLS_PROXY_STARTTLS;
}

static int multi_line(const struct mt_px_line *l, int arg)
{
	return mt_px_verb(l, "CAPA", NULL) || mt_px_verb(l, "RETR", NULL) || mt_px_verb(l, "TOP", NULL) ||
	    ((mt_px_verb(l, "LIST", NULL) || mt_px_verb(l, "UIDL", NULL) || mt_px_verb(l, "AUTH", NULL)) && !arg);
}

int mt_px_pop3_client(struct mailtls_proxy *p, const struct mt_px_line *l, int more)
{
	int arg = 0, kind = K_OTHER;
	int mid = p->c_mid;
	p->c_mid = !l->lf;
	if (p->raw_next || mid) {
		mt_px_prog(p, l->p, l->len);
		if (l->lf)
			p->raw_next = 0;
		return MAILTLS_PROXY_CONTINUE;
	}
	if (!l->lf) {
		mt_px_client_str(p, "-ERR line too long\r\n");
		return MAILTLS_PROXY_CLOSE;
	}
	if (p->qlen == PX_QUEUE || mt_px_queued(p, K_AUTH))
		return MAILTLS_PROXY_WAIT;
	arg = mt_px_has_arg(l);
	if (mt_px_verb(l, "STLS", NULL))
		return p->qlen ? MAILTLS_PROXY_WAIT : stls(p, more);
	if (!p->tls && (p->flags & MAILTLS_PROXY_REQUIRE_TLS) &&
	    (mt_px_verb(l, "USER", NULL) || mt_px_verb(l, "PASS", NULL) || mt_px_verb(l, "APOP", NULL) ||
	    mt_px_verb(l, "AUTH", NULL)))
		return p->qlen ? MAILTLS_PROXY_WAIT : mt_px_answer(p, "-ERR TLS required: use STLS first\r\n");
	if (mt_px_verb(l, "CAPA", NULL))
		kind = K_CAPA;
	else if (mt_px_verb(l, "USER", NULL)) {
		kind = K_USER;
		p->user_sent = 1;
	} else if (mt_px_verb(l, "PASS", NULL) || mt_px_verb(l, "APOP", NULL))
		kind = K_LOGIN;
	else if (mt_px_verb(l, "AUTH", NULL) && arg)
		kind = K_AUTH;
	else if (multi_line(l, arg))
		kind = K_MULTI;
	mt_px_prog(p, l->p, l->len);
	mt_px_push(p, kind, NULL, 0);
	return MAILTLS_PROXY_CONTINUE;
}

/* The CAPA reply of a program that has none. */
static void own_capa(struct mailtls_proxy *p)
{
	mt_px_client_str(p, "+OK Capability list follows\r\n");
	if (!p->tls)
		mt_px_client_str(p, "STLS\r\n");
	mt_px_client_str(p, "USER\r\n.\r\n");
}

/* A line inside a multi-line reply. */
static void body_line(struct mailtls_proxy *p, const struct mt_px_line *l, int mid, int kind)
{
	if (!mid && l->lf && l->n == 1 && l->p[0] == '.') {
		if (kind == K_CAPA && !p->tls)
			mt_px_client_str(p, "STLS\r\n");
		mt_px_client(p, l->p, l->len);
		p->s_body = 0;
		mt_px_pop(p);
		return;
	}
	if (kind == K_CAPA && !mid && (mt_keyword_is(l->p, l->n, "STLS") ||
	    (!p->tls && (p->flags & MAILTLS_PROXY_HIDE_AUTH) && mt_keyword_is(l->p, l->n, "SASL"))))
		return;
	mt_px_client(p, l->p, l->len);
}

void mt_px_pop3_server(struct mailtls_proxy *p, const struct mt_px_line *l)
{
	struct mt_px_cmd *c = mt_px_head(p);
	int kind = c ? c->kind : K_OTHER;
	int mid = p->s_mid, st;
	const char *text;
	size_t textlen;
	p->s_mid = !l->lf;
	if (p->s_body) {
		body_line(p, l, mid, kind);
		return;
	}
	st = mid || !l->lf ? -1 : mt_pop3_status(l->p, l->n, &text, &textlen);
	if (!c || st < 0) {
		/* Unsolicited, a SASL challenge ("+ ..."), or unreadable. */
		mt_px_client(p, l->p, l->len);
		if (c && kind == K_AUTH && !mid && l->lf && l->n >= 1 && l->p[0] == '+')
			p->raw_next = 1;
		return;
	}
	if (kind == K_CAPA && st != MT_ST_OK) {
		own_capa(p);
		mt_px_pop(p);
		return;
	}
	mt_px_client(p, l->p, l->len);
	if ((kind == K_CAPA || kind == K_MULTI) && st == MT_ST_OK) {
		p->s_body = 1;
		return;
	}
	if ((kind == K_LOGIN || kind == K_AUTH) && st == MT_ST_OK)
		p->authed = 1;
	mt_px_pop(p);
}
