#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

const char *pki(const char *file)
{
	static char bufs[16][1024];
	static int n;
	const char *dir = getenv("MAILTLS_TEST_PKI");
	char *b = bufs[n++ % 16];
	if (!dir)
		T_FAIL("MAILTLS_TEST_PKI is not set (run the tests through ctest)");
	snprintf(b, sizeof bufs[0], "%s/%s", dir, file);
	return b;
}

struct mailtls_config *tu_server_config(const char *cert, const char *key)
{
	struct mailtls_config *c = mailtls_config_new();
	CHECK(c);
	CHECK_CFG_OK(c, mailtls_config_set_keypair_file(c, pki(cert), key ? pki(key) : NULL));
	return c;
}

struct mailtls_config *tu_client_config(void)
{
	struct mailtls_config *c = mailtls_config_new();
	CHECK(c);
	CHECK_CFG_OK(c, mailtls_config_set_ca(c, pki("ca.pem"), NULL));
	return c;
}

void tu_socketpair(int sv[2])
{
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
}

static void *server_main(void *arg)
{
	struct tu_server *ts = arg;
	ts->result = mailtls_handshake(ts->s);
	ts->errcode = mailtls_errcode(ts->s);
	snprintf(ts->error, sizeof ts->error, "%s", mailtls_error(ts->s));
	return NULL;
}

void tu_server_start(struct tu_server *ts, struct mailtls *s)
{
	memset(ts, 0, sizeof *ts);
	ts->s = s;
	CHECK(pthread_create(&ts->th, NULL, server_main, ts) == 0);
}

void tu_server_join(struct tu_server *ts)
{
	pthread_join(ts->th, NULL);
}

int tu_handshake_pair(struct mailtls *client, struct mailtls *server, int *server_result)
{
	struct tu_server ts;
	int r;
	tu_server_start(&ts, server);
	r = mailtls_handshake(client);
	if (r < 0) {
		/* Let the server see the failure instead of waiting forever. */
		int fd = mailtls_write_fd(client);
		if (fd >= 0)
			shutdown(fd, SHUT_RDWR);
	}
	tu_server_join(&ts);
	if (server_result)
		*server_result = ts.result;
	return r;
}

void tu_fill_random(void *buf, size_t len, unsigned seed)
{
	unsigned char *p = buf;
	uint64_t x = 0x9e3779b97f4a7c15ULL ^ seed;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		p[i] = (unsigned char)x;
	}
}

void tu_set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);
	CHECK(fl >= 0);
	CHECK(fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) == 0);
}

const char *tu_tmpdir(void)
{
	static char path[256];
	snprintf(path, sizeof path, "/tmp/mailtls-test.XXXXXX");
	CHECK(mkdtemp(path));
	return path;
}
