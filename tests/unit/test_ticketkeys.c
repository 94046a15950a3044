/*
 * test_ticketkeys.c -- session ticket keys shared by a fleet (mailtls.h,
 * mailtls_config_set_ticket_keys_mem / _file): two servers, each its own
 * configuration as on two hosts, resume each other's sessions when they
 * share a key set; after a rotation (a new key first) a ticket of the old
 * key resumes while that key is listed, and is replaced by one of the new
 * key; once the old key is dropped it no longer resumes; malformed sets,
 * key files open to group or others and FIFOs are refused.  TLS 1.3 and
 * 1.2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define K MAILTLS_TICKET_KEY_LEN

static unsigned char keyA[K], keyB[K];

static struct mailtls_config *server_with(const unsigned char *set, size_t len)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	if (set)
		CHECK_CFG_OK(sc, mailtls_config_set_ticket_keys_mem(sc, set, len));
	return sc;
}

/* A full handshake with |sc|; the client's session after the greeting
 * (which carries a TLS 1.3 server's tickets).  With |release| the server
 * releases its configuration after the handshake, and the caller's
 * reference (taken over) goes too: the configuration is freed before the
 * server's first write sends the tickets. */
static unsigned char *session_from(struct mailtls_config *sc, struct mailtls_config *cc, size_t *len,
    int release)
{
	struct tu_conn k;
	char buf[8];
	unsigned char *sess;
	tu_conn_run(&k, sc, cc, "localhost");
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_session_reused(k.s), 0);
	if (release) {
		CHECK_OK(k.s, mailtls_release_config(k.s));
		mailtls_config_free(sc);
	}
	CHECK_EQ(mailtls_write(k.s, "hi", 2), 2);
	CHECK_EQ(mailtls_read(k.c, buf, sizeof buf), 2);
	sess = tu_session_of(k.c, len);
	tu_conn_close(&k);
	return sess;
}

/* Offers |sess| to |sc|: 1 when resumed.  With |next|, the session the
 * client holds afterwards (a renewed ticket) replaces *next. */
static int resumes(struct mailtls_config *sc, struct mailtls_config *cc, const unsigned char *sess, size_t len,
    unsigned char **next, size_t *nextlen)
{
	struct tu_conn k;
	char buf[8];
	int r;
	tu_conn_open(&k, sc, cc, "localhost");
	CHECK_OK(k.c, mailtls_set_session(k.c, sess, len));
	tu_conn_hs(&k);
	EXPECT_HS_OK(&k);
	CHECK_EQ(mailtls_peer_verified(k.c), 1);
	r = mailtls_session_reused(k.s);
	CHECK_EQ(mailtls_session_reused(k.c), r);
	CHECK_EQ(mailtls_write(k.s, "hi", 2), 2);
	CHECK_EQ(mailtls_read(k.c, buf, sizeof buf), 2);
	if (next) {
		free(*next);
		*next = tu_session_of(k.c, nextlen);
	}
	tu_conn_close(&k);
	return r;
}

static void fleet(int max)
{
	unsigned char setA[K], setBA[2 * K], setB[K];
	struct mailtls_config *host1, *host2, *rotated, *dropped, *alone;
	struct mailtls_config *cc = tu_client_config();
	unsigned char *sess, *renewed = NULL;
	size_t len, rlen = 0;
	if (max)
		CHECK_CFG_OK(cc, mailtls_config_set_max_protocol(cc, max));
	memcpy(setA, keyA, K);
	memcpy(setBA, keyB, K);
	memcpy(setBA + K, keyA, K);
	memcpy(setB, keyB, K);
	host1 = server_with(setA, K);
	host2 = server_with(setA, K);
	alone = server_with(NULL, 0);
	sess = session_from(host1, cc, &len, 0);
	/* Another host with the same keys resumes; one with its own does not. */
	CHECK_EQ(resumes(host2, cc, sess, len, NULL, NULL), 1);
	CHECK_EQ(resumes(alone, cc, sess, len, NULL, NULL), 0);
	/* Rotation: B issues, A still accepts, and the ticket comes back under B. */
	rotated = server_with(setBA, sizeof setBA);
	CHECK_EQ(resumes(rotated, cc, sess, len, &renewed, &rlen), 1);
	/* Once A is gone its tickets give a full handshake ... */
	dropped = server_with(setB, K);
	CHECK_EQ(resumes(dropped, cc, sess, len, NULL, NULL), 0);
	/* ... while the ticket renewed under B resumes. */
	CHECK_EQ(resumes(dropped, cc, renewed, rlen, NULL, NULL), 1);
	/* Back to one 48-byte key: the set no longer decides. */
	{
		unsigned char k48[48];
		tu_fill_random(k48, sizeof k48, 7);
		CHECK_CFG_OK(host2, mailtls_config_set_ticket_keys(host2, k48, sizeof k48));
		CHECK_EQ(resumes(host2, cc, sess, len, NULL, NULL), 0);
	}
	free(sess);
	free(renewed);
	mailtls_config_free(host1);
	mailtls_config_free(host2);
	mailtls_config_free(rotated);
	mailtls_config_free(dropped);
	mailtls_config_free(alone);
	mailtls_config_free(cc);
}

static void test_fleet_tls13(void)
{
	fleet(0);
}

static void test_fleet_tls12(void)
{
	fleet(MAILTLS_TLS1_2);
}

/* A server that released its configuration still issues its TLS 1.3
 * tickets (sent with its first write) under the set. */
static void test_tickets_after_release(void)
{
	struct mailtls_config *sc = server_with(keyA, K), *other = server_with(keyA, K);
	struct mailtls_config *cc = tu_client_config();
	size_t len;
	unsigned char *sess = session_from(sc, cc, &len, 1);
	CHECK_EQ(resumes(other, cc, sess, len, NULL, NULL), 1);
	free(sess);
	mailtls_config_free(other);
	mailtls_config_free(cc);
}

static void test_bad_sets(void)
{
	struct mailtls_config *sc = tu_server_config("server-ec.pem", "server-ec.key");
	unsigned char big[(MAILTLS_TICKET_KEYS_MAX + 1) * K], two[2 * K];
	tu_fill_random(big, sizeof big, 3);
	CHECK_EQ(mailtls_config_set_ticket_keys_mem(sc, big, 0), -1);
	CHECK_EQ(mailtls_config_errcode(sc), MAILTLS_E_CONFIG);
	CHECK_EQ(mailtls_config_set_ticket_keys_mem(sc, big, 48), -1);
	CHECK_EQ(mailtls_config_set_ticket_keys_mem(sc, big, K + 1), -1);
	CHECK_EQ(mailtls_config_set_ticket_keys_mem(sc, big, sizeof big), -1);
	CHECK_EQ(mailtls_config_set_ticket_keys_mem(sc, big, sizeof big - K), 0);
	memcpy(two, keyA, K);
	memcpy(two + K, keyA, 16);           /* same name, other secrets */
	memcpy(two + K + 16, keyB + 16, K - 16);
	CHECK_EQ(mailtls_config_set_ticket_keys_mem(sc, two, sizeof two), -1);
	CHECK(strstr(mailtls_config_error(sc), "same name"));
	mailtls_config_free(sc);
}

static void write_file(const char *path, const void *b, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK_EQ(write(fd, b, n), (ssize_t)n);
	CHECK(fchmod(fd, mode) == 0);
	close(fd);
}

static void test_file(void)
{
	const char *dir = tu_scratch_dir();
	char path[512], missing[512];
	unsigned char set[2 * K];
	struct mailtls_config *a, *b, *cc = tu_client_config();
	unsigned char *sess;
	size_t len;
	memcpy(set, keyA, K);
	memcpy(set + K, keyB, K);
	snprintf(path, sizeof path, "%s/ticket.keys", dir);
	snprintf(missing, sizeof missing, "%s/none", dir);
	a = tu_server_config("server-ec.pem", "server-ec.key");
	b = server_with(keyB, K);
	/* Open to group or others: refused, naming the file. */
	write_file(path, set, sizeof set, 0640);
	CHECK_EQ(mailtls_config_set_ticket_keys_file(a, path), -1);
	CHECK_EQ(mailtls_config_errcode(a), MAILTLS_E_CONFIG);
	CHECK(strstr(mailtls_config_error(a), path));
	write_file(path, set, sizeof set, 0604);
	CHECK_EQ(mailtls_config_set_ticket_keys_file(a, path), -1);
	write_file(path, set, K + 3, 0600);
	CHECK_EQ(mailtls_config_set_ticket_keys_file(a, path), -1);
	CHECK(strstr(mailtls_config_error(a), path));
	CHECK_EQ(mailtls_config_set_ticket_keys_file(a, missing), -1);
	CHECK_EQ(mailtls_config_errcode(a), MAILTLS_E_CONFIG);
	/* A FIFO in the file's place (nobody writing it), private or not: refused at
	 * once as not a regular file, never a hang in open or read. */
	{
		char fifo[512];
		static const mode_t modes[] = { 0600, 0666 };
		snprintf(fifo, sizeof fifo, "%s/keys.fifo", dir);
		for (int i = 0; i < 2; i++) {
			CHECK(mkfifo(fifo, modes[i]) == 0);
			CHECK(chmod(fifo, modes[i]) == 0);
			CHECK_EQ(mailtls_config_set_ticket_keys_file(a, fifo), -1);
			CHECK_EQ(mailtls_config_errcode(a), MAILTLS_E_CONFIG);
			CHECK(strstr(mailtls_config_error(a), "not a regular file"));
			CHECK(unlink(fifo) == 0);
		}
	}
	/* 0600 and 0400 are taken. */
	write_file(path, set, sizeof set, 0400);
	CHECK_CFG_OK(a, mailtls_config_set_ticket_keys_file(a, path));
	/* A issues: a server that accepts only B does not resume it. */
	sess = session_from(a, cc, &len, 0);
	CHECK_EQ(resumes(b, cc, sess, len, NULL, NULL), 0);
	free(sess);
	/* B issues (B's own server resumes it). */
	sess = session_from(b, cc, &len, 0);
	CHECK_EQ(resumes(a, cc, sess, len, NULL, NULL), 1);
	free(sess);
	mailtls_config_free(a);
	mailtls_config_free(b);
	mailtls_config_free(cc);
}

int main(void)
{
	tu_fill_random(keyA, K, 1);
	tu_fill_random(keyB, K, 2);
	RUN_ISOLATED(test_fleet_tls13);
	RUN_ISOLATED(test_fleet_tls12);
	RUN_ISOLATED(test_tickets_after_release);
	RUN_ISOLATED(test_bad_sets);
	RUN_ISOLATED(test_file);
	return tu_isolated_result();
}
