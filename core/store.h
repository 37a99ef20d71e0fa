/*
 * store: the SQLite mechanism under prisn's state database.
 *
 * Thin helpers over the SQLite C API that fix how prisn opens a database
 * (WAL, foreign keys, a busy timeout) and how errors are named. Functions
 * return SQLITE_OK (0) or an SQLite result code, extended codes included,
 * because SQLite's error domain is richer than errno; the message for a
 * failure is prisn_store_errmsg(db, rc). Schema, migrations and transaction
 * policy live in Lua.
 */
#ifndef PRISN_STORE_H
#define PRISN_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PRISN_STORE_DEFAULT_BUSY_TIMEOUT_MS 5000

/* Result codes of our own, as extended codes of SQLITE_MISUSE so that
 * prisn_store_code_name() names them "SQLITE_MISUSE". */
#define PRISN_STORE_EMPTY (SQLITE_MISUSE | (0x70 << 8))    /* SQL holds no statement */
#define PRISN_STORE_MULTIPLE (SQLITE_MISUSE | (0x71 << 8)) /* SQL holds more than one */
/* An extended code of SQLITE_CANTOPEN: the file could not be put in WAL
 * journal mode (the pragma kept another mode). */
#define PRISN_STORE_NOWAL (SQLITE_CANTOPEN | (0x70 << 8))

typedef struct {
    bool readonly;       /* SQLITE_OPEN_READONLY; no journal-mode change */
    bool create;         /* create the file when missing (ignored when readonly) */
    int busy_timeout_ms; /* how long a locked database is retried */
    bool keep_wal;       /* keep the -wal file and skip the checkpoint on close */
} prisn_store_options;

/* Fills opts with the defaults: read-write, create, 5000 ms busy timeout. */
void prisn_store_default_options(prisn_store_options *opts);

/* Opens path (":memory:" works) with SQLITE_OPEN_NOMUTEX, sets the busy
 * timeout, checks the file is a database, turns foreign keys on and, unless
 * readonly, switches to WAL: PRISN_STORE_NOWAL when the file system keeps it
 * in another journal mode (a database without a file, ":memory:", is left
 * as it is). opts may be NULL for the defaults. Like
 * sqlite3_open_v2, *out is set even on failure when a handle exists: the
 * caller reads prisn_store_errmsg(*out, rc) and then calls prisn_store_close. */
int prisn_store_open(const char *path, const prisn_store_options *opts, sqlite3 **out);

/* Finalizes every statement still open on db, then closes it. NULL is fine. */
int prisn_store_close(sqlite3 *db);

/* Runs one or more statements, discarding any rows. */
int prisn_store_exec(sqlite3 *db, const char *sql);

/* Compiles exactly one statement from sql[0..len). Returns PRISN_STORE_EMPTY
 * when sql holds only whitespace or comments and PRISN_STORE_MULTIPLE when
 * something follows the first statement. *out is NULL on any failure. */
int prisn_store_prepare(sqlite3 *db, const char *sql, size_t len, sqlite3_stmt **out);

/* Reads or writes PRAGMA user_version (a signed 32-bit integer). */
int prisn_store_user_version(sqlite3 *db, int32_t *out);
int prisn_store_set_user_version(sqlite3 *db, int32_t version);

/* The stable name of rc's primary code: "SQLITE_BUSY", "SQLITE_NOTADB"... */
const char *prisn_store_code_name(int rc);

/* The message for a failure that returned rc: ours for PRISN_STORE_* codes,
 * else SQLite's latest message on db (or the generic text when db is NULL). */
const char *prisn_store_errmsg(sqlite3 *db, int rc);

#endif
