/*
 * proc: spawn, wait and kill for workloads (see proc.h for the contract).
 *
 * Why not uv_spawn: workloads need things libuv does not offer — a pidfd
 * (so exit is observed without SIGCHLD and a recycled pid is never signalled),
 * rlimits, no_new_privs, a precise report of which setup step failed, and
 * later CLONE_INTO_CGROUP. libuv keeps spawning the small helper processes it
 * is good at.
 *
 * The child side runs between clone and exec in a copy of a process that has
 * other threads (the server), so it makes raw system calls only, never a
 * glibc wrapper that may take a lock or wait for a thread (rawsys.h; issue
 * 12: setgroups() there waited forever for a thread caught mid-creation).
 * Every string and array is prepared by the parent before the clone. All
 * signals are blocked across the clone so no handler of prisn's runs in the
 * child; the child resets every disposition to default and unblocks them
 * just before exec.
 *
 * The parent waits for the child's report (a failure, or the pipe closing
 * at exec) with poll and a deadline, so a child stuck before exec costs the
 * loop at most start_timeout_ms and is then killed and reaped; or, split in
 * start and finish, the caller's loop waits for it (a sandboxed chain takes
 * 10-20 ms to reach its workload's exec, which a server starting a hundred
 * services must not spend one after the other). The child
 * records the step it is at in a shared page, so that timeout still names a
 * stage.
 *
 * Process creation prefers clone3(CLONE_PIDFD) (Linux 5.3+), which also takes
 * the cgroup to start in; it falls back to a raw clone (fork without glibc's
 * fork handlers) + pidfd_open(), and to no pidfd at all on old kernels.
 */
#include "proc.h"
#include "rawsys.h"
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* struct clone_args as of Linux 5.7 (CLONE_ARGS_SIZE_VER2), spelled out so
 * the build does not depend on the kernel headers' vintage. */
struct proc_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
        set_tid_size, cgroup;
};

static long sys_clone3(void *args, size_t size) {
#ifdef SYS_clone3
    return syscall(SYS_clone3, args, size);
#else
    (void)args;
    (void)size;
    errno = ENOSYS;
    return -1;
#endif
}

static int sys_pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

static pid_t sys_fork(void) {
    return raw_fork();
}

prisn_proc_syscalls prisn_proc_sys = {
    .clone3 = sys_clone3,
    .fork = sys_fork,
    .pidfd_open = sys_pidfd_open,
};

const char *prisn_proc_stage_name(prisn_spawn_stage stage) {
    switch (stage) {
    case PRISN_STAGE_NONE:
        return "none";
    case PRISN_STAGE_SETUP:
        return "setup";
    case PRISN_STAGE_CGROUP:
        return "cgroup";
    case PRISN_STAGE_NAMESPACE:
        return "namespace";
    case PRISN_STAGE_MOUNT:
        return "mount";
    case PRISN_STAGE_NETWORK:
        return "network";
    case PRISN_STAGE_INIT:
        return "init";
    case PRISN_STAGE_SESSION:
        return "session";
    case PRISN_STAGE_STDIO:
        return "stdio";
    case PRISN_STAGE_CHDIR:
        return "chdir";
    case PRISN_STAGE_RLIMIT:
        return "rlimit";
    case PRISN_STAGE_IDS:
        return "ids";
    case PRISN_STAGE_PRIVS:
        return "privs";
    case PRISN_STAGE_FDS:
        return "fds";
    case PRISN_STAGE_EXEC:
        return "exec";
    }
    return "unknown";
}

/* ---- the child, between clone and exec ---------------------------------- */

/* Everything below runs in a copy of a threaded process: rawsys.h says why
 * only raw system calls are made here, and what that rules out. */

typedef struct {
    int32_t stage;
    int32_t err;
} child_report;

/* Records the step the child is at, for the parent's error if it never
 * reports (a shared page: see prisn_proc_spawn). */
static void child_at(volatile int32_t *progress, prisn_spawn_stage stage) {
    if (progress)
        *progress = (int32_t)stage;
}

static _Noreturn void child_fail(int report_fd, prisn_spawn_stage stage) {
    child_report r = {(int32_t)stage, errno};
    raw_write(report_fd, &r, sizeof r);
    raw_exit(127);
}

/* Marks every descriptor above 2 close-on-exec: the report pipe must stay
 * open until exec, everything else of prisn's must not reach the workload. */
static int child_cloexec_all(void) {
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
        return 0;
    /* Older kernels: walk /proc/self/fd with getdents64 (no malloc). */
    int dir = raw_open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (dir < 0)
        return -1;
    char buf[4096];
    long n;
    while ((n = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
        for (long off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            off += d->d_reclen;
            int fd = 0;
            const char *p = d->d_name;
            if (*p < '0' || *p > '9')
                continue;
            while (*p >= '0' && *p <= '9')
                fd = fd * 10 + (*p++ - '0');
            if (fd > 2 && fd != dir)
                raw_fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
    }
    raw_close(dir);
    return n < 0 ? -1 : 0;
}

/* Installs stdio: every source is first moved above 2 so that dup2 onto
 * 0..2 can never clobber a source still needed. */
static int child_stdio(const int src[3]) {
    int moved[3];
    for (int i = 0; i < 3; i++) {
        moved[i] = -1;
        if (src[i] >= 0 && src[i] != i) {
            moved[i] = raw_fcntl(src[i], F_DUPFD_CLOEXEC, 3);
            if (moved[i] < 0)
                return -1;
        }
    }
    for (int i = 0; i < 3; i++) {
        if (moved[i] >= 0 && raw_dup2(moved[i], i) < 0)
            return -1;
        if (src[i] == i) {
            int flags = raw_fcntl(i, F_GETFD, 0);
            if (flags >= 0)
                raw_fcntl(i, F_SETFD, flags & ~FD_CLOEXEC);
        }
    }
    return 0;
}

/* Waits for the parent's go on the gate (one byte); anything else (end of
 * file: the parent gave up or died) ends the child. */
static void child_gate(int gate_fd, int report_fd) {
    if (gate_fd < 0)
        return;
    char go;
    long n;
    do {
        n = syscall(SYS_read, gate_fd, &go, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) {
        errno = ECANCELED;
        child_fail(report_fd, PRISN_STAGE_SETUP);
    }
    raw_close(gate_fd);
}

_Noreturn void prisn_proc_child_exec(const prisn_spawn_opts *o, const int src[3], int report_fd,
                                     volatile int32_t *progress, int gate_fd) {
    child_at(progress, PRISN_STAGE_SESSION);
    if (o->new_session) {
        if (raw_setsid() < 0)
            child_fail(report_fd, PRISN_STAGE_SESSION);
    } else if (o->new_pgroup) {
        if (raw_setpgid(0, 0) < 0)
            child_fail(report_fd, PRISN_STAGE_SESSION);
    }
    child_at(progress, PRISN_STAGE_STDIO);
    if (child_stdio(src) < 0)
        child_fail(report_fd, PRISN_STAGE_STDIO);
    child_at(progress, PRISN_STAGE_CHDIR);
    if (o->cwd && raw_chdir(o->cwd) < 0)
        child_fail(report_fd, PRISN_STAGE_CHDIR);
    if (o->umask >= 0)
        raw_umask((mode_t)o->umask);
    child_at(progress, PRISN_STAGE_RLIMIT);
    for (size_t i = 0; i < o->nrlimits; i++) {
        if (raw_setrlimit(o->rlimits[i].resource, &o->rlimits[i].limit) < 0)
            child_fail(report_fd, PRISN_STAGE_RLIMIT);
    }
    child_at(progress, PRISN_STAGE_IDS);
    if (o->set_ids && raw_set_ids(o->uid, o->gid, o->groups, o->ngroups) < 0)
        child_fail(report_fd, PRISN_STAGE_IDS);
    child_at(progress, PRISN_STAGE_PRIVS);
    if (o->no_new_privs && raw_prctl(PR_SET_NO_NEW_PRIVS, 1) < 0)
        child_fail(report_fd, PRISN_STAGE_PRIVS);
    child_at(progress, PRISN_STAGE_FDS);
    if (child_cloexec_all() < 0)
        child_fail(report_fd, PRISN_STAGE_FDS);
    child_gate(gate_fd, report_fd);

    /* Handlers are reset by exec itself; ignored signals are not. The
     * kernel's numbering: 1..64, whatever glibc reserves for itself. */
    for (int sig = 1; sig <= 64; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP)
            raw_signal_default(sig);
    }
    raw_unblock_all();

    child_at(progress, PRISN_STAGE_EXEC);
    raw_execve(o->file, o->argv, o->envp);
    child_fail(report_fd, PRISN_STAGE_EXEC);
}

/* The copy made by clone: cgroup placement, then either the sandbox (whose
 * init execs prisn, or runs in this copy when prisn_sandbox_init_in_place_now
 * allowed it, and runs the steps above in a fork of itself) or the steps
 * above here. */
static _Noreturn void child_run(const prisn_spawn_opts *o, const int src[3], int report_fd,
                                volatile int32_t *progress,
                                prisn_sandbox_page *sandbox_page, bool init_in_place,
                                int gate_fd) {
    if (o->oom_score_adj) {
        /* Best effort: raising the score needs no privilege, and a kernel
         * without the file has no OOM scores to inherit either. */
        int fd = raw_open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC, 0);
        if (fd >= 0) {
            raw_write(fd, o->oom_score_adj, raw_strlen(o->oom_score_adj));
            raw_close(fd);
        }
    }
    /* First, so everything after (and the workload) is accounted and limited.
     * "0" is the writing process itself, in v1 and v2 alike. */
    child_at(progress, PRISN_STAGE_CGROUP);
    for (size_t i = 0; i < o->ncgroup_procs_fds; i++) {
        ssize_t n;
        do {
            n = raw_write(o->cgroup_procs_fds[i], "0", 1);
        } while (n < 0 && errno == EINTR);
        if (n != 1) {
            if (n >= 0)
                errno = EIO;
            child_fail(report_fd, PRISN_STAGE_CGROUP);
        }
    }
    if (o->sandbox) {
        /* Namespaces and mounts here; then this process execs prisn as the
         * namespace's init, which starts the workload. */
        if (prisn_sandbox_child_setup(o->sandbox, progress) < 0)
            child_fail(report_fd, (prisn_spawn_stage)*progress);
        child_at(progress, PRISN_STAGE_STDIO);
        if (child_stdio(src) < 0)
            child_fail(report_fd, PRISN_STAGE_STDIO);
        child_at(progress, PRISN_STAGE_INIT);
        if (init_in_place) {
            prisn_sandbox_init_here(o->sandbox, o, sandbox_page, report_fd, gate_fd);
        } else {
            /* The exec'd init cannot carry the gate: it is waited for here. */
            child_gate(gate_fd, report_fd);
            prisn_sandbox_exec_init(o->sandbox, sandbox_page, report_fd);
        }
        child_fail(report_fd, PRISN_STAGE_INIT);
    }
    prisn_proc_child_exec(o, src, report_fd, progress, gate_fd);
}

/* ---- the parent --------------------------------------------------------- */

static void close_if_open(int *fd) {
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Opens the child's ends of stdio in src[], the parent's pipe ends in mine[]. */
static int parent_stdio(const prisn_spawn_opts *o, int src[3], int mine[3]) {
    for (int i = 0; i < 3; i++) {
        src[i] = -1;
        mine[i] = -1;
    }
    for (int i = 0; i < 3; i++) {
        const prisn_stdio *s = &o->stdio[i];
        switch (s->kind) {
        case PRISN_STDIO_INHERIT:
            src[i] = i;
            break;
        case PRISN_STDIO_NULL:
            src[i] = open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
            break;
        case PRISN_STDIO_FILE:
            src[i] = open(s->path, s->flags | O_CLOEXEC, 0600);
            break;
        case PRISN_STDIO_FD:
            src[i] = fcntl(s->fd, F_DUPFD_CLOEXEC, 3);
            break;
        case PRISN_STDIO_PIPE: {
            int p[2];
            if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
            src[i] = i == 0 ? p[0] : p[1];
            mine[i] = i == 0 ? p[1] : p[0];
            break;
        }
        }
        if (src[i] < 0)
            return -errno;
    }
    return 0;
}

static void close_child_ends(int src[3]) {
    for (int i = 0; i < 3; i++) {
        if (src[i] > 2 || (src[i] >= 0 && src[i] != i))
            close(src[i]);
        src[i] = -1;
    }
}

/* Creates the child; returns its pid in the parent (with *pidfd set or -1),
 * 0 in the child, or a negative errno. */
static pid_t create_child(const prisn_spawn_opts *o, int *pidfd) {
    *pidfd = -1;
    struct proc_clone_args args;
    memset(&args, 0, sizeof args);
    int fd = -1;
    args.flags = CLONE_PIDFD;
    args.pidfd = (uint64_t)(uintptr_t)&fd;
    args.exit_signal = SIGCHLD;
    if (o->cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)o->cgroup_fd;
    }
    if (o->sandbox)
        args.flags |= prisn_sandbox_clone_flags(o->sandbox);
    long pid = prisn_proc_sys.clone3(&args, sizeof args);
    if (pid >= 0) {
        if (pid > 0)
            *pidfd = fd;
        return (pid_t)pid;
    }
    /* Starting inside a cgroup needs clone3; the caller places the child
     * itself on kernels without it, so only plain creation falls back. */
    if ((errno != ENOSYS && errno != E2BIG && errno != EINVAL) || o->cgroup_fd >= 0 || o->sandbox)
        return -errno;
    pid_t child = prisn_proc_sys.fork(); /* one system call, like clone3 */
    if (child < 0)
        return -errno;
    if (child > 0)
        *pidfd = prisn_proc_sys.pidfd_open(child); /* -1 on kernels before 5.3 */
    return child;
}

/* Reads the child's report without blocking: 1 with *r filled (the child
 * failed before exec), 0 at end of file (the pipe closed with the child's
 * exec), -EAGAIN while neither has happened, or another negative errno. */
static int read_report(int fd, child_report *r) {
    /* A report is 8 bytes, written at once: a pipe never splits it. */
    ssize_t got;
    do {
        got = read(fd, r, sizeof *r);
    } while (got < 0 && errno == EINTR);
    if (got < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return got == (ssize_t)sizeof *r ? 1 : 0;
}

/* Reaps a child that failed or was killed before exec. */
static void reap(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}

/* A child cloned, its report to come (see prisn_proc_spawn_start). */
struct prisn_spawn_pending {
    pid_t pid;
    int pidfd;
    int report_fd; /* read end, non-blocking */
    int status_fd; /* the sandbox's, or -1 */
    int mine[3];
    int gate[2]; /* a held gate (opts.hold_gate) until it opens, else -1 */
    volatile int32_t *progress;
    prisn_sandbox_page *sandbox_page;
    bool sandboxed;
    int timeout_ms;
    struct timespec started;
};

/* Releases what the parent holds for a child still starting (its process
 * is the caller's business). */
static void pending_free(prisn_spawn_pending *p, bool keep_outputs) {
    if (p->progress && !p->sandboxed)
        munmap((void *)p->progress, sizeof *p->progress);
    prisn_sandbox_page_free(p->sandbox_page);
    close_if_open(&p->report_fd);
    close_if_open(&p->gate[0]);
    close_if_open(&p->gate[1]);
    if (!keep_outputs) {
        close_if_open(&p->status_fd);
        close_if_open(&p->pidfd);
        for (int i = 0; i < 3; i++)
            close_if_open(&p->mine[i]);
    }
    free(p);
}

/* Runs the gate (opts->gate) while the child sets up: 0, or its negative
 * errno once the child is killed and reaped. */
static int run_gate(const prisn_spawn_opts *o, int gate[2], pid_t pid, int *pidfd) {
    /* The child's read end stays open here until the byte is written: a
     * child already dead cannot make the write fail (its report says why
     * it died). */
    int gated = o->gate(o->gate_arg);
    if (gated == 0 && write(gate[1], "g", 1) != 1)
        gated = -errno;
    close_if_open(&gate[0]);
    close_if_open(&gate[1]);
    if (gated < 0) {
        prisn_proc_kill(pid, *pidfd, SIGKILL, false);
        reap(pid);
        close_if_open(pidfd);
    }
    return gated;
}

int prisn_proc_spawn_start(const prisn_spawn_opts *o, prisn_spawn_pending **pending,
                           prisn_spawn_stage *stage) {
    *stage = PRISN_STAGE_SETUP;
    *pending = NULL;
    int src[3], mine[3], report[2] = {-1, -1}, gate[2] = {-1, -1};
    prisn_sandbox_page *sandbox_page = NULL;
    int status_fd = -1;
    /* Where the child records the step it is at (see child_at): the
     * sandbox's shared page, which its init and workload map too, or a
     * shared page of its own. */
    volatile int32_t *progress = NULL;
    /* Allocated first: nothing may fail once the child exists. */
    prisn_spawn_pending *p = malloc(sizeof *p);
    int rc = p ? parent_stdio(o, src, mine) : -ENOMEM;
    if (rc == 0 && o->sandbox) {
        if (!(sandbox_page = prisn_sandbox_page_new(o, &status_fd)))
            rc = -errno;
        else
            progress = &sandbox_page->stage;
    } else if (rc == 0) {
        void *page = mmap(NULL, sizeof *progress, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED)
            rc = -errno;
        else
            progress = page;
    }
    if (rc == 0 && pipe2(report, O_CLOEXEC) < 0)
        rc = -errno;
    if (rc == 0 && fcntl(report[0], F_SETFL, O_NONBLOCK) < 0)
        rc = -errno;
    if (rc == 0 && (o->gate || o->hold_gate) && pipe2(gate, O_CLOEXEC) < 0)
        rc = -errno;
    if (rc < 0)
        goto fail;
    *progress = PRISN_STAGE_SETUP;

    /* Decided here, single-threaded or not, before the clone copies us. */
    bool init_in_place = o->sandbox && prisn_sandbox_init_in_place_now();
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    int pidfd;
    pid_t pid = create_child(o, &pidfd);
    if (pid == 0) {
        raw_close(report[0]);
        /* Only the parent may hold the gate's write end: its death (or
         * giving up) must reach the child as end of file. */
        if (gate[1] >= 0)
            raw_close(gate[1]);
        child_run(o, src, report[1], progress, sandbox_page, init_in_place, gate[0]);
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (pid < 0) {
        rc = pid;
        goto fail;
    }

    clock_gettime(CLOCK_MONOTONIC, &p->started);
    close_if_open(&report[1]);
    close_child_ends(src);
    prisn_sandbox_page_spawned(sandbox_page);
    if (o->gate && (rc = run_gate(o, gate, pid, &pidfd)) < 0)
        goto fail;
    /* A held gate: both ends stay here until it opens (the read end too,
     * so that a child already dead cannot make the write raise SIGPIPE). */
    p->gate[0] = o->gate ? -1 : gate[0];
    p->gate[1] = o->gate ? -1 : gate[1];
    p->pid = pid;
    p->pidfd = pidfd;
    p->report_fd = report[0];
    p->status_fd = status_fd;
    for (int i = 0; i < 3; i++)
        p->mine[i] = mine[i];
    p->progress = progress;
    p->sandbox_page = sandbox_page;
    p->sandboxed = o->sandbox != NULL;
    p->timeout_ms = o->start_timeout_ms > 0 ? o->start_timeout_ms : PRISN_PROC_START_TIMEOUT_MS;
    *pending = p;
    return 0;

fail:
    free(p);
    if (progress && !o->sandbox)
        munmap((void *)progress, sizeof *progress);
    prisn_sandbox_page_free(sandbox_page);
    close_if_open(&status_fd);
    close_child_ends(src);
    for (int i = 0; i < 3; i++)
        close_if_open(&mine[i]);
    close_if_open(&report[0]);
    close_if_open(&report[1]);
    close_if_open(&gate[0]);
    close_if_open(&gate[1]);
    return rc;
}

int prisn_proc_spawn_pending_fd(const prisn_spawn_pending *p) {
    return p->report_fd;
}

int prisn_proc_spawn_pending_left_ms(const prisn_spawn_pending *p) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long spent = (now.tv_sec - p->started.tv_sec) * 1000LL +
                      (now.tv_nsec - p->started.tv_nsec) / 1000000;
    return spent >= p->timeout_ms ? 0 : (int)(p->timeout_ms - spent);
}

pid_t prisn_proc_spawn_pending_pid(const prisn_spawn_pending *p) {
    return p->pid;
}

int prisn_proc_spawn_finish(prisn_spawn_pending *p, bool expired, prisn_spawn_result *out,
                            prisn_spawn_stage *stage) {
    out->timed_out = false;
    child_report r;
    int got = read_report(p->report_fd, &r);
    if (got == -EAGAIN) {
        if (!expired && prisn_proc_spawn_pending_left_ms(p) > 0)
            return 1;
        got = -ETIMEDOUT;
    }
    if (got == 0) {
        /* The workload runs: its stage is no longer needed by anyone. */
        out->pid = p->pid;
        out->pidfd = p->pidfd;
        for (int i = 0; i < 3; i++)
            out->stdio_fds[i] = p->mine[i];
        out->sandbox_status_fd = p->status_fd;
        *stage = PRISN_STAGE_NONE;
        pending_free(p, true);
        return 0;
    }
    int rc;
    if (got == 1) {
        /* The child failed before exec: reap it and report why. */
        reap(p->pid);
        *stage = (prisn_spawn_stage)r.stage;
        rc = r.err ? -r.err : -EIO;
    } else {
        /* Stuck before exec, or the report could not be read: killed (a
         * sandbox's whole namespace goes with its init). */
        prisn_proc_kill(p->pid, p->pidfd, SIGKILL, false);
        reap(p->pid);
        *stage = (prisn_spawn_stage)*p->progress;
        out->timed_out = got == -ETIMEDOUT;
        rc = got;
    }
    pending_free(p, false);
    return rc;
}

int prisn_proc_spawn_open_gate(prisn_spawn_pending *p) {
    if (p->gate[1] < 0)
        return 0;
    ssize_t n;
    do {
        n = write(p->gate[1], "g", 1);
    } while (n < 0 && errno == EINTR);
    int rc = n == 1 ? 0 : -errno;
    close_if_open(&p->gate[0]);
    close_if_open(&p->gate[1]);
    return rc;
}

void prisn_proc_spawn_cancel(prisn_spawn_pending *p) {
    if (!p)
        return;
    prisn_proc_kill(p->pid, p->pidfd, SIGKILL, false);
    reap(p->pid);
    pending_free(p, false);
}

int prisn_proc_spawn(const prisn_spawn_opts *o, prisn_spawn_result *out,
                     prisn_spawn_stage *stage) {
    out->timed_out = false;
    prisn_spawn_pending *p;
    int rc = prisn_proc_spawn_start(o, &p, stage);
    if (rc < 0)
        return rc;
    for (;;) {
        int left = prisn_proc_spawn_pending_left_ms(p);
        if (left > 0) {
            struct pollfd pfd = {p->report_fd, POLLIN, 0};
            if (poll(&pfd, 1, left) < 0 && errno != EINTR) {
                rc = -errno;
                prisn_proc_spawn_cancel(p);
                return rc;
            }
        }
        rc = prisn_proc_spawn_finish(p, left <= 0, out, stage);
        if (rc != 1)
            return rc;
    }
}

/* ---- carrying the last steps across the sandbox init's exec ------------- */

#define PACK_MAGIC 0x70726e31u /* "prn1" */

typedef struct {
    uint32_t magic;
    uint32_t size; /* of the whole pack */
    int32_t umask;
    uint32_t uid, gid;
    uint32_t ngroups, nrlimits, argc, envc;
    uint8_t new_session, new_pgroup, set_ids, no_new_privs, has_cwd;
    uint8_t pad[7];
} pack_head;
/* The rlimits that follow must be aligned. */
_Static_assert(sizeof(pack_head) % 8 == 0, "pack_head keeps the rlimits aligned");

/* Appends len bytes to buf at *at when they fit; counts them anyway. */
static void pack_put(void *buf, size_t size, size_t *at, const void *data, size_t len) {
    if (len > 0 && *at + len <= size) /* data may be NULL for none */
        memcpy((char *)buf + *at, data, len);
    *at += len;
}

size_t prisn_proc_pack(const prisn_spawn_opts *o, void *buf, size_t size) {
    pack_head h;
    memset(&h, 0, sizeof h);
    h.magic = PACK_MAGIC;
    h.umask = o->umask;
    h.uid = (uint32_t)o->uid;
    h.gid = (uint32_t)o->gid;
    h.ngroups = o->set_ids ? (uint32_t)o->ngroups : 0;
    h.nrlimits = (uint32_t)o->nrlimits;
    while (o->argv[h.argc])
        h.argc++;
    while (o->envp[h.envc])
        h.envc++;
    h.new_session = o->new_session;
    h.new_pgroup = o->new_pgroup;
    h.set_ids = o->set_ids;
    h.no_new_privs = o->no_new_privs;
    h.has_cwd = o->cwd != NULL;
    size_t at = sizeof h;
    pack_put(buf, size, &at, o->rlimits, sizeof *o->rlimits * h.nrlimits);
    pack_put(buf, size, &at, o->groups, sizeof *o->groups * h.ngroups);
    pack_put(buf, size, &at, o->file, strlen(o->file) + 1);
    if (o->cwd)
        pack_put(buf, size, &at, o->cwd, strlen(o->cwd) + 1);
    for (uint32_t i = 0; i < h.argc; i++)
        pack_put(buf, size, &at, o->argv[i], strlen(o->argv[i]) + 1);
    for (uint32_t i = 0; i < h.envc; i++)
        pack_put(buf, size, &at, o->envp[i], strlen(o->envp[i]) + 1);
    h.size = (uint32_t)at;
    if (sizeof h <= size)
        memcpy(buf, &h, sizeof h);
    return at;
}

/* The next NUL-terminated string of the pack, or NULL past its end. */
static const char *unpack_string(const char *buf, size_t size, size_t *at) {
    if (*at >= size)
        return NULL;
    const char *s = buf + *at;
    const char *nul = memchr(s, '\0', size - *at);
    if (!nul)
        return NULL;
    *at += (size_t)(nul - s) + 1;
    return s;
}

int prisn_proc_unpack(const void *buf, size_t size, prisn_spawn_opts *o, void **to_free) {
    *to_free = NULL;
    pack_head h;
    if (size < sizeof h)
        return -EINVAL;
    memcpy(&h, buf, sizeof h);
    if (h.magic != PACK_MAGIC || h.size > size || h.argc == 0 || h.nrlimits > 64 ||
        h.ngroups > 65536)
        return -EINVAL;
    size = h.size;
    size_t at = sizeof h;
    size_t fixed = sizeof(prisn_rlimit) * h.nrlimits + sizeof(gid_t) * h.ngroups;
    if (fixed > size - at)
        return -EINVAL;
    memset(o, 0, sizeof *o);
    o->rlimits = (const prisn_rlimit *)((const char *)buf + at);
    o->nrlimits = h.nrlimits;
    at += sizeof(prisn_rlimit) * h.nrlimits;
    o->groups = (const gid_t *)((const char *)buf + at);
    o->ngroups = h.ngroups;
    at += sizeof(gid_t) * h.ngroups;
    o->file = unpack_string(buf, size, &at);
    o->cwd = h.has_cwd ? unpack_string(buf, size, &at) : NULL;
    if (!o->file || (h.has_cwd && !o->cwd) || (size_t)h.argc + h.envc > size)
        return -EINVAL;
    char **lists = malloc(sizeof(char *) * ((size_t)h.argc + h.envc + 2));
    if (!lists)
        return -ENOMEM;
    for (uint32_t i = 0; i < h.argc + h.envc; i++) {
        const char *s = unpack_string(buf, size, &at);
        if (!s) {
            free(lists);
            return -EINVAL;
        }
        lists[i < h.argc ? i : i + 1] = (char *)s;
    }
    lists[h.argc] = NULL;
    lists[h.argc + h.envc + 1] = NULL;
    o->argv = lists;
    o->envp = lists + h.argc + 1;
    o->umask = h.umask;
    o->uid = (uid_t)h.uid;
    o->gid = (gid_t)h.gid;
    o->set_ids = h.set_ids;
    o->new_session = h.new_session;
    o->new_pgroup = h.new_pgroup;
    o->no_new_privs = h.no_new_privs;
    o->cgroup_fd = -1;
    *to_free = lists;
    return 0;
}

static void decode_status(const siginfo_t *info, prisn_exit_status *st) {
    memset(st, 0, sizeof *st);
    switch (info->si_code) {
    case CLD_EXITED:
        st->exited = true;
        st->code = info->si_status;
        break;
    case CLD_KILLED:
        st->signaled = true;
        st->signal = info->si_status;
        break;
    case CLD_DUMPED:
        st->signaled = true;
        st->signal = info->si_status;
        st->core_dumped = true;
        break;
    default:
        break;
    }
}

int prisn_proc_wait(pid_t pid, int pidfd, bool nohang, prisn_exit_status *st) {
    siginfo_t info;
    int flags = WEXITED | (nohang ? WNOHANG : 0);
    for (;;) {
        memset(&info, 0, sizeof info);
        int rc = pidfd >= 0 ? waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, flags)
                            : waitid(P_PID, (id_t)pid, &info, flags);
        if (rc == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno == EINVAL && pidfd >= 0) { /* kernel without P_PIDFD (< 5.4) */
            pidfd = -1;
            continue;
        }
        return -errno;
    }
    if (info.si_pid == 0)
        return 0; /* WNOHANG and still running */
    decode_status(&info, st);
    return 1;
}

int prisn_proc_kill(pid_t pid, int pidfd, int sig, bool group) {
    if (group)
        return kill(-pid, sig) == 0 ? 0 : -errno;
#ifdef SYS_pidfd_send_signal
    if (pidfd >= 0) {
        if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) == 0)
            return 0;
        if (errno != ENOSYS)
            return -errno;
    }
#else
    (void)pidfd;
#endif
    return kill(pid, sig) == 0 ? 0 : -errno;
}
