/*
 * store: the SQLite wrapper (store.c: settings every database gets, error
 * names, one-statement prepare), called directly, and its Lua binding
 * (store_lua.c) as the booted state sees it — values of every type
 * round-trip, failures come back as nil, message, code, and closing or
 * collecting a database with live statements is safe. One file, because both
 * halves share the temporary-directory helpers.
 */
#include <dirent.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "boot.h"
#include "check.h"
#include "store.h"

static char tmpdir[64];

static const char *make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/prisn-test-store-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        check_fail(__FILE__, __LINE__, "mkdtemp failed");
        return "/nonexistent";
    }
    return tmpdir;
}

static void remove_tmpdir(void) {
    DIR *dir = opendir(tmpdir);
    if (dir == NULL)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    closedir(dir);
    rmdir(tmpdir);
}

static char *path_in(const char *dir, const char *name) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

/* The text of the first column of the first row of sql. */
static const char *query_text(sqlite3 *db, const char *sql) {
    static char text[128];
    sqlite3_stmt *stmt;
    text[0] = '\0';
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return "(prepare failed)";
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0))
        snprintf(text, sizeof text, "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    return text;
}

/* ---- mechanism ------------------------------------------------------------ */

static void test_open_sets_wal_foreign_keys_and_timeout(void) {
    const char *dir = make_tmpdir();
    sqlite3 *db;
    CHECK_INT(prisn_store_open(path_in(dir, "state.db"), NULL, &db), SQLITE_OK);
    CHECK_STR(query_text(db, "PRAGMA journal_mode"), "wal");
    CHECK_STR(query_text(db, "PRAGMA foreign_keys"), "1");
    CHECK_STR(query_text(db, "PRAGMA busy_timeout"), "5000");
    CHECK_INT(prisn_store_close(db), SQLITE_OK);
    remove_tmpdir();
}

/* A VFS like the default one, but its files offer no shared memory (io
 * methods version 1), as on a file system that cannot map the -shm file:
 * SQLite then keeps the rollback journal when asked for WAL. */
static sqlite3_vfs nowal_vfs;
static sqlite3_io_methods nowal_methods;

static int nowal_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                      int *out_flags) {
    sqlite3_vfs *real = vfs->pAppData;
    int rc = real->xOpen(real, name, file, flags, out_flags);
    if (rc == SQLITE_OK && file->pMethods) {
        nowal_methods = *file->pMethods;
        nowal_methods.iVersion = 1;
        file->pMethods = &nowal_methods;
    }
    return rc;
}

static void test_open_fails_when_wal_cannot_be_enabled(void) {
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    nowal_vfs = *real;
    nowal_vfs.zName = "prisn-test-nowal";
    nowal_vfs.pAppData = real;
    nowal_vfs.xOpen = nowal_open;
    CHECK_INT(sqlite3_vfs_register(&nowal_vfs, 1), SQLITE_OK);
    const char *dir = make_tmpdir();
    sqlite3 *db;
    int rc = prisn_store_open(path_in(dir, "state.db"), NULL, &db);
    CHECK_INT(rc, PRISN_STORE_NOWAL);
    CHECK_STR(prisn_store_code_name(rc), "SQLITE_CANTOPEN");
    CHECK(strstr(prisn_store_errmsg(db, rc), "cannot use WAL journal mode") != NULL);
    prisn_store_close(db);
    /* Read-only opens never change the journal mode, and a database
     * without a file has no WAL to have. */
    prisn_store_options opts;
    prisn_store_default_options(&opts);
    opts.readonly = true;
    CHECK_INT(prisn_store_open(path_in(dir, "state.db"), &opts, &db), SQLITE_OK);
    prisn_store_close(db);
    CHECK_INT(prisn_store_open(":memory:", NULL, &db), SQLITE_OK);
    prisn_store_close(db);
    sqlite3_vfs_unregister(&nowal_vfs);
    sqlite3_vfs_register(real, 1);
    remove_tmpdir();
}

static void test_open_options(void) {
    const char *dir = make_tmpdir();
    sqlite3 *db;
    prisn_store_options opts;
    prisn_store_default_options(&opts);

    opts.create = false;
    int rc = prisn_store_open(path_in(dir, "missing.db"), &opts, &db);
    CHECK_STR(prisn_store_code_name(rc), "SQLITE_CANTOPEN");
    prisn_store_close(db);

    opts.readonly = true;
    rc = prisn_store_open(path_in(dir, "missing.db"), &opts, &db);
    CHECK_STR(prisn_store_code_name(rc), "SQLITE_CANTOPEN");
    prisn_store_close(db);

    /* A database made in rollback mode keeps it when opened readonly. */
    CHECK_INT(sqlite3_open(path_in(dir, "plain.db"), &db), SQLITE_OK);
    CHECK_INT(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    opts.busy_timeout_ms = 250;
    CHECK_INT(prisn_store_open(path_in(dir, "plain.db"), &opts, &db), SQLITE_OK);
    CHECK_STR(query_text(db, "PRAGMA journal_mode"), "delete");
    CHECK_STR(query_text(db, "PRAGMA busy_timeout"), "250");
    rc = prisn_store_exec(db, "INSERT INTO t VALUES (1)");
    CHECK_STR(prisn_store_code_name(rc), "SQLITE_READONLY");
    prisn_store_close(db);
    remove_tmpdir();
}

static void test_open_rejects_a_file_that_is_not_a_database(void) {
    const char *dir = make_tmpdir();
    FILE *f = fopen(path_in(dir, "notes.txt"), "w");
    CHECK(f != NULL);
    for (int i = 0; f && i < 100; i++)
        fputs("this is not an SQLite database, just some text\n", f);
    if (f)
        fclose(f);
    sqlite3 *db;
    int rc = prisn_store_open(path_in(dir, "notes.txt"), NULL, &db);
    CHECK_STR(prisn_store_code_name(rc), "SQLITE_NOTADB");
    CHECK_STR(prisn_store_errmsg(db, rc), "file is not a database");
    prisn_store_close(db);
    remove_tmpdir();
}

static void test_prepare_takes_exactly_one_statement(void) {
    sqlite3 *db, *none = NULL;
    sqlite3_stmt *stmt;
    CHECK_INT(prisn_store_open(":memory:", NULL, &db), SQLITE_OK);

    const char *one = "SELECT 1; -- trailing comment\n ;";
    CHECK_INT(prisn_store_prepare(db, one, strlen(one), &stmt), SQLITE_OK);
    CHECK(stmt != NULL);
    sqlite3_finalize(stmt);

    const char *two = "SELECT 1; SELECT 2";
    CHECK_INT(prisn_store_prepare(db, two, strlen(two), &stmt), PRISN_STORE_MULTIPLE);
    CHECK(stmt == NULL);
    CHECK_STR(prisn_store_code_name(PRISN_STORE_MULTIPLE), "SQLITE_MISUSE");
    CHECK_STR(prisn_store_errmsg(db, PRISN_STORE_MULTIPLE),
              "SQL holds more than one statement (use exec)");

    CHECK_INT(prisn_store_prepare(db, " -- nothing\n", 12, &stmt), PRISN_STORE_EMPTY);
    CHECK(stmt == NULL);

    int rc = prisn_store_prepare(db, "SELEC 1", 7, &stmt);
    CHECK_STR(prisn_store_code_name(rc), "SQLITE_ERROR");
    CHECK_STR(prisn_store_errmsg(db, rc), "near \"SELEC\": syntax error");
    CHECK_STR(prisn_store_errmsg(none, SQLITE_BUSY), "database is locked");
    prisn_store_close(db);
}

static void test_user_version_and_close_with_statements(void) {
    sqlite3 *db;
    int32_t version = -1;
    CHECK_INT(prisn_store_open(":memory:", NULL, &db), SQLITE_OK);
    CHECK_INT(prisn_store_user_version(db, &version), SQLITE_OK);
    CHECK_INT(version, 0);
    CHECK_INT(prisn_store_set_user_version(db, -42), SQLITE_OK);
    CHECK_INT(prisn_store_user_version(db, &version), SQLITE_OK);
    CHECK_INT(version, -42);

    sqlite3_stmt *a, *b;
    CHECK_INT(sqlite3_prepare_v2(db, "SELECT 1 UNION ALL SELECT 2", -1, &a, NULL), SQLITE_OK);
    CHECK_INT(sqlite3_prepare_v2(db, "SELECT 3", -1, &b, NULL), SQLITE_OK);
    CHECK_INT(sqlite3_step(a), SQLITE_ROW); /* left mid-iteration */
    CHECK_INT(prisn_store_close(db), SQLITE_OK);
    CHECK_INT(prisn_store_close(NULL), SQLITE_OK);
}

static void test_code_names(void) {
    CHECK_STR(prisn_store_code_name(SQLITE_CONSTRAINT_UNIQUE), "SQLITE_CONSTRAINT");
    CHECK_STR(prisn_store_code_name(SQLITE_BUSY_SNAPSHOT), "SQLITE_BUSY");
    CHECK_STR(prisn_store_code_name(SQLITE_CORRUPT), "SQLITE_CORRUPT");
    CHECK_STR(prisn_store_code_name(SQLITE_IOERR_FSYNC), "SQLITE_IOERR");
    CHECK_STR(prisn_store_code_name(SQLITE_READONLY), "SQLITE_READONLY");
    CHECK_STR(prisn_store_code_name(SQLITE_CANTOPEN_ISDIR), "SQLITE_CANTOPEN");
    CHECK_STR(prisn_store_code_name(SQLITE_MISMATCH), "SQLITE_MISMATCH");
    CHECK_STR(prisn_store_code_name(SQLITE_NOTADB), "SQLITE_NOTADB");
    CHECK_STR(prisn_store_code_name(SQLITE_WARNING), "SQLITE_WARNING");
    CHECK_STR(prisn_store_code_name(SQLITE_DONE), "SQLITE_DONE");
    CHECK_STR(prisn_store_code_name(250), "SQLITE_UNKNOWN");
}

/* ---- Lua binding ----------------------------------------------------------- */

/* Runs code as a chunk with the temporary directory as `...`; the chunk must
 * return true. Failures name the line of the caller. */
#define LUA_CHECK(L, code) lua_check(L, code, __FILE__, __LINE__)

static void lua_check(lua_State *L, const char *code, const char *file, int line) {
    lua_pushcfunction(L, prisn_boot_traceback);
    int handler = lua_gettop(L);
    if (luaL_loadstring(L, code) != LUA_OK) {
        check_fail(file, line, "load: %s", lua_tostring(L, -1));
    } else {
        lua_pushstring(L, tmpdir);
        if (lua_pcall(L, 1, 1, handler) != LUA_OK)
            check_fail(file, line, "%s", lua_tostring(L, -1));
        else if (lua_toboolean(L, -1) != 1)
            check_fail(file, line, "chunk returned %s", luaL_tolstring(L, -1, NULL));
    }
    lua_settop(L, handler - 1);
}

static lua_State *new_state(void) {
    lua_State *L = prisn_boot_new_state(NULL);
    CHECK(L != NULL);
    make_tmpdir();
    return L;
}

static void close_state(lua_State *L) {
    prisn_boot_close_state(L);
    remove_tmpdir();
}

static void test_lua_open_settings(void) {
    lua_State *L = new_state();
    LUA_CHECK(L, "local store = require('prisn.core.store')\n"
                 "local db = assert(store.open((...) .. '/state.db'))\n"
                 "assert(db:first('PRAGMA journal_mode').journal_mode == 'wal')\n"
                 "assert(db:first('PRAGMA foreign_keys').foreign_keys == 1)\n"
                 "assert(tostring(db) == 'prisn.store.db (' .. (...) .. '/state.db)')\n"
                 "assert(store.version():match('^3%.'))\n"
                 "db:close()\n"
                 "local ro = assert(store.open((...) .. '/state.db', {readonly = true,"
                 " busy_timeout_ms = 10}))\n"
                 "local ok, msg, code = ro:exec('CREATE TABLE t(x)')\n"
                 "assert(ok == nil and code == 'SQLITE_READONLY', msg)\n"
                 "ro:close()\n"
                 "return true");
    close_state(L);
}

static void test_lua_bind_and_step_every_type(void) {
    lua_State *L = new_state();
    LUA_CHECK(L, "local db = assert(require('prisn.core.store').open(':memory:'))\n"
                 "assert(db:exec('CREATE TABLE v(i, f, t, b, n, yes, no)'))\n"
                 "local ins = assert(db:prepare('INSERT INTO v VALUES (?, ?, ?, ?, ?, ?, ?)'))\n"
                 "assert(ins:bind(42, 2.5, 'text\\0with nul', nil, nil, true, false) == ins)\n"
                 "assert(ins:bind_blob(4, '\\1\\2\\0\\3'))\n"
                 "assert(ins:step() == false)\n"
                 "assert(db:changes() == 1 and db:last_insert_rowid() == 1)\n"
                 "local sel = assert(db:prepare('SELECT i, f, t, b, n, yes, no,"
                 " typeof(i) ti, typeof(f) tf, typeof(t) tt, typeof(b) tb, typeof(n) tn FROM v'))\n"
                 "local r = assert(sel:step())\n"
                 "assert(math.type(r.i) == 'integer' and r.i == 42)\n"
                 "assert(math.type(r.f) == 'float' and r.f == 2.5)\n"
                 "assert(r.t == 'text\\0with nul' and r.b == '\\1\\2\\0\\3')\n"
                 "assert(r.n == nil and r.yes == 1 and r.no == 0)\n"
                 "assert(r.ti == 'integer' and r.tf == 'real' and r.tt == 'text')\n"
                 "assert(r.tb == 'blob' and r.tn == 'null')\n"
                 "assert(sel:step() == false)\n"
                 "local a = assert(sel:reset():step_array())\n"
                 "assert(a.n == 12 and a[1] == 42 and a[5] == nil and a[12] == 'null')\n"
                 "local cols = sel:columns()\n"
                 "assert(#cols == 12 and cols[1] == 'i' and cols[12] == 'tn')\n"
                 "local big = assert(db:first('SELECT ? AS v', math.maxinteger))\n"
                 "assert(big.v == math.maxinteger)\n"
                 "return true");
    close_state(L);
}

static void test_lua_named_parameters_and_null(void) {
    lua_State *L = new_state();
    LUA_CHECK(L, "local db = assert(require('prisn.core.store').open(':memory:'))\n"
                 "db:exec('CREATE TABLE p(a, b, c, d)')\n"
                 "assert(db:run('INSERT INTO p VALUES (:a, @b, $c, :d)',"
                 " {a = 1, b = 'two', c = 3.0}) == 1)\n"
                 "local r = assert(db:first('SELECT * FROM p WHERE a = :a', {a = 1}))\n"
                 "assert(r.a == 1 and r.b == 'two' and r.c == 3.0 and r.d == nil)\n"
                 "assert(db:first('SELECT d IS NULL AS null_d FROM p').null_d == 1)\n"
                 "local s = assert(db:prepare('SELECT ?2 AS two, ?1 AS one'))\n"
                 "local row = assert(s:bind({'x', 'y'}):step())\n"
                 "assert(row.one == 'x' and row.two == 'y')\n"
                 "assert(db:first('SELECT 1 WHERE 0') == nil)\n"
                 "local rows = assert(db:rows('SELECT value FROM json_each(?) ORDER BY value',"
                 " '[3,1,2]'))\n"
                 "assert(#rows == 3 and rows[1].value == 1 and rows[3].value == 3)\n"
                 "return true");
    close_state(L);
}

static void test_lua_errors_return_codes(void) {
    lua_State *L = new_state();
    LUA_CHECK(L,
              "local store = require('prisn.core.store')\n"
              "local dir = ...\n"
              "local db = assert(store.open(dir .. '/state.db'))\n"
              "local ok, msg, code = db:exec('SELEC 1')\n"
              "assert(ok == nil and code == 'SQLITE_ERROR')\n"
              "assert(msg == 'SQLITE_ERROR: ' .. dir .. '/state.db: near \"SELEC\": syntax error',"
              " msg)\n"
              "assert(select('#', db:prepare('SELEC 1')) == 3)\n"
              "db:exec('CREATE TABLE u(x UNIQUE)')\n"
              "assert(db:run('INSERT INTO u VALUES (1)') == 1)\n"
              "ok, msg, code = db:run('INSERT INTO u VALUES (1)')\n"
              "assert(ok == nil and code == 'SQLITE_CONSTRAINT')\n"
              "assert(msg:find('UNIQUE constraint failed: u.x', 1, true), msg)\n"
              "db:exec('CREATE TABLE parent(id INTEGER PRIMARY KEY);"
              " CREATE TABLE child(p REFERENCES parent(id))')\n"
              "ok, msg, code = db:run('INSERT INTO child VALUES (7)')\n"
              "assert(code == 'SQLITE_CONSTRAINT' and msg:find('FOREIGN KEY'), msg)\n"
              "ok, msg, code = db:prepare('SELECT 1; SELECT 2')\n"
              "assert(ok == nil and code == 'SQLITE_MISUSE', msg)\n"
              "local f = io.open(dir .. '/junk', 'w') f:write(('junk'):rep(1000)) f:close()\n"
              "ok, msg, code = store.open(dir .. '/junk')\n"
              "assert(ok == nil and code == 'SQLITE_NOTADB')\n"
              "assert(msg == 'SQLITE_NOTADB: ' .. dir .. '/junk: file is not a database', msg)\n"
              "ok, msg, code = store.open(dir .. '/no/such/dir/state.db')\n"
              "assert(code == 'SQLITE_CANTOPEN')\n"
              "assert(msg == 'SQLITE_CANTOPEN: ' .. dir .. '/no/such/dir/state.db:"
              " unable to open database file', msg)\n"
              "local s = db:prepare('INSERT INTO u VALUES (?)')\n"
              "ok, msg, code = s:bind(1):step()\n"
              "assert(ok == nil and code == 'SQLITE_CONSTRAINT')\n"
              "assert(s:bind(2):step() == false)\n"
              "db:close()\n"
              "return true");
    close_state(L);
}

static void test_lua_misuse_raises(void) {
    lua_State *L = new_state();
    LUA_CHECK(L, "local store = require('prisn.core.store')\n"
                 "local db = assert(store.open(':memory:'))\n"
                 "local s = db:prepare('SELECT ? AS a, ? AS b')\n"
                 "local ok, err = pcall(function() return s:bind(1, {}) end)\n"
                 "assert(ok == false and err:find(\"bad argument #2 to 'bind'"
                 " %(cannot bind a table to parameter 2%)\"), err)\n"
                 "ok, err = pcall(s.bind, s, 1, 2, 3)\n"
                 "assert(not ok and err:find('statement takes 2 parameters'), err)\n"
                 "ok, err = pcall(db.rows, db, 'SELECT :x', {x = print})\n"
                 "assert(not ok and err:find('cannot bind a function to parameter :x'), err)\n"
                 "ok, err = pcall(s.bind_blob, s, 'nope', 'x')\n"
                 "assert(not ok and err:find('no such parameter'), err)\n"
                 "ok, err = pcall(store.open, ':memory:', {read_only = true})\n"
                 "assert(not ok and err:find(\"unknown option 'read_only'\"), err)\n"
                 "ok, err = pcall(store.open, ':memory:', {busy_timeout_ms = -1})\n"
                 "assert(not ok and err:find('busy_timeout_ms'), err)\n"
                 "ok, err = pcall(db.set_user_version, db, 2^40 // 1)\n"
                 "assert(not ok and err:find('32 bits'), err)\n"
                 "return true");
    close_state(L);
}

static void test_lua_close_with_live_statements(void) {
    lua_State *L = new_state();
    LUA_CHECK(L, "local db = assert(require('prisn.core.store').open((...) .. '/s.db'))\n"
                 "db:exec('CREATE TABLE t(x); INSERT INTO t VALUES (1), (2)')\n"
                 "local running = db:prepare('SELECT x FROM t')\n"
                 "assert(running:step().x == 1)\n"
                 "local idle = db:prepare('SELECT 1')\n"
                 "local done = db:prepare('SELECT 2') done:finalize()\n"
                 "assert(db:close() == true and db:close() == true)\n"
                 "assert(tostring(db) == 'prisn.store.db (closed)')\n"
                 "local ok, err = pcall(running.step, running)\n"
                 "assert(not ok and err:find('statement is finalized: its database was closed'),"
                 " err)\n"
                 "ok, err = pcall(idle.bind, idle, 1)\n"
                 "assert(not ok and err:find('its database was closed'), err)\n"
                 "ok, err = pcall(db.exec, db, 'SELECT 1')\n"
                 "assert(not ok and err:find('database is closed'), err)\n"
                 "assert(running:finalize() and running:close() and idle:finalize())\n"
                 "assert(tostring(idle) == 'prisn.store.stmt (finalized)')\n"
                 "return true");
    close_state(L);
}

static void test_lua_gc_with_open_statements(void) {
    lua_State *L = new_state();
    /* Dropped together: the collector may finalize them in either order. */
    LUA_CHECK(L, "local store = require('prisn.core.store')\n"
                 "for i = 1, 50 do\n"
                 "  local db = assert(store.open(':memory:'))\n"
                 "  local s = db:prepare('SELECT 1 UNION ALL SELECT 2')\n"
                 "  s:step()\n"
                 "  db:prepare('SELECT 3')\n"
                 "  if i % 2 == 0 then s = nil end\n"
                 "end\n"
                 "collectgarbage() collectgarbage()\n"
                 "do local db <close> = assert(store.open(':memory:'))\n"
                 "  local s <close> = db:prepare('SELECT 1')\n"
                 "end\n"
                 "return true");
    /* Left for lua_close: a db and a running statement still referenced. */
    CHECK(luaL_dostring(L, "local store = require('prisn.core.store')\n"
                           "KEEP_DB = store.open(':memory:')\n"
                           "KEEP_STMT = KEEP_DB:prepare('SELECT 1 UNION ALL SELECT 2')\n"
                           "KEEP_STMT:step()") == LUA_OK);
    close_state(L);
}

int main(void) {
    static const check_case cases[] = {
        {"open sets WAL, foreign keys and the busy timeout",
         test_open_sets_wal_foreign_keys_and_timeout},
        {"open fails when the file system keeps it out of WAL",
         test_open_fails_when_wal_cannot_be_enabled},
        {"open options", test_open_options},
        {"open rejects a file that is not a database",
         test_open_rejects_a_file_that_is_not_a_database},
        {"prepare takes exactly one statement", test_prepare_takes_exactly_one_statement},
        {"user_version and close with statements", test_user_version_and_close_with_statements},
        {"code names", test_code_names},
        {"lua: open settings", test_lua_open_settings},
        {"lua: bind and step every type", test_lua_bind_and_step_every_type},
        {"lua: named parameters and NULL", test_lua_named_parameters_and_null},
        {"lua: errors return codes", test_lua_errors_return_codes},
        {"lua: misuse raises", test_lua_misuse_raises},
        {"lua: close with live statements", test_lua_close_with_live_statements},
        {"lua: gc with open statements", test_lua_gc_with_open_statements},
        {NULL, NULL},
    };
    return check_main(cases);
}
