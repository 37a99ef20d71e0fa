/*
 * lua_alloc: the memory allocator of prisn's Lua states.
 *
 * Lua allocates and frees small objects all the time (a table is 56 bytes,
 * a short string 24 plus its length) and frees them in bursts: a minor
 * collection of the server's generational GC frees the ~2 MB a few dozen
 * API requests left behind, in one pause. Through glibc's malloc each of
 * those frees coalesces chunks (unlink_chunk, malloc_consolidate: ~19 % of
 * the server's CPU in a GET, in perf). Here blocks of up to POOL_MAX bytes
 * come from 64 KiB slabs, one free list per 16-byte size class: a free is a
 * push, an allocation a pop. Larger blocks go to malloc as before.
 *
 * The price: memory given to a size class stays with that class for the
 * state's life (it is reused by that class, never returned to malloc), so
 * the resident size is the peak of each class, not of the whole. A state is
 * used by one thread at a time, as Lua requires; the pool has no lock.
 *
 * Under AddressSanitizer the pool is bypassed (every block is malloc'd), so
 * a use after free in Lua's C code or a binding is still caught.
 */
#ifndef PRISN_LUA_ALLOC_H
#define PRISN_LUA_ALLOC_H

#include <lua.h>
#include <stddef.h>

/* Blocks up to this many bytes come from the pool. */
#define PRISN_POOL_MAX 128

typedef struct prisn_pool prisn_pool;

/* A new, empty pool; NULL when out of memory. */
prisn_pool *prisn_pool_new(void);

/* Frees the pool's slabs: only once the state using it is closed. A state
 * closed another way (os.exit(code, true) calls lua_close) leaves them to
 * the process's exit. */
void prisn_pool_free(prisn_pool *pool);

/* The lua_Alloc function; its ud is the pool. */
void *prisn_pool_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* Bytes the pool holds in slabs (used or on its free lists): for tests. */
size_t prisn_pool_slab_bytes(const prisn_pool *pool);

#endif
