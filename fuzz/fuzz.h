/*
 * fuzz.h -- what the fuzz targets share: a check that aborts with a message
 * (so that libFuzzer, and the standalone driver under ctest, report it),
 * and a reader that takes structured values from the fuzz input.
 * ISC license: see LICENSE.
 */
#ifndef MAILTLS_FUZZ_H
#define MAILTLS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...)                                                  \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz: %s:%d: check failed: %s: ",   \
			    __FILE__, __LINE__, #cond);                        \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
			abort();                                               \
		}                                                              \
	} while (0)

/* A cursor over the input: each take returns 0 (or an empty span) once the
 * input is used up, never fails. */
struct fz {
	const uint8_t *p;
	size_t n;
};

static inline unsigned fz_u8(struct fz *f)
{
	if (!f->n)
		return 0;
	f->n--;
	return *f->p++;
}

static inline unsigned fz_u16(struct fz *f)
{
	unsigned hi = fz_u8(f);
	return hi << 8 | fz_u8(f);
}

/* fz_bytes takes up to |want| bytes; *got says how many. */
static inline const uint8_t *fz_bytes(struct fz *f, size_t want, size_t *got)
{
	const uint8_t *p = f->p;
	if (want > f->n)
		want = f->n;
	f->p += want;
	f->n -= want;
	*got = want;
	return p;
}

/* fz_str takes a length byte and that many bytes as a C string (NULs in
 * it become 'x') into |out| of |cap| bytes; a length byte of 0xff gives
 * NULL when |nullable|. */
static inline const char *fz_str(struct fz *f, char *out, size_t cap, int nullable)
{
	size_t want = fz_u8(f), got;
	const uint8_t *p;
	if (nullable && want == 0xff)
		return NULL;
	if (want > cap - 1)
		want = cap - 1;
	p = fz_bytes(f, want, &got);
	for (size_t i = 0; i < got; i++)
		out[i] = p[i] ? (char)p[i] : 'x';
	out[got] = 0;
	return out;
}

static inline int fz_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

#endif
