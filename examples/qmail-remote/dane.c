/* dane.c -- the levels dane and dane-only (Postfix's meanings, RFC 7672):
 * what one MX host's DNSSEC status and TLSA records make of them, decided
 * before connecting.  The records stay here for tls_start.
 * ISC license: see LICENSE. */
#include <stdio.h>
#include <string.h>

#include "qmail-remote.h"
#include "tlsrpt.h"

static struct tlsa_rrs rrs;   /* the records of the MX host being tried */
static int found;             /* rrs holds that host's validated records */
static const char *base;      /* the name they were looked up at */

/* mailtls_set_dane's rule (mailtls.h): usage DANE-TA(2) or DANE-EE(3),
 * selector 0 or 1, matching type 0 with data, 1 with 32 bytes or 2 with
 * 64.  Known before connecting, so that dane-only can pass an MX by. */
static int usable(const struct mailtls_tlsa *r)
{
	if (r->usage != MAILTLS_TLSA_DANE_TA && r->usage != MAILTLS_TLSA_DANE_EE)
		return 0;
	if (r->selector != 0 && r->selector != 1)
		return 0;
	return (r->mtype == 0 && r->len > 0) || (r->mtype == 1 && r->len == 32) || (r->mtype == 2 && r->len == 64);
}

/* 1 the first time |ip| (host and address) is seen here: the second try
 * of a host (may: in plaintext, after a failed handshake) notes nothing. */
static int first_time(const struct ip *ip)
{
	static struct { char name[256]; unsigned char a[16]; } seen[MAX_IPS];
	static int nseen;
	int i;
	for (i = 0; i < nseen; i++)
		if (!strcmp(seen[i].name, ip->name) && !memcmp(seen[i].a, ip->a, 16))
			return 0;
	if (nseen < MAX_IPS) {
		memcpy(seen[nseen].name, ip->name, sizeof seen[nseen].name);
		memcpy(seen[nseen].a, ip->a, 16);
		nseen++;
	}
	return 1;
}

/* No TLSA to go by: dane is may (noted), dane-only passes this MX by.
 * Only dane-only's refusal is a tlsa event: RFC 8460's dane-required is a
 * sender requiring DANE for every MX host.  Under dane the attempt has no
 * DANE policy and is recorded as may's are (sts_session). */
static int without_tlsa(const struct ip *ip, const char *addr, const char *domain, struct policy *p,
    const char *why)
{
	if (p->level == POL_DANE_ONLY) {
		snprintf(tls_failure, sizeof tls_failure, "DANE: %s for %s [%s], not used (policy dane-only)", why,
		    ip->name, addr);
		tlsrpt_event(TLSRPT_POLICY_TLSA, domain, domain, ip->name, addr, "dane-required", tls_failure);
		return -1;
	}
	if (first_time(ip))
		note_add("DANE: %s for %s [%s], TLS opportunistic (policy dane)", why, ip->name, addr);
	p->level = POL_MAY;
	p->origin = ORIGIN_DANE_MAY;
	return 0;
}

int dane_for(const struct ip *ip, unsigned port, const char *domain, struct policy *p)
{
	char addr[64];
	int i, n = 0, t;
	if (p->level != POL_DANE && p->level != POL_DANE_ONLY)
		return 0;
	ip_fmt(ip, addr, sizeof addr);
	found = 0;
	/* RFC 7672 section 2.2: TLSA only for a host whose address records
	 * were validated (an insecure MX RRset only keeps the domain out of
	 * the names checked, section 3.2.2); otherwise no DANE for it */
	if (!ip->addrsecure)
		return without_tlsa(ip, addr, domain, p, "address records not DNSSEC-validated");
	/* section 2.2.2: an alias first at the name its CNAMEs lead to (the
	 * chain validated with the addresses); only where nothing validated
	 * is found there, at the MX host name itself */
	base = ip->canon[0] ? ip->canon : ip->name;
	t = dns_tlsa(base, port, &rrs);
	if (base != ip->name && (t == TLSA_NONE || t == TLSA_INSECURE)) {
		base = ip->name;
		t = dns_tlsa(base, port, &rrs);
	}
	switch (t) {
	case TLSA_BOGUS:
		snprintf(tls_failure, sizeof tls_failure,
		    "DANE: TLSA lookup bogus (DNSSEC validation failed) for _%u._tcp.%s [%s], not used (policy %s)",
		    port, base, addr, policy_names[p->level]);
		tlsrpt_event(TLSRPT_POLICY_TLSA, domain, domain, ip->name, addr, "dnssec-invalid", tls_failure);
		return -1;
	case TLSA_SOFT:
		snprintf(tls_failure, sizeof tls_failure,
		    "DANE: TLSA lookup failed temporarily for _%u._tcp.%s [%s], not used (policy %s)", port, base,
		    addr, policy_names[p->level]);
		tlsrpt_event(TLSRPT_POLICY_TLSA, domain, domain, ip->name, addr, "dnssec-invalid", tls_failure);
		return -1;
	case TLSA_NONE:
		return without_tlsa(ip, addr, domain, p, "no TLSA records");
	case TLSA_INSECURE:
		return without_tlsa(ip, addr, domain, p, "TLSA records not DNSSEC-validated");
	default:
		found = 1;
		break;
	}
	for (i = 0; i < rrs.n; i++)
		n += usable(&rrs.rec[i]);
	if (n) {
		p->dane = DANE_AUTH;
		return 0;
	}
	if (p->level == POL_DANE_ONLY) {
		snprintf(tls_failure, sizeof tls_failure,
		    "DANE: no usable TLSA records for %s [%s], not used (policy dane-only)", ip->name, addr);
		tlsrpt_event_policy(TLSRPT_POLICY_TLSA, domain, domain, ip->name, addr, "tlsa-invalid", tls_failure,
		    dane_policy_text());
		return -1;
	}
	p->dane = DANE_NOAUTH;   /* RFC 7672 section 2.2: TLS still required */
	return 0;
}

const struct tlsa_rrs *dane_records(void)
{
	return &rrs;
}

const char *dane_base(void)
{
	return base;
}

const char *dane_policy_text(void)
{
	static char text[TLSRPT_POLICY_MAX + 1];
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0, k;
	int i;
	if (!found)
		return NULL;
	for (i = 0; i < rrs.n; i++) {
		const struct mailtls_tlsa *r = &rrs.rec[i];
		int l;
		if (!r->data)
			continue;   /* malformed: no presentation form */
		l = snprintf(text + o, sizeof text - o, "%s%d %d %d ", o ? "\n" : "", r->usage, r->selector, r->mtype);
		if (l < 0 || (size_t)l >= sizeof text - o || 2 * r->len >= sizeof text - o - (size_t)l)
			return NULL;   /* too long for an event line: left out */
		o += (size_t)l;
		for (k = 0; k < r->len; k++) {
			text[o++] = hex[r->data[k] >> 4];
			text[o++] = hex[r->data[k] & 15];
		}
		text[o] = 0;
	}
	return o ? text : NULL;
}
