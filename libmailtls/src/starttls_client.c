/* starttls_client.c -- the client side of STARTTLS for SMTP (RFC 3207),
 * POP3 (RFC 2595 STLS, RFC 2449 CAPA) and IMAP (RFC 3501 STARTTLS).  See
 * mailtls.h ("Client STARTTLS") for the contract.
 *
 * Decisions the header leaves open, made here:
 *  - Line endings: CR LF, or a bare LF (tolerated); see lineread.h.  A line
 *    over 1000 bytes, a reply over 100 lines, end of file inside a reply:
 *    MAILTLS_E_PROTOCOL.
 *  - SMTP: codes are [2-5][0-5][0-9]; every line of a reply must carry the
 *    same code (else MAILTLS_E_PROTOCOL).  The greeting must be 220.  EHLO
 *    answered 2xx: its lines after the first are the capabilities.  EHLO
 *    answered 5xx: HELO is sent, used_helo is set and ehlo/ehlo_code hold
 *    the HELO reply (capabilities stay empty; NOT_OFFERED when it is 2xx,
 *    MAILTLS_E_PROTOCOL otherwise).  EHLO answered 4xx, and 421 anywhere:
 *    MAILTLS_E_PROTOCOL.  STARTTLS answered 220: TLS; 421: PROTOCOL; any
 *    other 4xx/5xx (454, 501, 502, 530, ...): REFUSED; anything else (2xx
 *    other than 220, 3xx): MAILTLS_E_PROTOCOL.
 *  - POP3: indicators "+OK"/"-ERR" in upper case.  A greeting other than
 *    +OK: MAILTLS_E_PROTOCOL.  CAPA answered -ERR: NOT_OFFERED (ehlo_code
 *    500).  STLS answered -ERR: REFUSED (starttls_code 500).
 *  - IMAP: greeting "* OK" (PREAUTH: greeting_code 200, BYE: 500, both
 *    MAILTLS_E_PROTOCOL).  Capabilities come from a greeting's
 *    "[CAPABILITY ...]" (then no CAPABILITY command is sent and ehlo_code
 *    stays 0), else from "* CAPABILITY" lines answering "a1 CAPABILITY";
 *    a tagged NO/BAD to it: NOT_OFFERED.  "a2 STARTTLS": tagged OK -> TLS,
 *    NO/BAD -> REFUSED.  Other untagged lines are kept in the texts and
 *    otherwise ignored; "* BYE", a continuation request, a literal or a
 *    line tagged otherwise: MAILTLS_E_PROTOCOL.
 *  - Capability lists hold whole lines only, so cutting a long list never
 *    makes up a keyword; the decision to send STARTTLS is made on the
 *    full reply, not on the (bounded) list.
 *  - Each step (a command and its reply; the greeting; the handshake) has
 *    its own deadline of |secs| seconds.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lineread.h"
#include "mailreply.h"

/* The longest name accepted for EHLO/HELO (a domain or address literal). */
#define MT_EHLO_NAME_MAX 255

struct st {
	struct mailtls *s;
	struct mailtls_starttls_info *out;
	int secs;
	int tls;                     /* replies are read through TLS */
	struct timespec dl;
	struct mt_line line;
};

/* fail prefixes the session's message with what was being done. */
static int fail(struct mailtls *s, const char *what)
{
	char msg[MT_ERRLEN];
	int saved = errno;
	snprintf(msg, sizeof msg, "%s", s->errmsg);
	mt_seterr(s, s->errcode, "%s: %s", what, msg);
	errno = saved;
	return -1;
}

static int protoerr(struct st *c, const char *what, const char *why)
{
	char shown[101];
	mt_seterr(c->s, MAILTLS_E_PROTOCOL, "%s: %s: \"%s\"", what, why,
	    mt_printable(shown, 100, c->line.buf, c->line.len));
	return -1;
}

static int readline(struct st *c)
{
	return c->tls ? mt_tls_readline(c->s, &c->line, &c->dl) : mt_plain_readline(c->s, &c->line, &c->dl);
}

static int send_cmd(struct st *c, const char *what, const char *cmd, const char *arg)
{
	char buf[16 + MT_EHLO_NAME_MAX + 3];
	int n = snprintf(buf, sizeof buf, arg ? "%s %s\r\n" : "%s\r\n", cmd, arg);
	int r;
	mt_deadline(&c->dl, c->secs);
	if (n < 0 || (size_t)n >= sizeof buf) {
		mt_seterr(c->s, MAILTLS_E_USAGE, "%s: command too long", what);
		return -1;
	}
	r = c->tls ? mt_tls_write(c->s, buf, (size_t)n, &c->dl) : mt_plain_write(c->s, buf, (size_t)n, &c->dl);
	return r < 0 ? fail(c->s, what) : 0;
}

static int valid_name(const char *name)
{
	size_t n;
	if (!name)
		return 0;
	n = strlen(name);
	if (n == 0 || n > MT_EHLO_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] <= 0x20 || (unsigned char)name[i] >= 0x7f)
			return 0;
	return 1;
}

/* Reads one whole SMTP reply within c->dl.  Its lines go to |text| (may
 * be NULL); the lines after the first go to |caps| (may be NULL); *has_kw
 * is set when one of those lines has the keyword |kw|. */
static int smtp_reply(struct st *c, const char *what, struct mt_text *text, struct mt_text *caps,
    const char *kw, int *has_kw, int *code)
{
	int n;
	*code = 0;
	if (has_kw)
		*has_kw = 0;
	for (n = 0;; n++) {
		struct mt_smtp_line l;
		if (n >= MT_REPLY_LINES) {
			mt_seterr(c->s, MAILTLS_E_PROTOCOL, "%s: reply longer than %d lines", what, MT_REPLY_LINES);
			return -1;
		}
		if (readline(c) < 0)
			return fail(c->s, what);
		if (text)
			mt_text_add(text, c->line.buf, c->line.len);
		if (mt_smtp_parse_line(c->line.buf, c->line.len, &l) < 0)
			return protoerr(c, what, "malformed reply line");
		if (n == 0)
			*code = l.code;
		else if (l.code != *code)
			return protoerr(c, what, "reply lines with different codes");
		if (n > 0) {
			if (caps)
				mt_text_add_whole(caps, l.text, l.textlen);
			if (kw && has_kw && mt_keyword_is(l.text, l.textlen, kw))
				*has_kw = 1;
		}
		if (l.last)
			return 0;
	}
}

static int refuse_code(struct st *c, const char *what, int code)
{
	char shown[101];
	mt_seterr(c->s, MAILTLS_E_PROTOCOL, "%s: server said %d: \"%s\"", what, code,
	    mt_printable(shown, 100, c->line.buf, c->line.len));
	return -1;
}

/* The reply that ends the plaintext phase has been read: nothing may be
 * waiting behind it; then the handshake. */
static int start_tls(struct st *c, const char *what)
{
	int p = mt_plain_pending(c->s);
	if (p < 0)
		return fail(c->s, what);
	if (p) {
		mt_seterr(c->s, MAILTLS_E_INJECTION,
		    "%s: the server sent more bytes after its go-ahead, before the TLS handshake "
		    "(plaintext injection): TLS not started", what);
		return -1;
	}
	mt_deadline(&c->dl, c->secs);
	if (mt_handshake_until(c->s, &c->dl) < 0)
		return fail(c->s, "TLS handshake after STARTTLS");
	return MAILTLS_STARTTLS_DONE;
}

static int smtp(struct st *c, const char *name)
{
	struct mailtls_starttls_info *o = c->out;
	struct mt_text text, caps;
	int code, has;

	mt_deadline(&c->dl, c->secs);
	mt_text_init(&text, o->greeting, sizeof o->greeting);
	if (smtp_reply(c, "SMTP greeting", &text, NULL, NULL, NULL, &code) < 0)
		return -1;
	o->greeting_code = code;
	if (code != 220)
		return refuse_code(c, "SMTP greeting", code);

	if (send_cmd(c, "SMTP EHLO", "EHLO", name) < 0)
		return -1;
	mt_text_init(&text, o->ehlo, sizeof o->ehlo);
	mt_text_init(&caps, o->capabilities, sizeof o->capabilities);
	if (smtp_reply(c, "SMTP EHLO", &text, &caps, "STARTTLS", &has, &code) < 0)
		return -1;
	o->ehlo_code = code;
	if (code / 100 == 5) {
		mt_text_init(&caps, o->capabilities, sizeof o->capabilities);
		o->used_helo = 1;
		if (send_cmd(c, "SMTP HELO", "HELO", name) < 0)
			return -1;
		mt_text_init(&text, o->ehlo, sizeof o->ehlo);
		if (smtp_reply(c, "SMTP HELO", &text, NULL, NULL, NULL, &code) < 0)
			return -1;
		o->ehlo_code = code;
		if (code / 100 != 2)
			return refuse_code(c, "SMTP HELO", code);
		return MAILTLS_STARTTLS_NOT_OFFERED;
	}
	if (code / 100 != 2)
		return refuse_code(c, "SMTP EHLO", code);
	if (!has)
		return MAILTLS_STARTTLS_NOT_OFFERED;

	if (send_cmd(c, "SMTP STARTTLS", "STARTTLS", NULL) < 0)
		return -1;
	mt_text_init(&text, o->starttls_reply, sizeof o->starttls_reply);
	if (smtp_reply(c, "SMTP STARTTLS", &text, NULL, NULL, NULL, &code) < 0)
		return -1;
	o->starttls_code = code;
	if (code == 220)
		return start_tls(c, "SMTP STARTTLS");
	if (code == 421 || (code / 100 != 4 && code / 100 != 5))
		return refuse_code(c, "SMTP STARTTLS", code);
	return MAILTLS_STARTTLS_REFUSED;
}

/* One POP3 status line within c->dl, into |text|. */
static int pop3_line(struct st *c, const char *what, struct mt_text *text, int *status)
{
	const char *p;
	size_t n;
	if (readline(c) < 0)
		return fail(c->s, what);
	mt_text_add(text, c->line.buf, c->line.len);
	*status = mt_pop3_status(c->line.buf, c->line.len, &p, &n);
	if (*status < 0)
		return protoerr(c, what, "malformed status line");
	return 0;
}

static int pop3(struct st *c)
{
	struct mailtls_starttls_info *o = c->out;
	struct mt_text text, caps;
	int st, has = 0;

	mt_deadline(&c->dl, c->secs);
	mt_text_init(&text, o->greeting, sizeof o->greeting);
	if (pop3_line(c, "POP3 greeting", &text, &st) < 0)
		return -1;
	o->greeting_code = st;
	if (st != MT_ST_OK)
		return protoerr(c, "POP3 greeting", "server refused the session");

	if (send_cmd(c, "POP3 CAPA", "CAPA", NULL) < 0)
		return -1;
	mt_text_init(&text, o->ehlo, sizeof o->ehlo);
	mt_text_init(&caps, o->capabilities, sizeof o->capabilities);
	if (pop3_line(c, "POP3 CAPA", &text, &st) < 0)
		return -1;
	o->ehlo_code = st;
	if (st != MT_ST_OK)
		return MAILTLS_STARTTLS_NOT_OFFERED;
	for (int n = 1;; n++) {
		const char *p;
		size_t len;
		if (n >= MT_REPLY_LINES) {
			mt_seterr(c->s, MAILTLS_E_PROTOCOL, "POP3 CAPA: reply longer than %d lines", MT_REPLY_LINES);
			return -1;
		}
		if (readline(c) < 0)
			return fail(c->s, "POP3 CAPA");
		mt_text_add(&text, c->line.buf, c->line.len);
		p = c->line.buf;
		len = c->line.len;
		if (mt_pop3_body_line(&p, &len))
			break;
		mt_text_add_whole(&caps, p, len);
		if (mt_keyword_is(p, len, "STLS"))
			has = 1;
	}
	if (!has)
		return MAILTLS_STARTTLS_NOT_OFFERED;

	if (send_cmd(c, "POP3 STLS", "STLS", NULL) < 0)
		return -1;
	mt_text_init(&text, o->starttls_reply, sizeof o->starttls_reply);
	if (pop3_line(c, "POP3 STLS", &text, &st) < 0)
		return -1;
	o->starttls_code = st;
	if (st != MT_ST_OK)
		return MAILTLS_STARTTLS_REFUSED;
	return start_tls(c, "POP3 STLS");
}

/* Adds the capability atoms of |p| to |caps|; *has when STARTTLS is one. */
static void imap_atoms(const char *p, size_t n, struct mt_text *caps, int *has)
{
	const char *a;
	size_t al;
	while (mt_next_atom(&p, &n, &a, &al)) {
		mt_text_add_whole(caps, a, al);
		if (mt_word_eq(a, al, "STARTTLS"))
			*has = 1;
	}
}

/* Reads lines up to the tagged reply to |tag| (within c->dl), keeping them
 * in |text|; "* CAPABILITY" lines go to |caps| when it is not NULL. */
static int imap_reply(struct st *c, const char *what, const char *tag, struct mt_text *text,
    struct mt_text *caps, int *has, int *status)
{
	for (int n = 0;; n++) {
		struct mt_imap_line l;
		if (n >= MT_REPLY_LINES) {
			mt_seterr(c->s, MAILTLS_E_PROTOCOL, "%s: reply longer than %d lines", what, MT_REPLY_LINES);
			return -1;
		}
		if (readline(c) < 0)
			return fail(c->s, what);
		mt_text_add(text, c->line.buf, c->line.len);
		if (mt_imap_parse_line(c->line.buf, c->line.len, tag, &l) < 0)
			return protoerr(c, what, "malformed or unexpected response");
		if (l.kind == MT_IMAP_CONTINUE)
			return protoerr(c, what, "unexpected continuation request");
		if (l.kind == MT_IMAP_TAGGED) {
			*status = mt_imap_status(l.cond);
			return 0;
		}
		if (l.cond == MT_IMAP_BYE)
			return protoerr(c, what, "server is closing the connection");
		if (caps && l.cond == MT_IMAP_DATA && mt_word_eq(l.word, l.wordlen, "CAPABILITY"))
			imap_atoms(l.rest, l.restlen, caps, has);
	}
}

static int imap(struct st *c)
{
	struct mailtls_starttls_info *o = c->out;
	struct mt_text text, caps;
	struct mt_imap_line l;
	const char *name, *args;
	size_t namelen, argslen;
	int st, has = 0, rc;

	mt_deadline(&c->dl, c->secs);
	mt_text_init(&text, o->greeting, sizeof o->greeting);
	mt_text_init(&caps, o->capabilities, sizeof o->capabilities);
	if (readline(c) < 0)
		return fail(c->s, "IMAP greeting");
	mt_text_add(&text, c->line.buf, c->line.len);
	if (mt_imap_parse_line(c->line.buf, c->line.len, "", &l) < 0 || l.kind != MT_IMAP_UNTAGGED)
		return protoerr(c, "IMAP greeting", "malformed greeting");
	o->greeting_code = mt_imap_status(l.cond);
	if (l.cond == MT_IMAP_PREAUTH)
		return protoerr(c, "IMAP greeting", "PREAUTH greeting (already authenticated, no STARTTLS possible)");
	if (l.cond == MT_IMAP_BYE)
		return protoerr(c, "IMAP greeting", "server refused the session");
	if (l.cond != MT_IMAP_OK)
		return protoerr(c, "IMAP greeting", "not an OK greeting");
	rc = mt_imap_resp_code(l.rest, l.restlen, &name, &namelen, &args, &argslen);
	if (rc < 0)
		return protoerr(c, "IMAP greeting", "unterminated response code");

	if (rc > 0 && mt_word_eq(name, namelen, "CAPABILITY")) {
		imap_atoms(args, argslen, &caps, &has);
	} else {
		if (send_cmd(c, "IMAP CAPABILITY", "a1 CAPABILITY", NULL) < 0)
			return -1;
		mt_text_init(&text, o->ehlo, sizeof o->ehlo);
		if (imap_reply(c, "IMAP CAPABILITY", "a1", &text, &caps, &has, &st) < 0)
			return -1;
		o->ehlo_code = st;
		if (st != MT_ST_OK) {
			mt_text_init(&caps, o->capabilities, sizeof o->capabilities);
			return MAILTLS_STARTTLS_NOT_OFFERED;
		}
	}
	if (!has)
		return MAILTLS_STARTTLS_NOT_OFFERED;

	if (send_cmd(c, "IMAP STARTTLS", "a2 STARTTLS", NULL) < 0)
		return -1;
	mt_text_init(&text, o->starttls_reply, sizeof o->starttls_reply);
	if (imap_reply(c, "IMAP STARTTLS", "a2", &text, NULL, NULL, &st) < 0)
		return -1;
	o->starttls_code = st;
	if (st != MT_ST_OK)
		return MAILTLS_STARTTLS_REFUSED;
	return start_tls(c, "IMAP STARTTLS");
}

int mailtls_starttls_client(struct mailtls *s, int proto, const char *ehlo_name, int secs,
    struct mailtls_starttls_info *out)
{
	struct mailtls_starttls_info local;
	struct st c;
	if (!s) {
		errno = EINVAL;
		return -1;
	}
	mt_clearerr(s);
	if (!out)
		out = &local;
	memset(out, 0, sizeof *out);
	if (s->is_server || s->is_mem) {
		mt_seterr(s, MAILTLS_E_USAGE, "STARTTLS client: needs a client session over descriptors (mailtls_client)");
		return -1;
	}
	if (s->handshake_done || s->close_sent) {
		mt_seterr(s, MAILTLS_E_USAGE, "STARTTLS client: the session has already started TLS");
		return -1;
	}
	if (proto == MAILTLS_SMTP && !valid_name(ehlo_name)) {
		mt_seterr(s, MAILTLS_E_USAGE, "STARTTLS client: the EHLO name must be 1-%d printable bytes without spaces",
		    MT_EHLO_NAME_MAX);
		return -1;
	}
	memset(&c, 0, sizeof c);
	c.s = s;
	c.out = out;
	c.secs = secs;
	switch (proto) {
	case MAILTLS_SMTP:
		return smtp(&c, ehlo_name);
	case MAILTLS_POP3:
		return pop3(&c);
	case MAILTLS_IMAP:
		return imap(&c);
	default:
		mt_seterr(s, MAILTLS_E_USAGE, "STARTTLS client: unknown protocol %d", proto);
		return -1;
	}
}

int mailtls_smtp_ehlo(struct mailtls *s, const char *name, int secs, struct mailtls_starttls_info *out)
{
	struct st c;
	struct mt_text text, caps;
	char tbuf[MAILTLS_TEXT_MAX], cbuf[MAILTLS_TEXT_MAX];
	int code;
	if (!s) {
		errno = EINVAL;
		return -1;
	}
	mt_clearerr(s);
	if (s->is_server || s->is_mem || !s->handshake_done) {
		mt_seterr(s, MAILTLS_E_USAGE, "SMTP EHLO: needs a client session over descriptors with TLS established");
		return -1;
	}
	if (!valid_name(name)) {
		mt_seterr(s, MAILTLS_E_USAGE, "SMTP EHLO: the name must be 1-%d printable bytes without spaces",
		    MT_EHLO_NAME_MAX);
		return -1;
	}
	memset(&c, 0, sizeof c);
	c.s = s;
	c.secs = secs;
	c.tls = 1;
	if (send_cmd(&c, "SMTP EHLO under TLS", "EHLO", name) < 0)
		return -1;
	mt_text_init(&text, tbuf, sizeof tbuf);
	mt_text_init(&caps, cbuf, sizeof cbuf);
	if (smtp_reply(&c, "SMTP EHLO under TLS", &text, &caps, NULL, NULL, &code) < 0)
		return -1;
	if (out) {
		memcpy(out->ehlo, tbuf, sizeof out->ehlo);
		memcpy(out->capabilities, code / 100 == 2 ? cbuf : "", code / 100 == 2 ? sizeof out->capabilities : 1);
		out->ehlo_code = code;
	}
	return code;
}

int mailtls_smtp_has_capability(const struct mailtls_starttls_info *info, const char *kw)
{
	const char *p, *e;
	if (!info || !kw || !*kw)
		return 0;
	p = info->capabilities;
	e = p + strnlen(p, sizeof info->capabilities);
	while (p < e) {
		const char *nl = memchr(p, '\n', (size_t)(e - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(e - p);
		if (mt_keyword_is(p, n, kw))
			return 1;
		p += n + 1;
	}
	return 0;
}
