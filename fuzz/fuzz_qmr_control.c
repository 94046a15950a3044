/*
 * fuzz_qmr_control.c -- qmail-remote's control-file parsers
 * (examples/qmail-remote/controlparse.c): control_split, route_find and
 * route_split (smtproutes), policy_find, policy_parse and policy_check
 * (tlspolicy).
 *
 * Input: a name (fz_str: a length byte and the bytes), then the rest: a
 * control file's bytes.
 *
 * Checks: after control_split the text holds no \n, and no line ends in
 * CR, space or tab.  route_find returns NULL or a pointer into the text
 * just after "KEY:" at the start of a line, where KEY is the name, one of
 * its ".suffix"es or "" (case-insensitively), and no line for an earlier
 * key of that order exists; route_split on it gives a NUL-terminated host
 * shorter than its buffer and a port of 1 to 65535 (or the port left
 * alone when the value names none), or -1.  policy_find the same for the
 * name and its ".parent"s, never a '#' line, with |which| the key found;
 * policy_parse gives a level 0..7 and NUL-terminated fields, or -1; in a
 * file policy_check passes, every value policy_find gives for a host name
 * parses.
 * ISC license: see LICENSE.
 */
#include <strings.h>

#include "controlparse.h"
#include "fuzz.h"

static char text[1 << 16];

/* The value after "key:" on a line starting at a line start, or NULL. */
static const char *line_value(size_t len, const char *key, size_t klen, int comments)
{
	size_t i = 0;
	while (i < len) {
		const char *line = text + i;
		size_t l = strnlen(line, len - i);
		if ((!comments || line[0] != '#') && l > klen && line[klen] == ':' && !strncasecmp(line, key, klen))
			return line + klen + 1;
		i += l + 1;
	}
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	char name[256], host[300], which[300];
	const char *v, *expect = NULL;
	struct policy p;
	size_t len, i, n;
	unsigned port = 12345;

	fz_str(&f, name, sizeof name, 0);
	if (size - (size_t)(f.p - data) >= sizeof text)
		return 0;
	len = f.n;
	memcpy(text, f.p, len);
	text[len] = 0;
	control_split(text, len);
	for (i = 0; i <= len; i++) {   /* text[len], the last line's end, too */
		FUZZ_CHECK(text[i] != '\n', "newline left at %zu", i);
		if (!text[i] && i > 0)
			FUZZ_CHECK(text[i - 1] == 0 || (text[i - 1] != '\r' && text[i - 1] != ' ' && text[i - 1] != '\t'),
			    "blank before the end of a line at %zu", i);
	}

	/* smtproutes: the first key of netqmail's order that has a line */
	n = strlen(name);
	for (i = 0; i <= n && !expect; i++)
		if (i == 0 || i == n || name[i] == '.')
			expect = line_value(len, name + i, n - i, 0);
	v = route_find(text, len, name);
	FUZZ_CHECK(v == expect, "route_find found %p, the order says %p", (const void *)v, (const void *)expect);
	if (v) {
		FUZZ_CHECK(v > text && v <= text + len && v[-1] == ':', "value not after a colon");
		if (route_split(v, host, sizeof host, &port) == 0) {
			FUZZ_CHECK(strlen(host) < sizeof host, "host overran");
			FUZZ_CHECK(port >= 1 && port <= 65535, "port %u", port);
			FUZZ_CHECK(port == 12345 || strchr(v, ':'), "a port without a colon");
		}
	}

	/* tlspolicy: the name, then its parents; "" the default line */
	expect = NULL;
	for (i = 0; i < n && !expect; i++)
		if (i == 0 || name[i] == '.')
			expect = line_value(len, name + i, n - i, 1);
	if (!n)
		expect = line_value(len, "", 0, 1);
	v = policy_find(text, len, name, which, sizeof which);
	FUZZ_CHECK(v == expect, "policy_find found %p, the order says %p", (const void *)v, (const void *)expect);
	/* A file that policy_check passes holds no value that policy_parse refuses
	 * for a host name (no ':' or '[': those of address literals can split a
	 * line elsewhere, and a value found there that does not parse is a Z at
	 * delivery time, never a weaker policy). */
	if (v && policy_check(text, len, NULL) == 0 && !strpbrk(name, ":[")) {
		memset(&p, 0, sizeof p);
		FUZZ_CHECK(policy_parse(v, &p) == 0, "policy_check passed a file whose value \"%s\" does not parse", v);
	}
	if (v) {
		FUZZ_CHECK(strlen(which) <= n && !strncasecmp(v - 1 - strlen(which), which, strlen(which)),
		    "which is not the key found");
		memset(&p, 0, sizeof p);
		if (policy_parse(v, &p) == 0) {
			FUZZ_CHECK(p.level >= 0 && p.level <= POL_DANE_ONLY, "level %d", p.level);
			FUZZ_CHECK(strnlen(p.cafile, sizeof p.cafile) < sizeof p.cafile &&
			    strnlen(p.match, sizeof p.match) < sizeof p.match &&
			    strnlen(p.fingerprints, sizeof p.fingerprints) < sizeof p.fingerprints, "field overran");
			FUZZ_CHECK(!strncasecmp(v, policy_names[p.level], strlen(policy_names[p.level])),
			    "level not the value's");
		}
	}
	return 0;
}
