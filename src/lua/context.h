/* The state the native modules share, one per lua_State (as luv's
 * luv_context): a userdata in the registry, freed when the state closes.
 * Every binding reaches it through host_context. */
#ifndef TRAINCTL_CONTEXT_H
#define TRAINCTL_CONTEXT_H

#include <lua.h>

#include "loop.h"

struct context {
	struct loop *loop; /* made by the first request */
	int inflight;	   /* transfers started for the scheduler */
	int max_inflight;  /* task.max_inflight */
};

struct context *host_context(lua_State *L);

/* The context's loop, made if need be; raises when libcurl is missing. */
struct loop *host_loop(lua_State *L, const char *who);

/* Pushes the owner of a finished transfer that trainctl._curl.start
 * started (lhttp.c) and returns 1; 0, pushing nothing, for another. */
struct transfer;
int host_push_owner(lua_State *L, struct transfer *t);

#endif
