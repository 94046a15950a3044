/* sts.h -- MTA-STS (RFC 8461) in qmail-remote's delivery: the policy of
 * the recipient domain (its _mta-sts TXT record, a cache on disk, the
 * HTTPS fetch of mtasts.c), what it means for each MX host, and the
 * TLS-RPT events (tlsrpt.h) of each attempt under it.
 *
 * Switched on by control/tlsmtasts (first line "1"; missing or "0": off,
 * anything else: "Unable to read control files").  It applies to a
 * destination reached through MX (never an smtproutes relay or an address
 * literal) whose TLS level for the MX host is "may" or "encrypt" from
 * the defaults (no control/tlspolicy line for the host or domain, no
 * tlshosts or notlshosts file), or "may" because dane, from any line, had no TLSA
 * records to go by: other local policy wins, and so does DANE where it
 * applies (RFC 8461 section 2).
 *
 * The cache is the directory queue/mtastscache, used only when it exists,
 * belongs to this user and is closed to others: one file per domain slot
 * (cachefile.h's cache_slot, format in mtasts.h), mode 0600, written to a
 * temporary name and renamed; expired and damaged files are dropped.  A
 * missing, foreign, damaged or unwritable cache only costs a fetch.
 * This process is one delivery to one domain: the state is kept here.
 * ISC license: see LICENSE. */
#ifndef QMR_STS_H
#define QMR_STS_H

#include "qmail-remote.h"

/* sts_begin looks up the policy of |domain| for this delivery when
 * control/tlsmtasts is on: the TXT record at _mta-sts.<domain> (none, or
 * more than one STS record: no policy; a DNS failure: the cached policy
 * if any), the cached policy when its id is the record's and it has not
 * expired, else a fetch (whose failure keeps a cached unexpired policy,
 * else no policy, recorded as a TLS-RPT event of its RFC 8460 type).
 * Never fails the delivery. */
void sts_begin(const char *domain);

/* sts_mx decides for MX host |ip| of |domain| under the policy found,
 * given the local policy |p| that policy_for gave: returns -1 when the
 * host must not be used (enforce, the host matches no mx pattern:
 * tls_failure reads "MTA-STS: MX host X does not match the policy of
 * DOMAIN"), else 0, with |p| raised to verify against the MX host name
 * (p->source naming the policy, p->origin ORIGIN_STS) when an enforce
 * policy applies.  In testing mode |p| is left alone and a mismatch is
 * only recorded. */
int sts_mx(const char *domain, const struct ip *ip, struct policy *p);

/* sts_session records the TLS-RPT event of one attempt at |ip| (address
 * text |addr|) that got as far as the start of the dialogue under |p|:
 * |r| is tls_start's result (0: the dialogue goes on, with |tls| the
 * session or NULL for plaintext; TRY_NEXT or TRY_PLAIN_LATER: failed, as
 * tls_failure says).  Under an MTA-STS policy the event is of type "sts"
 * (testing mode: success only when the peer was verified against the MX
 * host name, else a note in the report), and an enforce failure's
 * tls_failure is prefixed "MTA-STS (enforce, policy of DOMAIN): ";
 * without a policy, at levels may and encrypt, "no-policy-found".  Other
 * levels (none, tlspolicy's, DANE's) record nothing here. */
void sts_session(const struct ip *ip, const char *addr, const struct policy *p, struct mailtls *tls, int r);

/* sts_recheck is RFC 8461 section 5.1's look before deferring: when an
 * enforce policy kept the message from every MX host it fetches the
 * policy again whatever the cache says; 1 when it changed (the caller
 * tries the MX hosts again, once), else 0. */
int sts_recheck(void);

#endif
