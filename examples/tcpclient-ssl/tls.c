/* tls.c -- the TLS side: the configuration (trust anchors, client
 * certificate, verification), then one of
 *   run_tls       implicit TLS, or client STARTTLS first (-e), then the
 *                 program on plaintext pipes (fds 6 and 7) with this
 *                 process as the relay;
 *   run_ucspitls  client-side UCSPI-TLS (-y): the program starts on the
 *                 connection itself and asks for TLS on SSLCTLFD.
 * Both end the process with the program's status (or its signal), or 111
 * when TLS could not be had. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tcpclient-ssl.h"

static const char *env_or(const char *opt, const char *name)
{
	const char *v;
	if (opt)
		return opt;
	v = getenv(name);
	return v && *v ? v : NULL;
}

struct mailtls_config *tls_config(const struct opts *o)
{
	struct mailtls_config *cfg = mailtls_config_new();
	const char *cafile = env_or(o->cafile, "CAFILE");
	const char *cadir = env_or(o->cadir, "CADIR");
	const char *cert = env_or(o->certfile, "CERTFILE");
	const char *key = env_or(o->keyfile, "KEYFILE");
	const char *ciphers = env_or(NULL, "CIPHERS");
	if (!cfg)
		fatal(111, "out of memory");
	if (!cert)
		cert = env_or(NULL, "CERTCHAINFILE");
	if (!cafile && !cadir && access(TCPCLIENT_SSL_CAFILE, R_OK) == 0)
		cafile = TCPCLIENT_SSL_CAFILE;
	if (cafile || cadir) {
		if (mailtls_config_set_ca(cfg, cafile, cadir) < 0)
			fatal(111, "unable to load the trust anchors: %s (%s)", mailtls_config_error(cfg),
			    mailtls_errcode_name(mailtls_config_errcode(cfg)));
	} else if (!o->insecure) {
		fatal(111, "unable to verify servers: no trust anchors (give -a cafile or -A cadir, or set "
		    "CAFILE or CADIR)");
	}
	if (mailtls_config_set_verify(cfg, o->insecure ? MAILTLS_VERIFY_OPTIONAL : MAILTLS_VERIFY_REQUIRE) < 0)
		fatal(111, "unable to set the verification mode: %s", mailtls_config_error(cfg));
	if (key && !cert)
		fatal(100, "a key (-k or KEYFILE) needs a certificate (-c or CERTFILE)");
	if (cert) {
		/* The key lives in this process until the handshake is done. */
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		if (mailtls_config_set_keypair_file(cfg, cert, key) < 0)
			fatal(111, "unable to load the client certificate: %s (%s)", mailtls_config_error(cfg),
			    mailtls_errcode_name(mailtls_config_errcode(cfg)));
	}
	if (ciphers && mailtls_config_set_ciphers(cfg, ciphers) < 0)
		fatal(111, "unable to use CIPHERS: %s (%s)", mailtls_config_error(cfg),
		    mailtls_errcode_name(mailtls_config_errcode(cfg)));
	return cfg;
}

/* The name sent as SNI and verified: -N, else the host as given (an
 * address literal sends no SNI and is checked against IP SANs; host 0,
 * this machine, has no name at all). */
static const char *servername(const struct opts *o)
{
	if (o->servername)
		return *o->servername ? o->servername : NULL;
	return strcmp(o->host, "0") ? o->host : NULL;
}

static void log_tls(struct mailtls *s)
{
	char server[600], esni[300];
	if (!log_verbose())
		return;
	ucspi_tls_desc(s, server, sizeof server, esni, sizeof esni);
	log_status("tls %s %s sni=%s server=%s%s", mailtls_protocol(s), mailtls_cipher(s), esni, server,
	    mailtls_session_reused(s) ? " resumed" : "");
}

/* The failure line: "unable to <what> with IP port N: <error> (<category>)". */
static void __attribute__((noreturn)) tls_fatal(const struct conninfo *ci, const char *what, struct mailtls *s)
{
	fatal(111, "unable to %s with %s port %u: %s (%s)", what, ci->remoteip, ci->remoteport, mailtls_error(s),
	    mailtls_errcode_name(mailtls_errcode(s)));
}

/* Starts the program with |rfd| as its fd 6 and |wfd| as its fd 7, SIGPIPE
 * at its default and no signal blocked.  Every descriptor of ours is at
 * FD_FLOOR or above, so neither dup2 clobbers the other's source. */
static volatile pid_t child;

/* tcpclient execs the program, so what a supervisor sends it reaches the
 * program: here SIGTERM and SIGHUP are passed on, and the relay ends when
 * the program does. */
static void pass_on(int sig)
{
	int e = errno;
	if (child > 0)
		kill(child, sig);
	errno = e;
}

static void forward_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = pass_on;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* SIGTERM and SIGHUP wait (blocked) from before the program starts until
 * its pid is known and they are passed on: one sent in between reaches it
 * too, rather than ending this process and leaving the program behind.
 * The program starts with no signal blocked (ucspi_spawn). */
static pid_t start_prog(char **prog, int rfd, int wfd)
{
	sigset_t both, old;
	pid_t pid;
	sigemptyset(&both);
	sigaddset(&both, SIGTERM);
	sigaddset(&both, SIGHUP);
	sigprocmask(SIG_BLOCK, &both, &old);
	pid = ucspi_spawn(prog, rfd, wfd, 6);
	if (pid < 0)
		fatal(111, "unable to run %s: %s", prog[0], errstr(errno));
	child = pid;
	forward_signals();
	sigprocmask(SIG_SETMASK, &old, NULL);
	return pid;
}

/* TLS failed while the program runs (-y): it is ended (ucspi_end_prog),
 * and this process exits 111. */
static void __attribute__((noreturn)) end_prog(pid_t pid, struct mailtls_ucspitls *u, const struct conninfo *ci,
    const char *what, struct mailtls *s)
{
	ucspi_end_prog(pid, u, ci->fd, 0);
	tls_fatal(ci, what, s);
}

static void relay(struct mailtls *s, int rfd, int wfd)
{
	struct mailtls_relay_result res;
	if (mailtls_relay(s, rfd, wfd, MAILTLS_RELAY_OWN_FDS, 0, &res) < 0) {
		if (mailtls_errcode(s) == MAILTLS_E_TRUNCATED)
			log_status("server ended the connection without close_notify");
		else
			log_error("warning: TLS connection: %s (%s)", mailtls_error(s),
			    mailtls_errcode_name(mailtls_errcode(s)));
	}
}

/* A polite end of the plaintext dialogue when STARTTLS could not be had. */
static void say_goodbye(int fd, int proto)
{
	const char *bye = proto == MAILTLS_IMAP ? "a9 LOGOUT\r\n" : "QUIT\r\n";
	if (send(fd, bye, strlen(bye), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* The connection is going away in any case. */
	}
}

static const char *first_line(const char *text, char *out, size_t len)
{
	snprintf(out, len, "%.*s", (int)strcspn(text, "\n"), text);
	return out;
}

void run_tls(const struct opts *o, struct mailtls_config *cfg, struct conninfo *ci)
{
	struct mailtls *s = mailtls_client(cfg, ci->fd, ci->fd, servername(o));
	int to_prog[2], from_prog[2];
	pid_t pid;
	if (!s)
		fatal(111, "unable to make a TLS session: %s", errstr(errno));
	if (o->starttls) {
		static struct mailtls_starttls_info info;
		char line[300];
		int r = mailtls_starttls_client(s, o->starttls, o->ehlo, o->tls_timeout, &info);
		if (r < 0)
			tls_fatal(ci, "start TLS", s);
		if (r == MAILTLS_STARTTLS_NOT_OFFERED) {
			say_goodbye(ci->fd, o->starttls);
			fatal(111, "unable to start TLS with %s port %u: the server did not offer STARTTLS (protocol)",
			    ci->remoteip, ci->remoteport);
		}
		if (r == MAILTLS_STARTTLS_REFUSED) {
			say_goodbye(ci->fd, o->starttls);
			fatal(111, "unable to start TLS with %s port %u: STARTTLS refused: %s (protocol)", ci->remoteip,
			    ci->remoteport, first_line(info.starttls_reply, line, sizeof line));
		}
	} else if (mailtls_handshake_timeout(s, o->tls_timeout) < 0) {
		tls_fatal(ci, "start TLS", s);
	}
	log_tls(s);
	ucspi_tls_env(s);
	/* No private key stays in the process that lives as long as the session. */
	if (mailtls_release_config(s) < 0)
		fatal(111, "unable to drop the TLS configuration: %s", mailtls_error(s));
	mailtls_config_free(cfg);

	if (pipe2(to_prog, O_CLOEXEC) < 0 || pipe2(from_prog, O_CLOEXEC) < 0)
		fatal(111, "unable to create pipes: %s", errstr(errno));
	for (int i = 0; i < 2; i++) {
		to_prog[i] = fd_high(to_prog[i], 1);
		from_prog[i] = fd_high(from_prog[i], 1);
	}
	pid = start_prog(o->prog, to_prog[0], from_prog[1]);
	close(to_prog[0]);
	close(from_prog[1]);
	signal(SIGPIPE, SIG_IGN);
	relay(s, from_prog[0], to_prog[1]);
	mailtls_free(s);
	close(ci->fd);
	ucspi_exit_like(ucspi_wait(pid));
}

void run_ucspitls(const struct opts *o, struct mailtls_config *cfg, struct conninfo *ci)
{
	struct mailtls_ucspitls u;
	struct mailtls *s;
	char block[128];
	ssize_t n;
	pid_t pid;
	int req;

	if (mailtls_ucspitls_open(&u) < 0)
		fatal(111, "unable to create the UCSPI-TLS descriptors: %s", errstr(errno));
	u.ctl[0] = fd_high(u.ctl[0], 0);
	u.rd[0] = fd_high(u.rd[0], 0);
	u.wr[1] = fd_high(u.wr[1], 0);
	u.ctl[1] = fd_high(u.ctl[1], 1);
	u.rd[1] = fd_high(u.rd[1], 1);
	u.wr[0] = fd_high(u.wr[0], 1);
	n = mailtls_ucspitls_env(&u, block, sizeof block - 1);
	if (n < 0)
		fatal(111, "unable to describe the UCSPI-TLS descriptors");
	block[n] = 0;
	ucspi_put_block(block, (size_t)n + 1);
	if (!(s = mailtls_client(cfg, ci->fd, ci->fd, servername(o))))
		fatal(111, "unable to make a TLS session: %s", errstr(errno));

	/* The program's plaintext phase runs on the connection itself. */
	pid = start_prog(o->prog, ci->fd, ci->fd);
	mailtls_ucspitls_close_program(&u);
	signal(SIGPIPE, SIG_IGN);

	req = ucspi_tls_request(s, &u, pid);
	if (req < 0)
		end_prog(pid, &u, ci, "serve the program's UCSPI-TLS request", s);
	if (req == 0) {
		/* Never asked: the session stays plaintext, between the program
		 * and the server alone. */
		log_status("the program did not ask for TLS: the connection stays plaintext");
		mailtls_ucspitls_close_ours(&u);
		mailtls_free(s);
		mailtls_config_free(cfg);
		close(ci->fd);
		ucspi_exit_like(ucspi_wait(pid));
	}
	if (mailtls_handshake_timeout(s, o->tls_timeout) < 0)
		end_prog(pid, &u, ci, "start TLS", s);
	log_tls(s);
	if (mailtls_release_config(s) < 0)
		fatal(111, "unable to drop the TLS configuration: %s", mailtls_error(s));
	mailtls_config_free(cfg);
	/* A program that asked for the facts and cannot have them would wait
	 * for them, or read TLS it cannot trust: it is ended as for a failed
	 * handshake (tcpserver-ssl does the same). */
	if (req == 'Y' && mailtls_ucspitls_reply(s, &u, o->tls_timeout) < 0)
		end_prog(pid, &u, ci, "send the TLS facts to the program", s);
	close(u.ctl[1]);
	u.ctl[1] = -1;
	relay(s, u.wr[0], u.rd[1]);
	mailtls_free(s);
	close(ci->fd);
	ucspi_exit_like(ucspi_wait(pid));
}
