/*
 * The booted state: environment variables cannot redirect module loading,
 * every embedded module loads without error, and a module's chunk name is its
 * repository path so tracebacks point at the source.
 */
#include <lauxlib.h>
#include <stdlib.h>

#include "boot.h"
#include "check.h"
#include "embed.h"

static void test_lua_path_is_ignored(void) {
    setenv("LUA_PATH", "/nonexistent/?.lua", 1);
    setenv("LUA_PATH_5_4", "/nonexistent/?.lua", 1);
    lua_State *L = prisn_boot_new_state(NULL);
    CHECK(L != NULL);
    CHECK(luaL_dostring(L, "return package.path") == LUA_OK);
    CHECK_STR(lua_tostring(L, -1), "");
    CHECK(luaL_dostring(L, "return package.cpath") == LUA_OK);
    CHECK_STR(lua_tostring(L, -1), "");
    prisn_boot_close_state(L);
}

static void test_every_embedded_module_loads(void) {
    lua_State *L = prisn_boot_new_state(NULL);
    int count = 0;
    for (const prisn_embedded_module *m = prisn_embedded_modules; m->name; m++, count++) {
        lua_getglobal(L, "require");
        lua_pushstring(L, m->name);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
            check_fail(__FILE__, __LINE__, "require(%s): %s", m->name, lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    CHECK(count > 0);
    prisn_boot_close_state(L);
}

static void test_chunk_names_are_repository_paths(void) {
    lua_State *L = prisn_boot_new_state(NULL);
    CHECK(luaL_dostring(L, "local m = require('prisn.error')\n"
                           "return debug.getinfo(m.new, 'S').source") == LUA_OK);
    CHECK_STR(lua_tostring(L, -1), "@lua/prisn/error.lua");
    prisn_boot_close_state(L);
}

static void test_core_modules_are_preloaded(void) {
    lua_State *L = prisn_boot_new_state(NULL);
    CHECK(luaL_dostring(L, "return require('luv').version_string() ~= nil and "
                           "require('cjson').encode({1}) == '[1]' and "
                           "require('prisn.core.sys').version ~= nil") == LUA_OK);
    CHECK(lua_toboolean(L, -1));
    prisn_boot_close_state(L);
}

int main(void) {
    static const check_case cases[] = {
        {"LUA_PATH is ignored", test_lua_path_is_ignored},
        {"every embedded module loads", test_every_embedded_module_loads},
        {"chunk names are repository paths", test_chunk_names_are_repository_paths},
        {"core modules are preloaded", test_core_modules_are_preloaded},
        {NULL, NULL},
    };
    return check_main(cases);
}
