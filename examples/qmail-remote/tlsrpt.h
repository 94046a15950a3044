/* tlsrpt.h -- TLS-RPT (RFC 8460) events: one line per delivery attempt,
 * appended to a log under the qmail tree, for the aggregator
 * (examples/tlsrpt-report) to turn into the daily JSON reports.
 * ISC license: see LICENSE. */
#ifndef QMR_TLSRPT_H
#define QMR_TLSRPT_H

/* RFC 8460 section 4.3: the policy that applied to the attempt. */
#define TLSRPT_POLICY_TLSA "tlsa"
#define TLSRPT_POLICY_STS "sts"
#define TLSRPT_POLICY_NONE "no-policy-found"

/* tlsrpt_event records one attempt at |mx_host| (|addr| its address text)
 * for recipient domain |domain| under |policy_type| (above; |policy_domain|
 * the domain the policy belongs to, usually |domain|): |result| "success"
 * or an RFC 8460 result type ("starttls-not-supported",
 * "certificate-host-mismatch", "certificate-expired",
 * "certificate-not-trusted", "validation-failure", "tlsa-invalid",
 * "dnssec-invalid", "dane-required", "sts-policy-fetch-error",
 * "sts-policy-invalid", "sts-webpki-invalid"), |detail| free text (may be
 * NULL).  Never fails a delivery: an unwritable log is ignored.
 *
 * The log: queue/tlsrpt/YYYY-MM-DD (the UTC day of the event), kept only
 * when the directory queue/tlsrpt exists, belongs to this user and others
 * cannot write it; files mode 0600, opened O_APPEND and written one whole
 * line per write(2), so concurrent qmail-remotes never interleave.  A line
 * (examples/tlsrpt-report reads it):
 *   "tlsrpt1" TAB TIME TAB POLICY-TYPE TAB POLICY-DOMAIN TAB DOMAIN TAB
 *   MX-HOST TAB ADDR TAB SENDING-IP TAB RESULT TAB DETAIL TAB POLICY-STRING LF
 * TIME seconds since the epoch; SENDING-IP the local address of the
 * connection (tlsrpt_local), or empty; POLICY-STRING the policy's lines
 * joined by LF, or empty.  Every field is escaped: bytes outside 0x21..0x7e
 * and '%' as "%XX" (uppercase hex), so no field holds a TAB or LF and a
 * hostile MX name or reply cannot forge a line.  DETAIL is cut at
 * TLSRPT_DETAIL_MAX bytes; a POLICY-STRING over TLSRPT_POLICY_MAX is left
 * empty. */
#define TLSRPT_DETAIL_MAX 1024
#define TLSRPT_POLICY_MAX 8192
void tlsrpt_event(const char *policy_type, const char *policy_domain, const char *domain,
    const char *mx_host, const char *addr, const char *result, const char *detail);

/* tlsrpt_event_policy is tlsrpt_event with the policy's text (|policy|,
 * the policy file's lines; NULL: none) for the report's policy-string. */
void tlsrpt_event_policy(const char *policy_type, const char *policy_domain, const char *domain,
    const char *mx_host, const char *addr, const char *result, const char *detail, const char *policy);

/* tlsrpt_result_type is RFC 8460's result type for a failure |code|: a
 * libmailtls error category (MAILTLS_E_*, e.g. a verification result) or
 * one of tls.c's TLS_FAIL_* (qmail-remote.h); "validation-failure" for
 * what RFC 8460 names no type of its own. */
const char *tlsrpt_result_type(int code);

/* tlsrpt_local notes the local address of connected socket |fd| as the
 * sending MTA's for the events that follow; -1 forgets it. */
void tlsrpt_local(int fd);

#endif
