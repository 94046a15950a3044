/* cachedir.h -- a cache directory shared by the one-process-per-delivery
 * qmail-remotes (the TLS session cache, the MTA-STS policy cache): one
 * file per slot (cache_slot's name), used only when the directory exists,
 * belongs to this user and is closed to everyone else, and each file is
 * too.  Files are mode 0600, written whole under a temporary name
 * ("t" and the pid) and renamed into place; their mtime is their expiry,
 * so the sweep of expired files needs no reading.  Every failure is a
 * miss: a missing, foreign, damaged or unwritable cache never costs a
 * delivery.  ISC license: see LICENSE. */
#ifndef QMR_CACHEDIR_H
#define QMR_CACHEDIR_H

#include <stddef.h>

struct cachedir {
	int dfd;                  /* CACHEDIR_UNOPENED, -1 (no usable cache), or the directory */
};
#define CACHEDIR_UNOPENED (-2)
#define CACHEDIR_INIT { CACHEDIR_UNOPENED }

/* cachedir_open opens |path| at the first call (later calls return what
 * it found): 0, or -1 when there is no usable cache. */
int cachedir_open(struct cachedir *d, const char *path);

/* cachedir_read reads the slot file of |key| into |buf|: its length, or 0
 * (no file, not ours, empty, or larger than |cap|). */
size_t cachedir_read(struct cachedir *d, const char *key, char *buf, size_t cap);

/* cachedir_write makes |buf| (|len| bytes) the slot file of |key|,
 * expiring at |expires| (seconds since the epoch), then sweeps the
 * directory (at most once in 5 minutes: expired files and crashed
 * writers' leftovers go). */
void cachedir_write(struct cachedir *d, const char *key, const char *buf, size_t len, long long expires);

/* cachedir_drop removes the slot file of |key|. */
void cachedir_drop(struct cachedir *d, const char *key);

#endif
