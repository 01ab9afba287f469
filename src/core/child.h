/* Child processes (child.c): spawned in a tracked process group, waited
 * for interruptibly, ended with the run. */
#ifndef TRAINCTL_CHILD_H
#define TRAINCTL_CHILD_H

#include <sys/types.h>

pid_t child_spawn(const char *cmd, int mode, int *fd);
int child_wait(pid_t pid, int *status);
int child_poll(pid_t pid, int *status);
void child_stop(pid_t pid);
int child_known(pid_t pid);
int child_full(void);
void child_signal_all(int sig);
void child_stop_all(void);

#endif
