/* report.h -- a day's events gathered into RFC 8460 reports, one per
 * policy domain, written as JSON (RFC 8460 section 4.4).
 * ISC license: see LICENSE. */
#ifndef TLSRPT_REPORT_H
#define TLSRPT_REPORT_H

#include <stdio.h>

#include "eventline.h"

struct report;

struct report_meta {
	const char *organization;    /* organization-name */
	const char *contact;         /* contact-info */
	const char *report_id;       /* report-id */
	const char *start, *end;     /* date-range, RFC 3339 date-times */
};

/* report_new: an empty gathering, or NULL (no memory). */
struct report *report_new(void);
void report_free(struct report *r);

/* report_add counts |e|: under the policy of its type, domain and text,
 * a success, or a failure in the failure-details group of its result
 * type, sending IP, receiving MX host and receiving IP (the group's
 * failure-reason-code is the first such event's detail).  0, or -1 (no
 * memory). */
int report_add(struct report *r, const struct event *e);

/* The policy domains gathered, sorted: report_ndomains of them. */
size_t report_ndomains(const struct report *r);
const char *report_domain(const struct report *r, size_t i);

/* report_write writes the JSON report of |domain| to |f|: the fields
 * organization-name, date-range {start-datetime, end-datetime},
 * contact-info, report-id, policies[] of {policy {policy-type,
 * policy-string[] (the policy's lines; not for no-policy-found),
 * policy-domain, mx-host[] (sts: the policy's mx patterns; tlsa: the MX
 * hosts; not for no-policy-found)}, summary
 * {total-successful-session-count, total-failure-session-count},
 * failure-details[] of {result-type, sending-mta-ip, receiving-mx-hostname,
 * receiving-ip, failed-session-count, failure-reason-code} (empty values
 * left out; the array left out when there are no failures)}.  Strings
 * are JSON-escaped; bytes outside 0x20..0x7e are written as \u00XX.
 * 0, or -1 with errno when |f| failed. */
int report_write(FILE *f, const struct report *r, const char *domain, const struct report_meta *m);

#endif
