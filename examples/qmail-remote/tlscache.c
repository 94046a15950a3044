/* tlscache.c -- TLS sessions shared by the one-process-per-delivery
 * qmail-remotes: one file per slot (format in cachefile.h) in the
 * directory control/tlscachedir names, else queue/tlscache, used only when
 * it exists, belongs to this user and is closed to everyone else.  Files
 * are mode 0600, written whole under a temporary name and renamed into
 * place; their mtime is their expiry, so the sweep needs no reading.
 * Every failure here is a miss: a missing, foreign, damaged or unwritable
 * cache never costs a delivery, and nothing of it reaches the report. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cachefile.h"
#include "qmail-remote.h"

#define CACHE_FILE_MAX (CACHE_SESSION_MAX + CACHE_KEY_MAX + 100)
#define SWEEP_EVERY 300      /* seconds between two sweeps of the directory */
#define TEMP_STALE 600       /* a temporary file this old was left by a crash */

static int dfd = -2;         /* -2: not looked at yet; -1: no usable cache */

static int cache_dir(void)
{
	struct stat st;
	int fd;
	if (dfd != -2)
		return dfd;
	dfd = -1;
	fd = open(ctl.tlscachedir ? ctl.tlscachedir : "queue/tlscache",
	    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/* sessions hold resumption secrets: a directory others may read or
	 * write would leak them or let them be replaced */
	if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 077)) {
		close(fd);
		return -1;
	}
	dfd = fd;
	return dfd;
}

static int ours(int fd, struct stat *st)
{
	return fstat(fd, st) == 0 && S_ISREG(st->st_mode) && st->st_uid == geteuid() && !(st->st_mode & 077) &&
	    st->st_size > 0 && st->st_size <= CACHE_FILE_MAX;
}

ssize_t tlscache_load(const char *key, unsigned char *sess, size_t n)
{
	static char file[CACHE_FILE_MAX];
	const unsigned char *p;
	size_t len = 0, slen;
	struct stat st;
	char slot[5];
	int fd, r;
	if (cache_dir() < 0)
		return 0;
	cache_slot(key, slot);
	fd = openat(dfd, slot, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (!ours(fd, &st)) {
		close(fd);
		return 0;
	}
	while (len < (size_t)st.st_size) {
		ssize_t k = read(fd, file + len, (size_t)st.st_size - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	close(fd);
	r = cache_parse(file, len, key, (long long)time(NULL), &p, &slen);
	if (r < 0)
		(void)unlinkat(dfd, slot, 0);   /* damaged or expired: dropped */
	if (r || slen > n) {
		explicit_bzero(file, len);
		return 0;
	}
	memcpy(sess, p, slen);
	explicit_bzero(file, len);
	return (ssize_t)slen;
}

void tlscache_drop(const char *key)
{
	char slot[5];
	if (cache_dir() < 0)
		return;
	cache_slot(key, slot);
	(void)unlinkat(dfd, slot, 0);
}

/* Expired entries and the leftovers of crashed writers go, at most once in
 * SWEEP_EVERY seconds (the mtime of the file "sweep" says when). */
static void sweep(time_t now)
{
	struct stat st;
	struct dirent *e;
	DIR *d;
	int fd;
	if (fstatat(dfd, "sweep", &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_mtime > now - SWEEP_EVERY &&
	    st.st_mtime <= now)
		return;
	fd = openat(dfd, "sweep", O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	(void)futimens(fd, NULL);
	close(fd);
	fd = dup(dfd);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(d);
	while ((e = readdir(d))) {
		int slot = e->d_name[0] == 's' && strlen(e->d_name) == 4 && strcmp(e->d_name, "sweep");
		int temp = e->d_name[0] == 't';
		if (!slot && !temp)
			continue;
		if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_uid != geteuid())
			continue;
		if ((slot && st.st_mtime <= now) || (temp && st.st_mtime < now - TEMP_STALE))
			(void)unlinkat(dfd, e->d_name, 0);
	}
	closedir(d);
}

void tlscache_store(const char *key, struct mailtls *s)
{
	static unsigned char sess[CACHE_SESSION_MAX];
	static char file[CACHE_FILE_MAX];
	time_t now = time(NULL);
	long long expires = (long long)now + ctl.tlscachetimeout;
	struct timespec ts[2];
	char slot[5], tmp[32];
	size_t len, off = 0;
	ssize_t n;
	int fd, ok;
	if (cache_dir() < 0)
		return;
	n = mailtls_get_session(s, sess, sizeof sess);
	if (n <= 0)
		return;
	len = cache_format(file, sizeof file, key, expires, sess, (size_t)n);
	explicit_bzero(sess, (size_t)n);
	if (!len)
		return;
	cache_slot(key, slot);
	snprintf(tmp, sizeof tmp, "t%ld", (long)getpid());
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST && unlinkat(dfd, tmp, 0) == 0)   /* a crashed writer's, same pid */
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		goto out;
	while (off < len) {
		ssize_t w = write(fd, file + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	ts[0].tv_sec = ts[1].tv_sec = (time_t)expires;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	ok = off == len && futimens(fd, ts) == 0;
	if (close(fd) < 0)
		ok = 0;
	if (!ok || renameat(dfd, tmp, dfd, slot) < 0)
		(void)unlinkat(dfd, tmp, 0);
	sweep(now);
out:
	explicit_bzero(file, len);
}
