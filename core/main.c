/*
 * main: boot the Lua state and hand argv to prisn.main.
 *
 * Everything a user sees — parsing, help, errors, exit codes — is decided in
 * Lua (lua/prisn/main.lua). This file only handles what Lua cannot: a failure
 * to start at all, and a bug that escapes prisn.main, which is reported in one
 * line (with the traceback under PRISN_DEBUG=1) instead of a raw Lua error.
 */
#include <lauxlib.h>
#include <lua.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

#include "boot.h"
#include "coverage.h"

/* PRISN_DEV=1 loads Lua from the tree this binary was built from;
 * PRISN_DEV=/path loads it from another tree. */
static const char *dev_tree_from_env(void) {
    const char *dev = getenv("PRISN_DEV");
    if (dev == NULL || dev[0] == '\0' || strcmp(dev, "0") == 0)
        return NULL;
    if (strcmp(dev, "1") == 0)
        return PRISN_SOURCE_DIR;
    return dev;
}

/* PRISN_LUA_COVERAGE=DIR counts the lines of prisn's Lua this process runs
 * (contrib/coverage.sh); a directory that cannot be made is only a warning. */
static void coverage_from_env(lua_State *L) {
    const char *dir = getenv("PRISN_LUA_COVERAGE");
    if (dir == NULL || dir[0] == '\0')
        return;
    int rc = prisn_coverage_start(L, dir);
    if (rc < 0)
        fprintf(stderr, "prisn: PRISN_LUA_COVERAGE: cannot use %s: %s\n", dir, strerror(-rc));
}

/* Whether to leave the Lua state to the exit: prisn.main asks for it when
 * the command closed what it opened (a local `prisn run`), and tearing the
 * state down would only free memory the exit frees anyway — 0.7 ms of such
 * a run (tests/bench/run-report.md). The C streams are flushed by exit().
 * Lua coverage and sanitizer builds always close: the one counts lines up
 * to the end, the other reports what the state leaks. */
static bool fast_exit(lua_State *L) {
#if defined(__SANITIZE_ADDRESS__)
    (void)L;
    return false;
#else
    const char *cov = getenv("PRISN_LUA_COVERAGE");
    if (cov != NULL && cov[0] != '\0')
        return false;
    bool fast = lua_getfield(L, LUA_REGISTRYINDEX, "prisn.fast_exit") == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
    return fast;
#endif
}

/* Protected: require("prisn.main").run(argv_table) -> exit status. */
static int run_main(lua_State *L) {
    lua_getglobal(L, "require");
    lua_pushliteral(L, "prisn.main");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "run");
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    return 1;
}

int main(int argc, char **argv) {
    /* A sandbox's init (see sandbox.c): before anything else, no Lua. */
    if (argc == 4 && strcmp(argv[1], "__sandbox-init") == 0)
        prisn_sandbox_init_main(argv);
    prisn_sandbox_set_cmdline(argc, argv);
    lua_State *L = prisn_boot_new_state(dev_tree_from_env());
    if (L == NULL) {
        fprintf(stderr, "Error: prisn could not start: out of memory\n");
        return 1;
    }
    coverage_from_env(L);
    lua_pushcfunction(L, prisn_boot_traceback);
    lua_pushcfunction(L, run_main);
    lua_createtable(L, argc, 0); /* argv[0] is the binary, as in Lua's arg */
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    int status = 1;
    if (lua_pcall(L, 1, 1, 1) == LUA_OK) {
        status = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
    } else {
        const char *msg = luaL_tolstring(L, -1, NULL);
        const char *debug = getenv("PRISN_DEBUG");
        if (debug && strcmp(debug, "1") == 0) {
            fprintf(stderr, "Error: internal error in prisn:\n%s\n", msg);
        } else {
            const char *nl = strchr(msg, '\n');
            fprintf(stderr, "Error: internal error in prisn: %.*s\n", nl ? (int)(nl - msg) : (int)strlen(msg), msg);
            fprintf(stderr, "Hint: this is a bug; run again with PRISN_DEBUG=1 for a traceback and report it\n");
        }
        status = 1;
    }
    if (!fast_exit(L))
        prisn_boot_close_state(L);
    return status;
}
