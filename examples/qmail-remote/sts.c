/* sts.c -- MTA-STS in qmail-remote's delivery; see sts.h.
 * ISC license: see LICENSE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cachedir.h"
#include "mtasts.h"
#include "sts.h"
#include "tlsrpt.h"

#define STS_CACHE_DIR "queue/mtastscache"
#define TXT_MAX 16

static int enabled = -1;     /* control/tlsmtasts: -1 not read yet */
static int have;             /* a policy applies to this delivery */
static int refused;          /* MX hosts an enforce policy kept the message from */
static char dom[254];        /* the policy domain ("" none) */
static char txt_id[MTASTS_ID_MAX + 1];
static struct mtasts_policy pol;
static char text[MTASTS_POLICY_MAX + 1];
static size_t text_len;
static char filebuf[MTASTS_CACHE_FILE_MAX];

static int sts_enabled(void)
{
	char *t;
	size_t len;
	int r;
	if (enabled >= 0)
		return enabled;
	r = control_readfile("control/tlsmtasts", &t, &len);
	if (r < 0)
		temp_control();
	enabled = 0;
	if (r == 0)
		return 0;
	control_split(t, len);
	if (!strcmp(t, "1"))
		enabled = 1;
	else if (strcmp(t, "0") && *t)
		temp_control_line("control/tlsmtasts", 1);
	free(t);
	return enabled;
}

/* ------------------------------------------------------------------ the cache */

static struct cachedir cache = CACHEDIR_INIT;

/* The cached policy of |dom| into pol/text and |c|: 1, or 0 (a miss;
 * a damaged or expired file is removed). */
static int cache_load(struct mtasts_cached *c)
{
	struct mtasts_policy p;
	const char *why;
	size_t len;
	int r;
	/* a policy others could replace would let them lift its enforcement:
	 * cachedir.h's rules */
	if (cachedir_open(&cache, STS_CACHE_DIR) < 0)
		return 0;
	len = cachedir_read(&cache, dom, filebuf, sizeof filebuf);
	if (!len)
		return 0;
	r = mtasts_cache_parse(filebuf, len, dom, (long long)time(NULL), c);
	if (r == 0 && mtasts_policy_parse(c->text, c->len, &p, &why) < 0)
		r = -1;
	if (r < 0)
		cachedir_drop(&cache, dom);
	if (r)
		return 0;
	pol = p;
	memcpy(text, c->text, c->len);
	text[c->len] = 0;
	text_len = c->len;
	return 1;
}

/* The policy in pol/text, fetched now for txt_id, written to the cache
 * (an entry's mtime is its expiry). */
static void cache_store(void)
{
	time_t now = time(NULL);
	long long expires = (long long)now + (long long)pol.max_age;
	size_t len;
	if (cachedir_open(&cache, STS_CACHE_DIR) < 0)
		return;
	len = mtasts_cache_format(filebuf, sizeof filebuf, dom, txt_id, (long long)now, expires, text, text_len);
	if (len)   /* 0: max_age 0, used once, never kept */
		cachedir_write(&cache, dom, filebuf, len, expires);
}

/* ------------------------------------------------------------------ lookup */

/* The id of the one STS record at _mta-sts.<dom> into txt_id: 1; 0 when
 * there is none, more than one (malformed ones counted: RFC 8461 section
 * 3.1 keeps every record beginning with "v=STSv1"), the one is malformed,
 * or the lookup failed. */
static int txt_lookup(void)
{
	char name[300], *recs[TXT_MAX], id[MTASTS_ID_MAX + 1];
	size_t lens[TXT_MAX];
	int n, i, sts = 0, valid = 0;
	snprintf(name, sizeof name, "_mta-sts.%s", dom);
	n = dns_txt(name, recs, lens, TXT_MAX);
	for (i = 0; i < n; i++) {
		int r = mtasts_txt_parse(recs[i], lens[i], id);
		sts += r != 0;
		if (r == 1 && valid++ == 0)
			memcpy(txt_id, id, sizeof id);
		free(recs[i]);
	}
	return sts == 1 && valid == 1;
}

static const char *fetch_type(int rc)
{
	return rc == MTASTS_WEBPKI_INVALID ? "sts-webpki-invalid" :
	    rc == MTASTS_POLICY_INVALID ? "sts-policy-invalid" : "sts-policy-fetch-error";
}

/* A fresh policy for txt_id into pol/text: 1, or 0 with the failure
 * recorded as an event. */
static int fetch(void)
{
	struct mtasts_fetch_opts o = { NULL, 0, ctl.timeoutremote < 60 ? ctl.timeoutremote : 60 };
	struct mailtls_config *cfg = mailtls_config_new();
	const char *ca = ctl.tlscafile ? ctl.tlscafile : QMAIL_REMOTE_CAFILE;
	struct mtasts_policy p;
	char err[512], host[300];
	int rc;
	if (!cfg)
		temp_nomem();
	snprintf(host, sizeof host, "mta-sts.%s", dom);
	if (mailtls_config_set_ca(cfg, ca, NULL) < 0) {
		snprintf(err, sizeof err, "%s", mailtls_config_error(cfg));
		rc = MTASTS_FETCH_ERROR;
	} else {
		rc = mtasts_fetch(cfg, dom, &o, &p, text, &text_len, err, sizeof err);
	}
	mailtls_config_free(cfg);
	if (rc != MTASTS_OK) {
		tlsrpt_event(TLSRPT_POLICY_STS, dom, dom, host, "", fetch_type(rc), err);
		note_add("MTA-STS: the policy of %s could not be fetched: %s", dom, err);
		return 0;
	}
	text[text_len] = 0;
	pol = p;
	return 1;
}

/* The policy of dom, looked up again (|force|: fetched whatever the cache
 * says): 1 when one applies. */
static int lookup(int force)
{
	struct mtasts_cached c;
	int cached = cache_load(&c);
	if (!txt_lookup())
		return cached;   /* no record, or DNS failed: a cached policy still holds */
	if (cached && !force && !strcmp(c.id, txt_id))
		return 1;
	if (fetch()) {
		cache_store();
		return 1;
	}
	return cached;   /* a failed fetch leaves the cached policy in pol and text */
}

void sts_begin(const char *domain)
{
	have = 0;
	if (!mtasts_domain(domain, dom))
		dom[0] = 0;
	else if (sts_enabled())
		have = lookup(0);
}

/* The policy's text as the report's policy-string: its lines, LF between
 * (NULL when too long for an event line). */
static const char *policy_string(void)
{
	static char ps[TLSRPT_POLICY_MAX + 1];
	size_t i, o = 0;
	for (i = 0; i < text_len; i++) {
		if (text[i] == '\r')
			continue;
		if (o == TLSRPT_POLICY_MAX)
			return NULL;
		ps[o++] = text[i];
	}
	while (o && ps[o - 1] == '\n')
		o--;
	ps[o] = 0;
	return ps;
}

/* MTA-STS may apply: the local policy is may or encrypt from the
 * defaults (neither authenticates), or may because dane had no TLSA
 * records to go by.  A line naming the destination wins otherwise; dane
 * asked for more than may, and DANE takes precedence only where it
 * applies (RFC 8461 section 2). */
static int open_to_sts(const struct policy *p)
{
	return (p->level == POL_MAY || p->level == POL_ENCRYPT) &&
	    (p->origin == ORIGIN_DEFAULT || p->origin == ORIGIN_DANE_MAY);
}

int sts_mx(const char *domain, const struct ip *ip, struct policy *p)
{
	char addr[64];
	(void)domain;
	if (!have || pol.mode == MTASTS_MODE_NONE || !open_to_sts(p))
		return 0;
	if (!mtasts_mx_match(&pol, ip->name)) {
		ip_fmt(ip, addr, sizeof addr);
		tlsrpt_event_policy(TLSRPT_POLICY_STS, dom, dom, ip->name, addr, "validation-failure",
		    "the MX host matches no mx pattern of the policy", policy_string());
		if (pol.mode == MTASTS_MODE_TESTING) {
			note_add("MTA-STS (testing): MX host %s does not match the policy of %s", ip->name, dom);
			return 0;
		}
		snprintf(tls_failure, sizeof tls_failure, "MTA-STS: MX host %s does not match the policy of %s",
		    ip->name, dom);
		refused++;
		return -1;
	}
	if (pol.mode == MTASTS_MODE_ENFORCE) {
		p->level = POL_VERIFY;
		p->cafile[0] = 0;
		snprintf(p->source, sizeof p->source, "MTA-STS policy of %s (enforce)", dom);
		p->origin = ORIGIN_STS;
	}
	return 0;
}

/* The result type of a may-level session in testing mode: was the peer
 * verified against the MX host name, as enforce would require? */
static const char *testing_type(struct mailtls *tls)
{
	if (!tls)
		return "starttls-not-supported";
	if (mailtls_peer_verified(tls))
		return "success";
	return tlsrpt_result_type(mailtls_peer_verify_result(tls));
}

void sts_session(const struct ip *ip, const char *addr, const struct policy *p, struct mailtls *tls, int r)
{
	const char *result, *detail = r ? tls_failure : NULL;
	int under = have && pol.mode != MTASTS_MODE_NONE && mtasts_mx_match(&pol, ip->name);
	if (under && pol.mode == MTASTS_MODE_ENFORCE && p->origin == ORIGIN_STS) {
		result = r ? tlsrpt_result_type(tls_failure_code) : "success";
		if (r) {
			char why[sizeof tls_failure];
			snprintf(why, sizeof why, "%s", tls_failure);
			snprintf(tls_failure, sizeof tls_failure, "MTA-STS (enforce, policy of %.253s): %.700s", dom, why);
			refused++;
		}
	} else if (under && pol.mode == MTASTS_MODE_TESTING && open_to_sts(p)) {
		result = r ? tlsrpt_result_type(tls_failure_code) : testing_type(tls);
		if (strcmp(result, "success"))
			note_add("MTA-STS (testing): %s [%s] would have failed the policy of %s (%s)", ip->name, addr,
			    dom, result);
	} else if (!have && dom[0] && (p->level == POL_MAY || p->level == POL_ENCRYPT)) {
		result = r ? tlsrpt_result_type(tls_failure_code) : tls ? "success" : "starttls-not-supported";
		tlsrpt_event(TLSRPT_POLICY_NONE, dom, dom, ip->name, addr, result, detail);
		return;
	} else {
		return;
	}
	tlsrpt_event_policy(TLSRPT_POLICY_STS, dom, dom, ip->name, addr, result, detail, policy_string());
}

int sts_recheck(void)
{
	static int done;
	char old[sizeof text];
	size_t old_len = text_len;
	int was = have;
	if (done || !have || pol.mode != MTASTS_MODE_ENFORCE || !refused)
		return 0;
	done = 1;
	memcpy(old, text, text_len + 1);
	have = lookup(1);
	refused = 0;
	return have != was || text_len != old_len || memcmp(old, text, text_len);
}
