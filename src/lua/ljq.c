/* trainctl.jq: jq's own language over a JSON text, through libjq (loaded
 * on first use by src/lazy.c), so `trainctl call --jq` filters as
 * `gh --jq` does with nothing hand-written. */
#include <stdio.h>
#include <string.h>

#include "lazy.h"
#include <lauxlib.h>

#include "host.h"

#define RUN_MT "trainctl.jq.run"

/* One filter run. A userdata, so the jq state is torn down even when a
 * Lua error (out of memory) unwinds the stack halfway. */
struct run {
	jq_state *jq;
	char msg[512];
};

static int run_close(lua_State *L)
{
	struct run *r = luaL_checkudata(L, 1, RUN_MT);

	if (r->jq)
		jq_teardown(&r->jq);
	r->jq = NULL;
	return 0;
}

static int valid(jv v) { return jv_get_kind(v) != JV_KIND_INVALID; }

/* jq's `env` and `$ENV` would hand a filter the credentials in the
 * environment, and an answer's filter has no business with them: jq sees
 * an empty environment while it compiles and runs. Swapped back before
 * any Lua call, since a Lua error must not leave the process without one. */
extern char **environ;

static char **hide_env(void)
{
	static char *none[] = { NULL };
	char **saved = environ;

	environ = none;
	return saved;
}

/* Keeps the first line of the first message: jq reports a compile error
 * (with the program quoted on the next lines), then a count. */
static void on_error(void *data, jv msg)
{
	struct run *r = data;

	if (r->msg[0] == '\0' && jv_get_kind(msg) == JV_KIND_STRING) {
		snprintf(r->msg, sizeof r->msg, "%s", jv_string_value(msg));
		r->msg[strcspn(r->msg, "\n")] = '\0';
	}
	jv_free(msg);
}

/* Ends the run with the message of an invalid jv (consumed), or
 * `fallback`, in the library's one shape of a failure. */
static int fail_invalid(lua_State *L, struct run *r, jv v, const char *fallback)
{
	jv msg;
	int n;

	jq_teardown(&r->jq);
	if (!jv_invalid_has_msg(jv_copy(v))) {
		jv_free(v);
		return host_fail(L, NULL, "%s", fallback);
	}
	msg = jv_invalid_get_msg(v);
	if (jv_get_kind(msg) != JV_KIND_STRING)
		msg = jv_dump_string(msg, 0);
	n = host_fail(L, NULL, "jq: error: %s", jv_string_value(msg));
	jv_free(msg);
	return n;
}

/* run(filter, json_text) -> list of the results as compact JSON texts,
 * or nil, message (libjq missing, a compile error, bad input, or an
 * error raised by the filter). */
static int l_run(lua_State *L)
{
	size_t flen, ilen;
	const char *filter = luaL_checklstring(L, 1, &flen);
	const char *input = luaL_checklstring(L, 2, &ilen);
	const char *why = lazy_jq();
	struct run *r;
	char **saved;
	jv in, out;
	int n = 0, compiled;

	luaL_argcheck(L, ilen < 0x7fffffff, 2, "input too large");
	if (why)
		return host_fail(L, NULL,
				 "--jq needs libjq (Debian package libjq1): %s",
				 why);
	r = lua_newuserdatauv(L, sizeof *r, 0);
	r->jq = NULL;
	r->msg[0] = '\0';
	luaL_setmetatable(L, RUN_MT);
	if (!(r->jq = jq_init()))
		return luaL_error(L, "jq: not enough memory");
	jq_set_error_cb(r->jq, on_error, r);
	saved = hide_env();
	compiled = jq_compile(r->jq, filter);
	environ = saved;
	if (!compiled) {
		jq_teardown(&r->jq);
		return host_fail(L, NULL, "%s",
				 r->msg[0] ? r->msg : "jq: compile error");
	}
	in = jv_parse_sized(input, (int)ilen);
	if (!valid(in)) {
		return fail_invalid(L, r, in, "jq: the input is not JSON");
	}
	jq_start(r->jq, in, 0);
	lua_newtable(L);
	for (;;) {
		jv text;
		saved = hide_env();
		out = jq_next(r->jq);
		environ = saved;
		if (!valid(out))
			break;
		text = jv_dump_string(out, 0);
		lua_pushlstring(L, jv_string_value(text),
				(size_t)jv_string_length_bytes(jv_copy(text)));
		jv_free(text);
		lua_rawseti(L, -2, ++n);
	}
	if (jv_invalid_has_msg(jv_copy(out))) {
		return fail_invalid(L, r, out, "jq: error");
	}
	jv_free(out);
	jq_teardown(&r->jq);
	return 1;
}

static const luaL_Reg funcs[] = { { "run", l_run }, { NULL, NULL } };

static const luaL_Reg run_methods[] = { { "__gc", run_close },
					{ "__close", run_close },
					{ NULL, NULL } };

int luaopen_trainctl_jq(lua_State *L)
{
	if (luaL_newmetatable(L, RUN_MT))
		luaL_setfuncs(L, run_methods, 0);
	lua_pop(L, 1);
	luaL_newlib(L, funcs);
	return 1;
}
