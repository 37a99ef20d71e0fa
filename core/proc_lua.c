/*
 * proc_lua: the Lua binding of proc.c, module prisn.core.proc.
 *
 *   local proc = require("prisn.core.proc")
 *   local p, msg, code, stage = proc.spawn({ file = "/usr/bin/python3",
 *       argv = { "python3", "job.py" }, env = { "PATH=/usr/bin" },
 *       stdout = "pipe", session = true })
 *   local fd = p:take_fd("stdout")        -- wrap with uv.new_pipe():open(fd)
 *   -- poll p:pidfd() with uv.new_poll, then:
 *   local st = p:wait({ nohang = true })  -- { exited, code } / { signal, ... }
 *
 * Option tables are checked strictly (unknown keys raise), because a typo in
 * a spawn option would otherwise silently drop a limit. Operational failures
 * return nil, message, code (errno name) and the stage that failed; a child
 * that does not reach exec within start_timeout_ms (default 5000) is killed
 * and reported as ETIMEDOUT with the stage it was stuck in.
 */
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "binding.h"
#include "proc.h"
#include "sandbox_lua.h"
#include "sys.h"

#define PROC_MT "prisn.proc"

typedef struct {
    pid_t pid;
    int pidfd;
    int fds[3];
    bool reaped;
    int sandbox_status_fd; /* the sandbox init's status pipe, or -1 */
} proc_handle;

static const char *const stdio_names[] = {"stdin", "stdout", "stderr", NULL};

/* ---- signals ------------------------------------------------------------ */

static const struct {
    const char *name;
    int number;
} signal_table[] = {
    {"HUP", SIGHUP},     {"INT", SIGINT},     {"QUIT", SIGQUIT},   {"ILL", SIGILL},
    {"TRAP", SIGTRAP},   {"ABRT", SIGABRT},   {"BUS", SIGBUS},     {"FPE", SIGFPE},
    {"KILL", SIGKILL},   {"USR1", SIGUSR1},   {"SEGV", SIGSEGV},   {"USR2", SIGUSR2},
    {"PIPE", SIGPIPE},   {"ALRM", SIGALRM},   {"TERM", SIGTERM},   {"CHLD", SIGCHLD},
    {"CONT", SIGCONT},   {"STOP", SIGSTOP},   {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN},
    {"TTOU", SIGTTOU},   {"URG", SIGURG},     {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ},
    {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"SYS", SIGSYS},
    {NULL, 0},
};

/* Accepts 15, "TERM", "SIGTERM" or "sigterm"; raises on anything else. */
static int check_signal(lua_State *L, int arg) {
    if (lua_type(L, arg) == LUA_TNUMBER) {
        lua_Integer n = luaL_checkinteger(L, arg);
        luaL_argcheck(L, n >= 0 && n < NSIG, arg, "signal number out of range");
        return (int)n;
    }
    const char *name = luaL_checkstring(L, arg);
    if (strncasecmp(name, "SIG", 3) == 0)
        name += 3;
    for (int i = 0; signal_table[i].name; i++) {
        if (strcasecmp(name, signal_table[i].name) == 0)
            return signal_table[i].number;
    }
    return luaL_argerror(L, arg, lua_pushfstring(L, "unknown signal '%s'", name));
}

static const char *signal_name(int sig) {
    for (int i = 0; signal_table[i].name; i++) {
        if (signal_table[i].number == sig)
            return signal_table[i].name;
    }
    return NULL;
}

/* ---- option parsing ----------------------------------------------------- */

/* A NULL-terminated copy of the list at opts[field], kept alive as a
 * userdata on the stack until the spawn returns. */
static char **string_list(lua_State *L, int opts, const char *field, bool required) {
    lua_getfield(L, opts, field);
    if (lua_isnil(L, -1)) {
        if (required)
            luaL_error(L, "spawn: option '%s' is required", field);
        lua_pop(L, 1);
        return NULL;
    }
    if (!lua_istable(L, -1))
        luaL_error(L, "spawn: option '%s' must be a list of strings", field);
    lua_Integer n = luaL_len(L, -1);
    char **list = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 1);
    lua_pushvalue(L, -2);
    lua_setiuservalue(L, -2, 1); /* the strings stay referenced by the table */
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -2, i);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "spawn: %s[%d] must be a string", field, (int)i);
        list[i - 1] = (char *)lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    list[n] = NULL;
    lua_remove(L, -2); /* the table; the userdata keeps it alive */
    return list;
}

static void parse_stdio(lua_State *L, int opts, int slot, prisn_stdio *s) {
    s->kind = PRISN_STDIO_INHERIT;
    lua_getfield(L, opts, stdio_names[slot]);
    int t = lua_type(L, -1);
    if (t == LUA_TNIL || (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "inherit") == 0)) {
        /* inherit */
    } else if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "null") == 0) {
        s->kind = PRISN_STDIO_NULL;
    } else if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "pipe") == 0) {
        s->kind = PRISN_STDIO_PIPE;
    } else if (t == LUA_TTABLE) {
        int idx = lua_gettop(L);
        static const char *const keys[] = {"file", "mode", "fd", NULL};
        prisn_binding_check_keys(L, idx, stdio_names[slot], "option", keys);
        lua_getfield(L, idx, "file");
        lua_getfield(L, idx, "fd");
        if (lua_isstring(L, -2)) {
            s->kind = PRISN_STDIO_FILE;
            s->path = lua_tostring(L, -2);
            lua_getfield(L, idx, "mode");
            const char *mode = luaL_optstring(L, -1, slot == 0 ? "r" : "a");
            if (strcmp(mode, "r") == 0)
                s->flags = O_RDONLY;
            else if (strcmp(mode, "w") == 0)
                s->flags = O_WRONLY | O_CREAT | O_TRUNC;
            else if (strcmp(mode, "a") == 0)
                s->flags = O_WRONLY | O_CREAT | O_APPEND;
            else
                luaL_error(L, "spawn: %s.mode must be \"r\", \"w\" or \"a\"", stdio_names[slot]);
            lua_pop(L, 1);
        } else if (lua_isinteger(L, -1)) {
            s->kind = PRISN_STDIO_FD;
            s->fd = (int)lua_tointeger(L, -1);
        } else {
            luaL_error(L, "spawn: %s needs { file = PATH } or { fd = N }", stdio_names[slot]);
        }
        lua_pop(L, 2);
        /* keep the table (and its path string) on the stack */
        return;
    } else {
        luaL_error(L, "spawn: %s must be \"inherit\", \"null\", \"pipe\", {file=} or {fd=}",
                   stdio_names[slot]);
    }
    lua_pop(L, 1);
}

static const struct {
    const char *name;
    int resource;
} rlimit_table[] = {
    {"as", RLIMIT_AS},         {"core", RLIMIT_CORE},       {"cpu", RLIMIT_CPU},
    {"data", RLIMIT_DATA},     {"fsize", RLIMIT_FSIZE},     {"memlock", RLIMIT_MEMLOCK},
    {"nofile", RLIMIT_NOFILE}, {"nproc", RLIMIT_NPROC},     {"stack", RLIMIT_STACK},
    {NULL, 0},
};

static rlim_t limit_value(lua_State *L, int idx, const char *name) {
    if (lua_type(L, idx) == LUA_TSTRING && strcmp(lua_tostring(L, idx), "unlimited") == 0)
        return RLIM_INFINITY;
    if (!lua_isinteger(L, idx) || lua_tointeger(L, idx) < 0)
        luaL_error(L, "spawn: rlimits.%s must be a non-negative integer or \"unlimited\"", name);
    return (rlim_t)lua_tointeger(L, idx);
}

/* rlimits = { nofile = 1024 } (soft = hard) or { nofile = { 1024, 4096 } } */
static prisn_rlimit *parse_rlimits(lua_State *L, int opts, size_t *count) {
    *count = 0;
    lua_getfield(L, opts, "rlimits");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    luaL_checktype(L, -1, LUA_TTABLE);
    int idx = lua_gettop(L);
    size_t max = sizeof rlimit_table / sizeof rlimit_table[0];
    prisn_rlimit *limits = lua_newuserdatauv(L, sizeof(prisn_rlimit) * max, 0);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        int found = -1;
        for (int i = 0; rlimit_table[i].name; i++) {
            if (strcmp(name, rlimit_table[i].name) == 0)
                found = i;
        }
        if (found < 0)
            luaL_error(L, "spawn: unknown rlimit '%s'", name);
        prisn_rlimit *r = &limits[(*count)++];
        r->resource = rlimit_table[found].resource;
        if (lua_istable(L, -1)) {
            lua_rawgeti(L, -1, 1);
            r->limit.rlim_cur = limit_value(L, -1, name);
            lua_rawgeti(L, -2, 2);
            r->limit.rlim_max = limit_value(L, -1, name);
            lua_pop(L, 2);
        } else {
            r->limit.rlim_cur = r->limit.rlim_max = limit_value(L, -1, name);
        }
        lua_pop(L, 1);
    }
    lua_remove(L, idx); /* the userdata stays on the stack */
    return limits;
}

static gid_t *parse_groups(lua_State *L, int opts, size_t *count) {
    *count = 0;
    lua_getfield(L, opts, "groups");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, -1);
    gid_t *groups = lua_newuserdatauv(L, sizeof(gid_t) * (size_t)(n > 0 ? n : 1), 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -2, i);
        groups[i - 1] = (gid_t)luaL_checkinteger(L, -1);
        lua_pop(L, 1);
    }
    *count = (size_t)n;
    lua_remove(L, -2);
    return groups;
}

/* cgroup_procs_fds = { fd, ... } (from a cgroup handle's procs_fds()) */
static int *parse_fd_list(lua_State *L, int opts, const char *field, size_t *count) {
    *count = 0;
    lua_getfield(L, opts, field);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    if (!lua_istable(L, -1))
        luaL_error(L, "spawn: option '%s' must be a list of descriptors", field);
    lua_Integer n = luaL_len(L, -1);
    int *fds = lua_newuserdatauv(L, sizeof(int) * (size_t)(n > 0 ? n : 1), 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -2, i);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
            luaL_error(L, "spawn: %s[%d] must be a descriptor", field, (int)i);
        fds[i - 1] = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    *count = (size_t)n;
    lua_remove(L, -2);
    return fds;
}

static lua_Integer opt_integer(lua_State *L, int opts, const char *field, lua_Integer dflt) {
    lua_getfield(L, opts, field);
    lua_Integer v = dflt;
    if (!lua_isnil(L, -1)) {
        if (!lua_isinteger(L, -1))
            luaL_error(L, "spawn: option '%s' must be an integer", field);
        v = lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static bool opt_bool(lua_State *L, int opts, const char *field) {
    lua_getfield(L, opts, field);
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* ---- the process handle ------------------------------------------------- */

static proc_handle *check_proc(lua_State *L, int idx) {
    return luaL_checkudata(L, idx, PROC_MT);
}

static void proc_close_fds(proc_handle *p) {
    if (p->sandbox_status_fd >= 0) {
        close(p->sandbox_status_fd);
        p->sandbox_status_fd = -1;
    }
    if (p->pidfd >= 0) {
        close(p->pidfd);
        p->pidfd = -1;
    }
    for (int i = 0; i < 3; i++) {
        if (p->fds[i] >= 0) {
            close(p->fds[i]);
            p->fds[i] = -1;
        }
    }
}

/* A Lua gate (opts.gate): called with no arguments while the child waits
 * before its exec; true lets it exec. false/nil kills it (the spawn returns
 * nil, "ECANCELED: ..."); an error kills it too and is raised again once the
 * spawn has cleaned up. */
typedef struct {
    lua_State *L;
    int fn;     /* stack index of the function */
    bool raised; /* its error is on the top of the stack */
} lua_gate;

static int call_lua_gate(void *arg) {
    lua_gate *g = arg;
    lua_pushvalue(g->L, g->fn);
    if (lua_pcall(g->L, 0, 1, 0) != LUA_OK) {
        g->raised = true;
        return -ECANCELED;
    }
    int go = lua_toboolean(g->L, -1);
    lua_pop(g->L, 1);
    return go ? 0 : -ECANCELED;
}

/* Reads spawn's options (at index 1) into *o; what o points to stays on
 * the stack. Returns 0, or pushes nil, message, code, "mount" for a sandbox
 * that cannot be prepared and returns 4. Raises on malformed options. */
static int parse_spawn(lua_State *L, prisn_spawn_opts *o, lua_gate *gate,
                       prisn_sandbox_parsed **sandbox) {
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkstack(L, 48, "spawn options");
    static const char *const keys[] = {"file", "argv", "env", "cwd", "stdin", "stdout", "stderr",
                                       "session", "pgroup", "rlimits", "uid", "gid", "groups",
                                       "umask", "no_new_privs", "oom_score_adj", "cgroup_fd",
                                       "cgroup_procs_fds", "sandbox", "start_timeout_ms", "gate",
                                       "hold_gate", NULL};
    prisn_binding_check_keys(L, 1, "spawn", "option", keys);
    memset(o, 0, sizeof *o);
    lua_getfield(L, 1, "file");
    o->file = lua_tostring(L, -1);
    if (!o->file)
        return luaL_error(L, "spawn: option 'file' (a path) is required");
    o->argv = string_list(L, 1, "argv", true);
    if (!o->argv[0])
        return luaL_error(L, "spawn: option 'argv' must not be empty");
    o->envp = string_list(L, 1, "env", true);
    lua_getfield(L, 1, "cwd");
    o->cwd = lua_tostring(L, -1);
    for (int i = 0; i < 3; i++)
        parse_stdio(L, 1, i, &o->stdio[i]);
    o->new_session = opt_bool(L, 1, "session");
    o->new_pgroup = opt_bool(L, 1, "pgroup");
    o->rlimits = parse_rlimits(L, 1, &o->nrlimits);
    lua_getfield(L, 1, "uid");
    o->set_ids = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (o->set_ids) {
        o->uid = (uid_t)opt_integer(L, 1, "uid", 0);
        o->gid = (gid_t)opt_integer(L, 1, "gid", (lua_Integer)o->uid);
        o->groups = parse_groups(L, 1, &o->ngroups);
    }
    o->umask = (int)opt_integer(L, 1, "umask", -1);
    o->no_new_privs = opt_bool(L, 1, "no_new_privs");
    lua_getfield(L, 1, "oom_score_adj");
    if (!lua_isnil(L, -1)) {
        lua_Integer adj = luaL_checkinteger(L, -1);
        if (adj < -1000 || adj > 1000)
            return luaL_error(L, "spawn: oom_score_adj must be between -1000 and 1000");
        lua_pushfstring(L, "%d", (int)adj); /* stays on the stack until the spawn returns */
        o->oom_score_adj = lua_tostring(L, -1);
    }
    o->cgroup_fd = (int)opt_integer(L, 1, "cgroup_fd", -1);
    o->cgroup_procs_fds = parse_fd_list(L, 1, "cgroup_procs_fds", &o->ncgroup_procs_fds);
    lua_Integer start_timeout = opt_integer(L, 1, "start_timeout_ms", 0);
    if (start_timeout < 0 || start_timeout > 3600000)
        return luaL_error(L, "spawn: start_timeout_ms must be between 0 and 3600000");
    o->start_timeout_ms = (int)start_timeout;
    *gate = (lua_gate){L, 0, false};
    lua_getfield(L, 1, "gate"); /* stays on the stack until the spawn returns */
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TFUNCTION);
        gate->fn = lua_gettop(L);
        o->gate = call_lua_gate;
        o->gate_arg = gate;
    }
    o->hold_gate = opt_bool(L, 1, "hold_gate");
    if (o->hold_gate && o->gate)
        return luaL_error(L, "spawn: options 'gate' and 'hold_gate' exclude each other");
    int sandbox_err = 0;
    *sandbox = prisn_sandbox_parse(L, 1, &sandbox_err);
    if (sandbox_err) {
        lua_pushnil(L);
        lua_insert(L, -2);
        lua_pushstring(L, prisn_sys_errno_name(sandbox_err));
        lua_pushstring(L, "mount");
        return 4;
    }
    o->sandbox = *sandbox ? prisn_sandbox_parsed_opts(*sandbox) : NULL;
    return 0;
}

/* Pushes nil, message, code, stage for a failed spawn (see proc.spawn). */
static int push_spawn_failure(lua_State *L, int rc, prisn_spawn_stage stage, bool timed_out,
                              const char *file, const char *cwd, int timeout_ms) {
    const char *subject = file;
    if (stage == PRISN_STAGE_CHDIR)
        subject = cwd;
    else if (stage == PRISN_STAGE_CGROUP)
        subject = "cgroup.procs";
    else if (stage == PRISN_STAGE_NAMESPACE || stage == PRISN_STAGE_MOUNT ||
             stage == PRISN_STAGE_NETWORK || stage == PRISN_STAGE_INIT)
        subject = "(sandbox)";
    lua_pushnil(L);
    if (timed_out)
        lua_pushfstring(L, "%s: %s %s: did not start within %d ms; killed",
                        prisn_sys_errno_name(-rc), prisn_proc_stage_name(stage), subject,
                        timeout_ms > 0 ? timeout_ms : PRISN_PROC_START_TIMEOUT_MS);
    else
        lua_pushfstring(L, "%s: %s %s: %s", prisn_sys_errno_name(-rc),
                        prisn_proc_stage_name(stage), subject, strerror(-rc));
    lua_pushstring(L, prisn_sys_errno_name(-rc));
    lua_pushstring(L, prisn_proc_stage_name(stage));
    return 4;
}

/* A new process handle (no process yet), on the top of the stack. */
static proc_handle *new_proc_handle(lua_State *L) {
    proc_handle *p = lua_newuserdatauv(L, sizeof *p, 0);
    p->pid = -1;
    p->pidfd = -1;
    p->reaped = true;
    p->sandbox_status_fd = -1;
    for (int i = 0; i < 3; i++)
        p->fds[i] = -1;
    luaL_setmetatable(L, PROC_MT);
    return p;
}

static void fill_proc_handle(proc_handle *p, const prisn_spawn_result *r) {
    p->pid = r->pid;
    p->pidfd = r->pidfd;
    p->reaped = false;
    p->sandbox_status_fd = r->sandbox_status_fd;
    for (int i = 0; i < 3; i++)
        p->fds[i] = r->stdio_fds[i];
}

/* proc.spawn(opts) -> process | nil, message, code, stage
 * Raises on malformed options (misuse); returns nil... when the system
 * refuses (stage "setup") or the child fails before exec (stage "chdir",
 * "exec", ...; message names the subject: "ENOENT: exec /usr/bin/python3"),
 * or does not reach exec within start_timeout_ms (code "ETIMEDOUT", the
 * stage it was stuck in: "ETIMEDOUT: ids /usr/bin/python3: did not start
 * within 5000 ms; killed"). Blocks until the child has exec'd, at most that
 * long (proc.spawn_start does not). */
static int l_proc_spawn(lua_State *L) {
    prisn_spawn_opts o;
    lua_gate gate;
    prisn_sandbox_parsed *sandbox;
    int pushed = parse_spawn(L, &o, &gate, &sandbox);
    if (pushed)
        return pushed;
    if (o.hold_gate) {
        if (sandbox)
            prisn_sandbox_parsed_close(sandbox);
        return luaL_error(L, "spawn: option 'hold_gate' needs proc.spawn_start (nothing could open it)");
    }
    /* The handle exists before the process, so a raise cannot leak it. */
    proc_handle *p = new_proc_handle(L);
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    int rc = prisn_proc_spawn(&o, &r, &stage);
    if (sandbox)
        prisn_sandbox_parsed_close(sandbox);
    if (gate.raised)
        return lua_error(L); /* the gate's own error, on the top of the stack */
    if (rc < 0)
        return push_spawn_failure(L, rc, stage, r.timed_out, o.file, o.cwd, o.start_timeout_ms);
    fill_proc_handle(p, &r);
    return 1;
}

/* ---- a spawn waiting for its child's report ----------------------------- */

#define PENDING_MT "prisn.proc.pending"

typedef struct {
    prisn_spawn_pending *p; /* NULL once finished or cancelled */
    char *file, *cwd;       /* for the message of a failure */
    int timeout_ms;
} pending_handle;

static pending_handle *check_pending(lua_State *L, int idx) {
    pending_handle *h = luaL_checkudata(L, idx, PENDING_MT);
    if (!h->p)
        luaL_argerror(L, idx, "spawn already finished");
    return h;
}

static void pending_release(pending_handle *h) {
    free(h->file);
    free(h->cwd);
    h->file = h->cwd = NULL;
}

/* proc.spawn_start(opts) -> pending | nil, message, code, stage
 * The options and failures of proc.spawn, but returns as soon as the child
 * is cloned (and opts.gate has run): the caller watches pending:fd() for
 * reading with pending:left_ms() as deadline, then calls pending:finish().
 * With opts.hold_gate = true (not with opts.gate) the child waits just
 * before its exec until pending:open_gate(). */
static int l_proc_spawn_start(lua_State *L) {
    prisn_spawn_opts o;
    lua_gate gate;
    prisn_sandbox_parsed *sandbox;
    int pushed = parse_spawn(L, &o, &gate, &sandbox);
    if (pushed)
        return pushed;
    /* The handle exists before the process, so a raise cannot leak it. */
    pending_handle *h = lua_newuserdatauv(L, sizeof *h, 0);
    h->p = NULL;
    h->file = strdup(o.file);
    h->cwd = o.cwd ? strdup(o.cwd) : NULL;
    h->timeout_ms = o.start_timeout_ms;
    luaL_setmetatable(L, PENDING_MT);
    if (!h->file || (o.cwd && !h->cwd)) {
        pending_release(h);
        if (sandbox)
            prisn_sandbox_parsed_close(sandbox);
        return luaL_error(L, "spawn: out of memory");
    }
    prisn_spawn_stage stage;
    int rc = prisn_proc_spawn_start(&o, &h->p, &stage);
    if (sandbox)
        prisn_sandbox_parsed_close(sandbox);
    if (gate.raised)
        return lua_error(L); /* the gate's own error, on the top of the stack */
    if (rc < 0) {
        pending_release(h);
        return push_spawn_failure(L, rc, stage, false, o.file, o.cwd, o.start_timeout_ms);
    }
    return 1;
}

/* pending:fd() -> integer: readable once the child has reported or exec'd. */
static int l_pending_fd(lua_State *L) {
    lua_pushinteger(L, prisn_proc_spawn_pending_fd(check_pending(L, 1)->p));
    return 1;
}

/* pending:left_ms() -> integer: how long the child may still take. */
static int l_pending_left_ms(lua_State *L) {
    lua_pushinteger(L, prisn_proc_spawn_pending_left_ms(check_pending(L, 1)->p));
    return 1;
}

/* pending:pid() -> integer */
static int l_pending_pid(lua_State *L) {
    lua_pushinteger(L, prisn_proc_spawn_pending_pid(check_pending(L, 1)->p));
    return 1;
}

/* pending:finish([expired]) -> process | false | nil, message, code, stage
 * Never blocks on the child: false while it has neither reported nor
 * exec'd and the deadline has not passed (nor `expired` is true);
 * otherwise exactly what proc.spawn would have returned, the child killed
 * and reaped at the deadline. The pending handle is spent then. */
static int l_pending_finish(lua_State *L) {
    pending_handle *h = check_pending(L, 1);
    bool expired = lua_toboolean(L, 2);
    proc_handle *p = new_proc_handle(L);
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    int rc = prisn_proc_spawn_finish(h->p, expired, &r, &stage);
    if (rc == 1) {
        lua_pushboolean(L, 0);
        return 1;
    }
    h->p = NULL;
    if (rc < 0) {
        push_spawn_failure(L, rc, stage, r.timed_out, h->file, h->cwd, h->timeout_ms);
        pending_release(h);
        return 4;
    }
    pending_release(h);
    fill_proc_handle(p, &r);
    return 1;
}

/* pending:open_gate() -> true | nil, message, code
 * Lets a child spawned with hold_gate go on to its exec (at once without
 * one). Does not raise on a spent pending (finished or cancelled: there is
 * no child left to let go); true then. */
static int l_pending_open_gate(lua_State *L) {
    pending_handle *h = luaL_checkudata(L, 1, PENDING_MT);
    int rc = h->p ? prisn_proc_spawn_open_gate(h->p) : 0;
    if (rc < 0)
        return prisn_binding_fail_errno(L, -rc, "open_gate");
    lua_pushboolean(L, 1);
    return 1;
}

/* pending:cancel() -> nothing. Kills and reaps a child still starting;
 * idempotent (also __gc and __close: a dropped spawn leaves nothing). */
static int l_pending_cancel(lua_State *L) {
    pending_handle *h = luaL_checkudata(L, 1, PENDING_MT);
    prisn_proc_spawn_cancel(h->p);
    h->p = NULL;
    pending_release(h);
    return 0;
}

static int l_pending_tostring(lua_State *L) {
    pending_handle *h = luaL_checkudata(L, 1, PENDING_MT);
    if (h->p)
        lua_pushfstring(L, "prisn.proc.pending (pid %d)", (int)prisn_proc_spawn_pending_pid(h->p));
    else
        lua_pushliteral(L, "prisn.proc.pending (done)");
    return 1;
}

/* p:pid() -> integer */
static int l_proc_pid(lua_State *L) {
    lua_pushinteger(L, check_proc(L, 1)->pid);
    return 1;
}

/* p:pidfd() -> integer | nil (kernel without pidfds, or closed) */
static int l_proc_pidfd(lua_State *L) {
    proc_handle *p = check_proc(L, 1);
    if (p->pidfd < 0)
        return 0;
    lua_pushinteger(L, p->pidfd);
    return 1;
}

/* p:take_fd("stdout") -> integer | nil. Hands the parent's end of a pipe to
 * the caller, who then owns it (e.g. uv.new_pipe():open(fd)). */
static int l_proc_take_fd(lua_State *L) {
    proc_handle *p = check_proc(L, 1);
    int slot = luaL_checkoption(L, 2, NULL, stdio_names);
    if (p->fds[slot] < 0)
        return 0;
    lua_pushinteger(L, p->fds[slot]);
    p->fds[slot] = -1;
    return 1;
}

/* p:wait([{ nohang = bool }]) -> status | false (still running) | nil, msg, code
 * status = { exited = bool, code = n | nil, signal = "TERM" | nil,
 *            signal_number = n | nil, core_dumped = bool }.
 * Blocks unless nohang: call it when the pidfd is readable. */
static int l_proc_wait(lua_State *L) {
    proc_handle *p = check_proc(L, 1);
    bool nohang = false;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "nohang");
        nohang = lua_toboolean(L, -1);
    }
    if (p->reaped)
        return prisn_binding_fail_errno(L, ECHILD, "wait: process already reaped");
    prisn_exit_status st;
    int rc = prisn_proc_wait(p->pid, p->pidfd, nohang, &st);
    if (rc < 0)
        return prisn_binding_fail_errno(L, -rc, "wait");
    if (rc == 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    p->reaped = true;
    prisn_sandbox_status_apply(p->sandbox_status_fd, &st);
    lua_createtable(L, 0, 5);
    lua_pushboolean(L, st.exited);
    lua_setfield(L, -2, "exited");
    if (st.exited) {
        lua_pushinteger(L, st.code);
        lua_setfield(L, -2, "code");
    }
    if (st.signaled) {
        const char *name = signal_name(st.signal);
        if (name)
            lua_pushstring(L, name);
        else
            lua_pushfstring(L, "%d", st.signal);
        lua_setfield(L, -2, "signal");
        lua_pushinteger(L, st.signal);
        lua_setfield(L, -2, "signal_number");
    }
    lua_pushboolean(L, st.core_dumped);
    lua_setfield(L, -2, "core_dumped");
    return 1;
}

/* p:kill(sig [, { group = bool }]) -> true | nil, msg, code
 * sig is a number or a name ("TERM", "SIGKILL"). With group, signals the
 * process group the child leads (it must have been spawned with session or
 * pgroup). ESRCH means nothing was left to signal. */
static int l_proc_kill(lua_State *L) {
    proc_handle *p = check_proc(L, 1);
    int sig = check_signal(L, 2);
    bool group = false;
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "group");
        group = lua_toboolean(L, -1);
    }
    if (p->pid <= 0)
        return prisn_binding_fail_errno(L, ESRCH, "kill");
    /* A reaped leader's pid may be reused: only its group may still be hit. */
    if (p->reaped && !group)
        return prisn_binding_fail_errno(L, ESRCH, "kill: process already ended");
    int rc = prisn_proc_kill(p->pid, p->reaped ? -1 : p->pidfd, sig, group);
    if (rc < 0)
        return prisn_binding_fail_errno(L, -rc, "kill");
    lua_pushboolean(L, 1);
    return 1;
}

/* p:close() -> nothing. Closes the pidfd and untaken pipe ends; idempotent.
 * Does not reap: a process never waited for stays a zombie until prisn exits. */
static int l_proc_close(lua_State *L) {
    proc_close_fds(check_proc(L, 1));
    return 0;
}

static int l_proc_tostring(lua_State *L) {
    proc_handle *p = check_proc(L, 1);
    lua_pushfstring(L, "prisn.proc (pid %d%s)", (int)p->pid, p->reaped ? ", ended" : "");
    return 1;
}

/* proc.signal_number("TERM") -> 15; proc.signal_name(15) -> "TERM" | nil */
static int l_proc_signal_number(lua_State *L) {
    lua_pushinteger(L, check_signal(L, 1));
    return 1;
}

static int l_proc_signal_name(lua_State *L) {
    const char *name = signal_name((int)luaL_checkinteger(L, 1));
    if (!name)
        return 0;
    lua_pushstring(L, name);
    return 1;
}

static const luaL_Reg proc_methods[] = {
    {"pid", l_proc_pid},   {"pidfd", l_proc_pidfd}, {"take_fd", l_proc_take_fd},
    {"wait", l_proc_wait}, {"kill", l_proc_kill},   {"close", l_proc_close},
    {NULL, NULL},
};

static const luaL_Reg pending_methods[] = {
    {"fd", l_pending_fd},         {"left_ms", l_pending_left_ms}, {"pid", l_pending_pid},
    {"finish", l_pending_finish}, {"cancel", l_pending_cancel},   {"open_gate", l_pending_open_gate},
    {NULL, NULL},
};

static const luaL_Reg proc_functions[] = {
    {"spawn", l_proc_spawn},
    {"spawn_start", l_proc_spawn_start},
    {"signal_number", l_proc_signal_number},
    {"signal_name", l_proc_signal_name},
    {NULL, NULL},
};

int luaopen_prisn_core_proc(lua_State *L) {
    prisn_binding_metatable(L, PROC_MT, proc_methods, l_proc_close, l_proc_close, l_proc_tostring);
    prisn_binding_metatable(L, PENDING_MT, pending_methods, l_pending_cancel, l_pending_cancel, l_pending_tostring);
    luaL_newlib(L, proc_functions);
    return 1;
}
