/* tcpclient-ssl.h -- what the parts of tcpclient-ssl share.  The program
 * uses only mailtls.h from libmailtls.  ISC license: see LICENSE. */
#ifndef TCPCLIENT_SSL_H
#define TCPCLIENT_SSL_H

#include <sys/types.h>

#include "mailtls.h"
#include "ucspi.h"

#define PROGNAME "tcpclient-ssl"

/* The trust anchors used when neither -a/-A nor $CAFILE/$CADIR name any
 * (sslclient's "compiled-in CA file"); override with -DTCPCLIENT_SSL_CAFILE. */
#ifndef TCPCLIENT_SSL_CAFILE
#define TCPCLIENT_SSL_CAFILE "/etc/ssl/certs/ca-certificates.crt"
#endif

/* Every descriptor this process keeps is moved to this number or above,
 * so that putting the program's ends on 6 and 7 never clobbers another. */
#define FD_FLOOR 10

struct opts {
	int verbosity;            /* 0 -q, 1 -Q, 2 -v */
	unsigned conn_first;      /* -T x+y: x */
	unsigned conn_second;     /* -T x+y: y (0: no second try) */
	const char *localip;      /* -i */
	const char *localport;    /* -p */
	int lookup_remote;        /* -h / -H */
	const char *localname;    /* -l */
	int ident;                /* -r / -R */
	unsigned ident_timeout;   /* -t */
	int family;               /* 0, 4 (-4) or 6 (-6) */
	const char *cafile;       /* -a, else $CAFILE */
	const char *cadir;        /* -A, else $CADIR */
	const char *certfile;     /* -c, else $CERTFILE or $CERTCHAINFILE */
	const char *keyfile;      /* -k, else $KEYFILE */
	const char *servername;   /* -N, else host */
	int insecure;             /* -z */
	int starttls;             /* -e: MAILTLS_SMTP, _POP3, _IMAP; 0 for none */
	const char *ehlo;         /* -E */
	int ucspitls;             /* -y */
	int tls_timeout;          /* -w */
	const char *host, *port;
	char **prog;
};

/* struct conninfo (one connection's addresses), the messages (log_*,
 * fatal, errstr), names, numbers, the environment and the program: ucspi.h
 * (examples/common).  log.c names the messages "tcpclient-ssl: "; -q
 * silences all of them, as it does tcpclient's. */

/* connect.c: the connection, tcpclient's way (-T x+y, -i, -p, -4/-6). */
void tcp_connect(const struct opts *o, struct conninfo *ci);
int fd_high(int fd, int cloexec);

/* tcpenv.c: the environment tcpclient gives its program (names, ident). */
void tcp_env(const struct opts *o, const struct conninfo *ci);

/* tls.c: the three TLS modes; each ends the process. */
struct mailtls_config *tls_config(const struct opts *o);
void run_tls(const struct opts *o, struct mailtls_config *cfg, struct conninfo *ci) __attribute__((noreturn));
void run_ucspitls(const struct opts *o, struct mailtls_config *cfg, struct conninfo *ci) __attribute__((noreturn));

#endif
