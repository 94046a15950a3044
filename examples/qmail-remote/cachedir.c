/* cachedir.c -- a cache directory shared by qmail-remotes; see cachedir.h.
 * ISC license: see LICENSE. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cachedir.h"
#include "cachefile.h"

#define SWEEP_EVERY 300      /* seconds between two sweeps of the directory */
#define TEMP_STALE 600       /* a temporary file this old was left by a crash */

int cachedir_open(struct cachedir *d, const char *path)
{
	struct stat st;
	int fd;
	if (d->dfd != CACHEDIR_UNOPENED)
		return d->dfd < 0 ? -1 : 0;
	d->dfd = -1;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/* the files hold resumption secrets or policies: a directory others
	 * may write would let them be replaced (an enforce policy lifted, a
	 * session of theirs offered), one they may read would leak them */
	if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 077)) {
		close(fd);
		return -1;
	}
	d->dfd = fd;
	return 0;
}

size_t cachedir_read(struct cachedir *d, const char *key, char *buf, size_t cap)
{
	struct stat st;
	char slot[5];
	size_t len = 0;
	int fd;
	if (d->dfd < 0)
		return 0;
	cache_slot(key, slot);
	fd = openat(d->dfd, slot, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) ||
	    st.st_size <= 0 || (unsigned long long)st.st_size > cap) {
		close(fd);
		return 0;
	}
	while (len < (size_t)st.st_size) {
		ssize_t k = read(fd, buf + len, (size_t)st.st_size - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	close(fd);
	return len;
}

void cachedir_drop(struct cachedir *d, const char *key)
{
	char slot[5];
	if (d->dfd < 0)
		return;
	cache_slot(key, slot);
	(void)unlinkat(d->dfd, slot, 0);
}

/* Expired entries and crashed writers' leftovers go, at most once in
 * SWEEP_EVERY seconds (the mtime of the file "sweep" says when). */
static void sweep(int dfd, time_t now)
{
	struct stat st;
	struct dirent *e;
	DIR *dir;
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
	if (fd < 0 || !(dir = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(dir);
	while ((e = readdir(dir))) {
		int slot = e->d_name[0] == 's' && strlen(e->d_name) == 4 && strcmp(e->d_name, "sweep");
		int temp = e->d_name[0] == 't';
		if (!slot && !temp)
			continue;
		if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_uid != geteuid())
			continue;
		if ((slot && st.st_mtime <= now) || (temp && st.st_mtime < now - TEMP_STALE))
			(void)unlinkat(dfd, e->d_name, 0);
	}
	closedir(dir);
}

void cachedir_write(struct cachedir *d, const char *key, const char *buf, size_t len, long long expires)
{
	struct timespec ts[2];
	char slot[5], tmp[32];
	size_t off = 0;
	int fd, ok;
	if (d->dfd < 0)
		return;
	cache_slot(key, slot);
	snprintf(tmp, sizeof tmp, "t%ld", (long)getpid());
	fd = openat(d->dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST && unlinkat(d->dfd, tmp, 0) == 0)   /* a crashed writer's, same pid */
		fd = openat(d->dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	while (off < len) {
		ssize_t w = write(fd, buf + off, len - off);
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
	if (!ok || renameat(d->dfd, tmp, d->dfd, slot) < 0)
		(void)unlinkat(d->dfd, tmp, 0);
	sweep(d->dfd, time(NULL));
}
