/*
 * sys: the exec primitive a server upgrades itself with. A real exec in a
 * forked child shows the new program gets the same pid, none of the old
 * program's descriptors (3 and up, close-on-exec or not) and no blocked
 * signal; a failed exec returns the errno and leaves the caller as it was
 * (its signal mask back), through the real execv and the replaceable one.
 */
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "sys.h"

int luaopen_prisn_core_sys(lua_State *L);

/* The exit status of a child that runs fn, or -1. */
static int in_child(void (*fn)(void)) {
    pid_t pid = fork();
    if (pid == 0) {
        fn();
        _exit(99);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* In the child: an inheritable descriptor, SIGTERM blocked, then exec a
 * shell that exits 7 only when the descriptor is gone, no signal is
 * blocked and its pid is the one before the exec. */
static void exec_a_shell(void) {
    int fd = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, NULL);
    char script[256];
    snprintf(script, sizeof script,
             "test ! -e /proc/self/fd/%d || exit 1; grep -q '^SigBlk:[[:space:]]*0*$' "
             "/proc/self/status || "
             "exit 2; test \"$$\" = %d || exit 3; exit 7",
             fd, (int)getpid());
    char *argv[] = {"sh", "-c", script, NULL};
    prisn_sys_exec("/bin/sh", argv);
    _exit(98);
}

static void test_exec_replaces_the_program_in_place(void) {
    CHECK_INT(in_child(exec_a_shell), 7);
}

static void test_failed_exec_returns_the_errno_and_restores_the_mask(void) {
    sigset_t usr1, now;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    char *argv[] = {"nope", NULL};
    CHECK_INT(prisn_sys_exec("/nonexistent/prisn", argv), -ENOENT);
    /* Executable but no program the kernel knows (no ELF, no #!). */
    char text[] = "/tmp/prisn-test-sys-XXXXXX";
    int fd = mkstemp(text);
    CHECK(fd >= 0 && write(fd, "garbage\n", 8) == 8 && fchmod(fd, 0755) == 0);
    close(fd);
    CHECK_INT(prisn_sys_exec(text, argv), -ENOEXEC);
    unlink(text);
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    CHECK(sigismember(&now, SIGUSR1));
    pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
}

/* What the fake execv saw. */
static int seen_fd = -1, seen_cloexec = -1, seen_blocked = -1;
static const char *seen_path;

static int fake_execv(const char *path, char *const argv[]) {
    (void)argv;
    seen_path = path;
    seen_cloexec = (fcntl(seen_fd, F_GETFD) & FD_CLOEXEC) != 0;
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    seen_blocked = sigismember(&now, SIGTERM);
    errno = ENOEXEC;
    return -1;
}

static void test_exec_marks_descriptors_and_unblocks_before_the_call(void) {
    int fds[2];
    CHECK_INT(pipe(fds), 0); /* inheritable */
    seen_fd = fds[1];
    sigset_t term, now;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, NULL);
    prisn_sys_syscalls saved = prisn_sys_sys;
    prisn_sys_sys.execv = fake_execv;
    char *argv[] = {"prisn", "server", "start", NULL};
    CHECK_INT(prisn_sys_exec("/usr/local/bin/prisn", argv), -ENOEXEC);
    prisn_sys_sys = saved;
    CHECK_STR(seen_path, "/usr/local/bin/prisn");
    CHECK_INT(seen_cloexec, 1);
    CHECK_INT(seen_blocked, 0);
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    CHECK(sigismember(&now, SIGTERM)); /* the caller's mask is back */
    pthread_sigmask(SIG_UNBLOCK, &term, NULL);
    close(fds[0]);
    close(fds[1]);
}

static void test_binding_returns_the_failure_triple(void) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "sys", luaopen_prisn_core_sys, 1);
    lua_pop(L, 1);
    CHECK_INT(
        luaL_dostring(L, "return sys.exec('/nonexistent/prisn', { 'prisn', 'server', 'start' })"),
        LUA_OK);
    CHECK(lua_isnil(L, -3));
    CHECK_STR(lua_tostring(L, -2), "ENOENT: exec /nonexistent/prisn: No such file or directory");
    CHECK_STR(lua_tostring(L, -1), "ENOENT");
    lua_settop(L, 0);
    CHECK(luaL_dostring(L, "return sys.exec('/bin/true', { 'true', 7 })") != LUA_OK);
    CHECK(strstr(lua_tostring(L, -1), "item 2 is not a string") != NULL);
    lua_settop(L, 0);
    CHECK(luaL_dostring(L, "return sys.exec('/bin/true', {})") != LUA_OK);
    lua_close(L);
}

/* sys.reap: false while a child runs, true once it has ended, ECHILD for a
 * process that is not a child (any more). */
static void test_reap_waits_for_one_named_child(void) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "sys", luaopen_prisn_core_sys, 1);
    lua_pop(L, 1);
    int fds[2];
    CHECK_INT(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        close(fds[1]);
        (void)!read(fds[0], &c, 1); /* until the parent closes its end */
        _exit(0);
    }
    close(fds[0]);
    char code[160];
    snprintf(code, sizeof code, "return sys.reap(%d)", (int)pid);
    CHECK_INT(luaL_dostring(L, code), LUA_OK);
    CHECK(lua_isboolean(L, -1) && !lua_toboolean(L, -1));
    lua_settop(L, 0);
    close(fds[1]);
    bool reaped = false;
    for (int i = 0; i < 500 && !reaped; i++) {
        CHECK_INT(luaL_dostring(L, code), LUA_OK);
        reaped = lua_toboolean(L, -1);
        lua_settop(L, 0);
        if (!reaped)
            usleep(2000);
    }
    CHECK(reaped);
    CHECK_INT(luaL_dostring(L, code), LUA_OK);
    CHECK(lua_isnil(L, -3));
    CHECK_STR(lua_tostring(L, -1), "ECHILD");
    lua_close(L);
}

int main(void) {
    static const check_case cases[] = {
        {"exec replaces the program in place", test_exec_replaces_the_program_in_place},
        {"a failed exec returns the errno and restores the mask",
         test_failed_exec_returns_the_errno_and_restores_the_mask},
        {"exec marks descriptors close-on-exec and unblocks signals first",
         test_exec_marks_descriptors_and_unblocks_before_the_call},
        {"the binding returns nil, message, code", test_binding_returns_the_failure_triple},
        {"reap waits for one named child, without blocking", test_reap_waits_for_one_named_child},
        {NULL, NULL},
    };
    return check_main(cases);
}
