/* relay.c -- mailtls_relay: a poll(2) loop moving bytes both ways between
 * a TLS session and a plaintext pair of descriptors.  See mailtls.h for
 * the contract.
 *
 * Shape.  Two directions, each with one bounded buffer:
 *   TLS -> plaintext ("down"): SSL_read into |down|, write |down| to plain_wfd;
 *   plaintext -> TLS ("up"):   read plain_rfd into |up|, SSL_write |up|.
 * Four operations (TLS read, plaintext write, plaintext read, TLS write or
 * close_notify) are tried in turn until none makes progress; then the loop
 * waits in poll(2) for exactly the events that the blocked operations wait
 * for, and nothing else.  An operation that got a want code (or EAGAIN)
 * remembers which descriptor and event it waits for (a TLS read may wait
 * for the write descriptor and a TLS write for the read descriptor) and is
 * not tried again until poll reports that event, so the loop never spins.
 * A full buffer stops the reading side of its direction and takes its
 * descriptor out of the poll set (backpressure).
 *
 * Never blocking without touching descriptor flags.  s->nonblock is set
 * while relaying, so the TLS BIOs never block; the plaintext side is read
 * and written the same way (fdio.c: MSG_DONTWAIT on sockets, RWF_NOWAIT
 * on pipes, poll first on anything else).
 *
 * Decrypted bytes are never stranded: a TLS read is tried again without
 * polling for as long as its last result was not a want code, so bytes
 * that BoringSSL holds already (SSL_pending) are read before the read
 * descriptor is polled again.  (BoringSSL has no read-ahead in TLS: once
 * SSL_read returns a want code, nothing is buffered that poll could miss.)
 *
 * SSL_write retries after a want code pass the same bytes again: they stay
 * at the head of |up| (they may move when |up| is compacted, which
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows) and the same length is passed.
 *
 * Endings:
 *  - plaintext EOF: once |up| is sent, close_notify (mailtls_close, with
 *    want retries), then shutdown(SHUT_WR) on the TLS write descriptor when
 *    it is a socket.  With MAILTLS_RELAY_OWN_FDS plain_rfd is closed at
 *    EOF (when plain_rfd == plain_wfd, only once the other direction is
 *    finished too, since the descriptor is still written).
 *  - TLS end (close_notify, or EOF without it = MAILTLS_E_TRUNCATED, or a
 *    read error): once |down| is delivered, the write direction of
 *    plain_wfd is shut: shutdown(SHUT_WR) for a socket, close() for a
 *    non-socket with MAILTLS_RELAY_OWN_FDS (deferred like above when
 *    plain_rfd == plain_wfd), nothing otherwise.  After close_notify or
 *    truncation the plaintext->TLS direction goes on (the peer may only
 *    have half-closed); after a TLS error (alert, bad record, reset) the
 *    session is unusable and that direction ends too.
 *  - plain_wfd fails with EPIPE, or polls POLLERR (a pipe without reader;
 *    POLLHUP for a socket shut both ways), even with nothing to write: the
 *    plaintext reader is gone, nothing
 *    more can be delivered, so the TLS->plaintext direction is finished
 *    without an error: the relay stops reading TLS (undelivered decrypted
 *    bytes are dropped; they could go nowhere), shuts plain_wfd as at a
 *    TLS end, and keeps relaying plaintext->TLS.  Not reading TLS any
 *    more means the peer's further writes back up in its socket rather
 *    than being read and dropped here: a peer that keeps talking to a
 *    vanished program learns of it by flow control and, when the caller
 *    closes the socket, by a reset; the relay itself ends as soon as the
 *    other direction ends.
 *  - a TLS write fails after the peer's close_notify was read (the peer
 *    closed its socket, or a TLS engine refuses writes after close_notify):
 *    that direction is finished; no error, since the peer said it was done
 *    (plain_to_tls says how many bytes it got).  Failing to send our
 *    close_notify to a peer that is gone counts the same way.
 *  - errors: the first error is the one reported; the relay goes on until
 *    both directions are finished (each error finishes its direction), so
 *    bytes that can still be delivered are.
 *  - idle: |idle_secs| > 0 is the longest wait without any byte or end of
 *    stream moving (during the handshake: the longest wait for the peer);
 *    0 (or below) waits forever.  An idle end shuts or closes nothing more.
 *
 * Limits: a non-socket descriptor that another process reads (or writes)
 * at the same time may lose a poll-then-read race and block the relay;
 * descriptors of ucspi programs are not shared that way.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define RELAY_BUFSIZE (64 * 1024)

/* What a blocked operation waits for. */
enum {
	W_NONE = 0,
	W_TLS_IN,      /* the TLS read descriptor readable */
	W_TLS_OUT,     /* the TLS write descriptor writable */
	W_PLAIN_IN,    /* plain_rfd readable */
	W_PLAIN_OUT    /* plain_wfd writable */
};

struct rbuf {
	unsigned char *p;
	size_t off, len;           /* the bytes waiting are p[off .. off+len) */
};

struct relay {
	struct mailtls *s;
	int pr, pw, flags;
	struct mt_fd pin, pout;    /* pr and pw as fdio.c reads and writes them */
	int pr_closed, pw_closed;
	struct rbuf down, up;

	/* TLS -> plaintext */
	int rd_wait;               /* TLS read */
	int pw_wait;               /* plaintext write */
	int tls_end;               /* no more TLS reads (EOF, close_notify, error, EPIPE) */
	int down_done;             /* direction finished, plain_wfd shut */

	/* plaintext -> TLS */
	int pr_wait;               /* plaintext read */
	int wr_wait;               /* TLS write or close_notify */
	size_t wpend;              /* length of the SSL_write to retry, 0: none */
	int plain_end;             /* no more plaintext reads (EOF or error) */
	int up_done;               /* direction finished */

	int progress;
	/* The first error, kept apart because later calls clear the session's. */
	int err;
	int err_errno;
	char errmsg[MT_ERRLEN];
	struct mailtls_relay_result res;
};

/* keep_err remembers the session's current error unless one is kept. */
static void keep_err(struct relay *r)
{
	if (r->err)
		return;
	r->err = r->s->errcode ? r->s->errcode : MAILTLS_E_TLS;
	r->err_errno = errno;
	memcpy(r->errmsg, r->s->errmsg, MT_ERRLEN);
	if (!r->errmsg[0])
		strcpy(r->errmsg, "relay: TLS failure");
}

static void sys_err(struct relay *r, const char *what)
{
	int e = errno;
	if (r->err)
		return;
	mt_seterr(r->s, MAILTLS_E_SYSTEM, "relay: %s: %s", what, strerror(e));
	errno = e;
	keep_err(r);
}

static int want_code(int w)
{
	return w == MAILTLS_WANT_READ ? W_TLS_IN : W_TLS_OUT;
}

/* room returns the free space at the end of |b|, first moving the waiting
 * bytes to the start when that space is small and they are no more than
 * what was consumed before them: each byte is then moved at most once,
 * where moving a nearly full buffer after every small write would copy it
 * again and again.  (Moving bytes of a pending SSL_write is allowed:
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER.) */
static size_t room(struct rbuf *b)
{
	if (b->len == 0)
		b->off = 0;
	else if (b->off >= b->len && RELAY_BUFSIZE - (b->off + b->len) < RELAY_BUFSIZE / 4) {
		memmove(b->p, b->p + b->off, b->len);
		b->off = 0;
	}
	return RELAY_BUFSIZE - (b->off + b->len);
}

static void consume(struct rbuf *b, size_t n)
{
	b->off += n;
	b->len -= n;
	if (b->len == 0)
		b->off = 0;
}

/* The descriptors the relay may close (MAILTLS_RELAY_OWN_FDS). */
static void close_owned(struct relay *r)
{
	if (!(r->flags & MAILTLS_RELAY_OWN_FDS))
		return;
	if (r->pr == r->pw) {
		/* One descriptor for both: closed once neither direction uses it. */
		if (!r->pr_closed && r->res.plain_eof && r->down_done) {
			close(r->pr);
			r->pr_closed = r->pw_closed = 1;
		}
		return;
	}
	if (!r->pr_closed && r->res.plain_eof) {
		close(r->pr);
		r->pr_closed = 1;
	}
	if (!r->pw_closed && r->down_done && !r->pout.sock) {
		close(r->pw);
		r->pw_closed = 1;
	}
}

/* finish_down ends the TLS -> plaintext direction: shuts plain_wfd. */
static void finish_down(struct relay *r)
{
	if (r->down_done)
		return;
	r->down_done = 1;
	r->tls_end = 1;
	r->down.len = r->down.off = 0;
	r->progress = 1;
	if (r->pout.sock)
		shutdown(r->pw, SHUT_WR);   /* may fail (ENOTCONN): nothing to shut then */
	close_owned(r);
}

static void finish_up(struct relay *r)
{
	if (r->up_done)
		return;
	r->up_done = 1;
	r->plain_end = 1;
	r->up.len = r->up.off = 0;
	r->wpend = 0;
	r->progress = 1;
	close_owned(r);
}

/* TLS -> |down| */
static void op_tls_read(struct relay *r)
{
	struct mailtls *s = r->s;
	ssize_t n;
	size_t space;
	if (r->tls_end || r->rd_wait)
		return;
	space = room(&r->down);
	if (space == 0)
		return;
	mt_clearerr(s);
	n = mt_read_step(s, r->down.p + r->down.off + r->down.len, space);
	if (n > 0) {
		r->down.len += (size_t)n;
		r->progress = 1;
	} else if (n == 0) {
		r->tls_end = 1;
		r->res.tls_eof = 1;
		r->res.tls_clean = 1;
		r->progress = 1;
	} else if (n == MAILTLS_WANT_READ || n == MAILTLS_WANT_WRITE) {
		r->rd_wait = want_code((int)n);
	} else {
		int code = s->errcode;
		keep_err(r);
		r->tls_end = 1;
		r->progress = 1;
		if (code == MAILTLS_E_TRUNCATED) {
			r->res.tls_eof = 1;
		} else {
			/* The session is broken: nothing more can be sent either. */
			finish_up(r);
		}
	}
}

/* |down| -> plain_wfd */
static void op_plain_write(struct relay *r)
{
	ssize_t n;
	if (r->down_done || r->pw_wait || r->down.len == 0)
		return;
	n = mt_fd_write(&r->pout, r->down.p + r->down.off, r->down.len, 1);
	if (n > 0) {
		consume(&r->down, (size_t)n);
		r->res.tls_to_plain += (unsigned long long)n;
		r->progress = 1;
	} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		r->pw_wait = W_PLAIN_OUT;
	} else if (n < 0 && errno == EPIPE) {
		/* The plaintext reader is gone: see the comment at the top. */
		finish_down(r);
	} else {
		if (n == 0)
			errno = EIO;
		sys_err(r, "write to the plaintext side");
		finish_down(r);
	}
}

/* plain_rfd -> |up| */
static void op_plain_read(struct relay *r)
{
	ssize_t n;
	size_t space;
	if (r->plain_end || r->pr_wait)
		return;
	space = room(&r->up);
	if (space == 0)
		return;
	n = mt_fd_read(&r->pin, r->up.p + r->up.off + r->up.len, space, 1);
	if (n > 0) {
		r->up.len += (size_t)n;
		r->progress = 1;
	} else if (n == 0) {
		r->plain_end = 1;
		r->res.plain_eof = 1;
		r->progress = 1;
		close_owned(r);
	} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
		r->pr_wait = W_PLAIN_IN;
	} else {
		/* Not knowing whether all was read, send no close_notify. */
		sys_err(r, "read from the plaintext side");
		finish_up(r);
	}
}

/* A TLS write (or close_notify) failed: finish the direction, and report
 * it unless the peer had said it was done (see the comment at the top). */
static void tls_write_failed(struct relay *r)
{
	if (!r->res.tls_clean)
		keep_err(r);
	finish_up(r);
}

/* |up| -> TLS, then close_notify at plaintext EOF */
static void op_tls_write(struct relay *r)
{
	struct mailtls *s = r->s;
	ssize_t n;
	if (r->up_done || r->wr_wait)
		return;
	if (r->up.len > 0) {
		size_t len = r->wpend ? r->wpend : r->up.len;
		mt_clearerr(s);
		n = mt_write_step(s, r->up.p + r->up.off, len);
		if (n > 0) {
			consume(&r->up, (size_t)n);
			r->wpend = 0;
			r->res.plain_to_tls += (unsigned long long)n;
			r->progress = 1;
		} else if (n == MAILTLS_WANT_READ || n == MAILTLS_WANT_WRITE) {
			r->wpend = len;
			r->wr_wait = want_code((int)n);
		} else {
			tls_write_failed(r);
		}
		return;
	}
	if (!r->plain_end || !r->res.plain_eof)
		return;
	/* Plaintext EOF and all of it sent: close_notify, then FIN. */
	n = mailtls_close(s);
	if (n == 0) {
		if (s->w.sock)
			shutdown(s->w.fd, SHUT_WR);
		finish_up(r);
	} else if (n == MAILTLS_WANT_READ || n == MAILTLS_WANT_WRITE) {
		r->wr_wait = want_code((int)n);
	} else {
		tls_write_failed(r);
	}
}

/* The direction bookkeeping after each round of operations. */
static void settle(struct relay *r)
{
	if (!r->down_done && r->tls_end && r->down.len == 0)
		finish_down(r);
}

struct pollset {
	struct pollfd p[4];
	int n;
};

static void ps_add(struct pollset *ps, int fd, short ev)
{
	for (int i = 0; i < ps->n; i++)
		if (ps->p[i].fd == fd) {
			ps->p[i].events |= ev;
			return;
		}
	ps->p[ps->n].fd = fd;
	ps->p[ps->n].events = ev;
	ps->p[ps->n].revents = 0;
	ps->n++;
}

static int wait_fd(struct relay *r, int w, short *ev)
{
	switch (w) {
	case W_TLS_IN: *ev = POLLIN; return r->s->r.fd;
	case W_TLS_OUT: *ev = POLLOUT; return r->s->w.fd;
	case W_PLAIN_IN: *ev = POLLIN; return r->pr;
	case W_PLAIN_OUT: *ev = POLLOUT; return r->pw;
	}
	*ev = 0;
	return -1;
}

static void ps_add_wait(struct pollset *ps, struct relay *r, int w)
{
	short ev;
	int fd = wait_fd(r, w, &ev);
	if (fd >= 0)
		ps_add(ps, fd, ev);
}

/* clear_if_fired clears the wait *w when poll reported its event (or an
 * error or hangup, which the operation's next try will report). */
static void clear_if_fired(struct pollset *ps, struct relay *r, int *w)
{
	short ev;
	int fd = wait_fd(r, *w, &ev);
	if (fd < 0)
		return;
	for (int i = 0; i < ps->n; i++)
		if (ps->p[i].fd == fd && (ps->p[i].revents & (ev | POLLERR | POLLHUP | POLLNVAL))) {
			*w = W_NONE;
			return;
		}
}

/* The plaintext side no longer reads: like EPIPE (see the top comment). */
static int reader_gone(const struct pollset *ps, const struct relay *r)
{
	for (int i = 0; i < ps->n; i++)
		if (ps->p[i].fd == r->pw)
			return (ps->p[i].revents & (r->pout.sock ? POLLHUP : POLLERR)) != 0;
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* poll_wait waits up to |ms| (-1: forever); returns poll's result. */
static int poll_wait(struct pollfd *p, int n, int ms)
{
	int r;
	do
		r = poll(p, (nfds_t)n, ms);
	while (r < 0 && errno == EINTR);
	return r;
}

static int idle_ms_left(long long last, int idle_secs)
{
	long long left;
	if (idle_secs <= 0)
		return -1;
	left = last + (long long)idle_secs * 1000 - now_ms();
	if (left < 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

static int run_handshake(struct relay *r, int idle_secs)
{
	struct mailtls *s = r->s;
	while (!s->handshake_done) {
		struct pollfd p;
		int h, pr;
		mt_clearerr(s);
		h = mt_handshake_step(s);
		if (h == 0)
			break;
		if (h != MAILTLS_WANT_READ && h != MAILTLS_WANT_WRITE) {
			keep_err(r);
			return -1;
		}
		p.fd = h == MAILTLS_WANT_READ ? s->r.fd : s->w.fd;
		p.events = h == MAILTLS_WANT_READ ? POLLIN : POLLOUT;
		p.revents = 0;
		pr = poll_wait(&p, 1, idle_secs > 0 ? (idle_secs > INT_MAX / 1000 ? INT_MAX : idle_secs * 1000) : -1);
		if (pr < 0) {
			sys_err(r, "poll");
			return -1;
		}
		if (pr == 0) {
			mt_seterr(s, MAILTLS_E_TIMEOUT, "relay: handshake idle for %d seconds", idle_secs);
			return -2;
		}
	}
	return 0;
}

int mailtls_relay(struct mailtls *s, int plain_rfd, int plain_wfd, int flags,
    int idle_secs, struct mailtls_relay_result *out)
{
	struct relay r;
	int saved_nonblock, ret;
	long long last;

	memset(&r, 0, sizeof r);
	r.res.reason = MAILTLS_RELAY_ERROR;
	if (!s) {
		if (out)
			*out = r.res;
		errno = EINVAL;
		return -1;
	}
	mt_clearerr(s);
	if (s->is_mem || plain_rfd < 0 || plain_wfd < 0) {
		mt_seterr(s, MAILTLS_E_USAGE, s->is_mem ?
		    "the relay needs descriptors, not the memory transport" :
		    "the relay needs two plaintext descriptors");
		if (out)
			*out = r.res;
		return -1;
	}
	r.s = s;
	r.pr = plain_rfd;
	r.pw = plain_wfd;
	mt_fd_init(&r.pin, plain_rfd);
	if (plain_wfd == plain_rfd)
		r.pout = r.pin;
	else
		mt_fd_init(&r.pout, plain_wfd);
	r.flags = flags;
	r.down.p = malloc(RELAY_BUFSIZE);
	r.up.p = malloc(RELAY_BUFSIZE);
	if (!r.down.p || !r.up.p) {
		free(r.down.p);
		free(r.up.p);
		mt_seterr(s, MAILTLS_E_NOMEM, "relay: out of memory");
		if (out)
			*out = r.res;
		return -1;
	}
	saved_nonblock = s->nonblock;
	s->nonblock = 1;

	ret = run_handshake(&r, idle_secs);
	if (ret == -2) {
		r.res.reason = MAILTLS_RELAY_IDLE;
		goto out;
	}
	if (ret < 0)
		goto out;

	last = now_ms();
	for (;;) {
		struct pollset ps;
		int pr, ms;
		/* Move bytes until nothing moves without waiting. */
		do {
			r.progress = 0;
			op_tls_read(&r);
			op_plain_write(&r);
			op_plain_read(&r);
			op_tls_write(&r);
			settle(&r);
			if (r.progress)
				last = now_ms();
		} while (r.progress && !(r.down_done && r.up_done));
		if (r.down_done && r.up_done)
			break;

		/* Wait for what the blocked operations wait for, nothing else. */
		ps.n = 0;
		if (!r.tls_end)
			ps_add_wait(&ps, &r, r.rd_wait);
		if (!r.down_done && r.down.len)
			ps_add_wait(&ps, &r, r.pw_wait);
		if (!r.plain_end)
			ps_add_wait(&ps, &r, r.pr_wait);
		if (!r.up_done)
			ps_add_wait(&ps, &r, r.wr_wait);
		/* Watched even with nothing to write: poll reports POLLERR on a pipe
		 * whose reader is gone (POLLHUP on a socket closed both ways), so a
		 * program that exited ends this direction without a peer byte. */
		if (!r.down_done)
			ps_add(&ps, r.pw, 0);
		ms = idle_ms_left(last, idle_secs);
		if (ps.n == 0 && ms < 0) {
			/* Cannot happen: an unfinished direction always waits on something. */
			mt_seterr(s, MAILTLS_E_SYSTEM, "relay: nothing to wait for");
			keep_err(&r);
			ret = -1;
			goto out;
		}
		pr = poll_wait(ps.p, ps.n, ms);
		if (pr < 0) {
			sys_err(&r, "poll");
			ret = -1;
			goto out;
		}
		if (pr == 0) {
			if (idle_ms_left(last, idle_secs) == 0) {
				mt_seterr(s, MAILTLS_E_TIMEOUT, "relay: idle for %d seconds", idle_secs);
				r.res.reason = MAILTLS_RELAY_IDLE;
				ret = -2;
				goto out;
			}
			continue;
		}
		if (!r.down_done && reader_gone(&ps, &r))
			finish_down(&r);
		clear_if_fired(&ps, &r, &r.rd_wait);
		clear_if_fired(&ps, &r, &r.pw_wait);
		clear_if_fired(&ps, &r, &r.pr_wait);
		clear_if_fired(&ps, &r, &r.wr_wait);
	}
	ret = 0;

out:
	s->nonblock = saved_nonblock;
	free(r.down.p);
	free(r.up.p);
	if (ret == -2 && !r.err) {
		/* Idle: the session holds MAILTLS_E_TIMEOUT. */
		ret = -1;
	} else if (r.err) {
		/* The first error is the one reported, even when the relay then idled. */
		mt_seterr(s, r.err, "%s", r.errmsg);
		errno = r.err_errno;
		r.res.reason = MAILTLS_RELAY_ERROR;
		ret = -1;
	} else if (ret == 0) {
		mt_clearerr(s);
		r.res.reason = MAILTLS_RELAY_DONE;
	}
	if (out)
		*out = r.res;
	return ret;
}
