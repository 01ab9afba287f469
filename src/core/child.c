/* Child processes of a run (os.execute, io.popen): started in a process
 * group of their own and tracked, so that --timeout, SIGTERM and SIGINT
 * end them too: SIGTERM to each group at once (from the signal handler),
 * SIGKILL to what is left after a grace period. Their wait can be
 * interrupted by those signals. No Lua here. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "wait.h"

extern char **environ;

/* Seconds a child has between SIGTERM and SIGKILL. */
#define GRACE 3.0
#define MAX_CHILDREN 256

/* `target` is what kill() aims at: -pgid for a child leading its own
 * group, the pid for one left in ours. The signal handler reads it. */
static struct child {
	volatile sig_atomic_t target;
	pid_t pid;
} children[MAX_CHILDREN];

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct child *find(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i].target && children[i].pid == pid)
			return &children[i];
	return NULL;
}

/* At a terminal where we are the foreground job, a child stays in our
 * group: it can read the terminal, and Ctrl-C reaches it as it would
 * from a shell. Anywhere else (cron, a pipeline, a test) it gets a group
 * of its own, which a stop ends as a whole, grandchildren included. */
static int own_group(void)
{
	for (int fd = 0; fd <= 2; fd++)
		if (isatty(fd) && tcgetpgrp(fd) == getpgrp())
			return 0;
	return 1;
}

/* Async-signal-safe: called from the signal handler. */
void child_signal_all(int sig)
{
	for (int i = 0; i < MAX_CHILDREN; i++) {
		pid_t t = children[i].target;
		if (t)
			kill(t, sig);
	}
}

/* Starts `/bin/sh -c cmd`. With `fd`, a pipe is made: mode 'r' reads the
 * child's stdout, 'w' writes its stdin; *fd is our end. Returns the pid,
 * or -1 with errno set. */
pid_t child_spawn(const char *cmd, int mode, int *fd)
{
	char *argv[] = { "sh", "-c", (char *)cmd, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, defaults;
	struct child *slot = NULL;
	int p[2] = { -1, -1 }, rc, group = own_group();
	pid_t pid;

	for (int i = 0; !slot && i < MAX_CHILDREN; i++)
		if (!children[i].target)
			slot = &children[i];
	if (!slot)
		return errno = EAGAIN, -1;
	if (fd && pipe2(p, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	if (fd)
		posix_spawn_file_actions_adddup2(&fa, mode == 'r' ? p[1] : p[0],
						 mode == 'r' ? 1 : 0);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&defaults);
	sigaddset(&defaults, SIGPIPE); /* we ignore it; a child must not */
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &defaults);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(
		&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
			       (group ? POSIX_SPAWN_SETPGROUP : 0));
	rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (fd) {
		close(mode == 'r' ? p[1] : p[0]);
		*fd = mode == 'r' ? p[0] : p[1];
		if (rc != 0)
			close(*fd);
	}
	if (rc != 0)
		return errno = rc, -1;
	slot->pid = pid;
	slot->target = group ? -pid : pid;
	/* A stop that came while it started must reach it too. */
	if (host_interrupted())
		kill(slot->target, SIGTERM);
	return pid;
}

/* Reaps a child that has exited and forgets it. */
static int reap(struct child *c, int *status)
{
	pid_t pid = c->pid;
	int rc;

	c->target = 0;
	do
		rc = waitpid(pid, status, 0);
	while (rc < 0 && errno == EINTR);
	return rc < 0 ? -1 : 0;
}

static int exited(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof si);
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return errno != EINTR; /* ECHILD: nothing left to wait for */
	return si.si_pid == pid;
}

/* Waits for the child `pid` to exit, or for a stop signal. Returns 0 with
 * its wait status in *status, 1 when a signal asks the run to stop (the
 * child still runs, tracked), -1 with errno on failure. The stop signals
 * are blocked between the check of host_signal and the wait, which
 * unblocks them atomically (as wait_sleep does). */
int child_wait(pid_t pid, int *status)
{
	struct child *c = find(pid);
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	sigset_t old;
	int rc = 1, backoff = 1;

	if (!c)
		return errno = ECHILD, -1;
	wait_block(&old);
	while (!host_interrupted()) {
		struct pollfd p = { .fd = pfd, .events = POLLIN };
		struct timespec ts = { 0, backoff * 1000000L };
		if (exited(pid)) {
			rc = reap(c, status);
			break;
		}
		/* Without pidfds (before Linux 5.3), look again soon. */
		ppoll(pfd >= 0 ? &p : NULL, pfd >= 0, pfd >= 0 ? NULL : &ts,
		      &old);
		if (backoff < 50)
			backoff *= 2;
	}
	wait_unblock(&old);
	if (pfd >= 0)
		close(pfd);
	return rc;
}

/* Looks, without waiting: 0 when the child `pid` has exited (reaped, its
 * wait status in *status), 1 while it runs, -1 with errno (ECHILD: not a
 * child tracked here, such as one a stop's clean-up ended). */
int child_poll(pid_t pid, int *status)
{
	struct child *c = find(pid);

	if (!c)
		return errno = ECHILD, -1;
	if (!exited(pid))
		return 1;
	return reap(c, status);
}

/* Whether a process group has a member that still runs: kill() counts
 * zombies, which an init that does not reap (in a container) can leave. */
static int group_alive(pid_t pgid)
{
	DIR *d;
	struct dirent *e;
	int alive = 0;

	if (kill(-pgid, 0) < 0)
		return 0;
	d = opendir("/proc");
	if (!d)
		return 1;
	while (!alive && (e = readdir(d))) {
		char path[300], buf[512], *p, state = 0;
		FILE *f;
		int pgrp = 0;
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		p = fgets(buf, sizeof buf, f) ? strrchr(buf, ')') : NULL;
		fclose(f);
		if (p && sscanf(p, ") %c %*d %d", &state, &pgrp) == 2)
			alive = pgrp == pgid && state != 'Z';
	}
	closedir(d);
	return alive;
}

/* Whether c is over: its process reaped and, for a group, no member left. */
static int gone(struct child *c)
{
	int status;

	if (c->target && c->pid && exited(c->pid)) {
		pid_t t = c->target;
		reap(c, &status);
		c->target = 0;
		/* The pgid stays reserved while members remain. */
		if (t < 0 && group_alive(-t))
			c->target = t, c->pid = 0;
	} else if (c->target && c->pid == 0 && !group_alive(-c->target)) {
		c->target = 0;
	}
	return c->target == 0;
}

/* Ends `only`, or every child when NULL: SIGTERM (again for a stop: a
 * group may have grown since the handler ran), SIGKILL after the grace
 * period to what is left, and reaped. */
static void stop_children(struct child *only)
{
	double end = now() + GRACE;
	int left;

	for (int i = 0; i < MAX_CHILDREN; i++) {
		pid_t t = children[i].target;
		if (t && (!only || only == &children[i])) {
			kill(t, SIGTERM);
			kill(t, SIGCONT);
		}
	}
	do {
		struct timespec ts = { 0, 10000000L };
		left = 0;
		for (int i = 0; i < MAX_CHILDREN; i++)
			if (!only || only == &children[i])
				left += !gone(&children[i]);
		if (left)
			nanosleep(&ts, NULL);
	} while (left && now() < end);
	for (int i = 0; left && i < MAX_CHILDREN; i++) {
		int status;
		if (only && only != &children[i])
			continue;
		if (children[i].target)
			kill(children[i].target, SIGKILL);
		if (children[i].target && children[i].pid)
			reap(&children[i], &status);
		children[i].target = 0;
	}
}

/* The run is ending on a signal or --timeout: every child ended. */
void child_stop_all(void) { stop_children(NULL); }

/* One child ended the same way (its task was cancelled); nothing for a
 * pid not tracked. */
void child_stop(pid_t pid)
{
	struct child *c = find(pid);

	if (c)
		stop_children(c);
}

/* Whether every slot is taken: a spawn would fail with EAGAIN until one
 * of the children ends. */
int child_full(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (!children[i].target)
			return 0;
	return 1;
}

/* Whether pid is a child still tracked (child_stop_all forgets those it
 * ended). */
int child_known(pid_t pid) { return find(pid) != NULL; }
