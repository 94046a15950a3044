/* proxy_smtp.c -- the STARTTLS proxy for SMTP (RFC 3207): STARTTLS added
 * to the EHLO reply, answered here, RSET to the program after the
 * handshake; the DATA phase tracked.  See proxy.h. */
#include <string.h>

#include "mailreply.h"
#include "proxy.h"

static int forward(struct mailtls_proxy *p, const struct mt_px_line *l, int kind)
{
	mt_px_prog(p, l->p, l->len);
	mt_px_push(p, kind, NULL, 0);
	return MAILTLS_PROXY_CONTINUE;
}

static int starttls(struct mailtls_proxy *p, int has_arg, int more)
{
	if (has_arg)
		return mt_px_answer(p, "501 5.5.4 Syntax error (STARTTLS takes no parameters)\r\n");
	if (p->tls)
		return mt_px_answer(p, "503 5.5.1 TLS already active\r\n");
	if (p->authed)
		return mt_px_answer(p, "503 5.5.1 STARTTLS not allowed after AUTH\r\n");
	if (p->in_mail)
		return mt_px_answer(p, "503 5.5.1 STARTTLS not allowed inside a mail transaction\r\n");
	if (more) {
		p->injection = 1;
		mt_px_client_str(p, "503 5.5.1 Plaintext pipelined after STARTTLS, closing\r\n");
		return MAILTLS_PROXY_CLOSE;
	}
	mt_px_client_str(p, "220 2.0.0 Ready to start TLS\r\n");
	return MAILTLS_PROXY_STARTTLS;
}

int mt_px_smtp_client(struct mailtls_proxy *p, const struct mt_px_line *l, int more)
{
	int arg = 0;
	int mid = p->c_mid;
	p->c_mid = !l->lf;
	if (p->data) {
		/* Message data: only the lone dot at the start of a line matters. */
		mt_px_prog(p, l->p, l->len);
		if (!mid && l->lf && l->n == 1 && l->p[0] == '.') {
			p->data = 0;
			mt_px_push(p, K_DATAEND, NULL, 0);
		}
		return MAILTLS_PROXY_CONTINUE;
	}
	if (p->raw_next || mid) {
		/* A SASL response (or the rest of one). */
		mt_px_prog(p, l->p, l->len);
		if (l->lf)
			p->raw_next = 0;
		return MAILTLS_PROXY_CONTINUE;
	}
	if (!l->lf) {
		mt_px_client_str(p, "500 5.5.2 Line too long\r\n");
		return MAILTLS_PROXY_CLOSE;
	}
	/* Until the program answered DATA or AUTH, what follows may be data. */
	if (p->qlen == PX_QUEUE || mt_px_queued(p, K_DATA) || mt_px_queued(p, K_AUTH))
		return MAILTLS_PROXY_WAIT;
	if (mt_px_verb(l, "STARTTLS", &arg))
		return p->qlen ? MAILTLS_PROXY_WAIT : starttls(p, arg, more);
	if (p->tls && p->need_ehlo && (mt_px_verb(l, "MAIL", NULL) || mt_px_verb(l, "RCPT", NULL) ||
	    mt_px_verb(l, "DATA", NULL) || mt_px_verb(l, "AUTH", NULL) || mt_px_verb(l, "BDAT", NULL)))
		return p->qlen ? MAILTLS_PROXY_WAIT : mt_px_answer(p, "503 5.5.1 Send EHLO first (after STARTTLS)\r\n");
	if (!p->tls && (p->flags & MAILTLS_PROXY_REQUIRE_TLS) &&
	    (mt_px_verb(l, "MAIL", NULL) || mt_px_verb(l, "AUTH", NULL)))
		return p->qlen ? MAILTLS_PROXY_WAIT : mt_px_answer(p, "530 5.7.0 Must issue a STARTTLS command first\r\n");
	if (mt_px_verb(l, "EHLO", NULL) || mt_px_verb(l, "HELO", NULL)) {
		p->need_ehlo = 0;
		return forward(p, l, mt_px_verb(l, "EHLO", NULL) ? K_EHLO : K_HELO);
	}
	if (mt_px_verb(l, "MAIL", NULL))
		return forward(p, l, K_MAIL);
	if (mt_px_verb(l, "RSET", NULL))
		return forward(p, l, K_RSET);
	if (mt_px_verb(l, "DATA", NULL))
		return forward(p, l, K_DATA);
	if (mt_px_verb(l, "AUTH", NULL))
		return forward(p, l, K_AUTH);
	return forward(p, l, K_OTHER);
}

/* One line of a 250 EHLO reply.  The line before is held back, so that
 * the last line kept can be the final one ("250 ...") whatever is dropped,
 * and STARTTLS can follow it before TLS. */
static void ehlo_line(struct mailtls_proxy *p, const struct mt_px_line *l, const struct mt_smtp_line *sl)
{
	int drop = p->caps > 0 && (mt_keyword_is(sl->text, sl->textlen, "STARTTLS") ||
	    mt_keyword_is(sl->text, sl->textlen, "CHUNKING") ||
	    (!p->tls && (p->flags & MAILTLS_PROXY_HIDE_AUTH) && mt_keyword_is(sl->text, sl->textlen, "AUTH")));
	(void)l;
	p->caps++;
	if (!drop) {
		if (p->have_held) {
			mt_px_client_str(p, "250-");
			mt_px_client(p, p->held, p->heldlen);
			mt_px_client_str(p, "\r\n");
		}
		memcpy(p->held, sl->text, sl->textlen);
		p->heldlen = sl->textlen;
		p->have_held = 1;
	}
	if (sl->last) {
		mt_px_client_str(p, p->tls ? "250 " : "250-");
		mt_px_client(p, p->held, p->heldlen);
		mt_px_client_str(p, p->tls ? "\r\n" : "\r\n250 STARTTLS\r\n");
		p->have_held = 0;
		p->caps = 0;
	}
}

void mt_px_smtp_server(struct mailtls_proxy *p, const struct mt_px_line *l)
{
	struct mt_smtp_line sl;
	struct mt_px_cmd *c;
	int kind;
	int mid = p->s_mid;
	p->s_mid = !l->lf;
	if (mid || !l->lf || mt_smtp_parse_line(l->p, l->n, &sl) < 0) {
		/* Not a reply line we can read: passed on, nothing learned. */
		mt_px_client(p, l->p, l->len);
		return;
	}
	c = mt_px_head(p);
	kind = c ? c->kind : K_OTHER;
	if (kind == K_EHLO && sl.code == 250)
		ehlo_line(p, l, &sl);
	else if (kind != K_SWALLOW)
		mt_px_client(p, l->p, l->len);
	if (!sl.last || !c)
		return;
	if (kind == K_AUTH && sl.code == 334) {
		p->raw_next = 1;   /* the command stays queued: more replies come */
		return;
	}
	mt_px_pop(p);
	switch (kind) {
	case K_EHLO:
	case K_HELO:
	case K_RSET:
	case K_DATAEND:
		if (sl.code / 100 == 2)
			p->in_mail = 0;
		if (kind == K_DATAEND)
			p->in_mail = 0;
		break;
	case K_MAIL:
		if (sl.code / 100 == 2)
			p->in_mail = 1;
		break;
	case K_DATA:
		if (sl.code == 354) {
			p->data = 1;
			p->c_mid = 0;
		}
		break;
	case K_AUTH:
		if (sl.code == 235)
			p->authed = 1;
		break;
	}
}

void mt_px_smtp_tls(struct mailtls_proxy *p)
{
	/* RFC 3207 4.2: the program forgets any transaction; the client must
	 * say EHLO again. */
	mt_px_prog(p, "RSET\r\n", 6);
	mt_px_push(p, K_SWALLOW, NULL, 0);
	p->need_ehlo = 1;
	p->in_mail = 0;
}
