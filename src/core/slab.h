/* The allocator of the Lua state: small blocks (up to SLAB_MAX bytes)
 * come from per-size free lists carved out of large chunks, without a
 * header, since Lua tells the size of every block it frees or resizes;
 * larger ones from malloc. A waiting task is mostly small blocks (its
 * coroutine, tables, strings, closures): they cost their size rounded up
 * to 16 bytes, and allocating or freeing one is a pointer swap that
 * never leaves garbage for malloc to consolidate. Freed blocks are kept
 * for reuse until the state closes. Under AddressSanitizer or valgrind
 * every block comes from malloc, so that they see each one. */
#ifndef TRAINCTL_SLAB_H
#define TRAINCTL_SLAB_H

#include <stddef.h>

#define SLAB_MAX 512

struct slab;

struct slab *slab_new(void);
void slab_free(struct slab *s);

/* lua_Alloc's contract: nsize 0 frees, ptr NULL allocates (osize is
 * then a type tag, not a size), else resizes; returns NULL on failure,
 * never when shrinking. */
void *slab_realloc(void *ud, void *ptr, size_t osize, size_t nsize);

#endif
