/* controlparse.c -- the control files' parsers; see controlparse.h.
 * ISC license: see LICENSE. */
#include <string.h>
#include <strings.h>

#include "controlparse.h"

const char *policy_names[] = { "none", "may", "encrypt", "verify", "secure", "fingerprint", "dane", "dane-only" };

void control_split(char *t, size_t len)
{
	size_t i;
	for (i = 0; i < len; i++)
		if (t[i] == '\n')
			t[i] = 0;
	for (i = len; i > 0; i--) {
		size_t j = i - 1;
		if (t[j] == 0) {
			size_t k = j;
			while (k > 0 && (t[k - 1] == '\r' || t[k - 1] == ' ' || t[k - 1] == '\t'))
				t[--k] = 0;
		}
	}
	if (len) {
		size_t k = len;
		while (k > 0 && (t[k - 1] == '\r' || t[k - 1] == ' ' || t[k - 1] == '\t' || t[k - 1] == 0))
			t[--k] = 0;
	}
}

/* The value of the line "key:value" for exactly |key| (case-insensitive). */
static const char *map_find(const char *text, size_t len, const char *key, size_t klen, int comments)
{
	size_t i = 0;
	while (text && i < len) {
		const char *line = text + i;
		size_t l = strnlen(line, len - i);
		if ((!comments || line[0] != '#') && l > klen && line[klen] == ':' &&
		    strncasecmp(line, key, klen) == 0)
			return line + klen + 1;
		i += l + 1;
	}
	return NULL;
}

const char *route_find(const char *text, size_t len, const char *host)
{
	size_t n = strlen(host), i;
	for (i = 0; i <= n; i++)
		if (i == 0 || i == n || host[i] == '.') {
			const char *r = map_find(text, len, host + i, n - i, 0);
			if (r)
				return r;
		}
	return NULL;
}

int route_split(const char *value, char *host, size_t n, unsigned *port)
{
	const char *colon, *d;
	unsigned long v = 0;
	size_t rl;
	if (value[0] == '[' && strchr(value, ']'))
		colon = strchr(strchr(value, ']'), ':');
	else
		colon = strchr(value, ':');
	rl = colon ? (size_t)(colon - value) : strlen(value);
	if (rl >= n)
		return -1;
	memcpy(host, value, rl);
	host[rl] = 0;
	if (!colon)
		return 0;
	for (d = colon + 1; *d >= '0' && *d <= '9' && v <= 65535; d++)
		v = v * 10 + (unsigned long)(*d - '0');
	if (d == colon + 1 || *d || v < 1 || v > 65535)
		return -1;
	*port = (unsigned)v;
	return 0;
}

const char *policy_find(const char *text, size_t len, const char *name, char *which, size_t wn)
{
	size_t n = strlen(name), i;
	if (!n) {
		if (wn)
			which[0] = 0;
		return map_find(text, len, "", 0, 1);
	}
	for (i = 0; i < n; i++)
		if (i == 0 || name[i] == '.') {
			const char *v = map_find(text, len, name + i, n - i, 1);
			if (v) {
				size_t k = n - i < wn ? n - i : wn - 1;
				memcpy(which, name + i, k);
				which[k] = 0;
				return v;
			}
		}
	return NULL;
}

static int level_of(const char *s, size_t n)
{
	int i;
	for (i = 0; i <= POL_DANE_ONLY; i++)
		if (strlen(policy_names[i]) == n && !strncasecmp(s, policy_names[i], n))
			return i;
	return -1;
}

static int option(char *dst, size_t n, const char *v, size_t l)
{
	if (l >= n)
		return -1;
	memcpy(dst, v, l);
	dst[l] = 0;
	return 0;
}

int policy_parse(const char *v, struct policy *p)
{
	const char *colon = strchr(v, ':');
	size_t n = colon ? (size_t)(colon - v) : strlen(v);
	int lv = level_of(v, n);
	if (lv < 0)
		return -1;
	p->level = lv;
	if (!colon)
		return 0;
	for (v = colon + 1; *v;) {
		const char *end = strchr(v, ',');
		size_t l = end ? (size_t)(end - v) : strlen(v);
		int r = 0;
		if (l > 3 && !strncmp(v, "ca=", 3))
			r = option(p->cafile, sizeof p->cafile, v + 3, l - 3);
		else if (l > 6 && !strncmp(v, "match=", 6))
			r = option(p->match, sizeof p->match, v + 6, l - 6);
		else if (l > 12 && !strncmp(v, "fingerprint=", 12))
			r = option(p->fingerprints, sizeof p->fingerprints, v + 12, l - 12);
		else if (l)
			r = -1;
		if (r < 0)
			return -1;
		v += l;
		if (*v == ',')
			v++;
	}
	return 0;
}

size_t policy_check(const char *text, size_t len, unsigned *levels)
{
	size_t i = 0, n = 0;
	if (levels)
		*levels = 0;
	while (text && i < len) {
		const char *line = text + i, *colon, *rb;
		size_t l = strnlen(line, len - i);
		struct policy p;
		n++;
		/* The key ends at the first colon, or, for an address literal
		 * ("[IPv6:...]"), at the colon after its bracket. */
		colon = memchr(line, ':', l);
		if (l && line[0] == '[' && (rb = memchr(line, ']', l)) && rb + 1 < line + l && rb[1] == ':')
			colon = rb + 1;
		/* an empty key is the default line */
		if (l && line[0] != '#') {
			if (!colon || policy_parse(colon + 1, &p) < 0)
				return n;
			if (levels)
				*levels |= 1u << p.level;
		}
		i += l + 1;
	}
	return 0;
}
