/* trainctl host: the Lua state, its signal hook, the preloaded native
 * modules and the embedded library (src/lua). Only src/lua touches a
 * lua_State: src/cli reaches it through script.h and repl_lua.h. */
#ifndef TRAINCTL_HOST_H
#define TRAINCTL_HOST_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

#include <lua.h>

#include "child.h"
#include "script.h"
#include "wait.h"

struct embedded_module {
	const char *name;
	const char *chunkname;
	const char *src;
	size_t len;
};
extern const struct embedded_module embedded_modules[];

int host_docall(lua_State *L, int narg, int nres);
/* The one shape of a failure of the environment, as luaL_fileresult:
 * nil, message[, code]; host_fileresult: nil, "what: path: strerror",
 * errno. Bad arguments raise instead. */
int host_fail(lua_State *L, const char *code, const char *fmt, ...);
int host_fileresult(lua_State *L, const char *what, const char *path);
/* Raises "who: why" for a failure of the install or the system (a
 * library lazy.c could not load, an event loop not made) as an io error
 * (a table of trainctl.errors): one line, exit 1. */
int host_raise_environment(lua_State *L, const char *who, const char *why);
/* Whether a structured error (a table with a `kind`) gets its traceback:
 * only at --log-level debug or trace. */
int host_verbose(lua_State *L);
int host_report(lua_State *L, int status);
int host_exit_status(lua_State *L, int status);
int host_interrupted(void);

lua_State *host_set_active(lua_State *L);
int host_resume(lua_State *L, lua_State *co, int narg, int *nres);
int host_run_task(lua_State *L, int narg, int nres);
/* coroutine.resume's core (lcorolib's auxresume) through host_resume:
 * the results (>= 0 of them) or -1 with the error on L's stack. */
int host_auxresume(lua_State *L, lua_State *co, int narg);
/* coroutine.resume itself (true, results | false, error), which
 * trainctl._loop's resume is too. */
int host_co_resume(lua_State *L);

int luaopen_trainctl_crypto(lua_State *L);
int luaopen_trainctl_sign(lua_State *L);
int luaopen_trainctl_curl(lua_State *L);
int luaopen_trainctl_sys(lua_State *L);
int luaopen_trainctl_loop(lua_State *L);
int luaopen_trainctl_proc(lua_State *L);
int luaopen_trainctl_jq(lua_State *L);

/* The stop of a run (a signal, --timeout, a closed stdout): its message,
 * its exit status, raising it in Lua, and causing it from C. */
const char *host_stop_message(void);
int host_stop_status(void);
/* Whether a line written to stderr now would not block. */
int host_stderr_ready(void);
int host_raise_stop(lua_State *L);
void host_stop(int sig);
/* The --timeout's end on the monotonic clock, 0 without one. */
extern double host_deadline;
void host_open_proc(lua_State *L);

#endif
