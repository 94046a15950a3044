/* t.h -- the unit tests' few assertion macros.  A failed check prints where
 * and why and ends the test program with status 1. */
#ifndef MAILTLS_T_H
#define MAILTLS_T_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_FAIL(...) do { fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)
#define CHECK(cond) do { if (!(cond)) T_FAIL("check failed: %s", #cond); } while (0)
#define CHECK_EQ(a, b) do { long long _a = (long long)(a), _b = (long long)(b); \
	if (_a != _b) T_FAIL("%s == %lld, expected %s == %lld", #a, _a, #b, _b); } while (0)
#define CHECK_STR(a, b) do { const char *_a = (a), *_b = (b); \
	if (!_a || !_b || strcmp(_a, _b)) T_FAIL("%s is \"%s\", expected \"%s\"", #a, _a ? _a : "(null)", _b ? _b : "(null)"); } while (0)
/* CHECK_OK: a mailtls call on session |s| that must succeed. */
#define CHECK_OK(s, call) do { long long _r = (long long)(call); \
	if (_r < 0) T_FAIL("%s returned %lld: %s (%s)", #call, _r, mailtls_error(s), mailtls_errcode_name(mailtls_errcode(s))); } while (0)
#define CHECK_CFG_OK(c, call) do { long long _r = (long long)(call); \
	if (_r < 0) T_FAIL("%s returned %lld: %s", #call, _r, mailtls_config_error(c)); } while (0)
#define RUN(fn) do { fprintf(stderr, "-- %s\n", #fn); fn(); } while (0)
#endif
