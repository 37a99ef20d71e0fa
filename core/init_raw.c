/*
 * init_raw: the start-up and the few C library functions of `prisn-init`
 * built as a program of its own, without a C library (issue 17).
 *
 * A sandbox's clone cannot fork the workload itself (it is a copy of the
 * threaded server, see sandbox.c), so it execs an init. That used to be
 * prisn's own binary, and the exec of a 4 MB dynamically linked program
 * costs its loader, its relocations and glibc's start-up, which asks the CPU
 * what it is with a few hundred `cpuid` (each one a trap to the hypervisor in
 * a virtual machine): 0.52 ms of CPU per sandboxed start on the machine of
 * tests/bench/services-report.md, against 0.03 ms for a program with no C
 * library. The init's code needs none: sandbox.c's init and proc.c's child
 * steps already make raw system calls only (rawsys.h). So this file gives it
 * an entry point and what those files call — syscall(2), errno, the string
 * functions the compiler may emit, a malloc for proc.c's unpack, the signal
 * calls of the init's loop — and the build links them with sandbox.c and
 * proc.c, keeping only what the init reaches (--gc-sections), into a static
 * program that is embedded in prisn (init_blob.c) and exec'd from a memfd.
 *
 * x86-64 and arm64 only (the architectures prisn releases); elsewhere the
 * blob is empty and the sandbox execs prisn's binary as before.
 * Nothing here is used by prisn itself.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"

/* ---- system calls ------------------------------------------------------- */

static long raw_syscall6(long n, long a, long b, long c, long d, long e, long f) {
#if defined(__x86_64__)
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return x0;
#else
#error "init_raw: x86-64 and arm64 only"
#endif
}

static int the_errno;

int *__errno_location(void) {
    return &the_errno;
}

/* The kernel's -errno into errno and -1, as the C library does. */
static long result(long r) {
    if (r < 0 && r > -4096) {
        the_errno = (int)-r;
        return -1;
    }
    return r;
}

long syscall(long n, ...) {
    __builtin_va_list ap;
    __builtin_va_start(ap, n);
    long a = __builtin_va_arg(ap, long), b = __builtin_va_arg(ap, long), c = __builtin_va_arg(ap, long);
    long d = __builtin_va_arg(ap, long), e = __builtin_va_arg(ap, long), f = __builtin_va_arg(ap, long);
    __builtin_va_end(ap);
    return result(raw_syscall6(n, a, b, c, d, e, f));
}

#define SYS0(n) result(raw_syscall6((n), 0, 0, 0, 0, 0, 0))
#define SYS(n, a, b, c, d) result(raw_syscall6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0))

_Noreturn void _exit(int status) {
    for (;;)
        raw_syscall6(SYS_exit_group, status, 0, 0, 0, 0, 0);
}

int close(int fd) {
    return (int)SYS(SYS_close, fd, 0, 0, 0);
}

ssize_t write(int fd, const void *buf, size_t len) {
    return SYS(SYS_write, fd, buf, len, 0);
}

int fcntl(int fd, int cmd, ...) {
    __builtin_va_list ap;
    __builtin_va_start(ap, cmd);
    long arg = __builtin_va_arg(ap, long);
    __builtin_va_end(ap);
    return (int)SYS(SYS_fcntl, fd, cmd, arg, 0);
}

int fstat(int fd, struct stat *st) {
    return (int)SYS(SYS_fstat, fd, st, 0, 0);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    long r = raw_syscall6(SYS_mmap, (long)addr, (long)len, prot, flags, fd, (long)off);
    if (r < 0 && r > -4096) {
        the_errno = (int)-r;
        return MAP_FAILED;
    }
    return (void *)r;
}

int munmap(void *addr, size_t len) {
    return (int)SYS(SYS_munmap, addr, len, 0, 0);
}

int prctl(int option, ...) {
    __builtin_va_list ap;
    __builtin_va_start(ap, option);
    long a = __builtin_va_arg(ap, long), b = __builtin_va_arg(ap, long);
    long c = __builtin_va_arg(ap, long), d = __builtin_va_arg(ap, long);
    __builtin_va_end(ap);
    return (int)result(raw_syscall6(SYS_prctl, option, a, b, c, d, 0));
}

int kill(pid_t pid, int sig) {
    return (int)SYS(SYS_kill, pid, sig, 0, 0);
}

pid_t waitpid(pid_t pid, int *status, int options) {
    return (pid_t)SYS(SYS_wait4, pid, status, options, 0);
}

/* ---- signals (the init's loop: sandbox.c init_run) ---------------------- */

#define KERNEL_SIGSET_BYTES 8 /* the kernel's sigset_t: 64 signals */

int sigemptyset(sigset_t *set) {
    memset(set, 0, sizeof *set);
    return 0;
}

int sigaddset(sigset_t *set, int sig) {
    if (sig < 1 || sig > 64) {
        the_errno = EINVAL;
        return -1;
    }
    ((uint64_t *)(void *)set)[0] |= 1ULL << (sig - 1);
    return 0;
}

#if defined(__x86_64__)
/* x86-64 needs a return from a handler of the caller's own; the init's
 * handler never runs (its signals stay blocked, taken by sigwaitinfo), but a
 * handler without it would crash if one ever did. */
#define SA_RESTORER_FLAG 0x04000000
void init_raw_restore(void);
__asm__(".text\n.type init_raw_restore,@function\ninit_raw_restore:\n"
        "mov $15, %eax\nsyscall\n");
#endif

struct kernel_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    uint64_t mask;
};

int sigaction(int sig, const struct sigaction *sa, struct sigaction *old) {
    (void)old; /* the init never asks for the old action */
    struct kernel_sigaction k;
    memset(&k, 0, sizeof k);
    k.handler = sa->sa_handler;
    k.flags = (unsigned long)(unsigned)sa->sa_flags;
#if defined(__x86_64__)
    k.flags |= SA_RESTORER_FLAG;
    k.restorer = init_raw_restore;
#endif
    memcpy(&k.mask, &sa->sa_mask, sizeof k.mask);
    return (int)SYS(SYS_rt_sigaction, sig, &k, NULL, KERNEL_SIGSET_BYTES);
}

int sigwaitinfo(const sigset_t *set, siginfo_t *info) {
    return (int)SYS(SYS_rt_sigtimedwait, set, info, NULL, KERNEL_SIGSET_BYTES);
}

/* ---- memory and strings ------------------------------------------------- */

/* The one allocation (proc.c's unpack: the argv and environment pointers),
 * a mapping of its own; free unmaps it, its size kept in front. */
void *malloc(size_t size) {
    size_t total = size + 16;
    void *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    *(size_t *)p = total;
    return (char *)p + 16;
}

void free(void *ptr) {
    if (!ptr)
        return;
    char *p = (char *)ptr - 16;
    munmap(p, *(size_t *)(void *)p);
}

void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d < s) {
        while (n--)
            *d++ = *s++;
    } else {
        while (n--)
            d[n] = s[n];
    }
    return dst;
}

void *memset(void *dst, int c, size_t n) {
    unsigned char *d = dst;
    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

void *memchr(const void *s, int c, size_t n) {
    const unsigned char *p = s;
    for (; n; n--, p++) {
        if (*p == (unsigned char)c)
            return (void *)(uintptr_t)p;
    }
    return NULL;
}

int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++) {
        if (*x != *y)
            return *x - *y;
    }
    return 0;
}

size_t strlen(const char *s) {
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

int strcmp(const char *a, const char *b) {
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return (unsigned char)*a - (unsigned char)*b;
}

/* Decimal only (the init's descriptor numbers). */
long strtol(const char *s, char **end, int base) {
    (void)base;
    long v = 0;
    while (*s >= '0' && *s <= '9')
        v = v * 10 + (*s++ - '0');
    if (end)
        *end = (char *)(uintptr_t)s;
    return v;
}

/* ---- the entry point ---------------------------------------------------- */

/* sp: the kernel's initial stack (argc, argv..., NULL, envp...). */
_Noreturn void init_raw_start(long *sp);

_Noreturn void init_raw_start(long *sp) {
    int argc = (int)sp[0];
    char **argv = (char **)(sp + 1);
    /* The one way prisn calls it (sandbox.c prisn_sandbox_exec_init). */
    if (argc == 4 && strcmp(argv[1], "__sandbox-init") == 0)
        prisn_sandbox_init_main(argv);
    /* `--probe` (tests): says it can run. */
    if (argc == 2 && strcmp(argv[1], "--probe") == 0) {
        static const char ok[] = "prisn-init\n";
        write(1, ok, sizeof ok - 1);
        _exit(0);
    }
    _exit(127);
}

#if defined(__x86_64__)
__asm__(".text\n.global _start\n.type _start,@function\n_start:\n"
        "xor %rbp, %rbp\nmov %rsp, %rdi\nand $-16, %rsp\ncall init_raw_start\nhlt\n");
#elif defined(__aarch64__)
__asm__(".text\n.global _start\n.type _start,%function\n_start:\n"
        "mov x29, #0\nmov x30, #0\nmov x0, sp\nbl init_raw_start\n");
#endif
