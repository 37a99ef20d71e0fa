/*
 * tls_lua: the Lua binding of tls.c, module prisn.core.tls. Used only by
 * lua/prisn/net/tls.lua, which wraps sockets and holds the policy (lifetimes,
 * file locations, what to trust).
 *
 * Certificates (operational failures return nil, message, code):
 *   tls.generate_key() -> key_pem                      ECDSA P-256, PKCS#8-less SEC1 PEM
 *   tls.create_cert{ key =, common_name =, sans = {"a.example", "127.0.0.1"},
 *                    not_before = epoch, not_after = epoch, ca = bool,
 *                    issuer_cert =, issuer_key = } -> cert_pem
 *       without issuer_* the certificate is self-signed.
 *   tls.cert_info(pem) -> { subject =, issuer =, sans = {...}, not_before =,
 *                    not_after =, fingerprint = "64 hex", self_signed =, ca = }
 *       of the first certificate in pem.
 *   tls.load_pair(cert_pem, key_pem) -> pair           chain (leaf first) + key
 *
 * Configurations and sessions:
 *   tls.server_config{ default = pair|nil, sni = function(name) -> pair|nil }
 *       sni is called during the handshake with the name the client sent;
 *       nil keeps the default (or refuses the name when there is none).
 *   tls.client_config{ ca_pem = pem|nil, fingerprint = "64 hex"|nil }
 *   config:session([host]) -> session     host: the name the server must prove
 *   session:feed(ciphertext)
 *   session:handshake() -> true (done) | false (want more) | nil, msg, code
 *   session:read() -> plaintext, closed | nil, msg, code
 *   session:write(plaintext) -> true | nil, msg, code
 *   session:take_output() -> ciphertext to send ("" when none)
 *   session:close_notify()
 *   session:server_name() | protocol() | cipher() | peer_fingerprint()
 *   session:close()                        idempotent; __gc and __close call it
 *
 * Codes: ECERTEXPIRED, ECERTFUTURE, EUNKNOWNCA, EPINMISMATCH, EHOSTMISMATCH,
 * ECERTBAD, ENOCERT, ENOTTLS, EPROTOVERSION, EPEERALERT, ESNI, ETLS, ENOMEM.
 * Misuse (wrong types, a closed handle, a bad hex fingerprint) raises.
 */
#include <lauxlib.h>
#include <lua.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "tls.h"

#define PAIR_MT "prisn.tls.pair"
#define CONFIG_MT "prisn.tls.config"
#define SESSION_MT "prisn.tls.session"

typedef struct {
    prisn_tls_pair pair;
    bool open;
} pair_handle;

typedef struct {
    prisn_tls_config config;
    bool open;
} config_handle;

typedef struct {
    prisn_tls_session s; /* first: the SNI hook gets back here from it */
    lua_State *L;
    bool open;
} session_handle;

static int fail_mbedtls(lua_State *L, const char *code, const char *msg) {
    return prisn_binding_fail(L, code, "%s: %s", code, msg);
}

static int fail_session(lua_State *L, prisn_tls_session *s) {
    const char *code = s->err_code ? s->err_code : "ETLS";
    return prisn_binding_fail(L, code, "%s: %s", code, s->err_msg);
}

static void push_hex(lua_State *L, const uint8_t *bin, size_t len) {
    char hex[2 * PRISN_TLS_FINGERPRINT_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, bin, len);
    lua_pushstring(L, hex);
}

/* ---- certificates -------------------------------------------------------------- */

static int l_tls_generate_key(lua_State *L) {
    char pem[1024];
    int ret = prisn_tls_key_generate(pem, sizeof pem);
    if (ret != 0)
        return fail_mbedtls(L, "ETLS", "key generation failed");
    lua_pushstring(L, pem);
    sodium_memzero(pem, sizeof pem);
    return 1;
}

static const char *opt_string(lua_State *L, int idx, const char *field, bool required) {
    lua_getfield(L, idx, field);
    const char *s = lua_tostring(L, -1);
    if (s == NULL && (required || !lua_isnil(L, -1)))
        luaL_error(L, "create_cert: %s must be a string", field);
    lua_pop(L, 1); /* the string stays alive in the options table */
    return s;
}

static lua_Integer opt_integer(lua_State *L, int idx, const char *field) {
    lua_getfield(L, idx, field);
    if (!lua_isinteger(L, -1))
        luaL_error(L, "create_cert: %s must be an integer (seconds since the epoch)", field);
    lua_Integer v = lua_tointeger(L, -1);
    lua_pop(L, 1);
    return v;
}

/* tls.create_cert(spec) -> pem | nil, msg, code */
static int l_tls_create_cert(lua_State *L) {
    static const char *const keys[] = {"key",         "common_name", "sans",
                                       "not_before",  "not_after",   "ca",
                                       "issuer_cert", "issuer_key",  NULL};
    luaL_checktype(L, 1, LUA_TTABLE);
    prisn_binding_check_keys(L, 1, "create_cert", "option", keys);
    prisn_tls_cert_spec spec = {0};
    spec.key_pem = opt_string(L, 1, "key", true);
    spec.common_name = opt_string(L, 1, "common_name", true);
    spec.issuer_cert_pem = opt_string(L, 1, "issuer_cert", false);
    spec.issuer_key_pem = opt_string(L, 1, "issuer_key", false);
    if ((spec.issuer_cert_pem == NULL) != (spec.issuer_key_pem == NULL))
        return luaL_error(L, "create_cert: issuer_cert and issuer_key go together");
    spec.not_before = (time_t)opt_integer(L, 1, "not_before");
    spec.not_after = (time_t)opt_integer(L, 1, "not_after");
    lua_getfield(L, 1, "ca");
    spec.is_ca = lua_toboolean(L, -1);
    lua_pop(L, 1);
    const char *sans[16];
    lua_getfield(L, 1, "sans");
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_Integer n = luaL_len(L, -1);
        if (n > 16)
            return luaL_error(L, "create_cert: at most 16 sans");
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            sans[spec.nsans] = lua_tostring(L, -1);
            if (sans[spec.nsans] == NULL || strlen(sans[spec.nsans]) >= PRISN_TLS_NAME_MAX)
                return luaL_error(L, "create_cert: sans[%d] must be a name or an address", (int)i);
            spec.nsans++;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    spec.sans = sans;
    char *pem = lua_newuserdatauv(L, PRISN_TLS_PEM_MAX, 0);
    char err[256] = "";
    if (prisn_tls_cert_create(&spec, pem, PRISN_TLS_PEM_MAX, err, sizeof err) != 0)
        return prisn_binding_fail(L, "EINVAL", "EINVAL: %s", err);
    lua_pushstring(L, pem);
    return 1;
}

/* tls.cert_info(pem) -> info | nil, msg, code */
static int l_tls_cert_info(lua_State *L) {
    size_t len;
    const char *pem = luaL_checklstring(L, 1, &len);
    prisn_tls_cert_info *info = lua_newuserdatauv(L, sizeof *info, 0);
    char err[256];
    if (prisn_tls_cert_info_of(pem, len, info, err, sizeof err) != 0)
        return prisn_binding_fail(L, "EINVAL", "EINVAL: %s", err);
    lua_createtable(L, 0, 8);
    lua_pushstring(L, info->subject);
    lua_setfield(L, -2, "subject");
    lua_pushstring(L, info->issuer);
    lua_setfield(L, -2, "issuer");
    lua_createtable(L, (int)info->nsans, 0);
    for (size_t i = 0; i < info->nsans; i++) {
        lua_pushstring(L, info->sans[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "sans");
    lua_pushinteger(L, (lua_Integer)info->not_before);
    lua_setfield(L, -2, "not_before");
    lua_pushinteger(L, (lua_Integer)info->not_after);
    lua_setfield(L, -2, "not_after");
    push_hex(L, info->fingerprint, sizeof info->fingerprint);
    lua_setfield(L, -2, "fingerprint");
    lua_pushboolean(L, info->self_signed);
    lua_setfield(L, -2, "self_signed");
    lua_pushboolean(L, info->is_ca);
    lua_setfield(L, -2, "ca");
    return 1;
}

/* ---- pairs ---------------------------------------------------------------------- */

static prisn_tls_pair *check_pair(lua_State *L, int idx) {
    pair_handle *h = luaL_checkudata(L, idx, PAIR_MT);
    if (!h->open)
        luaL_argerror(L, idx, "the pair is closed");
    return &h->pair;
}

/* tls.load_pair(cert_pem, key_pem) -> pair | nil, msg, code */
static int l_tls_load_pair(lua_State *L) {
    size_t cert_len, key_len;
    const char *cert = luaL_checklstring(L, 1, &cert_len);
    const char *key = luaL_checklstring(L, 2, &key_len);
    pair_handle *h = lua_newuserdatauv(L, sizeof *h, 0);
    prisn_tls_pair_init(&h->pair);
    h->open = true;
    luaL_setmetatable(L, PAIR_MT);
    char err[256];
    if (prisn_tls_pair_load(&h->pair, cert, cert_len, key, key_len, err, sizeof err) != 0)
        return prisn_binding_fail(L, "EINVAL", "EINVAL: %s", err);
    return 1;
}

static int l_pair_gc(lua_State *L) {
    pair_handle *h = luaL_checkudata(L, 1, PAIR_MT);
    if (h->open)
        prisn_tls_pair_free(&h->pair);
    h->open = false;
    return 0;
}

static int l_pair_tostring(lua_State *L) {
    lua_pushfstring(L, "prisn.tls.pair (%p)", lua_topointer(L, 1));
    return 1;
}

/* ---- configurations ------------------------------------------------------------- */

static config_handle *new_config(lua_State *L, bool is_server) {
    config_handle *h = lua_newuserdatauv(L, sizeof *h, 2);
    memset(h, 0, sizeof *h);
    luaL_setmetatable(L, CONFIG_MT);
    if (prisn_tls_config_init(&h->config, is_server) != 0) {
        prisn_tls_config_free(&h->config);
        luaL_error(L, "TLS configuration failed");
    }
    h->open = true;
    return h;
}

/* tls.server_config{ default = pair, sni = fn } -> config */
static int l_tls_server_config(lua_State *L) {
    static const char *const keys[] = {"default", "sni", NULL};
    luaL_checktype(L, 1, LUA_TTABLE);
    prisn_binding_check_keys(L, 1, "server_config", "option", keys);
    config_handle *h = new_config(L, true);
    lua_getfield(L, 1, "default");
    if (!lua_isnil(L, -1)) {
        prisn_tls_pair *p = check_pair(L, -1);
        if (mbedtls_ssl_conf_own_cert(&h->config.conf, &p->chain, &p->key) != 0)
            return luaL_error(L, "server_config: the default pair was refused");
    }
    lua_setiuservalue(L, -2, 1);
    lua_getfield(L, 1, "sni");
    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
        return luaL_error(L, "server_config: sni must be a function");
    lua_setiuservalue(L, -2, 2);
    return 1;
}

/* tls.client_config{ ca_pem =, fingerprint = } -> config | nil, msg, code */
static int l_tls_client_config(lua_State *L) {
    static const char *const keys[] = {"ca_pem", "fingerprint", NULL};
    luaL_checktype(L, 1, LUA_TTABLE);
    prisn_binding_check_keys(L, 1, "client_config", "option", keys);
    config_handle *h = new_config(L, false);
    lua_getfield(L, 1, "fingerprint");
    if (!lua_isnil(L, -1)) {
        size_t len, bin_len = 0;
        const char *hex = luaL_checklstring(L, -1, &len);
        if (sodium_hex2bin(h->config.pin, sizeof h->config.pin, hex, len, ":", &bin_len, NULL) !=
                0 ||
            bin_len != PRISN_TLS_FINGERPRINT_BYTES)
            return luaL_error(L, "client_config: fingerprint must be 64 hex digits (SHA-256)");
        h->config.has_pin = true;
    }
    lua_pop(L, 1);
    lua_getfield(L, 1, "ca_pem");
    if (!lua_isnil(L, -1)) {
        size_t len;
        const char *pem = luaL_checklstring(L, -1, &len);
        char err[256];
        if (prisn_tls_config_set_ca(&h->config, pem, len, err, sizeof err) != 0)
            return prisn_binding_fail(L, "EINVAL", "EINVAL: %s", err);
    }
    lua_pop(L, 1);
    return 1;
}

static config_handle *check_config(lua_State *L, int idx) {
    config_handle *h = luaL_checkudata(L, idx, CONFIG_MT);
    if (!h->open)
        luaL_argerror(L, idx, "the configuration is closed");
    return h;
}

static int l_config_gc(lua_State *L) {
    config_handle *h = luaL_checkudata(L, 1, CONFIG_MT);
    if (h->open)
        prisn_tls_config_free(&h->config);
    h->open = false;
    return 0;
}

static int l_config_tostring(lua_State *L) {
    config_handle *h = luaL_checkudata(L, 1, CONFIG_MT);
    lua_pushfstring(L, "prisn.tls.config (%s, %p)", h->config.is_server ? "server" : "client",
                    (void *)h);
    return 1;
}

/* ---- sessions ------------------------------------------------------------------- */

/* The SNI hook: runs inside mbedtls_ssl_handshake, called from
 * l_session_handshake, where the session is at index 1. */
static int session_sni(prisn_tls_session *s, const char *name) {
    session_handle *h = (session_handle *)s;
    lua_State *L = h->L;
    if (L == NULL || !lua_checkstack(L, 4))
        return -1;
    lua_getiuservalue(L, 1, 1); /* the config */
    bool has_default = lua_getiuservalue(L, -1, 1) != LUA_TNIL;
    lua_pop(L, 1);
    if (lua_getiuservalue(L, -1, 2) != LUA_TFUNCTION) {
        lua_pop(L, 2);
        return 0;
    }
    lua_pushstring(L, name);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        s->err_code = "ESNI";
        snprintf(s->err_msg, sizeof s->err_msg, "the SNI callback failed: %s",
                 lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object)");
        lua_pop(L, 2);
        return -1;
    }
    pair_handle *p = luaL_testudata(L, -1, PAIR_MT);
    if (p != NULL && p->open && prisn_tls_use_pair(s, &p->pair) == 0) {
        lua_setiuservalue(L, 1, 2); /* keeps the pair alive as long as the session */
        lua_pop(L, 1);
        return 0;
    }
    lua_pop(L, 2);
    if (has_default)
        return 0;
    s->err_code = "ENOCERT";
    snprintf(s->err_msg, sizeof s->err_msg, "no certificate for server name '%s'", name);
    return -1;
}

/* config:session([host]) -> session */
static int l_config_session(lua_State *L) {
    config_handle *c = check_config(L, 1);
    const char *host = luaL_optstring(L, 2, NULL);
    session_handle *h = lua_newuserdatauv(L, sizeof *h, 2);
    memset(h, 0, sizeof *h);
    luaL_setmetatable(L, SESSION_MT);
    if (prisn_tls_session_init(&h->s, &c->config, host) != 0) {
        prisn_tls_session_free(&h->s);
        return luaL_argerror(L, 2, "bad host name");
    }
    h->open = true;
    h->s.on_sni = session_sni;
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    return 1;
}

static session_handle *check_session(lua_State *L) {
    session_handle *h = luaL_checkudata(L, 1, SESSION_MT);
    if (!h->open)
        luaL_argerror(L, 1, "the session is closed");
    return h;
}

static int l_session_feed(lua_State *L) {
    session_handle *h = check_session(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    if (prisn_tls_feed(&h->s, (const uint8_t *)data, len) != 0)
        return luaL_error(L, "out of memory");
    lua_pushboolean(L, 1);
    return 1;
}

static int l_session_handshake(lua_State *L) {
    session_handle *h = check_session(L);
    lua_settop(L, 1);
    h->L = L;
    int r = prisn_tls_handshake(&h->s);
    h->L = NULL;
    if (r == PRISN_TLS_ERROR)
        return fail_session(L, &h->s);
    lua_pushboolean(L, r == PRISN_TLS_DONE);
    return 1;
}

static int l_session_read(lua_State *L) {
    session_handle *h = check_session(L);
    if (!h->s.handshake_done)
        return luaL_error(L, "read before the handshake is done");
    prisn_tls_buf plain = {0};
    int r = prisn_tls_read(&h->s, &plain);
    if (r == PRISN_TLS_ERROR) {
        prisn_tls_buf_free(&plain);
        return fail_session(L, &h->s);
    }
    lua_pushlstring(L, plain.len ? (const char *)plain.data + plain.off : "",
                    plain.len - plain.off);
    prisn_tls_buf_free(&plain);
    lua_pushboolean(L, r == PRISN_TLS_CLOSED);
    return 2;
}

static int l_session_write(lua_State *L) {
    session_handle *h = check_session(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    if (!h->s.handshake_done)
        return luaL_error(L, "write before the handshake is done");
    if (prisn_tls_write(&h->s, (const uint8_t *)data, len) != PRISN_TLS_DONE)
        return fail_session(L, &h->s);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_session_take_output(lua_State *L) {
    session_handle *h = check_session(L);
    prisn_tls_buf *out = &h->s.out;
    lua_pushlstring(L, out->len ? (const char *)out->data + out->off : "", out->len - out->off);
    out->off = out->len = 0;
    return 1;
}

static int l_session_close_notify(lua_State *L) {
    session_handle *h = check_session(L);
    if (prisn_tls_close_notify(&h->s) != PRISN_TLS_DONE)
        return fail_session(L, &h->s);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_session_server_name(lua_State *L) {
    session_handle *h = check_session(L);
    if (h->s.server_name[0] == '\0')
        return 0;
    lua_pushstring(L, h->s.server_name);
    return 1;
}

static int l_session_protocol(lua_State *L) {
    session_handle *h = check_session(L);
    lua_pushstring(L, mbedtls_ssl_get_version(&h->s.ssl));
    return 1;
}

static int l_session_cipher(lua_State *L) {
    session_handle *h = check_session(L);
    lua_pushstring(L, mbedtls_ssl_get_ciphersuite(&h->s.ssl));
    return 1;
}

static int l_session_peer_fingerprint(lua_State *L) {
    session_handle *h = check_session(L);
    const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&h->s.ssl);
    if (peer == NULL)
        return 0;
    uint8_t fp[PRISN_TLS_FINGERPRINT_BYTES];
    prisn_tls_fingerprint(peer, fp);
    push_hex(L, fp, sizeof fp);
    return 1;
}

static int l_session_close(lua_State *L) {
    session_handle *h = luaL_checkudata(L, 1, SESSION_MT);
    if (h->open)
        prisn_tls_session_free(&h->s);
    h->open = false;
    return 0;
}

static int l_session_tostring(lua_State *L) {
    session_handle *h = luaL_checkudata(L, 1, SESSION_MT);
    lua_pushfstring(L, "prisn.tls.session (%s, %p)", h->open ? "open" : "closed", (void *)h);
    return 1;
}

static const luaL_Reg session_methods[] = {
    {"feed", l_session_feed},
    {"handshake", l_session_handshake},
    {"read", l_session_read},
    {"write", l_session_write},
    {"take_output", l_session_take_output},
    {"close_notify", l_session_close_notify},
    {"server_name", l_session_server_name},
    {"protocol", l_session_protocol},
    {"cipher", l_session_cipher},
    {"peer_fingerprint", l_session_peer_fingerprint},
    {"close", l_session_close},
    {NULL, NULL},
};

static const luaL_Reg config_methods[] = {
    {"session", l_config_session},
    {NULL, NULL},
};

static const luaL_Reg tls_functions[] = {
    {"generate_key", l_tls_generate_key},
    {"create_cert", l_tls_create_cert},
    {"cert_info", l_tls_cert_info},
    {"load_pair", l_tls_load_pair},
    {"server_config", l_tls_server_config},
    {"client_config", l_tls_client_config},
    {NULL, NULL},
};

int luaopen_prisn_core_tls(lua_State *L) {
    if (sodium_init() < 0)
        return luaL_error(L, "libsodium failed to initialise");
    prisn_binding_metatable(L, PAIR_MT, NULL, l_pair_gc, l_pair_gc, l_pair_tostring);
    prisn_binding_metatable(L, CONFIG_MT, config_methods, l_config_gc, l_config_gc, l_config_tostring);
    prisn_binding_metatable(L, SESSION_MT, session_methods, l_session_close, l_session_close, l_session_tostring);
    luaL_newlib(L, tls_functions);
    return 1;
}
