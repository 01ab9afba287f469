/* trainctl command line: lua5.4's options and behaviour (-e, -l, -i, -v,
 * -E, -W, -, --, the global `arg`), the options of a batch job (--lock,
 * --timeout, --state, logging, profile) and the `call` subcommand. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lazy.h"

#include "fs.h"
#include "preload.h"
#include "repl.h"
#include "script.h"

static const char *progname = "trainctl";

static void print_usage(FILE *f)
{
	fprintf(f,
		"usage: %s [options] [script [args]]\n"
		"       %s call PROVIDER OPERATION [key=value ...] [-o FMT] "
		"[--all]\n"
		"       %s wait|status PROVIDER REF\n"
		"       %s state list|show KEY|forget KEY|path [--state FILE]\n"
		"       %s completion bash|zsh|fish\n"
		"       %s config  (also: whoami)\n"
		"Run a Lua 5.4 script that automates training on AiTEMS, "
		"OpenSearch\n"
		"or Azure AI Language; with no script on a terminal, start a "
		"REPL.\n"
		"Options:\n"
		"  -e chunk          run the string 'chunk'\n"
		"  -l mod            require 'mod' into global 'mod' (-l "
		"g=mod: into 'g')\n"
		"  -i                enter the REPL after running 'script'\n"
		"  -v                show version information\n"
		"  -E                ignore LUA_INIT, LUA_PATH, LUA_CPATH, "
		"TRAINCTL_LUA_PATH\n"
		"                    and TRAINCTL_CORE_DUMPS\n"
		"  -W                turn Lua warnings on\n"
		"  --                stop handling options\n"
		"  -                 stop handling options and run stdin\n"
		"  --profile NAME    credentials profile (default: "
		"TRAINCTL_PROFILE)\n"
		"  --log-level LEVEL error, warn, info, debug or trace "
		"(default: info)\n"
		"  --log-format FMT  text or json log lines on stderr "
		"(default: text)\n"
		"  --lock FILE       exit 3 at once if another run holds FILE\n"
		"  --lock etcd://HOST:PORT[,HOST:PORT...]/KEY\n"
		"                    the same across machines, on an etcd "
		"cluster\n"
		"                    (etcds:// for TLS); see "
		"docs/several-machines.md\n"
		"  --lock-ttl DUR    lease of an etcd lock (default 30s)\n"
		"  --lock-wait DUR   wait up to DUR for an etcd lock instead "
		"of "
		"exit 3\n"
		"  --timeout DUR     stop the whole run after DUR (90, 30s, "
		"15m, 2h);\n"
		"                    exit 4\n"
		"  --state FILE      where trainctl.state keeps this run's "
		"progress\n"
		"  --core-dumps      allow core dumps (off: they would hold "
		"secrets;\n"
		"                    also TRAINCTL_CORE_DUMPS=1)\n"
		"  --help            show this help\n"
		"  --version         show trainctl, Lua, libcurl and OpenSSL "
		"versions\n"
		"Exit status: 0 success, 1 error, 2 usage or configuration "
		"error,\n"
		"3 lock held, 4 timeout, 128+N killed by signal N (141: the "
		"reader of\n"
		"stdout went away).\n",
		progname, progname, progname, progname, progname, progname);
}

/* --log-format json (or TRAINCTL_LOG_FORMAT=json): the errors of the
 * command line are JSON lines too. Known before the options are checked,
 * so that a bad option after it is reported in JSON. */
static int json_lines;

static int wants_json(int argc, char **argv)
{
	const char *fmt = getenv("TRAINCTL_LOG_FORMAT");
	int i, sub = 0;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		/* After a subcommand, its global options come later too. */
		if (a[0] != '-' && !sub) {
			if (!(sub = script_is_subcommand(a)))
				break;
			continue;
		}
		if (strcmp(a, "--") == 0 || strcmp(a, "-") == 0)
			break;
		if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0)
			i++;
		else if (strncmp(a, "--log-format=", 13) == 0)
			fmt = a + 13;
		else if (strcmp(a, "--log-format") == 0 && i + 1 < argc)
			fmt = argv[++i];
	}
	return fmt && strcmp(fmt, "json") == 0;
}

/* The message goes through the library's redaction in either format:
 * the value of an option may be a key (`--timeout $SECRET`). */
static int usage_error(const char *fmt, const char *arg)
{
	char msg[1024];

	snprintf(msg, sizeof msg, fmt, arg);
	host_say(json_lines, msg, EXIT_USAGE);
	if (!json_lines)
		fprintf(stderr, "Try '%s --help' for more information.\n",
			progname);
	return -1;
}

/* An unknown option is named without what follows its '=': a value
 * given to an option that does not exist (`--secret-key=...`) is not
 * known to be harmless. */
static int unknown_option(const char *a)
{
	char name[256];

	snprintf(name, sizeof name, "%.*s", (int)strcspn(a, "="), a);
	return usage_error("unrecognized option '%s'", name);
}

static void print_version(void)
{
	const char *why = lazy_curl();
	const char *ssl = lazy_crypto();

	printf("trainctl %s\n%s\nlibcurl %s\n%s\n", TRAINCTL_VERSION,
	       script_lua_release(),
	       why ? why : curl_version_info(CURLVERSION_NOW)->version,
	       ssl ? ssl : OpenSSL_version(OPENSSL_VERSION));
	fflush(stdout);
}

/* Long options take their value as the next argument or after '='. */
static const char *long_value(char **argv, int *i, const char *name)
{
	size_t n = strlen(name);
	const char *a = argv[*i];

	if (strncmp(a, name, n) != 0)
		return NULL;
	if (a[n] == '=')
		return a + n + 1;
	if (a[n] != '\0')
		return NULL;
	if (argv[*i + 1] == NULL)
		return "";
	return argv[++*i];
}

static int global_opt(int argc, char **argv, int *i, struct opts *o);

/* After a subcommand, the global options may come anywhere before `--`
 * (`trainctl call aitems list_services --profile sim`); they are marked
 * so that the subcommand never sees them. */
static int subcommand_opts(int argc, char **argv, int at, struct opts *o)
{
	int i, r;

	o->call = at;
	o->global = calloc((size_t)argc, 1);
	if (o->global == NULL)
		return usage_error("%s", "not enough memory");
	for (i = at + 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		int from = i;
		if (strncmp(argv[i], "--", 2) != 0 ||
		    strcmp(argv[i], "--help") == 0)
			continue;
		if ((r = global_opt(argc, argv, &i, o)) < 0)
			return r;
		if (r == 1)
			memset(o->global + from, 1, (size_t)(i - from + 1));
	}
	return 0;
}

/* A global long option at argv[*i]: 1 if it was one (consumed, with its
 * value), 0 if not, -1 on a usage error. */
static int global_opt(int argc, char **argv, int *i, struct opts *o)
{
	const char *a = argv[*i], *v;

	(void)argc;
	if (strcmp(a, "--core-dumps") == 0) {
		o->core_dumps = 1;
	} else if ((v = long_value(argv, i, "--profile"))) {
		if (!*v)
			return usage_error("'%s' needs a name", a);
		o->profile = v;
	} else if ((v = long_value(argv, i, "--log-level"))) {
		if (strcmp(v, "error") && strcmp(v, "warn") &&
		    strcmp(v, "info") && strcmp(v, "debug") &&
		    strcmp(v, "trace"))
			return usage_error("unknown log level '%s' (error, "
					   "warn, info, debug, trace)",
					   v);
		o->log_level = v;
	} else if ((v = long_value(argv, i, "--log-format"))) {
		if (strcmp(v, "text") && strcmp(v, "json"))
			return usage_error(
				"unknown log format '%s' (text, json)", v);
		o->log_format = v;
	} else if ((v = long_value(argv, i, "--lock"))) {
		if (!*v)
			return usage_error("'%s' needs a file", a);
		o->lock = v;
	} else if ((v = long_value(argv, i, "--lock-ttl"))) {
		o->lock_ttl = host_parse_duration(v);
		/* A holder that dies keeps the lock until its TTL has run
		 * out: an hour is the most any host should wait for that. */
		if (!(o->lock_ttl >= 2 && o->lock_ttl <= 3600))
			return usage_error("invalid --lock-ttl '%s' "
					   "(from 2s to 1h, e.g. 30s)",
					   v);
	} else if ((v = long_value(argv, i, "--lock-wait"))) {
		o->lock_wait = host_parse_duration(v);
		if (o->lock_wait < 0)
			return usage_error("invalid duration '%s' "
					   "(e.g. 90, 30s, 15m, 2h)",
					   v);
	} else if ((v = long_value(argv, i, "--state"))) {
		if (!*v)
			return usage_error("'%s' needs a file", a);
		o->state = v;
	} else if ((v = long_value(argv, i, "--timeout"))) {
		o->timeout = host_parse_duration(v);
		if (o->timeout <= 0)
			return usage_error("invalid duration '%s' "
					   "(e.g. 90, 30s, 15m, 2h)",
					   v);
	} else {
		return 0;
	}
	return 1;
}

/* The first word that is not an option: a subcommand, the script, or
 * `--`/`-` before it. Returns 1 when the options end here, -1 on a usage
 * error. */
static int end_of_opts(int argc, char **argv, int i, struct opts *o)
{
	const char *a = argv[i];

	if (a[0] != '-') {
		if (script_is_subcommand(a))
			return subcommand_opts(argc, argv, i, o) < 0 ? -1 : 1;
		o->script = i;
		return 1;
	}
	if (strcmp(a, "--") == 0) {
		if (i + 1 < argc)
			o->script = i + 1;
		return 1;
	}
	if (strcmp(a, "-") == 0) {
		o->stdin_script = 1;
		o->script = i;
		return 1;
	}
	return 0;
}

/* lua.c's own options: 1 if argv[*i] was one, -1 on a usage error. */
static int lua_opt(int argc, char **argv, int *i, struct opts *o)
{
	const char *a = argv[*i];

	if (strcmp(a, "--help") == 0) {
		o->help = 1;
	} else if (strcmp(a, "--version") == 0 || strcmp(a, "-v") == 0) {
		o->version = 1;
	} else if (strcmp(a, "-i") == 0) {
		o->interactive = o->version = 1;
	} else if (strcmp(a, "-E") == 0) {
		o->no_env = 1;
	} else if (strcmp(a, "-W") == 0) {
		o->warnings = 1;
	} else if (strncmp(a, "-e", 2) == 0 || strncmp(a, "-l", 2) == 0) {
		o->has_e |= a[1] == 'e';
		o->has_l |= a[1] == 'l';
		if (a[2] == '\0' && (++*i >= argc || argv[*i][0] == '-'))
			return usage_error("'%s' needs an argument", a);
	} else {
		return 0;
	}
	return 1;
}

/* First pass: validate and record options; -e and -l run later, in
 * order. Returns -1 on a usage error. */
static int collect_opts(int argc, char **argv, struct opts *o)
{
	int i, r;

	for (i = 1; i < argc; i++) {
		if ((r = end_of_opts(argc, argv, i, o)) != 0)
			return r < 0 ? -1 : 0;
		if ((r = lua_opt(argc, argv, &i, o)) == 0)
			r = global_opt(argc, argv, &i, o);
		if (r < 0)
			return r;
		if (r == 0)
			return unknown_option(argv[i]);
	}
	return 0;
}

/* Takes the --lock before anything runs; the descriptor stays open (and
 * the lock held) until the process exits, whatever way it exits. */
static int take_lock(const char *path)
{
	int code = EXIT_USAGE;
	char msg[1024];

	if (fs_lock(path, 0644) >= 0)
		return EXIT_OK;
	if (errno == EINVAL) {
		snprintf(msg, sizeof msg, "--lock %s: not a regular file",
			 path);
	} else if (errno == EWOULDBLOCK) {
		snprintf(msg, sizeof msg, "--lock %s: held by another run",
			 path);
		code = EXIT_LOCKED;
	} else {
		snprintf(msg, sizeof msg, "--lock %s: %s", path,
			 errno == ELOOP ? "is a symbolic link (lock files are "
					  "never followed through links)"
					: strerror(errno));
	}
	host_say(json_lines, msg, code);
	return code;
}

/* A core dump of a run would hold its credentials in clear: none is
 * written (RLIMIT_CORE 0, and not dumpable, which also keeps other
 * processes of the same user out of /proc/PID/mem and environ), unless
 * asked for. */
static void core_dumps(const struct opts *o)
{
	const char *env = o->no_env ? NULL : getenv("TRAINCTL_CORE_DUMPS");
	struct rlimit rl;

	if (o->core_dumps || (env && strcmp(env, "1") == 0))
		return;
	if (getrlimit(RLIMIT_CORE, &rl) == 0) {
		rl.rlim_cur = 0;
		setrlimit(RLIMIT_CORE, &rl);
	}
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* The REPL (line editing) keeps the real standard streams. */
static int may_be_repl(const struct opts *o)
{
	return o->interactive || (!o->script && !o->call && !o->has_e &&
				  !o->version && isatty(0));
}

/* Whether the subcommand will make a request at once, so that libcurl
 * and libcrypto are worth loading before the Lua library asks for them:
 * `call PROVIDER OPERATION ...`, `wait REF`, `status PROVIDER REF`; not
 * a subcommand's help, a `call` that lists providers or operations, nor
 * one whose first words are options (a usage error). */
static int will_request(int argc, char **argv, const struct opts *o)
{
	const char *cmd = o->call ? argv[o->call] : "";
	int i, words = 0, need;

	if (strcmp(cmd, "call") == 0)
		need = 2;
	else if (strcmp(cmd, "wait") == 0 || strcmp(cmd, "status") == 0)
		need = 1;
	else
		return 0;
	for (i = o->call + 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0)
			return 0;
		if (o->global[i] || words >= need)
			continue;
		if (argv[i][0] == '-' || strcmp(argv[i], "help") == 0)
			return 0;
		words++;
	}
	return words >= need;
}

/* Everything main does but free the options. */
static int start(int argc, char **argv, struct opts *o)
{
	lua_State *L;
	int rc;

	if (argv[0] && argv[0][0])
		progname = "trainctl";
	json_lines = wants_json(argc, argv);
	stdstreams_json(json_lines);
	if (collect_opts(argc, argv, o) < 0)
		return EXIT_USAGE;
	core_dumps(o);
	if (!may_be_repl(o))
		stdstreams_check();
	if (o->help) {
		print_usage(stdout);
		return stdstreams_status(EXIT_OK);
	}
	if (o->version)
		print_version();
	if (o->version && !o->interactive && !o->script && !o->call &&
	    argc == 2)
		return stdstreams_status(EXIT_OK);
	if ((o->lock_ttl > 0 || o->lock_wait > 0) && !script_is_etcd(o->lock)) {
		usage_error("%s", "--lock-ttl and --lock-wait need an "
				  "etcd:// or etcds:// --lock");
		return EXIT_USAGE;
	}
	if (script_is_etcd(o->lock) && !o->script && !o->call) {
		usage_error("%s", "an etcd --lock needs a script or 'call'");
		return EXIT_USAGE;
	}
	/* Said before any code runs (a script, from a file or stdin, -e, -l),
	 * not at its first write of the state: by then it may have made
	 * things in a cloud that the next run, given the lock, would not find
	 * recorded. The subcommands (state list reads) and a REPL with
	 * nothing to run first are left to meet it at a write. */
	if (script_is_etcd(o->state) && !script_is_etcd(o->lock) && !o->call &&
	    (o->script || o->has_e || o->has_l || o->interactive ||
	     !isatty(0))) {
		usage_error(
			"--state %s needs an etcd --lock on the same "
			"cluster: its writes are fenced by the lock's lease",
			o->state);
		return EXIT_USAGE;
	}
	if (o->lock && !script_is_etcd(o->lock) &&
	    (rc = take_lock(o->lock)) != EXIT_OK)
		return rc;
	if (will_request(argc, argv, o))
		preload_start();
	host_no_env = o->no_env;
	L = host_new();
	if (L == NULL) {
		fprintf(stderr, "%s: cannot create state: not enough memory\n",
			progname);
		return EXIT_ERROR;
	}
	host_signals(L, 0);
	if (o->timeout > 0)
		host_set_timeout(o->timeout);
	rc = script_run(L, argc, argv, o);
	if (rc == SCRIPT_REPL) {
		host_signals(L, 1);
		rc = repl_run(L);
	}
	script_close(L);
	return stdstreams_status(rc);
}

int main(int argc, char **argv)
{
	struct opts o;
	int rc;

	stdstreams_reserve();
	memset(&o, 0, sizeof o);
	rc = start(argc, argv, &o);
	preload_wait();
	free(o.global);
	return rc;
}
