/* The event loop of transfers: curl multi handles driven by
 * curl_multi_socket_action over epoll, with libcurl's timer; a turn costs
 * what is ready (sockets, the timer), not the number of transfers. It also
 * keeps the pool of easy handles and sizes it, and the connection cache,
 * to the number of transfers allowed in flight. */
#ifndef TRAINCTL_LOOP_H
#define TRAINCTL_LOOP_H

#include "transfer.h"

struct loop;

/* NULL when libcurl cannot be loaded or the loop not made (`why` says). */
struct loop *loop_new(const char **why);
void loop_free(struct loop *l);

/* The transfers the caller means to keep in flight at most: the pool of
 * easy handles and the connection cache are sized to it. */
void loop_set_limit(struct loop *l, int n);

CURL *loop_easy_get(struct loop *l);
void loop_easy_put(struct loop *l, CURL *e);

int loop_add(struct loop *l, struct transfer *t);
void loop_remove(struct loop *l, struct transfer *t);

/* Transfers in the multi handles. */
int loop_active(const struct loop *l);

/* Runs ready sockets and the due timer, waiting up to `timeout` seconds
 * (0: only what is ready) for something to do; returns early on a stop
 * signal. Finished transfers join the done list. */
void loop_turn(struct loop *l, double timeout);

/* Takes the oldest finished transfer off the done list, NULL if none. */
struct transfer *loop_next_done(struct loop *l);

/* Runs the loop until `t` is done or a stop signal; other transfers that
 * finish meanwhile stay on the done list for whoever waits for them. */
void loop_run(struct loop *l, struct transfer *t);

#endif
