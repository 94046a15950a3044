/* bload.c -- the load generator of the wrapper benchmark (run.sh beside it).
 * A TLS 1.3 client on libmailtls's public API (mailtls.h) only; with -P it
 * speaks plain TCP instead (the tcpserver baseline).  Talks to bprog, the
 * per-connection program behind each wrapper (see bprog.c for its
 * commands).  Loopback only: it connects to 127.0.0.1 and nothing else.
 *
 * usage: bload MODE -p PORT [-P] [-l LABEL] [options]
 *   rate  -c CONC -t SECS -w WARM [-n MAX]   connections (handshake, greeting,
 *         close) per second with CONC at once, one epoll loop; counted for
 *         SECS after WARM seconds
 *   lat   -n N [-t SECS]     N connections one after another: median / p90 / p99
 *         of connect + handshake + greeting (10 more first, not counted)
 *   up    -s BYTES            upload BYTES through the wrapper: MB/s (10^6 B/s)
 *   down  -s BYTES            download BYTES: MB/s
 *   rtt   -n N [-t SECS]     64-byte round trips on one connection: median, p99
 *   hold  -n N [-t SECS]     open N connections (64 at a time), print "HELD N",
 *         keep them until SIGTERM or SECS (default 120)
 *   wait  [-t SECS]          wait until something accepts on PORT (exit 0) or not
 *   serve [-t SECS] PEM       the floor: a one-process libmailtls server on PORT
 *         (no fork, no program, no relay), one connection at a time, for SECS
 *   free                      exit 0 when nothing listens on PORT, 1 otherwise
 * Every mode is bounded: -t, and alarm(2) at twice the expected time kills it.
 * The client does not verify the server's chain or name (MAILTLS_VERIFY_NONE:
 * a throwaway self-signed certificate; the TLS engine still checks the
 * CertificateVerify signature), requires TLS 1.3, offers no session (every
 * handshake is full), and sends close_notify before closing.
 * Output: "RESULT LABEL MODE key=value..." lines on stdout. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mailtls.h>

static int port, plain, conc = 64, nmax = 0;
static double secs = 0, warm = 1;
static unsigned long long size = 1ULL << 30;
static const char *label = "x";
static struct mailtls_config *cfg;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what)
{
	fprintf(stderr, "bload %s: %s\n", label, what);
	exit(1);
}

static void die_tls(const char *what, struct mailtls *s)
{
	fprintf(stderr, "bload %s: %s: %s (%s)\n", label, what, mailtls_error(s),
	    mailtls_errcode_name(mailtls_errcode(s)));
	exit(1);
}

static int new_socket(int nonblock)
{
	struct sockaddr_in sa;
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		die("socket");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The q-quantile of v[0..n) (sorted here), nearest rank. */
static double quant(double *v, size_t n, double q)
{
	size_t i;
	if (n == 0)
		return 0;
	qsort(v, n, sizeof *v, cmp_d);
	i = (size_t)(q * (double)n);
	if (i >= n)
		i = n - 1;
	return v[i];
}

/* ---- blocking connections (lat, up, down, rtt) ---- */

struct bc {
	int fd;
	struct mailtls *s;
};

static ssize_t bc_read(struct bc *c, void *p, size_t n)
{
	ssize_t r;
	if (c->s) {
		r = mailtls_read(c->s, p, n);
		if (r < 0)
			die_tls("read", c->s);
		return r;
	}
	do
		r = read(c->fd, p, n);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		die("read");
	return r;
}

static void bc_write(struct bc *c, const void *p, size_t n)
{
	const char *q = p;
	if (c->s) {
		if (mailtls_write(c->s, p, n) != (ssize_t)n)
			die_tls("write", c->s);
		return;
	}
	while (n > 0) {
		ssize_t w = send(c->fd, q, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write");
		q += w;
		n -= (size_t)w;
	}
}

/* Reads one line (the greeting or a reply) into line[]; nothing follows it. */
static void bc_line(struct bc *c, char *line, size_t size)
{
	size_t have = 0;
	while (!memchr(line, '\n', have)) {
		ssize_t r;
		if (have + 1 >= size)
			die("line too long");
		r = bc_read(c, line + have, size - 1 - have);
		if (r <= 0)
			die("connection closed before a line");
		have += (size_t)r;
	}
	line[have] = 0;
}

static void bc_open(struct bc *c)
{
	char line[512];
	c->s = NULL;
	c->fd = new_socket(0);
	if (c->fd < 0)
		die("connect");
	if (!plain) {
		c->s = mailtls_client(cfg, c->fd, c->fd, "localhost");
		if (!c->s)
			die("mailtls_client");
		if (mailtls_handshake(c->s) < 0)
			die_tls("handshake", c->s);
	}
	bc_line(c, line, sizeof line);
	if (strncmp(line, "220 ", 4))
		die("no greeting");
}

static void bc_close(struct bc *c)
{
	if (c->s) {
		if (mailtls_close(c->s) < 0) {
			/* the server may have gone: nothing to do about it */
		}
		mailtls_free(c->s);
	}
	close(c->fd);
}

static void mode_lat(void)
{
	int warmn = 10;
	double *v = calloc((size_t)nmax + 1, sizeof *v);
	double start = now();
	size_t n = 0;
	if (!v)
		die("out of memory");
	for (int i = 0; i < nmax + warmn; i++) {
		struct bc c;
		double t0 = now(), t1;
		bc_open(&c);
		t1 = now();
		bc_close(&c);
		if (i >= warmn)
			v[n++] = (t1 - t0) * 1e6;
		if (secs > 0 && now() - start > secs)
			break;
	}
	printf("RESULT %s lat n=%zu p50_us=%.1f p90_us=%.1f p99_us=%.1f\n", label, n, quant(v, n, 0.5),
	    quant(v, n, 0.9), quant(v, n, 0.99));
}

static void mode_rtt(void)
{
	struct bc c;
	char msg[64], back[64];
	int warmn = 200;
	double *v = calloc((size_t)nmax + 1, sizeof *v);
	double start;
	size_t n = 0;
	if (!v)
		die("out of memory");
	memset(msg, 'e', sizeof msg - 1);
	msg[63] = '\n';
	bc_open(&c);
	bc_write(&c, "E\n", 2);
	start = now();
	for (int i = 0; i < nmax + warmn; i++) {
		size_t got = 0;
		double t0 = now();
		bc_write(&c, msg, sizeof msg);
		while (got < sizeof back) {
			ssize_t r = bc_read(&c, back + got, sizeof back - got);
			if (r <= 0)
				die("echo ended");
			got += (size_t)r;
		}
		if (memcmp(msg, back, sizeof msg))
			die("echo changed the bytes");
		if (i >= warmn)
			v[n++] = (now() - t0) * 1e6;
		if (secs > 0 && now() - start > secs)
			break;
	}
	printf("RESULT %s rtt n=%zu p50_us=%.1f p99_us=%.1f cipher=%s\n", label, n, quant(v, n, 0.5),
	    quant(v, n, 0.99), c.s ? mailtls_cipher(c.s) : "none");
	bc_close(&c);
}

static void mode_bulk(int up)
{
	static char buf[256 * 1024];
	char cmd[64], line[128];
	unsigned long long left = size, got = 0;
	double t0, t1, c0, c1;
	struct bc c;
	bc_open(&c);
	snprintf(cmd, sizeof cmd, "%c %llu\n", up ? 'U' : 'D', size);
	bc_write(&c, cmd, strlen(cmd));
	t0 = now();
	c0 = cpu_now();
	if (up) {
		memset(buf, 'u', sizeof buf);
		while (left > 0) {
			/* 64 KiB a call: four full TLS records. */
			size_t k = left > 65536 ? 65536 : (size_t)left;
			bc_write(&c, buf, k);
			left -= k;
		}
		bc_line(&c, line, sizeof line);
		if (strncmp(line, "ok ", 3) || strtoull(line + 3, NULL, 10) != size)
			die("upload: wrong count from the program");
	} else {
		while (got < size) {
			ssize_t r = bc_read(&c, buf, sizeof buf);
			if (r <= 0)
				die("download ended early");
			got += (unsigned long long)r;
		}
		if (got != size)
			die("download: too many bytes");
	}
	t1 = now();
	c1 = cpu_now();
	printf("RESULT %s %s bytes=%llu secs=%.3f mbps=%.1f client_cpu=%.2f cipher=%s\n", label,
	    up ? "up" : "down", size, t1 - t0, size / 1e6 / (t1 - t0), c1 - c0,
	    c.s ? mailtls_cipher(c.s) : "none");
	bc_close(&c);
}

/* ---- the poll loop (rate, hold) ---- */

enum { S_IDLE, S_CONNECT, S_HS, S_GREET, S_HELD };

struct nc {
	int fd, state;
	short events;
	struct mailtls *s;
	char line[256];
	size_t have;
	double t0;
	short reg;        /* the events registered with epoll, 0: none */
	char pending;     /* to be stepped in this round */
};

static unsigned long errors;

static void nc_drop(struct nc *c, int clean)
{
	if (c->s) {
		if (clean && mailtls_close(c->s) < 0) {
			/* a want code or a gone server: we close anyway */
		}
		mailtls_free(c->s);
		c->s = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);   /* also takes it out of the epoll set */
	c->fd = -1;
	c->state = S_IDLE;
	c->events = 0;
	c->reg = 0;
}

static void nc_start(struct nc *c)
{
	c->t0 = now();
	c->have = 0;
	c->fd = new_socket(1);
	if (c->fd < 0) {
		errors++;
		c->state = S_IDLE;
		return;
	}
	c->state = S_CONNECT;
	c->events = POLLOUT;
}

/* Advances |c| as far as it goes without waiting.  Returns 1 when the
 * greeting has arrived, 0 when waiting (c->events says for what), -1 on
 * failure (the slot is idle again). */
static int nc_step(struct nc *c)
{
	for (;;) {
		switch (c->state) {
		case S_CONNECT: {
			int e = 0;
			socklen_t el = sizeof e;
			struct pollfd p = { .fd = c->fd, .events = POLLOUT };
			if (poll(&p, 1, 0) == 0) {
				c->events = POLLOUT;
				return 0;
			}
			if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e) {
				errno = e;
				goto fail;
			}
			if (plain) {
				c->state = S_GREET;
			} else {
				c->s = mailtls_client(cfg, c->fd, c->fd, "localhost");
				if (!c->s)
					goto fail;
				c->state = S_HS;
			}
			break;
		}
		case S_HS: {
			int r = mailtls_handshake(c->s);
			if (r == MAILTLS_WANT_READ || r == MAILTLS_WANT_WRITE) {
				c->events = r == MAILTLS_WANT_READ ? POLLIN : POLLOUT;
				return 0;
			}
			if (r < 0)
				goto fail;
			c->state = S_GREET;
			break;
		}
		case S_GREET: {
			ssize_t r;
			if (c->have + 1 >= sizeof c->line)
				goto fail;
			if (c->s) {
				r = mailtls_read(c->s, c->line + c->have, sizeof c->line - 1 - c->have);
				if (r == MAILTLS_WANT_READ || r == MAILTLS_WANT_WRITE) {
					c->events = r == MAILTLS_WANT_READ ? POLLIN : POLLOUT;
					return 0;
				}
			} else {
				r = read(c->fd, c->line + c->have, sizeof c->line - 1 - c->have);
				if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
					c->events = POLLIN;
					return 0;
				}
			}
			if (r <= 0)
				goto fail;
			c->have += (size_t)r;
			if (memchr(c->line, '\n', c->have))
				return 1;
			break;
		}
		default:
			return 0;
		}
	}
fail:
	if (errors < 5) {
		if (c->s)
			fprintf(stderr, "bload %s: connection failed in state %d: %s\n", label, c->state,
			    mailtls_error(c->s));
		else
			fprintf(stderr, "bload %s: connection failed in state %d: %s\n", label, c->state,
			    strerror(errno));
	}
	errors++;
	nc_drop(c, 0);
	return -1;
}

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static int ep;

/* Registers |c| with the epoll set for c->events (level-triggered). */
static void nc_watch(struct nc *c, int i)
{
	struct epoll_event ev = { .events = (uint32_t)c->events, .data.u32 = (uint32_t)i };
	if (c->reg == c->events)
		return;
	if (epoll_ctl(ep, c->reg ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) < 0)
		die("epoll_ctl");
	c->reg = c->events;
}

static void mode_poll(int hold)
{
	int nslots = hold ? nmax : conc;
	struct nc *c = calloc((size_t)nslots, sizeof *c);
	struct epoll_event *evs = calloc((size_t)nslots, sizeof *evs);
	double start = now(), t_meas = start + warm, t_end = t_meas + secs;
	double *lat = NULL;
	size_t nlat = 0, latcap = 0;
	unsigned long counted = 0, held = 0, started = 0, all = 0;
	int measuring = 0, inflight = 0;
	if (!c || !evs)
		die("out of memory");
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1");
	for (int i = 0; i < nslots; i++) {
		c[i].fd = -1;
		c[i].state = S_IDLE;
	}
	if (hold) {
		signal(SIGTERM, on_term);
		t_end = start + secs;
	}
	while (!stop) {
		int n, ms;
		double t = now();
		if (!hold && !measuring && t >= t_meas) {
			measuring = 1;
			t_meas = t;
			t_end = t + secs;
		}
		if (t >= t_end || (nmax && !hold && counted >= (unsigned long)nmax))
			break;
		if (hold && held == (unsigned long)nmax)
			break;
		if (errors > 100)
			die("more than 100 failed connections");
		/* Start idle slots (hold: at most |conc| opening at once). */
		for (int i = 0; i < nslots; i++) {
			if (c[i].state != S_IDLE)
				continue;
			if (hold && (inflight >= conc || started >= (unsigned long)nmax + 100))
				break;
			nc_start(&c[i]);
			started++;
			if (c[i].state == S_IDLE)
				continue;
			inflight++;
			c[i].reg = 0;
			c[i].pending = 1;   /* stepped below, as if epoll had said so */
		}
		ms = (int)((t_end - now()) * 1000) + 1;
		if (ms < 1)
			ms = 1;
		if (ms > 200)
			ms = 200;
		n = 0;
		for (int i = 0; i < nslots; i++)
			if (c[i].pending)
				ms = 0;
		n = epoll_wait(ep, evs, nslots, ms);
		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (int k = 0; k < n; k++)
			c[evs[k].data.u32].pending = 1;
		for (int i = 0; i < nslots; i++) {
			int r;
			if (!c[i].pending)
				continue;
			c[i].pending = 0;
			if (c[i].state == S_IDLE || c[i].state == S_HELD)
				continue;
			r = nc_step(&c[i]);
			if (r < 0) {
				inflight--;
				continue;
			}
			if (r == 0) {
				nc_watch(&c[i], i);
				continue;
			}
			inflight--;
			if (hold) {
				ssize_t w = c[i].s ? mailtls_write(c[i].s, "H\n", 2) : send(c[i].fd, "H\n", 2, MSG_NOSIGNAL);
				if (w != 2) {
					errors++;
					nc_drop(&c[i], 0);
					continue;
				}
				if (c[i].reg)
					epoll_ctl(ep, EPOLL_CTL_DEL, c[i].fd, NULL);
				c[i].reg = 0;
				c[i].state = S_HELD;
				held++;
				continue;
			}
			all++;
			if (measuring && now() < t_end) {
				counted++;
				if (nlat == latcap) {
					latcap = latcap ? 2 * latcap : 4096;
					lat = realloc(lat, latcap * sizeof *lat);
					if (!lat)
						die("out of memory");
				}
				lat[nlat++] = (now() - c[i].t0) * 1e6;
			}
			nc_drop(&c[i], 1);
		}
	}
	if (hold) {
		printf("HELD %lu errors=%lu\n", held, errors);
		fflush(stdout);
		if (held == (unsigned long)nmax) {
			/* Keep them until SIGTERM, or the time is up. */
			while (!stop && now() < start + secs)
				usleep(20000);
		}
		exit(held == (unsigned long)nmax ? 0 : 1);
	}
	{
		double el = now() - t_meas;
		if (el > secs)
			el = secs;
		printf("RESULT %s rate conns=%lu secs=%.2f rate=%.1f p50_us=%.0f p99_us=%.0f errors=%lu all=%lu\n",
		    label, counted, el, counted / el, quant(lat, nlat, 0.5), quant(lat, nlat, 0.99), errors, all);
	}
	for (int i = 0; i < nslots; i++)
		if (c[i].state != S_IDLE)
			nc_drop(&c[i], 0);
}

/* serve: the floor.  One process, no fork, no program, no relay: accept,
 * libmailtls server handshake, write the greeting, read until the client
 * closes, next.  One connection at a time (for the one-client latency). */
static void mode_serve(const char *pem)
{
	struct mailtls_config *scfg = mailtls_config_new();
	struct sockaddr_in sa;
	int one = 1, lfd;
	double end = now() + secs;
	if (!scfg || mailtls_config_set_keypair_file(scfg, pem, NULL) < 0 ||
	    mailtls_config_set_min_protocol(scfg, MAILTLS_TLS1_3) < 0)
		die("server configuration");
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 256) < 0)
		die("bind/listen");
	signal(SIGTERM, on_term);
	while (!stop && now() < end) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		struct mailtls *s;
		char buf[4096];
		int fd;
		if (poll(&p, 1, 200) <= 0)
			continue;
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		s = plain ? NULL : mailtls_server(scfg, fd, fd);
		if (s && mailtls_handshake_timeout(s, 5) < 0) {
			mailtls_free(s);
			close(fd);
			continue;
		}
		if (s ? mailtls_timeoutwrite(5, s, "220 bload ready\r\n", 17) == 17
		      : write(fd, "220 bload ready\r\n", 17) == 17) {
			while ((s ? mailtls_timeoutread(5, s, buf, sizeof buf) : read(fd, buf, sizeof buf)) > 0)
				;
		}
		mailtls_free(s);
		close(fd);
	}
}

static int try_connect(void)
{
	int fd = new_socket(0);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode;
	int o;
	unsigned limit;
	if (argc < 2) {
		fprintf(stderr, "usage: bload rate|lat|up|down|rtt|hold|wait|free|serve -p PORT [-P] [-l LABEL] "
		    "[-c CONC] [-t SECS] [-w WARM] [-n N] [-s BYTES] [PEM]\n");
		return 2;
	}
	mode = argv[1];
	optind = 2;
	while ((o = getopt(argc, argv, "p:Pl:c:t:w:n:s:")) != -1) {
		switch (o) {
		case 'p': port = atoi(optarg); break;
		case 'P': plain = 1; break;
		case 'l': label = optarg; break;
		case 'c': conc = atoi(optarg); break;
		case 't': secs = atof(optarg); break;
		case 'w': warm = atof(optarg); break;
		case 'n': nmax = atoi(optarg); break;
		case 's': {
			char *end;
			size = strtoull(optarg, &end, 10);
			if (*end == 'K' || *end == 'k') size <<= 10;
			else if (*end == 'M' || *end == 'm') size <<= 20;
			else if (*end == 'G' || *end == 'g') size <<= 30;
			break;
		}
		default: return 2;
		}
	}
	if (port <= 0 || port > 65535 || conc <= 0 || nmax < 0)
		die("bad arguments");
	signal(SIGPIPE, SIG_IGN);
	cfg = mailtls_config_new();
	if (!cfg || mailtls_config_set_min_protocol(cfg, MAILTLS_TLS1_3) < 0 ||
	    mailtls_config_set_verify(cfg, MAILTLS_VERIFY_NONE) < 0)
		die("client configuration");
	/* The bound on everything: alarm(2) kills a hung run. */
	if (!strcmp(mode, "rate")) {
		if (secs <= 0) secs = 5;
		limit = (unsigned)(2 * (secs + warm)) + 10;
	} else if (!strcmp(mode, "up") || !strcmp(mode, "down")) {
		limit = (unsigned)(size / 20000000) + 30; /* fails below 20 MB/s */
	} else if (!strcmp(mode, "hold") || !strcmp(mode, "serve")) {
		if (secs <= 0) secs = 120;
		limit = (unsigned)secs + 30;
	} else {
		if (secs <= 0) secs = 30;
		limit = (unsigned)(2 * secs) + 10;
	}
	alarm(limit);
	if (!strcmp(mode, "rate")) {
		mode_poll(0);
	} else if (!strcmp(mode, "hold")) {
		if (nmax <= 0)
			die("hold needs -n");
		mode_poll(1);
	} else if (!strcmp(mode, "lat")) {
		if (nmax <= 0) nmax = 200;
		mode_lat();
	} else if (!strcmp(mode, "rtt")) {
		if (nmax <= 0) nmax = 10000;
		mode_rtt();
	} else if (!strcmp(mode, "up")) {
		mode_bulk(1);
	} else if (!strcmp(mode, "down")) {
		mode_bulk(0);
	} else if (!strcmp(mode, "wait")) {
		double end = now() + secs;
		while (try_connect() < 0) {
			if (now() > end)
				return 1;
			usleep(20000);
		}
		return 0;
	} else if (!strcmp(mode, "serve")) {
		if (optind >= argc)
			die("serve needs the PEM file (key and certificate) after the options");
		mode_serve(argv[optind]);
	} else if (!strcmp(mode, "free")) {
		return try_connect() < 0 ? 0 : 1;
	} else {
		die("unknown mode");
	}
	mailtls_config_free(cfg);
	return 0;
}
