/* test_eintr.c -- EINTR storms: a thread blocked in libmailtls calls gets
 * a signal every 200 microseconds from a handler installed without
 * SA_RESTART, so every poll(2), read(2) and write(2) the library makes in
 * it can fail with EINTR.  The library must retry (mailtls.h: "EINTR
 * restarts the wait with the time that is left") and keep its deadlines:
 * a handshake and transfers over a socketpair complete with every byte
 * intact, blocking and deadline calls alike; a deadline call with a silent
 * peer ends in MAILTLS_E_TIMEOUT, not sooner than its deadline and not
 * with an EINTR error; the relay moves 4 MiB each way.  Each check also
 * counts the signals that hit the thread: a storm that missed it would
 * prove nothing. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static atomic_long hits;

static void on_signal(int sig)
{
	(void)sig;
	atomic_fetch_add(&hits, 1);
}

static void install_handler(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sa.sa_flags = 0;                 /* no SA_RESTART: interrupted calls fail with EINTR */
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
}

/* The storm: SIGUSR1 to |target| every 200 us until stopped. */
struct storm {
	pthread_t th, target;
	atomic_int stop;
	long sent;
};

static void *storm_main(void *arg)
{
	struct storm *st = arg;
	struct timespec ts = { 0, 200000 };
	while (!atomic_load(&st->stop)) {
		if (pthread_kill(st->target, SIGUSR1) != 0)
			break;
		st->sent++;
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void storm_start(struct storm *st, pthread_t target)
{
	memset(st, 0, sizeof *st);
	st->target = target;
	CHECK(pthread_create(&st->th, NULL, storm_main, st) == 0);
}

static void storm_stop(struct storm *st)
{
	atomic_store(&st->stop, 1);
	CHECK(pthread_join(st->th, NULL) == 0);
}

/* A peer thread doing one job on its session while the main thread, under
 * the storm, does the other side. */
struct peer {
	pthread_t th;
	struct mailtls *s;
	int hs;                         /* handshake result */
	size_t total;                   /* bytes to echo back, then close_notify */
	unsigned delay_ms;              /* before each write */
};

static void msleep(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	static unsigned char buf[16384];
	size_t done = 0;
	p->hs = mailtls_handshake_timeout(p->s, 30);
	if (p->hs < 0)
		return NULL;
	while (done < p->total) {
		ssize_t n = mailtls_timeoutread(30, p->s, buf, sizeof buf);
		if (n <= 0)
			break;
		if (p->delay_ms)
			msleep(p->delay_ms);
		if (mailtls_timeoutwrite(30, p->s, buf, (size_t)n) != n)
			break;
		done += (size_t)n;
	}
	if (mailtls_close_timeout(p->s, 30) < 0)
		p->hs = -2;
	return NULL;
}

static struct mailtls_config *scfg, *ccfg;

/* A handshake, then |total| bytes echoed by the peer (the server), with
 * the client's calls under the storm: blocking calls when |blocking|, else
 * the deadline forms. */
static void echo_under_storm(int blocking, size_t total, unsigned delay_ms)
{
	int sv[2];
	struct peer p = { .total = total, .delay_ms = delay_ms };
	struct storm st;
	struct mailtls *c;
	static unsigned char out[1 << 20], in[1 << 20];
	size_t sent = 0, got = 0;
	long before = atomic_load(&hits);

	CHECK(total <= sizeof out);
	tu_socketpair(sv);
	p.s = mailtls_server(scfg, sv[0], sv[0]);
	c = mailtls_client(ccfg, sv[1], sv[1], "localhost");
	CHECK(p.s && c);
	tu_fill_random(out, total, 7);
	CHECK(pthread_create(&p.th, NULL, peer_main, &p) == 0);
	storm_start(&st, pthread_self());
	if (blocking)
		CHECK_OK(c, mailtls_handshake(c));
	else
		CHECK_OK(c, mailtls_handshake_timeout(c, 30));
	/* Write and read in turns, so neither side blocks the other for good. */
	while (got < total) {
		if (sent < total) {
			size_t k = total - sent < 4096 ? total - sent : 4096;
			ssize_t w = blocking ? mailtls_write(c, out + sent, k) : mailtls_timeoutwrite(30, c, out + sent, k);
			CHECK_OK(c, w);
			CHECK_EQ(w, k);
			sent += k;
		}
		while (got < sent) {
			ssize_t r = blocking ? mailtls_read(c, in + got, total - got)
			                     : mailtls_timeoutread(30, c, in + got, total - got);
			CHECK_OK(c, r);
			CHECK(r > 0);
			got += (size_t)r;
		}
	}
	{
		unsigned char b;
		ssize_t r = blocking ? mailtls_read(c, &b, 1) : mailtls_timeoutread(30, c, &b, 1);
		CHECK_OK(c, r);
		CHECK_EQ(r, 0);                  /* the peer's close_notify */
	}
	CHECK_OK(c, blocking ? mailtls_close(c) : mailtls_close_timeout(c, 30));
	storm_stop(&st);
	CHECK(pthread_join(p.th, NULL) == 0);
	CHECK_EQ(p.hs, 0);
	CHECK(memcmp(in, out, total) == 0);
	fprintf(stderr, "   %s, %zu bytes, %ums delays: %ld signals sent, %ld handled\n",
	    blocking ? "blocking" : "deadline", total, delay_ms, st.sent, atomic_load(&hits) - before);
	CHECK(atomic_load(&hits) - before >= 20);
	mailtls_free(c);
	mailtls_free(p.s);
	close(sv[0]);
	close(sv[1]);
}

static void test_blocking_calls(void)
{
	echo_under_storm(1, 1 << 20, 2);
	echo_under_storm(1, 64 * 1024, 5);   /* the client waits in read(2) for each echo */
}

static void test_deadline_calls(void)
{
	echo_under_storm(0, 1 << 20, 2);
	echo_under_storm(0, 64 * 1024, 5);
}

/* A silent peer: the deadline calls end in MAILTLS_E_TIMEOUT, never early,
 * the storm notwithstanding. */
static void test_deadlines_kept(void)
{
	int sv[2];
	struct storm st;
	struct mailtls *s;
	double t0;
	long before = atomic_load(&hits);
	unsigned char b;

	tu_socketpair(sv);
	s = mailtls_server(scfg, sv[0], sv[0]);
	CHECK(s);
	storm_start(&st, pthread_self());
	t0 = tu_now();
	CHECK_EQ(mailtls_handshake_timeout(s, 2), -1);
	CHECK_STR(mailtls_errcode_name(mailtls_errcode(s)), "timeout");
	CHECK(tu_now() - t0 >= 1.95);
	storm_stop(&st);
	CHECK(atomic_load(&hits) - before >= 100);
	mailtls_free(s);
	close(sv[0]);
	close(sv[1]);

	/* After a handshake: a read with nothing coming. */
	{
		struct tu_conn k;
		tu_conn_run(&k, scfg, ccfg, "localhost");
		EXPECT_HS_OK(&k);
		before = atomic_load(&hits);
		storm_start(&st, pthread_self());
		t0 = tu_now();
		CHECK_EQ(mailtls_timeoutread(2, k.c, &b, 1), -1);
		CHECK_STR(mailtls_errcode_name(mailtls_errcode(k.c)), "timeout");
		CHECK(tu_now() - t0 >= 1.95);
		storm_stop(&st);
		CHECK(atomic_load(&hits) - before >= 100);
		tu_conn_close(&k);
	}
}

/* The relay under the storm: 4 MiB each way between a TLS peer (a thread
 * echoing) and a plaintext socketpair the main thread feeds and drains. */
struct feeder {
	pthread_t th;
	int fd;
	size_t total;
	int ok;
};

static void *feeder_main(void *arg)
{
	struct feeder *f = arg;
	static unsigned char buf[65536];
	size_t sent = 0;
	while (sent < f->total) {
		size_t k = f->total - sent < sizeof buf ? f->total - sent : sizeof buf;
		ssize_t n;
		tu_fill_random(buf, k, (unsigned)(sent / sizeof buf));
		n = write(f->fd, buf, k);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		/* A short write: the rest of this block is sent again from its start next time. */
		sent += (size_t)n == k ? k : 0;
		if ((size_t)n != k)
			return NULL;
	}
	shutdown(f->fd, SHUT_WR);
	f->ok = 1;
	return NULL;
}

struct relayer {
	pthread_t th;
	struct mailtls *s;
	int plain;
	int r;
	struct mailtls_relay_result res;
};

static void *relayer_main(void *arg)
{
	struct relayer *rl = arg;
	rl->r = mailtls_relay(rl->s, rl->plain, rl->plain, 0, 0, &rl->res);
	return NULL;
}

static void test_relay(void)
{
	const size_t total = 4u << 20;
	int tls[2], plain[2];
	struct peer p = { .total = total };
	struct relayer rl;
	struct feeder f = { .total = total };
	struct storm st;
	static unsigned char got[65536], want[65536];
	size_t n = 0;
	long before = atomic_load(&hits);

	tu_socketpair(tls);
	tu_socketpair(plain);
	memset(&rl, 0, sizeof rl);
	p.s = mailtls_server(scfg, tls[0], tls[0]);
	rl.s = mailtls_client(ccfg, tls[1], tls[1], "localhost");
	rl.plain = plain[0];
	CHECK(p.s && rl.s);
	CHECK(pthread_create(&p.th, NULL, peer_main, &p) == 0);
	CHECK(pthread_create(&rl.th, NULL, relayer_main, &rl) == 0);
	storm_start(&st, rl.th);
	f.fd = plain[1];
	CHECK(pthread_create(&f.th, NULL, feeder_main, &f) == 0);
	/* What comes back through the relay is the stream that went in. */
	while (n < total) {
		ssize_t k = read(plain[1], got, sizeof got < total - n ? sizeof got : total - n);
		if (k < 0 && errno == EINTR)
			continue;
		CHECK(k > 0);
		/* Blocks of the stream are 64 KiB, each from its own seed. */
		{
			size_t off = 0;
			while (off < (size_t)k) {
				size_t pos = n + off, blk = pos / sizeof want, in = pos % sizeof want;
				size_t m = sizeof want - in < (size_t)k - off ? sizeof want - in : (size_t)k - off;
				tu_fill_random(want, sizeof want, (unsigned)blk);
				if (memcmp(got + off, want + in, m) != 0)
					T_FAIL("relay: bytes differ at %zu", pos);
				off += m;
			}
		}
		n += (size_t)k;
	}
	CHECK(pthread_join(f.th, NULL) == 0);
	CHECK(f.ok);
	CHECK(pthread_join(rl.th, NULL) == 0);
	storm_stop(&st);
	CHECK(pthread_join(p.th, NULL) == 0);
	if (rl.r < 0)
		T_FAIL("relay: %s (%s)", mailtls_error(rl.s), mailtls_errcode_name(mailtls_errcode(rl.s)));
	CHECK_EQ(p.hs, 0);
	CHECK_EQ(rl.res.plain_to_tls, total);
	CHECK_EQ(rl.res.tls_to_plain, total);
	CHECK(rl.res.tls_clean);
	fprintf(stderr, "   relay: %ld signals sent, %ld handled\n", st.sent, atomic_load(&hits) - before);
	CHECK(atomic_load(&hits) - before >= 20);
	mailtls_free(rl.s);
	mailtls_free(p.s);
	close(tls[0]);
	close(tls[1]);
	close(plain[0]);
	close(plain[1]);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	install_handler();
	scfg = tu_server_config("server-ec.pem", "server-ec.key");
	ccfg = tu_client_config();
	RUN(test_blocking_calls);
	RUN(test_deadline_calls);
	RUN(test_deadlines_kept);
	RUN(test_relay);
	mailtls_config_free(scfg);
	mailtls_config_free(ccfg);
	return 0;
}
