/* The event loop of transfers (loop.h): curl_multi_socket_action over
 * epoll. libcurl tells which sockets to watch (on_sock) and when its
 * next timeout falls (on_timer); a turn waits on epoll for at most the
 * caller's timeout or curl's, then hands curl each ready socket and, once
 * due, the timeout. Nothing here visits the transfers that wait.
 *
 * Transfers are spread over shards of SHARD each, one multi handle per
 * shard: libcurl 7.88 walks every connection to a host when it looks for
 * one to reuse, and every transfer of its multi handle on several other
 * steps, so one multi handle with thousands of transfers spends most of
 * its time walking. A new transfer goes to the first shard with room,
 * where the transfer that made the room left its connection. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop.h"
#include "wait.h"

#define MAX_EVENTS 1024
#define MIN_POOL 64
#define SHARD 256
#define STOP_SHARD UINT32_MAX /* the epoll tag of the stop descriptor */

struct shard {
	struct loop *loop;
	CURLM *multi;
	uint32_t index;
	double timer_at; /* curl's next timeout (monotonic s), < 0: none */
	int active;	 /* transfers in this multi handle */
};

struct loop {
	int epfd;
	int limit;  /* loop_set_limit's */
	int active; /* transfers in all the multi handles */
	struct shard **shards;
	int nshards;
	CURL **pool;
	int npool, pool_max;
	struct transfer *done_head, *done_tail;
};

static uint64_t tag(uint32_t shard, int fd)
{
	return (uint64_t)shard << 32 | (uint32_t)fd;
}

/* CURLMOPT_SOCKETFUNCTION: watch `fd` for what curl asks, or stop. The
 * socket's pointer (curl_multi_assign) says whether epoll has it. */
static int on_sock(CURL *e, curl_socket_t fd, int what, void *ud, void *sp)
{
	struct shard *sh = ud;
	int epfd = sh->loop->epfd;
	struct epoll_event ev;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (sp)
			epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
		curl_multi_assign(sh->multi, fd, NULL);
		return 0;
	}
	memset(&ev, 0, sizeof ev);
	ev.data.u64 = tag(sh->index, fd);
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) |
		    (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (sp) {
		epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
	} else if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ||
		   (errno == EEXIST &&
		    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) == 0)) {
		curl_multi_assign(sh->multi, fd, sh);
	}
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: only noted; the turn acts on it. */
static int on_timer(CURLM *m, long ms, void *ud)
{
	struct shard *sh = ud;

	(void)m;
	sh->timer_at = ms < 0 ? -1 : wait_clock() + ms / 1000.0;
	return 0;
}

/* Each multi handle keeps as many idle connections as it may have
 * transfers: below the limit none waits for a connection another
 * transfer closed. */
static long cache_size(const struct loop *l)
{
	int n = l->limit > MIN_POOL ? l->limit : MIN_POOL;

	return n < SHARD ? n : SHARD;
}

static struct shard *shard_new(struct loop *l)
{
	struct shard **p, *sh;

	p = realloc(l->shards, (size_t)(l->nshards + 1) * sizeof *p);
	if (!p)
		return NULL;
	l->shards = p;
	sh = calloc(1, sizeof *sh);
	if (!sh || !(sh->multi = curl_multi_init())) {
		free(sh);
		return NULL;
	}
	sh->loop = l;
	sh->index = (uint32_t)l->nshards;
	sh->timer_at = -1;
	curl_multi_setopt(sh->multi, CURLMOPT_SOCKETFUNCTION, on_sock);
	curl_multi_setopt(sh->multi, CURLMOPT_SOCKETDATA, sh);
	curl_multi_setopt(sh->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(sh->multi, CURLMOPT_TIMERDATA, sh);
	curl_multi_setopt(sh->multi, CURLMOPT_MAXCONNECTS, cache_size(l));
	l->shards[l->nshards++] = sh;
	return sh;
}

struct loop *loop_new(const char **why)
{
	struct loop *l;

	if ((*why = lazy_curl()))
		return NULL;
	*why = "out of memory";
	l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	l->limit = 256;
	if (l->epfd < 0 || !shard_new(l)) {
		*why = "cannot create the event loop";
		loop_free(l);
		return NULL;
	}
	if (wait_fd() >= 0) {
		struct epoll_event ev = { .events = EPOLLIN,
					  .data.u64 = tag(STOP_SHARD, 0) };
		epoll_ctl(l->epfd, EPOLL_CTL_ADD, wait_fd(), &ev);
	}
	loop_set_limit(l, 256);
	*why = NULL;
	return l;
}

void loop_free(struct loop *l)
{
	int i;

	if (!l)
		return;
	while (l->npool > 0)
		curl_easy_cleanup(l->pool[--l->npool]);
	free(l->pool);
	for (i = 0; i < l->nshards; i++) {
		curl_multi_cleanup(l->shards[i]->multi);
		free(l->shards[i]);
	}
	free(l->shards);
	curl_global_cleanup();
	if (l->epfd >= 0)
		close(l->epfd);
	free(l);
}

/* The pool keeps one easy handle per transfer allowed in flight. */
void loop_set_limit(struct loop *l, int n)
{
	int max = n > MIN_POOL ? n : MIN_POOL, i;
	CURL **p;

	l->limit = n;
	for (i = 0; i < l->nshards; i++)
		curl_multi_setopt(l->shards[i]->multi, CURLMOPT_MAXCONNECTS,
				  cache_size(l));
	while (l->npool > max)
		curl_easy_cleanup(l->pool[--l->npool]);
	p = realloc(l->pool, (size_t)max * sizeof *p);
	if (p) {
		l->pool = p;
		l->pool_max = max;
	}
}

CURL *loop_easy_get(struct loop *l)
{
	if (l->npool > 0) {
		CURL *e = l->pool[--l->npool];
		curl_easy_reset(e);
		return e;
	}
	return curl_easy_init();
}

void loop_easy_put(struct loop *l, CURL *e)
{
	if (l->npool < l->pool_max)
		l->pool[l->npool++] = e;
	else
		curl_easy_cleanup(e);
}

int loop_add(struct loop *l, struct transfer *t)
{
	struct shard *sh = NULL;
	int i;

	for (i = 0; i < l->nshards && !sh; i++)
		if (l->shards[i]->active < SHARD)
			sh = l->shards[i];
	if (!sh && !(sh = shard_new(l)))
		return -1;
	if (curl_multi_add_handle(sh->multi, t->easy) != CURLM_OK)
		return -1;
	t->shard = (int)sh->index;
	t->in_multi = 1;
	sh->active++;
	l->active++;
	return 0;
}

/* Out of its multi handle (at its end, or stopped). */
static void take_out(struct loop *l, struct transfer *t)
{
	struct shard *sh = l->shards[t->shard];

	curl_multi_remove_handle(sh->multi, t->easy);
	t->in_multi = 0;
	sh->active--;
	l->active--;
}

static void unlist(struct loop *l, struct transfer *t)
{
	if (t->prev_done)
		t->prev_done->next_done = t->next_done;
	else if (l->done_head == t)
		l->done_head = t->next_done;
	if (t->next_done)
		t->next_done->prev_done = t->prev_done;
	else if (l->done_tail == t)
		l->done_tail = t->prev_done;
	t->prev_done = t->next_done = NULL;
}

void loop_remove(struct loop *l, struct transfer *t)
{
	if (t->in_multi)
		take_out(l, t);
	unlist(l, t);
}

int loop_active(const struct loop *l) { return l->active; }

static void reap(struct loop *l, struct shard *sh)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(sh->multi, &left))) {
		struct transfer *t;
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
				  (char **)&t);
		t->result = m->data.result;
		t->done = 1;
		take_out(l, t);
		t->prev_done = l->done_tail;
		t->next_done = NULL;
		if (l->done_tail)
			l->done_tail->next_done = t;
		else
			l->done_head = t;
		l->done_tail = t;
	}
}

static int wait_ms(const struct loop *l, double timeout)
{
	double now = wait_clock();
	int i;

	for (i = 0; i < l->nshards; i++) {
		double at = l->shards[i]->timer_at;
		if (at >= 0 && at - now < timeout)
			timeout = at - now;
	}
	if (!(timeout > 0))
		return 0;
	if (timeout > 3600)
		timeout = 3600;
	return (int)(timeout * 1000) + (timeout < 0.001);
}

/* epoll_wait sees a stop through the stop descriptor (wait_fd), which a
 * signal arriving after the check of host_signal makes readable. */
void loop_turn(struct loop *l, double timeout)
{
	struct epoll_event ev[MAX_EVENTS];
	int n, i, running;
	double now;

	n = host_interrupted()
		    ? 0
		    : epoll_wait(l->epfd, ev, MAX_EVENTS, wait_ms(l, timeout));
	for (i = 0; i < n; i++) {
		uint32_t shard = (uint32_t)(ev[i].data.u64 >> 32);
		int fd = (int)(uint32_t)ev[i].data.u64, what = 0;
		if (shard == STOP_SHARD || shard >= (uint32_t)l->nshards)
			continue; /* the caller sees host_signal */
		if (ev[i].events & EPOLLIN)
			what |= CURL_CSELECT_IN;
		if (ev[i].events & EPOLLOUT)
			what |= CURL_CSELECT_OUT;
		if (ev[i].events & (EPOLLERR | EPOLLHUP))
			what |= CURL_CSELECT_ERR;
		curl_multi_socket_action(l->shards[shard]->multi, fd, what,
					 &running);
	}
	now = wait_clock();
	for (i = 0; i < l->nshards; i++) {
		struct shard *sh = l->shards[i];
		if (sh->timer_at >= 0 && sh->timer_at <= now) {
			sh->timer_at = -1;
			curl_multi_socket_action(sh->multi, CURL_SOCKET_TIMEOUT,
						 0, &running);
		}
		reap(l, sh);
	}
}

struct transfer *loop_next_done(struct loop *l)
{
	struct transfer *t = l->done_head;

	if (t)
		unlist(l, t);
	return t;
}

void loop_run(struct loop *l, struct transfer *t)
{
	while (!t->done) {
		if (host_interrupted()) {
			t->interrupted = 1;
			break;
		}
		loop_turn(l, 1.0);
	}
	unlist(l, t);
}
