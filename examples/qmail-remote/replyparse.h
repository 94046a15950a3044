/* replyparse.h -- netqmail's smtpcode() as a byte-at-a-time parser, apart
 * from the connection so that it can be fuzzed (fuzz/fuzz_qmr_reply.c).
 * ISC license: see LICENSE.
 *
 * The reply's code is the first three bytes of its first line, a code
 * that is not three digits counting as 421 (temporary: never a success);
 * a line whose fourth byte is '-' continues the reply, and the three bytes
 * that start the next line are not looked at, as netqmail does; the reply
 * ends at the LF of its last line (or at a LF among the first three
 * bytes).  A reply of more than REPLY_MAX_LINES continuation lines, or of
 * more than REPLY_MAX_BYTES bytes, is refused: a server that never ends
 * its reply is treated as a dead connection. */
#ifndef QMR_REPLYPARSE_H
#define QMR_REPLYPARSE_H

#include <stddef.h>

#define REPLY_MAX_LINES 100   /* lines in one reply before we give up on it */
#define REPLY_MAX_BYTES 65536 /* bytes in one reply before we give up on it */

struct reply_parse {
	unsigned long code;
	int state, n, bad, lines;
	size_t bytes;
};

/* reply_start readies |p| for a reply. */
void reply_start(struct reply_parse *p);
/* reply_byte takes the reply's next byte: 0 more is needed, 1 the reply
 * ended with this byte (its code in p->code), -1 it is too long. */
int reply_byte(struct reply_parse *p, char ch);

#endif
