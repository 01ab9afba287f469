/* Threads that load what a request needs (preload.h). */
#include <pthread.h>
#include <signal.h>

#include "crypto.h"
#include "lazy.h"
#include "preload.h"

static pthread_t threads[2];
static int started;

/* libcrypto first, then its tables of names and methods; meanwhile the
 * other thread loads libcurl, which waits for libcrypto (lazy.c): two
 * dlopen calls take turns. */
static void *load_crypto(void *unused)
{
	(void)unused;
	crypto_warm();
	return NULL;
}

static void *load_curl(void *unused)
{
	(void)unused;
	lazy_curl();
	return NULL;
}

void preload_start(void)
{
	void *(*const work[2])(void *) = { load_crypto, load_curl };
	sigset_t all, old;

	if (started)
		return;
	/* Signals stay the main thread's: a stop must interrupt its wait. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	while (started < 2 && pthread_create(&threads[started], NULL,
					     work[started], NULL) == 0)
		started++;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void preload_wait(void)
{
	while (started > 0)
		pthread_join(threads[--started], NULL);
}
