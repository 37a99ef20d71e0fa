/*
 * sandbox_lua: turns the `sandbox` table of proc.spawn options into a
 * prisn_sandbox_opts, preparing in the parent everything the child needs:
 * map strings, checked bind sources, and the flags a read-only bind must
 * keep from its source mount (the child opens the sources itself: see
 * prisn_sandbox_mount.source_fd).
 *
 *   sandbox = {
 *     user_map = { uid = 1000, gid = 1000 },   -- new user namespace, id mapped to itself
 *     net = true,                              -- new network namespace, loopback up
 *     mounts = {
 *       { type = "tmpfs", target = "/p", options = "mode=0755,size=1m", mkdir = 493 },
 *       { type = "dir", target = "/p/x", mkdir = 493 },     -- mkdir only
 *       { type = "bind", source = "/p/x", target = "/p/x", readonly = true,
 *         mkdir = 493, file = false, late = false },  -- late: source made above
 *       { type = "overlay", target = "/w", options = "lowerdir=…,upperdir=…,workdir=…" },
 *       { type = "symlink", source = "usr/bin", target = "/r/bin" },
 *       { type = "remount", target = "/r", readonly = true },  -- after its contents
 *       { type = "umount", target = "/r/proc" },  -- detached (its binds stay)
 *     },
 *     pivot_root = "/new/root", put_old = "/new/root/.old",
 *     proc = true,                             -- a fresh /proc (default true)
 *   }
 *
 * Also module prisn.core.sandbox: loopback_up() (for tests), and the mount
 * flag constants are not exposed: policy speaks in the table above.
 */
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "binding.h"
#include "sandbox.h"
#include "sandbox_lua.h"
#include "sys.h"

#define SANDBOX_MAX_MOUNTS 128

struct prisn_sandbox_parsed {
    prisn_sandbox_opts opts;
    prisn_sandbox_mount mounts[SANDBOX_MAX_MOUNTS];
    char uid_map[64], gid_map[64];
};

void prisn_sandbox_parsed_close(prisn_sandbox_parsed *p) {
    (void)p; /* nothing is held open today; kept for the contract */
}

static int parsed_gc(lua_State *L) {
    prisn_sandbox_parsed_close(luaL_checkudata(L, 1, "prisn.sandbox_opts"));
    return 0;
}

/* Anchors the string at the top of the stack in the userdata's table at
 * anchor and returns it (the string stays alive as long as the userdata). */
static const char *anchor(lua_State *L, int anchor_idx) {
    const char *s = lua_tostring(L, -1);
    lua_rawseti(L, anchor_idx, (lua_Integer)luaL_len(L, anchor_idx) + 1);
    return s;
}

static const char *field_string(lua_State *L, int t, const char *name, int anchor_idx,
                                bool required) {
    lua_getfield(L, t, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        if (required)
            luaL_error(L, "spawn: sandbox mount needs '%s'", name);
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "spawn: sandbox option '%s' must be a string", name);
    return anchor(L, anchor_idx);
}

/* The flags a remount of a bind must keep: in a user namespace, the
 * kernel refuses to drop nosuid/nodev/noexec/ro locked on the source. */
static unsigned long locked_flags(const struct statvfs *svp) {
    struct statvfs sv = *svp;
    unsigned long flags = 0;
    {
        if (sv.f_flag & ST_NOSUID)
            flags |= MS_NOSUID;
        if (sv.f_flag & ST_NODEV)
            flags |= MS_NODEV;
        if (sv.f_flag & ST_NOEXEC)
            flags |= MS_NOEXEC;
        if (sv.f_flag & ST_RDONLY)
            flags |= MS_RDONLY;
        if (sv.f_flag & ST_NOATIME)
            flags |= MS_NOATIME;
        if (sv.f_flag & ST_NODIRATIME)
            flags |= MS_NODIRATIME;
        if (sv.f_flag & ST_RELATIME)
            flags |= MS_RELATIME;
    }
    return flags;
}

/* Returns 0, or -errno with the failing source pushed as a message. */
static int parse_mount(lua_State *L, int t, int anchor_idx,
                       prisn_sandbox_mount *m) {
    memset(m, 0, sizeof *m);
    lua_getfield(L, t, "type");
    const char *type = luaL_optstring(L, -1, "bind");
    bool bind = strcmp(type, "bind") == 0, dir = strcmp(type, "dir") == 0;
    bool symlink = strcmp(type, "symlink") == 0, remount = strcmp(type, "remount") == 0;
    bool umount = strcmp(type, "umount") == 0;
    if (!bind && !dir && !symlink && !remount && !umount && strcmp(type, "tmpfs") != 0 &&
        strcmp(type, "proc") != 0 && strcmp(type, "overlay") != 0)
        luaL_error(L, "spawn: sandbox mount type must be \"bind\", \"tmpfs\", \"overlay\", "
                      "\"proc\", \"dir\", \"symlink\", \"remount\" or \"umount\"");
    lua_pop(L, 1);
    m->target = field_string(L, t, "target", anchor_idx, true);
    if (umount) {
        m->is_umount = true;
        return 0;
    }
    if (symlink) {
        m->is_symlink = true;
        m->source = field_string(L, t, "source", anchor_idx, true);
        return 0;
    }
    lua_getfield(L, t, "mkdir");
    m->mkdir_mode = lua_isnil(L, -1) ? -1 : (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, t, "file");
    m->is_file = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, t, "readonly");
    bool ro = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (remount) {
        m->is_remount = true;
        m->flags = MS_NOSUID | MS_NODEV | (ro ? MS_RDONLY : 0);
        return 0;
    }
    lua_getfield(L, t, "late");
    m->late = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (dir) {
        if (m->mkdir_mode < 0)
            m->mkdir_mode = 0755;
        return 0;
    }
    if (!bind) {
        lua_pushstring(L, type);
        m->fstype = anchor(L, anchor_idx);
        m->source = m->fstype;
        m->data = field_string(L, t, "options", anchor_idx, false);
        m->flags = MS_NOSUID | MS_NODEV | (ro ? MS_RDONLY : 0);
        if (strcmp(type, "proc") == 0)
            m->flags |= MS_NOEXEC;
        return 0;
    }
    const char *source = field_string(L, t, "source", anchor_idx, true);
    if (m->late) { /* made by an earlier step: nothing to check yet */
        m->source = source;
        if (ro)
            m->remount_flags = MS_RDONLY | MS_NOSUID | MS_NODEV;
        return 0;
    }
    struct statvfs sv;
    if (statvfs(source, &sv) < 0) {
        int err = errno;
        lua_pushfstring(L, "%s: bind source %s: %s", prisn_sys_errno_name(err), source,
                        strerror(err));
        return -err;
    }
    m->source = source;
    if (ro)
        m->remount_flags = MS_RDONLY | MS_NOSUID | MS_NODEV | locked_flags(&sv);
    return 0;
}

prisn_sandbox_parsed *prisn_sandbox_parse(lua_State *L, int opts_idx, int *err) {
    *err = 0;
    lua_getfield(L, opts_idx, "sandbox");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    luaL_checktype(L, -1, LUA_TTABLE);
    int t = lua_gettop(L);
    static const char *const keys[] = {"user_map", "net", "mounts", "pivot_root", "put_old",
                                       "proc", NULL};
    prisn_binding_check_keys(L, t, "spawn", "sandbox option", keys);
    prisn_sandbox_parsed *p = lua_newuserdatauv(L, sizeof *p, 1);
    memset(p, 0, sizeof *p);
    if (luaL_newmetatable(L, "prisn.sandbox_opts")) {
        lua_pushcfunction(L, parsed_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_newtable(L);
    int anchor_idx = lua_gettop(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, -3, 1);
    prisn_sandbox_opts *o = &p->opts;
    o->init_name = "prisn-init";

    lua_getfield(L, t, "user_map");
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_getfield(L, -1, "uid");
        lua_getfield(L, -2, "gid");
        lua_Integer uid = luaL_checkinteger(L, -2), gid = luaL_checkinteger(L, -1);
        lua_pop(L, 2);
        snprintf(p->uid_map, sizeof p->uid_map, "%lld %lld 1\n", (long long)uid, (long long)uid);
        snprintf(p->gid_map, sizeof p->gid_map, "%lld %lld 1\n", (long long)gid, (long long)gid);
        o->new_user = true;
        o->uid_map = p->uid_map;
        o->gid_map = p->gid_map;
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "net");
    o->new_net = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, t, "proc");
    o->mount_proc = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_pop(L, 1);
    o->pivot_root = field_string(L, t, "pivot_root", anchor_idx, false);
    o->put_old = field_string(L, t, "put_old", anchor_idx, false);
    if (o->pivot_root && (!o->put_old || strncmp(o->put_old, o->pivot_root,
                                                  strlen(o->pivot_root)) != 0))
        luaL_error(L, "spawn: sandbox put_old must be a path under pivot_root");

    lua_getfield(L, t, "mounts");
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_Integer n = luaL_len(L, -1);
        if (n > SANDBOX_MAX_MOUNTS)
            luaL_error(L, "spawn: at most %d sandbox mounts", SANDBOX_MAX_MOUNTS);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            luaL_checktype(L, -1, LUA_TTABLE);
            int rc = parse_mount(L, lua_gettop(L), anchor_idx, &p->mounts[i - 1]);
            if (rc < 0) {
                /* stack: ... mounts, mount, message */
                prisn_sandbox_parsed_close(p);
                lua_replace(L, t); /* the message where the table was */
                lua_settop(L, t);
                *err = -rc;
                return NULL;
            }
            lua_pop(L, 1);
        }
        o->mounts = p->mounts;
        o->nmounts = (size_t)n;
    }
    lua_pop(L, 2);        /* mounts, anchor table */
    lua_replace(L, t);    /* the userdata where the table was */
    return p;
}

const prisn_sandbox_opts *prisn_sandbox_parsed_opts(const prisn_sandbox_parsed *p) {
    return &p->opts;
}

/* sandbox.loopback_up() -> true | nil, msg, code. Brings lo up in the
 * caller's network namespace (used by tests and the doctor's probe). */
static int l_sandbox_loopback_up(lua_State *L) {
    if (prisn_sandbox_loopback_up() < 0)
        return prisn_binding_fail_errno(L, errno, "lo");
    lua_pushboolean(L, 1);
    return 1;
}

/* sandbox.init_in_place(on) -> nothing. Lets this process's sandboxes run
 * their init without exec'ing prisn again while it has one thread (a local
 * `prisn run`; see prisn_sandbox_set_init_in_place). */
static int l_sandbox_init_in_place(lua_State *L) {
    luaL_checktype(L, 1, LUA_TBOOLEAN);
    prisn_sandbox_set_init_in_place(lua_toboolean(L, 1));
    return 0;
}

static const luaL_Reg sandbox_functions[] = {
    {"loopback_up", l_sandbox_loopback_up},
    {"init_in_place", l_sandbox_init_in_place},
    {NULL, NULL},
};

int luaopen_prisn_core_sandbox(lua_State *L) {
    luaL_newlib(L, sandbox_functions);
    return 1;
}
