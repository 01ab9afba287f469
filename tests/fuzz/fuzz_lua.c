/* libFuzzer harness: feeds each input to one Lua function of targets.lua,
 * run in a full trainctl state (natives and the embedded library). The
 * target checks its own invariants; any Lua error it raises, like any
 * sanitizer report, is a finding. Built once per target with
 * -DTARGET="name" (see the Makefile). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>

#include "host.h"

#ifndef TARGET
#error "define TARGET"
#endif
#ifndef TARGETS_FILE
#define TARGETS_FILE "tests/fuzz/targets.lua"
#endif

static lua_State *L;
static unsigned long runs;

/* libFuzzer sees only instrumented C, and the Lua interpreter is a system
 * library: a line hook gives it the Lua side too, hashing each step from
 * one (function, line) to the next into its extra counters. */
#define NCOUNTERS (1 << 16)
__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t
	counters[NCOUNTERS];
static uintptr_t prev;

static void cover(lua_State *S, lua_Debug *ar)
{
	uintptr_t here;

	if (!lua_getinfo(S, "S", ar))
		return;
	here = ((uintptr_t)ar->source * 31 + (uintptr_t)ar->linedefined) *
		       2654435761u +
	       (uintptr_t)ar->currentline;
	here ^= here >> 15;
	counters[(here ^ prev) & (NCOUNTERS - 1)]++;
	prev = here >> 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *file = getenv("TRAINCTL_FUZZ_TARGETS");

	(void)argc, (void)argv;
	L = host_new();
	if (!L)
		abort();
	if (luaL_dofile(L, file ? file : TARGETS_FILE) != LUA_OK) {
		fprintf(stderr, "fuzz: %s\n", lua_tostring(L, -1));
		abort();
	}
	lua_getfield(L, -1, TARGET);
	if (!lua_isfunction(L, -1)) {
		fprintf(stderr, "fuzz: no target '%s'\n", TARGET);
		abort();
	}
	lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.target");
	lua_settop(L, 0);
	lua_sethook(L, cover, LUA_MASKLINE, 0);
	return 0;
}

static int traceback(lua_State *S)
{
	luaL_traceback(S, S, luaL_tolstring(S, 1, NULL), 1);
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lua_pushcfunction(L, traceback);
	lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.target");
	lua_pushlstring(L, (const char *)data, size);
	prev = 0;
	if (lua_pcall(L, 1, 0, 1) != LUA_OK) {
		fprintf(stderr, "fuzz: target %s failed: %s\n", TARGET,
			lua_tostring(L, -1));
		abort();
	}
	lua_settop(L, 0);
	if (++runs % 1000 == 0)
		lua_gc(L, LUA_GCCOLLECT);
	return 0;
}
