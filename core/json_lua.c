/*
 * json_lua: the fast path of prisn.output.json's encoder, in C
 * (prisn.core.json). The document and its rules (keys in byte order, two
 * spaces of indentation, floats as Python's repr) are the Lua module's; this
 * writes the same bytes for the values API handlers build, and gives up
 * (returns nil) on anything the careful Lua path must look at: a string
 * that needs escaping or may not be UTF-8, a key that is not a string, a
 * list with holes or string keys, NaN, infinities, other types, a table with
 * a metatable, or depth 100. The Lua encoder then does it or names the bad
 * part.
 *
 * Why: encoding the 1 MB list of 1,000 deployments took 24 ms in Lua in a
 * small process and 40-90 ms inside the server, whose collector walks a
 * larger heap meanwhile (tests/bench/deployments-report.md, issue 17).
 *
 * No Lua function is called. The text grows in a malloc'd buffer owned by
 * a userdata on the stack, so even a memory error raised by the Lua API
 * midway leaves nothing behind.
 */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"

#define MAX_DEPTH 100

#define BUFFER_MT "prisn.core.json.buffer"

typedef struct {
    char *buf;
    size_t len, cap;
} buffer;

typedef struct {
    lua_State *L;
    int null_idx;   /* the value written as null (cjson.null) */
    int arrays_idx; /* the weak set of tables marked as arrays */
    buffer *b;      /* a userdata on the stack: freed by its __gc if a raise */
    bool bail;      /* gave up: not a value for the fast path, or no memory */
} encoder;

typedef struct {
    const char *s;
    size_t len;
} key_ref;

static void put(encoder *e, const char *s, size_t n) {
    buffer *b = e->b;
    if (e->bail)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *grown = realloc(b->buf, cap);
        if (!grown) {
            e->bail = true;
            return;
        }
        b->buf = grown;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
}

static void put_zeros(encoder *e, int n) {
    for (int i = 0; i < n; i++)
        put(e, "0", 1);
}

static void put_str(encoder *e, const char *s) {
    put(e, s, strlen(s));
}

static void put_indent(encoder *e, int depth) {
    static const char spaces[] = "                                                                ";
    size_t n = (size_t)depth * 2;
    while (n > 0 && !e->bail) {
        size_t chunk = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
        put(e, spaces, chunk);
        n -= chunk;
    }
}

/* Lua's %c (iscntrl in the C locale), '"', '\\' and bytes of 128 and up:
 * what quote() would change or must check. */
static bool plain(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 32 || c == 127 || c == '"' || c == '\\' || c >= 128)
            return false;
    }
    return true;
}

static void put_quoted(encoder *e, const char *s, size_t n) {
    if (!plain(s, n)) {
        e->bail = true;
        return;
    }
    put(e, "\"", 1);
    put(e, s, n);
    put(e, "\"", 1);
}

/* value.format_float: the shortest %.Ne that reads back as x, laid out as
 * Python's repr (1e+20, 1e-05, 0.0001, 2.0). */
static void put_float(encoder *e, double x) {
    char s[64];
    for (int precision = 0; precision <= 16; precision++) {
        snprintf(s, sizeof s, "%.*e", precision, x);
        if (strtod(s, NULL) == x)
            break;
    }
    const char *p = s;
    bool negative = *p == '-';
    if (negative)
        p++;
    char digits[32];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < sizeof digits - 1)
            digits[nd++] = *p;
    if (*p != 'e') {
        e->bail = true;
        return;
    }
    int exponent = (int)strtol(p + 1, NULL, 10);
    while (nd > 0 && digits[nd - 1] == '0')
        nd--;
    if (nd == 0)
        digits[nd++] = '0';
    digits[nd] = '\0';
    int point = exponent + 1; /* digits before the decimal point */
    int n = (int)nd;
    if (negative)
        put(e, "-", 1);
    if (point <= -4 || point > 16) {
        int shown = point - 1;
        char tail[16];
        put(e, digits, 1);
        if (n > 1) {
            put(e, ".", 1);
            put(e, digits + 1, (size_t)n - 1);
        }
        snprintf(tail, sizeof tail, "e%c%02d", shown < 0 ? '-' : '+', abs(shown));
        put_str(e, tail);
    } else if (point <= 0) {
        put(e, "0.", 2);
        put_zeros(e, -point);
        put(e, digits, (size_t)n);
    } else if (point >= n) {
        put(e, digits, (size_t)n);
        put_zeros(e, point - n);
        put(e, ".0", 2);
    } else {
        put(e, digits, (size_t)point);
        put(e, ".", 1);
        put(e, digits + point, (size_t)(n - point));
    }
}

static void write_value(encoder *e, int idx, int depth);

static int compare_keys(const void *a, const void *b) {
    const key_ref *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c != 0)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* The table at idx (absolute) as an array of n items. */
static void write_array(encoder *e, int idx, lua_Integer n, int depth) {
    lua_State *L = e->L;
    if (n == 0) {
        put(e, "[]", 2);
        return;
    }
    put(e, "[\n", 2);
    for (lua_Integer i = 1; i <= n && !e->bail; i++) {
        put_indent(e, depth + 1);
        lua_rawgeti(L, idx, i);
        write_value(e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
        put(e, i < n ? ",\n" : "\n", i < n ? 2 : 1);
    }
    put_indent(e, depth);
    put(e, "]", 1);
}

/* The table at idx (absolute) as an object of count string keys. */
static void write_object(encoder *e, int idx, size_t count, int depth) {
    lua_State *L = e->L;
    if (count == 0) {
        put(e, "{}", 2);
        return;
    }
    key_ref *keys = malloc(count * sizeof *keys);
    if (!keys) {
        e->bail = true;
        return;
    }
    size_t k = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        /* Strings the table itself holds: they outlive this call. */
        if (k < count)
            keys[k].s = lua_tolstring(L, -1, &keys[k].len);
        k++;
    }
    qsort(keys, count, sizeof *keys, compare_keys);
    put(e, "{\n", 2);
    for (size_t i = 0; i < count && !e->bail; i++) {
        put_indent(e, depth + 1);
        put_quoted(e, keys[i].s, keys[i].len);
        put(e, ": ", 2);
        lua_pushlstring(L, keys[i].s, keys[i].len);
        lua_rawget(L, idx);
        write_value(e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
        put(e, i + 1 < count ? ",\n" : "\n", i + 1 < count ? 2 : 1);
    }
    free(keys);
    put_indent(e, depth);
    put(e, "}", 1);
}

static bool marked_array(encoder *e, int idx) {
    lua_pushvalue(e->L, idx);
    bool marked = lua_rawget(e->L, e->arrays_idx) == LUA_TBOOLEAN && lua_toboolean(e->L, -1);
    lua_pop(e->L, 1);
    return marked;
}

static void write_table(encoder *e, int idx, int depth) {
    lua_State *L = e->L;
    if (depth >= MAX_DEPTH || !lua_checkstack(L, 8)) {
        e->bail = true;
        return;
    }
    if (lua_getmetatable(L, idx)) {
        lua_pop(L, 1);
        e->bail = true;
        return;
    }
    /* What the table holds: every key a string (an object), or exactly
     * 1..#t (an array). */
    size_t count = 0;
    bool all_strings = true;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            all_strings = false;
        count++;
    }
    lua_rawgeti(L, idx, 1);
    bool has_first = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (has_first || marked_array(e, idx)) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
        if ((size_t)n != count) {
            e->bail = true;
            return;
        }
        write_array(e, idx, n, depth);
    } else if (!all_strings) {
        e->bail = true;
    } else {
        write_object(e, idx, count, depth);
    }
}

static void write_value(encoder *e, int idx, int depth) {
    if (e->bail)
        return;
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        put_quoted(e, s, n);
        break;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            char s[32];
            snprintf(s, sizeof s, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
            put_str(e, s);
        } else {
            double x = (double)lua_tonumber(L, idx);
            if (isnan(x) || isinf(x))
                e->bail = true;
            else
                put_float(e, x);
        }
        break;
    case LUA_TBOOLEAN:
        put_str(e, lua_toboolean(L, idx) ? "true" : "false");
        break;
    case LUA_TNIL:
        put(e, "null", 4);
        break;
    case LUA_TTABLE:
        write_table(e, idx, depth);
        break;
    default:
        if (lua_rawequal(L, idx, e->null_idx))
            put(e, "null", 4);
        else
            e->bail = true;
    }
}

/* json.encode(v, null, arrays [, depth]) -> text | nil: v as pretty JSON
 * ending in a newline, or nil when the careful path must do it (see the
 * top). null is the value written as null; arrays the set of tables marked
 * as arrays. With depth (0 to 99), v is a part of a document: written as
 * at that depth (its inner lines indented from there), its first line not
 * indented and no newline after it, so a caller can splice it in. */
static int l_encode(lua_State *L) {
    lua_settop(L, 4);
    luaL_checktype(L, 3, LUA_TTABLE);
    bool part = !lua_isnil(L, 4);
    lua_Integer depth = part ? luaL_checkinteger(L, 4) : 0;
    luaL_argcheck(L, depth >= 0 && depth < MAX_DEPTH, 4, "depth out of range");
    buffer *b = lua_newuserdatauv(L, sizeof *b, 0); /* index 5 */
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, BUFFER_MT);
    encoder e = {L, 2, 3, b, false};
    write_value(&e, 1, (int)depth);
    if (!part)
        put(&e, "\n", 1);
    lua_settop(L, 5);
    if (e.bail)
        lua_pushnil(L);
    else
        lua_pushlstring(L, b->buf, b->len);
    free(b->buf);
    b->buf = NULL;
    return 1;
}

static int buffer_gc(lua_State *L) {
    buffer *b = luaL_checkudata(L, 1, BUFFER_MT);
    free(b->buf);
    b->buf = NULL;
    return 0;
}

int luaopen_prisn_core_json(lua_State *L) {
    static const luaL_Reg funcs[] = {{"encode", l_encode}, {NULL, NULL}};
    prisn_binding_metatable(L, BUFFER_MT, NULL, buffer_gc, NULL, NULL);
    luaL_newlib(L, funcs);
    return 1;
}
