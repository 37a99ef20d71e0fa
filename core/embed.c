/*
 * embed: lazy loaders in package.preload for the Lua compiled into the binary.
 *
 * Each loader is a C closure holding the index of its module in
 * prisn_embedded_modules. With the development switch on, the loader reads the
 * module from the source tree first and falls back to the embedded bytecode
 * when the file is missing; a syntax error in the tree file is reported as the
 * error of the require, as Lua itself would.
 */
#include "embed.h"

#include <lauxlib.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Loads dev_tree/path as a chunk named "@path"; LUA_ERRFILE when absent. */
static int load_from_tree(lua_State *L, const char *dev_tree, const char *path) {
    char full[4096];
    snprintf(full, sizeof full, "%s/%s", dev_tree, path);
    FILE *f = fopen(full, "rbe"); /* e: O_CLOEXEC, as every descriptor prisn opens */
    if (!f)
        return LUA_ERRFILE;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t got;
    do {
        char *p = luaL_prepbuffer(&b);
        got = fread(p, 1, LUAL_BUFFERSIZE, f);
        luaL_addsize(&b, got);
    } while (got == LUAL_BUFFERSIZE);
    fclose(f);
    luaL_pushresult(&b);
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    lua_pushfstring(L, "@%s", path);
    int rc = luaL_loadbuffer(L, text, len, lua_tostring(L, -1));
    lua_remove(L, -2); /* chunk name */
    lua_remove(L, -2); /* source text */
    return rc;
}

/* Loads module m's embedded bytecode as chunk "@path". The bytecode is
 * stored LZ4-compressed (embedgen): decompressed into a buffer that lives only
 * for the load. */
static int load_embedded(lua_State *L, const prisn_embedded_module *m) {
    char chunk[512];
    snprintf(chunk, sizeof chunk, "@%s", m->path);
    char *code = malloc(m->raw_len);
    if (!code) {
        lua_pushfstring(L, "out of memory loading %s", m->path);
        return LUA_ERRMEM;
    }
    int got = LZ4_decompress_safe((const char *)m->code, code, (int)m->len, (int)m->raw_len);
    if (got < 0 || (size_t)got != m->raw_len) {
        free(code);
        lua_pushfstring(L, "embedded module %s is damaged", m->path);
        return LUA_ERRSYNTAX;
    }
    int rc = luaL_loadbufferx(L, code, m->raw_len, chunk, "b");
    free(code);
    return rc;
}

/* package.preload loader: upvalue 1 is the module index, upvalue 2 the dev
 * tree or nil. Returns what the module returns, as require expects. */
static int embed_loader(lua_State *L) {
    const prisn_embedded_module *m = &prisn_embedded_modules[lua_tointeger(L, lua_upvalueindex(1))];
    const char *dev_tree = lua_tostring(L, lua_upvalueindex(2));
    int rc = LUA_ERRFILE;
    if (dev_tree)
        rc = load_from_tree(L, dev_tree, m->path);
    if (rc == LUA_ERRFILE)
        rc = load_embedded(L, m);
    if (rc != LUA_OK)
        return lua_error(L);
    lua_pushstring(L, m->name);
    lua_pushstring(L, m->path);
    lua_call(L, 2, 1);
    return 1;
}

void prisn_embed_register(lua_State *L, const char *dev_tree) {
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    for (int i = 0; prisn_embedded_modules[i].name; i++) {
        lua_pushinteger(L, i);
        if (dev_tree)
            lua_pushstring(L, dev_tree);
        else
            lua_pushnil(L);
        lua_pushcclosure(L, embed_loader, 2);
        lua_setfield(L, -2, prisn_embedded_modules[i].name);
    }
    lua_pop(L, 1); /* preload */
    if (dev_tree) {
        lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua", dev_tree, dev_tree);
        lua_setfield(L, -2, "path");
    }
    lua_pop(L, 1); /* package */
}
