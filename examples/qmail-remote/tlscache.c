/* tlscache.c -- TLS sessions shared by the one-process-per-delivery
 * qmail-remotes: one file per slot (format in cachefile.h) in the
 * directory control/tlscachedir names, else queue/tlscache, under
 * cachedir.h's rules.  Every failure here is a miss, and nothing of it
 * reaches the report. */
#include <string.h>
#include <time.h>

#include "cachedir.h"
#include "cachefile.h"
#include "qmail-remote.h"

#define CACHE_FILE_MAX (CACHE_SESSION_MAX + CACHE_KEY_MAX + 100)

static struct cachedir dir = CACHEDIR_INIT;

static int cache_open(void)
{
	return cachedir_open(&dir, ctl.tlscachedir ? ctl.tlscachedir : "queue/tlscache");
}

ssize_t tlscache_load(const char *key, unsigned char *sess, size_t n)
{
	static char file[CACHE_FILE_MAX];
	const unsigned char *p;
	size_t len, slen;
	int r;
	if (cache_open() < 0)
		return 0;
	len = cachedir_read(&dir, key, file, sizeof file);
	if (!len)
		return 0;
	r = cache_parse(file, len, key, (long long)time(NULL), &p, &slen);
	if (r < 0)
		cachedir_drop(&dir, key);   /* damaged or expired: dropped */
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
	if (cache_open() == 0)
		cachedir_drop(&dir, key);
}

void tlscache_store(const char *key, struct mailtls *s)
{
	static unsigned char sess[CACHE_SESSION_MAX];
	static char file[CACHE_FILE_MAX];
	long long expires = (long long)time(NULL) + ctl.tlscachetimeout;
	size_t len;
	ssize_t n;
	if (cache_open() < 0)
		return;
	n = mailtls_get_session(s, sess, sizeof sess);
	if (n <= 0)
		return;
	len = cache_format(file, sizeof file, key, expires, sess, (size_t)n);
	explicit_bzero(sess, (size_t)n);
	if (!len)
		return;
	cachedir_write(&dir, key, file, len, expires);
	explicit_bzero(file, len);
}
