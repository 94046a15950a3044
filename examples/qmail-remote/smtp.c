/* smtp.c -- one SMTP delivery on a connected address: the start (plaintext
 * EHLO/HELO, STARTTLS by policy, or implicit TLS on port 465), then
 * netqmail's MAIL, RCPT, DATA and its report texts. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qmail-remote.h"
#include "sts.h"
#include "tlsrpt.h"

char *sender;
char **recips;

/* The message on fd 0, read in blocks. */
static char mbuf[8192];
static size_t mpos, mlen;

static int mget(char *ch)
{
	if (mpos == mlen) {
		ssize_t r;
		do
			r = read(0, mbuf, sizeof mbuf);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			temp_read();
		if (r == 0)
			return 0;
		mpos = 0;
		mlen = (size_t)r;
	}
	*ch = mbuf[mpos++];
	return 1;
}

/* netqmail's blast(): dot-stuffing, LF to CRLF, a partial last line is D. */
static void blast(struct conn *c)
{
	char ch;
	if (lseek(0, 0, SEEK_SET) < 0 && errno != ESPIPE)
		temp_read();
	mpos = mlen = 0;
	while (mget(&ch)) {
		if (ch == '.')
			conn_put(c, ".", 1);
		while (ch != '\n') {
			conn_put(c, &ch, 1);
			if (!mget(&ch))
				perm_partialline();
		}
		conn_put(c, "\r\n", 2);
	}
	flagcritical = 1;
	conn_put(c, ".\r\n", 3);
	conn_flush(c);
}

/* The greeting (220), then EHLO, else HELO (250), in plaintext or in
 * implicit TLS alike; a refusal ends the delivery the way netqmail
 * reports it. */
static unsigned long hello(struct conn *c, const char *verb)
{
	conn_puts(c, verb);
	conn_puts(c, ctl.helohost);
	conn_puts(c, "\r\n");
	conn_flush(c);
	return smtpcode(c);
}

void smtp_greet(struct conn *c)
{
	if (smtpcode(c) != 220)
		quit(c, "ZConnected to ", " but greeting failed");
	if (hello(c, "EHLO ") != 250 && hello(c, "HELO ") != 250)
		quit(c, "ZConnected to ", " but my name was rejected");
}

int smtp(const struct ip *ip, unsigned port, const char *domain, int tls_allowed)
{
	struct conn *c = calloc(1, sizeof *c);
	struct policy p;
	unsigned long code;
	int flagbother = 0, i;
	if (!c)
		temp_nomem();
	c->timeout = ctl.timeoutremote;
	tlsrpt_local(-1);   /* the events before this connection is made have no local address */
	policy_for(domain, ip->name, &p);
	if (dane_for(ip, port, domain, &p) < 0) {
		free(c);
		return TRY_NEXT;
	}
	/* after DANE: a level DANE set is not "may", and MTA-STS leaves it alone */
	if (sts_mx(domain, ip, &p) < 0) {
		free(c);
		return TRY_NEXT;
	}
	if (tcpto_skip(ip)) {
		free(c);
		return TRY_NEXT;
	}
	c->fd = tcp_connect(ip, port, ctl.timeoutconnect);
	if (c->fd < 0) {
		tcpto_err(ip, errno == ETIMEDOUT);
		free(c);
		return TRY_NEXT;
	}
	tcpto_err(ip, 0);
	ip_fmt(ip, partner, sizeof partner);
	tlsrpt_local(c->fd);
	if (!tls_allowed && p.level == POL_MAY) {
		p.level = POL_NONE;
		note_add("TLS: handshake with %s [%s] failed before (%s); sent in plaintext", ip->name, partner,
		    tls_failure);
	}
	if (port == 465 && p.level == POL_NONE)
		p.level = POL_MAY;
	if (p.level == POL_NONE) {
		smtp_greet(c);
	} else {
		int r = tls_start(c, ip, port, &p, domain);
		sts_session(ip, partner, &p, r ? NULL : c->tls, r);
		if (r) {
			free(c);
			return r;
		}
	}

	conn_puts(c, "MAIL FROM:<");
	conn_puts(c, sender);
	conn_puts(c, ">\r\n");
	conn_flush(c);
	code = smtpcode(c);
	if (code >= 500)
		quit(c, "DConnected to ", " but sender was rejected");
	if (code >= 400)
		quit(c, "ZConnected to ", " but sender was rejected");

	for (i = 0; recips[i]; i++) {
		conn_puts(c, "RCPT TO:<");
		conn_puts(c, recips[i]);
		conn_puts(c, ">\r\n");
		conn_flush(c);
		code = smtpcode(c);
		if (code >= 500) {
			out("h");
			out(partner);
			out(" does not like recipient.\n");
			outsmtptext();
			zero();
		} else if (code >= 400) {
			out("s");
			out(partner);
			out(" does not like recipient.\n");
			outsmtptext();
			zero();
		} else {
			out("r");
			zero();
			flagbother = 1;
		}
	}
	if (!flagbother)
		quit(c, "DGiving up on ", "");

	conn_puts(c, "DATA\r\n");
	conn_flush(c);
	code = smtpcode(c);
	if (code >= 500)
		quit(c, "D", " failed on DATA command");
	if (code >= 400)
		quit(c, "Z", " failed on DATA command");

	blast(c);
	code = smtpcode(c);
	flagcritical = 0;
	if (code >= 500)
		quit(c, "D", " failed after I sent the message");
	if (code >= 400)
		quit(c, "Z", " failed after I sent the message");
	quit(c, "K", " accepted message");
}
