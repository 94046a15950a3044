/* bench_primitives.c -- the handshake's and the record layer's primitives
 * through the BoringSSL libcrypto that libmailtls is linked to (Debian's
 * android-libboringssl), for comparison with the handshake and relay
 * numbers.  `openssl speed` measures the system OpenSSL, a different
 * library with different code; both are printed by run.sh.
 *
 * usage: bench_primitives [-t SECONDS_PER_OP] [-C CPU]
 *
 * Ops: ECDSA P-256 sign/verify (SHA-256 digest), RSA-2048 PSS sign/verify
 * (as TLS 1.3 uses), X25519 (one key generation + one shared secret: one
 * side's share of a TLS 1.3 key exchange), AES-128-GCM and
 * ChaCha20-Poly1305 sealing 16 KiB (a full TLS record). */
#include "benchutil.h"   /* first: it defines _GNU_SOURCE */

#include <openssl/aead.h>
#include <openssl/bn.h>
#include <openssl/curve25519.h>
#include <openssl/digest.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/nid.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

static double secs = 1.0;

/* Runs |op| in batches until |secs| passed; returns ops per second. */
#define MEASURE(ops_out, body) do { \
	double _t0 = now(), _t; long _n = 0; \
	do { for (int _i = 0; _i < 16; _i++) { body; } _n += 16; _t = now() - _t0; } \
	while (_t < secs); \
	ops_out = (double)_n / _t; } while (0)

static void result(const char *name, double rate, const char *unit)
{
	printf("%-28s %12.1f %s\n", name, rate, unit);
	printf("RESULT prim.%s rate=%.1f\n", name, rate);
	fflush(stdout);
}

static void bench_ecdsa(void)
{
	EC_KEY *k = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
	uint8_t dig[32], sig[128];
	unsigned siglen = 0;
	double r;
	if (!k || !EC_KEY_generate_key(k))
		die("EC key");
	SHA256((const uint8_t *)"bench", 5, dig);
	MEASURE(r, if (!ECDSA_sign(0, dig, sizeof dig, sig, &siglen, k)) die("ECDSA_sign"));
	result("ecdsa-p256.sign", r, "op/s");
	MEASURE(r, if (!ECDSA_verify(0, dig, sizeof dig, sig, siglen, k)) die("ECDSA_verify"));
	result("ecdsa-p256.verify", r, "op/s");
	EC_KEY_free(k);
}

static void bench_rsa(void)
{
	RSA *k = RSA_new();
	BIGNUM *e = BN_new();
	uint8_t dig[32], sig[256];
	size_t siglen = 0;
	double r;
	if (!k || !e || !BN_set_word(e, RSA_F4) || !RSA_generate_key_ex(k, 2048, e, NULL))
		die("RSA key");
	SHA256((const uint8_t *)"bench", 5, dig);
	MEASURE(r, if (!RSA_sign_pss_mgf1(k, &siglen, sig, sizeof sig, dig, sizeof dig,
	    EVP_sha256(), NULL, -1)) die("RSA sign"));
	result("rsa2048-pss.sign", r, "op/s");
	MEASURE(r, if (!RSA_verify_pss_mgf1(k, dig, sizeof dig, EVP_sha256(), NULL, -1, sig, siglen))
	    die("RSA verify"));
	result("rsa2048-pss.verify", r, "op/s");
	RSA_free(k);
	BN_free(e);
}

static void bench_x25519(void)
{
	uint8_t pub[32], priv[32], peerpub[32], peerpriv[32], shared[32];
	double r;
	X25519_keypair(peerpub, peerpriv);
	MEASURE(r, X25519_keypair(pub, priv); if (!X25519(shared, priv, peerpub)) die("X25519"));
	result("x25519.keygen+derive", r, "op/s");
}

static void bench_aead(const char *name, const EVP_AEAD *aead)
{
	static uint8_t in[16384], out[16384 + 16];
	uint8_t key[32] = { 1 }, nonce[12] = { 0 };
	EVP_AEAD_CTX ctx;
	size_t outlen;
	double r;
	char label[64];
	if (!EVP_AEAD_CTX_init(&ctx, aead, key, EVP_AEAD_key_length(aead), 16, NULL))
		die("EVP_AEAD_CTX_init");
	RAND_bytes(in, sizeof in);
	MEASURE(r, nonce[0]++; if (!EVP_AEAD_CTX_seal(&ctx, out, &outlen, sizeof out, nonce, sizeof nonce,
	    in, sizeof in, NULL, 0)) die("seal"));
	snprintf(label, sizeof label, "%s.seal-16k", name);
	result(label, r * (double)sizeof in / 1e6, "MB/s");
	EVP_AEAD_CTX_cleanup(&ctx);
}

int main(int argc, char **argv)
{
	int o, cpu = -1;
	while ((o = getopt(argc, argv, "t:C:")) != -1) {
		switch (o) {
		case 't': secs = atof(optarg); break;
		case 'C': cpu = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: bench_primitives [-t SECONDS_PER_OP] [-C CPU]\n");
			return 2;
		}
	}
	pin_to(cpu);
	printf("# bench_primitives: BoringSSL libcrypto as linked to libmailtls, %.2f s per op\n", secs);
	bench_ecdsa();
	bench_rsa();
	bench_x25519();
	bench_aead("aes-128-gcm", EVP_aead_aes_128_gcm());
	bench_aead("chacha20-poly1305", EVP_aead_chacha20_poly1305());
	return 0;
}
