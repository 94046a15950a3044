/* loader.c -- the privileged loader: certificate renewal that coexists with
 * -u/-g.  The parent drops its privileges after binding and can no longer
 * read /etc/ssl/private; this small process, forked before the drop, keeps
 * them and does nothing but watch the files and hand their contents to the
 * parent.  Trust boundary: the loader trusts only the files; the parent
 * trusts only the loader's socket, and builds (and so checks) the new
 * configuration itself before using it.
 *
 * Messages on a SOCK_SEQPACKET socketpair, one per renewal: for each file
 * of keyfiles, in order, a 4-byte length and the bytes. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "keys.h"
#include "tcpserver-ssl.h"

#define MSG_MAX (8 * 1024 * 1024)

static void wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;
	while (n--)
		*v++ = 0;
}

static int send_blobs(int fd, const struct keyblobs *kb)
{
	size_t total = 0, o = 0;
	unsigned char *msg;
	ssize_t w;
	for (size_t i = 0; i < kb->n; i++)
		total += 4 + kb->len[i];
	if (total > MSG_MAX || !(msg = malloc(total ? total : 1)))
		return -1;
	for (size_t i = 0; i < kb->n; i++) {
		uint32_t l = (uint32_t)kb->len[i];
		memcpy(msg + o, &l, 4);
		memcpy(msg + o + 4, kb->data[i], kb->len[i]);
		o += 4 + kb->len[i];
	}
	do
		w = send(fd, msg, total, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	wipe(msg, total);
	free(msg);
	return w == (ssize_t)total ? 0 : -1;
}

static pid_t parent;

/* The parent is gone when its end of the socketpair hangs up, or when this
 * process was handed to another parent (the kernel sends no parent-death
 * signal to a root loader whose parent changed its uid). */
static int parent_gone(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = 0 };
	return (poll(&p, 1, ms) > 0 && (p.revents & (POLLHUP | POLLERR))) || getppid() != parent;
}

/* Files caught half-replaced (a key that does not match the certificate
 * yet) are read again a few times before the change is refused. */
static void loader_main(int fd, const struct keyfiles *kf, int secs)
{
	struct stat seen[sizeof kf->f / sizeof kf->f[0]], now[sizeof kf->f / sizeof kf->f[0]];
	keys_stamp(kf, seen);
	for (;;) {
		struct keyblobs kb;
		char err[600];
		int tries;
		if (parent_gone(fd, secs * 1000))
			_exit(0);
		keys_stamp(kf, now);
		if (keys_stamp_same(kf, seen, now))
			continue;
		for (tries = 0; tries < 5; tries++) {
			struct mailtls_config *cfg;
			if (tries && parent_gone(fd, 1000))
				_exit(0);
			keys_stamp(kf, now);
			if (keyblobs_read(kf, &kb, err, sizeof err) < 0)
				continue;
			cfg = keys_build(kf, &kb, err, sizeof err);
			if (cfg) {
				mailtls_config_free(cfg);
				if (send_blobs(fd, &kb) < 0)
					_exit(0);
				keyblobs_free(&kb);
				break;
			}
			keyblobs_free(&kb);
		}
		if (tries == 5)
			log_error("warning: renewed certificates refused, the old ones keep serving: %s", err);
		memcpy(seen, now, sizeof seen);
	}
}

/* The parent's death (PR_SET_PDEATHSIG) or a SIGTERM of the admin's: the
 * loader's ordinary end, the same as when it sees the parent gone. */
static void end_loader(int sig)
{
	(void)sig;
	_exit(0);
}

int loader_start(const struct keyfiles *kf, int secs, pid_t *loader_pid)
{
	int sv[2];
	pid_t pid;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	parent = getpid();
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		/* Ends with the parent while it keeps its uid; parent_gone covers the rest. */
		signal(SIGTERM, end_loader);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(0);
		signal(SIGPIPE, SIG_IGN);
		loader_main(sv[1], kf, secs);
		_exit(0);
	}
	close(sv[1]);
	*loader_pid = pid;
	return sv[0];
}

struct mailtls_config *loader_receive(int fd, const struct keyfiles *kf, int *gone, char *err, size_t errlen)
{
	struct keyblobs kb;
	struct mailtls_config *cfg = NULL;
	unsigned char *msg = malloc(MSG_MAX);
	ssize_t n;
	size_t o = 0;
	*gone = 0;
	if (!msg) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	do
		n = recv(fd, msg, MSG_MAX, MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		*gone = 1;
		snprintf(err, errlen, "the certificate loader ended");
		free(msg);
		return NULL;
	}
	memset(&kb, 0, sizeof kb);
	for (size_t i = 0; i < kf->n; i++) {
		uint32_t l;
		if ((size_t)n > MSG_MAX || o + 4 > (size_t)n)
			break;
		memcpy(&l, msg + o, 4);
		if (l > (size_t)n - o - 4 || !(kb.data[i] = malloc((size_t)l + 1)))
			break;
		memcpy(kb.data[i], msg + o + 4, l);
		kb.data[i][l] = 0;
		kb.len[i] = l;
		kb.n = i + 1;
		o += 4 + l;
	}
	if (kb.n != kf->n || o != (size_t)n)
		snprintf(err, errlen, "a malformed message from the certificate loader");
	else
		cfg = keys_build(kf, &kb, err, errlen);
	keyblobs_free(&kb);
	wipe(msg, n > 0 && (size_t)n < MSG_MAX ? (size_t)n : MSG_MAX);
	free(msg);
	return cfg;
}
