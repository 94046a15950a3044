/* controlparse.h -- the parsers of qmail-remote's control files, kept apart
 * from the program (no I/O, no exits) so that they can be fuzzed: the
 * callers turn a -1 into "Unable to read control files. (#4.3.0)".
 * ISC license: see LICENSE. */
#ifndef QMR_CONTROLPARSE_H
#define QMR_CONTROLPARSE_H

#include <stddef.h>

/* control_split turns a file's |len| bytes into lines ending in NUL: each
 * \n becomes a NUL, and CRs, spaces and tabs before it are dropped (as are
 * those, and NULs, at the very end). */
void control_split(char *t, size_t len);

/* route_find: the smtproutes value for |host|, netqmail's order: the line
 * for the host itself, then for each ".suffix" of it (longest first), then
 * the default line (empty domain); NULL when none.  |text| is
 * control_split's output; keys compare case-insensitively. */
const char *route_find(const char *text, size_t len, const char *host);

/* route_split reads a value "relay[:port]" (an IPv6 relay in brackets)
 * into |host| (|n| bytes) and *port (untouched when the value names none):
 * 0, or -1 when the relay does not fit or the port is not 1 to 65535 in
 * decimal. */
int route_split(const char *value, char *host, size_t n, unsigned *port);

/* The TLS policy of one destination (tls.c, qmail-remote.8). */
enum { POL_NONE, POL_MAY, POL_ENCRYPT, POL_VERIFY, POL_SECURE, POL_FINGERPRINT, POL_DANE, POL_DANE_ONLY };
/* What DANE (levels dane, dane-only; RFC 7672) settled for one MX host:
 * DANE_AUTH usable TLSA records, TLS and their authentication required;
 * DANE_NOAUTH records, none usable: TLS required, no authentication. */
enum { DANE_OFF, DANE_AUTH, DANE_NOAUTH };
/* Where a policy's level came from: a tlspolicy line or file for the
 * destination (policy_for), the defaults (tlspolicy's default line, else
 * may: policy_for), an MTA-STS policy (sts_mx, sts.h), or dane, from any
 * line, left at may for want of TLSA records to go by (dane_for). */
enum { ORIGIN_NAMED, ORIGIN_DEFAULT, ORIGIN_STS, ORIGIN_DANE_MAY };
struct policy {
	int level;
	int dane;                 /* DANE_*, set per MX host by dane_for (qmail-remote.h) */
	char cafile[1024];        /* trust anchors for verify/secure ("" none) */
	char match[1024];         /* extra names for secure, '|'-separated */
	char fingerprints[2048];  /* for fingerprint, '|'-separated */
	char source[700];         /* where the level came from, for the report */
	int origin;               /* ORIGIN_*, where the level came from */
};
extern const char *policy_names[];

/* policy_find: the tlspolicy value for |name| itself, else for the
 * nearest ".parent" of it (the key found copied to |which|); lines
 * starting with '#' are comments; NULL when none.  |name| "" finds the
 * default line. */
const char *policy_find(const char *text, size_t len, const char *name, char *which, size_t wn);

/* policy_parse reads a value "level[:opt,opt...]" (options ca=FILE,
 * match=NAME|..., fingerprint=SHA256:...|...) into |p|'s level and
 * fields: 0, or -1 for an unknown level or option or a value longer than
 * its field (a guess or a cut could weaken the policy meant). */
int policy_parse(const char *value, struct policy *p);

/* policy_check looks at every line of a tlspolicy file (split by
 * control_split): each must be empty, a comment, or "key:value" with a
 * value policy_parse takes (the key, empty for the default line, ends at
 * its first colon; an address literal "[...]" at the colon after its
 * "]").  0 when all are, else the number (from 1) of the first line that
 * is not: a line no lookup would ever find must not leave its destination
 * at the default level unnoticed.  *levels gets bit 1 << level set for
 * each level a line names (|levels| may be NULL). */
size_t policy_check(const char *text, size_t len, unsigned *levels);

#endif
