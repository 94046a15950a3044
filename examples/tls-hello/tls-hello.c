/*
 * tls-hello -- the smallest TLS server built on libmailtls: the demo of
 * tools/demo.sh, and a long-lived process for the OpenSSL-mapping check.
 *
 * Interface:
 *   tls-hello [ -b address ] [ -p port ] [ -n count ] [ -t secs ] certfile [ keyfile ]
 * Listens on address:port (default 127.0.0.1, port 0: the kernel picks one)
 * and prints "tls-hello: listening on ADDRESS:PORT" on stdout once it
 * accepts connections.  Each connection gets a child process that runs the
 * TLS handshake, sends a greeting naming the protocol and cipher, echoes
 * every line back ("echo: LINE"), and on "QUIT" (or at the peer's end of
 * stream) answers "bye", sends close_notify and closes.
 * certfile is a PEM certificate chain; keyfile the PEM key (default: in
 * certfile).
 *
 * Options:
 *   -b address  IPv4 or IPv6 address to bind (default 127.0.0.1)
 *   -p port     TCP port (default 0)
 *   -n count    exit after serving count connections (default: forever)
 *   -t secs     deadline of the handshake and of each read and write (default 60)
 *
 * Exit codes: 0 after -n connections; 100 usage; 111 system or
 * configuration failure.  A child exits 0 after a clean end, 96 on a TLS
 * failure, 111 on a system failure.
 *
 * Uses mailtls.h only.  ISC license: see LICENSE.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mailtls.h>

#define PROG "tls-hello"
#define LINE_MAX_LEN 1000

static void
usage(void)
{
	fprintf(stderr, PROG ": usage: " PROG
	    " [ -b address ] [ -p port ] [ -n count ] [ -t secs ] certfile [ keyfile ]\n");
	exit(100);
}

static void
fatal_sys(const char *what)
{
	fprintf(stderr, PROG ": fatal: unable to %s: %s\n", what, strerror(errno));
	exit(111);
}

/* session_fail reports why a connection ended badly and ends the child. */
static void
session_fail(struct mailtls *s, const char *peer, const char *what)
{
	int code = mailtls_errcode(s);

	fprintf(stderr, PROG ": warning: %s: unable to %s: %s (%s, %s)\n", peer, what,
	    mailtls_error(s), mailtls_errcode_name(code),
	    mailtls_error_temporary(code) ? "temporary" : "permanent");
	exit(code == MAILTLS_E_SYSTEM ? 111 : 96);
}

static void
say(struct mailtls *s, const char *peer, int secs, const char *text, size_t len)
{
	if (mailtls_timeoutwrite(secs, s, text, len) < 0)
		session_fail(s, peer, "write");
}

/* serve runs one connection in a child process and does not return. */
static void
serve(struct mailtls_config *cfg, int fd, const char *peer, int secs)
{
	struct mailtls *s;
	char greeting[256], buf[LINE_MAX_LEN + 1], out[LINE_MAX_LEN + 16];
	size_t have = 0;
	int n;

	s = mailtls_server(cfg, fd, fd);
	if (!s)
		fatal_sys("make a TLS session");
	if (mailtls_handshake_timeout(s, secs) < 0)
		session_fail(s, peer, "complete the TLS handshake");
	fprintf(stderr, PROG ": %s: %s %s (%d bits)\n", peer, mailtls_protocol(s),
	    mailtls_cipher(s), mailtls_cipher_bits(s));
	n = snprintf(greeting, sizeof greeting,
	    "hello from " PROG " (libmailtls %s) over %s with %s; lines are echoed, QUIT ends\r\n",
	    mailtls_version(), mailtls_protocol(s), mailtls_cipher(s));
	say(s, peer, secs, greeting, (size_t)n);

	for (;;) {
		char *nl;
		ssize_t r;

		/* Echo each complete line (or a full buffer without one). */
		while ((nl = memchr(buf, '\n', have)) || have == LINE_MAX_LEN) {
			size_t linelen = nl ? (size_t)(nl - buf) : have;
			size_t used = nl ? linelen + 1 : have;

			if (linelen && buf[linelen - 1] == '\r')
				linelen--;
			if (linelen == 4 && strncasecmp(buf, "QUIT", 4) == 0)
				goto done;
			n = snprintf(out, sizeof out, "echo: %.*s\r\n", (int)linelen, buf);
			say(s, peer, secs, out, (size_t)n);
			memmove(buf, buf + used, have - used);
			have -= used;
		}
		r = mailtls_timeoutread(secs, s, buf + have, LINE_MAX_LEN - have);
		if (r < 0)
			session_fail(s, peer, "read");
		if (r == 0) {
			/* The peer's close_notify: answer with ours if it still
			 * listens; it may well have gone, which is no failure. */
			if (mailtls_close_timeout(s, secs) < 0) {
				/* gone already: not a failure */
			}
			goto end;
		}
		have += (size_t)r;
	}
done:
	say(s, peer, secs, "bye\r\n", 5);
	if (mailtls_close_timeout(s, secs) < 0)
		session_fail(s, peer, "send close_notify");
end:
	mailtls_free(s);
	mailtls_config_free(cfg);
	close(fd);
	exit(0);
}

int
main(int argc, char **argv)
{
	const char *addr = "127.0.0.1", *port = "0", *certfile, *keyfile;
	long count = -1, served = 0;
	int secs = 60, opt, lfd, on = 1, rc;
	struct addrinfo hints, *ai;
	struct sockaddr_storage ss;
	socklen_t sslen;
	char host[NI_MAXHOST], serv[NI_MAXSERV];
	struct mailtls_config *cfg;
	struct sigaction sa;

	while ((opt = getopt(argc, argv, "b:p:n:t:")) != -1) {
		switch (opt) {
		case 'b': addr = optarg; break;
		case 'p': port = optarg; break;
		case 'n': count = atol(optarg); if (count < 1) usage(); break;
		case 't': secs = atoi(optarg); if (secs < 1) usage(); break;
		default: usage();
		}
	}
	if (argc - optind < 1 || argc - optind > 2)
		usage();
	certfile = argv[optind];
	keyfile = argc - optind == 2 ? argv[optind + 1] : NULL;

	/* Keys are loaded once, before any connection. */
	cfg = mailtls_config_new();
	if (!cfg)
		fatal_sys("make a TLS configuration");
	if (mailtls_config_set_keypair_file(cfg, certfile, keyfile) < 0) {
		fprintf(stderr, PROG ": fatal: unable to load the certificate: %s\n",
		    mailtls_config_error(cfg));
		exit(111);
	}

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	rc = getaddrinfo(addr, port, &hints, &ai);
	if (rc != 0) {
		fprintf(stderr, PROG ": fatal: bad address %s port %s: %s\n", addr, port,
		    gai_strerror(rc));
		exit(100);
	}
	lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		fatal_sys("make a socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
	if (bind(lfd, ai->ai_addr, ai->ai_addrlen) < 0)
		fatal_sys("bind");
	freeaddrinfo(ai);
	if (listen(lfd, 16) < 0)
		fatal_sys("listen");
	sslen = sizeof ss;
	if (getsockname(lfd, (struct sockaddr *)&ss, &sslen) < 0)
		fatal_sys("read the bound address");
	if (getnameinfo((struct sockaddr *)&ss, sslen, host, sizeof host, serv, sizeof serv,
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		fatal_sys("format the bound address");
	printf(PROG ": listening on %s%s%s:%s\n", ss.ss_family == AF_INET6 ? "[" : "", host,
	    ss.ss_family == AF_INET6 ? "]" : "", serv);
	fflush(stdout);

	/* Children are reaped by the kernel; a vanished peer raises no SIGPIPE. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sa.sa_flags = SA_NOCLDWAIT;
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	while (count < 0 || served < count) {
		int fd;
		pid_t pid;

		sslen = sizeof ss;
		fd = accept4(lfd, (struct sockaddr *)&ss, &sslen, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fatal_sys("accept");
		}
		served++;
		if (getnameinfo((struct sockaddr *)&ss, sslen, host, sizeof host, serv,
		    sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
			strcpy(host, "?"), strcpy(serv, "?");
		pid = fork();
		if (pid < 0) {
			fprintf(stderr, PROG ": warning: unable to fork: %s\n", strerror(errno));
			close(fd);
			continue;
		}
		if (pid == 0) {
			char peer[NI_MAXHOST + NI_MAXSERV + 4];

			close(lfd);
			snprintf(peer, sizeof peer, "%s:%s", host, serv);
			serve(cfg, fd, peer, secs);
		}
		close(fd);
	}
	close(lfd);
	mailtls_config_free(cfg);
	/* With SIGCHLD ignored, wait returns (ECHILD) once every child is gone. */
	while (wait(NULL) > 0 || errno == EINTR)
		;
	return 0;
}
