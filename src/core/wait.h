/* The stop flag and the interruptible wait. A stop signal (SIGINT,
 * SIGTERM, SIGALRM for --timeout) sets the flag; every blocking wait of
 * the core checks it with the stop signals blocked and waits with them
 * unblocked, atomically, so a signal that arrives just before the wait
 * still ends it. */
#ifndef TRAINCTL_WAIT_H
#define TRAINCTL_WAIT_H

#include <signal.h>

/* Process-wide by nature: set by the signal handlers. */
extern volatile sig_atomic_t host_signal;

int host_interrupted(void);

/* Blocks the stop signals, saving the old mask in *old: between this and
 * wait_unblock, check host_signal, then wait with `old` as the mask
 * (ppoll, epoll_pwait). */
void wait_block(sigset_t *old);
void wait_unblock(const sigset_t *old);

/* A descriptor that is readable once a stop has been noted with
 * wait_note (from the signal handler: async-signal-safe) until
 * wait_forget: an event loop polls it beside its sockets, so a stop
 * wakes it with no signal mask to juggle. -1 if it could not be made. */
int wait_fd(void);
void wait_note(int sig);
void wait_forget(void);

/* Sleeps `seconds` (nothing for 0, a negative or NaN) or until a stop. */
void wait_sleep(double seconds);

/* The monotonic clock, in seconds. */
double wait_clock(void);

#endif
