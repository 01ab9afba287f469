/* Files: an exclusive lock, a directory and its parents, a file replaced
 * atomically. Without Lua; trainctl.sys binds them, and the command line
 * takes --lock with the same lock. */
#ifndef TRAINCTL_FS_H
#define TRAINCTL_FS_H

#include <stddef.h>
#include <sys/types.h>

/* An exclusive advisory lock on `path` (created with `mode`), released by
 * the kernel when the descriptor closes or the process dies. The file is
 * opened without following a symlink (ELOOP) and never written. Returns
 * the descriptor, or -1 with errno (EWOULDBLOCK: another holder; EINVAL:
 * not a regular file). */
int fs_lock(const char *path, mode_t mode);

/* mkdir -p: every directory of `path`. On failure -1 with errno, and
 * `failed` (n bytes) holds the directory that could not be made. */
int fs_mkdir_p(const char *path, mode_t mode, char *failed, size_t n);

/* The file at `path` is either the old one or the complete new one,
 * whatever happens (a full disk, a kill): a temporary beside it, fsync,
 * rename over, fsync of the directory. 0, or -1 with errno when the file
 * was not replaced, -2 when only the directory's fsync failed. */
int fs_write_atomic(const char *path, const char *data, size_t len,
		    mode_t mode);

#endif
