/* tcpenv.c -- the environment tcpclient gives its program: PROTO=TCP,
 * TCPLOCALIP, TCPLOCALPORT, TCPLOCALHOST, TCPREMOTEIP, TCPREMOTEPORT,
 * TCPREMOTEHOST, TCPREMOTEINFO (and, for IPv6, PROTO=TCP6 with each
 * variable under TCP6* as well, as the IPv6 patch names them).  The names,
 * the ident socket and answer, and the variables themselves:
 * examples/common. */
#include "tcpclient-ssl.h"

void tcp_env(const struct opts *o, const struct conninfo *ci)
{
	char lhost[256], rhost[256], rinfo[256];
	const char *lh = o->localname, *rh = NULL, *ri = NULL;
	if (!lh) {
		name_of(ci->localip, 0, lhost, sizeof lhost);   /* "" without a name: set empty */
		lh = lhost;
	}
	if (o->lookup_remote) {
		name_of(ci->remoteip, 0, rhost, sizeof rhost);
		rh = rhost;
	}
	if (o->ident && ucspi_ident(ci, o->ident_timeout, rinfo, sizeof rinfo))
		ri = rinfo;
	ucspi_tcp_env(ci, lh, rh, ri);
}
