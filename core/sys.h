/*
 * sys: build identity and the few system probes luv does not offer.
 */
#ifndef PRISN_SYS_H
#define PRISN_SYS_H

/* Namespace kinds prisn_sys_probe_namespace can try. */
typedef enum {
    PRISN_SYS_NS_USER,
    PRISN_SYS_NS_PID,
    PRISN_SYS_NS_MOUNT,
    PRISN_SYS_NS_NET,
} prisn_sys_ns;

/* Forks a child that calls unshare() for the namespace kind and exits.
 * Returns 0 when the namespace can be created, a negative errno otherwise
 * (the child's unshare error, or fork's). The caller's process is untouched. */
int prisn_sys_probe_namespace(prisn_sys_ns kind);

/* The system calls prisn_sys_exec makes, replaceable by tests to exercise
 * its failure path (the SQLite aSyscall idea, as prisn_proc_sys). */
typedef struct {
    int (*execv)(const char *path, char *const argv[]);
} prisn_sys_syscalls;

extern prisn_sys_syscalls prisn_sys_sys;

/* Replaces this process's program with `path` (execv: same pid, same
 * environment), argv NULL-terminated. Every descriptor from 3 on is made
 * close-on-exec first (prisn opens its own so already; this also covers a
 * library's), and the new program starts with no signal blocked. Returns
 * only on failure: a negative errno, with the signal mask as it was (the
 * close-on-exec flags stay: the running program does not notice them). */
int prisn_sys_exec(const char *path, char *const argv[]);

/* "ENOENT" for ENOENT: the stable code names prisn's errors carry. */
const char *prisn_sys_errno_name(int err);

#endif
