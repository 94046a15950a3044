/*
 * test_proxyproto.c -- the PROXY protocol header (mailtls.h, "PROXY
 * protocol"): mailtls_proxyproto_parse on the headers HAProxy's
 * proxy-protocol.txt shows and on malformed ones, its |need| hints, and
 * mailtls_proxyproto_read over sockets and pipes: exactly the header read,
 * what follows left unread, a header trickled in byte by byte, deadlines,
 * and a stream that ends inside a header.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* v2 headers: signature, then version/command, family, length. */
#define SIG "\r\n\r\n\0\r\nQUIT\n"
static const unsigned char v2_tcp4[] = SIG "\x21\x11\x00\x0c" "\xc0\x00\x02\x07" "\xc6\x33\x64\x01" "\xdc\x04\x00\x19";
static const unsigned char v2_tcp6[] = SIG "\x21\x21\x00\x24"
    "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x07" "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01" "\xdc\x04\x01\xd1";
/* With TLVs: PP2_TYPE_ALPN "smtp" and a NOOP of 3 bytes. */
static const unsigned char v2_tlv[] = SIG "\x21\x11\x00\x19" "\xc0\x00\x02\x07" "\xc6\x33\x64\x01" "\xdc\x04\x00\x19"
    "\x01\x00\x04smtp" "\x04\x00\x03\0\0\0";
static const unsigned char v2_local[] = SIG "\x20\x00\x00\x00";
static const unsigned char v2_unspec[] = SIG "\x21\x00\x00\x00";

static int parse(const void *b, size_t n, struct mailtls_proxyproto *pp, size_t *need)
{
	return mailtls_proxyproto_parse(b, n, pp, need);
}

static void test_v1(void)
{
	struct mailtls_proxyproto pp;
	size_t need;
	const char *h4 = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 25\r\nEHLO x\r\n";
	const char *h6 = "PROXY TCP6 2001:db8::7 2001:db8::1 56324 465\r\n";
	CHECK_EQ(parse(h4, strlen(h4), &pp, &need), 44);
	CHECK_EQ(pp.version, 1);
	CHECK_EQ(pp.local, 0);
	CHECK_EQ(pp.v6, 0);
	CHECK_STR(pp.srcip, "192.0.2.7");
	CHECK_STR(pp.dstip, "198.51.100.1");
	CHECK_EQ(pp.srcport, 56324);
	CHECK_EQ(pp.dstport, 25);
	CHECK_EQ(parse(h6, strlen(h6), &pp, &need), (int)strlen(h6));
	CHECK_EQ(pp.v6, 1);
	CHECK_STR(pp.srcip, "2001:db8::7");
	CHECK_EQ(pp.dstport, 465);
	CHECK_EQ(parse("PROXY UNKNOWN\r\n", 15, &pp, &need), 15);
	CHECK_EQ(pp.local, 1);
	CHECK_STR(pp.srcip, "");
	/* The rest of an UNKNOWN line is ignored, as the spec says. */
	CHECK_EQ(parse("PROXY UNKNOWN 1 2 3 4\r\n", 23, &pp, &need), 23);
	CHECK_EQ(pp.local, 1);
	/* The longest lines: 107 bytes with UNKNOWN, 104 with TCP6. */
	{
		const char *u = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
		const char *l = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
		CHECK_EQ(strlen(u), MAILTLS_PROXYPROTO_V1_MAX);
		CHECK_EQ(parse(u, strlen(u), &pp, &need), MAILTLS_PROXYPROTO_V1_MAX);
		CHECK_EQ(pp.local, 1);
		CHECK_EQ(parse(l, strlen(l), &pp, &need), 104);
		CHECK_EQ(pp.srcport, 65535);
		CHECK_STR(pp.dstip, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	}
}

static void test_v1_malformed(void)
{
	static const char *const bad[] = {
		"PROXY TCP4 192.0.2.7 198.51.100.1 56324 25\n",          /* bare LF */
		"PROXY TCP4 192.0.2.7  198.51.100.1 56324 25\r\n",       /* two spaces */
		"PROXY TCP4 192.0.2.7 198.51.100.1 56324 25 \r\n",       /* trailing space */
		"PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n",           /* a field short */
		"PROXY TCP4 192.0.2.7 198.51.100.1 56324 25 1\r\n",      /* a field more */
		"PROXY TCP4 192.0.2.07 198.51.100.1 56324 25\r\n",       /* leading zero in an address */
		"PROXY TCP4 2001:db8::7 198.51.100.1 56324 25\r\n",      /* IPv6 under TCP4 */
		"PROXY TCP6 192.0.2.7 2001:db8::1 56324 25\r\n",         /* IPv4 under TCP6 */
		"PROXY TCP6 2001:DB8::7 2001:db8::1 56324 25\r\n",       /* not the canonical form */
		"PROXY TCP4 192.0.2.7 198.51.100.1 65536 25\r\n",        /* port range */
		"PROXY TCP4 192.0.2.7 198.51.100.1 056324 25\r\n",       /* leading zero in a port */
		"PROXY TCP4 192.0.2.7 198.51.100.1 +5 25\r\n",           /* sign */
		"PROXY UDP4 192.0.2.7 198.51.100.1 56324 25\r\n",        /* not TCP */
		"PROXY UNKNOWNX\r\n",
		"PROXY TCP4 192.0.2.7\t198.51.100.1 56324 25\r\n",       /* control byte */
		"PROXY \r\n",                                            /* too short */
		"proxy TCP4 192.0.2.7 198.51.100.1 56324 25\r\n",        /* case */
		"EHLO client.example\r\n",                               /* no header */
		"\x16\x03\x01\x02\x00\x01",                              /* a ClientHello */
	};
	struct mailtls_proxyproto pp;
	size_t need;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (parse(bad[i], strlen(bad[i]), &pp, &need) != -1)
			T_FAIL("accepted: %s", bad[i]);
		CHECK_EQ(pp.errcode, MAILTLS_E_PROTOCOL);
		CHECK(pp.error[0]);
	}
	/* No line end within 107 bytes. */
	{
		char l[200];
		memset(l, 'a', sizeof l);
		memcpy(l, "PROXY UNKNOWN ", 14);
		CHECK_EQ(parse(l, MAILTLS_PROXYPROTO_V1_MAX - 1, &pp, &need), 0);
		CHECK_EQ(parse(l, sizeof l, &pp, &need), -1);
	}
	/* A byte that cannot begin a header fails at once. */
	CHECK_EQ(parse("\x16", 1, &pp, &need), -1);
	CHECK_EQ(parse("Q", 1, &pp, &need), -1);
}

static void test_need(void)
{
	struct mailtls_proxyproto pp;
	size_t need = 99;
	const char *h = "PROXY UNKNOWN\r\n";
	CHECK_EQ(parse("", 0, &pp, &need), 0);
	CHECK_EQ(need, 15);               /* the shortest header of either version */
	CHECK_EQ(parse("P", 1, &pp, &need), 0);
	CHECK_EQ(need, 14);
	CHECK_EQ(parse(h, 14, &pp, &need), 0);
	CHECK_EQ(need, 1);
	CHECK_EQ(parse(v2_tcp4, 1, &pp, &need), 0);
	CHECK_EQ(need, 15);
	CHECK_EQ(parse(v2_tcp4, 15, &pp, &need), 0);
	CHECK_EQ(need, 1);
	CHECK_EQ(parse(v2_tcp4, 16, &pp, &need), 0);
	CHECK_EQ(need, 12);               /* the length field's whole body */
	CHECK_EQ(parse(v2_tlv, 20, &pp, &need), 0);
	CHECK_EQ(need, sizeof v2_tlv - 1 - 20);
}

static void test_v2(void)
{
	struct mailtls_proxyproto pp;
	size_t need;
	unsigned char more[sizeof v2_tcp4 + 4];
	memcpy(more, v2_tcp4, sizeof v2_tcp4 - 1);
	memcpy(more + sizeof v2_tcp4 - 1, "\x16\x03\x01\x02", 4);
	CHECK_EQ(parse(more, sizeof more - 1, &pp, &need), 28);
	CHECK_EQ(pp.version, 2);
	CHECK_EQ(pp.local, 0);
	CHECK_STR(pp.srcip, "192.0.2.7");
	CHECK_STR(pp.dstip, "198.51.100.1");
	CHECK_EQ(pp.srcport, 56324);
	CHECK_EQ(pp.dstport, 25);
	CHECK_EQ(parse(v2_tcp6, sizeof v2_tcp6 - 1, &pp, &need), 52);
	CHECK_EQ(pp.v6, 1);
	CHECK_STR(pp.srcip, "2001:db8::7");
	CHECK_STR(pp.dstip, "2001:db8::1");
	CHECK_EQ(pp.dstport, 465);
	CHECK_EQ(parse(v2_tlv, sizeof v2_tlv - 1, &pp, &need), (int)sizeof v2_tlv - 1);
	CHECK_STR(pp.srcip, "192.0.2.7");
	CHECK_EQ(parse(v2_local, sizeof v2_local - 1, &pp, &need), 16);
	CHECK_EQ(pp.local, 1);
	CHECK_STR(pp.srcip, "");
	CHECK_EQ(parse(v2_unspec, sizeof v2_unspec - 1, &pp, &need), 16);
	CHECK_EQ(pp.local, 1);
}

static void test_v2_malformed(void)
{
	struct mailtls_proxyproto pp;
	size_t need;
	unsigned char h[64];
	struct { unsigned char vc, fam, len; const char *why; } bad[] = {
		{ 0x11, 0x11, 12, "version 1 in a v2 header" },
		{ 0x31, 0x11, 12, "version 3" },
		{ 0x22, 0x11, 12, "command 2" },
		{ 0x21, 0x12, 12, "UDP over IPv4" },
		{ 0x21, 0x31, 12, "a UNIX socket" },
		{ 0x21, 0x11, 8, "too short for IPv4 addresses" },
		{ 0x21, 0x21, 12, "too short for IPv6 addresses" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(h, 0, sizeof h);
		memcpy(h, SIG, 12);
		h[12] = bad[i].vc;
		h[13] = bad[i].fam;
		h[15] = bad[i].len;
		if (parse(h, 16 + bad[i].len, &pp, &need) != -1)
			T_FAIL("accepted: %s", bad[i].why);
		CHECK_EQ(pp.errcode, MAILTLS_E_PROTOCOL);
	}
	memcpy(h, SIG, 12);
	h[7] = 'X';   /* QXIT */
	CHECK_EQ(parse(h, 8, &pp, &need), -1);
	CHECK_EQ(parse(NULL, 0, NULL, &need), -1);
}

/* Writes |n| bytes to |fd| one at a time, 2 ms apart, from a thread. */
struct trickle {
	int fd;
	const unsigned char *b;
	size_t n;
	int close_after;
};

static void *trickle_run(void *arg)
{
	struct trickle *t = arg;
	struct timespec ms2 = { 0, 2 * 1000 * 1000 };
	for (size_t i = 0; i < t->n; i++) {
		if (write(t->fd, t->b + i, 1) != 1)
			break;
		nanosleep(&ms2, NULL);
	}
	if (t->close_after)
		close(t->fd);
	return NULL;
}

static void expect_rest(int fd, const char *want)
{
	char buf[256];
	ssize_t n;
	size_t got = 0;
	/* To the end of the stream: the writer has closed its end. */
	while ((n = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = 0;
	CHECK_STR(buf, want);
}

static void read_case(int socket_pair, int trickle, const void *hdr, size_t hlen, const char *after)
{
	int sv[2];
	struct mailtls_proxyproto pp;
	unsigned char all[512];
	struct trickle t;
	pthread_t th;
	if (socket_pair)
		tu_socketpair(sv);
	else
		CHECK(pipe(sv) == 0);
	/* sv[0] reads, sv[1] writes (a pipe's ends, or a socketpair's). */
	{
		int rfd = sv[0], wfd = sv[1];
		memcpy(all, hdr, hlen);
		memcpy(all + hlen, after, strlen(after));
		t.fd = wfd;
		t.b = all;
		t.n = hlen + strlen(after);
		t.close_after = 0;
		if (trickle) {
			CHECK(pthread_create(&th, NULL, trickle_run, &t) == 0);
		} else {
			CHECK_EQ(write(wfd, all, t.n), (ssize_t)t.n);
		}
		CHECK_EQ(mailtls_proxyproto_read(rfd, 10, &pp), (ssize_t)hlen);
		if (trickle)
			pthread_join(th, NULL);
		CHECK(pp.version == 1 || pp.version == 2);
		close(wfd);
		expect_rest(rfd, after);
		close(rfd);
	}
}

static void test_read_exact(void)
{
	const char *v1 = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 25\r\n";
	/* What follows the header stays unread: a ClientHello, a command. */
	for (int sock = 0; sock < 2; sock++)
		for (int tr = 0; tr < 2; tr++) {
			read_case(sock, tr, v1, strlen(v1), "EHLO x\r\n");
			read_case(sock, tr, "PROXY UNKNOWN\r\n", 15, "\x16\x03\x01");
			read_case(sock, tr, v2_tcp4, sizeof v2_tcp4 - 1, "\x16\x03\x01");
			read_case(sock, tr, v2_tlv, sizeof v2_tlv - 1, "QUIT\r\n");
			read_case(sock, tr, v2_local, sizeof v2_local - 1, "x");
		}
}

static void test_read_big_tlv(void)
{
	/* A v2 header of the greatest length, 16 + 65535 bytes, on a socket. */
	size_t body = 65535, n = 16 + body;
	unsigned char *h = calloc(1, n + 4);
	int sv[2];
	struct mailtls_proxyproto pp;
	size_t total = n + 3;
	CHECK(h);
	memcpy(h, v2_tcp4, 28);
	h[14] = 0xff;
	h[15] = 0xff;
	memset(h + 28, 0, body - 12);       /* TLV type 0 length 0, over and over */
	memcpy(h + n, "abc", 3);
	tu_socketpair(sv);
	/* Written by a child: more than a socket buffer may hold at once. */
	{
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			size_t off = 0;
			close(sv[0]);
			while (off < total) {
				ssize_t w = write(sv[1], h + off, total - off);
				if (w <= 0)
					_exit(1);
				off += (size_t)w;
			}
			_exit(0);
		}
		close(sv[1]);
		CHECK_EQ(mailtls_proxyproto_read(sv[0], 10, &pp), (ssize_t)n);
		CHECK_STR(pp.srcip, "192.0.2.7");
		expect_rest(sv[0], "abc");
		close(sv[0]);
		CHECK(waitpid(pid, NULL, 0) == pid);
	}
	free(h);
}

static void test_read_failures(void)
{
	int sv[2];
	struct mailtls_proxyproto pp;
	double t0;
	/* Nothing comes: the deadline (1 s). */
	tu_socketpair(sv);
	t0 = tu_now();
	CHECK_EQ(mailtls_proxyproto_read(sv[0], 1, &pp), -1);
	CHECK_EQ(pp.errcode, MAILTLS_E_TIMEOUT);
	CHECK(tu_now() - t0 >= 0.9);
	/* Half a header, then the deadline. */
	CHECK_EQ(write(sv[1], "PROXY TCP4 1", 12), 12);
	CHECK_EQ(mailtls_proxyproto_read(sv[0], 1, &pp), -1);
	CHECK_EQ(pp.errcode, MAILTLS_E_TIMEOUT);
	close(sv[0]);
	close(sv[1]);
	/* The stream ends inside the header. */
	tu_socketpair(sv);
	CHECK_EQ(write(sv[1], v2_tcp4, 20), 20);
	shutdown(sv[1], SHUT_WR);
	CHECK_EQ(mailtls_proxyproto_read(sv[0], 5, &pp), -1);
	CHECK_EQ(pp.errcode, MAILTLS_E_PROTOCOL);
	CHECK(strstr(pp.error, "ended inside"));
	close(sv[0]);
	close(sv[1]);
	/* No header at all: a TLS client. */
	tu_socketpair(sv);
	CHECK_EQ(write(sv[1], "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\x00\x00\x00\x00\x00", 17), 17);
	CHECK_EQ(mailtls_proxyproto_read(sv[0], 5, &pp), -1);
	CHECK_EQ(pp.errcode, MAILTLS_E_PROTOCOL);
	close(sv[0]);
	close(sv[1]);
	/* Non-blocking descriptors work and keep their flags. */
	tu_socketpair(sv);
	tu_set_nonblock(sv[0], 1);
	CHECK_EQ(write(sv[1], "PROXY UNKNOWN\r\n", 15), 15);
	CHECK_EQ(mailtls_proxyproto_read(sv[0], 5, &pp), 15);
	CHECK(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
	close(sv[0]);
	close(sv[1]);
	CHECK_EQ(mailtls_proxyproto_read(-1, 5, &pp), -1);
	CHECK_EQ(pp.errcode, MAILTLS_E_USAGE);
}

int main(void)
{
	RUN_ISOLATED(test_v1);
	RUN_ISOLATED(test_v1_malformed);
	RUN_ISOLATED(test_need);
	RUN_ISOLATED(test_v2);
	RUN_ISOLATED(test_v2_malformed);
	RUN_ISOLATED(test_read_exact);
	RUN_ISOLATED(test_read_big_tlv);
	RUN_ISOLATED(test_read_failures);
	return tu_isolated_result();
}
