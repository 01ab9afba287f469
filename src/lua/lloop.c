/* trainctl._loop: the binding of the core's event loop for the scheduler
 * (trainctl.task), which owns the yield protocol, the run queue and the
 * timers. It gives the scheduler:
 *
 *   poll(timeout)      runs the loop until a transfer started with
 *                      trainctl._curl.start finishes, `timeout` seconds
 *                      pass or a stop signal comes; returns the owners
 *                      given to start of the transfers that finished
 *   resume(co, ...)    lua_resume with the signal hook aimed at `co`
 *   max_inflight([n])  the transfers the scheduler keeps in flight, which
 *                      the handle pool and connection cache follow
 *   free_slots(), pending()
 *   interrupted() -> the stop signal, stop_message() -> its one line, and
 *   verbose(): the host's, so that a task's failure reads as the run's */
#include <lauxlib.h>

#include "context.h"
#include "host.h"
#include "wait.h"

/* Appends the owners of the finished transfers to the table on top; how
 * many. */
static int collect(lua_State *L, struct loop *l)
{
	struct transfer *t;
	int n = (int)lua_rawlen(L, -1), n0 = n;

	while ((t = loop_next_done(l)))
		if (host_push_owner(L, t))
			lua_rawseti(L, -2, ++n);
	return n - n0;
}

/* poll(timeout) -> list of the owners of finished transfers; 0 only
 * looks. */
static int l_poll(lua_State *L)
{
	double timeout = luaL_optnumber(L, 1, 0);
	struct loop *l = host_context(L)->loop;
	double end = wait_clock() + (timeout > 0 ? timeout : 0);

	lua_newtable(L);
	if (l && collect(L, l) > 0)
		return 1;
	if (!l || loop_active(l) == 0) {
		wait_sleep(timeout); /* nothing in flight: a plain wait */
		return 1;
	}
	for (;;) {
		double left = end - wait_clock();
		loop_turn(l, left > 0 ? left : 0);
		if (collect(L, l) > 0 || !(left > 0) || host_interrupted() ||
		    loop_active(l) == 0)
			return 1;
	}
}

static int l_pending(lua_State *L)
{
	lua_pushinteger(L, host_context(L)->inflight);
	return 1;
}

static int l_interrupted(lua_State *L)
{
	lua_pushinteger(L, host_signal);
	return 1;
}

static int l_stop_message(lua_State *L)
{
	lua_pushstring(L, host_stop_message());
	return 1;
}

static int l_verbose(lua_State *L)
{
	lua_pushboolean(L, host_verbose(L));
	return 1;
}

static int l_free_slots(lua_State *L)
{
	struct context *c = host_context(L);

	lua_pushinteger(L, c->max_inflight - c->inflight);
	return 1;
}

static int l_max_inflight(lua_State *L)
{
	struct context *c = host_context(L);

	if (!lua_isnoneornil(L, 1)) {
		lua_Integer n = luaL_checkinteger(L, 1);
		luaL_argcheck(L, n >= 1 && n <= 1000000, 1, "out of range");
		c->max_inflight = (int)n;
		if (c->loop)
			loop_set_limit(c->loop, c->max_inflight);
	}
	lua_pushinteger(L, c->max_inflight);
	return 1;
}

static const luaL_Reg funcs[] = { { "free_slots", l_free_slots },
				  { "max_inflight", l_max_inflight },
				  { "resume", host_co_resume },
				  { "poll", l_poll },
				  { "pending", l_pending },
				  { "interrupted", l_interrupted },
				  { "stop_message", l_stop_message },
				  { "verbose", l_verbose },
				  { NULL, NULL } };

int luaopen_trainctl_loop(lua_State *L)
{
	luaL_newlib(L, funcs);
	return 1;
}
