/*
 * embed: the Lua modules compiled into the binary, and how they are found.
 *
 * embedgen writes prisn_embedded_modules[] at build time; prisn_embed_register
 * puts one lazy loader per module into package.preload. Nothing is loaded
 * until it is required, so a command pays only for the modules it uses.
 */
#ifndef PRISN_EMBED_H
#define PRISN_EMBED_H

#include <lua.h>
#include <stddef.h>

typedef struct {
    const char *name;          /* module name, "prisn.cli.parse" */
    const char *path;          /* repository path, "lua/prisn/cli/parse.lua" */
    const unsigned char *code; /* bytecode with debug info, LZ4-compressed */
    size_t len;                /* compressed bytes */
    size_t raw_len;            /* the bytecode's bytes */
} prisn_embedded_module;

extern const prisn_embedded_module prisn_embedded_modules[];

/* Registers every embedded module in package.preload. When dev_tree is not
 * NULL (the PRISN_DEV switch), each loader first tries dev_tree/<path> so an
 * edited Lua file takes effect without a rebuild, and lua/?.lua under the tree
 * is searched for modules added since the build. Never raises. */
void prisn_embed_register(lua_State *L, const char *dev_tree);

#endif
