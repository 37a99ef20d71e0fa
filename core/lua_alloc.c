/*
 * lua_alloc: size-class pools for Lua's small blocks (see lua_alloc.h).
 *
 * Lua's allocator contract (lua_Alloc, manual §4.6) gives the block's size
 * back on every free and realloc (osize, when ptr is not NULL), so a block
 * needs no header: its size class is known from osize. A block may sit in
 * a class smaller than the memory it has (a shrink that kept it in place);
 * it is then reused as a block of that class, which is always safe.
 */
#include "lua_alloc.h"

#include <stdlib.h>
#include <string.h>

#define POOL_GRAIN 16
#define POOL_CLASSES (PRISN_POOL_MAX / POOL_GRAIN)
#define POOL_SLAB_BYTES (64 * 1024)

#if defined(__SANITIZE_ADDRESS__)
#define POOL_BYPASS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_BYPASS 1
#endif
#endif
#ifndef POOL_BYPASS
#define POOL_BYPASS 0
#endif

/* A free block holds the link to the next free block of its class. */
typedef struct free_block {
    struct free_block *next;
} free_block;

/* A slab's header; its blocks follow, aligned as malloc aligns. */
typedef struct slab {
    struct slab *next;
    max_align_t align_blocks;
} slab;

struct prisn_pool {
    free_block *free[POOL_CLASSES];
    char *carve, *carve_end; /* the part of the newest slab never handed out */
    slab *slabs;
    size_t slab_bytes;
};

#if POOL_BYPASS
/* Under ASan every block is malloc'd and the pool holds nothing: one shared
 * pool, so a state closed by os.exit(code, true) (lua_close, not
 * prisn_boot_close_state) leaks nothing LeakSanitizer would report. */
static prisn_pool bypass_pool;
#endif

prisn_pool *prisn_pool_new(void) {
#if POOL_BYPASS
    return &bypass_pool;
#else
    return calloc(1, sizeof(prisn_pool));
#endif
}

void prisn_pool_free(prisn_pool *pool) {
    if (pool == NULL || POOL_BYPASS)
        return;
    for (slab *s = pool->slabs, *next; s != NULL; s = next) {
        next = s->next;
        free(s);
    }
    free(pool);
}

size_t prisn_pool_slab_bytes(const prisn_pool *pool) {
    return pool->slab_bytes;
}

/* The class of a block of `size` bytes (1..PRISN_POOL_MAX) and its size. */
static size_t class_of(size_t size) {
    return (size - 1) / POOL_GRAIN;
}

static size_t class_size(size_t class) {
    return (class + 1) * POOL_GRAIN;
}

static int pooled(size_t size) {
    return !POOL_BYPASS && size <= PRISN_POOL_MAX;
}

/* A block of `class`: a freed one, else carved from the newest slab. */
static void *take(prisn_pool *pool, size_t class) {
    free_block *b = pool->free[class];
    if (b != NULL) {
        pool->free[class] = b->next;
        return b;
    }
    size_t size = class_size(class);
    if ((size_t)(pool->carve_end - pool->carve) < size) {
        slab *s = malloc(POOL_SLAB_BYTES);
        if (s == NULL)
            return NULL;
        s->next = pool->slabs;
        pool->slabs = s;
        pool->slab_bytes += POOL_SLAB_BYTES;
        /* The old slab's tail (under PRISN_POOL_MAX bytes) is left unused. */
        pool->carve = (char *)&s->align_blocks;
        pool->carve_end = (char *)s + POOL_SLAB_BYTES;
    }
    void *block = pool->carve;
    pool->carve += size;
    return block;
}

static void give_back(prisn_pool *pool, void *block, size_t size) {
    free_block *b = block;
    size_t class = class_of(size);
    b->next = pool->free[class];
    pool->free[class] = b;
}

void *prisn_pool_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    prisn_pool *pool = ud;
    if (nsize == 0) {
        if (ptr != NULL) {
            if (pooled(osize))
                give_back(pool, ptr, osize);
            else
                free(ptr);
        }
        return NULL;
    }
    if (ptr == NULL) /* osize is then the kind of object, not a size */
        return pooled(nsize) ? take(pool, class_of(nsize)) : malloc(nsize);
    if (!pooled(osize) && !pooled(nsize))
        return realloc(ptr, nsize);
    if (pooled(osize) && pooled(nsize) && class_of(osize) == class_of(nsize))
        return ptr;
    void *moved = pooled(nsize) ? take(pool, class_of(nsize)) : malloc(nsize);
    if (moved == NULL) {
        /* Lua counts on a shrink never failing: the block is big enough. */
        return nsize <= osize ? ptr : NULL;
    }
    memcpy(moved, ptr, osize < nsize ? osize : nsize);
    if (pooled(osize))
        give_back(pool, ptr, osize);
    else
        free(ptr);
    return moved;
}
