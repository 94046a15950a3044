/* Peer verification, checked from the side that verifies, with a client
 * and a server of ours on a socketpair:
 *
 *  - each failure in its own category (unknown CA, name, expiry,
 *    self-signed), temporary for a mail program; optional and no
 *    verification; a client told nothing to trust fails closed;
 *  - the names: verify names apart from SNI, no SNI for an address, IP
 *    SANs, wildcards, the subject CN only without a dNSName;
 *  - pins of the certificate and of its public key;
 *  - the verification hook, both ways;
 *  - client certificates on the server;
 *  - resumption, TLS 1.3 and 1.2, with the peer verified again.
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

/* "SPKI-SHA256:<hex>" of the first certificate in |file|, per openssl(1). */
static const char *spki_of(const char *file)
{
	static char res[4][96];
	static int n;
	char line[512], *r = res[n++ % 4], *p;
	tu_sh_line(line, sizeof line, "openssl x509 -in '%s' -pubkey -noout | openssl pkey -pubin -outform DER"
	    " | openssl dgst -sha256", file);
	p = strrchr(line, ' ');
	CHECK(p && strlen(p + 1) == 64);
	snprintf(r, sizeof res[0], "SPKI-SHA256:%s", p + 1);
	return r;
}

/* A leaf signed by the test intermediate, made here with openssl(1), with
 * subject CN=|cn| and the extension line |san| ("subjectAltName=...", or
 * "" for none).  Returns the chain file; the key is <chain>.key. */
static const char *make_leaf(const char *dir, const char *tag, const char *cn, const char *san)
{
	static char chain[4][600];
	static int n;
	char *c = chain[n++ % 4], base[560];
	snprintf(base, sizeof base, "%s/%s", dir, tag);
	snprintf(c, sizeof chain[0], "%s.pem", base);
	tu_sh("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout '%s.pem.key'"
	    " -subj '/CN=%s' -out '%s.csr' 2>/dev/null", base, cn, base);
	tu_sh("printf 'basicConstraints=critical,CA:FALSE\\nextendedKeyUsage=serverAuth\\n%s\\n' > '%s.ext'",
	    san, base);
	tu_sh("openssl x509 -req -in '%s.csr' -CA '%s' -CAkey '%s' -set_serial %d -days 30 -sha256"
	    " -extfile '%s.ext' -out '%s-leaf.pem' 2>/dev/null", base, pki("int.pem"), pki("int.key"),
	    1000 + n, base, base);
	tu_sh("cat '%s-leaf.pem' '%s' > '%s.pem'", base, pki("int.pem"), base);
	return c;
}

static struct mailtls_config *server_with(const char *chain, const char *key)
{
	struct mailtls_config *c = mailtls_config_new();
	CHECK(c);
	CHECK_CFG_OK(c, mailtls_config_set_keypair_file(c, chain, key));
	return c;
}

/* expect_client_fails: the client refuses the server with |code|; the
 * server sees the handshake fail too. */
static void expect_client_fails(struct mailtls_config *sc, struct mailtls_config *cc, const char *name,
    int code)
{
	struct tu_conn k;
	tu_conn_run(&k, sc, cc, name);
	fprintf(stderr, "   %s: client %d [%s] %s\n", name ? name : "(no name)", k.cr,
	    mailtls_errcode_name(k.cerr), mailtls_error(k.c));
	if (k.cr != -1)
		T_FAIL("client accepted the peer (for %s), expected %s", name ? name : "(no name)",
		    mailtls_errcode_name(code));
	if (k.cerr != code)
		T_FAIL("client failed with %s (%s), expected %s", mailtls_errcode_name(k.cerr),
		    mailtls_error(k.c), mailtls_errcode_name(code));
	CHECK(mailtls_error(k.c)[0] != 0);
	CHECK(mailtls_errcode_is_verify(k.cerr));
	CHECK(mailtls_error_temporary(k.cerr));
	CHECK_EQ(k.sr, -1);
	CHECK_EQ(mailtls_peer_verified(k.c), 0);
	tu_conn_close(&k);
}

/* expect_client_ok: handshake done, the peer verified. */
static void expect_client_ok(struct mailtls_config *sc, struct mailtls_config *cc, const char *name)
{
	struct tu_conn k;
	tu_conn_run(&k, sc, cc, name);
	if (k.cr != 0 || k.sr != 0)
		T_FAIL("handshake for %s failed: client %d %s (%s), server %d %s (%s)", name ? name : "(no name)",
		    k.cr, mailtls_error(k.c), mailtls_errcode_name(k.cerr), k.sr, mailtls_error(k.s),
		    mailtls_errcode_name(k.serr));
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	CHECK_EQ(mailtls_peer_verify_result(k.c), MAILTLS_E_NONE);
	tu_conn_close(&k);
}

/* ------------------------------------------------------------------ */
/* Failure categories                                                   */
/* ------------------------------------------------------------------ */

static void test_good_chain(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = tu_client_config();
	expect_client_ok(sc, cc, "localhost");
	expect_client_ok(sc, cc, "mail.test.example");
	expect_client_ok(sc, cc, "MAIL.Test.Example");
	mailtls_config_free(sc);
	sc = tu_server_config("server-rsa.pem", "server-rsa.key");
	expect_client_ok(sc, cc, "mail.test.example");
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

static void test_unknown_ca(void)
{
	struct mailtls_config *cc = tu_client_config(), *sc;
	const char *dir = tu_scratch_dir();
	char leafonly[600];
	/* The unknown CA's leaf alone: its issuer is nowhere to be found. */
	snprintf(leafonly, sizeof leafonly, "%s/unknown-leafonly.pem", dir);
	tu_sh("openssl x509 -in '%s' -out '%s'", pki("unknown.pem"), leafonly);
	sc = server_with(leafonly, pki("unknown.key"));
	expect_client_fails(sc, cc, "localhost", MAILTLS_E_VERIFY_UNTRUSTED);
	mailtls_config_free(sc);
	/* Leaf and the (self-signed) unknown root, as unknown.pem sends them:
	 * still a chain to an unknown CA, not a self-signed peer. */
	sc = tu_server_config("unknown.pem", "unknown.key");
	expect_client_fails(sc, cc, "localhost", MAILTLS_E_VERIFY_UNTRUSTED);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

static void test_wrong_name(void)
{
	struct mailtls_config *sc = tu_server_config("wrongname.pem", "wrongname.key");
	struct mailtls_config *cc = tu_client_config();
	expect_client_fails(sc, cc, "localhost", MAILTLS_E_VERIFY_NAME);
	expect_client_fails(sc, cc, "example.net", MAILTLS_E_VERIFY_NAME);
	expect_client_ok(sc, cc, "other.example.net");
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

static void test_expired(void)
{
	struct mailtls_config *sc = tu_server_config("expired.pem", "expired.key");
	struct mailtls_config *cc = tu_client_config();
	expect_client_fails(sc, cc, "localhost", MAILTLS_E_VERIFY_EXPIRED);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

static void test_selfsigned(void)
{
	struct mailtls_config *sc = tu_server_config("selfsigned.pem", "selfsigned.key");
	struct mailtls_config *cc = tu_client_config();
	expect_client_fails(sc, cc, "localhost", MAILTLS_E_VERIFY_SELFSIGNED);
	mailtls_config_free(sc);
	/* ... unless it is a trust anchor itself. */
	CHECK_CFG_OK(cc, mailtls_config_set_ca(cc, pki("selfsigned.pem"), NULL));
	sc = tu_server_config("selfsigned.pem", "selfsigned.key");
	expect_client_ok(sc, cc, "localhost");
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

static void test_error_categories_temporary(void)
{
	static const int codes[] = { MAILTLS_E_VERIFY, MAILTLS_E_VERIFY_UNTRUSTED, MAILTLS_E_VERIFY_NAME,
		MAILTLS_E_VERIFY_EXPIRED, MAILTLS_E_VERIFY_SELFSIGNED, MAILTLS_E_VERIFY_PIN,
		MAILTLS_E_VERIFY_HOOK, MAILTLS_E_VERIFY_NOCERT };
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		CHECK(mailtls_error_temporary(codes[i]));
		CHECK(mailtls_errcode_is_verify(codes[i]));
	}
	CHECK(!mailtls_errcode_is_verify(MAILTLS_E_TLS));
	CHECK(!mailtls_error_temporary(MAILTLS_E_USAGE));
	CHECK_STR(mailtls_errcode_name(MAILTLS_E_VERIFY_NAME), "verify-name");
	CHECK_STR(mailtls_errcode_name(MAILTLS_E_VERIFY_UNTRUSTED), "verify-untrusted");
}

/* OPTIONAL: every failure above completes, reported, not fatal. */
static void test_optional_reports(void)
{
	static const struct { const char *cert, *key; int code; } cases[] = {
		{ "unknown.pem", "unknown.key", MAILTLS_E_VERIFY_UNTRUSTED },
		{ "wrongname.pem", "wrongname.key", MAILTLS_E_VERIFY_NAME },
		{ "expired.pem", "expired.key", MAILTLS_E_VERIFY_EXPIRED },
		{ "selfsigned.pem", "selfsigned.key", MAILTLS_E_VERIFY_SELFSIGNED },
		{ "server-ec.pem", "server-ec.key", MAILTLS_E_NONE },
	};
	struct mailtls_config *cc = tu_client_config();
	int bad = 0;
	CHECK_CFG_OK(cc, mailtls_config_set_verify(cc, MAILTLS_VERIFY_OPTIONAL));
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct mailtls_config *sc = tu_server_config(cases[i].cert, cases[i].key);
		struct tu_conn k;
		char buf[8];
		tu_conn_run(&k, sc, cc, "localhost");
		EXPECT_HS_OK(&k);
		CHECK_EQ(mailtls_peer_verified(k.c), cases[i].code == MAILTLS_E_NONE);
		CHECK(mailtls_peer_has_cert(k.c));
		fprintf(stderr, "   optional %s: verify result %s\n", cases[i].cert,
		    mailtls_errcode_name(mailtls_peer_verify_result(k.c)));
		if (mailtls_peer_verify_result(k.c) != cases[i].code) {
			fprintf(stderr, "   MISMATCH: %s gives %s, expected %s\n", cases[i].cert,
			    mailtls_errcode_name(mailtls_peer_verify_result(k.c)), mailtls_errcode_name(cases[i].code));
			bad++;
		}
		/* The session works. */
		CHECK_EQ(mailtls_write(k.s, "ok", 2), 2);
		CHECK_EQ(mailtls_read(k.c, buf, sizeof buf), 2);
		tu_conn_close(&k);
		mailtls_config_free(sc);
	}
	mailtls_config_free(cc);
	CHECK_EQ(bad, 0);
}

static void test_verify_none(void)
{
	struct mailtls_config *cc = tu_client_config();
	static const char *const certs[][2] = { { "unknown.pem", "unknown.key" },
		{ "wrongname.pem", "wrongname.key" }, { "expired.pem", "expired.key" },
		{ "selfsigned.pem", "selfsigned.key" } };
	CHECK_CFG_OK(cc, mailtls_config_set_verify(cc, MAILTLS_VERIFY_NONE));
	for (size_t i = 0; i < sizeof certs / sizeof certs[0]; i++) {
		struct mailtls_config *sc = tu_server_config(certs[i][0], certs[i][1]);
		struct tu_conn k;
		tu_conn_run(&k, sc, cc, "localhost");
		EXPECT_HS_OK(&k);
		CHECK_EQ(mailtls_peer_verified(k.c), 0);
		CHECK(mailtls_peer_verify_result(k.c) != MAILTLS_E_NONE);
		CHECK(mailtls_peer_has_cert(k.c));
		CHECK(mailtls_peer_fingerprint(k.c));
		tu_conn_close(&k);
		mailtls_config_free(sc);
	}
	CHECK_EQ(mailtls_config_set_verify(cc, 3), -1);
	CHECK_EQ(mailtls_config_errcode(cc), MAILTLS_E_USAGE);
	CHECK_EQ(mailtls_config_set_verify(cc, -1), -1);
	mailtls_config_free(cc);
}

/* A client told nothing to trust fails closed; so does one with nothing
 * to check the name against. */
static void test_fail_closed(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *none = mailtls_config_new(), *cc = tu_client_config();
	CHECK(none);
	expect_client_fails(sc, none, "localhost", MAILTLS_E_VERIFY_UNTRUSTED);
	/* Setting the mode explicitly changes nothing. */
	CHECK_CFG_OK(none, mailtls_config_set_verify(none, MAILTLS_VERIFY_REQUIRE));
	expect_client_fails(sc, none, "localhost", MAILTLS_E_VERIFY_UNTRUSTED);
	/* No servername and no verify names: no name to check. */
	expect_client_fails(sc, cc, NULL, MAILTLS_E_VERIFY_NAME);
	mailtls_config_free(sc);
	mailtls_config_free(none);
	mailtls_config_free(cc);
}

/* ------------------------------------------------------------------ */
/* Names                                                                */
/* ------------------------------------------------------------------ */

static void test_verify_names_apart_from_sni(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = tu_client_config();
	const char *mail[] = { "mail.test.example" };
	const char *two[] = { "nope.example", "mail.test.example" };
	const char *nope[] = { "nope.example" };
	struct tu_conn k;

	/* SNI x.invalid, verified as mail.test.example. */
	tu_conn_open(&k, sc, cc, "x.invalid");
	CHECK_OK(k.c, mailtls_set_verify_names(k.c, mail, 1));
	tu_conn_hs(&k);
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	CHECK_STR(mailtls_servername(k.s), "x.invalid");
	CHECK_STR(mailtls_servername(k.c), "x.invalid");
	/* Too late now. */
	CHECK_EQ(mailtls_set_verify_names(k.c, mail, 1), -1);
	CHECK_EQ(mailtls_errcode(k.c), MAILTLS_E_USAGE);
	/* Never on a server. */
	CHECK_EQ(mailtls_set_verify_names(k.s, mail, 1), -1);
	CHECK_EQ(mailtls_errcode(k.s), MAILTLS_E_USAGE);
	tu_conn_close(&k);

	/* Any one of several names will do. */
	tu_conn_open(&k, sc, cc, "x.invalid");
	CHECK_OK(k.c, mailtls_set_verify_names(k.c, two, 2));
	tu_conn_hs(&k);
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	tu_conn_close(&k);

	/* The names replace the servername: a matching SNI does not help. */
	tu_conn_open(&k, sc, cc, "localhost");
	CHECK_OK(k.c, mailtls_set_verify_names(k.c, nope, 1));
	tu_conn_hs(&k);
	CHECK_EQ(k.cr, -1);
	CHECK_EQ(k.cerr, MAILTLS_E_VERIFY_NAME);
	CHECK_EQ(k.sr, -1);
	tu_conn_close(&k);

	/* n 0 restores the servername. */
	tu_conn_open(&k, sc, cc, "localhost");
	CHECK_OK(k.c, mailtls_set_verify_names(k.c, nope, 1));
	CHECK_OK(k.c, mailtls_set_verify_names(k.c, NULL, 0));
	tu_conn_hs(&k);
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	tu_conn_close(&k);

	/* No servername at all (no SNI) but a verify name. */
	tu_conn_open(&k, sc, cc, NULL);
	CHECK_OK(k.c, mailtls_set_verify_names(k.c, mail, 1));
	tu_conn_hs(&k);
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	CHECK(mailtls_servername(k.s) == NULL);
	tu_conn_close(&k);

	/* The names are copied. */
	{
		char name[32];
		const char *v[] = { name };
		strcpy(name, "mail.test.example");
		tu_conn_open(&k, sc, cc, "x.invalid");
		CHECK_OK(k.c, mailtls_set_verify_names(k.c, v, 1));
		strcpy(name, "nope.example");
		tu_conn_hs(&k);
		EXPECT_HS_OK(&k);
		tu_conn_close(&k);
	}
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

/* Addresses among the verify names: "passes if it matches any one". */
static void test_verify_names_with_addresses(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = tu_client_config();
	const char *ip_only[] = { "127.0.0.1" };
	const char *host_then_ip[] = { "nope.example", "127.0.0.1" };
	const char *ip_then_host[] = { "10.9.8.7", "mail.test.example" };
	const char *two_ips[] = { "127.0.0.1", "10.9.8.7" };
	const char *bad_ip[] = { "10.9.8.7" };
	struct { const char **names; size_t n; int ok; const char *what; } cases[] = {
		{ ip_only, 1, 1, "127.0.0.1" },
		{ bad_ip, 1, 0, "10.9.8.7" },
		{ host_then_ip, 2, 1, "nope.example, 127.0.0.1" },
		{ ip_then_host, 2, 1, "10.9.8.7, mail.test.example" },
		{ two_ips, 2, 1, "127.0.0.1, 10.9.8.7" },
	};
	int bad = 0;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct tu_conn k;
		tu_conn_open(&k, sc, cc, "mx.invalid");
		CHECK_OK(k.c, mailtls_set_verify_names(k.c, cases[i].names, cases[i].n));
		tu_conn_hs(&k);
		fprintf(stderr, "   names {%s}: %s%s%s\n", cases[i].what, k.cr == 0 ? "accepted" : "refused: ",
		    k.cr == 0 ? "" : mailtls_errcode_name(k.cerr), cases[i].ok ? "" : " (expected refused)");
		if (cases[i].ok ? k.cr != 0 : (k.cr != -1 || k.cerr != MAILTLS_E_VERIFY_NAME)) {
			fprintf(stderr, "   WRONG for {%s}: expected %s\n", cases[i].what,
			    cases[i].ok ? "accepted" : "refused with verify-name");
			bad++;
		}
		tu_conn_close(&k);
	}
	mailtls_config_free(sc);
	mailtls_config_free(cc);
	CHECK_EQ(bad, 0);
}

/* An address as servername: no SNI, verified against the IP SANs. */
static void test_address_no_sni(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = tu_client_config();
	struct tu_conn k;
	tu_conn_run(&k, sc, cc, "127.0.0.1");
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	CHECK(mailtls_servername(k.s) == NULL);
	tu_conn_close(&k);
	tu_conn_run(&k, sc, cc, "::1");
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	CHECK(mailtls_servername(k.s) == NULL);
	tu_conn_close(&k);
	/* An address the certificate does not carry. */
	expect_client_fails(sc, cc, "10.9.8.7", MAILTLS_E_VERIFY_NAME);
	expect_client_fails(sc, cc, "::2", MAILTLS_E_VERIFY_NAME);
	/* A name-only certificate does not match an address. */
	mailtls_config_free(sc);
	sc = tu_server_config("sni-a.pem", "sni-a.key");
	expect_client_fails(sc, cc, "127.0.0.1", MAILTLS_E_VERIFY_NAME);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

/* mailtls_servername on the client is "SNI sent": none for an address. */
static void test_address_client_servername(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = tu_client_config();
	struct tu_conn k;
	tu_conn_run(&k, sc, cc, "127.0.0.1");
	EXPECT_HS_OK(&k);
	if (mailtls_servername(k.c) != NULL)
		T_FAIL("client mailtls_servername is \"%s\" although no SNI was sent", mailtls_servername(k.c));
	tu_conn_close(&k);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

static void test_wildcards(void)
{
	struct mailtls_config *sc = tu_server_config("sni-wild.pem", "sni-wild.key");
	struct mailtls_config *cc = tu_client_config();
	expect_client_ok(sc, cc, "a.wild.test.example");
	expect_client_ok(sc, cc, "Mx-1.WILD.test.example");
	expect_client_fails(sc, cc, "wild.test.example", MAILTLS_E_VERIFY_NAME);
	expect_client_fails(sc, cc, "a.b.wild.test.example", MAILTLS_E_VERIFY_NAME);
	expect_client_fails(sc, cc, "test.example", MAILTLS_E_VERIFY_NAME);
	expect_client_fails(sc, cc, "a.wild.test.example.net", MAILTLS_E_VERIFY_NAME);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

/* The subject CN counts only when there is no dNSName SAN. */
static void test_cn_only(void)
{
	struct mailtls_config *sc = tu_server_config("cnonly.pem", "cnonly.key");
	struct mailtls_config *cc = tu_client_config();
	expect_client_ok(sc, cc, "localhost");
	expect_client_fails(sc, cc, "mail.test.example", MAILTLS_E_VERIFY_NAME);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

static void test_cn_ignored_with_dnsname(void)
{
	const char *dir = tu_scratch_dir();
	struct mailtls_config *cc = tu_client_config(), *sc;
	char key[700];
	/* CN=localhost, SAN dNSName only.example: the CN does not count. */
	const char *chain = make_leaf(dir, "cn-and-san", "localhost", "subjectAltName=DNS:only.example");
	snprintf(key, sizeof key, "%s.key", chain);
	sc = server_with(chain, key);
	expect_client_ok(sc, cc, "only.example");
	expect_client_fails(sc, cc, "localhost", MAILTLS_E_VERIFY_NAME);
	mailtls_config_free(sc);
	/* CN=localhost with only an IP SAN: no dNSName, so the CN counts. */
	chain = make_leaf(dir, "cn-and-ip", "localhost", "subjectAltName=IP:127.0.0.1");
	snprintf(key, sizeof key, "%s.key", chain);
	sc = server_with(chain, key);
	expect_client_ok(sc, cc, "127.0.0.1");
	expect_client_ok(sc, cc, "localhost");
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

/* ------------------------------------------------------------------ */
/* Pins                                                                 */
/* ------------------------------------------------------------------ */

static void with_colons_upper(char *out, size_t outlen, const char *pin)
{
	const char *hex = strchr(pin, ':') + 1;
	size_t o = (size_t)(hex - pin);
	memcpy(out, pin, o);
	for (size_t i = 0; hex[i] && o + 4 < outlen; i += 2) {
		if (i)
			out[o++] = ':';
		out[o++] = (char)toupper((unsigned char)hex[i]);
		out[o++] = (char)toupper((unsigned char)hex[i + 1]);
	}
	out[o] = 0;
}

static void test_pins(void)
{
	struct mailtls_config *wrong = tu_server_config("wrongname.pem", "wrongname.key");
	struct mailtls_config *unknown = tu_server_config("unknown.pem", "unknown.key");
	struct mailtls_config *good = tu_server_config("server-ec.pem", "server-ec.key");
	const char *fp_wrong = tu_fingerprint_of(pki("wrongname-leaf.pem"));
	const char *fp_unknown = tu_fingerprint_of(pki("unknown.pem"));
	const char *fp_good = tu_fingerprint_of(pki("server-ec-leaf.pem"));
	const char *spki_unknown = spki_of(pki("unknown.pem"));
	const char *spki_good = spki_of(pki("server-ec-leaf.pem"));
	struct mailtls_config *cc;
	char fancy[200];
	struct tu_conn k;

	/* The leaf's digest: accepted without name or chain checks. */
	cc = tu_client_config();
	CHECK_CFG_OK(cc, mailtls_config_add_pin(cc, fp_wrong));
	tu_conn_run(&k, wrong, cc, "localhost");
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	CHECK_EQ(mailtls_peer_verify_result(k.c), MAILTLS_E_NONE);
	CHECK_STR(mailtls_peer_fingerprint(k.c), fp_wrong);
	tu_conn_close(&k);
	/* Any other peer: refused, even one that would verify. */
	expect_client_fails(good, cc, "localhost", MAILTLS_E_VERIFY_PIN);
	expect_client_fails(unknown, cc, "localhost", MAILTLS_E_VERIFY_PIN);
	mailtls_config_free(cc);

	/* Unknown CA, right pin; a client with no trust anchors at all. */
	cc = mailtls_config_new();
	CHECK_CFG_OK(cc, mailtls_config_add_pin(cc, fp_unknown));
	expect_client_ok(unknown, cc, "some.other.name");
	expect_client_fails(wrong, cc, "other.example.net", MAILTLS_E_VERIFY_PIN);
	mailtls_config_free(cc);

	/* Several pins: any one matches. */
	cc = tu_client_config();
	CHECK_CFG_OK(cc, mailtls_config_add_pin(cc, fp_good));
	CHECK_CFG_OK(cc, mailtls_config_add_pin(cc, fp_unknown));
	expect_client_ok(unknown, cc, "localhost");
	expect_client_ok(good, cc, "localhost");
	expect_client_fails(wrong, cc, "other.example.net", MAILTLS_E_VERIFY_PIN);
	mailtls_config_free(cc);

	/* Colons between the pairs and upper case hex. */
	cc = tu_client_config();
	with_colons_upper(fancy, sizeof fancy, fp_wrong);
	CHECK_CFG_OK(cc, mailtls_config_add_pin(cc, fancy));
	expect_client_ok(wrong, cc, "localhost");
	mailtls_config_free(cc);

	/* The public key's digest. */
	cc = tu_client_config();
	CHECK_CFG_OK(cc, mailtls_config_add_pin(cc, spki_unknown));
	expect_client_ok(unknown, cc, "nomatter.example");
	expect_client_fails(good, cc, "localhost", MAILTLS_E_VERIFY_PIN);
	mailtls_config_free(cc);
	cc = tu_client_config();
	with_colons_upper(fancy, sizeof fancy, spki_good);
	CHECK_CFG_OK(cc, mailtls_config_add_pin(cc, fancy));
	expect_client_ok(good, cc, "nomatter.example");
	/* A certificate digest does not match as a key digest, nor back. */
	mailtls_config_free(cc);
	cc = tu_client_config();
	snprintf(fancy, sizeof fancy, "SPKI-SHA256:%s", fp_good + 7);
	CHECK_CFG_OK(cc, mailtls_config_add_pin(cc, fancy));
	expect_client_fails(good, cc, "localhost", MAILTLS_E_VERIFY_PIN);
	mailtls_config_free(cc);
	cc = tu_client_config();
	snprintf(fancy, sizeof fancy, "SHA256:%s", spki_good + 12);
	CHECK_CFG_OK(cc, mailtls_config_add_pin(cc, fancy));
	expect_client_fails(good, cc, "localhost", MAILTLS_E_VERIFY_PIN);
	mailtls_config_free(cc);

	/* Pins hold whatever the mode: NONE and OPTIONAL refuse too. */
	for (int mode = MAILTLS_VERIFY_NONE; mode <= MAILTLS_VERIFY_OPTIONAL; mode++) {
		cc = tu_client_config();
		CHECK_CFG_OK(cc, mailtls_config_set_verify(cc, mode));
		CHECK_CFG_OK(cc, mailtls_config_add_pin(cc, fp_wrong));
		expect_client_fails(good, cc, "localhost", MAILTLS_E_VERIFY_PIN);
		expect_client_ok(wrong, cc, "localhost");
		mailtls_config_free(cc);
	}
	mailtls_config_free(wrong);
	mailtls_config_free(unknown);
	mailtls_config_free(good);
}

static void test_malformed_pins(void)
{
	struct mailtls_config *cc = tu_client_config();
	struct mailtls_config *good = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *wrong = tu_server_config("wrongname.pem", "wrongname.key");
	const char *fp = tu_fingerprint_of(pki("server-ec-leaf.pem"));
	char buf[8][200];
	const char *bad[20];
	size_t nbad = 0;
	bad[nbad++] = "";
	bad[nbad++] = "SHA256:";
	bad[nbad++] = "SHA256";
	bad[nbad++] = fp + 7;                                      /* no prefix */
	snprintf(buf[0], sizeof buf[0], "SHA1:%s", fp + 7);        bad[nbad++] = buf[0];
	snprintf(buf[1], sizeof buf[1], "SHA256:%.62s", fp + 7);   bad[nbad++] = buf[1];   /* 31 bytes */
	snprintf(buf[2], sizeof buf[2], "%s00", fp);               bad[nbad++] = buf[2];   /* 33 bytes */
	snprintf(buf[3], sizeof buf[3], "%s0", fp);                bad[nbad++] = buf[3];   /* odd */
	snprintf(buf[4], sizeof buf[4], "SHA256:%.63sg", fp + 7);  bad[nbad++] = buf[4];   /* not hex */
	snprintf(buf[5], sizeof buf[5], "SHA256: %s", fp + 7);     bad[nbad++] = buf[5];
	snprintf(buf[6], sizeof buf[6], "SPKI-SHA256:%.60s", fp + 7); bad[nbad++] = buf[6];
	snprintf(buf[7], sizeof buf[7], "%s ", fp);                bad[nbad++] = buf[7];
	bad[nbad++] = "SHA256:zz";
	for (size_t i = 0; i < nbad; i++) {
		int r = mailtls_config_add_pin(cc, bad[i]);
		if (r != -1 || mailtls_config_errcode(cc) != MAILTLS_E_USAGE)
			T_FAIL("pin \"%s\": %d (%s), expected -1 usage", bad[i], r,
			    mailtls_errcode_name(mailtls_config_errcode(cc)));
		CHECK(mailtls_config_error(cc)[0] != 0);
		CHECK(!mailtls_error_temporary(mailtls_config_errcode(cc)));
	}
	CHECK_EQ(mailtls_config_add_pin(cc, NULL), -1);
	CHECK_EQ(mailtls_config_errcode(cc), MAILTLS_E_USAGE);
	/* None of them was added: the client verifies as without pins. */
	expect_client_ok(good, cc, "localhost");
	expect_client_fails(wrong, cc, "localhost", MAILTLS_E_VERIFY_NAME);
	mailtls_config_free(cc);
	mailtls_config_free(good);
	mailtls_config_free(wrong);
}

/* ------------------------------------------------------------------ */
/* The verification hook                                                */
/* ------------------------------------------------------------------ */

struct hook_state {
	int calls;
	int result;
	size_t n;
	unsigned char *der0;
	size_t len0;
	int verdict;          /* what to return */
	const char *message;  /* for mailtls_set_verify_error, or NULL */
	struct mailtls *s;
};

static int hook(void *arg, struct mailtls *s, const unsigned char *const *der, const size_t *derlen,
    size_t n, int result)
{
	struct hook_state *h = arg;
	h->calls++;
	h->result = result;
	h->n = n;
	h->s = s;
	free(h->der0);
	h->der0 = NULL;
	if (n >= 1) {
		h->der0 = malloc(derlen[0]);
		CHECK(h->der0);
		memcpy(h->der0, der[0], derlen[0]);
		h->len0 = derlen[0];
	}
	if (h->message)
		mailtls_set_verify_error(s, h->message);
	return h->verdict;
}

/* hook_install: |h| fresh, returning |verdict|, as |cc|'s hook. */
static void hook_install(struct hook_state *h, struct mailtls_config *cc, int verdict)
{
	memset(h, 0, sizeof *h);
	h->verdict = verdict;
	mailtls_config_set_verify_cb(cc, hook, h);
}

static void test_hook_rejects(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = tu_client_config();
	struct hook_state h;
	struct tu_conn k;
	hook_install(&h, cc, -1);
	h.message = "policy: mx.example needs DANE";
	tu_conn_run(&k, sc, cc, "localhost");
	CHECK_EQ(h.calls, 1);
	CHECK(h.s == k.c);
	CHECK_EQ(h.result, MAILTLS_E_NONE);      /* the library's own checks passed */
	CHECK_EQ(k.cr, -1);
	CHECK_EQ(k.cerr, MAILTLS_E_VERIFY_HOOK);
	if (!strstr(mailtls_error(k.c), "policy: mx.example needs DANE"))
		T_FAIL("error \"%s\" lacks the hook's message", mailtls_error(k.c));
	CHECK(mailtls_error_temporary(k.cerr));
	CHECK_EQ(k.sr, -1);
	tu_conn_close(&k);
	/* Without a message: the category and some text. */
	h.message = NULL;
	h.calls = 0;
	tu_conn_run(&k, sc, cc, "localhost");
	CHECK_EQ(h.calls, 1);
	CHECK_EQ(k.cr, -1);
	CHECK_EQ(k.cerr, MAILTLS_E_VERIFY_HOOK);
	CHECK(mailtls_error(k.c)[0] != 0);
	CHECK(!strstr(mailtls_error(k.c), "DANE"));   /* the old message did not stick */
	tu_conn_close(&k);
	free(h.der0);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

static void test_hook_accepts_untrusted(void)
{
	struct mailtls_config *sc = tu_server_config("unknown.pem", "unknown.key");
	struct mailtls_config *cc = tu_client_config();
	struct hook_state h;
	struct tu_conn k;
	size_t leaflen;
	unsigned char *leaf = tu_der_of(pki("unknown.pem"), &leaflen);
	hook_install(&h, cc, 0);
	tu_conn_run(&k, sc, cc, "localhost");
	EXPECT_HS_OK(&k);
	CHECK_EQ(h.calls, 1);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	CHECK_EQ(mailtls_peer_verify_result(k.c), MAILTLS_E_NONE);
	CHECK_EQ(mailtls_errcode(k.c), MAILTLS_E_NONE);
	CHECK(h.n >= 1);
	CHECK_EQ(h.n, 2);   /* unknown.pem: leaf and its CA */
	CHECK(h.len0 == leaflen && !memcmp(h.der0, leaf, leaflen));
	if (h.result != MAILTLS_E_VERIFY_UNTRUSTED)
		T_FAIL("hook got result %s, expected verify-untrusted", mailtls_errcode_name(h.result));
	tu_conn_close(&k);
	free(h.der0);
	free(leaf);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

static void test_hook_good_chain(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = tu_client_config();
	struct hook_state h;
	size_t leaflen;
	unsigned char *leaf = tu_der_of(pki("server-ec-leaf.pem"), &leaflen);
	hook_install(&h, cc, 0);
	expect_client_ok(sc, cc, "mail.test.example");
	CHECK_EQ(h.calls, 1);
	CHECK_EQ(h.result, MAILTLS_E_NONE);
	CHECK_EQ(h.n, 2);
	CHECK(h.len0 == leaflen && !memcmp(h.der0, leaf, leaflen));
	/* Each failure category reaches the hook as such. */
	{
		static const struct { const char *cert, *key, *name; int code; } cases[] = {
			{ "wrongname.pem", "wrongname.key", "localhost", MAILTLS_E_VERIFY_NAME },
			{ "expired.pem", "expired.key", "localhost", MAILTLS_E_VERIFY_EXPIRED },
			{ "selfsigned.pem", "selfsigned.key", "localhost", MAILTLS_E_VERIFY_SELFSIGNED },
		};
		h.verdict = -1;
		for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
			struct mailtls_config *s2 = tu_server_config(cases[i].cert, cases[i].key);
			h.calls = 0;
			expect_client_fails(s2, cc, cases[i].name, MAILTLS_E_VERIFY_HOOK);
			CHECK_EQ(h.calls, 1);
			CHECK_EQ(h.result, cases[i].code);
			mailtls_config_free(s2);
		}
	}
	free(h.der0);
	free(leaf);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

/* OPTIONAL: a refusing hook is reported, not fatal. */
static void test_hook_optional(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = tu_client_config();
	struct hook_state h;
	struct tu_conn k;
	CHECK_CFG_OK(cc, mailtls_config_set_verify(cc, MAILTLS_VERIFY_OPTIONAL));
	hook_install(&h, cc, -1);
	tu_conn_run(&k, sc, cc, "localhost");
	EXPECT_HS_OK(&k);
	CHECK_EQ(h.calls, 1);
	CHECK_EQ(mailtls_peer_verified(k.c), 0);
	CHECK_EQ(mailtls_peer_verify_result(k.c), MAILTLS_E_VERIFY_HOOK);
	tu_conn_close(&k);
	free(h.der0);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

/* "It runs in whatever mode is set, except MAILTLS_VERIFY_NONE on a
 * client": such a client neither calls it nor fails for it. */
static void test_hook_not_run_for_verify_none(void)
{
	struct mailtls_config *sc = tu_server_config("unknown.pem", "unknown.key");
	struct mailtls_config *cc = tu_client_config();
	struct hook_state h;
	struct tu_conn k;
	CHECK_CFG_OK(cc, mailtls_config_set_verify(cc, MAILTLS_VERIFY_NONE));
	hook_install(&h, cc, -1);
	tu_conn_run(&k, sc, cc, "localhost");
	if (h.calls != 0 || k.cr != 0)
		T_FAIL("VERIFY_NONE client: hook called %d time(s), handshake %d (%s: %s)", h.calls, k.cr,
		    mailtls_errcode_name(k.cerr), mailtls_error(k.c));
	CHECK_EQ(mailtls_peer_verified(k.c), 0);
	tu_conn_close(&k);
	free(h.der0);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

/* ------------------------------------------------------------------ */
/* Client certificates                                                  */
/* ------------------------------------------------------------------ */

static struct mailtls_config *cert_server(int mode)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	CHECK_CFG_OK(sc, mailtls_config_set_ca(sc, pki("ca.pem"), NULL));
	CHECK_CFG_OK(sc, mailtls_config_set_verify(sc, mode));
	return sc;
}

static struct mailtls_config *cert_client(const char *cert, const char *key)
{
	struct mailtls_config *cc = tu_client_config();
	CHECK_CFG_OK(cc, mailtls_config_set_keypair_file(cc, pki(cert), pki(key)));
	return cc;
}

static void test_client_cert_required(void)
{
	struct mailtls_config *sc = cert_server(MAILTLS_VERIFY_REQUIRE);
	struct mailtls_config *with = cert_client("client.pem", "client.key"), *without = tu_client_config();
	struct tu_conn k;
	char buf[8];

	tu_conn_run(&k, sc, with, "localhost");
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_peer_verified(k.s), 1);
	CHECK_EQ(mailtls_peer_verify_result(k.s), MAILTLS_E_NONE);
	CHECK_EQ(mailtls_peer_has_cert(k.s), 1);
	CHECK_STR(mailtls_peer_subject(k.s), "CN=client.test.example");
	CHECK_STR(mailtls_peer_cn(k.s), "client.test.example");
	CHECK_STR(mailtls_peer_issuer(k.s), "CN=mailtls Test Intermediate CA,O=mailtls tests");
	CHECK_STR(mailtls_peer_fingerprint(k.s), tu_fingerprint_of(pki("client-leaf.pem")));
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	tu_conn_close(&k);

	/* No certificate: the server refuses; the client learns of it at
	 * the latest when it reads. */
	tu_conn_run(&k, sc, without, "localhost");
	CHECK_EQ(k.sr, -1);
	fprintf(stderr, "   no client certificate: server [%s] %s\n", mailtls_errcode_name(k.serr),
	    mailtls_error(k.s));
	if (k.cr == 0) {
		CHECK_EQ(mailtls_read(k.c, buf, sizeof buf), -1);
		CHECK_EQ(mailtls_errcode(k.c), MAILTLS_E_TLS);
	}
	if (k.serr != MAILTLS_E_VERIFY_NOCERT)
		T_FAIL("server without a client certificate: %s (%s), expected verify-nocert",
		    mailtls_errcode_name(k.serr), mailtls_error(k.s));
	tu_conn_close(&k);
	mailtls_config_free(sc);
	mailtls_config_free(with);
	mailtls_config_free(without);
}

static void test_client_cert_untrusted(void)
{
	struct mailtls_config *sc = cert_server(MAILTLS_VERIFY_REQUIRE), *opt = cert_server(MAILTLS_VERIFY_OPTIONAL);
	struct mailtls_config *bad = cert_client("selfsigned.pem", "selfsigned.key");
	struct tu_conn k;
	char buf[8];
	tu_conn_run(&k, sc, bad, "localhost");
	CHECK_EQ(k.sr, -1);
	CHECK(mailtls_errcode_is_verify(k.serr));
	if (k.cr == 0)
		CHECK_EQ(mailtls_read(k.c, buf, sizeof buf), -1);
	tu_conn_close(&k);
	/* OPTIONAL: completes, not verified, the reason reported. */
	tu_conn_run(&k, opt, bad, "localhost");
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_peer_has_cert(k.s), 1);
	CHECK_EQ(mailtls_peer_verified(k.s), 0);
	CHECK(mailtls_errcode_is_verify(mailtls_peer_verify_result(k.s)));
	CHECK(mailtls_peer_verify_result(k.s) != MAILTLS_E_VERIFY_NOCERT);
	tu_conn_close(&k);
	mailtls_config_free(sc);
	mailtls_config_free(opt);
	mailtls_config_free(bad);
}

static void test_client_cert_optional(void)
{
	struct mailtls_config *sc = cert_server(MAILTLS_VERIFY_OPTIONAL);
	struct mailtls_config *with = cert_client("client.pem", "client.key"), *without = tu_client_config();
	struct tu_conn k;
	tu_conn_run(&k, sc, without, "localhost");
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_peer_has_cert(k.s), 0);
	CHECK_EQ(mailtls_peer_verified(k.s), 0);
	CHECK_EQ(mailtls_peer_verify_result(k.s), MAILTLS_E_VERIFY_NOCERT);
	CHECK(mailtls_peer_subject(k.s) == NULL);
	tu_conn_close(&k);
	tu_conn_run(&k, sc, with, "localhost");
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_peer_has_cert(k.s), 1);
	CHECK_EQ(mailtls_peer_verified(k.s), 1);
	CHECK_STR(mailtls_peer_subject(k.s), "CN=client.test.example");
	tu_conn_close(&k);
	mailtls_config_free(sc);
	/* A server that did not ask (the default) sees no certificate. */
	sc = tu_server_config("server-ec.pem", "server-ec.key");
	tu_conn_run(&k, sc, with, "localhost");
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_peer_has_cert(k.s), 0);
	CHECK_EQ(mailtls_peer_verified(k.s), 0);
	tu_conn_close(&k);
	mailtls_config_free(sc);
	mailtls_config_free(with);
	mailtls_config_free(without);
}

/* ------------------------------------------------------------------ */
/* Resumption                                                           */
/* ------------------------------------------------------------------ */

/* first_session runs a full handshake, lets the server's ticket arrive,
 * and returns the saved session (malloc'd) and its length. */
static unsigned char *first_session(struct mailtls_config *sc, struct mailtls_config *cc, const char *name,
    const char *proto, size_t *lenp)
{
	struct tu_conn k;
	char buf[8];
	ssize_t need, got;
	unsigned char *sess, small[4];
	tu_conn_open(&k, sc, cc, name);
	/* Nothing to save before the handshake. */
	CHECK_EQ(mailtls_get_session(k.c, NULL, 0), 0);
	tu_conn_hs(&k);
	EXPECT_HS_OK(&k);
	CHECK_STR(mailtls_protocol(k.c), proto);
	CHECK_EQ(mailtls_session_reused(k.c), 0);
	CHECK_EQ(mailtls_session_reused(k.s), 0);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	CHECK_EQ(mailtls_write(k.s, "hello", 5), 5);
	CHECK_EQ(mailtls_read(k.c, buf, sizeof buf), 5);
	need = mailtls_get_session(k.c, NULL, 0);
	if (need <= 0)
		T_FAIL("mailtls_get_session size query: %zd (%s)", need, mailtls_error(k.c));
	CHECK_EQ(mailtls_get_session(k.c, small, sizeof small), -1);
	CHECK_EQ(mailtls_errcode(k.c), MAILTLS_E_USAGE);
	sess = malloc((size_t)need);
	CHECK(sess);
	got = mailtls_get_session(k.c, sess, (size_t)need);
	CHECK_EQ(got, need);
	CHECK_EQ(mailtls_get_session(k.s, NULL, 0), 0);   /* servers save nothing */
	tu_conn_close(&k);
	*lenp = (size_t)got;
	return sess;
}

/* resume: a fresh connection offering |sess|; the handshake's results
 * stay in |k| (open: the caller closes it). */
static void resume(struct tu_conn *k, struct mailtls_config *sc, struct mailtls_config *cc, const char *name,
    const unsigned char *sess, size_t len)
{
	tu_conn_open(k, sc, cc, name);
	CHECK_OK(k->c, mailtls_set_session(k->c, sess, len));
	tu_conn_hs(k);
}

static void resumption_checks(int max)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = tu_client_config();
	const char *proto = max == MAILTLS_TLS1_2 ? "TLSv1.2" : "TLSv1.3";
	const char *wrongnames[] = { "other.example.net" };
	unsigned char *sess;
	size_t len;
	struct tu_conn k;
	if (max == MAILTLS_TLS1_2)
		CHECK_CFG_OK(cc, mailtls_config_set_max_protocol(cc, MAILTLS_TLS1_2));
	sess = first_session(sc, cc, "localhost", proto, &len);

	/* Resumed on both ends, the peer verified (the earlier verdict kept:
	 * test_resume checks when it is and is not). */
	resume(&k, sc, cc, "localhost", sess, len);
	EXPECT_HS_OK(&k);
	CHECK_STR(mailtls_protocol(k.c), proto);
	CHECK_EQ(mailtls_session_reused(k.c), 1);
	CHECK_EQ(mailtls_session_reused(k.s), 1);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	CHECK_EQ(mailtls_peer_verify_result(k.c), MAILTLS_E_NONE);
	CHECK_STR(mailtls_peer_fingerprint(k.c), tu_fingerprint_of(pki("server-ec-leaf.pem")));
	CHECK_EQ(mailtls_set_session(k.c, sess, len), -1);   /* after the handshake */
	CHECK_EQ(mailtls_errcode(k.c), MAILTLS_E_USAGE);
	CHECK_EQ(mailtls_set_session(k.s, sess, len), -1);   /* on a server */
	CHECK_EQ(mailtls_errcode(k.s), MAILTLS_E_USAGE);
	{
		char buf[8];
		CHECK_EQ(mailtls_write(k.c, "abc", 3), 3);
		CHECK_EQ(mailtls_read(k.s, buf, sizeof buf), 3);
	}
	tu_conn_close(&k);

	/* The same saved session resumed for another verify name: verified
	 * again against that name, and refused. */
	tu_conn_open(&k, sc, cc, "localhost");
	CHECK_OK(k.c, mailtls_set_verify_names(k.c, wrongnames, 1));
	CHECK_OK(k.c, mailtls_set_session(k.c, sess, len));
	tu_conn_hs(&k);
	fprintf(stderr, "   %s resumed for another name: client %d [%s] %s, reused %d\n", proto, k.cr,
	    mailtls_errcode_name(k.cerr), mailtls_error(k.c), mailtls_session_reused(k.c));
	CHECK_EQ(k.cr, -1);
	CHECK_EQ(k.cerr, MAILTLS_E_VERIFY_NAME);
	CHECK_EQ(mailtls_session_reused(k.c), 1);   /* the path under test */
	CHECK_EQ(mailtls_peer_verified(k.c), 0);
	/* The failure sticks: no second call goes on with the refused peer. */
	CHECK_EQ(mailtls_handshake(k.c), -1);
	CHECK_EQ(mailtls_errcode(k.c), MAILTLS_E_VERIFY_NAME);
	{
		char buf[8];
		CHECK_EQ(mailtls_read(k.c, buf, sizeof buf), -1);
		CHECK_EQ(mailtls_write(k.c, "x", 1), -1);
	}
	CHECK(mailtls_protocol(k.c) == NULL);
	tu_conn_close(&k);

	/* ... and for another client configuration: no trust anchors. */
	{
		struct mailtls_config *none = mailtls_config_new();
		if (max == MAILTLS_TLS1_2)
			CHECK_CFG_OK(none, mailtls_config_set_max_protocol(none, MAILTLS_TLS1_2));
		resume(&k, sc, none, "localhost", sess, len);
		CHECK_EQ(k.cr, -1);
		CHECK_EQ(k.cerr, MAILTLS_E_VERIFY_UNTRUSTED);
		CHECK_EQ(mailtls_session_reused(k.c), 1);
		tu_conn_close(&k);
		/* ... a pin that does not match. */
		CHECK_CFG_OK(none, mailtls_config_add_pin(none, tu_fingerprint_of(pki("wrongname-leaf.pem"))));
		resume(&k, sc, none, "localhost", sess, len);
		CHECK_EQ(k.cr, -1);
		CHECK_EQ(k.cerr, MAILTLS_E_VERIFY_PIN);
		CHECK_EQ(mailtls_session_reused(k.c), 1);
		tu_conn_close(&k);
		mailtls_config_free(none);
	}

	/* An OPTIONAL client resuming for another name: completes, reported. */
	{
		struct mailtls_config *opt = tu_client_config();
		CHECK_CFG_OK(opt, mailtls_config_set_verify(opt, MAILTLS_VERIFY_OPTIONAL));
		if (max == MAILTLS_TLS1_2)
			CHECK_CFG_OK(opt, mailtls_config_set_max_protocol(opt, MAILTLS_TLS1_2));
		tu_conn_open(&k, sc, opt, "localhost");
		CHECK_OK(k.c, mailtls_set_verify_names(k.c, wrongnames, 1));
		CHECK_OK(k.c, mailtls_set_session(k.c, sess, len));
		tu_conn_hs(&k);
		EXPECT_HS_OK(&k);
		CHECK_EQ(mailtls_session_reused(k.c), 1);
		CHECK_EQ(mailtls_peer_verified(k.c), 0);
		CHECK_EQ(mailtls_peer_verify_result(k.c), MAILTLS_E_VERIFY_NAME);
		tu_conn_close(&k);
		mailtls_config_free(opt);
	}

	/* A server with other ticket keys cannot resume: a full handshake. */
	{
		struct mailtls_config *other = tu_server_config("server-ec.pem", "server-ec.key");
		resume(&k, other, cc, "localhost", sess, len);
		EXPECT_HS_OK(&k);
		CHECK_EQ(mailtls_session_reused(k.c), 0);
		CHECK_EQ(mailtls_session_reused(k.s), 0);
		CHECK_EQ(mailtls_peer_verified(k.c), 1);
		tu_conn_close(&k);
		mailtls_config_free(other);
	}
	free(sess);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

static void test_resumption_tls13(void)
{
	resumption_checks(MAILTLS_TLS1_3);
}

static void test_resumption_tls12(void)
{
	resumption_checks(MAILTLS_TLS1_2);
}

static void test_resumption_garbage(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = tu_client_config();
	unsigned char junk[200], *sess;
	size_t len;
	struct tu_conn k;
	tu_fill_random(junk, sizeof junk, 42);
	tu_conn_open(&k, sc, cc, "localhost");
	CHECK_EQ(mailtls_set_session(k.c, junk, sizeof junk), -1);
	CHECK_EQ(mailtls_errcode(k.c), MAILTLS_E_TLS);
	CHECK(mailtls_error(k.c)[0] != 0);
	CHECK_EQ(mailtls_set_session(k.c, junk, 0), -1);
	CHECK_EQ(mailtls_set_session(k.c, NULL, 10), -1);
	/* The session is still good for a full handshake. */
	tu_conn_hs(&k);
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_session_reused(k.c), 0);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	tu_conn_close(&k);

	/* A real saved session cut short: refused the same way. */
	sess = first_session(sc, cc, "localhost", "TLSv1.3", &len);
	tu_conn_open(&k, sc, cc, "localhost");
	CHECK_EQ(mailtls_set_session(k.c, sess, len / 2), -1);
	CHECK_EQ(mailtls_errcode(k.c), MAILTLS_E_TLS);
	tu_conn_hs(&k);
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_session_reused(k.c), 0);
	tu_conn_close(&k);
	free(sess);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

/* A server requiring client certificates resumes a verified client's
 * session with the client's certificate facts (subject, verdict), and
 * verifies it again: a server of the same tickets that no longer trusts
 * the client's CA refuses the resumed session. */
static void test_resumption_client_cert(void)
{
	struct mailtls_config *sc = cert_server(MAILTLS_VERIFY_REQUIRE);
	struct mailtls_config *other = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = cert_client("client.pem", "client.key");
	unsigned char keys[48], *sess;
	size_t len;
	struct tu_conn k;
	tu_fill_random(keys, sizeof keys, 7);
	CHECK_CFG_OK(sc, mailtls_config_set_ticket_keys(sc, keys, sizeof keys));
	CHECK_CFG_OK(other, mailtls_config_set_ticket_keys(other, keys, sizeof keys));
	CHECK_CFG_OK(other, mailtls_config_set_ca(other, pki("unknown-ca.pem"), NULL));
	CHECK_CFG_OK(other, mailtls_config_set_verify(other, MAILTLS_VERIFY_REQUIRE));
	sess = first_session(sc, cc, "localhost", "TLSv1.3", &len);
	resume(&k, sc, cc, "localhost", sess, len);
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_session_reused(k.s), 1);
	CHECK_EQ(mailtls_peer_verified(k.s), 1);
	CHECK_STR(mailtls_peer_subject(k.s), "CN=client.test.example");
	tu_conn_close(&k);

	resume(&k, other, cc, "localhost", sess, len);
	fprintf(stderr, "   client CA no longer trusted: server %d [%s] %s, reused %d\n", k.sr,
	    mailtls_errcode_name(k.serr), mailtls_error(k.s), mailtls_session_reused(k.s));
	CHECK_EQ(k.sr, -1);
	CHECK_EQ(k.serr, MAILTLS_E_VERIFY_UNTRUSTED);
	CHECK_EQ(mailtls_session_reused(k.s), 1);
	CHECK_EQ(mailtls_peer_verified(k.s), 0);
	tu_conn_close(&k);
	free(sess);
	mailtls_config_free(sc);
	mailtls_config_free(other);
	mailtls_config_free(cc);
}

int main(void)
{
	RUN_ISOLATED(test_good_chain);
	RUN_ISOLATED(test_unknown_ca);
	RUN_ISOLATED(test_wrong_name);
	RUN_ISOLATED(test_expired);
	RUN_ISOLATED(test_selfsigned);
	RUN_ISOLATED(test_error_categories_temporary);
	RUN_ISOLATED(test_optional_reports);
	RUN_ISOLATED(test_verify_none);
	RUN_ISOLATED(test_fail_closed);
	RUN_ISOLATED(test_verify_names_apart_from_sni);
	RUN_ISOLATED(test_verify_names_with_addresses);
	RUN_ISOLATED(test_address_no_sni);
	RUN_ISOLATED(test_address_client_servername);
	RUN_ISOLATED(test_wildcards);
	RUN_ISOLATED(test_cn_only);
	RUN_ISOLATED(test_cn_ignored_with_dnsname);
	RUN_ISOLATED(test_pins);
	RUN_ISOLATED(test_malformed_pins);
	RUN_ISOLATED(test_hook_rejects);
	RUN_ISOLATED(test_hook_accepts_untrusted);
	RUN_ISOLATED(test_hook_good_chain);
	RUN_ISOLATED(test_hook_optional);
	RUN_ISOLATED(test_hook_not_run_for_verify_none);
	RUN_ISOLATED(test_client_cert_required);
	RUN_ISOLATED(test_client_cert_untrusted);
	RUN_ISOLATED(test_client_cert_optional);
	RUN_ISOLATED(test_resumption_tls13);
	RUN_ISOLATED(test_resumption_tls12);
	RUN_ISOLATED(test_resumption_garbage);
	RUN_ISOLATED(test_resumption_client_cert);
	return tu_isolated_result();
}
