/* Files: lock, mkdir -p, atomic replacement (fs.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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

static int fsync_dir(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	int fd, rc;

	if (!slash)
		strcpy(dir, ".");
	else if (slash == path)
		strcpy(dir, "/");
	else if ((size_t)(slash - path) < sizeof dir)
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	else
		return errno = ENAMETOOLONG, -1;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

int fs_write_atomic(const char *path, const char *data, size_t len, mode_t mode)
{
	char tmp[4096];
	int fd, e;

	if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
		return errno = ENAMETOOLONG, -1;
	fd = mkstemp(tmp);
	if (fd < 0)
		return -1;
	if (fchmod(fd, mode) < 0 || write_all(fd, data, len) < 0 ||
	    fsync(fd) < 0) {
		close_keep_errno(fd);
		e = errno;
		unlink(tmp);
		return errno = e, -1;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		e = errno;
		unlink(tmp);
		return errno = e, -1;
	}
	return fsync_dir(path) < 0 ? -2 : 0;
}
