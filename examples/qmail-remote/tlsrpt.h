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
 * NULL).  Never fails a delivery: an unwritable log is ignored. */
void tlsrpt_event(const char *policy_type, const char *policy_domain, const char *domain,
    const char *mx_host, const char *addr, const char *result, const char *detail);

#endif
