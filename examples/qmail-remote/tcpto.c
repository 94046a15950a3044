/* tcpto.c -- the connect-timeout memory every qmail-remote shares,
 * queue/lock/tcpto, read and written as netqmail 1.06's tcpto.c does (so
 * qmail-tcpto and qmail-tcpok keep working on it): up to 64 records of 16
 * bytes, an IPv4 address in bytes 0-3, the count of timeouts in byte 4
 * (0 to 10), the time of the last one in bytes 8-11 (little-endian), the
 * whole file locked (flock) while read or written.  The file is made by
 * qmail's installation; without it nothing is remembered.  An address
 * with two or more timeouts is skipped for 64 to 95 minutes after the
 * last one (a span that depends on the pid, so a host that comes back is
 * tried again by one qmail-remote before the others).  netqmail records
 * IPv4 only, and so does this: IPv6 addresses are always tried. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "qmail-remote.h"

#define TCPTO_FILE "queue/lock/tcpto"

static unsigned char buf[1024];
static int wasthere;   /* the address had a record when tcpto_skip looked */

static unsigned long rec_when(const unsigned char *r)
{
	return (unsigned long)r[8] | (unsigned long)r[9] << 8 | (unsigned long)r[10] << 16 |
	    (unsigned long)r[11] << 24;
}

static void rec_set_when(unsigned char *r, unsigned long when)
{
	r[8] = (unsigned char)when;
	r[9] = (unsigned char)(when >> 8);
	r[10] = (unsigned char)(when >> 16);
	r[11] = (unsigned char)(when >> 24);
}

/* The records of the locked file |fd|: their count. */
static int records(int fd)
{
	ssize_t r;
	do
		r = read(fd, buf, sizeof buf);
	while (r < 0 && errno == EINTR);
	return r < 0 ? 0 : (int)(r >> 4);
}

static int lock(int fd)
{
	int r;
	do
		r = flock(fd, LOCK_EX);
	while (r < 0 && errno == EINTR);
	return r;
}

int tcpto_skip(const struct ip *ip)
{
	int fd, n, i;
	wasthere = 0;
	if (ip->family != AF_INET)
		return 0;
	fd = open(TCPTO_FILE, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return 0;
	if (lock(fd) < 0) {
		close(fd);
		return 0;
	}
	n = records(fd);
	close(fd);
	for (i = 0; i < n; i++) {
		const unsigned char *r = buf + (i << 4);
		if (memcmp(r, ip->a, 4))
			continue;
		wasthere = 1;
		if (r[4] >= 2 && (unsigned long)time(NULL) - rec_when(r) < (unsigned long)((60 + (getpid() & 31)) << 6))
			return 1;
		return 0;
	}
	return 0;
}

static void put(int fd, int i)
{
	ssize_t w;
	if (lseek(fd, (off_t)i << 4, SEEK_SET) != (off_t)i << 4)
		return;
	do
		w = write(fd, buf + (i << 4), 16);
	while (w < 0 && errno == EINTR);
}

void tcpto_err(const struct ip *ip, int timedout)
{
	unsigned long now = (unsigned long)time(NULL), first = 0;
	int fd, n, i, firstpos = -1;
	if (ip->family != AF_INET || (!timedout && !wasthere))
		return;
	fd = open(TCPTO_FILE, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return;
	if (lock(fd) < 0) {
		close(fd);
		return;
	}
	n = records(fd);
	for (i = 0; i < n; i++) {
		unsigned char *r = buf + (i << 4);
		if (memcmp(r, ip->a, 4))
			continue;
		if (!timedout) {
			r[4] = 0;
		} else {
			if (r[4] && now < rec_when(r) + 120) {
				close(fd);   /* the same outage, already counted */
				return;
			}
			if (++r[4] > 10)
				r[4] = 10;
			rec_set_when(r, now);
		}
		put(fd, i);
		close(fd);
		return;
	}
	if (!timedout) {
		close(fd);
		return;
	}
	/* a free record, else the one whose memory matters least */
	for (i = 0; i < n && buf[(i << 4) + 4]; i++)
		;
	if (i >= n) {
		for (i = 0; i < n; i++) {
			const unsigned char *r = buf + (i << 4);
			unsigned long when = rec_when(r) + ((unsigned long)r[4] << 10);
			if (firstpos < 0 || when < first) {
				firstpos = i;
				first = when;
			}
		}
		i = firstpos;
	}
	if (i >= 0) {
		unsigned char *r = buf + (i << 4);
		memcpy(r, ip->a, 4);
		rec_set_when(r, now);
		r[4] = 1;
		put(fd, i);
	}
	close(fd);
}
