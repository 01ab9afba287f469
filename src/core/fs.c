/* Files: lock, mkdir -p, atomic replacement (fs.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"

static int close_keep_errno(int fd)
{
	int e = errno;

	close(fd);
	errno = e;
	return -1;
}

int fs_lock(const char *path, mode_t mode)
{
	int fd = open(path,
		      O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
			      O_NONBLOCK,
		      mode);
	struct stat st;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		return close_keep_errno(fd);
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		return close_keep_errno(fd);
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return close_keep_errno(fd);
	return fd;
}

int fs_mkdir_p(const char *path, mode_t mode, char *failed, size_t n)
{
	size_t len = strlen(path), i;

	if (len == 0 || len >= n) {
		snprintf(failed, n, "%s", path);
		errno = len ? ENAMETOOLONG : ENOENT;
		return -1;
	}
	memcpy(failed, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (failed[i] != '/' && failed[i] != '\0')
			continue;
		failed[i] = '\0';
		if (mkdir(failed, mode) < 0 && errno != EEXIST)
			return -1;
		failed[i] = path[i];
	}
	return 0;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n, len -= (size_t)n;
	}
	return 0;
}

/* The directory of `path` into dir (n bytes): 0, or -1 (ENAMETOOLONG). */
static int dir_of(const char *path, char *dir, size_t n)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(dir, n, ".");
	else if (slash == path)
		snprintf(dir, n, "/");
	else if ((size_t)(slash - path) < n)
		snprintf(dir, n, "%.*s", (int)(slash - path), path);
	else
		return errno = ENAMETOOLONG, -1;
	return 0;
}

static int fsync_dir(const char *path)
{
	char dir[4096];
	int fd, rc;

	if (dir_of(path, dir, sizeof dir) < 0)
		return -1;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* A pending file's name, where it has one: NAME.trainctl-tmp.XXXXXX,
 * the Xs from these characters (mkostemp's own as well). The infix is
 * ours alone: what sweep_leftovers removes is never a file of the user's
 * (a NAME.tmp.backup, say). */
#define TMP_INFIX ".trainctl-tmp."
#define TMP_XS 6
static const char tmp_chars[] = "abcdefghijklmnopqrstuvwxyz"
				"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/* NAME.trainctl-tmp.XXXXXX for `path`, malloc'ed, the Xs still to fill. */
static char *tmp_name(const char *path)
{
	size_t n = strlen(path) + sizeof TMP_INFIX + TMP_XS;
	char *name = malloc(n);

	if (name)
		snprintf(name, n, "%s" TMP_INFIX "XXXXXX", path);
	return name;
}

/* A pending file is locked (flock) by its writer from before anyone
 * else can open it until its descriptor closes: a temporary that another
 * process can lock was left by a writer that died. */
static int lock_new(struct fs_pending *p)
{
	struct stat mine, named;

	/* Without waiting: no one else can hold the lock of a file just
	 * made, but one who sweeps it (a named one, in the instant before
	 * this lock), who is about to take its name away. Where files
	 * cannot be locked, no one can sweep them either. */
	while (flock(p->fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return errno = EAGAIN, -1;
		if (errno != EINTR)
			return 0;
	}
	/* A named one had a name before its lock: one who swept it in
	 * between took the name away, and the file is made again. */
	if (p->tmp &&
	    (fstat(p->fd, &mine) < 0 || stat(p->tmp, &named) < 0 ||
	     mine.st_ino != named.st_ino || mine.st_dev != named.st_dev))
		return errno = EAGAIN, -1;
	return 0;
}

int fs_pending_open(struct fs_pending *p, const char *path)
{
	char dir[4096];
	int tries, e;

	p->tmp = NULL;
	if (dir_of(path, dir, sizeof dir) < 0)
		return -1;
	/* /proc names the descriptor for linkat (AT_EMPTY_PATH would need a
	 * capability). O_TMPFILE is refused by file systems and kernels
	 * without it in one of these three ways; anything else (no such
	 * directory, no room, no permission) a named file would meet too. */
	if (access("/proc/self/fd", X_OK) == 0) {
		p->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (p->fd >= 0)
			return lock_new(p) < 0 ? close_keep_errno(p->fd) : 0;
		if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
			return -1;
	}
	for (tries = 0; tries < 10; tries++) {
		p->tmp = tmp_name(path);
		if (!p->tmp)
			return errno = ENOMEM, -1;
		p->fd = mkostemp(p->tmp, O_CLOEXEC);
		if (p->fd >= 0 && lock_new(p) == 0)
			return 0;
		e = errno;
		if (p->fd >= 0)
			close(p->fd);
		free(p->tmp);
		p->tmp = NULL;
		if (e != EAGAIN)
			return errno = e, -1;
	}
	return errno = EAGAIN, -1;
}

/* Whether `name` is a temporary of the file named `base`. */
static int is_tmp_of(const char *name, const char *base)
{
	size_t n = strlen(base), k = sizeof TMP_INFIX - 1;

	return strlen(name) == n + k + TMP_XS && strncmp(name, base, n) == 0 &&
	       strncmp(name + n, TMP_INFIX, k) == 0 &&
	       strspn(name + n + k, tmp_chars) == TMP_XS;
}

/* Whether `name` in the directory dfd is a regular file (not followed),
 * its status in st. */
static int regular_at(int dfd, const char *name, struct stat *st)
{
	return fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st->st_mode);
}

/* Removes the temporaries beside `path` that writers which died left
 * (the instant between linkat and rename, or a whole write where files
 * without a name cannot be made): regular files whose lock is free. */
static void sweep_leftovers(const char *path)
{
	const char *slash = strrchr(path, '/'),
		   *base = slash ? slash + 1 : path;
	char dir[4096];
	struct dirent *de;
	DIR *d;
	int e = errno;

	if (dir_of(path, dir, sizeof dir) < 0 || !(d = opendir(dir)))
		return (void)(errno = e);
	while ((de = readdir(d))) {
		struct stat named, held;
		int fd;
		if (!is_tmp_of(de->d_name, base) ||
		    !regular_at(dirfd(d), de->d_name, &named))
			continue;
		/* Read-write where it can: over NFS, flock is a byte-range
		 * write lock. */
		fd = openat(dirfd(d), de->d_name,
			    O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
				    O_NOCTTY);
		if (fd < 0 && errno == EACCES)
			fd = openat(dirfd(d), de->d_name,
				    O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
					    O_CLOEXEC);
		if (fd < 0)
			continue;
		/* and the name still leads to the file locked */
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 &&
		    fstat(fd, &held) == 0 &&
		    regular_at(dirfd(d), de->d_name, &named) &&
		    held.st_ino == named.st_ino && held.st_dev == named.st_dev)
			unlinkat(dirfd(d), de->d_name, 0);
		close(fd);
	}
	closedir(d);
	errno = e;
}

/* Gives the unnamed file p->fd a name of its own beside `path`: 0 with
 * p->tmp set, or -1 with errno. */
static int name_pending(struct fs_pending *p, const char *path)
{
	char self[64], *name = tmp_name(path);
	size_t n;
	int tries;

	if (!name)
		return errno = ENOMEM, -1;
	n = strlen(name);
	snprintf(self, sizeof self, "/proc/self/fd/%d", p->fd);
	for (tries = 0; tries < 100; tries++) {
		unsigned char r[6];
		size_t i;
		if (getrandom(r, sizeof r, GRND_NONBLOCK) != sizeof r)
			for (i = 0; i < sizeof r; i++)
				r[i] = (unsigned char)random();
		for (i = 0; i < sizeof r; i++)
			name[n - 6 + i] =
				tmp_chars[r[i] % (sizeof tmp_chars - 1)];
		if (linkat(AT_FDCWD, self, AT_FDCWD, name, AT_SYMLINK_FOLLOW) ==
		    0) {
			p->tmp = name;
			return 0;
		}
		if (errno != EEXIST)
			break;
	}
	free(name);
	return -1;
}

int fs_pending_place(struct fs_pending *p, const char *path)
{
	int unnamed = p->tmp == NULL, e;

	if (unnamed && name_pending(p, path) < 0)
		return -1;
	if (rename(p->tmp, path) < 0) {
		e = errno;
		if (unnamed) { /* back to a file without a name */
			unlink(p->tmp);
			free(p->tmp);
			p->tmp = NULL;
		}
		return errno = e, -1;
	}
	free(p->tmp);
	p->tmp = NULL;
	sweep_leftovers(path);
	return 0;
}

void fs_pending_discard(struct fs_pending *p)
{
	if (p->tmp) {
		int e = errno;
		unlink(p->tmp);
		free(p->tmp);
		p->tmp = NULL;
		errno = e;
	}
}

/* Run as root (a state command with sudo), a file replaced keeps its
 * owner: a root-owned state file of mode 0600 would shut out the runs of
 * the user whose it is. */
static int keep_owner(int fd, const char *path)
{
	struct stat st;

	if (geteuid() != 0 || stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	return fchown(fd, st.st_uid, st.st_gid);
}

int fs_write_atomic(const char *path, const char *data, size_t len, mode_t mode)
{
	struct fs_pending p;
	int e;

	if (fs_pending_open(&p, path) < 0)
		return -1;
	if (keep_owner(p.fd, path) < 0 || fchmod(p.fd, mode) < 0 ||
	    write_all(p.fd, data, len) < 0 || fsync(p.fd) < 0 ||
	    fs_pending_place(&p, path) < 0) {
		e = errno;
		fs_pending_discard(&p);
		close(p.fd);
		return errno = e, -1;
	}
	close(p.fd); /* after fsync, nothing is left for close to report */
	return fsync_dir(path) < 0 ? -2 : 0;
}
