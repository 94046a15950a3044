/*
 * test_env.c -- mailtls_escape, the peer facts and the mailtls_env block.
 *
 * The escaping these tests pin down (see facts.c and env.c):
 *  - mailtls_escape: bytes below 0x20, 0x7f and above, and backslash
 *    become \XX (uppercase hex); everything else is copied.
 *  - Names (SSL_CLIENT_S_DN, SSL_CLIENT_I_DN, SSL_PEER_CERT_SUBJECT) are
 *    RFC 4514, most specific RDN first.  In a value: ',' '+' '"' '<' '>'
 *    ';', a leading '#' or space and a trailing space get a backslash
 *    before them; backslash, '=', control bytes (NUL included), 0x7f and
 *    bytes above become \XX.  So the CN "evil\nSSL_PROTOCOL=SSLv2" is
 *    "evil\0ASSL_PROTOCOL\3DSSLv2": the newline is \0A and the '=' \3D.
 *  - SSL_CLIENT_S_DN_CN is the CN value escaped the same way, and the
 *    env block does not escape these backslashes a second time.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

/* ------------------------------------------------------------------ */
/* mailtls_escape                                                       */
/* ------------------------------------------------------------------ */

static void check_escape(const void *in, size_t inlen, const char *want)
{
	char out[256];
	ssize_t need = mailtls_escape(NULL, 0, in, inlen);
	CHECK_EQ(need, (ssize_t)strlen(want) + 1);
	memset(out, 'Z', sizeof out);
	CHECK_EQ(mailtls_escape(out, sizeof out, in, inlen), (ssize_t)strlen(want));
	CHECK_STR(out, want);
	/* exactly the size needed is enough */
	memset(out, 'Z', sizeof out);
	CHECK_EQ(mailtls_escape(out, (size_t)need, in, inlen), need - 1);
	CHECK_STR(out, want);
	CHECK(out[need] == 'Z');
}

static void test_escape(void)
{
	char out[64];

	check_escape("", 0, "");
	check_escape("plain text, with = and ;", 24, "plain text, with = and ;");
	check_escape("a\nb", 3, "a\\0Ab");
	check_escape("a\0b", 3, "a\\00b");               /* NUL does not truncate */
	check_escape("\r\t\x1f\x7f", 4, "\\0D\\09\\1F\\7F");
	check_escape("back\\slash", 10, "back\\5Cslash");
	check_escape("\\0A", 3, "\\5C0A");                 /* an escape in the input stays text */
	check_escape("\xc3\xa9\xff\x80", 4, "\\C3\\A9\\FF\\80");
	check_escape(" ~", 2, " ~");                      /* 0x20 and 0x7e are kept */

	/* Too small: -1, NUL-terminated, never half an escape. */
	memset(out, 'Z', sizeof out);
	CHECK_EQ(mailtls_escape(out, 5, "ab\ncd", 5), -1);
	CHECK_STR(out, "ab");                             /* "ab\0A" would need 6 */
	CHECK(out[5] == 'Z');
	memset(out, 'Z', sizeof out);
	CHECK_EQ(mailtls_escape(out, 6, "ab\ncd", 5), -1);
	CHECK_STR(out, "ab\\0A");
	memset(out, 'Z', sizeof out);
	CHECK_EQ(mailtls_escape(out, 1, "x", 1), -1);
	CHECK_STR(out, "");
	memset(out, 'Z', sizeof out);
	CHECK_EQ(mailtls_escape(out, 0, "x", 1), -1);
	CHECK(out[0] == 'Z');                             /* nothing written with 0 */
	/* the size needed, NUL included */
	CHECK_EQ(mailtls_escape(NULL, 0, "ab\ncd", 5), 8);
	CHECK_EQ(mailtls_escape(NULL, 1234, "", 0), 1);
	CHECK_EQ(mailtls_escape(out, 1, "", 0), 0);
	CHECK_STR(out, "");

	/* every byte value */
	{
		unsigned char all[256];
		char big[4 * 256];
		ssize_t n;
		for (int i = 0; i < 256; i++)
			all[i] = (unsigned char)i;
		n = mailtls_escape(big, sizeof big, all, sizeof all);
		CHECK(n > 0);
		CHECK_EQ(n, (ssize_t)strlen(big));
		for (ssize_t i = 0; i < n; i++)
			CHECK(big[i] >= 0x20 && big[i] < 0x7f);
		/* 95 printable bytes, one of them backslash, stay 1 byte */
		CHECK_EQ(n, 94 + 3 * (256 - 94));
	}
}

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

/* The set of names a block may hold, and those it must. */
static const char *const allowed[] = {
	"SSL_PROTOCOL", "SSL_CIPHER", "SSL_SESSION_ID", "SSL_CIPHER_USEKEYSIZE",
	"SSL_CIPHER_ALGKEYSIZE", "SSL_VERSION_INTERFACE", "SSL_VERSION_LIBRARY",
	"SSL_TLS_SNI_SERVERNAME", "SSL_CLIENT_S_DN", "SSL_CLIENT_S_DN_CN", "SSL_CLIENT_I_DN",
	"SSL_CLIENT_V_START", "SSL_CLIENT_V_END", "SSL_CLIENT_M_SERIAL", "SSL_PEER_CERT_HASH",
	"SSL_PEER_CERT_SUBJECT", "SSL_CLIENT_VERIFY", NULL
};
static const char *const always[] = {
	"SSL_PROTOCOL", "SSL_CIPHER", "SSL_CIPHER_USEKEYSIZE", "SSL_CIPHER_ALGKEYSIZE",
	"SSL_VERSION_INTERFACE", "SSL_VERSION_LIBRARY", "SSL_CLIENT_VERIFY", NULL
};
static const char *const with_cert[] = {
	"SSL_CLIENT_S_DN", "SSL_CLIENT_I_DN", "SSL_CLIENT_V_START", "SSL_CLIENT_V_END",
	"SSL_CLIENT_M_SERIAL", "SSL_PEER_CERT_HASH", "SSL_PEER_CERT_SUBJECT", NULL
};

#define MAXVARS 64
struct envset {
	int n;
	char *name[MAXVARS];
	char *value[MAXVARS];
	char *block;
	ssize_t len;
};

static const char *env_get(const struct envset *e, const char *name)
{
	for (int i = 0; i < e->n; i++)
		if (!strcmp(e->name[i], name))
			return e->value[i];
	return NULL;
}

static void env_free(struct envset *e)
{
	for (int i = 0; i < e->n; i++) {
		free(e->name[i]);
		free(e->value[i]);
	}
	free(e->block);
	memset(e, 0, sizeof *e);
}

/* parse_block splits "NAME=value\0...\0\0" the way a UCSPI-TLS program
 * would (on NUL, each entry at its first '='), checking the form. */
static void parse_block(const char *b, ssize_t len, struct envset *e)
{
	ssize_t p = 0;
	memset(e, 0, sizeof *e);
	CHECK(len >= 2);
	CHECK(b[len - 1] == 0 && b[len - 2] == 0);
	if (len == 2)
		return; /* the empty set */
	while (p < len - 1) {
		const char *ent = b + p;
		const char *nul = memchr(ent, 0, (size_t)(len - p));
		const char *eq;
		CHECK(nul);
		CHECK(nul > ent); /* no empty entry before the end */
		for (const char *q = ent; q < nul; q++)
			if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e)
				T_FAIL("byte 0x%02x in entry \"%s\"", (unsigned char)*q, ent);
		eq = memchr(ent, '=', (size_t)(nul - ent));
		if (!eq)
			T_FAIL("entry without '=': %s", ent);
		CHECK(e->n < MAXVARS);
		e->name[e->n] = strndup(ent, (size_t)(eq - ent));
		e->value[e->n] = strdup(eq + 1);
		CHECK(e->name[e->n] && e->value[e->n]);
		for (const char *q = e->name[e->n]; *q; q++)
			CHECK((*q >= 'A' && *q <= 'Z') || *q == '_');
		e->n++;
		p = nul - b + 1;
	}
	CHECK_EQ(p, len - 1); /* ended on the final NUL */
}

static int in_list(const char *const *list, const char *name)
{
	for (; *list; list++)
		if (!strcmp(*list, name))
			return 1;
	return 0;
}

/* get_env fetches |s|'s block the documented ways and parses it. */
static void get_env(struct mailtls *s, struct envset *e)
{
	ssize_t need = mailtls_env(s, NULL, 0), r;
	char *buf, *again;

	CHECK(need >= 2);
	buf = malloc((size_t)need + 16);
	again = malloc((size_t)need + 16);
	CHECK(buf && again);
	/* too small: -1, MAILTLS_E_USAGE */
	CHECK_EQ(mailtls_env(s, buf, (size_t)need - 1), -1);
	CHECK_EQ(mailtls_errcode(s), MAILTLS_E_USAGE);
	CHECK(strlen(mailtls_error(s)) > 0);
	CHECK_EQ(mailtls_env(s, buf, 0), -1);
	CHECK_EQ(mailtls_errcode(s), MAILTLS_E_USAGE);
	/* exactly enough: the length, nothing written past it */
	memset(buf, 'Z', (size_t)need + 16);
	r = mailtls_env(s, buf, (size_t)need);
	CHECK_EQ(r, need);
	CHECK_EQ(mailtls_errcode(s), MAILTLS_E_NONE);
	for (int i = 0; i < 16; i++)
		CHECK(buf[need + i] == 'Z');
	/* more than enough: the same block */
	CHECK_EQ(mailtls_env(s, again, (size_t)need + 16), need);
	CHECK(memcmp(buf, again, (size_t)need) == 0);
	/* the length-only call again agrees */
	CHECK_EQ(mailtls_env(s, NULL, 12345), need);
	free(again);
	parse_block(buf, need, e);
	e->block = buf;
	e->len = need;
}

/* A client's block names the server's certificate SSL_SERVER_* (mod_ssl's
 * and sslclient's names): checked here, then read under the SSL_CLIENT_*
 * names so the checks below serve both sides. */
static void get_client_env(struct mailtls *c, struct envset *e)
{
	get_env(c, e);
	for (int i = 0; i < e->n; i++) {
		if (!strncmp(e->name[i], "SSL_CLIENT_", 11))
			T_FAIL("a client's block has %s: the peer is the server", e->name[i]);
		if (!strncmp(e->name[i], "SSL_SERVER_", 11))
			memcpy(e->name[i] + 4, "CLIENT", 6);
	}
}

/* check_set: names allowed, each once, the must-haves there; cert-only
 * names there exactly when |has_cert|. */
static void check_set(const struct envset *e, int has_cert)
{
	for (int i = 0; i < e->n; i++) {
		if (!in_list(allowed, e->name[i]))
			T_FAIL("unexpected variable %s=%s", e->name[i], e->value[i]);
		for (int j = 0; j < i; j++)
			if (!strcmp(e->name[i], e->name[j]))
				T_FAIL("variable %s twice", e->name[i]);
	}
	for (const char *const *n = always; *n; n++)
		if (!env_get(e, *n))
			T_FAIL("variable %s missing", *n);
	for (const char *const *n = with_cert; *n; n++)
		if (!env_get(e, *n) != !has_cert)
			T_FAIL("variable %s %s", *n, has_cert ? "missing" : "present without a certificate");
	if (!has_cert)
		CHECK(!env_get(e, "SSL_CLIENT_S_DN_CN"));
	CHECK_STR(env_get(e, "SSL_VERSION_LIBRARY"), "BoringSSL");
	CHECK_STR(env_get(e, "SSL_VERSION_INTERFACE"), "libmailtls/" MAILTLS_VERSION_STRING);
	CHECK(atoi(env_get(e, "SSL_CIPHER_USEKEYSIZE")) >= 128);
	CHECK(atoi(env_get(e, "SSL_CIPHER_ALGKEYSIZE")) >= 128);
	CHECK(!strncmp(env_get(e, "SSL_CIPHER"), "TLS_", 4));
}

/* A client and a server over a socketpair, handshake done. */
struct pair {
	int sv[2];
	struct mailtls *c, *s;
};

static void pair_run_session(struct pair *p, struct mailtls_config *scfg, struct mailtls_config *ccfg,
    const char *sni, const unsigned char *sess, size_t sesslen)
{
	int sr = -1, cr;
	tu_socketpair(p->sv);
	p->c = mailtls_client(ccfg, p->sv[0], p->sv[0], sni);
	p->s = mailtls_server(scfg, p->sv[1], p->sv[1]);
	CHECK(p->c && p->s);
	if (sess)
		CHECK_OK(p->c, mailtls_set_session(p->c, sess, sesslen));
	cr = tu_handshake_pair(p->c, p->s, &sr);
	if (cr < 0)
		T_FAIL("client handshake: %s (%s)", mailtls_error(p->c), mailtls_errcode_name(mailtls_errcode(p->c)));
	if (sr < 0)
		T_FAIL("server handshake: %s (%s)", mailtls_error(p->s), mailtls_errcode_name(mailtls_errcode(p->s)));
}

static void pair_run(struct pair *p, struct mailtls_config *scfg, struct mailtls_config *ccfg,
    const char *sni)
{
	pair_run_session(p, scfg, ccfg, sni, NULL, 0);
}

static void pair_free(struct pair *p)
{
	mailtls_free(p->c);
	mailtls_free(p->s);
	close(p->sv[0]);
	close(p->sv[1]);
}

static struct mailtls_config *server_cfg(int verify)
{
	struct mailtls_config *c = tu_server_config("server-ec.pem", "server-ec.key");
	CHECK_CFG_OK(c, mailtls_config_set_ca(c, pki("ca.pem"), NULL));
	CHECK_CFG_OK(c, mailtls_config_set_verify(c, verify));
	return c;
}

static struct mailtls_config *client_cfg(const char *cert, const char *key)
{
	struct mailtls_config *c = tu_client_config();
	if (cert)
		CHECK_CFG_OK(c, mailtls_config_set_keypair_file(c, cert, key));
	return c;
}

/* check_cert_vars compares the certificate variables with openssl's view
 * of |leafpem| and with the fact functions of |s|. */
static void check_cert_vars(const struct envset *e, struct mailtls *s, const char *leafpem)
{
	char want[512];

	snprintf(want, sizeof want, "%s", tu_fingerprint_of(leafpem));
	CHECK_STR(env_get(e, "SSL_PEER_CERT_HASH"), want);
	CHECK_STR(mailtls_peer_fingerprint(s), want);
	tu_x509_field(leafpem, "-serial", want, sizeof want);
	CHECK_STR(env_get(e, "SSL_CLIENT_M_SERIAL"), want);
	CHECK_STR(mailtls_peer_serial(s), want);
	tu_x509_field(leafpem, "-startdate", want, sizeof want);
	CHECK_STR(env_get(e, "SSL_CLIENT_V_START"), want);
	CHECK_STR(mailtls_peer_not_before(s), want);
	tu_x509_field(leafpem, "-enddate", want, sizeof want);
	CHECK_STR(env_get(e, "SSL_CLIENT_V_END"), want);
	CHECK_STR(mailtls_peer_not_after(s), want);
	CHECK_STR(env_get(e, "SSL_CLIENT_S_DN"), mailtls_peer_subject(s));
	CHECK_STR(env_get(e, "SSL_PEER_CERT_SUBJECT"), mailtls_peer_subject(s));
	CHECK_STR(env_get(e, "SSL_CLIENT_I_DN"), mailtls_peer_issuer(s));
	CHECK_STR(env_get(e, "SSL_CLIENT_I_DN"), "CN=mailtls Test Intermediate CA,O=mailtls tests");
	if (mailtls_peer_cn(s))
		CHECK_STR(env_get(e, "SSL_CLIENT_S_DN_CN"), mailtls_peer_cn(s));
	else
		CHECK(!env_get(e, "SSL_CLIENT_S_DN_CN"));
	CHECK_EQ(mailtls_peer_has_cert(s), 1);
	/* the cached strings stay the same */
	CHECK(mailtls_peer_subject(s) == mailtls_peer_subject(s));
	CHECK(mailtls_peer_fingerprint(s) == mailtls_peer_fingerprint(s));
}

/* ------------------------------------------------------------------ */
/* Tests                                                                */
/* ------------------------------------------------------------------ */

static void test_before_handshake(void)
{
	struct mailtls_config *cfg = server_cfg(MAILTLS_VERIFY_NONE);
	int sv[2];
	struct mailtls *s;
	char buf[8];

	tu_socketpair(sv);
	s = mailtls_server(cfg, sv[0], sv[0]);
	CHECK(s);
	CHECK(!mailtls_protocol(s));
	CHECK(!mailtls_cipher(s));
	CHECK_EQ(mailtls_cipher_bits(s), 0);
	CHECK(!mailtls_servername(s));
	CHECK_EQ(mailtls_session_reused(s), 0);
	CHECK_EQ(mailtls_peer_verified(s), 0);
	CHECK_EQ(mailtls_peer_has_cert(s), 0);
	CHECK(!mailtls_peer_subject(s));
	CHECK(!mailtls_peer_issuer(s));
	CHECK(!mailtls_peer_cn(s));
	CHECK(!mailtls_peer_fingerprint(s));
	CHECK(!mailtls_peer_serial(s));
	CHECK(!mailtls_peer_not_before(s));
	CHECK(!mailtls_peer_not_after(s));
	/* no facts yet: the empty set */
	CHECK_EQ(mailtls_env(s, NULL, 0), 2);
	memset(buf, 'Z', sizeof buf);
	CHECK_EQ(mailtls_env(s, buf, sizeof buf), 2);
	CHECK(buf[0] == 0 && buf[1] == 0 && buf[2] == 'Z');
	CHECK_EQ(mailtls_env(s, buf, 1), -1);
	CHECK_EQ(mailtls_errcode(s), MAILTLS_E_USAGE);
	CHECK_EQ(mailtls_env(NULL, buf, sizeof buf), -1);
	mailtls_free(s);
	mailtls_config_free(cfg);
	close(sv[0]);
	close(sv[1]);
}

static void test_evil_client(void)
{
	struct mailtls_config *scfg = server_cfg(MAILTLS_VERIFY_REQUIRE);
	struct mailtls_config *ccfg = client_cfg(pki("evil-client.pem"), pki("evil-client.key"));
	struct pair p;
	struct envset e;

	pair_run(&p, scfg, ccfg, "localhost");
	CHECK_EQ(mailtls_peer_verified(p.s), 1);
	CHECK_EQ(mailtls_peer_verify_result(p.s), MAILTLS_E_NONE);
	get_env(p.s, &e);
	check_set(&e, 1);
	/* The certificate's "SSL_PROTOCOL=SSLv2" stays inside the CN. */
	CHECK_STR(env_get(&e, "SSL_PROTOCOL"), mailtls_protocol(p.s));
	CHECK(!strcmp(env_get(&e, "SSL_PROTOCOL"), "TLSv1.3") ||
	    !strcmp(env_get(&e, "SSL_PROTOCOL"), "TLSv1.2"));
	CHECK_STR(env_get(&e, "SSL_CLIENT_S_DN_CN"), "evil\\0ASSL_PROTOCOL\\3DSSLv2");
	CHECK_STR(mailtls_peer_cn(p.s), "evil\\0ASSL_PROTOCOL\\3DSSLv2");
	/* O is "a=b,c\00d" DEL (a literal backslash, not a NUL) */
	CHECK_STR(env_get(&e, "SSL_CLIENT_S_DN"),
	    "CN=evil\\0ASSL_PROTOCOL\\3DSSLv2,O=a\\3Db\\,c\\5C00d\\7F");
	CHECK_STR(env_get(&e, "SSL_CLIENT_VERIFY"), "SUCCESS");
	CHECK_STR(env_get(&e, "SSL_TLS_SNI_SERVERNAME"), "localhost");
	CHECK_STR(mailtls_servername(p.s), "localhost");
	CHECK_STR(env_get(&e, "SSL_CIPHER"), mailtls_cipher(p.s));
	CHECK_EQ(atoi(env_get(&e, "SSL_CIPHER_USEKEYSIZE")), mailtls_cipher_bits(p.s));
	check_cert_vars(&e, p.s, pki("evil-client-leaf.pem"));
	/* the whole block: no byte outside 0x20..0x7e but the separators */
	for (ssize_t i = 0; i < e.len; i++)
		CHECK(e.block[i] == 0 || (e.block[i] >= 0x20 && e.block[i] < 0x7f));
	CHECK(!memmem(e.block, (size_t)e.len, "SSLv2", 5) ||
	    strstr(env_get(&e, "SSL_CLIENT_S_DN_CN"), "SSLv2"));
	env_free(&e);

	/* the client's side: the server's certificate */
	get_client_env(p.c, &e);
	check_set(&e, 1);
	CHECK_STR(env_get(&e, "SSL_CLIENT_S_DN"), "CN=localhost");
	CHECK_STR(env_get(&e, "SSL_CLIENT_S_DN_CN"), "localhost");
	CHECK_STR(env_get(&e, "SSL_CLIENT_VERIFY"), "SUCCESS");
	CHECK_STR(env_get(&e, "SSL_TLS_SNI_SERVERNAME"), "localhost");
	CHECK_STR(env_get(&e, "SSL_PROTOCOL"), mailtls_protocol(p.c));
	check_cert_vars(&e, p.c, pki("server-ec-leaf.pem"));
	env_free(&e);

	pair_free(&p);
	mailtls_config_free(scfg);
	mailtls_config_free(ccfg);
}

static void test_normal_client(void)
{
	struct mailtls_config *scfg = server_cfg(MAILTLS_VERIFY_REQUIRE);
	struct mailtls_config *ccfg = client_cfg(pki("client.pem"), pki("client.key"));
	struct pair p;
	struct envset e;

	pair_run(&p, scfg, ccfg, "mail.test.example");
	get_env(p.s, &e);
	check_set(&e, 1);
	CHECK_STR(env_get(&e, "SSL_CLIENT_S_DN"), "CN=client.test.example");
	CHECK_STR(env_get(&e, "SSL_PEER_CERT_SUBJECT"), "CN=client.test.example");
	CHECK_STR(env_get(&e, "SSL_CLIENT_S_DN_CN"), "client.test.example");
	CHECK_STR(env_get(&e, "SSL_CLIENT_VERIFY"), "SUCCESS");
	CHECK_STR(env_get(&e, "SSL_TLS_SNI_SERVERNAME"), "mail.test.example");
	check_cert_vars(&e, p.s, pki("client-leaf.pem"));
	env_free(&e);
	pair_free(&p);
	mailtls_config_free(scfg);
	mailtls_config_free(ccfg);
}

static void test_no_client_cert(void)
{
	int modes[] = { MAILTLS_VERIFY_NONE, MAILTLS_VERIFY_OPTIONAL };
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		struct mailtls_config *scfg = server_cfg(modes[i]);
		struct mailtls_config *ccfg = client_cfg(NULL, NULL);
		struct pair p;
		struct envset e;

		pair_run(&p, scfg, ccfg, "localhost");
		CHECK_EQ(mailtls_peer_has_cert(p.s), 0);
		CHECK_EQ(mailtls_peer_verified(p.s), 0);
		CHECK_EQ(mailtls_peer_verify_result(p.s), MAILTLS_E_VERIFY_NOCERT);
		CHECK(!mailtls_peer_subject(p.s));
		CHECK(!mailtls_peer_fingerprint(p.s));
		CHECK(!mailtls_peer_cn(p.s));
		get_env(p.s, &e);
		check_set(&e, 0);
		CHECK_STR(env_get(&e, "SSL_CLIENT_VERIFY"), "NONE");
		CHECK_STR(env_get(&e, "SSL_TLS_SNI_SERVERNAME"), "localhost");
		env_free(&e);
		pair_free(&p);
		mailtls_config_free(scfg);
		mailtls_config_free(ccfg);
	}
}

/* Optional verification of a certificate no trusted CA signed: the
 * handshake goes on and SSL_CLIENT_VERIFY says why it failed. */
static void test_failed_verify(void)
{
	struct mailtls_config *scfg = server_cfg(MAILTLS_VERIFY_OPTIONAL);
	struct mailtls_config *ccfg = client_cfg(pki("selfsigned.pem"), pki("selfsigned.key"));
	struct pair p;
	struct envset e;
	char want[128];

	pair_run(&p, scfg, ccfg, "localhost");
	CHECK_EQ(mailtls_peer_has_cert(p.s), 1);
	CHECK_EQ(mailtls_peer_verified(p.s), 0);
	CHECK(mailtls_errcode_is_verify(mailtls_peer_verify_result(p.s)));
	get_env(p.s, &e);
	check_set(&e, 1);
	snprintf(want, sizeof want, "FAILED:%s", mailtls_errcode_name(mailtls_peer_verify_result(p.s)));
	CHECK_STR(env_get(&e, "SSL_CLIENT_VERIFY"), want);
	CHECK_STR(env_get(&e, "SSL_CLIENT_S_DN"), "CN=localhost");
	CHECK_STR(env_get(&e, "SSL_CLIENT_I_DN"), "CN=localhost");
	fprintf(stderr, "   SSL_CLIENT_VERIFY=%s\n", want);
	env_free(&e);
	pair_free(&p);
	mailtls_config_free(scfg);
	mailtls_config_free(ccfg);
}

/* No SNI (an IP literal): no SSL_TLS_SNI_SERVERNAME on either side. */
static void test_no_sni(void)
{
	struct mailtls_config *scfg = server_cfg(MAILTLS_VERIFY_NONE);
	struct mailtls_config *ccfg = client_cfg(NULL, NULL);
	struct pair p;
	struct envset e;

	pair_run(&p, scfg, ccfg, "127.0.0.1");
	CHECK(!mailtls_servername(p.s));
	get_env(p.s, &e);
	check_set(&e, 0);
	CHECK(!env_get(&e, "SSL_TLS_SNI_SERVERNAME"));
	env_free(&e);
	pair_free(&p);
	mailtls_config_free(scfg);
	mailtls_config_free(ccfg);
}

/* TLS 1.2 (IANA cipher names, a session ID maybe), then a resumed
 * session: its facts are those of the certificate of the first. */
static void test_tls12_resumed(void)
{
	struct mailtls_config *scfg = server_cfg(MAILTLS_VERIFY_REQUIRE);
	struct mailtls_config *ccfg = client_cfg(pki("client.pem"), pki("client.key"));
	struct pair p;
	struct envset e;
	unsigned char *sess;
	size_t slen;
	char fp[128];
	const char *id;

	CHECK_CFG_OK(ccfg, mailtls_config_set_max_protocol(ccfg, MAILTLS_TLS1_2));
	pair_run(&p, scfg, ccfg, "localhost");
	CHECK_STR(mailtls_protocol(p.s), "TLSv1.2");
	CHECK(!strncmp(mailtls_cipher(p.s), "TLS_ECDHE_ECDSA_WITH_", 21));
	CHECK_EQ(mailtls_session_reused(p.s), 0);
	get_env(p.s, &e);
	check_set(&e, 1);
	CHECK_STR(env_get(&e, "SSL_PROTOCOL"), "TLSv1.2");
	id = env_get(&e, "SSL_SESSION_ID");
	if (id) { /* uppercase hex of 1 to 32 bytes */
		CHECK(strlen(id) >= 2 && strlen(id) <= 64 && strlen(id) % 2 == 0);
		for (const char *q = id; *q; q++)
			CHECK((*q >= '0' && *q <= '9') || (*q >= 'A' && *q <= 'F'));
	}
	snprintf(fp, sizeof fp, "%s", env_get(&e, "SSL_PEER_CERT_HASH"));
	env_free(&e);
	sess = tu_session_of(p.c, &slen);
	pair_free(&p);

	pair_run_session(&p, scfg, ccfg, "localhost", sess, slen);
	CHECK_EQ(mailtls_session_reused(p.c), 1);
	CHECK_EQ(mailtls_session_reused(p.s), 1);
	get_env(p.s, &e);
	check_set(&e, 1);
	CHECK_STR(env_get(&e, "SSL_CLIENT_S_DN"), "CN=client.test.example");
	CHECK_STR(env_get(&e, "SSL_PEER_CERT_HASH"), fp);
	CHECK_STR(env_get(&e, "SSL_CLIENT_VERIFY"), "SUCCESS");
	check_cert_vars(&e, p.s, pki("client-leaf.pem"));
	env_free(&e);
	get_client_env(p.c, &e);
	check_set(&e, 1);
	CHECK_STR(env_get(&e, "SSL_CLIENT_S_DN"), "CN=localhost");
	env_free(&e);
	pair_free(&p);
	free(sess);
	mailtls_config_free(scfg);
	mailtls_config_free(ccfg);
}

/* A client certificate with every kind of awkward name, made here with
 * Python's cryptography (as the test PKI is). */
static const char nasty_py[] =
    "import sys, datetime\n"
    "from cryptography import x509\n"
    "from cryptography.hazmat.primitives import hashes, serialization\n"
    "from cryptography.hazmat.primitives.asymmetric import ec\n"
    "from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID\n"
    "from cryptography.x509.name import _ASN1Type\n"
    "pki, out = sys.argv[1], sys.argv[2]\n"
    "inter = x509.load_pem_x509_certificate(open(pki + '/int.pem', 'rb').read())\n"
    "ikey = serialization.load_pem_private_key(open(pki + '/int.key', 'rb').read(), None)\n"
    "k = ec.generate_private_key(ec.SECP256R1())\n"
    "A, R = x509.NameAttribute, x509.RelativeDistinguishedName\n"
    "subj = x509.Name([\n"
    "  R([A(NameOID.COUNTRY_NAME, 'US')]),\n"
    "  R([A(NameOID.ORGANIZATION_NAME, '#lead, \"q\" <x>;y+z')]),\n"
    "  R([A(NameOID.ORGANIZATIONAL_UNIT_NAME, 'nul\\x00byte'), A(NameOID.USER_ID, 'u1')]),\n"
    "  R([A(NameOID.LOCALITY_NAME, 'bmp\\u00e9', _type=_ASN1Type.BMPString)]),\n"
    "  R([A(NameOID.EMAIL_ADDRESS, 'a\\\\b@x')]),\n"
    "  R([A(NameOID.COMMON_NAME, ' \\u00e9 trailing ')]),\n"
    "])\n"
    "now = datetime.datetime.now(datetime.timezone.utc)\n"
    "c = (x509.CertificateBuilder().subject_name(subj).issuer_name(inter.subject)\n"
    "     .public_key(k.public_key()).serial_number(x509.random_serial_number())\n"
    "     .not_valid_before(now - datetime.timedelta(days=1))\n"
    "     .not_valid_after(now + datetime.timedelta(days=30))\n"
    "     .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)\n"
    "     .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)\n"
    "     .sign(ikey, hashes.SHA256()))\n"
    "pem = c.public_bytes(serialization.Encoding.PEM)\n"
    "open(out + '/nasty-leaf.pem', 'wb').write(pem)\n"
    "open(out + '/nasty.pem', 'wb').write(pem + inter.public_bytes(serialization.Encoding.PEM))\n"
    "open(out + '/nasty.key', 'wb').write(k.private_bytes(serialization.Encoding.PEM,\n"
    "    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))\n"
    "print('ok')\n";

static void test_nasty_names(void)
{
	char dir[256], path[512], cmd[2048], line[64];
	const char *files[] = { "make.py", "nasty-leaf.pem", "nasty.pem", "nasty.key" };
	struct mailtls_config *scfg, *ccfg;
	struct pair p;
	struct envset e;
	FILE *f;

	snprintf(dir, sizeof dir, "%s", tu_tmpdir());
	snprintf(path, sizeof path, "%s/make.py", dir);
	f = fopen(path, "w");
	CHECK(f);
	CHECK(fputs(nasty_py, f) >= 0);
	CHECK(fclose(f) == 0);
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' '%s'", path, pki(""), dir);
	tu_sh_line(line, sizeof line, "%s", cmd);
	CHECK_STR(line, "ok");

	scfg = server_cfg(MAILTLS_VERIFY_REQUIRE);
	snprintf(path, sizeof path, "%s/nasty.pem", dir);
	snprintf(cmd, sizeof cmd, "%s/nasty.key", dir);
	ccfg = client_cfg(path, cmd);
	pair_run(&p, scfg, ccfg, "localhost");
	get_env(p.s, &e);
	check_set(&e, 1);
	/* Most specific first; '#' and the first space lead, the last space
	 * trails; the NUL is \00, "é" its UTF-8 bytes (from UTF8String and
	 * BMPString alike); a multi-valued RDN keeps its DER order. */
	CHECK_STR(env_get(&e, "SSL_CLIENT_S_DN"),
	    "CN=\\ \\C3\\A9 trailing\\ ,emailAddress=a\\5Cb@x,L=bmp\\C3\\A9,"
	    "OU=nul\\00byte+UID=u1,O=\\#lead\\, \\\"q\\\" \\<x\\>\\;y\\+z,C=US");
	CHECK_STR(env_get(&e, "SSL_CLIENT_S_DN_CN"), "\\ \\C3\\A9 trailing\\ ");
	CHECK_STR(mailtls_peer_subject(p.s), env_get(&e, "SSL_CLIENT_S_DN"));
	snprintf(path, sizeof path, "%s/nasty-leaf.pem", dir);
	check_cert_vars(&e, p.s, path);
	env_free(&e);
	pair_free(&p);
	mailtls_config_free(scfg);
	mailtls_config_free(ccfg);

	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

int main(void)
{
	RUN(test_escape);
	RUN(test_before_handshake);
	RUN(test_evil_client);
	RUN(test_normal_client);
	RUN(test_no_client_cert);
	RUN(test_failed_verify);
	RUN(test_no_sni);
	RUN(test_tls12_resumed);
	RUN(test_nasty_names);
	return 0;
}
