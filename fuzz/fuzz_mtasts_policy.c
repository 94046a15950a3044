/*
 * fuzz_mtasts_policy.c -- qmail-remote's MTA-STS parsers
 * (examples/qmail-remote/mtasts.c, compiled in): mtasts_policy_parse,
 * mtasts_mx_match and mtasts_txt_parse.
 *
 * Input: byte 0 chooses what the rest is: even, a policy file; odd, a TXT
 * record.  For a policy, the text up to the first 0xff byte is the policy
 * and what follows is an MX host name to match.
 *
 * Checks (mtasts.h): a policy accepted has a known mode, max_age at most
 * MTASTS_MAX_AGE_MAX, at most MTASTS_MX_MAX patterns, one at least unless
 * the mode is none; each pattern lowercase letters, digits, '-' and '.',
 * "*." only at its start, no final dot, and it matches itself (a wildcard:
 * with "x" in place of "*") in upper case with a final dot; the text had
 * "version" and was not over MTASTS_POLICY_MAX bytes.  A refusal has a
 * message.  The MX host matches only when a pattern says so, computed
 * here again.  A TXT record gives 1 only for text beginning "v=STSv1"
 * with an id of 1 to 32 letters and digits, 0 only for text not beginning
 * with "v=STSv1" followed by a blank, ';' or the end.
 * ISC license: see LICENSE.
 */
#include <ctype.h>
#include <strings.h>

#include "fuzz.h"
#include "mtasts.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	return 0;
}

static int pattern_ok(const char *p)
{
	size_t n = strlen(p);
	if (n == 0 || n > 253 || p[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)p[i];
		if (c == '*') {
			if (i != 0 || p[1] != '.')
				return 0;
		} else if (!(islower(c) || isdigit(c) || c == '-' || c == '.')) {
			return 0;
		}
	}
	return 1;
}

/* The match rule, again, from mtasts.h's words. */
static int match_one(const char *pat, const char *host, size_t n)
{
	char h[300];
	if (n && host[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++)
		h[i] = (char)tolower((unsigned char)host[i]);
	h[n] = 0;
	if (pat[0] == '*') {
		const char *dot = strchr(h, '.');
		return dot && dot != h && !strcmp(dot, pat + 1);
	}
	return !strcmp(h, pat);
}

static void policy(const uint8_t *data, size_t size)
{
	static struct mtasts_policy p;
	const uint8_t *ff = memchr(data, 0xff, size);
	size_t plen = ff ? (size_t)(ff - data) : size;
	const char *why = (const char *)1;
	char host[300];
	size_t hlen = 0;
	int rc = mtasts_policy_parse((const char *)data, plen, &p, &why);
	if (ff) {
		hlen = size - plen - 1;
		if (hlen > sizeof host - 1)
			hlen = sizeof host - 1;
		memcpy(host, ff + 1, hlen);
		for (size_t i = 0; i < hlen; i++)
			if (!host[i])
				host[i] = 'x';
	}
	host[hlen] = 0;
	if (rc != 0) {
		FUZZ_CHECK(rc == -1 && why && *why, "refusal %d without a message", rc);
		return;
	}
	FUZZ_CHECK(why == NULL, "a message with success");
	FUZZ_CHECK(plen <= MTASTS_POLICY_MAX, "%zu bytes accepted", plen);
	FUZZ_CHECK(memmem(data, plen, "version", 7) != NULL, "no version in an accepted policy");
	FUZZ_CHECK(p.mode == MTASTS_MODE_NONE || p.mode == MTASTS_MODE_TESTING || p.mode == MTASTS_MODE_ENFORCE,
	    "mode %d", p.mode);
	FUZZ_CHECK(p.max_age <= MTASTS_MAX_AGE_MAX, "max_age %lu", p.max_age);
	FUZZ_CHECK(p.nmx <= MTASTS_MX_MAX && (p.nmx > 0 || p.mode == MTASTS_MODE_NONE), "%zu patterns, mode %d",
	    p.nmx, p.mode);
	for (size_t i = 0; i < p.nmx; i++) {
		char self[300];
		size_t n = strlen(p.mx[i]);
		FUZZ_CHECK(pattern_ok(p.mx[i]), "pattern \"%s\"", p.mx[i]);
		for (size_t k = 0; k < n; k++)
			self[k] = p.mx[i][k] == '*' ? 'X' : (char)toupper((unsigned char)p.mx[i][k]);
		self[n] = '.';
		self[n + 1] = 0;
		FUZZ_CHECK(mtasts_mx_match(&p, self) == 1, "pattern \"%s\" does not match \"%s\"", p.mx[i], self);
	}
	{
		int want = 0;
		for (size_t i = 0; i < p.nmx; i++)
			want |= match_one(p.mx[i], host, strlen(host));
		FUZZ_CHECK(mtasts_mx_match(&p, host) == want, "\"%s\" matched %d, the rule says %d", host, !want, want);
	}
}

static void txt(const uint8_t *data, size_t size)
{
	char id[MTASTS_ID_MAX + 8];
	int rc;
	memset(id, 'Q', sizeof id);
	rc = mtasts_txt_parse((const char *)data, size, id);
	FUZZ_CHECK(rc >= -1 && rc <= 1, "returned %d", rc);
	if (rc == 0) {
		FUZZ_CHECK(size < 7 || memcmp(data, "v=STSv1", 7) ||
		    (size > 7 && data[7] != ' ' && data[7] != '\t' && data[7] != ';'), "an STS record ignored");
		return;
	}
	FUZZ_CHECK(size >= 7 && !memcmp(data, "v=STSv1", 7), "not an STS record, but %d", rc);
	if (rc == 1) {
		size_t n = strnlen(id, sizeof id);
		FUZZ_CHECK(n >= 1 && n <= MTASTS_ID_MAX, "id of %zu bytes", n);
		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK(isalnum((unsigned char)id[i]), "id byte 0x%02x", (unsigned char)id[i]);
		FUZZ_CHECK(memmem(data, size, id, n) != NULL, "id not in the record");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		txt(data + 1, size - 1);
	else
		policy(data + 1, size - 1);
	return 0;
}
