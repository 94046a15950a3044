/* dns.c -- MX, A and AAAA lookups with glibc's stub resolver (res_query)
 * and libresolv's parser (ns_initparse, ns_parserr): no OpenSSL in the
 * process.  MX hosts sorted by preference, shuffled within one; A before
 * AAAA for each host; a domain without MX gets its A/AAAA at preference 0.
 * No DNSSEC here: DANE needs a validating resolver (a later step). */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <stdio.h>
#include <resolv.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

static int query(const char *name, int type, unsigned char *ans, int len)
{
	int r = res_query(name, C_IN, type, ans, len);
	if (r >= 0)
		return r;
	switch (h_errno) {
	case HOST_NOT_FOUND:
		return DNS_HARD;
	case NO_DATA:
		return 0;
	default:
		return DNS_SOFT;
	}
}

/* Addresses of |host| (A, then AAAA) at |pref|; count, 0, or DNS_*. */
int dns_ip(const char *host, struct ip *ips, int max, int pref)
{
	static const int types[2] = { ns_t_a, ns_t_aaaa };
	unsigned char ans[NS_PACKETSZ * 8];
	int t, n = 0, soft = 0, hard = 0;
	if (max <= 0)
		return 0;
	if (ip_literal(host, &ips[0])) {
		ips[0].pref = pref;
		return 1;
	}
	for (t = 0; t < 2; t++) {
		ns_msg msg;
		ns_rr rr;
		int len = query(host, types[t], ans, sizeof ans), i;
		if (len == DNS_SOFT) {
			soft = 1;
			continue;
		}
		if (len == DNS_HARD) {
			hard = 1;
			continue;
		}
		if (len == 0 || ns_initparse(ans, len, &msg) < 0)
			continue;
		for (i = 0; i < ns_msg_count(msg, ns_s_an) && n < max; i++) {
			if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
				break;
			if (ns_rr_type(rr) == ns_t_a && ns_rr_rdlen(rr) == 4) {
				ips[n].family = AF_INET;
				memcpy(ips[n].a, ns_rr_rdata(rr), 4);
			} else if (ns_rr_type(rr) == ns_t_aaaa && ns_rr_rdlen(rr) == 16) {
				ips[n].family = AF_INET6;
				memcpy(ips[n].a, ns_rr_rdata(rr), 16);
			} else {
				continue;
			}
			ips[n].pref = pref;
			snprintf(ips[n].name, sizeof ips[n].name, "%s", host);
			n++;
		}
	}
	if (n)
		return n;
	if (soft)
		return DNS_SOFT;
	return hard ? DNS_HARD : 0;
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
	unsigned char ans[NS_PACKETSZ * 8];
	struct mx mx[32];
	ns_msg msg;
	ns_rr rr;
	int len, i, nmx = 0, n = 0, soft = 0;
	struct ip lit;
	if (ip_literal(host, &lit) && host[0] == '[') {
		ips[0] = lit;
		return 1;
	}
	len = query(host, ns_t_mx, ans, sizeof ans);
	if (len < 0)
		return len;
	if (len > 0 && ns_initparse(ans, len, &msg) == 0) {
		srandom((unsigned)time(NULL) ^ ((unsigned)getpid() << 16));
		for (i = 0; i < ns_msg_count(msg, ns_s_an) && nmx < 32; i++) {
			const unsigned char *rd;
			if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
				break;
			if (ns_rr_type(rr) != ns_t_mx || ns_rr_rdlen(rr) < 3)
				continue;
			rd = ns_rr_rdata(rr);
			mx[nmx].pref = (rd[0] << 8) | rd[1];
			if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), rd + 2, mx[nmx].name,
			    sizeof mx[nmx].name) < 0)
				continue;
			mx[nmx].rnd = (unsigned)random();
			nmx++;
		}
	}
	if (!nmx)
		return dns_ip(host, ips, max, 0);
	qsort(mx, (size_t)nmx, sizeof mx[0], mx_cmp);
	for (i = 0; i < nmx && n < max; i++) {
		int r;
		if (!mx[i].name[0] || ip_literal(mx[i].name, &lit))
			continue;   /* "." (null MX) and addresses are no host names */
		r = dns_ip(mx[i].name, ips + n, max - n, mx[i].pref);
		if (r == DNS_SOFT)
			soft = 1;
		if (r > 0)
			n += r;
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
	unsigned char ans[NS_PACKETSZ * 8];
	int loop;
	for (loop = 0; loop < 10; loop++) {
		ns_msg msg;
		ns_rr rr;
		size_t l = strlen(name);
		int len, i, found = 0;
		if (!l || name[l - 1] == ']')
			return loop;
		if (name[l - 1] == '.') {
			name[l - 1] = 0;
			continue;
		}
		len = query(name, ns_t_cname, ans, sizeof ans);
		if (len == DNS_SOFT)
			return DNS_SOFT;
		if (len <= 0 || ns_initparse(ans, len, &msg) < 0)
			return loop;   /* no such name, or no CNAME: canonical */
		for (i = 0; i < ns_msg_count(msg, ns_s_an) && !found; i++) {
			char target[NS_MAXDNAME];
			if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
				break;
			if (ns_rr_type(rr) != ns_t_cname || strcasecmp(ns_rr_name(rr), name))
				continue;
			if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), ns_rr_rdata(rr), target,
			    sizeof target) < 0 || strlen(target) >= n)
				continue;
			memcpy(name, target, strlen(target) + 1);
			found = 1;
		}
		if (!found)
			return loop;
	}
	return DNS_HARD;
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
