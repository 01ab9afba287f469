/* The Lua state of trainctl: standard libraries, the native modules and
 * the embedded Lua library as preloads, the message handler that adds a
 * traceback, and the signal handling that turns SIGINT, SIGTERM and
 * --timeout into a Lua error at the next instruction (as lua.c does). */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua-cjson.h>
#include <lualib.h>

#include "host.h"
#include "slab.h"

int luaopen_cjson_safe(lua_State *L);

int host_no_env;
double host_deadline;
static lua_State *volatile active;
static int interactive;

int host_fail(lua_State *L, const char *code, const char *fmt, ...)
{
	va_list ap;

	luaL_pushfail(L);
	va_start(ap, fmt);
	lua_pushvfstring(L, fmt, ap);
	va_end(ap);
	if (!code)
		return 2;
	lua_pushstring(L, code);
	return 3;
}

int host_fileresult(lua_State *L, const char *what, const char *path)
{
	int e = errno;

	luaL_pushfail(L);
	lua_pushfstring(L, "%s: %s: %s", what, path, strerror(e));
	lua_pushinteger(L, e);
	return 3;
}

/* Forgets a handled signal, and its hook if it never fired. */
void host_clear_signal(lua_State *L)
{
	wait_forget();
	lua_sethook(L, NULL, 0, 0);
}

/* Returns the state that was active, so a caller can put it back. */
lua_State *host_set_active(lua_State *L)
{
	lua_State *prev = active;

	active = L;
	return prev;
}

/* The exit status of a run stopped by `sig`: 4 for --timeout, else the
 * shell's 128 + the signal. Async-signal-safe. */
static int stop_status(int sig)
{
	return sig == SIGALRM ? EXIT_TIMEOUT : 128 + sig;
}

int host_stop_status(void) { return stop_status(host_signal); }

/* The one line a stop prints; none for a closed pipe (SIGPIPE), which
 * ends a run as quietly as it ends any Unix filter. */
const char *host_stop_message(void)
{
	switch (host_signal) {
	case SIGALRM:
		return "timeout: the --timeout for this run was reached";
	case SIGTERM:
		return "terminated (SIGTERM)";
	case SIGPIPE:
		return "";
	default:
		return "interrupted!";
	}
}

int host_raise_stop(lua_State *L)
{
	lua_pushstring(L, host_stop_message());
	return lua_error(L);
}

/* The hook clears itself and raises the interruption in Lua code, where
 * raising is safe; the natives return early on their own. */
static void stop_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	lua_sethook(L, NULL, 0, 0);
	host_raise_stop(L);
}

/* Seconds a run has, after the first stop signal, to end on its own
 * (children's grace period included) before the backstop ends it: a
 * script that swallows the stop in a pcall, or a C call that never
 * returns, still ends. */
#define BACKSTOP 10
static volatile sig_atomic_t first_stop;

/* Whether stderr can take a line now, without waiting: not when it is
 * a full pipe whose reader stopped reading (often stdout's, 2>&1).
 * Async-signal-safe. */
int host_stderr_ready(void)
{
	struct pollfd p = { .fd = 2, .events = POLLOUT };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLOUT);
}

/* In a signal handler: only async-signal-safe calls. */
static void backstop(void)
{
	static const char msg[] =
		"trainctl: the run did not stop within 10 s; ending it\n";
	int sig = first_stop;

	child_signal_all(SIGKILL);
	/* The backstop must end the run whatever blocks. */
	if (host_stderr_ready())
		(void)!write(2, msg, sizeof msg - 1);
	_exit(stop_status(sig));
}

static void on_signal(int sig)
{
	int mask = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;

	if (first_stop && sig == SIGALRM)
		backstop();
	/* A second Ctrl-C while the first is pending falls back to the
	 * default action, so a stuck C call can still be killed. */
	if (host_signal == sig && sig == SIGINT && !interactive)
		signal(sig, SIG_DFL);
	wait_note(sig);
	/* Children hear of it at once: a read from a pipe or a wait ends
	 * when they do. At a terminal, Ctrl-C reached them already. */
	if (!(interactive && sig == SIGINT))
		child_signal_all(SIGTERM);
	if (!interactive && !first_stop) {
		struct itimerval it;
		memset(&it, 0, sizeof it);
		it.it_value.tv_sec = BACKSTOP;
		first_stop = sig;
		setitimer(ITIMER_REAL, &it, NULL);
	}
	if (active)
		lua_sethook(active, stop_hook, mask, 1);
}

/* Stops the run as a signal would (a closed stdout stops it as SIGPIPE). */
void host_stop(int sig) { on_signal(sig); }

/* lua_resume with the signal hook aimed at `co` while it runs: hooks are
 * per thread, and a signal must stop whatever code is running, a
 * coroutine's included. Afterwards the hook goes back to the state that
 * had it, armed again if a signal came meanwhile and was not raised. */
int host_resume(lua_State *L, lua_State *co, int narg, int *nres)
{
	lua_State *prev = host_set_active(co);
	int status = lua_resume(co, L, narg, nres);

	host_set_active(prev);
	if (host_signal && prev)
		lua_sethook(prev, stop_hook,
			    LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE |
				    LUA_MASKCOUNT,
			    1);
	return status;
}

/* coroutine.resume and coroutine.wrap as lcorolib.c has them, through
 * host_resume, so that Ctrl-C, SIGTERM and --timeout also stop a loop
 * inside a coroutine of the user's. */
int host_auxresume(lua_State *L, lua_State *co, int narg)
{
	int status, nres;

	if (!lua_checkstack(co, narg)) {
		lua_pushliteral(L, "too many arguments to resume");
		return -1;
	}
	lua_xmove(L, co, narg);
	status = host_resume(L, co, narg, &nres);
	if (status == LUA_OK || status == LUA_YIELD) {
		if (!lua_checkstack(L, nres + 1)) {
			lua_pop(co, nres);
			lua_pushliteral(L, "too many results to resume");
			return -1;
		}
		lua_xmove(co, L, nres);
		return nres;
	}
	lua_xmove(co, L, 1);
	return -1;
}

int host_co_resume(lua_State *L)
{
	lua_State *co = lua_tothread(L, 1);
	int r;

	luaL_argexpected(L, co, 1, "thread");
	r = host_auxresume(L, co, lua_gettop(L) - 1);
	if (r < 0) {
		lua_pushboolean(L, 0);
		lua_insert(L, -2);
		return 2;
	}
	lua_pushboolean(L, 1);
	lua_insert(L, -(r + 1));
	return r + 1;
}

static int co_auxwrap(lua_State *L)
{
	lua_State *co = lua_tothread(L, lua_upvalueindex(1));
	int r = host_auxresume(L, co, lua_gettop(L));

	if (r < 0) {
		int stat = lua_status(co);
		if (stat != LUA_OK && stat != LUA_YIELD) {
			stat = lua_resetthread(
				co); /* close its tbc variables */
			lua_xmove(co, L, 1);
		}
		if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
			luaL_where(L, 1);
			lua_insert(L, -2);
			lua_concat(L, 2);
		}
		return lua_error(L);
	}
	return r;
}

static int co_wrap(lua_State *L)
{
	lua_State *co;

	luaL_checktype(L, 1, LUA_TFUNCTION);
	co = lua_newthread(L);
	lua_pushvalue(L, 1);
	lua_xmove(L, co, 1);
	lua_pushcclosure(L, co_auxwrap, 1);
	return 1;
}

void host_signals(lua_State *L, int repl)
{
	struct sigaction sa;

	active = L;
	interactive = repl;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a blocking sleep or poll must wake up. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	if (!repl)
		signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
}

void host_set_timeout(double seconds)
{
	struct itimerval it;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	host_deadline = (double)ts.tv_sec + ts.tv_nsec / 1e9 + seconds;
	memset(&it, 0, sizeof it);
	if (seconds > 1e8)
		seconds = 1e8; /* three years; setitimer refuses more */
	it.it_value.tv_sec = (time_t)seconds;
	it.it_value.tv_usec = (suseconds_t)((seconds - floor(seconds)) * 1e6);
	if (it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0)
		it.it_value.tv_usec = 1;
	setitimer(ITIMER_REAL, &it, NULL);
}

/* "90", "90s", "15m", "2h", "1h30m", "1.5h", "250ms" -> seconds, or -1. */
double host_parse_duration(const char *s)
{
	double total = 0;
	int any = 0;

	while (*s) {
		char *end;
		double v;
		errno = 0;
		v = strtod(s, &end);
		if (end == s || errno || !isfinite(v) || v < 0)
			return -1;
		s = end;
		if (strncmp(s, "ms", 2) == 0)
			v /= 1000, s += 2;
		else if (*s == 's')
			s++;
		else if (*s == 'm')
			v *= 60, s++;
		else if (*s == 'h')
			v *= 3600, s++;
		else if (*s == 'd')
			v *= 86400, s++;
		else if (*s)
			return -1;
		total += v;
		any = 1;
	}
	return any && isfinite(total) ? total : -1;
}

/* Whether tracebacks accompany the structured errors of the library:
 * only at --log-level debug or trace, since an API or usage error says
 * all a user needs without the Lua frames. */
int host_verbose(lua_State *L)
{
	const char *level = NULL;

	lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	if (lua_getfield(L, -1, "trainctl.options") == LUA_TTABLE) {
		lua_getfield(L, -1, "log_level");
		level = lua_tostring(L, -1);
		lua_pop(L, 1);
	}
	lua_pop(L, 2);
	return level &&
	       (strcmp(level, "debug") == 0 || strcmp(level, "trace") == 0);
}

/* Message handler: a string or an object with __tostring gets a
 * traceback (error objects with a `kind` only when verbose); the original
 * error object is kept in the registry so the exit status can be read
 * from it. */
static int msghandler(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);
	int structured = 0;

	lua_pushvalue(L, 1);
	lua_setfield(L, LUA_REGISTRYINDEX, "trainctl.last_error");
	if (msg == NULL) {
		if (lua_istable(L, 1)) {
			structured = lua_getfield(L, 1, "kind") == LUA_TSTRING;
			lua_pop(L, 1);
		}
		if (luaL_callmeta(L, 1, "__tostring") &&
		    lua_type(L, -1) == LUA_TSTRING)
			msg = lua_tostring(L, -1);
		else
			msg = lua_pushfstring(L, "(error object is a %s value)",
					      luaL_typename(L, 1));
	}
	if (structured && !host_verbose(L))
		return 1;
	luaL_traceback(L, L, msg, 1);
	return 1;
}

int host_docall(lua_State *L, int narg, int nres)
{
	int base = lua_gettop(L) - narg;
	int status;

	lua_pushcfunction(L, msghandler);
	lua_insert(L, base);
	status = lua_pcall(L, narg, nres, base);
	lua_remove(L, base);
	return status;
}

/* Calls the function below the `narg` arguments on the stack as the main
 * task of trainctl.task (so requests and sleeps inside it yield to the
 * event loop). Like host_docall: LUA_OK with the results on the stack, or
 * an error status with the message and the task's traceback. */
int host_run_task(lua_State *L, int narg, int nres)
{
	int fn = lua_gettop(L) - narg;
	int status;

	lua_getglobal(L, "require");
	lua_pushliteral(L, "trainctl.task");
	status = host_docall(L, 1, 1);
	if (status != LUA_OK) {
		lua_replace(L, fn);
		lua_settop(L, fn);
		return status;
	}
	lua_getfield(L, -1, "main");
	lua_remove(L, -2);
	lua_insert(L, fn);
	status = host_docall(L, narg + 1, LUA_MULTRET);
	if (status != LUA_OK)
		return status;
	if (lua_toboolean(L, fn)) {
		lua_remove(L, fn);
		if (nres != LUA_MULTRET)
			lua_settop(L, fn - 1 + nres);
		return LUA_OK;
	}
	lua_pushvalue(L, fn + 1);
	lua_setfield(L, LUA_REGISTRYINDEX, "trainctl.last_error");
	if (!lua_isstring(L, fn + 2)) {
		lua_settop(L, fn + 1);
		lua_pushstring(L, luaL_tolstring(L, fn + 1, NULL));
	}
	lua_copy(L, fn + 2, fn);
	lua_settop(L, fn);
	return LUA_ERRRUN;
}

static int search_embedded(lua_State *L);

/* luaL_requiref's opener for a module of the library: what require does
 * with it, without the global `require`, which a script may replace. */
static int open_library_module(lua_State *L)
{
	if (search_embedded(L) != 2)
		return lua_error(L);
	lua_pushvalue(L, 1);
	lua_insert(L, -2);
	lua_call(L, 2, 1);
	return 1;
}

/* A failure of the install or the system under the run (a library that
 * cannot be loaded, no event loop to be had) is not the script's fault:
 * an io error of trainctl.errors, which the command line and the end of
 * a run print as one line, exit 1. */
int host_raise_environment(lua_State *L, const char *who, const char *why)
{
	luaL_requiref(L, "trainctl.errors", open_library_module, 0);
	lua_getfield(L, -1, "new");
	lua_createtable(L, 0, 2);
	lua_pushliteral(L, "io");
	lua_setfield(L, -2, "kind");
	lua_pushfstring(L, "%s: %s", who, why);
	lua_setfield(L, -2, "message");
	lua_call(L, 1, 1);
	return lua_error(L);
}

/* exit.of(err) (lua/trainctl/exit.lua): the Lua library owns the rule
 * that picks an error object's status. */
static int exit_of(lua_State *L)
{
	luaL_requiref(L, "trainctl.exit", open_library_module, 0);
	lua_getfield(L, -1, "of");
	lua_pushvalue(L, 1);
	lua_call(L, 1, 1);
	return 1;
}

/* The exit status an error asks for: a signal or --timeout first, then
 * what exit.of says of the error object the message handler kept, else 1. */
int host_exit_status(lua_State *L, int status)
{
	int code = EXIT_ERROR, top = lua_gettop(L);

	if (status == LUA_OK)
		return EXIT_OK;
	if (host_signal)
		return host_stop_status();
	lua_pushcfunction(L, exit_of);
	if (lua_getfield(L, LUA_REGISTRYINDEX, "trainctl.last_error") ==
		    LUA_TTABLE &&
	    lua_pcall(L, 1, 1, 0) == LUA_OK && lua_isinteger(L, -1))
		code = (int)lua_tointeger(L, -1);
	lua_settop(L, top);
	return code;
}

/* report(message, exit status): trainctl.log.report with the error
 * object the message handler kept. */
static int report(lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	if (lua_getfield(L, -1, "trainctl.log") != LUA_TTABLE) {
		lua_getglobal(L, "require");
		lua_pushliteral(L, "trainctl.log");
		lua_call(L, 1, 1);
	}
	lua_getfield(L, -1, "report");
	lua_pushvalue(L, 1);
	lua_getfield(L, LUA_REGISTRYINDEX, "trainctl.last_error");
	lua_pushvalue(L, 2);
	lua_call(L, 3, 0);
	return 0;
}

/* The last words of a failed run go through Lua (trainctl.log.report),
 * which redacts them as a whole and writes them in the --log-format.
 * Its hook is off meanwhile: a pending signal must not cut the report
 * short. Only if that fails (no memory) is the message printed as is. */
int host_report(lua_State *L, int status)
{
	if (status != LUA_OK) {
		lua_Hook hook = lua_gethook(L);
		int mask = lua_gethookmask(L), count = lua_gethookcount(L);
		int code = host_exit_status(L, status);
		const char *msg = lua_tostring(L, -1);
		/* Whatever error the stop left behind (a traceback, a failed
		 * read), a stop prints its one line. */
		if (host_signal)
			msg = host_stop_message();
		if (msg && !*msg) {
			lua_pop(L, 1);
			return status;
		}
		if (msg == NULL)
			msg = "(error object is not a string)";
		lua_sethook(L, NULL, 0, 0);
		lua_pushcfunction(L, report);
		lua_pushstring(L, msg);
		lua_pushinteger(L, code);
		if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
			fprintf(stderr, "trainctl: %s\n", msg);
			fflush(stderr);
			lua_pop(L, 1);
		}
		if (hook)
			lua_sethook(L, hook, mask, count);
		lua_pop(L, 1);
	}
	return status;
}

/* say(message, exit status, json): trainctl.log.report, in JSON or text. */
static int say(lua_State *L)
{
	int json = lua_toboolean(L, 3);

	lua_getglobal(L, "require");
	lua_pushliteral(L, "trainctl.log");
	lua_call(L, 1, 1);
	lua_getfield(L, -1, "set_format");
	lua_pushstring(L, json ? "json" : "text");
	lua_call(L, 1, 0);
	lua_getfield(L, -1, "report");
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 2);
	lua_call(L, 3, 0);
	return 0;
}

/* An error of the command line, before any Lua runs (a bad option, a
 * lock held): with --log-format json, one JSON object like the final
 * error of a run, else a text line; both from a state made for it, so
 * that a key given as an option's value is redacted as any error is. */
void host_say(int json, const char *msg, int code)
{
	lua_State *L = host_new();
	int status = LUA_ERRRUN;

	if (L) {
		lua_pushcfunction(L, say);
		lua_pushstring(L, msg);
		lua_pushinteger(L, code);
		lua_pushboolean(L, json);
		status = lua_pcall(L, 3, 0, 0);
		host_close(L);
	}
	if (status != LUA_OK)
		fprintf(stderr, "trainctl: %s\n", msg);
	fflush(stderr);
}

/* The library's modules see the standard globals as they were at start
 * (then, for any other name, the user's globals): a script or a REPL
 * session that reuses a standard name (`os = client`, `string = nil`)
 * must not break the library under it. */
static const char lib_env_code[] =
	"local G = _G\n"
	"local std = {}\n"
	"for k, v in next, G do std[k] = v end\n"
	"setmetatable(std, { __index = G })\n"
	"return setmetatable({}, { __index = std, __newindex = G })\n";

#define LIB_ENV "trainctl.libenv"

static void make_lib_env(lua_State *L)
{
	if (luaL_loadstring(L, lib_env_code) == LUA_OK &&
	    lua_pcall(L, 0, 1, 0) == LUA_OK)
		lua_setfield(L, LUA_REGISTRYINDEX, LIB_ENV);
	else
		lua_pop(L, 1);
}

/* Gives the chunk on top of the stack the library's environment. */
static void use_lib_env(lua_State *L)
{
	if (lua_getfield(L, LUA_REGISTRYINDEX, LIB_ENV) != LUA_TTABLE ||
	    lua_setupvalue(L, -2, 1) == NULL)
		lua_pop(L, 1);
}

/* package.searchers entry for the embedded library; TRAINCTL_LUA_PATH
 * (a directory, or a package.path-style template list) is searched first
 * so a source tree can stand in for the compiled-in copy. */
static int search_embedded(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	const char *dev = host_no_env ? NULL : getenv("TRAINCTL_LUA_PATH");
	const struct embedded_module *m;

	if (dev && *dev) {
		const char *path = dev;
		if (!strchr(dev, '?'))
			path = lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dev,
					       dev);
		lua_getglobal(L, "package");
		lua_getfield(L, -1, "searchpath");
		lua_pushstring(L, name);
		lua_pushstring(L, path);
		lua_call(L, 2, 1);
		if (lua_isstring(L, -1)) {
			const char *file = lua_tostring(L, -1);
			if (luaL_loadfile(L, file) != LUA_OK)
				return lua_error(L);
			if (strncmp(name, "trainctl.", 9) == 0)
				use_lib_env(L);
			lua_pushstring(L, file);
			return 2;
		}
		lua_settop(L, 1);
	}
	for (m = embedded_modules; m->name; m++) {
		if (strcmp(m->name, name) == 0) {
			if (luaL_loadbufferx(L, m->src, m->len, m->chunkname,
					     "b") != LUA_OK)
				return lua_error(L);
			use_lib_env(L);
			lua_pushliteral(L, ":embedded:");
			return 2;
		}
	}
	lua_pushfstring(L, "no embedded module '%s'", name);
	return 1;
}

static void preload(lua_State *L, const char *name, lua_CFunction f)
{
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
	lua_pushcfunction(L, f);
	lua_setfield(L, -2, name);
	lua_pop(L, 1);
}

static void add_searcher(lua_State *L)
{
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "searchers");
	/* After the preload searcher, before the filesystem ones. */
	lua_pushcfunction(L, search_embedded);
	for (int i = (int)luaL_len(L, -2); i >= 2; i--) {
		lua_rawgeti(L, -2, i);
		lua_rawseti(L, -3, i + 1);
	}
	lua_rawseti(L, -2, 2);
	lua_pop(L, 2);
}

/* The panic function and the warning switch of luaL_newstate, which
 * cannot take another allocator: warnings are off until "@on" (-W). */
static int panic(lua_State *L)
{
	const char *msg = lua_tostring(L, -1);

	lua_writestringerror("PANIC: unprotected error in call to Lua API "
			     "(%s)\n",
			     msg ? msg : "error object is not a string");
	return 0;
}

static void warn_off(void *ud, const char *msg, int tocont);
static void warn_on(void *ud, const char *msg, int tocont);

static int warn_control(lua_State *L, const char *msg, int tocont)
{
	if (tocont || *msg != '@')
		return 0;
	if (strcmp(msg + 1, "off") == 0)
		lua_setwarnf(L, warn_off, L);
	else if (strcmp(msg + 1, "on") == 0)
		lua_setwarnf(L, warn_on, L);
	return 1;
}

static void warn_off(void *ud, const char *msg, int tocont)
{
	warn_control(ud, msg, tocont);
}

/* A warning is printed whole, once redacted as everything printed is
 * (`warn("k=" .. os.getenv("NCLOUD_SECRET_KEY"))`): its pieces are kept
 * until the last one. */
static char warn_text[4096];
static size_t warn_len;

/* redact_warning(text) -> trainctl.log.redact(text). */
static int redact_warning(lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	if (lua_getfield(L, -1, "trainctl.log") != LUA_TTABLE) {
		lua_getglobal(L, "require");
		lua_pushliteral(L, "trainctl.log");
		lua_call(L, 1, 1);
	}
	lua_getfield(L, -1, "redact");
	lua_pushvalue(L, 1);
	lua_call(L, 1, 1);
	return 1;
}

/* T is a thread of its own (host_new): a warning may come from any
 * coroutine, and code runs on this one only. When redaction fails, the
 * text is not shown. */
static void warn_print(lua_State *T)
{
	const char *text = NULL;
	int top = lua_gettop(T);

	if (lua_checkstack(T, 4)) {
		lua_pushcfunction(T, redact_warning);
		lua_pushlstring(T, warn_text, warn_len);
		if (lua_pcall(T, 1, 1, 0) == LUA_OK)
			text = lua_tostring(T, -1);
	}
	lua_writestringerror("Lua warning: %s\n",
			     text ? text
				  : "(not shown: it could not be redacted)");
	lua_settop(T, top);
	warn_len = 0;
}

static void warn_cont(void *ud, const char *msg, int tocont)
{
	size_t n = strlen(msg);

	if (n > sizeof warn_text - 1 - warn_len)
		n = sizeof warn_text - 1 - warn_len;
	memcpy(warn_text + warn_len, msg, n);
	warn_len += n;
	if (tocont) {
		lua_setwarnf(ud, warn_cont, ud);
	} else {
		warn_print(ud);
		lua_setwarnf(ud, warn_on, ud);
	}
}

static void warn_on(void *ud, const char *msg, int tocont)
{
	if (warn_control(ud, msg, tocont))
		return;
	warn_len = 0;
	warn_cont(ud, msg, tocont);
}

/* A state on the core's small-block allocator (slab.h). */
static lua_State *new_state(void)
{
	struct slab *s = slab_new();
	lua_State *L = s ? lua_newstate(slab_realloc, s) : NULL;

	if (!L) {
		slab_free(s);
		return NULL;
	}
	lua_atpanic(L, panic);
	lua_setwarnf(L, warn_off, L);
	return L;
}

void host_close(lua_State *L)
{
	void *s;

	lua_getallocf(L, &s);
	lua_close(L);
	slab_free(s);
}

lua_State *host_new(void)
{
	lua_State *L = new_state();

	if (L == NULL)
		return NULL;
	/* -E: the package library ignores LUA_PATH and LUA_CPATH. */
	if (host_no_env) {
		lua_pushboolean(L, 1);
		lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
	}
	luaL_openlibs(L);
	host_open_proc(L);
	preload(L, "cjson", luaopen_cjson);
	preload(L, "cjson.safe", luaopen_cjson_safe);
	preload(L, "trainctl.crypto", luaopen_trainctl_crypto);
	preload(L, "trainctl.sign", luaopen_trainctl_sign);
	preload(L, "trainctl._curl", luaopen_trainctl_curl);
	preload(L, "trainctl._sys", luaopen_trainctl_sys);
	preload(L, "trainctl._loop", luaopen_trainctl_loop);
	preload(L, "trainctl._proc", luaopen_trainctl_proc);
	preload(L, "trainctl.jq", luaopen_trainctl_jq);
	add_searcher(L);
	lua_getglobal(L, "coroutine");
	lua_pushcfunction(L, host_co_resume);
	lua_setfield(L, -2, "resume");
	lua_pushcfunction(L, co_wrap);
	lua_setfield(L, -2, "wrap");
	lua_pop(L, 1);
	make_lib_env(L);
	lua_setwarnf(L, warn_off, lua_newthread(L));
	lua_setfield(L, LUA_REGISTRYINDEX, "trainctl.warn_thread");
	return L;
}
