/* env.c -- the environment tcpserver and tcpclient give the program: the
 * TCP* variables, blocks of "NAME=value" (TLS facts, UCSPI-TLS
 * descriptors, rules), and no SSL_* from anywhere else. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ucspi.h"

extern char **environ;

void ucspi_setenv(const char *name, const char *value)
{
	if (setenv(name, value, 1) < 0)
		fatal(111, "out of memory");
}

void ucspi_put_block(const char *b, size_t len)
{
	const char *end = b + len;
	while (b < end && *b) {
		size_t n = strnlen(b, (size_t)(end - b));
		const char *eq = memchr(b, '=', n);
		char name[256];
		if (eq && eq != b && (size_t)(eq - b) < sizeof name) {
			memcpy(name, b, (size_t)(eq - b));
			name[eq - b] = 0;
			ucspi_setenv(name, eq + 1);
		}
		b += n + 1;
	}
}

void ucspi_drop_ssl_vars(void)
{
	unsetenv("SSLCTLFD");
	unsetenv("SSLREADFD");
	unsetenv("SSLWRITEFD");
	for (size_t i = 0; environ[i];) {
		const char *eq = strchr(environ[i], '=');
		size_t n = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		if (!strncmp(environ[i], "SSL_", 4)) {
			char *name = strndup(environ[i], n);
			if (!name)
				fatal(111, "out of memory");
			unsetenv(name);
			free(name);
			continue;
		}
		i++;
	}
}

static void set_var(const char *proto, const char *suffix, const char *value)
{
	char name[32];
	snprintf(name, sizeof name, "%s%s", proto, suffix);
	if (value)
		ucspi_setenv(name, value);
	else
		unsetenv(name);
}

/* The IPv6 patch's names: PROTO=TCP6 and each variable under both TCP6*
 * and TCP* (qmail-smtpd and rblsmtpd read TCPREMOTEIP); for an IPv4 client
 * the TCP6* names are removed, so none inherited can describe it. */
void ucspi_tcp_env(const struct conninfo *ci, const char *lhost, const char *rhost, const char *rinfo)
{
	static const char *const protos[] = { "TCP", "TCP6" };
	char lport[16], rport[16];
	snprintf(lport, sizeof lport, "%u", ci->localport);
	snprintf(rport, sizeof rport, "%u", ci->remoteport);
	ucspi_setenv("PROTO", protos[ci->v6]);
	for (int i = 0; i < 2; i++) {
		int on = i == 0 || ci->v6;
		set_var(protos[i], "LOCALHOST", on ? lhost : NULL);
		set_var(protos[i], "LOCALIP", on ? ci->localip : NULL);
		set_var(protos[i], "LOCALPORT", on ? lport : NULL);
		set_var(protos[i], "REMOTEHOST", on ? rhost : NULL);
		set_var(protos[i], "REMOTEIP", on ? ci->remoteip : NULL);
		set_var(protos[i], "REMOTEPORT", on ? rport : NULL);
		set_var(protos[i], "REMOTEINFO", on ? rinfo : NULL);
	}
}

void ucspi_tls_env(struct mailtls *s)
{
	ssize_t n = mailtls_env(s, NULL, 0);
	char *b = n > 0 ? malloc((size_t)n) : NULL;
	if (!b || mailtls_env(s, b, (size_t)n) != n)
		fatal(111, "out of memory");
	ucspi_put_block(b, (size_t)n);
	free(b);
}

void ucspi_tls_desc(struct mailtls *s, char *peer, size_t plen, char *sni, size_t slen)
{
	const char *name = mailtls_servername(s);
	if (!mailtls_peer_has_cert(s))
		snprintf(peer, plen, "none");
	else if (mailtls_peer_verified(s))
		snprintf(peer, plen, "verified:%s", mailtls_peer_subject(s));
	else
		snprintf(peer, plen, "unverified:%s", mailtls_errcode_name(mailtls_peer_verify_result(s)));
	if (!name || mailtls_escape(sni, slen, name, strlen(name)) < 0)
		snprintf(sni, slen, "-");
}
