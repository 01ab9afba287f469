/* The event loop of transfers (loop.h): curl_multi_socket_action over
 * epoll. libcurl tells which sockets to watch (on_sock) and when its
 * next timeout falls (on_timer); a turn waits on epoll for at most the
 * caller's timeout or curl's, then hands curl each ready socket and, once
 * due, the timeout. Nothing here visits the transfers that wait. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop.h"
#include "wait.h"

#define MAX_EVENTS 1024
#define MIN_POOL 64

struct loop {
	CURLM *multi;
	int epfd;
	double timer_at; /* curl's next timeout (monotonic s), < 0: none */
	int active;	 /* transfers in the multi handle */
	CURL **pool;
	int npool, pool_max;
	struct transfer *done_head, *done_tail;
};

/* CURLMOPT_SOCKETFUNCTION: watch `fd` for what curl asks, or stop. The
 * socket's pointer (curl_multi_assign) says whether epoll has it. */
static int on_sock(CURL *e, curl_socket_t fd, int what, void *ud, void *sp)
{
	struct loop *l = ud;
	struct epoll_event ev;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (sp)
			epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
		curl_multi_assign(l->multi, fd, NULL);
		return 0;
	}
	memset(&ev, 0, sizeof ev);
	ev.data.fd = fd;
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) |
		    (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (sp) {
		epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev);
	} else if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ||
		   (errno == EEXIST &&
		    epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)) {
		curl_multi_assign(l->multi, fd, l);
	}
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: only noted; the turn acts on it. */
static int on_timer(CURLM *m, long ms, void *ud)
{
	struct loop *l = ud;

	(void)m;
	l->timer_at = ms < 0 ? -1 : wait_clock() + ms / 1000.0;
	return 0;
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
	l->timer_at = -1;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	l->multi = curl_multi_init();
	if (l->epfd < 0 || !l->multi) {
		*why = "cannot create the event loop";
		loop_free(l);
		return NULL;
	}
	if (wait_fd() >= 0) {
		struct epoll_event ev = { .events = EPOLLIN,
					  .data.fd = wait_fd() };
		epoll_ctl(l->epfd, EPOLL_CTL_ADD, wait_fd(), &ev);
	}
	curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, on_sock);
	curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
	curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
	loop_set_limit(l, 256);
	*why = NULL;
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	while (l->npool > 0)
		curl_easy_cleanup(l->pool[--l->npool]);
	free(l->pool);
	if (l->multi) {
		curl_multi_cleanup(l->multi);
		curl_global_cleanup();
	}
	if (l->epfd >= 0)
		close(l->epfd);
	free(l);
}

/* Below the limit no transfer waits for a connection another one closed:
 * the cache keeps one per transfer in flight, the pool one handle each. */
void loop_set_limit(struct loop *l, int n)
{
	int max = n > MIN_POOL ? n : MIN_POOL;
	CURL **p;

	curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, (long)max);
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
	if (curl_multi_add_handle(l->multi, t->easy) != CURLM_OK)
		return -1;
	t->in_multi = 1;
	l->active++;
	return 0;
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
	if (t->in_multi) {
		curl_multi_remove_handle(l->multi, t->easy);
		t->in_multi = 0;
		l->active--;
	}
	unlist(l, t);
}

int loop_active(const struct loop *l) { return l->active; }

static void reap(struct loop *l)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(l->multi, &left))) {
		struct transfer *t;
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
				  (char **)&t);
		t->result = m->data.result;
		t->done = 1;
		curl_multi_remove_handle(l->multi, t->easy);
		t->in_multi = 0;
		l->active--;
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
	if (l->timer_at >= 0) {
		double left = l->timer_at - wait_clock();
		if (left < timeout)
			timeout = left;
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
	int n, i, running, stop = wait_fd();

	n = host_interrupted()
		    ? 0
		    : epoll_wait(l->epfd, ev, MAX_EVENTS, wait_ms(l, timeout));
	for (i = 0; i < n; i++) {
		int fd = ev[i].data.fd, what = 0;
		if (fd == stop)
			continue; /* the caller sees host_signal */
		if (ev[i].events & EPOLLIN)
			what |= CURL_CSELECT_IN;
		if (ev[i].events & EPOLLOUT)
			what |= CURL_CSELECT_OUT;
		if (ev[i].events & (EPOLLERR | EPOLLHUP))
			what |= CURL_CSELECT_ERR;
		curl_multi_socket_action(l->multi, fd, what, &running);
	}
	if (l->timer_at >= 0 && l->timer_at <= wait_clock()) {
		l->timer_at = -1;
		curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0,
					 &running);
	}
	reap(l);
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
