/*
 * fuzz_tlscache.c -- qmail-remote's TLS session cache file format
 * (examples/qmail-remote/cachefile.c): cache_parse on files from the
 * input, and cache_key, cache_slot, cache_format on parts from it.
 *
 * Input: the level, host and address (fz_str each: a length byte and the
 * bytes), a 16-bit port, 4 bytes of "now" (big-endian seconds), 2 bytes of
 * lifetime, then the rest: the file read by cache_parse.
 *
 * Checks: cache_parse returns -1, 0 or 1; 0 only for a file that is
 * exactly the magic line, "key KEY", "expires E" with now < E <= now +
 * CACHE_LIFETIME_MAX, "size N", an empty line and N session bytes, which
 * *sess points at (the last N bytes of the input); 1 only where the same
 * file with the key line swapped for ours parses as 0.  cache_key gives a
 * key with exactly three single spaces, at most CACHE_KEY_MAX bytes, all
 * printable, the host in lower case; cache_slot a name "s" + three hex
 * digits below 0x400.  A file made by cache_format (with the key and the
 * input's tail as the session) parses back to the same session at any
 * time before its expiry, as another key's file for another key, as
 * expired at its expiry, and every cut of it is refused.
 * ISC license: see LICENSE.
 */
#include <ctype.h>

#include "cachefile.h"
#include "fuzz.h"

static char filebuf[CACHE_SESSION_MAX + CACHE_KEY_MAX + 200];

static void check_parse(const char *buf, size_t len, const char *key, long long now)
{
	const unsigned char *sess = NULL;
	size_t slen = 0;
	int r = cache_parse(buf, len, key, now, &sess, &slen);
	FUZZ_CHECK(r == -1 || r == 0 || r == 1, "cache_parse returned %d", r);
	if (r == 0) {
		char head[CACHE_KEY_MAX + 200];
		int h = snprintf(head, sizeof head, "qmail-remote tlscache 1\nkey %s\nexpires ", key);
		FUZZ_CHECK(h > 0 && (size_t)h < len && !memcmp(buf, head, (size_t)h), "header without our key");
		FUZZ_CHECK(slen >= 1 && slen <= CACHE_SESSION_MAX, "session length %zu", slen);
		FUZZ_CHECK((const char *)sess + slen == buf + len, "session is not the file's end");
		FUZZ_CHECK((const char *)sess >= buf + h + 10 && sess[-1] == '\n' && sess[-2] == '\n',
		    "session does not follow an empty line");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	char level[64], host[300], addr[80], key[CACHE_KEY_MAX + 2], slot[5];
	const unsigned char *sess;
	const char *file;
	size_t flen, slen, len, i, spaces = 0;
	unsigned port;
	long long now, life;
	int r;

	fz_str(&f, level, sizeof level, 0);
	fz_str(&f, host, sizeof host, 0);
	fz_str(&f, addr, sizeof addr, 0);
	port = fz_u16(&f);
	now = (long long)fz_u16(&f) << 16;
	now |= fz_u16(&f);
	life = fz_u16(&f);
	file = (const char *)fz_bytes(&f, f.n, &flen);

	check_parse(file, flen, "may mx.example.org 192.0.2.1 25", now);

	if (cache_key(key, sizeof key, level, host, addr, port) < 0)
		return 0;
	len = strlen(key);
	FUZZ_CHECK(len <= CACHE_KEY_MAX, "key of %zu bytes", len);
	for (i = 0; i < len; i++) {
		FUZZ_CHECK(key[i] >= 0x20 && key[i] <= 0x7e, "key byte 0x%02x", (unsigned char)key[i]);
		if (key[i] == ' ') {
			spaces++;
			FUZZ_CHECK(i > 0 && key[i - 1] != ' ', "two spaces in a key");
		}
	}
	FUZZ_CHECK(spaces == 3, "key with %zu spaces", spaces);
	for (i = strlen(level) + 1; key[i] != ' '; i++)
		FUZZ_CHECK(!isupper((unsigned char)key[i]), "host not in lower case: %s", key);
	cache_slot(key, slot);
	FUZZ_CHECK(slot[0] == 's' && strlen(slot) == 4 && strspn(slot + 1, "0123456789abcdef") == 3 &&
	    slot[1] <= '3', "slot %s", slot);

	check_parse(file, flen, key, now);

	/* our own files, with the input's tail as the session */
	if (!flen)
		return 0;
	slen = flen > CACHE_SESSION_MAX ? CACHE_SESSION_MAX : flen;
	if (life < 1)
		life = 1;
	if (life > CACHE_LIFETIME_MAX)
		life = CACHE_LIFETIME_MAX;
	now += 1;
	len = cache_format(filebuf, sizeof filebuf, key, now + life, (const unsigned char *)file, slen);
	FUZZ_CHECK(len > slen, "cache_format refused a key of cache_key's");
	r = cache_parse(filebuf, len, key, now, &sess, &i);
	FUZZ_CHECK(r == 0 && i == slen && !memcmp(sess, file, slen), "own file not read back (%d)", r);
	r = cache_parse(filebuf, len, key, now + life - 1, &sess, &i);
	FUZZ_CHECK(r == 0, "own file expired early (%d)", r);
	r = cache_parse(filebuf, len, key, now + life, &sess, &i);
	FUZZ_CHECK(r == -1, "own file alive at its expiry (%d)", r);
	r = cache_parse(filebuf, len, "verify other 192.0.2.9 25", now, &sess, &i);
	FUZZ_CHECK(r == 1 || !strcmp(key, "verify other 192.0.2.9 25"), "another key's file read as %d", r);
	for (i = 0; i < len; i += 1 + len / 64) {
		const unsigned char *s2;
		size_t l2;
		FUZZ_CHECK(cache_parse(filebuf, i, key, now, &s2, &l2) == -1, "file cut at %zu accepted", i);
	}
	FUZZ_CHECK(cache_parse(filebuf, len - 1, key, now, &sess, &i) == -1, "file cut by one accepted");
	return 0;
}
