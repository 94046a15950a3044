/* log.c -- the messages of tcpserver-ssl and tcpclient-ssl, with the
 * program's name (log_progname, defined by each program). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ucspi.h"

static int verbosity = 1;

void log_set_verbosity(int v)
{
	verbosity = v;
}

int log_verbose(void)
{
	return verbosity >= 2;
}

/* One write per line, so lines of concurrent children never interleave. */
static void emit(const char *prefix, const char *fmt, va_list ap)
{
	char line[2048];
	int n = snprintf(line, sizeof line, "%s: %s", log_progname, prefix);
	if (n < 0 || (size_t)n >= sizeof line)
		return;
	vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	n = (int)strlen(line);
	line[n++] = '\n';
	if (write(2, line, (size_t)n) < 0) {
		/* Nowhere left to complain. */
	}
}

/* A message when the verbosity is at least |min|. */
static void vlog(int min, const char *fmt, va_list ap)
{
	if (verbosity >= min)
		emit("", fmt, ap);
}

void log_status(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(2, fmt, ap);
	va_end(ap);
}

void log_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(1, fmt, ap);
	va_end(ap);
}

/* tcpclient -q prints nothing at all, its fatal errors included; tcpserver
 * prints a fatal error even with -q. */
void fatal(int code, const char *fmt, ...)
{
	va_list ap;
	if (verbosity >= 1 || !log_fatal_quiet) {
		va_start(ap, fmt);
		emit("fatal: ", fmt, ap);
		va_end(ap);
	}
	_exit(code);
}

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
