/*
 * binding: what every Lua binding in core/ shares, so each convention has
 * one home instead of a copy per family.
 *
 * - The failure triple (luv's convention): an operational failure returns
 *   nil, message, code, with code a stable name ("ENOENT", "SQLITE_BUSY",
 *   "EDECRYPT") and a message naming the subject ("ENOENT: /tmp/x: No such
 *   file or directory").
 * - The strict options check: a key an options table does not know raises,
 *   because a misspelled limit would otherwise be dropped without a word.
 * - The luaopen_prisn_core_* entry points, which boot.c registers in
 *   package.preload; each is defined by its family's binding file.
 *
 * Misuse still raises through luaL_argerror/luaL_error in each binding;
 * nothing here decides what a failure means, that is Lua's policy.
 */
#ifndef PRISN_BINDING_H
#define PRISN_BINDING_H

#include <lauxlib.h>
#include <lua.h>

/* Pushes nil, the message (fmt and its arguments as lua_pushfstring takes
 * them: %s %d %I %f %p %c %U %%) and code; returns 3, for
 * `return prisn_binding_fail(L, ...)`. The message is used as formatted: a
 * luv-style message starts with the code itself ("EINVAL: ..."). */
int prisn_binding_fail(lua_State *L, const char *code, const char *fmt, ...);

/* The errno flavour: pushes nil, "<ERRNO>: <subject>: <strerror(err)>" and
 * "<ERRNO>" (prisn_sys_errno_name), returns 3. subject is taken as it is (a
 * path may hold '%'). */
int prisn_binding_fail_errno(lua_State *L, int err, const char *subject);

/* Raises "<what>: unknown <kind> '<key>'" when the table at idx holds a key
 * that is not one of allowed (a NULL-terminated list of names); a key that is
 * not a string is never allowed. Values are not looked at. */
void prisn_binding_check_keys(lua_State *L, int idx, const char *what, const char *kind,
                              const char *const *allowed);

/* Registers the metatable `name` of a binding's handles: __index the
 * functions of `methods` (NULL: none), __gc `gc`, __close `close` and
 * __tostring `tostring` (each NULL: none). */
void prisn_binding_metatable(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                             lua_CFunction close, lua_CFunction tostring);

/* The C modules, as `require` names them: prisn.core.<family>. */
int luaopen_prisn_core_sys(lua_State *L);        /* sys.c */
int luaopen_prisn_core_store(lua_State *L);      /* store_lua.c */
int luaopen_prisn_core_checkpoint(lua_State *L); /* checkpoint.c */
int luaopen_prisn_core_crypto(lua_State *L);     /* crypto.c */
int luaopen_prisn_core_proc(lua_State *L);       /* proc_lua.c */
int luaopen_prisn_core_cgroup(lua_State *L);     /* cgroup_lua.c */
int luaopen_prisn_core_sandbox(lua_State *L);    /* sandbox_lua.c */
int luaopen_prisn_core_http(lua_State *L);       /* http_lua.c */
int luaopen_prisn_core_json(lua_State *L);       /* json_lua.c */
int luaopen_prisn_core_tls(lua_State *L);        /* tls_lua.c */

#endif
