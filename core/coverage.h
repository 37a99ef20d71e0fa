/*
 * coverage: line coverage of prisn's own Lua, counted inside the binary.
 *
 * Debian has no luacov, and the specs and end-to-end tests run the embedded
 * modules inside prisn itself, so the binary counts: with
 * PRISN_LUA_COVERAGE=DIR, a line hook counts every line run in a chunk named
 * after a repository path (lua/, runners/, policies/) and, at exit, each
 * process writes its counts to a file of its own in DIR.
 * contrib/coverage.sh merges the files and reports per folder.
 */
#ifndef PRISN_COVERAGE_H
#define PRISN_COVERAGE_H

#include <lua.h>

/* Starts counting lines run on L (and on every coroutine created from it
 * later, which inherits the hook) and arranges for the counts to be written
 * to a new file in dir when the process exits with exit() or returns from
 * main. A forked child starts from zero. Returns 0, or a negative errno when
 * dir cannot be created. Call once per process. */
int prisn_coverage_start(lua_State *L, const char *dir);

/* Writes the counts now and stops counting: for a state about to be closed.
 * Safe to call when coverage never started. */
void prisn_coverage_finish(void);

#endif
