/*
 * proc: spawn, wait and kill for workloads (see proc.h for the contract).
 *
 * Why not uv_spawn: workloads need things libuv does not offer — a pidfd
 * (so exit is observed without SIGCHLD and a recycled pid is never signalled),
 * rlimits, no_new_privs, a precise report of which setup step failed, and
 * later CLONE_INTO_CGROUP. libuv keeps spawning the small helper processes it
 * is good at.
 *
 * The child side runs between fork and exec in a process that may have had
 * other threads, so it only makes async-signal-safe system calls: every
 * string and array is prepared by the parent before forking. All signals are
 * blocked across the fork so no handler of prisn's runs in the child; the
 * child resets every disposition to default and unblocks them just before
 * exec.
 *
 * Process creation prefers clone3(CLONE_PIDFD) (Linux 5.3+), which also takes
 * the cgroup to start in; it falls back to fork() + pidfd_open(), and to no
 * pidfd at all on old kernels.
 */
#include "proc.h"
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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

prisn_proc_syscalls prisn_proc_sys = {
    .clone3 = sys_clone3,
    .fork = fork,
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

/* ---- the child, between fork and exec ----------------------------------- */

typedef struct {
    int32_t stage;
    int32_t err;
} child_report;

static _Noreturn void child_fail(int report_fd, prisn_spawn_stage stage) {
    child_report r = {stage, errno};
    ssize_t unused = write(report_fd, &r, sizeof r);
    (void)unused;
    _exit(127);
}

/* Marks every descriptor above 2 close-on-exec: the report pipe must stay
 * open until exec, everything else of prisn's must not reach the workload. */
static int child_cloexec_all(void) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
        return 0;
#endif
    /* Older kernels: walk /proc/self/fd with getdents64 (no malloc). */
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
                fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
    }
    close(dir);
    return n < 0 ? -1 : 0;
}

/* Installs stdio: every source is first moved above 2 so that dup2 onto
 * 0..2 can never clobber a source still needed. */
static int child_stdio(const int src[3]) {
    int moved[3];
    for (int i = 0; i < 3; i++) {
        moved[i] = -1;
        if (src[i] >= 0 && src[i] != i) {
            moved[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3);
            if (moved[i] < 0)
                return -1;
        }
    }
    for (int i = 0; i < 3; i++) {
        if (moved[i] >= 0 && dup2(moved[i], i) < 0)
            return -1;
        if (src[i] == i) {
            int flags = fcntl(i, F_GETFD);
            if (flags >= 0)
                fcntl(i, F_SETFD, flags & ~FD_CLOEXEC);
        }
    }
    return 0;
}

static _Noreturn void child_run(const prisn_spawn_opts *o, const int src[3], int report_fd,
                                prisn_sandbox_report *sandbox_report) {
    if (o->oom_score_adj) {
        /* Best effort: raising the score needs no privilege, and a kernel
         * without the file has no OOM scores to inherit either. */
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t unused = write(fd, o->oom_score_adj, strlen(o->oom_score_adj));
            (void)unused;
            close(fd);
        }
    }
    /* First, so everything after (and the workload) is accounted and limited.
     * "0" is the writing process itself, in v1 and v2 alike. */
    for (size_t i = 0; i < o->ncgroup_procs_fds; i++) {
        ssize_t n;
        do {
            n = write(o->cgroup_procs_fds[i], "0", 1);
        } while (n < 0 && errno == EINTR);
        if (n != 1) {
            if (n >= 0)
                errno = EIO;
            child_fail(report_fd, PRISN_STAGE_CGROUP);
        }
    }
    /* Namespaces, mounts; then this process stays behind as pid 1 (the init)
     * and the workload goes on below in a fork of it. */
    if (o->sandbox) {
        prisn_spawn_stage stage;
        if (prisn_sandbox_child_setup(o->sandbox, &stage) < 0)
            child_fail(report_fd, stage);
        if (prisn_sandbox_fork_init(o->sandbox, sandbox_report, report_fd) < 0)
            child_fail(report_fd, PRISN_STAGE_INIT);
    }
    if (o->new_session) {
        if (setsid() < 0)
            child_fail(report_fd, PRISN_STAGE_SESSION);
    } else if (o->new_pgroup) {
        if (setpgid(0, 0) < 0)
            child_fail(report_fd, PRISN_STAGE_SESSION);
    }
    if (child_stdio(src) < 0)
        child_fail(report_fd, PRISN_STAGE_STDIO);
    if (o->cwd && chdir(o->cwd) < 0)
        child_fail(report_fd, PRISN_STAGE_CHDIR);
    if (o->umask >= 0)
        umask((mode_t)o->umask);
    for (size_t i = 0; i < o->nrlimits; i++) {
        if (setrlimit(o->rlimits[i].resource, &o->rlimits[i].limit) < 0)
            child_fail(report_fd, PRISN_STAGE_RLIMIT);
    }
    if (o->set_ids) {
        if (setgroups(o->ngroups, o->groups) < 0 || setgid(o->gid) < 0 || setuid(o->uid) < 0)
            child_fail(report_fd, PRISN_STAGE_IDS);
    }
    if (o->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(report_fd, PRISN_STAGE_PRIVS);
    if (child_cloexec_all() < 0)
        child_fail(report_fd, PRISN_STAGE_FDS);

    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL); /* fails harmlessly for reserved signals */
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    execve(o->file, o->argv, o->envp);
    child_fail(report_fd, PRISN_STAGE_EXEC);
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
    pid_t child = prisn_proc_sys.fork();
    if (child < 0)
        return -errno;
    if (child > 0)
        *pidfd = prisn_proc_sys.pidfd_open(child); /* -1 on kernels before 5.3 */
    return child;
}

int prisn_proc_spawn(const prisn_spawn_opts *o, prisn_spawn_result *out,
                     prisn_spawn_stage *stage) {
    *stage = PRISN_STAGE_SETUP;
    int src[3], mine[3], report[2] = {-1, -1};
    prisn_sandbox_report *sandbox_report = NULL;
    int rc = parent_stdio(o, src, mine);
    if (rc == 0 && o->sandbox && !(sandbox_report = prisn_sandbox_report_new()))
        rc = -errno;
    if (rc == 0 && pipe2(report, O_CLOEXEC) < 0)
        rc = -errno;
    if (rc < 0)
        goto fail;

    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    int pidfd;
    pid_t pid = create_child(o, &pidfd);
    if (pid == 0) {
        close(report[0]);
        child_run(o, src, report[1], sandbox_report);
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (pid < 0) {
        rc = pid;
        goto fail;
    }

    close_if_open(&report[1]);
    close_child_ends(src);
    prisn_sandbox_report_spawned(sandbox_report);
    child_report r;
    ssize_t got;
    do {
        got = read(report[0], &r, sizeof r);
    } while (got < 0 && errno == EINTR);
    close_if_open(&report[0]);
    if (got == (ssize_t)sizeof r) {
        /* The child failed before exec: reap it and report why. */
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (pidfd >= 0)
            close(pidfd);
        *stage = (prisn_spawn_stage)r.stage;
        rc = r.err ? -r.err : -EIO;
        goto fail;
    }
    out->pid = pid;
    out->pidfd = pidfd;
    for (int i = 0; i < 3; i++)
        out->stdio_fds[i] = mine[i];
    out->sandbox_report = sandbox_report;
    *stage = PRISN_STAGE_NONE;
    return 0;

fail:
    prisn_sandbox_report_free(sandbox_report);
    close_child_ends(src);
    for (int i = 0; i < 3; i++)
        close_if_open(&mine[i]);
    close_if_open(&report[0]);
    close_if_open(&report[1]);
    return rc;
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
