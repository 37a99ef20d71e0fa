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

/* "ENOENT" for ENOENT: the stable code names prisn's errors carry. */
const char *prisn_sys_errno_name(int err);

#endif
