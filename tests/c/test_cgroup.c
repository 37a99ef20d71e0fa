/*
 * cgroup: detection, creation, limits, placement, stats, kill and cleanup.
 *
 * Two kinds of cases. Fake-tree cases run anywhere: a temporary directory
 * plays the root (proc/self/mountinfo, sys/fs/cgroup/...) and a fake mkdir in
 * prisn_cgroup_sys fills each new directory with the files the kernel would
 * create, so what create, stats and kill_all write and read is checked byte
 * for byte — this is how the v2 code is tested on a machine without v2
 * controllers. Real cases need root and writable hierarchies; they say "skip"
 * with the reason when those are missing, and never leave a directory or a
 * process behind (a parent "prisn-ctest-<pid>" of their own, removed at the
 * end).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "check.h"
#include "proc.h"

/* ---- helpers ------------------------------------------------------------ */

/* snprintf into an array, checked: a test path never silently truncates. */
#define PATHF(buf, ...) CHECK(snprintf(buf, sizeof buf, __VA_ARGS__) < (int)sizeof buf)

static void put(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* The content of a file ("" if unreadable), in a static buffer per call. */
static const char *get(const char *dir, const char *file) {
    static char bufs[4][512];
    static int next;
    char *buf = bufs[next++ % 4];
    char path[PRISN_CGROUP_PATH_MAX];
    PATHF(path, "%s/%s", dir, file);
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(buf, 1, 511, f);
        buf[n] = '\0';
        fclose(f);
    }
    return buf;
}

static void mkdirs(const char *path) {
    char tmp[PRISN_CGROUP_PATH_MAX];
    PATHF(tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
    mkdir(tmp, 0755);
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tree(const char *dir) {
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the fake kernel ---------------------------------------------------- */

static int fake_version; /* 1 or 2: which files a new directory gets */
static int fake_mkdir_calls;

static const char *const v2_files[][2] = {
    {"cgroup.procs", ""},       {"cgroup.kill", ""},   {"cgroup.subtree_control", ""},
    {"cgroup.controllers", ""}, {"memory.max", "max"}, {"memory.swap.max", "max"},
    {"cpu.max", "max 100000"},  {"pids.max", "max"},   {"memory.current", "0"},
    {"memory.events", ""},      {"cpu.stat", ""},      {"pids.current", "0"},
    {"pids.events", "max 0"},   {NULL, NULL},
};

static const char *const v1_files[][2] = {
    {"cgroup.procs", ""},
    {"memory.limit_in_bytes", "9223372036854771712"},
    {"memory.memsw.limit_in_bytes", "9223372036854771712"},
    {"memory.usage_in_bytes", "0"},
    {"memory.max_usage_in_bytes", "0"},
    {"memory.failcnt", "0"},
    {"memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"},
    {"cpu.cfs_quota_us", "-1"},
    {"cpu.cfs_period_us", "100000"},
    {"cpu.stat", "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n"},
    {"cpuacct.usage", "0"},
    {"pids.max", "max"},
    {"pids.current", "0"},
    {"pids.events", "max 0"},
    {NULL, NULL},
};

static int fake_mkdir(const char *path, mode_t mode) {
    fake_mkdir_calls++;
    if (mkdir(path, mode) < 0)
        return -1;
    const char *const(*files)[2] = fake_version == 2 ? v2_files : v1_files;
    for (int i = 0; files[i][0]; i++) {
        char file[PRISN_CGROUP_PATH_MAX];
        PATHF(file, "%s/%s", path, files[i][0]);
        put(file, files[i][1]);
    }
    return 0;
}

static int fake_busy_left; /* rmdir says EBUSY this many times first */
static int fake_rmdir_calls;

/* cgroupfs removes a directory with its interface files in it. */
static int fake_rmdir(const char *path) {
    fake_rmdir_calls++;
    if (fake_busy_left > 0) {
        fake_busy_left--;
        errno = EBUSY;
        return -1;
    }
    const char *const(*files)[2] = fake_version == 2 ? v2_files : v1_files;
    for (int i = 0; files[i][0]; i++) {
        char file[PRISN_CGROUP_PATH_MAX];
        PATHF(file, "%s/%s", path, files[i][0]);
        unlink(file);
    }
    return rmdir(path);
}

static const char *fake_write_fails_on; /* a file name suffix, or NULL */

static ssize_t fake_write(int fd, const void *buf, size_t len) {
    if (fake_write_fails_on) {
        char link[64], target[PRISN_CGROUP_PATH_MAX];
        PATHF(link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        target[n > 0 ? n : 0] = '\0';
        size_t tl = strlen(target), sl = strlen(fake_write_fails_on);
        if (tl >= sl && strcmp(target + tl - sl, fake_write_fails_on) == 0) {
            errno = EACCES;
            return -1;
        }
    }
    return write(fd, buf, len);
}

static pid_t fake_killed[8];
static int fake_nkilled;
static char fake_procs_path[PRISN_CGROUP_PATH_MAX];

/* Records the pid; once two are "killed", the cgroup is empty. */
static int fake_kill(pid_t pid, int sig) {
    CHECK_INT(sig, SIGKILL);
    if (fake_nkilled < 8)
        fake_killed[fake_nkilled++] = pid;
    if (fake_nkilled == 2)
        put(fake_procs_path, "");
    return 0;
}

static prisn_cgroup_syscalls saved_sys;
static char fake_root[256];

/* A temporary root with mountinfo; v2: cgroup2 with all controllers at
 * /sys/fs/cgroup; v1: memory, cpu+cpuacct, pids hierarchies and an empty v2. */
static void fake_setup(int version) {
    saved_sys = prisn_cgroup_sys;
    prisn_cgroup_sys.mkdir = fake_mkdir;
    prisn_cgroup_sys.rmdir = fake_rmdir;
    prisn_cgroup_sys.write = fake_write;
    prisn_cgroup_sys.kill = fake_kill;
    fake_version = version;
    fake_mkdir_calls = fake_rmdir_calls = fake_busy_left = fake_nkilled = 0;
    fake_write_fails_on = NULL;
    PATHF(fake_root, "/tmp/prisn-cgtest-XXXXXX");
    CHECK(mkdtemp(fake_root) != NULL);
    char path[PRISN_CGROUP_PATH_MAX];
    PATHF(path, "%s/proc/self", fake_root);
    mkdirs(path);
    PATHF(path, "%s/proc/self/mountinfo", fake_root);
    if (version == 2) {
        put(path, "22 1 0:20 / /proc rw - proc proc rw\n"
                  "26 25 0:24 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n");
        PATHF(path, "%s/sys/fs/cgroup", fake_root);
        mkdirs(path);
        PATHF(path, "%s/sys/fs/cgroup/cgroup.controllers", fake_root);
        put(path, "cpuset cpu io memory hugetlb pids rdma misc\n");
        PATHF(path, "%s/sys/fs/cgroup/cgroup.subtree_control", fake_root);
        put(path, "");
    } else {
        put(path, "25 30 0:23 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
                  "26 25 0:24 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
                  "27 25 0:25 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
                  "28 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
                  "29 25 0:27 / /sys/fs/cgroup/pids\\040x rw - cgroup cgroup rw,pids\n"
                  "30 25 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n");
        const char *dirs[] = {"unified", "memory", "cpu,cpuacct", "pids x"};
        for (int i = 0; i < 4; i++) {
            PATHF(path, "%s/sys/fs/cgroup/%s", fake_root, dirs[i]);
            mkdirs(path);
        }
        PATHF(path, "%s/sys/fs/cgroup/unified/cgroup.controllers", fake_root);
        put(path, "\n");
    }
}

static void fake_teardown(void) {
    prisn_cgroup_sys = saved_sys;
    remove_tree(fake_root);
}

static prisn_cgroup_limits no_limits(void) {
    prisn_cgroup_limits l = {-1, -1, -1, -1};
    return l;
}

/* ---- fake tree: detection ----------------------------------------------- */

static void test_detect_v2(void) {
    fake_setup(2);
    prisn_cgroup_layout layout;
    CHECK_INT(prisn_cgroup_detect(fake_root, &layout), 0);
    char want[PRISN_CGROUP_PATH_MAX];
    PATHF(want, "%s/sys/fs/cgroup", fake_root);
    CHECK_STR(layout.v2_mount, want);
    for (int c = PRISN_CGROUP_MEMORY; c <= PRISN_CGROUP_PIDS; c++) {
        CHECK_INT(layout.version[c], PRISN_CGROUP_V2);
        CHECK_STR(layout.mount[c], want);
    }
    CHECK_INT(layout.version[PRISN_CGROUP_CPUACCT], PRISN_CGROUP_NONE);
    fake_teardown();
}

static void test_detect_v1_hybrid(void) {
    fake_setup(1);
    prisn_cgroup_layout layout;
    CHECK_INT(prisn_cgroup_detect(fake_root, &layout), 0);
    char want[PRISN_CGROUP_PATH_MAX];
    CHECK_INT(layout.version[PRISN_CGROUP_MEMORY], PRISN_CGROUP_V1);
    PATHF(want, "%s/sys/fs/cgroup/memory", fake_root);
    CHECK_STR(layout.mount[PRISN_CGROUP_MEMORY], want);
    PATHF(want, "%s/sys/fs/cgroup/cpu,cpuacct", fake_root);
    CHECK_STR(layout.mount[PRISN_CGROUP_CPU], want);
    CHECK_STR(layout.mount[PRISN_CGROUP_CPUACCT], want);
    CHECK_INT(layout.version[PRISN_CGROUP_CPUACCT], PRISN_CGROUP_V1);
    PATHF(want, "%s/sys/fs/cgroup/pids x", fake_root); /* \040 unescaped */
    CHECK_STR(layout.mount[PRISN_CGROUP_PIDS], want);
    PATHF(want, "%s/sys/fs/cgroup/unified", fake_root);
    CHECK_STR(layout.v2_mount, want); /* mounted, but it carries no controller */
    fake_teardown();
}

static void test_detect_without_mountinfo(void) {
    prisn_cgroup_layout layout;
    CHECK_INT(prisn_cgroup_detect("/nonexistent-root", &layout), -ENOENT);
}

/* ---- fake tree: v2 ------------------------------------------------------ */

static void test_v2_create_writes_limits(void) {
    fake_setup(2);
    prisn_cgroup_layout layout;
    prisn_cgroup_detect(fake_root, &layout);
    prisn_cgroup cg;
    prisn_cgroup_limits l = {64 << 20, 25000, 100000, 32};
    CHECK_INT(prisn_cgroup_create(&cg, &layout, "prisn", "job-1", &l), 0);
    char top[PRISN_CGROUP_PATH_MAX], parent[PRISN_CGROUP_PATH_MAX], dir[PRISN_CGROUP_PATH_MAX];
    PATHF(top, "%s/sys/fs/cgroup", fake_root);
    PATHF(parent, "%s/prisn", top);
    PATHF(dir, "%s/job-1", parent);
    CHECK_INT(cg.nnodes, 1);
    CHECK_STR(cg.nodes[0].path, dir);
    /* Controllers enabled on the way down, so job-1 gets them. */
    CHECK_STR(get(top, "cgroup.subtree_control"), "+memory +cpu +pids");
    CHECK_STR(get(parent, "cgroup.subtree_control"), "+memory +cpu +pids");
    CHECK_STR(get(dir, "memory.max"), "67108864");
    CHECK_STR(get(dir, "memory.swap.max"), "0");
    CHECK_STR(get(dir, "cpu.max"), "25000 100000");
    CHECK_STR(get(dir, "pids.max"), "32");
    CHECK(prisn_cgroup_dir_fd(&cg) >= 0);
    int fds[4];
    CHECK_INT(prisn_cgroup_procs_fds(&cg, false, fds, 4), 0);
    CHECK_INT(prisn_cgroup_procs_fds(&cg, true, fds, 4), 1);
    CHECK_INT(prisn_cgroup_destroy(&cg, 1), 0);
    CHECK(!exists(dir));
    CHECK(exists(parent));                      /* shared by every workload: it stays */
    CHECK_INT(prisn_cgroup_destroy(&cg, 1), 0); /* idempotent */
    CHECK_INT(fake_rmdir_calls, 1);
    fake_teardown();
}

static void test_v2_enables_only_missing_controllers(void) {
    fake_setup(2);
    char path[PRISN_CGROUP_PATH_MAX];
    PATHF(path, "%s/sys/fs/cgroup/cgroup.subtree_control", fake_root);
    put(path, "memory pids\n");
    prisn_cgroup_layout layout;
    prisn_cgroup_detect(fake_root, &layout);
    prisn_cgroup cg;
    prisn_cgroup_limits l = no_limits();
    CHECK_INT(prisn_cgroup_create(&cg, &layout, "a/b", "job-2", &l), 0);
    char top[PRISN_CGROUP_PATH_MAX], dir[PRISN_CGROUP_PATH_MAX];
    PATHF(top, "%s/sys/fs/cgroup", fake_root);
    CHECK_STR(get(top, "cgroup.subtree_control"), "+cpu");
    PATHF(dir, "%s/a", top);
    CHECK_STR(get(dir, "cgroup.subtree_control"), "+memory +cpu +pids");
    PATHF(dir, "%s/a/b/job-2", top);
    /* No limits given: the kernel's defaults are left alone. */
    CHECK_STR(get(dir, "memory.max"), "max");
    CHECK_STR(get(dir, "memory.swap.max"), "max");
    CHECK_STR(get(dir, "cpu.max"), "max 100000");
    CHECK_STR(get(dir, "pids.max"), "max");
    prisn_cgroup_destroy(&cg, 1);
    fake_teardown();
}

static void test_v2_stats(void) {
    fake_setup(2);
    prisn_cgroup_layout layout;
    prisn_cgroup_detect(fake_root, &layout);
    prisn_cgroup cg;
    prisn_cgroup_limits l = no_limits();
    CHECK_INT(prisn_cgroup_create(&cg, &layout, "prisn", "job-3", &l), 0);
    const char *dir = cg.nodes[0].path;
    char path[PRISN_CGROUP_PATH_MAX];
#define PUT(file, text)                                                                            \
    do {                                                                                           \
        PATHF(path, "%s/%s", dir, file);                                                           \
        put(path, text);                                                                           \
    } while (0)
    PUT("memory.current", "1234\n");
    PUT("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n");
    PUT("cpu.stat", "usage_usec 500000\nuser_usec 400000\nsystem_usec 100000\nnr_periods 20\n"
                    "nr_throttled 5\nthrottled_usec 12345\n");
    PUT("pids.current", "2\n");
    PUT("pids.events", "max 7\n");
#undef PUT
    prisn_cgroup_stats st;
    prisn_cgroup_stats_read(&cg, &st);
    CHECK_INT(st.memory_current, 1234);
    CHECK_INT(st.memory_peak, -1); /* no memory.peak before Linux 5.19 */
    CHECK_INT(st.memory_limit_hits, 3);
    CHECK_INT(st.oom_kills, 1);
    CHECK_INT(st.cpu_usage_us, 500000);
    CHECK_INT(st.cpu_throttled_us, 12345);
    CHECK_INT(st.cpu_nr_throttled, 5);
    CHECK_INT(st.pids_current, 2);
    CHECK_INT(st.pids_limit_hits, 7);
    prisn_cgroup_destroy(&cg, 1);
    fake_teardown();
}

static void test_v2_kill_all_uses_cgroup_kill(void) {
    fake_setup(2);
    prisn_cgroup_layout layout;
    prisn_cgroup_detect(fake_root, &layout);
    prisn_cgroup cg;
    prisn_cgroup_limits l = no_limits();
    CHECK_INT(prisn_cgroup_create(&cg, &layout, "prisn", "job-4", &l), 0);
    CHECK_INT(prisn_cgroup_kill_all(&cg, 3), 0);
    CHECK_STR(get(cg.nodes[0].path, "cgroup.kill"), "1");
    CHECK_INT(fake_nkilled, 0);
    prisn_cgroup_destroy(&cg, 1);
    fake_teardown();
}

/* ---- fake tree: v1 and failure paths ------------------------------------ */

static void test_v1_create_writes_limits(void) {
    fake_setup(1);
    prisn_cgroup_layout layout;
    prisn_cgroup_detect(fake_root, &layout);
    prisn_cgroup cg;
    prisn_cgroup_limits l = {64 << 20, 50000, 100000, 100};
    CHECK_INT(prisn_cgroup_create(&cg, &layout, "prisn", "job-5", &l), 0);
    CHECK_INT(cg.nnodes, 3); /* memory, cpu+cpuacct, pids: the empty v2 is not used */
    CHECK_INT(prisn_cgroup_dir_fd(&cg), -1);
    int fds[4];
    CHECK_INT(prisn_cgroup_procs_fds(&cg, false, fds, 4), 3);
    const char *mem = cg.nodes[0].path, *cpu = cg.nodes[1].path, *pids = cg.nodes[2].path;
    CHECK_STR(get(mem, "memory.limit_in_bytes"), "67108864");
    CHECK_STR(get(mem, "memory.memsw.limit_in_bytes"), "67108864");
    CHECK_STR(get(cpu, "cpu.cfs_period_us"), "100000");
    CHECK_STR(get(cpu, "cpu.cfs_quota_us"), "50000");
    CHECK_STR(get(pids, "pids.max"), "100");
    /* Limits go only where their controller is. */
    CHECK_STR(get(mem, "pids.max"), "max");
    CHECK_STR(get(pids, "memory.limit_in_bytes"), "9223372036854771712");
    prisn_cgroup_stats st;
    prisn_cgroup_stats_read(&cg, &st);
    CHECK_INT(st.oom_kills, 0);
    CHECK_INT(st.cpu_usage_us, 0);
    CHECK_INT(prisn_cgroup_destroy(&cg, 1), 0);
    for (int i = 0; i < 3; i++)
        CHECK(!exists(cg.nodes[i].path));
    fake_teardown();
}

static void test_v1_kill_all_loops_over_procs(void) {
    fake_setup(1);
    prisn_cgroup_layout layout;
    prisn_cgroup_detect(fake_root, &layout);
    layout.version[PRISN_CGROUP_CPU] = layout.version[PRISN_CGROUP_CPUACCT] = PRISN_CGROUP_NONE;
    layout.version[PRISN_CGROUP_PIDS] = PRISN_CGROUP_NONE;
    prisn_cgroup cg;
    prisn_cgroup_limits l = no_limits();
    CHECK_INT(prisn_cgroup_create(&cg, &layout, "prisn", "job-6", &l), 0);
    PATHF(fake_procs_path, "%s/cgroup.procs", cg.nodes[0].path);
    put(fake_procs_path, "101\n102\n");
    CHECK_INT(prisn_cgroup_kill_all(&cg, 1), -EBUSY); /* signalled, not yet seen gone */
    CHECK_INT(fake_nkilled, 2);
    CHECK_INT(fake_killed[0], 101);
    CHECK_INT(fake_killed[1], 102);
    CHECK_INT(prisn_cgroup_kill_all(&cg, 1), 0);
    put(fake_procs_path, "7\n");
    CHECK_INT(prisn_cgroup_kill_all(&cg, 3), -EBUSY); /* a process that will not go */
    CHECK_INT(fake_nkilled, 5);
    pid_t pids[4];
    CHECK_INT(prisn_cgroup_pids(&cg, pids, 4), 1);
    CHECK_INT(pids[0], 7);
    put(fake_procs_path, "");
    prisn_cgroup_destroy(&cg, 1);
    fake_teardown();
}

static void test_destroy_retries_while_busy(void) {
    fake_setup(2);
    prisn_cgroup_layout layout;
    prisn_cgroup_detect(fake_root, &layout);
    prisn_cgroup cg;
    prisn_cgroup_limits l = no_limits();
    CHECK_INT(prisn_cgroup_create(&cg, &layout, "prisn", "job-7", &l), 0);
    fake_busy_left = 2;
    CHECK_INT(prisn_cgroup_destroy(&cg, 1), -EBUSY);
    CHECK_STR(cg.error_path, cg.nodes[0].path);
    CHECK(exists(cg.nodes[0].path));
    CHECK_INT(prisn_cgroup_destroy(&cg, 5), 0); /* one more EBUSY, then gone */
    CHECK_INT(fake_rmdir_calls, 3);
    CHECK(!exists(cg.nodes[0].path));
    fake_teardown();
}

/* A restarted server re-opens the cgroup of a workload it re-adopts: the
 * same directories, nothing made or written; a missing one is ENOENT and
 * leaves what exists alone. */
static void test_open_existing(void) {
    fake_setup(2);
    prisn_cgroup_layout layout;
    prisn_cgroup_detect(fake_root, &layout);
    prisn_cgroup made, opened, missing;
    prisn_cgroup_limits l = no_limits();
    CHECK_INT(prisn_cgroup_create(&made, &layout, "prisn", "svc-1", &l), 0);
    int mkdirs = fake_mkdir_calls;
    CHECK_INT(prisn_cgroup_open(&opened, &layout, "prisn", "svc-1"), 0);
    CHECK_INT(fake_mkdir_calls, mkdirs);
    CHECK_INT(opened.nnodes, made.nnodes);
    CHECK_STR(opened.nodes[0].path, made.nodes[0].path);
    CHECK(opened.nodes[0].procs_fd >= 0);
    CHECK_INT(prisn_cgroup_open(&missing, &layout, "prisn", "svc-2"), -ENOENT);
    CHECK(exists(made.nodes[0].path));
    /* The re-opened handle removes the directories when destroyed. */
    CHECK_INT(prisn_cgroup_destroy(&opened, 1), 0);
    CHECK(!exists(made.nodes[0].path));
    made.nodes[0].created = false;
    prisn_cgroup_destroy(&made, 1);
    fake_teardown();
}

/* A removal that stopped half-way (busy in one hierarchy) leaves the
 * directory in the others: open takes what is left, so it can still be
 * emptied and removed; gone everywhere is ENOENT. */
static void test_open_partly_removed(void) {
    fake_setup(1);
    prisn_cgroup_layout layout;
    prisn_cgroup_detect(fake_root, &layout);
    prisn_cgroup made, opened, gone;
    prisn_cgroup_limits l = no_limits();
    CHECK_INT(prisn_cgroup_create(&made, &layout, "prisn", "svc-3", &l), 0);
    CHECK(made.nnodes >= 2);
    CHECK_INT(fake_rmdir(made.nodes[0].path), 0);
    CHECK_INT(prisn_cgroup_open(&opened, &layout, "prisn", "svc-3"), 0);
    CHECK(!opened.nodes[0].created);
    CHECK(opened.nodes[1].created);
    CHECK_INT(prisn_cgroup_destroy(&opened, 1), 0);
    for (size_t i = 0; i < made.nnodes; i++) {
        CHECK(!exists(made.nodes[i].path));
        made.nodes[i].created = false;
    }
    prisn_cgroup_destroy(&made, 1);
    CHECK_INT(prisn_cgroup_open(&gone, &layout, "prisn", "svc-3"), -ENOENT);
    CHECK(strstr(gone.error_path, "/prisn/svc-3") != NULL);
    fake_teardown();
}

static void test_failed_limit_write_leaves_nothing(void) {
    fake_setup(1);
    prisn_cgroup_layout layout;
    prisn_cgroup_detect(fake_root, &layout);
    prisn_cgroup cg;
    prisn_cgroup_limits l = {1 << 20, -1, -1, 10};
    fake_write_fails_on = "/pids.max";
    CHECK_INT(prisn_cgroup_create(&cg, &layout, "prisn", "job-8", &l), -EACCES);
    char want[PRISN_CGROUP_PATH_MAX];
    PATHF(want, "%s/sys/fs/cgroup/pids x/prisn/job-8/pids.max", fake_root);
    CHECK_STR(cg.error_path, want);
    for (size_t i = 0; i < cg.nnodes; i++) {
        CHECK(!cg.nodes[i].created);
        CHECK(!exists(cg.nodes[i].path));
        CHECK_INT(cg.nodes[i].procs_fd, -1);
    }
    fake_teardown();
}

static int failing_mkdir(const char *path, mode_t mode) {
    (void)mode;
    (void)path;
    errno = EACCES;
    return -1;
}

static void test_failed_mkdir_and_bad_names(void) {
    fake_setup(2);
    prisn_cgroup_layout layout;
    prisn_cgroup_detect(fake_root, &layout);
    prisn_cgroup cg;
    prisn_cgroup_limits l = no_limits();
    prisn_cgroup_sys.mkdir = failing_mkdir;
    CHECK_INT(prisn_cgroup_create(&cg, &layout, "prisn", "job-9", &l), -EACCES);
    char want[PRISN_CGROUP_PATH_MAX];
    PATHF(want, "%s/sys/fs/cgroup/prisn", fake_root);
    CHECK_STR(cg.error_path, want);
    prisn_cgroup_sys.mkdir = fake_mkdir;
    const char *bad_names[] = {"", "a/b", "..", "."};
    for (int i = 0; i < 4; i++)
        CHECK_INT(prisn_cgroup_create(&cg, &layout, "prisn", bad_names[i], &l), -EINVAL);
    const char *bad_parents[] = {"/abs", "a/../b", "a//b", "a/", ""};
    for (int i = 0; i < 5; i++)
        CHECK_INT(prisn_cgroup_create(&cg, &layout, bad_parents[i], "job", &l), -EINVAL);
    prisn_cgroup_layout none;
    memset(&none, 0, sizeof none);
    CHECK_INT(prisn_cgroup_create(&cg, &none, "prisn", "job", &l), -ENODEV);
    CHECK_INT(fake_mkdir_calls, 0);
    fake_teardown();
}

static void test_placement_failure_is_stage_cgroup(void) {
    char *argv[] = {"true", NULL}, *env[] = {NULL};
    prisn_spawn_opts o;
    memset(&o, 0, sizeof o);
    o.file = "/bin/true";
    o.argv = argv;
    o.envp = env;
    o.umask = -1;
    o.cgroup_fd = -1;
    int ro = open("/dev/null", O_RDONLY | O_CLOEXEC); /* writing "0" to it fails */
    o.cgroup_procs_fds = &ro;
    o.ncgroup_procs_fds = 1;
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    CHECK_INT(prisn_proc_spawn(&o, &r, &stage), -EBADF);
    CHECK_STR(prisn_proc_stage_name(stage), "cgroup");
    close(ro);
}

/* ---- real hierarchies (root) -------------------------------------------- */

static char real_parent[64];

/* The real layout when root can write every hierarchy involved, else NULL
 * with the reason printed. */
static bool real_layout(prisn_cgroup_layout *layout, prisn_cgroup_version want) {
    if (geteuid() != 0) {
        printf("skip real cgroup: needs root\n");
        return false;
    }
    if (prisn_cgroup_detect(NULL, layout) < 0) {
        printf("skip real cgroup: cannot read /proc/self/mountinfo\n");
        return false;
    }
    if (want == PRISN_CGROUP_NONE) /* whichever provides memory */
        want = layout->version[PRISN_CGROUP_MEMORY] ? layout->version[PRISN_CGROUP_MEMORY]
                                                    : PRISN_CGROUP_V1;
    for (int c = PRISN_CGROUP_MEMORY; c <= PRISN_CGROUP_PIDS; c++) {
        if (layout->version[c] != want) {
            printf("skip real cgroup v%d: %s is not on v%d here\n", want,
                   prisn_cgroup_controller_name((prisn_cgroup_controller)c), want);
            return false;
        }
    }
    PATHF(real_parent, "prisn-ctest-%d", (int)getpid());
    return true;
}

static void remove_real_parent(const prisn_cgroup_layout *layout) {
    for (int c = 0; c < PRISN_CGROUP_NCONTROLLERS; c++) {
        if (layout->version[c] == PRISN_CGROUP_NONE)
            continue;
        char path[PRISN_CGROUP_PATH_MAX];
        PATHF(path, "%s/%s", layout->mount[c], real_parent);
        rmdir(path); /* ENOENT for the second controller of a shared mount */
    }
}

static prisn_spawn_opts shell(const char *script, char *argv[4]) {
    static char *env[] = {"PATH=/usr/bin:/bin", NULL};
    argv[0] = "sh";
    argv[1] = "-c";
    argv[2] = (char *)script;
    argv[3] = NULL;
    prisn_spawn_opts o;
    memset(&o, 0, sizeof o);
    o.file = "/bin/sh";
    o.argv = argv;
    o.envp = env;
    o.umask = -1;
    o.cgroup_fd = -1;
    o.stdio[1].kind = PRISN_STDIO_PIPE;
    return o;
}

static void place(prisn_spawn_opts *o, const prisn_cgroup *cg, int fds[4]) {
    o->cgroup_fd = prisn_cgroup_dir_fd(cg);
    o->ncgroup_procs_fds = prisn_cgroup_procs_fds(cg, false, fds, 4);
    o->cgroup_procs_fds = fds;
}

/* Reads until `mark` has arrived (background children keep the pipe open,
 * so EOF would not come). */
static void read_until(int fd, char *buf, size_t size, const char *mark) {
    size_t len = 0;
    ssize_t n;
    buf[0] = '\0';
    while (!strstr(buf, mark) && len + 1 < size && (n = read(fd, buf + len, size - 1 - len)) > 0) {
        len += (size_t)n;
        buf[len] = '\0';
    }
}

static void real_lifecycle(prisn_cgroup_version version) {
    prisn_cgroup_layout layout;
    if (!real_layout(&layout, version))
        return;
    prisn_cgroup cg;
    prisn_cgroup_limits l = {64 << 20, 25000, 100000, 32};
    int rc = prisn_cgroup_create(&cg, &layout, real_parent, "job", &l);
    CHECK_INT(rc, 0);
    if (rc < 0) {
        printf("  create failed at %s\n", cg.error_path);
        remove_real_parent(&layout);
        return;
    }
    for (size_t i = 0; i < cg.nnodes; i++) {
        const char *dir = cg.nodes[i].path;
        unsigned has = cg.nodes[i].controllers;
        if (version == PRISN_CGROUP_V2) {
            CHECK_STR(get(dir, "memory.max"), "67108864\n");
            CHECK_STR(get(dir, "cpu.max"), "25000 100000\n");
            CHECK_STR(get(dir, "pids.max"), "32\n");
        } else if (has & (1u << PRISN_CGROUP_MEMORY)) {
            CHECK_STR(get(dir, "memory.limit_in_bytes"), "67108864\n");
        } else if (has & (1u << PRISN_CGROUP_CPU)) {
            CHECK_STR(get(dir, "cpu.cfs_quota_us"), "25000\n");
            CHECK_STR(get(dir, "cpu.cfs_period_us"), "100000\n");
        } else if (has & (1u << PRISN_CGROUP_PIDS)) {
            CHECK_STR(get(dir, "pids.max"), "32\n");
        }
    }

    /* The child is inside before exec: the shell itself reports its cgroups,
     * then leaves two background sleeps for kill_all. */
    char *argv[4];
    int fds[4];
    prisn_spawn_opts o =
        shell("cat /proc/self/cgroup; sleep 30 & sleep 30 & echo started; wait", argv);
    place(&o, &cg, fds);
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    rc = prisn_proc_spawn(&o, &r, &stage);
    CHECK_INT(rc, 0);
    if (rc == 0) {
        char out[4096];
        read_until(r.stdio_fds[1], out, sizeof out, "started\n");
        char want[128];
        PATHF(want, "/%s/job\n", real_parent);
        const char *names[] = {"memory", "cpu", "pids"};
        for (int c = 0; c < 3; c++) {
            char line[256];
            if (version == PRISN_CGROUP_V2)
                PATHF(line, "0::%s", want);
            else
                PATHF(line, ":%s:%s", names[c], want);
            if (!strstr(out, line) && version == PRISN_CGROUP_V1) /* co-mounted: "cpu,cpuacct" */
                PATHF(line, ",%s:%s", names[c], want);
            CHECK(strstr(out, line) != NULL);
        }
        pid_t pids[16];
        CHECK(prisn_cgroup_pids(&cg, pids, 16) >= 1);
        prisn_cgroup_stats st;
        prisn_cgroup_stats_read(&cg, &st);
        CHECK(st.memory_current > 0);
        CHECK(st.cpu_usage_us > 0);
        CHECK(st.pids_current >= 1 && st.pids_current <= 32);
        CHECK_INT(st.oom_kills, 0);
        CHECK_INT(prisn_cgroup_kill_all(&cg, 100), 0);
        CHECK_INT(prisn_cgroup_pids(&cg, pids, 16), 0);
        prisn_exit_status est;
        CHECK_INT(prisn_proc_wait(r.pid, r.pidfd, false, &est), 1);
        CHECK(est.signaled && est.signal == SIGKILL);
        close(r.pidfd);
        close(r.stdio_fds[1]);
    }
    CHECK_INT(prisn_cgroup_destroy(&cg, 100), 0);
    for (size_t i = 0; i < cg.nnodes; i++)
        CHECK(!exists(cg.nodes[i].path));
    remove_real_parent(&layout);
}

static void test_real_v1(void) {
    real_lifecycle(PRISN_CGROUP_V1);
}

static void test_real_v2(void) {
    real_lifecycle(PRISN_CGROUP_V2);
}

/* The v2 mechanism for real even where v2 carries no controller (hybrid
 * machines like this one): a v2 node that only accounts CPU (cpu.stat is
 * core accounting), entered with CLONE_INTO_CGROUP, emptied by cgroup.kill. */
static void test_real_v2_placement_without_controllers(void) {
    prisn_cgroup_layout real;
    if (geteuid() != 0 || prisn_cgroup_detect(NULL, &real) < 0 || !real.v2_mount[0]) {
        printf("skip real v2 placement: needs root and a cgroup2 mount\n");
        return;
    }
    prisn_cgroup_layout layout;
    memset(&layout, 0, sizeof layout);
    layout.version[PRISN_CGROUP_CPUACCT] = PRISN_CGROUP_V2;
    PATHF(layout.mount[PRISN_CGROUP_CPUACCT], "%s", real.v2_mount);
    PATHF(real_parent, "prisn-ctest-%d", (int)getpid());
    prisn_cgroup cg;
    prisn_cgroup_limits l = no_limits();
    int rc = prisn_cgroup_create(&cg, &layout, real_parent, "v2", &l);
    if (rc == -EACCES || rc == -EROFS || rc == -EPERM) {
        printf("skip real v2 placement: %s is not writable\n", cg.error_path);
        return;
    }
    CHECK_INT(rc, 0);
    if (rc < 0)
        return;
    CHECK(prisn_cgroup_dir_fd(&cg) >= 0);
    int fds[4];
    CHECK_INT(prisn_cgroup_procs_fds(&cg, false, fds, 4), 0);
    char *argv[4];
    prisn_spawn_opts o = shell("cat /proc/self/cgroup; sleep 30 & echo started; wait", argv);
    place(&o, &cg, fds);
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    rc = prisn_proc_spawn(&o, &r, &stage);
    CHECK_INT(rc, 0);
    if (rc == 0) {
        char out[4096], want[128];
        read_until(r.stdio_fds[1], out, sizeof out, "started\n");
        PATHF(want, "0::/%s/v2\n", real_parent);
        CHECK(strstr(out, want) != NULL);
        pid_t pids[8];
        CHECK_INT(prisn_cgroup_pids(&cg, pids, 8), 2); /* the shell and its sleep */
        prisn_cgroup_stats st;
        prisn_cgroup_stats_read(&cg, &st);
        CHECK(st.cpu_usage_us > 0);
        CHECK_INT(st.oom_kills, -1); /* no memory controller here */
        char kill_file[PRISN_CGROUP_PATH_MAX];
        PATHF(kill_file, "%s/cgroup.kill", cg.nodes[0].path);
        if (!exists(kill_file))
            printf("  (no cgroup.kill before Linux 5.14: the pid loop was used)\n");
        CHECK_INT(prisn_cgroup_kill_all(&cg, 100), 0);
        prisn_exit_status est;
        CHECK_INT(prisn_proc_wait(r.pid, r.pidfd, false, &est), 1);
        CHECK(est.signaled && est.signal == SIGKILL);
        close(r.pidfd);
        close(r.stdio_fds[1]);
    }
    CHECK_INT(prisn_cgroup_destroy(&cg, 100), 0);
    CHECK(!exists(cg.nodes[0].path));
    remove_real_parent(&layout);
}

/* A child over its memory limit is OOM-killed and the kill is counted. */
static void test_real_oom_kill_is_counted(void) {
    prisn_cgroup_layout layout;
    if (!real_layout(&layout, PRISN_CGROUP_NONE))
        return;
    if (access("/usr/bin/python3", X_OK) != 0) {
        printf("skip OOM: python3 not installed\n");
        return;
    }
    prisn_cgroup cg;
    prisn_cgroup_limits l = {16 << 20, -1, -1, -1};
    int rc = prisn_cgroup_create(&cg, &layout, real_parent, "oom", &l);
    CHECK_INT(rc, 0);
    if (rc < 0) {
        remove_real_parent(&layout);
        return;
    }
    char *argv[] = {"python3", "-c", "b = b'x' * (160 << 20)", NULL}, *env[] = {NULL};
    prisn_spawn_opts o;
    memset(&o, 0, sizeof o);
    o.file = "/usr/bin/python3";
    o.argv = argv;
    o.envp = env;
    o.umask = -1;
    o.stdio[2].kind = PRISN_STDIO_NULL;
    int fds[4];
    place(&o, &cg, fds);
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    CHECK_INT(prisn_proc_spawn(&o, &r, &stage), 0);
    prisn_exit_status est;
    CHECK_INT(prisn_proc_wait(r.pid, r.pidfd, false, &est), 1);
    close(r.pidfd);
    CHECK(est.signaled && est.signal == SIGKILL);
    prisn_cgroup_stats st;
    prisn_cgroup_stats_read(&cg, &st);
    CHECK(st.oom_kills >= 1 || (st.oom_kills < 0 && st.memory_limit_hits > 0));
    CHECK(st.memory_peak <= (16 << 20) + (1 << 20) || st.memory_peak < 0);
    prisn_cgroup_kill_all(&cg, 100);
    CHECK_INT(prisn_cgroup_destroy(&cg, 100), 0);
    remove_real_parent(&layout);
}

int main(void) {
    static const check_case cases[] = {
        {"detect: v2 with every controller", test_detect_v2},
        {"detect: v1 hierarchies beside an empty v2", test_detect_v1_hybrid},
        {"detect: unreadable mountinfo", test_detect_without_mountinfo},
        {"v2: create enables controllers and writes limits", test_v2_create_writes_limits},
        {"v2: only missing controllers enabled; no limits, no writes",
         test_v2_enables_only_missing_controllers},
        {"v2: stats from memory.events, cpu.stat, pids.events", test_v2_stats},
        {"v2: kill_all writes cgroup.kill", test_v2_kill_all_uses_cgroup_kill},
        {"v1: a directory per hierarchy, limits where they belong", test_v1_create_writes_limits},
        {"v1: kill_all signals every pid until empty", test_v1_kill_all_loops_over_procs},
        {"destroy retries while busy, idempotent", test_destroy_retries_while_busy},
        {"open: an existing cgroup, nothing made; missing is ENOENT", test_open_existing},
        {"open: what a half-way removal left, to remove it", test_open_partly_removed},
        {"a failed limit write leaves nothing behind", test_failed_limit_write_leaves_nothing},
        {"failed mkdir, bad names, no hierarchy", test_failed_mkdir_and_bad_names},
        {"failed placement is reported as stage cgroup", test_placement_failure_is_stage_cgroup},
        {"real v1: limits, placement before exec, stats, kill, destroy", test_real_v1},
        {"real v2: limits, placement before exec, stats, kill, destroy", test_real_v2},
        {"real v2: CLONE_INTO_CGROUP and cgroup.kill, no controllers needed",
         test_real_v2_placement_without_controllers},
        {"real: OOM kill counted", test_real_oom_kill_is_counted},
        {NULL, NULL},
    };
    return check_main(cases);
}
