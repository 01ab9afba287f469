/* The host as the command line uses it (script.h): the options table,
 * `arg`, LUA_INIT, -e and -l in order, the script or `call` as the main
 * task, as lua.c runs them. main.c reaches Lua only through here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "host.h"
#include "script.h"

const char *script_lua_release(void) { return LUA_RELEASE; }

int script_is_etcd(const char *lock)
{
	return lock && (strncmp(lock, "etcd://", 7) == 0 ||
			strncmp(lock, "etcds://", 8) == 0);
}

void script_close(lua_State *L)
{
	/* A stop ends the children too, before the Lua state goes (closing
	 * a popen'ed file would wait for its child). */
	if (host_signal)
		child_stop_all();
	host_set_active(NULL); /* a late stop must not aim at a closed state */
	host_close(L);
}

static void set_options_table(lua_State *L, const struct opts *o, int argc,
			      char **argv)
{
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	lua_createtable(L, 0, 6);
#define SETOPT(field, value)                                                   \
	do {                                                                   \
		if (value) {                                                   \
			lua_pushstring(L, value);                              \
			lua_setfield(L, -2, field);                            \
		}                                                              \
	} while (0)
	SETOPT("profile", o->profile);
	SETOPT("log_level", o->log_level);
	SETOPT("log_format", o->log_format);
	SETOPT("state", o->state);
	SETOPT("lock", o->lock);
	if (o->script && !o->stdin_script && o->script < argc)
		SETOPT("script", argv[o->script]);
#undef SETOPT
	if (o->timeout > 0) {
		lua_pushnumber(L, o->timeout);
		lua_setfield(L, -2, "timeout");
	}
	if (o->lock_ttl > 0) {
		lua_pushnumber(L, o->lock_ttl);
		lua_setfield(L, -2, "lock_ttl");
	}
	if (o->lock_wait > 0) {
		lua_pushnumber(L, o->lock_wait);
		lua_setfield(L, -2, "lock_wait");
	}
	lua_setfield(L, -2, "trainctl.options");
	lua_pop(L, 1);
}

/* arg[0] is the script, arg[1..] its arguments, negative indices the
 * interpreter and options before it (as in lua.c). */
static void create_arg(lua_State *L, int argc, char **argv, int script)
{
	int i, narg = argc - (script + 1);

	if (script == 0)
		script = argc; /* no script: all arguments are negative */
	lua_createtable(L, narg > 0 ? narg : 0, script + 1);
	for (i = 0; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i - script);
	}
	lua_setglobal(L, "arg");
}

static int dochunk(lua_State *L, int status)
{
	if (status == LUA_OK)
		status = host_docall(L, 0, 0);
	return host_report(L, status);
}

static int dostring(lua_State *L, const char *s, const char *name)
{
	return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

static int dolibrary(lua_State *L, char *spec)
{
	char *eq = strchr(spec, '=');
	const char *global = spec, *mod = spec;
	int status;

	if (eq) {
		*eq = '\0';
		mod = eq + 1;
	}
	lua_getglobal(L, "require");
	lua_pushstring(L, mod);
	status = host_docall(L, 1, 1);
	if (status == LUA_OK) {
		lua_setglobal(L, global);
	} else if (lua_type(L, -1) == LUA_TSTRING) {
		/* require's "not found" lists every place it looked, with a
		 * traceback: for a name given on the command line, its first
		 * line says it. */
		const char *msg = lua_tostring(L, -1);
		const char *end = strstr(msg, "' not found:");
		if (strncmp(msg, "module '", 8) == 0 && end) {
			lua_pushlstring(L, msg, (size_t)(end - msg) + 11);
			lua_remove(L, -2);
		}
	}
	return host_report(L, status);
}

static int run_init(lua_State *L)
{
	const char *name = "=LUA_INIT_5_4";
	const char *init = getenv("LUA_INIT_5_4");

	if (init == NULL) {
		name = "=LUA_INIT";
		init = getenv("LUA_INIT");
	}
	if (init == NULL)
		return LUA_OK;
	if (init[0] == '@')
		return dochunk(L, luaL_loadfile(L, init + 1));
	return dostring(L, init, name);
}

/* Runs -e and -l in command-line order. */
static int run_args(lua_State *L, char **argv, int upto)
{
	int i;

	for (i = 1; i < upto; i++) {
		const char *a = argv[i];
		char *v;
		if (strncmp(a, "--", 2) == 0) {
			if (!strchr(a, '=') && strcmp(a, "--help") &&
			    strcmp(a, "--version") && strcmp(a, "--core-dumps"))
				i++; /* skip the long option's value */
			continue;
		}
		if (a[1] != 'e' && a[1] != 'l')
			continue;
		v = a[2] ? argv[i] + 2 : argv[++i];
		if (a[1] == 'e' ? dostring(L, v, "=(command line)")
				: dolibrary(L, v))
			return 0;
	}
	return 1;
}

static int pushargs(lua_State *L)
{
	int i, n;

	if (lua_getglobal(L, "arg") != LUA_TTABLE)
		luaL_error(L, "'arg' is not a table");
	n = (int)luaL_len(L, -1);
	luaL_checkstack(L, n + 3, "too many arguments to script");
	for (i = 1; i <= n; i++)
		lua_rawgeti(L, -i, i);
	lua_remove(L, -i);
	return n;
}

/* An etcd --lock is taken in Lua, inside the event loop that keeps its
 * lease alive: the function at `fn` becomes an argument of
 * trainctl.etcd_lock's run, which takes the lock, calls it and lets go. */
static int wrap_etcd_lock(lua_State *L, int fn)
{
	int status;

	lua_getglobal(L, "require");
	lua_pushliteral(L, "trainctl.etcd_lock");
	status = host_docall(L, 1, 1);
	if (status != LUA_OK)
		return status;
	lua_getfield(L, -1, "run");
	lua_remove(L, -2);
	lua_insert(L, fn);
	return LUA_OK;
}

const char *const script_subcommands[] = { "call",   "state",	   "wait",
					   "status", "completion", "config",
					   "whoami", NULL };

int script_is_subcommand(const char *word)
{
	for (int i = 0; script_subcommands[i]; i++)
		if (strcmp(word, script_subcommands[i]) == 0)
			return 1;
	return 0;
}

/* The edit distance of a and b (short words), capped at 9. */
static int distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	int row[16], prev, cur;

	if (la > 12 || lb > 12)
		return 9;
	for (j = 0; j <= lb; j++)
		row[j] = (int)j;
	for (i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = (int)i;
		for (j = 1; j <= lb; j++) {
			int sub = prev + (a[i - 1] != b[j - 1]);
			int del = row[j] + 1, ins = row[j - 1] + 1;
			cur = sub < del ? sub : del;
			cur = cur < ins ? cur : ins;
			prev = row[j];
			row[j] = cur;
		}
	}
	return row[lb];
}

/* A script that does not exist, named like a subcommand mistyped
 * (`trainctl cal aitems ...`): the subcommand it was likely meant to be. */
static const char *meant(const char *fname)
{
	const char *best = NULL;
	int d = 3;

	if (strchr(fname, '/') || access(fname, F_OK) == 0)
		return NULL;
	for (int i = 0; script_subcommands[i]; i++) {
		int k = distance(fname, script_subcommands[i]);
		if (k < d && (size_t)k < strlen(fname)) {
			d = k;
			best = script_subcommands[i];
		}
	}
	return best;
}

static int run_script(lua_State *L, char **argv, int script, int from_stdin,
		      const char *lock)
{
	const char *fname = from_stdin ? NULL : argv[script];
	int status = luaL_loadfile(L, fname);
	const char *sub = status == LUA_ERRFILE && fname ? meant(fname) : NULL;

	if (sub) {
		lua_pushfstring(L, "%s; did you mean 'trainctl %s'?",
				lua_tostring(L, -1), sub);
		lua_remove(L, -2);
	}

	if (status == LUA_OK && script_is_etcd(lock))
		status = wrap_etcd_lock(L, lua_gettop(L));
	if (status == LUA_OK) {
		int n = pushargs(L);
		status = host_run_task(L, n + script_is_etcd(lock), 0);
	}
	return host_report(L, status);
}

static int run_call(lua_State *L, int argc, char **argv, const struct opts *o)
{
	int at = o->call, i, n, status;

	lua_getglobal(L, "require");
	lua_pushliteral(L, "trainctl.cli");
	status = host_docall(L, 1, 1);
	if (status != LUA_OK)
		return host_report(L, status) ? -1 : 0;
	lua_getfield(L, -1, "main");
	if (script_is_etcd(o->lock) &&
	    (status = wrap_etcd_lock(L, lua_gettop(L))))
		return host_report(L, status) ? -1 : 0;
	lua_createtable(L, argc - at, 0);
	for (i = at + 1, n = 0; i < argc; i++) {
		if (o->global && o->global[i])
			continue;
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, ++n);
	}
	lua_pushstring(L, argv[at]); /* the command: call, state, wait... */
	status = host_run_task(L, 2 + script_is_etcd(o->lock), 1);
	if (status != LUA_OK) {
		host_report(L, status);
		return -1;
	}
	i = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : EXIT_OK;
	lua_pop(L, 2);
	return i;
}

/* Whether there is a setting for check_settings to look at: one of its
 * variables, or a credentials file (which may hold the outage budget or
 * the request timeout). Without, the library is not loaded for it: a
 * run's start-up stays that of bare Lua. */
static int has_settings(void)
{
	static const char *const vars[] = {
		"TRAINCTL_LOG_LEVEL",	    "TRAINCTL_LOG_FORMAT",
		"TRAINCTL_POLL_INTERVAL",   "TRAINCTL_OUTAGE_BUDGET",
		"TRAINCTL_REQUEST_TIMEOUT", NULL
	};
	const char *base = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	char path[4096];

	for (int i = 0; vars[i]; i++)
		if (getenv(vars[i]) && *getenv(vars[i]))
			return 1;
	if (base && *base)
		snprintf(path, sizeof path, "%s/trainctl/credentials", base);
	else
		snprintf(path, sizeof path, "%s/.config/trainctl/credentials",
			 home && *home ? home : ".");
	return access(path, F_OK) == 0;
}

/* The settings of the environment (TRAINCTL_LOG_LEVEL,
 * TRAINCTL_POLL_INTERVAL...) are checked before anything runs, as the
 * options are: one found wrong at its first use may be found after a
 * paid training has started. trainctl.config.check knows which. */
static int check_settings(lua_State *L)
{
	int status;

	if (!has_settings())
		return LUA_OK;
	lua_getglobal(L, "require");
	lua_pushliteral(L, "trainctl.config");
	status = host_docall(L, 1, 1);
	if (status == LUA_OK) {
		lua_getfield(L, -1, "check");
		lua_remove(L, -2);
		status = host_docall(L, 0, 0);
	}
	return host_report(L, status);
}

int script_run(lua_State *L, int argc, char **argv, const struct opts *o)
{
	int status = LUA_OK, rc;
	int first = o->script ? o->script : (o->call ? o->call : argc);

	if (o->warnings)
		lua_warning(L, "@on", 0);
	set_options_table(L, o, argc, argv);
	create_arg(L, argc, argv, o->script);
	/* config is where a wrong setting is looked at, and completion runs
	 * from a shell's start-up file: neither polls nor logs a run. */
	if (!(o->call && (strcmp(argv[o->call], "config") == 0 ||
			  strcmp(argv[o->call], "completion") == 0)) &&
	    check_settings(L) != LUA_OK)
		return host_exit_status(L, 1);
	if (!o->no_env && run_init(L) != LUA_OK)
		return host_exit_status(L, 1);
	if (!run_args(L, argv, first))
		return host_exit_status(L, 1);
	if (o->call) {
		rc = run_call(L, argc, argv, o);
		return rc < 0 ? host_exit_status(L, 1) : rc;
	}
	if (o->script)
		status = run_script(L, argv, o->script, o->stdin_script,
				    o->lock);
	if (status != LUA_OK)
		return host_exit_status(L, status);
	if (o->interactive)
		return SCRIPT_REPL;
	if (!o->script && !o->version && !o->has_e) {
		if (isatty(0))
			return SCRIPT_REPL;
		status = run_script(L, argv, 0, 1, o->lock);
		return host_exit_status(L, status);
	}
	return EXIT_OK;
}
