/*
 * cgroup: limits, accounting and ending of a workload through cgroup v2 or
 * v1 (see cgroup.h for the contract).
 *
 * Why one interface for both versions: the same machine may offer either,
 * or a mix (systemd's "hybrid" mode mounts v2 with no controllers and v1
 * hierarchies beside it), and the Lua policy should not care. So a workload's
 * cgroup is a list of directories ("nodes"): the v2 one, and one per v1
 * hierarchy, each serving some controllers. Limits go to the node that serves
 * the controller; placement writes to every node; kill and stats walk them.
 *
 * Directories are made under a parent ("prisn" by default) at the top of
 * each hierarchy, as container runtimes do, not under prisn's own cgroup: on
 * v2 a cgroup that holds processes (prisn's) cannot enable controllers for
 * its children. The parent stays; each workload's directory is removed by
 * prisn_cgroup_destroy.
 *
 * Nothing here runs in a forked child: the child side of placement is one
 * write(2) in proc.c.
 */
#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int sys_open(const char *path, int flags) {
    return open(path, flags);
}

prisn_cgroup_syscalls prisn_cgroup_sys = {
    .mkdir = mkdir,
    .rmdir = rmdir,
    .open = sys_open,
    .write = write,
    .kill = kill,
};

static const char *const controller_names[PRISN_CGROUP_NCONTROLLERS] = {
    "memory",
    "cpu",
    "pids",
    "cpuacct",
};

const char *prisn_cgroup_controller_name(prisn_cgroup_controller c) {
    return (unsigned)c < PRISN_CGROUP_NCONTROLLERS ? controller_names[c] : "unknown";
}

#define BIT(c) (1u << (c))

/* ---- small file helpers ------------------------------------------------- */

/* out = a "/" b; -ENAMETOOLONG when it does not fit. */
static int join(char out[PRISN_CGROUP_PATH_MAX], const char *a, const char *b) {
    int n = snprintf(out, PRISN_CGROUP_PATH_MAX, "%s/%s", a, b);
    return n < 0 || n >= PRISN_CGROUP_PATH_MAX ? -ENAMETOOLONG : 0;
}

static void set_error_path(prisn_cgroup *cg, const char *path) {
    snprintf(cg->error_path, sizeof cg->error_path, "%s", path);
}

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Reads up to size-1 bytes of a (small) file into buf; returns the length
 * or a negative errno. */
static ssize_t read_small(const char *path, char *buf, size_t size) {
    int fd = prisn_cgroup_sys.open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            close(fd);
            return -err;
        }
        if (n == 0 || (len += (size_t)n) + 1 >= size)
            break;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* Writes text to an existing file in one write(2), as cgroupfs wants. */
static int write_text(const char *path, const char *text) {
    int fd = prisn_cgroup_sys.open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    ssize_t n;
    do {
        n = prisn_cgroup_sys.write(fd, text, len);
    } while (n < 0 && errno == EINTR);
    int err = n < 0 ? errno : (size_t)n != len ? EIO : 0;
    close(fd);
    return -err;
}

/* Writes dir/file; on failure names the file in cg->error_path. An optional
 * file that does not exist (ENOENT) is not an error. */
static int write_in(prisn_cgroup *cg, const char *dir, const char *file, const char *text,
                    bool optional) {
    char path[PRISN_CGROUP_PATH_MAX];
    int rc = join(path, dir, file);
    if (rc == 0)
        rc = write_text(path, text);
    if (rc == -ENOENT && optional)
        return 0;
    if (rc < 0)
        set_error_path(cg, path);
    return rc;
}

/* The value after "key " on a line of a flat keyed file, or -1. */
static int64_t keyed_value(const char *text, const char *key) {
    size_t klen = strlen(key);
    const char *line = text;
    while (line && *line) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
            return strtoll(line + klen + 1, NULL, 10);
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return -1;
}

/* dir/file as a number ("max" and unreadable files: -1). */
static int64_t read_number(const char *dir, const char *file) {
    char path[PRISN_CGROUP_PATH_MAX], buf[64];
    if (join(path, dir, file) < 0 || read_small(path, buf, sizeof buf) <= 0)
        return -1;
    if (buf[0] < '0' || buf[0] > '9')
        return -1;
    return strtoll(buf, NULL, 10);
}

static int64_t read_keyed(const char *dir, const char *file, const char *key) {
    char path[PRISN_CGROUP_PATH_MAX], buf[2048];
    if (join(path, dir, file) < 0 || read_small(path, buf, sizeof buf) < 0)
        return -1;
    return keyed_value(buf, key);
}

/* ---- detection ---------------------------------------------------------- */

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s) {
    char *out = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
            p[3] >= '0' && p[3] <= '7') {
            *out++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 3;
        } else {
            *out++ = *p;
        }
    }
    *out = '\0';
}

static bool has_word(const char *list, const char *word, const char *seps) {
    size_t wlen = strlen(word);
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, seps);
        if (n == wlen && strncmp(p, word, n) == 0)
            return true;
        p += n;
        p += strspn(p, seps);
    }
    return false;
}

/* One mountinfo line: "id parent maj:min root mountpoint opts [optional...] -
 * fstype source superopts". Spaces inside fields are escaped, so " - " only
 * ever separates the two halves. */
static void detect_line(const char *root, char *line, prisn_cgroup_layout *out) {
    line[strcspn(line, "\n")] = '\0';
    char *sep = strstr(line, " - ");
    if (!sep)
        return;
    *sep = '\0';
    char *mountpoint = line;
    for (int i = 0; i < 4 && mountpoint; i++) {
        mountpoint = strchr(mountpoint, ' ');
        if (mountpoint)
            mountpoint++;
    }
    if (!mountpoint)
        return;
    mountpoint[strcspn(mountpoint, " ")] = '\0';
    char *fstype = sep + 3;
    char *source = strchr(fstype, ' ');
    char *superopts = source ? strchr(source + 1, ' ') : NULL;
    if (!superopts)
        return;
    *source = '\0';
    superopts++;
    unescape(mountpoint);
    char full[PRISN_CGROUP_PATH_MAX];
    int n = snprintf(full, sizeof full, "%s%s", root, mountpoint);
    if (n < 0 || n >= (int)sizeof full)
        return;
    if (strcmp(fstype, "cgroup2") == 0 && !out->v2_mount[0]) {
        memcpy(out->v2_mount, full, (size_t)n + 1);
    } else if (strcmp(fstype, "cgroup") == 0) {
        for (int c = 0; c < PRISN_CGROUP_NCONTROLLERS; c++) {
            if (out->version[c] == PRISN_CGROUP_NONE &&
                has_word(superopts, controller_names[c], ",")) {
                out->version[c] = PRISN_CGROUP_V1;
                memcpy(out->mount[c], full, (size_t)n + 1);
            }
        }
    }
}

int prisn_cgroup_detect(const char *root, prisn_cgroup_layout *out) {
    memset(out, 0, sizeof *out);
    if (!root)
        root = "";
    char path[PRISN_CGROUP_PATH_MAX];
    if (snprintf(path, sizeof path, "%s/proc/self/mountinfo", root) >= (int)sizeof path)
        return -ENAMETOOLONG;
    int fd = prisn_cgroup_sys.open(path, O_RDONLY | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!f) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return -err;
    }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        detect_line(root, line, out);
    }
    free(line);
    fclose(f);

    if (out->v2_mount[0]) {
        char list[512];
        if (join(path, out->v2_mount, "cgroup.controllers") == 0 &&
            read_small(path, list, sizeof list) >= 0) {
            for (int c = PRISN_CGROUP_MEMORY; c <= PRISN_CGROUP_PIDS; c++) {
                if (has_word(list, controller_names[c], " \n")) {
                    out->version[c] = PRISN_CGROUP_V2;
                    snprintf(out->mount[c], sizeof out->mount[c], "%s", out->v2_mount);
                }
            }
        }
    }
    return 0;
}

/* ---- creation ----------------------------------------------------------- */

void prisn_cgroup_init(prisn_cgroup *cg) {
    memset(cg, 0, sizeof *cg);
    for (size_t i = 0; i < PRISN_CGROUP_MAX_NODES; i++) {
        cg->nodes[i].dir_fd = -1;
        cg->nodes[i].procs_fd = -1;
    }
}

static bool valid_name(const char *name) {
    size_t n = strlen(name);
    return n > 0 && n < 200 && !strchr(name, '/') && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0 && strchr(name, '\n') == NULL;
}

/* "prisn", "a/b": relative, no empty, "." or ".." components. */
static bool valid_parent(const char *parent) {
    if (!parent[0] || parent[0] == '/' || strlen(parent) >= 256)
        return false;
    for (const char *p = parent; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p += n;
        if (*p == '/')
            p++;
        if (!*p && p[-1] == '/')
            return false;
    }
    return true;
}

/* Enables the v2 controllers in mask in dir/cgroup.subtree_control, writing
 * only those not yet enabled. */
static int v2_enable(prisn_cgroup *cg, const char *dir, unsigned mask) {
    char path[PRISN_CGROUP_PATH_MAX], current[512], want[64] = "";
    int rc = join(path, dir, "cgroup.subtree_control");
    ssize_t got = rc < 0 ? rc : read_small(path, current, sizeof current);
    if (got < 0) {
        set_error_path(cg, path);
        return (int)got;
    }
    for (int c = PRISN_CGROUP_MEMORY; c <= PRISN_CGROUP_PIDS; c++) {
        if ((mask & BIT(c)) && !has_word(current, controller_names[c], " \n")) {
            if (want[0])
                strcat(want, " ");
            strcat(want, "+");
            strcat(want, controller_names[c]);
        }
    }
    if (!want[0])
        return 0;
    rc = write_text(path, want);
    if (rc < 0)
        set_error_path(cg, path);
    return rc;
}

/* Makes mount/parent level by level (existing levels are fine); on v2
 * enables the controllers in mask on the way down so the leaf gets them. */
static int make_parent(prisn_cgroup *cg, const prisn_cgroup_node *node, const char *mount,
                       const char *parent, unsigned v2_mask) {
    char dir[PRISN_CGROUP_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", mount);
    bool v2 = node->version == PRISN_CGROUP_V2;
    int rc = v2 ? v2_enable(cg, dir, v2_mask) : 0;
    for (const char *p = parent; rc == 0 && *p;) {
        size_t n = strcspn(p, "/"), len = strlen(dir);
        if (len + 1 + n >= sizeof dir) {
            set_error_path(cg, dir);
            return -ENAMETOOLONG;
        }
        dir[len] = '/';
        memcpy(dir + len + 1, p, n);
        dir[len + 1 + n] = '\0';
        p += n;
        if (*p == '/')
            p++;
        if (prisn_cgroup_sys.mkdir(dir, 0755) < 0 && errno != EEXIST) {
            rc = -errno;
            set_error_path(cg, dir);
        } else if (v2) {
            rc = v2_enable(cg, dir, v2_mask);
        }
    }
    return rc;
}

static int write_limits(prisn_cgroup *cg, const prisn_cgroup_node *node,
                        const prisn_cgroup_limits *l) {
    char num[64];
    const char *dir = node->path;
    bool v2 = node->version == PRISN_CGROUP_V2;
    int rc = 0;
    if ((node->controllers & BIT(PRISN_CGROUP_MEMORY)) && l->memory >= 0) {
        snprintf(num, sizeof num, "%lld", (long long)l->memory);
        if (v2) {
            rc = write_in(cg, dir, "memory.max", num, false);
            /* Swap off, so the limit bounds memory, not memory + swap. */
            if (rc == 0)
                rc = write_in(cg, dir, "memory.swap.max", "0", true);
        } else {
            rc = write_in(cg, dir, "memory.limit_in_bytes", num, false);
            if (rc == 0)
                rc = write_in(cg, dir, "memory.memsw.limit_in_bytes", num, true);
        }
    }
    if (rc == 0 && (node->controllers & BIT(PRISN_CGROUP_CPU)) && l->cpu_quota_us >= 0) {
        long long period = l->cpu_period_us > 0 ? l->cpu_period_us : 100000;
        if (v2) {
            snprintf(num, sizeof num, "%lld %lld", (long long)l->cpu_quota_us, period);
            rc = write_in(cg, dir, "cpu.max", num, false);
        } else {
            snprintf(num, sizeof num, "%lld", period);
            rc = write_in(cg, dir, "cpu.cfs_period_us", num, false);
            snprintf(num, sizeof num, "%lld", (long long)l->cpu_quota_us);
            if (rc == 0)
                rc = write_in(cg, dir, "cpu.cfs_quota_us", num, false);
        }
    }
    if (rc == 0 && (node->controllers & BIT(PRISN_CGROUP_PIDS)) && l->pids >= 0) {
        snprintf(num, sizeof num, "%lld", (long long)l->pids);
        rc = write_in(cg, dir, "pids.max", num, false);
    }
    return rc;
}

/* Groups the layout's controllers into nodes, one per distinct mount. */
static void plan_nodes(prisn_cgroup *cg, const prisn_cgroup_layout *layout,
                       const char *mounts[PRISN_CGROUP_MAX_NODES]) {
    for (int c = 0; c < PRISN_CGROUP_NCONTROLLERS; c++) {
        if (layout->version[c] == PRISN_CGROUP_NONE)
            continue;
        size_t i = 0;
        while (i < cg->nnodes && strcmp(mounts[i], layout->mount[c]) != 0)
            i++;
        if (i == cg->nnodes) {
            mounts[i] = layout->mount[c];
            cg->nodes[i].version = layout->version[c];
            cg->nnodes++;
        }
        cg->nodes[i].controllers |= BIT(c);
    }
}

/* existing: the directory is there already (a cgroup made by an earlier
 * process, re-opened): nothing is made, only the descriptors opened. One
 * that is missing is skipped (node->created stays false): a cgroup whose
 * removal stopped half-way (busy in one hierarchy) is still opened whole
 * enough to be emptied and removed. */
static int create_node(prisn_cgroup *cg, prisn_cgroup_node *node, const char *mount,
                       const char *parent, const char *name, unsigned v2_mask, bool existing) {
    int rc = existing ? 0 : make_parent(cg, node, mount, parent, v2_mask);
    if (rc < 0)
        return rc;
    char dir[PRISN_CGROUP_PATH_MAX];
    if (join(dir, mount, parent) < 0 || join(node->path, dir, name) < 0) {
        set_error_path(cg, mount);
        return -ENAMETOOLONG;
    }
    if (!existing && prisn_cgroup_sys.mkdir(node->path, 0755) < 0) {
        set_error_path(cg, node->path);
        return -errno;
    }
    node->created = !existing;
    node->dir_fd = prisn_cgroup_sys.open(node->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (node->dir_fd < 0) {
        int err = errno;
        if (existing && err == ENOENT)
            return 0;
        set_error_path(cg, node->path);
        return -err;
    }
    node->created = true;
    char procs[PRISN_CGROUP_PATH_MAX];
    if (join(procs, node->path, "cgroup.procs") < 0)
        return -ENAMETOOLONG;
    node->procs_fd = prisn_cgroup_sys.open(procs, O_WRONLY | O_CLOEXEC);
    if (node->procs_fd < 0) {
        set_error_path(cg, procs);
        return -errno;
    }
    return 0;
}

static int create_or_open(prisn_cgroup *cg, const prisn_cgroup_layout *layout, const char *parent,
                          const char *name, const prisn_cgroup_limits *limits, bool existing) {
    prisn_cgroup_init(cg);
    if (!parent)
        parent = "prisn";
    if (!valid_name(name) || !valid_parent(parent)) {
        set_error_path(cg, valid_name(name) ? parent : name);
        return -EINVAL;
    }
    const char *mounts[PRISN_CGROUP_MAX_NODES] = {NULL};
    plan_nodes(cg, layout, mounts);
    if (cg->nnodes == 0) {
        set_error_path(cg, "/proc/self/mountinfo");
        return -ENODEV;
    }
    unsigned v2_mask = 0;
    for (int c = PRISN_CGROUP_MEMORY; c <= PRISN_CGROUP_PIDS; c++) {
        if (layout->version[c] == PRISN_CGROUP_V2)
            v2_mask |= BIT(c);
    }
    int rc = 0;
    size_t opened = 0;
    for (size_t i = 0; rc == 0 && i < cg->nnodes; i++) {
        rc = create_node(cg, &cg->nodes[i], mounts[i], parent, name, v2_mask, existing);
        if (rc == 0 && limits)
            rc = write_limits(cg, &cg->nodes[i], limits);
        opened += cg->nodes[i].created;
    }
    if (rc == 0 && opened == 0) {
        char dir[PRISN_CGROUP_PATH_MAX];
        if (join(dir, mounts[0], parent) == 0 && join(cg->error_path, dir, name) == 0)
            rc = -ENOENT;
        else
            rc = -ENAMETOOLONG;
    }
    if (rc < 0) {
        char failed[PRISN_CGROUP_PATH_MAX];
        memcpy(failed, cg->error_path, sizeof failed);
        if (existing) {
            /* Someone else's directories: close what was opened, remove nothing. */
            for (size_t i = 0; i < cg->nnodes; i++)
                cg->nodes[i].created = false;
        }
        prisn_cgroup_destroy(cg, 1); /* nothing ran inside: rmdir cannot be busy */
        memcpy(cg->error_path, failed, sizeof failed);
    }
    return rc;
}

int prisn_cgroup_create(prisn_cgroup *cg, const prisn_cgroup_layout *layout, const char *parent,
                        const char *name, const prisn_cgroup_limits *limits) {
    return create_or_open(cg, layout, parent, name, limits, false);
}

int prisn_cgroup_open(prisn_cgroup *cg, const prisn_cgroup_layout *layout, const char *parent,
                      const char *name) {
    return create_or_open(cg, layout, parent, name, NULL, true);
}

int prisn_cgroup_dir_fd(const prisn_cgroup *cg) {
    for (size_t i = 0; i < cg->nnodes; i++) {
        if (cg->nodes[i].version == PRISN_CGROUP_V2 && cg->nodes[i].created)
            return cg->nodes[i].dir_fd;
    }
    return -1;
}

size_t prisn_cgroup_procs_fds(const prisn_cgroup *cg, bool include_v2, int *fds, size_t max) {
    size_t n = 0;
    for (size_t i = 0; i < cg->nnodes; i++) {
        const prisn_cgroup_node *node = &cg->nodes[i];
        if (!node->created || node->procs_fd < 0)
            continue;
        if (node->version == PRISN_CGROUP_V2 && !include_v2)
            continue;
        if (n < max)
            fds[n] = node->procs_fd;
        n++;
    }
    return n;
}

/* ---- accounting --------------------------------------------------------- */

void prisn_cgroup_stats_read(const prisn_cgroup *cg, prisn_cgroup_stats *st) {
    memset(st, 0xff, sizeof *st); /* every field -1 */
    for (size_t i = 0; i < cg->nnodes; i++) {
        const prisn_cgroup_node *node = &cg->nodes[i];
        const char *dir = node->path;
        unsigned has = node->created ? node->controllers : 0;
        if (node->version == PRISN_CGROUP_V2 && node->created) {
            if (has & BIT(PRISN_CGROUP_MEMORY)) {
                st->memory_current = read_number(dir, "memory.current");
                st->memory_peak = read_number(dir, "memory.peak");
                st->memory_limit_hits = read_keyed(dir, "memory.events", "max");
                st->oom_kills = read_keyed(dir, "memory.events", "oom_kill");
            }
            /* cpu.stat's usage is core accounting: present without the controller. */
            st->cpu_usage_us = read_keyed(dir, "cpu.stat", "usage_usec");
            if (has & BIT(PRISN_CGROUP_CPU)) {
                st->cpu_throttled_us = read_keyed(dir, "cpu.stat", "throttled_usec");
                st->cpu_nr_throttled = read_keyed(dir, "cpu.stat", "nr_throttled");
            }
            if (has & BIT(PRISN_CGROUP_PIDS)) {
                st->pids_current = read_number(dir, "pids.current");
                st->pids_limit_hits = read_keyed(dir, "pids.events", "max");
            }
            continue;
        }
        if (has & BIT(PRISN_CGROUP_MEMORY)) {
            st->memory_current = read_number(dir, "memory.usage_in_bytes");
            st->memory_peak = read_number(dir, "memory.max_usage_in_bytes");
            st->memory_limit_hits = read_number(dir, "memory.failcnt");
            st->oom_kills = read_keyed(dir, "memory.oom_control", "oom_kill");
        }
        if (has & BIT(PRISN_CGROUP_CPUACCT)) {
            int64_t ns = read_number(dir, "cpuacct.usage");
            st->cpu_usage_us = ns < 0 ? -1 : ns / 1000;
        }
        if (has & BIT(PRISN_CGROUP_CPU)) {
            int64_t ns = read_keyed(dir, "cpu.stat", "throttled_time");
            st->cpu_throttled_us = ns < 0 ? -1 : ns / 1000;
            st->cpu_nr_throttled = read_keyed(dir, "cpu.stat", "nr_throttled");
        }
        if (has & BIT(PRISN_CGROUP_PIDS)) {
            st->pids_current = read_number(dir, "pids.current");
            st->pids_limit_hits = read_keyed(dir, "pids.events", "max");
        }
    }
}

/* Calls fn(pid, ctx) for every pid in dir/cgroup.procs; returns how many.
 * Streams the file, so a cgroup of any size is read in 4 KiB steps. */
static size_t each_pid(const char *dir, void (*fn)(pid_t, void *), void *ctx) {
    char path[PRISN_CGROUP_PATH_MAX], buf[4096];
    if (join(path, dir, "cgroup.procs") < 0)
        return 0;
    int fd = prisn_cgroup_sys.open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t count = 0;
    long long pid = -1;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] >= '0' && buf[i] <= '9') {
                pid = (pid < 0 ? 0 : pid * 10) + (buf[i] - '0');
            } else if (pid >= 0) {
                fn((pid_t)pid, ctx);
                count++;
                pid = -1;
            }
        }
    }
    if (pid >= 0) {
        fn((pid_t)pid, ctx);
        count++;
    }
    close(fd);
    return count;
}

typedef struct {
    pid_t *pids;
    size_t max, n;
} pid_list;

static void collect_pid(pid_t pid, void *ctx) {
    pid_list *list = ctx;
    for (size_t i = 0; i < list->n && i < list->max; i++) {
        if (list->pids[i] == pid)
            return;
    }
    if (list->n < list->max)
        list->pids[list->n] = pid;
    list->n++;
}

size_t prisn_cgroup_pids(const prisn_cgroup *cg, pid_t *pids, size_t max) {
    pid_list list = {pids, max, 0};
    for (size_t i = 0; i < cg->nnodes; i++) {
        if (cg->nodes[i].created)
            each_pid(cg->nodes[i].path, collect_pid, &list);
    }
    return list.n;
}

/* ---- ending ------------------------------------------------------------- */

static void kill_pid(pid_t pid, void *ctx) {
    (void)ctx;
    if (pid > 0)
        prisn_cgroup_sys.kill(pid, SIGKILL); /* ESRCH: it just ended */
}

int prisn_cgroup_kill_all(prisn_cgroup *cg, unsigned rounds) {
    if (rounds == 0)
        rounds = 1;
    /* cgroup.kill (v2, Linux 5.14+) kills every member and refuses forks
     * racing with it; the pid loop below then only waits for them to go. */
    for (size_t i = 0; i < cg->nnodes; i++) {
        prisn_cgroup_node *node = &cg->nodes[i];
        if (node->version == PRISN_CGROUP_V2 && node->created) {
            char path[PRISN_CGROUP_PATH_MAX];
            if (join(path, node->path, "cgroup.kill") == 0)
                write_text(path, "1"); /* ENOENT on older kernels: the loop does it */
        }
    }
    for (unsigned round = 0; round < rounds; round++) {
        size_t seen = 0;
        for (size_t i = 0; i < cg->nnodes; i++) {
            if (cg->nodes[i].created)
                seen += each_pid(cg->nodes[i].path, kill_pid, NULL);
        }
        if (seen == 0)
            return 0;
        if (round + 1 < rounds)
            sleep_ms(round + 1 < 10 ? round + 1 : 10);
    }
    return -EBUSY;
}

int prisn_cgroup_destroy(prisn_cgroup *cg, unsigned attempts) {
    if (attempts == 0)
        attempts = 1;
    int rc = 0;
    for (size_t k = cg->nnodes; k-- > 0;) {
        prisn_cgroup_node *node = &cg->nodes[k];
        if (node->dir_fd >= 0)
            close(node->dir_fd);
        if (node->procs_fd >= 0)
            close(node->procs_fd);
        node->dir_fd = node->procs_fd = -1;
        for (unsigned attempt = 0; node->created; attempt++) {
            if (prisn_cgroup_sys.rmdir(node->path) == 0 || errno == ENOENT) {
                node->created = false;
            } else if (errno != EBUSY || attempt + 1 >= attempts) {
                if (rc == 0) {
                    rc = -errno;
                    set_error_path(cg, node->path);
                }
                break;
            } else {
                sleep_ms(5);
            }
        }
    }
    return rc;
}
