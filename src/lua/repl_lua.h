/* The REPL's Lua side, as script.h is main.c's: src/cli/repl.c reads the
 * lines, keeps the history and completes words; these compile, run and
 * print. src/cli includes this, never lua.h. */
#ifndef TRAINCTL_REPL_LUA_H
#define TRAINCTL_REPL_LUA_H

#include <stddef.h>

#include "script.h"

/* The banner, and help() for the session. */
void repl_start(lua_State *L);
/* _PROMPT or _PROMPT2; the string lives as long as the global. */
const char *repl_prompt(lua_State *L, int first);
/* trainctl.repl.complete(word): a NULL-terminated array of strings the
 * caller frees (each and the array), or NULL. */
char **repl_candidates(lua_State *L, const char *word);

/* What repl_compile returns when the chunk needs another line. */
#define REPL_MORE (-3)
/* Compiles the lines read so far (the first line alone is tried as
 * `return <line>` first, as lua.c does): REPL_MORE with the stack as it
 * was, else a status to give repl_eval with the chunk or its error left
 * on the stack. */
int repl_compile(lua_State *L, const char *buf, size_t len, int first);
/* Runs what repl_compile left as the main task and prints its results,
 * or reports its error; the stack ends as it was before repl_compile. */
void repl_eval(lua_State *L, int status);

#endif
