/* tlsrpt.c -- TLS-RPT events appended to the day's log; see tlsrpt.h.
 * ISC license: see LICENSE. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "qmail-remote.h"
#include "tlsrpt.h"

#define TLSRPT_DIR "queue/tlsrpt"
#define LINE_MAX_BYTES (64 + 3 * (6 * 256 + 64 + TLSRPT_DETAIL_MAX + TLSRPT_POLICY_MAX))

static char local_ip[INET6_ADDRSTRLEN];

void tlsrpt_local(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	local_ip[0] = 0;
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, local_ip, sizeof local_ip);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, local_ip, sizeof local_ip);
}

/* A TAB and |s| (at most |max| bytes of it) escaped at |o|: the new end. */
static char *field(char *o, const char *s, size_t max)
{
	static const char hex[] = "0123456789ABCDEF";
	*o++ = '\t';
	for (size_t i = 0; s && s[i] && i < max; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x21 || c > 0x7e || c == '%') {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		} else {
			*o++ = (char)c;
		}
	}
	return o;
}

/* The log's directory, when it is there and ours: its descriptor, or -1. */
static int log_dir(void)
{
	struct stat st;
	int fd = open(TLSRPT_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/* others able to write it could swap the day's file for a link to theirs */
	if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 022)) {
		close(fd);
		return -1;
	}
	return fd;
}

void tlsrpt_event_policy(const char *policy_type, const char *policy_domain, const char *domain,
    const char *mx_host, const char *addr, const char *result, const char *detail, const char *policy)
{
	static char line[LINE_MAX_BYTES];
	char day[16], *o = line;
	time_t now = time(NULL);
	struct tm tm;
	struct stat st;
	int dfd, fd, saved = errno;
	if (!gmtime_r(&now, &tm) || !strftime(day, sizeof day, "%Y-%m-%d", &tm))
		return;
	o += snprintf(line, 64, "tlsrpt1\t%lld", (long long)now);
	o = field(o, policy_type, 256);
	o = field(o, policy_domain, 256);
	o = field(o, domain, 256);
	o = field(o, mx_host, 256);
	o = field(o, addr, 256);
	o = field(o, local_ip, 256);
	o = field(o, result, 64);
	o = field(o, detail, TLSRPT_DETAIL_MAX);
	o = field(o, policy && strlen(policy) <= TLSRPT_POLICY_MAX ? policy : NULL, TLSRPT_POLICY_MAX);
	*o++ = '\n';
	if ((dfd = log_dir()) < 0)
		goto out;
	fd = openat(dfd, day, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
	close(dfd);
	if (fd < 0)
		goto out;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid()) {
		/* one write: O_APPEND puts the whole line at the end at once */
		if (write(fd, line, (size_t)(o - line)) < 0) {
			/* a full disk loses the event, never the delivery */
		}
	}
	close(fd);
out:
	errno = saved;
}

void tlsrpt_event(const char *policy_type, const char *policy_domain, const char *domain,
    const char *mx_host, const char *addr, const char *result, const char *detail)
{
	tlsrpt_event_policy(policy_type, policy_domain, domain, mx_host, addr, result, detail, NULL);
}

const char *tlsrpt_result_type(int code)
{
	switch (code) {
	case TLS_FAIL_NO_STARTTLS:
	case TLS_FAIL_STARTTLS_REFUSED:
		return "starttls-not-supported";
	case MAILTLS_E_VERIFY_DANE:
		return "tlsa-invalid";
	case MAILTLS_E_VERIFY_NAME:
		return "certificate-host-mismatch";
	case MAILTLS_E_VERIFY_EXPIRED:
		return "certificate-expired";
	case MAILTLS_E_VERIFY_UNTRUSTED:
	case MAILTLS_E_VERIFY_SELFSIGNED:
	case MAILTLS_E_VERIFY_NOCERT:
		return "certificate-not-trusted";
	default:
		return "validation-failure";
	}
}
