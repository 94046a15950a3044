/* dns.c -- MX, A, AAAA, CNAME, TXT and TLSA lookups through libunbound
 * (no OpenSSL in the process: Debian's libunbound8 uses nettle), asking
 * the servers of /etc/resolv.conf and validating DNSSEC against the trust
 * anchor of control/dnssecanchor.  MX hosts sorted by preference, shuffled
 * within one; A before AAAA for each host; a domain without MX gets its
 * A/AAAA at preference 0.  A bogus answer is a temporary failure, as a
 * validating resolver's SERVFAIL would be. */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unbound.h>
#include <unistd.h>

#include "qmail-remote.h"

int ip_literal(const char *s, struct ip *ip)
{
	char buf[80];
	size_t n = strlen(s);
	memset(ip, 0, sizeof *ip);
	if (n >= sizeof buf)
		return 0;
	if (s[0] == '[') {
		if (n < 3 || s[n - 1] != ']')
			return 0;
		memcpy(buf, s + 1, n - 2);
		buf[n - 2] = 0;
	} else {
		memcpy(buf, s, n + 1);
	}
	if (inet_pton(AF_INET, buf, ip->a) == 1) {
		ip->family = AF_INET;
	} else if (s[0] == '[' && (inet_pton(AF_INET6, buf, ip->a) == 1 ||
	    (strncasecmp(buf, "IPv6:", 5) == 0 && inet_pton(AF_INET6, buf + 5, ip->a) == 1))) {
		ip->family = AF_INET6;
	} else {
		return 0;
	}
	ip_fmt(ip, ip->name, sizeof ip->name);
	return 1;
}

void ip_fmt(const struct ip *ip, char *buf, size_t n)
{
	if (!inet_ntop(ip->family, ip->a, buf, (socklen_t)n))
		snprintf(buf, n, "?");
}

/* ------------------------------------------------------------ the resolver */

static struct ub_ctx *ub;
static int ub_broken;   /* resolv.conf unreadable or unusable: every lookup is DNS_SOFT */

/* The trust anchor file: control/dnssecanchor's first line; an empty file
 * turns validation off; without the file, DNSSEC_ANCHOR_DEFAULT when it
 * can be read and control/tlspolicy names dane or dane-only.  NULL: no
 * validation.  Only DANE needs validated answers, and validation through a
 * resolver that strips DNSSEC records makes every answer bogus: a drop-in
 * that nobody asked for DANE must resolve as netqmail did. */
static const char *anchor_file(void)
{
	if (ctl.dnssecanchor)
		return ctl.dnssecanchor[0] ? ctl.dnssecanchor : NULL;
	if (!(ctl.tlspolicy_levels & (1u << POL_DANE | 1u << POL_DANE_ONLY)))
		return NULL;
	return access(DNSSEC_ANCHOR_DEFAULT, R_OK) == 0 ? DNSSEC_ANCHOR_DEFAULT : NULL;
}

/* The trust anchor file control/dnssecanchor names cannot be read, or
 * unbound takes no anchor from it (found at the first lookup). */
static void bad_anchor(void) __attribute__((noreturn));
static void bad_anchor(void)
{
	temp_control_line("control/dnssecanchor", 1);
}

/* One context per process, made at the first lookup. */
static struct ub_ctx *resolver(void)
{
	static const char *special[] = { "test. transparent", "invalid. transparent", "onion. transparent",
		"home.arpa. transparent" };
	const char *ta;
	FILE *devnull;
	size_t i;
	int r;
	if (ub || ub_broken)
		return ub;
	ub = ub_ctx_create();
	if (!ub)
		temp_nomem();
	/* fd 2 is the report pipe's neighbour: unbound's log goes nowhere */
	devnull = fopen("/dev/null", "we");
	if (!devnull || ub_ctx_debugout(ub, devnull) != 0)
		temp_oserr();
	/* loopback resolvers (127.0.0.53, a local unbound) are the usual case */
	if (ub_ctx_set_option(ub, "do-not-query-localhost:", "no") != 0)
		temp_nomem();
	/* a resolver that does not answer: unbound's backoff would wait up to
	 * two minutes a try; 2 s a try keeps a lookup under ~10 s, as glibc's
	 * "timeout:2 attempts:2" did (the message is retried later anyway) */
	if (ub_ctx_set_option(ub, "infra-cache-max-rtt:", "2000") != 0)
		temp_nomem();
	/* the resolver of resolv.conf answers for these names, as it did for
	 * libresolv; unbound's own default answers (NXDOMAIN) are not ours */
	for (i = 0; i < sizeof special / sizeof special[0]; i++)
		if (ub_ctx_set_option(ub, "local-zone:", special[i]) != 0)
			temp_nomem();
	/* no resolv.conf: the local server, as glibc's resolver does
	 * (libunbound itself does so for a file that names none) */
	r = ub_ctx_resolvconf(ub, NULL);
	if (r == UB_READFILE && access("/etc/resolv.conf", F_OK) < 0 && errno == ENOENT)
		r = ub_ctx_set_fwd(ub, "127.0.0.1");
	if (r != 0) {
		ub_ctx_delete(ub);
		ub = NULL;
		ub_broken = 1;
		return NULL;
	}
	ta = anchor_file();
	if (ta) {
		int fd = open(ta, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			bad_anchor();
		close(fd);
		if (ub_ctx_add_ta_file(ub, ta) != 0)
			temp_nomem();
	}
	return ub;
}

/* The outcomes of one query. */
enum { Q_DATA, Q_NODATA, Q_NXDOMAIN, Q_BOGUS, Q_SOFT };

/* query asks for |type| records of |name|: Q_DATA with *res (the caller
 * frees it), or the outcome without data (*res NULL).  *secure: the
 * answer, or the denial, was validated. */
static int query(const char *name, int type, struct ub_result **res, int *secure)
{
	struct ub_ctx *u = resolver();
	struct ub_result *r = NULL;
	int out, q;
	*res = NULL;
	*secure = 0;
	if (!u)
		return Q_SOFT;
	q = ub_resolve(u, name, type, ns_c_in, &r);
	if (q == UB_INITFAIL)
		bad_anchor();   /* the configuration is read at the first query */
	if (q != 0 || !r) {
		if (r)
			ub_resolve_free(r);
		return Q_SOFT;
	}
	if (r->bogus)
		out = Q_BOGUS;
	else if (r->havedata)
		out = Q_DATA;
	else if (r->rcode == ns_r_nxdomain)
		out = Q_NXDOMAIN;
	else if (r->rcode == ns_r_noerror)
		out = Q_NODATA;
	else
		out = Q_SOFT;
	*secure = r->secure && !r->bogus;
	if (out == Q_DATA)
		*res = r;
	else
		ub_resolve_free(r);
	return out;
}

/* A name in wire form (uncompressed, as unbound gives rdata) as text. */
static int wire_name(const unsigned char *rd, size_t len, char *dst, size_t n)
{
	return dn_expand(rd, rd + len, rd, dst, (int)n) < 0 ? -1 : 0;
}

/* ------------------------------------------------------------ addresses */

/* |canon| (unbound's canonical name of an answer for |host|, with or
 * without the final dot) into |out| when CNAMEs led there, else "". */
static void alias_end(const char *canon, const char *host, char *out, size_t n)
{
	size_t len = canon ? strlen(canon) : 0, hl = strlen(host);
	out[0] = 0;
	if (len && canon[len - 1] == '.')
		len--;
	if (hl && host[hl - 1] == '.')
		hl--;
	if (!len || len >= n || (len == hl && !strncasecmp(canon, host, len)))
		return;
	memcpy(out, canon, len);
	out[len] = 0;
}

static int dns_ip_sec(const char *host, struct ip *ips, int max, int pref, int mxsecure)
{
	static const int types[2] = { ns_t_a, ns_t_aaaa };
	int t, n = 0, soft = 0, hard = 0;
	if (max <= 0)
		return 0;
	if (ip_literal(host, &ips[0])) {
		ips[0].pref = pref;
		return 1;
	}
	for (t = 0; t < 2; t++) {
		struct ub_result *r;
		int secure, i, q = query(host, types[t], &r, &secure);
		if (q == Q_SOFT || q == Q_BOGUS)
			soft = 1;
		if (q == Q_NXDOMAIN)
			hard = 1;
		if (q != Q_DATA)
			continue;
		for (i = 0; r->data[i] && n < max; i++) {
			memset(&ips[n], 0, sizeof ips[n]);
			if (types[t] == ns_t_a && r->len[i] == 4) {
				ips[n].family = AF_INET;
				memcpy(ips[n].a, r->data[i], 4);
			} else if (types[t] == ns_t_aaaa && r->len[i] == 16) {
				ips[n].family = AF_INET6;
				memcpy(ips[n].a, r->data[i], 16);
			} else {
				continue;
			}
			ips[n].pref = pref;
			ips[n].addrsecure = secure;
			ips[n].secure = secure && mxsecure;
			snprintf(ips[n].name, sizeof ips[n].name, "%s", host);
			if (secure)
				alias_end(r->canonname, host, ips[n].canon, sizeof ips[n].canon);
			n++;
		}
		ub_resolve_free(r);
	}
	if (n)
		return n;
	if (soft)
		return DNS_SOFT;
	return hard ? DNS_HARD : 0;
}

/* Addresses of |host| (A, then AAAA) at |pref|; count, 0, or DNS_*.  No
 * MX records led to |host| (an smtproutes relay): never |secure|, so the
 * recipient domain is no name a relay's certificate is checked against. */
int dns_ip(const char *host, struct ip *ips, int max, int pref)
{
	return dns_ip_sec(host, ips, max, pref, 0);
}

struct mx {
	char name[NS_MAXDNAME];
	int pref;
	unsigned rnd;
};

static int mx_cmp(const void *a, const void *b)
{
	const struct mx *x = a, *y = b;
	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return x->rnd < y->rnd ? -1 : x->rnd > y->rnd;
}

int dns_mxip(const char *host, struct ip *ips, int max)
{
	struct mx mx[32];
	struct ub_result *r;
	int i, nmx = 0, n = 0, soft = 0, secure, q;
	struct ip lit;
	if (ip_literal(host, &lit) && host[0] == '[') {
		ips[0] = lit;
		return 1;
	}
	q = query(host, ns_t_mx, &r, &secure);
	if (q == Q_SOFT || q == Q_BOGUS)
		return DNS_SOFT;
	if (q == Q_NXDOMAIN)
		return DNS_HARD;
	if (q == Q_DATA) {
		srandom((unsigned)time(NULL) ^ ((unsigned)getpid() << 16));
		for (i = 0; r->data[i] && nmx < 32; i++) {
			const unsigned char *rd = (const unsigned char *)r->data[i];
			if (r->len[i] < 3 || wire_name(rd + 2, (size_t)r->len[i] - 2, mx[nmx].name, sizeof mx[nmx].name) < 0)
				continue;
			mx[nmx].pref = (rd[0] << 8) | rd[1];
			mx[nmx].rnd = (unsigned)random();
			nmx++;
		}
		ub_resolve_free(r);
	}
	/* no MX: the domain is its own host; its MX denial counts as the MX RRset */
	if (!nmx)
		return dns_ip_sec(host, ips, max, 0, secure);
	qsort(mx, (size_t)nmx, sizeof mx[0], mx_cmp);
	for (i = 0; i < nmx && n < max; i++) {
		int k;
		if (!mx[i].name[0] || ip_literal(mx[i].name, &lit))
			continue;   /* "." (null MX) and addresses are no host names */
		k = dns_ip_sec(mx[i].name, ips + n, max - n, mx[i].pref, secure);
		if (k == DNS_SOFT)
			soft = 1;
		if (k > 0)
			n += k;
	}
	if (!n && soft)
		return DNS_SOFT;
	return n;
}

/* netqmail's dns_cname: follows CNAME records from |name| (at most 10),
 * replacing it with each target.  Returns the number followed, DNS_SOFT,
 * or DNS_HARD for a loop; a name that does not exist stays as it is. */
int dns_cname(char *name, size_t n)
{
	int loop;
	for (loop = 0; loop < 10; loop++) {
		struct ub_result *r;
		char target[NS_MAXDNAME];
		size_t l = strlen(name);
		int secure, q, found = 0, i;
		if (!l || name[l - 1] == ']')
			return loop;
		if (name[l - 1] == '.') {
			name[l - 1] = 0;
			continue;
		}
		q = query(name, ns_t_cname, &r, &secure);
		if (q == Q_SOFT || q == Q_BOGUS)
			return DNS_SOFT;
		if (q != Q_DATA)
			return loop;   /* no such name, or no CNAME: canonical */
		for (i = 0; r->data[i] && !found; i++)
			if (wire_name((const unsigned char *)r->data[i], (size_t)r->len[i], target, sizeof target) == 0 &&
			    strlen(target) < n) {
				memcpy(name, target, strlen(target) + 1);
				found = 1;
			}
		ub_resolve_free(r);
		if (!found)
			return loop;
	}
	return DNS_HARD;
}

int dns_txt(const char *name, char **recs, size_t *lens, int max)
{
	struct ub_result *r;
	int secure, q = query(name, ns_t_txt, &r, &secure), i, n = 0;
	if (q == Q_SOFT || q == Q_BOGUS)
		return DNS_SOFT;
	if (q != Q_DATA)
		return 0;
	for (i = 0; r->data[i] && n < max; i++) {
		const unsigned char *rd = (const unsigned char *)r->data[i];
		size_t len = (size_t)r->len[i], k = 0, o = 0;
		char *t = malloc(len + 1);
		if (!t)
			temp_nomem();
		/* character-strings: a length byte, then that many bytes */
		while (k < len) {
			size_t l = rd[k++];
			if (l > len - k)
				l = len - k;
			memcpy(t + o, rd + k, l);
			o += l;
			k += l;
		}
		t[o] = 0;
		recs[n] = t;
		lens[n] = o;
		n++;
	}
	ub_resolve_free(r);
	return n;
}

int dns_tlsa(const char *host, unsigned port, struct tlsa_rrs *out)
{
	char name[NS_MAXDNAME + 20];
	struct ub_result *r;
	size_t used = 0;
	int secure, q, i;
	memset(out, 0, sizeof *out);
	if (snprintf(name, sizeof name, "_%u._tcp.%s", port, host) >= (int)sizeof name)
		return TLSA_SOFT;
	q = query(name, ns_t_tlsa, &r, &secure);
	if (q == Q_BOGUS)
		return TLSA_BOGUS;
	if (q == Q_SOFT)
		return TLSA_SOFT;
	if (!secure) {
		if (r)
			ub_resolve_free(r);
		return TLSA_INSECURE;
	}
	if (q != Q_DATA)
		return TLSA_NONE;
	for (i = 0; r->data[i] && out->n < TLSA_MAX; i++) {
		const unsigned char *rd = (const unsigned char *)r->data[i];
		size_t len = (size_t)r->len[i];
		struct mailtls_tlsa *t = &out->rec[out->n++];
		/* a record too short, or too long for the buffer, is kept as
		 * an unusable one: it still means "TLSA records exist" */
		if (len < 3 || len - 3 > sizeof out->data - used) {
			t->usage = 255;
			continue;
		}
		t->usage = rd[0];
		t->selector = rd[1];
		t->mtype = rd[2];
		memcpy(out->data + used, rd + 3, len - 3);
		t->data = out->data + used;
		t->len = len - 3;
		used += len - 3;
	}
	ub_resolve_free(r);
	return TLSA_FOUND;
}

/* ipme: is this one of this machine's addresses? */
int ipme_is(const struct ip *ip)
{
	static struct ifaddrs *ifs;
	static int done;
	struct ifaddrs *i;
	if (!done) {
		if (getifaddrs(&ifs) < 0)
			temp_oserr();
		done = 1;
	}
	/* netqmail's ipme: 0.0.0.0 ("this host", RFC 1122 3.2.1.3) and the
	 * interfaces' addresses (127.0.0.1 among them, not all of 127/8) */
	if (ip->family == AF_INET && !memcmp(ip->a, "\0\0\0\0", 4))
		return 1;
	if (ip->family == AF_INET && !memcmp(ip->a, "\177\0\0\1", 4))
		return 1;
	for (i = ifs; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != ip->family)
			continue;
		if (ip->family == AF_INET &&
		    !memcmp(&((struct sockaddr_in *)i->ifa_addr)->sin_addr, ip->a, 4))
			return 1;
		if (ip->family == AF_INET6 &&
		    !memcmp(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, ip->a, 16))
			return 1;
	}
	return 0;
}
