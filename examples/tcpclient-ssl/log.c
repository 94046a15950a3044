/* log.c -- tcpclient's messages, with this program's name. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tcpclient-ssl.h"

static int verbosity = 1;

void log_set_verbosity(int v)
{
	verbosity = v;
}

int log_verbose(void)
{
	return verbosity >= 2;
}

/* One write per line. */
static void emit(const char *prefix, const char *fmt, va_list ap)
{
	char line[2048];
	int n = snprintf(line, sizeof line, "%s: %s", PROGNAME, prefix);
	if (n < 0 || (size_t)n >= sizeof line)
		return;
	vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	n = (int)strlen(line);
	line[n++] = '\n';
	if (write(2, line, (size_t)n) < 0) {
		/* Nowhere left to complain. */
	}
}

void log_status(const char *fmt, ...)
{
	va_list ap;
	if (verbosity < 2)
		return;
	va_start(ap, fmt);
	emit("", fmt, ap);
	va_end(ap);
}

void log_error(const char *fmt, ...)
{
	va_list ap;
	if (verbosity < 1)
		return;
	va_start(ap, fmt);
	emit("", fmt, ap);
	va_end(ap);
}

/* tcpclient -q prints nothing at all, its fatal errors included. */
void fatal(int code, const char *fmt, ...)
{
	va_list ap;
	if (verbosity >= 1) {
		va_start(ap, fmt);
		emit("fatal: ", fmt, ap);
		va_end(ap);
	}
	_exit(code);
}

/* The words of djb's error_str for what a connection meets, else strerror. */
const char *errstr(int e)
{
	switch (e) {
	case ECONNREFUSED: return "connection refused";
	case ETIMEDOUT: return "timed out";
	case ENETUNREACH: return "network unreachable";
	case EHOSTUNREACH: return "host unreachable";
	case EADDRNOTAVAIL: return "address not available";
	case EADDRINUSE: return "address already used";
	case ECONNRESET: return "connection reset";
	case EACCES: return "access denied";
	case ENOENT: return "file does not exist";
	case ENOMEM: return "out of memory";
	default: return strerror(e);
	}
}
