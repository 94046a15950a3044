/*
 * test_rules.c -- examples/tcpserver-ssl/rules.c, the tcprules cdb lookup.
 *
 * The cdbs are made by the real tcprules (Debian's ucspi-tcp), or with
 * tinycdb's cdb_make for what that tcprules cannot write (IPv6 keys: the
 * IPv4 build splits the line at the first ':') and for damaged values.
 * When tcprulescheck is installed, every IPv4 lookup is also asked of it:
 * it runs ucspi-tcp's own rules() and prints the key that matched.
 *
 * What was checked against ucspi-tcp 0.88 (tcprules, tcprulescheck,
 * tcpserver -x with a fake DNS and identd; the IPv6 build's tcprulescheck
 * from ucspi-tcp-ipv6) and is pinned down here:
 *  - value: "D\0" first when the rule says deny, then "+VAR=value\0" per
 *    assignment in order; "allow" alone is the empty value; keys are the
 *    addresses as written (no case folding), ranges expanded by tcprules.
 *  - order, first hit wins: info@ip, info@=host, ip, =host, the ip's
 *    prefixes ending in '.' (IPv6 build: or ':', down to ":"), longest
 *    first, =.suffix for each '.' of host left to right, "=", "".  The
 *    info@ keys only with info; the = keys only with host.
 *  - tcpserver sets VAR= (empty) for VAR="", splits at the first '='.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cdb.h>

#include "testutil.h"
#include "../../examples/tcpserver-ssl/rules.c"

static char dir[256];
static char cdb[512];
static int have_check;   /* tcprulescheck is there */

/* tcprules compiles |text| into cdb, as an admin would. */
static void tcprules(const char *text)
{
	char src[600], cmd[2048];
	FILE *f;

	snprintf(src, sizeof src, "%s/rules.txt", dir);
	CHECK((f = fopen(src, "w")));
	CHECK(fputs(text, f) >= 0);
	CHECK(fclose(f) == 0);
	snprintf(cmd, sizeof cmd, "tcprules %s %s/rules.tmp < %s", cdb, dir, src);
	if (system(cmd) != 0)
		T_FAIL("tcprules failed on:\n%s", text);
}

struct kv {
	const char *k;
	const char *v;
	size_t vlen;
};
#define KV(k, v) { k, v, sizeof v - 1 }

/* cdbmake writes |n| records into |path| (by rename, as tcprules does). */
static void cdbmake(const char *path, const struct kv *kv, size_t n)
{
	struct cdb_make cm;
	char tmp[600];
	size_t i;
	int fd;

	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	CHECK((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0);
	CHECK(cdb_make_start(&cm, fd) == 0);
	for (i = 0; i < n; i++)
		CHECK(cdb_make_add(&cm, kv[i].k, (unsigned)strlen(kv[i].k), kv[i].v, (unsigned)kv[i].vlen) == 0);
	CHECK(cdb_make_finish(&cm) == 0);
	CHECK(close(fd) == 0);
	CHECK(rename(tmp, path) == 0);
}

/* check_key asks tcprulescheck which key ucspi-tcp's rules() picks; NULL: none. */
static char *check_key(const char *ip, const char *host, const char *info)
{
	static char line[4096];
	int p[2], st;
	pid_t pid;
	FILE *f;

	CHECK(pipe(p) == 0);
	CHECK((pid = fork()) >= 0);
	if (!pid) {
		dup2(p[1], 1);
		close(p[0]);
		setenv("TCPREMOTEIP", ip, 1);
		if (host) setenv("TCPREMOTEHOST", host, 1); else unsetenv("TCPREMOTEHOST");
		if (info) setenv("TCPREMOTEINFO", info, 1); else unsetenv("TCPREMOTEINFO");
		execlp("tcprulescheck", "tcprulescheck", cdb, (char *)0);
		_exit(127);
	}
	close(p[1]);
	CHECK((f = fdopen(p[0], "r")));
	if (!fgets(line, sizeof line, f))
		line[0] = 0;
	while (fgetc(f) != EOF)
		;
	fclose(f);
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	if (!strcmp(line, "default:\n"))
		return NULL;
	if (strncmp(line, "rule ", 5) || strlen(line) < 7)
		T_FAIL("tcprulescheck said \"%s\"", line);
	line[strlen(line) - 2] = 0;   /* ":\n" */
	return line + 5;
}

/* look runs rules_lookup on cdb; with tcprulescheck, an IPv4 query must
 * give the same key as ucspi-tcp's own lookup. */
static int look(const char *ip, const char *host, const char *info, struct rules_result *rr)
{
	int r = rules_lookup(cdb, ip, host, info, rr);
	if (r >= 0 && have_check && !strchr(ip, ':') && strlen(rr->key) < RULES_KEYMAX - 1) {
		const char *k = check_key(ip, host, info);
		if (r == 0 && k)
			T_FAIL("%s %s %s: no match, tcprulescheck matched \"%s\"", ip, host, info, k);
		if (r == 1 && (!k || strcmp(k, rr->key)))
			T_FAIL("%s %s %s: matched \"%s\", tcprulescheck \"%s\"", ip, host, info, rr->key, k ? k : "(none)");
	}
	return r;
}

/* expect: the lookup matches |key|, with |deny| and the env block |env|. */
#define EXPECT(ip, host, info, key, deny, env) expect(__LINE__, ip, host, info, key, deny, env, sizeof env - 1)
static void expect(int line, const char *ip, const char *host, const char *info,
	const char *key, int deny, const char *env, size_t envlen)
{
	struct rules_result rr;
	int r = look(ip, host, info, &rr);
	if (r != 1)
		T_FAIL("line %d: %s %s %s: rules_lookup gave %d (%s)", line, ip, host, info, r, strerror(errno));
	if (strcmp(rr.key, key))
		T_FAIL("line %d: %s %s %s: matched \"%s\", expected \"%s\"", line, ip, host, info, rr.key, key);
	if (rr.deny != deny)
		T_FAIL("line %d: deny %d, expected %d", line, rr.deny, deny);
	if (!envlen ? rr.env || rr.envlen : rr.envlen != envlen || memcmp(rr.env, env, envlen))
		T_FAIL("line %d: key \"%s\": env of %zu bytes not the expected %zu", line, key, rr.envlen, envlen);
	rules_result_free(&rr);
	CHECK(!rr.env && !rr.envlen && !rr.deny && !rr.key[0]);
}

static void expect_none(const char *ip, const char *host, const char *info)
{
	struct rules_result rr;
	int r = look(ip, host, info, &rr);
	if (r != 0)
		T_FAIL("%s %s %s: rules_lookup gave %d (key \"%s\"), expected no match", ip, host, info, r, rr.key);
	CHECK(!rr.env && !rr.deny && !rr.key[0]);
}

static void expect_error(const char *path, const char *ip, int err)
{
	struct rules_result rr;
	errno = 0;
	CHECK_EQ(rules_lookup(path, ip, "h.example", "joe", &rr), -1);
	if (errno != err)
		T_FAIL("%s: errno %d (%s), expected %d (%s)", path, errno, strerror(errno), err, strerror(err));
	CHECK(!rr.env && !rr.deny && !rr.key[0]);
	rules_result_free(&rr);
}

/* ------------------------------------------------------------------ */

/* What tcprules writes, read back with tinycdb directly. */
static void raw_is(const char *key, const char *val, size_t vlen)
{
	struct cdb c;
	int fd;

	CHECK((fd = open(cdb, O_RDONLY)) >= 0);
	CHECK(cdb_init(&c, fd) == 0);
	if (!val) {
		if (cdb_find(&c, key, (unsigned)strlen(key)) != 0)
			T_FAIL("key \"%s\" is in the cdb", key);
	} else {
		if (cdb_find(&c, key, (unsigned)strlen(key)) != 1)
			T_FAIL("key \"%s\" is not in the cdb", key);
		if (cdb_datalen(&c) != vlen || memcmp(cdb_getdata(&c), val, vlen))
			T_FAIL("key \"%s\": value of %u bytes is not the expected %zu", key, cdb_datalen(&c), vlen);
	}
	cdb_free(&c);
	close(fd);
}
#define RAW(k, v) raw_is(k, v, sizeof v - 1)
#define ABSENT(k) raw_is(k, NULL, 0)

static void test_format(void)
{
	tcprules("# comment\n"
		"1.2.3.4:allow,X=\"y\",Z=\"\"\n"
		":deny\n"
		"10.2-3.:allow,R=\"range\"\n"
		"=host.example:deny\n"
		"=.example.org:allow,A=\"1\"\n"
		"joe@1.2.3.4:deny,B='q,:=x\"'\n"
		"5.6.7.8:allow\n"
		"1.2.3.37-40:allow,Y=/a b/\n"
		"=Mixed.Example:allow\n");
	RAW("1.2.3.4", "+X=y\0+Z=\0");
	RAW("", "D\0");
	RAW("10.2.", "+R=range\0");
	RAW("10.3.", "+R=range\0");
	ABSENT("10.2-3.");
	ABSENT("10.4.");
	RAW("=host.example", "D\0");
	RAW("=.example.org", "+A=1\0");
	RAW("joe@1.2.3.4", "D\0+B=q,:=x\"\0");
	RAW("5.6.7.8", "");
	RAW("1.2.3.37", "+Y=a b\0");
	RAW("1.2.3.40", "+Y=a b\0");
	ABSENT("1.2.3.36");
	ABSENT("1.2.3.41");
	RAW("=Mixed.Example", "");
	ABSENT("=mixed.example");
	ABSENT("# comment");

	/* and what the lookup makes of it */
	EXPECT("1.2.3.4", NULL, NULL, "1.2.3.4", 0, "X=y\0Z=\0");
	EXPECT("1.2.3.4", NULL, "joe", "joe@1.2.3.4", 1, "B=q,:=x\"\0");
	EXPECT("10.3.9.9", NULL, NULL, "10.3.", 0, "R=range\0");
	EXPECT("10.4.9.9", NULL, NULL, "", 1, "");
	EXPECT("1.2.3.39", NULL, NULL, "1.2.3.39", 0, "Y=a b\0");
	EXPECT("5.6.7.8", NULL, NULL, "5.6.7.8", 0, "");
	EXPECT("9.9.9.9", "host.example", NULL, "=host.example", 1, "");
	EXPECT("9.9.9.9", "mx.example.org", NULL, "=.example.org", 0, "A=1\0");
	EXPECT("9.9.9.9", "mixed.example", NULL, "", 1, "");   /* keys are not case folded */
	EXPECT("9.9.9.9", "Mixed.Example", NULL, "=Mixed.Example", 0, "");
}

/* order: the keys are all in the cdb; each lookup must hit want[i], which is
 * then removed from the cdb; after the last one, nothing (the rest of keys
 * are decoys that must never match).  Value of each key: +HIT=key. */
static void order(const char *ip, const char *host, const char *info,
	const char *const *keys, const char *const *want)
{
	const char *left[64];
	size_t nleft = 0, i, j;
	char env[600];

	for (i = 0; keys[i]; i++)
		left[nleft++] = keys[i];
	for (i = 0;; i++) {
		if (!strchr(ip, ':')) {
			char text[8192] = "";
			for (j = 0; j < nleft; j++)
				snprintf(text + strlen(text), sizeof text - strlen(text), "%s:allow,HIT=\"%s\"\n", left[j], left[j]);
			tcprules(text);
		} else {
			/* tcprules (IPv4 build) cannot write keys with ':' */
			static char vals[64][300];
			struct kv kv[64];
			for (j = 0; j < nleft; j++) {
				int n = snprintf(vals[j], sizeof vals[j], "+HIT=%s", left[j]);
				kv[j].k = left[j];
				kv[j].v = vals[j];
				kv[j].vlen = (size_t)n + 1;
			}
			cdbmake(cdb, kv, nleft);
		}
		if (!want[i])
			break;
		snprintf(env, sizeof env, "HIT=%s", want[i]);
		expect(__LINE__, ip, host, info, want[i], 0, env, strlen(env) + 1);
		for (j = 0; j < nleft && strcmp(left[j], want[i]); j++)
			;
		CHECK(j < nleft);
		left[j] = left[--nleft];
	}
	expect_none(ip, host, info);
}

static const char *const keys4[] = {
	"joe@1.2.3.4", "joe@=a.b.example.org", "1.2.3.4", "=a.b.example.org", "1.2.3.", "1.2.", "1.",
	"=.b.example.org", "=.example.org", "=.org", "=", "",
	/* decoys */
	"1", "1.2", "1.2.3", "1.2.3.4.", "=a.b.example", "=a", "=org", "=example.org", "=.a.b.example.org",
	"joe@", "joe", "joe@1.2.3.", "joe@=.example.org", "Joe@1.2.3.4", "=A.b.example.org", "@1.2.3.4", NULL
};

static void test_order_ipv4(void)
{
	static const char *const all[] = { "joe@1.2.3.4", "joe@=a.b.example.org", "1.2.3.4", "=a.b.example.org",
		"1.2.3.", "1.2.", "1.", "=.b.example.org", "=.example.org", "=.org", "=", "", NULL };
	static const char *const host[] = { "1.2.3.4", "=a.b.example.org", "1.2.3.", "1.2.", "1.",
		"=.b.example.org", "=.example.org", "=.org", "=", "", NULL };
	static const char *const info[] = { "joe@1.2.3.4", "1.2.3.4", "1.2.3.", "1.2.", "1.", "", NULL };
	static const char *const none[] = { "1.2.3.4", "1.2.3.", "1.2.", "1.", "", NULL };

	order("1.2.3.4", "a.b.example.org", "joe", keys4, all);   /* -hr */
	order("1.2.3.4", "a.b.example.org", NULL, keys4, host);   /* -hR */
	order("1.2.3.4", NULL, "joe", keys4, info);               /* -Hr */
	order("1.2.3.4", NULL, NULL, keys4, none);                /* -HR */
}

/* The IPv6 patch's rules() also cuts the address at ':'; checked with the
 * ucspi-tcp-ipv6 package's tcprulescheck. */
static void test_order_ipv6(void)
{
	static const char *const keys[] = {
		"joe@2001:db8::1", "joe@=h.example", "2001:db8::1", "=h.example", "2001:db8::", "2001:db8:",
		"2001:", "=.example", "=", "",
		/* decoys */
		":", "::", "2001", "2001:db8", "2001:d", "2001:db8:0:", "2001:db8::1:", "2001:0db8::", NULL
	};
	static const char *const want[] = { "joe@2001:db8::1", "joe@=h.example", "2001:db8::1", "=h.example",
		"2001:db8::", "2001:db8:", "2001:", "=.example", "=", "", NULL };
	static const char *const keys_lo[] = { "::1", "::", ":", "", "0:", "::1:", "1", NULL };
	static const char *const want_lo[] = { "::1", "::", ":", "", NULL };
	static const char *const keys_ll[] = { "fe80::1%eth0", "fe80::", "fe80:", "", "fe80::1%", "fe80::1", NULL };
	static const char *const want_ll[] = { "fe80::1%eth0", "fe80::", "fe80:", "", NULL };

	order("2001:db8::1", "h.example", "joe", keys, want);
	order("::1", NULL, NULL, keys_lo, want_lo);
	order("fe80::1%eth0", NULL, NULL, keys_ll, want_ll);
}

static void test_deny_and_values(void)
{
	tcprules("127.0.0.2:deny\n"
		"1.1.1.1:deny,X=\"1\"\n"
		"1.2.3.4:allow,A=\"\",B=\"a,b:c=d\",C='say \"hi\"',D=/x'y/,E=\"  sp  \",F=|=|,G=\"#\"\n"
		"1.1.1.2:allow,,X=\"odd\"\n"
		"1.1.1.3:allow,A=\"1\",A=\"2\"\n"
		"5.6.7.8:allow,N=\"first\"\n"
		"5.6.7.8:deny\n"
		"=.org.:allow,T=\"trailing dot\"\n");
	EXPECT("127.0.0.2", NULL, NULL, "127.0.0.2", 1, "");
	EXPECT("1.1.1.1", NULL, NULL, "1.1.1.1", 1, "X=1\0");
	EXPECT("1.2.3.4", NULL, NULL, "1.2.3.4", 0, "A=\0B=a,b:c=d\0C=say \"hi\"\0D=x'y\0E=  sp  \0F==\0G=#\0");
	EXPECT("1.1.1.2", NULL, NULL, "1.1.1.2", 0, ",X=odd\0");     /* tcprules takes ",X" as the name */
	EXPECT("1.1.1.3", NULL, NULL, "1.1.1.3", 0, "A=1\0A=2\0");   /* applied in order: A=2 */
	EXPECT("5.6.7.8", NULL, NULL, "5.6.7.8", 0, "N=first\0");    /* the first of two equal keys */
	EXPECT("9.9.9.9", "x.org.", NULL, "=.org.", 0, "T=trailing dot\0");
	expect_none("9.9.9.9", "x.org", NULL);
	expect_none("127.0.0.3", NULL, NULL);
	expect_none("", NULL, NULL);

	/* the empty key catches everything else, "=" only when there is a host */
	tcprules("=:allow,H=\"any host\"\n:deny\n");
	EXPECT("9.9.9.9", NULL, NULL, "", 1, "");
	EXPECT("9.9.9.9", "", NULL, "=", 0, "H=any host\0");
	EXPECT("9.9.9.9", "x.example", "joe", "=", 0, "H=any host\0");
	EXPECT("", NULL, NULL, "", 1, "");
}

/* Long names: the lookup uses the whole key, out->key keeps the start. */
static void test_long(void)
{
	char info[301], host[701], text[4096], key[1100];
	struct rules_result rr;

	memset(info, 'i', sizeof info - 1);
	info[sizeof info - 1] = 0;
	memset(host, 'h', sizeof host - 1);
	host[sizeof host - 1] = 0;
	memcpy(host + 600, ".example", 8);
	snprintf(key, sizeof key, "%s@=%s", info, host);
	snprintf(text, sizeof text, "%s:allow,L=\"long\"\n%s@=%.*s:deny\n", key, info, 600, host);
	tcprules(text);
	CHECK_EQ(rules_lookup(cdb, "1.2.3.4", host, info, &rr), 1);
	CHECK_EQ(strlen(rr.key), RULES_KEYMAX - 1);
	CHECK(!strncmp(rr.key, key, RULES_KEYMAX - 1));
	CHECK(rr.envlen == 7 && !memcmp(rr.env, "L=long", 7));
	rules_result_free(&rr);
	host[600] = 0;
	CHECK_EQ(rules_lookup(cdb, "1.2.3.4", host, info, &rr), 1);
	CHECK(rr.deny);
	rules_result_free(&rr);
}

/* A rules file replaced by rename takes effect at the next lookup. */
static void test_replace(void)
{
	char other[600];
	static const struct kv kv[] = { KV("1.2.3.", "+NEW=1\0") };

	tcprules("1.2.3.4:deny\n");
	EXPECT("1.2.3.4", NULL, NULL, "1.2.3.4", 1, "");
	tcprules("1.2.3.4:allow,V=\"2\"\n");   /* tcprules renames its tmp onto the cdb */
	EXPECT("1.2.3.4", NULL, NULL, "1.2.3.4", 0, "V=2\0");
	snprintf(other, sizeof other, "%s/other.cdb", dir);
	cdbmake(other, kv, 1);
	CHECK(rename(other, cdb) == 0);
	EXPECT("1.2.3.4", NULL, NULL, "1.2.3.", 0, "NEW=1\0");
	CHECK(unlink(cdb) == 0);
	expect_error(cdb, "1.2.3.4", ENOENT);
}

static void test_parse_value(void)
{
	struct rules_result rr;
	static char big[RULES_VALUEMAX + 2];
	static const char *const bad[] = { "+X=1", "\0", "Q\0", "+X\0", "+=x\0", "+==x\0", "+\0", "Dx\0",
		"D\0\0", "+A=1\0junk", "D", "allow\0", "-X\0", "+A=1\0\0" };
	static const size_t badlen[] = { 4, 1, 2, 3, 4, 5, 2, 3, 3, 9, 1, 6, 3, 6 };
	size_t i;

	CHECK_EQ(rules_parse_value("", 0, &rr), 0);
	CHECK(!rr.deny && !rr.env && !rr.envlen);
	CHECK_EQ(rules_parse_value("D\0", 2, &rr), 0);
	CHECK(rr.deny && !rr.env);
	CHECK_EQ(rules_parse_value("+A=b=c\0D\0+B=\0", 13, &rr), 0);   /* D anywhere, as tcpserver */
	CHECK(rr.deny && rr.envlen == 9 && !memcmp(rr.env, "A=b=c\0B=\0", 9));
	rules_result_free(&rr);
	for (i = 0; i < sizeof bad / sizeof *bad; i++) {
		errno = 0;
		if (rules_parse_value(bad[i], badlen[i], &rr) != -1 || errno != EPROTO)
			T_FAIL("bad value %zu accepted", i);
		CHECK(!rr.deny && !rr.env && !rr.envlen);
	}
	/* the bound */
	memset(big, 'v', sizeof big);
	memcpy(big, "+V=", 3);
	big[RULES_VALUEMAX - 1] = 0;
	CHECK_EQ(rules_parse_value(big, RULES_VALUEMAX, &rr), 0);
	CHECK_EQ(rr.envlen, RULES_VALUEMAX - 1);
	rules_result_free(&rr);
	big[RULES_VALUEMAX - 1] = 'v';
	big[RULES_VALUEMAX] = 0;
	errno = 0;
	CHECK_EQ(rules_parse_value(big, RULES_VALUEMAX + 1, &rr), -1);
	CHECK_EQ(errno, EPROTO);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd;
	CHECK((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0);
	CHECK(write(fd, data, len) == (ssize_t)len);
	CHECK(close(fd) == 0);
}

/* Files that are not cdbs, and cdbs with values tcprules never writes. */
static void test_garbage(void)
{
	static unsigned char buf[1 << 16], good[1 << 16];
	static const size_t sizes[] = { 1, 100, 2047, 2048, 2056, 4096, 65536 };
	static const struct kv bad[] = { KV("1.2.3.4", "+X=1"), KV("1.2.3.", "+NOEQ\0"), KV("1.2.", "QJUNK\0") };
	struct rules_result rr;
	char path[600];
	size_t i, goodlen;
	unsigned seed;
	int fd, r;
	ssize_t n;

	snprintf(path, sizeof path, "%s/garbage", dir);
	write_file(path, "", 0);
	expect_error(path, "1.2.3.4", EPROTO);
	write_file(path, "1.2.3.4:deny\n", 13);   /* a rules source, not compiled */
	expect_error(path, "1.2.3.4", EPROTO);
	snprintf(path, sizeof path, "%s/fifo", dir);   /* opened without waiting for a writer */
	CHECK(mkfifo(path, 0600) == 0);
	alarm(20);
	expect_error(path, "1.2.3.4", EPROTO);
	alarm(0);
	CHECK(unlink(path) == 0);
	snprintf(path, sizeof path, "%s/garbage", dir);
	errno = 0;                                  /* a directory: an error, not ENOENT */
	CHECK_EQ(rules_lookup(dir, "1.2.3.4", NULL, NULL, &rr), -1);
	CHECK(errno && errno != ENOENT);
	errno = 0;
	CHECK_EQ(rules_lookup(cdb, NULL, NULL, NULL, &rr), -1);
	CHECK_EQ(errno, EINVAL);

	/* random files: an error (EPROTO) or no match, never a crash */
	for (seed = 1; seed <= 40; seed++)
		for (i = 0; i < sizeof sizes / sizeof *sizes; i++) {
			tu_fill_random(buf, sizes[i], seed * 100 + (unsigned)i);
			write_file(path, buf, sizes[i]);
			errno = 0;
			r = rules_lookup(path, "1.2.3.4", "a.b.example.org", "joe", &rr);
			if (r < 0 && errno != EPROTO)
				T_FAIL("random file %zu bytes: errno %s", sizes[i], strerror(errno));
			rules_result_free(&rr);
		}

	/* bad values in a well-formed cdb: EPROTO, where tcpserver skips them */
	cdbmake(path, bad, 3);
	expect_error(path, "1.2.3.4", EPROTO);
	expect_error(path, "1.2.3.9", EPROTO);
	expect_error(path, "1.2.9.9", EPROTO);

	/* a value over the bound */
	{
		static char v[RULES_VALUEMAX + 1];
		struct kv kv = { "1.2.3.4", v, sizeof v };
		memset(v, 'v', sizeof v);
		memcpy(v, "+V=", 3);
		v[sizeof v - 1] = 0;
		cdbmake(path, &kv, 1);
		expect_error(path, "1.2.3.4", EPROTO);
		kv.k = "1.2.3.";
		kv.vlen = RULES_VALUEMAX;
		v[RULES_VALUEMAX - 1] = 0;
		cdbmake(path, &kv, 1);
		CHECK_EQ(rules_lookup(path, "1.2.3.4", NULL, NULL, &rr), 1);
		CHECK_EQ(rr.envlen, RULES_VALUEMAX - 1);
		rules_result_free(&rr);
	}

	/* a real cdb with bytes flipped: -1 EPROTO, 0 or 1, and a valid result */
	tcprules("joe@1.2.3.4:deny,A=\"1\"\n=.example.org:allow,B=\"2\"\n1.2.:allow,C=\"3\",D=\"4\"\n:deny\n");
	CHECK((fd = open(cdb, O_RDONLY)) >= 0);
	CHECK((n = read(fd, good, sizeof good)) > 2048);
	close(fd);
	goodlen = (size_t)n;
	for (seed = 1; seed <= 3000; seed++) {
		unsigned char flips[8];
		tu_fill_random(flips, sizeof flips, seed);
		memcpy(buf, good, goodlen);
		for (i = 0; i < 4; i++) {
			size_t at = (flips[2 * i] | (size_t)flips[2 * i + 1] << 8) % goodlen;
			if (seed % 2 && at < 2048)   /* half the time, damage only the records */
				at = 2048 + at % (goodlen - 2048);
			buf[at] ^= (unsigned char)(1 + seed % 255);
		}
		write_file(path, buf, seed % 7 ? goodlen : goodlen - seed % 40);
		errno = 0;
		r = rules_lookup(path, seed % 3 ? "1.2.3.4" : "9.9.9.9", "a.b.example.org", seed % 5 ? "joe" : NULL, &rr);
		if (r < 0)
			CHECK_EQ(errno, EPROTO);
		if (r == 1 && rr.env) {
			const char *p = rr.env, *end = rr.env + rr.envlen;
			CHECK(rr.envlen && !end[-1]);
			for (; p < end; p += strlen(p) + 1)
				CHECK(*p && *p != '=' && strchr(p, '='));
		}
		rules_result_free(&rr);
	}
}

int main(void)
{
	if (system("command -v tcprules >/dev/null 2>&1") != 0) {
		if (getenv("CI"))
			T_FAIL("tcprules is missing (Debian package ucspi-tcp); CI needs it");
		fprintf(stderr, "SKIP: tcprules is missing (install the Debian package ucspi-tcp)\n");
		return 77;   /* ctest: SKIP_RETURN_CODE (tests/CMakeLists.txt) */
	}
	have_check = system("command -v tcprulescheck >/dev/null 2>&1") == 0;
	if (!have_check) {
		if (getenv("CI"))
			T_FAIL("tcprulescheck is missing (it ships with tcprules in the Debian package ucspi-tcp); "
			    "CI needs it to compare the lookups with ucspi-tcp's own");
		fprintf(stderr, "note: no tcprulescheck, lookups are not compared with ucspi-tcp's own\n");
	}
	snprintf(dir, sizeof dir, "%s", tu_tmpdir());
	snprintf(cdb, sizeof cdb, "%s/rules.cdb", dir);
	RUN(test_parse_value);
	RUN(test_format);
	RUN(test_order_ipv4);
	RUN(test_order_ipv6);
	RUN(test_deny_and_values);
	RUN(test_long);
	RUN(test_replace);
	RUN(test_garbage);
	{
		char cmd[600];
		snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
		CHECK(system(cmd) == 0);
	}
	fprintf(stderr, "ok\n");
	return 0;
}
