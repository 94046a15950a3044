/* eventline.c -- an event line read back; see eventline.h.
 * ISC license: see LICENSE. */
#include <string.h>

#include "eventline.h"

static const char *const results[] = {
	"success", "starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
	"certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid", "dane-required",
	"sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
};

int event_result_known(const char *r)
{
	for (size_t i = 0; i < sizeof results / sizeof results[0]; i++)
		if (!strcmp(r, results[i]))
			return 1;
	return 0;
}

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The field at *p (up to a TAB or |end|) unescaped into |out| (|max|
 * bytes and a NUL): 0 with *p past it, or -1. */
static int field(const char **p, const char *end, char *out, size_t max)
{
	const char *q = *p;
	size_t o = 0;
	while (q < end && *q != '\t') {
		int c = (unsigned char)*q;
		if (c < 0x21 || c > 0x7e)
			return -1;
		if (c == '%') {
			int h, l;
			if (end - q < 3 || (h = hexval(q[1])) < 0 || (l = hexval(q[2])) < 0)
				return -1;
			c = h * 16 + l;
			if (c == 0 || (c >= 0x21 && c <= 0x7e && c != '%'))
				return -1;   /* no NUL, and no escape of a byte that needs none */
			q += 2;
		}
		if (o == max)
			return -1;
		out[o++] = (char)c;
		q++;
	}
	out[o] = 0;
	*p = q;
	return 0;
}

/* A TAB, then a field. */
static int next(const char **p, const char *end, char *out, size_t max)
{
	if (*p == end || **p != '\t')
		return -1;
	(*p)++;
	return field(p, end, out, max);
}

int event_parse(const char *line, size_t len, struct event *e)
{
	const char *p = line, *end = line + len;
	char t[20];
	size_t n;
	if (len < 8 || memcmp(line, "tlsrpt1\t", 8))
		return -1;
	p += 7;
	if (next(&p, end, t, 18) < 0)
		return -1;
	n = strlen(t);
	if (!n || (t[0] == '0' && n > 1))
		return -1;
	e->time = 0;
	for (size_t i = 0; i < n; i++) {
		if (t[i] < '0' || t[i] > '9')
			return -1;
		e->time = e->time * 10 + (t[i] - '0');
	}
	if (next(&p, end, e->policy_type, sizeof e->policy_type - 1) < 0 ||
	    next(&p, end, e->policy_domain, EV_NAME_MAX) < 0 || next(&p, end, e->domain, EV_NAME_MAX) < 0 ||
	    next(&p, end, e->mx_host, EV_NAME_MAX) < 0 || next(&p, end, e->addr, EV_NAME_MAX) < 0 ||
	    next(&p, end, e->sending_ip, EV_NAME_MAX) < 0 || next(&p, end, e->result, EV_RESULT_MAX) < 0 ||
	    next(&p, end, e->detail, EV_DETAIL_MAX) < 0 || next(&p, end, e->policy, EV_POLICY_MAX) < 0 || p != end)
		return -1;
	if (strcmp(e->policy_type, "sts") && strcmp(e->policy_type, "tlsa") &&
	    strcmp(e->policy_type, "no-policy-found"))
		return -1;
	if (!e->policy_domain[0] || !event_result_known(e->result))
		return -1;
	return 0;
}
