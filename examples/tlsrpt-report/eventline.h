/* eventline.h -- one line of qmail-remote's TLS-RPT event log (the format
 * is written down in examples/qmail-remote/tlsrpt.h), read back.  Pure:
 * no I/O, no allocation; fuzzed (fuzz/fuzz_tlsrpt_event.c).
 * ISC license: see LICENSE. */
#ifndef TLSRPT_EVENTLINE_H
#define TLSRPT_EVENTLINE_H

#include <stddef.h>

#define EV_NAME_MAX 256        /* policy domain, domain, MX host, addresses */
#define EV_RESULT_MAX 64
#define EV_DETAIL_MAX 1024     /* TLSRPT_DETAIL_MAX */
#define EV_POLICY_MAX 8192     /* TLSRPT_POLICY_MAX */

struct event {
	long long time;                        /* seconds since the epoch */
	char policy_type[16];                  /* "sts", "tlsa" or "no-policy-found" */
	char policy_domain[EV_NAME_MAX + 1];
	char domain[EV_NAME_MAX + 1];
	char mx_host[EV_NAME_MAX + 1];
	char addr[EV_NAME_MAX + 1];            /* the receiving address ("" unknown) */
	char sending_ip[EV_NAME_MAX + 1];      /* "" unknown */
	char result[EV_RESULT_MAX + 1];        /* "success" or an RFC 8460 result type */
	char detail[EV_DETAIL_MAX + 1];
	char policy[EV_POLICY_MAX + 1];        /* the policy's lines, LF between ("" none) */
};

/* event_parse reads one line (|len| bytes, without its LF) into |e|, the
 * fields unescaped and NUL-terminated: 0, or -1 when the line is not
 * exactly "tlsrpt1", a TAB, a decimal time (no sign, no leading zero, at
 * most 18 digits) and ten TAB-separated fields, each of bytes 0x21..0x7e
 * with '%' only in "%XX" (uppercase hex) escapes of bytes that need them
 * (outside 0x21..0x7e, or '%') other than NUL, each within its bound
 * above; the policy type one of the three; the policy domain not empty;
 * the result "success" or one of RFC 8460's result types.  So a line
 * event_parse takes is the only encoding of its fields. */
int event_parse(const char *line, size_t len, struct event *e);

/* event_result_known: 1 when |r| is "success" or an RFC 8460 result type. */
int event_result_known(const char *r);

#endif
