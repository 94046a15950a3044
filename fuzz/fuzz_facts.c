/*
 * fuzz_facts.c -- the facts of a session as the program under UCSPI-TLS
 * gets them: the peer certificate's names in RFC 4514 form, CN, serial,
 * dates and fingerprint (facts.c), the environment block (mailtls_env,
 * env.c), and the UCSPI-TLS control protocol that carries it
 * (mailtls_ucspitls_wait, mailtls_ucspitls_reply, mailtls_ucspitls_env).
 *
 * The peer certificate comes from the fuzz input: the library asks
 * BoringSSL for the peer's chain with SSL_get0_peer_certificates, which
 * the harness takes over (ld --wrap) for its session, marked as past the
 * handshake.  No TLS handshake runs: the certificate is parsed by the same
 * calls as after a real one, and a fuzzer can change a name's bytes in
 * place without breaking the DER around them.
 *
 * Input: byte 0: bit 0 a server session (else a client), bit 1 the chain
 * is empty, bit 2 has_peer_cert, bit 3 verified, bits 4-7 the verification
 * result (0, or 3-10 for MAILTLS_E_VERIFY*); byte 1: the program's control
 * request (0: it closes without asking; else that byte), byte 2 the size of
 * the buffer given to mailtls_ucspitls_env; then a length byte and the
 * client's SNI name (0xff: none); the rest is the certificate, DER.
 *
 * Checks: every fact and every value in the block holds only bytes
 * 0x20..0x7e; the subject and issuer parse back (RFC 4514: RDNs most
 * specific first, '+' inside an RDN, escapes \XX and \<special>) to the
 * certificate's attribute values, as UTF-8 (or raw bytes, or "#hex" for a
 * value that is not a string); the CN is the last CN's value; the
 * fingerprint is SHA-256 of the DER; the serial is uppercase hex; the block
 * has each known name at most once and the documented
 * SSL_SERVER_VERIFY (SSL_CLIENT_VERIFY on a server); a 'Y' request gets
 * exactly that block on the control
 * socket, 'y' gets nothing, another byte MAILTLS_E_PROTOCOL, no request 0.
 * ISC license: see LICENSE.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/bytestring.h>
#include <openssl/mem.h>
#include <openssl/obj.h>
#include <openssl/pool.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "fuzz.h"
#include "internal.h"

const STACK_OF(CRYPTO_BUFFER) *__real_SSL_get0_peer_certificates(const SSL *ssl);

static const SSL *fake_ssl;
static STACK_OF(CRYPTO_BUFFER) *fake_chain;

const STACK_OF(CRYPTO_BUFFER) *__wrap_SSL_get0_peer_certificates(const SSL *ssl)
{
	if (ssl && ssl == fake_ssl)
		return fake_chain;
	return __real_SSL_get0_peer_certificates(ssl);
}

static struct mailtls_config *cfg;
static int verbose; /* FUZZ_VERBOSE set: the facts of each input on stderr */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	signal(SIGPIPE, SIG_IGN);
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	cfg = mailtls_config_new();
	if (!cfg)
		abort();
	return 0;
}

static void check_printable(const char *v, const char *what)
{
	if (!v)
		return;
	for (const char *p = v; *p; p++)
		FUZZ_CHECK(*p >= 0x20 && *p <= 0x7e, "%s: byte 0x%02x", what, (unsigned char)*p);
}

/* ---- RFC 4514 parsed back ---------------------------------------- */

struct ava {
	char type[160];
	uint8_t val[8192];
	size_t vlen;
	int hexform;             /* "#..." */
	int rdn;                 /* index of its RDN in the string */
};

static int special(int c)
{
	return c == ',' || c == '+' || c == '"' || c == '<' || c == '>' || c == ';' || c == '#' || c == ' ';
}

/* parse_dn splits |s| into AVAs; checks the escaping on the way. */
static size_t parse_dn(const char *s, struct ava *out, size_t max, const char *what)
{
	size_t n = 0;
	int rdn = 0;
	const char *p = s;
	if (!*s)
		return 0;
	for (;;) {
		struct ava *a = &out[n];
		size_t tl = 0, start;
		FUZZ_CHECK(n < max, "%s: too many attributes", what);
		memset(a, 0, sizeof *a);
		a->rdn = rdn;
		while (*p && *p != '=') {
			FUZZ_CHECK(*p != ',' && *p != '+' && *p != '\\', "%s: bad attribute type", what);
			FUZZ_CHECK(tl < sizeof a->type - 1, "%s: attribute type too long", what);
			a->type[tl++] = *p++;
		}
		FUZZ_CHECK(*p == '=' && tl > 0, "%s: attribute without '='", what);
		p++;
		a->hexform = *p == '#';
		start = 0;
		while (*p && *p != ',' && *p != '+') {
			int c = (unsigned char)*p;
			FUZZ_CHECK(a->vlen < sizeof a->val, "%s: value too long", what);
			if (c == '\\') {
				int hi = fz_hexval(p[1]), lo = hi >= 0 ? fz_hexval(p[2]) : -1;
				FUZZ_CHECK(!a->hexform, "%s: escape in a #hex value", what);
				if (hi >= 0 && lo >= 0) {
					FUZZ_CHECK(!(p[1] >= 'a' && p[1] <= 'f') && !(p[2] >= 'a' && p[2] <= 'f'), "%s: lowercase", what);
					a->val[a->vlen++] = (uint8_t)(hi << 4 | lo);
					p += 3;
				} else {
					FUZZ_CHECK(p[1] && special(p[1]), "%s: backslash before 0x%02x", what, (unsigned char)p[1]);
					FUZZ_CHECK(p[1] != '#' || a->vlen == 0, "%s: \\# not at the start", what);
					FUZZ_CHECK(p[1] != ' ' || a->vlen == 0 || !p[2] || p[2] == ',' || p[2] == '+',
					    "%s: \\<space> inside a value", what);
					a->val[a->vlen++] = (uint8_t)p[1];
					p += 2;
				}
				continue;
			}
			FUZZ_CHECK(c != '"' && c != '<' && c != '>' && c != ';' && c != '=', "%s: raw '%c' in a value", what, c);
			FUZZ_CHECK(!(c == ' ' && a->vlen == 0 && !a->hexform), "%s: raw leading space", what);
			FUZZ_CHECK(!(c == ' ' && (!p[1] || p[1] == ',' || p[1] == '+')), "%s: raw trailing space", what);
			a->val[a->vlen++] = (uint8_t)c;
			p++;
			(void)start;
		}
		n++;
		if (!*p)
			return n;
		if (*p == ',')
			rdn++;
		p++;
	}
}

/* The value facts.c must show for entry |e|, and whether it is #hex. */
static size_t expected_value(const X509_NAME_ENTRY *e, uint8_t *out, size_t cap, int *hexform)
{
	const ASN1_STRING *str = X509_NAME_ENTRY_get_data(e);
	unsigned char *utf8 = NULL;
	int n, type = ASN1_STRING_type(str);
	*hexform = 0;
	switch (type) {
	case V_ASN1_UTF8STRING: case V_ASN1_PRINTABLESTRING: case V_ASN1_IA5STRING: case V_ASN1_T61STRING:
	case V_ASN1_VIDEOTEXSTRING: case V_ASN1_GRAPHICSTRING: case V_ASN1_VISIBLESTRING:
	case V_ASN1_GENERALSTRING: case V_ASN1_NUMERICSTRING: case V_ASN1_BMPSTRING: case V_ASN1_UNIVERSALSTRING:
		break;
	default:
		*hexform = 1;
		return 0;
	}
	n = ASN1_STRING_to_UTF8(&utf8, str);
	if (n >= 0) {
		size_t k = (size_t)n < cap ? (size_t)n : cap;
		memcpy(out, utf8, k);
		OPENSSL_free(utf8);
		return (size_t)n;
	}
	n = ASN1_STRING_length(str);
	memcpy(out, ASN1_STRING_get0_data(str), (size_t)n < cap ? (size_t)n : cap);
	return (size_t)n;
}

static struct ava avas[1024];

static void check_dn(const char *dn, const X509_NAME *name, const char *what)
{
	int n = X509_NAME_entry_count(name), i, rdn = -1, lastset = -1;
	size_t got;
	static uint8_t want[8192];
	check_printable(dn, what);
	FUZZ_CHECK(dn != NULL, "%s: NULL for a parsed certificate", what);
	got = parse_dn(dn, avas, sizeof avas / sizeof avas[0], what);
	FUZZ_CHECK(got == (size_t)n, "%s: %zu attributes shown, %d in the certificate: %s", what, got, n, dn);
	/* The string lists RDNs most specific (last in DER) first; walk the
	 * DER entries RDN by RDN from the end, each RDN's entries in order. */
	{
		size_t k = 0;
		int end = n;
		while (end > 0) {
			int set = X509_NAME_ENTRY_set(X509_NAME_get_entry(name, end - 1)), start = end - 1;
			while (start > 0 && X509_NAME_ENTRY_set(X509_NAME_get_entry(name, start - 1)) == set)
				start--;
			rdn++;
			for (i = start; i < end; i++, k++) {
				const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
				const ASN1_OBJECT *obj = X509_NAME_ENTRY_get_object(e);
				int nid = OBJ_obj2nid(obj), hexform;
				const char *sn = nid != NID_undef ? OBJ_nid2sn(nid) : NULL;
				size_t wl;
				struct ava *a = &avas[k];
				FUZZ_CHECK(a->rdn == rdn, "%s: attribute %zu in RDN %d, expected %d: %s", what, k, a->rdn, rdn, dn);
				if (!(sn && strcmp(a->type, sn) == 0))
					FUZZ_CHECK(strspn(a->type, "0123456789.") == strlen(a->type), "%s: type \"%s\"", what, a->type);
				wl = expected_value(e, want, sizeof want, &hexform);
				FUZZ_CHECK(a->hexform == hexform, "%s: attribute %zu: #hex form %d, expected %d: %s", what, k,
				    a->hexform, hexform, dn);
				if (hexform) {
					FUZZ_CHECK(a->vlen >= 3 && a->vlen % 2 == 1 &&
					        strspn((char *)a->val + 1, "0123456789ABCDEF") == a->vlen - 1,
					    "%s: attribute %zu: bad #hex form", what, k);
				} else {
					FUZZ_CHECK(wl <= sizeof want && a->vlen == wl && memcmp(a->val, want, wl) == 0,
					    "%s: attribute %zu (%s): value does not parse back: %s", what, k, a->type, dn);
				}
			}
			end = start;
		}
		(void)lastset;
	}
}

/* ---- the block --------------------------------------------------- */

static const char *const known[] = {
	"SSL_PROTOCOL", "SSL_CIPHER", "SSL_SESSION_ID", "SSL_CIPHER_USEKEYSIZE", "SSL_CIPHER_ALGKEYSIZE",
	"SSL_VERSION_INTERFACE", "SSL_VERSION_LIBRARY", "SSL_TLS_SNI_SERVERNAME",
	"SSL_PEER_CERT_HASH", "SSL_PEER_CERT_SUBJECT",
	/* the peer's certificate: SSL_CLIENT_* on a server, SSL_SERVER_* on a client */
	"SSL_CLIENT_S_DN", "SSL_CLIENT_S_DN_CN", "SSL_CLIENT_I_DN", "SSL_CLIENT_V_START", "SSL_CLIENT_V_END",
	"SSL_CLIENT_M_SERIAL", "SSL_CLIENT_VERIFY",
	"SSL_SERVER_S_DN", "SSL_SERVER_S_DN_CN", "SSL_SERVER_I_DN", "SSL_SERVER_V_START", "SSL_SERVER_V_END",
	"SSL_SERVER_M_SERIAL", "SSL_SERVER_VERIFY",
};
#define NKNOWN (sizeof known / sizeof known[0])

/* check_block parses the block; values[i] is the value of known[i] or NULL. */
static void check_block(const char *b, size_t len, const char *values[NKNOWN])
{
	size_t off = 0, nvars = 0;
	for (size_t i = 0; i < NKNOWN; i++)
		values[i] = NULL;
	FUZZ_CHECK(len >= 2 && b[len - 1] == 0 && b[len - 2] == 0, "block does not end in two NULs");
	while (off < len - 1) {
		const char *e = b + off, *eq;
		size_t i, el = strlen(e);
		if (el == 0) {
			FUZZ_CHECK(nvars == 0 && len == 2, "empty entry inside the block");
			break;
		}
		eq = strchr(e, '=');
		FUZZ_CHECK(eq, "entry without '=': %s", e);
		for (i = 0; i < NKNOWN; i++)
			if (strlen(known[i]) == (size_t)(eq - e) && memcmp(e, known[i], (size_t)(eq - e)) == 0)
				break;
		FUZZ_CHECK(i < NKNOWN, "unknown name in the block: %s", e);
		FUZZ_CHECK(!values[i], "%s twice in the block", known[i]);
		values[i] = eq + 1;
		check_printable(eq + 1, known[i]);
		off += el + 1;
		nvars++;
	}
	FUZZ_CHECK(nvars == 0 || off == len - 1, "block length %zu, entries end at %zu", len, off);
}

static const char *val_of(const char *values[NKNOWN], const char *name)
{
	for (size_t i = 0; i < NKNOWN; i++)
		if (!strcmp(known[i], name))
			return values[i];
	abort();
}

/* The peer's name |what| ("S_DN"...) for this session's side. */
static const char *pn(const struct mailtls *s, const char *what)
{
	static char buf[8][40];
	static int i;
	i = (i + 1) % 8;
	snprintf(buf[i], sizeof buf[i], "SSL_%s_%s", s->is_server ? "CLIENT" : "SERVER", what);
	return buf[i];
}

static void check_eq(const char *got, const char *want, const char *what)
{
	FUZZ_CHECK((!got && !want) || (got && want && !strcmp(got, want)), "%s: \"%s\", expected \"%s\"", what,
	    got ? got : "(none)", want ? want : "(none)");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	unsigned flags = fz_u8(&f), req = fz_u8(&f), envlen = fz_u8(&f);
	char snibuf[256], *block;
	const char *sni = fz_str(&f, snibuf, sizeof snibuf, 1), *values[NKNOWN];
	const uint8_t *der = f.p;
	size_t derlen = f.n;
	struct mailtls *s;
	struct mailtls_ucspitls u;
	X509 *x = NULL;
	int vr = (flags >> 4) & 15, w, has_cert;
	ssize_t blen;
	static const int results[16] = { 0, 0, 0, 3, 4, 5, 6, 7, 8, 9, 10, 0, 0, 0, 0, 0 };

	s = (flags & 1) ? mailtls_server_mem(cfg) : mailtls_client_mem(cfg, sni);
	if (!s)
		return 0; /* an SNI name BoringSSL refuses */
	fake_chain = sk_CRYPTO_BUFFER_new_null();
	if (!(flags & 2)) {
		CRYPTO_BUFFER *buf = CRYPTO_BUFFER_new(der, derlen, NULL);
		if (!buf || !sk_CRYPTO_BUFFER_push(fake_chain, buf))
			abort();
		x = X509_parse_from_buffer(buf);
	}
	fake_ssl = s->ssl;
	s->handshake_done = 1;
	s->has_peer_cert = (flags >> 2) & 1;
	s->verified = (flags >> 3) & 1;
	s->verify_result = results[vr];
	has_cert = s->has_peer_cert || !(flags & 2);

	/* The facts. */
	FUZZ_CHECK(mailtls_peer_has_cert(s) == has_cert, "has_cert");
	check_printable(mailtls_peer_subject(s), "subject");
	check_printable(mailtls_peer_issuer(s), "issuer");
	check_printable(mailtls_peer_cn(s), "cn");
	check_printable(mailtls_peer_not_before(s), "not_before");
	check_printable(mailtls_peer_not_after(s), "not_after");
	check_printable(mailtls_peer_serial(s), "serial");
	check_printable(mailtls_peer_fingerprint(s), "fingerprint");
	if (x) {
		const X509_NAME *subj = X509_get_subject_name(x);
		int last = -1;
		uint8_t md[32];
		char hex[65];
		const char *serial = mailtls_peer_serial(s), *cn = mailtls_peer_cn(s);
		check_dn(mailtls_peer_subject(s), subj, "subject");
		check_dn(mailtls_peer_issuer(s), X509_get_issuer_name(x), "issuer");
		for (int i = -1; (i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0;)
			last = i;
		if (last < 0) {
			FUZZ_CHECK(cn == NULL, "a CN without a commonName");
		} else {
			static struct ava a;
			char *tmp;
			int hexform;
			static uint8_t want[8192];
			size_t wl = expected_value(X509_NAME_get_entry(subj, last), want, sizeof want, &hexform);
			FUZZ_CHECK(cn != NULL, "no CN");
			tmp = malloc(strlen(cn) + 4);
			sprintf(tmp, "CN=%s", cn);
			FUZZ_CHECK(parse_dn(tmp, &a, 1, "cn") == 1, "CN has an unescaped ',' or '+': %s", cn);
			if (!hexform)
				FUZZ_CHECK(a.vlen == wl && memcmp(a.val, want, wl) == 0, "CN does not parse back: %s", cn);
			free(tmp);
		}
		SHA256(der, derlen, md);
		for (int i = 0; i < 32; i++)
			sprintf(hex + 2 * i, "%02x", md[i]);
		FUZZ_CHECK(!strncmp(mailtls_peer_fingerprint(s), "SHA256:", 7) && !strcmp(mailtls_peer_fingerprint(s) + 7, hex),
		    "fingerprint");
		FUZZ_CHECK(serial && strlen(serial + (*serial == '-')) % 2 == 0 && strlen(serial + (*serial == '-')) >= 2 &&
		        strspn(serial + (*serial == '-'), "0123456789ABCDEF") == strlen(serial + (*serial == '-')),
		    "serial \"%s\"", serial ? serial : "(none)");
	}

	/* The block. */
	blen = mailtls_env(s, NULL, 0);
	FUZZ_CHECK(blen >= 2, "block size %zd: %s", blen, mailtls_error(s));
	block = malloc((size_t)blen);
	FUZZ_CHECK(mailtls_env(s, block, (size_t)blen) == blen, "block");
	FUZZ_CHECK(blen < 2 || mailtls_env(s, block, (size_t)blen - 1) == -1, "block in too small a buffer");
	FUZZ_CHECK(mailtls_env(s, block, (size_t)blen) == blen, "block again");
	check_block(block, (size_t)blen, values);
	if (verbose)
		for (const char *p = block; *p; p += strlen(p) + 1)
			fprintf(stderr, "facts: %s\n", p);
	check_eq(val_of(values, pn(s, "S_DN")), has_cert ? mailtls_peer_subject(s) : NULL, "S_DN");
	check_eq(val_of(values, "SSL_PEER_CERT_SUBJECT"), has_cert ? mailtls_peer_subject(s) : NULL, "SSL_PEER_CERT_SUBJECT");
	check_eq(val_of(values, pn(s, "I_DN")), has_cert ? mailtls_peer_issuer(s) : NULL, "I_DN");
	check_eq(val_of(values, pn(s, "S_DN_CN")), has_cert ? mailtls_peer_cn(s) : NULL, "S_DN_CN");
	check_eq(val_of(values, pn(s, "M_SERIAL")), has_cert ? mailtls_peer_serial(s) : NULL, "M_SERIAL");
	check_eq(val_of(values, pn(s, "V_START")), has_cert ? mailtls_peer_not_before(s) : NULL, "V_START");
	check_eq(val_of(values, pn(s, "V_END")), has_cert ? mailtls_peer_not_after(s) : NULL, "V_END");
	check_eq(val_of(values, "SSL_PEER_CERT_HASH"), has_cert ? mailtls_peer_fingerprint(s) : NULL, "SSL_PEER_CERT_HASH");
	{
		/* Nothing under the other side's names. */
		const char *other = s->is_server ? "SSL_SERVER_" : "SSL_CLIENT_";
		for (size_t i = 0; i < NKNOWN; i++)
			FUZZ_CHECK(!values[i] || strncmp(known[i], other, strlen(other)) != 0, "%s on this side", known[i]);
	}
	{
		const char *sn = mailtls_servername(s);
		char esc[1024];
		if (sn)
			FUZZ_CHECK(mailtls_escape(esc, sizeof esc, sn, strlen(sn)) >= 0, "escape");
		check_eq(val_of(values, "SSL_TLS_SNI_SERVERNAME"), sn ? esc : NULL, "SSL_TLS_SNI_SERVERNAME");
	}
	{
		char want[64];
		if (!has_cert)
			strcpy(want, "NONE");
		else if (s->verified)
			strcpy(want, "SUCCESS");
		else if (s->verify_result != MAILTLS_E_NONE)
			snprintf(want, sizeof want, "FAILED:%s", mailtls_errcode_name(mailtls_peer_verify_result(s)));
		else
			strcpy(want, "NONE");
		check_eq(val_of(values, pn(s, "VERIFY")), want, "VERIFY");
	}

	/* The control protocol. */
	FUZZ_CHECK(mailtls_ucspitls_open(&u) == 0, "ucspitls_open: %s", strerror(errno));
	{
		char *eb = malloc(envlen ? envlen : 1), want[128];
		int n = snprintf(want, sizeof want, "SSLCTLFD=%d%cSSLREADFD=%d%cSSLWRITEFD=%d%c", u.ctl[0], 0, u.rd[0], 0,
		    u.wr[1], 0);
		ssize_t r = mailtls_ucspitls_env(&u, eb, envlen);
		FUZZ_CHECK(envlen < (unsigned)n ? r == -1 : r == n && memcmp(eb, want, (size_t)n) == 0,
		    "ucspitls_env gave %zd into %u bytes, needs %d", r, envlen, n);
		free(eb);
	}
	if (req) {
		unsigned char c = (unsigned char)req;
		FUZZ_CHECK(write(u.ctl[0], &c, 1) == 1, "write");
	}
	if (req != 'Y') {
		close(u.ctl[0]);
		u.ctl[0] = -1;
	}
	w = mailtls_ucspitls_wait(s, &u, 1);
	if (!req)
		FUZZ_CHECK(w == 0, "no request: %d: %s", w, mailtls_error(s));
	else if (req == 'y' || req == 'Y')
		FUZZ_CHECK(w == (int)req, "request '%c': %d: %s", req, w, mailtls_error(s));
	else
		FUZZ_CHECK(w == -1 && mailtls_errcode(s) == MAILTLS_E_PROTOCOL, "request 0x%02x: %d", req, w);
	if (w == 'Y') {
		static char got[1 << 16];
		size_t n = 0;
		FUZZ_CHECK(mailtls_ucspitls_reply(s, &u, 1) == 0, "ucspitls_reply: %s", mailtls_error(s));
		fcntl(u.ctl[0], F_SETFL, O_NONBLOCK);
		for (;;) {
			ssize_t r = read(u.ctl[0], got + n, sizeof got - n);
			if (r <= 0)
				break;
			n += (size_t)r;
		}
		FUZZ_CHECK(n == (size_t)blen && memcmp(got, block, n) == 0, "control socket got %zu bytes, block %zd", n, blen);
	}
	mailtls_ucspitls_close_program(&u);
	mailtls_ucspitls_close_ours(&u);

	free(block);
	X509_free(x);
	fake_ssl = NULL;
	mailtls_free(s);
	sk_CRYPTO_BUFFER_pop_free(fake_chain, CRYPTO_BUFFER_free);
	fake_chain = NULL;
	return 0;
}
