/* Loading libcurl and libcrypto on threads of their own (src/core/
 * preload.c) while the main thread goes on: the main thread may sign and
 * use libcurl at once, in any order, and gets what it would have got
 * loading them itself; a signal still reaches the main thread; the
 * process can end at any moment of the loading. Each case runs in a
 * child process of its own, several times over, because a library
 * loads once per process. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <pthread.h>
#include <unistd.h>

#include "crypto.h"
#include "lazy.h"
#include "preload.h"
#include "tap.h"

#define RUNS 20

/* RFC 4231 test case 2 (SHA-256) and RFC 2202 test case 2 (SHA-1). */
static const char key[] = "Jefe", msg[] = "what do ya want for nothing?";
static const char sha256_want[] =
	"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
static const char sha1_want[] = "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79";

static int hmac_is(const EVP_MD *md, const char *want)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	int n = crypto_hmac(md, key, strlen(key), msg, strlen(msg), mac);

	if (n <= 0)
		return 0;
	crypto_hex(mac, (size_t)n, hex);
	hex[2 * n] = '\0';
	return strcmp(hex, want) == 0;
}

/* The main thread signs first, then asks for libcurl. */
static int sign_then_curl(void)
{
	preload_start();
	if (lazy_crypto() || !hmac_is(EVP_sha256(), sha256_want) ||
	    !hmac_is(EVP_sha1(), sha1_want))
		return 1;
	if (lazy_curl() || strncmp(curl_version(), "libcurl/", 8) != 0)
		return 2;
	preload_wait();
	return 0;
}

/* libcurl first, then a digest no thread readied (SHA-1). */
static int curl_then_sign(void)
{
	preload_start();
	if (lazy_curl() || strncmp(curl_version(), "libcurl/", 8) != 0)
		return 2;
	if (lazy_crypto() || !hmac_is(EVP_sha1(), sha1_want) ||
	    !hmac_is(EVP_sha256(), sha256_want))
		return 1;
	preload_wait();
	return 0;
}

/* Ends while the threads may still be loading: exit's handlers run
 * after preload_wait, never beside the loading. */
static int exit_at_once(void)
{
	preload_start();
	preload_wait();
	preload_wait(); /* a second wait is harmless */
	return 0;
}

static volatile sig_atomic_t on_main = -1;
static pthread_t main_thread;

static void note(int sig)
{
	(void)sig;
	on_main = pthread_equal(pthread_self(), main_thread);
}

/* A signal sent to the process while the threads load reaches the
 * main thread, whose wait it must interrupt. */
static int signal_to_main(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = note;
	sigaction(SIGUSR1, &sa, NULL);
	main_thread = pthread_self();
	preload_start();
	kill(getpid(), SIGUSR1);
	preload_wait();
	return on_main == 1 ? 0 : 3;
}

static int run(int (*f)(void))
{
	int status;
	pid_t pid = fork();

	if (pid == 0)
		exit(f());
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void cases(const char *name, int (*f)(void))
{
	int i, rc = 0;

	for (i = 0; i < RUNS && rc == 0; i++)
		rc = run(f);
	if (!ok(rc == 0, "%s (%d runs)", name, RUNS))
		diag("run %d ended with %d", i, rc);
}

int main(void)
{
	cases("the main thread signs while the threads load, then requests",
	      sign_then_curl);
	cases("the main thread takes libcurl first, then signs",
	      curl_then_sign);
	cases("the process ends while the threads load", exit_at_once);
	cases("a signal sent while they load reaches the main thread",
	      signal_to_main);
	return done_testing();
}
