/*
 * checkpoint: a WAL checkpoint of state.db on a thread of its own, as the Lua
 * module prisn.core.checkpoint.
 *
 * A checkpoint copies the pages of the write-ahead log into the database file
 * and syncs both: milliseconds on a real disk. Left to SQLite, it runs inside
 * the commit that crossed the auto-checkpoint threshold, on the server's
 * event loop, and every request waiting behind that commit pays for it. The
 * server turns auto-checkpoints off on its connection and runs them here:
 * a thread opens a connection of its own, runs a PASSIVE checkpoint (it
 * never blocks writers or readers; what it cannot copy yet waits for the
 * next one) and then writes one byte to a pipe whose read end the loop
 * watches. Nothing here calls back into Lua; the thread touches no Lua state.
 *
 *   local handle, fd = checkpoint.start(path)   -- or nil, message, code
 *   -- ... once fd is readable:
 *   local ok, wal_frames, copied = handle:result()  -- or nil, message, code
 */
#include "binding.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "binding.h"

#define CHECKPOINT_MT "prisn.core.checkpoint"

typedef struct {
    char *path;
    pthread_t thread;
    int pipe[2];       /* the thread writes a byte to [1] when it is done */
    int started;       /* the thread runs or ran and is not joined yet */
    int rc;            /* SQLite's result */
    int wal_frames;    /* frames in the WAL */
    int copied;        /* of which now in the database */
    char message[256]; /* SQLite's message on failure */
} checkpoint;

static void *checkpoint_run(void *arg) {
    checkpoint *c = arg;
    prisn_store_options opts;
    prisn_store_default_options(&opts);
    opts.create = false;
    opts.keep_wal = true; /* this connection's close must not checkpoint or delete the WAL */
    sqlite3 *db = NULL;
    c->rc = prisn_store_open(c->path, &opts, &db);
    if (c->rc == SQLITE_OK)
        c->rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &c->wal_frames,
                                          &c->copied);
    if (c->rc != SQLITE_OK)
        snprintf(c->message, sizeof c->message, "%s", prisn_store_errmsg(db, c->rc));
    prisn_store_close(db);
    char done = 1;
    while (write(c->pipe[1], &done, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

/* Waits for the thread (if any) and lets go of everything. */
static void checkpoint_finish(checkpoint *c) {
    if (c->started) {
        pthread_join(c->thread, NULL);
        c->started = 0;
    }
    for (int i = 0; i < 2; i++) {
        if (c->pipe[i] >= 0)
            close(c->pipe[i]);
        c->pipe[i] = -1;
    }
    free(c->path);
    c->path = NULL;
}

/* The checkpointer retries on any failure, so the code only says whether
 * waiting helps (EAGAIN) or not (EIO). */
static int push_failure(lua_State *L, const char *what, int err) {
    return prisn_binding_fail(L, err == EAGAIN ? "EAGAIN" : "EIO", "%s: %s", what, strerror(err));
}

/* checkpoint.start(path) -> handle, fd | nil, message, code */
static int l_checkpoint_start(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    checkpoint *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    c->pipe[0] = c->pipe[1] = -1;
    luaL_setmetatable(L, CHECKPOINT_MT);
    c->path = strdup(path);
    if (c->path == NULL)
        return push_failure(L, "checkpoint", ENOMEM);
    if (pipe2(c->pipe, O_CLOEXEC) < 0)
        return push_failure(L, "checkpoint: pipe", errno);
    int err = pthread_create(&c->thread, NULL, checkpoint_run, c);
    if (err != 0)
        return push_failure(L, "checkpoint: thread", err);
    c->started = 1;
    lua_pushinteger(L, c->pipe[0]);
    return 2;
}

/* handle:result() -> true, wal_frames, copied | nil, message, code
 * Waits for the thread (at once, when its fd was readable). Once only. */
static int l_checkpoint_result(lua_State *L) {
    checkpoint *c = luaL_checkudata(L, 1, CHECKPOINT_MT);
    if (!c->started && c->path == NULL)
        return luaL_error(L, "checkpoint: result already taken");
    checkpoint_finish(c);
    if (c->rc != SQLITE_OK) {
        return prisn_binding_fail(L, prisn_store_code_name(c->rc), "%s", c->message);
    }
    lua_pushboolean(L, 1);
    lua_pushinteger(L, c->wal_frames);
    lua_pushinteger(L, c->copied);
    return 3;
}

static int l_checkpoint_gc(lua_State *L) {
    checkpoint_finish(luaL_checkudata(L, 1, CHECKPOINT_MT));
    return 0;
}

static const luaL_Reg checkpoint_methods[] = {
    {"result", l_checkpoint_result},
    {NULL, NULL},
};

int luaopen_prisn_core_checkpoint(lua_State *L) {
    prisn_binding_metatable(L, CHECKPOINT_MT, checkpoint_methods, l_checkpoint_gc, NULL, NULL);
    lua_newtable(L);
    lua_pushcfunction(L, l_checkpoint_start);
    lua_setfield(L, -2, "start");
    return 1;
}
