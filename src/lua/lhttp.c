/* trainctl._http: one HTTP request on libcurl, the native half of
 * trainctl.http (retries, signing and decoding are Lua).
 *
 * Every transfer runs on one shared multi handle, so connections, DNS and
 * TLS sessions are reused across requests. Outside the event loop a request
 * drives the multi handle itself until its own transfer is done; inside a
 * task, lloop.c drives it and the task yields.
 *
 * Callbacks never call Lua: they only copy bytes into C buffers, so no Lua
 * error can unwind through libcurl. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lazy.h"
#include <lauxlib.h>

#include "host.h"
#include "lhttp.h"

#define TRANSFER_MT "trainctl.transfer"
#define DEFAULT_MAX_BODY (64 * 1024 * 1024)
#define POOL_MAX 64

static CURLM *multi;
static void unqueue(struct transfer *t);
static CURL *pool[POOL_MAX];
static int npool;

static int buf_add(struct buf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *q;
		while (cap < b->len + n + 1)
			cap *= 2;
		q = realloc(b->p, cap);
		if (!q)
			return -1;
		b->p = q, b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL, b->len = b->cap = 0;
}

CURLM *http_multi(void)
{
	if (!multi) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		multi = curl_multi_init();
		curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 256L);
	}
	return multi;
}

static CURL *easy_get(void)
{
	if (npool > 0) {
		CURL *e = pool[--npool];
		curl_easy_reset(e);
		return e;
	}
	return curl_easy_init();
}

static void easy_put(CURL *e)
{
	if (npool < POOL_MAX)
		pool[npool++] = e;
	else
		curl_easy_cleanup(e);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct transfer *t = ud;
	size_t len = size * n;

	if (t->max_body >= 0 && t->received + len > (size_t)t->max_body) {
		t->too_large = 1;
		return CURL_WRITEFUNC_ERROR;
	}
	t->received += len;
	if (t->out) {
		if (fwrite(p, 1, len, t->out) != len) {
			t->write_errno = errno ? errno : EIO;
			return CURL_WRITEFUNC_ERROR;
		}
		return len;
	}
	return buf_add(&t->body, p, len) ? CURL_WRITEFUNC_ERROR : len;
}

/* Connections are not inherited by the programs a script starts
 * (os.execute, io.popen): a child that outlives the request would keep
 * the connection open, and the server waiting on it. */
static int on_socket(void *ud, curl_socket_t fd, curlsocktype purpose)
{
	int flags = fcntl(fd, F_GETFD);

	(void)ud, (void)purpose;
	if (flags >= 0)
		fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
	return CURL_SOCKOPT_OK;
}

/* Headers of every response are collected; a new status line (after a
 * 100 Continue or a proxy CONNECT) starts the list again. */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct transfer *t = ud;
	size_t len = size * n;

	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		t->headers.len = 0;
		t->nheaders = 0;
		return len;
	}
	if (++t->nheaders > t->max_headers ||
	    t->headers.len + len > t->max_header_bytes) {
		t->too_large = 1;
		return 0;
	}
	return buf_add(&t->headers, p, len) ? 0 : len;
}

static void transfer_release(struct transfer *t)
{
	if (t->queued)
		unqueue(t);
	if (t->easy) {
		if (t->in_multi)
			curl_multi_remove_handle(multi, t->easy);
		t->in_multi = 0;
		easy_put(t->easy);
		t->easy = NULL;
	}
	/* NULL when a bad option raised before libcurl was even loaded. */
	if (t->req_headers)
		curl_slist_free_all(t->req_headers);
	t->req_headers = NULL;
	buf_free(&t->body);
	buf_free(&t->headers);
	if (t->out) {
		fclose(t->out);
		t->out = NULL;
	}
	if (t->tmp_path) {
		unlink(t->tmp_path);
		free(t->tmp_path);
		t->tmp_path = NULL;
	}
	free(t->out_path);
	t->out_path = NULL;
}

void http_abort(struct transfer *t)
{
	t->interrupted = 1;
	transfer_release(t);
}

static int transfer_gc(lua_State *L)
{
	transfer_release(luaL_checkudata(L, 1, TRANSFER_MT));
	return 0;
}

static const char *optstr(lua_State *L, int t, const char *k)
{
	const char *s;

	lua_getfield(L, t, k);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return NULL;
	}
	/* Not lua_isstring: a number converted here would be a new string
	 * that nothing keeps alive once popped. */
	if (lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "http.request: '%s' must be a string", k);
	s = lua_tostring(L, -1);
	lua_pop(L, 1); /* the string stays referenced by the options table */
	return s;
}

static double optnum(lua_State *L, int t, const char *k, double def, double max)
{
	double v;
	int ok;

	lua_getfield(L, t, k);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return def;
	}
	v = lua_tonumberx(L, -1, &ok);
	if (!ok || !(v >= 0))
		luaL_error(L, "http.request: '%s' must be a number >= 0", k);
	lua_pop(L, 1);
	return v < max ? v : max; /* beyond, the integer casts are undefined */
}

static int optbool(lua_State *L, int t, const char *k)
{
	int v;

	lua_getfield(L, t, k);
	v = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return v;
}

static void add_header(lua_State *L, struct transfer *t, const char *name,
		       const char *value)
{
	struct curl_slist *s;

	if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
		luaL_error(L, "http.request: invalid header '%s'", name);
	lua_pushfstring(L, *value ? "%s: %s" : "%s;", name, value);
	s = curl_slist_append(t->req_headers, lua_tostring(L, -1));
	lua_pop(L, 1);
	if (!s)
		luaL_error(L, "http.request: out of memory");
	t->req_headers = s;
}

static void set_headers(lua_State *L, struct transfer *t, int opts)
{
	int has_expect = 0, has_ua = 0;

	lua_getfield(L, opts, "headers");
	if (lua_istable(L, -1)) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			const char *k, *v;
			if (lua_type(L, -2) != LUA_TSTRING ||
			    !lua_isstring(L, -1))
				luaL_error(L, "http.request: headers must map "
					      "names to strings");
			k = lua_tostring(L, -2);
			v = lua_tostring(L, -1);
			has_expect |= strcasecmp(k, "expect") == 0;
			has_ua |= strcasecmp(k, "user-agent") == 0;
			add_header(L, t, k, v);
			lua_pop(L, 1);
		}
	} else if (!lua_isnil(L, -1)) {
		luaL_error(L, "http.request: 'headers' must be a table");
	}
	lua_pop(L, 1);
	/* A request body is sent at once: no 100-continue round trip. */
	if (!has_expect)
		t->req_headers = curl_slist_append(t->req_headers, "Expect:");
	if (!has_ua)
		t->req_headers = curl_slist_append(
			t->req_headers,
			"User-Agent: trainctl/" TRAINCTL_VERSION);
}

static void open_output(lua_State *L, struct transfer *t, const char *path)
{
	size_t n = strlen(path) + 16;
	int fd;

	t->out_path = strdup(path);
	t->tmp_path = malloc(n);
	if (!t->out_path || !t->tmp_path)
		luaL_error(L, "http.request: out of memory");
	snprintf(t->tmp_path, n, "%s.tmp.XXXXXX", path);
	fd = mkstemp(t->tmp_path);
	if (fd < 0) {
		t->open_errno = errno;
		free(t->tmp_path);
		t->tmp_path = NULL;
		return;
	}
	/* mkstemp makes 0600; the finished file gets the mode any new file
	 * would (0666 less the umask), as curl -o gives it. */
	{
		mode_t mask = umask(0);
		umask(mask);
		fchmod(fd, 0666 & ~mask);
	}
	t->out = fdopen(fd, "wb");
	if (!t->out) {
		t->open_errno = errno;
		close(fd);
	}
}

/* The error message names the origin and path, never the query (nor
 * the fragment) and never the user:password of the URL. */
static void set_where(struct transfer *t, const char *url)
{
	const char *end = url + strcspn(url, "?#");
	const char *host = strstr(url, "://");
	const char *rest, *p;

	host = host && host + 3 <= end ? host + 3 : url;
	rest = host;
	for (p = host; p < end && *p != '/'; p++)
		if (*p == '@')
			rest = p + 1;
	snprintf(t->where, sizeof t->where, "%.*s%.*s", (int)(host - url), url,
		 (int)(end - rest), rest);
}

/* Builds a transfer from the options table at `opts` and pushes it (a
 * userdata owning every resource, so a Lua error here leaks nothing). */
struct transfer *http_prepare(lua_State *L, int opts)
{
	struct transfer *t;
	const char *method, *url, *body, *output, *ca, *cert, *key;
	size_t blen = 0;
	CURL *e;

	luaL_checktype(L, opts, LUA_TTABLE);
	t = lua_newuserdatauv(L, sizeof *t, 1);
	memset(t, 0, sizeof *t);
	luaL_setmetatable(L, TRANSFER_MT);
	lua_pushvalue(L, opts);
	lua_setiuservalue(L, -2, 1); /* keeps option strings alive */

	url = optstr(L, opts, "url");
	if (!url)
		luaL_error(L, "http.request: 'url' is required");
	method = optstr(L, opts, "method");
	if (!method)
		method = "GET";
	lua_getfield(L, opts, "body");
	if (!lua_isnil(L, -1))
		body = luaL_checklstring(L, -1, &blen);
	else
		body = NULL;
	lua_pop(L, 1);
	output = optstr(L, opts, "output");
	ca = optstr(L, opts, "ca_file");
	cert = optstr(L, opts, "cert_file");
	key = optstr(L, opts, "key_file");
	t->max_body = (long long)optnum(L, opts, "max_body",
					output ? -1 : DEFAULT_MAX_BODY, 1e18);
	t->max_headers = 256;
	t->max_header_bytes = 256 * 1024;
	snprintf(t->method, sizeof t->method, "%s", method);

	{
		const char *why = lazy_curl();
		if (why)
			luaL_error(L, "http.request: %s", why);
	}
	http_multi();
	e = t->easy = easy_get();
	if (!e)
		luaL_error(L, "http.request: cannot create a curl handle");
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, on_socket);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION,
			 (long)optbool(L, opts, "follow_redirects"));
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
			 (long)(optnum(L, opts, "timeout", 300, 1e9) * 1000));
	curl_easy_setopt(
		e, CURLOPT_CONNECTTIMEOUT_MS,
		(long)(optnum(L, opts, "connect_timeout", 10, 1e9) * 1000));
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	/* libcurl silently resends a request whose reused connection died
	 * before any answer: for a create, that could create twice. Callers
	 * ask for a new connection where a repeat is not safe. */
	if (optbool(L, opts, "fresh_connect"))
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
	if (ca)
		curl_easy_setopt(e, CURLOPT_CAINFO, ca);
	/* A client certificate (PEM), for servers that ask for one (etcd
	 * with --client-cert-auth). */
	if (cert)
		curl_easy_setopt(e, CURLOPT_SSLCERT, cert);
	if (key)
		curl_easy_setopt(e, CURLOPT_SSLKEY, key);
	if (optbool(L, opts, "insecure")) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (strcmp(method, "GET") == 0 && !body) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else {
		if (body || strcmp(method, "POST") == 0 ||
		    strcmp(method, "PUT") == 0 ||
		    strcmp(method, "PATCH") == 0) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)blen);
			curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS,
					 body ? body : "");
		}
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	}
	set_headers(L, t, opts);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->req_headers);
	if (output) {
		/* libcurl reads 16 KiB per call by default; a download to a
		 * file reads 128 KiB (curl's own tool reads 100 KiB), with
		 * a sixth of the recv, poll and write calls. */
		curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 128L * 1024);
		open_output(L, t, output);
	}
	set_where(t, url);
	return t;
}

int http_start(struct transfer *t)
{
	if (t->out_path && !t->out)
		return -1; /* reported by http_push_result */
	if (curl_multi_add_handle(multi, t->easy) != CURLM_OK)
		return -1;
	t->in_multi = 1;
	return 0;
}

/* Finished transfers that a blocking request reaped on behalf of tasks;
 * the event loop collects them with http_next_done. */
static struct transfer *done_list;

static void unqueue(struct transfer *t)
{
	struct transfer **p;

	for (p = &done_list; *p; p = &(*p)->next_done)
		if (*p == t) {
			*p = t->next_done;
			break;
		}
	t->queued = 0;
}

static struct transfer *reap_one(void)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(multi, &left))) {
		struct transfer *t;
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
				  (char **)&t);
		t->result = m->data.result;
		t->done = 1;
		curl_multi_remove_handle(multi, m->easy_handle);
		t->in_multi = 0;
		return t;
	}
	return NULL;
}

struct transfer *http_next_done(void)
{
	struct transfer *t = done_list;

	if (t) {
		unqueue(t);
		return t;
	}
	return multi ? reap_one() : NULL;
}

/* Runs the multi handle until `t` is done or a signal interrupts; other
 * transfers that finish meanwhile are queued for the event loop. */
static void run_blocking(struct transfer *t)
{
	int running;

	while (!t->done) {
		struct transfer *o;
		curl_multi_perform(multi, &running);
		while ((o = reap_one())) {
			if (o != t && !o->queued) {
				o->queued = 1;
				o->next_done = done_list;
				done_list = o;
			}
		}
		if (t->done)
			break;
		if (host_interrupted()) {
			t->interrupted = 1;
			break;
		}
		curl_multi_poll(multi, NULL, 0, 100, NULL);
	}
}

struct transfer *http_check(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, TRANSFER_MT);
}

static void push_err(lua_State *L, const char *kind, const char *msg, int code)
{
	luaL_pushfail(L);
	lua_createtable(L, 0, 3);
	lua_pushstring(L, kind);
	lua_setfield(L, -2, "kind");
	lua_pushstring(L, msg);
	lua_setfield(L, -2, "message");
	lua_pushinteger(L, code);
	lua_setfield(L, -2, "curl_code");
}

static const char *kind_of(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return "timeout";
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_USE_SSL_FAILED:
		return "tls";
	default:
		return "network";
	}
}

/* libcurl refuses a header line over 100 KiB (CURL_MAX_HTTP_HEADER) as
 * out of memory, or from 8.6 as CURLE_TOO_LARGE: an answer too large. */
static int curl_too_large(CURLcode rc)
{
#if LIBCURL_VERSION_NUM >= 0x080600
	if (rc == CURLE_TOO_LARGE)
		return 1;
#endif
	return rc == CURLE_OUT_OF_MEMORY;
}

static int push_failure(lua_State *L, struct transfer *t)
{
	const char *detail =
		t->errbuf[0] ? t->errbuf : curl_easy_strerror(t->result);

	if (t->interrupted) {
		push_err(L, "interrupted", "request interrupted", 0);
		lua_pushfstring(L, "%s %s: interrupted", t->method, t->where);
	} else if (t->too_large) {
		push_err(L, "too_large", "", (int)t->result);
		lua_pushfstring(L, "%s %s: response exceeds the size limit",
				t->method, t->where);
	} else if (curl_too_large(t->result)) {
		push_err(L, "too_large", "", (int)t->result);
		lua_pushfstring(L,
				"%s %s: response exceeds the size limit "
				"(libcurl: %s)",
				t->method, t->where, detail);
	} else if (t->write_errno) {
		push_err(L, "io", "", (int)t->result);
		lua_pushfstring(L, "%s %s: writing %s: %s", t->method, t->where,
				t->out_path, strerror(t->write_errno));
	} else {
		push_err(L, kind_of(t->result), "", (int)t->result);
		lua_pushfstring(L, "%s %s: %s", t->method, t->where, detail);
	}
	lua_setfield(L, -2, "message");
	return 2;
}

/* Splits the collected header block into res.headers (lower-case names,
 * repeats joined with ", ") and res.header_list (in order, as received). */
static void push_headers(lua_State *L, struct transfer *t)
{
	char *line = t->headers.p, *end = t->headers.p + t->headers.len;
	int map, list, n = 0;

	lua_newtable(L);
	map = lua_gettop(L);
	lua_newtable(L);
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

/* Moves the finished output file into place, or, for an error status,
 * reads the (bounded) error body back so the caller can decode it. */
static int finish_output(lua_State *L, struct transfer *t, long status)
{
	int ok = status >= 200 && status < 300;
	FILE *f = t->out;

	t->out = NULL;
	if (fflush(f) != 0 || (ok && fsync(fileno(f)) != 0)) {
		t->write_errno = errno;
		fclose(f);
		return -1;
	}
	if (!ok) {
		char chunk[8192];
		size_t n;
		rewind(f);
		while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 &&
		       t->body.len < 1 << 20)
			buf_add(&t->body, chunk, n);
		fclose(f);
		return 0;
	}
	if (fclose(f) != 0 || rename(t->tmp_path, t->out_path) != 0) {
		t->write_errno = errno;
		return -1;
	}
	free(t->tmp_path);
	t->tmp_path = NULL;
	(void)L;
	return 0;
}

int http_push_result(lua_State *L, struct transfer *t)
{
	long status = 0;

	if (t->out_path && !t->out && !t->done) {
		luaL_pushfail(L);
		lua_pushfstring(L, "cannot create %s: %s", t->out_path,
				strerror(t->open_errno));
		lua_createtable(L, 0, 2);
		lua_pushliteral(L, "io");
		lua_setfield(L, -2, "kind");
		lua_insert(L, -2);
		lua_setfield(L, -2, "message");
		return 2;
	}
	if (t->interrupted || !t->done || t->result != CURLE_OK)
		return push_failure(L, t);
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	if (t->out && finish_output(L, t, status) < 0)
		return push_failure(L, t);
	lua_createtable(L, 0, 4);
	lua_pushinteger(L, status);
	lua_setfield(L, -2, "status");
	push_headers(L, t);
	lua_setfield(L, -3, "header_list");
	lua_setfield(L, -2, "headers");
	lua_pushlstring(L, t->body.p ? t->body.p : "", t->body.len);
	lua_setfield(L, -2, "body");
	if (t->out_path && status >= 200 && status < 300) {
		lua_pushstring(L, t->out_path);
		lua_setfield(L, -2, "output");
		lua_pushinteger(L, (lua_Integer)t->received);
		lua_setfield(L, -2, "size");
	}
	return 1;
}

/* Set by lloop.c: hands the transfer to the event loop and yields (never
 * returning) when the caller runs inside a task; returns -1 when there is
 * no loop to yield to. */
int (*http_yield_hook)(lua_State *L, struct transfer *t);

static int request_done(lua_State *L, int status, lua_KContext ctx)
{
	struct transfer *t = (struct transfer *)ctx;
	int n;

	(void)status;
	n = http_push_result(L, t);
	transfer_release(t);
	return n;
}

static int l_request(lua_State *L);

/* A task that waited for a free slot makes its request now. */
static int request_again(lua_State *L, int status, lua_KContext ctx)
{
	(void)status, (void)ctx;
	return l_request(L);
}

static int l_request(lua_State *L)
{
	int in_task = loop_can_yield(L, "http.request");
	struct transfer *t;
	int n;

	/* Past the loop's limit of transfers in flight a task waits for a
	 * slot, holding nothing but its coroutine: ten thousand jobs polled
	 * at once cost ten thousand coroutines, not ten thousand handles,
	 * buffers and connections. */
	if (in_task && loop_full()) {
		lua_pushliteral(L, "slot");
		return lua_yieldk(L, 1, 0, request_again);
	}
	t = http_prepare(L, 1);
	if (http_start(t) == 0) {
		if (in_task && http_yield_hook)
			http_yield_hook(L, t); /* yields; does not return */
		run_blocking(t);
	}
	n = http_push_result(L, t);
	transfer_release(t);
	return n;
}

int http_continue(lua_State *L, int status, lua_KContext ctx)
{
	return request_done(L, status, ctx);
}

static int l_version(lua_State *L)
{
	const char *why = lazy_curl();

	lua_pushstring(L, why ? why : curl_version());
	return 1;
}

static int module_gc(lua_State *L)
{
	(void)L;
	while (npool > 0)
		curl_easy_cleanup(pool[--npool]);
	if (multi) {
		curl_multi_cleanup(multi);
		multi = NULL;
		curl_global_cleanup();
	}
	return 0;
}

static const luaL_Reg funcs[] = { { "request", l_request },
				  { "curl_version", l_version },
				  { NULL, NULL } };

int luaopen_trainctl_http(lua_State *L)
{
	if (luaL_newmetatable(L, TRANSFER_MT)) {
		lua_pushcfunction(L, transfer_gc);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, transfer_gc);
		lua_setfield(L, -2, "__close");
	}
	lua_pop(L, 1);
	luaL_newlib(L, funcs);
	/* The multi handle and the pool are freed when the state closes.
	 * Opening the module again (a test clearing package.loaded) must not
	 * replace the sentinel: collecting the old one would close the multi
	 * handle under transfers still in flight. */
	if (lua_getfield(L, LUA_REGISTRYINDEX, "trainctl.http.state") ==
	    LUA_TNIL) {
		lua_newtable(L);
		lua_newtable(L);
		lua_pushcfunction(L, module_gc);
		lua_setfield(L, -2, "__gc");
		lua_setmetatable(L, -2);
		lua_setfield(L, LUA_REGISTRYINDEX, "trainctl.http.state");
	}
	lua_pop(L, 1);
	return 1;
}
