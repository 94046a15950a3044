/*
 * mailreply.h -- strict parsers for one line of a mail server's reply
 * (SMTP, POP3, IMAP), and the bounded text lists the STARTTLS helpers
 * fill.  Pure functions on memory: no I/O, no allocation, so each can be
 * fuzzed alone.  Lines come without their terminator (see lineread.h) and
 * may hold any byte, NUL included.  Internal to libmailtls.  ISC license.
 */
#ifndef MAILTLS_MAILREPLY_H
#define MAILTLS_MAILREPLY_H

#include <stddef.h>

#include "internal.h"

/* Status codes for POP3 and IMAP, as in struct mailtls_starttls_info. */
#define MT_ST_OK 200
#define MT_ST_NO 400
#define MT_ST_BAD 500

/* SMTP (RFC 5321 4.2): "Reply-code [ SP text ]" for the last line of a
 * reply, "Reply-code - text" for the others.  The code is three digits,
 * the first 2-5, the second 0-5.  Anything else in the fourth byte is
 * malformed. */
struct mt_smtp_line {
	int code;
	int last;            /* 1: the final line of the reply */
	const char *text;    /* after the separator (may be empty) */
	size_t textlen;
};
/* Returns 0, or -1 when the line is not a well-formed reply line. */
MT_HIDDEN int mt_smtp_parse_line(const char *buf, size_t len, struct mt_smtp_line *out);

/* POP3 (RFC 1939 3): "+OK [text]" or "-ERR [text]" (upper case, as the
 * RFC writes them; SP or end of line after the indicator).  Returns
 * MT_ST_OK or MT_ST_BAD and points *text after the indicator and its
 * space; -1 when malformed. */
MT_HIDDEN int mt_pop3_status(const char *buf, size_t len, const char **text, size_t *textlen);

/* POP3 multi-line bodies (RFC 1939 3): returns 1 for the terminating
 * ".", else 0 and undoes the byte-stuffing ("..x" -> ".x") in *p, *n. */
MT_HIDDEN int mt_pop3_body_line(const char **p, size_t *n);

/* IMAP (RFC 3501 7, 9): the few response shapes of the not-authenticated
 * state.  Literals ("{n}" at the end of a line) are refused, because no
 * response before TLS needs one. */
enum mt_imap_kind {
	MT_IMAP_UNTAGGED = 1,  /* "* ..." */
	MT_IMAP_TAGGED,        /* "<tag> OK|NO|BAD ..." with the tag asked for */
	MT_IMAP_CONTINUE       /* "+ ..." */
};
enum mt_imap_cond {
	MT_IMAP_DATA = 0,      /* untagged data, e.g. "* CAPABILITY ..." (see word) */
	MT_IMAP_OK, MT_IMAP_NO, MT_IMAP_BAD, MT_IMAP_BYE, MT_IMAP_PREAUTH
};
struct mt_imap_line {
	int kind;              /* enum mt_imap_kind */
	int cond;              /* enum mt_imap_cond */
	const char *word;      /* the first atom after "* " or the tag */
	size_t wordlen;
	const char *rest;      /* what follows that atom and one space */
	size_t restlen;
};
/* Returns 0, or -1 when the line is malformed, carries a literal, or is
 * tagged with another tag than |tag| (or a tagged line that is not
 * OK/NO/BAD). */
MT_HIDDEN int mt_imap_parse_line(const char *buf, size_t len, const char *tag, struct mt_imap_line *out);
/* mt_imap_status maps OK/NO/BAD/BYE/PREAUTH to 200/400/500/500/200. */
MT_HIDDEN int mt_imap_status(int cond);
/* mt_imap_resp_code finds a response code "[NAME args]" at the start of
 * resp-text: returns 1 and sets name/args (args may be empty), 0 when
 * there is none, -1 when a '[' is not closed. */
MT_HIDDEN int mt_imap_resp_code(const char *p, size_t n, const char **name, size_t *namelen,
    const char **args, size_t *argslen);

/* mt_word_eq: |p| (n bytes) equals the NUL-terminated |w|, ignoring ASCII case. */
MT_HIDDEN int mt_word_eq(const char *p, size_t n, const char *w);
/* mt_keyword_is: the first word of a capability line (up to a space)
 * equals |kw|, ignoring ASCII case. */
MT_HIDDEN int mt_keyword_is(const char *p, size_t n, const char *kw);
/* mt_next_atom: the next space-separated atom in *p, *n (advanced past it);
 * 0 when none is left. */
MT_HIDDEN int mt_next_atom(const char **p, size_t *n, const char **atom, size_t *atomlen);

/* A bounded text: lines appended with "\n", NUL bytes turned into '?',
 * cut at cap - 1 bytes, always NUL-terminated. */
struct mt_text {
	char *buf;
	size_t cap;
	size_t len;
};
MT_HIDDEN void mt_text_init(struct mt_text *t, char *buf, size_t cap);
/* Appends as much of the line as fits. */
MT_HIDDEN void mt_text_add(struct mt_text *t, const char *p, size_t n);
/* Appends the line only if all of it fits (capability lists, so that a cut
 * never makes a keyword that the server did not send); 0 or -1. */
MT_HIDDEN int mt_text_add_whole(struct mt_text *t, const char *p, size_t n);

/* mt_printable copies at most |max| bytes of |p| into |out| (size
 * max + 1) for an error message: bytes outside 0x20-0x7e become '?'. */
MT_HIDDEN const char *mt_printable(char *out, size_t max, const char *p, size_t n);

#endif
