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

/* A new file that replaces `path` only once it is complete. Where the
 * file system can (O_TMPFILE, and /proc to name it), it has no name
 * while it is written, so a kill or a crash leaves nothing of it; else it
 * is a NAME.trainctl-tmp.XXXXXX beside `path`. Only between the two steps
 * of fs_pending_place has it a name of its own. Its writer holds a lock
 * (flock) on it until the descriptor closes; the next file placed at
 * `path` removes every NAME.trainctl-tmp.XXXXXX whose lock is free, the
 * leftovers of writers that died. */
struct fs_pending {
	int fd;	   /* read-write, close-on-exec, mode 0600 */
	char *tmp; /* the named temporary, or NULL for an unnamed file */
};

/* 0, or -1 with errno (nothing made). */
int fs_pending_open(struct fs_pending *p, const char *path);

/* Puts the file (written and fsynced by the caller) at `path`, replacing
 * what was there in one step. 0, or -1 with errno: `path` unchanged, the
 * file still pending. The descriptor stays open, the caller's to close. */
int fs_pending_place(struct fs_pending *p, const char *path);

/* Removes what is left of a file not placed (its name, if it has one).
 * Does not close the descriptor. */
void fs_pending_discard(struct fs_pending *p);

/* The file at `path` is either the old one or the complete new one,
 * whatever happens (a full disk, a kill): a pending file, fsync, placed
 * over, fsync of the directory; run as root, it keeps the owner of the
 * file it replaces. 0, or -1 with errno when the file was not replaced,
 * -2 when only the directory's fsync failed. */
int fs_write_atomic(const char *path, const char *data, size_t len,
		    mode_t mode);

#endif
