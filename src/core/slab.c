/* The allocator of the Lua state (slab.h). */
#include <stdlib.h>
#include <string.h>

#include "slab.h"

/* Under AddressSanitizer or valgrind every block goes to malloc, so that
 * they see each one: a bad access inside a chunk would be invisible. */
#if defined(__SANITIZE_ADDRESS__)
#define CHECKED() 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHECKED() 1
#endif
#endif
#if !defined(CHECKED) && defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define CHECKED() RUNNING_ON_VALGRIND
#endif
#endif
#ifndef CHECKED
#define CHECKED() 0
#endif

#define GRAIN 16
#define CLASSES (SLAB_MAX / GRAIN)
#define CHUNK (64 * 1024 - 64) /* below malloc's mmap threshold */

struct chunk {
	struct chunk *next;
	max_align_t align[]; /* the blocks */
};

struct slab {
	int plain;	     /* every block from malloc (CHECKED) */
	void *free[CLASSES]; /* a free block holds the next one's address */
	char *cur, *end;     /* the unused rest of the newest chunk */
	struct chunk *chunks;
};

static size_t class_of(size_t n) { return (n - 1) / GRAIN; }

struct slab *slab_new(void)
{
	struct slab *s = calloc(1, sizeof *s);

	if (s)
		s->plain = CHECKED() != 0;
	return s;
}

void slab_free(struct slab *s)
{
	if (!s)
		return;
	while (s->chunks) {
		struct chunk *c = s->chunks;
		s->chunks = c->next;
		free(c);
	}
	free(s);
}

static void small_free(struct slab *s, void *p, size_t n)
{
	size_t k = class_of(n);

	memcpy(p, &s->free[k], sizeof p);
	s->free[k] = p;
}

static void *small_alloc(struct slab *s, size_t n)
{
	size_t k = class_of(n), size = (k + 1) * GRAIN;
	void *p = s->free[k];

	if (p) {
		memcpy(&s->free[k], p, sizeof p);
		return p;
	}
	if ((size_t)(s->end - s->cur) < size) {
		size_t rest =
			(size_t)(s->end - s->cur); /* a multiple of GRAIN */
		struct chunk *c = malloc(CHUNK);
		if (!c)
			return NULL;
		if (rest > 0) /* the old chunk's tail, for a smaller block */
			small_free(s, s->cur, rest);
		c->next = s->chunks;
		s->chunks = c;
		s->cur = (char *)c->align;
		s->end = (char *)c + CHUNK;
	}
	p = s->cur;
	s->cur += size;
	return p;
}

void *slab_realloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct slab *s = ud;
	void *p;

	if (s->plain) {
		if (nsize == 0) {
			free(ptr);
			return NULL;
		}
		return realloc(ptr, nsize);
	}
	if (ptr == NULL) /* osize is a type tag */
		return nsize == 0	   ? NULL
		       : nsize <= SLAB_MAX ? small_alloc(s, nsize)
					   : malloc(nsize);
	if (nsize == 0) {
		if (osize <= SLAB_MAX)
			small_free(s, ptr, osize);
		else
			free(ptr);
		return NULL;
	}
	if (osize > SLAB_MAX && nsize > SLAB_MAX)
		return realloc(ptr, nsize);
	if (osize <= SLAB_MAX && nsize <= SLAB_MAX &&
	    class_of(osize) == class_of(nsize))
		return ptr;
	p = nsize <= SLAB_MAX ? small_alloc(s, nsize) : malloc(nsize);
	if (!p)
		/* Lua counts on shrinking never failing: the block it has
		 * is large enough. Growing, NULL says out of memory. */
		return nsize < osize ? ptr : NULL;
	memcpy(p, ptr, nsize < osize ? nsize : osize);
	slab_realloc(s, ptr, osize, 0);
	return p;
}
