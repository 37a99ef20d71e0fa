/*
 * cgroup: one interface over cgroup v2 and v1 for limiting a workload's
 * memory, CPU and number of processes, reading what it used, and ending it.
 *
 * Mechanism only. prisn_cgroup_detect says which hierarchy provides each
 * controller; prisn_cgroup_create makes one cgroup per workload (on v2 one
 * directory, on v1 one directory in every hierarchy involved) under a parent
 * directory (default "prisn") and writes the limits it is given. The child is
 * placed in it before it runs code of its own: on v2 by CLONE_INTO_CGROUP
 * with prisn_cgroup_dir_fd, on v1 by writing "0" to each cgroup.procs
 * descriptor from prisn_cgroup_procs_fds between fork and exec (proc.c).
 * Whether to limit, what a count of OOM kills means and when to clean up is
 * decided in Lua (prisn.exec.limits).
 *
 * Every path can be prefixed by a root directory, so the whole interface runs
 * against a fake cgroupfs tree in a temporary directory; the system calls that
 * fail in interesting ways go through prisn_cgroup_sys.
 *
 * Not here: freezing, cpuset, io limits, FreeBSD rctl.
 */
#ifndef PRISN_CGROUP_H
#define PRISN_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PRISN_CGROUP_PATH_MAX 1024

typedef enum {
    PRISN_CGROUP_MEMORY,
    PRISN_CGROUP_CPU,
    PRISN_CGROUP_PIDS,
    PRISN_CGROUP_CPUACCT, /* v1 usage accounting; on v2 cpu.stat always has it */
    PRISN_CGROUP_NCONTROLLERS,
} prisn_cgroup_controller;

typedef enum {
    PRISN_CGROUP_NONE = 0,
    PRISN_CGROUP_V1 = 1,
    PRISN_CGROUP_V2 = 2,
} prisn_cgroup_version;

/* Where each controller lives. Paths include the root prefix. */
typedef struct {
    prisn_cgroup_version version[PRISN_CGROUP_NCONTROLLERS];
    char mount[PRISN_CGROUP_NCONTROLLERS][PRISN_CGROUP_PATH_MAX]; /* "" when NONE */
    char v2_mount[PRISN_CGROUP_PATH_MAX]; /* the cgroup2 mount, "" when none */
} prisn_cgroup_layout;

/* Reads root/proc/self/mountinfo (root NULL or "" for the real system) and
 * root<v2 mount>/cgroup.controllers. A controller listed by the v2 root is
 * v2; else v1 when a v1 hierarchy carries it. Returns 0 or a negative errno
 * (reading mountinfo failed). */
int prisn_cgroup_detect(const char *root, prisn_cgroup_layout *out);

const char *prisn_cgroup_controller_name(prisn_cgroup_controller c);

/* Limits; a negative value leaves the kernel's default (no limit). */
typedef struct {
    int64_t memory;        /* bytes: v2 memory.max (+ memory.swap.max 0),
                              v1 memory.limit_in_bytes (+ memsw, same value) */
    int64_t cpu_quota_us;  /* per period: v2 cpu.max, v1 cpu.cfs_quota_us */
    int64_t cpu_period_us; /* default 100000 when a quota is set */
    int64_t pids;          /* pids.max */
} prisn_cgroup_limits;

#define PRISN_CGROUP_MAX_NODES PRISN_CGROUP_NCONTROLLERS

/* One directory of the cgroup: the v2 one, or one per v1 hierarchy. */
typedef struct {
    prisn_cgroup_version version;
    unsigned controllers; /* bit (1u << prisn_cgroup_controller) it serves */
    bool created;         /* mkdir succeeded and rmdir has not */
    int dir_fd;           /* O_DIRECTORY, for CLONE_INTO_CGROUP */
    int procs_fd;         /* cgroup.procs, O_WRONLY, for placement */
    char path[PRISN_CGROUP_PATH_MAX];
} prisn_cgroup_node;

/* A workload's cgroup. Lives wherever the caller puts it (the Lua binding:
 * inside the userdata); prisn_cgroup_init makes it safe to destroy. */
typedef struct {
    size_t nnodes;
    prisn_cgroup_node nodes[PRISN_CGROUP_MAX_NODES];
    /* The file or directory the last failing call was about. */
    char error_path[PRISN_CGROUP_PATH_MAX];
} prisn_cgroup;

void prisn_cgroup_init(prisn_cgroup *cg);

/* Creates parent/name in every hierarchy that provides memory, cpu, pids or
 * (v1) cpuacct, enabling v2 controllers in the subtree_control of each level
 * from the mount down to parent, opens the placement descriptors and writes
 * the limits. parent is relative to each mount ("prisn", "a/b"); name is one
 * path component. Returns 0, or a negative errno with cg->error_path naming
 * the subject; then nothing it made is left behind. EEXIST: a cgroup of that
 * name exists already. ENODEV: no hierarchy provides any controller. */
int prisn_cgroup_create(prisn_cgroup *cg, const prisn_cgroup_layout *layout, const char *parent,
                        const char *name, const prisn_cgroup_limits *limits);

/* Opens an existing cgroup parent/name (one made by an earlier process,
 * whose workload a restarted server re-adopts, or one it left behind): its
 * descriptors, for stats, kill and destroy; nothing is made or written. A
 * hierarchy where the directory is missing (a removal that stopped half-way)
 * is left out; ENOENT when it is gone from all of them. */
int prisn_cgroup_open(prisn_cgroup *cg, const prisn_cgroup_layout *layout, const char *parent,
                      const char *name);

/* The v2 directory's descriptor (for CLONE_INTO_CGROUP), or -1. */
int prisn_cgroup_dir_fd(const prisn_cgroup *cg);

/* Fills fds with the cgroup.procs descriptors the child must write "0" to:
 * the v1 ones, plus the v2 one when include_v2 (kernels without
 * CLONE_INTO_CGROUP). Returns how many. */
size_t prisn_cgroup_procs_fds(const prisn_cgroup *cg, bool include_v2, int *fds, size_t max);

/* -1 in a field: not known on this kernel or version. */
typedef struct {
    int64_t memory_current;    /* bytes: memory.current | memory.usage_in_bytes */
    int64_t memory_peak;       /* memory.peak (v2, 5.19+) | memory.max_usage_in_bytes */
    int64_t memory_limit_hits; /* memory.events max | memory.failcnt */
    int64_t oom_kills;         /* memory.events oom_kill | memory.oom_control oom_kill (4.13+) */
    int64_t cpu_usage_us;      /* cpu.stat usage_usec | cpuacct.usage / 1000 */
    int64_t cpu_throttled_us;  /* cpu.stat throttled_usec | throttled_time / 1000 */
    int64_t cpu_nr_throttled;  /* periods in which the quota ran out */
    int64_t pids_current;      /* pids.current */
    int64_t pids_limit_hits;   /* pids.events max: forks refused */
} prisn_cgroup_stats;

/* Reads every counter it can; missing files leave -1. Never fails. */
void prisn_cgroup_stats_read(const prisn_cgroup *cg, prisn_cgroup_stats *st);

/* Up to max pids of the processes in the cgroup (the union over its
 * directories), into pids; returns how many were found (may exceed max). */
size_t prisn_cgroup_pids(const prisn_cgroup *cg, pid_t *pids, size_t max);

/* SIGKILLs every process in the cgroup: v2 cgroup.kill when present, else
 * rounds of "read cgroup.procs, kill each pid" until it is empty. rounds
 * bounds the attempts (1: signal once, do not wait; sleeps between rounds
 * grow from 1 to 10 ms). Returns 0 when the cgroup is empty, -EBUSY when
 * processes remain, another negative errno on failure. Without cgroup.kill a
 * pid read could in theory be recycled before it is signalled; the window
 * is one read-to-kill step. */
int prisn_cgroup_kill_all(prisn_cgroup *cg, unsigned rounds);

/* Closes the descriptors and removes every directory (not the parent),
 * retrying EBUSY up to attempts times (1: no wait; 5 ms between tries) while
 * the kernel finishes exiting tasks. Idempotent. Returns 0, or a negative
 * errno with cg->error_path (EBUSY: processes are still inside). */
int prisn_cgroup_destroy(prisn_cgroup *cg, unsigned attempts);

/* The system calls with interesting failures, replaceable by tests: a fake
 * mkdir can populate a directory with the files the kernel would. */
typedef struct {
    int (*mkdir)(const char *path, mode_t mode);
    int (*rmdir)(const char *path);
    int (*open)(const char *path, int flags); /* never creates */
    ssize_t (*write)(int fd, const void *buf, size_t len);
    int (*kill)(pid_t pid, int sig);
} prisn_cgroup_syscalls;

extern prisn_cgroup_syscalls prisn_cgroup_sys;

#endif
