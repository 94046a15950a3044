/*
 * fuzz_escape.c -- mailtls_escape, and an environment block made with it
 * parsed back (the UCSPI-TLS / mailtls_env wire form,
 * "NAME=value\0...\0\0", an empty set "\0\0").
 *
 * Input: byte 0 chooses the size of a too-small output buffer; the rest is
 * a list of variables, each a length byte and a name, then a length byte
 * and a value (any bytes).  Names are made valid (A-Z, 0-9, _; not
 * starting with a digit; at least one byte); a later duplicate is dropped,
 * as mailtls_env never writes a name twice.  The whole rest is also
 * escaped as one value.
 *
 * Checks (mailtls.h, "mailtls_escape"): the size asked with out NULL; the
 * escaped value holds only bytes 0x20..0x7e, exactly the bytes below 0x20,
 * 0x7f and above, and backslash, are written \XX in uppercase hex, and it
 * unescapes to the input; a buffer one byte too small (or smaller) gives
 * -1 and a NUL-terminated prefix that never ends inside an escape, and
 * outlen 0 writes nothing.  The block parses back to the same names and
 * values in the same order.  mailtls_env before a handshake is "\0\0".
 * ISC license: see LICENSE.
 */
#include "fuzz.h"
#include "mailtls.h"

static struct mailtls_config *cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	cfg = mailtls_config_new();
	if (!cfg)
		abort();
	return 0;
}

/* Unescapes |e| (NUL-terminated) into |out|; returns the length, checking
 * the escaping is exactly the documented one. */
static size_t unescape(const char *e, uint8_t *out)
{
	size_t o = 0;
	for (const char *p = e; *p; p++) {
		unsigned char c = (unsigned char)*p;
		FUZZ_CHECK(c >= 0x20 && c <= 0x7e, "byte 0x%02x in an escaped value", c);
		if (c == '\\') {
			int hi = p[1] ? fz_hexval(p[1]) : -1, lo = hi >= 0 && p[2] ? fz_hexval(p[2]) : -1, v;
			FUZZ_CHECK(hi >= 0 && lo >= 0, "backslash not followed by two hex digits");
			FUZZ_CHECK(!(p[1] >= 'a' && p[1] <= 'f') && !(p[2] >= 'a' && p[2] <= 'f'), "lowercase hex");
			v = hi << 4 | lo;
			FUZZ_CHECK(v < 0x20 || v >= 0x7f || v == '\\', "byte 0x%02x escaped without need", v);
			out[o++] = (uint8_t)v;
			p += 2;
		} else {
			out[o++] = c;
		}
	}
	return o;
}

/* Escapes |in| fully and checks every documented property; returns the
 * escaped string (malloc'd). */
static char *check_escape(const uint8_t *in, size_t n, unsigned small)
{
	ssize_t need = mailtls_escape(NULL, 0, in, n), r;
	char *out, *part;
	uint8_t *back;
	size_t plen;

	FUZZ_CHECK(need >= 1 && (size_t)need >= n + 1 && (size_t)need <= 3 * n + 1, "size %zd for %zu bytes", need, n);
	out = malloc((size_t)need);
	r = mailtls_escape(out, (size_t)need, in, n);
	FUZZ_CHECK(r == need - 1, "returned %zd, size was %zd", r, need);
	FUZZ_CHECK(strlen(out) == (size_t)r, "length %zu, returned %zd", strlen(out), r);
	back = malloc(n ? n : 1);
	FUZZ_CHECK(unescape(out, back) == n && memcmp(back, in, n) == 0, "does not unescape to the input");
	free(back);

	/* Too small: -1, a prefix ending at an escape boundary, NUL-terminated. */
	plen = (size_t)need > 1 ? small % ((size_t)need - 1) + 1 : 0; /* 1 .. need-1 */
	if (plen) {
		part = malloc(plen);
		r = mailtls_escape(part, plen, in, n);
		FUZZ_CHECK(r == -1, "returned %zd into %zu of %zd bytes", r, plen, need);
		FUZZ_CHECK(memchr(part, 0, plen) != NULL, "a cut value not NUL-terminated");
		r = (ssize_t)strlen(part);
		FUZZ_CHECK(memcmp(part, out, (size_t)r) == 0, "a cut value is not a prefix");
		for (ssize_t i = r - 1; i >= 0 && i >= r - 2; i--)
			FUZZ_CHECK(part[i] != '\\', "a cut value ends inside an escape");
		free(part);
	}
	{
		char canary = 'C';
		FUZZ_CHECK(mailtls_escape(&canary, 0, in, n) == -1 && canary == 'C', "outlen 0 wrote or succeeded");
	}
	return out;
}

struct var {
	char name[256];
	const uint8_t *val;
	size_t vlen;
	char *esc;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct var vars[256];
	struct fz f = { data, size };
	unsigned small = fz_u8(&f);
	size_t nvars = 0, blen = 0, got;
	char *block, *p, *whole;
	struct mailtls *s;
	char env[4];

	whole = check_escape(f.p, f.n, small);
	free(whole);

	while (f.n && nvars < 256) {
		struct var *v = &vars[nvars];
		size_t nl = fz_u8(&f), dup = 0;
		const uint8_t *np = fz_bytes(&f, nl, &got);
		size_t i;
		for (i = 0; i < got; i++) {
			unsigned c = np[i] % 37;
			v->name[i] = (char)(c < 26 ? 'A' + c : c < 36 ? '0' + (c - 26) : '_');
		}
		if (i == 0 || (v->name[0] >= '0' && v->name[0] <= '9'))
			v->name[i == 0 ? i++ : 0] = 'V';
		v->name[i] = 0;
		v->vlen = fz_u8(&f);
		v->val = fz_bytes(&f, v->vlen, &v->vlen);
		for (size_t k = 0; k < nvars; k++)
			if (strcmp(vars[k].name, v->name) == 0)
				dup = 1;
		if (dup)
			continue;
		v->esc = check_escape(v->val, v->vlen, small + (unsigned)nvars);
		blen += strlen(v->name) + 1 + strlen(v->esc) + 1;
		nvars++;
	}

	/* The block, as mailtls_env writes it. */
	block = malloc(blen + 2);
	p = block;
	for (size_t i = 0; i < nvars; i++)
		p += sprintf(p, "%s=%s", vars[i].name, vars[i].esc) + 1;
	if (!nvars)
		*p++ = 0;
	*p++ = 0;
	/* Parsed back as a program reads its environment. */
	{
		size_t i = 0, off = 0, total = (size_t)(p - block);
		while (off < total && block[off]) {
			const char *e = block + off, *eq = strchr(e, '=');
			uint8_t val[256];
			size_t n;
			FUZZ_CHECK(i < nvars, "more variables parsed than written");
			FUZZ_CHECK(eq && (size_t)(eq - e) == strlen(vars[i].name) && memcmp(e, vars[i].name, (size_t)(eq - e)) == 0,
			    "variable %zu: name not parsed back", i);
			n = unescape(eq + 1, val);
			FUZZ_CHECK(n == vars[i].vlen && memcmp(val, vars[i].val, n) == 0, "variable %s: value not parsed back",
			    vars[i].name);
			off += strlen(e) + 1;
			i++;
		}
		FUZZ_CHECK(i == nvars, "%zu variables parsed, %zu written", i, nvars);
		FUZZ_CHECK(off + 1 == total || (nvars == 0 && total == 2), "block does not end where it should");
	}
	free(block);
	for (size_t i = 0; i < nvars; i++)
		free(vars[i].esc);

	/* The real block before any handshake: the empty set. */
	s = mailtls_client_mem(cfg, NULL);
	FUZZ_CHECK(s, "mailtls_client_mem");
	FUZZ_CHECK(mailtls_env(s, NULL, 0) == 2, "empty block size");
	FUZZ_CHECK(mailtls_env(s, env, 1) == -1 && mailtls_errcode(s) == MAILTLS_E_USAGE, "too small a buffer");
	FUZZ_CHECK(mailtls_env(s, env, sizeof env) == 2 && env[0] == 0 && env[1] == 0, "empty block");
	mailtls_free(s);
	return 0;
}
