/*
 * sys: build identity and small system probes that luv lacks.
 *
 * Mechanism only: probing whether a namespace can be created says nothing
 * about whether prisn should use it; `prisn doctor` and the sandbox decide.
 * Probes run in a forked child so the caller's own namespaces never change.
 *
 * sys.exec is the one way the server replaces itself (`prisn server
 * upgrade`): execv in place, so its pid (systemd's main PID, a terminal's
 * foreground job) stays; what to run and when is prisn.server's business.
 */
#include "sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "binding.h"

#ifndef PRISN_VERSION
#define PRISN_VERSION "0.0.0"
#endif
#ifndef PRISN_COMMIT
#define PRISN_COMMIT "unknown"
#endif
#ifndef PRISN_BUILD_DATE
#define PRISN_BUILD_DATE "unknown"
#endif
#ifndef PRISN_TARGET
#define PRISN_TARGET "unknown"
#endif
#ifndef PRISN_LINKAGE
#define PRISN_LINKAGE "unknown"
#endif
#ifndef PRISN_SOURCE_DIR
#define PRISN_SOURCE_DIR ""
#endif

static int ns_flag(prisn_sys_ns kind) {
    switch (kind) {
    case PRISN_SYS_NS_USER:
        return CLONE_NEWUSER;
    case PRISN_SYS_NS_PID:
        return CLONE_NEWPID;
    case PRISN_SYS_NS_MOUNT:
        return CLONE_NEWNS;
    case PRISN_SYS_NS_NET:
        return CLONE_NEWNET;
    }
    return 0;
}

int prisn_sys_probe_namespace(prisn_sys_ns kind) {
    int flag = ns_flag(kind);
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        /* Exit code carries the errno; 0 means unshare worked. */
        _exit(unshare(flag) == 0 ? 0 : (errno & 0xff));
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    if (!WIFEXITED(status))
        return -ECHILD;
    return -WEXITSTATUS(status);
}

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

prisn_sys_syscalls prisn_sys_sys = {.execv = execv};

/* Marks every descriptor from `first` on close-on-exec: close_range (Linux
 * 5.11+), else one by one from /proc/self/fd. 0 or a negative errno. */
static int cloexec_from(int first) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)first, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
        return 0;
#endif
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return -errno;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        int fd = atoi(e->d_name);
        if (fd < first || fd == dirfd(dir))
            continue;
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC))
            fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
    closedir(dir);
    return 0;
}

int prisn_sys_exec(const char *path, char *const argv[]) {
    int rc = cloexec_from(3);
    if (rc < 0)
        return rc;
    /* The mask survives exec: a new server with SIGTERM blocked (libuv
     * blocks signals around some of its work) would never stop. */
    sigset_t none, old;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, &old);
    prisn_sys_sys.execv(path, argv);
    int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -err;
}

const char *prisn_sys_errno_name(int err) {
    const char *name = strerrorname_np(err);
    return name ? name : "EUNKNOWN";
}

/* ---- Lua binding ------------------------------------------------------- */

static const char *const ns_names[] = {"user", "pid", "mount", "net", NULL};

/* sys.probe_namespace(kind) -> true | nil, message, code
 * kind is "user", "pid", "mount" or "net"; raises on any other value. */
static int l_sys_probe_namespace(lua_State *L) {
    int kind = luaL_checkoption(L, 1, NULL, ns_names);
    int rc = prisn_sys_probe_namespace((prisn_sys_ns)kind);
    if (rc == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    /* No code in front: `prisn doctor` shows this message as it is. */
    return prisn_binding_fail(L, prisn_sys_errno_name(-rc), "unshare(%s): %s", ns_names[kind],
                              strerror(-rc));
}

/* sys.isatty(fd) -> boolean. Never raises for a bad descriptor. */
static int l_sys_isatty(lua_State *L) {
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

/* sys.lock(path) -> fd | false (held by another process) | nil, msg, code
 * Opens (creating, 0600) path and takes an exclusive flock without blocking.
 * The lock lasts until sys.unlock(fd) or the process ends, so a crashed
 * holder never leaves a stale lock behind. */
static int l_sys_lock(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return prisn_binding_fail_errno(L, errno, path);
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int err = errno;
        if (err == EINTR)
            continue;
        close(fd);
        if (err == EWOULDBLOCK) {
            lua_pushboolean(L, 0);
            return 1;
        }
        return prisn_binding_fail_errno(L, err, lua_pushfstring(L, "flock %s", path));
    }
    lua_pushinteger(L, fd);
    return 1;
}

/* sys.unlock(fd) -> nothing. Releases a lock taken by sys.lock. */
static int l_sys_unlock(lua_State *L) {
    int fd = (int)luaL_checkinteger(L, 1);
    flock(fd, LOCK_UN);
    close(fd);
    return 0;
}

/* sys.set_oom_score_adj(n) -> true | nil, msg, code
 * Sets this process's OOM score adjustment (-1000..1000); lowering it needs
 * CAP_SYS_RESOURCE. */
static int l_sys_set_oom_score_adj(lua_State *L) {
    lua_Integer adj = luaL_checkinteger(L, 1);
    luaL_argcheck(L, adj >= -1000 && adj <= 1000, 1, "must be between -1000 and 1000");
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    char text[16];
    int len = snprintf(text, sizeof text, "%d", (int)adj);
    if (fd < 0 || write(fd, text, (size_t)len) != len) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return prisn_binding_fail_errno(L, err, "/proc/self/oom_score_adj");
    }
    close(fd);
    lua_pushboolean(L, 1);
    return 1;
}

/* sys.mkfifo(path, mode) -> true | nil, msg, code
 * Makes a named pipe. A service instance writes its output into one, so the
 * output outlives the server that reads it (see prisn.exec.instance). */
static int l_sys_mkfifo(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    lua_Integer mode = luaL_optinteger(L, 2, 0600);
    if (mkfifo(path, (mode_t)mode) < 0)
        return prisn_binding_fail_errno(L, errno, path);
    lua_pushboolean(L, 1);
    return 1;
}

/* sys.pidfd_open(pid) -> fd | nil, msg, code
 * A pidfd for a process that is not our child (one a restarted server
 * re-adopts): it turns readable when the process ends. ENOSYS before Linux
 * 5.3; the caller then polls /proc. The fd is close-on-exec. */
static int l_sys_pidfd_open(lua_State *L) {
    lua_Integer pid = luaL_checkinteger(L, 1);
    luaL_argcheck(L, pid > 0, 1, "must be a process id");
#ifdef SYS_pidfd_open
    long fd = syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (fd < 0)
        return prisn_binding_fail_errno(L, errno, "pidfd_open");
    lua_pushinteger(L, (lua_Integer)fd);
    return 1;
#else
    return prisn_binding_fail_errno(L, ENOSYS, "pidfd_open");
#endif
}

/* luv's loop of a Lua state (lua-luv-dev's luv.h declares it; its header
 * is not on our include path). */
uv_loop_t *luv_loop(lua_State *L);

/* sys.fork() -> 0 in the child, the child's pid in the parent | nil, msg, code
 * For the job host, a warm prisn that forks one job runner per job instead
 * of exec'ing a new prisn: the child gets the default SIGCHLD back (the host
 * ignores it), has /dev/null as stdin and stdout (the host's are its pipes
 * to the server), and its luv loop made usable again (uv_loop_fork); it
 * stays in the host's process group until it calls sys.setsid(). stdio
 * buffers are flushed first, so nothing is written twice. */
static int l_sys_fork(lua_State *L) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return prisn_binding_fail_errno(L, errno, "fork");
    if (pid == 0) {
        signal(SIGCHLD, SIG_DFL);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            close(null);
        }
        uv_loop_t *loop = luv_loop(L);
        if (loop)
            uv_loop_fork(loop);
    }
    lua_pushinteger(L, pid);
    return 1;
}

/* sys.setsid() -> true | nil, msg, code. A session (and process group) of
 * this process's own: signals to its old group no longer reach it. */
static int l_sys_setsid(lua_State *L) {
    if (setsid() < 0)
        return prisn_binding_fail_errno(L, errno, "setsid");
    lua_pushboolean(L, 1);
    return 1;
}

/* sys.set_name(name) -> nothing. This process's name as ps and top show it
 * (at most 15 bytes; Linux only): the job host and the runners it forks are
 * copies of prisn, and operators (and profilers) tell them apart by name. */
static int l_sys_set_name(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
#ifdef PR_SET_NAME
    prctl(PR_SET_NAME, name, 0, 0, 0);
#else
    (void)name;
#endif
    return 0;
}

#ifdef __linux__
/* A unix stream socket (close-on-exec, plus `flags`) to bind or connect to
 * claim `name`, the function's first argument, whose abstract address
 * ("\0<name>") goes to *addr and *addr_len. -1 with errno on failure. */
static int claim_socket(lua_State *L, int flags, struct sockaddr_un *addr, socklen_t *addr_len) {
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    luaL_argcheck(L, len > 0 && len < sizeof addr->sun_path, 1, "name must be 1 to 107 bytes");
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    memcpy(addr->sun_path + 1, name, len);
    *addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
    return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
}
#endif

/* sys.claim(name) -> fd | false | nil, msg, code
 * Claims `name` for this process: binds a listening unix socket at the
 * abstract address "\0<name>" (Linux; ENOTSUP elsewhere). The claim holds
 * while any copy of the fd is open and ends with the last one, a crash
 * included; nothing is created on disk. false when it is held already. The
 * fd is close-on-exec; close it to let go. */
static int l_sys_claim(lua_State *L) {
#ifdef __linux__
    struct sockaddr_un addr;
    socklen_t addr_len;
    int fd = claim_socket(L, 0, &addr, &addr_len);
    if (fd < 0)
        return prisn_binding_fail_errno(L, errno, "socket");
    if (bind(fd, (struct sockaddr *)&addr, addr_len) < 0) {
        int err = errno;
        close(fd);
        if (err == EADDRINUSE) {
            lua_pushboolean(L, 0);
            return 1;
        }
        return prisn_binding_fail_errno(L, err, "bind");
    }
    /* listen() records this process as the owner (SO_PEERCRED) for
     * sys.claimant; nobody is ever accepted, so each sys.claimant leaves a
     * connection queued until the claim ends: room for many. */
    if (listen(fd, SOMAXCONN) < 0) {
        int err = errno;
        close(fd);
        return prisn_binding_fail_errno(L, err, "listen");
    }
    lua_pushinteger(L, fd);
    return 1;
#else
    return prisn_binding_fail_errno(L, ENOTSUP, "claim");
#endif
}

/* sys.claimant(name) -> pid | false | nil, msg, code
 * Who holds the claim `name` (sys.claim): the pid of the process that made
 * it (0 when it cannot be told), when it runs as this process's user; false
 * when nobody holds it, or someone else's user does. */
static int l_sys_claimant(lua_State *L) {
#ifdef __linux__
    struct sockaddr_un addr;
    socklen_t addr_len;
    /* Non-blocking: a claim whose queue is full answers EAGAIN at once. */
    int fd = claim_socket(L, SOCK_NONBLOCK, &addr, &addr_len);
    if (fd < 0)
        return prisn_binding_fail_errno(L, errno, "socket");
    if (connect(fd, (struct sockaddr *)&addr, addr_len) < 0) {
        int err = errno;
        close(fd);
        /* Nobody bound (ECONNREFUSED); a full queue still means held, by a
         * process this cannot name (0). */
        if (err == EAGAIN) {
            lua_pushinteger(L, 0);
            return 1;
        }
        if (err == ECONNREFUSED || err == ENOENT) {
            lua_pushboolean(L, 0);
            return 1;
        }
        return prisn_binding_fail_errno(L, err, "connect");
    }
    struct ucred cred;
    socklen_t cred_len = sizeof cred;
    int rc = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len);
    int err = errno;
    close(fd);
    if (rc < 0)
        return prisn_binding_fail_errno(L, err, "getsockopt");
    if (cred.uid != geteuid()) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_pushinteger(L, cred.pid);
    return 1;
#else
    return prisn_binding_fail_errno(L, ENOTSUP, "claimant");
#endif
}

/* sys.wait_readable(fd, ms) -> true | false | nil, msg, code. Whether `fd`
 * has something to read (or its end) within `ms` milliseconds. */
static int l_sys_wait_readable(lua_State *L) {
    struct pollfd p = {.fd = (int)luaL_checkinteger(L, 1), .events = POLLIN};
    int ms = (int)luaL_checkinteger(L, 2);
    int n;
    while ((n = poll(&p, 1, ms)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return prisn_binding_fail_errno(L, errno, "poll");
    lua_pushboolean(L, n > 0);
    return 1;
}

/* sys.dup(fd) -> new_fd | nil, msg, code. A copy of `fd` (close-on-exec,
 * numbered 3 or above): the job host keeps one of its stdout, the pipe to
 * the server, for the runners it forks to report on (their own stdout is
 * /dev/null). */
static int l_sys_dup(lua_State *L) {
    int fd = (int)luaL_checkinteger(L, 1);
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (copy < 0)
        return prisn_binding_fail_errno(L, errno, "dup");
    lua_pushinteger(L, copy);
    return 1;
}

/* sys.ignore_sigpipe() -> nothing. A write to a pipe nobody reads fails with
 * EPIPE instead of killing this process (a job runner whose server is gone
 * records its job itself). Workloads get every signal's default back before
 * they exec (see proc.c). */
static int l_sys_ignore_sigpipe(lua_State *L) {
    (void)L;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* sys.ignore_children() -> nothing. SIGCHLD ignored: this process's children
 * are reaped by the kernel and never linger as zombies (the job host, which
 * forks runners and never waits for them). */
static int l_sys_ignore_children(lua_State *L) {
    (void)L;
    signal(SIGCHLD, SIG_IGN);
    return 0;
}

/* sys.raise_nofile() -> old_soft, new_soft | nil, msg, code
 * Raises this process's soft limit of open descriptors to its hard limit:
 * the server holds a few per service instance (output pipes, log, pidfd),
 * and the usual soft limit of 1,024 would stop it near 250 instances. */
static int l_sys_raise_nofile(lua_State *L) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return prisn_binding_fail_errno(L, errno, "getrlimit");
    rlim_t old = rl.rlim_cur;
    if (rl.rlim_cur != rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            return prisn_binding_fail_errno(L, errno, "setrlimit");
    }
    lua_pushinteger(L, old == RLIM_INFINITY ? -1 : (lua_Integer)old);
    lua_pushinteger(L, rl.rlim_cur == RLIM_INFINITY ? -1 : (lua_Integer)rl.rlim_cur);
    return 2;
}

/* sys.exec(path, argv) -> only on failure: nil, msg, code
 * Replaces this process's program with `path` (prisn_sys_exec: same pid,
 * same environment, descriptors from 3 on closed). argv is a sequence of
 * strings, argv[1] the new program's argv[0]; raises when it is not. */
static int l_sys_exec(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    luaL_argcheck(L, n >= 1 && n < 4096, 2, "must hold 1 to 4095 strings");
    /* Userdata, so a raise below frees it with the state. */
    char **argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_geti(L, 2, i) != LUA_TSTRING)
            return luaL_argerror(L, 2, lua_pushfstring(L, "item %d is not a string", (int)i));
        argv[i - 1] = (char *)lua_tostring(L, -1); /* kept alive by the table */
        lua_pop(L, 1);
    }
    argv[n] = NULL;
    fflush(NULL);
    int rc = prisn_sys_exec(path, argv);
    return prisn_binding_fail_errno(L, -rc, lua_pushfstring(L, "exec %s", path));
}

/* sys.reap(pid) -> true (it had ended: reaped now) | false (it runs)
 *   | nil, msg, code (ECHILD: not a child of this process)
 * waitpid(pid, WNOHANG) for one named child: after sys.exec the children
 * of the program replaced are still this process's, and the new one has no
 * handle that would wait for them. Never waitpid(-1): that steals luv's. */
static int l_sys_reap(lua_State *L) {
    lua_Integer pid = luaL_checkinteger(L, 1);
    luaL_argcheck(L, pid > 0, 1, "must be a process id");
    int status;
    pid_t rc;
    while ((rc = waitpid((pid_t)pid, &status, WNOHANG)) < 0 && errno == EINTR)
        ;
    if (rc < 0)
        return prisn_binding_fail_errno(L, errno, "waitpid");
    lua_pushboolean(L, rc == (pid_t)pid);
    return 1;
}

/* The integers of a small /proc file, parsed in place: a usage sample reads
 * three per process, every few milliseconds, and through io.open each cost
 * a FILE, its 4 kB buffer and a string to parse (about 20 us apiece on a
 * loaded machine, tests/bench/deployments-report.md). */
#define PROC_NUMBERS_MAX 16384

/* Stores in out[first], out[first + 1], ... every whitespace-separated word
 * of text that is an integer (an optional '-', digits); other words are
 * skipped. A value past lua_Integer's range (stat's rsslim is often 2^64-1)
 * is stored as the largest one, so the words after it keep their places.
 * Returns how many were stored. */
static lua_Integer store_numbers(lua_State *L, int out, lua_Integer first, const char *p, const char *end) {
    lua_Integer n = 0;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\n' || *p == '\t'))
            p++;
        const char *word = p;
        while (p < end && *p != ' ' && *p != '\n' && *p != '\t')
            p++;
        const char *d = word + (word < p && *word == '-');
        lua_Integer v = 0;
        const char *q = d;
        while (q < p && *q >= '0' && *q <= '9') {
            int digit = *q++ - '0';
            v = v > (LUA_MAXINTEGER - digit) / 10 ? LUA_MAXINTEGER : v * 10 + digit;
        }
        if (q == p && q > d) {
            lua_pushinteger(L, *word == '-' ? -v : v);
            lua_rawseti(L, out, first + n++);
        }
    }
    return n;
}

/* sys.proc_numbers(pid, name, out [, first [, after [, tid]]]) -> count |
 * nil, msg, code. Reads /proc/<pid>/<name> (or /proc/<pid>/task/<tid>/<name>)
 * and stores its integers in out from index `first` (default 1), counting
 * only what follows the last `after` character when given (")" skips a
 * stat line's command name, which the process chooses). Nothing is left in
 * the Lua heap but the numbers. */
static int l_sys_proc_numbers(lua_State *L) {
    lua_Integer pid = luaL_checkinteger(L, 1);
    const char *name = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_Integer first = luaL_optinteger(L, 4, 1);
    size_t after_len = 0;
    const char *after = luaL_optlstring(L, 5, NULL, &after_len);
    lua_Integer tid = luaL_optinteger(L, 6, 0);
    char path[96];
    if (tid > 0)
        snprintf(path, sizeof path, "/proc/%lld/task/%lld/%s", (long long)pid, (long long)tid, name);
    else
        snprintf(path, sizeof path, "/proc/%lld/%s", (long long)pid, name);
    int fd;
    while ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 && errno == EINTR)
        ;
    if (fd < 0)
        return prisn_binding_fail_errno(L, errno, path);
    char stack[4096];
    char *buf = stack;
    size_t cap = sizeof stack, len = 0;
    for (;;) {
        if (len == cap) {
            /* Rare (a process with hundreds of children): a userdata, so a
             * raise below leaks nothing. */
            if (cap * 2 > PROC_NUMBERS_MAX)
                break; /* a runaway file: its first part is enough */
            char *grown = lua_newuserdatauv(L, cap * 2, 0);
            memcpy(grown, buf, len);
            buf = grown;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + len, cap - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int err = errno;
            close(fd);
            return prisn_binding_fail_errno(L, err, path);
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    const char *start = buf;
    if (after && after_len > 0) {
        for (size_t i = len; i > 0; i--) {
            if (buf[i - 1] == after[0]) {
                start = buf + i;
                break;
            }
        }
    }
    lua_Integer n = store_numbers(L, 3, first, start, buf + len);
    lua_pushinteger(L, n);
    return 1;
}

static const luaL_Reg sys_functions[] = {
    {"proc_numbers", l_sys_proc_numbers},
    {"reap", l_sys_reap},
    {"exec", l_sys_exec},
    {"raise_nofile", l_sys_raise_nofile},
    {"fork", l_sys_fork},
    {"set_name", l_sys_set_name},
    {"setsid", l_sys_setsid},
    {"claim", l_sys_claim},
    {"wait_readable", l_sys_wait_readable},
    {"claimant", l_sys_claimant},
    {"dup", l_sys_dup},
    {"ignore_sigpipe", l_sys_ignore_sigpipe},
    {"ignore_children", l_sys_ignore_children},
    {"mkfifo", l_sys_mkfifo},
    {"pidfd_open", l_sys_pidfd_open},
    {"set_oom_score_adj", l_sys_set_oom_score_adj},
    {"probe_namespace", l_sys_probe_namespace},
    {"isatty", l_sys_isatty},
    {"lock", l_sys_lock},
    {"unlock", l_sys_unlock},
    {NULL, NULL},
};

/* Fields: version, commit, build_date, target ("linux-arm64"), linkage
 * ("static" or "dynamic"), source_dir, lua_version,
 * lua_path_default, lua_cpath_default (Lua's compiled-in search paths, which
 * prisn itself does not use). */
int luaopen_prisn_core_sys(lua_State *L) {
    luaL_newlib(L, sys_functions);
    lua_pushliteral(L, PRISN_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushliteral(L, PRISN_COMMIT);
    lua_setfield(L, -2, "commit");
    lua_pushliteral(L, PRISN_BUILD_DATE);
    lua_setfield(L, -2, "build_date");
    lua_pushliteral(L, PRISN_TARGET);
    lua_setfield(L, -2, "target");
    lua_pushliteral(L, PRISN_LINKAGE);
    lua_setfield(L, -2, "linkage");
    lua_pushliteral(L, PRISN_SOURCE_DIR);
    lua_setfield(L, -2, "source_dir");
    lua_pushliteral(L, LUA_RELEASE);
    lua_setfield(L, -2, "lua_version");
    lua_getfield(L, LUA_REGISTRYINDEX, "prisn.lua_path_default");
    lua_setfield(L, -2, "lua_path_default");
    lua_getfield(L, LUA_REGISTRYINDEX, "prisn.lua_cpath_default");
    lua_setfield(L, -2, "lua_cpath_default");
    return 1;
}
