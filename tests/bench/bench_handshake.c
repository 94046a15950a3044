/* bench_handshake.c -- TLS 1.3 handshakes per second between a client and a
 * server of ours, in process.
 *
 * usage: bench_handshake -p PKIDIR [-n ITER | -t SECONDS] [-w WARMUP]
 *                        [-k ec,rsa] [-m mem,sock,mem-resume,sock-resume]
 *                        [-C CLIENT_CPU] [-S SERVER_CPU] [-l LABEL]
 *
 * Keys: ec = server-ec.pem (ECDSA P-256), rsa = server-rsa.pem (RSA-2048);
 * both leaves come with the ECDSA P-256 intermediate, and the client
 * verifies the chain to ca.pem (ECDSA P-256) and the name "localhost" on
 * every handshake, resumed ones included (mailtls.h says so).
 *
 * Modes:
 *   mem          one thread drives a client and a server over the memory
 *                transport (mailtls_*_mem): pure CPU, no descriptors.  Each
 *                side's calls are timed separately (CLOCK_MONOTONIC, a vDSO
 *                call, no syscall), the copying between them apart
 *                ("xfer"); the process's CPU time (getrusage) is split
 *                between them in that ratio, so time the thread spent
 *                preempted counts for neither side.
 *   sock         the server runs in a forked process on one end of an
 *                AF_UNIX socketpair.  Every iteration is a connection's
 *                whole life: new sessions, handshake, greeting,
 *                close_notify both ways, free.  The same
 *                socketpair carries the next connection (close_notify
 *                delimits them).  CPU per side from getrusage (user + sys).
 *   *-resume     the same, the client offering a session saved
 *                (mailtls_get_session) after one full handshake; every
 *                iteration must resume (mailtls_session_reused).  The same
 *                saved session is offered every time.
 * In every mode the server writes a greeting line after its handshake and
 * the client reads it: BoringSSL holds back a server's TLS 1.3 tickets
 * until its first write, so a server that wrote nothing would issue none,
 * and the client processes them on that read.  A mail server always
 * writes (greeting or EHLO reply), so this is a real connection's cost.
 *
 * -n runs that many timed handshakes per case; -t runs each case that many
 * seconds instead.  -w untimed handshakes come first (default 20).
 * -C/-S pin the client (and the mem thread) and the server process to CPUs.
 * -l names the socketpair cases (default "sock"), to tell pinnings apart.
 * Prints a human line and a "RESULT" line per case. */
#include "benchutil.h"   /* first: it defines _GNU_SOURCE */

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

static const char *pkidir;
static long opt_n = 0, opt_warm = 20;
static double opt_secs = 0;
static int cpu_client = -1, cpu_server = -1;
static const char *sock_label = "sock";

static const char *path(const char *file)
{
	static char bufs[4][1024];
	static int i;
	char *b = bufs[i++ % 4];
	snprintf(b, sizeof bufs[0], "%s/%s", pkidir, file);
	return b;
}

static struct mailtls_config *server_config(const char *key)
{
	struct mailtls_config *c = mailtls_config_new();
	char cert[64], k[64];
	if (!c)
		die("mailtls_config_new");
	snprintf(cert, sizeof cert, "server-%s.pem", key);
	snprintf(k, sizeof k, "server-%s.key", key);
	if (mailtls_config_set_keypair_file(c, path(cert), path(k)) < 0 ||
	    mailtls_config_set_min_protocol(c, MAILTLS_TLS1_3) < 0)
		die("server config: %s", mailtls_config_error(c));
	return c;
}

static struct mailtls_config *client_config(void)
{
	struct mailtls_config *c = mailtls_config_new();
	if (!c)
		die("mailtls_config_new");
	if (mailtls_config_set_ca(c, path("ca.pem"), NULL) < 0 ||
	    mailtls_config_set_min_protocol(c, MAILTLS_TLS1_3) < 0 ||
	    mailtls_config_set_verify(c, MAILTLS_VERIFY_REQUIRE) < 0)
		die("client config: %s", mailtls_config_error(c));
	return c;
}

static void check_established(struct mailtls *c, struct mailtls *s, int resumed)
{
	const char *p = mailtls_protocol(c);
	if (!p || strcmp(p, "TLSv1.3"))
		die("protocol is %s, not TLSv1.3", p ? p : "(none)");
	if (!mailtls_peer_verified(c))
		die("client did not verify the server");
	if (resumed && !mailtls_session_reused(c))
		die("the handshake did not resume");
	if (!resumed && mailtls_session_reused(c))
		die("a full handshake resumed");
	(void)s;
}

/* ---------------------------------------------------------------- */
/* Memory transport                                                  */
/* ---------------------------------------------------------------- */

static double t_client, t_server, t_xfer;

#define GREETING "220 bench ESMTP\r\n"

#define TIMED(acc, stmt) do { double _t0 = now(); stmt; acc += now() - _t0; } while (0)

static void xfer(struct mailtls *from, struct mailtls *to)
{
	static char buf[65536];
	ssize_t n;
	double t0 = now();
	while ((n = mailtls_mem_drain(from, buf, sizeof buf)) > 0)
		if (mailtls_mem_feed(to, buf, (size_t)n) != n)
			die("mailtls_mem_feed: %s", mailtls_error(to));
	t_xfer += now() - t0;
}

/* One connection over memory; |sess| non-NULL offers it; |save| non-NULL
 * receives the client's session (its length in *savelen). */
static void mem_once(struct mailtls_config *sc, struct mailtls_config *cc,
    const unsigned char *sess, size_t slen, unsigned char *save, size_t *savelen)
{
	struct mailtls *c, *s;
	int rc = 1, rs = 1, rounds = 0;
	ssize_t r;
	char buf[64];

	TIMED(t_client, c = mailtls_client_mem(cc, "localhost"));
	if (!c)
		die("mailtls_client_mem");
	if (sess)
		TIMED(t_client, r = mailtls_set_session(c, sess, slen); MUST(c, "mailtls_set_session", r));
	TIMED(t_server, s = mailtls_server_mem(sc));
	if (!s)
		die("mailtls_server_mem");
	while (rc || rs) {
		if (++rounds > 10)
			die("memory handshake does not finish");
		if (rc) {
			TIMED(t_client, rc = mailtls_handshake(c));
			if (rc != 0 && rc != MAILTLS_WANT_READ)
				MUST(c, "client handshake", -1);
		}
		xfer(c, s);
		if (rs) {
			TIMED(t_server, rs = mailtls_handshake(s));
			if (rs != 0 && rs != MAILTLS_WANT_READ)
				MUST(s, "server handshake", -1);
		}
		xfer(s, c);
	}
	/* The server's greeting; BoringSSL sends the TLS 1.3 tickets with the
	 * server's first write.  The client reads both. */
	TIMED(t_server, r = mailtls_write(s, GREETING, sizeof GREETING - 1); MUST(s, "server write", r));
	xfer(s, c);
	TIMED(t_client, r = mailtls_read(c, buf, sizeof buf));
	if (r != (ssize_t)sizeof GREETING - 1 || memcmp(buf, GREETING, (size_t)r))
		MUST(c, "client read of the greeting", r < 0 ? r : -1);
	check_established(c, s, sess != NULL);
	if (save) {
		r = mailtls_get_session(c, save, *savelen);
		if (r <= 0)
			die("mailtls_get_session gave %zd: %s", r, mailtls_error(c));
		*savelen = (size_t)r;
	}
	TIMED(t_client, mailtls_free(c));
	TIMED(t_server, mailtls_free(s));
}

static int keep_going(long i, double t0)
{
	if (opt_n > 0)
		return i < opt_n;
	return (i & 3) || now() - t0 < opt_secs;
}

static void report(const char *name, long n, double secs, double cus, double sus,
    double extra_us, const char *extra_name)
{
	printf("%-22s %9.1f hs/s  client %8.1f us/hs  server %8.1f us/hs", name,
	    (double)n / secs, cus, sus);
	if (extra_name)
		printf("  %s %6.1f us/hs", extra_name, extra_us);
	printf("  (n=%ld, %.2f s)\n", n, secs);
	printf("RESULT hs.%s rate=%.1f client_us=%.1f server_us=%.1f n=%ld secs=%.3f", name,
	    (double)n / secs, cus, sus, n, secs);
	if (extra_name)
		printf(" %s_us=%.1f", extra_name, extra_us);
	printf("\n");
	fflush(stdout);
}

static void run_mem(const char *key, int resume)
{
	struct mailtls_config *sc = server_config(key), *cc = client_config();
	unsigned char sess[8192];
	size_t slen = sizeof sess;
	struct cpu c0, c1;
	double t0, t1;
	long i;
	char name[64];

	pin_to(cpu_client);
	mem_once(sc, cc, NULL, 0, sess, &slen);
	for (i = 0; i < opt_warm; i++)
		mem_once(sc, cc, resume ? sess : NULL, slen, NULL, NULL);
	t_client = t_server = t_xfer = 0;
	c0 = cpu_self();
	t0 = now();
	for (i = 0; keep_going(i, t0); i++)
		mem_once(sc, cc, resume ? sess : NULL, slen, NULL, NULL);
	t1 = now();
	c1 = cpu_self();
	snprintf(name, sizeof name, "mem.%s.%s", key, resume ? "resumed" : "full");
	{
		/* The process's CPU time, split between the sides in the ratio of
		 * the time spent in each side's calls: a preemption (another
		 * program on this CPU) then inflates neither side. */
		struct cpu d = cpu_diff(c0, c1);
		double cpu = d.user + d.sys, timed = t_client + t_server + t_xfer;
		double k = timed > 0 ? cpu / timed : 0;
		report(name, i, t1 - t0, k * t_client / (double)i * 1e6, k * t_server / (double)i * 1e6,
		    k * t_xfer / (double)i * 1e6, "xfer");
		printf("   (process CPU %.1f us/hs, of which sys %.1f us/hs; the calls took %.1f us/hs"
		    " of wall time, %.0f%% of the loop)\n",
		    cpu / (double)i * 1e6, d.sys / (double)i * 1e6, timed / (double)i * 1e6,
		    100 * timed / (t1 - t0));
	}
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

/* ---------------------------------------------------------------- */
/* Socketpair, server in a forked process                            */
/* ---------------------------------------------------------------- */

struct server_report {
	long conns;
	double user, sys;  /* from the start of connection |warm| on */
};

/* The server process: one connection after the other on |fd| until the
 * client closes the socket between connections. */
static void server_loop(struct mailtls_config *sc, int fd, long warm, int repfd)
{
	struct server_report rep = { 0, 0, 0 };
	struct cpu c0 = cpu_self(), c1;
	char buf[256];

	pin_to(cpu_server);
	for (;;) {
		struct mailtls *s;
		ssize_t r;
		char peek;
		if (rep.conns == warm)
			c0 = cpu_self();
		do
			r = recv(fd, &peek, 1, MSG_PEEK);
		while (r < 0 && errno == EINTR);
		if (r <= 0)
			break;
		s = mailtls_server(sc, fd, fd);
		if (!s)
			die("mailtls_server");
		MUST(s, "server handshake", mailtls_handshake(s));
		MUST(s, "server write", mailtls_write(s, GREETING, sizeof GREETING - 1));
		/* Until the client's close_notify. */
		while ((r = mailtls_read(s, buf, sizeof buf)) > 0)
			;
		MUST(s, "server read to close_notify", r);
		MUST(s, "server close", mailtls_close(s));
		mailtls_free(s);
		rep.conns++;
	}
	c1 = cpu_self();
	if (rep.conns > warm) {
		struct cpu d = cpu_diff(c0, c1);
		rep.user = d.user;
		rep.sys = d.sys;
	}
	rep.conns -= warm;
	write_all(repfd, &rep, sizeof rep);
	_exit(0);
}

static void sock_once(struct mailtls_config *cc, int fd, const unsigned char *sess, size_t slen,
    unsigned char *save, size_t *savelen)
{
	struct mailtls *c = mailtls_client(cc, fd, fd, "localhost");
	char buf[256];
	size_t got;
	ssize_t r;
	if (!c)
		die("mailtls_client");
	if (sess)
		MUST(c, "mailtls_set_session", mailtls_set_session(c, sess, slen));
	MUST(c, "client handshake", mailtls_handshake(c));
	/* The greeting (with the tickets before it). */
	for (got = 0; got < sizeof GREETING - 1; got += (size_t)r) {
		r = mailtls_read(c, buf + got, sizeof buf - got);
		if (r <= 0)
			MUST(c, "client read of the greeting", r < 0 ? r : -1);
	}
	if (got != sizeof GREETING - 1 || memcmp(buf, GREETING, got))
		die("client read a wrong greeting");
	check_established(c, NULL, sess != NULL);
	if (save) {
		r = mailtls_get_session(c, save, *savelen);
		if (r <= 0)
			die("mailtls_get_session gave %zd: %s", r, mailtls_error(c));
		*savelen = (size_t)r;
	}
	MUST(c, "client close", mailtls_close(c));
	/* Until the server's close_notify. */
	while ((r = mailtls_read(c, buf, sizeof buf)) > 0)
		;
	MUST(c, "client read to close_notify", r);
	mailtls_free(c);
}

static void run_sock(const char *key, int resume)
{
	struct mailtls_config *sc = server_config(key), *cc = client_config();
	unsigned char sess[8192];
	size_t slen = sizeof sess;
	struct server_report rep;
	struct cpu c0, c1, d;
	int sv[2], rp[2], st;
	double t0, t1;
	pid_t pid;
	long i;
	char name[64];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || pipe(rp) < 0)
		die("socketpair/pipe: %s", strerror(errno));
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		close(sv[0]);
		close(rp[0]);
		mailtls_config_free(cc);
		server_loop(sc, sv[1], 1 + opt_warm, rp[1]);
	}
	close(sv[1]);
	close(rp[1]);
	pin_to(cpu_client);
	sock_once(cc, sv[0], NULL, 0, sess, &slen);
	for (i = 0; i < opt_warm; i++)
		sock_once(cc, sv[0], resume ? sess : NULL, slen, NULL, NULL);
	c0 = cpu_self();
	t0 = now();
	for (i = 0; keep_going(i, t0); i++)
		sock_once(cc, sv[0], resume ? sess : NULL, slen, NULL, NULL);
	t1 = now();
	c1 = cpu_self();
	close(sv[0]);
	if (read_all(rp[0], &rep, sizeof rep) < 0)
		die("no report from the server process");
	close(rp[0]);
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("server process failed");
	if (rep.conns != i)
		die("server counted %ld connections, client %ld", rep.conns, i);
	d = cpu_diff(c0, c1);
	snprintf(name, sizeof name, "%s.%s.%s", sock_label, key, resume ? "resumed" : "full");
	report(name, i, t1 - t0, (d.user + d.sys) / (double)i * 1e6,
	    (rep.user + rep.sys) / (double)i * 1e6, 0, NULL);
	printf("   (sys part: client %.1f us/hs, server %.1f us/hs)\n",
	    d.sys / (double)i * 1e6, rep.sys / (double)i * 1e6);
	mailtls_config_free(sc);
	mailtls_config_free(cc);
}

static int listed(const char *list, const char *word)
{
	size_t n = strlen(word);
	const char *p = list;
	while ((p = strstr(p, word))) {
		if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0))
			return 1;
		p += n;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_handshake -p PKIDIR [-n ITER | -t SECONDS] [-w WARMUP]\n"
	    "       [-k ec,rsa] [-m mem,sock,mem-resume,sock-resume] [-C CPU] [-S CPU] [-l LABEL]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *keys = "ec,rsa", *modes = "mem,sock,mem-resume,sock-resume";
	static const char *allkeys[] = { "ec", "rsa" };
	int o;

	while ((o = getopt(argc, argv, "p:n:t:w:k:m:C:S:l:")) != -1) {
		switch (o) {
		case 'p': pkidir = optarg; break;
		case 'n': opt_n = atol(optarg); break;
		case 't': opt_secs = atof(optarg); break;
		case 'w': opt_warm = atol(optarg); break;
		case 'k': keys = optarg; break;
		case 'm': modes = optarg; break;
		case 'C': cpu_client = atoi(optarg); break;
		case 'S': cpu_server = atoi(optarg); break;
		case 'l': sock_label = optarg; break;
		default: usage();
		}
	}
	if (!pkidir || (opt_n <= 0 && opt_secs <= 0) || opt_warm < 0)
		usage();
	signal(SIGPIPE, SIG_IGN);
	printf("# bench_handshake: libmailtls %s, TLS 1.3, %s per case\n", mailtls_version(),
	    opt_n > 0 ? "fixed iterations" : "fixed time");
	for (size_t k = 0; k < 2; k++) {
		const char *key = allkeys[k];
		if (!listed(keys, key))
			continue;
		if (listed(modes, "mem"))
			run_mem(key, 0);
		if (listed(modes, "sock"))
			run_sock(key, 0);
		if (listed(modes, "mem-resume"))
			run_mem(key, 1);
		if (listed(modes, "sock-resume"))
			run_sock(key, 1);
	}
	return 0;
}
