/*
 * binding: the helpers every Lua binding shares. The failure triple has the
 * shape Lua code matches on (nil, "CODE: subject: text", "CODE"), a subject is
 * never read as a format, and the strict options check names the key it
 * refused, whatever its type.
 */
#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>

#include "binding.h"
#include "check.h"

/* Calls fn in protected mode with the table t as its argument; returns the
 * error message, or NULL when fn did not raise. */
static const char *raised_by(lua_State *L, lua_CFunction fn, const char *t) {
    lua_pushcfunction(L, fn);
    if (luaL_dostring(L, t) != LUA_OK)
        return lua_tostring(L, -1);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK)
        return lua_tostring(L, -1);
    return NULL;
}

static const char *const spawn_keys[] = {"file", "argv", NULL};

static int check_spawn_options(lua_State *L) {
    prisn_binding_check_keys(L, 1, "spawn", "option", spawn_keys);
    return 0;
}

static void test_fail_pushes_the_triple(void) {
    lua_State *L = luaL_newstate();
    CHECK_INT(prisn_binding_fail(L, "EDECRYPT", "EDECRYPT: %s (%d)", "sealed data", 7), 3);
    CHECK_INT(lua_gettop(L), 3);
    CHECK(lua_isnil(L, 1));
    CHECK_STR(lua_tostring(L, 2), "EDECRYPT: sealed data (7)");
    CHECK_STR(lua_tostring(L, 3), "EDECRYPT");
    lua_close(L);
}

static void test_fail_errno_names_the_subject(void) {
    lua_State *L = luaL_newstate();
    CHECK_INT(prisn_binding_fail_errno(L, ENOENT, "/tmp/100%s%d"), 3);
    CHECK(lua_isnil(L, -3));
    CHECK_STR(lua_tostring(L, -2), "ENOENT: /tmp/100%s%d: No such file or directory");
    CHECK_STR(lua_tostring(L, -1), "ENOENT");
    lua_close(L);
}

static void test_check_keys(void) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    CHECK(raised_by(L, check_spawn_options, "return { file = 'x', argv = {} }") == NULL);
    CHECK(raised_by(L, check_spawn_options, "return {}") == NULL);
    CHECK_STR(raised_by(L, check_spawn_options, "return { file = 'x', argb = {} }"),
              "spawn: unknown option 'argb'");
    CHECK_STR(raised_by(L, check_spawn_options, "return { 'positional' }"),
              "spawn: unknown option '1'");
    lua_close(L);
}

int main(void) {
    static const check_case cases[] = {
        {"fail pushes nil, message, code", test_fail_pushes_the_triple},
        {"fail_errno names the subject, never formats it", test_fail_errno_names_the_subject},
        {"check_keys refuses what it does not know", test_check_keys},
        {NULL, NULL},
    };
    return check_main(cases);
}
