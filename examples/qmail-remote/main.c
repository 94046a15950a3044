/* qmail-remote -- sends one message to one host by SMTP, netqmail 1.06's
 * contract byte for byte (see qmail-remote.8), with TLS by policy through
 * libmailtls.  ISC license: see LICENSE. */
#include <arpa/nameser.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qmail-remote.h"

static struct ip ips[MAX_IPS];
static int flagalias = 1;   /* every recipient's domain was a CNAME so far */

/* netqmail's addrmangle for the recipients: each domain replaced by its
 * canonical name (CNAMEs followed); one that is not an alias clears
 * flagalias; a temporary DNS failure is "CNAME lookup failed temporarily"
 * and a loop leaves the domain as it was. */
static void canonicalise(char **r)
{
	for (; *r; r++) {
		char name[NS_MAXDNAME + 1], *at = strrchr(*r, '@'), *a;
		size_t local;
		int k;
		if (!at)
			continue;
		if (strlen(at + 1) >= sizeof name) {
			flagalias = 0;
			continue;
		}
		strcpy(name, at + 1);
		k = dns_cname(name, sizeof name);
		if (k == DNS_SOFT)
			temp_dnscanon();
		if (k == 0)
			flagalias = 0;
		if (k <= 0)
			continue;
		local = (size_t)(at - *r);
		a = malloc(local + 1 + strlen(name) + 1);
		if (!a)
			temp_nomem();
		memcpy(a, *r, local + 1);
		strcpy(a + local + 1, name);
		*r = a;
	}
}

int main(int argc, char **argv)
{
	const char *home = getenv("QMAILHOME");
	const char *relay;
	char host[1024], relayhost[1024];
	unsigned port = 25;
	int n, i, prefme, flagrelay = 0;
	int plain_later[MAX_IPS], nplain = 0;

	signal(SIGPIPE, SIG_IGN);
	if (argc < 4)
		perm_usage();
	if (chdir(home && *home ? home : QMAIL_REMOTE_HOME) < 0)
		temp_chdir();
	controls_read();
	if (strlen(argv[1]) >= sizeof host)
		perm_dns(argv[1]);
	snprintf(host, sizeof host, "%s", argv[1]);

	relay = route_lookup(host);
	if (relay && *relay) {
		if (route_split(relay, relayhost, sizeof relayhost, &port) < 0)
			temp_control();
		flagrelay = 1;
	}
	sender = argv[2];
	recips = argv + 3;
	if (!flagrelay)
		canonicalise(recips);

	n = flagrelay ? dns_ip(relayhost, ips, MAX_IPS, 0) : dns_mxip(host, ips, MAX_IPS);
	if (n == DNS_SOFT)
		temp_dns();
	if (n == DNS_HARD)
		perm_dns(flagrelay ? relayhost : host);
	if (n <= 0)
		perm_nomx();

	/* MX hosts at or below this host's own preference are dropped (#5.4.6);
	 * a relay from smtproutes is always used, and so is every MX when
	 * every recipient's domain was an alias (netqmail's flagalias). */
	prefme = 100000;
	for (i = 0; i < n; i++)
		if (ipme_is(&ips[i]) && ips[i].pref < prefme)
			prefme = ips[i].pref;
	if (flagrelay)
		prefme = 300000;
	if (flagalias)
		prefme = 500000;
	for (i = 0; i < n; i++)
		if (ips[i].pref < prefme)
			break;
	if (i >= n)
		perm_ambigmx();

	for (i = 0; i < n; i++) {
		int r;
		if (ips[i].pref >= prefme)
			continue;
		r = smtp(&ips[i], port, host, 1);
		if (r == TRY_PLAIN_LATER)
			plain_later[nplain++] = i;
	}
	/* may: a host whose handshake failed gets the message in plaintext. */
	for (i = 0; i < nplain; i++)
		(void)smtp(&ips[plain_later[i]], port, host, 0);
	if (tls_failure[0]) {
		out("ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n");
		note_add("%s", tls_failure);
		note_out();
		zerodie();
	}
	temp_noconn();
}
