/* cachefile.h -- the file format of qmail-remote's TLS session cache, kept
 * apart from the program (no I/O, no exits) so that it can be fuzzed.
 *
 * One file holds one saved session:
 *   "qmail-remote tlscache 1\n"
 *   "key " KEY "\n"        KEY: cache_key's text
 *   "expires " DECIMAL "\n" seconds since the epoch, no sign, no leading 0
 *   "size " DECIMAL "\n"    the number of session bytes that follow
 *   "\n"
 *   the session bytes (mailtls_get_session's), exactly |size| of them.
 * ISC license: see LICENSE. */
#ifndef QMR_CACHEFILE_H
#define QMR_CACHEFILE_H

#include <stddef.h>
#include <time.h>

#define CACHE_KEY_MAX 400         /* longest key text */
#define CACHE_SESSION_MAX 16384   /* longest session kept */
#define CACHE_LIFETIME_MAX 86400  /* an entry never claims to live longer */
#define CACHE_SLOTS 1024

/* cache_key writes "LEVEL HOST ADDRESS PORT" (host in lower case) into
 * |key|: 0, or -1 when it does not fit or a part holds a byte outside
 * 0x21..0x7e (such a destination is never cached). */
int cache_key(char *key, size_t n, const char *level, const char *host, const char *addr, unsigned port);

/* cache_slot is the name of the file for |key|: "s" and three hex digits
 * (000 to 3ff) of a hash of the key, so the directory holds at most
 * CACHE_SLOTS entries; two keys may share a slot (the newer replaces the
 * older, and the key inside tells them apart). */
void cache_slot(const char *key, char name[5]);

/* cache_format writes the file for |key| into |out| (|outlen| bytes):
 * returns its length, or 0 when it does not fit, the key is not one of
 * cache_key's, |slen| is 0 or above CACHE_SESSION_MAX. */
size_t cache_format(char *out, size_t outlen, const char *key, long long expires,
    const unsigned char *sess, size_t slen);

/* cache_parse reads a file's bytes: 0 with *sess and *slen pointing at the
 * session inside |buf| when the file is exactly the format above, holds
 * |key|, and has not expired at |now| (expires > now, and no further than
 * CACHE_LIFETIME_MAX after it); 1 when it is such a file for another key
 * (a live entry sharing the slot); -1 otherwise (damaged or expired: a
 * file to drop). */
int cache_parse(const char *buf, size_t len, const char *key, long long now,
    const unsigned char **sess, size_t *slen);

/* The pieces of cache_parse that the MTA-STS policy cache's format
 * (mtasts.h) shares.  cache_field reads a header line "NAME VALUE\n" at
 * *p (before |end|): the value, *vlen bytes up to the LF, NUL-free, with
 * *p moved past the line; NULL when the line is not such a one.
 * cache_decimal reads |n| bytes of decimal without sign or leading zero,
 * 1 to 18 digits, into *out: 0, or -1. */
const char *cache_field(const char **p, const char *end, const char *name, size_t *vlen);
int cache_decimal(const char *v, size_t n, long long *out);

#endif
