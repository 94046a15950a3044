/*
 * fuzz_handshake.c -- the handshake glue over the memory transport
 * (session.c, bio.c's memory side, error.c's mapping of results, verify.c
 * on a client, facts and mailtls_env once done), client and server.
 *
 * BoringSSL is not instrumented, so coverage guidance sees only our code;
 * TLS 1.3 encrypts everything after the ServerHello, so raw bytes reach
 * little.  Three modes (byte 0 % 3), byte 1 bit 0 limits both sides to TLS
 * 1.2, bit 1 makes the client verify (and fail: it trusts nothing):
 *  0  a server session gets the rest as the client's bytes;
 *  1  a client session gets the rest as the server's bytes;
 *     (in 0 and 1 the rest is chunks: a length byte, then the bytes; the
 *     session runs after each chunk, and after the last sees end of file)
 *  2  our client and our server talk through a man in the middle the
 *     input drives: each op byte picks a direction (bit 0) and what happens
 *     to the bytes waiting in it (bits 1-2): 0 all pass, 1 a prefix passes
 *     (length: next byte), 2 one byte is changed (offset and xor: next two
 *     bytes) and all pass, 3 the bytes are dropped; after the ops, all
 *     pass until nothing moves.  Then application data and close_notify.
 *
 * Checks: results are 0 / MAILTLS_WANT_READ / -1 (never WANT_WRITE on
 * memory), an error has a category and a message, a memory session never
 * fails with MAILTLS_E_USAGE or MAILTLS_E_SYSTEM; in mode 2 with no byte
 * changed or dropped both sides finish, the data arrives intact and the
 * close_notify is seen; whatever was changed, data that arrives is what
 * was sent; the environment blocks hold only printable values.
 *
 * FUZZ_HANDSHAKE_SEEDS=dir: writes real first flights there as seeds
 * (a client's and a server's), then runs as usual.
 * ISC license: see LICENSE.
 */
#include <errno.h>

#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "fuzz.h"
#include "mailtls.h"

static struct mailtls_config *srv_cfg, *srv12_cfg, *cli_cfg, *cli12_cfg, *cli_verify_cfg;

/* A throwaway self-signed ECDSA certificate for mx.fuzz.example, made at
 * start: no key is kept in the tree. */
static void make_keypair(char **cert, size_t *certlen, char **key, size_t *keylen)
{
	EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
	EVP_PKEY *pk = EVP_PKEY_new();
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
	const uint8_t *p;
	size_t len;
	if (!ec || !pk || !x || !n || !cb || !kb || !EC_KEY_generate_key(ec) || !EVP_PKEY_assign_EC_KEY(pk, ec))
		abort();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const uint8_t *)"mx.fuzz.example", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const uint8_t *)"fuzz, \"inc\"", -1, -1, 0);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, n);
	X509_set_pubkey(x, pk);
	if (!X509_sign(x, pk, EVP_sha256()) || !PEM_write_bio_X509(cb, x) ||
	    !PEM_write_bio_PrivateKey(kb, pk, NULL, NULL, 0, NULL, NULL))
		abort();
	BIO_mem_contents(cb, &p, &len);
	*cert = malloc(len);
	memcpy(*cert, p, len);
	*certlen = len;
	BIO_mem_contents(kb, &p, &len);
	*key = malloc(len);
	memcpy(*key, p, len);
	*keylen = len;
	BIO_free(cb);
	BIO_free(kb);
	X509_NAME_free(n);
	X509_free(x);
	EVP_PKEY_free(pk);
}

static struct mailtls_config *config(int server, int tls12, int verify, const char *cert, size_t cl, const char *key,
    size_t kl)
{
	struct mailtls_config *c = mailtls_config_new();
	if (!c)
		abort();
	if (server && mailtls_config_set_keypair_mem(c, cert, cl, key, kl) < 0)
		abort();
	if (!server && mailtls_config_set_verify(c, verify ? MAILTLS_VERIFY_REQUIRE : MAILTLS_VERIFY_NONE) < 0)
		abort();
	if (tls12 && mailtls_config_set_max_protocol(c, MAILTLS_TLS1_2) < 0)
		abort();
	return c;
}

static void write_seeds(const char *dir);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *cert, *key;
	size_t cl, kl;
	const char *seeds = getenv("FUZZ_HANDSHAKE_SEEDS");
	make_keypair(&cert, &cl, &key, &kl);
	srv_cfg = config(1, 0, 0, cert, cl, key, kl);
	srv12_cfg = config(1, 1, 0, cert, cl, key, kl);
	cli_cfg = config(0, 0, 0, NULL, 0, NULL, 0);
	cli12_cfg = config(0, 1, 0, NULL, 0, NULL, 0);
	cli_verify_cfg = config(0, 0, 1, NULL, 0, NULL, 0);
	OPENSSL_cleanse(key, kl);
	free(key);
	free(cert);
	if (seeds)
		write_seeds(seeds);
	return 0;
}

static void check_result(struct mailtls *s, ssize_t r, const char *what)
{
	int e = mailtls_errcode(s);
	FUZZ_CHECK(r >= 0 || r == MAILTLS_WANT_READ || r == -1, "%s returned %zd", what, r);
	if (r == -1) {
		FUZZ_CHECK(e != MAILTLS_E_NONE && *mailtls_error(s), "%s failed without an error", what);
		FUZZ_CHECK(e != MAILTLS_E_USAGE && e != MAILTLS_E_SYSTEM, "%s: %s: %s", what, mailtls_errcode_name(e),
		    mailtls_error(s));
		FUZZ_CHECK(mailtls_error_temporary(e) == 1, "%s: %s counted permanent", what, mailtls_errcode_name(e));
	}
}

static void check_env(struct mailtls *s)
{
	ssize_t n = mailtls_env(s, NULL, 0);
	char *b;
	FUZZ_CHECK(n >= 2, "env size %zd", n);
	b = malloc((size_t)n);
	FUZZ_CHECK(mailtls_env(s, b, (size_t)n) == n, "env");
	FUZZ_CHECK(b[n - 1] == 0 && b[n - 2] == 0, "env end");
	for (ssize_t i = 0; i < n; i++)
		FUZZ_CHECK(b[i] == 0 || (b[i] >= 0x20 && b[i] <= 0x7e), "byte 0x%02x in the env block", (unsigned char)b[i]);
	FUZZ_CHECK(n == 2 || !strncmp(b, "SSL_PROTOCOL=", 13), "block does not start with SSL_PROTOCOL");
	free(b);
}

/* One step of a session: the handshake, then reads; returns 1 when done. */
static int step(struct mailtls *s, int *failed, uint8_t *got, size_t *gotlen, size_t gotcap)
{
	ssize_t r;
	if (*failed)
		return 0;
	r = mailtls_handshake(s);
	check_result(s, r, "handshake");
	if (r == -1)
		*failed = 1;
	if (r != 0)
		return 0;
	/* mailtls.h: 0 means the handshake is done, so the facts are there. */
	FUZZ_CHECK(mailtls_protocol(s) != NULL && mailtls_cipher(s) != NULL,
	    "mailtls_handshake returned 0 but the session has no protocol: the handshake is not done");
	for (;;) {
		uint8_t buf[512];
		r = mailtls_read(s, buf, sizeof buf);
		check_result(s, r, "read");
		if (r <= 0) {
			if (r == -1)
				*failed = 1;
			break;
		}
		if (got && *gotlen + (size_t)r <= gotcap) {
			memcpy(got + *gotlen, buf, (size_t)r);
			*gotlen += (size_t)r;
		}
	}
	return 1;
}

static size_t drain(struct mailtls *s, uint8_t *buf, size_t cap)
{
	size_t n = 0;
	for (;;) {
		ssize_t r = mailtls_mem_drain(s, buf + n, cap - n);
		FUZZ_CHECK(r >= 0, "drain");
		if (r == 0 || n + (size_t)r == cap)
			return n + (size_t)r;
		n += (size_t)r;
	}
}

static void one_side(int server, int flags, struct fz *f)
{
	struct mailtls *s = server ? mailtls_server_mem(flags & 1 ? srv12_cfg : srv_cfg)
	                           : mailtls_client_mem(flags & 2 ? cli_verify_cfg : flags & 1 ? cli12_cfg : cli_cfg,
	                                 "mx.fuzz.example");
	static uint8_t out[1 << 16];
	int failed = 0;
	FUZZ_CHECK(s, "session");
	while (f->n) {
		size_t got;
		const uint8_t *p = fz_bytes(f, fz_u8(f), &got);
		FUZZ_CHECK(mailtls_mem_feed(s, p, got) == (ssize_t)got, "feed");
		if (step(s, &failed, NULL, NULL, 0))
			check_env(s);
		drain(s, out, sizeof out);
	}
	mailtls_mem_feed_eof(s);
	if (step(s, &failed, NULL, NULL, 0))
		check_env(s);
	drain(s, out, sizeof out);
	mailtls_free(s);
}

#define MSG "MAIL FROM:<a@b>\r\n"

static void pair(int flags, struct fz *f)
{
	struct mailtls *c = mailtls_client_mem(flags & 2 ? cli_verify_cfg : flags & 1 ? cli12_cfg : cli_cfg,
	    "mx.fuzz.example");
	struct mailtls *s = mailtls_server_mem(flags & 1 ? srv12_cfg : srv_cfg);
	static uint8_t q[2][1 << 17]; /* 0: client to server, 1: server to client */
	size_t qn[2] = { 0, 0 };
	uint8_t cgot[64], sgot[64];
	size_t cgotlen = 0, sgotlen = 0;
	int cfail = 0, sfail = 0, cdone = 0, sdone = 0, tampered = 0, sent = 0, closed = 0, quiet = 0;
	FUZZ_CHECK(c && s, "sessions");

	/* The ops, one a round; then rounds where all passes, until nothing
	 * has moved for three rounds (or 100 rounds: a stuck pair). */
	for (int tail = 0; quiet < 3 && tail < 100; tail += f->n == 0) {
		int op = -1, dir, round = tail;
		cdone = step(c, &cfail, cgot, &cgotlen, sizeof cgot);
		sdone = step(s, &sfail, sgot, &sgotlen, sizeof sgot);
		if (cdone && sdone && !sent) {
			FUZZ_CHECK(mailtls_write(c, MSG, sizeof MSG - 1) == sizeof MSG - 1, "client write: %s", mailtls_error(c));
			FUZZ_CHECK(mailtls_write(s, "250 ok\r\n", 8) == 8, "server write: %s", mailtls_error(s));
			sent = 1;
		} else if (sent && !closed && cgotlen == 8 && sgotlen == sizeof MSG - 1) {
			FUZZ_CHECK(mailtls_close(c) == 0, "close: %s", mailtls_error(c));
			closed = 1;
		}
		qn[0] += drain(c, q[0] + qn[0], sizeof q[0] - qn[0]);
		qn[1] += drain(s, q[1] + qn[1], sizeof q[1] - qn[1]);
		if (f->n == 0 && qn[0] == 0 && qn[1] == 0)
			quiet++;
		else
			quiet = 0;
		if (f->n)
			op = (int)fz_u8(f);
		dir = op < 0 ? round & 1 : op & 1;
		switch (op < 0 ? 0 : (op >> 1) & 3) {
		case 0: /* all pass */
			break;
		case 1: { /* a prefix passes */
			size_t k = fz_u8(f);
			if (k < qn[dir]) {
				struct mailtls *to = dir ? c : s;
				FUZZ_CHECK(mailtls_mem_feed(to, q[dir], k) == (ssize_t)k, "feed");
				memmove(q[dir], q[dir] + k, qn[dir] - k);
				qn[dir] -= k;
				continue;
			}
			break;
		}
		case 2: { /* one byte changed */
			size_t at = fz_u8(f);
			unsigned x = fz_u8(f);
			if (qn[dir] && x) {
				q[dir][at % qn[dir]] ^= (uint8_t)x;
				tampered = 1;
			}
			break;
		}
		default: /* dropped */
			if (qn[dir])
				tampered = 1;
			qn[dir] = 0;
			break;
		}
		if (qn[dir]) {
			struct mailtls *to = dir ? c : s;
			FUZZ_CHECK(mailtls_mem_feed(to, q[dir], qn[dir]) == (ssize_t)qn[dir], "feed");
			qn[dir] = 0;
		}
	}
	/* Whatever happened on the way, what arrived is what was sent. */
	FUZZ_CHECK(cgotlen <= 8 && memcmp(cgot, "250 ok\r\n", cgotlen) == 0, "client got other bytes than sent");
	FUZZ_CHECK(sgotlen <= sizeof MSG - 1 && memcmp(sgot, MSG, sgotlen) == 0, "server got other bytes than sent");
	if (!tampered && !(flags & 2)) {
		FUZZ_CHECK(cdone && sdone && !cfail && !sfail, "untouched handshake failed: client %s, server %s",
		    mailtls_error(c), mailtls_error(s));
		FUZZ_CHECK(cgotlen == 8 && sgotlen == sizeof MSG - 1, "data lost: %zu, %zu", cgotlen, sgotlen);
		FUZZ_CHECK(closed && mailtls_peer_closed(s), "close_notify not seen");
	}
	if (cdone)
		check_env(c);
	if (sdone)
		check_env(s);
	mailtls_free(c);
	mailtls_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	unsigned mode = fz_u8(&f) % 3, flags = fz_u8(&f);
	if (mode == 2)
		pair((int)flags, &f);
	else
		one_side(mode == 0, (int)flags, &f);
	return 0;
}

/* The seeds: a client's first flight for mode 0, a server's answer to it
 * for mode 1 (it answers another ClientHello when fuzzed, so it carries
 * the handshake only as far as the ServerHello), and pair scripts. */
static void put_file(const char *dir, const char *name, const uint8_t *p, size_t n)
{
	char path[4096];
	FILE *fp;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (!(fp = fopen(path, "wb")) || fwrite(p, 1, n, fp) != n || fclose(fp) != 0) {
		fprintf(stderr, "fuzz_handshake: unable to write %s\n", path);
		exit(111);
	}
}

static size_t chunked(uint8_t *out, const uint8_t *p, size_t n, size_t piece)
{
	size_t o = 0;
	while (n) {
		size_t k = n < piece ? n : piece;
		out[o++] = (uint8_t)k;
		memcpy(out + o, p, k);
		o += k;
		p += k;
		n -= k;
	}
	return o;
}

static void write_seeds(const char *dir)
{
	static uint8_t buf[1 << 16], out[1 << 17];
	for (int tls12 = 0; tls12 <= 1; tls12++) {
		struct mailtls *c = mailtls_client_mem(tls12 ? cli12_cfg : cli_cfg, "mx.fuzz.example");
		struct mailtls *s = mailtls_server_mem(tls12 ? srv12_cfg : srv_cfg);
		size_t n, m;
		char name[64];
		if (mailtls_handshake(c) != MAILTLS_WANT_READ)
			abort();
		n = drain(c, buf, sizeof buf);
		out[0] = 0;
		out[1] = (uint8_t)tls12;
		m = chunked(out + 2, buf, n, 255);
		snprintf(name, sizeof name, "server-clienthello%s", tls12 ? "-tls12" : "");
		put_file(dir, name, out, m + 2);
		m = chunked(out + 2, buf, n, 7);
		snprintf(name, sizeof name, "server-clienthello-pieces%s", tls12 ? "-tls12" : "");
		put_file(dir, name, out, m + 2);
		mailtls_mem_feed(s, buf, n);
		if (mailtls_handshake(s) != MAILTLS_WANT_READ)
			abort();
		n = drain(s, buf, sizeof buf);
		out[0] = 1;
		m = chunked(out + 2, buf, n, 255);
		snprintf(name, sizeof name, "client-serverflight%s", tls12 ? "-tls12" : "");
		put_file(dir, name, out, m + 2);
		mailtls_free(c);
		mailtls_free(s);
	}
	{
		static const uint8_t clean[] = { 2, 0 }, clean12[] = { 2, 1 }, verify[] = { 2, 2 },
		    pieces[] = { 2, 0, 2, 5, 3, 40, 2, 1, 3, 100, 0, 1 },
		    flip[] = { 2, 0, 0, 5, 4, 60, 1 }, drop[] = { 2, 1, 0, 7 };
		put_file(dir, "pair-clean", clean, sizeof clean);
		put_file(dir, "pair-clean-tls12", clean12, sizeof clean12);
		put_file(dir, "pair-verify-fails", verify, sizeof verify);
		put_file(dir, "pair-pieces", pieces, sizeof pieces);
		put_file(dir, "pair-flip", flip, sizeof flip);
		put_file(dir, "pair-drop", drop, sizeof drop);
	}
}
