/* prog.c -- starting the program, waiting for it, and ending as it did. */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ucspi.h"

extern char **environ;

pid_t ucspi_spawn(char **prog, int rfd, int wfd, int fd0)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t def, none;
	pid_t pid;
	int e;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, rfd, fd0);
	posix_spawn_file_actions_adddup2(&fa, wfd, fd0 + 1);
	posix_spawnattr_init(&at);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigemptyset(&none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	e = posix_spawnp(&pid, prog[0], &fa, &at, prog, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (e) {
		errno = e;
		return -1;
	}
	return pid;
}

int ucspi_wait(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			_exit(111);
	return st;
}

void ucspi_exit_like(int st)
{
	if (WIFSIGNALED(st)) {
		struct rlimit rl = { 0, 0 };
		int sig = WTERMSIG(st);
		setrlimit(RLIMIT_CORE, &rl);
		signal(sig, SIG_DFL);
		raise(sig);
	}
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 111);
}
