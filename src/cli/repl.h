/* The interactive REPL (repl.c): lua.c's, with libedit and history. */
#ifndef TRAINCTL_REPL_H
#define TRAINCTL_REPL_H

#include "script.h"

int repl_run(lua_State *L);

#endif
