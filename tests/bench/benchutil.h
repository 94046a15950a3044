/* benchutil.h -- small helpers shared by the benchmarks (header only).
 *
 * The benchmarks print human lines and, for run.sh, one machine line per
 * measurement:  RESULT <name> key=value key=value ...
 * They assert nothing about speed; they fail (exit 1) only when the
 * library does something wrong (a failed handshake, lost or changed bytes). */
#ifndef MAILTLS_BENCHUTIL_H
#define MAILTLS_BENCHUTIL_H

#define _GNU_SOURCE 1
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "mailtls.h"

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "bench[%ld]: ", (long)getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* A session call that must not fail. */
#define MUST(s, what, call) do { long long _r = (long long)(call); \
	if (_r < 0 && _r != MAILTLS_WANT_READ && _r != MAILTLS_WANT_WRITE) \
		die("%s failed (%lld): %s [%s]", what, _r, mailtls_error(s), \
		    mailtls_errcode_name(mailtls_errcode(s))); } while (0)

/* Monotonic wall time in seconds; system-wide, so comparable between
 * processes.  clock_gettime(CLOCK_MONOTONIC) is a vDSO call: no syscall. */
static inline double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time (user + system) of this process, in seconds. */
struct cpu { double user, sys; };
static inline struct cpu cpu_self(void)
{
	struct rusage ru;
	struct cpu c;
	getrusage(RUSAGE_SELF, &ru);
	c.user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6;
	c.sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
	return c;
}
static inline struct cpu cpu_diff(struct cpu a, struct cpu b)
{
	struct cpu d = { b.user - a.user, b.sys - a.sys };
	return d;
}

/* CPU time of the calling thread only. */
static inline double cpu_thread(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* pin_to pins the calling process (or thread) to |cpu|; -1 gives it back
 * the CPUs the program started with (a forked child may inherit a pin). */
static cpu_set_t bench_start_cpus;
static int bench_start_saved;
static inline void pin_to(int cpu)
{
	cpu_set_t set;
	if (!bench_start_saved) {
		if (sched_getaffinity(0, sizeof bench_start_cpus, &bench_start_cpus) != 0)
			die("sched_getaffinity: %s", strerror(errno));
		bench_start_saved = 1;
	}
	if (cpu < 0) {
		set = bench_start_cpus;
	} else {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
	}
	if (sched_setaffinity(0, sizeof set, &set) != 0)
		die("sched_setaffinity(%d): %s", cpu, strerror(errno));
}

/* Full write and read on descriptors, for result reports between processes. */
static inline void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}
static inline int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* parse_size reads "1G", "64M", "512k", "1000" (binary multiples). */
static inline unsigned long long parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	unsigned long long m = 1;
	switch (*end) {
	case 'g': case 'G': m = 1ULL << 30; end++; break;
	case 'm': case 'M': m = 1ULL << 20; end++; break;
	case 'k': case 'K': m = 1ULL << 10; end++; break;
	}
	if (*end == 'i' || *end == 'B')
		end++;
	if (*end == 'B')
		end++;
	if (end == s || *end || v < 0)
		die("bad size: %s", s);
	return (unsigned long long)(v * (double)m);
}
#endif
