/* tcpserver-ssl -- tcpserver with TLS: the options, the keys (loaded before
 * privileges are dropped), the listening socket, then the accept loop.
 * See tcpserver-ssl.1 for the interface. */
#include <errno.h>
#include <limits.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "keys.h"
#include "tcpserver-ssl.h"

/* How often the loader looks at the certificate and key files. */
#define RENEW_CHECK_SECS 2

static const char usage_text[] =
    "usage: tcpserver-ssl [ -1UXpPhHrRoOdDqQvsSwWy46 ] [ -EAN ] [ -c limit ] [ -x rules.cdb ] [ -B banner ] "
    "[ -g gid ] [ -u uid ] [ -b backlog ] [ -l localname ] [ -t timeout ] [ -T handshake-timeout ] "
    "[ -I interface ] [ -n pemfile ] [ -e proto ] [ -k balancers ] host port program";

static void usage(void)
{
	fprintf(stderr, "%s: %s\n", PROGNAME, usage_text);
	exit(100);
}

static unsigned long number(const char *s, unsigned long min)
{
	unsigned long n;
	if (ucspi_number(s, min, ULONG_MAX, NULL, &n) < 0)
		usage();
	return n;
}

static void parse(int argc, char **argv, struct opts *o)
{
	int c;
	const char *env;
	memset(o, 0, sizeof *o);
	o->verbosity = 1;
	o->limit = 40;
	o->backlog = 20;
	o->lookup_remote = 1;
	o->ident = 1;
	o->ident_timeout = 26;
	o->tls = 1;
	o->pemfile = "./cert.pem";
	o->hs_timeout = 26;
	o->client_verify = MAILTLS_VERIFY_NONE;
	opterr = 0;
	while ((c = getopt(argc, argv, "+qQvc:x:XB:u:g:U1b:oOdDhHpPl:rRt:46I:sSn:T:wWye:EANk:")) != -1) {
		switch (c) {
		case 'q': o->verbosity = 0; break;
		case 'Q': o->verbosity = 1; break;
		case 'v': o->verbosity = 2; break;
		case 'c': o->limit = number(optarg, 1); break;
		case 'x': o->rules = optarg; break;
		case 'X': o->rules_missing_ok = 1; break;
		case 'B': o->banner = optarg; break;
		case 'u': o->uid = (uid_t)number(optarg, 0); o->set_uid = 1; break;
		case 'g': o->gid = (gid_t)number(optarg, 0); o->set_gid = 1; break;
		case 'U':
			if ((env = getenv("UID"))) { o->uid = (uid_t)number(env, 0); o->set_uid = 1; }
			if ((env = getenv("GID"))) { o->gid = (gid_t)number(env, 0); o->set_gid = 1; }
			break;
		case '1': o->print_port = 1; break;
		case 'b': o->backlog = (int)number(optarg, 1); break;
		case 'o': o->keep_ipopts = 1; break;
		case 'O': o->keep_ipopts = 0; break;
		case 'd': case 'D': break;   /* TCP_NODELAY always: see the man page */
		case 'h': o->lookup_remote = 1; break;
		case 'H': o->lookup_remote = 0; break;
		case 'p': o->paranoid = 1; break;
		case 'P': o->paranoid = 0; break;
		case 'l': o->localname = optarg; break;
		case 'r': o->ident = 1; break;
		case 'R': o->ident = 0; break;
		case 't': o->ident_timeout = (int)number(optarg, 0); break;
		case '4': o->family = 4; break;
		case '6': o->family = 6; break;
		case 'I': o->iface = optarg; break;
		case 's': o->tls = 1; break;
		case 'S': o->tls = 0; o->ucspitls = 0; o->proxy = 0; break;   /* -y, -e too: no TLS at all */
		case 'y': o->tls = 1; o->ucspitls = 1; break;
		case 'n': o->pemfile = optarg; break;
		case 'T': o->hs_timeout = (int)number(optarg, 1); break;
		case 'w': o->client_verify = MAILTLS_VERIFY_OPTIONAL; break;
		case 'W': o->client_verify = MAILTLS_VERIFY_REQUIRE; break;
		case 'e':
			if (!strcmp(optarg, "smtp"))
				o->proxy = MAILTLS_SMTP;
			else if (!strcmp(optarg, "pop3"))
				o->proxy = MAILTLS_POP3;
			else if (!strcmp(optarg, "imap"))
				o->proxy = MAILTLS_IMAP;
			else
				usage();
			o->tls = 1;
			break;
		case 'E': o->proxy_flags |= MAILTLS_PROXY_REQUIRE_TLS; break;
		case 'A': o->proxy_flags |= MAILTLS_PROXY_HIDE_AUTH; break;
		case 'N': o->sni_strict = 1; break;
		case 'k':
			if (trust_parse(o, optarg) < 0) {
				fprintf(stderr, "%s: fatal: -k takes addresses and address/bits blocks, separated by commas: %s\n",
				    PROGNAME, optarg);
				exit(100);
			}
			break;
		default:
			usage();
		}
	}
	argv += optind;
	argc -= optind;
	if (argc < 3)
		usage();
	if (o->proxy && o->ucspitls) {
		fprintf(stderr, "%s: fatal: -e and -y exclude each other\n", PROGNAME);
		exit(100);
	}
	o->host = argv[0];
	o->port = argv[1];
	o->prog = argv + 2;
}

/* The keys are read here, as root, before anything else. */
static struct mailtls_config *load_tls(const struct opts *o, struct keyfiles *kf)
{
	struct keyblobs kb;
	struct mailtls_config *cfg;
	char err[700];
	if (!o->tls) {
		if (!(cfg = mailtls_config_new()))
			fatal(111, "out of memory");
		return cfg;
	}
	keyfiles_init(kf, o->pemfile, o->client_verify);
	if (keyblobs_read(kf, &kb, err, sizeof err) < 0)
		fatal(111, "unable to load the certificate and key: %s", err);
	cfg = keys_build(kf, &kb, err, sizeof err);
	keyblobs_free(&kb);
	if (!cfg)
		fatal(111, "unable to load the certificate and key: %s", err);
	return cfg;
}

static void drop_privileges(const struct opts *o)
{
	if (o->set_gid && (setgroups(1, &o->gid) < 0 || setgid(o->gid) < 0))
		fatal(111, "unable to set gid: %s", strerror(errno));
	if (o->set_uid && setuid(o->uid) < 0)
		fatal(111, "unable to set uid: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	struct opts o;
	struct mailtls_config *cfg;
	static struct keyfiles kf;
	int lfds[4], nl, loader = -1;
	pid_t loader_pid = -1;
	unsigned port;
	parse(argc, argv, &o);
	log_set_verbosity(o.verbosity);
	/* Keys live in this process and its children: no other process of the
	 * same uid may read their memory (ptrace, /proc/PID/mem, core files). */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	cfg = load_tls(&o, &kf);
	nl = listen_sockets(&o, lfds, 4, &port);
	if (o.print_port) {
		printf("%u\n", port);
		fflush(stdout);
	}
	/* Forked before the privileges go, so renewed keys stay readable. */
	if (o.tls && (loader = loader_start(&kf, RENEW_CHECK_SECS, &loader_pid)) < 0)
		fatal(111, "unable to start the certificate loader: %s", strerror(errno));
	drop_privileges(&o);
	server_run(&o, cfg, lfds, nl, loader, loader_pid, &kf);
}
