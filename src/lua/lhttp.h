/* The transfer shared by lhttp.c (which builds and finishes it) and
 * lloop.c (which drives many at once). */
#ifndef TRAINCTL_LHTTP_H
#define TRAINCTL_LHTTP_H

#include <stdio.h>

#include "lazy.h"
#include <lua.h>

struct buf {
	char *p;
	size_t len, cap;
};

struct transfer {
	CURL *easy;
	struct curl_slist *req_headers;
	struct buf body, headers;
	size_t received;
	long long max_body;
	int nheaders, max_headers;
	size_t max_header_bytes;
	FILE *out;
	char *tmp_path, *out_path;
	int open_errno, write_errno;
	int in_multi, done, interrupted, too_large;
	CURLcode result;
	char method[16];
	char where[512];
	char errbuf[CURL_ERROR_SIZE];
	int queued;
	struct transfer *next_done;
};

CURLM *http_multi(void);
struct transfer *http_prepare(lua_State *L, int opts);
int http_start(struct transfer *t);
struct transfer *http_next_done(void);
struct transfer *http_check(lua_State *L, int idx);
void http_abort(struct transfer *t);
int http_push_result(lua_State *L, struct transfer *t);
int http_continue(lua_State *L, int status, lua_KContext ctx);
extern int (*http_yield_hook)(lua_State *L, struct transfer *t);

#endif
