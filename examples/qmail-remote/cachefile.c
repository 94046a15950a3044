/* cachefile.c -- the TLS session cache's file format; see cachefile.h.
 * ISC license: see LICENSE. */
#include <stdio.h>
#include <string.h>

#include "cachefile.h"

static const char magic[] = "qmail-remote tlscache 1\n";

static int part_ok(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

int cache_key(char *key, size_t n, const char *level, const char *host, const char *addr, unsigned port)
{
	int r;
	size_t i;
	if (!part_ok(level) || !part_ok(host) || !part_ok(addr))
		return -1;
	r = snprintf(key, n, "%s %s %s %u", level, host, addr, port);
	if (r < 0 || (size_t)r >= n || (size_t)r > CACHE_KEY_MAX)
		return -1;
	for (i = strlen(level) + 1; key[i] != ' '; i++)
		if (key[i] >= 'A' && key[i] <= 'Z')
			key[i] = (char)(key[i] - 'A' + 'a');
	return 0;
}

void cache_slot(const char *key, char name[5])
{
	static const char hex[] = "0123456789abcdef";
	unsigned long long h = 14695981039346656037ULL;   /* FNV-1a, 64 bits */
	unsigned v;
	for (; *key; key++) {
		h ^= (unsigned char)*key;
		h *= 1099511628211ULL;
	}
	v = (unsigned)((h ^ (h >> 32)) % CACHE_SLOTS);
	name[0] = 's';
	name[1] = hex[(v >> 8) & 15];
	name[2] = hex[(v >> 4) & 15];
	name[3] = hex[v & 15];
	name[4] = 0;
}

static int key_ok(const char *key)
{
	size_t n = strlen(key), i, spaces = 0;
	if (!n || n > CACHE_KEY_MAX || key[0] == ' ' || key[n - 1] == ' ')
		return 0;
	for (i = 0; i < n; i++) {
		if ((unsigned char)key[i] < 0x20 || (unsigned char)key[i] > 0x7e)
			return 0;
		if (key[i] == ' ' && (++spaces > 3 || key[i + 1] == ' '))
			return 0;
	}
	return spaces == 3;
}

size_t cache_format(char *out, size_t outlen, const char *key, long long expires,
    const unsigned char *sess, size_t slen)
{
	int h;
	if (!key_ok(key) || !slen || slen > CACHE_SESSION_MAX || expires <= 0)
		return 0;
	h = snprintf(out, outlen, "%skey %s\nexpires %lld\nsize %zu\n\n", magic, key, expires, slen);
	if (h < 0 || (size_t)h >= outlen || outlen - (size_t)h < slen)
		return 0;
	memcpy(out + h, sess, slen);
	return (size_t)h + slen;
}

const char *cache_field(const char **p, const char *end, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	const char *v, *lf;
	if ((size_t)(end - *p) < nl + 1 || memcmp(*p, name, nl) || (*p)[nl] != ' ')
		return NULL;
	v = *p + nl + 1;
	lf = memchr(v, '\n', (size_t)(end - v));
	if (!lf || memchr(v, 0, (size_t)(lf - v)))
		return NULL;
	*vlen = (size_t)(lf - v);
	*p = lf + 1;
	return v;
}

int cache_decimal(const char *v, size_t n, long long *out)
{
	long long x = 0;
	size_t i;
	if (!n || n > 18 || (v[0] == '0' && n > 1))
		return -1;
	for (i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		x = x * 10 + (v[i] - '0');
	}
	*out = x;
	return 0;
}

int cache_parse(const char *buf, size_t len, const char *key, long long now,
    const unsigned char **sess, size_t *slen)
{
	const char *p = buf, *end = buf + len, *v;
	size_t vl, ml = sizeof magic - 1;
	long long expires, size;
	int other;
	if (len < ml || memcmp(buf, magic, ml))
		return -1;
	p += ml;
	if (!(v = cache_field(&p, end, "key", &vl)) || !vl || vl > CACHE_KEY_MAX)
		return -1;
	other = vl != strlen(key) || memcmp(v, key, vl);
	if (!(v = cache_field(&p, end, "expires", &vl)) || cache_decimal(v, vl, &expires) < 0)
		return -1;
	if (expires <= now || expires - now > CACHE_LIFETIME_MAX)
		return -1;
	if (!(v = cache_field(&p, end, "size", &vl)) || cache_decimal(v, vl, &size) < 0)
		return -1;
	if (size < 1 || size > CACHE_SESSION_MAX || p == end || *p != '\n')
		return -1;
	p++;
	if ((size_t)(end - p) != (size_t)size)
		return -1;
	if (other)
		return 1;
	*sess = (const unsigned char *)p;
	*slen = (size_t)size;
	return 0;
}
