/*
 * fuzz_mtasts_cache.c -- qmail-remote's MTA-STS policy cache file format
 * (examples/qmail-remote/mtasts.c, compiled in): mtasts_cache_parse and
 * mtasts_cache_format.
 *
 * Input: byte 0 chooses.  Even: 8 bytes of "now" (big-endian, the top
 * bit cleared), then a file for mtasts_cache_parse with key "sts.test".
 * Odd: a domain, an id (fz_str each), 4 bytes of fetched, 4 of max_age
 * (big-endian), and the rest as the policy text, for mtasts_cache_format.
 *
 * Checks (mtasts.h): a file parsed for our key is canonical: formatted
 * again from what the parse gave, it is the input byte for byte; its id
 * letters and digits, fetched <= now < expires, expires - fetched within
 * MTASTS_MAX_AGE_MAX, the text the file's last bytes.  A file that is
 * formatted parses back at its fetch time with the same values, is gone
 * (-1) at its expiry, belongs to another key (1) for another domain, and
 * no cut of it parses.
 * ISC license: see LICENSE.
 */
#include <ctype.h>

#include "fuzz.h"
#include "mtasts.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	return 0;
}

static char file[MTASTS_CACHE_FILE_MAX + 64];

static void parse(struct fz *f)
{
	struct mtasts_cached c;
	unsigned long long u = 0;
	long long now;
	size_t len, n;
	const uint8_t *p;
	for (int i = 0; i < 8; i++)
		u = u << 8 | fz_u8(f);
	now = (long long)(u & 0x7fffffffffffffffULL);
	p = fz_bytes(f, f->n, &len);
	if (mtasts_cache_parse((const char *)p, len, "sts.test", now, &c) != 0)
		return;
	FUZZ_CHECK(c.text >= (const char *)p && c.text + c.len == (const char *)p + len, "text not the file's end");
	FUZZ_CHECK(c.len >= 1 && c.len <= MTASTS_POLICY_MAX, "text of %zu bytes", c.len);
	FUZZ_CHECK(c.fetched <= now && now < c.expires && c.expires - c.fetched <= MTASTS_MAX_AGE_MAX,
	    "times %lld %lld at %lld", c.fetched, c.expires, now);
	for (size_t i = 0; c.id[i]; i++)
		FUZZ_CHECK(isalnum((unsigned char)c.id[i]), "id byte 0x%02x", (unsigned char)c.id[i]);
	n = mtasts_cache_format(file, sizeof file, "sts.test", c.id, c.fetched, c.expires, c.text, c.len);
	FUZZ_CHECK(n == len && !memcmp(file, p, len), "not canonical: formatted again %zu bytes of %zu", n, len);
}

static void roundtrip(struct fz *f)
{
	char domain[300], id[64];
	struct mtasts_cached c;
	long long fetched = 0, age = 0;
	const uint8_t *text;
	size_t tlen, n;
	fz_str(f, domain, sizeof domain, 0);
	fz_str(f, id, sizeof id, 0);
	for (int i = 0; i < 4; i++)
		fetched = fetched << 8 | fz_u8(f);
	for (int i = 0; i < 4; i++)
		age = age << 8 | fz_u8(f);
	text = fz_bytes(f, f->n, &tlen);
	n = mtasts_cache_format(file, sizeof file, domain, id, fetched, fetched + age, (const char *)text, tlen);
	if (!n)
		return;
	FUZZ_CHECK(mtasts_cache_parse(file, n, domain, fetched, &c) == 0, "a formatted file does not parse");
	FUZZ_CHECK(!strcmp(c.id, id) && c.fetched == fetched && c.expires == fetched + age && c.len == tlen &&
	    !memcmp(c.text, text, tlen), "read back differently");
	FUZZ_CHECK(mtasts_cache_parse(file, n, domain, fetched + age, &c) == -1, "alive at its expiry");
	FUZZ_CHECK(mtasts_cache_parse(file, n, strcmp(domain, "x.test") ? "x.test" : "y.test", fetched, &c) == 1,
	    "another domain's file is not told apart");
	for (size_t k = 0; k < n; k += 1 + k / 8)
		FUZZ_CHECK(mtasts_cache_parse(file, k, domain, fetched, &c) == -1, "a cut at %zu parses", k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data + 1, size ? size - 1 : 0 };
	if (size == 0)
		return 0;
	if (data[0] & 1)
		roundtrip(&f);
	else
		parse(&f);
	return 0;
}
