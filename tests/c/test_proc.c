/*
 * proc: the spawn primitive creates exactly the child it was asked for, tells
 * exec failures from script failures, and cleans up on every failure path.
 * Failure paths of fork/clone3 are reached through prisn_proc_sys.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "proc.h"
#include "sandbox.h"

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

/* ---- spawning from a threaded process ---------------------------------- */

/* The server is multi-threaded (libuv's threadpool, the checkpoint thread):
 * a thread that keeps creating and joining threads stands in for them. A
 * thread caught mid-creation at clone time once made glibc's setuid wrapper
 * in the child wait forever for it (issue 12). */
static atomic_bool churn_stop;

static void *churn_noop(void *arg) {
    return arg;
}

static void *churn_run(void *arg) {
    while (!atomic_load(&churn_stop)) {
        pthread_t t;
        if (pthread_create(&t, NULL, churn_noop, NULL) == 0)
            pthread_join(t, NULL);
    }
    return arg;
}

/* Shared with the bounded subprocess: the last child it created, so the
 * test can kill a child stuck before exec (and its namespace with it). */
typedef struct {
    pid_t last_child;
    int done;
} churn_shared;
static volatile churn_shared *shared;
static prisn_proc_syscalls real_sys;

static long recording_clone3(void *args, size_t size) {
    long pid = real_sys.clone3(args, size);
    if (pid > 0)
        shared->last_child = (pid_t)pid;
    return pid;
}

typedef struct {
    int spawns;
    bool sandbox;
} churn_case;

/* A sandbox with its own /proc and an init named init_name, nothing else. */
static prisn_sandbox_opts proc_sandbox(const char *init_name) {
    prisn_sandbox_opts sandbox;
    memset(&sandbox, 0, sizeof sandbox);
    sandbox.mount_proc = true;
    sandbox.init_name = init_name;
    return sandbox;
}

/* In the bounded subprocess: spawns /bin/true as nobody `spawns` times
 * while two threads churn. Exits 0 when every spawn succeeded. */
static int spawn_under_churn(const churn_case *c) {
    real_sys = prisn_proc_sys;
    prisn_proc_sys.clone3 = recording_clone3;
    pthread_t churners[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&churners[i], NULL, churn_run, NULL);
    char *argv[] = {"true", NULL};
    gid_t groups[] = {65534};
    prisn_sandbox_opts sandbox = proc_sandbox("prisn-init");
    int failures = 0;
    for (int i = 0; i < c->spawns && failures < 5; i++) {
        prisn_spawn_opts o;
        memset(&o, 0, sizeof o);
        o.file = "/bin/true";
        o.argv = argv;
        o.envp = empty_env;
        o.umask = -1;
        o.cgroup_fd = -1;
        o.set_ids = true;
        o.uid = 65534;
        o.gid = 65534;
        o.groups = groups;
        o.ngroups = 1;
        o.sandbox = c->sandbox ? &sandbox : NULL;
        prisn_spawn_result r;
        prisn_spawn_stage stage;
        int rc = prisn_proc_spawn(&o, &r, &stage);
        if (rc < 0) {
            fprintf(stderr, "  spawn %d: %s at stage %s\n", i, strerror(-rc),
                    prisn_proc_stage_name(stage));
            failures++;
            continue;
        }
        prisn_exit_status st;
        if (prisn_proc_wait(r.pid, r.pidfd, false, &st) != 1 || !st.exited || st.code != 0)
            failures++;
        shared->done = i + 1;
        if (r.pidfd >= 0)
            close(r.pidfd);
        if (r.sandbox_status_fd >= 0)
            close(r.sandbox_status_fd);
    }
    atomic_store(&churn_stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(churners[i], NULL);
    return failures == 0 ? 0 : 1;
}

/* Runs spawn_under_churn in a subprocess for at most deadline_ms: a spawn
 * that hangs makes the test fail instead of hanging ctest. */
static void check_spawns_under_churn(churn_case c, int deadline_ms) {
    if (geteuid() != 0) {
        printf("skip spawn under thread churn: needs root (set_ids%s)\n",
               c.sandbox ? ", namespaces" : "");
        return;
    }
    shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(shared != MAP_FAILED);
    shared->last_child = 0;
    shared->done = 0;
    pid_t pid = fork();
    if (pid == 0)
        _exit(spawn_under_churn(&c));
    CHECK(pid > 0);
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    struct pollfd pfd = {pidfd, POLLIN, 0};
    int ready = poll(&pfd, 1, deadline_ms);
    if (ready != 1) {
        fprintf(stderr, "  spawn %d of %d did not return within %d ms: its child hung before exec\n",
                shared->done + 1, c.spawns, deadline_ms);
        kill(pid, SIGKILL);
        if (shared->last_child > 0)
            kill(shared->last_child, SIGKILL);
        CHECK(ready == 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    close(pidfd);
    if (ready == 1)
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    munmap((void *)shared, sizeof *shared);
    atomic_store(&churn_stop, false);
}

static void test_set_ids_under_thread_churn(void) {
    check_spawns_under_churn((churn_case){.spawns = 500, .sandbox = false}, 30000);
}

static void test_sandbox_under_thread_churn(void) {
    check_spawns_under_churn((churn_case){.spawns = 100, .sandbox = true}, 30000);
}

/* ---- the start timeout --------------------------------------------------- */

static pid_t last_clone;

static long remembering_clone3(void *args, size_t size) {
    long pid = real_sys.clone3(args, size);
    if (pid > 0)
        last_clone = (pid_t)pid;
    return pid;
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* A pipe whose buffer is full: the child's write of "0" to it (as to a
 * cgroup.procs file) blocks for good, before exec. */
static int full_pipe(int p[2]) {
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
        return -1;
    char block[4096];
    memset(block, 'x', sizeof block);
    while (write(p[1], block, sizeof block) > 0) {
    }
    while (write(p[1], block, 1) > 0) {
    }
    return fcntl(p[1], F_SETFL, 0); /* blocking again, for the child */
}

/* Spawns with `o`, which hangs before exec; checks the parent returns
 * after the start timeout with ETIMEDOUT and `want_stage`, and leaves no
 * process or descriptor behind. */
static void check_start_timeout(prisn_spawn_opts *o, const char *want_stage) {
    real_sys = prisn_proc_sys;
    prisn_proc_sys.clone3 = remembering_clone3;
    last_clone = 0;
    int before = dup(0);
    close(before);
    o->start_timeout_ms = 300;
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    long long start = now_ms();
    int rc = prisn_proc_spawn(o, &r, &stage);
    long long spent = now_ms() - start;
    prisn_proc_sys = real_sys;
    CHECK_INT(rc, -ETIMEDOUT);
    CHECK(r.timed_out);
    CHECK_STR(prisn_proc_stage_name(stage), want_stage);
    CHECK(spent >= 300);
    CHECK(spent < 3000);
    /* Killed and reaped: a zombie could still be signalled. */
    CHECK(last_clone > 0);
    CHECK(kill(last_clone, 0) < 0 && errno == ESRCH);
    int after = dup(0);
    CHECK_INT(after, before);
    close(after);
}

static void test_start_timeout_kills_a_stuck_child(void) {
    int p[2];
    CHECK_INT(full_pipe(p), 0);
    char *argv[4];
    prisn_spawn_opts o = shell("true", argv);
    o.stdio[1].kind = PRISN_STDIO_PIPE;
    o.cgroup_procs_fds = &p[1];
    o.ncgroup_procs_fds = 1;
    check_start_timeout(&o, "cgroup");
    close(p[0]);
    close(p[1]);
}

static void test_start_timeout_kills_a_stuck_sandbox_init(void) {
    if (geteuid() != 0) {
        printf("skip stuck sandbox init: needs root (namespaces)\n");
        return;
    }
    char *argv[4];
    prisn_spawn_opts o = shell("true", argv);
    prisn_sandbox_opts sandbox = proc_sandbox("stuck-init"); /* main() below hangs in its place */
    o.sandbox = &sandbox;
    o.new_session = true;
    setenv("PRISN_INIT_FROM", "self", 1); /* this binary's main(), not the embedded init */
    check_start_timeout(&o, "init");
    unsetenv("PRISN_INIT_FROM");
}

/* The binary the init of a sandboxed "sleep 0.3" runs (/proc/PID/exe). */
static void sandbox_init_exe(char *exe, size_t size) {
    char *argv[4];
    prisn_spawn_opts o = shell("sleep 0.3", argv);
    prisn_sandbox_opts sandbox = proc_sandbox("prisn-init");
    o.sandbox = &sandbox;
    o.new_session = true;
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    prisn_exit_status st;
    CHECK_INT(prisn_proc_spawn(&o, &r, &stage), 0);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/exe", (int)r.pid);
    ssize_t n = readlink(path, exe, size - 1);
    exe[n > 0 ? n : 0] = '\0';
    CHECK_INT(prisn_proc_wait(r.pid, r.pidfd, false, &st), 1);
    prisn_sandbox_status_apply(r.sandbox_status_fd, &st);
    CHECK(st.exited && st.code == 0);
    close(r.sandbox_status_fd);
    if (r.pidfd >= 0)
        close(r.pidfd);
}

static void test_sandbox_init_is_the_embedded_one(void) {
    if (geteuid() != 0) {
        printf("skip embedded sandbox init: needs root (namespaces)\n");
        return;
    }
    char exe[512];
    CHECK(prisn_sandbox_raw_init_fd() >= 0);
    sandbox_init_exe(exe, sizeof exe);
    CHECK(strstr(exe, "/memfd:prisn-init") == exe);
    /* PRISN_INIT_FROM=self: this binary, as before. */
    setenv("PRISN_INIT_FROM", "self", 1);
    CHECK_INT(prisn_sandbox_raw_init_fd(), -1);
    sandbox_init_exe(exe, sizeof exe);
    unsetenv("PRISN_INIT_FROM");
    char self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    CHECK_STR(exe, self);
}

/* True when this process maps a sandbox's page (/proc/self/maps names the
 * memfd). */
static bool maps_sandbox_page(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return false;
    char line[512];
    bool found = false;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "memfd:prisn-init"))
            found = true;
    fclose(f);
    return found;
}

/* Runs `script` in a sandbox and waits; the workload's own status, as the
 * init passed it back over the status pipe. While it runs, the parent maps
 * nothing of the sandbox's (a page kept per instance was 4 kB of the
 * server's RSS). */
static prisn_exit_status run_sandboxed(const char *script) {
    char *argv[4];
    prisn_spawn_opts o = shell(script, argv);
    prisn_sandbox_opts sandbox = proc_sandbox("prisn-init");
    o.sandbox = &sandbox;
    o.new_session = true;
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    prisn_exit_status st;
    memset(&st, 0, sizeof st);
    CHECK_INT(prisn_proc_spawn(&o, &r, &stage), 0);
    CHECK(!maps_sandbox_page());
    CHECK(r.sandbox_status_fd >= 0);
    CHECK_INT(prisn_proc_wait(r.pid, r.pidfd, false, &st), 1);
    prisn_sandbox_status_apply(r.sandbox_status_fd, &st);
    close(r.sandbox_status_fd);
    if (r.pidfd >= 0)
        close(r.pidfd);
    return st;
}

static void test_sandbox_passes_the_workload_status_back(void) {
    if (geteuid() != 0) {
        printf("skip sandbox status: needs root (namespaces)\n");
        return;
    }
    /* pid 1 cannot die of a signal: without the pipe this is exit 143. */
    prisn_exit_status st = run_sandboxed("sleep 0.2; kill -TERM $$");
    CHECK(st.signaled && !st.exited);
    CHECK_INT(st.signal, SIGTERM);
    /* ...and an exit code above 128 is not taken for a signal. */
    st = run_sandboxed("exit 130");
    CHECK(st.exited && !st.signaled);
    CHECK_INT(st.code, 130);
}

/* The command line of `pid` with its NULs as spaces, trailing ones cut. */
static void cmdline_of(pid_t pid, char *buf, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, size - 1) : 0;
    if (fd >= 0)
        close(fd);
    size_t len = n > 0 ? (size_t)n : 0;
    buf[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    while (len > 0 && buf[len - 1] == ' ')
        buf[--len] = '\0';
}

/* Spawns "sleep 0.3" in a sandbox; *init_cmdline gets its init's command
 * line while it runs. Returns the workload's status. */
static prisn_exit_status sandboxed_sleep(char *init_cmdline, size_t size) {
    char *argv[4];
    prisn_spawn_opts o = shell("sleep 0.3; exit 7", argv);
    prisn_sandbox_opts sandbox = proc_sandbox("prisn-init");
    o.sandbox = &sandbox;
    o.new_session = true;
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    prisn_exit_status st;
    memset(&st, 0, sizeof st);
    CHECK_INT(prisn_proc_spawn(&o, &r, &stage), 0);
    cmdline_of(r.pid, init_cmdline, size);
    CHECK(!maps_sandbox_page());
    CHECK_INT(prisn_proc_wait(r.pid, r.pidfd, false, &st), 1);
    prisn_sandbox_status_apply(r.sandbox_status_fd, &st);
    close(r.sandbox_status_fd);
    if (r.pidfd >= 0)
        close(r.pidfd);
    return st;
}

static void *sleeping_thread(void *arg) {
    (void)arg;
    usleep(2000000);
    return NULL;
}

static void test_sandbox_init_in_place(void) {
    if (geteuid() != 0) {
        printf("skip sandbox init in place: needs root (namespaces)\n");
        return;
    }
    prisn_sandbox_set_init_in_place(true);
    /* One thread: the clone is the init, named as an exec'd one would be. */
    CHECK(prisn_sandbox_init_in_place_now());
    char cmdline[512];
    prisn_exit_status st = sandboxed_sleep(cmdline, sizeof cmdline);
    CHECK(st.exited && st.code == 7);
    CHECK_STR(cmdline, "prisn-init");
    /* It passes statuses back, and forwards nothing it should not. */
    st = run_sandboxed("sleep 0.2; kill -TERM $$");
    CHECK(st.signaled && st.signal == SIGTERM);
    st = run_sandboxed("exit 130");
    CHECK(st.exited && st.code == 130);
    /* Another thread: the init is prisn's binary exec'd, as for a server. */
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, sleeping_thread, NULL), 0);
    CHECK(!prisn_sandbox_init_in_place_now());
    st = sandboxed_sleep(cmdline, sizeof cmdline);
    CHECK(st.exited && st.code == 7);
    CHECK(strstr(cmdline, "prisn-init __sandbox-init ") == cmdline);
    pthread_join(t, NULL);
    prisn_sandbox_set_init_in_place(false);
    CHECK(!prisn_sandbox_init_in_place_now());
}

/* A gate that checks the child has not run yet (its marker file is not
 * there), waits a little so a child that did not wait would have run, and
 * answers gate_answer. */
static const char *gate_marker;
static int gate_answer;
static int gate_calls;
static bool gate_saw_marker;

static int test_gate(void *arg) {
    (void)arg;
    gate_calls++;
    usleep(100000);
    gate_saw_marker = access(gate_marker, F_OK) == 0;
    return gate_answer;
}

/* Spawns `touch MARKER` through the gate, plain or sandboxed (in place or
 * exec'd); returns the spawn's result code. */
static int gated_touch(const char *marker, int answer, bool sandboxed, bool in_place) {
    char script[256];
    snprintf(script, sizeof script, "touch %s", marker);
    char *argv[4];
    prisn_spawn_opts o = shell(script, argv);
    prisn_sandbox_opts sandbox = proc_sandbox("prisn-init");
    if (sandboxed)
        o.sandbox = &sandbox;
    prisn_sandbox_set_init_in_place(in_place);
    o.gate = test_gate;
    gate_marker = marker;
    gate_answer = answer;
    gate_calls = 0;
    gate_saw_marker = false;
    unlink(marker);
    prisn_spawn_result r;
    prisn_spawn_stage stage;
    int rc = prisn_proc_spawn(&o, &r, &stage);
    prisn_sandbox_set_init_in_place(false);
    if (rc == 0) {
        prisn_exit_status st;
        CHECK_INT(prisn_proc_wait(r.pid, r.pidfd, false, &st), 1);
        CHECK(st.exited && st.code == 0);
        if (r.pidfd >= 0)
            close(r.pidfd);
        if (r.sandbox_status_fd >= 0)
            close(r.sandbox_status_fd);
    } else {
        CHECK_INT(stage, PRISN_STAGE_SETUP);
    }
    CHECK_INT(gate_calls, 1);
    CHECK(!gate_saw_marker);
    return rc;
}

static void test_gate_holds_the_exec(void) {
    const char *marker = "/tmp/prisn-test-proc-gate";
    int levels = geteuid() == 0 ? 3 : 1; /* plain; sandbox in place; exec'd init */
    for (int level = 0; level < levels; level++) {
        bool sandboxed = level > 0, in_place = level == 1;
        /* Let through: the child runs, after the gate. */
        CHECK_INT(gated_touch(marker, 0, sandboxed, in_place), 0);
        CHECK(access(marker, F_OK) == 0);
        /* Refused: the child never runs, and nothing is left to reap. */
        CHECK_INT(gated_touch(marker, -ECANCELED, sandboxed, in_place), -ECANCELED);
        usleep(100000);
        CHECK(access(marker, F_OK) != 0);
        CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
    }
    if (levels == 1)
        printf("skip gated sandboxes: needs root (namespaces)\n");
    unlink(marker);
}

static void test_a_normal_start_is_not_delayed(void) {
    /* The deadline is a bound, not a wait: a child that execs at once
     * returns at once, even with a long timeout. */
    char *argv[4];
    prisn_spawn_opts o = shell("exit 3", argv);
    o.start_timeout_ms = 60000;
    long long start = now_ms();
    prisn_exit_status st = run_and_wait(&o);
    CHECK(now_ms() - start < 1000);
    CHECK(st.exited && st.code == 3);
}

/* ---- the spawn split in two, waited for on a caller's loop -------------- */

/* How many descriptors this process has open. */
static int open_fds(void) {
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

/* Waits (as a loop would) for a pending spawn's report or deadline, then
 * finishes it. */
static int finish_when_ready(prisn_spawn_pending *p, prisn_spawn_result *r,
                             prisn_spawn_stage *stage) {
    for (;;) {
        int left = prisn_proc_spawn_pending_left_ms(p);
        struct pollfd pfd = {prisn_proc_spawn_pending_fd(p), POLLIN, 0};
        if (left > 0)
            poll(&pfd, 1, left);
        int rc = prisn_proc_spawn_finish(p, left <= 0, r, stage);
        if (rc != 1)
            return rc;
    }
}

static void close_result(prisn_spawn_result *r) {
    if (r->pidfd >= 0)
        close(r->pidfd);
    if (r->sandbox_status_fd >= 0)
        close(r->sandbox_status_fd);
    for (int i = 0; i < 3; i++)
        if (r->stdio_fds[i] >= 0)
            close(r->stdio_fds[i]);
}

static void test_pending_spawn_reports_the_exec(void) {
    int before = open_fds();
    char *argv[4];
    prisn_spawn_opts o = shell("exit 5", argv);
    o.stdio[1].kind = PRISN_STDIO_PIPE;
    prisn_spawn_pending *p;
    prisn_spawn_stage stage;
    CHECK_INT(prisn_proc_spawn_start(&o, &p, &stage), 0);
    CHECK(prisn_proc_spawn_pending_pid(p) > 0);
    prisn_spawn_result r;
    CHECK_INT(finish_when_ready(p, &r, &stage), 0);
    CHECK_INT(stage, PRISN_STAGE_NONE);
    CHECK(!r.timed_out);
    prisn_exit_status st;
    CHECK_INT(prisn_proc_wait(r.pid, r.pidfd, false, &st), 1);
    CHECK(st.exited && st.code == 5);
    close_result(&r);
    CHECK_INT(open_fds(), before);
}

static void test_pending_spawn_reports_a_failure_before_exec(void) {
    int before = open_fds();
    char *argv[4];
    prisn_spawn_opts o = shell("true", argv);
    o.file = "/nonexistent/prisn-test";
    prisn_spawn_pending *p;
    prisn_spawn_stage stage;
    CHECK_INT(prisn_proc_spawn_start(&o, &p, &stage), 0);
    pid_t pid = prisn_proc_spawn_pending_pid(p);
    prisn_spawn_result r;
    CHECK_INT(finish_when_ready(p, &r, &stage), -ENOENT);
    CHECK_INT(stage, PRISN_STAGE_EXEC);
    CHECK(!r.timed_out);
    CHECK(kill(pid, 0) < 0 && errno == ESRCH); /* reaped */
    CHECK_INT(open_fds(), before);
}

static void test_pending_spawn_kills_at_the_deadline(void) {
    int fifo[2];
    CHECK_INT(full_pipe(fifo), 0);
    int before = open_fds();
    char *argv[4];
    prisn_spawn_opts o = shell("true", argv);
    o.stdio[2].kind = PRISN_STDIO_PIPE;
    o.cgroup_procs_fds = &fifo[1];
    o.ncgroup_procs_fds = 1;
    o.start_timeout_ms = 300;
    prisn_spawn_pending *p;
    prisn_spawn_stage stage;
    long long start = now_ms();
    CHECK_INT(prisn_proc_spawn_start(&o, &p, &stage), 0);
    pid_t pid = prisn_proc_spawn_pending_pid(p);
    prisn_spawn_result r;
    /* Not there yet: finishing early says so and changes nothing. */
    CHECK_INT(prisn_proc_spawn_finish(p, false, &r, &stage), 1);
    CHECK(prisn_proc_spawn_pending_left_ms(p) > 0);
    CHECK_INT(finish_when_ready(p, &r, &stage), -ETIMEDOUT);
    long long spent = now_ms() - start;
    CHECK(r.timed_out);
    CHECK_STR(prisn_proc_stage_name(stage), "cgroup");
    CHECK(spent >= 300 && spent < 3000);
    CHECK(kill(pid, 0) < 0 && errno == ESRCH);
    CHECK_INT(open_fds(), before);
    /* Cancelled early instead: killed and reaped at once. */
    CHECK_INT(prisn_proc_spawn_start(&o, &p, &stage), 0);
    pid = prisn_proc_spawn_pending_pid(p);
    prisn_proc_spawn_cancel(p);
    CHECK(kill(pid, 0) < 0 && errno == ESRCH);
    CHECK_INT(open_fds(), before);
    close(fifo[0]);
    close(fifo[1]);
}

/* Many spawns pending at once (sandboxed as root), finished in whatever
 * order their reports come: every one runs, nothing is left open. */
static void test_many_pending_spawns_at_once(void) {
    enum { N = 40 };
    int before = open_fds();
    char *argv[4];
    prisn_spawn_opts o = shell("exit 9", argv);
    prisn_sandbox_opts sandbox = proc_sandbox("prisn-init");
    if (geteuid() == 0) {
        o.sandbox = &sandbox;
        o.new_session = true;
    } else {
        printf("skip sandboxed pending spawns: needs root (namespaces)\n");
    }
    prisn_spawn_pending *p[N];
    prisn_spawn_stage stage;
    for (int i = 0; i < N; i++)
        CHECK_INT(prisn_proc_spawn_start(&o, &p[i], &stage), 0);
    int done = 0, ok = 0;
    prisn_spawn_result r;
    while (done < N) {
        struct pollfd pfd[N];
        int idx[N], n = 0;
        for (int i = 0; i < N; i++)
            if (p[i]) {
                pfd[n] = (struct pollfd){prisn_proc_spawn_pending_fd(p[i]), POLLIN, 0};
                idx[n++] = i;
            }
        CHECK(poll(pfd, (nfds_t)n, 5000) > 0);
        for (int k = 0; k < n; k++) {
            if (!pfd[k].revents)
                continue;
            int rc = prisn_proc_spawn_finish(p[idx[k]], false, &r, &stage);
            if (rc == 1)
                continue;
            p[idx[k]] = NULL;
            done++;
            if (rc == 0) {
                prisn_exit_status st;
                CHECK_INT(prisn_proc_wait(r.pid, r.pidfd, false, &st), 1);
                prisn_sandbox_status_apply(r.sandbox_status_fd, &st);
                ok += st.exited && st.code == 9;
                close_result(&r);
            }
        }
    }
    CHECK_INT(ok, N);
    CHECK_INT(open_fds(), before);
}

int main(int argc, char **argv) {
    /* The init of a sandbox execs this binary (see sandbox.c). */
    if (argc == 4 && strcmp(argv[1], "__sandbox-init") == 0) {
        if (strcmp(argv[0], "stuck-init") == 0) /* an init that never starts the workload */
            for (;;)
                pause();
        prisn_sandbox_init_main(argv);
    }
    prisn_sandbox_set_cmdline(argc, argv);
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
        {"spawns as another user while threads come and go (as root)", test_set_ids_under_thread_churn},
        {"sandboxed spawns while threads come and go (as root)", test_sandbox_under_thread_churn},
        {"a child stuck before exec is killed at the start timeout", test_start_timeout_kills_a_stuck_child},
        {"a sandbox init stuck before the workload is killed at the start timeout", test_start_timeout_kills_a_stuck_sandbox_init},
        {"a normal start does not wait for the start timeout", test_a_normal_start_is_not_delayed},
        {"a sandbox passes the workload's own status back over a pipe (as root)", test_sandbox_passes_the_workload_status_back},
        {"the exec'd sandbox init is the embedded one, or this binary on request (as root)",
         test_sandbox_init_is_the_embedded_one},
        {"a single-threaded spawner's sandbox init runs in place, else exec'd (as root)", test_sandbox_init_in_place},
        {"a gate holds the child before its exec, or kills it", test_gate_holds_the_exec},
        {"a pending spawn finishes with the child's exec", test_pending_spawn_reports_the_exec},
        {"a pending spawn reports a failure before exec", test_pending_spawn_reports_a_failure_before_exec},
        {"a pending spawn is killed at its deadline, or when cancelled", test_pending_spawn_kills_at_the_deadline},
        {"many pending spawns at once", test_many_pending_spawns_at_once},
        {NULL, NULL},
    };
    return check_main(cases);
}
