/* The Lua state's allocator (src/core/slab.c): blocks never overlap,
 * keep their bytes when resized across sizes (and across the line
 * between pooled and malloc'ed blocks), and a state runs on it. Under
 * valgrind the allocator hands every block to malloc; run natively, the
 * pooled path is what is tested. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "slab.h"
#include "tap.h"

#define N 3000

static unsigned char mark(size_t i, size_t j)
{
	return (unsigned char)(i * 31 + j * 7 + 1);
}

static void fill(unsigned char *p, size_t n, size_t i)
{
	for (size_t j = 0; j < n; j++)
		p[j] = mark(i, j);
}

static int intact(const unsigned char *p, size_t n, size_t i)
{
	for (size_t j = 0; j < n; j++)
		if (p[j] != mark(i, j))
			return 0;
	return 1;
}

int main(void)
{
	static unsigned char *p[N];
	static size_t size[N];
	struct slab *s = slab_new();
	size_t i, bad = 0;
	lua_State *L;

	ok(s != NULL, "slab_new");
	/* Every size from 1 to past SLAB_MAX, several times: many chunks,
	 * and chunk tails too short for the block asked for. */
	for (i = 0; i < N; i++) {
		size[i] = 1 + (i * 7) % (SLAB_MAX + 200);
		p[i] = slab_realloc(s, NULL, 5 /* a type tag */, size[i]);
		if (!p[i])
			break;
		fill(p[i], size[i], i);
	}
	ok(i == N, "%d blocks of 1 to %d bytes allocated", N, SLAB_MAX + 200);
	for (i = 0; i < N; i++)
		bad += !intact(p[i], size[i], i);
	ok(bad == 0, "no block overlaps another (%zu damaged)", bad);

	/* Resized: grown, shrunk, within a size class and across classes. */
	for (i = 0, bad = 0; i < N; i++) {
		size_t n = 1 + (i * 13 + 5) % (SLAB_MAX + 300);
		size_t keep = n < size[i] ? n : size[i];
		unsigned char *q = slab_realloc(s, p[i], size[i], n);
		if (!q || !intact(q, keep, i)) {
			bad++;
			continue;
		}
		p[i] = q;
		size[i] = n;
		fill(p[i], n, i);
	}
	ok(bad == 0, "resized blocks keep their bytes (%zu lost)", bad);
	for (i = 0, bad = 0; i < N; i++)
		bad += !intact(p[i], size[i], i);
	ok(bad == 0, "resized blocks do not overlap (%zu damaged)", bad);

	/* Half freed, then allocated again: the new blocks and the old ones
	 * stay apart. */
	for (i = 0; i < N; i += 2)
		slab_realloc(s, p[i], size[i], 0);
	for (i = 0; i < N; i += 2) {
		p[i] = slab_realloc(s, NULL, 0, size[i]);
		if (p[i])
			fill(p[i], size[i], i);
	}
	for (i = 0, bad = 0; i < N; i++)
		bad += !p[i] || !intact(p[i], size[i], i);
	ok(bad == 0,
	   "blocks allocated again in freed space overlap none (%zu damaged)",
	   bad);
	ok(slab_realloc(s, NULL, 0, 0) == NULL,
	   "a zero-size allocation is NULL");
	for (i = 0; i < N; i++)
		slab_realloc(s, p[i], size[i], 0);
	slab_free(s);

	/* A Lua state on it: tables, strings and closures come and go. */
	s = slab_new();
	L = lua_newstate(slab_realloc, s);
	ok(L != NULL, "lua_newstate on the allocator");
	luaL_openlibs(L);
	ok(luaL_dostring(
		   L, "local t = {} for i = 1, 200000 do t[i % 1000] = {i, "
		      "tostring(i), "
		      "function() return i end} end local n = 0 for _, v in "
		      "pairs(t) do "
		      "n = n + v[3]() - v[1] end collectgarbage() return n") ==
			   LUA_OK &&
		   lua_tointeger(L, -1) == 0,
	   "a Lua program runs on it");
	lua_close(L);
	slab_free(s);
	return done_testing();
}
