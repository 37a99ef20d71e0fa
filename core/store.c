/*
 * store: the SQLite wrapper under prisn's state database (see store.h).
 *
 * Plain C, no Lua: it fixes how every prisn database is opened (WAL, foreign
 * keys, a busy timeout, a file that is not a database failing at open), what
 * one prepared statement is allowed to hold, and the stable names of result
 * codes. The Lua module prisn.core.store is its binding, in store_lua.c, and
 * the checkpoint thread (checkpoint.c) opens its own connection through it.
 * Transactions, schema and retries are policy for the Lua side.
 */
#include "store.h"

#include <limits.h>
#include <stdio.h>

void prisn_store_default_options(prisn_store_options *opts) {
    opts->readonly = false;
    opts->create = true;
    opts->busy_timeout_ms = PRISN_STORE_DEFAULT_BUSY_TIMEOUT_MS;
    opts->keep_wal = false;
}

/* Switching a new database to WAL upgrades a shared lock to an exclusive
 * one. When two processes open the same new file at once, both hold the
 * shared lock and SQLite answers SQLITE_BUSY at once (waiting could deadlock)
 * instead of calling the busy handler; the loser retries here, within the
 * same busy timeout, and then finds the file already in WAL mode.
 *
 * The pragma answers with the mode actually in force: a file system or VFS
 * without the shared memory WAL needs keeps the old one ("delete") without
 * an error. prisn relies on WAL (readers never block the writer, the
 * checkpoint thread, a commit costs one sync), so that is a failure
 * (PRISN_STORE_NOWAL), not a silent slowdown; a database without a file
 * (":memory:", temporary) has no WAL to have and is left as it is. */
static int store_enable_wal(sqlite3 *db, int timeout_ms) {
    for (int waited = 0;; waited += 10) {
        sqlite3_stmt *stmt = NULL;
        int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &stmt, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(stmt);
            if (rc == SQLITE_ROW) {
                const char *mode = (const char *)sqlite3_column_text(stmt, 0);
                const char *file = sqlite3_db_filename(db, "main");
                bool wal = mode != NULL && sqlite3_stricmp(mode, "wal") == 0;
                rc = wal || file == NULL || file[0] == '\0' ? SQLITE_OK : PRISN_STORE_NOWAL;
            }
            sqlite3_finalize(stmt);
        }
        if ((rc & 0xff) != SQLITE_BUSY || waited >= timeout_ms)
            return rc;
        sqlite3_sleep(10);
    }
}

int prisn_store_open(const char *path, const prisn_store_options *opts, sqlite3 **out) {
    prisn_store_options defaults;
    if (opts == NULL) {
        prisn_store_default_options(&defaults);
        opts = &defaults;
    }
    int flags = SQLITE_OPEN_NOMUTEX;
    if (opts->readonly)
        flags |= SQLITE_OPEN_READONLY;
    else
        flags |= SQLITE_OPEN_READWRITE | (opts->create ? SQLITE_OPEN_CREATE : 0);

    *out = NULL;
    int rc = sqlite3_open_v2(path, out, flags, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3 *db = *out;
    sqlite3_extended_result_codes(db, 1);
    rc = sqlite3_busy_timeout(db, opts->busy_timeout_ms);
    /* SQLite opens lazily; reading the schema cookie makes a file that is not
     * a database fail here (SQLITE_NOTADB) rather than at first use. */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA schema_version", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL);
    if (rc == SQLITE_OK && !opts->readonly)
        rc = store_enable_wal(db, opts->busy_timeout_ms);
    if (rc == SQLITE_OK && !opts->readonly && opts->keep_wal) {
        /* A short-lived process (one `prisn run`) would otherwise create and
         * delete the WAL and checkpoint on every close: four syncs a run.
         * Kept, the WAL is checkpointed as it grows instead. */
        int on = 1;
        sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &on);
        sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    }
    return rc;
}

int prisn_store_close(sqlite3 *db) {
    if (db == NULL)
        return SQLITE_OK;
    sqlite3_stmt *stmt;
    while ((stmt = sqlite3_next_stmt(db, NULL)) != NULL)
        sqlite3_finalize(stmt);
    return sqlite3_close_v2(db);
}

int prisn_store_exec(sqlite3 *db, const char *sql) {
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

int prisn_store_prepare(sqlite3 *db, const char *sql, size_t len, sqlite3_stmt **out) {
    *out = NULL;
    if (len > INT_MAX)
        return SQLITE_TOOBIG;
    const char *tail = NULL;
    int rc = sqlite3_prepare_v2(db, sql, (int)len, out, &tail);
    if (rc != SQLITE_OK)
        return rc;
    if (*out == NULL)
        return PRISN_STORE_EMPTY;
    /* Whatever follows must compile to nothing (whitespace, comments, ';'). */
    size_t rest = len - (size_t)(tail - sql);
    if (rest > 0) {
        sqlite3_stmt *extra = NULL;
        rc = sqlite3_prepare_v2(db, tail, (int)rest, &extra, NULL);
        if (rc != SQLITE_OK || extra != NULL) {
            sqlite3_finalize(extra);
            sqlite3_finalize(*out);
            *out = NULL;
            return PRISN_STORE_MULTIPLE;
        }
    }
    return SQLITE_OK;
}

int prisn_store_user_version(sqlite3 *db, int32_t *out) {
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *out = (int32_t)sqlite3_column_int(stmt, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(stmt);
    return rc;
}

int prisn_store_set_user_version(sqlite3 *db, int32_t version) {
    char sql[48];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%ld", (long)version);
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

const char *prisn_store_code_name(int rc) {
    /* The primary result codes 0..SQLITE_WARNING, in sqlite3.h's order. */
    static const char *const names[] = {
        "SQLITE_OK",       "SQLITE_ERROR",     "SQLITE_INTERNAL", "SQLITE_PERM",
        "SQLITE_ABORT",    "SQLITE_BUSY",      "SQLITE_LOCKED",   "SQLITE_NOMEM",
        "SQLITE_READONLY", "SQLITE_INTERRUPT", "SQLITE_IOERR",    "SQLITE_CORRUPT",
        "SQLITE_NOTFOUND", "SQLITE_FULL",      "SQLITE_CANTOPEN", "SQLITE_PROTOCOL",
        "SQLITE_EMPTY",    "SQLITE_SCHEMA",    "SQLITE_TOOBIG",   "SQLITE_CONSTRAINT",
        "SQLITE_MISMATCH", "SQLITE_MISUSE",    "SQLITE_NOLFS",    "SQLITE_AUTH",
        "SQLITE_FORMAT",   "SQLITE_RANGE",     "SQLITE_NOTADB",   "SQLITE_NOTICE",
        "SQLITE_WARNING",
    };
    _Static_assert(sizeof names / sizeof names[0] == SQLITE_WARNING + 1, "one name per code");
    int primary = rc & 0xff;
    if (primary <= SQLITE_WARNING)
        return names[primary];
    if (primary == SQLITE_ROW)
        return "SQLITE_ROW";
    if (primary == SQLITE_DONE)
        return "SQLITE_DONE";
    return "SQLITE_UNKNOWN";
}

const char *prisn_store_errmsg(sqlite3 *db, int rc) {
    if (rc == PRISN_STORE_EMPTY)
        return "SQL holds no statement";
    if (rc == PRISN_STORE_MULTIPLE)
        return "SQL holds more than one statement (use exec)";
    if (rc == PRISN_STORE_NOWAL)
        return "cannot use WAL journal mode on this file system (SQLite kept the rollback "
               "journal; WAL needs shared memory: a local file system, not NFS or SMB)";
    if (db != NULL && sqlite3_errcode(db) != SQLITE_OK)
        return sqlite3_errmsg(db);
    return sqlite3_errstr(rc);
}
