/*
 * cgroup_lua: the Lua binding of cgroup.c, module prisn.core.cgroup.
 *
 *   local cgroup = require("prisn.core.cgroup")
 *   cgroup.detect()   --> { v2 = "/sys/fs/cgroup/unified",
 *                     --     memory = { version = 1, mount = "/sys/fs/cgroup/memory" }, ... }
 *   local cg, msg, code = cgroup.create("job-abc", { memory = 64 * 2^20, cpu = 0.5, pids = 100 })
 *   proc.spawn({ ..., cgroup_fd = cg:dir_fd(), cgroup_procs_fds = cg:procs_fds() })
 *   ... cg:stats(), cg:kill_all(), cg:destroy()
 *
 * Used only by prisn.exec.limits, which owns the policy. Option tables are
 * checked strictly: a misspelled limit raises instead of being dropped.
 *
 * Lifetime: destroy() (or close(), or a to-be-closed variable) kills nothing
 * and removes the directories, retrying briefly while the kernel finishes
 * exiting tasks — call kill_all() first. __gc is only a safety net for a
 * handle dropped by mistake: it must not block a collection, so it signals
 * what is inside once and tries rmdir once, and a directory still busy at
 * that moment stays behind.
 */
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "binding.h"
#include "cgroup.h"

#define CGROUP_MT "prisn.cgroup"
#define CPU_PERIOD_US 100000
#define CPU_MIN_QUOTA_US 1000 /* the kernel refuses less than 1 ms */

typedef struct {
    prisn_cgroup cg;
    bool destroyed;
    char name[200];
} cgroup_handle;

static const char *version_name(prisn_cgroup_version v) {
    return v == PRISN_CGROUP_V2 ? "v2" : v == PRISN_CGROUP_V1 ? "v1" : NULL;
}

static const char *opt_string(lua_State *L, int idx, const char *field, const char *dflt) {
    lua_getfield(L, idx, field);
    const char *s = lua_isnil(L, -1) ? dflt : lua_tostring(L, -1);
    if (!s)
        luaL_error(L, "cgroup: option '%s' must be a string", field);
    lua_pop(L, 1); /* the string stays referenced by the options table */
    return s;
}

/* cgroup.detect([{ root = dir }]) -> layout | nil, message, code
 * layout = { v2 = mount | nil, memory = { version = "v1"|"v2", mount }, cpu,
 * pids, cpuacct } (a controller no hierarchy carries is absent). root
 * prefixes every path: a fake tree for tests. */
static int l_cgroup_detect(lua_State *L) {
    const char *root = "";
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        static const char *const keys[] = {"root", NULL};
        prisn_binding_check_keys(L, 1, "detect", "option", keys);
        root = opt_string(L, 1, "root", "");
    }
    prisn_cgroup_layout layout;
    int rc = prisn_cgroup_detect(root, &layout);
    if (rc < 0)
        return prisn_binding_fail_errno(L, -rc, "/proc/self/mountinfo");
    lua_createtable(L, 0, 5);
    if (layout.v2_mount[0]) {
        lua_pushstring(L, layout.v2_mount);
        lua_setfield(L, -2, "v2");
    }
    for (int c = 0; c < PRISN_CGROUP_NCONTROLLERS; c++) {
        if (layout.version[c] == PRISN_CGROUP_NONE)
            continue;
        lua_createtable(L, 0, 2);
        lua_pushstring(L, version_name(layout.version[c]));
        lua_setfield(L, -2, "version");
        lua_pushstring(L, layout.mount[c]);
        lua_setfield(L, -2, "mount");
        lua_setfield(L, -2, prisn_cgroup_controller_name((prisn_cgroup_controller)c));
    }
    return 1;
}

static int64_t opt_limit(lua_State *L, int idx, const char *field, lua_Integer min) {
    lua_getfield(L, idx, field);
    int64_t v = -1;
    if (!lua_isnil(L, -1)) {
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < min)
            luaL_error(L, "cgroup.create: %s must be an integer >= %d", field, (int)min);
        v = (int64_t)lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* Pushes a handle for cgroup parent/name: made with `limits`, or (NULL)
 * the existing one opened. Returns 1, or 3 (nil, msg, code) on failure. */
static int make_handle(lua_State *L, const char *name, const char *parent, const char *root,
                       const prisn_cgroup_limits *limits) {
    /* The handle exists before the directories, so a raise cannot leak them. */
    cgroup_handle *h = lua_newuserdatauv(L, sizeof *h, 0);
    prisn_cgroup_init(&h->cg);
    h->destroyed = true;
    snprintf(h->name, sizeof h->name, "%s", name);
    luaL_setmetatable(L, CGROUP_MT);

    prisn_cgroup_layout layout;
    int rc = prisn_cgroup_detect(root, &layout);
    if (rc < 0)
        return prisn_binding_fail_errno(L, -rc, "/proc/self/mountinfo");
    rc = limits ? prisn_cgroup_create(&h->cg, &layout, parent, name, limits)
                : prisn_cgroup_open(&h->cg, &layout, parent, name);
    if (rc < 0)
        return prisn_binding_fail_errno(L, -rc, h->cg.error_path);
    h->destroyed = false;
    return 1;
}

/* cgroup.create(name, { memory = bytes, cpu = cores, pids = n, parent = "prisn",
 *   root = dir }) -> handle | nil, message, code
 * Raises on a malformed name or option. Fails (nil...) when the system says
 * no: EACCES/EROFS (no access: not root, no delegation), EEXIST (a cgroup of
 * that name exists), ENODEV (no hierarchy has memory, cpu or pids); the
 * message names the file. Nothing is left behind on failure. */
static int l_cgroup_create(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    static const char *const keys[] = {"memory", "cpu", "pids", "parent", "root", NULL};
    prisn_binding_check_keys(L, 2, "cgroup.create", "option", keys);
    luaL_argcheck(L, strlen(name) > 0 && strlen(name) < 200 && !strchr(name, '/'), 1,
                  "a cgroup name is one path component");
    prisn_cgroup_limits limits = {-1, -1, CPU_PERIOD_US, -1};
    limits.memory = opt_limit(L, 2, "memory", 0);
    limits.pids = opt_limit(L, 2, "pids", 1);
    lua_getfield(L, 2, "cpu");
    if (!lua_isnil(L, -1)) {
        lua_Number cores = lua_tonumber(L, -1);
        if (!lua_isnumber(L, -1) || !(cores > 0) || cores > 4096)
            return luaL_error(L, "cgroup.create: cpu must be a number of cores > 0");
        double quota = round(cores * CPU_PERIOD_US);
        limits.cpu_quota_us = quota < CPU_MIN_QUOTA_US ? CPU_MIN_QUOTA_US : (int64_t)quota;
    }
    lua_pop(L, 1);
    return make_handle(L, name, opt_string(L, 2, "parent", "prisn"), opt_string(L, 2, "root", ""), &limits);
}

/* cgroup.open(name, { parent = "prisn", root = "" }) -> handle | nil, msg, code
 * The cgroup parent/name an earlier process made (a re-adopted workload's):
 * the same handle as create gives, for stats, kill_all and destroy. */
static int l_cgroup_open(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_newtable(L);
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    static const char *const keys[] = {"parent", "root", NULL};
    prisn_binding_check_keys(L, 2, "cgroup.open", "option", keys);
    luaL_argcheck(L, strlen(name) > 0 && strlen(name) < 200 && !strchr(name, '/'), 1,
                  "a cgroup name is one path component");
    return make_handle(L, name, opt_string(L, 2, "parent", "prisn"), opt_string(L, 2, "root", ""), NULL);
}

static cgroup_handle *check_cgroup(lua_State *L, int idx) {
    cgroup_handle *h = luaL_checkudata(L, idx, CGROUP_MT);
    if (h->destroyed)
        luaL_argerror(L, idx, "cgroup already destroyed");
    return h;
}

/* cg:dir_fd() -> integer | nil. The v2 directory for spawn's cgroup_fd
 * (CLONE_INTO_CGROUP); nil when no controller is on v2. Owned by the handle. */
static int l_cgroup_dir_fd(lua_State *L) {
    int fd = prisn_cgroup_dir_fd(&check_cgroup(L, 1)->cg);
    if (fd < 0)
        return 0;
    lua_pushinteger(L, fd);
    return 1;
}

/* cg:procs_fds([include_v2]) -> { fd, ... } for spawn's cgroup_procs_fds:
 * the v1 hierarchies' cgroup.procs, and with include_v2 the v2 one too (for
 * kernels without CLONE_INTO_CGROUP). Owned by the handle. */
static int l_cgroup_procs_fds(lua_State *L) {
    cgroup_handle *h = check_cgroup(L, 1);
    int fds[PRISN_CGROUP_MAX_NODES];
    size_t n = prisn_cgroup_procs_fds(&h->cg, lua_toboolean(L, 2), fds, PRISN_CGROUP_MAX_NODES);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushinteger(L, fds[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* cg:paths() -> { { path, version = "v1"|"v2", controllers = { "memory", ... } }, ... }
 * Every directory of the cgroup, also after destroy (for checks). */
static int l_cgroup_paths(lua_State *L) {
    cgroup_handle *h = luaL_checkudata(L, 1, CGROUP_MT);
    lua_createtable(L, (int)h->cg.nnodes, 0);
    for (size_t i = 0; i < h->cg.nnodes; i++) {
        const prisn_cgroup_node *node = &h->cg.nodes[i];
        lua_createtable(L, 0, 3);
        lua_pushstring(L, node->path);
        lua_setfield(L, -2, "path");
        lua_pushstring(L, version_name(node->version));
        lua_setfield(L, -2, "version");
        lua_newtable(L);
        int n = 0;
        for (int c = 0; c < PRISN_CGROUP_NCONTROLLERS; c++) {
            if (node->controllers & (1u << c)) {
                lua_pushstring(L, prisn_cgroup_controller_name((prisn_cgroup_controller)c));
                lua_rawseti(L, -2, ++n);
            }
        }
        lua_setfield(L, -2, "controllers");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* cg:pids() -> { pid, ... }: the processes inside now (at most 4096). */
static int l_cgroup_pids(lua_State *L) {
    cgroup_handle *h = check_cgroup(L, 1);
    enum { MAX = 4096 };
    pid_t *pids = lua_newuserdatauv(L, sizeof(pid_t) * MAX, 0);
    size_t n = prisn_cgroup_pids(&h->cg, pids, MAX);
    if (n > MAX)
        n = MAX;
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushinteger(L, pids[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static void set_stat(lua_State *L, const char *field, int64_t value) {
    if (value < 0)
        return; /* not known here: absent, never a made-up zero */
    lua_pushinteger(L, (lua_Integer)value);
    lua_setfield(L, -2, field);
}

/* cg:stats() -> { memory_current, memory_peak, memory_limit_hits, oom_kills,
 *   cpu_usage_us, cpu_throttled_us, cpu_nr_throttled, pids_current,
 *   pids_limit_hits } — a field the kernel does not report is absent. */
static int l_cgroup_stats(lua_State *L) {
    cgroup_handle *h = check_cgroup(L, 1);
    prisn_cgroup_stats st;
    prisn_cgroup_stats_read(&h->cg, &st);
    lua_createtable(L, 0, 9);
    set_stat(L, "memory_current", st.memory_current);
    set_stat(L, "memory_peak", st.memory_peak);
    set_stat(L, "memory_limit_hits", st.memory_limit_hits);
    set_stat(L, "oom_kills", st.oom_kills);
    set_stat(L, "cpu_usage_us", st.cpu_usage_us);
    set_stat(L, "cpu_throttled_us", st.cpu_throttled_us);
    set_stat(L, "cpu_nr_throttled", st.cpu_nr_throttled);
    set_stat(L, "pids_current", st.pids_current);
    set_stat(L, "pids_limit_hits", st.pids_limit_hits);
    return 1;
}

static unsigned opt_count(lua_State *L, int idx, const char *field, unsigned dflt) {
    if (!lua_istable(L, idx))
        return dflt;
    lua_getfield(L, idx, field);
    lua_Integer n = lua_isnil(L, -1) ? dflt : luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    luaL_argcheck(L, n >= 1 && n <= 10000, idx, "rounds/attempts must be 1..10000");
    return (unsigned)n;
}

/* cg:kill_all([{ rounds = 100 }]) -> true (empty) | false (processes remain)
 * SIGKILLs everything inside; see prisn_cgroup_kill_all. rounds = 1 signals
 * once without waiting: call it again (after a sleep) until true. */
static int l_cgroup_kill_all(lua_State *L) {
    cgroup_handle *h = check_cgroup(L, 1);
    int rc = prisn_cgroup_kill_all(&h->cg, opt_count(L, 2, "rounds", 100));
    if (rc < 0 && rc != -EBUSY)
        return prisn_binding_fail_errno(L, -rc, h->name);
    lua_pushboolean(L, rc == 0);
    return 1;
}

/* cg:destroy([{ attempts = 100 }]) -> true | nil, message, code
 * Removes the directories (5 ms between attempts while EBUSY). Idempotent;
 * after an EBUSY failure it may be called again. Kill first: a cgroup with
 * live processes stays EBUSY. */
static int l_cgroup_destroy(lua_State *L) {
    cgroup_handle *h = luaL_checkudata(L, 1, CGROUP_MT);
    unsigned attempts = opt_count(L, 2, "attempts", 100);
    if (h->destroyed) {
        lua_pushboolean(L, 1);
        return 1;
    }
    int rc = prisn_cgroup_destroy(&h->cg, attempts);
    if (rc < 0)
        return prisn_binding_fail_errno(L, -rc, h->cg.error_path);
    h->destroyed = true;
    lua_pushboolean(L, 1);
    return 1;
}

/* __close(cg, err): destroy with the default attempts, whatever err is. */
static int l_cgroup_close(lua_State *L) {
    lua_settop(L, 1);
    return l_cgroup_destroy(L);
}

static int l_cgroup_gc(lua_State *L) {
    cgroup_handle *h = luaL_checkudata(L, 1, CGROUP_MT);
    if (!h->destroyed) {
        prisn_cgroup_kill_all(&h->cg, 1);
        prisn_cgroup_destroy(&h->cg, 1);
        h->destroyed = true;
    }
    return 0;
}

static int l_cgroup_tostring(lua_State *L) {
    cgroup_handle *h = luaL_checkudata(L, 1, CGROUP_MT);
    lua_pushfstring(L, "prisn.cgroup (%s%s)", h->name, h->destroyed ? ", destroyed" : "");
    return 1;
}

static const luaL_Reg cgroup_methods[] = {
    {"dir_fd", l_cgroup_dir_fd},
    {"procs_fds", l_cgroup_procs_fds},
    {"paths", l_cgroup_paths},
    {"pids", l_cgroup_pids},
    {"stats", l_cgroup_stats},
    {"kill_all", l_cgroup_kill_all},
    {"destroy", l_cgroup_destroy},
    {"close", l_cgroup_close},
    {NULL, NULL},
};

static const luaL_Reg cgroup_functions[] = {
    {"detect", l_cgroup_detect},
    {"create", l_cgroup_create},
    {"open", l_cgroup_open},
    {NULL, NULL},
};

int luaopen_prisn_core_cgroup(lua_State *L) {
    prisn_binding_metatable(L, CGROUP_MT, cgroup_methods, l_cgroup_gc, l_cgroup_close, l_cgroup_tostring);
    luaL_newlib(L, cgroup_functions);
    lua_pushinteger(L, CPU_PERIOD_US);
    lua_setfield(L, -2, "cpu_period_us");
    return 1;
}
