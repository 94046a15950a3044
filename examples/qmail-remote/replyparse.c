/* replyparse.c -- an SMTP reply's code, byte by byte; see replyparse.h.
 * ISC license: see LICENSE. */
#include "replyparse.h"

enum { CODE, SEP, CONT, NEXT3, LAST };

void reply_start(struct reply_parse *p)
{
	p->code = 0;
	p->state = CODE;
	p->n = 0;
	p->bad = 0;
	p->lines = 1;
	p->bytes = 0;
}

static int done(struct reply_parse *p)
{
	if (p->bad)
		p->code = 421;
	return 1;
}

int reply_byte(struct reply_parse *p, char ch)
{
	if (++p->bytes > REPLY_MAX_BYTES)
		return -1;
	switch (p->state) {
	case CODE:
		if (ch < '0' || ch > '9')
			p->bad = 1;
		p->code = p->code * 10 + (unsigned long)(ch - '0');
		if (ch == '\n')
			return done(p);
		if (++p->n == 3)
			p->state = SEP;
		return 0;
	case SEP:
		if (ch == '-')
			p->state = CONT;
		else if (ch == '\n')
			return done(p);
		else
			p->state = LAST;
		return 0;
	case CONT:
		if (ch == '\n') {
			if (++p->lines > REPLY_MAX_LINES)
				return -1;
			p->state = NEXT3;
			p->n = 0;
		}
		return 0;
	case NEXT3:
		if (++p->n == 3)
			p->state = SEP;
		return 0;
	default:
		return ch == '\n' ? done(p) : 0;
	}
}
