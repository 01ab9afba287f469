/* One HTTP transfer on libcurl, without Lua: options applied to an easy
 * handle, the response collected into C buffers (or a file), and the
 * failure described. The event loop (loop.h) runs transfers; a binding
 * turns the finished ones into values of its language.
 *
 * Callbacks only copy bytes, so nothing unwinds through libcurl. */
#ifndef TRAINCTL_TRANSFER_H
#define TRAINCTL_TRANSFER_H

#include <stdio.h>

#include "fs.h"
#include "lazy.h"

/* Sent unless the caller sets its own; trainctl.http sends it too. */
#define TRANSFER_USER_AGENT "trainctl/" TRAINCTL_VERSION

struct buf {
	char *p;
	size_t len, cap;
};

int buf_add(struct buf *b, const char *p, size_t n);
void buf_free(struct buf *b);

/* What a request asks for, read by a binding, then applied at once. */
struct request {
	const char *url, *method, *body, *output;
	const char *ca_file, *cert_file, *key_file;
	size_t body_len;
	int has_body, follow_redirects, fresh_connect, insecure;
	double timeout, connect_timeout; /* seconds */
	long long max_body;		 /* -1: no limit */
};

struct loop;

struct transfer {
	struct loop *loop;
	CURL *easy;
	struct curl_slist *req_headers;
	struct buf body, headers;
	size_t received;
	long long max_body;
	int nheaders, max_headers;
	size_t max_header_bytes;
	FILE *out;		   /* the output file, while it is written */
	struct fs_pending pending; /* out's file, until it is placed */
	char *out_path;
	int open_errno, write_errno;
	int in_multi, shard; /* in the loop, in which of its multi handles */
	int done, interrupted, too_large, has_expect, has_ua;
	CURLcode result;
	long status;
	char method[16];
	char where[512];
	char errbuf[CURL_ERROR_SIZE];
	struct transfer *prev_done, *next_done; /* the loop's finished list */
};

/* Adds a request header; -1 when the name or value cannot be sent (a
 * newline, a colon in the name), -2 out of memory. */
int transfer_header(struct transfer *t, const char *name, const char *value);

/* Applies `r` to a new easy handle from the loop's pool. NULL on
 * success, else what went wrong (libcurl missing, out of memory). */
const char *transfer_setup(struct transfer *t, struct loop *l,
			   const struct request *r);

/* Hands the transfer to the loop; -1 when it cannot start (its output
 * file could not be made: transfer_open_error says why). */
int transfer_start(struct transfer *t);

/* After the transfer is done: 0 when a response came (status in
 * t->status; an output file moved into place for a 2xx), -1 when it
 * failed (transfer_failure describes it). */
int transfer_finish(struct transfer *t);

/* The failure as a kind ("network", "timeout", "tls", "too_large", "io",
 * "interrupted") and a one-line message naming the method and where. */
const char *transfer_failure(struct transfer *t, char *msg, size_t n);

/* Aborts the transfer if it runs and frees all it holds; idempotent. */
void transfer_release(struct transfer *t);

#endif
