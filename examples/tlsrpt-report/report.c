/* report.c -- RFC 8460 reports from events; see report.h.
 * ISC license: see LICENSE. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

struct failure {
	char result[EV_RESULT_MAX + 1];
	char sending_ip[EV_NAME_MAX + 1];
	char mx_host[EV_NAME_MAX + 1];
	char addr[EV_NAME_MAX + 1];
	char code[EV_DETAIL_MAX + 1];
	long long count;
};

struct policy {
	char type[16];
	char domain[EV_NAME_MAX + 1];
	char *text;                  /* "" for none */
	char **mx;                   /* tlsa: the MX hosts seen */
	size_t nmx;
	long long ok, failed;
	struct failure *f;
	size_t nf;
};

struct report {
	struct policy *p;
	size_t np;
	char **domains;
	size_t nd;
};

struct report *report_new(void)
{
	return calloc(1, sizeof(struct report));
}

void report_free(struct report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->np; i++) {
		free(r->p[i].text);
		for (size_t k = 0; k < r->p[i].nmx; k++)
			free(r->p[i].mx[k]);
		free(r->p[i].mx);
		free(r->p[i].f);
	}
	for (size_t i = 0; i < r->nd; i++)
		free(r->domains[i]);
	free(r->p);
	free(r->domains);
	free(r);
}

/* One more element of |size| bytes at the end of *arr (*n of them): a
 * pointer to it, zeroed, or NULL. */
static void *grow(void *arr, size_t *n, size_t size)
{
	void **a = arr;
	char *na = realloc(*a, (*n + 1) * size);
	if (!na)
		return NULL;
	*a = na;
	memset(na + *n * size, 0, size);
	return na + (*n)++ * size;
}

static int domain_add(struct report *r, const char *d)
{
	size_t i = 0;
	char *copy, **slot;
	while (i < r->nd && strcmp(r->domains[i], d) < 0)
		i++;
	if (i < r->nd && !strcmp(r->domains[i], d))
		return 0;
	if (!(copy = strdup(d)))
		return -1;
	if (!(slot = grow(&r->domains, &r->nd, sizeof *r->domains))) {
		free(copy);
		return -1;
	}
	memmove(r->domains + i + 1, r->domains + i, (r->nd - 1 - i) * sizeof *r->domains);
	r->domains[i] = copy;
	return 0;
}

static struct policy *policy_of(struct report *r, const struct event *e)
{
	struct policy *p;
	for (size_t i = 0; i < r->np; i++) {
		p = &r->p[i];
		if (!strcmp(p->type, e->policy_type) && !strcmp(p->domain, e->policy_domain) &&
		    !strcmp(p->text, e->policy))
			return p;
	}
	if (domain_add(r, e->policy_domain) < 0 || !(p = grow(&r->p, &r->np, sizeof *r->p)))
		return NULL;
	if (!(p->text = strdup(e->policy))) {
		r->np--;
		return NULL;
	}
	strcpy(p->type, e->policy_type);
	strcpy(p->domain, e->policy_domain);
	return p;
}

static int mx_add(struct policy *p, const char *host)
{
	char **slot;
	if (!host[0])
		return 0;
	for (size_t i = 0; i < p->nmx; i++)
		if (!strcmp(p->mx[i], host))
			return 0;
	if (!(slot = grow(&p->mx, &p->nmx, sizeof *p->mx)))
		return -1;
	if (!(*slot = strdup(host))) {
		p->nmx--;
		return -1;
	}
	return 0;
}

int report_add(struct report *r, const struct event *e)
{
	struct policy *p = policy_of(r, e);
	struct failure *f;
	if (!p)
		return -1;
	if (!strcmp(p->type, "tlsa") && mx_add(p, e->mx_host) < 0)
		return -1;
	if (!strcmp(e->result, "success")) {
		p->ok++;
		return 0;
	}
	p->failed++;
	for (size_t i = 0; i < p->nf; i++) {
		f = &p->f[i];
		if (!strcmp(f->result, e->result) && !strcmp(f->sending_ip, e->sending_ip) &&
		    !strcmp(f->mx_host, e->mx_host) && !strcmp(f->addr, e->addr)) {
			f->count++;
			return 0;
		}
	}
	if (!(f = grow(&p->f, &p->nf, sizeof *p->f))) {
		p->failed--;
		return -1;
	}
	strcpy(f->result, e->result);
	strcpy(f->sending_ip, e->sending_ip);
	strcpy(f->mx_host, e->mx_host);
	strcpy(f->addr, e->addr);
	strcpy(f->code, e->detail);
	f->count = 1;
	return 0;
}

size_t report_ndomains(const struct report *r)
{
	return r->nd;
}

const char *report_domain(const struct report *r, size_t i)
{
	return r->domains[i];
}

/* ------------------------------------------------------------ JSON */

static void str(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c > 0x7e)
			fprintf(f, "\\u%04X", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void member(FILE *f, const char *indent, const char *name, const char *value, int comma)
{
	fprintf(f, "%s\"%s\": ", indent, name);
	str(f, value, strlen(value));
	fputs(comma ? ",\n" : "\n", f);
}

/* The policy's lines (without blank ones) as a JSON array; with
 * |mx_only|, the values of its "mx:" lines. */
static void lines(FILE *f, const char *text, int mx_only)
{
	const char *p = text;
	int first = 1;
	fputc('[', f);
	while (*p) {
		const char *nl = strchr(p, '\n'), *e = nl ? nl : p + strlen(p), *v = p;
		size_t n;
		if (mx_only) {
			while (v < e && (*v == ' ' || *v == '\t'))
				v++;
			if (e - v < 3 || memcmp(v, "mx:", 3)) {
				v = e;
			} else {
				v += 3;
				while (v < e && (*v == ' ' || *v == '\t'))
					v++;
			}
		}
		n = (size_t)(e - v);
		while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r'))
			n--;
		if (n) {
			fputs(first ? "" : ", ", f);
			str(f, v, n);
			first = 0;
		}
		p = nl ? nl + 1 : e;
	}
	fputc(']', f);
}

static void policy_write(FILE *f, const struct policy *p, int comma)
{
	int none = !strcmp(p->type, "no-policy-found");
	int sts_mx = !none && !strcmp(p->type, "sts") && p->text[0];
	int host_mx = !none && !sts_mx && p->nmx;
	fputs("    {\n      \"policy\": {\n", f);
	member(f, "        ", "policy-type", p->type, 1);
	if (!none && p->text[0]) {
		fputs("        \"policy-string\": ", f);
		lines(f, p->text, 0);
		fputs(",\n", f);
	}
	member(f, "        ", "policy-domain", p->domain, sts_mx || host_mx);
	if (sts_mx) {
		fputs("        \"mx-host\": ", f);
		lines(f, p->text, 1);
		fputc('\n', f);
	} else if (host_mx) {
		fputs("        \"mx-host\": [", f);
		for (size_t i = 0; i < p->nmx; i++) {
			fputs(i ? ", " : "", f);
			str(f, p->mx[i], strlen(p->mx[i]));
		}
		fputs("]\n", f);
	}
	fprintf(f, "      },\n      \"summary\": {\n        \"total-successful-session-count\": %lld,\n"
	    "        \"total-failure-session-count\": %lld\n      }%s\n", p->ok, p->failed, p->nf ? "," : "");
	if (p->nf) {
		fputs("      \"failure-details\": [\n", f);
		for (size_t i = 0; i < p->nf; i++) {
			const struct failure *x = &p->f[i];
			fputs("        {\n", f);
			member(f, "          ", "result-type", x->result, 1);
			if (x->sending_ip[0])
				member(f, "          ", "sending-mta-ip", x->sending_ip, 1);
			if (x->mx_host[0])
				member(f, "          ", "receiving-mx-hostname", x->mx_host, 1);
			if (x->addr[0])
				member(f, "          ", "receiving-ip", x->addr, 1);
			fprintf(f, "          \"failed-session-count\": %lld%s\n", x->count, x->code[0] ? "," : "");
			if (x->code[0])
				member(f, "          ", "failure-reason-code", x->code, 0);
			fprintf(f, "        }%s\n", i + 1 < p->nf ? "," : "");
		}
		fputs("      ]\n", f);
	}
	fprintf(f, "    }%s\n", comma ? "," : "");
}

int report_write(FILE *f, const struct report *r, const char *domain, const struct report_meta *m)
{
	size_t last = 0;
	fputs("{\n", f);
	member(f, "  ", "organization-name", m->organization, 1);
	fputs("  \"date-range\": {\n", f);
	member(f, "    ", "start-datetime", m->start, 1);
	member(f, "    ", "end-datetime", m->end, 0);
	fputs("  },\n", f);
	member(f, "  ", "contact-info", m->contact, 1);
	member(f, "  ", "report-id", m->report_id, 1);
	fputs("  \"policies\": [\n", f);
	for (size_t i = 0; i < r->np; i++)
		if (!strcmp(r->p[i].domain, domain))
			last = i;
	for (size_t i = 0; i < r->np; i++)
		if (!strcmp(r->p[i].domain, domain))
			policy_write(f, &r->p[i], i != last);
	fputs("  ]\n}\n", f);
	if (fflush(f) == EOF || ferror(f)) {
		if (!errno)
			errno = EIO;
		return -1;
	}
	return 0;
}
