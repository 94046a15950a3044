/* rules.h -- tcprules cdb lookup, as ucspi-tcp 0.88's tcpserver (with the
 * IPv6 patch) does it.
 *
 * The cdb, as tcprules writes it: key = the address string from the rules
 * file ("1.2.3.4", "10.2.", "joe@1.2.3.4", "=host.example", "=.example.org",
 * "=", "" ...; ranges like 10.2-3. are already expanded, no case folding);
 * value = "D\0" when the rule says deny, then "+VAR=value\0" for each
 * assignment, in the rules file's order; `allow` alone is the empty value.
 */
#ifndef TCPSERVER_SSL_RULES_H
#define TCPSERVER_SSL_RULES_H
#include <stddef.h>

#define RULES_KEYMAX 512     /* out->key keeps at most RULES_KEYMAX-1 bytes */
#define RULES_VALUEMAX 65536 /* a longer cdb value is refused (EPROTO) */

struct rules_result {
	int deny;       /* 1: the rule says deny */
	char *env;      /* "VAR=value\0VAR=value\0" in the rule's order, malloc'd; NULL when none */
	size_t envlen;  /* bytes in env, the last NUL included */
	char key[RULES_KEYMAX]; /* the key that matched, for logs (cut if longer) */
};

/* rules_lookup opens |cdbpath| anew (so a cdb replaced by rename takes effect
 * at once) and tries, first hit wins:
 *   info@ip, info@=host, ip, =host,
 *   the prefixes of ip ending in '.' or ':' (longest first; 1.2.3. 1.2. 1.
 *   for 1.2.3.4, 2001:db8:: 2001:db8: 2001: for 2001:db8::1, down to ":"),
 *   =.suffix for each '.' in host (=.b.example.org =.example.org =.org),
 *   "=", and the empty key.
 * The info@ keys only when |info| is not NULL (ident on, -r); the = keys only
 * when |host| is not NULL (-h and a name was found).  ip, host and info are
 * used as given: pass them as tcpserver puts them in TCPREMOTEIP (IPv4-mapped
 * addresses as plain IPv4), TCPREMOTEHOST (lower case) and TCPREMOTEINFO.
 *
 * Returns 1 when a rule matched (*out filled; free it with
 * rules_result_free), 0 when none did (tcpserver then allows; *out empty),
 * -1 with errno set on error (*out empty): ENOENT when the cdb does not exist
 * (the caller applies -X), EPROTO when the file is not a cdb or the value is
 * malformed (see rules_parse_value), EINVAL for a NULL ip, ENOMEM, or the
 * errno of open().  tcpserver drops the connection on every error but ENOENT. */
int rules_lookup(const char *cdbpath, const char *ip, const char *host, const char *info,
	struct rules_result *out);

/* rules_parse_value parses one cdb value of |len| bytes into *out (key left
 * empty).  Accepted: NUL-terminated records, each either "D" (deny) or
 * "+VAR=value" with a non-empty VAR (split at the first '=', so the value
 * may hold '='; an empty value sets VAR to ""; a later VAR overrides an
 * earlier one when the caller applies them in order); "" is allow.
 * tcpserver skips what tcprules never writes (and takes any record starting
 * with 'D' as deny); this refuses it with -1/EPROTO: an unterminated last
 * record, an empty or unknown record, "D" followed by more bytes, a '+'
 * record without '=' or with an empty name, a value over RULES_VALUEMAX.
 * Returns 0, or -1 with errno EPROTO or ENOMEM (*out then empty). */
int rules_parse_value(const char *data, size_t len, struct rules_result *out);

/* rules_result_free frees out->env and empties *r; safe on an empty result. */
void rules_result_free(struct rules_result *r);
#endif
