/* rules.c -- tcprules cdb lookup, in tcpserver's order (see rules.h).
 * The cdb is read with tinycdb; it checks every offset against the file
 * size (EPROTO), so a damaged file is an error, not a crash. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L   /* O_CLOEXEC */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cdb.h>

#include "rules.h"

void rules_result_free(struct rules_result *r)
{
	free(r->env);
	memset(r, 0, sizeof *r);
}

int rules_parse_value(const char *data, size_t len, struct rules_result *out)
{
	const char *p, *z, *end = data + len;
	char *env;
	size_t n = 0;

	memset(out, 0, sizeof *out);
	if (len > RULES_VALUEMAX || (len && data[len - 1]))
		return errno = EPROTO, -1;
	if (!len)
		return 0;
	env = malloc(len);   /* the assignments are never longer than the value */
	if (!env)
		return -1;
	for (p = data; p < end; p = z + 1) {
		z = memchr(p, 0, (size_t)(end - p));   /* found: data[len - 1] is 0 */
		if (z - p == 1 && *p == 'D') {
			out->deny = 1;
		} else if (*p == '+' && z - p > 2 && p[1] != '=' && memchr(p + 2, '=', (size_t)(z - p - 2))) {
			memcpy(env + n, p + 1, (size_t)(z - p));   /* VAR=value and its NUL */
			n += (size_t)(z - p);
		} else {
			free(env);
			out->deny = 0;
			return errno = EPROTO, -1;
		}
	}
	if (n) {
		out->env = env;
		out->envlen = n;
	} else {
		free(env);
	}
	return 0;
}

/* find looks |key| up; on a hit it fills *out and records the key. */
static int find(struct cdb *c, const char *key, size_t klen, struct rules_result *out)
{
	const char *v;
	size_t vlen;
	int r;

	r = cdb_find(c, key, (unsigned)klen);
	if (r <= 0)
		return r;
	vlen = cdb_datalen(c);
	v = cdb_getdata(c);
	if (!v || rules_parse_value(v, vlen, out) < 0)
		return -1;
	if (klen >= sizeof out->key)
		klen = sizeof out->key - 1;
	memcpy(out->key, key, klen);
	out->key[klen] = 0;
	return 1;
}

/* cat writes a, b and c into k; returns the length. */
static size_t cat(char *k, const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	memcpy(k, a, la);
	memcpy(k + la, b, lb);
	memcpy(k + la + lb, c, lc);
	return la + lb + lc;
}

/* doit is rules.c's doit() of ucspi-tcp 0.88, the IPv6 patch's ':' included. */
static int doit(struct cdb *c, char *k, const char *ip, const char *host, const char *info,
	struct rules_result *out)
{
	size_t n, iplen = strlen(ip);
	const char *h;
	int r;

	if (info) {
		if ((r = find(c, k, cat(k, info, "@", ip), out)))
			return r;
		if (host && (r = find(c, k, cat(k, info, "@=", host), out)))
			return r;
	}
	if ((r = find(c, ip, iplen, out)))
		return r;
	if (host && (r = find(c, k, cat(k, "=", host, ""), out)))
		return r;
	for (n = iplen; n > 0; n--)
		if ((ip[n - 1] == '.' || ip[n - 1] == ':') && (r = find(c, ip, n, out)))
			return r;
	if (host) {
		for (h = host; *h; h++)
			if (*h == '.' && (r = find(c, k, cat(k, "=", h, ""), out)))
				return r;
		if ((r = find(c, "=", 1, out)))
			return r;
	}
	return find(c, "", 0, out);
}

int rules_lookup(const char *cdbpath, const char *ip, const char *host, const char *info,
	struct rules_result *out)
{
	struct cdb c;
	char *k;
	int fd, r, e;

	memset(out, 0, sizeof *out);
	if (!cdbpath || !ip)
		return errno = EINVAL, -1;
	k = malloc(strlen(ip) + (host ? strlen(host) : 0) + (info ? strlen(info) : 0) + 3);
	if (!k)
		return -1;
	fd = open(cdbpath, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		free(k);
		return errno = e, -1;
	}
	if (cdb_init(&c, fd) < 0) {
		r = -1;
	} else {
		r = doit(&c, k, ip, host, info, out);
		e = errno;
		cdb_free(&c);
		errno = e;
	}
	e = errno;
	close(fd);
	free(k);
	errno = e;
	return r;
}
