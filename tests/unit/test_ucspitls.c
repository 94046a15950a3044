/* test_ucspitls.c -- UCSPI-TLS (ucspi-tls(2)) in the library: the
 * descriptors and their environment text, the program's request on the
 * control socket (y, Y, none, garbage, too late), and the facts sent back
 * after a 'Y'.
 *
 * The "program" is a forked process holding only the program's ends (as
 * under tcpserver-ssl -y), or, where only the control socket matters, the
 * test itself or a thread.  The full flows run the way a server runs
 * them: request, handshake with a client thread over a socketpair, facts,
 * then mailtls_relay between the session and the program's SSLREADFD /
 * SSLWRITEFD, with the program answering through them. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int is_open(int fd)
{
	return fd >= 0 && fcntl(fd, F_GETFD) >= 0;
}

static int cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);
	CHECK(fl >= 0);
	return (fl & FD_CLOEXEC) != 0;
}

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		CHECK(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

/* A server session over net[0] of a fresh socketpair (the network; the
 * client's end is net[1]).  Tests that only look at the control socket
 * need it too: mailtls_ucspitls_wait reports on a session. */
static struct mailtls *server_session(struct mailtls_config *cfg, int net[2])
{
	struct mailtls *s;
	tu_socketpair(net);
	s = mailtls_server(cfg, net[0], net[0]);
	CHECK(s);
	return s;
}

/* ------------------------------------------------------------------ */
/* The descriptors and the environment text                             */
/* ------------------------------------------------------------------ */

static void test_open_env_close(void)
{
	struct mailtls_ucspitls u;
	char buf[128], want[128];
	int type;
	socklen_t tl = sizeof type;
	struct stat st;
	ssize_t n;
	int wl;

	CHECK_EQ(mailtls_ucspitls_open(&u), 0);
	/* The program's ends are inherited, ours are close-on-exec. */
	CHECK(!cloexec(u.ctl[0]) && !cloexec(u.rd[0]) && !cloexec(u.wr[1]));
	CHECK(cloexec(u.ctl[1]) && cloexec(u.rd[1]) && cloexec(u.wr[0]));
	/* SSLCTLFD: a stream socket; SSLREADFD/SSLWRITEFD: pipes, the right way round. */
	CHECK(getsockopt(u.ctl[0], SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM);
	CHECK(fstat(u.rd[0], &st) == 0 && S_ISFIFO(st.st_mode));
	CHECK(fstat(u.wr[1], &st) == 0 && S_ISFIFO(st.st_mode));
	write_all(u.rd[1], "r", 1);
	CHECK(read(u.rd[0], buf, 1) == 1 && buf[0] == 'r');
	write_all(u.wr[1], "w", 1);
	CHECK(read(u.wr[0], buf, 1) == 1 && buf[0] == 'w');
	write_all(u.ctl[0], "c", 1);
	CHECK(read(u.ctl[1], buf, 1) == 1 && buf[0] == 'c');

	/* The text: the program's ends, each entry NUL-terminated, nothing more. */
	wl = snprintf(want, sizeof want, "SSLCTLFD=%d%cSSLREADFD=%d%cSSLWRITEFD=%d%c",
	    u.ctl[0], 0, u.rd[0], 0, u.wr[1], 0);
	memset(buf, 'Z', sizeof buf);
	n = mailtls_ucspitls_env(&u, buf, sizeof buf);
	CHECK_EQ(n, wl);
	CHECK(memcmp(buf, want, (size_t)wl) == 0);
	CHECK(buf[wl] == 'Z');
	CHECK_EQ(mailtls_ucspitls_env(&u, buf, (size_t)wl), wl);     /* exactly enough */
	CHECK_EQ(mailtls_ucspitls_env(&u, buf, (size_t)wl - 1), -1); /* one short */
	CHECK_EQ(mailtls_ucspitls_env(&u, NULL, 0), -1);

	/* Each close takes its three and marks them -1; again is harmless. */
	{
		int prog[3] = { u.ctl[0], u.rd[0], u.wr[1] }, ours[3] = { u.ctl[1], u.rd[1], u.wr[0] };
		mailtls_ucspitls_close_program(&u);
		CHECK(u.ctl[0] == -1 && u.rd[0] == -1 && u.wr[1] == -1);
		for (int i = 0; i < 3; i++)
			CHECK(!is_open(prog[i]) && is_open(ours[i]));
		mailtls_ucspitls_close_program(&u);
		mailtls_ucspitls_close_ours(&u);
		CHECK(u.ctl[1] == -1 && u.rd[1] == -1 && u.wr[0] == -1);
		for (int i = 0; i < 3; i++)
			CHECK(!is_open(ours[i]));
		mailtls_ucspitls_close_ours(&u);
	}
}

/* ------------------------------------------------------------------ */
/* The request                                                          */
/* ------------------------------------------------------------------ */

static void check_byte(unsigned char c, int want, int werr)
{
	struct mailtls_config *cfg = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_ucspitls u;
	int net[2];
	struct mailtls *s = server_session(cfg, net);
	CHECK_EQ(mailtls_ucspitls_open(&u), 0);
	write_all(u.ctl[0], &c, 1);
	CHECK_EQ(mailtls_ucspitls_wait(s, &u, 5), want);
	CHECK_EQ(mailtls_errcode(s), werr);
	if (werr == MAILTLS_E_PROTOCOL) {
		char hex[8];
		snprintf(hex, sizeof hex, "0x%02x", c);
		CHECK(strstr(mailtls_error(s), hex));
	}
	mailtls_ucspitls_close_program(&u);
	mailtls_ucspitls_close_ours(&u);
	mailtls_free(s);
	mailtls_config_free(cfg);
	close(net[0]);
	close(net[1]);
}

static void test_request_bytes(void)
{
	check_byte('y', 'y', MAILTLS_E_NONE);
	check_byte('Y', 'Y', MAILTLS_E_NONE);
	/* Anything else is a broken program, not a refusal: a NUL is not an end. */
	check_byte('x', -1, MAILTLS_E_PROTOCOL);
	check_byte('n', -1, MAILTLS_E_PROTOCOL);
	check_byte(0, -1, MAILTLS_E_PROTOCOL);
	check_byte(0xff, -1, MAILTLS_E_PROTOCOL);
	check_byte('\n', -1, MAILTLS_E_PROTOCOL);
}

static void test_closed_without_asking(void)
{
	struct mailtls_config *cfg = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_ucspitls u;
	int net[2], st;
	struct mailtls *s = server_session(cfg, net);
	pid_t pid;

	/* The program closes SSLCTLFD: the session stays plaintext; no error. */
	CHECK_EQ(mailtls_ucspitls_open(&u), 0);
	mailtls_ucspitls_close_program(&u);
	CHECK_EQ(mailtls_ucspitls_wait(s, &u, 5), 0);
	CHECK_EQ(mailtls_errcode(s), MAILTLS_E_NONE);
	CHECK_EQ(mailtls_ucspitls_wait(s, &u, 0), 0);   /* and stays so */
	mailtls_ucspitls_close_ours(&u);

	/* The program exits without asking, after a while; secs 0 waits for it. */
	CHECK_EQ(mailtls_ucspitls_open(&u), 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct timespec t = { 0, 300 * 1000 * 1000 };
		mailtls_ucspitls_close_ours(&u);
		nanosleep(&t, NULL);
		_exit(0);
	}
	mailtls_ucspitls_close_program(&u);
	{
		double t0 = tu_now();
		CHECK_EQ(mailtls_ucspitls_wait(s, &u, 0), 0);
		CHECK(tu_now() - t0 >= 0.25);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	mailtls_ucspitls_close_ours(&u);

	/* Without the control socket there is nothing to wait for. */
	CHECK_EQ(mailtls_ucspitls_wait(s, &u, 0), -1);
	CHECK_EQ(mailtls_errcode(s), MAILTLS_E_USAGE);

	mailtls_free(s);
	mailtls_config_free(cfg);
	close(net[0]);
	close(net[1]);
}

static void test_timeout(void)
{
	struct mailtls_config *cfg = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_ucspitls u;
	int net[2];
	struct mailtls *s = server_session(cfg, net);
	double t0;
	CHECK_EQ(mailtls_ucspitls_open(&u), 0);
	t0 = tu_now();
	CHECK_EQ(mailtls_ucspitls_wait(s, &u, 1), -1);
	CHECK_EQ(mailtls_errcode(s), MAILTLS_E_TIMEOUT);
	CHECK(tu_now() - t0 >= 0.9);
	/* A late request is still there for the next wait. */
	write_all(u.ctl[0], "Y", 1);
	CHECK_EQ(mailtls_ucspitls_wait(s, &u, 1), 'Y');
	CHECK_EQ(mailtls_errcode(s), MAILTLS_E_NONE);
	mailtls_ucspitls_close_program(&u);
	mailtls_ucspitls_close_ours(&u);
	mailtls_free(s);
	mailtls_config_free(cfg);
	close(net[0]);
	close(net[1]);
}

struct late {
	int fd;
	int ms;
	char c;          /* 0: close fd instead */
};

static void *late_main(void *arg)
{
	struct late *l = arg;
	struct timespec t = { l->ms / 1000, (l->ms % 1000) * 1000000L };
	nanosleep(&t, NULL);
	if (l->c)
		write_all(l->fd, &l->c, 1);
	else
		close(l->fd);
	return NULL;
}

/* A control socket the caller made non-blocking: the wait without a
 * deadline sleeps in poll, it neither spins nor fails with EAGAIN, and the
 * descriptor's flags stay as they were. */
static void test_nonblocking_ctl_waits_without_spinning(void)
{
	struct mailtls_config *cfg = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_ucspitls u;
	int net[2], fl;
	struct mailtls *s = server_session(cfg, net);
	struct late l;
	pthread_t th;
	double t0, c0;

	CHECK_EQ(mailtls_ucspitls_open(&u), 0);
	tu_set_nonblock(u.ctl[1], 1);
	fl = fcntl(u.ctl[1], F_GETFL);
	l.fd = u.ctl[0];
	l.ms = 400;
	l.c = 'y';
	CHECK(pthread_create(&th, NULL, late_main, &l) == 0);
	t0 = tu_now();
	c0 = cpu_now();
	CHECK_EQ(mailtls_ucspitls_wait(s, &u, 0), 'y');
	CHECK(tu_now() - t0 >= 0.35);
	CHECK(cpu_now() - c0 < 0.15);
	pthread_join(th, NULL);
	CHECK_EQ(fcntl(u.ctl[1], F_GETFL), fl);

	/* The same with a deadline, and for an end of the program. */
	l.ms = 300;
	l.c = 0;
	CHECK(pthread_create(&th, NULL, late_main, &l) == 0);
	c0 = cpu_now();
	CHECK_EQ(mailtls_ucspitls_wait(s, &u, 5), 0);
	CHECK(cpu_now() - c0 < 0.15);
	pthread_join(th, NULL);
	u.ctl[0] = -1;       /* closed by the thread */
	mailtls_ucspitls_close_program(&u);
	mailtls_ucspitls_close_ours(&u);
	mailtls_free(s);
	mailtls_config_free(cfg);
	close(net[0]);
	close(net[1]);
}

/* ------------------------------------------------------------------ */
/* The whole flow with a program in another process                     */
/* ------------------------------------------------------------------ */

#define PING "EHLO inside.example\r\n"
#define PONG_PREFIX "250 you said: "

/* The program: asks with |req|, for 'Y' reads the facts up to the "\0\0"
 * and passes exactly what it read to the test on |report|; then reads one
 * line from SSLREADFD and answers on SSLWRITEFD. */
static void fake_program(struct mailtls_ucspitls *u, char req, int report)
{
	char buf[16384], line[256];
	size_t got = 0, ll = 0;
	mailtls_ucspitls_close_ours(u);
	if (write(u->ctl[0], &req, 1) != 1)
		_exit(10);
	if (req == 'Y') {
		/* Byte by byte, so nothing after the end of the block is taken. */
		while (got < 2 || buf[got - 1] || buf[got - 2]) {
			ssize_t n;
			if (got == sizeof buf)
				_exit(11);
			n = read(u->ctl[0], buf + got, 1);
			if (n != 1)
				_exit(12);
			got++;
		}
		write_all(report, buf, got);
	}
	close(report);
	close(u->ctl[0]);
	while (ll < sizeof line - 1) {
		ssize_t n = read(u->rd[0], line + ll, 1);
		if (n != 1)
			_exit(13);
		if (line[ll++] == '\n')
			break;
	}
	write_all(u->wr[1], PONG_PREFIX, strlen(PONG_PREFIX));
	write_all(u->wr[1], line, ll);
	_exit(0);
}

struct client {
	pthread_t th;
	struct mailtls *c;
	char got[512];
	size_t gotlen;
	int ok;
	char err[512];
};

static void *client_main(void *arg)
{
	struct client *cl = arg;
	ssize_t n;
	if (mailtls_handshake_timeout(cl->c, 10) < 0 ||
	    mailtls_timeoutwrite(10, cl->c, PING, strlen(PING)) < 0)
		goto fail;
	for (;;) {
		n = mailtls_timeoutread(10, cl->c, cl->got + cl->gotlen, sizeof cl->got - 1 - cl->gotlen);
		if (n < 0)
			goto fail;
		if (n == 0)
			break;   /* close_notify: the program ended */
		cl->gotlen += (size_t)n;
	}
	if (mailtls_close_timeout(cl->c, 10) < 0)
		goto fail;
	shutdown(mailtls_write_fd(cl->c), SHUT_WR);
	cl->ok = 1;
	return NULL;
fail:
	snprintf(cl->err, sizeof cl->err, "%s (%s)", mailtls_error(cl->c), mailtls_errcode_name(mailtls_errcode(cl->c)));
	shutdown(mailtls_write_fd(cl->c), SHUT_RDWR);
	return NULL;
}

/* A facts block, split into its entries; checks its shape on the way. */
struct block {
	char text[16384];
	size_t len;
	const char *entry[64];
	int n;
};

static void parse_block(struct block *b)
{
	size_t i = 0;
	b->n = 0;
	CHECK(b->len >= 2 && b->text[b->len - 1] == 0 && b->text[b->len - 2] == 0);
	while (i < b->len - 1) {
		const char *e = b->text + i;
		size_t l = strlen(e);
		if (l == 0)
			break;   /* the empty entry: the end */
		CHECK(b->n < 64);
		CHECK(strchr(e, '=') && strchr(e, '=') != e);
		for (const char *p = e; *p; p++)
			CHECK(*p >= 0x20 && *p < 0x7f);
		for (int k = 0; k < b->n; k++) {
			size_t nl = (size_t)(strchr(e, '=') - e);
			CHECK(strncmp(b->entry[k], e, nl + 1) != 0);   /* each name once */
		}
		b->entry[b->n++] = e;
		i += l + 1;
	}
	CHECK_EQ(i, b->len - 1);   /* nothing after the end */
}

static const char *block_get(const struct block *b, const char *name)
{
	size_t nl = strlen(name);
	for (int k = 0; k < b->n; k++)
		if (!strncmp(b->entry[k], name, nl) && b->entry[k][nl] == '=')
			return b->entry[k] + nl + 1;
	return NULL;
}

static void run_flow(char req, int client_cert)
{
	struct mailtls_config *scfg = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *ccfg = tu_client_config();
	struct mailtls_ucspitls u;
	struct mailtls_relay_result res;
	struct client cl;
	struct block blk;
	int net[2], report[2], st;
	struct mailtls *s;
	pid_t pid;

	if (client_cert) {
		CHECK_CFG_OK(scfg, mailtls_config_set_ca(scfg, pki("ca.pem"), NULL));
		CHECK_CFG_OK(scfg, mailtls_config_set_verify(scfg, MAILTLS_VERIFY_REQUIRE));
		CHECK_CFG_OK(ccfg, mailtls_config_set_keypair_file(ccfg, pki("evil-client.pem"), pki("evil-client.key")));
	}
	s = server_session(scfg, net);
	CHECK_EQ(mailtls_ucspitls_open(&u), 0);
	CHECK(pipe(report) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(report[0]);
		close(net[0]);
		close(net[1]);
		fake_program(&u, req, report[1]);
	}
	close(report[1]);
	mailtls_ucspitls_close_program(&u);

	CHECK_OK(s, mailtls_ucspitls_wait(s, &u, 10));
	CHECK_EQ(mailtls_errcode(s), MAILTLS_E_NONE);

	memset(&cl, 0, sizeof cl);
	cl.c = mailtls_client(ccfg, net[1], net[1], "localhost");
	CHECK(cl.c);
	CHECK(pthread_create(&cl.th, NULL, client_main, &cl) == 0);
	CHECK_OK(s, mailtls_handshake_timeout(s, 10));

	if (req == 'Y') {
		ssize_t want = mailtls_env(s, NULL, 0);
		char *mine = malloc((size_t)want);
		CHECK(mine && mailtls_env(s, mine, (size_t)want) == want);
		CHECK_OK(s, mailtls_ucspitls_reply(s, &u, 10));
		/* What the program read is the session's block, byte for byte. */
		blk.len = 0;
		for (;;) {
			ssize_t n = read(report[0], blk.text + blk.len, sizeof blk.text - blk.len);
			CHECK(n >= 0);
			if (n == 0)
				break;
			blk.len += (size_t)n;
		}
		CHECK_EQ(blk.len, want);
		CHECK(memcmp(blk.text, mine, (size_t)want) == 0);
		free(mine);
		parse_block(&blk);
		for (int k = 0; k < blk.n; k++) {
			static const char *const names[] = { "SSL_PROTOCOL", "SSL_CIPHER", "SSL_SESSION_ID",
				"SSL_CIPHER_USEKEYSIZE", "SSL_CIPHER_ALGKEYSIZE", "SSL_VERSION_INTERFACE",
				"SSL_VERSION_LIBRARY", "SSL_TLS_SNI_SERVERNAME", "SSL_CLIENT_S_DN", "SSL_CLIENT_S_DN_CN",
				"SSL_CLIENT_I_DN", "SSL_CLIENT_V_START", "SSL_CLIENT_V_END", "SSL_CLIENT_M_SERIAL",
				"SSL_PEER_CERT_HASH", "SSL_PEER_CERT_SUBJECT", "SSL_CLIENT_VERIFY" };
			int known = 0;
			for (size_t j = 0; j < sizeof names / sizeof names[0]; j++) {
				size_t nl = strlen(names[j]);
				known |= !strncmp(blk.entry[k], names[j], nl) && blk.entry[k][nl] == '=';
			}
			if (!known)
				T_FAIL("unexpected entry in the facts: %s", blk.entry[k]);
		}
		CHECK_STR(block_get(&blk, "SSL_PROTOCOL"), mailtls_protocol(s));
		CHECK_STR(block_get(&blk, "SSL_CIPHER"), mailtls_cipher(s));
		CHECK_EQ(atoi(block_get(&blk, "SSL_CIPHER_USEKEYSIZE")), mailtls_cipher_bits(s));
		CHECK(block_get(&blk, "SSL_CIPHER_ALGKEYSIZE"));
		CHECK_STR(block_get(&blk, "SSL_VERSION_INTERFACE"), "libmailtls/" MAILTLS_VERSION_STRING);
		CHECK(block_get(&blk, "SSL_VERSION_LIBRARY"));
		CHECK_STR(block_get(&blk, "SSL_TLS_SNI_SERVERNAME"), "localhost");
		if (client_cert) {
			/* The certificate's "\nSSL_PROTOCOL=SSLv2" stays escaped inside the CN. */
			CHECK_STR(block_get(&blk, "SSL_CLIENT_VERIFY"), "SUCCESS");
			CHECK_STR(block_get(&blk, "SSL_CLIENT_S_DN_CN"), "evil\\0ASSL_PROTOCOL\\3DSSLv2");
			CHECK_STR(block_get(&blk, "SSL_CLIENT_S_DN"), mailtls_peer_subject(s));
			CHECK_STR(block_get(&blk, "SSL_PEER_CERT_SUBJECT"), mailtls_peer_subject(s));
			CHECK_STR(block_get(&blk, "SSL_CLIENT_I_DN"), mailtls_peer_issuer(s));
			CHECK_STR(block_get(&blk, "SSL_PEER_CERT_HASH"), mailtls_peer_fingerprint(s));
			CHECK_STR(block_get(&blk, "SSL_CLIENT_M_SERIAL"), mailtls_peer_serial(s));
			CHECK_STR(block_get(&blk, "SSL_CLIENT_V_START"), mailtls_peer_not_before(s));
			CHECK_STR(block_get(&blk, "SSL_CLIENT_V_END"), mailtls_peer_not_after(s));
		} else {
			CHECK_STR(block_get(&blk, "SSL_CLIENT_VERIFY"), "NONE");
			CHECK(!block_get(&blk, "SSL_CLIENT_S_DN") && !block_get(&blk, "SSL_PEER_CERT_HASH"));
		}
	} else {
		/* 'y': no facts; the program never reads any. */
		char c;
		CHECK_EQ(read(report[0], &c, 1), 0);
	}
	close(report[0]);
	/* Done with the control socket: the program reads its data on
	 * SSLREADFD now, and the relay owns rd[1] and wr[0]. */
	close(u.ctl[1]);
	u.ctl[1] = -1;
	CHECK_OK(s, mailtls_relay(s, u.wr[0], u.rd[1], MAILTLS_RELAY_OWN_FDS, 10, &res));
	u.wr[0] = u.rd[1] = -1;
	pthread_join(cl.th, NULL);
	CHECK_STR(cl.ok ? "" : cl.err, "");
	cl.got[cl.gotlen] = 0;
	CHECK_STR(cl.got, PONG_PREFIX PING);
	CHECK_EQ(res.reason, MAILTLS_RELAY_DONE);
	/* The program's end ended the relay (its SSLREADFD has no reader now,
	 * so the client's close_notify may or may not have been read by then). */
	CHECK_EQ(res.plain_eof, 1);
	CHECK_EQ(res.tls_to_plain, strlen(PING));
	CHECK_EQ(res.plain_to_tls, strlen(PONG_PREFIX PING));
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	mailtls_free(cl.c);
	mailtls_free(s);
	mailtls_config_free(scfg);
	mailtls_config_free(ccfg);
	close(net[0]);
	close(net[1]);
}

static void test_flow_Y(void)
{
	run_flow('Y', 0);
}

static void test_flow_Y_client_cert(void)
{
	run_flow('Y', 1);
}

static void test_flow_y(void)
{
	run_flow('y', 0);
}

/* ------------------------------------------------------------------ */
/* The reply's failures                                                 */
/* ------------------------------------------------------------------ */

static void test_reply_failures(void)
{
	struct mailtls_config *scfg = tu_server_config("server-ec.pem", "server-ec.key");
	struct mailtls_config *ccfg = tu_client_config();
	struct mailtls_ucspitls u;
	struct mailtls *s, *c;
	int net[2], sr;

	s = server_session(scfg, net);
	CHECK_EQ(mailtls_ucspitls_open(&u), 0);
	/* Before the handshake there are no facts: an empty block would tell
	 * the program it has TLS when it has none. */
	CHECK_EQ(mailtls_ucspitls_reply(s, &u, 1), -1);
	CHECK_EQ(mailtls_errcode(s), MAILTLS_E_USAGE);
	{
		struct pollfd p = { .fd = u.ctl[0], .events = POLLIN };
		CHECK_EQ(poll(&p, 1, 0), 0);   /* nothing was sent */
	}
	c = mailtls_client(ccfg, net[1], net[1], "localhost");
	CHECK(c);
	CHECK_EQ(tu_handshake_pair(c, s, &sr), 0);
	CHECK_EQ(sr, 0);
	/* The program went away after asking: an error, and no SIGPIPE (this
	 * test does not ignore it). */
	mailtls_ucspitls_close_program(&u);
	CHECK_EQ(mailtls_ucspitls_reply(s, &u, 1), -1);
	CHECK_EQ(mailtls_errcode(s), MAILTLS_E_SYSTEM);
	mailtls_ucspitls_close_ours(&u);
	mailtls_free(c);
	mailtls_free(s);
	mailtls_config_free(scfg);
	mailtls_config_free(ccfg);
	close(net[0]);
	close(net[1]);
}

int main(void)
{
	signal(SIGPIPE, SIG_DFL);
	RUN(test_open_env_close);
	RUN(test_request_bytes);
	RUN(test_closed_without_asking);
	RUN(test_timeout);
	RUN(test_nonblocking_ctl_waits_without_spinning);
	RUN(test_flow_Y);
	RUN(test_flow_Y_client_cert);
	RUN(test_flow_y);
	RUN(test_reply_failures);
	fprintf(stderr, "ok\n");
	return 0;
}
