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

#include <sys/random.h>
#include <time.h>

#include "keys.h"
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

/* The children are the connections, and the certificate loader, which
 * counts for no connection. */
static void reap(const struct opts *o, pid_t loader_pid)
{
	pid_t pid;
	int st;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if (pid == loader_pid) {
			log_error("warning: the certificate loader ended (status %d): certificates are no longer renewed", st);
			continue;
		}
		log_status("end %ld status %d", (long)pid, st);
		if (children > 0)
			children--;
		log_status("status: %lu/%lu", children, o->limit);
	}
}

/* Session tickets: one key for every child, so any child resumes any
 * session; kept across certificate renewals and replaced once a day, after
 * which older tickets fall back to a full handshake. */
#define TICKET_ROTATE_SECS (24 * 60 * 60)
static unsigned char ticket_keys[48];
static time_t ticket_since;

static void ticket_apply(struct mailtls_config *cfg, int fresh, const struct keyfiles *kf)
{
	/* $TICKETKEYFILE: the fleet's keys, in every configuration keys_build
	 * makes; the admin rotates them by replacing the file. */
	if (kf->ticketfile) {
		ticket_since = time(NULL);
		return;
	}
	if (fresh || !ticket_since) {
		if (getrandom(ticket_keys, sizeof ticket_keys, 0) != sizeof ticket_keys)
			fatal(111, "unable to make session ticket keys: %s", strerror(errno));
		ticket_since = time(NULL);
	}
	if (mailtls_config_set_ticket_keys(cfg, ticket_keys, sizeof ticket_keys) < 0)
		fatal(111, "%s", mailtls_config_error(cfg));
}

/* A renewal from the loader: the new configuration serves the children
 * forked from now on; a refused one leaves the old one serving. */
static void renew(struct mailtls_config **cfg, int *loader, const struct keyfiles *kf)
{
	char err[700];
	int gone;
	struct mailtls_config *n = loader_receive(*loader, kf, &gone, err, sizeof err);
	if (n) {
		ticket_apply(n, 0, kf);
		mailtls_config_free(*cfg);
		*cfg = n;
		log_error("renewed certificates loaded");
		return;
	}
	log_error("warning: %s%s", err, gone ? "; certificates are no longer renewed" : "; the old ones keep serving");
	if (gone) {
		close(*loader);
		*loader = -1;
	}
}

void server_run(const struct opts *o, struct mailtls_config *cfg, int *lfds, int nl,
    int loader, pid_t loader_pid, const struct keyfiles *kf)
{
	struct sigaction sa;
	sigset_t block, waitmask;
	struct pollfd p[5];
	time_t paused_until = 0;
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

	ticket_apply(cfg, 1, kf);
	log_status("status: %lu/%lu", children, o->limit);
	for (;;) {
		struct timespec tmo = { 0, 0 };
		int r, np;
		if (got_chld) {
			got_chld = 0;
			reap(o, loader_pid);
		}
		if (got_term) {
			/* Stop accepting; running children finish their sessions on their own. */
			for (int i = 0; i < nl; i++)
				close(lfds[i]);
			_exit(0);
		}
		if (time(NULL) - ticket_since >= TICKET_ROTATE_SECS)
			ticket_apply(cfg, 1, kf);
		/* At the -c limit the listening sockets are not polled: the next
		 * client waits in the listen queue, as under tcpserver. */
		np = 0;
		if (children < o->limit && time(NULL) >= paused_until)
			for (int i = 0; i < nl; i++) {
				p[np].fd = lfds[i];
				p[np++].events = POLLIN;
			}
		if (loader >= 0) {
			p[np].fd = loader;
			p[np++].events = POLLIN;
		}
		tmo.tv_sec = TICKET_ROTATE_SECS - (time(NULL) - ticket_since);
		if (tmo.tv_sec < 1 || paused_until)
			tmo.tv_sec = 1;
		r = ppoll(p, (nfds_t)np, &tmo, &waitmask);
		if (r <= 0)
			continue;
		if (loader >= 0 && (p[np - 1].revents & (POLLIN | POLLHUP | POLLERR)))
			renew(&cfg, &loader, kf);
		if (children >= o->limit || time(NULL) < paused_until)
			continue;
		paused_until = 0;
		for (int i = 0; i < nl; i++) {
			struct conninfo ci;
			struct sockaddr_storage peer;
			socklen_t plen = sizeof peer;
			pid_t pid;
			int fd;
			if (!(p[i].revents & POLLIN))
				continue;
			fd = accept4(lfds[i], (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
			if (fd < 0) {
				/* Out of descriptors or memory: the listener stays readable, so
				 * accepting pauses a second instead of spinning. */
				if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
					log_error("warning: unable to accept: %s", strerror(errno));
					paused_until = time(NULL) + 1;
				}
				continue;
			}
			pid = fork();
			if (pid == 0) {
				ci.fd = fd;
				if (conn_addresses(fd, &peer, &ci) < 0)
					fatal(111, "unable to read the connection's addresses: %s", strerror(errno));
				sigprocmask(SIG_SETMASK, &waitmask, NULL);
				memset(&sa, 0, sizeof sa);
				sa.sa_handler = SIG_DFL;
				sigaction(SIGCHLD, &sa, NULL);
				sigaction(SIGTERM, &sa, NULL);
				for (int j = 0; j < nl; j++)
					close(lfds[j]);
				if (loader >= 0)
					close(loader);
				/* The child needs them only inside cfg, which it releases after the handshake. */
				{
					volatile unsigned char *k = ticket_keys;
					for (size_t j = 0; j < sizeof ticket_keys; j++)
						k[j] = 0;
				}
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
