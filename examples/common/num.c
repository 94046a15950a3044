/* num.c -- numbers in the arguments: ports (or service names) and the
 * options' decimal numbers. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>

#include "ucspi.h"

int ucspi_port(const char *p, unsigned *out)
{
	unsigned long n;
	struct servent *se;
	if (*p >= '0' && *p <= '9') {
		if (ucspi_number(p, 0, 65535, NULL, &n) < 0)
			return -1;
		*out = (unsigned)n;
		return 0;
	}
	se = getservbyname(p, "tcp");
	if (!se)
		return -1;
	*out = ntohs((unsigned short)se->s_port);
	return 0;
}

int ucspi_number(const char *s, unsigned long min, unsigned long max, const char **end, unsigned long *out)
{
	char *e;
	unsigned long n;
	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	n = strtoul(s, &e, 10);
	if (errno || n < min || n > max || (!end && *e))
		return -1;
	if (end)
		*end = e;
	*out = n;
	return 0;
}
