/* server.c -- the accept loop: at most -c children, each forked (no exec)
 * to serve one connection; children reaped and logged as tcpserver does. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tcpserver-ssl.h"

static volatile sig_atomic_t got_chld, got_term;

static void on_chld(int sig)
{
	got_chld = 1;
}

static void on_term(int sig)
{
	got_term = 1;
}

static unsigned long children;

static void reap(const struct opts *o)
{
	pid_t pid;
	int st;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		log_status("end %ld status %d", (long)pid, st);
		if (children > 0)
			children--;
		log_status("status: %lu/%lu", children, o->limit);
	}
}

void server_run(const struct opts *o, struct mailtls_config *cfg, int *lfds, int nl)
{
	struct sigaction sa;
	sigset_t block, waitmask;
	struct pollfd p[4];
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_chld;
	sigaction(SIGCHLD, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	/* Signals are handled only inside ppoll/sigsuspend, so no wakeup is lost. */
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGCHLD);
	sigdelset(&waitmask, SIGTERM);

	log_status("status: %lu/%lu", children, o->limit);
	for (;;) {
		int r;
		if (got_chld) {
			got_chld = 0;
			reap(o);
		}
		if (got_term) {
			/* Stop accepting; running children finish their sessions on their own. */
			for (int i = 0; i < nl; i++)
				close(lfds[i]);
			_exit(0);
		}
		if (children >= o->limit) {
			sigsuspend(&waitmask);
			continue;
		}
		for (int i = 0; i < nl; i++) {
			p[i].fd = lfds[i];
			p[i].events = POLLIN;
		}
		r = ppoll(p, (nfds_t)nl, NULL, &waitmask);
		if (r <= 0)
			continue;
		for (int i = 0; i < nl; i++) {
			struct conninfo ci;
			pid_t pid;
			int fd;
			if (!(p[i].revents & POLLIN))
				continue;
			fd = accept4(lfds[i], NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			if (conn_addresses(fd, &ci) < 0) {
				close(fd);
				continue;
			}
			pid = fork();
			if (pid == 0) {
				sigprocmask(SIG_SETMASK, &waitmask, NULL);
				memset(&sa, 0, sizeof sa);
				sa.sa_handler = SIG_DFL;
				sigaction(SIGCHLD, &sa, NULL);
				sigaction(SIGTERM, &sa, NULL);
				for (int j = 0; j < nl; j++)
					close(lfds[j]);
				conn_serve(o, cfg, &ci);
			}
			close(fd);
			if (pid < 0) {
				log_error("warning: unable to fork: %s", strerror(errno));
				continue;
			}
			children++;
			log_status("status: %lu/%lu", children, o->limit);
			if (children >= o->limit)
				break;
		}
	}
}
