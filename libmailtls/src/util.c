/* util.c -- small string helpers shared by the sources. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

char *mt_strdup(const char *s)
{
	size_t n;
	char *d;
	if (!s)
		return NULL;
	n = strlen(s) + 1;
	d = malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

int mt_is_ip_literal(const char *name)
{
	unsigned char buf[16];
	return name && (inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1);
}

void mt_hex(char *out, const uint8_t *in, size_t n, int upper)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = 0;
}

const char *mailtls_version(void)
{
	return MAILTLS_VERSION_STRING;
}
