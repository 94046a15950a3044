/* test_relay.c -- mailtls_relay between a TLS peer of ours and a
 * plaintext program, both played by threads of this process:
 *
 *   TLS peer (client session, its own poll loop on an O_NONBLOCK socket)
 *     <-- TLS over a socketpair (or pipes) -->
 *   relay thread (server session, mailtls_relay)
 *     <-- plaintext over a socketpair (rfd == wfd) or a pair of pipes -->
 *   plaintext program (a poll loop on raw descriptors)
 *
 * Each end sends a deterministic byte stream and hashes (SHA-256) what it
 * sends and what it receives; the digests must match across the relay.
 * Checked: 100 MiB each way at once, half-close in each direction with
 * the other direction still flowing, close_notify vs truncation, idle
 * timeout, a reader that stalls (the relay must sleep, not spin), readers
 * and peers that vanish (EPIPE, no SIGPIPE on sockets), blocking and
 * non-blocking TLS descriptors, TLS 1.2, and unchanged descriptor flags. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define MiB (1024ULL * 1024)

/* ------------------------------------------------------------------ */
/* Byte streams                                                         */
/* ------------------------------------------------------------------ */

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* stream_fill writes bytes [pos, pos+len) of stream |seed|. */
static void stream_fill(unsigned seed, unsigned long long pos, unsigned char *buf, size_t len)
{
	uint64_t base = (uint64_t)seed << 48;
	while (len > 0) {
		uint64_t w = mix(base ^ (pos >> 3));
		unsigned k = (unsigned)(pos & 7);
		for (; k < 8 && len > 0; k++, len--, pos++)
			*buf++ = (unsigned char)(w >> (8 * k));
	}
}

static void stream_digest(unsigned seed, unsigned long long total, unsigned char out[32])
{
	static unsigned char buf[65536];
	struct tu_sha256 h;
	unsigned long long pos = 0;
	tu_sha256_init(&h);
	while (pos < total) {
		size_t n = total - pos > sizeof buf ? sizeof buf : (size_t)(total - pos);
		stream_fill(seed, pos, buf, n);
		tu_sha256_update(&h, buf, n);
		pos += n;
	}
	tu_sha256_final(&h, out);
}

static int fd_is_socket(int fd)
{
	int type;
	socklen_t len = sizeof type;
	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
}

/* ------------------------------------------------------------------ */
/* An endpoint: the TLS peer (s != NULL) or the plaintext program        */
/* ------------------------------------------------------------------ */

enum { END_CLEAN, END_TRUNCATE, END_NONE, END_VANISH };

struct ep {
	/* set up by the test */
	const char *name;
	struct mailtls *s;          /* the TLS peer's session; NULL: plaintext */
	int rfd, wfd;               /* owned by the endpoint, closed at its end */
	unsigned long long send_total;
	unsigned seed;
	int send_after_eof;         /* send only after reading the peer's EOF */
	int end;                    /* after sending: END_CLEAN (close_notify and FIN, or
	                               close the pipe), END_TRUNCATE (FIN, no close_notify),
	                               END_NONE (nothing: stay open, idle), END_VANISH
	                               (TLS: read what is waiting, then close every
	                               descriptor without close_notify and stop) */
	unsigned long long vanish_after; /* > 0: after reading this many bytes close every
	                                    descriptor and stop */
	int vanish_reader;          /* with vanish_after: close only the read side */
	int vanish_clean;           /* with vanish_after: send close_notify first */
	atomic_int hold;            /* while set, do not read */
	atomic_int quit;            /* set by the test: stop now */
	/* results */
	unsigned long long sent, received;
	struct tu_sha256 hsent, hrecv;
	unsigned char dsent[32], drecv[32];
	int eof, clean;             /* EOF read; TLS: with close_notify */
	int rerr, werr;             /* TLS: errcode; plaintext: errno */
	int hs_err;
	pthread_t th;
};

static void ep_close(struct ep *e, int *fd)
{
	if (*fd < 0)
		return;
	if (e->rfd == e->wfd) {
		close(*fd);
		e->rfd = e->wfd = -1;
	} else {
		close(*fd);
		*fd = -1;
	}
}

/* End the sending side as e->end says.  Returns 1 when done, 2 when the
 * endpoint is gone (END_VANISH), 0 to wait (TLS close_notify wants),
 * setting *wev. */
static int ep_end_send(struct ep *e, short *wev, int *wfdw)
{
	if (e->end == END_NONE)
		return 1;
	if (e->end == END_VANISH) {
		/* Read what is already here (tickets), so that closing does not
		 * turn into a reset, then go. */
		static __thread unsigned char junk[65536];
		ssize_t n;
		while ((n = mailtls_read(e->s, junk, sizeof junk)) > 0) {
			tu_sha256_update(&e->hrecv, junk, (size_t)n);
			e->received += (unsigned long long)n;
		}
		ep_close(e, &e->rfd);
		ep_close(e, &e->wfd);
		return 2;
	}
	if (e->s && e->end == END_CLEAN) {
		int r = mailtls_close(e->s);
		if (r == MAILTLS_WANT_READ || r == MAILTLS_WANT_WRITE) {
			*wev = r == MAILTLS_WANT_READ ? POLLIN : POLLOUT;
			*wfdw = r == MAILTLS_WANT_READ ? e->rfd : e->wfd;
			return 0;
		}
		if (r < 0)
			e->werr = mailtls_errcode(e->s);
	}
	if (e->wfd >= 0) {
		if (fd_is_socket(e->wfd))
			shutdown(e->wfd, SHUT_WR);
		else
			ep_close(e, &e->wfd);
	}
	return 1;
}

static void *ep_main(void *arg)
{
	struct ep *e = arg;
	static __thread unsigned char chunk[16384], rbuf[65536];
	size_t clen = 0, coff = 0;       /* chunk being sent: chunk[coff..clen) */
	int sending = 1, reading = 1;
	int sock = fd_is_socket(e->wfd);
	short rev = POLLIN, wev = POLLOUT;
	int rfdw = e->rfd, wfdw = e->wfd; /* which descriptor each side waits on */
	int rblocked = 0, wblocked = 0;

	tu_sha256_init(&e->hsent);
	tu_sha256_init(&e->hrecv);
	tu_set_nonblock(e->rfd, 1);
	if (e->wfd != e->rfd)
		tu_set_nonblock(e->wfd, 1);

	if (e->s) {
		for (;;) {
			int r = mailtls_handshake(e->s);
			struct pollfd p;
			if (r == 0)
				break;
			if (r != MAILTLS_WANT_READ && r != MAILTLS_WANT_WRITE) {
				e->hs_err = mailtls_errcode(e->s);
				sending = reading = 0;
				break;
			}
			p.fd = r == MAILTLS_WANT_READ ? e->rfd : e->wfd;
			p.events = r == MAILTLS_WANT_READ ? POLLIN : POLLOUT;
			poll(&p, 1, 1000);
		}
	}

	while ((sending || reading) && !atomic_load(&e->quit)) {
		int progress = 0;
		/* read */
		if (reading && !rblocked && !atomic_load(&e->hold)) {
			ssize_t n;
			if (e->s) {
				n = mailtls_read(e->s, rbuf, sizeof rbuf);
			} else {
				n = read(e->rfd, rbuf, sizeof rbuf);
			}
			if (n > 0) {
				tu_sha256_update(&e->hrecv, rbuf, (size_t)n);
				e->received += (unsigned long long)n;
				progress = 1;
				if (e->vanish_after && e->received >= e->vanish_after) {
					reading = 0;
					if (e->vanish_reader) {
						ep_close(e, &e->rfd);
					} else {
						sending = 0;
						if (e->s && e->vanish_clean) {
							int r;
							while ((r = mailtls_close(e->s)) == MAILTLS_WANT_WRITE) {
								struct pollfd p = { .fd = e->wfd, .events = POLLOUT };
								poll(&p, 1, 100);
							}
							CHECK_EQ(r, 0);
						}
						ep_close(e, &e->rfd);
						ep_close(e, &e->wfd);
					}
				}
			} else if (n == 0) {
				e->eof = 1;
				if (e->s)
					e->clean = 1;
				reading = 0;
				progress = 1;
			} else if (e->s && (n == MAILTLS_WANT_READ || n == MAILTLS_WANT_WRITE)) {
				rblocked = 1;
				rev = n == MAILTLS_WANT_READ ? POLLIN : POLLOUT;
				rfdw = n == MAILTLS_WANT_READ ? e->rfd : e->wfd;
			} else if (!e->s && (errno == EAGAIN || errno == EINTR)) {
				rblocked = 1;
				rev = POLLIN;
				rfdw = e->rfd;
			} else {
				e->eof = 1;
				e->rerr = e->s ? mailtls_errcode(e->s) : errno;
				reading = 0;
				progress = 1;
			}
		}
		/* write */
		if (sending && !wblocked && (!e->send_after_eof || e->eof)) {
			if (coff == clen && e->sent + clen < e->send_total) {
				/* next chunk; a chunk's bytes stay put until all are sent */
				unsigned long long pos = e->sent + clen;
				size_t n = e->send_total - pos > sizeof chunk ? sizeof chunk : (size_t)(e->send_total - pos);
				stream_fill(e->seed, pos, chunk, n);
				tu_sha256_update(&e->hsent, chunk, n);
				coff = 0;
				clen = n;
			}
			if (coff < clen) {
				ssize_t n;
				if (e->s)
					n = mailtls_write(e->s, chunk + coff, clen - coff);
				else if (sock)
					n = send(e->wfd, chunk + coff, clen - coff, MSG_NOSIGNAL);
				else
					n = write(e->wfd, chunk + coff, clen - coff);
				if (n > 0) {
					coff += (size_t)n;
					e->sent += (unsigned long long)n;
					if (coff == clen)
						coff = clen = 0;
					progress = 1;
				} else if (e->s && (n == MAILTLS_WANT_READ || n == MAILTLS_WANT_WRITE)) {
					wblocked = 1;
					wev = n == MAILTLS_WANT_READ ? POLLIN : POLLOUT;
					wfdw = n == MAILTLS_WANT_READ ? e->rfd : e->wfd;
				} else if (!e->s && (errno == EAGAIN || errno == EINTR)) {
					wblocked = 1;
					wev = POLLOUT;
					wfdw = e->wfd;
				} else {
					e->werr = e->s ? mailtls_errcode(e->s) : errno;
					sending = 0;
					progress = 1;
				}
			} else if (e->sent >= e->send_total) {
				int r = ep_end_send(e, &wev, &wfdw);
				if (r == 0)
					wblocked = 1;
				else
					sending = 0;
				if (r == 2)
					reading = 0;
				progress = 1;
			}
		}
		if (!progress) {
			struct pollfd p[2];
			int n = 0;
			if (reading && rblocked && rfdw >= 0) {
				p[n].fd = rfdw;
				p[n].events = rev;
				n++;
			}
			if (sending && wblocked && wfdw >= 0) {
				if (n && p[0].fd == wfdw)
					p[0].events |= wev;
				else {
					p[n].fd = wfdw;
					p[n].events = wev;
					n++;
				}
			}
			/* A short timeout notices hold/quit changes; retries are harmless. */
			poll(p, (nfds_t)n, 100);
			rblocked = wblocked = 0;
		}
	}
	tu_sha256_final(&e->hsent, e->dsent);
	tu_sha256_final(&e->hrecv, e->drecv);
	if (e->rfd >= 0)
		ep_close(e, &e->rfd);
	if (e->wfd >= 0)
		ep_close(e, &e->wfd);
	return NULL;
}

static void ep_start(struct ep *e)
{
	CHECK(pthread_create(&e->th, NULL, ep_main, e) == 0);
}

static void ep_join(struct ep *e)
{
	pthread_join(e->th, NULL);
}

/* ------------------------------------------------------------------ */
/* The relay thread                                                     */
/* ------------------------------------------------------------------ */

struct rl {
	struct mailtls *s;
	int pr, pw, flags, idle;
	int tfd;                    /* the TLS socket (for the flags check) */
	int fl_before[3], fl_after[3];
	int ret, errcode;
	char error[512];
	struct mailtls_relay_result res;
	double secs;                /* how long the relay ran */
	double cpu;                 /* the relay thread's CPU time */
	char proto[32];             /* the protocol negotiated */
	atomic_int done;
	pthread_t th;
};

static void *rl_main(void *arg)
{
	struct rl *r = arg;
	int fds[3] = { r->tfd, r->pr, r->pw };
	double t0 = tu_now();
	for (int i = 0; i < 3; i++)
		r->fl_before[i] = fcntl(fds[i], F_GETFL);
	r->ret = mailtls_relay(r->s, r->pr, r->pw, r->flags, r->idle, &r->res);
	r->errcode = mailtls_errcode(r->s);
	snprintf(r->error, sizeof r->error, "%s", mailtls_error(r->s));
	r->secs = tu_now() - t0;
	{
		struct timespec ts;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
		r->cpu = ts.tv_sec + ts.tv_nsec / 1e9;
	}
	snprintf(r->proto, sizeof r->proto, "%s", mailtls_protocol(r->s) ? mailtls_protocol(r->s) : "none");
	for (int i = 0; i < 3; i++)
		r->fl_after[i] = fcntl(fds[i], F_GETFL);
	atomic_store(&r->done, 1);
	return NULL;
}

static void rl_start(struct rl *r)
{
	CHECK(pthread_create(&r->th, NULL, rl_main, r) == 0);
}

static void rl_join(struct rl *r)
{
	pthread_join(r->th, NULL);
	fprintf(stderr, "   relay: ret %d reason %d err %s (%s) tls_eof %d clean %d plain_eof %d "
	    "t2p %llu p2t %llu in %.2fs (%.2fs CPU, %s)\n", r->ret, r->res.reason,
	    mailtls_errcode_name(r->errcode), r->error, r->res.tls_eof, r->res.tls_clean,
	    r->res.plain_eof, r->res.tls_to_plain, r->res.plain_to_tls, r->secs, r->cpu, r->proto);
}

/* The relay left the flags of every descriptor it was given alone. */
static void check_flags(struct rl *r, int n)
{
	for (int i = 0; i < n; i++) {
		CHECK(r->fl_before[i] >= 0);
		CHECK_EQ(r->fl_after[i], r->fl_before[i]);
	}
}

/* The relay thread's CPU time so far, in seconds. */
static double rl_cpu(struct rl *r)
{
	clockid_t cid;
	struct timespec ts;
	CHECK(pthread_getcpuclockid(r->th, &cid) == 0);
	CHECK(clock_gettime(cid, &ts) == 0);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* A scenario: the three parties wired up                               */
/* ------------------------------------------------------------------ */

enum { PLAIN_SOCKET, PLAIN_PIPES, PLAIN_PIPES_NONBLOCK };
enum { TLS_SOCKET, TLS_SOCKET_NONBLOCK, TLS_PIPES };

struct sc {
	struct ep peer;             /* the TLS peer */
	struct ep prog;             /* the plaintext program */
	struct rl relay;
	struct mailtls_config *scfg, *ccfg;
	int tls_kind, plain_kind;
	int relay_tls_fds[2];       /* the relay's TLS descriptors (r, w) */
};

static struct mailtls_config *g_scfg, *g_ccfg, *g_ccfg12;

static void sc_setup(struct sc *c, int tls_kind, int plain_kind, int flags, int idle,
    struct mailtls_config *ccfg)
{
	int t[2], a[2], b[2];
	memset(c, 0, sizeof *c);
	c->tls_kind = tls_kind;
	c->plain_kind = plain_kind;
	/* TLS: relay side (server) and peer side (client) */
	if (tls_kind == TLS_PIPES) {
		CHECK(pipe(a) == 0);       /* peer -> relay */
		CHECK(pipe(b) == 0);       /* relay -> peer */
		c->relay_tls_fds[0] = a[0];
		c->relay_tls_fds[1] = b[1];
		c->peer.rfd = b[0];
		c->peer.wfd = a[1];
	} else {
		tu_socketpair(t);
		c->relay_tls_fds[0] = c->relay_tls_fds[1] = t[0];
		c->peer.rfd = c->peer.wfd = t[1];
		if (tls_kind == TLS_SOCKET_NONBLOCK)
			tu_set_nonblock(t[0], 1);
	}
	c->relay.s = mailtls_server(g_scfg, c->relay_tls_fds[0], c->relay_tls_fds[1]);
	c->peer.s = mailtls_client(ccfg ? ccfg : g_ccfg, c->peer.rfd, c->peer.wfd, "localhost");
	CHECK(c->relay.s && c->peer.s);
	c->peer.name = "peer";
	c->peer.seed = 1;
	/* plaintext: relay side and program side */
	if (plain_kind != PLAIN_SOCKET) {
		CHECK(pipe(a) == 0);       /* program -> relay */
		CHECK(pipe(b) == 0);       /* relay -> program */
		c->relay.pr = a[0];
		c->relay.pw = b[1];
		c->prog.rfd = b[0];
		c->prog.wfd = a[1];
		if (plain_kind == PLAIN_PIPES_NONBLOCK) {
			tu_set_nonblock(a[0], 1);
			tu_set_nonblock(b[1], 1);
		}
	} else {
		tu_socketpair(t);
		c->relay.pr = c->relay.pw = t[0];
		c->prog.rfd = c->prog.wfd = t[1];
	}
	c->prog.name = "prog";
	c->prog.seed = 2;
	c->relay.tfd = c->relay_tls_fds[0];
	c->relay.flags = flags;
	c->relay.idle = idle;
}

static void sc_start(struct sc *c)
{
	rl_start(&c->relay);
	ep_start(&c->peer);
	ep_start(&c->prog);
}

/* sc_finish joins everything, frees the sessions and closes what the
 * relay was given (unless it owned them). */
static void sc_finish(struct sc *c)
{
	rl_join(&c->relay);
	/* (owned plaintext descriptors may be closed by now) */
	check_flags(&c->relay, c->relay.flags & MAILTLS_RELAY_OWN_FDS ? 1 : 3);
	/* The relay is done with its descriptors: closing them ends endpoints
	 * that still wait (e.g. a peer blocked on a relay that stopped reading). */
	mailtls_free(c->relay.s);
	close(c->relay_tls_fds[0]);
	if (c->relay_tls_fds[1] != c->relay_tls_fds[0])
		close(c->relay_tls_fds[1]);
	if (!(c->relay.flags & MAILTLS_RELAY_OWN_FDS)) {
		/* not owned: never closed by the relay */
		CHECK(fcntl(c->relay.pr, F_GETFD) >= 0 && fcntl(c->relay.pw, F_GETFD) >= 0);
		close(c->relay.pr);
		if (c->relay.pw != c->relay.pr)
			close(c->relay.pw);
	} else {
		/* Owned: after a clean end both are closed, except a socket
		 * plain_wfd of its own (shut down instead).  Only this thread
		 * makes descriptors, so F_GETFD tells closed from open. */
		if (c->relay.ret == 0 && c->relay.res.plain_eof) {
			CHECK(fcntl(c->relay.pr, F_GETFD) < 0 && errno == EBADF);
			if (c->plain_kind != PLAIN_SOCKET)
				CHECK(fcntl(c->relay.pw, F_GETFD) < 0 && errno == EBADF);
		}
		if (fcntl(c->relay.pr, F_GETFD) >= 0)
			close(c->relay.pr);
		if (c->relay.pw != c->relay.pr && fcntl(c->relay.pw, F_GETFD) >= 0)
			close(c->relay.pw);
	}
	ep_join(&c->peer);
	ep_join(&c->prog);
	mailtls_free(c->peer.s);
}

/* What |from| sent arrived whole at |to|. */
static void check_stream(struct ep *from, struct ep *to, unsigned long long n)
{
	CHECK_EQ(from->sent, n);
	CHECK_EQ(to->received, n);
	CHECK(!memcmp(from->dsent, to->drecv, 32));
	if (n) {
		unsigned char want[32];
		stream_digest(from->seed, n, want);
		CHECK(!memcmp(want, to->drecv, 32));
	}
}

/* ------------------------------------------------------------------ */
/* Tests                                                                */
/* ------------------------------------------------------------------ */

/* The digest the streams are compared with is SHA-256 (known answers). */
static void test_sha256(void)
{
	static const struct { const char *in; const char *hex; } kat[] = {
		{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
		{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
		{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
	};
	for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
		struct tu_sha256 h;
		unsigned char d[32];
		char hex[65];
		size_t n = strlen(kat[i].in);
		tu_sha256_init(&h);
		/* fed in two uneven parts */
		tu_sha256_update(&h, kat[i].in, n / 3);
		tu_sha256_update(&h, kat[i].in + n / 3, n - n / 3);
		tu_sha256_final(&h, d);
		for (int j = 0; j < 32; j++)
			snprintf(hex + 2 * j, 3, "%02x", d[j]);
		CHECK_STR(hex, kat[i].hex);
	}
}

static void test_memory_session(void)
{
	struct mailtls *s = mailtls_server_mem(g_scfg);
	struct mailtls_relay_result res;
	int sv[2];
	tu_socketpair(sv);
	CHECK(s);
	CHECK_EQ(mailtls_relay(s, sv[0], sv[0], 0, 1, &res), -1);
	CHECK_EQ(mailtls_errcode(s), MAILTLS_E_USAGE);
	CHECK_EQ(res.reason, MAILTLS_RELAY_ERROR);
	mailtls_free(s);
	close(sv[0]);
	close(sv[1]);
}

/* Both ways at once, both ends ending cleanly. */
static void run_both_ways(int tls_kind, int plain_kind, unsigned long long n, int flags,
    struct mailtls_config *ccfg)
{
	struct sc c;
	double t0 = tu_now();
	sc_setup(&c, tls_kind, plain_kind, flags, 30, ccfg);
	c.peer.send_total = n;
	c.prog.send_total = n + 12345;
	if (plain_kind == PLAIN_PIPES && tls_kind != TLS_PIPES) {
		/* the plaintext program uses non-blocking pipes: never mind */
	}
	sc_start(&c);
	sc_finish(&c);
	CHECK_STR(c.relay.proto, ccfg == g_ccfg12 ? "TLSv1.2" : "TLSv1.3");
	CHECK_EQ(c.relay.ret, 0);
	CHECK_EQ(c.relay.res.reason, MAILTLS_RELAY_DONE);
	CHECK(c.relay.res.tls_eof && c.relay.res.tls_clean && c.relay.res.plain_eof);
	CHECK_EQ(c.relay.res.tls_to_plain, n);
	CHECK_EQ(c.relay.res.plain_to_tls, n + 12345);
	CHECK(c.peer.eof && c.peer.clean && !c.peer.rerr && !c.peer.werr);
	CHECK(c.prog.eof && !c.prog.rerr && !c.prog.werr);
	check_stream(&c.peer, &c.prog, n);
	check_stream(&c.prog, &c.peer, n + 12345);
	fprintf(stderr, "   %llu bytes each way in %.2fs\n", n, tu_now() - t0);
}

static void test_100mib_each_way(void)
{
	run_both_ways(TLS_SOCKET, PLAIN_SOCKET, 100 * MiB, 0, NULL);
}

static void test_both_ways_variants(void)
{
	/* O_NONBLOCK TLS socket, pipes on the plaintext side (owned) */
	run_both_ways(TLS_SOCKET_NONBLOCK, PLAIN_PIPES, 8 * MiB, MAILTLS_RELAY_OWN_FDS, NULL);
	/* blocking TLS socket, pipes not owned */
	run_both_ways(TLS_SOCKET, PLAIN_PIPES, 8 * MiB, 0, NULL);
	/* O_NONBLOCK plaintext pipes */
	run_both_ways(TLS_SOCKET, PLAIN_PIPES_NONBLOCK, 4 * MiB, 0, NULL);
	/* TLS over a pair of pipes */
	run_both_ways(TLS_PIPES, PLAIN_SOCKET, 4 * MiB, 0, NULL);
	/* TLS 1.2 */
	run_both_ways(TLS_SOCKET, PLAIN_SOCKET, 4 * MiB, 0, g_ccfg12);
	/* nothing at all either way */
	run_both_ways(TLS_SOCKET, PLAIN_SOCKET, 0, 0, NULL);
}

/* The TLS peer ends first (close_notify, or truncated); the program sees
 * EOF and only then answers: the other direction lives on. */
static void run_tls_ends_first(int tls_kind, int plain_kind, int flags, int end,
    struct mailtls_config *ccfg)
{
	struct sc c;
	unsigned long long n = 3 * MiB + 7, m = 2 * MiB + 3;
	sc_setup(&c, tls_kind, plain_kind, flags, 30, ccfg);
	c.peer.send_total = n;
	c.peer.end = end;
	c.prog.send_total = m;
	c.prog.send_after_eof = 1;
	sc_start(&c);
	sc_finish(&c);
	CHECK_STR(c.relay.proto, ccfg == g_ccfg12 ? "TLSv1.2" : "TLSv1.3");
	CHECK(c.prog.eof);
	check_stream(&c.peer, &c.prog, n);
	check_stream(&c.prog, &c.peer, m);
	CHECK(c.peer.eof && c.peer.clean);
	CHECK(c.relay.res.tls_eof && c.relay.res.plain_eof);
	CHECK_EQ(c.relay.res.tls_to_plain, n);
	CHECK_EQ(c.relay.res.plain_to_tls, m);
	if (end == END_CLEAN) {
		CHECK_EQ(c.relay.ret, 0);
		CHECK_EQ(c.relay.res.reason, MAILTLS_RELAY_DONE);
		CHECK(c.relay.res.tls_clean);
	} else {
		CHECK_EQ(c.relay.ret, -1);
		CHECK_EQ(c.relay.res.reason, MAILTLS_RELAY_ERROR);
		CHECK_EQ(c.relay.errcode, MAILTLS_E_TRUNCATED);
		CHECK(!c.relay.res.tls_clean);
	}
}

/* The program ends first; the peer sees close_notify and only then
 * answers. */
static void run_plain_ends_first(int tls_kind, int plain_kind, int flags, struct mailtls_config *ccfg)
{
	struct sc c;
	unsigned long long n = 3 * MiB + 1, m = 2 * MiB + 5;
	sc_setup(&c, tls_kind, plain_kind, flags, 30, ccfg);
	c.prog.send_total = m;
	c.peer.send_total = n;
	c.peer.send_after_eof = 1;
	sc_start(&c);
	sc_finish(&c);
	CHECK_STR(c.relay.proto, ccfg == g_ccfg12 ? "TLSv1.2" : "TLSv1.3");
	CHECK_EQ(c.relay.ret, 0);
	CHECK_EQ(c.relay.res.reason, MAILTLS_RELAY_DONE);
	CHECK(c.peer.eof && c.peer.clean);
	CHECK(c.prog.eof);
	check_stream(&c.prog, &c.peer, m);
	check_stream(&c.peer, &c.prog, n);
	CHECK(c.relay.res.tls_eof && c.relay.res.tls_clean && c.relay.res.plain_eof);
}

static void test_half_close(void)
{
	run_tls_ends_first(TLS_SOCKET, PLAIN_SOCKET, 0, END_CLEAN, NULL);
	run_tls_ends_first(TLS_SOCKET, PLAIN_PIPES, MAILTLS_RELAY_OWN_FDS, END_CLEAN, NULL);
	run_tls_ends_first(TLS_SOCKET, PLAIN_SOCKET, MAILTLS_RELAY_OWN_FDS, END_CLEAN, g_ccfg12);
	run_plain_ends_first(TLS_SOCKET, PLAIN_SOCKET, 0, NULL);
	run_plain_ends_first(TLS_SOCKET_NONBLOCK, PLAIN_PIPES, MAILTLS_RELAY_OWN_FDS, NULL);
	run_plain_ends_first(TLS_SOCKET, PLAIN_SOCKET, 0, g_ccfg12);
}

static void test_truncation(void)
{
	/* The peer half-closes without close_notify: all it sent is delivered,
	 * the program's answer still reaches it, and the relay reports it. */
	run_tls_ends_first(TLS_SOCKET, PLAIN_SOCKET, 0, END_TRUNCATE, NULL);
	run_tls_ends_first(TLS_SOCKET_NONBLOCK, PLAIN_PIPES, MAILTLS_RELAY_OWN_FDS, END_TRUNCATE, NULL);

	/* The peer closes its socket outright, without close_notify. */
	{
		struct sc c;
		unsigned long long n = 1 * MiB + 99;
		sc_setup(&c, TLS_SOCKET, PLAIN_PIPES, MAILTLS_RELAY_OWN_FDS, 30, NULL);
		c.peer.send_total = n;
		c.peer.end = END_VANISH;
		sc_start(&c);
		sc_finish(&c);
		CHECK_EQ(c.relay.ret, -1);
		CHECK_EQ(c.relay.errcode, MAILTLS_E_TRUNCATED);
		CHECK_EQ(c.relay.res.reason, MAILTLS_RELAY_ERROR);
		CHECK(c.relay.res.tls_eof && !c.relay.res.tls_clean);
		CHECK_EQ(c.relay.res.tls_to_plain, n);
		check_stream(&c.peer, &c.prog, n);
		CHECK(c.prog.eof);
	}
}

static void test_idle(void)
{
	struct sc c;
	sc_setup(&c, TLS_SOCKET, PLAIN_SOCKET, 0, 1, NULL);
	c.peer.send_total = 1000;
	c.peer.end = END_NONE;
	c.prog.end = END_NONE;
	sc_start(&c);
	while (!atomic_load(&c.relay.done))
		usleep(10000);
	atomic_store(&c.peer.quit, 1);
	atomic_store(&c.prog.quit, 1);
	sc_finish(&c);
	CHECK_EQ(c.relay.ret, -1);
	CHECK_EQ(c.relay.res.reason, MAILTLS_RELAY_IDLE);
	CHECK_EQ(c.relay.errcode, MAILTLS_E_TIMEOUT);
	CHECK_EQ(c.relay.res.tls_to_plain, 1000);
	CHECK(c.relay.secs >= 0.9);
	CHECK(c.relay.cpu < 0.2);   /* waiting, not spinning */
	CHECK_EQ(c.prog.received, 1000);

	/* idle during the handshake */
	{
		int sv[2];
		struct mailtls *s;
		struct mailtls_relay_result res;
		int pv[2];
		double t0 = tu_now();
		tu_socketpair(sv);
		tu_socketpair(pv);
		s = mailtls_server(g_scfg, sv[0], sv[0]);
		CHECK(s);
		CHECK_EQ(mailtls_relay(s, pv[0], pv[0], 0, 1, &res), -1);
		CHECK_EQ(mailtls_errcode(s), MAILTLS_E_TIMEOUT);
		CHECK_EQ(res.reason, MAILTLS_RELAY_IDLE);
		CHECK(tu_now() - t0 >= 0.9);
		mailtls_free(s);
		close(sv[0]);
		close(sv[1]);
		close(pv[0]);
		close(pv[1]);
	}
}

/* A byte every 0.4 s for 2.4 s keeps a relay with a 1 s idle limit alive. */
static void test_idle_trickle(void)
{
	int t[2], p[2];
	struct rl r;
	struct mailtls *cl;
	char buf[16];
	size_t got = 0;
	tu_socketpair(t);
	tu_socketpair(p);
	memset(&r, 0, sizeof r);
	r.s = mailtls_server(g_scfg, t[0], t[0]);
	cl = mailtls_client(g_ccfg, t[1], t[1], "localhost");
	CHECK(r.s && cl);
	r.pr = r.pw = r.tfd = p[0];
	r.idle = 1;
	rl_start(&r);
	shutdown(p[1], SHUT_WR);   /* the program sends nothing */
	for (int i = 0; i < 6; i++) {
		usleep(400000);
		CHECK_OK(cl, mailtls_write(cl, "x", 1));
		CHECK_EQ(read(p[1], buf + got, 1), 1);
		got++;
	}
	CHECK_OK(cl, mailtls_close(cl));
	rl_join(&r);
	CHECK_EQ(r.ret, 0);
	CHECK_EQ(r.res.tls_to_plain, 6);
	CHECK(!memcmp(buf, "xxxxxx", 6));
	CHECK_EQ(mailtls_read(cl, buf, sizeof buf), 0);
	mailtls_free(r.s);
	mailtls_free(cl);
	close(t[0]);
	close(t[1]);
	close(p[0]);
	close(p[1]);
}

/* One side stops reading while the other keeps sending: the relay must
 * stop too and sleep in poll (little CPU), then finish once the reader
 * reads again, with nothing lost. */
static void run_stall(int stall_peer, int plain_kind)
{
	struct sc c;
	unsigned long long n = 32 * MiB;
	struct ep *stalled, *sender;
	double cpu0, cpu1, t0;
	sc_setup(&c, TLS_SOCKET, plain_kind, 0, 30, NULL);
	stalled = stall_peer ? &c.peer : &c.prog;
	sender = stall_peer ? &c.prog : &c.peer;
	sender->send_total = n;
	stalled->send_total = 4096;
	atomic_store(&stalled->hold, 1);
	sc_start(&c);
	/* wait until the sender is stuck: nothing moves for a while */
	{
		unsigned long long last = (unsigned long long)-1;
		for (int still = 0; still < 5;) {
			usleep(100000);
			if (sender->sent == last)
				still++;
			else
				still = 0;
			last = sender->sent;
		}
	}
	CHECK(sender->sent < n);
	CHECK(!atomic_load(&c.relay.done));
	cpu0 = rl_cpu(&c.relay);
	t0 = tu_now();
	usleep(2000000);
	cpu1 = rl_cpu(&c.relay);
	fprintf(stderr, "   stalled at %llu of %llu bytes: relay used %.4fs CPU in %.2fs\n",
	    sender->sent, n, cpu1 - cpu0, tu_now() - t0);
	CHECK(cpu1 - cpu0 < 0.2);
	CHECK(!atomic_load(&c.relay.done));
	atomic_store(&stalled->hold, 0);
	sc_finish(&c);
	CHECK_EQ(c.relay.ret, 0);
	check_stream(sender, stalled, n);
	check_stream(stalled, sender, 4096);
}

static void test_stall(void)
{
	run_stall(1, PLAIN_SOCKET);   /* the TLS peer stops reading */
	run_stall(0, PLAIN_PIPES);    /* the plaintext program stops reading */
}

/* The program closes its reading end mid-stream (SIGPIPE is ignored):
 * EPIPE ends that direction, the relay does not die and the other
 * direction completes. */
static void test_plain_reader_vanishes(void)
{
	struct sc c;
	unsigned long long m = 1 * MiB + 17;
	sc_setup(&c, TLS_SOCKET, PLAIN_PIPES, MAILTLS_RELAY_OWN_FDS, 30, NULL);
	c.peer.send_total = 64 * MiB;
	c.prog.vanish_after = 100000;
	c.prog.vanish_reader = 1;
	c.prog.send_total = m;
	sc_start(&c);
	sc_finish(&c);
	CHECK_EQ(c.relay.ret, 0);
	CHECK_EQ(c.relay.res.reason, MAILTLS_RELAY_DONE);
	CHECK(c.relay.res.plain_eof);
	CHECK(c.relay.res.tls_to_plain >= 100000 && c.relay.res.tls_to_plain < 64 * MiB);
	check_stream(&c.prog, &c.peer, m);
	CHECK(c.peer.eof && c.peer.clean);
	/* the peer could not send all: the relay stopped reading, then went away */
	CHECK(c.peer.sent < 64 * MiB);
	CHECK(c.peer.werr != 0);
}

/* The TLS peer closes its socket while the relay writes to it, with
 * SIGPIPE at its default: in a child, so a SIGPIPE death shows in the
 * child's status.  The plaintext side is a socket too. */
static void test_tls_peer_vanishes(void)
{
	pid_t pid;
	int st;
	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct sc c;
		signal(SIGPIPE, SIG_DFL);
		sc_setup(&c, TLS_SOCKET, PLAIN_SOCKET, 0, 30, NULL);
		c.prog.send_total = 64 * MiB;
		c.peer.vanish_after = 200000;
		c.peer.end = END_NONE;      /* no close_notify: it just goes */
		sc_start(&c);
		sc_finish(&c);
		CHECK_EQ(c.relay.ret, -1);
		CHECK_EQ(c.relay.res.reason, MAILTLS_RELAY_ERROR);
		CHECK(c.relay.errcode == MAILTLS_E_SYSTEM || c.relay.errcode == MAILTLS_E_TRUNCATED);
		CHECK(c.relay.res.plain_to_tls >= 200000 && c.relay.res.plain_to_tls < 64 * MiB);
		CHECK(c.prog.eof);
		_exit(0);
	}
	CHECK(waitpid(pid, &st, 0) == pid);
	if (WIFSIGNALED(st))
		T_FAIL("child died of signal %d", WTERMSIG(st));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* The peer sends close_notify and closes its socket while the program
 * still sends: the relay's writes fail, which ends that direction without
 * an error (the peer said it was done). */
static void test_peer_gone_after_close_notify(void)
{
	struct sc c;
	sc_setup(&c, TLS_SOCKET, PLAIN_SOCKET, 0, 30, NULL);
	c.prog.send_total = 64 * MiB;
	c.peer.vanish_after = 100000;
	c.peer.vanish_clean = 1;
	c.peer.end = END_NONE;
	sc_start(&c);
	sc_finish(&c);
	CHECK_EQ(c.relay.ret, 0);
	CHECK_EQ(c.relay.res.reason, MAILTLS_RELAY_DONE);
	CHECK(c.relay.res.tls_eof && c.relay.res.tls_clean);
	CHECK(c.relay.res.plain_to_tls >= 100000 && c.relay.res.plain_to_tls < 64 * MiB);
	CHECK(c.prog.eof);          /* the relay shut the program's input */
	CHECK(c.prog.werr != 0);    /* and stopped reading its output */
}

/* A relay over sessions that already exchanged bytes: decrypted bytes left
 * in the session (mailtls_pending) are delivered first. */
static void test_pending_first(void)
{
	int t[2], p[2];
	struct mailtls *s, *cl;
	struct mailtls_relay_result res;
	char buf[64];
	int sr;
	tu_socketpair(t);
	tu_socketpair(p);
	s = mailtls_server(g_scfg, t[0], t[0]);
	cl = mailtls_client(g_ccfg, t[1], t[1], "localhost");
	CHECK(s && cl);
	CHECK_OK(cl, tu_handshake_pair(cl, s, &sr));
	CHECK_EQ(sr, 0);
	CHECK_OK(cl, mailtls_write(cl, "0123456789", 10));
	CHECK_OK(cl, mailtls_close(cl));
	shutdown(t[1], SHUT_WR);
	CHECK_EQ(mailtls_read(s, buf, 3), 3);
	CHECK_EQ(mailtls_pending(s), 7);
	shutdown(p[1], SHUT_WR);   /* the program sends nothing */
	CHECK_EQ(mailtls_relay(s, p[0], p[0], 0, 5, &res), 0);
	CHECK_EQ(res.tls_to_plain, 7);
	CHECK(res.tls_clean && res.plain_eof);
	CHECK_EQ(read(p[1], buf, sizeof buf), 7);
	CHECK(!memcmp(buf, "3456789", 7));
	CHECK_EQ(read(p[1], buf, sizeof buf), 0);
	CHECK_EQ(mailtls_read(cl, buf, sizeof buf), 0);   /* our close_notify */
	mailtls_free(s);
	mailtls_free(cl);
	close(t[0]);
	close(t[1]);
	close(p[0]);
	close(p[1]);
}

/* A server's program exits while the client stays connected and silent:
 * the relay sees EOF from the program and a stdin pipe without reader, so it
 * sends close_notify and returns instead of waiting for the client. */
struct exit_relay {
	struct mailtls *s;
	int pr, pw;
	int ret;
	struct mailtls_relay_result res;
};

static void *exit_relay_main(void *arg)
{
	struct exit_relay *e = arg;
	e->ret = mailtls_relay(e->s, e->pr, e->pw, MAILTLS_RELAY_OWN_FDS, 0, &e->res);
	return NULL;
}

static void test_program_exit_ends_relay(void)
{
	int sv[2], to_prog[2], from_prog[2];
	struct exit_relay e;
	pthread_t th;
	char buf[64];
	struct mailtls *c;
	signal(SIGPIPE, SIG_IGN);
	tu_socketpair(sv);
	CHECK(pipe(to_prog) == 0 && pipe(from_prog) == 0);
	memset(&e, 0, sizeof e);
	e.s = mailtls_server(g_scfg, sv[0], sv[0]);
	e.pr = from_prog[0];
	e.pw = to_prog[1];
	c = mailtls_client(g_ccfg, sv[1], sv[1], "localhost");
	CHECK(e.s && c);
	CHECK(pthread_create(&th, NULL, exit_relay_main, &e) == 0);
	CHECK_OK(c, mailtls_handshake(c));
	CHECK(write(from_prog[1], "221 bye\r\n", 9) == 9);
	close(from_prog[1]);   /* the program exits: its stdout and stdin close */
	close(to_prog[0]);
	CHECK_EQ(mailtls_timeoutread(10, c, buf, sizeof buf), 9);
	CHECK_EQ(mailtls_timeoutread(10, c, buf, sizeof buf), 0);   /* close_notify */
	pthread_join(th, NULL);   /* the client never closed: the relay ended anyway */
	CHECK_EQ(e.ret, 0);
	CHECK_EQ(e.res.reason, MAILTLS_RELAY_DONE);
	CHECK_EQ(e.res.plain_to_tls, 9);
	mailtls_free(e.s);
	mailtls_free(c);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	double t0 = tu_now();
	g_scfg = tu_server_config("server-ec.pem", "server-ec.key");
	g_ccfg = tu_client_config();
	g_ccfg12 = tu_client_config();
	CHECK_CFG_OK(g_ccfg12, mailtls_config_set_max_protocol(g_ccfg12, MAILTLS_TLS1_2));

	/* forks: run before any thread exists */
	RUN(test_tls_peer_vanishes);

	signal(SIGPIPE, SIG_IGN);
	RUN(test_sha256);
	RUN(test_memory_session);
	RUN(test_pending_first);
	RUN(test_program_exit_ends_relay);
	RUN(test_half_close);
	RUN(test_truncation);
	RUN(test_idle);
	RUN(test_idle_trickle);
	RUN(test_stall);
	RUN(test_plain_reader_vanishes);
	RUN(test_peer_gone_after_close_notify);
	RUN(test_both_ways_variants);
	RUN(test_100mib_each_way);

	mailtls_config_free(g_scfg);
	mailtls_config_free(g_ccfg);
	mailtls_config_free(g_ccfg12);
	fprintf(stderr, "all relay tests passed in %.1fs\n", tu_now() - t0);
	return 0;
}
