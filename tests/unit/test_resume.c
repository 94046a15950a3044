/*
 * test_resume.c -- a resumed client session keeps the verdict its saved
 * bytes carry only under the same trust settings (mailtls.h,
 * mailtls_set_session; verdict.c): the same CA file content => accepted
 * without the CA file being parsed; the CA file rewritten => verified
 * again and refused (or, still trusting, verified again and accepted);
 * pins, names or the verification mode changed => verified again; a
 * verification hook is called again; a damaged verdict header is refused,
 * a changed digest verifies again; a success holds until the verified
 * chain's first notAfter.  Over socketpairs, TLS 1.3 and 1.2.
 *
 * "Not parsed" is seen by counting the library's calls of BoringSSL's
 * X509_STORE_add_cert: this program defines that symbol, so the
 * library's calls come here first (ELF interposition) and go on to the
 * real one.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

static int anchors_added;

int X509_STORE_add_cert(void *store, void *x);
int X509_STORE_add_cert(void *store, void *x)
{
	static int (*real)(void *, void *);
	if (!real)
		real = (int (*)(void *, void *))dlsym(RTLD_NEXT, "X509_STORE_add_cert");
	if (!real) {
		fprintf(stderr, "X509_STORE_add_cert: %s\n", dlerror());
		abort();
	}
	anchors_added++;
	return real(store, x);
}

static int max_proto = MAILTLS_TLS1_3;

static struct mailtls_config *client(const char *cafile)
{
	struct mailtls_config *cc = mailtls_config_new();
	CHECK(cc);
	if (cafile)
		CHECK_CFG_OK(cc, mailtls_config_set_ca(cc, cafile, NULL));
	CHECK_CFG_OK(cc, mailtls_config_set_max_protocol(cc, max_proto));
	return cc;
}

/* |dir|/|name| made of the PKI files |a| and |b| (NULL: none) in that order. */
static const char *trust_file(const char *dir, const char *name, const char *a, const char *b)
{
	static char path[4][600];
	static int next;
	char *p = path[next++ % 4];
	snprintf(p, sizeof path[0], "%s/%s", dir, name);
	tu_sh("cat '%s' %s%s%s > '%s'", pki(a), b ? "'" : "", b ? pki(b) : "", b ? "'" : "", p);
	return p;
}

/* A handshake of |cc| with |sc| (|vname|: a verify name, or NULL), the
 * greeting read so a TLS 1.3 ticket arrives; the saved session (malloc'd).
 * |resumed|: 1 when the session saved in |from| (global, or NULL) is
 * offered and must resume, 0 for a full handshake. */
static const unsigned char *from;
static size_t fromlen;

static unsigned char *saved(struct mailtls_config *sc, struct mailtls_config *cc, const char *name,
    const char *vname, int resumed, size_t *len)
{
	struct tu_conn k;
	unsigned char *sess;
	char buf[8];
	tu_conn_open(&k, sc, cc, name);
	if (vname)
		CHECK_OK(k.c, mailtls_set_verify_names(k.c, &vname, 1));
	if (resumed)
		CHECK_OK(k.c, mailtls_set_session(k.c, from, fromlen));
	tu_conn_hs(&k);
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_session_reused(k.c), resumed);
	CHECK_EQ(mailtls_write(k.s, "hello", 5), 5);
	CHECK_EQ(mailtls_read(k.c, buf, sizeof buf), 5);
	sess = tu_session_of(k.c, len);
	tu_conn_close(&k);
	return sess;
}

/* Offers |sess| on a fresh connection of |cc|; the results stay in |k|. */
static void resume(struct tu_conn *k, struct mailtls_config *sc, struct mailtls_config *cc, const char *vname,
    const unsigned char *sess, size_t len)
{
	tu_conn_open(k, sc, cc, "localhost");
	if (vname)
		CHECK_OK(k->c, mailtls_set_verify_names(k->c, &vname, 1));
	CHECK_OK(k->c, mailtls_set_session(k->c, sess, len));
	tu_conn_hs(k);
}

/* Offers |sess| with |cc| (|vname| as for resume): it resumes, is
 * accepted, and the server's certificate has the verification result
 * |result| (MAILTLS_E_NONE: verified); |parsed| trust anchors were parsed
 * meanwhile (SOME: one or more). */
#define SOME (-1)
static void expect_accepted(struct mailtls_config *sc, struct mailtls_config *cc, const char *vname,
    const unsigned char *sess, size_t len, int result, int parsed)
{
	struct tu_conn k;
	int before = anchors_added;
	resume(&k, sc, cc, vname, sess, len);
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_session_reused(k.c), 1);
	CHECK_EQ(mailtls_peer_verified(k.c), result == MAILTLS_E_NONE);
	CHECK_EQ(mailtls_peer_verify_result(k.c), result);
	CHECK_EQ(mailtls_peer_has_cert(k.c), 1);
	CHECK_STR(mailtls_peer_fingerprint(k.c), tu_fingerprint_of(pki("server-ec-leaf.pem")));
	if (parsed == SOME)
		CHECK(anchors_added > before);
	else
		CHECK_EQ(anchors_added, before + parsed);
	tu_conn_close(&k);
}

/* Offers |sess| with |cc|: it resumes, and the client refuses the server
 * for |err| (|what| names the case in the log). */
static void expect_refused(struct mailtls_config *sc, struct mailtls_config *cc, const char *vname,
    const unsigned char *sess, size_t len, int err, const char *what)
{
	struct tu_conn k;
	resume(&k, sc, cc, vname, sess, len);
	fprintf(stderr, "   %s: client %d [%s] %s\n", what, k.cr, mailtls_errcode_name(k.cerr), mailtls_error(k.c));
	CHECK_EQ(k.cr, -1);
	CHECK_EQ(k.cerr, err);
	CHECK_EQ(mailtls_session_reused(k.c), 1);   /* the path under test */
	CHECK_EQ(mailtls_peer_verified(k.c), 0);
	tu_conn_close(&k);
}

static void ca_file_checks(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	const char *dir = tu_scratch_dir();
	/* the test CA second: verifying needs the part parsed on demand */
	const char *trust = trust_file(dir, "trust.pem", "unknown-ca.pem", "ca.pem");
	struct mailtls_config *first, *same, *rewritten, *reordered;
	unsigned char *sess, *again;
	size_t len, alen;
	int before;

	/* A full handshake parses the rest of the file when it verifies. */
	before = anchors_added;
	first = client(trust);
	CHECK_EQ(anchors_added, before + 1);   /* the first certificate only */
	sess = saved(sc, first, "localhost", NULL, 0, &len);
	CHECK_EQ(anchors_added, before + 2);

	/* Same settings, another configuration (as in the next process):
	 * resumed, verified, and the rest of the file never parsed. */
	same = client(trust);
	expect_accepted(sc, same, NULL, sess, len, MAILTLS_E_NONE, 0);
	/* The verdict passes on to the session that resumption saves. */
	from = sess;
	fromlen = len;
	before = anchors_added;
	again = saved(sc, same, "localhost", NULL, 1, &alen);
	CHECK_EQ(anchors_added, before);
	expect_accepted(sc, same, NULL, again, alen, MAILTLS_E_NONE, 0);
	free(again);

	/* The file rewritten in place without the test CA: verified again
	 * (the path is the same, the content is not) and refused. */
	trust_file(dir, "trust.pem", "unknown-ca.pem", NULL);
	rewritten = client(trust);
	expect_refused(sc, rewritten, NULL, sess, len, MAILTLS_E_VERIFY_UNTRUSTED, "CA file changed");

	/* Changed but still trusting the server: verified again (the file
	 * parsed for it), accepted. */
	trust_file(dir, "trust.pem", "ca.pem", "unknown-ca.pem");
	reordered = client(trust);
	expect_accepted(sc, reordered, NULL, sess, len, MAILTLS_E_NONE, 1);

	/* The same text given twice is other settings too (order and count
	 * are part of them): verified again. */
	trust_file(dir, "trust.pem", "unknown-ca.pem", "ca.pem");
	CHECK_CFG_OK(same, mailtls_config_set_ca(same, trust, NULL));
	expect_accepted(sc, same, NULL, sess, len, MAILTLS_E_NONE, SOME);

	free(sess);
	mailtls_config_free(first);
	mailtls_config_free(same);
	mailtls_config_free(rewritten);
	mailtls_config_free(reordered);
	mailtls_config_free(sc);
}

static void test_ca_file_tls13(void)
{
	ca_file_checks();
}

static void test_ca_file_tls12(void)
{
	max_proto = MAILTLS_TLS1_2;
	ca_file_checks();
}

/* Pins: the same pins accept a resumed session, other pins refuse it,
 * a pin added beside the right one accepts it. */
static void test_pins(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *p1 = client(NULL), *p2 = client(NULL), *other = client(NULL), *both = client(NULL);
	const char *right = tu_fingerprint_of(pki("server-ec-leaf.pem"));
	const char *wrong = tu_fingerprint_of(pki("wrongname-leaf.pem"));
	unsigned char *sess;
	size_t len;
	CHECK_CFG_OK(p1, mailtls_config_add_pin(p1, right));
	CHECK_CFG_OK(p2, mailtls_config_add_pin(p2, right));
	CHECK_CFG_OK(other, mailtls_config_add_pin(other, wrong));
	CHECK_CFG_OK(both, mailtls_config_add_pin(both, wrong));
	CHECK_CFG_OK(both, mailtls_config_add_pin(both, right));
	sess = saved(sc, p1, "localhost", NULL, 0, &len);

	expect_accepted(sc, p2, NULL, sess, len, MAILTLS_E_NONE, 0);
	expect_refused(sc, other, NULL, sess, len, MAILTLS_E_VERIFY_PIN, "pins changed");
	/* a pin added (the right one still among them): verified again, accepted */
	expect_accepted(sc, both, NULL, sess, len, MAILTLS_E_NONE, 0);
	free(sess);
	mailtls_config_free(p1);
	mailtls_config_free(p2);
	mailtls_config_free(other);
	mailtls_config_free(both);
	mailtls_config_free(sc);
}

/* Names and mode: a verdict under other names is not kept; a failure
 * kept under OPTIONAL never carries over to REQUIRE. */
static void test_names_and_mode(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	/* the test CA second: a verification parses it, a kept verdict does not */
	const char *trust = trust_file(tu_scratch_dir(), "trust.pem", "unknown-ca.pem", "ca.pem");
	struct mailtls_config *req = client(trust), *opt = client(trust), *opt2 = client(trust);
	unsigned char *sess, *bad;
	size_t len, blen;
	CHECK_CFG_OK(opt, mailtls_config_set_verify(opt, MAILTLS_VERIFY_OPTIONAL));
	CHECK_CFG_OK(opt2, mailtls_config_set_verify(opt2, MAILTLS_VERIFY_OPTIONAL));

	/* verified for localhost; offered for another name: checked, refused */
	sess = saved(sc, req, "localhost", NULL, 0, &len);
	expect_refused(sc, req, "other.example.net", sess, len, MAILTLS_E_VERIFY_NAME, "another name");

	/* OPTIONAL, the name wrong: the failure is the verdict, and it stands
	 * for the same settings (the anchors not parsed again) ... */
	bad = saved(sc, opt, "localhost", "other.example.net", 0, &blen);
	expect_accepted(sc, opt2, "other.example.net", bad, blen, MAILTLS_E_VERIFY_NAME, 0);
	/* ... but offered under REQUIRE, it is verified again and refused. */
	expect_refused(sc, req, "other.example.net", bad, blen, MAILTLS_E_VERIFY_NAME, "OPTIONAL's failure under REQUIRE");
	/* and a success under REQUIRE offered under OPTIONAL with the wrong
	 * name: verified again, the failure reported */
	expect_accepted(sc, opt, "other.example.net", sess, len, MAILTLS_E_VERIFY_NAME, 0);
	free(sess);
	free(bad);
	mailtls_config_free(req);
	mailtls_config_free(opt);
	mailtls_config_free(opt2);
	mailtls_config_free(sc);
}

static int hook_calls;

static int hook(void *arg, struct mailtls *s, const unsigned char *const *der, const size_t *derlen, size_t n,
    int result)
{
	(void)arg; (void)s; (void)der; (void)derlen; (void)n;
	hook_calls++;
	return result == MAILTLS_E_NONE ? 0 : -1;
}

/* A hook is the caller's code: it is asked again on every resumption. */
static void test_hook(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = client(pki("ca.pem"));
	unsigned char *sess;
	size_t len;
	mailtls_config_set_verify_cb(cc, hook, NULL);
	sess = saved(sc, cc, "localhost", NULL, 0, &len);
	CHECK_EQ(hook_calls, 1);
	expect_accepted(sc, cc, NULL, sess, len, MAILTLS_E_NONE, 0);
	CHECK_EQ(hook_calls, 2);
	free(sess);
	mailtls_config_free(cc);
	mailtls_config_free(sc);
}

/* The verdict header: a changed digest is other settings (verified
 * again); a header cut short is refused like any damaged session. */
static void test_damaged_header(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	const char *trust = trust_file(tu_scratch_dir(), "trust.pem", "unknown-ca.pem", "ca.pem");
	struct mailtls_config *cc = client(trust), *fresh;
	unsigned char *sess;
	size_t len;
	struct tu_conn k;
	sess = saved(sc, cc, "localhost", NULL, 0, &len);
	CHECK(len > 46 && !memcmp(sess, "mTv1", 4));   /* verdict.c's header */

	/* as saved: kept, the anchors not parsed */
	fresh = client(trust);
	expect_accepted(sc, fresh, NULL, sess, len, MAILTLS_E_NONE, 0);
	mailtls_config_free(fresh);

	/* a bit of the digest changed: verified again (the anchors parsed) */
	sess[10] ^= 1;
	fresh = client(trust);
	expect_accepted(sc, fresh, NULL, sess, len, MAILTLS_E_NONE, 1);
	mailtls_config_free(fresh);

	tu_conn_open(&k, sc, cc, "localhost");
	CHECK_EQ(mailtls_set_session(k.c, sess, 20), -1);
	CHECK_EQ(mailtls_errcode(k.c), MAILTLS_E_TLS);
	sess[37] = 7;    /* has_peer_cert neither 0 nor 1 */
	CHECK_EQ(mailtls_set_session(k.c, sess, len), -1);
	CHECK_EQ(mailtls_errcode(k.c), MAILTLS_E_TLS);
	tu_conn_hs(&k);  /* still good for a full handshake */
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_session_reused(k.c), 0);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	tu_conn_close(&k);
	free(sess);
	mailtls_config_free(cc);
	mailtls_config_free(sc);
}

static long long until_of(const unsigned char *sess)
{
	unsigned long long u = 0;
	for (int i = 0; i < 8; i++)
		u = u << 8 | sess[38 + i];   /* verdict.c's header */
	return (long long)u;
}

static void set_until(unsigned char *sess, long long until)
{
	for (int i = 0; i < 8; i++)
		sess[38 + i] = (unsigned char)((unsigned long long)until >> (56 - 8 * i));
}

/* A success holds until the first notAfter of the chain it verified (leaf,
 * intermediate, root); past it, the peer is verified again.  A pin's has
 * no date. */
static void test_verdict_until(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	const char *trust = trust_file(tu_scratch_dir(), "trust.pem", "unknown-ca.pem", "ca.pem");
	struct mailtls_config *cc = client(trust), *fresh, *pinned = client(NULL);
	unsigned char *sess;
	char first[64];
	size_t len;
	sess = saved(sc, cc, "localhost", NULL, 0, &len);
	tu_sh_line(first, sizeof first, "for f in '%s' '%s' '%s'; do date -d \"$(openssl x509 -noout -enddate -in "
	    "\"$f\" | cut -d= -f2)\" +%%s; done | sort -n | head -1", pki("server-ec-leaf.pem"), pki("int.pem"),
	    pki("ca.pem"));
	CHECK_EQ(until_of(sess), atoll(first));

	set_until(sess, (long long)time(NULL) - 1);   /* the chain expired since */
	fresh = client(trust);
	expect_accepted(sc, fresh, NULL, sess, len, MAILTLS_E_NONE, 1);   /* verified again */
	mailtls_config_free(fresh);

	set_until(sess, (long long)time(NULL) + 600);
	fresh = client(trust);
	expect_accepted(sc, fresh, NULL, sess, len, MAILTLS_E_NONE, 0);   /* kept */
	mailtls_config_free(fresh);
	free(sess);

	CHECK_CFG_OK(pinned, mailtls_config_add_pin(pinned, tu_fingerprint_of(pki("server-ec-leaf.pem"))));
	sess = saved(sc, pinned, "localhost", NULL, 0, &len);
	CHECK_EQ(until_of(sess), 0x7fffffffffffffffLL);
	free(sess);
	mailtls_config_free(pinned);
	mailtls_config_free(cc);
	mailtls_config_free(sc);
}

/* A configuration that does not verify saves no verdict: the plain
 * session bytes, as before verdicts existed, and they still resume. */
static void test_no_verification(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = client(NULL);
	unsigned char *sess;
	size_t len;
	struct tu_conn k;
	CHECK_CFG_OK(cc, mailtls_config_set_verify(cc, MAILTLS_VERIFY_NONE));
	sess = saved(sc, cc, "localhost", NULL, 0, &len);
	CHECK(memcmp(sess, "mTv1", 4) != 0);
	resume(&k, sc, cc, NULL, sess, len);
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_session_reused(k.c), 1);
	CHECK_EQ(mailtls_peer_verified(k.c), 0);
	tu_conn_close(&k);
	free(sess);
	mailtls_config_free(cc);
	mailtls_config_free(sc);
}

int main(void)
{
	RUN_ISOLATED(test_ca_file_tls13);
	RUN_ISOLATED(test_ca_file_tls12);
	RUN_ISOLATED(test_pins);
	RUN_ISOLATED(test_names_and_mode);
	RUN_ISOLATED(test_hook);
	RUN_ISOLATED(test_damaged_header);
	RUN_ISOLATED(test_verdict_until);
	RUN_ISOLATED(test_no_verification);
	return tu_isolated_result();
}
