/* tcpserver-ssl.h -- what the parts of tcpserver-ssl share.  The program
 * uses only mailtls.h from libmailtls.  ISC license: see LICENSE. */
#ifndef TCPSERVER_SSL_H
#define TCPSERVER_SSL_H

#include <sys/socket.h>
#include <sys/types.h>

#include "mailtls.h"
#include "ucspi.h"

#define PROGNAME "tcpserver-ssl"

/* -k: one trusted load balancer address or block. */
#define TRUST_MAX 256
struct trusted {
	int v6;
	unsigned char a[16];
	int bits;                 /* prefix length */
};

struct opts {
	int verbosity;            /* 0 -q, 1 -Q, 2 -v */
	unsigned long limit;      /* -c */
	const char *rules;        /* -x */
	int rules_missing_ok;     /* -X */
	const char *banner;       /* -B */
	uid_t uid;                /* -u / -U */
	gid_t gid;                /* -g / -U */
	int set_uid, set_gid;
	int print_port;           /* -1 */
	int backlog;              /* -b */
	int keep_ipopts;          /* -o */
	int lookup_remote;        /* -h */
	int paranoid;             /* -p */
	const char *localname;    /* -l */
	int ident;                /* -r */
	int ident_timeout;        /* -t */
	int family;               /* 0, 4 (-4) or 6 (-6) */
	const char *iface;        /* -I */
	int tls;                  /* -s / -S (-y turns it on) */
	int ucspitls;             /* -y: UCSPI-TLS, the program starts TLS (needs tls) */
	const char *pemfile;      /* -n */
	int hs_timeout;           /* -T */
	int client_verify;        /* MAILTLS_VERIFY_* from -w / -W */
	int proxy;                /* -e: MAILTLS_SMTP, MAILTLS_POP3 or MAILTLS_IMAP (0: off) */
	int proxy_flags;          /* -E, -A: MAILTLS_PROXY_* */
	int sni_strict;           /* -N */
	struct trusted *trusted;  /* -k: balancers that must send a PROXY header */
	size_t ntrusted;
	const char *host, *port;
	char **prog;
};

/* struct conninfo (one accepted connection's addresses; v6 is native
 * IPv6, PROTO=TCP6), the messages (log_*, fatal), name_of, numbers, the
 * environment and the program: ucspi.h (examples/common).  log.c names the
 * messages "tcpserver-ssl: ". */

/* listen.c: the listening sockets (one dual-stack socket for host 0). */
int listen_sockets(const struct opts *o, int *fds, int max, unsigned *port);
/* conn_addresses: the local address from |fd|, the remote one as accept
 * gave it (a client that already reset the connection has none left for
 * getpeername, and the child then fails on its first read instead). */
int conn_addresses(int fd, const struct sockaddr_storage *peer, struct conninfo *ci);

/* server.c: the accept loop, children counted and reaped. */
struct keyfiles;
void server_run(const struct opts *o, struct mailtls_config *cfg, int *lfds, int nl,
    int loader, pid_t loader_pid, const struct keyfiles *kf) __attribute__((noreturn));

/* conn.c: one connection, in the forked child; never returns. */
void conn_serve(const struct opts *o, struct mailtls_config *cfg, struct conninfo *ci) __attribute__((noreturn));

/* trust.c: -k.  trust_parse adds the comma-separated addresses and
 * addr/bits blocks of |list| (0, or -1 for a bad item); trust_match says
 * whether the text address |ip| (as in TCPREMOTEIP) is trusted. */
int trust_parse(struct opts *o, const char *list);
int trust_match(const struct opts *o, const char *ip);


#endif
