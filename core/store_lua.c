/*
 * store_lua: the Lua binding of store.c, module prisn.core.store.
 *
 *   local store = require("prisn.core.store")
 *   local db, msg, code = store.open(path, { busy_timeout_ms = 5000 })
 *   local rows = db:rows("SELECT id, pid FROM jobs WHERE state = ?", "running")
 *   local stmt = db:prepare("UPDATE jobs SET state = :state WHERE id = :id")
 *   stmt:bind({ state = "failed", id = job_id }); stmt:step()
 *
 * A database handle and its prepared statements are full userdata. A
 * statement keeps its database userdata in its user value, so the database
 * cannot be collected first; the database keeps a list of its live
 * statements, so closing it finalizes them and they then refuse use instead
 * of touching freed memory. Values are copied in and out; nothing here runs
 * user callbacks. Failures return nil, "SQLITE_CODE: <path>: <message>",
 * "SQLITE_CODE"; misuse (a closed handle, a value SQLite cannot hold, an
 * unknown open() option) raises.
 */
#include <lauxlib.h>
#include <limits.h>
#include <lua.h>
#include <string.h>

#include "binding.h"
#include "store.h"

#define STORE_DB_MT "prisn.store.db"
#define STORE_STMT_MT "prisn.store.stmt"

typedef struct store_stmt store_stmt;

/* User value 1: the path as given to open(), for messages and __tostring;
 * user value 2: the kept statements of rows/first/run by SQL text (a table,
 * made on first use). */
typedef struct {
    sqlite3 *db; /* NULL once closed */
    store_stmt *stmts;
    int kept; /* entries in the kept statements' table */
} store_db;

/* How many statements rows/first/run keep per database. Past it the table
 * starts over (the dropped ones finalized then and there): SQL built
 * with values in its text cannot fill the memory, and the few dozen texts
 * the server runs again and again are kept again at their next use. */
#define STORE_KEPT_MAX 48

/* User value 1: the owning database userdata. */
struct store_stmt {
    sqlite3_stmt *stmt; /* NULL once finalized */
    store_db *owner;    /* NULL once finalized */
    store_stmt *prev, *next;
    bool orphaned; /* finalized because its database was closed */
    bool kept;     /* made by rows/first/run and kept for the same SQL */
    bool busy;     /* kept, and in use by rows/first/run right now */
};

static store_db *check_db(lua_State *L, int idx) {
    store_db *d = luaL_checkudata(L, idx, STORE_DB_MT);
    if (d->db == NULL)
        luaL_argerror(L, idx, "database is closed");
    return d;
}

static store_stmt *check_stmt(lua_State *L, int idx) {
    store_stmt *s = luaL_checkudata(L, idx, STORE_STMT_MT);
    if (s->stmt == NULL)
        luaL_argerror(L, idx,
                      s->orphaned ? "statement is finalized: its database was closed"
                                  : "statement is finalized");
    return s;
}

/* The failure of an operation on the database userdata at db_idx: pushes
 * nil, "CODE: path: message", "CODE"; returns 3. */
static int db_failure(lua_State *L, int db_idx, int rc) {
    store_db *d = lua_touserdata(L, db_idx);
    const char *message = prisn_store_errmsg(d->db, rc);
    lua_getiuservalue(L, db_idx, 1);
    const char *path = lua_tostring(L, -1);
    lua_pushfstring(L, "%s", message); /* copy before anything resets it */
    const char *name = prisn_store_code_name(rc);
    int n = prisn_binding_fail(L, name, "%s: %s: %s", name, path, lua_tostring(L, -1));
    lua_rotate(L, -(n + 2), n); /* drop path and copy, keep the results */
    lua_pop(L, 2);
    return n;
}

/* The failure of an operation on the statement userdata at stmt_idx. */
static int stmt_failure(lua_State *L, int stmt_idx, int rc) {
    lua_getiuservalue(L, stmt_idx, 1);
    int n = db_failure(L, lua_gettop(L), rc);
    lua_rotate(L, -(n + 1), n);
    lua_pop(L, 1);
    return n;
}

static void stmt_link(store_db *d, store_stmt *s) {
    s->owner = d;
    s->prev = NULL;
    s->next = d->stmts;
    if (d->stmts != NULL)
        d->stmts->prev = s;
    d->stmts = s;
}

static void stmt_finalize(store_stmt *s) {
    if (s->stmt == NULL)
        return;
    if (s->owner != NULL) {
        if (s->prev != NULL)
            s->prev->next = s->next;
        else
            s->owner->stmts = s->next;
        if (s->next != NULL)
            s->next->prev = s->prev;
    }
    sqlite3_finalize(s->stmt);
    s->stmt = NULL;
    s->owner = NULL;
    s->prev = s->next = NULL;
}

static void db_close(store_db *d) {
    while (d->stmts != NULL) {
        store_stmt *s = d->stmts;
        stmt_finalize(s);
        s->orphaned = true;
    }
    prisn_store_close(d->db);
    d->db = NULL;
}

/* Creates a statement userdata for the database at db_idx and compiles sql
 * into it. Leaves the statement on the stack and returns SQLITE_OK, or leaves
 * nil, message, code and returns the result code. */
static int stmt_new(lua_State *L, int db_idx, const char *sql, size_t len) {
    store_db *d = lua_touserdata(L, db_idx);
    store_stmt *s = lua_newuserdatauv(L, sizeof *s, 1);
    memset(s, 0, sizeof *s);
    luaL_setmetatable(L, STORE_STMT_MT);
    lua_pushvalue(L, db_idx);
    lua_setiuservalue(L, -2, 1);
    int rc = prisn_store_prepare(d->db, sql, len, &s->stmt);
    if (rc != SQLITE_OK) {
        lua_pop(L, 1);
        db_failure(L, db_idx, rc);
        return rc;
    }
    stmt_link(d, s);
    return SQLITE_OK;
}

/* Binds the Lua value at idx to parameter i. Raises on a type SQLite cannot
 * hold (arg names the argument to blame) and on misuse; returns the SQLite
 * result code for operational failures (SQLITE_TOOBIG, SQLITE_NOMEM). */
static int bind_value(lua_State *L, store_stmt *s, int i, int idx, int arg) {
    int rc;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        rc = sqlite3_bind_null(s->stmt, i);
        break;
    case LUA_TBOOLEAN:
        rc = sqlite3_bind_int(s->stmt, i, lua_toboolean(L, idx));
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            rc = sqlite3_bind_int64(s->stmt, i, (sqlite3_int64)lua_tointeger(L, idx));
        else
            rc = sqlite3_bind_double(s->stmt, i, (double)lua_tonumber(L, idx));
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *text = lua_tolstring(L, idx, &len);
        rc = sqlite3_bind_text64(s->stmt, i, text, len, SQLITE_TRANSIENT, SQLITE_UTF8);
        break;
    }
    default: {
        const char *name = sqlite3_bind_parameter_name(s->stmt, i);
        return luaL_argerror(L, arg,
                             lua_pushfstring(L, "cannot bind a %s to parameter %s",
                                             luaL_typename(L, idx),
                                             name ? name : lua_pushfstring(L, "%d", i)));
    }
    }
    if (rc == SQLITE_RANGE)
        return luaL_argerror(L, arg, lua_pushfstring(L, "no parameter %d", i));
    if (rc == SQLITE_MISUSE)
        return luaL_error(L, "statement was stepped: reset() it before binding");
    return rc;
}

/* Binds stack values first..last: one table binds by name (":id", "@id" and
 * "$id" read key "id"; "?" and "?NNN" read integer keys), anything else binds
 * by position. Parameters not given are NULL. Returns an SQLite result code. */
static int bind_args(lua_State *L, store_stmt *s, int first, int last) {
    sqlite3_reset(s->stmt);
    sqlite3_clear_bindings(s->stmt);
    int count = sqlite3_bind_parameter_count(s->stmt);
    if (last == first && lua_type(L, first) == LUA_TTABLE) {
        for (int i = 1; i <= count; i++) {
            const char *name = sqlite3_bind_parameter_name(s->stmt, i);
            if (name == NULL || name[0] == '?')
                lua_geti(L, first, i);
            else
                lua_getfield(L, first, name + 1);
            int rc = bind_value(L, s, i, lua_gettop(L), first);
            lua_pop(L, 1);
            if (rc != SQLITE_OK)
                return rc;
        }
        return SQLITE_OK;
    }
    if (last - first + 1 > count)
        return luaL_argerror(L, first + count,
                             lua_pushfstring(L, "statement takes %d parameters", count));
    for (int idx = first; idx <= last; idx++) {
        int rc = bind_value(L, s, idx - first + 1, idx, idx);
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

static void push_column(lua_State *L, sqlite3_stmt *stmt, int col) {
    switch (sqlite3_column_type(stmt, col)) {
    case SQLITE_INTEGER:
        lua_pushinteger(L, (lua_Integer)sqlite3_column_int64(stmt, col));
        break;
    case SQLITE_FLOAT:
        lua_pushnumber(L, (lua_Number)sqlite3_column_double(stmt, col));
        break;
    case SQLITE_TEXT: {
        const char *text = (const char *)sqlite3_column_text(stmt, col); /* before _bytes */
        lua_pushlstring(L, text ? text : "", (size_t)sqlite3_column_bytes(stmt, col));
        break;
    }
    case SQLITE_BLOB: {
        const void *blob = sqlite3_column_blob(stmt, col);
        lua_pushlstring(L, blob ? blob : "", (size_t)sqlite3_column_bytes(stmt, col));
        break;
    }
    default:
        lua_pushnil(L);
        break;
    }
}

/* Pushes the current row as {column name = value}; NULL columns are absent. */
static void push_row(lua_State *L, sqlite3_stmt *stmt) {
    int n = sqlite3_column_count(stmt);
    lua_createtable(L, 0, n);
    for (int col = 0; col < n; col++) {
        if (sqlite3_column_type(stmt, col) == SQLITE_NULL)
            continue;
        const char *name = sqlite3_column_name(stmt, col);
        if (name == NULL)
            luaL_error(L, "not enough memory");
        push_column(L, stmt, col);
        lua_setfield(L, -2, name);
    }
}

/* Reads open()'s options table at idx into opts; raises on an unknown name
 * or a value of the wrong type. */
static void check_open_options(lua_State *L, int idx, prisn_store_options *opts) {
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
        if (strcmp(key, "readonly") == 0 || strcmp(key, "create") == 0 ||
            strcmp(key, "keep_wal") == 0) {
            if (!lua_isboolean(L, -1))
                luaL_argerror(L, idx, lua_pushfstring(L, "%s must be a boolean", key));
            if (key[0] == 'r')
                opts->readonly = lua_toboolean(L, -1);
            else if (key[0] == 'c')
                opts->create = lua_toboolean(L, -1);
            else
                opts->keep_wal = lua_toboolean(L, -1);
        } else if (strcmp(key, "busy_timeout_ms") == 0) {
            lua_Integer ms = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : -1;
            if (ms < 0 || ms > INT_MAX)
                luaL_argerror(L, idx, "busy_timeout_ms must be a non-negative integer");
            opts->busy_timeout_ms = (int)ms;
        } else {
            const char *name = luaL_tolstring(L, -2, NULL);
            luaL_argerror(L, idx, lua_pushfstring(L, "unknown option '%s'", name));
        }
        lua_pop(L, 1);
    }
}

/* store.open(path [, options]) -> db | nil, message, code
 * options: readonly (false), create (true), busy_timeout_ms (5000),
 * keep_wal (false: keep the -wal file and skip the checkpoint on close).
 * Raises on a bad option name or type. */
static int l_store_open(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    prisn_store_options opts;
    prisn_store_default_options(&opts);
    if (!lua_isnoneornil(L, 2))
        check_open_options(L, 2, &opts);
    store_db *d = lua_newuserdatauv(L, sizeof *d, 2);
    memset(d, 0, sizeof *d);
    luaL_setmetatable(L, STORE_DB_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    int rc = prisn_store_open(path, &opts, &d->db);
    if (rc != SQLITE_OK) {
        int n = db_failure(L, lua_gettop(L), rc);
        prisn_store_close(d->db);
        d->db = NULL;
        return n;
    }
    return 1;
}

/* store.version() -> the SQLite library version, e.g. "3.40.1". */
static int l_store_version(lua_State *L) {
    lua_pushstring(L, sqlite3_libversion());
    return 1;
}

/* db:exec(sql) -> true | nil, message, code
 * Runs one or more statements and discards their rows. */
static int l_store_db_exec(lua_State *L) {
    store_db *d = check_db(L, 1);
    int rc = prisn_store_exec(d->db, luaL_checkstring(L, 2));
    if (rc != SQLITE_OK)
        return db_failure(L, 1, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* db:prepare(sql) -> stmt | nil, message, code
 * sql must hold exactly one statement (else SQLITE_MISUSE). */
static int l_store_db_prepare(lua_State *L) {
    check_db(L, 1);
    size_t len;
    const char *sql = luaL_checklstring(L, 2, &len);
    return stmt_new(L, 1, sql, len) == SQLITE_OK ? 1 : 3;
}

/* The kept statement for the SQL at index 2 of the database at index 1,
 * pushed, or NULL (nothing pushed) when there is none free. */
static store_stmt *kept_stmt(lua_State *L) {
    if (lua_getiuservalue(L, 1, 2) != LUA_TTABLE) {
        lua_pop(L, 1);
        return NULL;
    }
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    lua_remove(L, -2);
    store_stmt *s = luaL_testudata(L, -1, STORE_STMT_MT);
    if (s == NULL || s->stmt == NULL || s->busy) {
        lua_pop(L, 1);
        return NULL;
    }
    return s;
}

/* Finalizes the kept statements of the table at the top that are not in
 * use: their SQLite memory is outside the Lua heap, so the collector would
 * not hurry to free them. */
static void drop_kept(lua_State *L) {
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        store_stmt *s = luaL_testudata(L, -1, STORE_STMT_MT);
        if (s != NULL && !s->busy)
            stmt_finalize(s);
        lua_pop(L, 1);
    }
}

/* Keeps the statement at the top for the SQL at index 2 (replacing one
 * busy under the same text). */
static void keep_stmt(lua_State *L, store_db *d, store_stmt *s) {
    if (lua_getiuservalue(L, 1, 2) != LUA_TTABLE || d->kept >= STORE_KEPT_MAX) {
        if (lua_istable(L, -1))
            drop_kept(L);
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, 1, 2);
        d->kept = 0;
    }
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    d->kept++;
    s->kept = true;
}

/* Done with a statement of rows/first/run: a kept one is reset (no read
 * stays open, no bound copy stays held) for its next use, another
 * finalized. */
static void stmt_done(store_stmt *s) {
    if (!s->kept || s->stmt == NULL) {
        stmt_finalize(s);
        return;
    }
    sqlite3_reset(s->stmt);
    sqlite3_clear_bindings(s->stmt);
    s->busy = false;
}

/* Shared by rows/first/run: prepares argument 2 (or takes the statement
 * kept for it: preparing was about 20 of the 45 us a small query took,
 * tests/bench/deployments-report.md), binds arguments 3..top and leaves the
 * statement at the top. Returns SQLITE_OK or leaves a failure. */
static int db_query(lua_State *L, store_stmt **out) {
    store_db *d = check_db(L, 1);
    int top = lua_gettop(L);
    size_t len;
    const char *sql = luaL_checklstring(L, 2, &len);
    store_stmt *s = kept_stmt(L);
    if (s == NULL) {
        int rc = stmt_new(L, 1, sql, len);
        if (rc != SQLITE_OK)
            return rc;
        s = lua_touserdata(L, -1);
        keep_stmt(L, d, s);
    }
    s->busy = true;
    *out = s;
    int rc = SQLITE_OK;
    if (top >= 3 && (rc = bind_args(L, s, 3, top)) != SQLITE_OK) {
        stmt_failure(L, top + 1, rc);
        stmt_done(s);
    }
    return rc;
}

/* db:rows(sql, ...) -> {row, ...} | nil, message, code
 * Arguments after sql bind as in stmt:bind. Each row maps column names to
 * values; NULL columns are absent. */
static int l_store_db_rows(lua_State *L) {
    store_stmt *s;
    if (db_query(L, &s) != SQLITE_OK)
        return 3;
    int sidx = lua_gettop(L);
    lua_newtable(L);
    for (lua_Integer n = 1;; n++) {
        int rc = sqlite3_step(s->stmt);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            int results = stmt_failure(L, sidx, rc);
            stmt_done(s);
            return results;
        }
        push_row(L, s->stmt);
        lua_rawseti(L, -2, n);
    }
    stmt_done(s);
    return 1;
}

/* db:first(sql, ...) -> row | nil | nil, message, code
 * The first row only; a lone nil (no message) when there is no row. */
static int l_store_db_first(lua_State *L) {
    store_stmt *s;
    if (db_query(L, &s) != SQLITE_OK)
        return 3;
    int sidx = lua_gettop(L);
    int rc = sqlite3_step(s->stmt);
    int results = 1;
    if (rc == SQLITE_ROW)
        push_row(L, s->stmt);
    else if (rc == SQLITE_DONE)
        lua_pushnil(L);
    else
        results = stmt_failure(L, sidx, rc);
    stmt_done(s);
    return results;
}

/* db:run(sql, ...) -> changes | nil, message, code
 * Steps the statement to the end, discarding rows; returns sqlite3_changes(),
 * the rows changed by the latest INSERT, UPDATE or DELETE. */
static int l_store_db_run(lua_State *L) {
    store_stmt *s;
    if (db_query(L, &s) != SQLITE_OK)
        return 3;
    int sidx = lua_gettop(L);
    int rc;
    while ((rc = sqlite3_step(s->stmt)) == SQLITE_ROW)
        ;
    if (rc != SQLITE_DONE) {
        int results = stmt_failure(L, sidx, rc);
        stmt_done(s);
        return results;
    }
    lua_pushinteger(L, (lua_Integer)sqlite3_changes64(check_db(L, 1)->db));
    stmt_done(s);
    return 1;
}

/* db:changes() -> rows changed by the latest INSERT, UPDATE or DELETE. */
static int l_store_db_changes(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)sqlite3_changes64(check_db(L, 1)->db));
    return 1;
}

/* db:last_insert_rowid() -> integer rowid of the latest successful INSERT. */
static int l_store_db_last_insert_rowid(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)sqlite3_last_insert_rowid(check_db(L, 1)->db));
    return 1;
}

/* db:in_transaction() -> true when a transaction is open (not autocommit). */
static int l_store_db_in_transaction(lua_State *L) {
    lua_pushboolean(L, sqlite3_get_autocommit(check_db(L, 1)->db) == 0);
    return 1;
}

/* db:user_version() -> integer | nil, message, code */
static int l_store_db_user_version(lua_State *L) {
    store_db *d = check_db(L, 1);
    int32_t version;
    int rc = prisn_store_user_version(d->db, &version);
    if (rc != SQLITE_OK)
        return db_failure(L, 1, rc);
    lua_pushinteger(L, version);
    return 1;
}

/* db:set_user_version(n) -> true | nil, message, code
 * Raises unless n is an integer that fits in 32 bits. */
static int l_store_db_set_user_version(lua_State *L) {
    store_db *d = check_db(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= INT32_MIN && n <= INT32_MAX, 2, "must fit in 32 bits");
    int rc = prisn_store_set_user_version(d->db, (int32_t)n);
    if (rc != SQLITE_OK)
        return db_failure(L, 1, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* db:close() -> true. Finalizes the database's statements first; idempotent.
 * Also __close and __gc. */
static int l_store_db_close(lua_State *L) {
    store_db *d = luaL_checkudata(L, 1, STORE_DB_MT);
    if (d->db != NULL)
        db_close(d);
    lua_pushboolean(L, 1);
    return 1;
}

/* __tostring -> "prisn.store.db (<path>)" or "prisn.store.db (closed)". */
static int l_store_db_tostring(lua_State *L) {
    store_db *d = luaL_checkudata(L, 1, STORE_DB_MT);
    if (d->db == NULL) {
        lua_pushliteral(L, STORE_DB_MT " (closed)");
        return 1;
    }
    lua_getiuservalue(L, 1, 1);
    lua_pushfstring(L, STORE_DB_MT " (%s)", lua_tostring(L, -1));
    return 1;
}

/* stmt:bind(...) -> stmt | nil, message, code
 * Resets the statement and replaces all its bindings: one table binds by
 * name, other values by position; parameters not given are NULL. nil is
 * NULL, booleans 0/1, integers INTEGER, floats REAL, strings TEXT. Raises on
 * other types and on more values than parameters. */
static int l_store_stmt_bind(lua_State *L) {
    store_stmt *s = check_stmt(L, 1);
    int top = lua_gettop(L);
    int rc = SQLITE_OK;
    if (top >= 2) {
        rc = bind_args(L, s, 2, top);
    } else {
        sqlite3_reset(s->stmt);
        sqlite3_clear_bindings(s->stmt);
    }
    if (rc != SQLITE_OK)
        return stmt_failure(L, 1, rc);
    lua_settop(L, 1);
    return 1;
}

/* stmt:bind_blob(param, bytes) -> stmt | nil, message, code
 * param is a 1-based index or a name without its prefix (":data" -> "data").
 * Raises when there is no such parameter or the statement is running. */
static int l_store_stmt_bind_blob(lua_State *L) {
    store_stmt *s = check_stmt(L, 1);
    int i;
    if (lua_type(L, 2) == LUA_TSTRING) {
        const char *name = lua_tostring(L, 2);
        i = 0;
        for (const char *prefix = ":@$"; *prefix && i == 0; prefix++)
            i = sqlite3_bind_parameter_index(s->stmt, lua_pushfstring(L, "%c%s", *prefix, name));
        luaL_argcheck(L, i > 0, 2, "no such parameter");
    } else {
        lua_Integer n = luaL_checkinteger(L, 2);
        luaL_argcheck(L, n >= 1 && n <= sqlite3_bind_parameter_count(s->stmt), 2,
                      "no such parameter");
        i = (int)n;
    }
    size_t len;
    const char *bytes = luaL_checklstring(L, 3, &len);
    int rc = sqlite3_bind_blob64(s->stmt, i, bytes, len, SQLITE_TRANSIENT);
    if (rc == SQLITE_MISUSE)
        return luaL_error(L, "statement was stepped: reset() it before binding");
    if (rc != SQLITE_OK)
        return stmt_failure(L, 1, rc);
    lua_settop(L, 1);
    return 1;
}

/* Steps once; pushes the row with push(L, stmt). Returns the Lua results. */
static int stmt_step(lua_State *L, void (*push)(lua_State *, sqlite3_stmt *)) {
    store_stmt *s = check_stmt(L, 1);
    int rc = sqlite3_step(s->stmt);
    if (rc == SQLITE_ROW) {
        push(L, s->stmt);
        return 1;
    }
    if (rc == SQLITE_DONE) {
        lua_pushboolean(L, 0);
        return 1;
    }
    int results = stmt_failure(L, 1, rc);
    sqlite3_reset(s->stmt); /* ready to retry; bindings are kept */
    return results;
}

static void push_row_array(lua_State *L, sqlite3_stmt *stmt) {
    int n = sqlite3_column_count(stmt);
    lua_createtable(L, n, 1);
    for (int col = 0; col < n; col++) {
        push_column(L, stmt, col);
        lua_rawseti(L, -2, col + 1);
    }
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
}

/* stmt:step() -> row | false | nil, message, code
 * row maps column names to values (NULL columns absent); false when done.
 * After an error the statement is reset, keeping its bindings. */
static int l_store_stmt_step(lua_State *L) {
    return stmt_step(L, push_row);
}

/* stmt:step_array() -> {v1, ..., n = columns} | false | nil, message, code
 * As step, with values by column position; NULL leaves a hole. */
static int l_store_stmt_step_array(lua_State *L) {
    return stmt_step(L, push_row_array);
}

/* stmt:reset() -> stmt. Rewinds the statement; bindings are kept. */
static int l_store_stmt_reset(lua_State *L) {
    sqlite3_reset(check_stmt(L, 1)->stmt);
    lua_settop(L, 1);
    return 1;
}

/* stmt:clear_bindings() -> stmt. Sets every parameter to NULL. */
static int l_store_stmt_clear_bindings(lua_State *L) {
    sqlite3_clear_bindings(check_stmt(L, 1)->stmt);
    lua_settop(L, 1);
    return 1;
}

/* stmt:columns() -> {name, ...} in result order. */
static int l_store_stmt_columns(lua_State *L) {
    sqlite3_stmt *stmt = check_stmt(L, 1)->stmt;
    int n = sqlite3_column_count(stmt);
    lua_createtable(L, n, 0);
    for (int col = 0; col < n; col++) {
        lua_pushstring(L, sqlite3_column_name(stmt, col));
        lua_rawseti(L, -2, col + 1);
    }
    return 1;
}

/* stmt:finalize() -> true; alias close, also __close and __gc. Idempotent,
 * and fine after the database was closed. */
static int l_store_stmt_finalize(lua_State *L) {
    stmt_finalize(luaL_checkudata(L, 1, STORE_STMT_MT));
    lua_pushboolean(L, 1);
    return 1;
}

/* __tostring -> "prisn.store.stmt (<sql>)" or "prisn.store.stmt (finalized)". */
static int l_store_stmt_tostring(lua_State *L) {
    store_stmt *s = luaL_checkudata(L, 1, STORE_STMT_MT);
    if (s->stmt == NULL)
        lua_pushliteral(L, STORE_STMT_MT " (finalized)");
    else
        lua_pushfstring(L, STORE_STMT_MT " (%s)", sqlite3_sql(s->stmt));
    return 1;
}

static const luaL_Reg store_functions[] = {
    {"open", l_store_open},
    {"version", l_store_version},
    {NULL, NULL},
};

static const luaL_Reg store_db_methods[] = {
    {"exec", l_store_db_exec},
    {"prepare", l_store_db_prepare},
    {"rows", l_store_db_rows},
    {"first", l_store_db_first},
    {"run", l_store_db_run},
    {"changes", l_store_db_changes},
    {"last_insert_rowid", l_store_db_last_insert_rowid},
    {"in_transaction", l_store_db_in_transaction},
    {"user_version", l_store_db_user_version},
    {"set_user_version", l_store_db_set_user_version},
    {"close", l_store_db_close},
    {NULL, NULL},
};

static const luaL_Reg store_stmt_methods[] = {
    {"bind", l_store_stmt_bind},       {"bind_blob", l_store_stmt_bind_blob},
    {"step", l_store_stmt_step},       {"step_array", l_store_stmt_step_array},
    {"reset", l_store_stmt_reset},     {"clear_bindings", l_store_stmt_clear_bindings},
    {"columns", l_store_stmt_columns}, {"finalize", l_store_stmt_finalize},
    {"close", l_store_stmt_finalize},  {NULL, NULL},
};

int luaopen_prisn_core_store(lua_State *L) {
    prisn_binding_metatable(L, STORE_DB_MT, store_db_methods, l_store_db_close, l_store_db_close,
                            l_store_db_tostring);
    prisn_binding_metatable(L, STORE_STMT_MT, store_stmt_methods, l_store_stmt_finalize, l_store_stmt_finalize,
                            l_store_stmt_tostring);
    luaL_newlib(L, store_functions);
    return 1;
}
