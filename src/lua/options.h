/* The one reader of options tables: a binding's argument that is a table
 * of named options ({url = ..., timeout = ...}), read as lauxlib's
 * luaL_opt* read arguments. A field that is nil is absent; one of the
 * wrong type raises "<who>: '<name>' must be <what>". */
#ifndef TRAINCTL_OPTIONS_H
#define TRAINCTL_OPTIONS_H

#include <stddef.h>

#include <lua.h>

/* What opt_lstring takes besides a string. */
enum {
	OPT_REQUIRED = 1, /* absent raises "<who>: '<name>' is required" */
	OPT_NUMBERS = 2	  /* a number, as lua_tolstring converts it */
};
/* A string: pushed and left on the stack (a converted number is
 * referenced nowhere else), so the pointer lives as long as the caller
 * keeps it there. NULL, and nothing pushed, when absent. `len` may be
 * NULL. */
const char *opt_lstring(lua_State *L, int t, const char *k, const char *who,
			int flags, size_t *len);
/* A number >= 0, at most `max` (beyond, integer casts are undefined);
 * `def` when absent. */
double opt_number(lua_State *L, int t, const char *k, const char *who,
		  double def, double max);
/* Lua's truth of the field; absent is false. */
int opt_boolean(lua_State *L, int t, const char *k);
/* A table: pushed, returning 1; 0, and nothing pushed, when absent. */
int opt_table(lua_State *L, int t, const char *k, const char *who);

#endif
