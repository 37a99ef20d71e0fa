/*
 * sandbox: namespaces, mounts and the pid-1 init of an isolated workload
 * (see sandbox.h for the contract and the order of the steps).
 *
 * The init is a fork of the spawning child, so the workload is started
 * without waiting for an exec. If the workload still runs 200 ms later (a
 * service rather than a short job), the init execs prisn's own binary in
 * init mode (`prisn __sandbox-init PID MEMFD`,
 * handled in main() before Lua starts): a fork would otherwise keep a
 * copy-on-write snapshot of the spawning process — the server — and every
 * page the server changes later becomes the init's own (1.4-2.7 MB per
 * service instance measured). It runs nothing but waitpid/sigwaitinfo/kill,
 * keeps no descriptor of prisn's but the report page, and names itself
 * "prisn-init" so `ps` inside the sandbox says what it is. If the exec
 * fails, it goes on as the fork.
 *
 * Everything here that runs in the child is async-signal-safe: system calls
 * on strings and descriptors prepared by the parent.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

/* How long the init serves as the fork before it execs prisn in init mode. */
#define INIT_EXEC_AFTER_MS 200

/* The signals the init passes on to the workload's process group. */
static const int forwarded_signals[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
#define NFORWARDED (sizeof forwarded_signals / sizeof forwarded_signals[0])

uint64_t prisn_sandbox_clone_flags(const prisn_sandbox_opts *o) {
    uint64_t flags = CLONE_NEWPID | CLONE_NEWNS;
    if (o->new_user)
        flags |= CLONE_NEWUSER;
    if (o->new_net)
        flags |= CLONE_NEWNET;
    return flags;
}

/* ---- the child ---------------------------------------------------------- */

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int saved = errno;
    close(fd);
    if (n != (ssize_t)len) {
        errno = n < 0 ? saved : EIO;
        return -1;
    }
    return 0;
}

/* Maps the caller's uid and gid in its new user namespace. setgroups must be
 * denied first for an unprivileged gid_map. */
static int setup_user(const prisn_sandbox_opts *o) {
    if (write_file("/proc/self/setgroups", "deny") < 0 && errno != ENOENT)
        return -1;
    if (write_file("/proc/self/uid_map", o->uid_map) < 0)
        return -1;
    return write_file("/proc/self/gid_map", o->gid_map);
}

static int make_target(const prisn_sandbox_mount *m) {
    if (m->mkdir_mode < 0)
        return 0;
    if (m->is_file) {
        int fd = open(m->target, O_WRONLY | O_CREAT | O_CLOEXEC, (mode_t)m->mkdir_mode);
        if (fd < 0 && errno != EEXIST)
            return -1;
        if (fd >= 0)
            close(fd);
        return 0;
    }
    if (mkdir(m->target, (mode_t)m->mkdir_mode) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* "/proc/self/fd/N" into m->source_path, without snprintf. */
static void fd_path(prisn_sandbox_mount *m) {
    static const char prefix[] = "/proc/self/fd/";
    char digits[12];
    int n = 0, fd = m->source_fd;
    do {
        digits[n++] = (char)('0' + fd % 10);
        fd /= 10;
    } while (fd > 0 && n < (int)sizeof digits);
    memcpy(m->source_path, prefix, sizeof prefix - 1);
    size_t len = sizeof prefix - 1;
    while (n > 0)
        m->source_path[len++] = digits[--n];
    m->source_path[len] = '\0';
}

static int open_sources(const prisn_sandbox_opts *o) {
    for (size_t i = 0; i < o->nmounts; i++) {
        prisn_sandbox_mount *m = &o->mounts[i];
        m->source_fd = -1;
        if (m->source == NULL || m->fstype != NULL || m->is_symlink || m->late)
            continue;
        m->source_fd = open(m->source, O_PATH | O_CLOEXEC);
        if (m->source_fd < 0)
            return -1;
        fd_path(m);
    }
    return 0;
}

static int do_mount(prisn_sandbox_mount *m) {
    if (m->is_symlink) {
        if (symlink(m->source, m->target) < 0 && errno != EEXIST)
            return -1;
        return 0;
    }
    if (m->is_remount)
        return mount(NULL, m->target, NULL, MS_BIND | MS_REMOUNT | m->flags, NULL);
    if (m->is_umount)
        return umount2(m->target, MNT_DETACH);
    if (make_target(m) < 0)
        return -1;
    if (m->source == NULL)
        return 0; /* a directory only */
    if (m->fstype == NULL && m->late) {
        m->source_fd = open(m->source, O_PATH | O_CLOEXEC);
        if (m->source_fd < 0)
            return -1;
        fd_path(m);
    }
    if (m->fstype == NULL) {
        if (mount(m->source_path, m->target, NULL, MS_BIND | MS_REC | m->flags, NULL) < 0)
            return -1;
        close(m->source_fd);
        if (m->remount_flags &&
            mount(NULL, m->target, NULL, MS_BIND | MS_REMOUNT | m->remount_flags, NULL) < 0)
            return -1;
        return 0;
    }
    return mount(m->source, m->target, m->fstype, m->flags, m->data);
}

static int enter_root(const prisn_sandbox_opts *o) {
    if (syscall(SYS_pivot_root, o->pivot_root, o->put_old) < 0)
        return -1;
    if (chdir("/") < 0)
        return -1;
    /* put_old is given as a path under the new root: strip that prefix. */
    const char *old = o->put_old + strlen(o->pivot_root);
    if (umount2(old, MNT_DETACH) < 0)
        return -1;
    rmdir(old); /* best effort: the new root may be read-only by now */
    return 0;
}

int prisn_sandbox_loopback_up(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int prisn_sandbox_child_setup(const prisn_sandbox_opts *o, prisn_spawn_stage *stage) {
    *stage = PRISN_STAGE_NAMESPACE;
    if (o->new_user && setup_user(o) < 0)
        return -1;
    *stage = PRISN_STAGE_MOUNT;
    /* Nothing mounted here may reach the host, nor the host's later mounts us. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return -1;
    if (open_sources(o) < 0)
        return -1;
    /* Modes are the list's own (a 01777 /tmp), not cut by prisn's umask. */
    mode_t saved_umask = umask(0);
    for (size_t i = 0; i < o->nmounts; i++) {
        if (do_mount(&o->mounts[i]) < 0) {
            umask(saved_umask);
            return -1;
        }
    }
    umask(saved_umask);
    if (o->pivot_root && enter_root(o) < 0)
        return -1;
    if (o->mount_proc) {
        if (mkdir("/proc", 0555) < 0 && errno != EEXIST)
            return -1;
        if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
            return -1;
    }
    *stage = PRISN_STAGE_NETWORK;
    if (o->new_net && prisn_sandbox_loopback_up() < 0)
        return -1;
    *stage = PRISN_STAGE_NONE;
    return 0;
}

/* ---- the init ----------------------------------------------------------- */

static void init_noop(int sig) {
    (void)sig;
}

/* The signals the init takes, with a handler installed for each: signals
 * are still all blocked (proc.c blocks them across the fork) and are taken
 * with sigwaitinfo, but the kernel drops signals with the default
 * disposition sent to a namespace's init. */
static void init_signals(sigset_t *wanted) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = init_noop;
    sigemptyset(wanted);
    sigaddset(wanted, SIGCHLD);
    sigaction(SIGCHLD, &sa, NULL);
    for (size_t i = 0; i < NFORWARDED; i++) {
        sigaction(forwarded_signals[i], &sa, NULL);
        sigaddset(wanted, forwarded_signals[i]);
    }
}

/* One signal taken: passes it on to the workload, or reaps; when the
 * workload has ended, reports its status and _exits (which kills everything
 * else in the namespace). */
static void init_handle(int sig, pid_t workload, prisn_sandbox_report *report) {
    if (sig != SIGCHLD) {
        /* The workload leads its own process group (it called setsid). */
        if (kill(-workload, sig) < 0)
            kill(workload, sig);
        return;
    }
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid != workload)
            continue; /* an orphan: reaped, nothing more */
        report->wstatus = status;
        report->valid = 1;
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
}

static _Noreturn void init_run(pid_t workload, prisn_sandbox_report *report) {
    sigset_t wanted;
    init_signals(&wanted);
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&wanted, &info);
        if (sig >= 0)
            init_handle(sig, workload, report);
    }
}

/* Serves as the init for up to `ms` (the workload may end meanwhile: then
 * it never returns). A short job is over before the init would exec. */
static void init_serve_for(pid_t workload, prisn_sandbox_report *report, long ms) {
    sigset_t wanted;
    init_signals(&wanted);
    struct timespec now, end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += ms / 1000;
    end.tv_nsec += (ms % 1000) * 1000000L;
    if (end.tv_nsec >= 1000000000L) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000L;
    }
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left_ns = (end.tv_sec - now.tv_sec) * 1000000000L + (end.tv_nsec - now.tv_nsec);
        if (left_ns <= 0)
            return;
        struct timespec left = {left_ns / 1000000000L, left_ns % 1000000000L};
        siginfo_t info;
        int sig = sigtimedwait(&wanted, &info, &left);
        if (sig >= 0)
            init_handle(sig, workload, report);
        else if (errno == EAGAIN)
            return;
    }
}

/* Closes descriptors first..last (last ~0U: all above first). */
static void close_fds(unsigned first, unsigned last) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, first, last, 0U) == 0)
        return;
#endif
    unsigned stop = last > 1023 ? 1023 : last;
    for (unsigned fd = first; fd <= stop; fd++)
        close((int)fd);
}

/* Closes every descriptor but `a` and `b` (-1: not one to keep). */
static void close_all_but(int a, int b) {
    int keep[2] = {a < b ? a : b, a < b ? b : a};
    unsigned next = 0;
    for (int i = 0; i < 2; i++) {
        if (keep[i] < 0)
            continue;
        if ((unsigned)keep[i] > next)
            close_fds(next, (unsigned)keep[i] - 1);
        next = (unsigned)keep[i] + 1;
    }
    close_fds(next, ~0U);
}

/* Replaces this process (the init, after the fork) with prisn's binary in
 * init mode. Returns only when the exec failed. */
static void init_exec(pid_t workload, prisn_sandbox_report *report) {
    if (report->exe_fd < 0)
        return;
    char pid_text[24], fd_text[24];
    int n1 = snprintf(pid_text, sizeof pid_text, "%d", (int)workload);
    int n2 = snprintf(fd_text, sizeof fd_text, "%d", (int)report->memfd);
    if (n1 <= 0 || n2 <= 0)
        return;
    int flags = fcntl(report->memfd, F_GETFD);
    if (flags < 0 || fcntl(report->memfd, F_SETFD, flags & ~FD_CLOEXEC) < 0)
        return;
    char *argv[] = {"prisn-init", "__sandbox-init", pid_text, fd_text, NULL};
    char *envp[] = {NULL};
    syscall(SYS_execveat, report->exe_fd, "", argv, envp, AT_EMPTY_PATH);
}

_Noreturn void prisn_sandbox_init_main(char **argv) {
    char *end;
    long pid = strtol(argv[2], &end, 10);
    long fd = strtol(argv[3], &end, 10);
    prisn_sandbox_report *report =
        mmap(NULL, sizeof *report, PROT_READ | PROT_WRITE, MAP_SHARED, (int)fd, 0);
    if (report == MAP_FAILED)
        _exit(127);
    close((int)fd);
    prctl(PR_SET_NAME, "prisn-init", 0, 0, 0);
    init_run((pid_t)pid, report);
}

int prisn_sandbox_fork_init(const prisn_sandbox_opts *o, prisn_sandbox_report *report,
                            int report_fd) {
    /* Own session for the init: the parent's group signals reach it only,
     * and it passes them on. */
    if (setsid() < 0)
        return -1;
    pid_t pid = _Fork();
    if (pid != 0) {
        if (pid < 0)
            return -1;
        /* The workload reports its own failures; the init keeps nothing of
         * prisn's open (stdio included: only the workload writes there). */
        (void)report_fd;
        close_all_but(report->memfd, report->exe_fd);
        if (o->init_name)
            prctl(PR_SET_NAME, o->init_name, 0, 0, 0);
        /* Only a workload still running after a moment (a service) makes
         * the exec worth it; a short job never waits for one. */
        init_serve_for(pid, report, INIT_EXEC_AFTER_MS);
        init_exec(pid, report);
        /* The exec failed: go on as the fork. */
        close_all_but(-1, -1);
        init_run(pid, report);
    }
    return 0;
}

/* ---- the parent --------------------------------------------------------- */

prisn_sandbox_report *prisn_sandbox_report_new(void) {
    int fd = (int)syscall(SYS_memfd_create, "prisn-init-report", MFD_CLOEXEC);
    if (fd < 0)
        return NULL;
    if (ftruncate(fd, sizeof(prisn_sandbox_report)) < 0) {
        close(fd);
        return NULL;
    }
    prisn_sandbox_report *p =
        mmap(NULL, sizeof(prisn_sandbox_report), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        close(fd);
        return NULL;
    }
    memset(p, 0, sizeof *p);
    p->memfd = fd;
    /* The init execs this binary; opened here, as a later pivot_root may
     * leave it outside the sandbox's root. None: the init stays a fork. */
    p->exe_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    return p;
}

void prisn_sandbox_report_spawned(prisn_sandbox_report *r) {
    if (!r || r->parent_closed)
        return;
    close(r->memfd);
    if (r->exe_fd >= 0)
        close(r->exe_fd);
    r->parent_closed = 1;
}

void prisn_sandbox_report_free(prisn_sandbox_report *r) {
    if (!r)
        return;
    prisn_sandbox_report_spawned(r);
    munmap(r, sizeof *r);
}

void prisn_sandbox_report_apply(const prisn_sandbox_report *r, prisn_exit_status *st) {
    if (!r || !r->valid)
        return;
    int status = r->wstatus;
    memset(st, 0, sizeof *st);
    if (WIFEXITED(status)) {
        st->exited = true;
        st->code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        st->signaled = true;
        st->signal = WTERMSIG(status);
        st->core_dumped = WCOREDUMP(status);
    }
}
