/*
 * sandbox_lua: parsing of the `sandbox` spawn option (see sandbox_lua.c),
 * shared with proc_lua.c.
 */
#ifndef PRISN_SANDBOX_LUA_H
#define PRISN_SANDBOX_LUA_H

#include <lua.h>

#include "sandbox.h"

typedef struct prisn_sandbox_parsed prisn_sandbox_parsed;

/* Reads opts[opts_idx].sandbox. Returns NULL with *err == 0 when there is
 * none (nothing pushed). Otherwise pushes one value: the parsed options
 * (a userdata that keeps strings and O_PATH descriptors alive until it is
 * collected or closed) and returns them; or, when a bind source cannot be
 * opened, pushes a message, sets *err to the errno and returns NULL. Raises
 * on malformed options. */
prisn_sandbox_parsed *prisn_sandbox_parse(lua_State *L, int opts_idx, int *err);
const prisn_sandbox_opts *prisn_sandbox_parsed_opts(const prisn_sandbox_parsed *p);
/* Closes the O_PATH descriptors (after the spawn); idempotent. */
void prisn_sandbox_parsed_close(prisn_sandbox_parsed *p);

#endif
