/* ucspitls.c -- the program's side of a UCSPI-TLS connection as the
 * servers and clients of ucspi run it: waiting for its request, and ending
 * it when TLS cannot be had.  ISC license: see LICENSE. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ucspi.h"

/* A program told to stop has this long before SIGKILL. */
#define PROG_TERM_SECS 5

/* pidfd_of returns a descriptor that polls readable once |pid| has ended,
 * or -1 where the kernel has none (Linux before 5.3). */
static int pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	return -1;
#endif
}

int ucspi_tls_request(struct mailtls *s, const struct mailtls_ucspitls *u, pid_t pid)
{
	int pfd = pidfd_of(pid);
	if (pfd >= 0) {
		struct pollfd p[2] = { { .fd = u->ctl[1], .events = POLLIN }, { .fd = pfd, .events = POLLIN } };
		for (;;) {
			int r = poll(p, 2, -1);
			if (r < 0 && errno == EINTR)
				continue;
			if (r > 0 && p[1].revents) {
				close(pfd);
				return 0;
			}
			break;   /* a request (or a poll failure: the library's wait reports it) */
		}
		close(pfd);
	}
	return mailtls_ucspitls_wait(s, u, 0);
}

/* 1 once |pid| has ended (and is reaped) within PROG_TERM_SECS. */
static int ended(pid_t pid)
{
	struct timespec tick = { 0, 20 * 1000 * 1000 };
	int st;
	for (int i = 0; i < PROG_TERM_SECS * 50; i++) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			return 1;
		nanosleep(&tick, NULL);
	}
	return 0;
}

void ucspi_end_prog(pid_t pid, struct mailtls_ucspitls *u, int sock, int hangup_first)
{
	int st;
	if (!hangup_first) {
		/* The signal first: a program that saw its descriptors close before
		 * it could take it as TLS refused and go on in plaintext. */
		kill(pid, SIGTERM);
		kill(pid, SIGCONT);
	}
	mailtls_ucspitls_close_ours(u);
	close(sock);
	if (ended(pid))
		return;
	if (hangup_first) {
		kill(pid, SIGTERM);
		kill(pid, SIGCONT);
		if (ended(pid))
			return;
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
}
