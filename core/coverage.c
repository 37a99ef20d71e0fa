/*
 * coverage: a C line hook that counts the lines of prisn's own Lua (see
 * coverage.h).
 *
 * Why in C: a Lua hook function costs a Lua call per line and made the suite
 * several times slower; this one costs a lua_getinfo and a hash lookup. Why
 * only chunks named lua/..., runners/..., policies/...: those are the
 * embedded modules (their chunk names are repository paths, see embed.c);
 * specs, busted and operator files are not what is measured.
 *
 * What it does not see: code run under another hook (the instruction budget
 * of prisn.sandbox replaces the hook on its coroutine), and processes that
 * end with _exit() or a signal (a forked child before exec, a SIGKILL).
 *
 * The counts live in plain C memory, never in the Lua state, so writing them
 * at exit (after lua_close) is safe. File format, one file per process:
 *   prisn-lua-coverage 1
 *   file lua/prisn/main.lua
 *   LINE COUNT          (only lines run at least once)
 */
#include "coverage.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char *name;        /* repository path, without the '@' */
    uint64_t *counts;  /* indexed by line */
    size_t cap;        /* entries in counts */
} cov_file;

#define COV_SLOTS 1024 /* open addressing; prisn has a few hundred modules */

static cov_file cov_files[COV_SLOTS];
static size_t cov_used;
static char *cov_dir;
static const char *cov_last_src; /* the source string of the last hit... */
static cov_file *cov_last;       /* ...and its file */

static const char *const cov_prefixes[] = {"@lua/", "@runners/", "@policies/", NULL};

static bool cov_wanted(const char *source) {
    for (int i = 0; cov_prefixes[i]; i++) {
        if (strncmp(source, cov_prefixes[i], strlen(cov_prefixes[i])) == 0)
            return true;
    }
    return false;
}

static uint32_t cov_hash(const char *s) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* The file for source "@path", created on first use; NULL when the table is
 * full or memory ran out (the line is then not counted). */
static cov_file *cov_lookup(const char *source) {
    const char *name = source + 1;
    for (uint32_t i = cov_hash(name) % COV_SLOTS, n = 0; n < COV_SLOTS; i = (i + 1) % COV_SLOTS, n++) {
        cov_file *f = &cov_files[i];
        if (f->name == NULL) {
            if (cov_used + 1 >= COV_SLOTS || (f->name = strdup(name)) == NULL)
                return NULL;
            cov_used++;
            return f;
        }
        if (strcmp(f->name, name) == 0)
            return f;
    }
    return NULL;
}

static void cov_count(cov_file *f, int line) {
    if (line <= 0)
        return;
    size_t at = (size_t)line;
    if (at >= f->cap) {
        size_t cap = f->cap ? f->cap : 256;
        while (cap <= at)
            cap *= 2;
        uint64_t *grown = realloc(f->counts, cap * sizeof *grown);
        if (grown == NULL)
            return;
        memset(grown + f->cap, 0, (cap - f->cap) * sizeof *grown);
        f->counts = grown;
        f->cap = cap;
    }
    f->counts[at]++;
}

static void cov_hook(lua_State *L, lua_Debug *ar) {
    /* For a line event Lua has set ar->currentline already. */
    if (!lua_getinfo(L, "S", ar) || ar->source == NULL)
        return;
    cov_file *f;
    if (ar->source == cov_last_src && cov_last && strcmp(cov_last->name, ar->source + 1) == 0) {
        f = cov_last;
    } else {
        if (!cov_wanted(ar->source))
            return;
        f = cov_lookup(ar->source);
        if (f == NULL)
            return;
        cov_last_src = ar->source;
        cov_last = f;
    }
    cov_count(f, ar->currentline);
}

/* A forked child counts only what it runs itself; the parent writes the rest. */
static void cov_reset_in_child(void) {
    for (size_t i = 0; i < COV_SLOTS; i++) {
        if (cov_files[i].counts)
            memset(cov_files[i].counts, 0, cov_files[i].cap * sizeof(uint64_t));
    }
}

static void cov_write_lines(FILE *out, const cov_file *f) {
    bool named = false;
    for (size_t line = 1; line < f->cap; line++) {
        if (f->counts[line] == 0)
            continue;
        if (!named)
            fprintf(out, "file %s\n", f->name);
        named = true;
        fprintf(out, "%zu %llu\n", line, (unsigned long long)f->counts[line]);
    }
}

static void cov_write(void) {
    char path[4096];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(path, sizeof path, "%s/lua-%ld-%ld.%09ld.cov", cov_dir, (long)getpid(), (long)now.tv_sec,
             now.tv_nsec);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    FILE *out = fdopen(fd, "w");
    if (out == NULL) {
        close(fd);
        return;
    }
    fputs("prisn-lua-coverage 1\n", out);
    for (size_t i = 0; i < COV_SLOTS; i++) {
        if (cov_files[i].name)
            cov_write_lines(out, &cov_files[i]);
    }
    fclose(out);
}

int prisn_coverage_start(lua_State *L, const char *dir) {
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return -errno;
    cov_dir = strdup(dir);
    if (cov_dir == NULL)
        return -ENOMEM;
    if (atexit(cov_write) != 0)
        return -ENOMEM;
    pthread_atfork(NULL, NULL, cov_reset_in_child);
    lua_sethook(L, cov_hook, LUA_MASKLINE, 0);
    return 0;
}
