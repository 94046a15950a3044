/*
 * lineread.h -- bounded line I/O on the raw descriptors of a session, for
 * the plaintext phase of STARTTLS, and on the TLS side for the replies
 * read after the handshake.  Internal to libmailtls.  ISC license.
 *
 * The plaintext reader never reads past the end of the current line: on a
 * socket it peeks (recv MSG_PEEK|MSG_DONTWAIT) to find the LF and then
 * takes exactly the bytes up to and including it; on any other descriptor
 * it reads one byte at a time.  So nothing of the plaintext phase is ever
 * buffered in the library: what the peer sent after the line is still in
 * the kernel, where mt_plain_pending() can see it and where the caller (or
 * the TLS engine) will read it.
 *
 * Line endings: a line ends at LF.  CR LF is the protocol's terminator; a
 * bare LF is tolerated (as Postfix, Dovecot and most clients do).  Either
 * way the terminator is removed from what the caller gets.  A CR that is
 * not right before the LF stays in the line.  A line that does not end
 * within MT_LINE_MAX bytes (terminator included), and end of file inside
 * or before a line, are MAILTLS_E_PROTOCOL.
 *
 * Waiting is done with poll(2) (mt_wait) until a deadline; descriptor
 * flags are never changed and no signal is used.
 */
#ifndef MAILTLS_LINEREAD_H
#define MAILTLS_LINEREAD_H

#include <stddef.h>
#include <time.h>

#include "internal.h"

/* Longest line, CR LF included (RFC 5321 4.5.3.1.5 text line). */
#define MT_LINE_MAX 1000
/* Most lines in one reply (SMTP multi-line, POP3 CAPA, IMAP untagged). */
#define MT_REPLY_LINES 100

/* A line as read: |buf| holds |len| bytes without the terminator, then a
 * NUL (the line itself may hold NULs: use len). */
struct mt_line {
	char buf[MT_LINE_MAX + 1];
	size_t len;
};

/* mt_plain_readline reads one line from the session's read descriptor
 * without reading past its LF.  Returns 0, or -1 with the error on |s|
 * (MAILTLS_E_TIMEOUT when |dl| passes, MAILTLS_E_PROTOCOL for an overlong
 * line or end of file, MAILTLS_E_SYSTEM). */
MT_HIDDEN int mt_plain_readline(struct mailtls *s, struct mt_line *line, const struct timespec *dl);

/* mt_plain_readpart is mt_plain_readline for a relay of lines: the bytes
 * as they came, terminator kept, and a line longer than MT_LINE_MAX comes
 * in parts: MT_LINE_MAX bytes without LF, the rest in the next calls.
 * Never a byte past the LF.  End of file inside or before a line is
 * MAILTLS_E_PROTOCOL, as for mt_plain_readline. */
MT_HIDDEN int mt_plain_readpart(struct mailtls *s, struct mt_line *line, const struct timespec *dl);

/* mt_plain_pending says whether any byte is already waiting on the
 * session's read descriptor: 1 yes, 0 no (end of file counts as no),
 * -1 on a system error (set on |s|).  Never blocks. */
MT_HIDDEN int mt_plain_pending(struct mailtls *s);

/* mt_plain_write writes all |len| bytes to the session's write descriptor
 * before |dl|, never blocking past it (fdio.c).  Returns 0 or -1 with the
 * error on |s|. */
MT_HIDDEN int mt_plain_write(struct mailtls *s, const void *buf, size_t len, const struct timespec *dl);

/* mt_tls_readline reads one line through the established TLS session
 * (byte by byte through SSL_read, whose buffer belongs to the session, so
 * nothing is lost between calls).  Same conventions as
 * mt_plain_readline; a close_notify before the line ends is
 * MAILTLS_E_PROTOCOL, a truncation MAILTLS_E_TRUNCATED. */
MT_HIDDEN int mt_tls_readline(struct mailtls *s, struct mt_line *line, const struct timespec *dl);

#endif
