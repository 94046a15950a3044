/*
 * fuzz_tcprules.c -- tcpserver-ssl's tcprules code (examples/tcpserver-ssl/
 * rules.c): the value parser rules_parse_value, and rules_lookup on a cdb
 * made from the input.
 *
 * Input: byte 0, the mode: 0 parse the rest as one cdb value; 1 the rest
 * is a cdb file, as is; 2 the rest is a list of records put in a valid cdb
 * (tinycdb's cdb_make).  Modes 1 and 2 first take the remote address, host
 * and info (a length byte and bytes each, 0xff: none; the address is never
 * none).  A record of mode 2: a byte k, then when k < 0x80 the key is
 * candidate number k % (number of candidates) of the lookup (so hits are
 * common), else a length byte and the key; then a 16-bit length and the
 * value.
 *
 * Checks: rules_parse_value agrees with the value grammar written in
 * rules.h (NUL-terminated records, "D" or "+VAR=value" with a non-empty
 * VAR; anything else EPROTO), and its env is the assignments in order;
 * rules_lookup returns the first key of tcpserver's order present in the
 * cdb (found here with cdb_find, key by key), with that key's value
 * parsed, or EPROTO for a bad value, or 0 when no key is there.
 * ISC license: see LICENSE.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cdb.h>

#include "fuzz.h"
#include "rules.h"

/* The grammar of a value, from rules.h. */
static int ref_value(const uint8_t *d, size_t len, int *deny, uint8_t *env, size_t *envlen)
{
	size_t i = 0;
	*deny = 0;
	*envlen = 0;
	if (len > RULES_VALUEMAX)
		return -1;
	while (i < len) {
		const uint8_t *z = memchr(d + i, 0, len - i);
		size_t rl;
		if (!z)
			return -1; /* unterminated last record */
		rl = (size_t)(z - (d + i));
		if (rl == 1 && d[i] == 'D') {
			*deny = 1;
		} else if (rl >= 3 && d[i] == '+' && d[i + 1] != '=' && memchr(d + i + 2, '=', rl - 2)) {
			memcpy(env + *envlen, d + i + 1, rl); /* VAR=value and its NUL */
			*envlen += rl;
		} else {
			return -1;
		}
		i += rl + 1;
	}
	return 0;
}

static void check_value(const uint8_t *d, size_t len, const struct rules_result *out, int rc, int e)
{
	static uint8_t env[RULES_VALUEMAX + 1];
	int deny;
	size_t envlen;
	int want = ref_value(d, len, &deny, env, &envlen);
	if (want < 0) {
		FUZZ_CHECK(rc == -1 && e == EPROTO, "value refused by the grammar: rc %d errno %d", rc, e);
		FUZZ_CHECK(!out->env && !out->deny && !out->envlen, "refused value left a result");
		return;
	}
	FUZZ_CHECK(rc == 0 || rc == 1, "value accepted by the grammar: rc %d errno %d", rc, e);
	FUZZ_CHECK(out->deny == deny, "deny %d, grammar %d", out->deny, deny);
	FUZZ_CHECK(out->envlen == envlen, "env of %zu bytes, grammar %zu", out->envlen, envlen);
	FUZZ_CHECK(envlen ? out->env && memcmp(out->env, env, envlen) == 0 : out->env == NULL, "env differs");
}

#define NCAND 600
struct cand {
	char *key;
	size_t len;
};

static char *dupn(const char *a, size_t n)
{
	char *p = malloc(n + 1);
	memcpy(p, a, n);
	p[n] = 0;
	return p;
}

/* tcpserver's order, from rules.h. */
static size_t candidates(const char *ip, const char *host, const char *info, struct cand *c)
{
	size_t n = 0, iplen = strlen(ip);
	char buf[1200];
#define ADD(s, l) (c[n].key = dupn((s), (l)), c[n].len = (l), n++)
	if (info) {
		ADD(buf, (size_t)snprintf(buf, sizeof buf, "%s@%s", info, ip));
		if (host)
			ADD(buf, (size_t)snprintf(buf, sizeof buf, "%s@=%s", info, host));
	}
	ADD(ip, iplen);
	if (host)
		ADD(buf, (size_t)snprintf(buf, sizeof buf, "=%s", host));
	for (size_t k = iplen; k > 0; k--)
		if (ip[k - 1] == '.' || ip[k - 1] == ':')
			ADD(ip, k);
	if (host) {
		for (const char *h = host; *h; h++)
			if (*h == '.')
				ADD(buf, (size_t)snprintf(buf, sizeof buf, "=%s", h));
		ADD("=", 1);
	}
	ADD("", 0);
#undef ADD
	return n;
}

static void lookup(int fd, const char *ip, const char *host, const char *info, struct cand *c, size_t nc)
{
	char path[64];
	struct rules_result out;
	struct cdb db;
	int rc, e, want = 0, inited = 0;
	size_t hit = 0;
	const uint8_t *val = NULL;
	unsigned vlen = 0;

	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	errno = 0;
	rc = rules_lookup(path, ip, host, info, &out);
	e = errno;
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "tcprules: %s %s %s: rc %d errno %d key \"%s\" deny %d env %zu bytes\n", ip,
		    host ? host : "-", info ? info : "-", rc, rc < 0 ? e : 0, out.key, out.deny, out.envlen);

	/* The reference: each candidate in turn, with tinycdb directly. */
	lseek(fd, 0, SEEK_SET);
	if (cdb_init(&db, fd) < 0) {
		want = -1;
	} else {
		inited = 1;
		for (hit = 0; hit < nc; hit++) {
			int r = cdb_find(&db, c[hit].key, (unsigned)c[hit].len);
			if (r < 0) {
				want = -1;
				break;
			}
			if (r > 0) {
				vlen = cdb_datalen(&db);
				val = cdb_getdata(&db);
				want = val ? 1 : -1;
				break;
			}
		}
	}
	if (want < 0) {
		FUZZ_CHECK(rc == -1, "a damaged cdb gave %d", rc);
	} else if (want == 0) {
		FUZZ_CHECK(rc == 0, "no key of the order in the cdb, lookup gave %d (errno %d)", rc, e);
		FUZZ_CHECK(!out.env && !out.deny && !out.key[0], "no hit left a result");
	} else {
		struct rules_result ref;
		int r = rules_parse_value((const char *)val, vlen, &ref), re = errno;
		check_value(val, vlen, &out, rc, e);
		if (r == 0) {
			size_t kl = c[hit].len < RULES_KEYMAX - 1 ? c[hit].len : RULES_KEYMAX - 1;
			FUZZ_CHECK(rc == 1, "hit on candidate %zu (\"%s\") but lookup gave %d", hit, c[hit].key, rc);
			FUZZ_CHECK(strlen(out.key) == kl && memcmp(out.key, c[hit].key, kl) == 0,
			    "matched key \"%s\", first in order is \"%s\"", out.key, c[hit].key);
			rules_result_free(&ref);
		} else {
			FUZZ_CHECK(rc == -1 && e == re, "bad value: lookup gave %d", rc);
		}
	}
	if (inited)
		cdb_free(&db);
	rules_result_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	unsigned mode = fz_u8(&f) % 3;
	char ipb[256], hostb[256], infob[256];
	const char *ip, *host, *info;
	static struct cand c[NCAND];
	size_t nc;
	int fd;

	if (mode == 0) {
		struct rules_result out;
		int rc;
		errno = 0;
		rc = rules_parse_value((const char *)f.p, f.n, &out);
		check_value(f.p, f.n, &out, rc, errno);
		rules_result_free(&out);
		return 0;
	}
	ip = fz_str(&f, ipb, sizeof ipb, 0);
	host = fz_str(&f, hostb, sizeof hostb, 1);
	info = fz_str(&f, infob, sizeof infob, 1);
	nc = candidates(ip, host, info, c);
	fd = memfd_create("fuzz-rules.cdb", MFD_CLOEXEC);
	FUZZ_CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
	if (mode == 1) {
		FUZZ_CHECK(write(fd, f.p, f.n) == (ssize_t)f.n, "write");
	} else {
		struct cdb_make cm;
		FUZZ_CHECK(cdb_make_start(&cm, fd) == 0, "cdb_make_start");
		while (f.n) {
			unsigned k = fz_u8(&f), vl;
			const uint8_t *key, *v;
			size_t kl, got;
			if (k < 0x80) {
				key = (const uint8_t *)c[k % nc].key;
				kl = c[k % nc].len;
			} else {
				key = fz_bytes(&f, fz_u8(&f), &kl);
			}
			vl = fz_u16(&f);
			v = fz_bytes(&f, vl, &got);
			FUZZ_CHECK(cdb_make_add(&cm, key, (unsigned)kl, v, (unsigned)got) == 0, "cdb_make_add");
		}
		FUZZ_CHECK(cdb_make_finish(&cm) == 0, "cdb_make_finish");
	}
	lookup(fd, ip, host, info, c, nc);
	close(fd);
	for (size_t i = 0; i < nc; i++)
		free(c[i].key);
	return 0;
}
