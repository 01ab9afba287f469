/* The one reader of options tables (options.h). */
#include <lauxlib.h>

#include "options.h"

/* Pushes field `k`; 0, with nothing left pushed, when it is nil. */
static int get(lua_State *L, int t, const char *k)
{
	luaL_checkstack(L, 2, "too many options");
	if (lua_getfield(L, t, k) != LUA_TNIL)
		return 1;
	lua_pop(L, 1);
	return 0;
}

const char *opt_lstring(lua_State *L, int t, const char *k, const char *who,
			int flags, size_t *len)
{
	int type;

	if (!get(L, t, k)) {
		if (flags & OPT_REQUIRED)
			luaL_error(L, "%s: '%s' is required", who, k);
		return NULL;
	}
	type = lua_type(L, -1);
	if (type != LUA_TSTRING &&
	    !(type == LUA_TNUMBER && (flags & OPT_NUMBERS)))
		luaL_error(L, "%s: '%s' must be a string", who, k);
	return lua_tolstring(L, -1, len);
}

double opt_number(lua_State *L, int t, const char *k, const char *who,
		  double def, double max)
{
	double v;
	int ok;

	if (!get(L, t, k))
		return def;
	v = lua_tonumberx(L, -1, &ok);
	if (!ok || !(v >= 0))
		luaL_error(L, "%s: '%s' must be a number >= 0", who, k);
	lua_pop(L, 1);
	return v < max ? v : max;
}

int opt_boolean(lua_State *L, int t, const char *k)
{
	int v;

	lua_getfield(L, t, k);
	v = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return v;
}

int opt_table(lua_State *L, int t, const char *k, const char *who)
{
	if (!get(L, t, k))
		return 0;
	if (!lua_istable(L, -1))
		luaL_error(L, "%s: '%s' must be a table", who, k);
	return 1;
}
