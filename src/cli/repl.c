/* The interactive loop, after lua.c: a line is first tried as `return
 * <line>` so expressions print; a syntax error ending in <eof> asks for
 * another line; Ctrl-C interrupts the running chunk and returns to the
 * prompt; Ctrl-D exits. Line editing, history and completion come from
 * libedit; compiling, running and printing are the Lua side's
 * (src/lua/repl_lua.c), results formatted by trainctl.repl. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "lazy.h"
#include "repl.h"
#include "repl_lua.h"
#include "wait.h"

#define HISTORY_MAX 1000

static lua_State *repl_L;
static char history_path[4096];

/* The directories above the file at `path`. */
static int mkdirs(const char *path)
{
	char dir[sizeof history_path], failed[sizeof history_path];
	const char *slash = strrchr(path, '/');

	if (!slash || slash == path)
		return 0;
	snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	return fs_mkdir_p(dir, 0700, failed, sizeof failed);
}

/* $XDG_STATE_HOME/trainctl/history, else ~/.local/state/trainctl/history;
 * the file may hold secrets typed at the prompt, so it is 0600. */
static void history_open(void)
{
	const char *state = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	int fd, n;

	if (state && *state)
		n = snprintf(history_path, sizeof history_path,
			     "%s/trainctl/history", state);
	else if (home && *home)
		n = snprintf(history_path, sizeof history_path,
			     "%s/.local/state/trainctl/history", home);
	else
		n = -1;
	if (n < 0 || n >= (int)sizeof history_path || mkdirs(history_path)) {
		history_path[0] = '\0';
		return;
	}
	fd = open(history_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		history_path[0] = '\0';
		return;
	}
	fchmod(fd, 0600);
	close(fd);
	stifle_history(HISTORY_MAX);
	read_history(history_path);
}

static void history_save(const char *line)
{
	add_history(line);
	if (history_path[0]) {
		write_history(history_path);
		chmod(history_path, 0600);
	}
}

/* Completion candidates come from trainctl.repl.complete(word), which
 * walks globals, fields and methods without running user code. */
static char **candidates;
static int ncandidates, next_candidate;

static void free_candidates(void)
{
	int i;

	for (i = 0; i < ncandidates; i++)
		free(candidates[i]);
	free(candidates);
	candidates = NULL;
	ncandidates = next_candidate = 0;
}

static char *generator(const char *text, int state)
{
	if (state == 0) {
		free_candidates();
		candidates = repl_candidates(repl_L, text);
		while (candidates && candidates[ncandidates])
			ncandidates++;
	}
	if (next_candidate < ncandidates)
		return strdup(candidates[next_candidate++]);
	return NULL;
}

static char **complete(const char *text, int start, int end)
{
	(void)start, (void)end;
	rl_completion_append_character = '\0';
	return rl_completion_matches(text, generator);
}

/* Statuses of load_chunk besides repl_compile's (REPL_MORE is -3). */
#define END_OF_INPUT (-1)
#define CANCELLED (-2)
#define NOTHING (-4) /* an empty line */

/* readline returns NULL both at end of input and when a signal (Ctrl-C)
 * interrupts it; only host_signal tells them apart. */
static int no_line(void)
{
	return host_signal == SIGINT ? CANCELLED : END_OF_INPUT;
}

/* A line, or NULL. A Ctrl-C that came while libedit was not yet reading
 * (the terminal discarded what was typed) must not interrupt the chunk
 * the user then types and runs. */
static char *read_line(lua_State *L, int first)
{
	char *line = readline(repl_prompt(L, first));

	if (line && host_signal == SIGINT)
		host_clear_signal(L);
	return line;
}

/* `buf` + "\n" + `line`, freeing both; NULL when out of memory. */
static char *join(char *buf, char *line)
{
	size_t n = strlen(buf), m = strlen(line);
	char *s = realloc(buf, n + m + 2);

	if (s) {
		s[n] = '\n';
		memcpy(s + n + 1, line, m + 1);
	} else {
		free(buf);
	}
	free(line);
	return s;
}

/* Reads lines until they form a chunk that compiles (or fails to compile
 * for a reason other than missing input), left for repl_eval. Returns
 * END_OF_INPUT at the end of input, CANCELLED when Ctrl-C abandons the
 * lines typed so far, NOTHING for an empty line. */
static int load_chunk(lua_State *L)
{
	char *buf = read_line(L, 1);
	int status, first = 1;

	if (buf == NULL)
		return no_line();
	if (*buf == '\0') {
		free(buf);
		return NOTHING;
	}
	while ((status = repl_compile(L, buf, strlen(buf), first)) ==
	       REPL_MORE) {
		char *line = read_line(L, 0);
		first = 0;
		if (line == NULL) {
			free(buf);
			return no_line();
		}
		buf = join(buf, line);
		if (buf == NULL)
			return END_OF_INPUT;
	}
	history_save(buf);
	free(buf);
	return status;
}

int repl_run(lua_State *L)
{
	const char *why = lazy_edit();
	int status;

	if (why) {
		fprintf(stderr, "trainctl: no line editing: %s\n", why);
		return EXIT_ERROR;
	}
	repl_L = L;
	rl_readline_name = "trainctl";
	rl_attempted_completion_function = complete;
	history_open();
	repl_start(L);
	for (;;) {
		host_clear_signal(L);
		status = load_chunk(L);
		if (host_signal == SIGTERM)
			return 128 + SIGTERM;
		if (status == END_OF_INPUT)
			break;
		if (status == CANCELLED) {
			/* As in a shell: a new prompt on a new line. */
			putchar('\n');
			fflush(stdout);
			continue;
		}
		if (status == NOTHING)
			continue;
		repl_eval(L, status);
		if (host_signal == SIGTERM)
			return 128 + SIGTERM;
	}
	free_candidates();
	putchar('\n');
	fflush(stdout);
	return EXIT_OK;
}
