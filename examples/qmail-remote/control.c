/* control.c -- control/ files read qmail's way: a missing file gives the
 * default, a file that exists but cannot be read is a temporary failure
 * ("Unable to read control files. (#4.3.0)").  Lines end at \n; a
 * trailing \r and trailing spaces and tabs are dropped. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cachefile.h"
#include "qmail-remote.h"

struct controls ctl;

#define CONTROL_MAX (1 << 20)

int control_readfile(const char *fn, char **text, size_t *len)
{
	int fd = open(fn, O_RDONLY | O_CLOEXEC);
	size_t n = 0, cap = 4096;
	char *b;
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	b = malloc(cap + 1);
	if (!b)
		temp_nomem();
	for (;;) {
		ssize_t r;
		if (n == cap) {
			char *nb;
			if (cap >= CONTROL_MAX) {
				close(fd);
				free(b);
				return -1;
			}
			cap *= 2;
			nb = realloc(b, cap + 1);
			if (!nb)
				temp_nomem();
			b = nb;
		}
		r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			close(fd);
			free(b);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	b[n] = 0;
	*text = b;
	*len = n;
	return 1;
}

int control_exists(const char *fn)
{
	struct stat st;
	if (stat(fn, &st) == 0)
		return 1;
	if (errno == ENOENT || errno == ENOTDIR)
		return 0;
	temp_control();
}

/* The first line of |fn|: NULL when the file is missing, "" when it is
 * empty (control/dnssecanchor tells the two apart). */
static char *control_first(const char *fn)
{
	char *t;
	size_t len;
	int r = control_readfile(fn, &t, &len);
	if (r < 0)
		temp_control();
	if (r == 0)
		return NULL;
	control_split(t, len);
	return t;
}

/* The first line of |fn|, or NULL when the file is missing or empty. */
static char *control_line(const char *fn)
{
	char *t = control_first(fn);
	if (t && !*t) {
		free(t);
		return NULL;
	}
	return t;
}

static int control_int(const char *fn, int def)
{
	char *t = control_line(fn);
	long v;
	char *end;
	if (!t)
		return def;
	v = strtol(t, &end, 10);
	free(t);
	if (end == t || v <= 0 || v > 86400 * 7)
		return def;
	return (int)v;
}

static void control_lines(const char *fn, char **text, size_t *len)
{
	int r = control_readfile(fn, text, len);
	if (r < 0)
		temp_control();
	if (r == 0) {
		*text = NULL;
		*len = 0;
		return;
	}
	control_split(*text, *len);
}

void controls_read(void)
{
	size_t bad;
	ctl.me = control_line("control/me");
	ctl.helohost = control_line("control/helohost");
	if (!ctl.helohost)
		ctl.helohost = ctl.me;
	if (!ctl.helohost)
		temp_control();
	ctl.timeoutconnect = control_int("control/timeoutconnect", 60);
	ctl.timeoutremote = control_int("control/timeoutremote", 1200);
	control_lines("control/smtproutes", &ctl.smtproutes, &ctl.smtproutes_len);
	control_lines("control/tlspolicy", &ctl.tlspolicy, &ctl.tlspolicy_len);
	if ((bad = policy_check(ctl.tlspolicy, ctl.tlspolicy_len, &ctl.tlspolicy_levels)))
		temp_control_line("control/tlspolicy", bad);
	ctl.tlscafile = control_line("control/tlscafile");
	ctl.tlsclientciphers = control_line("control/tlsclientciphers");
	ctl.tlscachedir = control_line("control/tlscachedir");
	ctl.tlscachetimeout = control_int("control/tlscachetimeout", 3600);
	ctl.dnssecanchor = control_first("control/dnssecanchor");
	if (ctl.tlscachetimeout > CACHE_LIFETIME_MAX)
		ctl.tlscachetimeout = CACHE_LIFETIME_MAX;
}

/* netqmail: the host itself, then each ".suffix", then "" (the default). */
const char *route_lookup(const char *host)
{
	return route_find(ctl.smtproutes, ctl.smtproutes_len, host);
}
