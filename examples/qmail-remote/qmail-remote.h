/* qmail-remote.h -- what the parts of qmail-remote share.  The program
 * uses only mailtls.h from libmailtls.  ISC license: see LICENSE. */
#ifndef QMAIL_REMOTE_H
#define QMAIL_REMOTE_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

#include "controlparse.h"
#include "replyparse.h"
#include "mailtls.h"

#ifndef QMAIL_REMOTE_HOME
#define QMAIL_REMOTE_HOME "/var/qmail"
#endif
#ifndef DNSSEC_ANCHOR_DEFAULT
#define DNSSEC_ANCHOR_DEFAULT "/usr/share/dns/root.key"   /* Debian's dns-root-data */
#endif
#ifndef QMAIL_REMOTE_CAFILE
#define QMAIL_REMOTE_CAFILE "/etc/ssl/certs/ca-certificates.crt"
#endif

#define HUGESMTPTEXT 5000     /* remote text kept for the report (netqmail's cut) */
#define MAX_IPS 64

/* io.c: the report on fd 1 (buffered, written at the end), and the end. */
void out(const char *s);
void outn(const char *s, size_t n);
void outsafe(const char *s);
void zero(void);
void zerodie(void) __attribute__((noreturn));
void temp_nomem(void) __attribute__((noreturn));
void temp_oserr(void) __attribute__((noreturn));
void temp_noconn(void) __attribute__((noreturn));
void temp_read(void) __attribute__((noreturn));
void temp_dns(void) __attribute__((noreturn));
void temp_dnscanon(void) __attribute__((noreturn));
void temp_chdir(void) __attribute__((noreturn));
void temp_control(void) __attribute__((noreturn));
void temp_control_line(const char *file, size_t line) __attribute__((noreturn));   /* names the file and line */
void perm_partialline(void) __attribute__((noreturn));
void perm_usage(void) __attribute__((noreturn));
void perm_dns(const char *host) __attribute__((noreturn));
void perm_nomx(void) __attribute__((noreturn));
void perm_ambigmx(void) __attribute__((noreturn));
/* "TLS: ..." and fallback notes added to the final K/Z/D text. */
void note_add(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void note_out(void);
void safe_copy(char *dst, size_t n, const char *src);

/* control.c: control/ files, qmail's way (missing = default, unreadable = Z). */
struct controls {
	char *me, *helohost;
	int timeoutconnect, timeoutremote;
	char *smtproutes;         /* the file's text, lines split at \n (NULs) */
	size_t smtproutes_len;
	char *tlspolicy;
	size_t tlspolicy_len;
	unsigned tlspolicy_levels;  /* 1 << level for each level control/tlspolicy names */
	char *tlscafile;          /* path of the CA bundle (control/tlscafile), or NULL */
	char *tlsclientciphers;   /* control/tlsclientciphers (may, encrypt), or NULL */
	char *tlscachedir;        /* control/tlscachedir, or NULL: queue/tlscache */
	int tlscachetimeout;      /* seconds a saved session is offered again */
	char *dnssecanchor;       /* control/dnssecanchor: NULL missing, "" validation off, else the file */
};
extern struct controls ctl;
void controls_read(void);
/* control_readfile: 1 read (malloc'd, NUL-terminated, *len), 0 missing, -1 error. */
int control_readfile(const char *fn, char **text, size_t *len);
int control_exists(const char *fn);   /* 1, 0, or temp_control() */
/* route_lookup: the relay for |host| (host[:port]) or NULL; "" means MX. */
const char *route_lookup(const char *host);

/* dns.c */
struct ip {
	int family;               /* AF_INET or AF_INET6 */
	unsigned char a[16];
	int pref;
	char name[256];           /* the MX host name (or the address text for literals) */
	char canon[256];          /* the name a validated CNAME chain from name led to ("" none) */
	int secure;               /* 1: the MX and address records were DNSSEC-validated */
	int addrsecure;           /* 1: the address records were (the MX records may not have been) */
};
#define DNS_SOFT (-1)
#define DNS_HARD (-2)
int ip_literal(const char *s, struct ip *ip);   /* "[1.2.3.4]", "1.2.3.4", "[::1]", "[IPv6:::1]" */
int dns_ip(const char *host, struct ip *ips, int max, int pref);    /* count or DNS_* */
int dns_mxip(const char *host, struct ip *ips, int max);           /* count or DNS_* */
int dns_cname(char *name, size_t n);   /* CNAMEs followed (name replaced), or DNS_* */
/* dns_txt: the TXT records at |name|, each one's strings joined, in
 * recs[i] (malloc'd, NUL-terminated; lens[i] bytes, NULs inside possible);
 * the count (0: no such name, or none), or DNS_SOFT.  The caller frees. */
int dns_txt(const char *name, char **recs, size_t *lens, int max);
/* dns_tlsa looks up the TLSA records at _<port>._tcp.<host> and keeps
 * RFC 7672 section 2.2's outcomes apart: TLSA_FOUND (validated, out->n >= 1
 * records as DNS gave them, usable or not; the data in out->data),
 * TLSA_NONE (no such records, validated), TLSA_INSECURE (an answer, or a
 * denial, outside DNSSEC: as if none), TLSA_BOGUS (validation failed) and
 * TLSA_SOFT (SERVFAIL, timeout: indeterminate).  BOGUS and SOFT make that
 * MX unusable under DANE, never "no TLSA". */
enum { TLSA_FOUND, TLSA_NONE, TLSA_INSECURE, TLSA_BOGUS, TLSA_SOFT };
#define TLSA_MAX 32
struct tlsa_rrs {
	int n;
	struct mailtls_tlsa rec[TLSA_MAX];
	unsigned char data[16384];
};
int dns_tlsa(const char *host, unsigned port, struct tlsa_rrs *out);
void ip_fmt(const struct ip *ip, char *buf, size_t n);
int ipme_is(const struct ip *ip);

/* io.c: one connection to the remote host, plaintext or TLS. */
struct conn {
	int fd;
	struct mailtls *tls;      /* non-NULL once TLS is up */
	int timeout;
	char ibuf[4096];
	size_t ipos, ilen;
	char obuf[8192];
	size_t olen;
};
extern char partner[64];      /* the address as text, for the report */
extern int flagcritical;
extern char smtptext[HUGESMTPTEXT + 1];
extern size_t smtptext_len;
void dropped(struct conn *c) __attribute__((noreturn));
void conn_put(struct conn *c, const char *s, size_t n);
void conn_puts(struct conn *c, const char *s);
void conn_flush(struct conn *c);
unsigned long smtpcode(struct conn *c);
void outsmtptext(void);
void smtptext_set(const char *s);
void quit(struct conn *c, const char *prepend, const char *append) __attribute__((noreturn));
void conn_quit_close(struct conn *c);
/* tcp_connect: the connected socket, or -1 with errno (ETIMEDOUT when
 * |secs| passed). */
int tcp_connect(const struct ip *ip, unsigned port, int secs);

/* dane.c: the levels dane and dane-only for one MX host (RFC 7672), before
 * connecting.  dane_for leaves other levels alone; under dane and
 * dane-only it looks up the TLSA records (only for a host whose address
 * records were validated, RFC 7672 section 2.2) and sets p->dane (DANE_AUTH, DANE_NOAUTH)
 * or, dane without TLSA to go by, turns |p| into may (noted in the report).
 * Returns 0, or -1 when this MX must not be used (tls_failure says why:
 * a bogus or failed TLSA lookup; dane-only without usable records).
 * A host name that is an alias (ip->canon) has its records looked up at
 * the name the aliases lead to first, then at its own (RFC 7672 section
 * 2.2.2).  dane_records: the records dane_for found, for the handshake;
 * dane_base: the name they were found at (the TLSA base domain, a name
 * the certificate may carry, RFC 7672 section 3.2.2);
 * dane_policy_text: the same in presentation form ("3 1 1 HEX" lines,
 * RFC 8460's policy-string of a tlsa policy), or NULL when none were found
 * or they would not fit an event line. */
int dane_for(const struct ip *ip, unsigned port, const char *domain, struct policy *p);
const struct tlsa_rrs *dane_records(void);
const char *dane_base(void);
const char *dane_policy_text(void);

/* tcpto.c: queue/lock/tcpto.  tcpto_skip: 1 when |ip| timed out often and
 * recently enough to be skipped; tcpto_err after each connect: |timedout|
 * 1 counts a timeout, 0 (a connection made, or refused) clears one. */
int tcpto_skip(const struct ip *ip);
void tcpto_err(const struct ip *ip, int timedout);

/* tls.c: the policy of one destination and the TLS steps.  policy_for:
 * |p| from the first source tls.c's opening comment lists that names the
 * destination, else the defaults (p->source and p->origin say which). */
void policy_for(const char *domain, const char *mxhost, struct policy *p);
/* Return values of smtp: the delivery ended (never), or try another
 * address: TRY_NEXT (reason noted), TRY_PLAIN_LATER (may: handshake failed). */
#define TRY_NEXT 1
#define TRY_PLAIN_LATER 2
extern char tls_failure[1024];  /* the last reason a TLS-requiring delivery could not go on */
/* What failed, beside the text when tls_start failed: the session's
 * mailtls_errcode (MAILTLS_E_*, never negative), or one of these. */
enum { TLS_FAIL_NO_STARTTLS = -1, TLS_FAIL_STARTTLS_REFUSED = -2, TLS_FAIL_CONFIG = -3 };
extern int tls_failure_code;
int tls_start(struct conn *c, const struct ip *ip, unsigned port, const struct policy *p,
    const char *domain);

/* tlscache.c: saved sessions keyed by cache_key (cachefile.h); a miss,
 * never an error, whatever goes wrong. */
ssize_t tlscache_load(const char *key, unsigned char *sess, size_t n);
void tlscache_store(const char *key, struct mailtls *s);
void tlscache_drop(const char *key);

/* smtp.c */
extern char *sender;
extern char **recips;
int smtp(const struct ip *ip, unsigned port, const char *domain, int tls_allowed);
void smtp_greet(struct conn *c);

#endif
