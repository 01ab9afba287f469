/* The host as the command line sees it, as wrk.c sees script.h: src/cli
 * includes this, never lua.h; a lua_State is only passed along. */
#ifndef TRAINCTL_SCRIPT_H
#define TRAINCTL_SCRIPT_H

typedef struct lua_State lua_State;

/* Exit statuses of the public contract. */
enum {
	EXIT_OK = 0,
	EXIT_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_LOCKED = 3,
	EXIT_TIMEOUT = 4
};

/* What the command line asked for (main.c reads it). */
struct opts {
	int interactive, version, no_env, warnings, help, call, has_e, has_l;
	int core_dumps;
	int script;	  /* index of the script in argv, 0 if none */
	char *global;	  /* after a subcommand: 1 for the words that were
			     global options, not the subcommand's */
	int stdin_script; /* "-" */
	const char *profile, *log_level, *log_format, *lock, *state;
	double timeout, lock_ttl, lock_wait;
};

/* Set by -E before host_new: ignore LUA_PATH, LUA_CPATH, TRAINCTL_LUA_PATH. */
extern int host_no_env;

/* A new state with the standard and trainctl libraries, on the core's
 * allocator; host_close closes it and frees what the allocator holds. */
lua_State *host_new(void);
void host_close(lua_State *L);
void host_signals(lua_State *L, int interactive);
void host_set_timeout(double seconds);
/* Forgets a stop signal that came (the REPL's Ctrl-C at the prompt). */
void host_clear_signal(lua_State *L);
double host_parse_duration(const char *s);
/* An error of the command line before any Lua runs: a line, or with
 * --log-format json one JSON object like a run's final error. */
void host_say(int json, const char *msg, int code);

/* Runs what `o` asks for: LUA_INIT, -e and -l in order, then the script
 * or `call` as the main task. The exit status, or SCRIPT_REPL when the
 * REPL is to run next. */
#define SCRIPT_REPL (-1)
int script_run(lua_State *L, int argc, char **argv, const struct opts *o);
/* Ends the state (children stopped first after a stop signal). */
void script_close(lua_State *L);
const char *script_lua_release(void);
/* Whether a --lock is etcd's (etcd:// or etcds://). */
/* The words that name a subcommand (handled by trainctl.cli) rather than
 * a script. */
extern const char *const script_subcommands[];
int script_is_subcommand(const char *word);
int script_is_etcd(const char *lock);

/* Checked standard streams (stdstreams.c). */
void stdstreams_reserve(void);
/* --log-format json: stdstreams_status says its last words as a record. */
void stdstreams_json(int on);
void stdstreams_check(void);
int stdstreams_status(int rc);

#endif
