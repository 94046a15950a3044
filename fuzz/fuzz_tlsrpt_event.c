/*
 * fuzz_tlsrpt_event.c -- tlsrpt-report's event-line parser
 * (examples/tlsrpt-report/eventline.c, compiled in) and the JSON it makes
 * of an event (report.c).
 *
 * Input: byte 0 chooses what the rest is.  Even: a line for event_parse.
 * Odd: nine field values separated by 0xff bytes (policy type, policy
 * domain, domain, MX host, address, sending IP, result, detail, policy),
 * written as qmail-remote's tlsrpt.c writes them (tlsrpt.h's escaping)
 * into a line with a time, and parsed.
 *
 * Checks (eventline.h): a line accepted is the only encoding of its
 * fields: they escape back to exactly the line; every field is
 * NUL-terminated within its bound.  A line written from values is
 * accepted exactly when the values are within their bounds, hold no NUL,
 * the policy type is one of three, the policy domain is not empty and the
 * result is known, and then it gives those values back.  The report of an
 * accepted event is a JSON text whose strings are closed, hold no raw
 * control byte and only escapes JSON knows, and whose brackets balance.
 * ISC license: see LICENSE.
 */
#include <ctype.h>
#include <string.h>

#include "eventline.h"
#include "fuzz.h"
#include "report.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	return 0;
}

/* tlsrpt.h's escaping: bytes outside 0x21..0x7e and '%' as %XX. */
static size_t escape(char *o, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x21 || c > 0x7e || c == '%') {
			o[k++] = '%';
			o[k++] = hex[c >> 4];
			o[k++] = hex[c & 15];
		} else {
			o[k++] = (char)c;
		}
	}
	return k;
}

static const char *fields_of(const struct event *e, int i)
{
	const char *f[] = { e->policy_type, e->policy_domain, e->domain, e->mx_host, e->addr, e->sending_ip,
		e->result, e->detail, e->policy };
	return f[i];
}

static const size_t bounds[9] = { 15, EV_NAME_MAX, EV_NAME_MAX, EV_NAME_MAX, EV_NAME_MAX, EV_NAME_MAX,
	EV_RESULT_MAX, EV_DETAIL_MAX, EV_POLICY_MAX };

/* The line of |e| again: its length in |out|. */
static size_t encode(char *out, const struct event *e)
{
	size_t k = (size_t)sprintf(out, "tlsrpt1\t%lld", e->time);
	for (int i = 0; i < 9; i++) {
		const char *f = fields_of(e, i);
		out[k++] = '\t';
		k += escape(out + k, f, strlen(f));
	}
	return k;
}

/* RFC 8259 as far as strings and nesting go: every string closed, no
 * byte below 0x20 or above 0x7e inside one, every escape one JSON knows,
 * brackets balanced; outside strings, printable ASCII and LF only, a
 * string opened only after { [ , or : and followed only by , : } or ]
 * (an unescaped quote inside a value breaks one or the other). */
static void json_syntax(const char *s, size_t len)
{
	int depth = 0, in = 0;
	char last = 0;   /* the last byte outside strings and blanks; '"' after a string */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		FUZZ_CHECK((c >= 0x20 && c < 0x7f) || (!in && c == '\n'), "raw byte 0x%02x in the JSON at %zu", c, i);
		if (!in && c != ' ' && c != '\n') {
			FUZZ_CHECK(last != '"' || strchr(",:}]", c), "%c after a string at %zu", c, i);
			FUZZ_CHECK(c != '"' || (last && strchr("{[,:", last)), "a string after %c at %zu", last, i);
		}
		if (in && c == '\\') {
			FUZZ_CHECK(i + 1 < len && s[i + 1] && strchr("\"\\/bfnrtu", s[i + 1]), "bad escape at %zu", i);
			if (s[++i] == 'u') {
				for (int k = 1; k <= 4; k++)
					FUZZ_CHECK(i + k < len && isxdigit((unsigned char)s[i + k]), "bad \\u escape at %zu", i);
				i += 4;
			}
		} else if (c == '"') {
			in = !in;
			last = '"';
		} else if (in) {
			continue;
		} else if (c != ' ' && c != '\n') {
			last = (char)c;
		}
		if (in || c == '"') {
			continue;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			FUZZ_CHECK(--depth >= 0, "unbalanced %c at %zu", c, i);
		}
	}
	FUZZ_CHECK(!in && depth == 0, "a string or bracket left open");
}

static void json_check(const struct event *e)
{
	struct report *r = report_new();
	struct report_meta m = { "org \"x\"", "c@x.test", "id", "2026-01-01T00:00:00Z", "2026-01-01T23:59:59Z" };
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	FUZZ_CHECK(r != NULL, "no report");
	FUZZ_CHECK(report_add(r, e) == 0, "report_add failed");
	FUZZ_CHECK(report_ndomains(r) == 1 && !strcmp(report_domain(r, 0), e->policy_domain), "domains");
	f = open_memstream(&buf, &len);
	FUZZ_CHECK(f != NULL, "open_memstream");
	FUZZ_CHECK(report_write(f, r, e->policy_domain, &m) == 0, "report_write failed");
	fclose(f);
	FUZZ_CHECK(len > 2 && buf[0] == '{' && buf[len - 2] == '}', "not a JSON object");
	json_syntax(buf, len);
	free(buf);
	report_free(r);
}

static void parse(const uint8_t *data, size_t size)
{
	static struct event e;
	static char again[4 * (EV_POLICY_MAX + EV_DETAIL_MAX + 8 * EV_NAME_MAX)];
	size_t n;
	memset(&e, 'Q', sizeof e);
	if (event_parse((const char *)data, size, &e) < 0)
		return;
	for (int i = 0; i < 9; i++)
		FUZZ_CHECK(strnlen(fields_of(&e, i), bounds[i] + 1) <= bounds[i], "field %d not terminated in bound", i);
	n = encode(again, &e);
	FUZZ_CHECK(n == size && !memcmp(again, data, size), "the fields escape back to another line (%zu/%zu bytes)",
	    n, size);
	json_check(&e);
}

static int valid_type(const char *t)
{
	return !strcmp(t, "sts") || !strcmp(t, "tlsa") || !strcmp(t, "no-policy-found");
}

static void roundtrip(const uint8_t *data, size_t size)
{
	static struct event e;
	static char line[4 * (EV_POLICY_MAX + EV_DETAIL_MAX + 8 * EV_NAME_MAX)];
	const char *v[9];
	size_t vl[9], k, off = 0;
	int ok = 1, i;
	for (i = 0; i < 9; i++) {
		const uint8_t *ff = memchr(data + off, 0xff, size - off);
		size_t end = i == 8 || !ff ? size : (size_t)(ff - data);
		v[i] = (const char *)data + off;
		vl[i] = end - off;
		off = end < size ? end + 1 : size;
	}
	k = (size_t)sprintf(line, "tlsrpt1\t1795861774");
	for (i = 0; i < 9; i++) {
		if (vl[i] > bounds[i] || memchr(v[i], 0, vl[i]))
			ok = 0;
		if (vl[i] > bounds[i])
			vl[i] = bounds[i] + 1;   /* still over its bound, within the buffer */
		line[k++] = '\t';
		k += escape(line + k, v[i], vl[i]);
	}
	if (ok) {
		char t[16], res[EV_RESULT_MAX + 1];
		memcpy(t, v[0], vl[0]);
		t[vl[0]] = 0;
		memcpy(res, v[6], vl[6]);
		res[vl[6]] = 0;
		ok = valid_type(t) && vl[1] > 0 && event_result_known(res);
	}
	FUZZ_CHECK((event_parse(line, k, &e) == 0) == ok, "written values %s", ok ? "refused" : "accepted");
	if (!ok)
		return;
	FUZZ_CHECK(e.time == 1795861774, "time %lld", e.time);
	for (i = 0; i < 9; i++)
		FUZZ_CHECK(strlen(fields_of(&e, i)) == vl[i] && !memcmp(fields_of(&e, i), v[i], vl[i]),
		    "field %d read back differently", i);
	json_check(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		roundtrip(data + 1, size - 1);
	else
		parse(data + 1, size - 1);
	return 0;
}
