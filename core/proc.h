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
 * not found" is never confused with a script that exits 127. The parent
 * waits for that report under a deadline: a child that neither fails nor
 * reaches exec in time is killed and reaped, and the spawn fails with
 * ETIMEDOUT and the stage the child was stuck in, so a hung child can never
 * hang the server's loop. A caller with an event loop splits the spawn in
 * two (prisn_proc_spawn_start / _finish) and waits for that report on its
 * loop, so starting many children never serialises on each one's setup.
 */
#ifndef PRISN_PROC_H
#define PRISN_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

struct prisn_sandbox_opts;

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
    /* How long the child may take to reach exec (or report a failure) before
     * it is killed; 0: PRISN_PROC_START_TIMEOUT_MS. */
    int start_timeout_ms;
    /* NULL: none. Else called in the parent once the child exists, while the
     * child sets up and then waits just before its exec (a sandbox's
     * workload; the clone itself when the sandbox's init is exec'd): 0 lets
     * it exec, a negative errno kills it (a sandbox's namespace with it) and
     * the spawn fails with that error at the setup stage. Work that must
     * precede the workload but not its setup overlaps that setup (a local
     * run opens state.db there). */
    int (*gate)(void *arg);
    void *gate_arg;
    /* prisn_proc_spawn_start only, without gate: the child waits at the
     * same place until the caller opens the gate later, from its loop
     * (prisn_proc_spawn_open_gate: once what the child needs is done, such
     * as its pid recorded). Given up (cancel, the deadline) or the parent
     * dead first, the child ends without its exec. */
    bool hold_gate;
} prisn_spawn_opts;

/* Reaching exec takes a millisecond or two (a sandbox: a few more); this
 * only bounds a child that is stuck. */
#define PRISN_PROC_START_TIMEOUT_MS 5000

typedef struct {
    pid_t pid;
    int pidfd;         /* -1 when the kernel has no pidfds */
    int stdio_fds[3];  /* parent's pipe ends for PIPE slots, else -1 */
    /* With a sandbox: the read end of the pipe its init writes the
     * workload's own exit status to (prisn_sandbox_status_apply after the
     * wait; the caller closes it). -1 otherwise. */
    int sandbox_status_fd;
    /* Set on failure too: the spawn failed because the child did not reach
     * exec within its start timeout (it was killed and reaped). */
    bool timed_out;
} prisn_spawn_result;

/* Where a spawn failed, for the error message. */
typedef enum {
    PRISN_STAGE_NONE = 0,
    PRISN_STAGE_SETUP, /* in the parent: pipes, files, fork */
    PRISN_STAGE_CGROUP, /* the child could not join its cgroup */
    PRISN_STAGE_NAMESPACE, /* sandbox: user namespace maps */
    PRISN_STAGE_MOUNT,     /* sandbox: mounts, pivot_root, /proc */
    PRISN_STAGE_NETWORK,   /* sandbox: loopback */
    PRISN_STAGE_INIT,      /* sandbox: exec of its init, or the init's fork of the workload */
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
 * saying which step failed (nothing is left running or open then). Blocks
 * until the child has exec'd or failed, at most opts->start_timeout_ms:
 * then -ETIMEDOUT, out->timed_out, and *stage where the child was stuck. */
int prisn_proc_spawn(const prisn_spawn_opts *opts, prisn_spawn_result *out,
                     prisn_spawn_stage *stage);

/* The same spawn in two halves, for a caller with an event loop: the child
 * is cloned (and the gate run) at once, and its report — a failure, or the
 * pipe closing at its exec — is waited for by the caller, who polls the
 * pending spawn's descriptor for reading with the time left as deadline. */
typedef struct prisn_spawn_pending prisn_spawn_pending;

/* The first half: 0 with *pending (the child exists), or a negative errno
 * with *stage, nothing left running or open, like prisn_proc_spawn. */
int prisn_proc_spawn_start(const prisn_spawn_opts *opts, prisn_spawn_pending **pending,
                           prisn_spawn_stage *stage);

/* The descriptor that becomes readable when the report is there (or the
 * pipe closed); the milliseconds left of the start timeout; the child. */
int prisn_proc_spawn_pending_fd(const prisn_spawn_pending *pending);
int prisn_proc_spawn_pending_left_ms(const prisn_spawn_pending *pending);
pid_t prisn_proc_spawn_pending_pid(const prisn_spawn_pending *pending);

/* The second half, never blocking on the child's progress: 1 while there is
 * no report yet and the deadline has not passed (nor `expired` is set: the
 * caller's timer fired); else what prisn_proc_spawn returns (the child
 * killed and reaped at the deadline), and pending is freed. */
int prisn_proc_spawn_finish(prisn_spawn_pending *pending, bool expired, prisn_spawn_result *out,
                            prisn_spawn_stage *stage);

/* Lets a child started with hold_gate go on to its exec: 0, or a negative
 * errno (the gate could not be written: the child will end at its
 * deadline). Idempotent; 0 at once without a held gate. */
int prisn_proc_spawn_open_gate(prisn_spawn_pending *pending);

/* Gives up on a pending spawn: the child is killed and reaped, everything
 * freed. NULL is ignored. */
void prisn_proc_spawn_cancel(prisn_spawn_pending *pending);

/* ---- for the sandbox's init (sandbox.c), not for other callers ---------- */

/* The last steps of a child, from the session on: session, stdio, cwd,
 * umask, rlimits, identity, no_new_privs, descriptors, signals, exec.
 * src[i] is the descriptor to install as i (i itself: keep it). Raw system
 * calls only (rawsys.h). A failure is written to report_fd as the stage and
 * errno; *progress (shared with the parent) says the stage reached. With
 * gate_fd >= 0, waits for the parent's byte on it just before the exec (see
 * prisn_spawn_opts.gate). Never returns. */
_Noreturn void prisn_proc_child_exec(const prisn_spawn_opts *o, const int src[3], int report_fd,
                                     volatile int32_t *progress, int gate_fd);

/* Writes to buf (when size allows) the options the steps above need, for a
 * process that exec'd in between (the sandbox init); returns the size they
 * take. Stdio, cgroups and the sandbox are not carried. */
size_t prisn_proc_pack(const prisn_spawn_opts *o, void *buf, size_t size);

/* Reads what prisn_proc_pack wrote into *o, with pointers into buf (which
 * must stay mapped) and into one malloc'd block (*to_free). Returns 0, or
 * -EINVAL when buf does not hold a whole pack. */
int prisn_proc_unpack(const void *buf, size_t size, prisn_spawn_opts *o, void **to_free);

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
    pid_t (*fork)(void); /* a raw clone(SIGCHLD): see rawsys.h */
    int (*pidfd_open)(pid_t pid);
} prisn_proc_syscalls;

extern prisn_proc_syscalls prisn_proc_sys;

#endif
