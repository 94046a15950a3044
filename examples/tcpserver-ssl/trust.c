/* trust.c -- -k: the load balancers trusted to send a PROXY header, as
 * addresses and CIDR blocks. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "tcpserver-ssl.h"

/* One item: "a.b.c.d", "a.b.c.d/n", "x::y", "x::y/n". */
static int trust_item(const char *s, size_t n, struct trusted *t)
{
	char tmp[80];
	const char *slash;
	unsigned long bits;
	memset(t, 0, sizeof *t);
	if (n == 0 || n >= sizeof tmp)
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = 0;
	slash = strchr(tmp, '/');
	if (slash)
		tmp[slash - tmp] = 0;
	if (inet_pton(AF_INET, tmp, t->a) == 1)
		t->bits = 32;
	else if (inet_pton(AF_INET6, tmp, t->a) == 1)
		t->v6 = 1, t->bits = 128;
	else
		return -1;
	if (slash) {
		if (ucspi_number(slash + 1, 0, (unsigned long)t->bits, NULL, &bits) < 0)
			return -1;
		t->bits = (int)bits;
	}
	return 0;
}

int trust_parse(struct opts *o, const char *list)
{
	while (*list) {
		const char *end = strchr(list, ',');
		size_t n = end ? (size_t)(end - list) : strlen(list);
		struct trusted *v;
		if (o->ntrusted >= TRUST_MAX)
			return -1;
		v = realloc(o->trusted, (o->ntrusted + 1) * sizeof *v);
		if (!v || trust_item(list, n, &v[o->ntrusted]) < 0) {
			if (v)
				o->trusted = v;
			return -1;
		}
		o->trusted = v;
		o->ntrusted++;
		list += n + (end ? 1 : 0);
		if (end && !*list)
			return -1;
	}
	return o->ntrusted ? 0 : -1;
}

int trust_match(const struct opts *o, const char *ip)
{
	unsigned char a[16];
	int v6;
	if (inet_pton(AF_INET, ip, a) == 1)
		v6 = 0;
	else if (inet_pton(AF_INET6, ip, a) == 1)
		v6 = 1;
	else
		return 0;
	for (size_t i = 0; i < o->ntrusted; i++) {
		const struct trusted *t = &o->trusted[i];
		int whole = t->bits / 8, rest = t->bits % 8;
		if (t->v6 != v6 || memcmp(t->a, a, (size_t)whole))
			continue;
		if (rest && ((t->a[whole] ^ a[whole]) & (0xff << (8 - rest)) & 0xff))
			continue;
		return 1;
	}
	return 0;
}
