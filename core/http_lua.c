/*
 * http_lua: the Lua binding of http.c, module prisn.core.http.
 *
 *   local http = require("prisn.core.http")
 *   local parser = http.new_parser("request", { max_body_bytes = 65536 })
 *   -- in the socket's read callback:
 *   local messages, err, code = parser:feed(chunk)
 *   for _, m in ipairs(messages or {}) do handle(m) end
 *   if err then answer_400_and_close(code) end
 *
 * http.new_parser(kind, limits) -> parser
 *   kind: "request" | "response". limits (optional, unknown keys raise):
 *     max_header_bytes  start line + header lines, canonical size  (16384)
 *     max_body_bytes    body; a larger Content-Length fails as soon as the
 *                       head is complete                 (1 MiB; unlimited
 *                       when stream_body and not given)
 *     max_headers       header fields                              (100)
 *     stream_body       report the body in pieces (below)        (false)
 *
 * parser:feed(data) -> messages | messages, message, code | nil, message, code
 *   messages is a list, possibly empty, of what data completed. On failure
 *   the messages completed before the failure in this same data come first
 *   (or nil when there are none), then "CODE: description" and CODE. The
 *   parser is then dead: every later feed returns nil and the same error
 *   until reset(). Codes: http-parser's errno names ("HPE_INVALID_METHOD",
 *   "HPE_INVALID_HEADER_TOKEN", ...), "header_too_large", "body_too_large",
 *   "too_many_headers", "upgraded" (data after a message with upgrade =
 *   true: answer that message and close), "ENOMEM", "aborted".
 *
 * parser:feed_eof() -> same: the peer closed. Completes a response whose
 *   body runs to the close; fails with "incomplete_message" when the stream
 *   stopped inside a message.
 *
 * A request message:
 *   { method = "GET", url = "/a/b?x=1", path = "/a/b", query = "x=1" | nil,
 *     headers = { ["content-type"] = "application/json", ... },
 *     body = "" , keep_alive = true, http_version = "1.1", upgrade = false }
 * A response message:
 *   { status = 200, reason = "OK" | nil, headers, body, keep_alive,
 *     http_version, upgrade }
 * Header names are lower-cased; a repeated header's values are joined with
 * ", " in arrival order (RFC 9110 5.3), except set-cookie, joined with "\n"
 * since its values may contain commas. Bodies are byte strings (NULs kept).
 *
 * With stream_body = true, each message comes as a sequence of entries:
 *   the head, as above without body plus streaming = true (and
 *   content_length = n when declared), then { chunk = "..." } entries
 *   (at most one per feed and message: pieces are joined), then
 *   { done = true }. Every message has a head and a done, even without body.
 *   A body running past max_body_bytes fails with body_too_large after
 *   exactly the bytes within the limit came out as chunks.
 *
 * parser:pending() -> "none" | "head" | "body": where the bytes fed so far
 *   leave the stream: between messages, inside a head, or past a head.
 *
 * parser:skip_body()  response parsers: the next final response has no
 *   body whatever its head says (it answers HEAD). 1xx, 204 and 304
 *   responses never have one.
 * parser:leftover() -> n: after a feed failed with "upgraded", how many
 *   bytes at the end of that feed's data followed the message that switched
 *   protocols (they are the new protocol's: data:sub(-n)). 0 otherwise.
 * parser:reset()  forgets any partial message and error.
 * parser:close()  frees the buffers; idempotent; __gc and __close call it.
 * http.status_text(404) -> "Not Found" | nil
 * http.version() -> "2.9.4" (the linked http-parser)
 */
#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#include "binding.h"
#include "http.h"

#define HTTP_MT "prisn.http.parser"

typedef struct {
    prisn_http_parser parser;
    bool open;
} http_handle;

static const char *const kind_names[] = {"request", "response", NULL};

static prisn_http_parser *check_parser(lua_State *L, int idx) {
    http_handle *h = luaL_checkudata(L, idx, HTTP_MT);
    if (!h->open)
        luaL_argerror(L, idx, "the parser is closed");
    return &h->parser;
}

/* ---- building the Lua values ------------------------------------------------ */

/* headers[name] = value, joining a repeat to what is there. */
static void set_header(lua_State *L, int headers, const prisn_http_header *h) {
    lua_pushlstring(L, h->name, h->name_len);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, headers) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_pushlstring(L, h->value, h->value_len);
    } else {
        bool cookie = h->name_len == 10 && memcmp(h->name, "set-cookie", 10) == 0;
        lua_pushstring(L, cookie ? "\n" : ", ");
        lua_pushlstring(L, h->value, h->value_len);
        lua_concat(L, 3);
    }
    lua_rawset(L, headers);
}

static void set_string(lua_State *L, const char *field, const char *s, size_t len) {
    lua_pushlstring(L, s, len);
    lua_setfield(L, -2, field);
}

static void set_bool(lua_State *L, const char *field, bool b) {
    lua_pushboolean(L, b);
    lua_setfield(L, -2, field);
}

static void push_message(lua_State *L, const prisn_http_message *m, bool streaming) {
    lua_createtable(L, 0, 10);
    if (m->kind == PRISN_HTTP_REQUEST) {
        lua_pushstring(L, m->method);
        lua_setfield(L, -2, "method");
        set_string(L, "url", m->url, m->url_len);
        const char *path, *query;
        size_t path_len, query_len;
        bool has_query;
        prisn_http_split_url(m->url, m->url_len, &path, &path_len, &query, &query_len, &has_query);
        set_string(L, "path", path, path_len);
        if (has_query)
            set_string(L, "query", query, query_len);
    } else {
        lua_pushinteger(L, m->status);
        lua_setfield(L, -2, "status");
        if (m->reason_len > 0)
            set_string(L, "reason", m->reason, m->reason_len);
    }
    lua_createtable(L, 0, (int)m->nheaders);
    int headers = lua_gettop(L);
    for (size_t i = 0; i < m->nheaders; i++)
        set_header(L, headers, &m->headers[i]);
    lua_setfield(L, -2, "headers");
    if (streaming) {
        set_bool(L, "streaming", true);
        if (m->has_content_length) {
            lua_pushinteger(L, (lua_Integer)m->content_length);
            lua_setfield(L, -2, "content_length");
        }
    } else {
        set_string(L, "body", m->body, m->body_len);
    }
    set_bool(L, "keep_alive", m->keep_alive);
    lua_pushfstring(L, "%d.%d", m->http_major, m->http_minor);
    lua_setfield(L, -2, "http_version");
    set_bool(L, "upgrade", m->upgrade);
}

typedef struct {
    lua_State *L;
    int list;
    lua_Integer n;
} sink_ctx;

/* Appends one entry per event to the result list. A memory error raised
 * here unwinds through http-parser; the parser then reports "aborted". */
static int lua_sink(void *ctx, const prisn_http_event *ev) {
    sink_ctx *s = ctx;
    lua_State *L = s->L;
    luaL_checkstack(L, 8, "http message");
    switch (ev->type) {
    case PRISN_HTTP_EV_MESSAGE:
    case PRISN_HTTP_EV_HEAD:
        push_message(L, ev->message, ev->type == PRISN_HTTP_EV_HEAD);
        break;
    case PRISN_HTTP_EV_CHUNK:
        lua_createtable(L, 0, 1);
        set_string(L, "chunk", ev->data, ev->len);
        break;
    case PRISN_HTTP_EV_DONE:
        lua_createtable(L, 0, 1);
        set_bool(L, "done", true);
        break;
    }
    lua_rawseti(L, s->list, ++s->n);
    return 0;
}

/* The list (or nil when empty), then "CODE: description" and CODE. */
static int push_result(lua_State *L, prisn_http_parser *p, int rc, sink_ctx *s) {
    if (rc == 0)
        return 1;
    char buf[128];
    const char *code = prisn_http_error_code(p);
    prisn_binding_fail(L, code, "%s: %s", code, prisn_http_error_description(p, buf, sizeof buf));
    if (s->n > 0)
        lua_copy(L, s->list, -3); /* the messages completed before it, in nil's place */
    return 3;
}

/* ---- the parser --------------------------------------------------------------- */

/* limits[field] as a size: absent gives dflt; raises unless an integer >= min. */
static size_t opt_size(lua_State *L, int idx, const char *field, size_t dflt, lua_Integer min) {
    if (idx == 0)
        return dflt;
    lua_getfield(L, idx, field);
    size_t v = dflt;
    if (!lua_isnil(L, -1)) {
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < min)
            luaL_error(L, "new_parser: limits.%s must be an integer >= %d", field, (int)min);
        v = (size_t)lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* http.new_parser(kind, limits) -> parser
 * Raises on an unknown kind, an unknown limits key or a bad value. */
static int l_http_new_parser(lua_State *L) {
    int kind = luaL_checkoption(L, 1, NULL, kind_names);
    int idx = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        idx = 2;
        static const char *const keys[] = {"max_header_bytes", "max_body_bytes", "max_headers",
                                           "stream_body", NULL};
        prisn_binding_check_keys(L, idx, "new_parser", "limit", keys);
    }
    prisn_http_limits limits;
    prisn_http_default_limits(&limits);
    if (idx) {
        lua_getfield(L, idx, "stream_body");
        limits.stream_body = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    size_t body_default = limits.stream_body ? PRISN_HTTP_UNLIMITED : limits.max_body_bytes;
    limits.max_header_bytes = opt_size(L, idx, "max_header_bytes", limits.max_header_bytes, 1);
    limits.max_body_bytes = opt_size(L, idx, "max_body_bytes", body_default, 0);
    limits.max_headers = opt_size(L, idx, "max_headers", limits.max_headers, 0);

    http_handle *h = lua_newuserdatauv(L, sizeof *h, 0);
    h->open = false;
    luaL_setmetatable(L, HTTP_MT);
    prisn_http_init(&h->parser, kind == 0 ? PRISN_HTTP_REQUEST : PRISN_HTTP_RESPONSE, &limits);
    h->open = true;
    return 1;
}

/* parser:feed(data) -> messages | messages, msg, code | nil, msg, code
 * (see the top of this file). Raises when data is not a string or the
 * parser is closed. */
static int l_http_feed(lua_State *L) {
    prisn_http_parser *p = check_parser(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    lua_newtable(L);
    sink_ctx s = {L, lua_gettop(L), 0};
    int rc = prisn_http_feed(p, data, len, lua_sink, &s);
    return push_result(L, p, rc, &s);
}

/* parser:feed_eof() -> messages | messages, msg, code | nil, msg, code */
static int l_http_feed_eof(lua_State *L) {
    prisn_http_parser *p = check_parser(L, 1);
    lua_newtable(L);
    sink_ctx s = {L, lua_gettop(L), 0};
    int rc = prisn_http_feed_eof(p, lua_sink, &s);
    return push_result(L, p, rc, &s);
}

/* parser:pending() -> "none" | "head" | "body". Raises when closed. */
static int l_http_pending(lua_State *L) {
    static const char *const parts[] = {"none", "head", "body"};
    lua_pushstring(L, parts[prisn_http_pending(check_parser(L, 1))]);
    return 1;
}

/* parser:skip_body() -> nothing. The next final response is bodiless (it
 * answers HEAD); see http.h. Raises when closed. */
static int l_http_skip_body(lua_State *L) {
    prisn_http_skip_body(check_parser(L, 1));
    return 0;
}

/* parser:leftover() -> integer (see the top of this file). Raises when closed. */
static int l_http_leftover(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)prisn_http_leftover(check_parser(L, 1)));
    return 1;
}

/* parser:reset() -> nothing. Ready for a new stream; limits stay. */
static int l_http_reset(lua_State *L) {
    prisn_http_reset(check_parser(L, 1));
    return 0;
}

/* parser:close() -> nothing. Idempotent; a closed parser raises on use. */
static int l_http_close(lua_State *L) {
    http_handle *h = luaL_checkudata(L, 1, HTTP_MT);
    if (h->open) {
        prisn_http_free(&h->parser);
        h->open = false;
    }
    return 0;
}

static int l_http_tostring(lua_State *L) {
    http_handle *h = luaL_checkudata(L, 1, HTTP_MT);
    lua_pushfstring(L, "prisn.http.parser (%s%s)",
                    h->parser.kind == PRISN_HTTP_REQUEST ? "request" : "response",
                    h->open ? "" : ", closed");
    return 1;
}

/* http.status_text(code) -> "Not Found" | nil (a code http-parser does not
 * name). Raises when code is not an integer. */
static int l_http_status_text(lua_State *L) {
    lua_Integer code = luaL_checkinteger(L, 1);
    const char *text = (code >= 100 && code <= 999) ? prisn_http_status_text((int)code) : NULL;
    if (text == NULL)
        return 0;
    lua_pushstring(L, text);
    return 1;
}

/* http.version() -> "2.9.4", the http-parser linked in. */
static int l_http_version(lua_State *L) {
    unsigned long v = http_parser_version();
    lua_pushfstring(L, "%d.%d.%d", (int)((v >> 16) & 255), (int)((v >> 8) & 255), (int)(v & 255));
    return 1;
}

static const luaL_Reg http_methods[] = {
    {"feed", l_http_feed},
    {"feed_eof", l_http_feed_eof},
    {"pending", l_http_pending},
    {"skip_body", l_http_skip_body},
    {"leftover", l_http_leftover},
    {"reset", l_http_reset},
    {"close", l_http_close},
    {NULL, NULL},
};

static const luaL_Reg http_functions[] = {
    {"new_parser", l_http_new_parser},
    {"status_text", l_http_status_text},
    {"version", l_http_version},
    {NULL, NULL},
};

int luaopen_prisn_core_http(lua_State *L) {
    prisn_binding_metatable(L, HTTP_MT, http_methods, l_http_close, l_http_close, l_http_tostring);
    luaL_newlib(L, http_functions);
    return 1;
}
