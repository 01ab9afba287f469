/* trainctl._curl: the binding of the core's transfers (src/core/transfer.c,
 * loop.c) to Lua. It never yields and knows nothing of tasks:
 *
 *   request(opts)     one request, blocking until its answer (or a stop)
 *   start(opts)       a transfer handed to the event loop (and whether it
 *                     started); trainctl._loop's poll returns it finished
 *   finish(transfer)  its response, or nil and an error table
 *   abort(transfer)   stops it and frees what it holds
 *
 * trainctl.task builds the waiting request of a task on start and finish;
 * trainctl._http is that request. */
#include <string.h>

#include "lazy.h"
#include <lauxlib.h>

#include "context.h"
#include "host.h"
#include "options.h"
#include "transfer.h"

#define TRANSFER_MT "trainctl.transfer"
#define DEFAULT_MAX_BODY (64 * 1024 * 1024)

struct ltransfer {
	struct transfer t; /* first: lloop.c gets it back from the loop */
	int ref;	   /* its anchor in the registry while started for the
			    * scheduler (in context.inflight), else LUA_NOREF */
};

#define WHO "http.request"

/* Options into a struct request; a bad one raises. The strings stay on
 * the stack until prepare is done with them; the body, which curl sends
 * from where it is, is the value returned (nil without one). */
static int read_request(lua_State *L, int opts, struct request *r)
{
	int body;

	memset(r, 0, sizeof *r);
	r->url = opt_lstring(L, opts, "url", WHO, OPT_REQUIRED, NULL);
	r->method = opt_lstring(L, opts, "method", WHO, 0, NULL);
	if (!r->method)
		r->method = "GET";
	r->body = opt_lstring(L, opts, "body", WHO, 0, &r->body_len);
	r->has_body = r->body != NULL;
	if (!r->has_body)
		lua_pushnil(L);
	body = lua_gettop(L);
	r->output = opt_lstring(L, opts, "output", WHO, 0, NULL);
	r->ca_file = opt_lstring(L, opts, "ca_file", WHO, 0, NULL);
	r->cert_file = opt_lstring(L, opts, "cert_file", WHO, 0, NULL);
	r->key_file = opt_lstring(L, opts, "key_file", WHO, 0, NULL);
	r->max_body =
		(long long)opt_number(L, opts, "max_body", WHO,
				      r->output ? -1 : DEFAULT_MAX_BODY, 1e18);
	r->timeout = opt_number(L, opts, "timeout", WHO, 300, 1e9);
	r->connect_timeout =
		opt_number(L, opts, "connect_timeout", WHO, 10, 1e9);
	r->follow_redirects = opt_boolean(L, opts, "follow_redirects");
	r->fresh_connect = opt_boolean(L, opts, "fresh_connect");
	r->insecure = opt_boolean(L, opts, "insecure");
	return body;
}

static void read_headers(lua_State *L, struct transfer *t, int opts)
{
	if (opt_table(L, opts, "headers", WHO)) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			const char *k;
			int rc;
			if (lua_type(L, -2) != LUA_TSTRING ||
			    !lua_isstring(L, -1))
				luaL_error(L, WHO ": headers must map "
						  "names to strings");
			k = lua_tostring(L, -2);
			rc = transfer_header(t, k, lua_tostring(L, -1));
			if (rc == -1)
				luaL_error(L, WHO ": invalid header '%s'", k);
			if (rc < 0)
				luaL_error(L, WHO ": out of memory");
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
}

/* Builds a transfer from the options table at `opts` and pushes it: a
 * userdata that owns every resource, so a Lua error here leaks nothing. */
static struct ltransfer *prepare(lua_State *L, int opts)
{
	struct ltransfer *lt;
	struct request r;
	const char *why;
	int top;

	luaL_checktype(L, opts, LUA_TTABLE);
	lt = lua_newuserdatauv(L, sizeof *lt, 2);
	memset(lt, 0, sizeof *lt);
	lt->ref = LUA_NOREF;
	luaL_setmetatable(L, TRANSFER_MT);
	top = lua_gettop(L);
	lua_pushvalue(L, read_request(L, opts, &r));
	lua_setiuservalue(L, top, 1); /* keeps the body alive */
	lt->t.loop = host_loop(L, WHO);
	read_headers(L, &lt->t, opts);
	why = transfer_setup(&lt->t, lt->t.loop, &r);
	if (why)
		luaL_error(L, WHO ": %s", why);
	lua_settop(L, top);
	return lt;
}

/* Frees what the transfer holds and forgets it; idempotent. */
static void release(lua_State *L, struct ltransfer *lt)
{
	if (lt->ref != LUA_NOREF) {
		luaL_unref(L, LUA_REGISTRYINDEX, lt->ref);
		lt->ref = LUA_NOREF;
		host_context(L)->inflight--;
	}
	if (lt->t.loop)
		transfer_release(&lt->t);
}

static struct ltransfer *check(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, TRANSFER_MT);
}

static int transfer_gc(lua_State *L)
{
	release(L, check(L, 1));
	return 0;
}

/* nil and {kind, message, curl_code}: the one failure shape of requests. */
static int push_failure(lua_State *L, struct transfer *t)
{
	char msg[1024];
	const char *kind = transfer_failure(t, msg, sizeof msg);

	luaL_pushfail(L);
	lua_createtable(L, 0, 3);
	lua_pushstring(L, kind);
	lua_setfield(L, -2, "kind");
	lua_pushstring(L, msg);
	lua_setfield(L, -2, "message");
	if (t->done || t->interrupted) {
		lua_pushinteger(L, t->interrupted ? 0 : (int)t->result);
		lua_setfield(L, -2, "curl_code");
	}
	return 2;
}

/* Splits the collected header block into res.headers (lower-case names,
 * repeats joined with ", ") and res.header_list (in order, as received). */
static void push_headers(lua_State *L, struct transfer *t)
{
	char *line = t->headers.p, *end = t->headers.p + t->headers.len;
	/* Sized for the lines on_header kept, all but the blank one that
	 * ends them: no table grows header by header. */
	int map, list, n = 0, lines = t->nheaders > 1 ? t->nheaders - 1 : 0;

	lua_createtable(L, 0, lines);
	map = lua_gettop(L);
	lua_createtable(L, lines, 0);
	list = lua_gettop(L);
	while (line && line < end) {
		char *eol = memchr(line, '\n', (size_t)(end - line));
		char *colon, *v, *ve;
		size_t i;
		if (!eol)
			eol = end;
		ve = eol;
		while (ve > line &&
		       (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		colon = memchr(line, ':', (size_t)(ve - line));
		if (colon && colon > line) {
			for (i = 0; line + i < colon; i++)
				line[i] = (char)((line[i] >= 'A' &&
						  line[i] <= 'Z')
							 ? line[i] + 32
							 : line[i]);
			v = colon + 1;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			lua_pushlstring(L, line, (size_t)(colon - line));
			lua_pushlstring(L, v, (size_t)(ve - v));
			lua_createtable(L, 2, 0);
			lua_pushvalue(L, -3);
			lua_rawseti(L, -2, 1);
			lua_pushvalue(L, -2);
			lua_rawseti(L, -2, 2);
			lua_rawseti(L, list, ++n);
			lua_pushvalue(L, -2);
			if (lua_rawget(L, map) == LUA_TSTRING) {
				lua_pushliteral(L, ", ");
				lua_pushvalue(L, -3);
				lua_concat(L, 3);
				lua_replace(L, -2);
			} else {
				lua_pop(L, 1);
			}
			lua_rawset(L, map);
		}
		line = eol + 1;
	}
}

static int push_response(lua_State *L, struct transfer *t)
{
	lua_createtable(L, 0, 4);
	lua_pushinteger(L, t->status);
	lua_setfield(L, -2, "status");
	push_headers(L, t);
	lua_setfield(L, -3, "header_list");
	lua_setfield(L, -2, "headers");
	lua_pushlstring(L, t->body.p ? t->body.p : "", t->body.len);
	lua_setfield(L, -2, "body");
	if (t->out_path && t->status >= 200 && t->status < 300) {
		lua_pushstring(L, t->out_path);
		lua_setfield(L, -2, "output");
		lua_pushinteger(L, (lua_Integer)t->received);
		lua_setfield(L, -2, "size");
	}
	return 1;
}

static int push_result(lua_State *L, struct ltransfer *lt)
{
	int n = transfer_finish(&lt->t) == 0 ? push_response(L, &lt->t)
					     : push_failure(L, &lt->t);
	release(L, lt);
	return n;
}

/* request(opts): outside the event loop, or in a coroutine of the user's
 * inside a task, the request runs the loop itself until its own answer. */
static int l_request(lua_State *L)
{
	struct ltransfer *lt = prepare(L, 1);

	if (transfer_start(&lt->t) == 0)
		loop_run(lt->t.loop, &lt->t);
	return push_result(L, lt);
}

/* start(opts [, owner]) -> transfer, started: on the loop, anchored in
 * the registry until finished or aborted; trainctl._loop's poll gives
 * back its owner (any value: the scheduler's task; the transfer itself
 * when none is given). One that could not start (started false) is for
 * finish at once, to say why. */
static int l_start(lua_State *L)
{
	struct ltransfer *lt;

	lua_settop(L, 2);
	lt = prepare(L, 1);
	lua_pushvalue(L, lua_isnil(L, 2) ? -1 : 2); /* no owner: itself */
	lua_setiuservalue(L, -2, 2);
	if (transfer_start(&lt->t) == 0) {
		lua_pushvalue(L, -1);
		lt->ref = luaL_ref(L, LUA_REGISTRYINDEX);
		host_context(L)->inflight++;
		lua_pushboolean(L, 1);
	} else {
		lua_pushboolean(L, 0);
	}
	return 2;
}

int host_push_owner(lua_State *L, struct transfer *t)
{
	struct ltransfer *lt = (struct ltransfer *)t;

	if (lt->ref == LUA_NOREF)
		return 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, lt->ref);
	lua_getiuservalue(L, -1, 2);
	lua_remove(L, -2);
	return 1;
}

static int l_finish(lua_State *L) { return push_result(L, check(L, 1)); }

static int l_abort(lua_State *L)
{
	struct ltransfer *lt = check(L, 1);

	lt->t.interrupted = 1;
	release(L, lt);
	return 0;
}

static int l_version(lua_State *L)
{
	const char *why = lazy_curl();

	lua_pushstring(L, why ? why : curl_version());
	return 1;
}

static const luaL_Reg funcs[] = {
	{ "request", l_request },      { "start", l_start },
	{ "finish", l_finish },	       { "abort", l_abort },
	{ "curl_version", l_version }, { NULL, NULL }
};

int luaopen_trainctl_curl(lua_State *L)
{
	if (luaL_newmetatable(L, TRANSFER_MT)) {
		lua_pushcfunction(L, transfer_gc);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, transfer_gc);
		lua_setfield(L, -2, "__close");
	}
	lua_pop(L, 1);
	luaL_newlib(L, funcs);
	lua_pushliteral(L, TRANSFER_USER_AGENT);
	lua_setfield(L, -2, "USER_AGENT");
	return 1;
}
