#include <ctype.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

const char *pki(const char *file)
{
	static char bufs[16][1024];
	static int n;
	const char *dir = getenv("MAILTLS_TEST_PKI");
	char *b = bufs[n++ % 16];
	if (!dir)
		T_FAIL("MAILTLS_TEST_PKI is not set (run the tests through ctest)");
	snprintf(b, sizeof bufs[0], "%s/%s", dir, file);
	return b;
}

struct mailtls_config *tu_server_config(const char *cert, const char *key)
{
	struct mailtls_config *c = mailtls_config_new();
	CHECK(c);
	CHECK_CFG_OK(c, mailtls_config_set_keypair_file(c, pki(cert), key ? pki(key) : NULL));
	return c;
}

struct mailtls_config *tu_client_config(void)
{
	struct mailtls_config *c = mailtls_config_new();
	CHECK(c);
	CHECK_CFG_OK(c, mailtls_config_set_ca(c, pki("ca.pem"), NULL));
	return c;
}

void tu_socketpair(int sv[2])
{
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
}

static void *server_main(void *arg)
{
	struct tu_server *ts = arg;
	ts->result = mailtls_handshake(ts->s);
	ts->errcode = mailtls_errcode(ts->s);
	snprintf(ts->error, sizeof ts->error, "%s", mailtls_error(ts->s));
	return NULL;
}

void tu_server_start(struct tu_server *ts, struct mailtls *s)
{
	memset(ts, 0, sizeof *ts);
	ts->s = s;
	CHECK(pthread_create(&ts->th, NULL, server_main, ts) == 0);
}

void tu_server_join(struct tu_server *ts)
{
	pthread_join(ts->th, NULL);
}

int tu_handshake_pair(struct mailtls *client, struct mailtls *server, int *server_result)
{
	struct tu_server ts;
	int r;
	tu_server_start(&ts, server);
	r = mailtls_handshake(client);
	if (r < 0) {
		/* Let the server see the failure instead of waiting forever. */
		int fd = mailtls_write_fd(client);
		if (fd >= 0)
			shutdown(fd, SHUT_RDWR);
	}
	tu_server_join(&ts);
	if (server_result)
		*server_result = ts.result;
	return r;
}

void tu_fill_random(void *buf, size_t len, unsigned seed)
{
	unsigned char *p = buf;
	uint64_t x = 0x9e3779b97f4a7c15ULL ^ seed;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		p[i] = (unsigned char)x;
	}
}

double tu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void tu_set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);
	CHECK(fl >= 0);
	CHECK(fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) == 0);
}

const char *tu_tmpdir(void)
{
	static char path[256];
	snprintf(path, sizeof path, "/tmp/mailtls-test.XXXXXX");
	CHECK(mkdtemp(path));
	return path;
}

static char *scratch_dirs[8];
static int nscratch;

static void remove_scratch_dirs(void)
{
	for (int i = 0; i < nscratch; i++) {
		char cmd[600];
		snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", scratch_dirs[i],
		    scratch_dirs[i]);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", scratch_dirs[i]);
		free(scratch_dirs[i]);
	}
	nscratch = 0;
}

void tu_scratch_dirs_forget(void)
{
	nscratch = 0;
}

const char *tu_scratch_dir(void)
{
	char *d = strdup(tu_tmpdir());
	CHECK(d && nscratch < 8);
	if (nscratch == 0)
		atexit(remove_scratch_dirs);
	scratch_dirs[nscratch++] = d;
	return d;
}

void tu_sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int st;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	st = system(cmd);
	if (st != 0)
		T_FAIL("command failed (status %d): %s", st, cmd);
}

void tu_sh_line(char *out, size_t outlen, const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	FILE *f;
	int st;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	f = popen(cmd, "r");
	CHECK(f);
	if (!fgets(out, (int)outlen, f))
		out[0] = 0;
	while (fgetc(f) != EOF)
		;   /* the rest, so the command never dies of a closed pipe */
	st = pclose(f);
	if (st != 0 || !out[0])
		T_FAIL("command failed (status %d): %s", st, cmd);
	out[strcspn(out, "\r\n")] = 0;
}

void tu_x509_field(const char *file, const char *opt, char *out, size_t outlen)
{
	char line[1024];
	const char *eq;
	tu_sh_line(line, sizeof line, "openssl x509 -noout %s -in '%s'", opt, file);
	eq = strchr(line, '=');
	if (!eq)
		T_FAIL("unexpected output of openssl x509 -noout %s: %s", opt, line);
	snprintf(out, outlen, "%s", eq + 1);
}

const char *tu_fingerprint_of(const char *file)
{
	static char res[8][80];
	static int n;
	char line[512], *r = res[n++ % 8], *o;
	tu_x509_field(file, "-fingerprint -sha256", line, sizeof line);
	strcpy(r, "SHA256:");
	o = r + 7;
	for (const char *p = line; *p && o < r + sizeof res[0] - 1; p++)
		if (*p != ':')
			*o++ = (char)tolower((unsigned char)*p);
	*o = 0;
	CHECK_EQ(strlen(r), 7 + 64);
	return r;
}

unsigned char *tu_der_of(const char *file, size_t *len)
{
	char cmd[1200];
	unsigned char *buf = malloc(65536);
	FILE *f;
	snprintf(cmd, sizeof cmd, "openssl x509 -in '%s' -outform DER", file);
	CHECK(buf);
	f = popen(cmd, "r");
	CHECK(f);
	*len = fread(buf, 1, 65536, f);
	CHECK(pclose(f) == 0 && *len > 0);
	return buf;
}

void tu_conn_open(struct tu_conn *k, struct mailtls_config *sc, struct mailtls_config *cc,
    const char *servername)
{
	memset(k, 0, sizeof *k);
	tu_socketpair(k->sv);
	k->s = mailtls_server(sc, k->sv[0], k->sv[0]);
	k->c = mailtls_client(cc, k->sv[1], k->sv[1], servername);
	CHECK(k->s && k->c);
}

unsigned char *tu_session_of(struct mailtls *c, size_t *len)
{
	ssize_t n = mailtls_get_session(c, NULL, 0);
	unsigned char *sess;
	CHECK(n > 0);
	sess = malloc((size_t)n);
	CHECK(sess);
	CHECK_EQ(mailtls_get_session(c, sess, (size_t)n), n);
	*len = (size_t)n;
	return sess;
}

int tu_conn_hs(struct tu_conn *k)
{
	k->cr = tu_handshake_pair(k->c, k->s, &k->sr);
	k->cerr = mailtls_errcode(k->c);
	k->serr = mailtls_errcode(k->s);
	return k->cr;
}

int tu_conn_run(struct tu_conn *k, struct mailtls_config *sc, struct mailtls_config *cc,
    const char *servername)
{
	tu_conn_open(k, sc, cc, servername);
	return tu_conn_hs(k);
}

void tu_conn_close(struct tu_conn *k)
{
	mailtls_free(k->s);
	mailtls_free(k->c);
	close(k->sv[0]);
	close(k->sv[1]);
}

static int isolated_failures;
static char isolated_failed[2048];

void tu_run_isolated(const char *name, void (*fn)(void))
{
	pid_t pid;
	int st;
	fprintf(stderr, "-- %s\n", name);
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		alarm(120);   /* a hung handshake is a failure, not a stuck run */
		fn();
		exit(0);   /* atexit handlers remove temporary directories */
	}
	CHECK(waitpid(pid, &st, 0) == pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "   FAILED: %s (%s %d)\n", name, WIFEXITED(st) ? "status" : "signal",
		    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		isolated_failures++;
		snprintf(isolated_failed + strlen(isolated_failed), sizeof isolated_failed - strlen(isolated_failed),
		    " %s", name);
	}
}

int tu_isolated_result(void)
{
	if (isolated_failures) {
		fprintf(stderr, "%d test(s) failed:%s\n", isolated_failures, isolated_failed);
		return 1;
	}
	return 0;
}

/* SHA-256 (FIPS 180-4) */
static const uint32_t sha256_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define SHA_ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const unsigned char *p)
{
	uint32_t w[64], a, b, c, d, e, f, g, hh;
	int i;
	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		    (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (i = 16; i < 64; i++) {
		uint32_t s0 = SHA_ROR(w[i - 15], 7) ^ SHA_ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = SHA_ROR(w[i - 2], 17) ^ SHA_ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4]; f = h[5]; g = h[6]; hh = h[7];
	for (i = 0; i < 64; i++) {
		uint32_t t1 = hh + (SHA_ROR(e, 6) ^ SHA_ROR(e, 11) ^ SHA_ROR(e, 25)) +
		    ((e & f) ^ (~e & g)) + sha256_k[i] + w[i];
		uint32_t t2 = (SHA_ROR(a, 2) ^ SHA_ROR(a, 13) ^ SHA_ROR(a, 22)) +
		    ((a & b) ^ (a & c) ^ (b & c));
		hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
	}
	h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void tu_sha256_init(struct tu_sha256 *c)
{
	static const uint32_t iv[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};
	memcpy(c->h, iv, sizeof iv);
	c->n = 0;
	c->fill = 0;
}

void tu_sha256_update(struct tu_sha256 *c, const void *data, size_t len)
{
	const unsigned char *p = data;
	c->n += len;
	if (c->fill) {
		size_t take = 64 - c->fill < len ? 64 - c->fill : len;
		memcpy(c->buf + c->fill, p, take);
		c->fill += take;
		p += take;
		len -= take;
		if (c->fill < 64)
			return;
		sha256_block(c->h, c->buf);
		c->fill = 0;
	}
	for (; len >= 64; p += 64, len -= 64)
		sha256_block(c->h, p);
	memcpy(c->buf, p, len);
	c->fill = len;
}

void tu_sha256_final(struct tu_sha256 *c, unsigned char out[32])
{
	unsigned long long bits = c->n * 8;
	unsigned char pad[72] = { 0x80 };
	size_t padlen = (c->fill < 56 ? 56 : 120) - c->fill;
	for (int i = 0; i < 8; i++)
		pad[padlen + i] = (unsigned char)(bits >> (56 - 8 * i));
	tu_sha256_update(c, pad, padlen + 8);
	for (int i = 0; i < 8; i++) {
		out[4 * i] = (unsigned char)(c->h[i] >> 24);
		out[4 * i + 1] = (unsigned char)(c->h[i] >> 16);
		out[4 * i + 2] = (unsigned char)(c->h[i] >> 8);
		out[4 * i + 3] = (unsigned char)c->h[i];
	}
}
