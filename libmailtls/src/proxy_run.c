/* proxy_run.c -- mailtls_proxy_run: the I/O around the proxy's state
 * machine.  See mailtls.h.
 *
 * Before TLS the client is read with mt_plain_readpart (lineread.c),
 * which never reads past a line, and only while no line is held back: so
 * when STARTTLS is accepted every byte after it is still in the kernel,
 * where mt_plain_pending sees it.  After TLS the client is read in bulk
 * through the session and split into lines here.  The program's output is
 * read in bulk and split into lines (chunks of at most
 * MAILTLS_PROXY_CHUNK).  What goes to the program is buffered and written
 * when its pipe polls writable; what goes to the client is gathered while
 * lines are handled and written within io_secs before the next wait (or
 * the handshake, or the end), so a multi-line reply makes one TLS record,
 * not one a line.  Lines are consumed by moving an offset; the waiting
 * rest moves to the front only before a read. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lineread.h"
#include "proxy.h"

#define BUFCAP (64 * 1024)

/* |len| bytes wait at p + off. */
struct pbuf {
	char p[BUFCAP];
	size_t off, len;
};

struct run {
	struct mailtls_proxy *px;
	struct mailtls *s;
	const struct mailtls_proxy_io *io;
	int secs;
	struct pbuf cin, pin, pout;   /* client in (after TLS), program in, program out */
	struct pbuf cout;             /* client out, written before each wait */
	char held[MAILTLS_PROXY_CHUNK];
	size_t heldlen;
	int have_held, held_more;
	int client_eof, prog_eof, prog_wclosed;
	int action;                   /* STARTTLS or CLOSE to do */
};

static char *at(struct pbuf *b)
{
	return b->p + b->off;
}

static void take(struct pbuf *b, size_t n)
{
	b->off += n;
	b->len -= n;
	if (!b->len)
		b->off = 0;
}

/* Room at the end for a read or a copy: the waiting bytes to the front. */
static size_t room(struct pbuf *b)
{
	if (b->off) {
		memmove(b->p, b->p + b->off, b->len);
		b->off = 0;
	}
	return BUFCAP - b->len;
}

/* The next line (or chunk) in |b|: its length, 0 when none is complete
 * (|eof|: the rest, however short). */
static size_t next_line(const struct pbuf *b, int eof)
{
	size_t max = b->len < MAILTLS_PROXY_CHUNK ? b->len : MAILTLS_PROXY_CHUNK;
	const char *nl = memchr(b->p + b->off, '\n', max);
	if (nl)
		return (size_t)(nl - (b->p + b->off)) + 1;
	if (max == MAILTLS_PROXY_CHUNK || (eof && b->len))
		return max;
	return 0;
}

/* What was gathered for the client, written within io_secs. */
static int flush_client(struct run *r)
{
	struct timespec dl;
	int ret;
	if (!r->cout.len)
		return 0;
	mt_deadline(&dl, r->secs);
	ret = r->px->tls ? mt_tls_write(r->s, at(&r->cout), r->cout.len, &dl) :
	    mt_plain_write(r->s, at(&r->cout), r->cout.len, &dl);
	r->cout.off = r->cout.len = 0;
	return ret;
}

static int to_client(struct run *r, const char *p, size_t n)
{
	if (n > BUFCAP - r->cout.len && flush_client(r) < 0)
		return -1;
	memcpy(r->cout.p + r->cout.len, p, n);
	r->cout.len += n;
	return 0;
}

static int to_prog(struct run *r, const char *p, size_t n)
{
	if (n > BUFCAP - r->pout.len) {
		mt_seterr(r->s, MAILTLS_E_SYSTEM, "proxy: the program does not read its input");
		return -1;
	}
	room(&r->pout);
	memcpy(r->pout.p + r->pout.len, p, n);
	r->pout.len += n;
	return 0;
}

static int emit(struct run *r, const struct mailtls_proxy_out *o)
{
	if (to_client(r, o->client, o->client_len) < 0)
		return -1;
	return to_prog(r, o->prog, o->prog_len);
}

/* Hands the held client line to the state machine. */
static int submit(struct run *r)
{
	struct mailtls_proxy_out o;
	int more = r->held_more, a;
	if (!r->px->tls) {
		/* Asked now, right before the answer: what came after the line. */
		more = mt_plain_pending(r->s);
		if (more < 0)
			return -1;
	}
	a = mailtls_proxy_client_line(r->px, r->held, r->heldlen, more, &o);
	if (a < 0) {
		mt_seterr(r->s, MAILTLS_E_USAGE, "proxy: state machine refused a line");
		return -1;
	}
	if (a == MAILTLS_PROXY_WAIT)
		return 0;
	r->have_held = 0;
	if (emit(r, &o) < 0)
		return -1;
	if (a == MAILTLS_PROXY_STARTTLS || a == MAILTLS_PROXY_CLOSE)
		r->action = a;
	return 0;
}

static int hold(struct run *r, const char *p, size_t n, int more)
{
	memcpy(r->held, p, n);
	r->heldlen = n;
	r->have_held = 1;
	r->held_more = more;
	return submit(r);
}

/* The program's complete lines, each followed by a new try of a held
 * client line (its answer may have waited for them). */
static int prog_lines(struct run *r)
{
	size_t n;
	while (!r->action && (n = next_line(&r->pin, r->prog_eof)) > 0) {
		struct mailtls_proxy_out o;
		if (mailtls_proxy_server_line(r->px, at(&r->pin), n, &o) < 0 || emit(r, &o) < 0)
			return -1;
		take(&r->pin, n);
		if (r->have_held && submit(r) < 0)
			return -1;
	}
	return 0;
}

/* After TLS: client lines from the decrypted buffer. */
static int client_lines(struct run *r)
{
	size_t n;
	while (!r->action && !r->have_held && r->pout.len < BUFCAP / 2 &&
	    (n = next_line(&r->cin, r->client_eof)) > 0) {
		int more = r->cin.len > n || mailtls_pending(r->s) > 0;
		char line[MAILTLS_PROXY_CHUNK];
		memcpy(line, at(&r->cin), n);
		take(&r->cin, n);
		if (hold(r, line, n, more) < 0)
			return -1;
	}
	return 0;
}

/* Before TLS, once poll reported the client's descriptor: 1 when that
 * was its end (end of file, a reset), not a byte; nothing is read. */
static int client_gone(struct run *r)
{
	int fd = r->s->r.fd, avail = 0;
	if (r->s->r.sock) {
		char c;
		ssize_t k;
		do
			k = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		while (k < 0 && errno == EINTR);
		return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
	}
	/* A pipe or a tty: readable with no byte waiting is its end.  Where
	 * there is no count, the line reader finds the end (as an error). */
	return ioctl(fd, FIONREAD, &avail) == 0 && avail == 0;
}

/* Before TLS: one line from the client as it came, without reading past
 * it; a longer line in parts of MT_LINE_MAX bytes, as the state machine
 * takes them (message data goes on, a command that long is refused). */
static int client_plain_line(struct run *r)
{
	struct mt_line line;
	struct timespec dl;
	if (client_gone(r)) {
		r->client_eof = 1;
		return 0;
	}
	mt_deadline(&dl, r->secs);
	if (mt_plain_readpart(r->s, &line, &dl) < 0)
		return -1;
	return hold(r, line.buf, line.len, 0);
}

/* After TLS: what the session has decrypted.  Returns 0 when bytes (or
 * the end) came, else the poll event the session waits for, or -1. */
static int client_tls_read(struct run *r)
{
	int got = 0;
	while (!r->client_eof && r->cin.len < BUFCAP) {
		ssize_t n;
		int save = r->s->nonblock;
		size_t space = room(&r->cin);
		r->s->nonblock = 1;
		mt_clearerr(r->s);
		n = mt_read_step(r->s, r->cin.p + r->cin.len, space);
		r->s->nonblock = save;
		if (n == MAILTLS_WANT_READ || n == MAILTLS_WANT_WRITE)
			return got ? 0 : n == MAILTLS_WANT_READ ? POLLIN : POLLOUT;
		got = 1;
		if (n == 0 || (n < 0 && r->s->errcode == MAILTLS_E_TRUNCATED))
			r->client_eof = 1;
		else if (n < 0)
			return -1;
		else
			r->cin.len += (size_t)n;
	}
	return got ? 0 : -2;   /* the buffer is full: read on once lines went */
}

static int prog_read(struct run *r)
{
	ssize_t n;
	size_t space = room(&r->pin);
	do
		n = read(r->io->prog_rfd, r->pin.p + r->pin.len, space);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		r->pin.len += (size_t)n;
	else if (n == 0 || errno != EAGAIN)
		r->prog_eof = 1;
	return 0;
}

static void prog_write(struct run *r)
{
	ssize_t n;
	size_t len = r->pout.len > PIPE_BUF ? PIPE_BUF : r->pout.len;
	do
		n = write(r->io->prog_wfd, at(&r->pout), len);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		take(&r->pout, (size_t)n);
	else if (n < 0 && errno != EAGAIN)
		r->pout.off = r->pout.len = 0;   /* the program is gone: its output ends the proxy */
}

static int start_tls(struct run *r)
{
	struct mailtls_proxy_out o;
	r->action = 0;
	if (mailtls_handshake_timeout(r->s, r->io->handshake_secs) < 0)
		return -1;
	if (r->io->on_tls && r->io->on_tls(r->io->arg, r->s) < 0)
		return -1;
	if (mailtls_proxy_tls_started(r->px, &o) < 0) {
		mt_seterr(r->s, MAILTLS_E_USAGE, "proxy: no STARTTLS to record");
		return -1;
	}
	return emit(r, &o);
}

static int loop(struct run *r)
{
	for (;;) {
		struct pollfd pf[3];
		int n = 0, ci = -1, pi = -1, wi = -1, tw = 0;
		if (prog_lines(r) < 0 || (r->px->tls && client_lines(r) < 0) || flush_client(r) < 0)
			return -1;
		if (r->action == MAILTLS_PROXY_CLOSE) {
			if (r->px->injection)
				mt_seterr(r->s, MAILTLS_E_INJECTION, "proxy: plaintext pipelined after STARTTLS refused, connection closed");
			else
				mt_seterr(r->s, MAILTLS_E_PROTOCOL, "proxy: command line longer than %d bytes refused, connection closed",
				    r->px->tls ? MAILTLS_PROXY_CHUNK : MT_LINE_MAX);
			return -1;
		}
		if (r->action == MAILTLS_PROXY_STARTTLS && start_tls(r) < 0)
			return -1;
		if (r->prog_eof && next_line(&r->pin, 1) == 0)
			return 0;
		if (r->client_eof && !r->have_held && r->cin.len == 0 && r->pout.len == 0 && !r->prog_wclosed) {
			close(r->io->prog_wfd);
			r->prog_wclosed = 1;
		}
		if (r->px->tls && !r->have_held && !r->client_eof) {
			tw = client_tls_read(r);
			if (tw == -1)
				return -1;
			if (tw == 0)
				continue;   /* bytes (or the end) came: handle them first */
		}
		if (!r->client_eof && !r->have_held && r->pout.len < BUFCAP / 2 && tw != -2) {
			pf[n].fd = r->s->r.fd;
			pf[n].events = r->px->tls ? (short)tw : POLLIN;
			if (tw == POLLOUT)
				pf[n].fd = r->s->w.fd;
			ci = n++;
		}
		if (!r->prog_eof && r->pin.len < BUFCAP) {
			pf[n].fd = r->io->prog_rfd;
			pf[n].events = POLLIN;
			pi = n++;
		}
		if (r->pout.len && !r->prog_wclosed) {
			pf[n].fd = r->io->prog_wfd;
			pf[n].events = POLLOUT;
			wi = n++;
		}
		if (n == 0)
			return 0;
		if (poll(pf, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			mt_seterr(r->s, MAILTLS_E_SYSTEM, "proxy: poll: %s", strerror(errno));
			return -1;
		}
		if (wi >= 0 && pf[wi].revents)
			prog_write(r);
		if (pi >= 0 && pf[pi].revents)
			prog_read(r);
		if (ci >= 0 && pf[ci].revents && !r->px->tls && client_plain_line(r) < 0)
			return -1;
	}
}

int mailtls_proxy_run(struct mailtls_proxy *p, struct mailtls *s, const struct mailtls_proxy_io *io)
{
	struct run *r;
	int ret;
	if (!s)
		return -1;
	mt_clearerr(s);
	if (!p || !io || s->is_mem || !s->is_server || io->prog_rfd < 0 || io->prog_wfd < 0) {
		mt_seterr(s, MAILTLS_E_USAGE, "proxy: needs a server session on descriptors and two program descriptors");
		return -1;
	}
	if (!(r = calloc(1, sizeof *r))) {
		mt_seterr(s, MAILTLS_E_NOMEM, "proxy: out of memory");
		return -1;
	}
	r->px = p;
	r->s = s;
	r->io = io;
	r->secs = io->io_secs > 0 ? io->io_secs : 1200;
	ret = loop(r);
	if (!r->prog_wclosed)
		close(io->prog_wfd);
	if (ret == 0) {
		mt_clearerr(s);
		if (p->tls && !r->client_eof)
			if (mailtls_close_timeout(s, r->secs) < 0)
				mt_clearerr(s);   /* the peer may be gone: nothing lost */
		if (s->w.sock)
			shutdown(s->w.fd, SHUT_WR);
	}
	free(r);
	return ret;
}
