/* trainctl._loop: the native half of the event loop. The scheduler, its
 * run queue and timers are Lua (trainctl.task); this file gives it three
 * primitives:
 *
 *   resume(co, ...)   lua_resume with the signal hook aimed at `co`
 *   poll(timeout)     drive curl's multi handle; return finished transfers
 *   enter()/leave()   mark the loop as running, so http.request and
 *                     sys.sleep yield instead of blocking
 *
 * A request made inside a task yields ("http", transfer) to the scheduler;
 * the scheduler resumes the task once poll() has returned that transfer,
 * and the request's continuation (lhttp.c) turns it into the response. */
#include <string.h>

#include <lauxlib.h>

#include "host.h"
#include "lazy.h"
#include "lhttp.h"

#define PENDING "trainctl.loop.pending" /* lightuserdata -> transfer */

static int depth;			 /* > 0 while a scheduler runs */
static int inflight, max_inflight = 256; /* transfers handed to the loop */

int loop_full(void) { return inflight >= max_inflight; }
static lua_State *current; /* the task being resumed, if any */

static int l_enter(lua_State *L)
{
	(void)L;
	depth++;
	return 0;
}

static int l_leave(lua_State *L)
{
	(void)L;
	if (depth > 0)
		depth--;
	return 0;
}

/* Can `L` hand a wait to the scheduler? Only the task the scheduler
 * resumed can: a coroutine of the user's own inside a task (an iterator,
 * say) would deliver the yield to its caller instead. Raises when the task
 * cannot yield from where it is (a metamethod, a C function's callback). */
int loop_can_yield(lua_State *L, const char *what)
{
	if (depth == 0 || L != current)
		return 0;
	if (!lua_isyieldable(L))
		luaL_error(L,
			   "%s cannot wait here: a task can only wait "
			   "where it can yield, not inside a C function's "
			   "callback (table.sort, string.gsub, ...) or a "
			   "__gc/__close metamethod",
			   what);
	return 1;
}

static int http_yield(lua_State *L, struct transfer *t)
{
	int ud = lua_gettop(L); /* http_prepare pushed the transfer last */

	lua_getfield(L, LUA_REGISTRYINDEX, PENDING);
	lua_pushlightuserdata(L, t);
	lua_pushvalue(L, ud);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	inflight++;
	lua_pushliteral(L, "http");
	lua_pushvalue(L, ud);
	return lua_yieldk(L, 2, (lua_KContext)t, http_continue);
}

static int l_resume(lua_State *L)
{
	lua_State *co = lua_tothread(L, 1);
	lua_State *prev = current;
	int status, nres, narg = lua_gettop(L) - 1;

	luaL_argcheck(L, co, 1, "coroutine expected");
	if (!lua_checkstack(co, narg))
		return luaL_error(L, "too many arguments to resume");
	lua_xmove(L, co, narg);
	current = co;
	/* The signal hook goes to the task while it runs, then back to the
	 * state that had it: not to L, which may be a coroutine of the user's
	 * that is dead by the time a signal comes. */
	status = host_resume(L, co, narg, &nres);
	current = prev;
	if (status == LUA_OK || status == LUA_YIELD) {
		if (!lua_checkstack(L, nres + 1)) {
			lua_pop(co, nres);
			return luaL_error(L, "too many results to resume");
		}
		lua_pushboolean(L, 1);
		lua_xmove(co, L, nres);
		return nres + 1;
	}
	lua_pushboolean(L, 0);
	lua_xmove(co, L, 1); /* the error object */
	return 2;
}

/* poll(timeout): runs transfers for at most `timeout` seconds (0: only
 * what is ready now) and returns the list of those that finished. It
 * returns early, with what it has, when a signal arrives. */
static int l_poll(lua_State *L)
{
	double timeout = luaL_optnumber(L, 1, 0);
	CURLM *m;
	int running, n = 0, pending;

	lua_newtable(L);
	if (inflight == 0) {
		/* No transfer in flight: a plain (interruptible) wait. */
		if (timeout > 0)
			sys_sleep_interruptible(timeout);
		return 1;
	}
	lua_getfield(L, LUA_REGISTRYINDEX, PENDING);
	pending = lua_gettop(L);
	m = http_multi();
	for (;;) {
		struct transfer *t;
		curl_multi_perform(m, &running);
		while ((t = http_next_done())) {
			lua_pushlightuserdata(L, t);
			if (lua_rawget(L, pending) != LUA_TNIL) {
				lua_rawseti(L, pending - 1, ++n);
				lua_pushlightuserdata(L, t);
				lua_pushnil(L);
				lua_rawset(L, pending);
				inflight--;
			} else {
				lua_pop(L, 1);
			}
		}
		if (n > 0 || timeout <= 0 || host_interrupted())
			break;
		if (running == 0) {
			sys_sleep_interruptible(timeout);
			break;
		}
		{
			/* Bounded so that a signal is noticed promptly even
			 * where poll restarts after EINTR. */
			int ms = timeout > 0.25 ? 250
						: (int)(timeout * 1000) + 1;
			curl_multi_poll(m, NULL, 0, ms, NULL);
			timeout -= ms / 1000.0;
		}
	}
	lua_pop(L, 1);
	return 1;
}

static int l_pending(lua_State *L)
{
	lua_pushinteger(L, inflight);
	return 1;
}

static int l_interrupted(lua_State *L)
{
	lua_pushinteger(L, host_signal);
	return 1;
}

/* Forgets a transfer whose task is being cancelled and aborts it. */
static int l_cancel(lua_State *L)
{
	struct transfer *t = http_check(L, 1);

	lua_getfield(L, LUA_REGISTRYINDEX, PENDING);
	lua_pushlightuserdata(L, t);
	if (lua_rawget(L, -2) != LUA_TNIL)
		inflight--;
	lua_pop(L, 1);
	lua_pushlightuserdata(L, t);
	lua_pushnil(L);
	lua_rawset(L, -3);
	http_abort(t);
	return 0;
}

/* free_slots() -> how many more transfers the loop takes now;
 * max_inflight([n]) -> the limit (set to n, at least 1). */
static int l_free_slots(lua_State *L)
{
	lua_pushinteger(L, max_inflight - inflight);
	return 1;
}

static int l_max_inflight(lua_State *L)
{
	if (!lua_isnoneornil(L, 1)) {
		lua_Integer n = luaL_checkinteger(L, 1);
		luaL_argcheck(L, n >= 1 && n <= 1000000, 1, "out of range");
		max_inflight = (int)n;
	}
	lua_pushinteger(L, max_inflight);
	return 1;
}

static const luaL_Reg funcs[] = { { "enter", l_enter },
				  { "free_slots", l_free_slots },
				  { "max_inflight", l_max_inflight },
				  { "leave", l_leave },
				  { "resume", l_resume },
				  { "poll", l_poll },
				  { "pending", l_pending },
				  { "cancel", l_cancel },
				  { "interrupted", l_interrupted },
				  { NULL, NULL } };

int luaopen_trainctl_loop(lua_State *L)
{
	/* Opened again (package.loaded cleared), it keeps the transfers in
	 * flight that the scheduler still waits for. */
	if (lua_getfield(L, LUA_REGISTRYINDEX, PENDING) == LUA_TNIL) {
		lua_newtable(L);
		lua_setfield(L, LUA_REGISTRYINDEX, PENDING);
	}
	lua_pop(L, 1);
	http_yield_hook = http_yield;
	luaL_newlib(L, funcs);
	return 1;
}
