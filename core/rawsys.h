/*
 * rawsys: the system calls a child may make between clone and exec.
 *
 * The child of a spawn is a copy of prisn's memory, and prisn (the server)
 * has other threads: libuv's threadpool, the WAL checkpoint thread. In the
 * copy, glibc still believes those threads exist and that whatever locks
 * they held at clone time are held. Some glibc functions act on that belief:
 * setuid/setgid/setgroups signal every thread and wait for each to answer
 * (__nptl_setxid: it takes the stack-cache lock and waits on the futex of a
 * thread caught mid-creation, forever — issue 12); malloc, stdio and
 * snprintf take locks; fork() runs atfork handlers. So the child calls none
 * of glibc's wrappers, only these: each is one syscall(2), which touches
 * nothing but errno, on every architecture prisn builds for (the *at forms
 * and clone stand in for the calls arm64 lacks: open, mkdir, dup2, fork...).
 * The same holds for anything called from a child path: no stdio, no
 * malloc, no strtol, no snprintf; strings and numbers are prepared by the
 * parent or formatted with the small helpers below.
 *
 * For the code of proc.c and sandbox.c only.
 */
#ifndef PRISN_RAWSYS_H
#define PRISN_RAWSYS_H

#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436 /* the same number on every architecture */
#endif

static inline int raw_open(const char *path, int flags, mode_t mode) {
    return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

static inline ssize_t raw_write(int fd, const void *buf, size_t len) {
    return (ssize_t)syscall(SYS_write, fd, buf, len);
}

static inline int raw_close(int fd) {
    return (int)syscall(SYS_close, fd);
}

static inline int raw_fcntl(int fd, int cmd, long arg) {
    return (int)syscall(SYS_fcntl, fd, cmd, arg);
}

/* dup2 for old != new (dup3 refuses equal descriptors). */
static inline int raw_dup2(int old, int new) {
    return (int)syscall(SYS_dup3, old, new, 0);
}

static inline int raw_chdir(const char *path) {
    return (int)syscall(SYS_chdir, path);
}

static inline mode_t raw_umask(mode_t mask) {
    return (mode_t)syscall(SYS_umask, mask);
}

static inline pid_t raw_setsid(void) {
    return (pid_t)syscall(SYS_setsid);
}

static inline int raw_setpgid(pid_t pid, pid_t pgid) {
    return (int)syscall(SYS_setpgid, pid, pgid);
}

static inline int raw_setrlimit(int resource, const struct rlimit *limit) {
    return (int)syscall(SYS_prlimit64, 0, resource, limit, NULL);
}

/* The identity switch of the calling thread only: in the single-threaded
 * child that is the whole process. */
static inline int raw_set_ids(uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups) {
    if (syscall(SYS_setgroups, ngroups, groups) < 0)
        return -1;
    if (syscall(SYS_setresgid, gid, gid, gid) < 0)
        return -1;
    return (int)syscall(SYS_setresuid, uid, uid, uid);
}

static inline int raw_prctl(int option, unsigned long arg2) {
    return (int)syscall(SYS_prctl, option, arg2, 0UL, 0UL, 0UL);
}

/* The kernel's struct sigaction: the same layout on x86_64 and arm64. */
struct raw_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    uint64_t mask;
};

/* Default disposition for sig (a handler needs a restorer glibc supplies:
 * never installed from a child path). */
static inline int raw_signal_default(int sig) {
    struct raw_sigaction sa = {SIG_DFL, 0, NULL, 0};
    return (int)syscall(SYS_rt_sigaction, sig, &sa, NULL, sizeof sa.mask);
}

/* Unblocks every signal. */
static inline int raw_unblock_all(void) {
    uint64_t none = 0;
    return (int)syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof none);
}

static inline int raw_execve(const char *file, char *const argv[], char *const envp[]) {
    return (int)syscall(SYS_execve, file, argv, envp);
}

static inline int raw_execveat(int fd, char *const argv[], char *const envp[]) {
    return (int)syscall(SYS_execveat, fd, "", argv, envp, AT_EMPTY_PATH);
}

/* fork() as one system call: SIGCHLD to the parent, nothing else shared.
 * The argument order of clone differs between architectures, but only the
 * flags are nonzero. */
static inline pid_t raw_fork(void) {
    return (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD, 0UL, 0UL, 0UL, 0UL);
}

static inline _Noreturn void raw_exit(int status) {
    for (;;)
        syscall(SYS_exit_group, status);
}

static inline int raw_mount(const char *source, const char *target, const char *fstype,
                            unsigned long flags, const void *data) {
    return (int)syscall(SYS_mount, source, target, fstype, flags, data);
}

static inline int raw_umount2(const char *target, int flags) {
    return (int)syscall(SYS_umount2, target, flags);
}

static inline int raw_mkdir(const char *path, mode_t mode) {
    return (int)syscall(SYS_mkdirat, AT_FDCWD, path, mode);
}

static inline int raw_rmdir(const char *path) {
    return (int)syscall(SYS_unlinkat, AT_FDCWD, path, AT_REMOVEDIR);
}

static inline int raw_symlink(const char *target, const char *path) {
    return (int)syscall(SYS_symlinkat, target, AT_FDCWD, path);
}

static inline int raw_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

static inline int raw_socket(int domain, int type, int protocol) {
    return (int)syscall(SYS_socket, domain, type, protocol);
}

static inline int raw_ioctl(int fd, unsigned long request, void *arg) {
    return (int)syscall(SYS_ioctl, fd, request, arg);
}

/* The length of a NUL-terminated string (no libc on child paths). */
static inline size_t raw_strlen(const char *s) {
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

/* Writes the decimal text of n >= 0 to buf (at least 12 bytes) with a NUL;
 * returns buf. */
static inline char *raw_itoa(int n, char *buf) {
    char digits[12];
    int len = 0;
    do {
        digits[len++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0 && len < (int)sizeof digits);
    int i = 0;
    while (len > 0)
        buf[i++] = digits[--len];
    buf[i] = '\0';
    return buf;
}

#endif
