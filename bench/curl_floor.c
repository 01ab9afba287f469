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
 *   curl_floor URL N CONCURRENCY [perform|epoll]
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

static int use_epoll, ep = -1;
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
	struct curl_slist **hs = calloc((size_t)c, sizeof *hs);
	int i, started = 0, done = 0, failed = 0;

	for (i = 0; i < c && started < n; i++, started++) {
		easy[i] = curl_easy_init();
		start(m, easy[i], url, &hs[i]);
	}
	while (done < n) {
		CURLMsg *msg;
		int left;
		turn(m);
		while ((msg = curl_multi_info_read(m, &left))) {
			struct curl_slist **h;
			long status = 0, conns = 0;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle,
					  CURLINFO_RESPONSE_CODE, &status);
			curl_easy_getinfo(msg->easy_handle,
					  CURLINFO_NUM_CONNECTS, &conns);
			connects += conns;
			if ((msg->data.result != CURLE_OK || status != 200) &&
			    !failed++)
				fprintf(stderr, "curl_floor: first failure: %s, HTTP %ld\n",
					curl_easy_strerror(msg->data.result),
					status);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
					  (char **)&h);
			curl_multi_remove_handle(m, msg->easy_handle);
			done++;
			if (started < n) {
				started++;
				start(m, msg->easy_handle, url, h);
			}
		}
		if (done < n && !use_epoll)
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

	if (argc < 4 || argc > 5 || (n = atoi(argv[2])) < 1 ||
	    (c = atoi(argv[3])) < 1 ||
	    (argc == 5 && strcmp(argv[4], "perform") != 0 &&
	     strcmp(argv[4], "epoll") != 0)) {
		fprintf(stderr,
			"usage: curl_floor URL N CONCURRENCY [perform|epoll]\n");
		return 2;
	}
	use_epoll = argc == 5 && strcmp(argv[4], "epoll") == 0;
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
	return 0;
}
