/* The per-state context of the native modules (context.h). */
#include <lauxlib.h>

#include "context.h"
#include "host.h"

static const char key = 'c'; /* its address is the registry key */

static int context_gc(lua_State *L)
{
	struct context *c = lua_touserdata(L, 1);

	loop_free(c->loop);
	c->loop = NULL;
	return 0;
}

/* Made before any transfer, so closing the state finalises it after them
 * (Lua runs finalisers in the reverse order of their marking). */
static struct context *make(lua_State *L)
{
	struct context *c = lua_newuserdatauv(L, sizeof *c, 0);

	c->loop = NULL;
	c->inflight = 0;
	c->max_inflight = 256;
	lua_createtable(L, 0, 1);
	lua_pushcfunction(L, context_gc);
	lua_setfield(L, -2, "__gc");
	lua_setmetatable(L, -2);
	lua_pushvalue(L, -1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &key);
	return c;
}

static struct context *push(lua_State *L)
{
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &key) == LUA_TUSERDATA)
		return lua_touserdata(L, -1);
	lua_pop(L, 1);
	return make(L);
}

struct context *host_context(lua_State *L)
{
	struct context *c = push(L);

	lua_pop(L, 1);
	return c;
}

struct loop *host_loop(lua_State *L, const char *who)
{
	struct context *c = host_context(L);
	const char *why;

	if (!c->loop) {
		c->loop = loop_new(&why);
		if (!c->loop)
			host_raise_environment(L, who, why);
		loop_set_limit(c->loop, c->max_inflight);
	}
	return c->loop;
}
