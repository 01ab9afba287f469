/* os.execute and io.popen as Lua 5.4 has them (same arguments, same
 * results), on the children of src/child.c: in a process group the run
 * tracks, with a wait that --timeout, SIGTERM and SIGINT interrupt. An
 * interrupted wait ends every child (SIGTERM, then SIGKILL) and raises
 * the run's stop, so a child ended by our own clean-up is never seen by
 * the script as a child that failed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "host.h"
#include "preload.h"
#include "script.h"

/* A popen'ed file: liolib's stream (first, so io's functions see it as
 * theirs) and the child at the other end of the pipe. */
struct pstream {
	luaL_Stream s;
	pid_t pid;
};

/* Waits for pid; raises the run's stop if a signal comes first. */
static int waitchild(lua_State *L, pid_t pid)
{
	int status = 0, rc = child_wait(pid, &status);

	if (rc > 0) {
		child_stop_all();
		return host_raise_stop(L);
	}
	return rc < 0 ? -1 : status;
}

static int os_execute(lua_State *L)
{
	const char *cmd = luaL_optstring(L, 1, NULL);
	pid_t pid;
	int stat;

	if (cmd == NULL) {
		lua_pushboolean(L, system(NULL));
		return 1;
	}
	pid = child_spawn(cmd, 0, NULL);
	if (pid < 0)
		return luaL_execresult(L, -1);
	stat = waitchild(L, pid);
	errno = 0;
	return luaL_execresult(L, stat);
}

static int pclose_child(lua_State *L)
{
	struct pstream *p = luaL_checkudata(L, 1, LUA_FILEHANDLE);
	int stat;

	fclose(p->s.f);
	if (!child_known(p->pid)) {
		/* ended by a stop's clean-up, and reaped there */
		errno = ECHILD;
		return luaL_execresult(L, -1);
	}
	stat = waitchild(L, p->pid);
	errno = 0;
	return luaL_execresult(L, stat);
}

static int io_popen(lua_State *L)
{
	const char *cmd = luaL_checkstring(L, 1);
	const char *mode = luaL_optstring(L, 2, "r");
	struct pstream *p;
	int fd;

	luaL_argcheck(L, (mode[0] == 'r' || mode[0] == 'w') && mode[1] == '\0',
		      2, "invalid mode");
	p = lua_newuserdatauv(L, sizeof *p, 0);
	p->s.f = NULL;
	p->s.closef = NULL; /* a closed file until the child runs */
	luaL_setmetatable(L, LUA_FILEHANDLE);
	p->pid = child_spawn(cmd, mode[0], &fd);
	if (p->pid < 0)
		return luaL_fileresult(L, 0, cmd);
	p->s.f = fdopen(fd, mode);
	if (p->s.f == NULL) {
		int e = errno;
		close(fd);
		waitchild(L, p->pid);
		errno = e;
		return luaL_fileresult(L, 0, cmd);
	}
	p->s.closef = pclose_child;
	return 1;
}

/* os.exit as Lua's, but the standard streams are checked first (a
 * script that printed to a full disk and called os.exit(0) failed). */
static int os_exit(lua_State *L)
{
	int status;

	if (lua_isboolean(L, 1))
		status = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
	else
		status = (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
	if (lua_toboolean(L, 2)) {
		host_set_active(NULL);
		host_close(L);
	}
	preload_wait();
	exit(stdstreams_status(status));
	return 0;
}

/* trainctl._proc, for trainctl.task's os.execute, which lets the other
 * tasks run while a task's child does:
 *   spawn(cmd) -> pid, or nil, message, errno (as os.execute fails)
 *   poll(pid) -> false while the child runs; once it has exited (and is
 *                reaped), true and what os.execute returns for it
 *   stop(pid)  ends the child: SIGTERM to its group, SIGKILL after 3 s
 *   full()     whether the run has as many children as it can track
 *   execute    os.execute as above: blocks until the child exits */
static int l_spawn(lua_State *L)
{
	pid_t pid = child_spawn(luaL_checkstring(L, 1), 0, NULL);

	if (pid < 0)
		return luaL_execresult(L, -1);
	lua_pushinteger(L, pid);
	return 1;
}

static int l_poll(lua_State *L)
{
	int status = 0,
	    rc = child_poll((pid_t)luaL_checkinteger(L, 1), &status);

	if (rc > 0) {
		lua_pushboolean(L, 0);
		return 1;
	}
	lua_pushboolean(L, 1);
	if (rc == 0)
		errno = 0;
	return 1 + luaL_execresult(L, rc < 0 ? -1 : status);
}

static int l_stop(lua_State *L)
{
	child_stop((pid_t)luaL_checkinteger(L, 1));
	return 0;
}

static int l_full(lua_State *L)
{
	lua_pushboolean(L, child_full());
	return 1;
}

int luaopen_trainctl_proc(lua_State *L)
{
	static const luaL_Reg funcs[] = {
		{ "spawn", l_spawn },	   { "poll", l_poll },
		{ "stop", l_stop },	   { "full", l_full },
		{ "execute", os_execute }, { NULL, NULL }
	};

	luaL_newlib(L, funcs);
	return 1;
}

/* Puts them in place of the standard library's (after luaL_openlibs). */
void host_open_proc(lua_State *L)
{
	lua_getglobal(L, "os");
	lua_pushcfunction(L, os_execute);
	lua_setfield(L, -2, "execute");
	lua_pushcfunction(L, os_exit);
	lua_setfield(L, -2, "exit");
	lua_getglobal(L, "io");
	lua_pushcfunction(L, io_popen);
	lua_setfield(L, -2, "popen");
	lua_pop(L, 2);
}
