/*
 * boot: a Lua state with everything prisn's Lua expects: the standard
 * libraries, the C core (prisn.core.*), luv, cjson and the embedded modules.
 *
 * Shared by main.c and the C tests, so a test sees exactly the state the
 * binary runs in.
 */
#ifndef PRISN_BOOT_H
#define PRISN_BOOT_H

#include <lua.h>

/* Creates the state. Environment variables LUA_PATH/LUA_CPATH are ignored;
 * package.path and package.cpath start empty (Lua's compiled-in defaults stay
 * readable as prisn.core.sys.lua_path_default / lua_cpath_default). dev_tree
 * is the PRISN_DEV source tree or NULL. Its memory comes from a pool of its
 * own (lua_alloc.h). Returns NULL only when out of memory. */
lua_State *prisn_boot_new_state(const char *dev_tree);

/* Closes a state made by prisn_boot_new_state, and frees its memory pool. */
void prisn_boot_close_state(lua_State *L);

/* Message handler for lua_pcall: turns a string error into message plus
 * traceback; leaves non-string error values (prisn.error objects) alone. */
int prisn_boot_traceback(lua_State *L);

#endif
