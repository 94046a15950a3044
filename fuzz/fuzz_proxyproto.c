/*
 * fuzz_proxyproto.c -- the PROXY protocol header: mailtls_proxyproto_parse
 * over the input, and mailtls_proxyproto_read over a socketpair holding it.
 *
 * Input: the first bytes of a connection, as a load balancer (or an
 * attacker) sends them.
 *
 * Checks (mailtls.h, "PROXY protocol"): a result of -1 says why
 * (MAILTLS_E_PROTOCOL and a message); a complete header (r > 0) is no
 * longer than the input, parses again alone to the same facts, and every
 * shorter prefix of it is a valid beginning whose |need| never reaches
 * past its end (so a reader that follows |need| never reads a byte of
 * what follows); addresses are text inet_pton takes back in their family,
 * ports at most 65535; a "local" header names no address.  The reader
 * agrees with the parser: the same length for a whole header, with
 * exactly the bytes after it left unread; -1 for a malformed one or one
 * the end of the stream cuts short.
 * ISC license: see LICENSE.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "mailtls.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	return 0;
}

static void check_facts(const struct mailtls_proxyproto *pp)
{
	unsigned char bin[16];
	FUZZ_CHECK(pp->version == 1 || pp->version == 2, "version %d", pp->version);
	if (pp->local) {
		FUZZ_CHECK(!pp->srcip[0] && !pp->dstip[0], "a local header with addresses");
		return;
	}
	FUZZ_CHECK(inet_pton(pp->v6 ? AF_INET6 : AF_INET, pp->srcip, bin) == 1, "source \"%s\"", pp->srcip);
	FUZZ_CHECK(inet_pton(pp->v6 ? AF_INET6 : AF_INET, pp->dstip, bin) == 1, "destination \"%s\"", pp->dstip);
	FUZZ_CHECK(pp->srcport <= 65535 && pp->dstport <= 65535, "ports %u %u", pp->srcport, pp->dstport);
}

static void check_reader(const uint8_t *data, size_t size, int r)
{
	struct mailtls_proxyproto pp;
	int sv[2];
	size_t off = 0;
	ssize_t got, left = 0;
	uint8_t rest[512];
	/* A socketpair holds the whole input only up to its buffer. */
	if (size > 65536 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return;
	while (off < size) {
		ssize_t w = write(sv[0], data + off, size - off);
		FUZZ_CHECK(w > 0, "socketpair write: %s", strerror(errno));
		off += (size_t)w;
	}
	shutdown(sv[0], SHUT_WR);
	got = mailtls_proxyproto_read(sv[1], 0, &pp);
	if (r > 0) {
		FUZZ_CHECK(got == r, "read %zd, parsed %d", got, r);
		while ((got = read(sv[1], rest, sizeof rest)) > 0)
			left += got;
		FUZZ_CHECK((size_t)left == size - (size_t)r, "%zd bytes left after the header, %zu expected", left,
		    size - (size_t)r);
	} else {
		FUZZ_CHECK(got == -1 && pp.errcode == MAILTLS_E_PROTOCOL && pp.error[0], "read %zd (%d: %s) for %s",
		    got, pp.errcode, pp.error, r ? "a malformed header" : "a header cut short");
	}
	close(sv[0]);
	close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mailtls_proxyproto pp, again;
	size_t need = 0, n2;
	int r = mailtls_proxyproto_parse(data, size, &pp, &need);
	if (r < 0) {
		FUZZ_CHECK(r == -1 && pp.errcode == MAILTLS_E_PROTOCOL && pp.error[0], "-1 without a reason");
	} else if (r == 0) {
		FUZZ_CHECK(need >= 1, "need %zu", need);
	} else {
		FUZZ_CHECK((size_t)r <= size, "header of %d bytes in %zu", r, size);
		check_facts(&pp);
		FUZZ_CHECK(mailtls_proxyproto_parse(data, (size_t)r, &again, &n2) == r, "the header alone");
		FUZZ_CHECK(again.version == pp.version && again.local == pp.local && again.v6 == pp.v6 &&
		    !strcmp(again.srcip, pp.srcip) && !strcmp(again.dstip, pp.dstip) && again.srcport == pp.srcport &&
		    again.dstport == pp.dstport, "the header alone says other facts");
		for (size_t k = 0; k < (size_t)r; k++) {
			int rk = mailtls_proxyproto_parse(data, k, &again, &n2);
			FUZZ_CHECK(rk == 0, "prefix of %zu bytes of a %d-byte header gives %d (%s)", k, r, rk, again.error);
			FUZZ_CHECK(n2 >= 1 && k + n2 <= (size_t)r, "prefix of %zu: need %zu passes the end at %d", k, n2, r);
		}
	}
	check_reader(data, size, r);
	return 0;
}
