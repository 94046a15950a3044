/* tls.c -- the TLS policy of one destination and the TLS steps.
 *
 * The level of a delivery (Postfix's names and meanings):
 *   1. control/tlspolicy, a line for the MX host, then for the recipient
 *      domain or a parent of it (".example" lines), in that order;
 *   2. control/tlshosts/<mxhost>.pem: verify, against that file only;
 *   3. control/notlshosts/<mxhost>, or control/tlshosts/exhaustivelist: none;
 *   4. control/tlspolicy's default line (empty domain), else may.
 * tlspolicy lines: "domain-or-host:level[:option,option...]", options
 * ca=FILE, match=NAME|NAME (secure), fingerprint=SHA256:...|...
 * Levels dane and dane-only are settled per MX host by dane.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cachefile.h"
#include "qmail-remote.h"
#include "tlsrpt.h"

char tls_failure[1024];
int tls_failure_code;

/* A tlspolicy value into |p|; a bad one is an unreadable control file. */
static void policy_read(const char *v, struct policy *p)
{
	if (policy_parse(v, p) < 0)
		temp_control();
}

void policy_for(const char *domain, const char *mxhost, struct policy *p)
{
	char fn[600], which[300];
	const char *v;
	memset(p, 0, sizeof *p);
	p->level = POL_MAY;
	if ((v = policy_find(ctl.tlspolicy, ctl.tlspolicy_len, mxhost, which, sizeof which)) ||
	    (v = policy_find(ctl.tlspolicy, ctl.tlspolicy_len, domain, which, sizeof which))) {
		snprintf(p->source, sizeof p->source, "tlspolicy %s", which);
		policy_read(v, p);
		return;
	}
	if (strlen(mxhost) < 300 && !strchr(mxhost, '/')) {
		snprintf(fn, sizeof fn, "control/tlshosts/%s.pem", mxhost);
		if (control_exists(fn)) {
			p->level = POL_VERIFY;
			snprintf(p->cafile, sizeof p->cafile, "%s", fn);
			snprintf(p->source, sizeof p->source, "%s", fn);
			return;
		}
		snprintf(fn, sizeof fn, "control/notlshosts/%s", mxhost);
		if (control_exists(fn)) {
			p->level = POL_NONE;
			snprintf(p->source, sizeof p->source, "%s", fn);
			return;
		}
	}
	if (control_exists("control/tlshosts/exhaustivelist")) {
		p->level = POL_NONE;
		snprintf(p->source, sizeof p->source, "control/tlshosts/exhaustivelist");
		return;
	}
	p->origin = ORIGIN_DEFAULT;
	if ((v = policy_find(ctl.tlspolicy, ctl.tlspolicy_len, "", which, sizeof which))) {
		snprintf(p->source, sizeof p->source, "tlspolicy default");
		policy_read(v, p);
		return;
	}
	snprintf(p->source, sizeof p->source, "default");
}

/* ------------------------------------------------------------ the TLS steps */

static const char *cafile_of(const struct policy *p)
{
	if (p->cafile[0])
		return p->cafile;
	if (ctl.tlscafile)
		return ctl.tlscafile;
	return QMAIL_REMOTE_CAFILE;
}

/* The configuration of one handshake under |p|.  may and encrypt accept
 * TLS 1.0 and CBC suites (the alternative is plaintext), or the suites of
 * control/tlsclientciphers; verify and above, and implicit TLS (port 465,
 * RFC 8314), keep the library's floor: TLS 1.2, AEAD suites only. */
static struct mailtls_config *make_config(const struct policy *p, int implicit, const char **ca_used)
{
	struct mailtls_config *cfg = mailtls_config_new();
	const char *ca = cafile_of(p);
	*ca_used = NULL;
	if (!cfg)
		temp_nomem();
	if ((p->level <= POL_ENCRYPT || p->dane == DANE_NOAUTH) && !implicit) {
		if (mailtls_config_set_min_protocol(cfg, MAILTLS_TLS1_0) < 0)
			goto fail;
		if (ctl.tlsclientciphers && mailtls_config_set_ciphers(cfg, ctl.tlsclientciphers) < 0)
			goto fail;
	}
	if (p->dane) {
		/* the TLSA records verify (mailtls_set_dane), no CA; with none
		 * usable the handshake goes on unauthenticated */
		if (mailtls_config_set_verify(cfg, MAILTLS_VERIFY_REQUIRE) < 0)
			goto fail;
	} else if (p->level <= POL_ENCRYPT) {
		/* opportunistic: verify only to report it */
		if (access(ca, R_OK) == 0 && mailtls_config_set_ca(cfg, ca, NULL) == 0) {
			*ca_used = ca;
			if (mailtls_config_set_verify(cfg, MAILTLS_VERIFY_OPTIONAL) < 0)
				goto fail;
		} else if (mailtls_config_set_verify(cfg, MAILTLS_VERIFY_NONE) < 0) {
			goto fail;
		}
	} else if (p->level == POL_FINGERPRINT) {
		char fps[sizeof p->fingerprints], *f, *save = NULL;
		snprintf(fps, sizeof fps, "%s", p->fingerprints);
		if (!fps[0])
			goto fail;
		for (f = strtok_r(fps, "|", &save); f; f = strtok_r(NULL, "|", &save))
			if (mailtls_config_add_pin(cfg, f) < 0)
				goto fail;
		if (mailtls_config_set_verify(cfg, MAILTLS_VERIFY_REQUIRE) < 0)
			goto fail;
	} else {
		if (mailtls_config_set_ca(cfg, ca, NULL) < 0)
			goto fail;
		*ca_used = ca;
		if (mailtls_config_set_verify(cfg, MAILTLS_VERIFY_REQUIRE) < 0)
			goto fail;
	}
	if (control_exists("control/clientcert.pem")) {
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		if (mailtls_config_set_keypair_file(cfg, "control/clientcert.pem", NULL) < 0)
			goto fail;
	}
	return cfg;
fail:
	snprintf(tls_failure, sizeof tls_failure, "TLS configuration failed (policy %s): %s",
	    policy_names[p->level], mailtls_config_error(cfg));
	tls_failure_code = TLS_FAIL_CONFIG;
	mailtls_config_free(cfg);
	return NULL;
}

/* Postfix's words for the peer. */
static const char *trust_word(struct mailtls *s)
{
	if (!mailtls_peer_has_cert(s))
		return "Anonymous";
	if (mailtls_peer_verified(s))
		return "Verified";
	if (mailtls_peer_verify_result(s) == MAILTLS_E_VERIFY_NAME)
		return "Trusted";
	return "Untrusted";
}

static void tls_summary(struct mailtls *s, const char *peername, const char *ca, const struct policy *p)
{
	char against[1100] = "";
	struct mailtls_dane_result d;
	int dane = mailtls_dane_result(s, &d);
	if (dane == MAILTLS_DANE_MATCHED)
		snprintf(against, sizeof against, " (DANE TLSA %d %d %d, %s)", d.usage, d.selector, d.mtype,
		    d.depth ? "trust anchor in the chain" : "the certificate itself");
	else if (dane == MAILTLS_DANE_UNUSABLE)
		snprintf(against, sizeof against, " (DANE: no usable TLSA, TLS required)");
	else if (mailtls_peer_verified(s) && p->level == POL_FINGERPRINT)
		snprintf(against, sizeof against, " (fingerprint %s)", mailtls_peer_fingerprint(s));
	else if (mailtls_peer_verified(s) && ca)
		snprintf(against, sizeof against, " (against %s)", ca);
	note_add("TLS: %s %s, %s peer %s%s%s", mailtls_protocol(s), mailtls_cipher(s), trust_word(s),
	    peername, against, mailtls_session_reused(s) ? ", resumed" : "");
}

static void fail_reason(const char *mxhost, const struct policy *p, const char *what, struct mailtls *s)
{
	char err[600];
	safe_copy(err, sizeof err, s ? mailtls_error(s) : "");
	tls_failure_code = s ? mailtls_errcode(s) : MAILTLS_E_NONE;
	if (s)
		snprintf(tls_failure, sizeof tls_failure, "TLS %s with %s [%s] (policy %s): %s (%s)", what, mxhost,
		    partner, policy_names[p->level], err, mailtls_errcode_name(mailtls_errcode(s)));
	else
		snprintf(tls_failure, sizeof tls_failure, "TLS %s with %s [%s] (policy %s)", what, mxhost, partner,
		    policy_names[p->level]);
}

/* Names the certificate is checked against (verify: the MX host; secure:
 * the destination domain and match= names; DANE-TA: the MX host, and the
 * destination domain when validated MX records led to the host, which
 * an smtproutes relay's never did: dns_ip). */
static int set_names(struct mailtls *s, const struct ip *ip, const struct policy *p, const char *domain)
{
	char buf[sizeof p->match], *save = NULL, *n;
	const char *names[16];
	size_t k = 0;
	if (p->dane) {
		const struct tlsa_rrs *r = dane_records();
		/* RFC 7672 section 3.2.2: the TLSA base domain, the MX host name
		 * (they differ for an alias), the domain when its MX records
		 * were validated */
		names[k++] = dane_base();
		if (strcasecmp(dane_base(), ip->name))
			names[k++] = ip->name;
		if (ip->secure && strcasecmp(domain, ip->name))
			names[k++] = domain;
		return mailtls_set_dane(s, r->rec, (size_t)r->n, names, k) < 0 ? -1 : 0;
	}
	if (p->level != POL_SECURE)
		return 0;
	names[k++] = domain;
	snprintf(buf, sizeof buf, "%s", p->match);
	for (n = strtok_r(buf, "|", &save); n && k < 16; n = strtok_r(NULL, "|", &save))
		names[k++] = n;
	return mailtls_set_verify_names(s, names, k);
}

/* A reply's text for the report: lines joined by spaces, CRs and other
 * bytes outside 32..126 as '?' (the code stays, once, as the reply says it). */
static void reply_text(char *dst, size_t n, const char *reply)
{
	size_t k;
	safe_copy(dst, n, reply);
	for (k = 0; dst[k]; k++)
		if (reply[k] == '\n')
			dst[k] = ' ';
	while (k > 0 && dst[k - 1] == ' ')
		dst[--k] = 0;
}

/* The handshake on |s| under |p| ended in failure: the words for it. */
static const char *failure_word(struct mailtls *s, const struct mailtls_starttls_info *info)
{
	int e = mailtls_errcode(s);
	if (e == MAILTLS_E_INJECTION)
		return "refused: plaintext injected after STARTTLS";
	if (info && info->starttls_code != 220)
		return "STARTTLS dialogue failed";   /* no handshake was tried */
	if (mailtls_errcode_is_verify(e))
		return "certificate verification failed";
	return "handshake failed";
}

/* TLS-RPT (RFC 8460) of a session under TLSA records (policy type tlsa):
 * |result| "success" or a result type.  A session whose records were all
 * unusable went on unauthenticated, as RFC 7672 wants, but is recorded as
 * tlsa-invalid: the domain's records are broken and its owner should know. */
static void dane_event(const struct ip *ip, const struct policy *p, const char *domain, const char *result)
{
	const char *detail = strcmp(result, "success") ? tls_failure : NULL;
	if (!p->dane)
		return;
	if (p->dane == DANE_NOAUTH && !detail) {
		result = "tlsa-invalid";
		detail = "no usable TLSA records: delivered over TLS without authentication";
	}
	tlsrpt_event_policy(TLSRPT_POLICY_TLSA, domain, domain, ip->name, partner, result, detail,
	    dane_policy_text());
}

/* A failed start under TLS: the cache entry offered (if any) goes, and
 * the next address is tried (may with STARTTLS: this one again later, in
 * plaintext). */
static int tls_failed(struct conn *c, const struct ip *ip, const struct policy *p, const char *domain,
    struct mailtls *s, struct mailtls_starttls_info *info, const char *key, int offered)
{
	fail_reason(ip->name, p, failure_word(s, info), s);
	dane_event(ip, p, domain, tlsrpt_result_type(mailtls_errcode(s)));
	if (offered)
		tlscache_drop(key);
	mailtls_free(s);
	free(info);
	conn_quit_close(c);
	/* implicit TLS (port 465, no |info|) has no plaintext to fall back to */
	return p->level == POL_MAY && info ? TRY_PLAIN_LATER : TRY_NEXT;
}

/* The saved session for |key|, offered on |s|: 1 when offered. */
static int offer_saved(struct mailtls *s, const char *key)
{
	static unsigned char sess[CACHE_SESSION_MAX];
	ssize_t n = tlscache_load(key, sess, sizeof sess);
	int r;
	if (n <= 0)
		return 0;
	r = mailtls_set_session(s, sess, (size_t)n);
	explicit_bzero(sess, (size_t)n);
	if (r < 0) {
		tlscache_drop(key);   /* unusable bytes (another library version): a full handshake */
		return 0;
	}
	return 1;
}

/* tls_start runs the start of the dialogue on |c| under policy |p|:
 * returns 0 with the greeting and EHLO done (in TLS or, where the policy
 * allows, in plaintext), TRY_NEXT (tls_failure says why, tls_failure_code
 * what) or TRY_PLAIN_LATER (may: the handshake failed, as both say); it
 * ends the delivery itself (quit) when the host refused us the way
 * netqmail reports.  Port 465 is implicit TLS (RFC 8314).  A session
 * saved by an earlier delivery to the same host, address, port and level
 * is offered; the peer of a resumed session is checked against the policy
 * all the same (mailtls.h). */
int tls_start(struct conn *c, const struct ip *ip, unsigned port, const struct policy *p, const char *domain)
{
	struct mailtls_starttls_info *info = calloc(1, sizeof *info);
	const char *ca, *sni = ip->name;   /* an address literal: no SNI, IP SANs checked */
	struct mailtls_config *cfg;
	struct mailtls *s;
	char key[CACHE_KEY_MAX + 1];
	int r, e, cached, offered = 0;
	if (!info)
		temp_nomem();
	cfg = make_config(p, port == 465, &ca);
	if (!cfg) {
		free(info);
		conn_quit_close(c);
		return TRY_NEXT;
	}
	s = mailtls_client(cfg, c->fd, c->fd, sni);
	mailtls_config_free(cfg);
	if (!s)
		temp_nomem();
	if (set_names(s, ip, p, domain) < 0)
		temp_nomem();
	cached = cache_key(key, sizeof key, policy_names[p->level], ip->name, partner, port) == 0;
	if (cached)
		offered = offer_saved(s, key);
	if (port == 465) {
		if (mailtls_handshake_timeout(s, c->timeout) < 0)
			return tls_failed(c, ip, p, domain, s, NULL, key, offered);
		c->tls = s;
		smtp_greet(c);
		if (cached)
			tlscache_store(key, s);
		tls_summary(s, ip->name, ca, p);
		dane_event(ip, p, domain, "success");
		free(info);
		return 0;
	}
	r = mailtls_starttls_client(s, MAILTLS_SMTP, ctl.helohost, c->timeout, info);
	e = mailtls_errcode(s);
	if (r < 0 && e == MAILTLS_E_PROTOCOL && info->greeting_code != 220) {
		smtptext_set(info->greeting);
		mailtls_free(s);
		quit(c, "ZConnected to ", " but greeting failed");
	}
	if (r < 0 && e == MAILTLS_E_PROTOCOL && info->ehlo_code && info->ehlo_code / 100 != 2 &&
	    !info->starttls_code) {
		/* EHLO answered 4xx, or HELO refused after EHLO was: netqmail's words */
		smtptext_set(info->ehlo);
		mailtls_free(s);
		quit(c, "ZConnected to ", " but my name was rejected");
	}
	if (r < 0 && (e == MAILTLS_E_SYSTEM || e == MAILTLS_E_TIMEOUT) && !info->starttls_code) {
		mailtls_free(s);
		dropped(c);
	}
	if (r == MAILTLS_STARTTLS_NOT_OFFERED || r == MAILTLS_STARTTLS_REFUSED) {
		char t[200];
		mailtls_free(s);
		reply_text(t, sizeof t, info->starttls_reply);
		if (p->level == POL_MAY) {
			if (r == MAILTLS_STARTTLS_REFUSED)
				note_add("TLS: STARTTLS refused by %s [%s] (%s), sent in plaintext", ip->name, partner, t);
			free(info);
			return 0;   /* plaintext on the same connection: nothing is buffered */
		}
		tls_failure_code = r == MAILTLS_STARTTLS_NOT_OFFERED ? TLS_FAIL_NO_STARTTLS : TLS_FAIL_STARTTLS_REFUSED;
		if (r == MAILTLS_STARTTLS_NOT_OFFERED)
			snprintf(tls_failure, sizeof tls_failure,
			    "%sTLS is required (policy %s) but %s [%s] did not offer STARTTLS", p->dane ? "DANE: " : "",
			    policy_names[p->level], ip->name, partner);
		else
			snprintf(tls_failure, sizeof tls_failure,
			    "%sTLS is required (policy %s) but %s [%s] refused STARTTLS: %s", p->dane ? "DANE: " : "",
			    policy_names[p->level], ip->name, partner, t);
		dane_event(ip, p, domain, "starttls-not-supported");
		free(info);
		conn_quit_close(c);
		return TRY_NEXT;
	}
	if (r < 0)
		return tls_failed(c, ip, p, domain, s, info, key, offered);
	/* DONE: forget everything learned in plaintext; EHLO again under TLS. */
	c->tls = s;
	r = mailtls_smtp_ehlo(s, ctl.helohost, c->timeout, info);
	if (r < 0)
		dropped(c);
	if (r != 250) {
		smtptext_set(info->ehlo);
		quit(c, "ZConnected to ", " but my name was rejected");
	}
	/* the EHLO reply came after any TLS 1.3 ticket: the newest is saved */
	if (cached)
		tlscache_store(key, s);
	tls_summary(s, ip->name, ca, p);
	dane_event(ip, p, domain, "success");
	free(info);
	return 0;
}
