/*
 * mtasts.h -- MTA-STS (RFC 8461) for qmail-remote: the _mta-sts TXT record,
 * the policy file, matching an MX host against the policy's patterns, and
 * fetching the policy over HTTPS.
 *
 * The parsers are pure C (no I/O, no allocation, bounded input and output),
 * each with a fuzz target (fuzz/fuzz_mtasts_policy.c,
 * fuzz/fuzz_http_response.c).  The fetch is the only part that does I/O.
 *
 * Why the policy is fetched with libmailtls and a small HTTP/1.1 client of
 * our own, and not with libcurl: no process that loads libmailtls may load
 * OpenSSL.  BoringSSL exports OpenSSL's names without symbol versions, so
 * when both are loaded the dynamic loader binds OpenSSL's references into
 * BoringSSL and both break.  Debian's libcurl (even the GnuTLS build,
 * libcurl3-gnutls) pulls libcrypto.so.3 in through libssh2, so qmail-remote,
 * which loads libmailtls for its SMTP sessions, cannot link libcurl.  A
 * helper process without libmailtls could use libcurl, but it would be a
 * second program to install, exec and trust, with its own certificate
 * configuration; the fetch needs one GET of one small text file, over the
 * TLS client, verification and deadlines libmailtls already has.  What is
 * new is the HTTP response parser, and it is fuzzed.  The fetch follows no
 * redirect (RFC 8461 section 3.3) and bounds the response's size and time.
 *
 * ISC license: see LICENSE.
 */
#ifndef QMR_MTASTS_H
#define QMR_MTASTS_H

#include <stddef.h>

struct mailtls_config;

/* ---- The TXT record at _mta-sts.<domain> (RFC 8461 section 3.1) ---- */

#define MTASTS_ID_MAX 32

/* mtasts_txt_parse reads one TXT record (its strings joined, |len| bytes).
 * Returns 1 for a valid STS record ("v=STSv1" first, then an "id" of 1 to
 * 32 letters and digits, fields separated by ';' with optional blanks,
 * other fields of the RFC's extension syntax ignored) with the id copied
 * NUL-terminated to |id|; 0 for a record that does not begin with
 * "v=STSv1" (another TXT record at the name: ignored); -1 for a record
 * that begins so but is malformed (no id, bad id, a bad field, a second
 * "v" or "id").  The caller treats a name with no STS record, or with more
 * than one, as publishing no policy (RFC 8461 section 3.1). */
int mtasts_txt_parse(const char *txt, size_t len, char id[MTASTS_ID_MAX + 1]);

/* mtasts_domain writes |name| (any case, a final dot allowed) lowercase
 * without the final dot into |out|: 1, or 0 when it is not a host name
 * of letters, digits and inner hyphens (an address literal, say). */
int mtasts_domain(const char *name, char out[254]);

/* ---- The policy (RFC 8461 section 3.2) ---- */

#define MTASTS_POLICY_MAX 65536      /* bytes: larger policies are refused */
#define MTASTS_MX_MAX 32             /* patterns kept; more make the policy invalid */
#define MTASTS_MAX_AGE_MAX 31557600  /* seconds (one year); larger values are cut to it */

#define MTASTS_MODE_NONE 0
#define MTASTS_MODE_TESTING 1
#define MTASTS_MODE_ENFORCE 2

struct mtasts_policy {
	int mode;                          /* MTASTS_MODE_* */
	unsigned long max_age;             /* seconds, <= MTASTS_MAX_AGE_MAX */
	size_t nmx;
	char mx[MTASTS_MX_MAX][254];       /* lowercase, no final dot; "*.rest" for a wildcard */
};

/* mtasts_policy_parse reads a policy file of |len| bytes: lines ending in
 * CR LF or LF (the last may lack it), each "key:" optional blanks, a value,
 * optional blanks.  "version" must be "STSv1", "mode" one of enforce,
 * testing, none, "max_age" 1 to 10 digits, "mx" a host name pattern (one a
 * line, repeatable) with a wildcard only as the whole leftmost label
 * ("*.example.net").  version, mode and max_age are required, and one mx
 * at least unless mode is none.  Of a repeated key other than mx the first
 * counts; unknown keys (of letters, digits, '_', '-', '.') are ignored.
 * Returns 0 with |out| filled, or -1 with a static message in *why:
 * missing or bad fields, a line without ':', NUL bytes, a line over 1000
 * bytes, more than MTASTS_MX_MAX patterns, |len| over MTASTS_POLICY_MAX. */
int mtasts_policy_parse(const char *text, size_t len, struct mtasts_policy *out, const char **why);

/* mtasts_mx_match returns 1 when MX host |host| (a trailing dot allowed,
 * any case) matches a pattern of |p|: equal, or "*.rest" with |host|
 * being one more label (not empty, no dot) before ".rest"; else 0. */
int mtasts_mx_match(const struct mtasts_policy *p, const char *host);

/* ---- The HTTP/1.1 response (RFC 9112) ---- */

#define MTASTS_HTTP_HEAD_MAX 16384   /* status line and header fields */

struct mtasts_http {
	int status;                  /* the status code */
	char content_type[64];       /* the media type, lowercase, without parameters ("" none) */
	size_t body_len;             /* bytes of body written to the caller's buffer */
	size_t consumed;             /* bytes of the input the response took */
};

/* mtasts_http_parse parses the response in |buf| (|len| bytes, all that
 * was received so far; |eof| 1 when the connection has ended) and writes
 * its body, de-chunked, to |body| (at most |cap| bytes).  The status line
 * must be "HTTP/1.0" or "HTTP/1.1", a space, three digits, a space and a
 * reason (possibly empty); header fields "name: value" with token names,
 * no line folding, at most MTASTS_HTTP_HEAD_MAX bytes in all; lines end
 * in CR LF or LF.  The body's end: "Transfer-Encoding: chunked" (chunk
 * sizes in hex with optional extensions, trailer fields skipped), else
 * Content-Length (repeated values must agree), else the end of the
 * connection.  Any other transfer coding, both headers at once, or a 1xx
 * status is an error.  Returns 1 when the response is complete, 0 when
 * more bytes are needed (never with |eof|), -1 with a static message in
 * *why (malformed, or a body over |cap|).  Pure: no I/O, no allocation. */
int mtasts_http_parse(const char *buf, size_t len, int eof, char *body, size_t cap,
    struct mtasts_http *out, const char **why);

/* ---- Fetching the policy ---- */

/* Outcomes of mtasts_fetch, named as RFC 8460 (TLS-RPT) names them. */
#define MTASTS_OK 0
#define MTASTS_FETCH_ERROR (-1)      /* sts-policy-fetch-error: DNS, connect, TLS, HTTP status, time */
#define MTASTS_POLICY_INVALID (-2)   /* sts-policy-invalid: not a policy, or too large */
#define MTASTS_WEBPKI_INVALID (-3)   /* sts-webpki-invalid: the server's certificate failed */

struct mtasts_fetch_opts {
	const char *addr;            /* connect here (an IPv4 or IPv6 literal); NULL: resolve mta-sts.<domain> */
	unsigned port;               /* 0: 443 */
	int secs;                    /* the whole fetch's deadline; <= 0: 60 */
};

/* mtasts_fetch gets https://mta-sts.<domain>/.well-known/mta-sts.txt: it
 * connects (each address of the name in turn, within the deadline), runs
 * a libmailtls client with SNI mta-sts.<domain> under |cfg| (which must
 * verify: trust anchors set, MAILTLS_VERIFY_REQUIRE, as mailtls_config_new
 * makes it; the peer must be verified, whatever |cfg| says), sends one
 * GET with "Connection: close", and parses the response: status 200 (a
 * redirect is not followed: a fetch error), media type text/plain, a body
 * of at most MTASTS_POLICY_MAX bytes that mtasts_policy_parse accepts.
 * |domain| must be a host name (letters, digits, '-', '.').  Returns
 * MTASTS_OK with |out| filled and, when |text| is not NULL, the policy's
 * bytes copied to |text| (room for MTASTS_POLICY_MAX) and their number to
 * *text_len (the cache keeps the text; the report quotes it); or one of
 * the errors above with a message in |err| (|errlen| bytes,
 * NUL-terminated).  Never prints, never exits; the descriptors it opens
 * are closed again. */
int mtasts_fetch(struct mailtls_config *cfg, const char *domain, const struct mtasts_fetch_opts *opts,
    struct mtasts_policy *out, char *text, size_t *text_len, char *err, size_t errlen);

/* ---- The policy cache's file (sts.c keeps one file per domain) ----
 *   "qmail-remote mtastscache 1\n"
 *   "key " DOMAIN "\n"      the policy domain, lowercase, as mtasts_fetch takes it
 *   "id " ID "\n"           the TXT record's id the policy was fetched for
 *   "fetched " DECIMAL "\n" seconds since the epoch, no sign, no leading 0
 *   "expires " DECIMAL "\n" fetched + max_age
 *   "size " DECIMAL "\n"    the policy's length
 *   "\n"
 *   the policy file's bytes as served, exactly |size| of them. */

#define MTASTS_CACHE_FILE_MAX (MTASTS_POLICY_MAX + 512)

struct mtasts_cached {
	char id[MTASTS_ID_MAX + 1];
	long long fetched, expires;
	const char *text;            /* inside the buffer parsed */
	size_t len;
};

/* mtasts_cache_format writes the file into |out| (|outlen| bytes): its
 * length, or 0 when it does not fit, |domain| is not a lowercase host
 * name, |id| not 1 to MTASTS_ID_MAX letters and digits, |len| 0 or over
 * MTASTS_POLICY_MAX, or the times are not 0 < fetched < expires with
 * expires - fetched at most MTASTS_MAX_AGE_MAX. */
size_t mtasts_cache_format(char *out, size_t outlen, const char *domain, const char *id, long long fetched,
    long long expires, const char *text, size_t len);

/* mtasts_cache_parse reads a file's |len| bytes: 0 with |out| filled
 * (out->text pointing into |buf|) when it is exactly the format above,
 * for |domain|, fetched no later than |now| and not expired (expires >
 * now); 1 when it is such a file for another domain (a live entry
 * sharing the slot); -1 otherwise (damaged or expired: a file to drop).
 * Whether the text is a policy is mtasts_policy_parse's to say. */
int mtasts_cache_parse(const char *buf, size_t len, const char *domain, long long now, struct mtasts_cached *out);

#endif
