/*
 * fuzz_qmr_reply.c -- qmail-remote's SMTP reply reader (reply_start,
 * reply_byte in examples/qmail-remote/replyparse.c, compiled in), the
 * byte-at-a-time form of netqmail's smtpcode().
 *
 * Input: the bytes a server sends, one reply after another.
 *
 * Checks: fed byte by byte, the parser agrees with netqmail's smtpcode()
 * written here again as netqmail writes it (a loop over the bytes): each
 * reply ends at the same byte, with the same code; a code is three digits
 * (100..999 or below, as the bytes say) or 421 when the first three bytes
 * are not all digits; a reply ends only at a LF; -1 (too long) exactly
 * when the loop passes REPLY_MAX_LINES continuation lines or
 * REPLY_MAX_BYTES bytes.
 * ISC license: see LICENSE.
 */
#include "fuzz.h"
#include "replyparse.h"

static const uint8_t *in;
static size_t len, pos, taken;

/* netqmail's get(): -1 at the end of the input (the connection dropped). */
static int get(void)
{
	if (pos == len || ++taken > REPLY_MAX_BYTES)
		return -1;
	return in[pos++];
}

/* netqmail's smtpcode() over the input from |pos|: the code, -1 when the
 * input ends first, -2 when the reply is too long. */
static long smtpcode(void)
{
	unsigned long code = 0;
	int lines = 1, bad = 0, ch = 0;
	taken = 0;
	for (int i = 0; i < 3; i++) {
		if ((ch = get()) < 0)
			return taken > REPLY_MAX_BYTES ? -2 : -1;
		if (ch < '0' || ch > '9')
			bad = 1;
		code = code * 10 + (unsigned long)(ch - '0');
		if (ch == '\n')
			return bad ? 421 : (long)code;
	}
	for (;;) {
		if ((ch = get()) < 0)
			return taken > REPLY_MAX_BYTES ? -2 : -1;
		if (ch != '-')
			break;
		while (ch != '\n')
			if ((ch = get()) < 0)
				return taken > REPLY_MAX_BYTES ? -2 : -1;
		if (++lines > REPLY_MAX_LINES)
			return -2;
		for (int i = 0; i < 3; i++)
			if (get() < 0)
				return taken > REPLY_MAX_BYTES ? -2 : -1;
	}
	while (ch != '\n')
		if ((ch = get()) < 0)
			return taken > REPLY_MAX_BYTES ? -2 : -1;
	return bad ? 421 : (long)code;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t at = 0;
	in = data;
	len = size;
	pos = 0;
	while (at < size) {
		struct reply_parse p;
		long want;
		size_t end;
		int r = 0;
		pos = at;
		want = smtpcode();
		end = pos;          /* where the loop stopped */
		reply_start(&p);
		for (pos = at; pos < size && r == 0; pos++)
			r = reply_byte(&p, (char)data[pos]);
		if (want == -1) {
			FUZZ_CHECK(r == 0, "the parser ended a reply (%d) the loop found cut short", r);
			break;
		}
		if (want == -2) {
			FUZZ_CHECK(r == -1, "the loop gave up on a long reply, the parser said %d", r);
			break;
		}
		FUZZ_CHECK(r == 1, "the loop read a reply (code %ld) to byte %zu, the parser said %d", want, end, r);
		FUZZ_CHECK(pos == end, "the reply ends at byte %zu for the loop, %zu for the parser", end, pos);
		FUZZ_CHECK(data[pos - 1] == '\n', "a reply ended on 0x%02x, not LF", data[pos - 1]);
		FUZZ_CHECK((long)p.code == want, "code %lu, the loop says %ld", p.code, want);
		FUZZ_CHECK(p.code == 421 || p.code <= 999, "code %lu", p.code);
		at = pos;
	}
	return 0;
}
