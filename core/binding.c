/*
 * binding: the helpers every Lua binding in core/ shares (see binding.h).
 *
 * Kept apart from any one family so that sys.c, store_lua.c, proc_lua.c and
 * the others push a failure and check an options table the same way; before,
 * each binding carried its own copy and the copies had begun to drift.
 */
#include "binding.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

#include "sys.h"

int prisn_binding_fail(lua_State *L, const char *code, const char *fmt, ...) {
    lua_pushnil(L);
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_pushstring(L, code);
    return 3;
}

int prisn_binding_fail_errno(lua_State *L, int err, const char *subject) {
    const char *code = prisn_sys_errno_name(err);
    return prisn_binding_fail(L, code, "%s: %s: %s", code, subject, strerror(err));
}

void prisn_binding_check_keys(lua_State *L, int idx, const char *what, const char *kind,
                              const char *const *allowed) {
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        bool ok = false;
        for (int i = 0; allowed[i] && lua_type(L, -1) == LUA_TSTRING; i++)
            ok = ok || strcmp(lua_tostring(L, -1), allowed[i]) == 0;
        if (!ok)
            luaL_error(L, "%s: unknown %s '%s'", what, kind, luaL_tolstring(L, -1, NULL));
    }
}

void prisn_binding_metatable(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                             lua_CFunction close, lua_CFunction tostring) {
    luaL_newmetatable(L, name);
    if (methods != NULL) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    const struct {
        const char *field;
        lua_CFunction fn;
    } meta[] = {{"__gc", gc}, {"__close", close}, {"__tostring", tostring}};
    for (size_t i = 0; i < sizeof meta / sizeof meta[0]; i++) {
        if (meta[i].fn == NULL)
            continue;
        lua_pushcfunction(L, meta[i].fn);
        lua_setfield(L, -2, meta[i].field);
    }
    lua_pop(L, 1);
}
