/*
 * sandbox: namespaces, mounts and the pid-1 init of an isolated workload
 * (see sandbox.h for the contract and the order of the steps).
 *
 * The child of the spawn is a copy of the spawning process — the server,
 * which has threads — so it only sets up the namespaces, with raw system
 * calls (rawsys.h), and then execs prisn's own binary in init mode
 * (`prisn-init __sandbox-init MEMFD REPORT_FD`, handled in main() before Lua
 * starts). The workload is forked by that fresh, single-threaded process,
 * never by the copy: nothing in it can wait on a lock or a thread of the
 * server's (issue 12), and the init holds no copy-on-write snapshot of the
 * server's memory (which cost 1.4-2.7 MB per service instance as every page
 * the server changed became the init's own). What the workload's last steps
 * need (argv, environment, cwd, identity, rlimits...) is packed by the
 * parent after the shared page in the same memfd (prisn_proc_pack). Once the
 * workload is forked nobody keeps that memfd: the init unmaps it, the parent
 * unmaps it once the workload has exec'd. The init runs nothing but
 * waitpid/sigwaitinfo/kill, keeps no descriptor open but the status pipe's
 * write end, and names itself "prisn-init" so `ps` inside the sandbox says
 * what it is.
 * The init exec'd is not prisn's 4 MB binary but a 15 kB program of the same
 * init code with no C library (init_raw.c, embedded by init_blob.c and
 * put in a sealed memfd once per process): the exec of prisn cost a
 * sandboxed start 0.5 ms of CPU, most of it the loader and glibc's start-up,
 * against 0.03 ms (tests/bench/services-report.md). Where that memfd cannot
 * be made, or its exec fails, prisn's binary is exec'd as before;
 * PRISN_INIT_FROM=self asks for that always.
 */
#include "sandbox.h"
#include "rawsys.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
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
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

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

/* Runs in the copy made by clone: raw system calls only (rawsys.h). */

static int write_file(const char *path, const char *text) {
    int fd = raw_open(path, O_WRONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    size_t len = raw_strlen(text);
    ssize_t n = raw_write(fd, text, len);
    int saved = errno;
    raw_close(fd);
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
        int fd = raw_open(m->target, O_WRONLY | O_CREAT | O_CLOEXEC, (mode_t)m->mkdir_mode);
        if (fd < 0 && errno != EEXIST)
            return -1;
        if (fd >= 0)
            raw_close(fd);
        return 0;
    }
    if (raw_mkdir(m->target, (mode_t)m->mkdir_mode) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* "/proc/self/fd/N" into m->source_path. */
static void fd_path(prisn_sandbox_mount *m) {
    static const char prefix[] = "/proc/self/fd/";
    size_t len = 0;
    while (prefix[len]) {
        m->source_path[len] = prefix[len];
        len++;
    }
    raw_itoa(m->source_fd, m->source_path + len);
}

static int open_sources(const prisn_sandbox_opts *o) {
    for (size_t i = 0; i < o->nmounts; i++) {
        prisn_sandbox_mount *m = &o->mounts[i];
        m->source_fd = -1;
        if (m->source == NULL || m->fstype != NULL || m->is_symlink || m->late)
            continue;
        m->source_fd = raw_open(m->source, O_PATH | O_CLOEXEC, 0);
        if (m->source_fd < 0)
            return -1;
        fd_path(m);
    }
    return 0;
}

static int do_mount(prisn_sandbox_mount *m) {
    if (m->is_symlink) {
        if (raw_symlink(m->source, m->target) < 0 && errno != EEXIST)
            return -1;
        return 0;
    }
    if (m->is_remount)
        return raw_mount(NULL, m->target, NULL, MS_BIND | MS_REMOUNT | m->flags, NULL);
    if (m->is_umount)
        return raw_umount2(m->target, MNT_DETACH);
    if (make_target(m) < 0)
        return -1;
    if (m->source == NULL)
        return 0; /* a directory only */
    if (m->fstype == NULL && m->late) {
        m->source_fd = raw_open(m->source, O_PATH | O_CLOEXEC, 0);
        if (m->source_fd < 0)
            return -1;
        fd_path(m);
    }
    if (m->fstype == NULL) {
        if (raw_mount(m->source_path, m->target, NULL, MS_BIND | MS_REC | m->flags, NULL) < 0)
            return -1;
        raw_close(m->source_fd);
        if (m->remount_flags &&
            raw_mount(NULL, m->target, NULL, MS_BIND | MS_REMOUNT | m->remount_flags, NULL) < 0)
            return -1;
        return 0;
    }
    return raw_mount(m->source, m->target, m->fstype, m->flags, m->data);
}

static int enter_root(const prisn_sandbox_opts *o) {
    if (raw_pivot_root(o->pivot_root, o->put_old) < 0)
        return -1;
    if (raw_chdir("/") < 0)
        return -1;
    /* put_old is given as a path under the new root: strip that prefix. */
    const char *old = o->put_old + raw_strlen(o->pivot_root);
    if (raw_umount2(old, MNT_DETACH) < 0)
        return -1;
    raw_rmdir(old); /* best effort: the new root may be read-only by now */
    return 0;
}

/* Raw system calls only: also called in the child. */
int prisn_sandbox_loopback_up(void) {
    int fd = raw_socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct ifreq ifr = {0};
    ifr.ifr_name[0] = 'l';
    ifr.ifr_name[1] = 'o';
    int rc = raw_ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = raw_ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    raw_close(fd);
    errno = saved;
    return rc;
}

int prisn_sandbox_child_setup(const prisn_sandbox_opts *o, volatile int32_t *stage) {
    *stage = PRISN_STAGE_NAMESPACE;
    if (o->new_user && setup_user(o) < 0)
        return -1;
    *stage = PRISN_STAGE_MOUNT;
    /* Nothing mounted here may reach the host, nor the host's later mounts us. */
    if (raw_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return -1;
    if (open_sources(o) < 0)
        return -1;
    /* Modes are the list's own (a 01777 /tmp), not cut by prisn's umask. */
    mode_t saved_umask = raw_umask(0);
    for (size_t i = 0; i < o->nmounts; i++) {
        if (do_mount(&o->mounts[i]) < 0) {
            int saved = errno;
            raw_umask(saved_umask);
            errno = saved;
            return -1;
        }
    }
    raw_umask(saved_umask);
    if (o->pivot_root && enter_root(o) < 0)
        return -1;
    if (o->mount_proc) {
        if (raw_mkdir("/proc", 0555) < 0 && errno != EEXIST)
            return -1;
        if (raw_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
            return -1;
    }
    *stage = PRISN_STAGE_NETWORK;
    if (o->new_net && prisn_sandbox_loopback_up() < 0)
        return -1;
    return 0;
}

void prisn_sandbox_exec_init(const prisn_sandbox_opts *o, const prisn_sandbox_page *page,
                             int report_fd) {
    /* Own session for the init: the parent's group signals reach it only,
     * and it passes them on. */
    if (raw_setsid() < 0)
        return;
    if (page->init_fd < 0 && page->exe_fd < 0) {
        errno = ENOENT;
        return;
    }
    /* Nothing of prisn's but the page and the two pipes goes through the
     * exec (stdio is the workload's, already in place). Without
     * close_range's CLOEXEC (Linux < 5.11) what is not close-on-exec
     * reaches the init, which closes everything once it has forked, and
     * the workload, which marks everything close-on-exec first. */
    syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    if (raw_fcntl(page->memfd, F_SETFD, 0) < 0 || raw_fcntl(report_fd, F_SETFD, 0) < 0 ||
        raw_fcntl(page->status_fd, F_SETFD, 0) < 0)
        return;
    char memfd_text[12], report_text[12];
    char *argv[] = {(char *)(o->init_name ? o->init_name : "prisn-init"), "__sandbox-init",
                    raw_itoa(page->memfd, memfd_text), raw_itoa(report_fd, report_text), NULL};
    char *envp[] = {NULL};
    if (page->init_fd >= 0)
        raw_execveat(page->init_fd, argv, envp);
    if (page->exe_fd >= 0)
        raw_execveat(page->exe_fd, argv, envp);
}

/* ---- the init in place -------------------------------------------------- */

/* A local `prisn run` is one short-lived thread: its clone can be the init
 * itself, saving the exec of prisn's 4.5 MB binary on the start's critical
 * path (tests/bench/run-report.md). Everything the init does after the fork
 * is the same as the exec'd one's (init_run below). */
static bool in_place_allowed;

void prisn_sandbox_set_init_in_place(bool on) {
    in_place_allowed = on;
}

/* The 20th field of /proc/self/stat (num_threads); 0 when it cannot be read.
 * The command name (field 2) may hold spaces and parentheses: counting
 * starts after its last ')'. */
static long thread_count(void) {
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[1024];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    int field = 2;
    for (p++; *p != '\0' && field < 20; p++)
        if (*p == ' ')
            field++;
    return field == 20 ? strtol(p, NULL, 10) : 0;
}

static char *cmdline_area;
static size_t cmdline_len;

void prisn_sandbox_set_cmdline(int argc, char **argv) {
    if (argc < 1 || argv == NULL || argv[0] == NULL)
        return;
    char *end = argv[0] + strlen(argv[0]) + 1;
    for (int i = 1; i < argc; i++) {
        if (argv[i] != end)
            return; /* not laid out by the kernel: leave it alone */
        end += strlen(argv[i]) + 1;
    }
    cmdline_area = argv[0];
    cmdline_len = (size_t)(end - argv[0]);
}

bool prisn_sandbox_init_in_place_now(void) {
    return in_place_allowed && thread_count() == 1;
}

static _Noreturn void init_run(pid_t workload, int status_fd);
static void close_fds(unsigned first, unsigned last);

/* Runs in the clone of a single-threaded process: glibc's own state is whole
 * (no lock can be held by a thread that is not here), so the init's code is
 * the exec'd one's. */
void prisn_sandbox_init_here(const prisn_sandbox_opts *o, const prisn_spawn_opts *spawn,
                             prisn_sandbox_page *page, int report_fd, int gate_fd) {
    if (raw_setsid() < 0)
        return;
    /* The copy holds the spawning process's memory (its tokens, say): the
     * workload, often the same user, must not read it through /proc/1. */
    if (raw_prctl(PR_SET_DUMPABLE, 0) < 0)
        return;
    const char *name = o->init_name ? o->init_name : "prisn-init";
    raw_prctl(PR_SET_NAME, (unsigned long)name);
    if (cmdline_area != NULL) {
        memset(cmdline_area, 0, cmdline_len);
        size_t len = strlen(name);
        memcpy(cmdline_area, name, len < cmdline_len ? len : cmdline_len - 1);
    }
    int status_fd = page->status_fd;
    pid_t pid = raw_fork();
    if (pid == 0) {
        /* Its stdio is in place already; the report pipe closes at its exec. */
        static const int stdio[3] = {0, 1, 2};
        prisn_proc_child_exec(spawn, stdio, report_fd, &page->stage, gate_fd);
    }
    if (pid < 0)
        return;
    /* As the exec'd init: nothing kept but the status pipe. */
    munmap(page, (size_t)sysconf(_SC_PAGESIZE));
    if (status_fd > 0)
        close_fds(0, (unsigned)status_fd - 1);
    close_fds((unsigned)status_fd + 1, ~0U);
    init_run(pid, status_fd);
}

/* ---- the init ----------------------------------------------------------- */

/* A fresh process from here on (prisn exec'd in init mode): glibc is whole
 * again, but the workload is still started with raw system calls, the same
 * code as a plain spawn's child. */

static void init_noop(int sig) {
    (void)sig;
}

/* The signals the init takes, with a handler installed for each: signals
 * are still all blocked (proc.c blocks them across the clone, and exec keeps
 * the mask) and are taken with sigwaitinfo, but the kernel drops signals
 * with the default disposition sent to a namespace's init. */
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
 * workload has ended, writes its status to the status pipe and _exits (which
 * kills everything else in the namespace). */
static void init_handle(int sig, pid_t workload, int status_fd) {
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
        /* 4 bytes into an empty pipe: written whole, never blocks. */
        int32_t wstatus = status;
        ssize_t unused = write(status_fd, &wstatus, sizeof wstatus);
        (void)unused;
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
}

static _Noreturn void init_run(pid_t workload, int status_fd) {
    sigset_t wanted;
    init_signals(&wanted);
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&wanted, &info);
        if (sig >= 0)
            init_handle(sig, workload, status_fd);
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

/* Tells the spawning process (waiting on the report pipe) that the init
 * failed before the workload could start. */
static _Noreturn void init_fail(int report_fd) {
    int32_t r[2] = {PRISN_STAGE_INIT, errno};
    ssize_t unused = write(report_fd, r, sizeof r);
    (void)unused;
    _exit(127);
}

_Noreturn void prisn_sandbox_init_main(char **argv) {
    int memfd = (int)strtol(argv[2], NULL, 10);
    int report_fd = (int)strtol(argv[3], NULL, 10);
    /* The workload's exec closes the pipe: that tells the parent it started. */
    if (fcntl(report_fd, F_SETFD, FD_CLOEXEC) < 0)
        _exit(127);
    struct stat st;
    if (fstat(memfd, &st) < 0 || st.st_size < SANDBOX_PACK_OFFSET)
        init_fail(report_fd);
    void *page = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (page == MAP_FAILED)
        init_fail(report_fd);
    close(memfd);
    size_t page_size = (size_t)st.st_size;
    int status_fd = ((prisn_sandbox_page *)page)->status_fd;
    if (fcntl(status_fd, F_SETFD, FD_CLOEXEC) < 0)
        init_fail(report_fd);
    prisn_spawn_opts spawn;
    void *lists;
    int rc = prisn_proc_unpack((char *)page + SANDBOX_PACK_OFFSET,
                               (size_t)st.st_size - SANDBOX_PACK_OFFSET, &spawn, &lists);
    if (rc < 0) {
        errno = -rc;
        init_fail(report_fd);
    }
    prctl(PR_SET_NAME, argv[0], 0, 0, 0);
    pid_t pid = raw_fork();
    if (pid == 0) {
        static const int stdio[3] = {0, 1, 2};
        prisn_proc_child_exec(&spawn, stdio, report_fd, &((prisn_sandbox_page *)page)->stage, -1);
    }
    if (pid < 0)
        init_fail(report_fd);
    /* The init keeps nothing but the status pipe: the workload writes its
     * own stdio and reports its own failures, and has its own copy of the
     * mapping until its exec. */
    free(lists);
    munmap(page, page_size);
    if (status_fd > 0)
        close_fds(0, (unsigned)status_fd - 1);
    close_fds((unsigned)status_fd + 1, ~0U);
    init_run(pid, status_fd);
}

/* ---- the parent --------------------------------------------------------- */

#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

/* The program init_raw.c builds, embedded by init_blob.c (empty where it is
 * not built). */
extern const unsigned char prisn_init_blob[], prisn_init_blob_end[];

static int raw_init_fd = -1;
static pthread_once_t raw_init_once = PTHREAD_ONCE_INIT;

/* Puts the embedded init in a memfd, sealed so that nothing changes it
 * after (the parent keeps it for every sandbox it starts): raw_init_fd, or
 * -1 when there is none or the kernel refuses an executable memfd
 * (vm.memfd_noexec=2). */
static void raw_init_make(void) {
    size_t size = (size_t)(prisn_init_blob_end - prisn_init_blob);
    if (size == 0)
        return;
    /* MFD_EXEC: executable even where memfds are not by default (Linux
     * 6.3+); older kernels refuse the flag and make them executable. */
    int fd = (int)syscall(SYS_memfd_create, "prisn-init", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (fd < 0 && errno == EINVAL)
        fd = (int)syscall(SYS_memfd_create, "prisn-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return;
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, prisn_init_blob + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return;
        }
        done += (size_t)n;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) {
        close(fd);
        return;
    }
    raw_init_fd = fd;
}

int prisn_sandbox_raw_init_fd(void) {
    const char *from = getenv("PRISN_INIT_FROM"); /* read at each spawn: tests switch */
    if (from && strcmp(from, "self") == 0)
        return -1;
    pthread_once(&raw_init_once, raw_init_make);
    return raw_init_fd;
}

/* The status pipe: the read end stays here, non-blocking (read once the init
 * is reaped, it holds 4 bytes or nothing). */
static int status_pipe(int fds[2]) {
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    if (fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0) {
        int saved = errno;
        close(fds[0]);
        close(fds[1]);
        errno = saved;
        return -1;
    }
    return 0;
}

prisn_sandbox_page *prisn_sandbox_page_new(const prisn_spawn_opts *spawn, int *status_fd) {
    *status_fd = -1;
    int fds[2];
    if (status_pipe(fds) < 0)
        return NULL;
    int fd = (int)syscall(SYS_memfd_create, "prisn-init-page", MFD_CLOEXEC);
    /* The page, then what the init needs to start the workload. */
    size_t size = SANDBOX_PACK_OFFSET + prisn_proc_pack(spawn, NULL, 0);
    char *p = MAP_FAILED;
    if (fd >= 0 && ftruncate(fd, (off_t)size) == 0)
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int saved = errno;
        if (fd >= 0)
            close(fd);
        close(fds[0]);
        close(fds[1]);
        errno = saved;
        return NULL;
    }
    prisn_proc_pack(spawn, p + SANDBOX_PACK_OFFSET, size - SANDBOX_PACK_OFFSET);
    /* Only the first page stays mapped here until the workload has exec'd
     * (the child's stage, for a start timeout). */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (size > page)
        munmap(p + page, size - page);
    prisn_sandbox_page *r = (prisn_sandbox_page *)p;
    memset(r, 0, sizeof *r);
    r->memfd = fd;
    r->status_fd = fds[1];
    /* The init is this binary; opened here, as a later pivot_root may leave
     * it outside the sandbox's root. */
    r->exe_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    r->init_fd = prisn_sandbox_raw_init_fd();
    *status_fd = fds[0];
    return r;
}

void prisn_sandbox_page_spawned(prisn_sandbox_page *r) {
    if (!r || r->parent_closed)
        return;
    close(r->memfd);
    if (r->exe_fd >= 0)
        close(r->exe_fd);
    close(r->status_fd);
    r->parent_closed = 1;
}

void prisn_sandbox_page_free(prisn_sandbox_page *r) {
    if (!r)
        return;
    prisn_sandbox_page_spawned(r);
    munmap(r, sizeof *r);
}

void prisn_sandbox_status_apply(int status_fd, prisn_exit_status *st) {
    if (status_fd < 0)
        return;
    int32_t status;
    ssize_t got;
    do {
        got = read(status_fd, &status, sizeof status);
    } while (got < 0 && errno == EINTR);
    if (got != (ssize_t)sizeof status)
        return;
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
