/* Loading libcurl and libcrypto on threads of their own (src/core/
 * preload.c) while the main thread goes on: the main thread may sign and
 * use libcurl at once, in any order, and gets what it would have got
 * loading them itself; the threads block the signals that stop a run.
 * Each case runs in a child process of its own, several times over,
 * because a library loads once per process. (That a run ending while
 * they load waits for them is tested in tests/host/cli_spec.lua.) */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <pthread.h>
#include <unistd.h>

#include "crypto.h"
#include "lazy.h"
#include "preload.h"
#include "tap.h"

#define RUNS 10

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

/* Whether thread `tid` of this process blocks SIGINT, SIGTERM, SIGALRM
 * and SIGHUP (SigBlk in its /proc status): 1 yes, 0 no, -1 gone. A
 * thread on its way out, its signal state already let go of, shows an
 * empty mask and "Threads: 0" until it is reaped. */
static int blocks_stops(const char *tid)
{
	static const int stops[] = { SIGINT, SIGTERM, SIGALRM, SIGHUP };
	char path[64], line[256];
	unsigned long long mask = 0;
	int found = 0, threads = 0;
	size_t i;
	FILE *f;

	snprintf(path, sizeof path, "/proc/self/task/%s/status", tid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "SigBlk: %llx", &mask) == 1)
			found = 1;
		sscanf(line, "Threads: %d", &threads);
	}
	fclose(f);
	if (!found || threads == 0)
		return -1;
	for (i = 0; i < sizeof stops / sizeof *stops; i++)
		if (!(mask >> (stops[i] - 1) & 1))
			return 0;
	return 1;
}

/* The loading threads block the signals that stop a run, so a stop
 * always finds the main thread (the kernel gives a signal to any thread
 * that does not block it). Their masks are read as long as they run (a
 * thread starts with every signal blocked, then takes the mask it was
 * made with): 0 when every reading shows them blocked, 4 when one does
 * not, 5 when the loading was over before a thread could be seen. */
static int threads_block_stops(void)
{
	char self[32];
	int seen = 0, bad = 0, now = 1, tries;

	snprintf(self, sizeof self, "%d", (int)getpid());
	preload_start();
	for (tries = 0; tries < 1000000 && (now || !seen); tries++) {
		DIR *d = opendir("/proc/self/task");
		struct dirent *e;
		now = 0;
		while (d && (e = readdir(d))) {
			int b;
			if (e->d_name[0] == '.' || strcmp(e->d_name, self) == 0)
				continue;
			if ((b = blocks_stops(e->d_name)) >= 0) {
				now++;
				bad += b == 0;
			}
		}
		if (d)
			closedir(d);
		seen += now;
	}
	preload_wait();
	return bad ? 4 : seen ? 0 : 5;
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
	int i, rc, seen = 0, bad = 0;

	cases("the main thread signs while the threads load, then requests",
	      sign_then_curl);
	cases("the main thread takes libcurl first, then signs",
	      curl_then_sign);
	/* A run that found the loading over sees no thread: fine, as long
	 * as some runs saw them. */
	for (i = 0; i < RUNS; i++) {
		rc = run(threads_block_stops);
		seen += rc == 0 || rc == 4;
		bad += rc != 0 && rc != 5;
	}
	if (!ok(seen > 0 && bad == 0, "the loading threads block SIGINT, "
				      "SIGTERM, SIGALRM and SIGHUP"))
		diag("%d runs saw them, %d runs failed", seen, bad);
	return done_testing();
}
