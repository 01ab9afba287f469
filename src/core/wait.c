/* The stop flag and the interruptible wait (wait.h). */
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "wait.h"

volatile sig_atomic_t host_signal;

static int stop_fd = -1;

int host_interrupted(void) { return host_signal != 0; }

int wait_fd(void)
{
	if (stop_fd < 0)
		stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return stop_fd;
}

void wait_note(int sig)
{
	uint64_t one = 1;

	host_signal = sig;
	if (stop_fd >= 0)
		(void)!write(stop_fd, &one, sizeof one);
}

void wait_forget(void)
{
	uint64_t n;

	host_signal = 0;
	if (stop_fd >= 0)
		(void)!read(stop_fd, &n, sizeof n);
}

void wait_block(sigset_t *old)
{
	sigset_t stop;

	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGALRM);
	sigprocmask(SIG_BLOCK, &stop, old);
}

void wait_unblock(const sigset_t *old) { sigprocmask(SIG_SETMASK, old, NULL); }

double wait_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void wait_sleep(double seconds)
{
	struct timespec now, end, left;
	sigset_t old;

	if (!(seconds > 0))
		return; /* also NaN */
	if (seconds > 1e9)
		seconds =
			1e9; /* about 31 years; keeps the time_t cast defined */
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += (time_t)seconds;
	end.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
	if (end.tv_nsec >= 1000000000L)
		end.tv_sec++, end.tv_nsec -= 1000000000L;
	wait_block(&old);
	while (!host_interrupted()) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		left.tv_sec = end.tv_sec - now.tv_sec;
		left.tv_nsec = end.tv_nsec - now.tv_nsec;
		if (left.tv_nsec < 0)
			left.tv_sec--, left.tv_nsec += 1000000000L;
		if (left.tv_sec < 0)
			break;
		ppoll(NULL, 0, &left, &old);
	}
	wait_unblock(&old);
}
