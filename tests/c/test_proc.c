/*
 * proc: the spawn primitive creates exactly the child it was asked for, tells
 * exec failures from script failures, and cleans up on every failure path.
 * Failure paths of fork/clone3 are reached through prisn_proc_sys.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"
#include "proc.h"

static char *const empty_env[] = {NULL};

static prisn_spawn_opts shell(const char *script, char *argv_store[4]) {
    argv_store[0] = "sh";
    argv_store[1] = "-c";
    argv_store[2] = (char *)script;
    argv_store[3] = NULL;
    prisn_spawn_opts o;
    memset(&o, 0, sizeof o);
    o.file = "/bin/sh";
    o.argv = argv_store;
    o.envp = empty_env;
    o.umask = -1;
    o.cgroup_fd = -1;
    return o;
}

/* Runs the spawn and waits; returns the exit status. */
static prisn_exit_status run_and_wait(const prisn_spawn_opts *o) {
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    prisn_exit_status st;
    memset(&st, 0, sizeof st);
    int rc = prisn_proc_spawn(o, &r, &stage);
    CHECK_INT(rc, 0);
    if (rc == 0) {
        CHECK_INT(prisn_proc_wait(r.pid, r.pidfd, false, &st), 1);
        if (r.pidfd >= 0)
            close(r.pidfd);
        for (int i = 0; i < 3; i++)
            if (r.stdio_fds[i] >= 0)
                close(r.stdio_fds[i]);
    }
    return st;
}

/* Reads everything from fd into buf (NUL-terminated). */
static void read_all(int fd, char *buf, size_t size) {
    size_t len = 0;
    ssize_t n;
    while (len + 1 < size && (n = read(fd, buf + len, size - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
}

static void test_exit_code(void) {
    char *argv[4];
    prisn_spawn_opts o = shell("exit 42", argv);
    prisn_exit_status st = run_and_wait(&o);
    CHECK(st.exited);
    CHECK_INT(st.code, 42);
    CHECK(!st.signaled);
}

static void test_killed_by_signal(void) {
    char *argv[4];
    prisn_spawn_opts o = shell("kill -TERM $$", argv);
    prisn_exit_status st = run_and_wait(&o);
    CHECK(st.signaled);
    CHECK_INT(st.signal, SIGTERM);
    CHECK(!st.exited);
}

static void test_exec_failure_is_reported(void) {
    char *argv[] = {"python3", NULL};
    prisn_spawn_opts o;
    memset(&o, 0, sizeof o);
    o.file = "/nonexistent/python3";
    o.argv = argv;
    o.envp = empty_env;
    o.umask = -1;
    o.cgroup_fd = -1;
    o.stdio[1].kind = PRISN_STDIO_PIPE;
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    CHECK_INT(prisn_proc_spawn(&o, &r, &stage), -ENOENT);
    CHECK_STR(prisn_proc_stage_name(stage), "exec");
}

static void test_chdir_failure_is_reported(void) {
    char *argv[4];
    prisn_spawn_opts o = shell("true", argv);
    o.cwd = "/nonexistent-dir";
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    CHECK_INT(prisn_proc_spawn(&o, &r, &stage), -ENOENT);
    CHECK_STR(prisn_proc_stage_name(stage), "chdir");
}

static void test_environment_is_exact(void) {
    char *argv[4];
    prisn_spawn_opts o = shell("env", argv);
    char *env[] = {"ONLY=this", NULL};
    o.envp = env;
    o.stdio[1].kind = PRISN_STDIO_PIPE;
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    setenv("PRISN_TEST_LEAK", "1", 1);
    CHECK_INT(prisn_proc_spawn(&o, &r, &stage), 0);
    char out[4096];
    read_all(r.stdio_fds[1], out, sizeof out);
    prisn_exit_status st;
    CHECK_INT(prisn_proc_wait(r.pid, r.pidfd, false, &st), 1);
    /* sh itself adds PWD; nothing of ours may appear. */
    CHECK(strstr(out, "ONLY=this\n") != NULL);
    CHECK(strstr(out, "PRISN_TEST_LEAK") == NULL);
    CHECK(strstr(out, "PATH=/") == NULL);
    close(r.stdio_fds[1]);
    if (r.pidfd >= 0)
        close(r.pidfd);
}

static void test_no_descriptor_leaks(void) {
    int leaked = open("/dev/null", O_RDONLY); /* not close-on-exec on purpose */
    CHECK(leaked > 2);
    char *argv[4];
    prisn_spawn_opts o = shell("ls /proc/self/fd", argv);
    o.stdio[1].kind = PRISN_STDIO_PIPE;
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    CHECK_INT(prisn_proc_spawn(&o, &r, &stage), 0);
    char out[1024];
    read_all(r.stdio_fds[1], out, sizeof out);
    prisn_exit_status st;
    prisn_proc_wait(r.pid, r.pidfd, false, &st);
    /* ls sees 0, 1, 2 and the descriptor it opened for the directory. */
    CHECK_STR(out, "0\n1\n2\n3\n");
    close(leaked);
    close(r.stdio_fds[1]);
    if (r.pidfd >= 0)
        close(r.pidfd);
}

static void test_stdio_file_and_null(void) {
    char path[] = "/tmp/prisn-proc-test-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    char *argv[4];
    prisn_spawn_opts o = shell("echo out; echo err >&2; cat", argv);
    o.stdio[0].kind = PRISN_STDIO_NULL;
    o.stdio[1].kind = PRISN_STDIO_FILE;
    o.stdio[1].path = path;
    o.stdio[1].flags = O_WRONLY | O_TRUNC;
    o.stdio[2].kind = PRISN_STDIO_FILE;
    o.stdio[2].path = path;
    o.stdio[2].flags = O_WRONLY | O_APPEND;
    prisn_exit_status st = run_and_wait(&o);
    CHECK(st.exited && st.code == 0);
    char out[256];
    fd = open(path, O_RDONLY);
    read_all(fd, out, sizeof out);
    close(fd);
    unlink(path);
    CHECK(strstr(out, "out\n") != NULL);
    CHECK(strstr(out, "err\n") != NULL);
}

/* Alive and not a zombie: a killed orphan may wait a while for its reaper. */
static bool process_alive(pid_t pid) {
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    read_all(fd, stat, sizeof stat);
    close(fd);
    const char *end = strrchr(stat, ')');
    return end && end[1] == ' ' && end[2] != 'Z' && end[2] != 'X';
}

static void test_session_and_group_kill(void) {
    /* The child starts a grandchild in its group; killing the group ends both. */
    char *argv[4];
    prisn_spawn_opts o = shell("sleep 30 & echo $!; wait", argv);
    o.new_session = true;
    o.stdio[1].kind = PRISN_STDIO_PIPE;
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    CHECK_INT(prisn_proc_spawn(&o, &r, &stage), 0);
    char line[64] = {0};
    ssize_t n = read(r.stdio_fds[1], line, sizeof line - 1);
    CHECK(n > 0);
    pid_t grandchild = (pid_t)atoi(line);
    CHECK(grandchild > 0);
    CHECK_INT(getsid(r.pid), r.pid);
    CHECK_INT(getpgid(grandchild), r.pid);
    CHECK_INT(prisn_proc_kill(r.pid, r.pidfd, SIGKILL, true), 0);
    prisn_exit_status st;
    CHECK_INT(prisn_proc_wait(r.pid, r.pidfd, false, &st), 1);
    CHECK(st.signaled && st.signal == SIGKILL);
    /* The grandchild was reparented and killed; give the kernel a moment. */
    for (int i = 0; i < 100 && process_alive(grandchild); i++)
        usleep(10000);
    CHECK(!process_alive(grandchild));
    close(r.stdio_fds[1]);
    if (r.pidfd >= 0)
        close(r.pidfd);
}

static void test_wait_nohang(void) {
    char *argv[4];
    prisn_spawn_opts o = shell("sleep 0.2", argv);
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    CHECK_INT(prisn_proc_spawn(&o, &r, &stage), 0);
    prisn_exit_status st;
    CHECK_INT(prisn_proc_wait(r.pid, r.pidfd, true, &st), 0);
    CHECK_INT(prisn_proc_wait(r.pid, r.pidfd, false, &st), 1);
    CHECK(st.exited && st.code == 0);
    CHECK_INT(prisn_proc_wait(r.pid, r.pidfd, true, &st), -ECHILD);
    if (r.pidfd >= 0)
        close(r.pidfd);
}

static void test_rlimit_and_umask(void) {
    char *argv[4];
    prisn_spawn_opts o = shell("test \"$(ulimit -n)\" = 64 && test \"$(umask)\" = 0027", argv);
    prisn_rlimit limits[] = {{RLIMIT_NOFILE, {64, 64}}};
    o.rlimits = limits;
    o.nrlimits = 1;
    o.umask = 027;
    prisn_exit_status st = run_and_wait(&o);
    CHECK(st.exited);
    CHECK_INT(st.code, 0);
}

static void test_signal_state_is_reset(void) {
    /* prisn ignores SIGPIPE and blocks SIGUSR1 here; the child must not. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, NULL);
    char *argv[4];
    prisn_spawn_opts o = shell("grep -E '^(SigBlk|SigIgn)' /proc/self/status", argv);
    o.stdio[1].kind = PRISN_STDIO_PIPE;
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    CHECK_INT(prisn_proc_spawn(&o, &r, &stage), 0);
    char out[256];
    read_all(r.stdio_fds[1], out, sizeof out);
    prisn_exit_status st;
    prisn_proc_wait(r.pid, r.pidfd, false, &st);
    CHECK_STR(out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    close(r.stdio_fds[1]);
    if (r.pidfd >= 0)
        close(r.pidfd);
    sigprocmask(SIG_UNBLOCK, &block, NULL);
    signal(SIGPIPE, SIG_DFL);
}

static void test_switches_identity_when_root(void) {
    if (geteuid() != 0) {
        printf("skip identity switch: needs root\n");
        return;
    }
    char *argv[4];
    prisn_spawn_opts o = shell("echo $(id -u) $(id -g) $(id -G); grep NoNewPrivs /proc/self/status", argv);
    char *env[] = {"PATH=/usr/bin:/bin", NULL};
    o.envp = env;
    gid_t groups[] = {65534};
    o.set_ids = true;
    o.uid = 65534;
    o.gid = 65534;
    o.groups = groups;
    o.ngroups = 1;
    o.no_new_privs = true;
    o.stdio[1].kind = PRISN_STDIO_PIPE;
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    CHECK_INT(prisn_proc_spawn(&o, &r, &stage), 0);
    char out[256];
    read_all(r.stdio_fds[1], out, sizeof out);
    prisn_exit_status st;
    prisn_proc_wait(r.pid, r.pidfd, false, &st);
    CHECK_STR(out, "65534 65534 65534\nNoNewPrivs:\t1\n");
    close(r.stdio_fds[1]);
    if (r.pidfd >= 0)
        close(r.pidfd);
}

static long no_clone3(void *args, size_t size) {
    (void)args;
    (void)size;
    errno = ENOSYS;
    return -1;
}

static pid_t failing_fork(void) {
    errno = EAGAIN;
    return -1;
}

static void test_fork_fallback_without_clone3(void) {
    prisn_proc_syscalls saved = prisn_proc_sys;
    prisn_proc_sys.clone3 = no_clone3;
    char *argv[4];
    prisn_spawn_opts o = shell("exit 7", argv);
    prisn_exit_status st = run_and_wait(&o);
    CHECK(st.exited && st.code == 7);
    prisn_proc_sys = saved;
}

static void test_fork_failure_leaves_nothing_open(void) {
    prisn_proc_syscalls saved = prisn_proc_sys;
    prisn_proc_sys.clone3 = no_clone3;
    prisn_proc_sys.fork = failing_fork;
    int before = dup(0);
    close(before);
    char *argv[4];
    prisn_spawn_opts o = shell("true", argv);
    o.stdio[1].kind = PRISN_STDIO_PIPE;
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    CHECK_INT(prisn_proc_spawn(&o, &r, &stage), -EAGAIN);
    CHECK_STR(prisn_proc_stage_name(stage), "setup");
    int after = dup(0); /* the lowest free descriptor: unchanged if nothing leaked */
    CHECK_INT(after, before);
    close(after);
    prisn_proc_sys = saved;
}

int main(void) {
    static const check_case cases[] = {
        {"exit code", test_exit_code},
        {"killed by a signal", test_killed_by_signal},
        {"exec failure is reported with its stage", test_exec_failure_is_reported},
        {"chdir failure is reported with its stage", test_chdir_failure_is_reported},
        {"environment is exactly what was given", test_environment_is_exact},
        {"no descriptor of prisn leaks into the child", test_no_descriptor_leaks},
        {"stdio to files and /dev/null", test_stdio_file_and_null},
        {"new session; killing the group ends grandchildren", test_session_and_group_kill},
        {"wait with and without nohang", test_wait_nohang},
        {"rlimits and umask", test_rlimit_and_umask},
        {"signal mask and dispositions are reset", test_signal_state_is_reset},
        {"uid, gid, groups and no_new_privs (as root)", test_switches_identity_when_root},
        {"fork fallback without clone3", test_fork_fallback_without_clone3},
        {"fork failure leaves nothing open", test_fork_failure_leaves_nothing_open},
        {NULL, NULL},
    };
    return check_main(cases);
}
