/*
 * sandbox: the namespace side of a workload's isolation, done in the child
 * between fork and exec (see proc.c), and the tiny init that runs as pid 1 of
 * the workload's PID namespace.
 *
 * What a level means (which namespaces, which mounts, which user) is decided
 * in Lua (lua/prisn/exec/isolation.lua); this file only carries it out. The
 * parent prepares every path and string in a prisn_sandbox_opts
 * before forking, so the child makes async-signal-safe system calls only:
 * no malloc, no stdio, no locale.
 *
 * In the child, in order: the user namespace's uid/gid maps (unprivileged
 * runs), mount propagation made private, the prepared steps in list order
 * (tmpfs, overlay, proc or bind mounts, directories, symlinks, read-only
 * remounts), pivot_root into a new
 * root when asked, a fresh /proc for the new PID namespace, loopback up in a
 * new network namespace. Then the child — pid 1 of the new PID namespace —
 * execs prisn in init mode, and that init forks the workload: it forwards
 * the usual termination signals to the workload's process group, reaps
 * every orphan, and exits with the workload's status. The kernel then kills
 * whatever is left in the namespace. pid 1 cannot kill itself with a signal,
 * so the workload's own wait status (a signal, a core dump, an exit code
 * above 128 told apart from a signal) goes to the parent over a status pipe
 * that the parent reads after reaping the init.
 *
 * Not done here: seccomp filters, capabilities beyond what the identity
 * switch drops, device cgroups.
 */
#ifndef PRISN_SANDBOX_H
#define PRISN_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proc.h"

/* One mount made in the child, in list order. */
typedef struct {
    const char *source;  /* bind: the source path; tmpfs: "tmpfs";
                          * NULL: only create the target (mkdir_mode) */
    const char *target;  /* absolute path, as seen at that point in the list */
    const char *fstype;  /* NULL for a bind mount, else e.g. "tmpfs", "proc" */
    const char *data;    /* fstype options ("size=10485760,mode=0755") or NULL */
    unsigned long flags; /* MS_* for the mount (MS_BIND|MS_REC added for binds) */
    /* Nonzero: remount the bind with MS_BIND|MS_REMOUNT|remount_flags (e.g.
     * MS_RDONLY plus the source's locked nosuid/nodev/noexec). */
    unsigned long remount_flags;
    int mkdir_mode;      /* >= 0: create the target first (a file when is_file) */
    bool is_file;        /* the target is a file (bind of a single file) */
    bool is_symlink;     /* create target as a symlink to source; no mount */
    bool is_remount;     /* remount the existing mount at target with
                          * MS_BIND|MS_REMOUNT|flags (e.g. a root made
                          * read-only once everything is mounted in it) */
    bool is_umount;      /* detach the mount at target (binds made from it stay) */
    bool late;           /* a bind whose source is made by an earlier step of
                          * the list: opened when its turn comes, not first */
    /* Child scratch: a bind's source is opened (O_PATH) before any mount of
     * the list, then bound from "/proc/self/fd/N", so an earlier mount
     * (e.g. the tmpfs hiding $PRISN_HOME) cannot hide it. Descriptors must be
     * opened in the child: a bind from a mount of another mount namespace
     * (the parent's) is refused. */
    int source_fd;
    char source_path[32];
} prisn_sandbox_mount;

/* Shared by the parent, the clone and the init until the workload's exec,
 * then by nobody: a memfd mapped shared, so the init can map it again after
 * it has exec'd; what the workload's last steps need follows at
 * SANDBOX_PACK_OFFSET. The exit status does not come back through it: a page
 * kept mapped per running instance was 4 kB of the server's RSS each (4 MB
 * for 1,000), where the pipe costs a descriptor and no memory until written. */
typedef struct prisn_sandbox_page {
    int32_t memfd;            /* the page's memfd (parent's descriptor number) */
    int32_t exe_fd;           /* prisn's own binary, for the init's exec; -1: none */
    int32_t init_fd;          /* the init without a C library (init_raw.c), a
                                 memfd kept by the parent for good, exec'd
                                 first; -1: none (then exe_fd) */
    int32_t status_fd;        /* write end of the status pipe (parent's number) */
    int32_t parent_closed;    /* the parent closed its three descriptors (the
                                 init reads the numbers, so they are never changed) */
    volatile int32_t stage;   /* the step the child, init or workload is at
                                 (a prisn_spawn_stage), for a start timeout */
} prisn_sandbox_page;

#define SANDBOX_PACK_OFFSET 64
_Static_assert(sizeof(prisn_sandbox_page) <= SANDBOX_PACK_OFFSET, "the pack follows the page");

typedef struct prisn_sandbox_opts {
    bool new_user;         /* CLONE_NEWUSER with uid_map/gid_map (unprivileged) */
    const char *uid_map;   /* "inside outside 1\n" */
    const char *gid_map;
    bool new_net;          /* CLONE_NEWNET, loopback brought up */
    prisn_sandbox_mount *mounts; /* written to in the child only (scratch) */
    size_t nmounts;
    const char *pivot_root; /* NULL, or a mounted directory to become "/" */
    const char *put_old;    /* under pivot_root, for the old root; detached */
    bool mount_proc;        /* a fresh /proc (always with the PID namespace) */
    const char *init_name;  /* comm of pid 1 ("prisn-init") */
} prisn_sandbox_opts;

/* Clone flags for these options (always CLONE_NEWPID|CLONE_NEWNS). */
uint64_t prisn_sandbox_clone_flags(const prisn_sandbox_opts *o);

/* In the child, as pid 1 of the new namespaces: sets them up. Returns 0, or
 * -1 with errno set. *stage (shared with the parent) is kept at the step
 * being done, so on failure it names the step that failed. */
int prisn_sandbox_child_setup(const prisn_sandbox_opts *o, volatile int32_t *stage);

/* In the child after setup, with the workload's stdio in place: its own
 * session, then execs prisn's binary as the namespace's init
 * (prisn_sandbox_init_main), which forks the workload. Returns only when
 * that failed, with errno set. */
void prisn_sandbox_exec_init(const prisn_sandbox_opts *o, const prisn_sandbox_page *page,
                             int report_fd);

/* Lets this process's sandboxes run their init in the clone itself, without
 * the exec of prisn's binary, whenever the process has a single thread at
 * the spawn (prisn_sandbox_init_in_place_now). For a short-lived,
 * single-threaded process only (a local `prisn run`): the init then holds a
 * copy-on-write snapshot of the process for the workload's life, which a
 * server must not pay per instance (tests/bench/spawn-report.md). Off by
 * default; the server itself never turns it on. A server job's runner (one
 * job, then it exits) does, for workloads that cannot read the copy
 * (prisn.exec.job_runner.init_in_place_allowed). */
void prisn_sandbox_set_init_in_place(bool on);

/* The area of this process's command line (argv[0] .. the end of
 * argv[argc - 1], when the strings lie one after the other, as the kernel
 * lays them out): an init run in place overwrites its copy with its name, so
 * `ps` in the sandbox says "prisn-init" and shows nothing of prisn's own
 * arguments. main() gives it; without it the copy keeps the command line. */
void prisn_sandbox_set_cmdline(int argc, char **argv);

/* In the parent, before the clone: whether this spawn's init runs in place
 * (allowed, and this process has exactly one thread: a copy of a threaded
 * process may hold locks no thread will release). */
bool prisn_sandbox_init_in_place_now(void);

/* In the child after setup, instead of prisn_sandbox_exec_init when
 * prisn_sandbox_init_in_place_now said so: its own session, not dumpable
 * (the workload may not read the copy's memory through /proc/1/mem), names
 * itself, forks the workload (prisn_proc_child_exec with `spawn` itself and
 * the gate, see prisn_spawn_opts.gate),
 * closes everything but the status pipe and serves as the namespace's init
 * as prisn_sandbox_init_main does. Returns only when that failed, with errno
 * set. */
void prisn_sandbox_init_here(const prisn_sandbox_opts *o, const prisn_spawn_opts *spawn,
                             prisn_sandbox_page *page, int report_fd, int gate_fd);

/* In the parent once the child exists: closes its copies of the page's
 * descriptors (the child has its own), so a running sandbox costs the
 * spawning process only the status pipe's read end. */
void prisn_sandbox_page_spawned(prisn_sandbox_page *page);

/* The body of `prisn __sandbox-init MEMFD REPORT_FD` (argv as main gets
 * it; argv[0] is the init's name), run from main() before anything else:
 * maps the page, forks the workload (which runs prisn_proc_child_exec with
 * the packed options), unmaps the page, then serves as the namespace's init
 * until the workload ends and writes its status to the status pipe. Never
 * returns. */
_Noreturn void prisn_sandbox_init_main(char **argv);

/* Brings the loopback interface of the current network namespace up.
 * Returns 0 or -1 with errno. */
int prisn_sandbox_loopback_up(void);

/* The shared page, followed by the last steps of `spawn` for the workload,
 * and the status pipe, whose read end (close-on-exec, non-blocking) is put
 * in *status_fd for the parent to keep; NULL with errno on failure. */
prisn_sandbox_page *prisn_sandbox_page_new(const prisn_spawn_opts *spawn, int *status_fd);

/* The memfd of the init without a C library (made once, kept for good,
 * close-on-exec), or -1: none here, or PRISN_INIT_FROM=self in the
 * environment now (see sandbox.c). */
int prisn_sandbox_raw_init_fd(void);
/* Once the workload runs (or the spawn failed): the page is no longer
 * needed by anyone; closes the parent's descriptors and unmaps it. */
void prisn_sandbox_page_free(prisn_sandbox_page *page);

/* After the init was reaped with *st: replaces *st with the workload's own
 * status when the init wrote one to the status pipe (an init killed from
 * outside wrote none: *st stays the init's). Does not close status_fd. */
void prisn_sandbox_status_apply(int status_fd, prisn_exit_status *st);

#endif
