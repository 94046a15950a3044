/* bench_relay.c -- mailtls_relay throughput.
 *
 * usage: bench_relay -p PKIDIR [-s SIZE] [-r REPEAT] [-m up,down,both]
 *                    [-k ec|rsa] [-C CLIENT_CPU] [-R RELAY_CPU] [-P PLAIN_CPU]
 *                    [-l LABEL]
 *
 * Three processes:
 *
 *   client (this process)  -- TLS over an AF_UNIX socketpair --  relay
 *   relay: a server session of ours on the other end, running
 *          mailtls_relay(s, down_r, up_w, MAILTLS_RELAY_OWN_FDS, 0, &res)
 *   plain: the program behind the relay (what qmail-smtpd would be): a
 *          sink thread reading the "up" pipe and a source thread writing
 *          the "down" pipe.
 *
 *   up:   client --TLS--> relay --pipe--> sink
 *   down: source --pipe--> relay --TLS--> client
 *
 * Modes (SIZE bytes each way that is used, default 1 GiB):
 *   up    the client writes SIZE bytes, then close_notify; the source
 *         writes nothing and closes its pipe once the sink has seen EOF
 *         (a server that answers after the upload).
 *   down  the source writes SIZE bytes and closes; the client reads until
 *         close_notify, then sends its own.
 *   both  both at once; each side closes when its writing is done, so the
 *         relay also goes through its half-closed states.
 * Every byte is checked on arrival against the pattern sent; the relay's
 * result (reason, byte counts, clean close, EOF) is checked too.
 *
 * Timing: the client does the handshake, then releases the source and
 * starts writing (time 0).  Upload ends when the sink has the last byte,
 * download when the client has it.  CPU (user + sys, getrusage) is
 * reported per process; "relay-bound" is the bytes the relay moved per
 * second of its own CPU time, i.e. what one core running relays would
 * carry if its peers were free.
 *
 * -r runs each mode that many times; the RESULT line has the median of
 * each number.  -l names the results (RESULT relay.LABEL.MODE; default
 * "relay"), to tell pinnings apart.  -C/-R/-P pin the three processes.
 *
 * The client's descriptor (ours) is made non-blocking for its one-thread
 * poll loop; the relay's descriptors are left blocking, as a mail program
 * would hand them over. */
#include "benchutil.h"   /* first: it defines _GNU_SOURCE */

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define PATLEN (1u << 20)
#define CHUNK (64u * 1024)

static unsigned char pat[PATLEN + CHUNK];   /* byte at stream offset p: pat[p % PATLEN] */
static const char *pkidir;
static int cpu_client = -1, cpu_relay = -1, cpu_plain = -1;
static const char *label = "relay";

static void make_pattern(void)
{
	unsigned long long x = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < PATLEN; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		pat[i] = (unsigned char)x;
	}
	memcpy(pat + PATLEN, pat, CHUNK);
}

static const unsigned char *pat_at(unsigned long long off)
{
	return pat + off % PATLEN;
}

static void check_bytes(const char *who, unsigned long long off, const void *buf, size_t n)
{
	if (memcmp(buf, pat_at(off), n) != 0)
		die("%s: bytes changed at offset %llu..%llu", who, off, off + n);
}

static const char *path(const char *file)
{
	static char bufs[4][1024];
	static int i;
	char *b = bufs[i++ % 4];
	snprintf(b, sizeof bufs[0], "%s/%s", pkidir, file);
	return b;
}

/* ---------------------------------------------------------------- */
/* Reports between processes                                         */
/* ---------------------------------------------------------------- */

struct relay_report {
	int rc, errcode;
	char error[200];
	struct mailtls_relay_result res;
	char cipher[64];
	struct cpu cpu;
};

struct plain_report {
	unsigned long long sunk, sourced;
	double sink_last, source_start;
	struct cpu cpu;
};

/* ---------------------------------------------------------------- */
/* The relay process                                                 */
/* ---------------------------------------------------------------- */

static void relay_main(const char *key, int fd, int down_r, int up_w, int repfd)
{
	struct mailtls_config *sc = mailtls_config_new();
	struct relay_report rep;
	struct cpu c0;
	struct mailtls *s;
	char cert[64], k[64];
	const char *ci;

	pin_to(cpu_relay);
	memset(&rep, 0, sizeof rep);
	snprintf(cert, sizeof cert, "server-%s.pem", key);
	snprintf(k, sizeof k, "server-%s.key", key);
	if (!sc || mailtls_config_set_keypair_file(sc, path(cert), path(k)) < 0 ||
	    mailtls_config_set_min_protocol(sc, MAILTLS_TLS1_3) < 0)
		die("server config: %s", sc ? mailtls_config_error(sc) : "no memory");
	s = mailtls_server(sc, fd, fd);
	if (!s)
		die("mailtls_server");
	c0 = cpu_self();
	rep.rc = mailtls_relay(s, down_r, up_w, MAILTLS_RELAY_OWN_FDS, 0, &rep.res);
	rep.cpu = cpu_diff(c0, cpu_self());
	rep.errcode = mailtls_errcode(s);
	snprintf(rep.error, sizeof rep.error, "%s", mailtls_error(s));
	ci = mailtls_cipher(s);
	snprintf(rep.cipher, sizeof rep.cipher, "%s", ci ? ci : "?");
	write_all(repfd, &rep, sizeof rep);
	_exit(0);
}

/* ---------------------------------------------------------------- */
/* The plaintext program behind the relay                            */
/* ---------------------------------------------------------------- */

struct plain {
	int up_r, down_w, go_r;
	unsigned long long down_size;
	int wait_sink;              /* source: close only after the sink's EOF */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int sink_done;
	struct plain_report rep;
};

static void *sink_main(void *arg)
{
	struct plain *p = arg;
	static unsigned char buf[CHUNK];
	unsigned long long off = 0;
	for (;;) {
		ssize_t n = read(p->up_r, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("sink read: %s", strerror(errno));
		if (n == 0)
			break;
		check_bytes("sink", off, buf, (size_t)n);
		off += (unsigned long long)n;
		p->rep.sink_last = now();
	}
	close(p->up_r);
	p->rep.sunk = off;
	pthread_mutex_lock(&p->mu);
	p->sink_done = 1;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void *source_main(void *arg)
{
	struct plain *p = arg;
	unsigned long long off = 0;
	char go;
	if (read_all(p->go_r, &go, 1) < 0) {
		/* The client gave up before starting; just end. */
		close(p->down_w);
		return NULL;
	}
	p->rep.source_start = now();
	while (off < p->down_size) {
		size_t want = p->down_size - off < CHUNK ? (size_t)(p->down_size - off) : CHUNK;
		ssize_t n = write(p->down_w, pat_at(off), want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("source write: %s", strerror(errno));
		off += (unsigned long long)n;
	}
	p->rep.sourced = off;
	if (p->wait_sink) {
		pthread_mutex_lock(&p->mu);
		while (!p->sink_done)
			pthread_cond_wait(&p->cv, &p->mu);
		pthread_mutex_unlock(&p->mu);
	}
	close(p->down_w);
	return NULL;
}

static void plain_main(struct plain *p, int repfd)
{
	pthread_t a, b;
	struct cpu c0;
	pin_to(cpu_plain);
	c0 = cpu_self();
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (pthread_create(&a, NULL, sink_main, p) || pthread_create(&b, NULL, source_main, p))
		die("pthread_create");
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	p->rep.cpu = cpu_diff(c0, cpu_self());
	write_all(repfd, &p->rep, sizeof p->rep);
	_exit(0);
}

/* ---------------------------------------------------------------- */
/* The client                                                        */
/* ---------------------------------------------------------------- */

struct client_result {
	double start, down_last;
	unsigned long long sent, got;
	struct cpu cpu;
};

static void client_run(struct mailtls *c, int fd, unsigned long long up, unsigned long long down_expect,
    int go_w, struct client_result *cr)
{
	static unsigned char buf[CHUNK];
	int write_done = up == 0, close_done = 0, read_eof = 0;
	struct cpu c0;
	char go = 'g';

	memset(cr, 0, sizeof *cr);
	MUST(c, "client handshake", mailtls_handshake(c));
	{
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
			die("fcntl: %s", strerror(errno));
	}
	c0 = cpu_self();
	cr->start = now();
	write_all(go_w, &go, 1);
	close(go_w);
	while (!(close_done && read_eof)) {
		short ev = 0;
		int progress = 0;
		ssize_t r;
		if (!write_done) {
			unsigned long long left = up - cr->sent;
			size_t want = left < CHUNK ? (size_t)left : CHUNK;
			r = mailtls_write(c, pat_at(cr->sent), want);
			if (r > 0) {
				cr->sent += (unsigned long long)r;
				write_done = cr->sent == up;
				progress = 1;
			} else if (r == MAILTLS_WANT_WRITE) {
				ev |= POLLOUT;
			} else if (r == MAILTLS_WANT_READ) {
				ev |= POLLIN;
			} else {
				MUST(c, "client write", -1);
			}
		} else if (!close_done && (up > 0 || read_eof)) {
			r = mailtls_close(c);
			if (r == 0) {
				close_done = 1;
				progress = 1;
			} else if (r == MAILTLS_WANT_WRITE) {
				ev |= POLLOUT;
			} else if (r == MAILTLS_WANT_READ) {
				ev |= POLLIN;
			} else {
				MUST(c, "client close", -1);
			}
		}
		while (!read_eof) {
			r = mailtls_read(c, buf, sizeof buf);
			if (r > 0) {
				check_bytes("client", cr->got, buf, (size_t)r);
				cr->got += (unsigned long long)r;
				cr->down_last = now();
				progress = 1;
				continue;
			}
			if (r == 0) {
				read_eof = 1;
				progress = 1;
			} else if (r == MAILTLS_WANT_READ) {
				ev |= POLLIN;
			} else if (r == MAILTLS_WANT_WRITE) {
				ev |= POLLOUT;
			} else {
				MUST(c, "client read", -1);
			}
			break;
		}
		if (!progress && ev) {
			struct pollfd pfd = { .fd = fd, .events = ev };
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				die("poll: %s", strerror(errno));
		}
	}
	cr->cpu = cpu_diff(c0, cpu_self());
	if (cr->got != down_expect)
		die("client got %llu bytes, expected %llu", cr->got, down_expect);
}

/* One run's numbers, in the order of the RESULT line. */
#define NMET 10
static const char *const met_names[NMET] = {
	"up_mbps", "down_mbps", "total_mbps", "secs", "relay_cpu", "relay_user", "relay_sys",
	"client_cpu", "plain_cpu", "relay_bound_mbps",
};

static double mbps(unsigned long long bytes, double secs)
{
	return secs > 0 ? (double)bytes / secs / 1e6 : 0;
}

static void run(const char *mode, const char *key, unsigned long long size, double *met)
{
	int up_on = !strcmp(mode, "up") || !strcmp(mode, "both");
	int down_on = !strcmp(mode, "down") || !strcmp(mode, "both");
	unsigned long long up = up_on ? size : 0, down = down_on ? size : 0;
	int tls[2], uppipe[2], downpipe[2], gopipe[2], rrep[2], prep[2], st;
	struct mailtls_config *cc;
	struct mailtls *c;
	struct relay_report rr;
	struct plain_report pr;
	struct client_result cr;
	pid_t relay, plain;
	double up_secs = 0, down_secs = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, tls) < 0 || pipe(uppipe) < 0 || pipe(downpipe) < 0 ||
	    pipe(gopipe) < 0 || pipe(rrep) < 0 || pipe(prep) < 0)
		die("socketpair/pipe: %s", strerror(errno));
	fflush(stdout);
	relay = fork();
	if (relay < 0)
		die("fork: %s", strerror(errno));
	if (relay == 0) {
		close(tls[0]); close(uppipe[0]); close(downpipe[1]); close(gopipe[0]); close(gopipe[1]);
		close(rrep[0]); close(prep[0]); close(prep[1]);
		relay_main(key, tls[1], downpipe[0], uppipe[1], rrep[1]);
	}
	close(tls[1]); close(downpipe[0]); close(uppipe[1]); close(rrep[1]);
	plain = fork();
	if (plain < 0)
		die("fork: %s", strerror(errno));
	if (plain == 0) {
		static struct plain p;
		close(tls[0]); close(gopipe[1]); close(rrep[0]); close(prep[0]);
		memset(&p, 0, sizeof p);
		p.up_r = uppipe[0];
		p.down_w = downpipe[1];
		p.go_r = gopipe[0];
		p.down_size = down;
		p.wait_sink = down == 0;
		plain_main(&p, prep[1]);
	}
	close(uppipe[0]); close(downpipe[1]); close(gopipe[0]); close(prep[1]);

	pin_to(cpu_client);
	cc = mailtls_config_new();
	if (!cc || mailtls_config_set_ca(cc, path("ca.pem"), NULL) < 0 ||
	    mailtls_config_set_min_protocol(cc, MAILTLS_TLS1_3) < 0)
		die("client config: %s", cc ? mailtls_config_error(cc) : "no memory");
	c = mailtls_client(cc, tls[0], tls[0], "localhost");
	if (!c)
		die("mailtls_client");
	client_run(c, tls[0], up, down, gopipe[1], &cr);

	if (read_all(rrep[0], &rr, sizeof rr) < 0)
		die("no report from the relay process");
	if (read_all(prep[0], &pr, sizeof pr) < 0)
		die("no report from the plaintext process");
	if (waitpid(relay, &st, 0) != relay || !WIFEXITED(st) || WEXITSTATUS(st))
		die("relay process failed");
	if (waitpid(plain, &st, 0) != plain || !WIFEXITED(st) || WEXITSTATUS(st))
		die("plaintext process failed");
	mailtls_free(c);
	mailtls_config_free(cc);
	close(tls[0]); close(rrep[0]); close(prep[0]);

	/* The library must have done its job. */
	if (rr.rc != 0 || rr.res.reason != MAILTLS_RELAY_DONE)
		die("mailtls_relay returned %d, reason %d: %s [%s]", rr.rc, rr.res.reason, rr.error,
		    mailtls_errcode_name(rr.errcode));
	if (rr.res.tls_to_plain != up || rr.res.plain_to_tls != down)
		die("relay counted %llu up / %llu down, expected %llu / %llu",
		    rr.res.tls_to_plain, rr.res.plain_to_tls, up, down);
	if (!rr.res.tls_eof || !rr.res.tls_clean || !rr.res.plain_eof)
		die("relay result: tls_eof %d tls_clean %d plain_eof %d", rr.res.tls_eof,
		    rr.res.tls_clean, rr.res.plain_eof);
	if (pr.sunk != up || pr.sourced != down || cr.sent != up)
		die("sink got %llu, source sent %llu, client sent %llu", pr.sunk, pr.sourced, cr.sent);

	if (up)
		up_secs = pr.sink_last - cr.start;
	if (down)
		down_secs = cr.down_last - cr.start;
	{
		double end = 0;
		double rcpu = rr.cpu.user + rr.cpu.sys, ccpu = cr.cpu.user + cr.cpu.sys;
		double pcpu = pr.cpu.user + pr.cpu.sys;
		char name[64];
		if (up)
			end = pr.sink_last;
		if (down && cr.down_last > end)
			end = cr.down_last;
		snprintf(name, sizeof name, "%s.%s", label, mode);
		printf("%-12s %s, %.0f MiB each way used:", name, rr.cipher, (double)size / 1048576.0);
		if (up)
			printf("  up %.1f MB/s", mbps(up, up_secs));
		if (down)
			printf("  down %.1f MB/s", mbps(down, down_secs));
		printf("  total %.1f MB/s in %.2f s\n", mbps(up + down, end - cr.start), end - cr.start);
		printf("   CPU s: relay %.2f (user %.2f sys %.2f), client %.2f, plain side %.2f;"
		    " relay-bound %.1f MB/s per relay CPU second\n",
		    rcpu, rr.cpu.user, rr.cpu.sys, ccpu, pcpu, mbps(up + down, rcpu));
		met[0] = mbps(up, up_secs);
		met[1] = mbps(down, down_secs);
		met[2] = mbps(up + down, end - cr.start);
		met[3] = end - cr.start;
		met[4] = rcpu;
		met[5] = rr.cpu.user;
		met[6] = rr.cpu.sys;
		met[7] = ccpu;
		met[8] = pcpu;
		met[9] = mbps(up + down, rcpu);
		fflush(stdout);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Runs |mode| |reps| times and prints the medians, metric by metric. */
static void run_mode(const char *mode, const char *key, unsigned long long size, int reps)
{
	double met[NMET][64], v[64];
	int i, j;
	for (i = 0; i < reps; i++) {
		double one[NMET];
		run(mode, key, size, one);
		for (j = 0; j < NMET; j++)
			met[j][i] = one[j];
	}
	printf("RESULT relay.%s.%s", label, mode);
	(void)key;
	for (j = 0; j < NMET; j++) {
		memcpy(v, met[j], (size_t)reps * sizeof v[0]);
		qsort(v, (size_t)reps, sizeof v[0], cmp_double);
		printf(" %s=%.3f", met_names[j], reps % 2 ? v[reps / 2] : (v[reps / 2 - 1] + v[reps / 2]) / 2);
	}
	printf(" bytes=%llu runs=%d\n", size, reps);
	if (reps > 1) {
		memcpy(v, met[2], (size_t)reps * sizeof v[0]);
		qsort(v, (size_t)reps, sizeof v[0], cmp_double);
		printf("   %s: median of %d runs; total MB/s from %.1f to %.1f\n", mode, reps, v[0], v[reps - 1]);
	}
	fflush(stdout);
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_relay -p PKIDIR [-s SIZE] [-r REPEAT] [-m up,down,both] [-k ec|rsa]\n"
	    "       [-C CLIENT_CPU] [-R RELAY_CPU] [-P PLAIN_CPU] [-l LABEL]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *modes = "up,down,both", *key = "ec";
	unsigned long long size = 1ULL << 30;
	char *list, *m, *save;
	int o, reps = 1;

	while ((o = getopt(argc, argv, "p:s:r:m:k:C:R:P:l:")) != -1) {
		switch (o) {
		case 'p': pkidir = optarg; break;
		case 'r': reps = atoi(optarg); break;
		case 's': size = parse_size(optarg); break;
		case 'm': modes = optarg; break;
		case 'k': key = optarg; break;
		case 'C': cpu_client = atoi(optarg); break;
		case 'R': cpu_relay = atoi(optarg); break;
		case 'P': cpu_plain = atoi(optarg); break;
		case 'l': label = optarg; break;
		default: usage();
		}
	}
	if (!pkidir || size == 0 || reps < 1 || reps > 64)
		usage();
	signal(SIGPIPE, SIG_IGN);
	make_pattern();
	printf("# bench_relay: libmailtls %s, TLS 1.3, %llu bytes each way used\n", mailtls_version(), size);
	list = strdup(modes);
	for (m = strtok_r(list, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
		if (strcmp(m, "up") && strcmp(m, "down") && strcmp(m, "both"))
			usage();
		run_mode(m, key, size, reps);
	}
	free(list);
	return 0;
}
