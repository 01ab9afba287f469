/* The interactive loop, after lua.c: a line is first tried as `return
 * <line>` so expressions print; a syntax error ending in <eof> asks for
 * another line; Ctrl-C interrupts the running chunk and returns to the
 * prompt; Ctrl-D exits. Line editing, history and completion come from
 * libedit; results are formatted by trainctl.repl (Lua). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>

#include "fs.h"
#include "host.h"
#include "repl.h"
#include "lazy.h"

#define HISTORY_MAX 1000

static lua_State *repl_L;
static char history_path[4096];

static const char *get_prompt(lua_State *L, int first)
{
	const char *p;

	lua_getglobal(L, first ? "_PROMPT" : "_PROMPT2");
	p = lua_tostring(L, -1);
	if (p == NULL)
		p = first ? "> " : ">> ";
	lua_pop(L, 1); /* the global keeps the string alive */
	return p;
}

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

/* Pushes field `name` of the loaded module `mod`, requiring it only the
 * first time: a session that reassigns `require` keeps its REPL. */
static void push_field(lua_State *L, const char *mod, const char *name)
{
	lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	if (lua_getfield(L, -1, mod) != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_getglobal(L, "require");
		lua_pushstring(L, mod);
		lua_call(L, 1, 1);
	}
	lua_getfield(L, -1, name);
	lua_remove(L, -2);
	lua_remove(L, -2);
}

static int repl_field(lua_State *L)
{
	push_field(L, "trainctl.repl", luaL_checkstring(L, 1));
	return 1;
}

static int complete_in_lua(lua_State *L)
{
	const char *word = lua_tostring(L, 1);
	int i, n;

	push_field(L, "trainctl.repl", "complete");
	lua_pushstring(L, word);
	lua_call(L, 1, 1);
	if (!lua_istable(L, -1))
		return 0;
	n = (int)luaL_len(L, -1);
	candidates = calloc((size_t)n + 1, sizeof *candidates);
	for (i = 1; candidates && i <= n; i++) {
		lua_rawgeti(L, -1, i);
		if (lua_isstring(L, -1)) {
			char *s = strdup(lua_tostring(L, -1));
			if (s)
				candidates[ncandidates++] = s;
		}
		lua_pop(L, 1);
	}
	return 0;
}

static char *generator(const char *text, int state)
{
	if (state == 0) {
		lua_State *L = repl_L;
		free_candidates();
		lua_pushcfunction(L, complete_in_lua);
		lua_pushstring(L, text);
		if (lua_pcall(L, 1, 0, 0) != LUA_OK)
			lua_pop(L, 1);
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

static int incomplete(lua_State *L, int status)
{
	if (status == LUA_ERRSYNTAX) {
		size_t len;
		const char *msg = lua_tolstring(L, -1, &len);
		if (len >= 5 && strcmp(msg + len - 5, "<eof>") == 0) {
			lua_pop(L, 1);
			return 1;
		}
	}
	return 0;
}

/* Tries the buffer as an expression first, as lua.c does. */
static int load_expr(lua_State *L, const char *buf)
{
	const char *ret = lua_pushfstring(L, "return %s;", buf);
	int status = luaL_loadbuffer(L, ret, strlen(ret), "=stdin");

	lua_remove(L, -2);
	if (status != LUA_OK)
		lua_pop(L, 1);
	return status;
}

/* Statuses of load_chunk besides Lua's own. */
#define END_OF_INPUT (-1)
#define CANCELLED (-2)

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
	char *line = readline(get_prompt(L, first));

	if (line && host_signal == SIGINT)
		host_clear_signal(L);
	return line;
}

/* Reads lines until they form a chunk that compiles (or fails to compile
 * for a reason other than missing input). Returns END_OF_INPUT at the end
 * of input, CANCELLED when Ctrl-C abandons the lines typed so far. */
static int load_chunk(lua_State *L)
{
	char *line = read_line(L, 1);
	int status;

	if (line == NULL)
		return no_line();
	if (*line == '\0') {
		free(line);
		lua_pushnil(L); /* nothing to run */
		return LUA_OK;
	}
	lua_pushstring(L, line);
	free(line);
	if (load_expr(L, lua_tostring(L, -1)) == LUA_OK) {
		history_save(lua_tostring(L, -2));
		lua_remove(L, -2);
		return LUA_OK;
	}
	for (;;) {
		size_t len;
		const char *buf = lua_tolstring(L, -1, &len);
		status = luaL_loadbuffer(L, buf, len, "=stdin");
		if (!incomplete(L, status))
			break;
		line = read_line(L, 0);
		if (line == NULL) {
			lua_pop(L, 1);
			return no_line();
		}
		lua_pushliteral(L, "\n");
		lua_pushstring(L, line);
		free(line);
		lua_concat(L, 3);
	}
	history_save(lua_tostring(L, -2));
	lua_remove(L, -2);
	return status;
}

/* Prints the results with trainctl.repl.show, falling back to tostring. */
static void show_results(lua_State *L, int base)
{
	int n = lua_gettop(L) - base;

	if (n == 0)
		return;
	lua_pushcfunction(L, repl_field);
	lua_pushliteral(L, "show");
	if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
		lua_insert(L, base + 1);
		if (host_docall(L, n, 0) == LUA_OK)
			return;
	} else {
		lua_pop(L, 1);
		lua_getglobal(L, "print");
		lua_insert(L, base + 1);
		if (lua_pcall(L, n, 0, 0) == LUA_OK)
			return;
	}
	fprintf(stderr, "trainctl: error printing results: %s\n",
		lua_tostring(L, -1));
	lua_settop(L, base);
}

/* The banner, and help() for the session. */
static void start(lua_State *L)
{
	lua_pushcfunction(L, repl_field);
	lua_pushliteral(L, "start");
	if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
		lua_pushliteral(L, TRAINCTL_VERSION);
		lua_pushliteral(L, LUA_RELEASE);
		if (lua_pcall(L, 2, 0, 0) == LUA_OK)
			return;
	}
	fprintf(stderr, "trainctl: %s\n", lua_tostring(L, -1));
	lua_pop(L, 1);
}

/* After a Ctrl-C the terminal echoed ^C where the cursor was (perhaps at
 * the end of a progress line): the message starts a line of its own. */
static int fresh_line_in_lua(lua_State *L)
{
	push_field(L, "trainctl.log", "fresh_line");
	lua_call(L, 0, 0);
	return 0;
}

static void fresh_line(lua_State *L)
{
	lua_pushcfunction(L, fresh_line_in_lua);
	if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
		lua_pop(L, 1);
		fputc('\n', stderr);
	}
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
	start(L);
	for (;;) {
		int base;
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
		if (status == LUA_OK && lua_isnil(L, -1)) {
			lua_pop(L, 1);
			continue;
		}
		base = lua_gettop(L) - 1;
		if (status == LUA_OK)
			status = host_run_task(L, 0, LUA_MULTRET);
		if (status == LUA_OK) {
			show_results(L, base);
		} else {
			if (host_signal == SIGINT)
				fresh_line(L);
			host_report(L, status);
		}
		lua_settop(L, base);
		if (host_signal == SIGTERM)
			return 128 + SIGTERM;
	}
	free_candidates();
	putchar('\n');
	fflush(stdout);
	return EXIT_OK;
}
