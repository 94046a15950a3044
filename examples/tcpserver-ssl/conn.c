/* conn.c -- one connection, in the forked child: a balancer's PROXY header
 * (-k), names, rules, the environment, the TLS handshake with a deadline,
 * then the program on plaintext pipes with this process as the relay.  Under -y (UCSPI-TLS)
 * the program starts first, on the socket in plaintext, and the handshake
 * and the relay follow only when it asks for them on SSLCTLFD.  Under -e
 * (the protocol proxy) the program starts on plaintext pipes before any
 * TLS and the library's proxy stands between it and the client, running
 * the handshake when the client sends STARTTLS.  Exits with
 * the program's status (or dies of its signal), 100 when the rules deny,
 * 111 on a temporary failure. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rules.h"
#include "tcpserver-ssl.h"

static void log_tls(struct mailtls *s)
{
	char client[600], esni[300];
	if (!log_verbose())
		return;
	ucspi_tls_desc(s, client, sizeof client, esni, sizeof esni);
	log_status("tls %ld %s %s sni=%s client=%s%s", (long)getpid(), mailtls_protocol(s),
	    mailtls_cipher(s), esni, client, mailtls_session_reused(s) ? " resumed" : "");
}

static pid_t start_prog_or_die(const struct opts *o, int in, int out)
{
	pid_t pid = ucspi_spawn(o->prog, in, out, 0);
	if (pid < 0)
		fatal(111, "unable to run %s: %s", o->prog[0], strerror(errno));
	return pid;
}

/* After a failure once the program runs: ucspi_end_prog, and this process
 * exits |code| (111) only once the program is gone, so the end line means
 * the connection is over. */
static void end_prog_and_exit(pid_t pid, struct mailtls_ucspitls *u, int sock, int hangup_first, int code)
{
	ucspi_end_prog(pid, u, sock, hangup_first);
	_exit(code);
}

/* The TLS handshake within -T seconds; a failure is logged. */
static int handshake(const struct opts *o, struct mailtls *s)
{
	if (mailtls_handshake_timeout(s, o->hs_timeout) < 0) {
		log_error("tls failed %ld %s: %s", (long)getpid(), mailtls_errcode_name(mailtls_errcode(s)),
		    mailtls_error(s));
		return -1;
	}
	return 0;
}

/* Once the handshake is done: the tls line, and no private key stays in
 * the process that lives as long as the session. */
static int tls_established(struct mailtls *s, struct mailtls_config *cfg)
{
	log_tls(s);
	if (mailtls_release_config(s) < 0)
		return -1;
	mailtls_config_free(cfg);
	return 0;
}

/* The relay between the session and the program's plaintext descriptors
 * (|rfd|: what it writes, |wfd|: what it reads), then the program's end
 * is this process's end. */
static void relay_and_exit_like(struct mailtls *s, int rfd, int wfd, int sock, pid_t pid)
{
	struct mailtls_relay_result res;
	/* A client that vanishes without close_notify is common (and harmless
	 * once the protocol said goodbye): no error, a -v line. */
	if (mailtls_relay(s, rfd, wfd, MAILTLS_RELAY_OWN_FDS, 0, &res) < 0) {
		if (mailtls_errcode(s) == MAILTLS_E_TRUNCATED)
			log_status("tls truncated %ld: the client ended the session without close_notify", (long)getpid());
		else
			log_error("relay %ld: %s", (long)getpid(), mailtls_error(s));
	}
	/* The relay closed |rfd| at its end of file only: a program still
	 * writing to a peer that is gone gets EPIPE rather than a full pipe
	 * nobody reads while this process waits for it. */
	if (!res.plain_eof)
		close(rfd);
	mailtls_free(s);
	close(sock);
	ucspi_exit_like(ucspi_wait(pid));
}

static void run_plain(const struct opts *o, struct conninfo *ci)
{
	if (dup2(ci->fd, 0) < 0 || dup2(ci->fd, 1) < 0)
		fatal(111, "unable to set up descriptors: %s", strerror(errno));
	signal(SIGPIPE, SIG_DFL);
	execvp(o->prog[0], o->prog);
	fatal(111, "unable to run %s: %s", o->prog[0], strerror(errno));
}

/* TLS at once: the handshake, then the program on plaintext pipes. */
static void run_tls(const struct opts *o, struct mailtls_config *cfg, struct conninfo *ci)
{
	struct mailtls *s = mailtls_server(cfg, ci->fd, ci->fd);
	int to_prog[2], from_prog[2];
	pid_t pid;
	if (!s)
		fatal(111, "unable to make a TLS session: %s", strerror(errno));
	if (handshake(o, s) < 0)
		_exit(111);
	ucspi_tls_env(s);
	if (tls_established(s, cfg) < 0)
		_exit(111);
	if (o->banner && mailtls_timeoutwrite(o->hs_timeout, s, o->banner, strlen(o->banner)) < 0)
		_exit(111);
	if (pipe2(to_prog, O_CLOEXEC) < 0 || pipe2(from_prog, O_CLOEXEC) < 0)
		fatal(111, "unable to create pipes: %s", strerror(errno));
	pid = start_prog_or_die(o, to_prog[0], from_prog[1]);
	close(to_prog[0]);
	close(from_prog[1]);
	relay_and_exit_like(s, from_prog[0], to_prog[1], ci->fd, pid);
}

/* UCSPI-TLS (-y): the program starts on the socket itself, in plaintext,
 * with SSLCTLFD, SSLREADFD and SSLWRITEFD; TLS starts when it asks. */
static void run_ucspitls(const struct opts *o, struct mailtls_config *cfg, struct conninfo *ci)
{
	struct mailtls_ucspitls u;
	struct mailtls *s;
	char env[128];
	ssize_t n;
	pid_t pid;
	int req;

	if (mailtls_ucspitls_open(&u) < 0)
		fatal(111, "unable to create the UCSPI-TLS descriptors: %s", strerror(errno));
	n = mailtls_ucspitls_env(&u, env, sizeof env);
	if (n < 0)
		fatal(111, "out of memory");
	ucspi_put_block(env, (size_t)n);
	if (!(s = mailtls_server(cfg, ci->fd, ci->fd)))
		fatal(111, "unable to make a TLS session: %s", strerror(errno));
	pid = start_prog_or_die(o, ci->fd, ci->fd);
	mailtls_ucspitls_close_program(&u);

	req = ucspi_tls_request(s, &u, pid);
	if (req == 0) {
		/* Plaintext to the end: the connection closes when the program
		 * does, and declining TLS is no reason to end it. */
		mailtls_free(s);
		mailtls_config_free(cfg);
		mailtls_ucspitls_close_ours(&u);
		close(ci->fd);
		ucspi_exit_like(ucspi_wait(pid));
	}
	/* The program now reads SSLREADFD and writes SSLWRITEFD: what still
	 * comes on the socket is the client's TLS (bytes it sent after the
	 * program's "220 ready" and before its ClientHello make the handshake
	 * fail, as they must). */
	if (req < 0) {
		log_error("tls failed %ld %s: %s", (long)getpid(), mailtls_errcode_name(mailtls_errcode(s)),
		    mailtls_error(s));
	} else if (handshake(o, s) == 0) {
		if (req == 'Y' && mailtls_ucspitls_reply(s, &u, o->hs_timeout) < 0) {
			log_error("tls failed %ld %s: unable to send the TLS facts: %s", (long)getpid(),
			    mailtls_errcode_name(mailtls_errcode(s)), mailtls_error(s));
		} else if (tls_established(s, cfg) == 0) {
			close(u.ctl[1]);
			relay_and_exit_like(s, u.wr[0], u.rd[1], ci->fd, pid);
		}
	}
	end_prog_and_exit(pid, &u, ci->fd, 0, 111);
}

/* -e: what the proxy calls once the handshake is done. */
struct proxy_arg {
	struct mailtls_config *cfg;
	int tls;
};

static int proxy_on_tls(void *arg, struct mailtls *s)
{
	struct proxy_arg *a = arg;
	a->tls = 1;
	/* The program's environment was made when it started: the TLS facts
	 * can only be logged (the tls line), not given to it. */
	return tls_established(s, a->cfg);
}

/* The protocol proxy (-e): the program on plaintext pipes at once; the
 * library relays, adds STARTTLS, and runs the handshake when asked. */
static void run_proxy(const struct opts *o, struct mailtls_config *cfg, struct conninfo *ci)
{
	struct mailtls_ucspitls none = { { -1, -1 }, { -1, -1 }, { -1, -1 } };
	struct proxy_arg arg = { cfg, 0 };
	struct mailtls_proxy_io io;
	struct mailtls_proxy *px = mailtls_proxy_new(o->proxy, o->proxy_flags);
	struct mailtls *s = mailtls_server(cfg, ci->fd, ci->fd);
	int to_prog[2], from_prog[2], code;
	pid_t pid;
	if (!px || !s)
		fatal(111, "unable to make a TLS session: %s", strerror(errno));
	if (pipe2(to_prog, O_CLOEXEC) < 0 || pipe2(from_prog, O_CLOEXEC) < 0)
		fatal(111, "unable to create pipes: %s", strerror(errno));
	pid = start_prog_or_die(o, to_prog[0], from_prog[1]);
	close(to_prog[0]);
	close(from_prog[1]);
	memset(&io, 0, sizeof io);
	io.prog_rfd = from_prog[0];
	io.prog_wfd = to_prog[1];
	io.handshake_secs = o->hs_timeout;
	io.on_tls = proxy_on_tls;
	io.arg = &arg;
	if (mailtls_proxy_run(px, s, &io) == 0) {
		close(from_prog[0]);
		mailtls_proxy_free(px);
		mailtls_free(s);
		close(ci->fd);
		ucspi_exit_like(ucspi_wait(pid));
	}
	code = mailtls_errcode(s);
	if (!arg.tls && code != MAILTLS_E_INJECTION && code != MAILTLS_E_PROTOCOL && code != MAILTLS_E_SYSTEM)
		log_error("tls failed %ld %s: %s", (long)getpid(), mailtls_errcode_name(code), mailtls_error(s));
	else
		log_error("proxy %ld %s: %s", (long)getpid(), mailtls_errcode_name(code), mailtls_error(s));
	/* The program's input is closed (mailtls_proxy_run did), and now its
	 * output and the client: to a program that knows nothing of TLS a
	 * refused session is a client that hung up, which it handles as
	 * always (no half-received message is kept). */
	close(from_prog[0]);
	end_prog_and_exit(pid, &none, ci->fd, 1, 111);
}

/* The PROXY header of a trusted balancer (-k): the client it names takes
 * the place of the balancer in |ci|, and the balancer's own connection
 * goes into |via|.  Returns 1 when a header named a client, 0 for a LOCAL
 * or UNKNOWN header and for connections not from a trusted balancer.  A
 * header that is missing, malformed or cut short, or one sent by another
 * address, ends the connection here, before anything is written to it or
 * started for it. */
static int proxy_header(const struct opts *o, struct conninfo *ci, struct conninfo *via)
{
	struct mailtls_proxyproto pp;
	size_t need;
	*via = *ci;
	if (!o->ntrusted)
		return 0;
	if (!trust_match(o, ci->remoteip)) {
		/* Untrusted: a header is a forged address.  With TLS at once the
		 * first bytes are a ClientHello, which never looks like a header,
		 * so they are awaited (the handshake would wait for them anyway);
		 * where the server speaks first only what already came is seen
		 * (a header arriving later is a line of the protocol, never an
		 * address). */
		unsigned char peek[16];
		struct pollfd p = { .fd = ci->fd, .events = POLLIN };
		int implicit = o->tls && !o->ucspitls && !o->proxy;
		ssize_t n = 0;
		if (poll(&p, 1, implicit ? o->hs_timeout * 1000 : 0) > 0)
			n = recv(ci->fd, peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT);
		if (n > 0 && mailtls_proxyproto_parse(peek, (size_t)n, &pp, &need) >= 0) {
			log_error("proxy header dropped %ld from %s:%u: a PROXY header from an address not trusted (-k)",
			    (long)getpid(), ci->remoteip, ci->remoteport);
			_exit(100);
		}
		return 0;
	}
	if (mailtls_proxyproto_read(ci->fd, o->hs_timeout, &pp) < 0) {
		log_error("proxy header dropped %ld from %s:%u: %s", (long)getpid(), ci->remoteip, ci->remoteport,
		    pp.error);
		_exit(pp.errcode == MAILTLS_E_PROTOCOL ? 100 : 111);
	}
	log_status("proxy header %ld v%d%s from %s:%u", (long)getpid(), pp.version, pp.local ? " local" : "",
	    ci->remoteip, ci->remoteport);
	if (pp.local)
		return 0;
	snprintf(ci->remoteip, sizeof ci->remoteip, "%s", pp.srcip);
	snprintf(ci->localip, sizeof ci->localip, "%s", pp.dstip);
	ci->remoteport = pp.srcport;
	ci->localport = pp.dstport;
	ci->v6 = pp.v6;
	ci->scope = 0;
	return 1;
}

/* PROXYREMOTEIP and the rest: the balancer's connection to us, set only
 * when a header named the client (inherited ones always go). */
static void proxy_env(const struct conninfo *via, int proxied)
{
	char port[16];
	static const char *const names[] = { "PROXYREMOTEIP", "PROXYREMOTEPORT", "PROXYLOCALIP", "PROXYLOCALPORT" };
	if (!proxied) {
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
			unsetenv(names[i]);
		return;
	}
	ucspi_setenv("PROXYREMOTEIP", via->remoteip);
	snprintf(port, sizeof port, "%u", via->remoteport);
	ucspi_setenv("PROXYREMOTEPORT", port);
	ucspi_setenv("PROXYLOCALIP", via->localip);
	snprintf(port, sizeof port, "%u", via->localport);
	ucspi_setenv("PROXYLOCALPORT", port);
}

void conn_serve(const struct opts *o, struct mailtls_config *cfg, struct conninfo *ci)
{
	struct conninfo via;
	int proxied;
	char lhost[256], rhost[256], rinfo[256], where[1024];
	const char *lh = o->localname, *rh = NULL, *ri = NULL;
	struct rules_result rr;
	int one = 1, found = 0, deny = 0;

	memset(&rr, 0, sizeof rr);
	if (!o->keep_ipopts && !ci->v6)
		setsockopt(ci->fd, IPPROTO_IP, IP_OPTIONS, NULL, 0);
	proxied = proxy_header(o, ci, &via);
	log_status("pid %ld from %s", (long)getpid(), ci->remoteip);
	setsockopt(ci->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if ((!o->tls || o->ucspitls || o->proxy) && o->banner) {
		/* Plain tcpserver writes the banner before any lookup; so do -y
		 * and -e, whose program starts in plaintext. */
		if (write(ci->fd, o->banner, strlen(o->banner)) < 0)
			_exit(111);
	}
	if (!lh && name_of(ci->localip, 0, lhost, sizeof lhost))
		lh = lhost;
	if (o->lookup_remote && name_of(ci->remoteip, o->paranoid, rhost, sizeof rhost))
		rh = rhost;
	/* ident asks the client's host about the connection's ports: behind a
	 * balancer that connection is not ours to ask about. */
	if (o->ident && !proxied && ucspi_ident(ci, (unsigned)o->ident_timeout, rinfo, sizeof rinfo))
		ri = rinfo;
	if (o->rules) {
		found = rules_lookup(o->rules, ci->remoteip, rh, ri, &rr);
		if (found < 0) {
			if (errno != ENOENT || !o->rules_missing_ok) {
				/* rules.c's EPROTO: the file is no cdb (strerror's
				 * "Protocol error" would point at the network) */
				log_error("warning: dropping connection, unable to read %s: %s", o->rules,
				    errno == EPROTO ? "not a cdb file (damaged or truncated)" : errstr(errno));
				_exit(111);
			}
			found = 0;
		}
		deny = found > 0 && rr.deny;
	}
	snprintf(where, sizeof where, "%s:%s:%u %s:%s:%s:%u", lh ? lh : "", ci->localip, ci->localport,
	    rh ? rh : "", ci->remoteip, ri ? ri : "", ci->remoteport);
	log_status("%s %ld %s", deny ? "deny" : "ok", (long)getpid(), where);
	if (deny)
		_exit(100);
	ucspi_tcp_env(ci, lh, rh, ri);
	proxy_env(&via, proxied);
	if (found > 0 && rr.env)
		ucspi_put_block(rr.env, rr.envlen);
	rules_result_free(&rr);
	ucspi_drop_ssl_vars();
	if (o->tls && o->sni_strict)
		mailtls_config_set_sni_strict(cfg, 1);
	if (o->tls && o->proxy)
		run_proxy(o, cfg, ci);
	if (o->tls && o->ucspitls)
		run_ucspitls(o, cfg, ci);
	if (o->tls)
		run_tls(o, cfg, ci);
	mailtls_config_free(cfg);
	run_plain(o, ci);
	_exit(111);
}
