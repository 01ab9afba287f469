/* The libcurl floor: the requests of the sequential and concurrent
 * benchmarks (same URL, same headers, one multi handle, easy handles
 * reset and reused as trainctl does) with nothing else: no Lua, no
 * signing, no JSON. What trainctl reaches is measured against it to tell
 * libcurl's share of a figure from the host's. run.sh builds it.
 *
 * By default it drives libcurl as trainctl's loop did at first
 * (curl_multi_perform + curl_multi_poll, which visit every transfer on
 * every turn); "epoll" drives it with curl_multi_socket_action and epoll
 * (a turn costs the sockets that are ready), as the loop does now. The
 * connection cache holds CONCURRENCY connections (at least 256), so no
 * transfer reconnects.
 *
 * Built with -DFLOOR_CJSON (and linked with Lua, lua-cjson and
 * libcrypto), two more modes on the epoll floor: "cjson" also keeps each
 * answer and decodes it with lua-cjson's decode in a Lua state on
 * trainctl's allocator (slab.c); "work" does that and signs each request
 * as trainctl.sign.ncp_v2 does (HMAC-SHA256 on a MAC context re-keyed
 * per request, as src/core/crypto.c keeps it, then base64). "work" is
 * what the sequential and concurrent figures ask of every request (sign,
 * send, decode) in C with nothing else: the most any host that signs and
 * decodes with these libraries can reach.
 *
 *   curl_floor URL N CONCURRENCY [perform|epoll|cjson|work]
 *     -> {"requests":N,"seconds":S,"rate":R,"failed":F,"connects":C}
 * The exit status is 1 when a request failed.
 */
#define _GNU_SOURCE /* clock_gettime, epoll */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#ifdef FLOOR_CJSON
#include <lauxlib.h>
#include <lua.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "slab.h"

int luaopen_cjson(lua_State *L);
static lua_State *L;
static int decode_ref = LUA_NOREF;
static EVP_MAC_CTX *mac;
static EVP_MAC *hmac;
static struct slab *slab;
#endif

/* What a transfer carries: its header list, and its answer when decoded. */
struct slot {
	struct curl_slist *h;
	char *body;
	size_t len, cap;
};

static int use_epoll, use_cjson, use_sign, ep = -1;
static double timer_at = -1; /* when libcurl's timer falls due; -1: none */
static long connects;      /* new connections, CURLINFO_NUM_CONNECTS */

static const char *const headers[] = {
	"content-type: application/json",
	"user-agent: trainctl",
	"x-ncp-apigw-timestamp: 1718096400000",
	"x-ncp-iam-access-key: bench-access-key",
	"x-ncp-apigw-signature-v2: "
	"0b4Ltk9K1OQ5BvUhIylcU1aOBw+Di7HCIsSaRQXUaN4=",
	"Expect:",
	NULL,
};

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
	(void)p, (void)ud;
	return size * n;
}

static size_t keep(char *p, size_t size, size_t n, void *ud)
{
	struct slot *s = ud;
	size_t len = size * n;

	if (s->len + len > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		char *b;
		while (cap < s->len + len)
			cap *= 2;
		if (!(b = realloc(s->body, cap)))
			return 0;
		s->body = b, s->cap = cap;
	}
	memcpy(s->body + s->len, p, len);
	s->len += len;
	return len;
}

/* Decodes s's answer with lua-cjson as a Lua caller would; 0 when it
 * decoded into a table. */
static int decode(struct slot *s)
{
#ifdef FLOOR_CJSON
	int bad;

	lua_rawgeti(L, LUA_REGISTRYINDEX, decode_ref);
	lua_pushlstring(L, s->body, s->len);
	bad = lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1);
	lua_pop(L, 1);
	s->len = 0;
	return bad;
#else
	(void)s;
	return 1;
#endif
}

/* The signature headers of a GET of url's path, as ncp_v2 makes them:
 * base64(HMAC-SHA256(secret, "GET PATH\nMILLIS\nACCESS")). */
static struct curl_slist *sign(struct curl_slist *h, const char *url)
{
#ifdef FLOOR_CJSON
	static const char secret[] = "bench-secret-key";
	const char *host = strstr(url, "://");
	const char *path = host ? strchr(host + 3, '/') : NULL;
	char msg[1024], line[128];
	unsigned char md[EVP_MAX_MD_SIZE];
	size_t mdlen = 0;
	struct timespec ts;
	long long ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	snprintf(msg, sizeof msg, "GET %s\n%lld\nbench-access-key",
		 path ? path : "/", ms);
	if (!EVP_MAC_init(mac, (const unsigned char *)secret,
			  sizeof secret - 1, NULL) ||
	    !EVP_MAC_update(mac, (const unsigned char *)msg, strlen(msg)) ||
	    !EVP_MAC_final(mac, md, &mdlen, sizeof md))
		return h;
	snprintf(line, sizeof line, "x-ncp-apigw-timestamp: %lld", ms);
	h = curl_slist_append(h, line);
	memcpy(line, "x-ncp-apigw-signature-v2: ", 26);
	EVP_EncodeBlock((unsigned char *)line + 26, md, (int)mdlen);
	return curl_slist_append(h, line);
#else
	(void)url;
	return h;
#endif
}

/* Each request builds its header list and options afresh, as a request
 * through trainctl._http does. */
static void start(CURLM *m, CURL *e, const char *url, struct slot *s)
{
	int i;

	curl_slist_free_all(s->h);
	s->h = NULL;
	s->len = 0;
	for (i = 0; headers[i]; i++)
		if (!use_sign || strncmp(headers[i], "x-ncp-apigw-", 12) != 0)
			s->h = curl_slist_append(s->h, headers[i]);
	if (use_sign)
		s->h = sign(s->h, url);
	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, use_cjson ? keep : discard);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PRIVATE, s);
	curl_multi_add_handle(m, e);
}

/* CURLMOPT_SOCKETFUNCTION: watch s for what libcurl asks. socketp is
 * non-NULL once s is in the epoll set. */
static int on_socket(CURL *e, curl_socket_t s, int what, void *ud, void *socketp)
{
	static char in_set;
	struct epoll_event ev;
	CURLM *m = ud;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
		curl_multi_assign(m, s, NULL);
		return 0;
	}
	memset(&ev, 0, sizeof ev);
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) |
		    (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
	ev.data.fd = s;
	if (socketp) {
		epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
	} else {
		epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
		curl_multi_assign(m, s, &in_set);
	}
	return 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CURLMOPT_TIMERFUNCTION */
static int on_timer(CURLM *m, long ms, void *ud)
{
	(void)m, (void)ud;
	timer_at = ms < 0 ? -1 : now() + ms / 1e3;
	return 0;
}

/* One turn of the loop: the sockets that are ready, or the timer. */
static void turn(CURLM *m)
{
	struct epoll_event evs[256];
	int i, n, running, wait = 1000;

	if (!use_epoll) {
		curl_multi_perform(m, &running);
		return;
	}
	if (timer_at >= 0) {
		double d = timer_at - now();
		wait = d <= 0 ? 0 : (int)(d * 1e3) + 1;
	}
	n = epoll_wait(ep, evs, 256, wait);
	for (i = 0; i < n; i++) {
		int flags = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
			    (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
			    (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
		curl_multi_socket_action(m, evs[i].data.fd, flags, &running);
	}
	if (timer_at >= 0 && now() >= timer_at) {
		timer_at = -1;
		curl_multi_socket_action(m, CURL_SOCKET_TIMEOUT, 0, &running);
	}
}

/* Runs n requests with c in flight; returns the number that failed. */
static int run(CURLM *m, const char *url, int n, int c)
{
	CURL **easy = calloc((size_t)c, sizeof *easy);
	struct slot *slots = calloc((size_t)c, sizeof *slots);
	int i, started = 0, done = 0, failed = 0;

	for (i = 0; i < c && started < n; i++, started++) {
		easy[i] = curl_easy_init();
		start(m, easy[i], url, &slots[i]);
	}
	while (done < n) {
		CURLMsg *msg;
		int left;
		turn(m);
		while ((msg = curl_multi_info_read(m, &left))) {
			struct slot *sl;
			long status = 0, conns = 0;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle,
					  CURLINFO_RESPONSE_CODE, &status);
			curl_easy_getinfo(msg->easy_handle,
					  CURLINFO_NUM_CONNECTS, &conns);
			connects += conns;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
					  (char **)&sl);
			if ((msg->data.result != CURLE_OK || status != 200 ||
			     (use_cjson && decode(sl))) &&
			    !failed++)
				fprintf(stderr, "curl_floor: first failure: %s, HTTP %ld%s\n",
					curl_easy_strerror(msg->data.result),
					status, use_cjson ? " (or not decoded)" : "");
			curl_multi_remove_handle(m, msg->easy_handle);
			done++;
			if (started < n) {
				started++;
				start(m, msg->easy_handle, url, sl);
			}
		}
		if (done < n && !use_epoll)
			curl_multi_poll(m, NULL, 0, 1000, NULL);
	}
	for (i = 0; i < c; i++) {
		if (easy[i])
			curl_easy_cleanup(easy[i]);
		curl_slist_free_all(slots[i].h);
		free(slots[i].body);
	}
	free(easy);
	free(slots);
	return failed;
}

int main(int argc, char **argv)
{
	CURLM *m;
	static const char *const modes[] = { "perform", "epoll", "cjson",
					     "work", NULL };
	double t0, seconds;
	int n, c, failed, mode = 0;

	if (argc == 5)
		while (modes[mode] && strcmp(argv[4], modes[mode]) != 0)
			mode++;
	if (argc < 4 || argc > 5 || (n = atoi(argv[2])) < 1 ||
	    (c = atoi(argv[3])) < 1 || !modes[mode]) {
		fprintf(stderr, "usage: curl_floor URL N CONCURRENCY "
				"[perform|epoll|cjson|work]\n");
		return 2;
	}
	/* each way does what the one before it does, and more */
	use_epoll = mode >= 1, use_cjson = mode >= 2, use_sign = mode >= 3;
	if (use_cjson) {
#ifdef FLOOR_CJSON
		OSSL_PARAM params[] = {
			OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
							 (char *)"SHA256", 0),
			OSSL_PARAM_construct_end(),
		};
		if (!(hmac = EVP_MAC_fetch(NULL, "HMAC", NULL)) ||
		    !(mac = EVP_MAC_CTX_new(hmac)) ||
		    !EVP_MAC_CTX_set_params(mac, params)) {
			fprintf(stderr, "curl_floor: no HMAC-SHA256\n");
			return 1;
		}
		if (!(slab = slab_new()) ||
		    !(L = lua_newstate(slab_realloc, slab))) {
			fprintf(stderr, "curl_floor: no Lua state\n");
			return 1;
		}
		luaL_requiref(L, "cjson", luaopen_cjson, 0);
		lua_getfield(L, -1, "decode");
		decode_ref = luaL_ref(L, LUA_REGISTRYINDEX);
		lua_pop(L, 1);
#else
		fprintf(stderr, "curl_floor: built without lua-cjson "
				"(-DFLOOR_CJSON)\n");
		return 2;
#endif
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	m = curl_multi_init();
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, c > 256 ? (long)c : 256L);
	if (use_epoll) {
		ep = epoll_create1(0);
		curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_socket);
		curl_multi_setopt(m, CURLMOPT_SOCKETDATA, m);
		curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_timer);
	}
	/* Connect first, as the other clients do outside their timing. */
	if (run(m, argv[1], c, c) != 0) {
		fprintf(stderr, "curl_floor: warm-up requests failed\n");
		return 1;
	}
	t0 = now();
	failed = run(m, argv[1], n, c);
	seconds = now() - t0;
	printf("{\"requests\":%d,\"seconds\":%.6f,\"rate\":%.1f,"
	       "\"failed\":%d,\"connects\":%ld}\n",
	       n, seconds, n / seconds, failed, connects);
	if (failed) {
		fprintf(stderr, "curl_floor: %d of %d requests failed\n",
			failed, n);
		return 1;
	}
	curl_multi_cleanup(m);
	curl_global_cleanup();
#ifdef FLOOR_CJSON
	if (L) {
		lua_close(L);
		slab_free(slab);
		EVP_MAC_CTX_free(mac);
		EVP_MAC_free(hmac);
	}
#endif
	return 0;
}
