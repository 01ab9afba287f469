/* Checked stdout and stderr. Every write to them (print, io.write,
 * io.stdout:write, the host's own messages) goes through a stdio cookie
 * that remembers the first failure with its errno, so that the end of the
 * run can name it: a full disk or an I/O error is an error (exit 1), a
 * reader that went away (EPIPE) stops the run as SIGPIPE would, quietly,
 * with status 141. No Lua here. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "host.h"

static int failed[3]; /* errno of the first failed write, by fd */
static int cut;	      /* a stop ended a write before all of it was out */
static int json;      /* --log-format json: the last words as a record */

static ssize_t cookie_write(void *cookie, const char *buf, size_t n)
{
	int fd = (int)(intptr_t)cookie;
	size_t done = 0;

	while (done < n) {
		ssize_t w = write(fd, buf + done, n - done);
		/* A stop interrupts a write blocked on a slow reader (EINTR,
		 * or a short count when some of it went): the run ends
		 * anyway, that is no failure of the stream, but what was
		 * not written is missing (stdstreams_status). */
		if (w >= 0) {
			done += (size_t)w;
			if (done < n && host_interrupted()) {
				cut = 1;
				return (ssize_t)done;
			}
			continue;
		}
		if (errno == EINTR && !host_interrupted())
			continue;
		if (errno == EINTR)
			cut = 1;
		if (errno != EINTR && !failed[fd])
			failed[fd] = errno;
		if (errno == EPIPE)
			host_stop(SIGPIPE);
		return done ? (ssize_t)done : -1;
	}
	return (ssize_t)done;
}

static int cookie_seek(void *cookie, off64_t *off, int whence)
{
	off64_t at = lseek((int)(intptr_t)cookie, *off, whence);

	if (at < 0)
		return -1;
	*off = at;
	return 0;
}

static int cookie_close(void *cookie)
{
	(void)cookie; /* the descriptor outlives the stream */
	return 0;
}

static FILE *checked(int fd, int mode)
{
	cookie_io_functions_t io = { .write = cookie_write,
				     .seek = cookie_seek,
				     .close = cookie_close };
	FILE *f = fopencookie((void *)(intptr_t)fd, "w", io);

	if (f)
		setvbuf(f, NULL, mode, BUFSIZ);
	return f;
}

/* A run started with stdin, stdout or stderr closed (`>&-`, or by a
 * careless parent) gets /dev/null there, first thing: otherwise the
 * first file it opens (a state file, a download) takes the number, and
 * whatever is printed lands in it. /dev/null is opened the other way
 * round (stdin for writing, stdout and stderr for reading), so that
 * reads and writes there still fail with EBADF, as on the closed
 * descriptor, for the run and for the programs it starts. */
void stdstreams_reserve(void)
{
	static const int mode[3] = { O_WRONLY, O_RDONLY, O_RDONLY };
	int fd;

	for (fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF &&
		    open("/dev/null", mode[fd]) != fd)
			break;
}

void stdstreams_json(int on) { json = on; }

/* Replaces stdout and stderr (before the Lua state exists, so that io's
 * standard files are these). Not for the REPL: line editing needs the
 * real streams' descriptors. */
void stdstreams_check(void)
{
	FILE *out, *err;

	fflush(stdout);
	fflush(stderr);
	out = checked(1, isatty(1) ? _IOLBF : _IOFBF);
	err = checked(2, _IONBF);
	if (out)
		stdout = out;
	if (err)
		stderr = err;
}

/* The last words of a run whose stdout failed at its end: one line on
 * stderr, unless stderr cannot take it now (the same full pipe as stdout,
 * a reader that stopped reading): waiting on it would hang the run. */
static void say(const char *msg, int code)
{
	if (host_stderr_ready())
		host_say(json, msg, code);
}

/* The exit status once the standard streams are flushed: a failed write
 * turns success into 1 (with a line naming the stream, if stderr still
 * works), a closed pipe into 141, and a stop that cut the last flush
 * short (a slow reader, then Ctrl-C or --timeout) into the stop's status
 * and line: the output is not all there. A failed run keeps its status. */
int stdstreams_status(int rc)
{
	char msg[256];
	int pipe_closed;

	fflush(stdout);
	fflush(stderr);
	pipe_closed = failed[1] == EPIPE || failed[2] == EPIPE;
	/* A run that failed already said why (often this very write). */
	if (rc != EXIT_OK)
		return rc;
	if (pipe_closed)
		return 128 + SIGPIPE;
	if (cut && host_interrupted()) {
		if (*host_stop_message())
			say(host_stop_message(), host_stop_status());
		return host_stop_status();
	}
	if (failed[1] && !failed[2]) {
		snprintf(msg, sizeof msg, "cannot write stdout: %s",
			 strerror(failed[1]));
		say(msg, EXIT_ERROR);
	}
	return failed[1] || failed[2] ? EXIT_ERROR : EXIT_OK;
}
