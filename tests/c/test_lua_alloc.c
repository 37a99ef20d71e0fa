/*
 * The Lua states' pool allocator: blocks of a size class are reused, blocks
 * moving between classes or to malloc keep their bytes, a shrink never
 * fails, and a whole Lua state runs on it (strings, tables, the GC's frees).
 */
#include <lauxlib.h>
#include <stdint.h>
#include <string.h>

#include "boot.h"
#include "check.h"
#include "lua_alloc.h"

#if defined(__SANITIZE_ADDRESS__)
#define POOLED 0 /* the pool is bypassed under ASan: every block is malloc'd */
#else
#define POOLED 1
#endif

static void *alloc(prisn_pool *p, void *ptr, size_t osize, size_t nsize) {
    return prisn_pool_lua_alloc(p, ptr, osize, nsize);
}

static void test_a_freed_block_is_reused_by_its_class(void) {
    prisn_pool *p = prisn_pool_new();
    CHECK(p != NULL);
    void *a = alloc(p, NULL, LUA_TTABLE, 56);
    void *b = alloc(p, NULL, LUA_TTABLE, 56);
    CHECK(a != NULL && b != NULL && a != b);
    CHECK_INT((uintptr_t)a % 16, 0);
    CHECK_INT((uintptr_t)b % 16, 0);
    memset(a, 0xab, 56);
    memset(b, 0xcd, 56);
    alloc(p, a, 56, 0);
    void *c = alloc(p, NULL, LUA_TSTRING, 50); /* 50 and 56 share the 64-byte class */
    if (POOLED)
        CHECK(c == a);
    CHECK_INT(((unsigned char *)b)[55], 0xcd);
    alloc(p, b, 56, 0);
    alloc(p, c, 50, 0);
    CHECK_INT(prisn_pool_slab_bytes(p), POOLED ? 64 * 1024 : 0);
    prisn_pool_free(p);
}

static void test_realloc_keeps_the_bytes_across_classes_and_malloc(void) {
    prisn_pool *p = prisn_pool_new();
    unsigned char *x = alloc(p, NULL, 0, 24);
    for (int i = 0; i < 24; i++)
        x[i] = (unsigned char)i;
    x = alloc(p, x, 24, 30); /* same class: in place */
    for (int i = 24; i < 30; i++)
        x[i] = (unsigned char)i;
    x = alloc(p, x, 30, 120); /* another class */
    for (int i = 120 - 1; i >= 30; i--)
        x[i] = (unsigned char)i;
    x = alloc(p, x, 120, 5000); /* to malloc */
    for (int i = 0; i < 120; i++)
        CHECK_INT(x[i], i);
    for (int i = 120; i < 5000; i++)
        x[i] = (unsigned char)i;
    x = alloc(p, x, 5000, 9000); /* malloc to malloc */
    x = alloc(p, x, 9000, 100); /* back into the pool */
    for (int i = 0; i < 100; i++)
        CHECK_INT(x[i], i);
    x = alloc(p, x, 100, 10); /* a shrink to a smaller class */
    for (int i = 0; i < 10; i++)
        CHECK_INT(x[i], i);
    CHECK(alloc(p, x, 10, 0) == NULL);
    prisn_pool_free(p);
}

/* Sizes up to twice PRISN_POOL_MAX: pooled and malloc'd blocks mixed. */
static void test_many_blocks_span_many_slabs(void) {
    prisn_pool *p = prisn_pool_new();
    enum { N = 20000 };
    static void *blocks[N];
    for (int i = 0; i < N; i++) {
        size_t size = 1 + (size_t)(i * 37) % (2 * PRISN_POOL_MAX);
        blocks[i] = alloc(p, NULL, 0, size);
        CHECK(blocks[i] != NULL);
        memset(blocks[i], i & 0xff, size);
    }
    for (int i = 0; i < N; i++) {
        size_t size = 1 + (size_t)(i * 37) % (2 * PRISN_POOL_MAX);
        CHECK_INT(((unsigned char *)blocks[i])[size - 1], i & 0xff);
        alloc(p, blocks[i], size, 0);
    }
    size_t held = prisn_pool_slab_bytes(p);
    /* Freed blocks are taken again before any new slab. */
    for (int i = 0; i < N; i++)
        blocks[i] = alloc(p, NULL, 0, 1 + (size_t)(i * 37) % (2 * PRISN_POOL_MAX));
    CHECK_INT(prisn_pool_slab_bytes(p), held);
    for (int i = 0; i < N; i++)
        alloc(p, blocks[i], 1 + (size_t)(i * 37) % (2 * PRISN_POOL_MAX), 0);
    prisn_pool_free(p);
}

static void test_a_lua_state_runs_on_the_pool(void) {
    lua_State *L = prisn_boot_new_state(NULL);
    CHECK(L != NULL);
    CHECK(luaL_dostring(L, "local t = {}\n"
                           "for i = 1, 200000 do t[i % 5000] = { i, tostring(i), s = ('x'):rep(i % 300) } end\n"
                           "collectgarbage('generational')\n"
                           "for i = 1, 100000 do local g = { i, { i } } end\n"
                           "collectgarbage()\n"
                           "return #t[4999].s + #table.concat({ ('y'):rep(100000), 'z' })") == LUA_OK);
    CHECK_INT(lua_tointeger(L, -1), 4999 % 300 + 100001);
    prisn_boot_close_state(L);
}

int main(void) {
    static const check_case cases[] = {
        {"a freed block is reused by its class", test_a_freed_block_is_reused_by_its_class},
        {"realloc keeps the bytes across classes and malloc",
         test_realloc_keeps_the_bytes_across_classes_and_malloc},
        {"many blocks span many slabs", test_many_blocks_span_many_slabs},
        {"a Lua state runs on the pool", test_a_lua_state_runs_on_the_pool},
        {NULL, NULL},
    };
    return check_main(cases);
}
