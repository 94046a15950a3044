/* tcpclient-ssl -- tcpclient with TLS: the options, the TLS configuration
 * (read before connecting, so a broken one costs the server nothing), the
 * connection, the environment, then TLS and the program.  See
 * tcpclient-ssl.1 for the interface. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tcpclient-ssl.h"

static const char usage_text[] =
    "usage: tcpclient-ssl [ -hHrRdDqQvyz46 ] [ -i localip ] [ -p localport ] [ -T timeoutconn ] "
    "[ -l localname ] [ -t timeoutinfo ] [ -a cafile ] [ -A cadir ] [ -c certfile ] [ -k keyfile ] "
    "[ -N servername ] [ -e smtp|pop3|imap ] [ -E ehloname ] [ -w timeouttls ] host port program";

#define OPTS_WITH_ARG "ipTltaAckNeEw"

static int quiet;

static void __attribute__((noreturn)) usage(void)
{
	if (!quiet)
		fprintf(stderr, "%s: %s\n", PROGNAME, usage_text);
	exit(100);
}

static unsigned long number(const char *s, unsigned long min, unsigned long max, const char **end)
{
	unsigned long n;
	if (ucspi_number(s, min, max, end, &n) < 0)
		usage();
	return n;
}

/* -T x+y, or -T x (no second try). */
static void conn_timeout(const char *s, struct opts *o)
{
	const char *rest;
	o->conn_first = (unsigned)number(s, 0, 86400, &rest);
	o->conn_second = 0;
	if (*rest == '+')
		o->conn_second = (unsigned)number(rest + 1, 0, 86400, NULL);
	else if (*rest)
		usage();
}

static int proto_of(const char *s)
{
	if (!strcasecmp(s, "smtp"))
		return MAILTLS_SMTP;
	if (!strcasecmp(s, "pop3"))
		return MAILTLS_POP3;
	if (!strcasecmp(s, "imap"))
		return MAILTLS_IMAP;
	usage();
}

static void parse(int argc, char **argv, struct opts *o)
{
	int c;
	memset(o, 0, sizeof *o);
	o->verbosity = 1;
	o->conn_first = 2;
	o->conn_second = 58;
	o->lookup_remote = 1;
	o->ident = 1;
	o->ident_timeout = 26;
	o->tls_timeout = 60;
	o->ehlo = "localhost";
	/* A first pass for -q / -Q / -v alone, so that a usage error is
	 * silent under -q as well. */
	for (int i = 1; i < argc && argv[i][0] == '-' && argv[i][1] && strcmp(argv[i], "--"); i++) {
		for (const char *p = argv[i] + 1; *p; p++) {
			if (*p == 'q' || *p == 'Q' || *p == 'v')
				quiet = *p == 'q';
			if (strchr(OPTS_WITH_ARG, *p)) {
				i += !p[1];   /* the argument is the next word */
				break;
			}
		}
	}
	opterr = 0;
	while ((c = getopt(argc, argv, "+hHrRdDqQvi:p:T:l:t:46a:A:c:k:N:ze:E:yw:")) != -1) {
		switch (c) {
		case 'q': o->verbosity = 0; break;
		case 'Q': o->verbosity = 1; break;
		case 'v': o->verbosity = 2; break;
		case 'h': o->lookup_remote = 1; break;
		case 'H': o->lookup_remote = 0; break;
		case 'r': o->ident = 1; break;
		case 'R': o->ident = 0; break;
		case 'd': case 'D': break;   /* TCP_NODELAY always: see the man page */
		case 'i': o->localip = optarg; break;
		case 'p': o->localport = optarg; break;
		case 'T': conn_timeout(optarg, o); break;
		case 'l': o->localname = optarg; break;
		case 't': o->ident_timeout = (unsigned)number(optarg, 0, 86400, NULL); break;
		case '4': o->family = 4; break;
		case '6': o->family = 6; break;
		case 'a': o->cafile = optarg; break;
		case 'A': o->cadir = optarg; break;
		case 'c': o->certfile = optarg; break;
		case 'k': o->keyfile = optarg; break;
		case 'N': o->servername = optarg; break;
		case 'z': o->insecure = 1; break;
		case 'e': o->starttls = proto_of(optarg); break;
		case 'E': o->ehlo = optarg; break;
		case 'y': o->ucspitls = 1; break;
		case 'w': o->tls_timeout = (int)number(optarg, 1, 86400, NULL); break;
		default:
			if (!quiet)
				fprintf(stderr, "%s: illegal option -- %c\n", PROGNAME, optopt);
			usage();
		}
	}
	quiet = o->verbosity == 0;
	if (o->starttls && o->ucspitls) {
		if (!quiet)
			fprintf(stderr, "%s: -e and -y exclude each other: with -y the program does STARTTLS itself\n",
			    PROGNAME);
		usage();
	}
	argv += optind;
	argc -= optind;
	if (argc < 3)
		usage();
	o->host = argv[0];
	o->port = argv[1];
	o->prog = argv + 2;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct conninfo ci;
	struct mailtls_config *cfg;
	parse(argc, argv, &o);
	log_set_verbosity(o.verbosity);
	cfg = tls_config(&o);
	tcp_connect(&o, &ci);
	tcp_env(&o, &ci);
	ucspi_drop_ssl_vars();
	if (o.ucspitls)
		run_ucspitls(&o, cfg, &ci);
	run_tls(&o, cfg, &ci);
}
