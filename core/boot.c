/*
 * boot: builds the Lua state prisn runs in (see boot.h).
 *
 * The order matters: LUA_NOENV is set before the package library opens so
 * LUA_PATH cannot redirect prisn's own modules; the default search paths are
 * kept aside for `prisn lua`, which may want system modules such as busted.
 */
#include "boot.h"

#include <lauxlib.h>
#include <lua-cjson.h>
#include <lualib.h>
#include <luv/luv.h>

#include <stdio.h>

#include "binding.h"
#include "embed.h"
#include "lua_alloc.h"

static const luaL_Reg core_modules[] = {
    {"luv", luaopen_luv},
    {"cjson", luaopen_cjson},
    {"prisn.core.sys", luaopen_prisn_core_sys},
    {"prisn.core.store", luaopen_prisn_core_store},
    {"prisn.core.checkpoint", luaopen_prisn_core_checkpoint},
    {"prisn.core.crypto", luaopen_prisn_core_crypto},
    {"prisn.core.proc", luaopen_prisn_core_proc},
    {"prisn.core.cgroup", luaopen_prisn_core_cgroup},
    {"prisn.core.sandbox", luaopen_prisn_core_sandbox},
    {"prisn.core.http", luaopen_prisn_core_http},
    {"prisn.core.json", luaopen_prisn_core_json},
    {"prisn.core.tls", luaopen_prisn_core_tls},
    {NULL, NULL},
};

int prisn_boot_traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL || lua_type(L, 1) == LUA_TTABLE)
        return 1; /* structured error: keep it as it is */
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* What luaL_newstate's panic does: say why, then Lua aborts. */
static int boot_panic(lua_State *L) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "Error: internal error in prisn: unprotected Lua error: %s\n",
            msg ? msg : "(an error object that is not a string)");
    return 0;
}

lua_State *prisn_boot_new_state(const char *dev_tree) {
    prisn_pool *pool = prisn_pool_new();
    if (pool == NULL)
        return NULL;
    lua_State *L = lua_newstate(prisn_pool_lua_alloc, pool);
    if (L == NULL) {
        prisn_pool_free(pool);
        return NULL;
    }
    lua_atpanic(L, boot_panic);
    lua_setwarnf(L, NULL, NULL); /* warn() says nothing, as luaL_newstate's default */
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
    luaL_openlibs(L);

    /* Keep Lua's compiled-in search paths for `prisn lua`, then clear them. */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_setfield(L, LUA_REGISTRYINDEX, "prisn.lua_path_default");
    lua_getfield(L, -1, "cpath");
    lua_setfield(L, LUA_REGISTRYINDEX, "prisn.lua_cpath_default");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");

    lua_getfield(L, -1, "preload");
    for (const luaL_Reg *m = core_modules; m->name; m++) {
        lua_pushcfunction(L, m->func);
        lua_setfield(L, -2, m->name);
    }
    lua_pop(L, 2); /* preload, package */

    prisn_embed_register(L, dev_tree);
    return L;
}

void prisn_boot_close_state(lua_State *L) {
    void *pool;
    lua_getallocf(L, &pool);
    lua_close(L);
    prisn_pool_free(pool);
}
