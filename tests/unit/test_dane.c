/* DANE (RFC 7672) on a client of ours against a server of ours, over a
 * socketpair, with the test PKI.  The client trusts no CA at all: every
 * handshake that succeeds does so because of a TLSA record.  The TLSA
 * data comes from the PKI's NAME.tlsa files (mkpki.py computes them with
 * Python's hashlib), so neither side of a comparison uses BoringSSL.
 *
 *  - DANE-EE: 3 1 1, 3 0 1, 3 1 2, 3 0 0, 3 1 0; no name or date checks
 *    (wrong name and expired leaf accepted);
 *  - DANE-TA: 2 0 1 on the intermediate and on the root (sent by the
 *    server), 2 1 1; names checked (the MX host, or the destination
 *    domain given as a second reference name); an expired leaf refused;
 *  - mismatches, records that are all unusable (PKIX usages, malformed
 *    lengths, unknown fields): TLS without authentication, said so;
 *  - digest agility; the presentation-form parser; misuse; a resumed
 *    session checked against the records again. */
#include <errno.h>
#include <unistd.h>

#include "testutil.h"

/* The TLSA data of |cert| (a PKI name such as "int") for |selector| and
 * |mtype|, as hex (static, valid until 8 more calls). */
static const char *tlsa_hex(const char *cert, int selector, int mtype)
{
	static char res[8][4200];
	static int n;
	char file[64], line[4200], *r = res[n++ % 8];
	FILE *f;
	int s, m;
	snprintf(file, sizeof file, "%s.tlsa", cert);
	f = fopen(pki(file), "r");
	if (!f)
		T_FAIL("cannot open %s", pki(file));
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "%d %d %4100s", &s, &m, r) == 3 && s == selector && m == mtype) {
			fclose(f);
			return r;
		}
	}
	T_FAIL("no %d %d line in %s", selector, mtype, pki(file));
}

/* A record set, built from presentation text through mailtls_tlsa_parse. */
struct recs {
	struct mailtls_tlsa r[8];
	unsigned char buf[8][2100];
	size_t n;
};

static void add_text(struct recs *rs, const char *text)
{
	CHECK(rs->n < 8);
	if (mailtls_tlsa_parse(text, strlen(text), &rs->r[rs->n], rs->buf[rs->n], sizeof rs->buf[0]) != 0)
		T_FAIL("mailtls_tlsa_parse(\"%.60s...\") failed: %s", text, strerror(errno));
	rs->n++;
}

static void add(struct recs *rs, int usage, const char *cert, int selector, int mtype)
{
	char text[4300];
	snprintf(text, sizeof text, "%d %d %d %s", usage, selector, mtype, tlsa_hex(cert, selector, mtype));
	add_text(rs, text);
}

/* A server config of a chain and key: PKI names, or absolute paths. */
static struct mailtls_config *server_config(const char *chain, const char *key)
{
	struct mailtls_config *c = mailtls_config_new();
	CHECK(c);
	CHECK_CFG_OK(c, mailtls_config_set_keypair_file(c, chain[0] == '/' ? chain : pki(chain),
	    key[0] == '/' ? key : pki(key)));
	return c;
}

static struct mailtls_config *no_trust_client(void)
{
	struct mailtls_config *c = mailtls_config_new();
	CHECK(c);
	return c;
}

/* One DANE handshake: a server of |chain|/|key|, a client with SNI |sni|,
 * the records, and |names| (NULL-terminated, may be NULL).  Returns the
 * client's result; the connection stays open in |k|. */
static int dane_hs(struct tu_conn *k, const char *chain, const char *key, const char *sni,
    const struct recs *rs, const char *const *names, int *usable)
{
	struct mailtls_config *sc = server_config(chain, key);
	struct mailtls_config *cc = no_trust_client();
	size_t nn = 0;
	int u;
	while (names && names[nn])
		nn++;
	tu_conn_open(k, sc, cc, sni);
	CHECK_EQ(mailtls_dane_result(k->c, NULL), MAILTLS_DANE_OFF);
	u = mailtls_set_dane(k->c, rs->r, rs->n, names, nn);
	if (u < 0)
		T_FAIL("mailtls_set_dane: %s", mailtls_error(k->c));
	if (usable)
		*usable = u;
	CHECK_EQ(mailtls_dane_result(k->c, NULL), MAILTLS_DANE_UNCHECKED);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
	tu_conn_hs(k);
	fprintf(stderr, "   %s: client %d [%s] %s\n", chain, k->cr, mailtls_errcode_name(k->cerr), mailtls_error(k->c));
	return k->cr;
}

static void expect_match(const char *chain, const char *key, const struct recs *rs, const char *const *names,
    int record, int usage, int depth)
{
	struct tu_conn k;
	struct mailtls_dane_result d;
	char buf[8];
	dane_hs(&k, chain, key, "mail.test.example", rs, names, NULL);
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	CHECK_EQ(mailtls_peer_verify_result(k.c), MAILTLS_E_NONE);
	CHECK_EQ(mailtls_dane_result(k.c, &d), MAILTLS_DANE_MATCHED);
	CHECK_EQ(d.status, MAILTLS_DANE_MATCHED);
	CHECK_EQ(d.record, record);
	CHECK_EQ(d.usage, usage);
	CHECK_EQ(d.usage, rs->r[record].usage);
	CHECK_EQ(d.selector, rs->r[record].selector);
	CHECK_EQ(d.mtype, rs->r[record].mtype);
	CHECK_EQ(d.depth, depth);
	/* The session carries data both ways. */
	CHECK_EQ(mailtls_write(k.s, "hi", 2), 2);
	CHECK_EQ(mailtls_read(k.c, buf, sizeof buf), 2);
	tu_conn_close(&k);
}

static void expect_refused(const char *chain, const char *key, const struct recs *rs, const char *const *names,
    int code, const char *text)
{
	struct tu_conn k;
	struct mailtls_dane_result d;
	dane_hs(&k, chain, key, "mail.test.example", rs, names, NULL);
	CHECK_EQ(k.cr, -1);
	CHECK_EQ(k.sr, -1);
	CHECK_EQ(k.cerr, code);
	CHECK(mailtls_error_temporary(k.cerr));
	CHECK(mailtls_errcode_is_verify(k.cerr));
	if (!strstr(mailtls_error(k.c), text))
		T_FAIL("error \"%s\" lacks \"%s\"", mailtls_error(k.c), text);
	CHECK(!strncmp(mailtls_error(k.c), "DANE: ", 6));
	CHECK_EQ(mailtls_peer_verified(k.c), 0);
	CHECK_EQ(mailtls_dane_result(k.c, &d), MAILTLS_DANE_FAILED);
	CHECK_EQ(d.record, -1);
	CHECK_EQ(d.depth, -1);
	tu_conn_close(&k);
}

/* ------------------------------------------------------------------ */
/* DANE-EE                                                              */
/* ------------------------------------------------------------------ */

static void test_ee_each_form(void)
{
	static const int forms[][2] = { { 1, 1 }, { 0, 1 }, { 1, 2 }, { 0, 0 }, { 1, 0 }, { 0, 2 } };
	for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		struct recs rs = { .n = 0 };
		fprintf(stderr, "  3 %d %d\n", forms[i][0], forms[i][1]);
		add(&rs, 3, "server-ec", forms[i][0], forms[i][1]);
		expect_match("server-ec.pem", "server-ec.key", &rs, NULL, 0, 3, 0);
	}
	/* RSA leaf too, among records for other keys. */
	{
		struct recs rs = { .n = 0 };
		add(&rs, 3, "server-ec", 1, 1);
		add(&rs, 3, "server-rsa", 1, 1);
		expect_match("server-rsa.pem", "server-rsa.key", &rs, NULL, 1, 3, 0);
	}
}

/* DANE-EE checks neither names nor dates (RFC 7672 section 3.1.1). */
static void test_ee_no_name_no_date(void)
{
	struct recs rs = { .n = 0 }, rs2 = { .n = 0 }, rs3 = { .n = 0 };
	add(&rs, 3, "wrongname", 1, 1);
	expect_match("wrongname.pem", "wrongname.key", &rs, NULL, 0, 3, 0);
	add(&rs2, 3, "expired", 1, 1);
	expect_match("expired.pem", "expired.key", &rs2, NULL, 0, 3, 0);
	add(&rs3, 3, "selfsigned", 0, 1);
	expect_match("selfsigned.pem", "selfsigned.key", &rs3, NULL, 0, 3, 0);
}

/* 3 x x matches the leaf only, never a certificate above it. */
static void test_ee_not_above_leaf(void)
{
	struct recs rs = { .n = 0 };
	add(&rs, 3, "int", 0, 1);
	expect_refused("server-ec.pem", "server-ec.key", &rs, NULL, MAILTLS_E_VERIFY_DANE, "TLSA mismatch");
}

static void test_mismatch(void)
{
	struct recs rs = { .n = 0 };
	add(&rs, 3, "wrongname", 1, 1);
	add(&rs, 3, "server-rsa", 0, 2);
	add(&rs, 2, "selfsigned", 0, 1);
	expect_refused("server-ec.pem", "server-ec.key", &rs, NULL, MAILTLS_E_VERIFY_DANE, "TLSA mismatch");
}

/* ------------------------------------------------------------------ */
/* DANE-TA                                                              */
/* ------------------------------------------------------------------ */

static void test_ta_intermediate(void)
{
	struct recs rs = { .n = 0 }, rs2 = { .n = 0 };
	add(&rs, 2, "int", 0, 1);
	expect_match("server-ec.pem", "server-ec.key", &rs, NULL, 0, 2, 1);
	add(&rs2, 2, "int", 1, 1);
	expect_match("server-ec.pem", "server-ec.key", &rs2, NULL, 0, 2, 1);
}

/* The root as the anchor: the server must send it (RFC 7672 section
 * 3.1.2); a server that does not is refused. */
static void test_ta_root(void)
{
	const char *dir = tu_scratch_dir();
	char chain[600];
	struct recs rs = { .n = 0 };
	snprintf(chain, sizeof chain, "%s/with-root.pem", dir);
	tu_sh("cat '%s' '%s' > '%s'", pki("server-ec.pem"), pki("ca.pem"), chain);
	add(&rs, 2, "ca", 0, 1);
	expect_match(chain, pki("server-ec.key"), &rs, NULL, 0, 2, 2);
	expect_refused("server-ec.pem", "server-ec.key", &rs, NULL, MAILTLS_E_VERIFY_DANE, "TLSA mismatch");
}

/* Names under DANE-TA: the MX host (SNI), or the reference names given. */
static void test_ta_names(void)
{
	struct recs rs = { .n = 0 };
	const char *dest[] = { "mx.elsewhere.example", "other.example.net", NULL };
	const char *none[] = { "mx.elsewhere.example", "mail.test.example.org", NULL };
	add(&rs, 2, "int", 0, 1);
	expect_refused("wrongname.pem", "wrongname.key", &rs, NULL, MAILTLS_E_VERIFY_NAME, "does not name");
	expect_match("wrongname.pem", "wrongname.key", &rs, dest, 0, 2, 1);
	expect_refused("wrongname.pem", "wrongname.key", &rs, none, MAILTLS_E_VERIFY_NAME, "TLSA 2 0 1");
}

static void test_ta_expired_refused(void)
{
	struct recs rs = { .n = 0 };
	add(&rs, 2, "int", 0, 1);
	expect_refused("expired.pem", "expired.key", &rs, NULL, MAILTLS_E_VERIFY_EXPIRED, "expired");
}

/* A DANE-TA record for a CA that did not sign the leaf matches nothing;
 * one that matches but fails is reported even when others mismatch. */
static void test_ta_other_ca(void)
{
	struct recs rs = { .n = 0 };
	add(&rs, 2, "int", 0, 1);
	expect_refused("unknown.pem", "unknown.key", &rs, NULL, MAILTLS_E_VERIFY_DANE, "TLSA mismatch");
}

/* EE and TA records side by side: either may authenticate. */
static void test_mixed_sets(void)
{
	struct recs rs = { .n = 0 };
	add(&rs, 3, "server-rsa", 1, 1);   /* for the server's other key: no match here */
	add(&rs, 2, "int", 1, 2);
	expect_match("server-ec.pem", "server-ec.key", &rs, NULL, 1, 2, 1);
}

/* ------------------------------------------------------------------ */
/* Unusable records                                                     */
/* ------------------------------------------------------------------ */

static void expect_unauthenticated(const char *chain, const char *key, const struct recs *rs)
{
	struct tu_conn k;
	struct mailtls_dane_result d;
	int usable = -1;
	char buf[8];
	dane_hs(&k, chain, key, "mail.test.example", rs, NULL, &usable);
	CHECK_EQ(usable, 0);
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_peer_verified(k.c), 0);
	CHECK_EQ(mailtls_peer_verify_result(k.c), MAILTLS_E_VERIFY_DANE);
	CHECK_EQ(mailtls_dane_result(k.c, &d), MAILTLS_DANE_UNUSABLE);
	CHECK_EQ(d.record, -1);
	CHECK_STR(mailtls_protocol(k.c), "TLSv1.3");
	CHECK_EQ(mailtls_write(k.s, "hi", 2), 2);
	CHECK_EQ(mailtls_read(k.c, buf, sizeof buf), 2);
	tu_conn_close(&k);
}

static void test_only_pkix(void)
{
	struct recs rs = { .n = 0 };
	add(&rs, 0, "int", 0, 1);          /* PKIX-TA: unusable for SMTP */
	add(&rs, 1, "server-ec", 1, 1);    /* PKIX-EE: unusable for SMTP */
	expect_unauthenticated("server-ec.pem", "server-ec.key", &rs);
	expect_unauthenticated("selfsigned.pem", "selfsigned.key", &rs);
}

static void test_malformed(void)
{
	struct recs rs = { .n = 0 }, good = { .n = 0 };
	char h[200];
	const char *d = tlsa_hex("server-ec", 1, 1);
	snprintf(h, sizeof h, "3 1 1 %.62s", d);          /* 31 bytes for SHA-256 */
	add_text(&rs, h);
	snprintf(h, sizeof h, "3 1 1 %s00", d);           /* 33 bytes */
	add_text(&rs, h);
	snprintf(h, sizeof h, "3 1 2 %s", d);             /* 32 bytes for SHA-512 */
	add_text(&rs, h);
	snprintf(h, sizeof h, "3 2 1 %s", d);             /* selector 2 */
	add_text(&rs, h);
	snprintf(h, sizeof h, "3 1 3 %s", d);             /* matching type 3 */
	add_text(&rs, h);
	snprintf(h, sizeof h, "4 1 1 %s", d);             /* usage 4 */
	add_text(&rs, h);
	snprintf(h, sizeof h, "255 1 1 %s", d);
	add_text(&rs, h);
	/* Out-of-range fields of a caller's own struct count as unusable too. */
	rs.r[rs.n] = rs.r[0];
	rs.r[rs.n].len = 32;
	rs.r[rs.n].usage = 3 + 256;
	rs.n++;
	expect_unauthenticated("server-ec.pem", "server-ec.key", &rs);

	/* A malformed record beside a good one does not spoil it. */
	add_text(&good, "3 1 1 00");
	add(&good, 3, "server-ec", 1, 1);
	expect_match("server-ec.pem", "server-ec.key", &good, NULL, 1, 3, 0);
}

/* Digest agility (RFC 7671 section 9): a SHA-512 record hides the SHA-256
 * ones of the same usage and selector; full data always counts. */
static void test_agility(void)
{
	struct recs rs = { .n = 0 }, rs2 = { .n = 0 }, rs3 = { .n = 0 };
	int usable = -1;
	struct tu_conn k;
	add(&rs, 3, "server-ec", 1, 1);
	add(&rs, 3, "server-rsa", 1, 2);
	dane_hs(&k, "server-ec.pem", "server-ec.key", "mail.test.example", &rs, NULL, &usable);
	CHECK_EQ(usable, 1);
	CHECK_EQ(k.cr, -1);
	CHECK_EQ(k.cerr, MAILTLS_E_VERIFY_DANE);
	tu_conn_close(&k);

	add(&rs2, 3, "server-rsa", 1, 2);
	add(&rs2, 3, "server-ec", 1, 0);
	add(&rs2, 3, "server-ec", 0, 1);   /* another selector: still counts */
	expect_match("server-ec.pem", "server-ec.key", &rs2, NULL, 1, 3, 0);

	add(&rs3, 3, "server-rsa", 1, 2);
	add(&rs3, 2, "int", 1, 1);         /* another usage: still counts */
	expect_match("server-ec.pem", "server-ec.key", &rs3, NULL, 1, 2, 1);
}

/* ------------------------------------------------------------------ */
/* The parser, misuse, resumption                                       */
/* ------------------------------------------------------------------ */

static void test_parse(void)
{
	struct mailtls_tlsa r;
	unsigned char buf[8];
	static const char *const bad[] = {
		"", "3", "3 1", "3 1 1", "3 1 1 ", "3 1 1 a", "3 1 1 abc", "3 1 1 zz", "256 1 1 00",
		"3 1 1 0x00", "-3 1 1 00", "3,1,1 00", "3 1 1\n00", "31 1 00", "3 1 1 00 0",
		" 3 1 1 00\0",
	};
	CHECK_EQ(mailtls_tlsa_parse("3 1 1 0aFF", 10, &r, buf, sizeof buf), 0);
	CHECK_EQ(r.usage, 3);
	CHECK_EQ(r.selector, 1);
	CHECK_EQ(r.mtype, 1);
	CHECK_EQ(r.len, 2);
	CHECK(r.data == buf && buf[0] == 0x0a && buf[1] == 0xff);
	CHECK_EQ(mailtls_tlsa_parse("  2\t0 2  00 01\t02 0304\r\n", 24, &r, buf, sizeof buf), 0);
	CHECK_EQ(r.usage, 2);
	CHECK_EQ(r.selector, 0);
	CHECK_EQ(r.mtype, 2);
	CHECK_EQ(r.len, 5);
	CHECK(!memcmp(buf, "\0\1\2\3\4", 5));
	CHECK_EQ(mailtls_tlsa_parse("255 255 255 ff", 14, &r, buf, sizeof buf), 0);
	CHECK_EQ(r.usage, 255);
	/* |len| bounds the text: nothing after it is read. */
	CHECK_EQ(mailtls_tlsa_parse("3 1 1 00zz", 8, &r, buf, sizeof buf), 0);
	CHECK_EQ(r.len, 1);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t len = strlen(bad[i]) + (bad[i][0] == ' ');   /* the last one holds its NUL */
		errno = 0;
		if (mailtls_tlsa_parse(bad[i], len, &r, buf, sizeof buf) != -1 || errno != EINVAL)
			T_FAIL("\"%s\" was read as a record (errno %d)", bad[i], errno);
	}
	errno = 0;
	CHECK_EQ(mailtls_tlsa_parse("3 1 1 000102030405060708", 24, &r, buf, sizeof buf), -1);
	CHECK_EQ(errno, ENOSPC);
}

static void test_misuse(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = no_trust_client();
	struct recs rs = { .n = 0 };
	struct tu_conn k;
	add(&rs, 3, "server-ec", 1, 1);
	tu_conn_open(&k, sc, cc, "mail.test.example");
	CHECK_EQ(mailtls_set_dane(k.s, rs.r, rs.n, NULL, 0), -1);
	CHECK_EQ(mailtls_errcode(k.s), MAILTLS_E_USAGE);
	CHECK_EQ(mailtls_set_dane(k.c, rs.r, 0, NULL, 0), -1);
	CHECK_EQ(mailtls_errcode(k.c), MAILTLS_E_USAGE);
	CHECK_EQ(mailtls_set_dane(k.c, rs.r, rs.n, NULL, 1), -1);
	CHECK_EQ(mailtls_errcode(k.c), MAILTLS_E_USAGE);
	CHECK_EQ(mailtls_dane_result(k.c, NULL), MAILTLS_DANE_OFF);
	CHECK_EQ(mailtls_set_dane(k.c, rs.r, rs.n, NULL, 0), 1);
	CHECK_EQ(mailtls_set_dane(k.c, rs.r, rs.n, NULL, 0), -1);   /* once */
	CHECK_EQ(mailtls_errcode(k.c), MAILTLS_E_USAGE);
	tu_conn_hs(&k);
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_set_dane(k.c, rs.r, rs.n, NULL, 0), -1);   /* after the handshake */
	tu_conn_close(&k);
	/* Without DANE the same client fails closed: it trusts no CA. */
	tu_conn_run(&k, sc, cc, "mail.test.example");
	CHECK_EQ(k.cr, -1);
	CHECK_EQ(k.cerr, MAILTLS_E_VERIFY_UNTRUSTED);
	tu_conn_close(&k);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

/* Settings that the handshake reads once begun cannot change while it
 * runs: after the ClientHello went out, records, names and a session are
 * refused (they would never be checked), and the handshake then fails
 * closed as configured (this client trusts no CA). */
static void test_late_settings(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = no_trust_client();
	struct mailtls *c = mailtls_client_mem(cc, "mail.test.example");
	struct mailtls *s = mailtls_server_mem(sc);
	struct recs rs = { .n = 0 };
	const char *names[] = { "mail.test.example" };
	unsigned char sess[16] = { 0 }, buf[65536];
	ssize_t n;
	CHECK(c && s);
	add(&rs, 3, "server-ec", 1, 1);
	CHECK_EQ(mailtls_handshake(c), MAILTLS_WANT_READ);            /* the ClientHello is out */
	CHECK_EQ(mailtls_set_dane(c, rs.r, rs.n, NULL, 0), -1);
	CHECK_EQ(mailtls_errcode(c), MAILTLS_E_USAGE);
	CHECK_EQ(mailtls_set_verify_names(c, names, 1), -1);
	CHECK_EQ(mailtls_errcode(c), MAILTLS_E_USAGE);
	CHECK_EQ(mailtls_set_session(c, sess, sizeof sess), -1);
	CHECK_EQ(mailtls_errcode(c), MAILTLS_E_USAGE);
	CHECK_EQ(mailtls_dane_result(c, NULL), MAILTLS_DANE_OFF);
	/* The rest of the handshake: the server's flight, then the client's verdict. */
	n = mailtls_mem_drain(c, buf, sizeof buf);
	CHECK(n > 0);
	CHECK_EQ(mailtls_mem_feed(s, buf, (size_t)n), n);
	CHECK_EQ(mailtls_handshake(s), MAILTLS_WANT_READ);
	n = mailtls_mem_drain(s, buf, sizeof buf);
	CHECK(n > 0);
	CHECK_EQ(mailtls_mem_feed(c, buf, (size_t)n), n);
	CHECK_EQ(mailtls_handshake(c), -1);
	CHECK_EQ(mailtls_errcode(c), MAILTLS_E_VERIFY_UNTRUSTED);
	mailtls_free(c);
	mailtls_free(s);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

/* A DANE-TA record that matches the leaf but fails its check (a wrong
 * name), then a DANE-EE record that matches: the session is authenticated
 * by the second, and no error of the first stays behind. */
static void test_ta_fails_ee_matches(void)
{
	struct recs rs = { .n = 0 };
	struct tu_conn k;
	struct mailtls_dane_result d;
	add(&rs, 2, "server-ec", 1, 1);
	add(&rs, 3, "server-ec", 1, 1);
	dane_hs(&k, "server-ec.pem", "server-ec.key", "not-the-name.example", &rs, NULL, NULL);
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_dane_result(k.c, &d), MAILTLS_DANE_MATCHED);
	CHECK_EQ(d.record, 1);
	CHECK_EQ(mailtls_errcode(k.c), MAILTLS_E_NONE);
	CHECK_EQ(mailtls_error(k.c)[0], 0);
	tu_conn_close(&k);
}

/* A session saved under good records is checked again when resumed: under
 * records that no longer match it is refused. */
static void test_resumption(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = no_trust_client();
	struct recs good = { .n = 0 }, bad = { .n = 0 };
	struct tu_conn k;
	unsigned char sess[8192];
	ssize_t len;
	char buf[8];
	add(&good, 3, "server-ec", 1, 1);
	add(&bad, 3, "server-rsa", 1, 1);
	tu_conn_open(&k, sc, cc, "mail.test.example");
	CHECK_EQ(mailtls_set_dane(k.c, good.r, good.n, NULL, 0), 1);
	tu_conn_hs(&k);
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_write(k.s, "hi", 2), 2);
	CHECK_EQ(mailtls_read(k.c, buf, sizeof buf), 2);
	len = mailtls_get_session(k.c, sess, sizeof sess);
	CHECK(len > 0);
	tu_conn_close(&k);

	tu_conn_open(&k, sc, cc, "mail.test.example");
	CHECK_OK(k.c, mailtls_set_session(k.c, sess, (size_t)len));
	CHECK_EQ(mailtls_set_dane(k.c, good.r, good.n, NULL, 0), 1);
	tu_conn_hs(&k);
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_session_reused(k.c), 1);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	CHECK_EQ(mailtls_dane_result(k.c, NULL), MAILTLS_DANE_MATCHED);
	tu_conn_close(&k);

	tu_conn_open(&k, sc, cc, "mail.test.example");
	CHECK_OK(k.c, mailtls_set_session(k.c, sess, (size_t)len));
	CHECK_EQ(mailtls_set_dane(k.c, bad.r, bad.n, NULL, 0), 1);
	tu_conn_hs(&k);
	CHECK_EQ(k.cr, -1);
	CHECK_EQ(k.cerr, MAILTLS_E_VERIFY_DANE);
	CHECK_EQ(mailtls_peer_verified(k.c), 0);
	CHECK_EQ(mailtls_dane_result(k.c, NULL), MAILTLS_DANE_FAILED);
	tu_conn_close(&k);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

static void test_errcode_name(void)
{
	CHECK_STR(mailtls_errcode_name(MAILTLS_E_VERIFY_DANE), "verify-dane");
	CHECK_EQ(mailtls_errcode_is_verify(MAILTLS_E_VERIFY_DANE), 1);
	CHECK_EQ(mailtls_error_temporary(MAILTLS_E_VERIFY_DANE), 1);
}

int main(void)
{
	RUN_ISOLATED(test_ee_each_form);
	RUN_ISOLATED(test_ee_no_name_no_date);
	RUN_ISOLATED(test_ee_not_above_leaf);
	RUN_ISOLATED(test_mismatch);
	RUN_ISOLATED(test_ta_intermediate);
	RUN_ISOLATED(test_ta_root);
	RUN_ISOLATED(test_ta_names);
	RUN_ISOLATED(test_ta_expired_refused);
	RUN_ISOLATED(test_ta_other_ca);
	RUN_ISOLATED(test_mixed_sets);
	RUN_ISOLATED(test_only_pkix);
	RUN_ISOLATED(test_malformed);
	RUN_ISOLATED(test_agility);
	RUN_ISOLATED(test_parse);
	RUN_ISOLATED(test_misuse);
	RUN_ISOLATED(test_late_settings);
	RUN_ISOLATED(test_ta_fails_ee_matches);
	RUN_ISOLATED(test_resumption);
	RUN_ISOLATED(test_errcode_name);
	return tu_isolated_result();
}
