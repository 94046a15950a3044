/*
 * fuzz_tlsa.c -- mailtls_tlsa_parse (TLSA records in presentation form,
 * "3 1 1 <hex>") and mailtls_set_dane on what it reads.
 *
 * Input: byte 0 chooses the size of the data buffer (0..255; 255 means
 * 2048); the rest is the text, parsed with its exact length.
 *
 * Checks (mailtls.h, "mailtls_tlsa_parse", "mailtls_set_dane"): a record
 * read has fields 0..255, 1..buflen data bytes in the caller's buffer, and
 * was made only of digits, blanks, hex and a final CR LF; written back as
 * "U S M <lowercase hex>" it reads back the same; a failure says EINVAL or
 * ENOSPC, ENOSPC only when the data really is longer than the buffer.
 * mailtls_set_dane on a memory client with the record returns 1 exactly
 * when the record is usable as documented (usage 2 or 3, selector 0 or 1,
 * matching type 0 with data, 1 with 32 bytes, 2 with 64), else 0; a second
 * call is a usage error.
 * ISC license: see LICENSE.
 */
#include <errno.h>

#include "fuzz.h"
#include "mailtls.h"

static struct mailtls_config *cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	cfg = mailtls_config_new();
	if (!cfg)
		abort();
	return 0;
}

static int usable(const struct mailtls_tlsa *r)
{
	if (r->usage < 2 || r->usage > 3 || r->selector > 1)
		return 0;
	return (r->mtype == 0 && r->len > 0) || (r->mtype == 1 && r->len == 32) || (r->mtype == 2 && r->len == 64);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char buf[2048], buf2[2048];
	static char text[2048 * 2 + 64];
	struct fz f = { data, size };
	unsigned b = fz_u8(&f);
	size_t buflen = b == 255 ? sizeof buf : b, hexdigits = 0;
	struct mailtls_tlsa r, r2;
	struct mailtls *s;
	int rc, n;

	memset(&r, 0x5a, sizeof r);
	errno = 0;
	rc = mailtls_tlsa_parse((const char *)f.p, f.n, &r, buf, buflen);
	for (size_t i = 0; i < f.n; i++)
		hexdigits += fz_hexval(f.p[i]) >= 0;
	if (rc != 0) {
		FUZZ_CHECK(rc == -1, "returned %d", rc);
		FUZZ_CHECK(errno == EINVAL || errno == ENOSPC, "errno %d", errno);
		/* ENOSPC: more data than the buffer, so more hex than its size. */
		FUZZ_CHECK(errno != ENOSPC || hexdigits > 2 * buflen, "ENOSPC with %zu hex digits for %zu bytes",
		    hexdigits, buflen);
		return 0;
	}
	FUZZ_CHECK(r.usage >= 0 && r.usage <= 255 && r.selector >= 0 && r.selector <= 255 &&
	    r.mtype >= 0 && r.mtype <= 255, "fields %d %d %d", r.usage, r.selector, r.mtype);
	FUZZ_CHECK(r.data == buf && r.len >= 1 && r.len <= buflen, "data %zu bytes of %zu", r.len, buflen);
	for (size_t i = 0; i < f.n; i++) {
		uint8_t c = f.p[i];
		FUZZ_CHECK(fz_hexval(c) >= 0 || c == ' ' || c == '\t' || c == '\r' || c == '\n',
		    "byte 0x%02x in a record read", c);
	}
	n = snprintf(text, sizeof text, "%d %d %d ", r.usage, r.selector, r.mtype);
	for (size_t i = 0; i < r.len; i++)
		n += snprintf(text + n, sizeof text - (size_t)n, "%02x", buf[i]);
	FUZZ_CHECK(mailtls_tlsa_parse(text, (size_t)n, &r2, buf2, sizeof buf2) == 0, "\"%s\" not read back", text);
	FUZZ_CHECK(r2.usage == r.usage && r2.selector == r.selector && r2.mtype == r.mtype && r2.len == r.len &&
	    !memcmp(buf, buf2, r.len), "\"%s\" read back differently", text);

	s = mailtls_client_mem(cfg, "mx.example");
	FUZZ_CHECK(s, "mailtls_client_mem");
	rc = mailtls_set_dane(s, &r, 1, NULL, 0);
	FUZZ_CHECK(rc == usable(&r), "mailtls_set_dane returned %d for %d %d %d (%zu bytes): %s", rc, r.usage,
	    r.selector, r.mtype, r.len, mailtls_error(s));
	FUZZ_CHECK(mailtls_dane_result(s, NULL) == MAILTLS_DANE_UNCHECKED, "status before the handshake");
	FUZZ_CHECK(mailtls_set_dane(s, &r, 1, NULL, 0) == -1 && mailtls_errcode(s) == MAILTLS_E_USAGE, "second call");
	mailtls_free(s);
	return 0;
}
