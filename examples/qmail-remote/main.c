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
#include "sts.h"

static struct ip ips[MAX_IPS];
static int flagalias = 1;   /* every recipient's domain was a CNAME so far */

/* qmail's quote.c: a local part that is not a dot-atom of these bytes is
 * sent as a quoted string, with CR, LF, '"' and '\' escaped. */
static int quote_need(const char *s, size_t n)
{
	static const char special[] = "\"(),:;<>@[\\]";
	size_t i;
	if (!n || s[0] == '.' || s[n - 1] == '.')
		return 1;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= 32 || ch >= 127 || strchr(special, ch) || (ch == '.' && s[i + 1] == '.'))
			return 1;
	}
	return 0;
}

/* netqmail's addrmangle: |s| with its local part quoted where needed and,
 * when |cname|, its domain replaced by the canonical name (CNAMEs
 * followed).  A domain that is no alias clears flagalias; a temporary DNS
 * failure is "CNAME lookup failed temporarily"; a loop leaves the domain
 * as it was.  An address without '@' is used as it is. */
static char *addrmangle(char *s, int cname)
{
	char name[NS_MAXDNAME + 1], *at = strrchr(s, '@'), *a, *o;
	size_t local, i;
	int k = 0;
	if (!at)
		return s;
	local = (size_t)(at - s);
	if (strlen(at + 1) >= sizeof name) {
		cname = 0;
		flagalias = 0;
	}
	strcpy(name, cname ? at + 1 : "");
	if (cname) {
		k = dns_cname(name, sizeof name);
		if (k == DNS_SOFT)
			temp_dnscanon();
		if (k == 0)
			flagalias = 0;
	}
	if (k <= 0 && !quote_need(s, local))
		return s;
	a = malloc(2 * local + 3 + (k > 0 ? strlen(name) : strlen(at + 1)) + 1);
	if (!a)
		temp_nomem();
	o = a;
	if (quote_need(s, local)) {
		*o++ = '"';
		for (i = 0; i < local; i++) {
			if (s[i] == '\r' || s[i] == '\n' || s[i] == '"' || s[i] == '\\')
				*o++ = '\\';
			*o++ = s[i];
		}
		*o++ = '"';
	} else {
		memcpy(o, s, local);
		o += local;
	}
	*o++ = '@';
	strcpy(o, k > 0 ? name : at + 1);
	return a;
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
	sender = addrmangle(argv[2], 0);
	recips = argv + 3;
	for (i = 0; recips[i]; i++)
		recips[i] = addrmangle(recips[i], !flagrelay);

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

	if (!flagrelay)
		sts_begin(host);
	do {   /* again, once, when an MTA-STS policy that kept the message back has changed */
		tls_failure[0] = 0;
		nplain = 0;
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
	} while (tls_failure[0] && sts_recheck());
	if (tls_failure[0]) {
		out("ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n");
		note_add("%s", tls_failure);
		note_out();
		zerodie();
	}
	temp_noconn();
}
