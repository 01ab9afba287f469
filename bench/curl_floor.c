/* The libcurl floor: the requests of the sequential and concurrent
 * benchmarks (same URL, same headers, one multi handle, easy handles
 * reset and reused as trainctl does) with nothing else: no Lua, no
 * signing, no JSON. What trainctl reaches is measured against it to tell
 * libcurl's share of a figure from the host's. run.sh builds it.
 *
 *   curl_floor URL N CONCURRENCY   ->   {"requests":N,"seconds":S,"rate":R}
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Each request builds its header list and options afresh, as a request
 * through trainctl._http does. */
static void start(CURLM *m, CURL *e, const char *url, struct curl_slist **h)
{
	int i;

	curl_slist_free_all(*h);
	*h = NULL;
	for (i = 0; headers[i]; i++)
		*h = curl_slist_append(*h, headers[i]);
	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, *h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PRIVATE, h);
	curl_multi_add_handle(m, e);
}

/* Runs n requests with c in flight; returns the number that failed. */
static int run(CURLM *m, const char *url, int n, int c)
{
	CURL **easy = calloc((size_t)c, sizeof *easy);
	struct curl_slist **hs = calloc((size_t)c, sizeof *hs);
	int i, started = 0, done = 0, failed = 0, running;

	for (i = 0; i < c && started < n; i++, started++) {
		easy[i] = curl_easy_init();
		start(m, easy[i], url, &hs[i]);
	}
	while (done < n) {
		CURLMsg *msg;
		int left;
		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &left))) {
			struct curl_slist **h;
			long status = 0;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle,
					  CURLINFO_RESPONSE_CODE, &status);
			failed += msg->data.result != CURLE_OK || status != 200;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
					  (char **)&h);
			curl_multi_remove_handle(m, msg->easy_handle);
			done++;
			if (started < n) {
				started++;
				start(m, msg->easy_handle, url, h);
			}
		}
		if (done < n)
			curl_multi_poll(m, NULL, 0, 1000, NULL);
	}
	for (i = 0; i < c; i++) {
		if (easy[i])
			curl_easy_cleanup(easy[i]);
		curl_slist_free_all(hs[i]);
	}
	free(easy);
	free(hs);
	return failed;
}

int main(int argc, char **argv)
{
	CURLM *m;
	double t0, seconds;
	int n, c, failed;

	if (argc != 4 || (n = atoi(argv[2])) < 1 || (c = atoi(argv[3])) < 1) {
		fprintf(stderr, "usage: curl_floor URL N CONCURRENCY\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	m = curl_multi_init();
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, 256L); /* as trainctl */
	/* Connect first, as the other clients do outside their timing. */
	if (run(m, argv[1], c, c) != 0) {
		fprintf(stderr, "curl_floor: warm-up requests failed\n");
		return 1;
	}
	t0 = now();
	failed = run(m, argv[1], n, c);
	seconds = now() - t0;
	if (failed) {
		fprintf(stderr, "curl_floor: %d of %d requests failed\n",
			failed, n);
		return 1;
	}
	printf("{\"requests\":%d,\"seconds\":%.6f,\"rate\":%.1f}\n", n, seconds,
	       n / seconds);
	curl_multi_cleanup(m);
	curl_global_cleanup();
	return 0;
}
