/*
 * proxy.h -- what the files of the server STARTTLS proxy share: the
 * state, the queue of commands whose replies are due, the output buffers.
 * Internal to libmailtls.  ISC license: see LICENSE.
 *
 * Each protocol file (proxy_smtp.c, proxy_pop3.c, proxy_imap.c) has a
 * client, a server and a tls function over this state; proxy.c holds the
 * public entry points and the helpers below; proxy_run.c the I/O.
 */
#ifndef MAILTLS_PROXY_H
#define MAILTLS_PROXY_H

#include <stddef.h>

#include "internal.h"

#define PX_QUEUE 64               /* commands whose replies are due */
#define PX_TAG 64                 /* IMAP tags are shorter (longer ones are refused) */
#define PX_OUT (3 * MAILTLS_PROXY_CHUNK + 512)

/* What a queued command is, for its reply. */
enum {
	K_OTHER = 0,
	K_GREETING,   /* the program's greeting */
	K_SWALLOW,    /* SMTP: the proxy's RSET after TLS: the reply is dropped */
	K_EHLO, K_HELO, K_MAIL, K_RSET, K_DATA, K_DATAEND, K_AUTH,
	K_CAPA,       /* POP3 CAPA */
	K_MULTI,      /* POP3: a multi-line reply when +OK */
	K_USER,
	K_LOGIN       /* POP3 PASS/APOP, IMAP LOGIN */
};

struct mt_px_cmd {
	int kind;
	char tag[PX_TAG];             /* IMAP */
};

struct mailtls_proxy {
	int proto, flags;
	int tls;                      /* the handshake is done */
	int starttls;                 /* STARTTLS accepted, handshake not yet recorded */
	int closing;                  /* MAILTLS_PROXY_CLOSE given */
	int injection;                /* ... for plaintext pipelined after STARTTLS (else a protocol error) */
	int authed;                   /* a login succeeded */
	int in_mail;                  /* SMTP: MAIL accepted, transaction open */
	int need_ehlo;                /* SMTP: after TLS, until EHLO/HELO */
	int user_sent;                /* POP3: USER given */
	int data, data_bol;           /* SMTP: DATA phase; at the start of a line */
	int raw_next;                 /* the next client line answers a SASL challenge */
	int c_mid, s_mid;             /* the last chunk of that side ended without LF */
	unsigned long long c_lit, s_lit; /* IMAP literal bytes still due */
	int c_cont, s_cont;           /* IMAP: a command/response continues after a literal */
	int c_drop;                   /* IMAP: the current command was answered: drop its rest */
	unsigned long long c_lit_wait; /* IMAP: a synchronizing literal waits for the program's "+" */
	char lit_tag[PX_TAG];         /* ... of the command tagged so */
	int s_body;                   /* POP3: inside a multi-line reply */
	int caps;                     /* SMTP: lines of the EHLO reply seen so far */
	char held[MAILTLS_PROXY_CHUNK];
	size_t heldlen;
	int have_held;
	struct mt_px_cmd q[PX_QUEUE];
	size_t qhead, qlen;
	char cout[PX_OUT];
	size_t coutlen;
	char pout[MAILTLS_PROXY_CHUNK + 64];
	size_t poutlen;
};

/* A line split into body and terminator. */
struct mt_px_line {
	const char *p;                /* the bytes as given */
	size_t len;                   /* all of them */
	size_t n;                     /* without the terminator (CR LF or LF) */
	int lf;                       /* 1: ends with LF (a whole line) */
};
MT_HIDDEN void mt_px_split(const char *p, size_t len, struct mt_px_line *l);

/* Output (silently cut at the buffer's end, which the sizes above rule out). */
MT_HIDDEN void mt_px_client(struct mailtls_proxy *p, const char *s, size_t n);
MT_HIDDEN void mt_px_client_str(struct mailtls_proxy *p, const char *s);
/* mt_px_answer answers the client with |text| itself; returns MAILTLS_PROXY_CONTINUE. */
MT_HIDDEN int mt_px_answer(struct mailtls_proxy *p, const char *text);
MT_HIDDEN void mt_px_prog(struct mailtls_proxy *p, const char *s, size_t n);

/* The queue of commands sent to the program. */
MT_HIDDEN int mt_px_push(struct mailtls_proxy *p, int kind, const char *tag, size_t taglen);
MT_HIDDEN struct mt_px_cmd *mt_px_head(struct mailtls_proxy *p);   /* NULL: empty */
MT_HIDDEN void mt_px_pop(struct mailtls_proxy *p);
MT_HIDDEN int mt_px_queued(const struct mailtls_proxy *p, int kind);
/* mt_px_remove_tag removes the queued IMAP command tagged |tag|; returns its
 * kind, or -1 when none is queued with that tag. */
MT_HIDDEN int mt_px_remove_tag(struct mailtls_proxy *p, const char *tag, size_t taglen);

/* The verb of a command line (first word) and whether words follow. */
MT_HIDDEN int mt_px_verb(const struct mt_px_line *l, const char *verb, int *has_arg);
MT_HIDDEN int mt_px_has_arg(const struct mt_px_line *l);
/* IMAP: the literal "{n}" / "{n+}" that ends |p|, n bytes: 0 none, 1
 * synchronizing "{n}", 2 non-synchronizing "{n+}". */
MT_HIDDEN int mt_px_literal(const char *p, size_t n, unsigned long long *size);

MT_HIDDEN int mt_px_smtp_client(struct mailtls_proxy *p, const struct mt_px_line *l, int more);
MT_HIDDEN void mt_px_smtp_server(struct mailtls_proxy *p, const struct mt_px_line *l);
MT_HIDDEN void mt_px_smtp_tls(struct mailtls_proxy *p);
MT_HIDDEN int mt_px_pop3_client(struct mailtls_proxy *p, const struct mt_px_line *l, int more);
MT_HIDDEN void mt_px_pop3_server(struct mailtls_proxy *p, const struct mt_px_line *l);
MT_HIDDEN int mt_px_imap_client(struct mailtls_proxy *p, const struct mt_px_line *l, int more);
MT_HIDDEN void mt_px_imap_server(struct mailtls_proxy *p, const struct mt_px_line *l);

#endif
