/* ucspi.h -- what tcpserver-ssl and tcpclient-ssl share (examples/common,
 * the ucspi_common library).  Uses only mailtls.h from libmailtls.
 * ISC license: see LICENSE. */
#ifndef UCSPI_COMMON_H
#define UCSPI_COMMON_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "mailtls.h"

/* One connection's addresses, as text the way tcpserver and tcpclient
 * print them. */
struct conninfo {
	int fd;
	int v6;                   /* an IPv6 connection (PROTO=TCP6) */
	char localip[64], remoteip[64];
	unsigned localport, remoteport;
	unsigned scope;           /* IPv6 scope id of the remote address (tcpserver) */
};

/* log.c: messages on stderr, one write a line, prefixed "<log_progname>: ".
 * Each program defines the two constants (in its own log.c). */
extern const char log_progname[];
extern const int log_fatal_quiet;   /* 1: -q silences fatal errors too (tcpclient) */
void log_set_verbosity(int v);
int log_verbose(void);
void log_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));   /* with -v */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));    /* unless -q */
void fatal(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* The words of djb's error_str for what a connection meets, else strerror. */
const char *errstr(int e);

/* names.c: DNS names and the ident reply, for the TCP* variables. */
int ucspi_sockaddr(const char *ip, unsigned port, struct sockaddr_storage *ss, socklen_t *len);
void ucspi_clean_name(const char *in, char *out, size_t len);
/* name_of: the PTR name of |ip| (cleaned); with |paranoid| only when that
 * name maps back to |ip|.  Returns 1 with a name, 0 without (|out| is ""
 * when there is no PTR name at all). */
int name_of(const char *ip, int paranoid, char *out, size_t len);
/* ucspi_ident_socket: a nonblocking socket from the local address to the
 * remote's identd (port 113), connecting; -1 when there is none. */
int ucspi_ident_socket(const struct conninfo *ci);
/* ucspi_ident_user: in the identd's answer |a| (|got| bytes, room for one
 * more), the user id of "rport , lport : USERID : OS : user", spaces
 * before it skipped; NULL for any other answer. */
char *ucspi_ident_user(char *a, size_t got);
/* ucspi_ident: RFC 1413, the remote identd asked who owns the connection,
 * within |secs| seconds.  1 with the user id in |out| (spaces dropped as
 * tcpserver does, anything not printable ASCII escaped \ooo), 0 without. */
int ucspi_ident(const struct conninfo *ci, unsigned secs, char *out, size_t len);

/* num.c: numbers in arguments. */
/* ucspi_port: a port number or a service name; 0, or -1 when it is neither. */
int ucspi_port(const char *p, unsigned *out);
/* ucspi_number: decimal digits from min to max; with |end| what follows
 * goes there, without it nothing may follow.  0, or -1 when it is no such
 * number. */
int ucspi_number(const char *s, unsigned long min, unsigned long max, const char **end, unsigned long *out);

/* env.c: the environment the program gets. */
void ucspi_setenv(const char *name, const char *value);       /* fatal 111 when out of memory */
/* "NAME=value\0...\0" blocks (the TLS facts, the UCSPI-TLS descriptors,
 * rules) into the environment. */
void ucspi_put_block(const char *b, size_t len);
/* Only this connection's TLS layer says what SSL_* and the UCSPI-TLS
 * descriptors (SSLCTLFD, SSLREADFD, SSLWRITEFD) mean: whatever this
 * process inherited under those names goes. */
void ucspi_drop_ssl_vars(void);
/* PROTO=TCP with TCPLOCALIP and the rest (a NULL name unsets its variable);
 * for an IPv6 connection PROTO=TCP6 and each variable under TCP6* too. */
void ucspi_tcp_env(const struct conninfo *ci, const char *lhost, const char *rhost, const char *rinfo);
/* The session's TLS facts (mailtls_env) into the environment. */
void ucspi_tls_env(struct mailtls *s);
/* For the tls line once the handshake is done: the peer's certificate
 * ("none", "verified:<subject>" or "unverified:<reason>") and the SNI name
 * escaped ("-" for none). */
void ucspi_tls_desc(struct mailtls *s, char *peer, size_t plen, char *sni, size_t slen);

/* prog.c: the program. */
/* ucspi_spawn: the program with |rfd| as its descriptor |fd0| and |wfd|
 * as |fd0| + 1, SIGPIPE at its default and no signal blocked (posix_spawn,
 * whose cost does not grow with this process's size).  The pid, or -1
 * with errno. */
pid_t ucspi_spawn(char **prog, int rfd, int wfd, int fd0);
/* ucspi_wait: the program's status, however long it takes (exit 111 when
 * it cannot be had). */
int ucspi_wait(pid_t pid);
/* ucspi_exit_like: the program's end as this process's own: its exit
 * code, or its signal (without a core file of ours). */
void ucspi_exit_like(int st) __attribute__((noreturn));

/* ucspitls.c: the program of a UCSPI-TLS connection (started on the
 * connection, with mailtls_ucspitls_close_program done). */
/* ucspi_tls_request: its request on SSLCTLFD, as mailtls_ucspitls_wait
 * gives it ('y', 'Y', 0 or -1 with the error on |s|), except that a
 * program that ended counts as not asking (0) even while a process it left
 * behind still holds SSLCTLFD: the connection then closes when the program
 * does (Linux 5.3 and later; before, when SSLCTLFD closes). */
int ucspi_tls_request(struct mailtls *s, const struct mailtls_ucspitls *u, pid_t pid);
/* ucspi_end_prog: TLS cannot be had while the program runs.  By default
 * it gets SIGTERM (and SIGCONT) before our UCSPI-TLS descriptors and
 * |sock| close (so it ends by the signal rather than going on as if TLS
 * had been refused), up to 5 seconds to end, then SIGKILL.  With
 * |hangup_first| (a program that knows nothing of TLS: to it the client
 * hung up) the descriptors close first and the signals follow only if it
 * is still there 5 seconds later.  Returns once it is reaped. */
void ucspi_end_prog(pid_t pid, struct mailtls_ucspitls *u, int sock, int hangup_first);

#endif
