/*
 * mailtls.h -- the whole public contract of libmailtls.
 *
 * libmailtls puts TLS on file descriptors for ucspi-style mail programs
 * (tcpserver, qmail-smtpd, qmail-popup, qmail-remote).  Every function's
 * behaviour is written here, once; the sources say "see mailtls.h".
 *
 * Conventions that hold for every function below unless its entry says
 * otherwise:
 *
 *  - Return values: >= 0 success; MAILTLS_WANT_READ (-2) or
 *    MAILTLS_WANT_WRITE (-3) when a non-blocking descriptor would block
 *    (call again with the same arguments once poll(2) says the descriptor
 *    is ready); -1 error.  Functions returning a pointer return NULL on
 *    error.
 *  - Errors stay on the object the call was made on: mailtls_error() and
 *    mailtls_errcode() for a session, mailtls_config_error() and
 *    mailtls_config_errcode() for a configuration.  A new call clears the
 *    previous error.  For MAILTLS_E_SYSTEM errors errno is left as the
 *    failing system call set it.
 *  - Every error category says whether a mail program should retry later
 *    (mailtls_error_temporary()).
 *  - The library never prints, exits, sleeps, installs signal handlers,
 *    reads the environment (except in mailtls_config_from_env()) or closes
 *    a descriptor it was given (except in mailtls_relay() with
 *    MAILTLS_RELAY_OWN_FDS).  It never changes the flags (O_NONBLOCK...) of
 *    a descriptor it was given.
 *  - Writes to sockets use MSG_NOSIGNAL, so a vanished peer cannot raise
 *    SIGPIPE there.  Writes to pipes can: a program that hands pipes to the
 *    library should ignore SIGPIPE (signal(SIGPIPE, SIG_IGN)).
 *  - Strings returned by the library are owned by the object they came
 *    from and stay valid until the next call on that object, unless said
 *    otherwise.
 *  - Objects are not thread-safe: use one session from one thread at a
 *    time.  A configuration may be shared by sessions in several threads
 *    once it is no longer modified.
 *
 * Copyright (c) 2026 the libmailtls authors.  ISC license: see LICENSE.
 */
#ifndef MAILTLS_H
#define MAILTLS_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MAILTLS_EXPORT __attribute__((visibility("default")))
#define MAILTLS_WUR __attribute__((warn_unused_result))
#else
#define MAILTLS_EXPORT
#define MAILTLS_WUR
#endif

/* The release this header belongs to. */
#define MAILTLS_VERSION_MAJOR 0
#define MAILTLS_VERSION_MINOR 1
#define MAILTLS_VERSION_PATCH 0
#define MAILTLS_VERSION_STRING "0.1.0"

/* mailtls_version returns MAILTLS_VERSION_STRING of the library actually
 * loaded, which may differ from the header a program was built with. */
MAILTLS_EXPORT const char *mailtls_version(void);

/* ------------------------------------------------------------------ */
/* Return codes and errors                                             */
/* ------------------------------------------------------------------ */

#define MAILTLS_WANT_READ (-2)
#define MAILTLS_WANT_WRITE (-3)

/* Error categories, as returned by mailtls_errcode() and
 * mailtls_config_errcode().  Values are stable. */
enum mailtls_errcode {
	MAILTLS_E_NONE = 0,
	MAILTLS_E_SYSTEM = 1,      /* a system call failed; errno says which */
	MAILTLS_E_TLS = 2,         /* TLS protocol failure, alert, no shared cipher or version */
	MAILTLS_E_VERIFY = 3,      /* verification failed for another reason than those below */
	MAILTLS_E_VERIFY_UNTRUSTED = 4, /* chain does not lead to a trust anchor (unknown CA) */
	MAILTLS_E_VERIFY_NAME = 5, /* certificate does not name the host */
	MAILTLS_E_VERIFY_EXPIRED = 6, /* a certificate is expired or not yet valid */
	MAILTLS_E_VERIFY_SELFSIGNED = 7, /* self-signed certificate that is not a trust anchor */
	MAILTLS_E_VERIFY_PIN = 8,  /* no pinned digest matched */
	MAILTLS_E_VERIFY_HOOK = 9, /* the verification hook rejected the peer */
	MAILTLS_E_VERIFY_NOCERT = 10, /* the peer sent no certificate where one is required */
	MAILTLS_E_TRUNCATED = 11,  /* the peer ended the stream without close_notify */
	MAILTLS_E_PROTOCOL = 12,   /* the mail protocol around TLS went wrong (bad reply, ...) */
	MAILTLS_E_INJECTION = 13,  /* plaintext arrived where only TLS may follow (CVE-2011-0411 class) */
	MAILTLS_E_TIMEOUT = 14,    /* a deadline passed */
	MAILTLS_E_USAGE = 15,      /* the caller broke a precondition written in this header */
	MAILTLS_E_CONFIG = 16,     /* a certificate, key or CA file is missing, unreadable or wrong */
	MAILTLS_E_NOMEM = 17,      /* out of memory */
	MAILTLS_E_VERIFY_DANE = 18 /* DANE: no TLSA record matched, or none was usable */
};

/* mailtls_error_temporary says whether a failure of category |code|
 * should be retried later (1: qmail's "Z"/exit 111 class) or will fail the
 * same way again (0: "D"/exit 100 class).  Only MAILTLS_E_USAGE is
 * permanent: every other failure, including a bad certificate of a peer,
 * may be mended by someone (an admin renewing a certificate, a network
 * coming back), and a mail program must not lose mail over it. */
MAILTLS_EXPORT int mailtls_error_temporary(int code);

/* mailtls_errcode_name returns a short stable name for |code| ("system",
 * "tls", "verify-name", ...), never NULL. */
MAILTLS_EXPORT const char *mailtls_errcode_name(int code);

/* mailtls_errcode_is_verify returns 1 for the MAILTLS_E_VERIFY* family
 * (MAILTLS_E_VERIFY_DANE included). */
MAILTLS_EXPORT int mailtls_errcode_is_verify(int code);

/* ------------------------------------------------------------------ */
/* Configuration                                                        */
/* ------------------------------------------------------------------ */

struct mailtls_config;
struct mailtls;

/* Verification modes (mailtls_config_set_verify). */
#define MAILTLS_VERIFY_NONE 0     /* client: do not verify; server: do not ask for a certificate */
#define MAILTLS_VERIFY_OPTIONAL 1 /* verify and report (mailtls_peer_verified), never fail for it;
                                     server: ask for a certificate, accept none */
#define MAILTLS_VERIFY_REQUIRE 2  /* fail the handshake unless verified; server: a certificate is required */

/* Protocol versions (mailtls_config_set_min_protocol). */
#define MAILTLS_TLS1_0 0x0301
#define MAILTLS_TLS1_1 0x0302
#define MAILTLS_TLS1_2 0x0303
#define MAILTLS_TLS1_3 0x0304

/* mailtls_config_new returns a configuration with the safe defaults:
 * TLS 1.2 minimum, AEAD suites only with forward secrecy, the server's
 * TLS 1.2 cipher order preferred, renegotiation refused, session tickets
 * on with keys made here (so every process forked after this call can
 * resume any other's sessions), client verification MAILTLS_VERIFY_REQUIRE
 * against no trust anchors until mailtls_config_set_ca() (so a client
 * that was not told what to trust fails closed), server verification
 * MAILTLS_VERIFY_NONE.  The reference count starts at one.  NULL with
 * errno ENOMEM on failure. */
MAILTLS_EXPORT struct mailtls_config *mailtls_config_new(void);

/* mailtls_config_ref adds a reference; mailtls_config_free drops one and
 * frees the configuration with the last.  Each session holds a reference
 * to its configuration, so a caller may free its own reference as soon as
 * its sessions are made.  Freed key memory is cleansed.  NULL is ignored. */
MAILTLS_EXPORT void mailtls_config_ref(struct mailtls_config *cfg);
MAILTLS_EXPORT void mailtls_config_free(struct mailtls_config *cfg);

/* mailtls_config_error returns the message of the last failed call on
 * |cfg| ("" when none); mailtls_config_errcode its category. */
MAILTLS_EXPORT const char *mailtls_config_error(struct mailtls_config *cfg);
MAILTLS_EXPORT int mailtls_config_errcode(struct mailtls_config *cfg);

/* mailtls_config_set_keypair_file loads the default certificate and key.
 * |certfile| is a PEM file with the server (or client) certificate first
 * and then any intermediates (and, harmlessly, the root); the whole chain
 * is sent.  |keyfile| NULL means the private key is in |certfile| too, in
 * any position: the combined PEM qmail sites keep (key, certificate,
 * intermediate, root).  The key must match the certificate.  Replaces an
 * earlier default keypair of the same key type.  Returns 0, or -1 with
 * MAILTLS_E_CONFIG (bad, missing or mismatched files; the message names
 * the file) or MAILTLS_E_SYSTEM. */
MAILTLS_EXPORT int mailtls_config_set_keypair_file(struct mailtls_config *cfg,
    const char *certfile, const char *keyfile) MAILTLS_WUR;

/* mailtls_config_set_keypair_mem is mailtls_config_set_keypair_file with
 * the PEM text in memory (|key| NULL: the key is in |cert|).  The library
 * copies what it needs; the caller may cleanse its buffers afterwards. */
MAILTLS_EXPORT int mailtls_config_set_keypair_mem(struct mailtls_config *cfg,
    const char *cert, size_t certlen, const char *key, size_t keylen) MAILTLS_WUR;

/* mailtls_config_add_keypair_file adds a keypair of another key type
 * beside the default one (e.g. RSA beside ECDSA).  A server picks, per
 * handshake, the ECDSA keypair when the client accepts ECDSA signatures
 * for its curve, and the RSA keypair otherwise.  One keypair per key type:
 * adding a second of the same type replaces the first. */
MAILTLS_EXPORT int mailtls_config_add_keypair_file(struct mailtls_config *cfg,
    const char *certfile, const char *keyfile) MAILTLS_WUR;

/* mailtls_config_add_sni_keypair_file adds a keypair served when the
 * client's SNI name matches |name|: an exact host name (case-insensitive),
 * or "*.label..." matching exactly one more leftmost label.  Exact names
 * win over wildcards; a client without SNI, or with a name that matches
 * nothing, gets the default keypair (or fails, see
 * mailtls_config_set_sni_strict).  Several key types may be added for one
 * name. */
MAILTLS_EXPORT int mailtls_config_add_sni_keypair_file(struct mailtls_config *cfg,
    const char *name, const char *certfile, const char *keyfile) MAILTLS_WUR;

/* mailtls_config_add_sni_keypair_mem is the same with PEM text in memory
 * (|key| NULL: the key is in |cert|); the library copies what it needs. */
MAILTLS_EXPORT int mailtls_config_add_sni_keypair_mem(struct mailtls_config *cfg, const char *name,
    const char *cert, size_t certlen, const char *key, size_t keylen) MAILTLS_WUR;

/* mailtls_config_set_sni_strict(cfg, 1) makes a server refuse (alert
 * unrecognized_name) a handshake whose SNI matches no SNI keypair, and one
 * without SNI when there is no default keypair.  Default 0. */
MAILTLS_EXPORT void mailtls_config_set_sni_strict(struct mailtls_config *cfg, int strict);

/* mailtls_config_set_ca sets the trust anchors: a PEM file of
 * certificates, a hashed directory (c_rehash/openssl rehash layout), or
 * both; either may be NULL.  Returns -1 with MAILTLS_E_CONFIG when a file
 * cannot be read or holds no certificate.  The file is read whole now
 * (nothing reads it again) and its first certificate parsed; the others
 * are parsed when a session of |cfg| first checks a chain against the
 * trust anchors, so a process that never does (a client whose resumed
 * session keeps its verdict, see mailtls_set_session) never pays for
 * parsing a system bundle.  As when parsed at once, other PEM blocks are
 * skipped and a damaged certificate ends the file's list.  A process that
 * forks per connection (the children would each parse it) gives its
 * anchors with mailtls_config_set_ca_mem or mailtls_config_from_env,
 * which parse them at once. */
MAILTLS_EXPORT int mailtls_config_set_ca(struct mailtls_config *cfg,
    const char *cafile, const char *cadir) MAILTLS_WUR;

/* mailtls_config_set_ca_mem adds trust anchors from PEM text, parsed at
 * once; -1 with MAILTLS_E_CONFIG when it holds no certificate. */
MAILTLS_EXPORT int mailtls_config_set_ca_mem(struct mailtls_config *cfg,
    const char *pem, size_t len) MAILTLS_WUR;

/* mailtls_config_set_verify sets the verification mode for sessions made
 * afterwards; see MAILTLS_VERIFY_*.  A client verifies the chain to the
 * trust anchors, the validity dates, and the names (see
 * mailtls_set_verify_names): SAN dNSName entries with "*." wildcards in the
 * leftmost label only, the subject CN only when there is no dNSName.
 * Returns -1 with MAILTLS_E_USAGE for an unknown mode. */
MAILTLS_EXPORT int mailtls_config_set_verify(struct mailtls_config *cfg, int mode) MAILTLS_WUR;

/* mailtls_config_add_pin adds a pinned digest, "SHA256:<64 hex digits>"
 * for a whole certificate (the form mailtls_peer_fingerprint returns) or
 * "SPKI-SHA256:<64 hex>" for its public key; colons between hex pairs and
 * either case are accepted.  When pins exist, a client accepts a peer
 * whose leaf certificate matches any pin, without chain, date or name
 * checks (Postfix's "fingerprint" level), and refuses every other peer
 * with MAILTLS_E_VERIFY_PIN, whatever the verification mode. */
MAILTLS_EXPORT int mailtls_config_add_pin(struct mailtls_config *cfg, const char *pin) MAILTLS_WUR;

/* The verification hook.  Called during the handshake, after the
 * library's own verification, with the peer's chain as DER certificates
 * (leaf first) and |result|: MAILTLS_E_NONE when the library's checks
 * passed, or the MAILTLS_E_VERIFY* category they failed with.  Return 0 to
 * accept the peer (the handshake goes on and the peer counts as verified),
 * or -1 to refuse it (MAILTLS_E_VERIFY_HOOK unless the hook gave a message
 * with mailtls_set_verify_error).  The hook overrides |result| both ways,
 * which lets DANE accept a DANE-EE certificate that no CA signed.  It runs
 * in whatever mode is set, except MAILTLS_VERIFY_NONE on a client. */
typedef int (*mailtls_verify_cb)(void *arg, struct mailtls *s,
    const unsigned char *const *der, const size_t *derlen, size_t n, int result);

MAILTLS_EXPORT void mailtls_config_set_verify_cb(struct mailtls_config *cfg,
    mailtls_verify_cb cb, void *arg);

/* mailtls_set_verify_error, called from a verification hook, sets the
 * message (copied) reported when the hook returns -1. */
MAILTLS_EXPORT void mailtls_set_verify_error(struct mailtls *s, const char *msg);

/* mailtls_config_set_ciphers sets the TLS 1.2-and-below cipher list in
 * OpenSSL/BoringSSL syntax (e.g. "ECDHE+AESGCM:ECDHE+CHACHA20"), in the
 * server's order of preference.  TLS 1.3 suites and their order are fixed
 * by the TLS engine.  "secure" is the default list; "compat" adds CBC
 * suites for opportunistic MTA-to-MTA use.  Returns -1 with
 * MAILTLS_E_CONFIG when the list names no usable cipher or an unknown one. */
MAILTLS_EXPORT int mailtls_config_set_ciphers(struct mailtls_config *cfg, const char *list) MAILTLS_WUR;

/* mailtls_config_set_min_protocol sets the lowest version accepted
 * (MAILTLS_TLS1_0 ... MAILTLS_TLS1_3; default MAILTLS_TLS1_2).  Lowering
 * it below TLS 1.2 while the cipher list is still the default also turns
 * on the "compat" list, because TLS 1.0/1.1 have no AEAD suites.  Meant for
 * opportunistic MTA-to-MTA TLS, whose alternative is plaintext. */
MAILTLS_EXPORT int mailtls_config_set_min_protocol(struct mailtls_config *cfg, int version) MAILTLS_WUR;

/* mailtls_config_set_max_protocol sets the highest version (default TLS 1.3). */
MAILTLS_EXPORT int mailtls_config_set_max_protocol(struct mailtls_config *cfg, int version) MAILTLS_WUR;

/* mailtls_config_from_env reads, from the environment, the names sslserver
 * and s6-tlsd use and applies them to |cfg|: CERTFILE and KEYFILE (the
 * default keypair; without KEYFILE the key is looked for in CERTFILE),
 * CERTCHAINFILE (certificate and chain, used as CERTFILE when CERTFILE is
 * unset), CAFILE and CADIR (trust anchors, CAFILE parsed at once: this
 * call serves servers that fork after it), CIPHERS, and for SNI each
 * "CERTFILE:name" with its "KEYFILE:name" (name may be "*.label...").
 * Unset names leave the configuration as it was.  Returns the number of
 * keypairs loaded (>= 0), or -1 naming the variable and file that failed. */
MAILTLS_EXPORT int mailtls_config_from_env(struct mailtls_config *cfg) MAILTLS_WUR;

/* mailtls_config_set_ticket_keys sets the 48 bytes of session ticket key
 * material (name, HMAC and AES keys) used to issue and accept tickets,
 * e.g. to share them among servers.  mailtls_config_new already made
 * random ones. */
MAILTLS_EXPORT int mailtls_config_set_ticket_keys(struct mailtls_config *cfg,
    const unsigned char *keys, size_t len) MAILTLS_WUR;

/* Ticket keys shared by a fleet of servers.  A key is an 80-byte record:
 * a 16-byte name (sent in every ticket, to find the key again), a 32-byte
 * HMAC-SHA256 key and a 32-byte AES-256-CBC key; random bytes make one
 * ("head -c 80 /dev/urandom", "openssl rand 80").  A key set is 1 to
 * MAILTLS_TICKET_KEYS_MAX such records one after the other, nothing else:
 * the first key issues every new ticket; every key listed decrypts the
 * tickets it issued, and a ticket decrypted with a key other than the
 * first is replaced by one under the first.  A ticket whose key is not
 * listed (or was never) gets a full handshake.  Rotation: put a new key
 * first and keep the old one second while its tickets should still resume
 * (the tickets' lifetime); then drop it.  Servers that share the set
 * resume one another's sessions.
 * mailtls_config_set_ticket_keys_mem sets the set from |len| bytes
 * (copied), replacing any earlier keys, mailtls_config_set_ticket_keys'
 * included (and that call replaces a set again).  -1 with
 * MAILTLS_E_CONFIG when |len| is 0, not a multiple of 80 or over the
 * maximum, or two records share a name. */
#define MAILTLS_TICKET_KEY_LEN 80
#define MAILTLS_TICKET_KEYS_MAX 16
MAILTLS_EXPORT int mailtls_config_set_ticket_keys_mem(struct mailtls_config *cfg,
    const unsigned char *keys, size_t len) MAILTLS_WUR;

/* mailtls_config_set_ticket_keys_file reads the set from |path|: a
 * regular file that neither its group nor others may read, write or run
 * (mode 0600 or 0400), else -1 with MAILTLS_E_CONFIG naming the file;
 * then as mailtls_config_set_ticket_keys_mem.  Memory that held the keys
 * is cleansed. */
MAILTLS_EXPORT int mailtls_config_set_ticket_keys_file(struct mailtls_config *cfg,
    const char *path) MAILTLS_WUR;

/* ------------------------------------------------------------------ */
/* Sessions                                                             */
/* ------------------------------------------------------------------ */

/* mailtls_server and mailtls_client make a session over a read and a
 * write descriptor (equal for a socket; 0 and 1 under tcpserver; 6 and 7
 * under tcpclient).  The session takes a reference on |cfg|; it never
 * closes the descriptors and never changes their flags: a blocking
 * descriptor makes blocking calls, an O_NONBLOCK one makes calls that
 * return MAILTLS_WANT_READ / MAILTLS_WANT_WRITE.
 * |servername| (client) is sent as SNI and is the name verified, unless
 * mailtls_set_verify_names says otherwise; NULL or an IP address literal
 * sends no SNI (an address literal is still verified against IP SANs); a
 * client that verifies and has neither a servername nor verify names fails
 * verification with MAILTLS_E_VERIFY_NAME.
 * Returns NULL on failure with errno set (ENOMEM, or EINVAL when |cfg|
 * is NULL or a descriptor is negative). */
MAILTLS_EXPORT struct mailtls *mailtls_server(struct mailtls_config *cfg, int rfd, int wfd);
MAILTLS_EXPORT struct mailtls *mailtls_client(struct mailtls_config *cfg, int rfd, int wfd,
    const char *servername);

/* The memory transport: a session with no descriptor.  Bytes from the
 * peer go in with mailtls_mem_feed (always accepts all |len| bytes,
 * returns |len|); bytes for the peer come out with mailtls_mem_drain
 * (returns how many were copied, 0 when none are waiting).  Calls that
 * need peer bytes that have not been fed return MAILTLS_WANT_READ.  For
 * fuzzers and harnesses; deadline calls and the relay refuse such a
 * session with MAILTLS_E_USAGE. */
MAILTLS_EXPORT struct mailtls *mailtls_server_mem(struct mailtls_config *cfg);
MAILTLS_EXPORT struct mailtls *mailtls_client_mem(struct mailtls_config *cfg, const char *servername);
MAILTLS_EXPORT ssize_t mailtls_mem_feed(struct mailtls *s, const void *buf, size_t len);
MAILTLS_EXPORT ssize_t mailtls_mem_drain(struct mailtls *s, void *buf, size_t len);
/* mailtls_mem_feed_eof marks the end of the peer's bytes. */
MAILTLS_EXPORT void mailtls_mem_feed_eof(struct mailtls *s);

/* mailtls_free frees a session (not its descriptors) and drops its
 * reference on the configuration.  It sends nothing: call mailtls_close
 * first for a clean end.  NULL is ignored. */
MAILTLS_EXPORT void mailtls_free(struct mailtls *s);

/* mailtls_release_config, after the handshake, drops the session's
 * reference to its configuration.  When that was the last reference (the
 * caller freed its own), the configuration's certificates and private keys
 * are freed and their memory cleansed: a long-lived relay process then holds
 * no private key.  Reading, writing, closing, the relay and the facts keep
 * working; mailtls_set_session and anything that needs the configuration
 * fail with MAILTLS_E_USAGE.  Returns -1 (MAILTLS_E_USAGE) before the
 * handshake is done. */
MAILTLS_EXPORT int mailtls_release_config(struct mailtls *s) MAILTLS_WUR;

/* mailtls_error returns the message of the session's last error ("" when
 * none); mailtls_errcode its category (enum mailtls_errcode). */
MAILTLS_EXPORT const char *mailtls_error(struct mailtls *s);
MAILTLS_EXPORT int mailtls_errcode(struct mailtls *s);

/* mailtls_set_verify_names (client, before the handshake) replaces the
 * names the peer certificate is checked against with |n| names (copied);
 * the peer passes if it matches any one.  SNI stays the servername given
 * to mailtls_client.  An MTA sends the MX host as SNI and may check the
 * destination domain as well (Postfix's "secure").  |n| 0 restores the
 * default (the servername). */
MAILTLS_EXPORT int mailtls_set_verify_names(struct mailtls *s, const char *const *names, size_t n) MAILTLS_WUR;

/* mailtls_set_session (client, before the handshake) offers a session
 * saved by mailtls_get_session for resumption.  A saved session that
 * cannot be parsed is ignored (returns -1 with MAILTLS_E_TLS, the session
 * stays usable for a full handshake).  The peer of a resumed session is
 * verified again, against this session's configuration and names, exactly
 * as after a full handshake, unless the saved bytes carry the verdict of a
 * verification made under the same trust settings as this session's, which
 * then stands as it was (mailtls_peer_verified, mailtls_peer_verify_result,
 * mailtls_peer_has_cert), without a chain check or parsing the trust
 * anchors.  The same trust settings: the same verification mode, the same
 * trust anchors given in the same order (CA files and texts compared by
 * content; a CA directory never counts as the same), the same pins, the
 * same servername and verify names, no DANE records (mailtls_set_dane: the
 * records are checked again) and no verification hook (it is called
 * again).  A verdict of success stands only until the first notAfter date
 * of the chain it verified (a pin's has none); one of failure only where
 * verification is MAILTLS_VERIFY_OPTIONAL.  Whoever can write the saved
 * bytes can make a client trust any server (as with any TLS session
 * cache): keep them where only the client's user can write. */
MAILTLS_EXPORT int mailtls_set_session(struct mailtls *s, const unsigned char *buf, size_t len);

/* mailtls_get_session (client, after the handshake, best after a read
 * that gave the server the chance to send its TLS 1.3 ticket) writes the
 * resumable session into |buf|.  Returns its length, 0 when there is none
 * to save, or -1 (MAILTLS_E_USAGE) when |len| is too small.  With |buf|
 * NULL returns the length needed.  The bytes are secret (they hold the
 * resumption key): store them as such.  Where the peer was verified
 * (optionally or not) without DANE records, a hook or a CA directory, they
 * also carry the verdict and a digest of the trust settings it was reached
 * under (mailtls_set_session); a session resumed with its verdict kept
 * passes that verdict on. */
MAILTLS_EXPORT ssize_t mailtls_get_session(struct mailtls *s, unsigned char *buf, size_t len);

/* mailtls_handshake runs the handshake to its end.  Calling it is
 * optional: read, write and the relay start it.  After it, the peer's
 * certificate has been verified per the configuration (or, resumed, keeps
 * a verdict reached under the same settings: mailtls_set_session).
 * Returns 0.
 * A server session sheds the configuration's certificates and keys once
 * its handshake is done: no reference to a private key remains in it. */
MAILTLS_EXPORT int mailtls_handshake(struct mailtls *s) MAILTLS_WUR;

/* mailtls_read reads decrypted bytes.  Returns the count (> 0), 0 when the
 * peer ended the stream with close_notify, or -1: a peer that vanished
 * without close_notify gives MAILTLS_E_TRUNCATED.  Like mailtls_write, it
 * runs the handshake first when it is not done; then |len| 0 returns 0
 * without reading. */
MAILTLS_EXPORT ssize_t mailtls_read(struct mailtls *s, void *buf, size_t len) MAILTLS_WUR;

/* mailtls_write encrypts and sends.  Returns |len| once all of it was
 * sent on a blocking descriptor; on a non-blocking one it may return a
 * smaller count (> 0) or a want code, after which the caller calls again
 * again: after a want code, with the same bytes (they may have moved to
 * another address); after a short count, with the bytes not yet sent.
 * It runs the handshake first when it is not done; |len| 0 then returns
 * 0 and sends nothing (a TLS 1.3 server's tickets stay unsent until its
 * first write of data). */
MAILTLS_EXPORT ssize_t mailtls_write(struct mailtls *s, const void *buf, size_t len) MAILTLS_WUR;

/* mailtls_close sends close_notify (once; later calls return 0).  It does
 * not wait for the peer's.  It neither closes nor shuts down descriptors. */
MAILTLS_EXPORT int mailtls_close(struct mailtls *s) MAILTLS_WUR;

/* mailtls_pending returns how many decrypted bytes are waiting inside the
 * library and can be read without touching the descriptor.  A poll loop
 * must read these before it polls the read descriptor again. */
MAILTLS_EXPORT size_t mailtls_pending(struct mailtls *s);

/* mailtls_peer_closed returns 1 once the peer's close_notify has been
 * read, 0 otherwise. */
MAILTLS_EXPORT int mailtls_peer_closed(struct mailtls *s);

/* mailtls_read_fd and mailtls_write_fd return the descriptors given to
 * mailtls_server / mailtls_client (-1 for a memory session). */
MAILTLS_EXPORT int mailtls_read_fd(struct mailtls *s);
MAILTLS_EXPORT int mailtls_write_fd(struct mailtls *s);

/* Deadline calls, in the shape of qmail's timeoutread(t, fd, buf, len).
 * Each waits with poll(2) (never signals or alarms) until the operation is
 * done or |secs| seconds have passed in all, then fails with
 * MAILTLS_E_TIMEOUT.  They work on blocking and non-blocking descriptors
 * alike and never change their flags.  EINTR restarts the wait with the
 * time that is left.  Return values as the calls without a deadline;
 * never a want code.  |secs| <= 0 allows no waiting at all: only what can
 * be done at once is done.  This holds for every |secs| argument below. */
MAILTLS_EXPORT int mailtls_handshake_timeout(struct mailtls *s, int secs) MAILTLS_WUR;
MAILTLS_EXPORT ssize_t mailtls_timeoutread(int secs, struct mailtls *s, void *buf, size_t len) MAILTLS_WUR;
/* mailtls_timeoutwrite returns |len| once all was sent, or -1. */
MAILTLS_EXPORT ssize_t mailtls_timeoutwrite(int secs, struct mailtls *s, const void *buf, size_t len) MAILTLS_WUR;
/* mailtls_close_timeout sends close_notify within |secs|. */
MAILTLS_EXPORT int mailtls_close_timeout(struct mailtls *s, int secs) MAILTLS_WUR;

/* ------------------------------------------------------------------ */
/* The relay                                                            */
/* ------------------------------------------------------------------ */

/* Flags for mailtls_relay. */
#define MAILTLS_RELAY_OWN_FDS 1  /* the relay may close plain_wfd (when the TLS side ends and
                                    it is not a socket) and plain_rfd (at plaintext EOF) */

/* Why the relay ended (struct mailtls_relay_result.reason). */
#define MAILTLS_RELAY_DONE 0      /* both directions finished */
#define MAILTLS_RELAY_IDLE 1      /* nothing moved for idle_secs */
#define MAILTLS_RELAY_ERROR 2     /* see mailtls_error / mailtls_errcode */

struct mailtls_relay_result {
	int reason;                      /* MAILTLS_RELAY_* */
	int tls_eof;                     /* 1: the TLS side ended (close_notify or truncation) */
	int tls_clean;                   /* 1: ... with close_notify */
	int plain_eof;                   /* 1: the plaintext side reached end of file */
	unsigned long long tls_to_plain; /* decrypted bytes written to plain_wfd */
	unsigned long long plain_to_tls; /* bytes read from plain_rfd and sent encrypted */
};

/* mailtls_relay moves bytes both ways between the session and a plaintext
 * pair (plain_rfd, plain_wfd; equal for a socket) until both directions
 * are finished, and returns.  It runs the handshake first if that has not
 * been done.  It fills |out| (which may be NULL) and returns 0 when both
 * directions finished, or -1 (with the error on the session) on error,
 * truncation (MAILTLS_E_TRUNCATED; every byte that arrived was still
 * delivered) or idle timeout (MAILTLS_E_TIMEOUT).
 *
 * Half-close: at plaintext EOF it sends close_notify and shuts the write
 * direction of the TLS write descriptor (shutdown(SHUT_WR) when it is a
 * socket), then keeps delivering what the peer still sends.  When the TLS
 * side ends, it shuts the write direction of plain_wfd: shutdown(SHUT_WR)
 * when it is a socket (so the other direction lives on even when
 * plain_rfd == plain_wfd), close() when it is not a socket and
 * MAILTLS_RELAY_OWN_FDS is given (the one case where the library closes a
 * descriptor), and nothing otherwise; then it keeps reading plain_rfd
 * until EOF.  A plaintext side that no longer reads (a write fails with
 * EPIPE, or poll reports a pipe without reader even before anything is
 * written) counts as finished in that direction: a server's relay ends
 * when its program has exited and the peer sent nothing more.
 *
 * |idle_secs| > 0 ends the relay when no byte moved in either direction
 * for that long; 0 waits forever.  Bytes already decrypted inside the TLS
 * engine are always delivered before the relay waits on a descriptor.
 * Descriptor flags are never changed: the relay works on blocking
 * descriptors shared with other processes.  It never exits or raises
 * signals, and relays only what was fully received: the relay stops
 * reading from one side while the other side cannot take more (so a peer
 * that stops reading stalls only its own direction, without busy
 * looping). */
MAILTLS_EXPORT int mailtls_relay(struct mailtls *s, int plain_rfd, int plain_wfd,
    int flags, int idle_secs, struct mailtls_relay_result *out) MAILTLS_WUR;

/* ------------------------------------------------------------------ */
/* Facts about an established session                                   */
/* ------------------------------------------------------------------ */

/* Each returns NULL (or 0) before the handshake is done or when the fact
 * does not apply.  Strings stay valid until mailtls_free. */
MAILTLS_EXPORT const char *mailtls_protocol(struct mailtls *s);   /* "TLSv1.3" */
MAILTLS_EXPORT const char *mailtls_cipher(struct mailtls *s);     /* "TLS_AES_128_GCM_SHA256" (IANA name) */
MAILTLS_EXPORT int mailtls_cipher_bits(struct mailtls *s);        /* symmetric key bits */
MAILTLS_EXPORT const char *mailtls_servername(struct mailtls *s); /* SNI sent (client) or received (server) */
MAILTLS_EXPORT int mailtls_session_reused(struct mailtls *s);     /* 1 when resumed */
/* mailtls_peer_verified: 1 when the peer's certificate passed
 * verification (chain and names, a pin, or the hook), 0 otherwise. */
MAILTLS_EXPORT int mailtls_peer_verified(struct mailtls *s);
/* mailtls_peer_verify_result: MAILTLS_E_NONE when verified, else the
 * category verification failed with (also in optional mode), or
 * MAILTLS_E_VERIFY_NOCERT. */
MAILTLS_EXPORT int mailtls_peer_verify_result(struct mailtls *s);
MAILTLS_EXPORT int mailtls_peer_has_cert(struct mailtls *s);
/* Subject and issuer in RFC 4514 form, most specific RDN first, with
 * control bytes, backslash, '=' inside values and non-ASCII bytes escaped
 * as \XX: the string never holds a byte below 0x20, 0x7f or above. */
MAILTLS_EXPORT const char *mailtls_peer_subject(struct mailtls *s);
MAILTLS_EXPORT const char *mailtls_peer_issuer(struct mailtls *s);
MAILTLS_EXPORT const char *mailtls_peer_cn(struct mailtls *s);     /* escaped as above */
MAILTLS_EXPORT const char *mailtls_peer_fingerprint(struct mailtls *s); /* "SHA256:<64 lowercase hex>" */
MAILTLS_EXPORT const char *mailtls_peer_serial(struct mailtls *s);  /* hex, uppercase */
MAILTLS_EXPORT const char *mailtls_peer_not_before(struct mailtls *s); /* "Jan  2 03:04:05 2026 GMT" */
MAILTLS_EXPORT const char *mailtls_peer_not_after(struct mailtls *s);

/* mailtls_env writes the connection facts as an environment block,
 * "NAME=value\0NAME=value\0\0" (an empty set is "\0\0"), the UCSPI-TLS
 * wire form.  Names: sslserver's SSL_PROTOCOL, SSL_CIPHER,
 * SSL_SESSION_ID, SSL_CIPHER_USEKEYSIZE, SSL_CIPHER_ALGKEYSIZE,
 * SSL_VERSION_INTERFACE, SSL_VERSION_LIBRARY, and with a peer certificate
 * SSL_CLIENT_S_DN, SSL_CLIENT_S_DN_CN, SSL_CLIENT_I_DN, SSL_CLIENT_V_START,
 * SSL_CLIENT_V_END, SSL_CLIENT_M_SERIAL, SSL_CLIENT_VERIFY ("SUCCESS",
 * "FAILED:<reason>" or "NONE") on a server session, the same names with
 * SSL_SERVER_ instead on a client session (mod_ssl's and sslclient's names
 * for the server's certificate); s6-tlsd's SSL_TLS_SNI_SERVERNAME,
 * SSL_PEER_CERT_HASH, SSL_PEER_CERT_SUBJECT.  Values hold no byte below
 * 0x20 nor above 0x7e (see mailtls_peer_subject), so no certificate can
 * forge, split or truncate a variable.  Returns the block's length
 * including both final NULs, or -1 (MAILTLS_E_USAGE) when |len| is too
 * small; |buf| NULL returns the length needed. */
MAILTLS_EXPORT ssize_t mailtls_env(struct mailtls *s, char *buf, size_t len);

/* mailtls_escape copies |in| (|inlen| bytes) to |out| as a value fit for
 * an environment variable: bytes below 0x20, 0x7f and above, and
 * backslash become \XX (uppercase hex).  Returns the length written
 * without the terminating NUL, always NUL-terminates when |outlen| > 0,
 * and returns -1 when |outlen| is too small (|out| NULL: the size needed
 * including the NUL). */
MAILTLS_EXPORT ssize_t mailtls_escape(char *out, size_t outlen, const void *in, size_t inlen);

/* ------------------------------------------------------------------ */
/* DANE (RFC 6698, RFC 7671; for SMTP RFC 7672)                          */
/* ------------------------------------------------------------------ */

/* TLSA certificate usages.  PKIX-TA(0) and PKIX-EE(1) are unusable for
 * SMTP (RFC 7672 section 3.1.3) and treated as such. */
#define MAILTLS_TLSA_PKIX_TA 0
#define MAILTLS_TLSA_PKIX_EE 1
#define MAILTLS_TLSA_DANE_TA 2
#define MAILTLS_TLSA_DANE_EE 3

/* One TLSA record, as DNS gave it (its data not owned by the struct).
 * selector: 0 the whole certificate, 1 its SubjectPublicKeyInfo; mtype
 * (matching type): 0 the selected bytes in full, 1 their SHA-256, 2 their
 * SHA-512. */
struct mailtls_tlsa {
	int usage;
	int selector;
	int mtype;
	const unsigned char *data;
	size_t len;
};

/* mailtls_tlsa_parse reads a record in presentation form, "3 1 1 <hex>":
 * three decimal fields (0-255) and the data in hex, which blanks may
 * split (as in zone files); blanks around and a final CR LF are allowed.
 * The data goes to |buf| (|buflen| bytes) and out->data points there.
 * It judges syntax only: a record it reads may still be unusable.
 * Returns 0, or -1 with errno EINVAL (not a record) or ENOSPC (|buf| too
 * small).  Pure: no allocation. */
MAILTLS_EXPORT int mailtls_tlsa_parse(const char *text, size_t len, struct mailtls_tlsa *out,
    unsigned char *buf, size_t buflen) MAILTLS_WUR;

/* mailtls_set_dane (client, before the handshake, once) gives the session
 * the |n| >= 1 TLSA records of the server (the caller looked them up at
 * _25._tcp.<MX host> and DNSSEC validated them; the library does no DNS)
 * and the reference names checked under DANE-TA: the MX host name, and
 * the destination domain when the MX lookup was secure (|nnames| 0: the
 * servername; otherwise as mailtls_set_verify_names).  The records are
 * copied.  From then on the session's verification is DANE's, in place of
 * the configuration's trust anchors, pins and verification mode (the
 * verification hook still runs afterwards and still overrides):
 *  - usable records: a usage 2 or 3 record, selector 0 or 1, matching
 *    type 0 (with data), 1 (32 bytes) or 2 (64 bytes); any other record,
 *    malformed ones included, is unusable and ignored.  Among the usable
 *    records of one usage and selector, SHA-256 ones are ignored when a
 *    SHA-512 one exists (digest agility, RFC 7671 section 9);
 *  - DANE-EE(3): the leaf certificate (or its public key) matches; no
 *    chain, name or date is checked;
 *  - DANE-TA(2): a certificate the server sent (or its public key)
 *    matches; the leaf is then verified up to it alone (no other trust
 *    anchor), with dates and names checked.  Only what the server sends
 *    can match: a DANE-TA record of a trust anchor the server leaves out
 *    of its chain (RFC 7671 section 5.2.2 lets a client supply it from
 *    full-certificate records) never matches, which fails closed;
 *  - the peer is verified when any usable record authenticates it
 *    (mailtls_peer_verified 1); otherwise the handshake fails:
 *    MAILTLS_E_VERIFY_DANE ("DANE: TLSA mismatch ...") when no record
 *    matched, or the category of the DANE-TA check that failed
 *    (MAILTLS_E_VERIFY_NAME, MAILTLS_E_VERIFY_EXPIRED, ...), its message
 *    beginning "DANE: ";
 *  - no usable record: TLS is still required, but without authentication
 *    (RFC 7672 section 2.2): the handshake goes on with any certificate,
 *    mailtls_peer_verified 0, mailtls_peer_verify_result
 *    MAILTLS_E_VERIFY_DANE, and mailtls_dane_result MAILTLS_DANE_UNUSABLE.
 * A resumed session is checked against the records again.  SNI stays the
 * servername given to mailtls_client (RFC 7672: the MX host).  Returns the
 * number of usable records (0 included), or -1 with MAILTLS_E_USAGE (a
 * server session, a second call, after the handshake began, |n| 0) or
 * MAILTLS_E_NOMEM. */
MAILTLS_EXPORT int mailtls_set_dane(struct mailtls *s, const struct mailtls_tlsa *recs, size_t n,
    const char *const *names, size_t nnames) MAILTLS_WUR;

/* DANE outcomes (mailtls_dane_result). */
#define MAILTLS_DANE_OFF 0       /* no records were given to the session */
#define MAILTLS_DANE_UNCHECKED 1 /* records given, the server's certificate not seen yet */
#define MAILTLS_DANE_UNUSABLE 2  /* no usable record: TLS without authentication */
#define MAILTLS_DANE_MATCHED 3   /* a record authenticated the server */
#define MAILTLS_DANE_FAILED 4    /* usable records, none authenticated the server */

/* Which record authenticated the server (all -1 unless MATCHED): its
 * index in the records given, its fields, and the chain position of the
 * certificate it matched (0: the leaf). */
struct mailtls_dane_result {
	int status;
	int record;
	int usage, selector, mtype;
	int depth;
};

/* mailtls_dane_result returns the session's MAILTLS_DANE_* status and,
 * when |out| is not NULL, fills it. */
MAILTLS_EXPORT int mailtls_dane_result(struct mailtls *s, struct mailtls_dane_result *out);

/* ------------------------------------------------------------------ */
/* Client STARTTLS                                                      */
/* ------------------------------------------------------------------ */

#define MAILTLS_SMTP 1
#define MAILTLS_POP3 2
#define MAILTLS_IMAP 3

/* Results of mailtls_starttls_client besides -1. */
#define MAILTLS_STARTTLS_DONE 0        /* offered, accepted, handshake done */
#define MAILTLS_STARTTLS_NOT_OFFERED 1 /* the server did not advertise it; nothing else sent */
#define MAILTLS_STARTTLS_REFUSED 2     /* advertised, but the command was refused (see out) */

#define MAILTLS_TEXT_MAX 2048

/* What a client learned in the plaintext phase.  Texts are the reply
 * lines with CR LF turned into "\n", cut at MAILTLS_TEXT_MAX - 1 bytes and
 * NUL-terminated; a NUL inside a reply becomes "?".  Codes: SMTP's
 * three-digit code; for POP3 and IMAP, 200 for "+OK" / "OK", 400 for IMAP
 * "NO", 500 for "-ERR" / "BAD" (and for an IMAP greeting "BYE"), 0 when
 * the step did not happen. */
struct mailtls_starttls_info {
	int greeting_code;
	char greeting[MAILTLS_TEXT_MAX];
	int ehlo_code;            /* SMTP: EHLO reply; POP3: CAPA; IMAP: CAPABILITY */
	int used_helo;            /* SMTP: EHLO refused, HELO used (then STARTTLS is not offered) */
	char ehlo[MAILTLS_TEXT_MAX];
	/* Capabilities, one per line, "\n"-separated: SMTP EHLO keywords with
	 * their parameters (after TLS: replaced by mailtls_smtp_ehlo), POP3
	 * CAPA lines, IMAP capability atoms. */
	char capabilities[MAILTLS_TEXT_MAX];
	int starttls_code;
	char starttls_reply[MAILTLS_TEXT_MAX];
};

/* mailtls_starttls_client speaks the plaintext phase of |proto| on the
 * session's descriptors, then runs the TLS handshake, all within |secs|
 * seconds for each step (greeting, each reply, the handshake).
 *   SMTP: greeting (220), EHLO |ehlo_name| (HELO when EHLO is refused,
 *         reported in used_helo), STARTTLS when advertised, 220.
 *   POP3: greeting (+OK), CAPA, STLS when listed, +OK.
 *   IMAP: greeting (* OK; * PREAUTH and * BYE abort with
 *         MAILTLS_E_PROTOCOL), CAPABILITY (unless the greeting carried
 *         it), "STARTTLS" when listed, tagged OK.
 * It reads exactly to the end of each reply and never past it, so after
 * NOT_OFFERED or REFUSED the caller may go on in plaintext on the same
 * descriptors, and after DONE nothing of the plaintext phase is buffered.
 * A byte that is already waiting after the reply that ends the plaintext
 * phase is an injection attempt: -1 with MAILTLS_E_INJECTION, no handshake.
 * A greeting or reply that is not what the protocol allows: -1 with
 * MAILTLS_E_PROTOCOL (a 4xx/5xx greeting or 421 reply included; |out|
 * holds it).  Lines are bounded (1000 bytes in a line, 100 lines in a
 * reply).  After DONE, an SMTP client must send EHLO again (see
 * mailtls_smtp_ehlo) and forget what it learned before. */
MAILTLS_EXPORT int mailtls_starttls_client(struct mailtls *s, int proto,
    const char *ehlo_name, int secs, struct mailtls_starttls_info *out) MAILTLS_WUR;

/* mailtls_smtp_ehlo sends "EHLO |name|" over the established TLS session,
 * reads the reply within |secs|, and replaces out->ehlo, out->ehlo_code
 * and out->capabilities with what the server said under TLS.  Returns the
 * reply code (e.g. 250; a 4xx/5xx code is returned, not an error), or -1. */
MAILTLS_EXPORT int mailtls_smtp_ehlo(struct mailtls *s, const char *name, int secs,
    struct mailtls_starttls_info *out) MAILTLS_WUR;

/* mailtls_smtp_has_capability returns 1 when |info|'s capability list
 * holds the keyword |kw| (case-insensitive, e.g. "PIPELINING", "AUTH"). */
MAILTLS_EXPORT int mailtls_smtp_has_capability(const struct mailtls_starttls_info *info, const char *kw);

/* ------------------------------------------------------------------ */
/* PROXY protocol (a load balancer's header)                            */
/* ------------------------------------------------------------------ */

/* A TCP load balancer (HAProxy "send-proxy" / "send-proxy-v2") sends, before
 * any byte of the client's, a header naming the client's address and the
 * address the client connected to (HAProxy's proxy-protocol.txt, versions
 * 1 and 2).  Only a server that knows the connection comes from a trusted
 * balancer may read one: from anybody else it is a forged address. */

/* The longest v1 header, "PROXY TCP6 ... \r\n" (107 bytes). */
#define MAILTLS_PROXYPROTO_V1_MAX 107

/* What a header says.  Addresses are text as inet_ntop(3) writes them;
 * after -1, errcode and error say why. */
struct mailtls_proxyproto {
	int version;              /* 1 or 2 */
	int local;                /* 1: the header names no client (v2 LOCAL, such as a health check;
	                             v2 PROXY with the UNSPEC family; v1 UNKNOWN): the
	                             connection's own addresses stand */
	int v6;                   /* 1: the addresses are IPv6, 0: IPv4 */
	char srcip[46];           /* the client */
	unsigned srcport;
	char dstip[46];           /* the address the client connected to (on the balancer) */
	unsigned dstport;
	int errcode;              /* MAILTLS_E_* after -1 */
	char error[160];          /* the message after -1 */
};

/* mailtls_proxyproto_parse looks at the |len| bytes of |buf| as the start
 * of a connection.  Returns the header's length (> 0) when |buf| begins
 * with a whole valid header (bytes after it are not looked at) and fills
 * |out|; 0 when |buf| is a valid beginning of a header, with *need set to
 * the number of further bytes that certainly belong to it (>= 1: reading
 * that many more never reads past the header); -1 when |buf| cannot begin
 * a header: no PROXY signature (a TLS ClientHello, a client's command),
 * or a malformed one (out->errcode MAILTLS_E_PROTOCOL, out->error says
 * what).  |len| 0 returns 0.  Version 1: "PROXY TCP4|TCP6 src dst sport
 * dport\r\n" with single spaces, addresses only in their canonical form,
 * ports 0-65535 without leading zeros, at most MAILTLS_PROXYPROTO_V1_MAX
 * bytes, or "PROXY UNKNOWN...\r\n".  Version 2: the 12-byte signature,
 * version 2, the LOCAL or PROXY command, TCP over IPv4 or IPv6 (UNSPEC
 * only as "local"; UDP and UNIX sockets are refused), an address block the
 * length holds; TLVs after the addresses are skipped, not interpreted.
 * Pure: no I/O, no allocation.  -1 with errno EINVAL for NULL arguments. */
MAILTLS_EXPORT int mailtls_proxyproto_parse(const void *buf, size_t len,
    struct mailtls_proxyproto *out, size_t *need) MAILTLS_WUR;

/* mailtls_proxyproto_read reads one header from |fd| within |secs|
 * seconds (poll(2); the descriptor's flags are not changed) and never a
 * byte past it, so what follows (the ClientHello, the client's first
 * command) is still unread.  Returns the header's length with |out|
 * filled, or -1 with out->errcode: MAILTLS_E_PROTOCOL (no header, a
 * malformed one, or the connection ended before its end),
 * MAILTLS_E_TIMEOUT, MAILTLS_E_SYSTEM (errno kept), MAILTLS_E_NOMEM,
 * MAILTLS_E_USAGE (|fd| < 0; errno EINVAL, and -1 without touching a NULL
 * |out|).  Bytes of a failed header have been consumed: drop the
 * connection. */
MAILTLS_EXPORT ssize_t mailtls_proxyproto_read(int fd, int secs, struct mailtls_proxyproto *out) MAILTLS_WUR;

/* ------------------------------------------------------------------ */
/* UCSPI-TLS (delayed TLS, for programs that do their own STARTTLS)     */
/* ------------------------------------------------------------------ */

/* The descriptors of one UCSPI-TLS connection (ucspi-tls(2), as sslserver
 * -n and s6-ucspitlsd use it).  The program gets ctl[0] as SSLCTLFD,
 * rd[0] as SSLREADFD (it reads decrypted data there) and wr[1] as
 * SSLWRITEFD (it writes cleartext there); the side holding TLS keeps
 * ctl[1], rd[1] and wr[0].  The program's plaintext phase runs on the
 * network descriptors themselves (fds 0/1 under a server, 6/7 under a
 * client). */
struct mailtls_ucspitls {
	int ctl[2];
	int rd[2];
	int wr[2];
};

/* mailtls_ucspitls_open makes the socketpair and the two pipes.  The
 * program's ends are not close-on-exec (the program inherits them); ours
 * are.  They take the lowest free descriptors, which may be 6 or 7: a
 * client that puts the connection on fds 6/7 moves them first.  Returns 0,
 * or -1 with errno (all closed again). */
MAILTLS_EXPORT int mailtls_ucspitls_open(struct mailtls_ucspitls *u);

/* mailtls_ucspitls_close_program closes the program's ends (call it in the
 * TLS side once the program started); mailtls_ucspitls_close_ours closes
 * ours (in the program, before it runs).  Closed entries become -1. */
MAILTLS_EXPORT void mailtls_ucspitls_close_program(struct mailtls_ucspitls *u);
MAILTLS_EXPORT void mailtls_ucspitls_close_ours(struct mailtls_ucspitls *u);

/* mailtls_ucspitls_env writes "SSLCTLFD=n\0SSLREADFD=n\0SSLWRITEFD=n\0"
 * for the program's ends into |buf|; returns the length or -1 (|len| too
 * small).  The caller puts it into the program's environment. */
MAILTLS_EXPORT ssize_t mailtls_ucspitls_env(const struct mailtls_ucspitls *u, char *buf, size_t len);

/* mailtls_ucspitls_wait waits for the program's request on ctl[1]: returns
 * 'y' (start TLS), 'Y' (start TLS and send the facts afterwards), or 0
 * when the program closed its end (or exited) without asking: the
 * connection then stays plaintext, which is not an error.  Any other byte
 * is -1 with MAILTLS_E_PROTOCOL; |secs| > 0 bounds the wait
 * (MAILTLS_E_TIMEOUT); here, unlike the deadline calls, 0 waits as long
 * as the program runs, since a program may stay in plaintext.  The error
 * goes on |s|, the session that will run the handshake. */
MAILTLS_EXPORT int mailtls_ucspitls_wait(struct mailtls *s, const struct mailtls_ucspitls *u, int secs) MAILTLS_WUR;

/* mailtls_ucspitls_reply, after the handshake of a 'Y' request, sends the
 * facts (mailtls_env's block, "NAME=value\0...\0\0") on ctl[1]. */
MAILTLS_EXPORT int mailtls_ucspitls_reply(struct mailtls *s, const struct mailtls_ucspitls *u, int secs) MAILTLS_WUR;

/* ------------------------------------------------------------------ */
/* Server STARTTLS proxy                                                */
/* ------------------------------------------------------------------ */

/* The protocol proxy puts STARTTLS in front of a program that knows
 * nothing of TLS (qmail-smtpd, qmail-popup, an IMAP server): it sits
 * between the client and the program, reads the client's commands and the
 * program's replies line by line, advertises STARTTLS (SMTP EHLO, POP3
 * CAPA "STLS", IMAP CAPABILITY), answers the STARTTLS command itself and
 * runs the handshake, then keeps relaying with the same parsing.
 *
 * The state machine (mailtls_proxy_*_line) does no I/O: it takes one
 * line (or one chunk of a line) and says what to send where.  The driver
 * mailtls_proxy_run does the I/O on descriptors. */

struct mailtls_proxy;

/* Flags for mailtls_proxy_new. */
#define MAILTLS_PROXY_REQUIRE_TLS 1 /* before TLS refuse SMTP MAIL/AUTH (530 5.7.0), POP3
                                       USER/PASS/APOP/AUTH (-ERR), IMAP LOGIN/AUTHENTICATE (NO);
                                       IMAP CAPABILITY gets LOGINDISABLED */
#define MAILTLS_PROXY_HIDE_AUTH 2   /* before TLS drop SMTP "AUTH", POP3 "SASL" and IMAP "AUTH=..."
                                       from the capability lists */

/* The longest chunk the state machine takes: a driver hands longer lines
 * over in chunks of at most this many bytes. */
#define MAILTLS_PROXY_CHUNK 4096

/* mailtls_proxy_new returns a proxy state for |proto| (MAILTLS_SMTP,
 * MAILTLS_POP3, MAILTLS_IMAP) with |flags| (MAILTLS_PROXY_*), or NULL
 * with errno EINVAL (unknown protocol or flag) or ENOMEM.  The state
 * begins before the program's greeting, before TLS. */
MAILTLS_EXPORT struct mailtls_proxy *mailtls_proxy_new(int proto, int flags);
MAILTLS_EXPORT void mailtls_proxy_free(struct mailtls_proxy *p);

/* What a line asks for (the return values of mailtls_proxy_client_line;
 * mailtls_proxy_server_line returns only CONTINUE). */
#define MAILTLS_PROXY_CONTINUE 0 /* send |out|'s bytes and go on */
#define MAILTLS_PROXY_WAIT 1     /* nothing sent: the proxy must answer this line itself but
                                    replies of the program are still due before it; keep the
                                    line, read nothing more from the client, and hand the same
                                    line in again after the next program line */
#define MAILTLS_PROXY_STARTTLS 2 /* send out->client (the go-ahead), then the TLS handshake,
                                    then mailtls_proxy_tls_started */
#define MAILTLS_PROXY_CLOSE 3    /* send out->client (one error reply), then close the
                                    connection (a plaintext command pipelined after STARTTLS,
                                    or an overlong command line) */

/* Bytes to send: |client| to the client, |prog| to the program.  Owned by
 * the proxy state, valid until the next call on it. */
struct mailtls_proxy_out {
	const char *client;
	size_t client_len;
	const char *prog;
	size_t prog_len;
};

/* mailtls_proxy_client_line takes the next |len| bytes from the client:
 * one line with its LF (CR LF or a bare LF), or, for a longer line, a
 * chunk of at most MAILTLS_PROXY_CHUNK bytes without LF (the rest follows
 * in later calls).  |more| says whether bytes beyond this line were
 * already received (in the kernel or in the caller's buffer): with
 * STARTTLS that is plaintext pipelined into TLS, which gets one error
 * reply and MAILTLS_PROXY_CLOSE.  Message data (SMTP after 354 up to the
 * lone dot, IMAP literals "{n}" / "{n+}", SASL exchanges) is forwarded
 * without being read as commands.  STARTTLS is refused (503 / -ERR / BAD)
 * with parameters (SMTP 501), once TLS is on, after a successful login,
 * inside an SMTP mail transaction and after POP3 USER.  An IMAP command
 * whose tag is not an RFC 3501 tag of at most 63 bytes ("*", "+", 64
 * bytes or more) gets "* BAD" and is dropped with its literal, so every
 * command forwarded can be matched to its completion.  Returns a
 * MAILTLS_PROXY_* action, or -1 (errno EINVAL) for a bad argument. */
MAILTLS_EXPORT int mailtls_proxy_client_line(struct mailtls_proxy *p, const char *line, size_t len,
    int more, struct mailtls_proxy_out *out) MAILTLS_WUR;

/* mailtls_proxy_server_line takes the next line (or chunk, as above) of
 * the program's output and returns in out->client what the client gets:
 * the line itself, or the capability replies rewritten (STARTTLS added
 * before TLS and removed after it; CHUNKING removed from SMTP EHLO, since
 * BDAT data is not tracked; see the flags), the reply to the proxy's own
 * RSET swallowed, a POP3 CAPA refused with -ERR (qmail-popup) answered
 * with the proxy's own list.  Returns MAILTLS_PROXY_CONTINUE, or -1. */
MAILTLS_EXPORT int mailtls_proxy_server_line(struct mailtls_proxy *p, const char *line, size_t len,
    struct mailtls_proxy_out *out) MAILTLS_WUR;

/* mailtls_proxy_tls_started records that the handshake is done.  For
 * SMTP out->prog is "RSET\r\n" (its reply is swallowed) and the client must
 * send EHLO (or HELO) again before MAIL, RCPT, DATA or AUTH (503 5.5.1).
 * Returns 0, or -1 (errno EINVAL) when no STARTTLS was accepted. */
MAILTLS_EXPORT int mailtls_proxy_tls_started(struct mailtls_proxy *p, struct mailtls_proxy_out *out) MAILTLS_WUR;

/* The descriptors and deadlines of mailtls_proxy_run. */
struct mailtls_proxy_io {
	int prog_rfd;          /* the program's output (its fd 1) */
	int prog_wfd;          /* the program's input (its fd 0) */
	int handshake_secs;    /* deadline of the handshake */
	int io_secs;           /* deadline for the rest of a client line once begun and for each
	                          write to the client (0: 1200) */
	/* Called once the handshake is done (log it, release the
	 * configuration); a return below 0 ends the proxy with -1. */
	int (*on_tls)(void *arg, struct mailtls *s);
	void *arg;
};

/* mailtls_proxy_run drives |p| between the client on |s|'s descriptors
 * (a server session, before its handshake; sockets or pipes) and the
 * program.  Before TLS it reads the client with the bounded reader that
 * never reads past a line, so when STARTTLS is accepted nothing that follows it has been
 * consumed; bytes already waiting then are refused (MAILTLS_PROXY_CLOSE).
 * Before TLS a command line may have 1000 bytes (after TLS
 * MAILTLS_PROXY_CHUNK); message data lines any length, in parts.  What
 * is forwarded reaches the program as the client sent it, terminators
 * included.  Returns 0 when the program's output ended (or the
 * client left and the program then ended its output), after close_notify
 * when TLS is on; -1 with the error on |s|: MAILTLS_E_INJECTION
 * (plaintext pipelined after STARTTLS), MAILTLS_E_PROTOCOL (overlong
 * command line, the client closed inside a line), a handshake failure,
 * MAILTLS_E_TIMEOUT, MAILTLS_E_SYSTEM.  It closes io->prog_wfd (the
 * program's input: its end of file), once the client has left or else
 * when it returns; it closes no other descriptor. */
MAILTLS_EXPORT int mailtls_proxy_run(struct mailtls_proxy *p, struct mailtls *s,
    const struct mailtls_proxy_io *io) MAILTLS_WUR;

#ifdef __cplusplus
}
#endif

#endif /* MAILTLS_H */
