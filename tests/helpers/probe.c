/* probe -- a small TLS client and server on libmailtls's public API, for the
 * interop tests with real peers (openssl, gnutls, Postfix, Dovecot).
 *
 *   probe server [options] [--port P] [--count N]
 *       listens on 127.0.0.1 (or --listen ADDR), prints "port=P", then per
 *       connection: handshake, facts as key=value lines, "hello <protocol>\n"
 *       to the client, echoes lines until the client ends, close_notify.
 *   probe client --connect HOST:PORT [options]
 *       [--starttls smtp|pop3|imap] [--ehlo NAME] [--send TEXT] [--read]
 *       prints key=value lines: result=ok|not-offered|refused|error, errcode=,
 *       error=, facts; exits 0 on result=ok, 1 otherwise.
 * Options: --cert F --key F (repeatable: second key type), --sni NAME=CERT[,KEY],
 *   --sni-strict, --ca F, --cadir D, --verify none|optional|require,
 *   --min 1.0|1.1|1.2|1.3, --max ..., --ciphers L, --servername N,
 *   --verify-name N (repeatable), --pin P, --sess-in F, --sess-out F,
 *   --timeout S, --env (print the environment block),
 *   --tlsa "U S M HEX" (repeatable: DANE with these TLSA records, the
 *   --verify-name names as its reference names; prints dane=, dane_usable=
 *   and, once matched, dane_record= dane_usage= dane_depth=). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mailtls.h"

static struct mailtls_config *cfg;
static const char *connect_to, *servername, *starttls, *ehlo = "probe.test.example";
static const char *send_text, *sess_in, *sess_out, *listen_addr = "127.0.0.1";
static const char *vnames[8];
static size_t nvnames;
static int timeout_secs = 10, port, count = 1, want_env, want_read;
static struct mailtls_tlsa tlsa[8];
static unsigned char tlsa_data[8][2048];
static size_t ntlsa;

static void die(const char *what)
{
	fprintf(stderr, "probe: fatal: %s: %s\n", what, mailtls_config_error(cfg));
	exit(111);
}

static int version(const char *v)
{
	if (!strcmp(v, "1.0")) return MAILTLS_TLS1_0;
	if (!strcmp(v, "1.1")) return MAILTLS_TLS1_1;
	if (!strcmp(v, "1.2")) return MAILTLS_TLS1_2;
	if (!strcmp(v, "1.3")) return MAILTLS_TLS1_3;
	fprintf(stderr, "probe: usage: unknown version %s\n", v);
	exit(100);
}

static void options(int argc, char **argv, int i)
{
	const char *cert = NULL;
	for (; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(o, "--env")) { want_env = 1; continue; }
		if (!strcmp(o, "--read")) { want_read = 1; continue; }
		if (!strcmp(o, "--sni-strict")) { mailtls_config_set_sni_strict(cfg, 1); continue; }
		if (!v) {
			fprintf(stderr, "probe: usage: %s needs a value\n", o);
			exit(100);
		}
		i++;
		if (!strcmp(o, "--cert")) {
			cert = v;
			if (i + 2 < argc && !strcmp(argv[i + 1], "--key"))
				continue;
			if (mailtls_config_add_keypair_file(cfg, cert, NULL) < 0) die(cert);
		} else if (!strcmp(o, "--key")) {
			if (!cert || mailtls_config_add_keypair_file(cfg, cert, v) < 0) die(v);
		} else if (!strcmp(o, "--sni")) {
			char name[256], file[1024], *key;
			const char *eq = strchr(v, '=');
			if (!eq || (size_t)(eq - v) >= sizeof name) { fprintf(stderr, "probe: usage: --sni NAME=CERT[,KEY]\n"); exit(100); }
			snprintf(name, sizeof name, "%.*s", (int)(eq - v), v);
			snprintf(file, sizeof file, "%s", eq + 1);
			if ((key = strchr(file, ',')))
				*key++ = 0;
			if (mailtls_config_add_sni_keypair_file(cfg, name, file, key) < 0) die(v);
		} else if (!strcmp(o, "--ca")) {
			if (mailtls_config_set_ca(cfg, v, NULL) < 0) die(v);
		} else if (!strcmp(o, "--cadir")) {
			if (mailtls_config_set_ca(cfg, NULL, v) < 0) die(v);
		} else if (!strcmp(o, "--verify")) {
			int m = !strcmp(v, "none") ? MAILTLS_VERIFY_NONE : !strcmp(v, "optional") ?
			    MAILTLS_VERIFY_OPTIONAL : MAILTLS_VERIFY_REQUIRE;
			if (mailtls_config_set_verify(cfg, m) < 0) die(v);
		} else if (!strcmp(o, "--min")) {
			if (mailtls_config_set_min_protocol(cfg, version(v)) < 0) die(v);
		} else if (!strcmp(o, "--max")) {
			if (mailtls_config_set_max_protocol(cfg, version(v)) < 0) die(v);
		} else if (!strcmp(o, "--ciphers")) {
			if (mailtls_config_set_ciphers(cfg, v) < 0) die(v);
		} else if (!strcmp(o, "--pin")) {
			if (mailtls_config_add_pin(cfg, v) < 0) die(v);
		} else if (!strcmp(o, "--connect")) connect_to = v;
		else if (!strcmp(o, "--servername")) servername = v;
		else if (!strcmp(o, "--verify-name")) { if (nvnames < 8) vnames[nvnames++] = v; }
		else if (!strcmp(o, "--tlsa")) {
			if (ntlsa == 8 || mailtls_tlsa_parse(v, strlen(v), &tlsa[ntlsa], tlsa_data[ntlsa], sizeof tlsa_data[0]) < 0) {
				fprintf(stderr, "probe: usage: --tlsa \"U S M HEX\" (at most 8)\n");
				exit(100);
			}
			ntlsa++;
		}
		else if (!strcmp(o, "--starttls")) starttls = v;
		else if (!strcmp(o, "--ehlo")) ehlo = v;
		else if (!strcmp(o, "--send")) send_text = v;
		else if (!strcmp(o, "--sess-in")) sess_in = v;
		else if (!strcmp(o, "--sess-out")) sess_out = v;
		else if (!strcmp(o, "--timeout")) timeout_secs = atoi(v);
		else if (!strcmp(o, "--port")) port = atoi(v);
		else if (!strcmp(o, "--count")) count = atoi(v);
		else if (!strcmp(o, "--listen")) listen_addr = v;
		else {
			fprintf(stderr, "probe: usage: unknown option %s\n", o);
			exit(100);
		}
	}
}

static void print_value(const char *key, const char *v)
{
	char buf[4096];
	if (!v)
		return;
	if (mailtls_escape(buf, sizeof buf, v, strlen(v)) >= 0)
		printf("%s=%s\n", key, buf);
}

static void dane_facts(struct mailtls *s)
{
	static const char *const names[] = { "off", "unchecked", "unusable", "matched", "failed" };
	struct mailtls_dane_result d;
	int st = mailtls_dane_result(s, &d);
	if (st == MAILTLS_DANE_OFF)
		return;
	printf("dane=%s\n", st >= 0 && st <= 4 ? names[st] : "?");
	if (st == MAILTLS_DANE_MATCHED)
		printf("dane_record=%d\ndane_usage=%d\ndane_selector=%d\ndane_mtype=%d\ndane_depth=%d\n", d.record,
		    d.usage, d.selector, d.mtype, d.depth);
}

static void facts(struct mailtls *s)
{
	print_value("protocol", mailtls_protocol(s));
	print_value("cipher", mailtls_cipher(s));
	print_value("sni", mailtls_servername(s));
	printf("reused=%d\nverified=%d\nverify_result=%s\npeer_cert=%d\n", mailtls_session_reused(s),
	    mailtls_peer_verified(s), mailtls_errcode_name(mailtls_peer_verify_result(s)),
	    mailtls_peer_has_cert(s));
	print_value("subject", mailtls_peer_subject(s));
	print_value("issuer", mailtls_peer_issuer(s));
	print_value("fingerprint", mailtls_peer_fingerprint(s));
	dane_facts(s);
	if (want_env) {
		ssize_t n = mailtls_env(s, NULL, 0);
		char *b = n > 0 ? malloc((size_t)n) : NULL;
		if (b && mailtls_env(s, b, (size_t)n) == n)
			for (char *p = b; *p; p += strlen(p) + 1)
				printf("env=%s\n", p);
		free(b);
	}
	fflush(stdout);
}

static int fail(struct mailtls *s, const char *result)
{
	dane_facts(s);
	printf("result=%s\nerrcode=%s\n", result, mailtls_errcode_name(mailtls_errcode(s)));
	print_value("error", mailtls_error(s));
	fflush(stdout);
	return 1;
}

static void print_lines(const char *key, const char *text)
{
	char line[MAILTLS_TEXT_MAX];
	while (*text) {
		size_t n = strcspn(text, "\n");
		snprintf(line, sizeof line, "%.*s", (int)n, text);
		print_value(key, line);
		text += n + (text[n] == '\n');
	}
}

static int tcp_connect(const char *hostport)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int fd = -1;
	if (!colon || (size_t)(colon - hostport) >= sizeof host) {
		fprintf(stderr, "probe: usage: --connect HOST:PORT\n");
		exit(100);
	}
	snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
	if (host[0] == '[') {
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = 0;
	}
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
		fprintf(stderr, "probe: fatal: cannot resolve %s\n", host);
		exit(111);
	}
	for (ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, 0);
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0) {
		fprintf(stderr, "probe: fatal: unable to connect to %s: %s\n", hostport, strerror(errno));
		exit(111);
	}
	return fd;
}

static void load_session(struct mailtls *s)
{
	unsigned char buf[16384];
	size_t n;
	FILE *f = fopen(sess_in, "rb");
	if (!f)
		return;
	n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	if (mailtls_set_session(s, buf, n) < 0)
		print_value("session_error", mailtls_error(s));
}

static void save_session(struct mailtls *s)
{
	ssize_t n = mailtls_get_session(s, NULL, 0);
	unsigned char *buf = n > 0 ? malloc((size_t)n) : NULL;
	FILE *f;
	if (!buf || mailtls_get_session(s, buf, (size_t)n) != n || !(f = fopen(sess_out, "wb"))) {
		free(buf);
		printf("session_saved=0\n");
		return;
	}
	fwrite(buf, 1, (size_t)n, f);
	fclose(f);
	free(buf);
	printf("session_saved=1\n");
}

static int client(void)
{
	int fd = tcp_connect(connect_to), r;
	struct mailtls *s = mailtls_client(cfg, fd, fd, servername);
	char buf[4096];
	ssize_t n;
	if (!s) {
		perror("probe: fatal: mailtls_client");
		return 111;
	}
	if (ntlsa) {
		int u = mailtls_set_dane(s, tlsa, ntlsa, vnames, nvnames);
		if (u < 0)
			return fail(s, "error");
		printf("dane_usable=%d\n", u);
	} else if (nvnames && mailtls_set_verify_names(s, vnames, nvnames) < 0) {
		return fail(s, "error");
	}
	if (sess_in)
		load_session(s);
	if (starttls) {
		struct mailtls_starttls_info info;
		int proto = !strcmp(starttls, "smtp") ? MAILTLS_SMTP : !strcmp(starttls, "pop3") ? MAILTLS_POP3 :
		    !strcmp(starttls, "imap") ? MAILTLS_IMAP : 0;
		if (!proto) {
			fprintf(stderr, "probe: usage: --starttls smtp|pop3|imap\n");
			return 100;
		}
		r = mailtls_starttls_client(s, proto, ehlo, timeout_secs, &info);
		printf("greeting_code=%d\nehlo_code=%d\nstarttls_code=%d\nused_helo=%d\n", info.greeting_code,
		    info.ehlo_code, info.starttls_code, info.used_helo);
		print_lines("cap", info.capabilities);
		if (r == MAILTLS_STARTTLS_NOT_OFFERED) return fail(s, "not-offered");
		if (r == MAILTLS_STARTTLS_REFUSED) return fail(s, "refused");
		if (r < 0) return fail(s, "error");
		if (proto == MAILTLS_SMTP) {
			if ((r = mailtls_smtp_ehlo(s, ehlo, timeout_secs, &info)) < 0)
				return fail(s, "error");
			printf("tls_ehlo_code=%d\n", r);
			print_lines("tlscap", info.capabilities);
		}
	} else if (mailtls_handshake_timeout(s, timeout_secs) < 0) {
		return fail(s, "error");
	}
	printf("result=ok\n");
	facts(s);
	if (send_text && mailtls_timeoutwrite(timeout_secs, s, send_text, strlen(send_text)) < 0)
		return fail(s, "error");
	if (want_read) {
		while ((n = mailtls_timeoutread(timeout_secs, s, buf, sizeof buf - 1)) > 0) {
			buf[n] = 0;
			print_lines("read", buf);
			if (send_text || sess_out)
				break;
		}
		if (n < 0)
			return fail(s, "error");
		fflush(stdout);
	}
	if (sess_out)
		save_session(s);
	if (mailtls_close_timeout(s, timeout_secs) < 0)
		return fail(s, "error");
	fflush(stdout);
	mailtls_free(s);
	close(fd);
	return 0;
}

static void serve_one(int fd)
{
	struct mailtls *s = mailtls_server(cfg, fd, fd);
	char buf[4096], hello[256];
	ssize_t n;
	if (!s)
		return;
	if (mailtls_handshake_timeout(s, timeout_secs) < 0) {
		fail(s, "error");
		mailtls_free(s);
		return;
	}
	printf("result=ok\n");
	facts(s);
	snprintf(hello, sizeof hello, "hello %s\n", mailtls_protocol(s));
	if (mailtls_timeoutwrite(timeout_secs, s, hello, strlen(hello)) < 0) {
		fail(s, "error");
	} else {
		while ((n = mailtls_timeoutread(timeout_secs, s, buf, sizeof buf)) > 0)
			if (mailtls_timeoutwrite(timeout_secs, s, buf, (size_t)n) < 0)
				break;
		if (n < 0)
			print_value("end", mailtls_errcode_name(mailtls_errcode(s)));
		else
			printf("end=close_notify\n");
		if (mailtls_close_timeout(s, timeout_secs) < 0)
			print_value("close_error", mailtls_error(s));
	}
	fflush(stdout);
	mailtls_free(s);
}

static int server(void)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE }, *res;
	char portstr[16];
	int one = 1, lfd;
	snprintf(portstr, sizeof portstr, "%d", port);
	if (getaddrinfo(listen_addr, portstr, &hints, &res) != 0) {
		fprintf(stderr, "probe: fatal: bad listen address %s\n", listen_addr);
		return 100;
	}
	lfd = socket(res->ai_family, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (lfd < 0 || bind(lfd, res->ai_addr, res->ai_addrlen) < 0 || listen(lfd, 16) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&ss, &len) < 0) {
		fprintf(stderr, "probe: fatal: unable to listen: %s\n", strerror(errno));
		return 111;
	}
	freeaddrinfo(res);
	printf("port=%d\n", ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port));
	fflush(stdout);
	for (int i = 0; count <= 0 || i < count; i++) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			return 111;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		serve_one(fd);
		close(fd);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int r;
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2 || (strcmp(argv[1], "server") && strcmp(argv[1], "client"))) {
		fprintf(stderr, "probe: usage: probe server|client [options]\n");
		return 100;
	}
	if (!(cfg = mailtls_config_new())) {
		perror("probe: fatal: mailtls_config_new");
		return 111;
	}
	options(argc, argv, 2);
	if (argv[1][0] == 'c' && !connect_to) {
		fprintf(stderr, "probe: usage: client needs --connect HOST:PORT\n");
		return 100;
	}
	r = argv[1][0] == 's' ? server() : client();
	mailtls_config_free(cfg);
	return r;
}
