/* trainctl.sys: clocks, environment, files written atomically, locks and
 * the two date formats the clouds speak (ISO 8601 and RFC 1123). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lazy.h"
#include <lauxlib.h>

#include "fs.h"
#include "host.h"

#define LOCK_MT "trainctl.lock"

static int l_now(lua_State *L)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	lua_pushnumber(L, (lua_Number)ts.tv_sec + ts.tv_nsec / 1e9);
	return 1;
}

static int l_clock(lua_State *L)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	lua_pushnumber(L, (lua_Number)ts.tv_sec + ts.tv_nsec / 1e9);
	return 1;
}

/* boottime(): seconds since boot, suspend included. Unlike now(), a
 * clock nobody can set: deadlines that outlive a process (a start that may
 * still land) are kept in it, with the boot they belong to. */
static int l_boottime(lua_State *L)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	lua_pushnumber(L, (lua_Number)ts.tv_sec + ts.tv_nsec / 1e9);
	return 1;
}

static int l_getenv(lua_State *L)
{
	lua_pushstring(L, getenv(luaL_checkstring(L, 1)));
	return 1;
}

static int l_isatty(lua_State *L)
{
	lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
	return 1;
}

/* deadline() -> when this run's --timeout ends, in now()'s seconds, or
 * nil without one: a script gives its children the time that is left. */
static int l_deadline(lua_State *L)
{
	struct timespec wall, mono;

	if (!(host_deadline > 0)) {
		lua_pushnil(L);
		return 1;
	}
	clock_gettime(CLOCK_REALTIME, &wall);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	lua_pushnumber(L,
		       (lua_Number)wall.tv_sec + wall.tv_nsec / 1e9 +
			       host_deadline -
			       ((lua_Number)mono.tv_sec + mono.tv_nsec / 1e9));
	return 1;
}

/* dumpable() -> whether a core dump of this process could be written
 * (off unless --core-dumps). */
static int l_dumpable(lua_State *L)
{
	struct rlimit rl;

	lua_pushboolean(L, prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) > 0 &&
				   getrlimit(RLIMIT_CORE, &rl) == 0 &&
				   rl.rlim_cur > 0);
	return 1;
}

static int l_getpid(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)getpid());
	return 1;
}

/* sleep(seconds): blocks, until the time is up or a stop signal (whose
 * hook then raises). trainctl.sys's sleep is trainctl.task's, which
 * yields inside a task and calls this outside. */
static int l_sleep(lua_State *L)
{
	wait_sleep(luaL_checknumber(L, 1));
	return 0;
}

static int fail(lua_State *L, const char *what, const char *path)
{
	return host_fileresult(L, what, path);
}

/* write_atomic(path, data [, mode]): the file at path is either the old
 * one or the complete new one, whatever happens (fs_write_atomic). */
static int l_write_atomic(lua_State *L)
{
	size_t len;
	const char *path = luaL_checkstring(L, 1);
	const char *data = luaL_checklstring(L, 2, &len);
	mode_t mask = umask(0);
	mode_t mode;
	int rc;

	umask(mask);
	mode = (mode_t)luaL_optinteger(L, 3, 0666 & ~mask);
	rc = fs_write_atomic(path, data, len, mode);
	if (rc == -1)
		return fail(L, "write", path);
	if (rc < 0)
		return fail(L, "fsync directory of", path);
	lua_pushboolean(L, 1);
	return 1;
}

static int *checklock(lua_State *L) { return luaL_checkudata(L, 1, LOCK_MT); }

static int lock_release(lua_State *L)
{
	int *fd = checklock(L);

	if (*fd >= 0) {
		close(*fd); /* closing drops the flock */
		*fd = -1;
	}
	return 0;
}

/* lock(path): an exclusive advisory lock, released by the kernel when the
 * process dies. Returns a handle, or nil, message, "locked" when another
 * process holds it. The file is opened without following a symlink and
 * never written: a lock path that names a link, or somebody's data, is
 * refused or left as it was. */
static int l_lock(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	int *fd = lua_newuserdatauv(L, sizeof *fd, 0);

	*fd = -1;
	luaL_setmetatable(L, LOCK_MT);
	/* Readable by all, as --lock's: a lock file made by root (a state
	 * command run with sudo) must not shut the owner's runs out. */
	*fd = fs_lock(path, 0644);
	if (*fd >= 0)
		return 1;
	if (errno == EINVAL) {
		return host_fail(L, NULL, "lock: %s: not a regular file", path);
	}
	if (errno == EWOULDBLOCK) {
		return host_fail(L, "locked",
				 "lock: %s: held by another process", path);
	}
	return fail(L, "lock", path);
}

/* readlink(path) -> the target of a symbolic link, or nil when path is
 * not one (or does not exist). */
static int l_readlink(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	char buf[4096];
	ssize_t n = readlink(path, buf, sizeof buf);

	if (n < 0 || (size_t)n >= sizeof buf) {
		if (n >= 0)
			errno = ENAMETOOLONG;
		return fail(L, "readlink", path);
	}
	lua_pushlstring(L, buf, (size_t)n);
	return 1;
}

static int l_stat(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	struct stat st;
	const char *type = "other";

	if (stat(path, &st) < 0)
		return fail(L, "stat", path);
	if (S_ISREG(st.st_mode))
		type = "file";
	else if (S_ISDIR(st.st_mode))
		type = "dir";
	lua_createtable(L, 0, 8);
	lua_pushinteger(L, st.st_mode & 07777);
	lua_setfield(L, -2, "mode");
	lua_pushinteger(L, (lua_Integer)st.st_dev);
	lua_setfield(L, -2, "dev");
	lua_pushinteger(L, (lua_Integer)st.st_ino);
	lua_setfield(L, -2, "ino");
	lua_pushinteger(L, (lua_Integer)st.st_uid);
	lua_setfield(L, -2, "uid");
	lua_pushinteger(L, (lua_Integer)st.st_size);
	lua_setfield(L, -2, "size");
	lua_pushinteger(L, (lua_Integer)st.st_mtime);
	lua_setfield(L, -2, "mtime");
	lua_pushstring(L, type);
	lua_setfield(L, -2, "type");
	return 1;
}

static int l_mkdir_p(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	mode_t mode = (mode_t)luaL_optinteger(L, 2, 0755);
	char failed[4096];

	if (fs_mkdir_p(path, mode, failed, sizeof failed) < 0)
		return fail(L, "mkdir", failed);
	lua_pushboolean(L, 1);
	return 1;
}

static int l_rusage(lua_State *L)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	lua_createtable(L, 0, 3);
	lua_pushnumber(L, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6);
	lua_setfield(L, -2, "utime");
	lua_pushnumber(L, ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
	lua_setfield(L, -2, "stime");
	lua_pushinteger(L, ru.ru_maxrss);
	lua_setfield(L, -2, "maxrss_kb");
	return 1;
}

static void checktime(lua_State *L, int idx, struct tm *tm, double *frac)
{
	lua_Number t = luaL_optnumber(L, idx, 0);
	time_t secs;

	if (lua_isnoneornil(L, idx)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		t = (lua_Number)ts.tv_sec + ts.tv_nsec / 1e9;
	}
	/* Years 0 to 9999 fit both formats; outside, the cast is undefined. */
	if (!(t >= -62167219200.0 && t < 253402300800.0))
		luaL_argerror(L, idx, "time out of range");
	secs = (time_t)t;
	if ((lua_Number)secs > t)
		secs--;
	*frac = t - (lua_Number)secs;
	if (!gmtime_r(&secs, tm))
		luaL_argerror(L, idx, "time out of range");
}

/* format_iso8601([t [, with_ms]]) -> "2024-01-02T03:04:05Z" */
static int l_format_iso8601(lua_State *L)
{
	struct tm tm;
	double frac;
	char buf[64];

	checktime(L, 1, &tm, &frac);
	if (lua_toboolean(L, 2))
		snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec,
			 (int)(frac * 1000) % 1000);
	else
		snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec);
	lua_pushstring(L, buf);
	return 1;
}

/* The English names are fixed by RFC 1123, whatever the locale. */
static const char day_names[][4] = { "Sun", "Mon", "Tue", "Wed",
				     "Thu", "Fri", "Sat" };
static const char month_names[][4] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

static int l_format_rfc1123(lua_State *L)
{
	struct tm tm;
	double frac;
	char buf[64];

	checktime(L, 1, &tm, &frac);
	snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT",
		 day_names[tm.tm_wday], tm.tm_mday, month_names[tm.tm_mon],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	lua_pushstring(L, buf);
	return 1;
}

static int digits(const char **p, int n, int *out)
{
	int v = 0;

	while (n--) {
		if (!isdigit((unsigned char)**p))
			return 0;
		v = v * 10 + (*(*p)++ - '0');
	}
	*out = v;
	return 1;
}

static int days_in(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30,
				    31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

/* parse_iso8601(s) -> seconds since the epoch (a float when the string has
 * fractions), or nil, err. Accepts a date alone, "T" or " " between date
 * and time, fractions of any length, and "Z" or a +hh:mm offset; no zone
 * means UTC, as the clouds mean it. */
static int l_parse_iso8601(lua_State *L)
{
	const char *s = luaL_checkstring(L, 1), *p = s;
	struct tm tm;
	double frac = 0, scale = 0.1, t;
	int y, mo, d, h = 0, mi = 0, sec = 0, off = 0;

	memset(&tm, 0, sizeof tm);
	if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) ||
	    *p++ != '-' || !digits(&p, 2, &d))
		goto bad;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi))
			goto bad;
		if (*p == ':') {
			p++;
			if (!digits(&p, 2, &sec))
				goto bad;
			if (*p == '.' || *p == ',') {
				p++;
				if (!isdigit((unsigned char)*p))
					goto bad;
				while (isdigit((unsigned char)*p)) {
					frac += (*p++ - '0') * scale;
					scale /= 10;
				}
			}
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
			if (!digits(&p, 2, &oh))
				goto bad;
			if (*p == ':')
				p++;
			if (isdigit((unsigned char)*p) && !digits(&p, 2, &om))
				goto bad;
			off = sign * (oh * 3600 + om * 60);
		}
	}
	if (*p || mo < 1 || mo > 12 || d < 1 || d > days_in(y, mo) || h > 23 ||
	    mi > 59 || sec > 60)
		goto bad;
	tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d;
	tm.tm_hour = h, tm.tm_min = mi, tm.tm_sec = sec;
	t = (double)timegm(&tm) - off;
	if (frac > 0)
		lua_pushnumber(L, t + frac);
	else
		lua_pushinteger(L, (lua_Integer)t);
	return 1;
bad:
	return host_fail(L, NULL, "invalid ISO 8601 time: %s", s);
}

static int name_index(const char (*names)[4], int n, const char *p)
{
	int i;

	for (i = 0; i < n; i++)
		if (strncmp(p, names[i], 3) == 0)
			return i;
	return -1;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT", the IMF-fixdate every current server
 * sends, parsed exactly. Returns 0 if s is not one. */
static int parse_fixdate(const char *s, time_t *t)
{
	const char *p = s + 5;
	struct tm tm;
	int d, mo, y, h, mi, sec;

	if (strlen(s) != 29 || name_index(day_names, 7, s) < 0 ||
	    strncmp(s + 3, ", ", 2) != 0)
		return 0;
	if (!digits(&p, 2, &d) || *p++ != ' ' ||
	    (mo = name_index(month_names, 12, p)) < 0)
		return 0;
	p += 3;
	if (*p++ != ' ' || !digits(&p, 4, &y) || *p++ != ' ' ||
	    !digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) ||
	    *p++ != ':' || !digits(&p, 2, &sec) || strcmp(p, " GMT") != 0)
		return 0;
	if (d < 1 || d > days_in(y, mo + 1) || h > 23 || mi > 59 || sec > 60)
		return 0;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900, tm.tm_mon = mo, tm.tm_mday = d;
	tm.tm_hour = h, tm.tm_min = mi, tm.tm_sec = sec;
	*t = timegm(&tm);
	return 1;
}

/* HTTP dates: the IMF-fixdate here; the obsolete RFC 850 and asctime
 * forms that a Retry-After may still carry through libcurl's parser
 * (which cannot return one second before the epoch: -1 is its error). */
static int l_parse_rfc1123(lua_State *L)
{
	const char *s = luaL_checkstring(L, 1);
	const char *why;
	time_t t;

	if (parse_fixdate(s, &t)) {
		lua_pushinteger(L, (lua_Integer)t);
		return 1;
	}
	why = lazy_curl();
	if (why) {
		return host_fail(L, NULL, "%s", why);
	}
	t = curl_getdate(s, NULL);
	if (t == (time_t)-1) {
		return host_fail(L, NULL, "invalid HTTP date: %s", s);
	}
	lua_pushinteger(L, (lua_Integer)t);
	return 1;
}

/* parse_duration("90s" | "15m" | "1h30m" | "90") -> seconds, or nil, err:
 * the one reading of durations, the command line's. */
static int l_parse_duration(lua_State *L)
{
	const char *s = luaL_checkstring(L, 1);
	double v = host_parse_duration(s);

	if (v < 0) {
		return host_fail(
			L, NULL,
			"invalid duration '%s' (e.g. 90, 30s, 15m, 2h)", s);
	}
	lua_pushnumber(L, v);
	return 1;
}

static const luaL_Reg funcs[] = { { "now", l_now },
				  { "clock", l_clock },
				  { "boottime", l_boottime },
				  { "getenv", l_getenv },
				  { "isatty", l_isatty },
				  { "getpid", l_getpid },
				  { "deadline", l_deadline },
				  { "dumpable", l_dumpable },
				  { "sleep", l_sleep },
				  { "write_atomic", l_write_atomic },
				  { "lock", l_lock },
				  { "readlink", l_readlink },
				  { "stat", l_stat },
				  { "mkdir_p", l_mkdir_p },
				  { "rusage", l_rusage },
				  { "format_iso8601", l_format_iso8601 },
				  { "parse_iso8601", l_parse_iso8601 },
				  { "format_rfc1123", l_format_rfc1123 },
				  { "parse_rfc1123", l_parse_rfc1123 },
				  { "parse_duration", l_parse_duration },
				  { NULL, NULL } };

static const luaL_Reg lock_methods[] = { { "unlock", lock_release },
					 { "__gc", lock_release },
					 { "__close", lock_release },
					 { NULL, NULL } };

int luaopen_trainctl_sys(lua_State *L)
{
	if (luaL_newmetatable(L, LOCK_MT)) {
		luaL_setfuncs(L, lock_methods, 0);
		lua_pushvalue(L, -1);
		lua_setfield(L, -2, "__index");
	}
	lua_pop(L, 1);
	luaL_newlib(L, funcs);
	return 1;
}
