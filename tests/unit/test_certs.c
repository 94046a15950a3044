/* Certificates and keys as a server administrator sets them up, checked the
 * way a user would: a client of ours on the other end of a socketpair sees
 * which certificate it was served.
 *
 *  - the combined key+chain PEM (qmail.pem layout) serves its chain;
 *  - RSA beside ECDSA: the key the client can use is picked;
 *  - SNI keypairs: exact names, one-label wildcards, the default, strict mode;
 *  - bad, missing, unreadable, mismatched, encrypted files: -1, the right
 *    category, a message naming the file, and the configuration unharmed;
 *  - trust anchors from a file and a hashed directory;
 *  - mailtls_config_from_env with the sslserver/s6-tlsd names;
 *  - TLS 1.2 server cipher order, and TLS 1.0/1.1 refused unless allowed.
 *
 * Every test runs in its own child process, so one failing expectation
 * does not hide the others; the program fails if any test failed. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

/* The RFC 4514 subject of the first certificate in |file|, per openssl(1). */
static const char *subject_of(const char *file)
{
	static char res[4][512];
	static int n;
	char *r = res[n++ % 4];
	tu_x509_field(file, "-subject -nameopt RFC2253", r, sizeof res[0]);
	return r;
}

/* served returns the fingerprint of the certificate the client of a
 * completed handshake was served, connecting with |servername|. */
static const char *served(struct mailtls_config *sc, struct mailtls_config *cc, const char *servername)
{
	static char fp[4][80];
	static int n;
	char *r = fp[n++ % 4];
	struct tu_conn k;
	tu_conn_run(&k, sc, cc, servername);
	EXPECT_HS_OK(&k);
	CHECK(mailtls_peer_fingerprint(k.c));
	snprintf(r, sizeof fp[0], "%s", mailtls_peer_fingerprint(k.c));
	tu_conn_close(&k);
	return r;
}

/* A client that does not verify (to see which certificate is served for
 * a name the certificate does not carry). */
static struct mailtls_config *noverify_client(void)
{
	struct mailtls_config *c = tu_client_config();
	CHECK_CFG_OK(c, mailtls_config_set_verify(c, MAILTLS_VERIFY_NONE));
	return c;
}

static struct mailtls_config *tls12_client(const char *ciphers)
{
	struct mailtls_config *c = tu_client_config();
	CHECK_CFG_OK(c, mailtls_config_set_max_protocol(c, MAILTLS_TLS1_2));
	if (ciphers)
		CHECK_CFG_OK(c, mailtls_config_set_ciphers(c, ciphers));
	return c;
}

/* ------------------------------------------------------------------ */
/* The combined PEM serves its chain                                    */
/* ------------------------------------------------------------------ */

struct chain_seen {
	int called;
	size_t n;
	int result;
	unsigned char *der[4];
	size_t len[4];
};

static int record_chain(void *arg, struct mailtls *s, const unsigned char *const *der,
    const size_t *derlen, size_t n, int result)
{
	struct chain_seen *cs = arg;
	cs->called++;
	cs->n = n;
	cs->result = result;
	for (size_t i = 0; i < n && i < 4; i++) {
		cs->der[i] = malloc(derlen[i]);
		CHECK(cs->der[i]);
		memcpy(cs->der[i], der[i], derlen[i]);
		cs->len[i] = derlen[i];
	}
	return result == MAILTLS_E_NONE ? 0 : -1;
}

static void test_combined_pem_serves_chain(void)
{
	/* key, leaf, intermediate, root in one file; no key file */
	struct mailtls_config *sc = tu_server_config("server-ec-combined.pem", NULL);
	struct mailtls_config *cc = tu_client_config();   /* trusts ca.pem only */
	struct chain_seen cs;
	struct tu_conn k;
	size_t leaflen, intlen;
	unsigned char *leaf = tu_der_of(pki("server-ec-leaf.pem"), &leaflen);
	unsigned char *inter = tu_der_of(pki("int.pem"), &intlen);

	memset(&cs, 0, sizeof cs);
	mailtls_config_set_verify_cb(cc, record_chain, &cs);
	tu_conn_run(&k, sc, cc, "mail.test.example");
	EXPECT_HS_OK(&k);
	/* Verified with only the root as anchor: the intermediate came along. */
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	CHECK_EQ(mailtls_peer_verify_result(k.c), MAILTLS_E_NONE);
	CHECK_STR(mailtls_peer_issuer(k.c), subject_of(pki("int.pem")));
	CHECK_STR(mailtls_peer_issuer(k.c), "CN=mailtls Test Intermediate CA,O=mailtls tests");
	CHECK_STR(mailtls_peer_subject(k.c), "CN=localhost");
	CHECK_STR(mailtls_peer_fingerprint(k.c), tu_fingerprint_of(pki("server-ec-leaf.pem")));
	/* The hook saw what was on the wire: leaf first, then the intermediate. */
	CHECK_EQ(cs.called, 1);
	CHECK_EQ(cs.result, MAILTLS_E_NONE);
	CHECK(cs.n >= 2);
	CHECK(cs.len[0] == leaflen && !memcmp(cs.der[0], leaf, leaflen));
	CHECK(cs.len[1] == intlen && !memcmp(cs.der[1], inter, intlen));
	tu_conn_close(&k);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
	for (size_t i = 0; i < cs.n && i < 4; i++)
		free(cs.der[i]);
	free(leaf);
	free(inter);
}

/* "in any position": the key after the certificates works too. */
static void test_combined_pem_key_last(void)
{
	const char *dir = tu_scratch_dir();
	char path[512];
	struct mailtls_config *sc = mailtls_config_new(), *cc = tu_client_config();
	snprintf(path, sizeof path, "%s/keylast.pem", dir);
	tu_sh("cat '%s' '%s' > '%s'", pki("server-ec.pem"), pki("server-ec.key"), path);
	CHECK_CFG_OK(sc, mailtls_config_set_keypair_file(sc, path, NULL));
	CHECK_STR(served(sc, cc, "localhost"), tu_fingerprint_of(pki("server-ec-leaf.pem")));
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

/* ------------------------------------------------------------------ */
/* RSA beside ECDSA                                                     */
/* ------------------------------------------------------------------ */

static struct mailtls_config *dual_server(int rsa_first)
{
	struct mailtls_config *sc = mailtls_config_new();
	CHECK(sc);
	if (rsa_first) {
		CHECK_CFG_OK(sc, mailtls_config_set_keypair_file(sc, pki("server-rsa.pem"), pki("server-rsa.key")));
		CHECK_CFG_OK(sc, mailtls_config_add_keypair_file(sc, pki("server-ec.pem"), pki("server-ec.key")));
	} else {
		CHECK_CFG_OK(sc, mailtls_config_set_keypair_file(sc, pki("server-ec.pem"), pki("server-ec.key")));
		CHECK_CFG_OK(sc, mailtls_config_add_keypair_file(sc, pki("server-rsa.pem"), pki("server-rsa.key")));
	}
	return sc;
}

static void test_dual_default_client_gets_ecdsa(void)
{
	struct mailtls_config *cc = tu_client_config();
	const char *ec = tu_fingerprint_of(pki("server-ec-leaf.pem"));
	for (int rsa_first = 0; rsa_first < 2; rsa_first++) {
		struct mailtls_config *sc = dual_server(rsa_first);
		struct mailtls_config *c12 = tls12_client(NULL);
		struct tu_conn k;
		tu_conn_run(&k, sc, cc, "localhost");
		EXPECT_HS_OK(&k);
		CHECK_STR(mailtls_protocol(k.c), "TLSv1.3");
		CHECK_STR(mailtls_peer_fingerprint(k.c), ec);
		CHECK_EQ(mailtls_peer_verified(k.c), 1);
		tu_conn_close(&k);
		/* A TLS 1.2 client with the default (secure) list: ECDSA too. */
		tu_conn_run(&k, sc, c12, "localhost");
		EXPECT_HS_OK(&k);
		CHECK_STR(mailtls_protocol(k.c), "TLSv1.2");
		CHECK_STR(mailtls_peer_fingerprint(k.c), ec);
		CHECK_STR(mailtls_cipher(k.c), "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
		tu_conn_close(&k);
		mailtls_config_free(c12);
		mailtls_config_free(sc);
	}
	mailtls_config_free(cc);
}

/* A client that can only use RSA (a TLS 1.2 client offering only an
 * ECDHE-RSA suite) must be served the RSA keypair. */
static void test_dual_rsa_only_client_gets_rsa(void)
{
	const char *rsa = tu_fingerprint_of(pki("server-rsa-leaf.pem"));
	for (int rsa_first = 0; rsa_first < 2; rsa_first++) {
		struct mailtls_config *sc = dual_server(rsa_first);
		struct mailtls_config *cc = tls12_client("ECDHE-RSA-AES128-GCM-SHA256");
		struct tu_conn k;
		tu_conn_run(&k, sc, cc, "localhost");
		if (k.cr != 0 || k.sr != 0)
			T_FAIL("(%s added first) RSA-only TLS 1.2 client refused: client \"%s\" (%s), "
			    "server \"%s\" (%s)", rsa_first ? "RSA" : "ECDSA",
			    mailtls_error(k.c), mailtls_errcode_name(k.cerr),
			    mailtls_error(k.s), mailtls_errcode_name(k.serr));
		CHECK_STR(mailtls_protocol(k.c), "TLSv1.2");
		CHECK_STR(mailtls_cipher(k.c), "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
		CHECK_STR(mailtls_peer_fingerprint(k.c), rsa);
		CHECK_EQ(mailtls_peer_verified(k.c), 1);
		tu_conn_close(&k);
		mailtls_config_free(cc);
		mailtls_config_free(sc);
	}
}

/* One keypair per key type: a second ECDSA keypair replaces the first and
 * leaves the RSA one alone. */
static void test_same_type_replaces(void)
{
	struct mailtls_config *sc = dual_server(0);
	struct mailtls_config *cc = noverify_client();
	CHECK_CFG_OK(sc, mailtls_config_add_keypair_file(sc, pki("sni-a.pem"), pki("sni-a.key")));
	CHECK_STR(served(sc, cc, "localhost"), tu_fingerprint_of(pki("sni-a-leaf.pem")));
	mailtls_config_free(cc);
	cc = tls12_client("ECDHE-RSA-AES128-GCM-SHA256");
	CHECK_CFG_OK(cc, mailtls_config_set_verify(cc, MAILTLS_VERIFY_NONE));
	CHECK_STR(served(sc, cc, "localhost"), tu_fingerprint_of(pki("server-rsa-leaf.pem")));
	mailtls_config_free(cc);
	mailtls_config_free(sc);
}

/* ------------------------------------------------------------------ */
/* SNI                                                                  */
/* ------------------------------------------------------------------ */

static struct mailtls_config *sni_server(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	CHECK_CFG_OK(sc, mailtls_config_add_sni_keypair_file(sc, "a.test.example", pki("sni-a.pem"), pki("sni-a.key")));
	CHECK_CFG_OK(sc, mailtls_config_add_sni_keypair_file(sc, "*.wild.test.example", pki("sni-wild.pem"),
	    pki("sni-wild.key")));
	return sc;
}

static void test_sni_selection(void)
{
	struct mailtls_config *sc = sni_server();
	struct mailtls_config *cc = tu_client_config(), *nv = noverify_client();
	const char *def = tu_fingerprint_of(pki("server-ec-leaf.pem"));
	const char *a = tu_fingerprint_of(pki("sni-a-leaf.pem"));
	const char *wild = tu_fingerprint_of(pki("sni-wild-leaf.pem"));
	struct tu_conn k;

	/* Exact name: sni-a, fully verified; the server saw the name. */
	tu_conn_run(&k, sc, cc, "a.test.example");
	EXPECT_HS_OK(&k);
	CHECK_STR(mailtls_peer_fingerprint(k.c), a);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	CHECK_STR(mailtls_servername(k.s), "a.test.example");
	CHECK_STR(mailtls_servername(k.c), "a.test.example");
	tu_conn_close(&k);

	/* One label under the wildcard: sni-wild, verified. */
	tu_conn_run(&k, sc, cc, "x.wild.test.example");
	EXPECT_HS_OK(&k);
	CHECK_STR(mailtls_peer_fingerprint(k.c), wild);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	CHECK_STR(mailtls_servername(k.s), "x.wild.test.example");
	tu_conn_close(&k);

	/* Case does not matter. */
	CHECK_STR(served(sc, cc, "A.Test.EXAMPLE"), a);
	CHECK_STR(served(sc, cc, "X.WILD.test.example"), wild);

	/* Two labels under the wildcard, the wildcard's own base, unknown
	 * names, a name that only ends like one: the default. */
	CHECK_STR(served(sc, nv, "y.x.wild.test.example"), def);
	CHECK_STR(served(sc, nv, "wild.test.example"), def);
	CHECK_STR(served(sc, nv, "unknown.example"), def);
	CHECK_STR(served(sc, nv, "b.a.test.example"), def);
	CHECK_STR(served(sc, nv, "xa.test.example"), def);
	CHECK_STR(served(sc, cc, "localhost"), def);
	CHECK_STR(served(sc, cc, "mail.test.example"), def);

	/* No SNI at all: the default, and the server reports no name. */
	tu_conn_run(&k, sc, nv, NULL);
	EXPECT_HS_OK(&k);
	CHECK_STR(mailtls_peer_fingerprint(k.c), def);
	CHECK(mailtls_servername(k.s) == NULL);
	tu_conn_close(&k);

	/* An unknown name with the default: served, but the client of ours
	 * refuses a certificate that does not carry the name. */
	tu_conn_run(&k, sc, cc, "unknown.example");
	CHECK_EQ(k.cr, -1);
	CHECK_EQ(k.cerr, MAILTLS_E_VERIFY_NAME);
	tu_conn_close(&k);

	mailtls_config_free(sc);
	mailtls_config_free(cc);
	mailtls_config_free(nv);
}

/* Exact names win over wildcards, whatever the order they were added in. */
static void test_sni_exact_beats_wildcard(void)
{
	struct mailtls_config *sc = sni_server(), *nv = noverify_client();
	CHECK_CFG_OK(sc, mailtls_config_add_sni_keypair_file(sc, "exact.wild.test.example", pki("sni-a.pem"),
	    pki("sni-a.key")));
	CHECK_STR(served(sc, nv, "exact.wild.test.example"), tu_fingerprint_of(pki("sni-a-leaf.pem")));
	CHECK_STR(served(sc, nv, "other.wild.test.example"), tu_fingerprint_of(pki("sni-wild-leaf.pem")));
	mailtls_config_free(sc);
	mailtls_config_free(nv);
}

/* Several key types for one SNI name: the RSA-only client gets RSA. */
static void test_sni_two_key_types(void)
{
	struct mailtls_config *sc = tu_server_config("sni-a.pem", "sni-a.key");
	struct mailtls_config *rsa = tls12_client("ECDHE-RSA-AES128-GCM-SHA256"), *cc = tu_client_config();
	CHECK_CFG_OK(sc, mailtls_config_add_sni_keypair_file(sc, "mail.test.example", pki("server-ec.pem"),
	    pki("server-ec.key")));
	CHECK_CFG_OK(sc, mailtls_config_add_sni_keypair_file(sc, "mail.test.example", pki("server-rsa.pem"),
	    pki("server-rsa.key")));
	CHECK_STR(served(sc, cc, "mail.test.example"), tu_fingerprint_of(pki("server-ec-leaf.pem")));
	CHECK_STR(served(sc, rsa, "mail.test.example"), tu_fingerprint_of(pki("server-rsa-leaf.pem")));
	mailtls_config_free(sc);
	mailtls_config_free(rsa);
	mailtls_config_free(cc);
}

static void test_sni_bad_names(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	static const char *const bad[] = { "", "a b.example", "a.example/x", "x.*.example", "**.example" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_EQ(mailtls_config_add_sni_keypair_file(sc, bad[i], pki("sni-a.pem"), pki("sni-a.key")), -1);
		CHECK_EQ(mailtls_config_errcode(sc), MAILTLS_E_USAGE);
	}
	CHECK_EQ(mailtls_config_add_sni_keypair_file(sc, NULL, pki("sni-a.pem"), pki("sni-a.key")), -1);
	CHECK_EQ(mailtls_config_errcode(sc), MAILTLS_E_USAGE);
	mailtls_config_free(sc);
}

static void test_sni_strict(void)
{
	struct mailtls_config *sc = sni_server(), *cc = tu_client_config(), *nv = noverify_client();
	struct tu_conn k;
	mailtls_config_set_sni_strict(sc, 1);

	/* Known names still work. */
	CHECK_STR(served(sc, cc, "a.test.example"), tu_fingerprint_of(pki("sni-a-leaf.pem")));
	CHECK_STR(served(sc, cc, "z.wild.test.example"), tu_fingerprint_of(pki("sni-wild-leaf.pem")));

	/* An unknown name: refused, both ends fail. */
	tu_conn_run(&k, sc, nv, "unknown.example");
	CHECK_EQ(k.cr, -1);
	CHECK_EQ(k.sr, -1);
	CHECK_EQ(k.cerr, MAILTLS_E_TLS);
	CHECK(mailtls_error(k.s)[0] != 0);
	CHECK(mailtls_error(k.c)[0] != 0);
	tu_conn_close(&k);
	tu_conn_run(&k, sc, nv, "y.x.wild.test.example");
	CHECK_EQ(k.cr, -1);
	CHECK_EQ(k.sr, -1);
	tu_conn_close(&k);

	/* No SNI while there is a default keypair: served the default. */
	CHECK_STR(served(sc, nv, NULL), tu_fingerprint_of(pki("server-ec-leaf.pem")));
	mailtls_config_free(sc);

	/* No SNI and no default keypair: refused. */
	sc = mailtls_config_new();
	CHECK(sc);
	CHECK_CFG_OK(sc, mailtls_config_add_sni_keypair_file(sc, "a.test.example", pki("sni-a.pem"), pki("sni-a.key")));
	mailtls_config_set_sni_strict(sc, 1);
	tu_conn_run(&k, sc, nv, NULL);
	CHECK_EQ(k.cr, -1);
	CHECK_EQ(k.sr, -1);
	tu_conn_close(&k);
	CHECK_STR(served(sc, cc, "a.test.example"), tu_fingerprint_of(pki("sni-a-leaf.pem")));
	mailtls_config_free(sc);
	mailtls_config_free(cc);
	mailtls_config_free(nv);
}

/* ------------------------------------------------------------------ */
/* Bad files                                                            */
/* ------------------------------------------------------------------ */

/* The configuration still serves server-ec after a failed call. */
static void expect_still_usable(struct mailtls_config *sc)
{
	struct mailtls_config *cc = tu_client_config();
	CHECK_STR(served(sc, cc, "localhost"), tu_fingerprint_of(pki("server-ec-leaf.pem")));
	mailtls_config_free(cc);
}

/* expect_load_fails: set_keypair_file(cert, key) fails with one of the
 * categories, a message naming |named|, and leaves |sc| as it was. */
static void expect_load_fails(const char *what, const char *cert, const char *key, const char *named,
    int code1, int code2)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	int r = mailtls_config_set_keypair_file(sc, cert, key);
	const char *msg = mailtls_config_error(sc);
	int code = mailtls_config_errcode(sc);
	fprintf(stderr, "   %s: %d [%s] %s\n", what, r, mailtls_errcode_name(code), msg);
	if (r != -1)
		T_FAIL("%s: set_keypair_file returned %d, expected -1", what, r);
	if (code != code1 && code != code2)
		T_FAIL("%s: category %s, expected %s%s%s", what, mailtls_errcode_name(code),
		    mailtls_errcode_name(code1), code2 != code1 ? " or " : "",
		    code2 != code1 ? mailtls_errcode_name(code2) : "");
	if (!strstr(msg, named))
		T_FAIL("%s: message \"%s\" does not name %s", what, msg, named);
	CHECK(mailtls_error_temporary(code));
	/* Same failure as an added keypair and as an SNI keypair. */
	CHECK_EQ(mailtls_config_add_keypair_file(sc, cert, key), -1);
	CHECK(strstr(mailtls_config_error(sc), named));
	CHECK_EQ(mailtls_config_add_sni_keypair_file(sc, "a.test.example", cert, key), -1);
	CHECK(strstr(mailtls_config_error(sc), named));
	/* Nothing was replaced or added: the old keypair still serves, also
	 * for the name whose SNI keypair failed. */
	expect_still_usable(sc);
	{
		struct mailtls_config *nv = noverify_client();
		CHECK_STR(served(sc, nv, "a.test.example"), tu_fingerprint_of(pki("server-ec-leaf.pem")));
		mailtls_config_free(nv);
	}
	/* A good call afterwards works and clears the error. */
	CHECK_CFG_OK(sc, mailtls_config_set_keypair_file(sc, pki("server-rsa.pem"), pki("server-rsa.key")));
	CHECK_EQ(mailtls_config_errcode(sc), MAILTLS_E_NONE);
	CHECK_STR(mailtls_config_error(sc), "");
	mailtls_config_free(sc);
}

static void test_bad_keypair_files(void)
{
	const char *dir = tu_scratch_dir();
	char missing[512], enc[512], trad[512], subdir[512], notdir[512];
	snprintf(missing, sizeof missing, "%s/no-such-file.pem", dir);
	snprintf(enc, sizeof enc, "%s/encrypted.key", dir);
	snprintf(trad, sizeof trad, "%s/encrypted-traditional.key", dir);
	snprintf(subdir, sizeof subdir, "%s/a-directory.pem", dir);
	snprintf(notdir, sizeof notdir, "%s/x", pki("ca.pem"));   /* ENOTDIR */
	CHECK(mkdir(subdir, 0700) == 0);
	tu_sh("openssl pkey -in '%s' -aes256 -passout pass:x -out '%s'", pki("server-ec.key"), enc);
	tu_sh("grep -q 'BEGIN ENCRYPTED PRIVATE KEY' '%s'", enc);
	tu_sh("openssl pkey -in '%s' -traditional -aes256 -passout pass:x -out '%s'", pki("server-ec.key"), trad);
	tu_sh("grep -q 'Proc-Type: 4,ENCRYPTED' '%s'", trad);

	expect_load_fails("mismatched key", pki("server-ec.pem"), pki("server-rsa.key"),
	    pki("server-ec.pem"), MAILTLS_E_CONFIG, MAILTLS_E_CONFIG);
	expect_load_fails("mismatched key (same type)", pki("server-ec.pem"), pki("sni-a.key"),
	    pki("server-ec.pem"), MAILTLS_E_CONFIG, MAILTLS_E_CONFIG);
	expect_load_fails("garbage cert", pki("garbage.pem"), NULL, pki("garbage.pem"),
	    MAILTLS_E_CONFIG, MAILTLS_E_CONFIG);
	expect_load_fails("garbage key", pki("server-ec.pem"), pki("garbage.pem"), pki("garbage.pem"),
	    MAILTLS_E_CONFIG, MAILTLS_E_CONFIG);
	expect_load_fails("empty cert", pki("empty.pem"), NULL, pki("empty.pem"),
	    MAILTLS_E_CONFIG, MAILTLS_E_CONFIG);
	expect_load_fails("empty key", pki("server-ec.pem"), pki("empty.pem"), pki("empty.pem"),
	    MAILTLS_E_CONFIG, MAILTLS_E_CONFIG);
	expect_load_fails("truncated", pki("truncated.pem"), NULL, pki("truncated.pem"),
	    MAILTLS_E_CONFIG, MAILTLS_E_CONFIG);
	expect_load_fails("missing cert", missing, NULL, missing, MAILTLS_E_CONFIG, MAILTLS_E_SYSTEM);
	expect_load_fails("missing key", pki("server-ec.pem"), missing, missing,
	    MAILTLS_E_CONFIG, MAILTLS_E_SYSTEM);
	expect_load_fails("cert is a directory", subdir, NULL, subdir, MAILTLS_E_CONFIG, MAILTLS_E_SYSTEM);
	expect_load_fails("key is a directory", pki("server-ec.pem"), subdir, subdir,
	    MAILTLS_E_CONFIG, MAILTLS_E_SYSTEM);
	expect_load_fails("path through a file", notdir, NULL, notdir, MAILTLS_E_CONFIG, MAILTLS_E_SYSTEM);
	expect_load_fails("encrypted PKCS#8 key", pki("server-ec.pem"), enc, enc,
	    MAILTLS_E_CONFIG, MAILTLS_E_CONFIG);
	expect_load_fails("encrypted traditional key", pki("server-ec.pem"), trad, trad,
	    MAILTLS_E_CONFIG, MAILTLS_E_CONFIG);
	expect_load_fails("certificate without key", pki("server-ec.pem"), NULL, pki("server-ec.pem"),
	    MAILTLS_E_CONFIG, MAILTLS_E_CONFIG);
	expect_load_fails("key without certificate", pki("server-ec.key"), NULL, pki("server-ec.key"),
	    MAILTLS_E_CONFIG, MAILTLS_E_CONFIG);
	expect_load_fails("key file given as certificate", pki("server-ec.key"), pki("server-ec.key"),
	    pki("server-ec.key"), MAILTLS_E_CONFIG, MAILTLS_E_CONFIG);
}

/* An unreadable file.  chmod 000 does not stop root, and the tests run as
 * root here: the check then runs in a child that has dropped to nobody
 * (uid/gid 65534), which open(2) refuses with EACCES. */
static void test_unreadable_file(void)
{
	const char *dir = tu_scratch_dir();
	char path[512];
	char pem[16384];
	size_t pemlen;
	FILE *f;
	pid_t pid;
	int st;
	CHECK((f = fopen(pki("server-ec-combined.pem"), "r")) != NULL);
	pemlen = fread(pem, 1, sizeof pem, f);
	fclose(f);
	CHECK(pemlen > 0 && pemlen < sizeof pem);
	snprintf(path, sizeof path, "%s/unreadable.pem", dir);
	tu_sh("cp '%s' '%s'", pki("server-ec-combined.pem"), path);
	CHECK(chmod(path, 0) == 0);
	CHECK(chmod(dir, 0755) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct mailtls_config *sc;
		int e;
		tu_scratch_dirs_forget();   /* the parent removes them */
		if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
			T_FAIL("cannot drop privileges: %s", strerror(errno));
		sc = mailtls_config_new();
		CHECK(sc);
		errno = 0;
		CHECK_EQ(mailtls_config_set_keypair_file(sc, path, NULL), -1);
		e = errno;
		fprintf(stderr, "   unreadable: [%s] %s\n", mailtls_errcode_name(mailtls_config_errcode(sc)),
		    mailtls_config_error(sc));
		CHECK(mailtls_config_errcode(sc) == MAILTLS_E_SYSTEM || mailtls_config_errcode(sc) == MAILTLS_E_CONFIG);
		if (mailtls_config_errcode(sc) == MAILTLS_E_SYSTEM)
			CHECK_EQ(e, EACCES);   /* errno left as open(2) set it */
		CHECK(strstr(mailtls_config_error(sc), path));
		CHECK_EQ(mailtls_config_set_ca(sc, path, NULL), -1);
		CHECK(strstr(mailtls_config_error(sc), path));
		/* Still usable: a keypair given in memory loads. */
		CHECK_CFG_OK(sc, mailtls_config_set_keypair_mem(sc, pem, pemlen, NULL, 0));
		CHECK_EQ(mailtls_config_errcode(sc), MAILTLS_E_NONE);
		mailtls_config_free(sc);
		exit(0);
	}
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ------------------------------------------------------------------ */
/* Trust anchors                                                        */
/* ------------------------------------------------------------------ */

static void test_set_ca_errors(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = mailtls_config_new();
	const char *dir = tu_scratch_dir();
	char missing[512];
	const char *bad[] = { pki("server-ec.key"), pki("empty.pem"), pki("garbage.pem") };
	struct tu_conn k;
	snprintf(missing, sizeof missing, "%s/missing-ca.pem", dir);

	CHECK_EQ(mailtls_config_set_ca(cc, missing, NULL), -1);
	CHECK(mailtls_config_errcode(cc) == MAILTLS_E_CONFIG || mailtls_config_errcode(cc) == MAILTLS_E_SYSTEM);
	CHECK(strstr(mailtls_config_error(cc), missing));
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_EQ(mailtls_config_set_ca(cc, bad[i], NULL), -1);
		CHECK_EQ(mailtls_config_errcode(cc), MAILTLS_E_CONFIG);
		if (!strstr(mailtls_config_error(cc), bad[i]))
			T_FAIL("message \"%s\" does not name %s", mailtls_config_error(cc), bad[i]);
	}
	CHECK_EQ(mailtls_config_set_ca(cc, NULL, missing), -1);
	CHECK_EQ(mailtls_config_errcode(cc), MAILTLS_E_CONFIG);
	CHECK_EQ(mailtls_config_set_ca(cc, NULL, pki("ca.pem")), -1);   /* not a directory */
	CHECK_EQ(mailtls_config_errcode(cc), MAILTLS_E_CONFIG);

	/* None of the failures made it trust anything: still fails closed. */
	tu_conn_run(&k, sc, cc, "localhost");
	CHECK_EQ(k.cr, -1);
	CHECK(mailtls_errcode_is_verify(k.cerr));
	tu_conn_close(&k);

	/* And it is usable: a good CA file works now. */
	CHECK_CFG_OK(cc, mailtls_config_set_ca(cc, pki("ca.pem"), NULL));
	CHECK_EQ(mailtls_config_errcode(cc), MAILTLS_E_NONE);
	tu_conn_run(&k, sc, cc, "localhost");
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	tu_conn_close(&k);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

/* A hashed CA directory (openssl rehash layout). */
static void test_ca_directory(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = mailtls_config_new();
	const char *dir = tu_scratch_dir();
	struct tu_conn k;
	tu_sh("cp '%s' '%s/root.pem' && openssl rehash '%s'", pki("ca.pem"), dir, dir);
	CHECK_CFG_OK(cc, mailtls_config_set_ca(cc, NULL, dir));
	tu_conn_run(&k, sc, cc, "localhost");
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	tu_conn_close(&k);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

/* ------------------------------------------------------------------ */
/* From the environment                                                 */
/* ------------------------------------------------------------------ */

static void env_clear(void)
{
	static const char *const vars[] = { "CERTFILE", "KEYFILE", "CERTCHAINFILE", "CAFILE", "CADIR",
		"CIPHERS", "CERTFILE:a.test.example", "KEYFILE:a.test.example",
		"CERTFILE:*.wild.test.example", "KEYFILE:*.wild.test.example" };
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
		unsetenv(vars[i]);
}

static void test_config_from_env(void)
{
	struct mailtls_config *sc, *cc;
	struct tu_conn k;
	env_clear();

	/* Nothing set: nothing loaded, nothing changed. */
	sc = mailtls_config_new();
	CHECK_EQ(mailtls_config_from_env(sc), 0);
	mailtls_config_free(sc);

	setenv("CERTFILE", pki("server-ec.pem"), 1);
	setenv("KEYFILE", pki("server-ec.key"), 1);
	setenv("CAFILE", pki("ca.pem"), 1);
	setenv("CERTFILE:a.test.example", pki("sni-a.pem"), 1);
	setenv("KEYFILE:a.test.example", pki("sni-a.key"), 1);
	setenv("CERTFILE:*.wild.test.example", pki("sni-wild.pem"), 1);
	setenv("KEYFILE:*.wild.test.example", pki("sni-wild.key"), 1);
	sc = mailtls_config_new();
	CHECK(sc);
	{
		int n = mailtls_config_from_env(sc);
		if (n != 3)
			T_FAIL("mailtls_config_from_env returned %d (%s), expected 3", n, mailtls_config_error(sc));
	}
	/* As a server: the default and SNI keypairs. */
	cc = tu_client_config();
	CHECK_STR(served(sc, cc, "localhost"), tu_fingerprint_of(pki("server-ec-leaf.pem")));
	CHECK_STR(served(sc, cc, "a.test.example"), tu_fingerprint_of(pki("sni-a-leaf.pem")));
	CHECK_STR(served(sc, cc, "q.wild.test.example"), tu_fingerprint_of(pki("sni-wild-leaf.pem")));
	mailtls_config_free(cc);
	/* As a client: CAFILE is its trust anchor. */
	cc = tu_server_config("server-rsa.pem", "server-rsa.key");
	tu_conn_run(&k, cc, sc, "mail.test.example");
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	tu_conn_close(&k);
	mailtls_config_free(cc);
	mailtls_config_free(sc);

	/* Key in CERTFILE: KEYFILE unset. */
	env_clear();
	setenv("CERTFILE", pki("server-ec-combined.pem"), 1);
	sc = mailtls_config_new();
	CHECK_EQ(mailtls_config_from_env(sc), 1);
	cc = tu_client_config();
	CHECK_STR(served(sc, cc, "localhost"), tu_fingerprint_of(pki("server-ec-leaf.pem")));
	mailtls_config_free(sc);

	/* CERTCHAINFILE stands in for CERTFILE. */
	env_clear();
	setenv("CERTCHAINFILE", pki("server-rsa.pem"), 1);
	setenv("KEYFILE", pki("server-rsa.key"), 1);
	sc = mailtls_config_new();
	CHECK_EQ(mailtls_config_from_env(sc), 1);
	CHECK_STR(served(sc, cc, "localhost"), tu_fingerprint_of(pki("server-rsa-leaf.pem")));
	mailtls_config_free(sc);
	mailtls_config_free(cc);

	/* Errors name the variable and the file. */
	env_clear();
	setenv("CERTFILE", pki("garbage.pem"), 1);
	sc = mailtls_config_new();
	CHECK_EQ(mailtls_config_from_env(sc), -1);
	fprintf(stderr, "   bad CERTFILE: [%s] %s\n", mailtls_errcode_name(mailtls_config_errcode(sc)),
	    mailtls_config_error(sc));
	CHECK_EQ(mailtls_config_errcode(sc), MAILTLS_E_CONFIG);
	CHECK(strstr(mailtls_config_error(sc), "CERTFILE"));
	CHECK(strstr(mailtls_config_error(sc), pki("garbage.pem")));
	mailtls_config_free(sc);

	env_clear();
	setenv("CERTFILE", pki("server-ec.pem"), 1);
	setenv("KEYFILE", pki("server-rsa.key"), 1);
	sc = mailtls_config_new();
	CHECK_EQ(mailtls_config_from_env(sc), -1);
	CHECK(strstr(mailtls_config_error(sc), "CERTFILE"));
	mailtls_config_free(sc);

	env_clear();
	setenv("CERTFILE", pki("server-ec.pem"), 1);
	setenv("KEYFILE", pki("server-ec.key"), 1);
	setenv("CERTFILE:a.test.example", pki("empty.pem"), 1);
	sc = mailtls_config_new();
	CHECK_EQ(mailtls_config_from_env(sc), -1);
	fprintf(stderr, "   bad CERTFILE:name: %s\n", mailtls_config_error(sc));
	CHECK(strstr(mailtls_config_error(sc), "CERTFILE:a.test.example"));
	CHECK(strstr(mailtls_config_error(sc), pki("empty.pem")));
	mailtls_config_free(sc);

	env_clear();
	setenv("CAFILE", pki("empty.pem"), 1);
	sc = mailtls_config_new();
	CHECK_EQ(mailtls_config_from_env(sc), -1);
	fprintf(stderr, "   bad CAFILE: %s\n", mailtls_config_error(sc));
	CHECK_EQ(mailtls_config_errcode(sc), MAILTLS_E_CONFIG);
	CHECK(strstr(mailtls_config_error(sc), "CAFILE"));
	CHECK(strstr(mailtls_config_error(sc), pki("empty.pem")));
	mailtls_config_free(sc);

	env_clear();
	setenv("CIPHERS", "NO-SUCH-CIPHER", 1);
	sc = mailtls_config_new();
	CHECK_EQ(mailtls_config_from_env(sc), -1);
	CHECK(strstr(mailtls_config_error(sc), "CIPHERS"));
	mailtls_config_free(sc);
	env_clear();
}

/* ------------------------------------------------------------------ */
/* Protocol versions and ciphers                                        */
/* ------------------------------------------------------------------ */

/* Both ends refuse the handshake, for want of a common protocol or cipher. */
static void expect_tls_refused(struct mailtls_config *sc, struct mailtls_config *cc)
{
	struct tu_conn k;
	tu_conn_run(&k, sc, cc, "localhost");
	CHECK_EQ(k.cr, -1);
	CHECK_EQ(k.sr, -1);
	CHECK_EQ(k.cerr, MAILTLS_E_TLS);
	CHECK_EQ(k.serr, MAILTLS_E_TLS);
	tu_conn_close(&k);
}

static void test_tls12_server_cipher_order(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = tls12_client("ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256");
	struct mailtls_config *only256 = tls12_client("ECDHE-ECDSA-AES256-GCM-SHA384");
	struct tu_conn k;

	tu_conn_run(&k, sc, cc, "localhost");
	EXPECT_HS_OK(&k);
	CHECK_STR(mailtls_protocol(k.c), "TLSv1.2");
	CHECK_STR(mailtls_protocol(k.s), "TLSv1.2");
	/* The client preferred AES256; the server's order won. */
	CHECK_STR(mailtls_cipher(k.c), "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
	CHECK_STR(mailtls_cipher(k.s), "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
	CHECK_EQ(mailtls_cipher_bits(k.c), 128);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	tu_conn_close(&k);

	/* ... among what the client offers: AES256 when that is all. */
	tu_conn_run(&k, sc, only256, "localhost");
	EXPECT_HS_OK(&k);
	CHECK_STR(mailtls_cipher(k.c), "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
	CHECK_EQ(mailtls_cipher_bits(k.c), 256);
	tu_conn_close(&k);

	/* A client offering only a CBC suite: the default server has none. */
	mailtls_config_free(only256);
	only256 = tls12_client("ECDHE-ECDSA-AES128-SHA");
	expect_tls_refused(sc, only256);

	mailtls_config_free(sc);
	mailtls_config_free(cc);
	mailtls_config_free(only256);
}

static void test_old_protocols(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *c11 = tu_client_config(), *c10 = tu_client_config();
	struct tu_conn k;
	CHECK_CFG_OK(c11, mailtls_config_set_max_protocol(c11, MAILTLS_TLS1_1));
	CHECK_CFG_OK(c11, mailtls_config_set_min_protocol(c11, MAILTLS_TLS1_0));
	CHECK_CFG_OK(c10, mailtls_config_set_max_protocol(c10, MAILTLS_TLS1_0));
	CHECK_CFG_OK(c10, mailtls_config_set_min_protocol(c10, MAILTLS_TLS1_0));

	/* A default server (TLS 1.2 minimum) refuses both. */
	expect_tls_refused(sc, c11);
	expect_tls_refused(sc, c10);

	/* A server that lowered its floor (and so got the compat list). */
	CHECK_CFG_OK(sc, mailtls_config_set_min_protocol(sc, MAILTLS_TLS1_0));
	tu_conn_run(&k, sc, c11, "localhost");
	EXPECT_HS_OK(&k);
	CHECK_STR(mailtls_protocol(k.c), "TLSv1.1");
	CHECK_STR(mailtls_protocol(k.s), "TLSv1.1");
	CHECK(mailtls_cipher(k.c) && strstr(mailtls_cipher(k.c), "_CBC_"));
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	tu_conn_close(&k);
	tu_conn_run(&k, sc, c10, "localhost");
	EXPECT_HS_OK(&k);
	CHECK_STR(mailtls_protocol(k.c), "TLSv1");
	CHECK(mailtls_cipher(k.c) && strstr(mailtls_cipher(k.c), "_CBC_"));
	tu_conn_close(&k);

	/* ... and still speaks TLS 1.3 to a default client. */
	{
		struct mailtls_config *cc = tu_client_config();
		tu_conn_run(&k, sc, cc, "localhost");
		EXPECT_HS_OK(&k);
		CHECK_STR(mailtls_protocol(k.c), "TLSv1.3");
		tu_conn_close(&k);
		mailtls_config_free(cc);
	}
	mailtls_config_free(sc);
	mailtls_config_free(c11);
	mailtls_config_free(c10);
}

/* ------------------------------------------------------------------ */

int main(void)
{
	RUN_ISOLATED(test_combined_pem_serves_chain);
	RUN_ISOLATED(test_combined_pem_key_last);
	RUN_ISOLATED(test_dual_default_client_gets_ecdsa);
	RUN_ISOLATED(test_dual_rsa_only_client_gets_rsa);
	RUN_ISOLATED(test_same_type_replaces);
	RUN_ISOLATED(test_sni_selection);
	RUN_ISOLATED(test_sni_exact_beats_wildcard);
	RUN_ISOLATED(test_sni_two_key_types);
	RUN_ISOLATED(test_sni_bad_names);
	RUN_ISOLATED(test_sni_strict);
	RUN_ISOLATED(test_bad_keypair_files);
	RUN_ISOLATED(test_unreadable_file);
	RUN_ISOLATED(test_set_ca_errors);
	RUN_ISOLATED(test_ca_directory);
	RUN_ISOLATED(test_config_from_env);
	RUN_ISOLATED(test_tls12_server_cipher_order);
	RUN_ISOLATED(test_old_protocols);
	return tu_isolated_result();
}
