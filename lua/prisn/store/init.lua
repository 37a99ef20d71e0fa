-- prisn.store: the state database, $PRISN_HOME/state.db, and the one door
-- to it: no module outside lua/prisn/store/ writes SQL. The rest of prisn
-- calls named operations of the resource modules (prisn.store.jobs,
-- .job_specs, .cronjobs, .deployments, .events, .secrets, .tokens), each
-- taking an open db handle, and runs several of them as one change with
-- `transaction(db, fn)`.
--
-- `open` creates the file 0600 (it will hold job records, and later tokens'
-- hashes and secrets' ciphertext), opens it through prisn.core.store (WAL,
-- foreign keys on, a busy timeout) and brings its schema up to date: the
-- scripts of prisn.store.migrations that the file lacks are applied in order
-- inside one BEGIN IMMEDIATE transaction, and PRAGMA user_version records the
-- version reached. A database written by a newer prisn (user_version beyond
-- the scripts this binary knows) is refused rather than misread.
--
-- The backend. Everything below prisn.store.* reaches the database only
-- through these methods of the handle `open` returns (today prisn.core.store,
-- SQLite in core/store.c); a backend offering the same methods, with the same
-- results, can replace it without touching a caller:
--
--   db:exec(sql)             -> true | nil, message, code  (one or more
--                               statements, rows discarded)
--   db:rows(sql, ...)        -> { row, ... } | nil, message, code
--   db:first(sql, ...)       -> row | nil (no row) | nil, message, code
--   db:run(sql, ...)         -> rows changed | nil, message, code
--   db:prepare(sql)          -> stmt | nil, message, code, where stmt has
--                               bind(params), bind_blob(name, bytes), step()
--                               and finalize() (a BLOB cannot be told from
--                               TEXT by a Lua string; prisn.store.secrets)
--   db:in_transaction()      -> boolean
--   db:user_version()        -> integer | nil, message, code
--   db:set_user_version(n)   -> true | nil, message, code
--   db:close()               -> true (idempotent)
--   tostring(db)             -> "prisn.store.db (<path>)"
--
-- Parameters after the SQL bind one table by name (:name) or values by
-- position (?); a row maps column names to values, NULL columns absent.
-- Codes are SQLite's names ("SQLITE_BUSY", "SQLITE_FULL", ...). The
-- statements are SQLite's dialect (ON CONFLICT, PRAGMA, WITHOUT ROWID).
-- Besides the handle, the backend is prisn.core.store.open (used by `open`
-- and `quick_check` here) and prisn.core.checkpoint (the server's WAL
-- checkpoints, prisn.store.checkpointer).
--
-- Failures of the core (`nil, message, code`) become prisn.errors here, with
-- the core's code ("SQLITE_BUSY", "SQLITE_READONLY", ...) and a hint. Another
-- process holding the write lock is waited for up to the busy timeout (5 s by
-- default), then reported as SQLITE_BUSY.
--
-- This module owns opening, migrating and transactions, and says which
-- failures mean the state cannot be written (a full disk, an I/O error, a
-- read-only file): `storage_failure` classifies them, and an observer
-- (`set_observer`, the server's prisn.store.writer) hears of every such
-- failure raised here and of every commit, so the server knows when it is
-- degraded and when it can write again.
local uv = require("luv")
local cjson = require("cjson")
local core = require("prisn.core.store")
local errors = require("prisn.error")
local homes = require("prisn.home")
local migrations = require("prisn.store.migrations")

local M = {}

M.FILE = "state.db"
M.FILE_MODE = tonumber("600", 8)

local HINTS = {
  SQLITE_BUSY = "another prisn process is writing to the state database; try again in a moment",
  SQLITE_LOCKED = "another prisn process is writing to the state database; try again in a moment",
  SQLITE_READONLY = homes.write_hint("SQLITE_READONLY"),
  SQLITE_PERM = homes.write_hint("SQLITE_PERM"),
  -- Also where WAL mode cannot work (a network file system).
  SQLITE_CANTOPEN = "check that you own PRISN_HOME, may write to it, and that it is on a local file system "
    .. "('prisn doctor' checks it)",
  SQLITE_FULL = homes.write_hint("SQLITE_FULL"),
  SQLITE_IOERR = "the disk holding PRISN_HOME failed a read or write; check it (dmesg) and its free space",
  SQLITE_ABORT = "the change was not made; check the free space where PRISN_HOME lives and try again",
  SQLITE_CORRUPT = "the state database is damaged: run 'prisn doctor', then move state.db aside "
    .. "or restore a backup",
  SQLITE_NOTADB = "the state database is damaged: run 'prisn doctor', then move state.db aside "
    .. "or restore a backup",
}

-- Failures that mean the state cannot be written, by kind: "full" (no
-- space: SQLite's own, or a file prisn writes itself), "io" (the disk
-- failed, or SQLite rolled a transaction back after such a failure) and
-- "readonly". They pass; everything else (a constraint, a bug in SQL) is
-- for good.
M.STORAGE_FAILURES = {
  SQLITE_FULL = "full", ENOSPC = "full", EDQUOT = "full",
  SQLITE_IOERR = "io", EIO = "io", SQLITE_ABORT = "io",
  SQLITE_READONLY = "readonly", EROFS = "readonly",
}

--- The kind of storage failure `err` is ("full", "io", "readonly"; see
-- STORAGE_FAILURES), or nil. `err` is a prisn.error or a code.
function M.storage_failure(err)
  local code = type(err) == "table" and err.code or err
  return M.STORAGE_FAILURES[code]
end

-- The observer of storage failures and commits (nil: none). One per
-- process: the server's.
local observer

--- Sets the function told of storage failures, as observer("failed",
-- code, message), and of commits, as observer("committed"); nil for none.
-- Returns the previous one.
function M.set_observer(fn)
  local previous = observer
  observer = fn
  return previous
end

local function observe(event, code, message)
  if observer and (event == "committed" or M.STORAGE_FAILURES[code]) then
    local ok, err = pcall(observer, event, code, message)
    if not ok then io.stderr:write("prisn: store observer failed: ", tostring(err), "\n") end
  end
end

-- The prisn.error for a failure of the core.
local function failure(message, code)
  observe("failed", code, message)
  return errors.new(code or "SQLITE_ERROR", message or "state database error",
    { hint = HINTS[code] or "run 'prisn doctor' to check the state database" })
end

--- Raises the prisn.error for a failure of the core: `code` is kept as the
-- error's code, `message` (which names the database) as its message.
function M.fail(message, code)
  error(failure(message, code), 0)
end

--- Passes a core result through, or raises it as a prisn.error when the first
-- value is nil and a message came with it (a lone nil is "no row").
function M.check(ok, message, code, ...)
  if ok == nil and message ~= nil then M.fail(message, code) end
  return ok, message, code, ...
end

local check = M.check

--- A value decoded from JSON made plain for Lua: JSON null becomes nil and
-- whole numbers integers (cjson decodes 3 as 3.0, which prints as "3.0" and
-- fails integer checks).
function M.plain_json(value)
  if type(value) == "number" then return math.tointeger(value) or value end
  if type(value) ~= "table" then
    if value == cjson.null then return nil end
    return value
  end
  local out = {}
  for k, v in pairs(value) do out[k] = M.plain_json(v) end
  return setmetatable(out, getmetatable(value))
end

--- The path of the state database in `home`.
function M.path(home)
  return home .. "/" .. M.FILE
end

-- Creates an empty file with mode 0600 unless one exists (an empty file is an
-- empty SQLite database). SQLite would create it 0644; its -wal and -shm
-- files copy the database file's mode, so they end up 0600 too.
local function create_file(path)
  local fd, err, code = uv.fs_open(path, "wx", M.FILE_MODE)
  if fd then
    uv.fs_close(fd)
    return
  end
  if code == "EEXIST" then return end
  errors.raise(code or "EIO", string.format("cannot create the state database %s: %s", path, err),
    { hint = "check that PRISN_HOME exists and that you may write to it ('prisn doctor' checks it)" })
end

--- Runs fn(...) inside BEGIN IMMEDIATE ... COMMIT and returns its results.
-- An error raised by fn (or by COMMIT) rolls the transaction back and is
-- raised again unchanged. Called inside a transaction, fn joins it: the
-- outermost call commits or rolls back.
--
-- SQLite itself rolls a transaction back when a statement in it fails with
-- a full disk or an I/O error; a statement whose failure fn did not check
-- would leave fn running on in autocommit mode. Such a transaction is
-- reported as SQLITE_ABORT rather than committed in part.
function M.transaction(db, fn, ...)
  if db:in_transaction() then return fn(...) end
  check(db:exec("BEGIN IMMEDIATE"))
  local result = table.pack(pcall(fn, ...))
  if result[1] and not db:in_transaction() then
    local path = tostring(db):match("^prisn%.store%.db %((.*)%)$") or M.FILE
    result = { false, failure("SQLITE_ABORT: " .. path .. ": the transaction was rolled back after a "
      .. "statement in it failed (disk full or I/O error)", "SQLITE_ABORT") }
  elseif result[1] then
    local ok, message, code = db:exec("COMMIT")
    if ok then
      observe("committed")
      return table.unpack(result, 2, result.n)
    end
    result = { false, failure(message, code) }
  end
  if db:in_transaction() then db:exec("ROLLBACK") end
  error(result[2], 0)
end

--- Runs fn(...) with PRAGMA synchronous=FULL, so a transaction it commits
-- is on disk (the WAL synced) before it returns, not only at the next
-- checkpoint; the database's own level is put back afterwards, whatever fn
-- does. Returns fn's results or raises its error. For a commit that must
-- survive a power cut because something outside the database depends on
-- it (prisn.secrets.keyring's rotation). Not inside a transaction: SQLite
-- applies the level to the transactions that begin after it is set.
function M.durably(db, fn, ...)
  local row = db:first("PRAGMA synchronous")
  local level = row and row.synchronous or 1
  local result = table.pack(pcall(function(...)
    check(db:exec("PRAGMA synchronous=FULL"))
    return fn(...)
  end, ...))
  db:exec("PRAGMA synchronous=" .. math.tointeger(level))
  if not result[1] then error(result[2], 0) end
  return table.unpack(result, 2, result.n)
end

--- Whether `db` takes a write now: the write lock can be had (what the
-- server's /ready promises). Takes and gives back the lock; changes nothing.
function M.writable(db)
  return db:exec("BEGIN IMMEDIATE; ROLLBACK;") == true
end

--- Checks the state database at `path` read-only, without migrating it or
-- creating anything (prisn doctor): returns its schema version, or nil and
-- why it is damaged or cannot be read.
function M.quick_check(path)
  local db, err = core.open(path, { readonly = true, create = false })
  if not db then return nil, err end
  local row, qerr = db:first("PRAGMA quick_check")
  local version = db:user_version()
  db:close()
  if not row then return nil, qerr or "quick_check returned nothing" end
  local verdict = row.quick_check or row[1]
  if verdict ~= "ok" then return nil, "quick_check: " .. tostring(verdict) end
  return version
end

local function too_new(path, version, known)
  errors.raise("schema_too_new", string.format(
    "the state database %s has schema version %d, newer than this prisn knows (%d)",
    path, version, known),
    { hint = "use the newer prisn that last wrote it, or point PRISN_HOME at another directory" })
end

--- Brings `db` up to the schema of `scripts` (default
-- prisn.store.migrations). Returns the schema version; raises
-- "schema_too_new" for a database from a newer prisn.
function M.migrate(db, path, scripts)
  scripts = scripts or migrations
  local target = #scripts
  local version = check(db:user_version())
  if version > target then too_new(path, version, target) end
  if version == target then return version end
  return M.transaction(db, function()
    -- Again under the write lock: another process may have migrated meanwhile.
    version = check(db:user_version())
    if version > target then too_new(path, version, target) end
    for i = version + 1, target do
      local ok, message, code = db:exec(scripts[i])
      if not ok then M.fail(string.format("schema migration %d failed: %s", i, message), code) end
    end
    check(db:set_user_version(target))
    return target
  end)
end

M.WAL_AUTOCHECKPOINT_PAGES = 200

--- Opens the state database in `home` (default: PRISN_HOME, created when
-- missing) and migrates it. Returns the db handle (close it with db:close()).
-- `opts`:
--   create      false: do not create PRISN_HOME or state.db; return nil when
--               the database does not exist (read-only commands use this)
--   busy_timeout_ms   how long to wait for another writer (default 5000)
--   migrations  the list of schema scripts (specs pass their own)
-- Raises a prisn.error when the file cannot be created or opened, is not a
-- database, or comes from a newer prisn.
function M.open(home, opts)
  opts = opts or {}
  if not home then home = opts.create == false and homes.path() or homes.ensure() end
  local path = M.path(home)
  if not uv.fs_stat(path) then
    if opts.create == false then return nil end
    create_file(path)
  end
  -- keep_wal: prisn opens the database in many short-lived processes; keeping
  -- the WAL spares each of them a checkpoint and the syncs that come with it.
  local db = check(core.open(path, { create = false, busy_timeout_ms = opts.busy_timeout_ms, keep_wal = true }))
  -- In WAL mode NORMAL syncs at checkpoints, not at every commit: a crash of
  -- prisn loses nothing, a power cut at most the last commits, and recording
  -- a job costs microseconds instead of an fsync per state change.
  db:exec("PRAGMA synchronous=NORMAL")
  -- The first process to open the database after the last one closed it
  -- rebuilds the WAL's index by reading every frame since the last
  -- checkpoint: with SQLite's 1,000 pages that was ~500 frames, 1-2 ms of
  -- every `prisn run` (21 frames each). 200 keeps that read small and costs a
  -- checkpoint (two syncs) about every tenth run. The server checkpoints on
  -- a thread of its own instead (prisn.store.checkpointer).
  db:exec("PRAGMA wal_autocheckpoint=" .. M.WAL_AUTOCHECKPOINT_PAGES)
  local ok, err = pcall(M.migrate, db, path, opts.migrations)
  if not ok then
    db:close()
    error(err, 0)
  end
  return db
end

return M
