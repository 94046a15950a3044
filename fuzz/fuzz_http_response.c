/*
 * fuzz_http_response.c -- qmail-remote's HTTP/1.1 response parser for
 * MTA-STS policies (mtasts_http_parse in examples/qmail-remote/mtasts.c,
 * compiled in).
 *
 * Input: byte 0: the body's capacity (0..255; 255 means 64 KiB); byte 1:
 * where the bytes are cut for a first call (as a fraction of the rest,
 * in 255ths); the rest is the response as received.
 *
 * Checks (mtasts.h): results 1, 0 or -1; 0 never with eof, and -1 comes
 * with a message; a complete response has a status 200..999, consumed
 * no more than the input, a body no larger than the capacity (the
 * capacity is a buffer of exactly that size, so an overrun is an ASan
 * crash), a media type of lowercase bytes without ';' or blanks; a body
 * taken with Content-Length or in one chunk is the input's bytes.  The
 * parse is monotone: when a prefix of the input is complete, the whole
 * input gives the same response (bytes after it are not looked at); when
 * a prefix is refused, so is the whole.
 * ISC license: see LICENSE.
 */
#include <string.h>

#include "fuzz.h"
#include "mtasts.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	return 0;
}

static int parse(const uint8_t *in, size_t len, int eof, size_t cap, struct mtasts_http *h, char **bodyp)
{
	const char *why = (const char *)1;
	char *body = malloc(cap ? cap : 1);
	int r = mtasts_http_parse((const char *)in, len, eof, body, cap, h, &why);
	FUZZ_CHECK(r >= -1 && r <= 1, "returned %d", r);
	FUZZ_CHECK(!(r == 0 && eof), "more wanted after the end of the connection");
	FUZZ_CHECK(r != -1 || (why && *why), "refused without a message");
	FUZZ_CHECK(r == -1 || why == NULL, "a message without a refusal");
	if (r == 1) {
		FUZZ_CHECK(h->status >= 200 && h->status <= 999, "status %d", h->status);
		FUZZ_CHECK(h->consumed <= len && h->body_len <= cap && h->body_len <= h->consumed, "consumed %zu of %zu, body %zu",
		    h->consumed, len, h->body_len);
		for (const char *c = h->content_type; *c; c++)
			FUZZ_CHECK(!(*c >= 'A' && *c <= 'Z') && *c != ';' && *c != ' ' && *c != '\t', "media type \"%s\"",
			    h->content_type);
		/* Without chunking, the body is the last body_len bytes consumed. */
		{
			size_t hl = h->consumed - h->body_len;
			char *head = malloc(hl + 1);
			memcpy(head, in, hl);
			head[hl] = 0;
			if (strlen(head) == hl && !strcasestr(head, "chunked"))
				FUZZ_CHECK(!memcmp(in + hl, body, h->body_len), "body differs from the input");
			free(head);
		}
	}
	*bodyp = body;
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	unsigned c = fz_u8(&f), cut = fz_u8(&f);
	size_t cap = c == 255 ? MTASTS_POLICY_MAX : c, first = f.n * cut / 255;
	struct mtasts_http h1, h2;
	char *b1, *b2;
	int r1 = parse(f.p, first, 0, cap, &h1, &b1);
	int r2 = parse(f.p, f.n, 0, cap, &h2, &b2);
	int r3;
	char *b3;
	struct mtasts_http h3;
	if (r1 == 1) {
		/* Complete without the end of the connection: delimited, so
		 * nothing after it changes it. */
		FUZZ_CHECK(r2 == 1 && h2.status == h1.status && h2.consumed == h1.consumed && h2.body_len == h1.body_len &&
		    !memcmp(b1, b2, h1.body_len) && !strcmp(h1.content_type, h2.content_type),
		    "a complete prefix and the whole differ");
	}
	if (r1 == -1)
		FUZZ_CHECK(r2 == -1, "a refused prefix, but the whole gives %d", r2);
	r3 = parse(f.p, f.n, 1, cap, &h3, &b3);
	if (r2 == 1)
		FUZZ_CHECK(r3 == 1 && h3.consumed == h2.consumed && h3.body_len == h2.body_len, "eof changed a complete response");
	free(b1);
	free(b2);
	free(b3);
	return 0;
}
