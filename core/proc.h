/*
 * proc: create, wait for and signal workload processes.
 *
 * One primitive, prisn_proc_spawn, builds a child exactly as described by a
 * prisn_spawn_opts: argv and an exact environment (nothing is inherited that
 * is not listed), cwd, stdio, session/process group, rlimits, identity, umask,
 * no_new_privs, and (for the limits/isolation layer) the cgroup to start in:
 * a v2 directory through CLONE_INTO_CGROUP, and/or cgroup.procs files the
 * child writes itself into before anything else (v1).
 * The child gets no descriptor of prisn's beyond its stdio, and default signal
 * dispositions with nothing blocked. The parent gets a pidfd to poll.
 *
 * A failure in the child before exec (chdir, setuid, exec itself...) is sent
 * back over a close-on-exec pipe and reported by prisn_proc_spawn as an error
 * with the stage that failed; the half-started child is reaped. So "python3:
 * not found" is never confused with a script that exits 127.
 */
#ifndef PRISN_PROC_H
#define PRISN_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

struct prisn_sandbox_opts;
struct prisn_sandbox_report;

typedef enum {
    PRISN_STDIO_INHERIT, /* keep prisn's descriptor */
    PRISN_STDIO_NULL,    /* /dev/null */
    PRISN_STDIO_PIPE,    /* a new pipe; the parent's end is returned */
    PRISN_STDIO_FILE,    /* open(path, flags, 0600) in the parent */
    PRISN_STDIO_FD,      /* dup of an existing descriptor of prisn's */
} prisn_stdio_kind;

typedef struct {
    prisn_stdio_kind kind;
    const char *path; /* FILE */
    int flags;        /* FILE: O_* flags */
    int fd;           /* FD */
} prisn_stdio;

typedef struct {
    int resource; /* RLIMIT_* */
    struct rlimit limit;
} prisn_rlimit;

typedef struct {
    const char *file;   /* absolute path to execute; PATH is not searched */
    char *const *argv;  /* NULL-terminated */
    char *const *envp;  /* NULL-terminated; the whole environment */
    const char *cwd;    /* NULL: prisn's */
    prisn_stdio stdio[3];
    bool new_session;   /* setsid(): own session and process group */
    bool new_pgroup;    /* setpgid(0, 0) when not new_session */
    const prisn_rlimit *rlimits;
    size_t nrlimits;
    bool set_ids;       /* switch to uid/gid/groups (needs privilege) */
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    size_t ngroups;
    int umask;          /* -1: inherit */
    bool no_new_privs;
    /* Written to /proc/self/oom_score_adj first thing (NULL: inherit). A
     * root prisn protects itself at -1000; its workloads must not inherit it. */
    const char *oom_score_adj;
    int cgroup_fd;      /* -1: none; else a cgroup v2 directory to start in */
    /* cgroup.procs files (opened for writing by the parent) the child writes
     * "0" to before anything else: placement in cgroup v1 hierarchies, or in
     * v2 on kernels without CLONE_INTO_CGROUP. */
    const int *cgroup_procs_fds;
    size_t ncgroup_procs_fds;
    /* NULL: none. Else the child starts in new PID and mount namespaces (and
     * user/network ones as asked) set up by sandbox.c, with a minimal init as
     * pid 1; the pid returned is that init's. Needs clone3. */
    const struct prisn_sandbox_opts *sandbox;
} prisn_spawn_opts;

typedef struct {
    pid_t pid;
    int pidfd;         /* -1 when the kernel has no pidfds */
    int stdio_fds[3];  /* parent's pipe ends for PIPE slots, else -1 */
    /* With a sandbox: where its init leaves the workload's own exit status
     * (prisn_sandbox_report_apply after the wait; prisn_sandbox_report_free
     * when done). NULL otherwise. */
    struct prisn_sandbox_report *sandbox_report;
} prisn_spawn_result;

/* Where a spawn failed, for the error message. */
typedef enum {
    PRISN_STAGE_NONE = 0,
    PRISN_STAGE_SETUP, /* in the parent: pipes, files, fork */
    PRISN_STAGE_CGROUP, /* the child could not join its cgroup */
    PRISN_STAGE_NAMESPACE, /* sandbox: user namespace maps */
    PRISN_STAGE_MOUNT,     /* sandbox: mounts, pivot_root, /proc */
    PRISN_STAGE_NETWORK,   /* sandbox: loopback */
    PRISN_STAGE_INIT,      /* sandbox: forking the workload under its init */
    PRISN_STAGE_SESSION,
    PRISN_STAGE_STDIO,
    PRISN_STAGE_CHDIR,
    PRISN_STAGE_RLIMIT,
    PRISN_STAGE_IDS,
    PRISN_STAGE_PRIVS,
    PRISN_STAGE_FDS,
    PRISN_STAGE_EXEC,
} prisn_spawn_stage;

const char *prisn_proc_stage_name(prisn_spawn_stage stage);

/* Starts a child. Returns 0 and fills *out, or a negative errno with *stage
 * saying which step failed (nothing is left running or open then). */
int prisn_proc_spawn(const prisn_spawn_opts *opts, prisn_spawn_result *out,
                     prisn_spawn_stage *stage);

typedef struct {
    bool exited;      /* exit code valid */
    int code;
    bool signaled;    /* signal valid */
    int signal;
    bool core_dumped;
} prisn_exit_status;

/* Reaps the child if it has ended. With nohang, returns 1 when it ended,
 * 0 when it still runs; otherwise blocks until it ends. Negative errno on
 * failure (ECHILD: not our child or already reaped). Uses the pidfd when
 * there is one, so a recycled pid can never be confused with ours. */
int prisn_proc_wait(pid_t pid, int pidfd, bool nohang, prisn_exit_status *status);

/* Sends sig to the process (group=false, through the pidfd when there is one)
 * or to its whole process group (group=true, the pid is the group id).
 * Returns 0 or a negative errno; ESRCH when nothing is left to signal. */
int prisn_proc_kill(pid_t pid, int pidfd, int sig, bool group);

/* The system calls spawn depends on, replaceable by tests to exercise the
 * failure paths without root (the SQLite aSyscall idea). */
typedef struct {
    long (*clone3)(void *args, size_t size);
    pid_t (*fork)(void);
    int (*pidfd_open)(pid_t pid);
} prisn_proc_syscalls;

extern prisn_proc_syscalls prisn_proc_sys;

#endif
