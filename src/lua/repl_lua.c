/* The REPL's Lua side (repl_lua.h): lua.c's doREPL without the reading
 * of lines, which src/cli/repl.c does with libedit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "host.h"
#include "repl_lua.h"

const char *repl_prompt(lua_State *L, int first)
{
	const char *p;

	lua_getglobal(L, first ? "_PROMPT" : "_PROMPT2");
	p = lua_tostring(L, -1);
	if (p == NULL)
		p = first ? "> " : ">> ";
	lua_pop(L, 1); /* the global keeps the string alive */
	return p;
}

/* Pushes field `name` of the loaded module `mod`, requiring it only the
 * first time: a session that reassigns `require` keeps its REPL. */
static void push_field(lua_State *L, const char *mod, const char *name)
{
	lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	if (lua_getfield(L, -1, mod) != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_getglobal(L, "require");
		lua_pushstring(L, mod);
		lua_call(L, 1, 1);
	}
	lua_getfield(L, -1, name);
	lua_remove(L, -2);
	lua_remove(L, -2);
}

static int repl_field(lua_State *L)
{
	push_field(L, "trainctl.repl", luaL_checkstring(L, 1));
	return 1;
}

/* Fills the array whose address is argument 1, under lua_pcall: an error
 * half-way leaves what was collected, still NULL-terminated. */
static int collect(lua_State *L)
{
	char ***out = lua_touserdata(L, 1);
	const char *word = lua_tostring(L, 2);
	int i, n, k = 0;

	push_field(L, "trainctl.repl", "complete");
	lua_pushstring(L, word);
	lua_call(L, 1, 1);
	if (!lua_istable(L, -1))
		return 0;
	n = (int)luaL_len(L, -1);
	*out = calloc((size_t)n + 1, sizeof **out);
	for (i = 1; *out && i <= n; i++) {
		lua_rawgeti(L, -1, i);
		if (lua_isstring(L, -1)) {
			char *s = strdup(lua_tostring(L, -1));
			if (s)
				(*out)[k++] = s;
		}
		lua_pop(L, 1);
	}
	return 0;
}

char **repl_candidates(lua_State *L, const char *word)
{
	char **out = NULL;

	lua_pushcfunction(L, collect);
	lua_pushlightuserdata(L, &out);
	lua_pushstring(L, word);
	if (lua_pcall(L, 2, 0, 0) != LUA_OK)
		lua_pop(L, 1);
	return out;
}

static int incomplete(lua_State *L, int status)
{
	if (status == LUA_ERRSYNTAX) {
		size_t len;
		const char *msg = lua_tolstring(L, -1, &len);
		if (len >= 5 && strcmp(msg + len - 5, "<eof>") == 0) {
			lua_pop(L, 1);
			return 1;
		}
	}
	return 0;
}

/* Tries the buffer as an expression first, as lua.c does. */
static int load_expr(lua_State *L, const char *buf)
{
	const char *ret = lua_pushfstring(L, "return %s;", buf);
	int status = luaL_loadbuffer(L, ret, strlen(ret), "=stdin");

	lua_remove(L, -2);
	if (status != LUA_OK)
		lua_pop(L, 1);
	return status;
}

/* A chunk whose first line starts with '=' is "return" and the rest, as
 * lua.c reads it (Lua 5.1's shorthand, still in lua5.4): `=1+2` prints 3.
 * The lines after the first are part of the same chunk. */
static int load_return(lua_State *L, const char *buf)
{
	const char *ret = lua_pushfstring(L, "return %s", buf + 1);
	int status = luaL_loadbuffer(L, ret, strlen(ret), "=stdin");

	lua_remove(L, -2);
	return status;
}

int repl_compile(lua_State *L, const char *buf, size_t len, int first)
{
	int status;

	if (buf[0] == '=')
		status = load_return(L, buf);
	else if (first && load_expr(L, buf) == LUA_OK)
		return LUA_OK;
	else
		status = luaL_loadbuffer(L, buf, len, "=stdin");
	return incomplete(L, status) ? REPL_MORE : status;
}

/* Prints the results with trainctl.repl.show, falling back to tostring. */
static void show_results(lua_State *L, int base)
{
	int n = lua_gettop(L) - base;

	if (n == 0)
		return;
	lua_pushcfunction(L, repl_field);
	lua_pushliteral(L, "show");
	if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
		lua_insert(L, base + 1);
		if (host_docall(L, n, 0) == LUA_OK)
			return;
	} else {
		lua_pop(L, 1);
		lua_getglobal(L, "print");
		lua_insert(L, base + 1);
		if (lua_pcall(L, n, 0, 0) == LUA_OK)
			return;
	}
	fprintf(stderr, "trainctl: error printing results: %s\n",
		lua_tostring(L, -1));
	lua_settop(L, base);
}

/* After a Ctrl-C the terminal echoed ^C where the cursor was (perhaps at
 * the end of a progress line): the message starts a line of its own. */
static int fresh_line_in_lua(lua_State *L)
{
	push_field(L, "trainctl.log", "fresh_line");
	lua_call(L, 0, 0);
	return 0;
}

static void fresh_line(lua_State *L)
{
	lua_pushcfunction(L, fresh_line_in_lua);
	if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
		lua_pop(L, 1);
		fputc('\n', stderr);
	}
}

void repl_eval(lua_State *L, int status)
{
	int base = lua_gettop(L) - 1;

	if (status == LUA_OK)
		status = host_run_task(L, 0, LUA_MULTRET);
	if (status == LUA_OK) {
		show_results(L, base);
	} else {
		if (host_signal == SIGINT)
			fresh_line(L);
		host_report(L, status);
	}
	lua_settop(L, base);
}

void repl_start(lua_State *L)
{
	lua_pushcfunction(L, repl_field);
	lua_pushliteral(L, "start");
	if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
		lua_pushliteral(L, TRAINCTL_VERSION);
		lua_pushliteral(L, LUA_RELEASE);
		if (lua_pcall(L, 2, 0, 0) == LUA_OK)
			return;
	}
	fprintf(stderr, "trainctl: %s\n", lua_tostring(L, -1));
	lua_pop(L, 1);
}
