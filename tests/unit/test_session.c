/* Sessions of ours on both ends over socketpairs and pipes: blocking and
 * non-blocking, one-byte reads, partial writes, want codes, clean end and
 * truncation, deadlines, and the memory transport. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

static void pair(struct mailtls_config *sc, struct mailtls_config *cc, const char *name,
    struct mailtls **server, struct mailtls **client, int sv[2])
{
	tu_socketpair(sv);
	*server = mailtls_server(sc, sv[0], sv[0]);
	*client = mailtls_client(cc, sv[1], sv[1], name);
	CHECK(*server && *client);
}

static void test_basic_exchange(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = tu_client_config();
	struct mailtls *s, *c;
	int sv[2], sr;
	char buf[64];
	pair(sc, cc, "localhost", &s, &c, sv);
	/* Sessions keep their configurations alive. */
	mailtls_config_free(sc);
	mailtls_config_free(cc);
	CHECK_OK(c, tu_handshake_pair(c, s, &sr));
	if (sr != 0)
		T_FAIL("server handshake: %s", mailtls_error(s));
	CHECK_STR(mailtls_protocol(c), "TLSv1.3");
	CHECK_STR(mailtls_protocol(s), "TLSv1.3");
	CHECK(mailtls_peer_verified(c));
	CHECK_EQ(mailtls_peer_verify_result(c), MAILTLS_E_NONE);
	CHECK(!mailtls_peer_has_cert(s));
	CHECK_STR(mailtls_servername(s), "localhost");
	CHECK_OK(c, mailtls_write(c, "hello\n", 6));
	/* One byte at a time. */
	for (int i = 0; i < 6; i++) {
		CHECK_EQ(mailtls_read(s, buf + i, 1), 1);
		CHECK_EQ(mailtls_pending(s), (size_t)(5 - i));
	}
	CHECK(!memcmp(buf, "hello\n", 6));
	CHECK_OK(s, mailtls_write(s, "bye", 3));
	CHECK_OK(s, mailtls_close(s));
	CHECK_OK(s, mailtls_close(s));   /* once only */
	CHECK_EQ(mailtls_read(c, buf, sizeof buf), 3);
	CHECK_EQ(mailtls_read(c, buf, sizeof buf), 0);
	CHECK(mailtls_peer_closed(c));
	CHECK_EQ(mailtls_read(c, buf, sizeof buf), 0);
	mailtls_free(s);
	mailtls_free(c);
	/* The library never closes the caller's descriptors. */
	CHECK(fcntl(sv[0], F_GETFD) >= 0 && fcntl(sv[1], F_GETFD) >= 0);
	close(sv[0]);
	close(sv[1]);
}

static void test_truncation(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = tu_client_config();
	struct mailtls *s, *c;
	int sv[2], sr;
	char buf[16];
	pair(sc, cc, "localhost", &s, &c, sv);
	CHECK_OK(c, tu_handshake_pair(c, s, &sr));
	CHECK_EQ(sr, 0);
	CHECK_OK(s, mailtls_write(s, "x", 1));
	shutdown(sv[0], SHUT_WR);   /* vanish without close_notify */
	CHECK_EQ(mailtls_read(c, buf, sizeof buf), 1);
	CHECK_EQ(mailtls_read(c, buf, sizeof buf), -1);
	CHECK_EQ(mailtls_errcode(c), MAILTLS_E_TRUNCATED);
	CHECK(mailtls_error_temporary(MAILTLS_E_TRUNCATED));
	mailtls_free(s);
	mailtls_free(c);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
	close(sv[0]);
	close(sv[1]);
}

/* Both ends non-blocking in one thread: every want code is honoured by
 * polling, and partial writes are resumed with the same bytes. */
static void test_nonblocking_one_thread(void)
{
	struct mailtls_config *sc = tu_server_config("server-rsa.pem", "server-rsa.key");
	struct mailtls_config *cc = tu_client_config();
	struct mailtls *s, *c;
	int sv[2], cdone = 0, sdone = 0, wants = 0;
	size_t total = 4 << 20, sent = 0, got = 0;
	char *out = malloc(total), *in = malloc(total);
	pair(sc, cc, "mail.test.example", &s, &c, sv);
	tu_set_nonblock(sv[0], 1);
	tu_set_nonblock(sv[1], 1);
	tu_fill_random(out, total, 7);
	while (!cdone || !sdone) {
		int r;
		if (!cdone) {
			r = mailtls_handshake(c);
			if (r == 0) cdone = 1;
			else { CHECK(r == MAILTLS_WANT_READ || r == MAILTLS_WANT_WRITE); wants++; }
		}
		if (!sdone) {
			r = mailtls_handshake(s);
			if (r == 0) sdone = 1;
			else { CHECK(r == MAILTLS_WANT_READ || r == MAILTLS_WANT_WRITE); wants++; }
		}
	}
	CHECK(wants > 0);
	CHECK_STR(mailtls_cipher(c), "TLS_AES_128_GCM_SHA256");
	while (got < total) {
		if (sent < total) {
			ssize_t w = mailtls_write(c, out + sent, total - sent);
			if (w > 0)
				sent += (size_t)w;
			else
				CHECK(w == MAILTLS_WANT_WRITE);
		}
		while (got < total) {
			ssize_t n = mailtls_read(s, in + got, total - got);
			if (n > 0) { got += (size_t)n; continue; }
			if (n != MAILTLS_WANT_READ)
				T_FAIL("read returned %zd: %s", n, mailtls_error(s));
			break;
		}
	}
	CHECK(!memcmp(in, out, total));
	CHECK(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
	mailtls_free(s);
	mailtls_free(c);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
	free(in);
	free(out);
	close(sv[0]);
	close(sv[1]);
}

/* TLS over two pipes each way: rfd != wfd, as under tcpserver (0/1) and
 * tcpclient (6/7). */
static void test_pipes(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec-combined.pem", NULL);
	struct mailtls_config *cc = tu_client_config();
	int a[2], b[2], sr;
	char buf[32];
	struct mailtls *s, *c;
	signal(SIGPIPE, SIG_IGN);
	CHECK(pipe(a) == 0 && pipe(b) == 0);
	s = mailtls_server(sc, a[0], b[1]);
	c = mailtls_client(cc, b[0], a[1], "localhost");
	CHECK_OK(c, tu_handshake_pair(c, s, &sr));
	CHECK_EQ(sr, 0);
	CHECK_OK(c, mailtls_timeoutwrite(5, c, "ping", 4));
	CHECK_EQ(mailtls_timeoutread(5, s, buf, sizeof buf), 4);
	CHECK_EQ(mailtls_read_fd(s), a[0]);
	CHECK_EQ(mailtls_write_fd(s), b[1]);
	/* Nothing comes: the deadline passes without a signal. */
	CHECK_EQ(mailtls_timeoutread(1, s, buf, sizeof buf), -1);
	CHECK_EQ(mailtls_errcode(s), MAILTLS_E_TIMEOUT);
	CHECK(!(fcntl(a[0], F_GETFL) & O_NONBLOCK));
	mailtls_free(s);
	mailtls_free(c);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
	close(a[0]); close(a[1]); close(b[0]); close(b[1]);
}

static void test_handshake_timeout(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	int sv[2];
	struct mailtls *s;
	tu_socketpair(sv);
	s = mailtls_server(sc, sv[0], sv[0]);
	CHECK_EQ(mailtls_handshake_timeout(s, 1), -1);   /* a silent client */
	CHECK_EQ(mailtls_errcode(s), MAILTLS_E_TIMEOUT);
	CHECK(mailtls_error_temporary(mailtls_errcode(s)));
	mailtls_free(s);
	/* Plaintext on a TLS port: a TLS error, no fallback. */
	s = mailtls_server(sc, sv[0], sv[0]);
	CHECK(write(sv[1], "EHLO x\r\n", 8) == 8);
	CHECK_EQ(mailtls_handshake_timeout(s, 5), -1);
	CHECK_EQ(mailtls_errcode(s), MAILTLS_E_TLS);
	mailtls_free(s);
	mailtls_config_free(sc);
	close(sv[0]);
	close(sv[1]);
}

static void pump(struct mailtls *a, struct mailtls *b)
{
	char buf[65536];
	ssize_t n;
	while ((n = mailtls_mem_drain(a, buf, sizeof buf)) > 0)
		CHECK_EQ(mailtls_mem_feed(b, buf, (size_t)n), n);
	while ((n = mailtls_mem_drain(b, buf, sizeof buf)) > 0)
		CHECK_EQ(mailtls_mem_feed(a, buf, (size_t)n), n);
}

static void test_memory_transport(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = tu_client_config();
	struct mailtls *s = mailtls_server_mem(sc), *c = mailtls_client_mem(cc, "localhost");
	int rs = -2, rc = -2, rounds = 0;
	char buf[16];
	CHECK(s && c);
	while ((rs != 0 || rc != 0) && rounds++ < 20) {
		if (rc) rc = mailtls_handshake(c);
		pump(c, s);
		if (rs) rs = mailtls_handshake(s);
		pump(c, s);
	}
	CHECK_EQ(rc, 0);
	CHECK_EQ(rs, 0);
	CHECK(mailtls_peer_verified(c));
	CHECK_EQ(mailtls_read(s, buf, sizeof buf), MAILTLS_WANT_READ);
	CHECK_EQ(mailtls_write(c, "mem", 3), 3);
	pump(c, s);
	CHECK_EQ(mailtls_read(s, buf, sizeof buf), 3);
	CHECK_EQ(mailtls_timeoutread(1, s, buf, sizeof buf), -1);
	CHECK_EQ(mailtls_errcode(s), MAILTLS_E_USAGE);
	CHECK(!mailtls_error_temporary(MAILTLS_E_USAGE));
	mailtls_mem_feed_eof(s);
	CHECK_EQ(mailtls_read(s, buf, sizeof buf), -1);
	CHECK_EQ(mailtls_errcode(s), MAILTLS_E_TRUNCATED);
	mailtls_free(s);
	mailtls_free(c);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

/* A relay-style process drops its configuration (and so every private
 * key) after the handshake, and the session goes on. */
static void test_release_config(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *cc = tu_client_config();
	struct mailtls *s, *c;
	int sv[2], sr;
	char buf[16];
	unsigned char sess[8];
	pair(sc, cc, "localhost", &s, &c, sv);
	CHECK_EQ(mailtls_release_config(s), -1);
	CHECK_EQ(mailtls_errcode(s), MAILTLS_E_USAGE);
	CHECK_OK(c, tu_handshake_pair(c, s, &sr));
	CHECK_EQ(sr, 0);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
	CHECK_OK(s, mailtls_release_config(s));
	CHECK_OK(c, mailtls_release_config(c));
	CHECK_OK(s, mailtls_write(s, "after", 5));
	CHECK_EQ(mailtls_read(c, buf, sizeof buf), 5);
	CHECK(mailtls_peer_verified(c));
	CHECK(mailtls_cipher(s) != NULL);
	CHECK_EQ(mailtls_set_session(c, sess, sizeof sess), -1);
	CHECK_OK(s, mailtls_close(s));
	CHECK_EQ(mailtls_read(c, buf, sizeof buf), 0);
	mailtls_free(s);
	mailtls_free(c);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	RUN(test_basic_exchange);
	RUN(test_truncation);
	RUN(test_nonblocking_one_thread);
	RUN(test_pipes);
	RUN(test_handshake_timeout);
	RUN(test_memory_transport);
	RUN(test_release_config);
	return 0;
}
