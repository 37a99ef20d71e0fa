-- prisn.store: creating state.db 0600, applying migrations once and in order,
-- refusing a newer schema, not creating anything when asked not to, and
-- transactions that commit or roll back.
local uv = require("luv")
local core = require("prisn.core.store")
local errors = require("prisn.error")
local store = require("prisn.store")
local remove_tree, raised = require("support").remove_tree, require("support").raised

describe("prisn.store", function()
  local home

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
  end)

  after_each(function()
    remove_tree(home)
  end)

  it("creates state.db with mode 0600 and the current schema", function()
    local db = store.open(home)
    local st = assert(uv.fs_stat(home .. "/state.db"))
    assert.equal("600", string.format("%o", st.mode & tonumber("777", 8)))
    assert.equal(#require("prisn.store.migrations"), db:user_version())
    assert.equal("wal", db:first("PRAGMA journal_mode").journal_mode)
    assert.is_table(db:first("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'jobs'"))
    db:close()
    local wal = uv.fs_stat(home .. "/state.db-wal")
    if wal then assert.equal("600", string.format("%o", wal.mode & tonumber("777", 8))) end
  end)

  it("applies each migration once, in order, recording the version", function()
    local applied = {}
    local migrations = {
      "CREATE TABLE a(x); INSERT INTO a VALUES (1);",
      "CREATE TABLE b(y);",
    }
    local db = store.open(home, { migrations = migrations })
    assert.equal(2, db:user_version())
    db:close()
    -- Opening again applies nothing: a second INSERT would make two rows.
    db = store.open(home, { migrations = migrations })
    assert.equal(1, db:first("SELECT count(*) AS n FROM a").n)
    -- A third script is applied alone.
    migrations[3] = "INSERT INTO a VALUES (3);"
    db:close()
    db = store.open(home, { migrations = migrations })
    assert.equal(3, db:user_version())
    for _, row in ipairs(db:rows("SELECT x FROM a ORDER BY x")) do applied[#applied + 1] = row.x end
    assert.same({ 1, 3 }, applied)
    db:close()
  end)

  it("rolls a failed migration back entirely", function()
    local err = raised(store.open, home, { migrations = { "CREATE TABLE a(x);", "CREATE TABLE a(x);" } })
    assert.equal("SQLITE_ERROR", err.code)
    assert.matches("^schema migration 2 failed: ", err.message)
    local db = assert(core.open(home .. "/state.db"))
    assert.equal(0, db:user_version())
    assert.is_nil(db:first("SELECT name FROM sqlite_master WHERE name = 'a'"))
    db:close()
  end)

  it("refuses a database from a newer prisn, with a hint", function()
    local db = store.open(home)
    local known = db:user_version()
    assert(db:set_user_version(known + 1))
    db:close()
    local err = raised(store.open, home)
    assert.equal("schema_too_new", err.code)
    assert.equal(string.format("the state database %s/state.db has schema version %d, newer than this prisn "
      .. "knows (%d)", home, known + 1, known), err.message)
    assert.equal("use the newer prisn that last wrote it, or point PRISN_HOME at another directory", err.hint)
  end)

  it("creates nothing with create = false", function()
    assert.is_nil(store.open(home, { create = false }))
    assert.is_nil(uv.fs_stat(home .. "/state.db"))
    assert.is_nil(store.open(home .. "/missing", { create = false }))
    assert.is_nil(uv.fs_stat(home .. "/missing"))
    store.open(home):close()
    local db = store.open(home, { create = false })
    assert.equal(#require("prisn.store.migrations"), db:user_version())
    db:close()
  end)

  it("reports a file that is not a database as a prisn.error with a hint", function()
    local f = assert(io.open(home .. "/state.db", "w"))
    f:write(("not a database\n"):rep(100))
    f:close()
    local err = raised(store.open, home)
    assert.equal("SQLITE_NOTADB", err.code)
    assert.matches("state database is damaged", err.hint)
  end)

  it("reports a busy database after the busy timeout", function()
    local db = store.open(home)
    local other = store.open(home, { busy_timeout_ms = 50 })
    assert(db:exec("BEGIN IMMEDIATE"))
    local err = raised(store.transaction, other, function() end)
    assert.equal("SQLITE_BUSY", err.code)
    assert.equal("another prisn process is writing to the state database; try again in a moment", err.hint)
    assert(db:exec("ROLLBACK"))
    other:close()
    db:close()
  end)

  describe("transaction", function()
    local db
    before_each(function()
      db = store.open(home, { migrations = { "CREATE TABLE t(x);" } })
    end)
    after_each(function() db:close() end)

    it("commits and returns the function's results", function()
      local a, b = store.transaction(db, function(v)
        assert.is_true(db:in_transaction())
        assert(db:run("INSERT INTO t VALUES (?)", v))
        return "done", v
      end, 7)
      assert.equal("done", a)
      assert.equal(7, b)
      assert.is_false(db:in_transaction())
      assert.equal(7, db:first("SELECT x FROM t").x)
    end)

    it("rolls back on error and raises the error unchanged", function()
      local e = errors.new("boom", "it broke")
      local ok, err = pcall(store.transaction, db, function()
        assert(db:run("INSERT INTO t VALUES (1)"))
        error(e, 0)
      end)
      assert.is_false(ok)
      assert.equal(e, err)
      assert.is_false(db:in_transaction())
      assert.equal(0, db:first("SELECT count(*) AS n FROM t").n)
    end)

    it("joins an enclosing transaction", function()
      pcall(store.transaction, db, function()
        assert(db:run("INSERT INTO t VALUES (1)"))
        store.transaction(db, function() assert(db:run("INSERT INTO t VALUES (2)")) end)
        assert.is_true(db:in_transaction())
        error("outer fails")
      end)
      assert.equal(0, db:first("SELECT count(*) AS n FROM t").n)
    end)

    it("reports a transaction SQLite rolled back under a full disk, and tells the observer", function()
      local heard = {}
      store.set_observer(function(event, code) heard[#heard + 1] = event .. (code and " " .. code or "") end)
      assert(db:exec("PRAGMA max_page_count = " .. db:first("PRAGMA page_count").page_count))
      -- A failure fn does not check: SQLite has rolled everything back.
      local err = raised(store.transaction, db, function()
        db:run("INSERT INTO t VALUES (?)", string.rep("x", 100000))
      end)
      assert.equal("SQLITE_ABORT", err.code)
      assert.matches("state%.db: the transaction was rolled back after a statement in it failed", err.message)
      assert.equal("io", store.storage_failure(err))
      -- A checked one raises SQLITE_FULL, a storage failure.
      err = raised(store.transaction, db, function()
        store.check(db:run("INSERT INTO t VALUES (?)", string.rep("x", 100000)))
      end)
      assert.equal("SQLITE_FULL", err.code)
      assert.equal("full", store.storage_failure(err))
      assert.is_false(db:in_transaction())
      assert(db:exec("PRAGMA max_page_count = 1000000"))
      store.transaction(db, function() assert(db:run("INSERT INTO t VALUES (1)")) end)
      store.set_observer(nil)
      assert.same({ "failed SQLITE_ABORT", "failed SQLITE_FULL", "committed" }, heard)
    end)
  end)

  describe("durably", function()
    it("runs fn with synchronous=FULL and puts the level back, also after an error", function()
      local db = store.open(home)
      local level = db:first("PRAGMA synchronous").synchronous
      assert.are_not.equal(2, level)
      local seen
      local got = { store.durably(db, function(a, b)
        seen = db:first("PRAGMA synchronous").synchronous
        return a + b, "x"
      end, 1, 2) }
      assert.equal(2, seen) -- FULL
      assert.same({ 3, "x" }, got)
      assert.equal(level, db:first("PRAGMA synchronous").synchronous)
      local e = errors.new("boom", "it broke")
      local ok, err = pcall(store.durably, db, function() error(e, 0) end)
      assert.is_false(ok)
      assert.equal(e, err)
      assert.equal(level, db:first("PRAGMA synchronous").synchronous)
      db:close()
    end)
  end)

  it("says whether the database takes a write, changing nothing", function()
    local db = store.open(home, { busy_timeout_ms = 0 })
    local other = store.open(home)
    assert.is_true(store.writable(db))
    assert.is_false(db:in_transaction())
    assert(other:exec("BEGIN IMMEDIATE"))
    assert.is_false(store.writable(db))
    assert(other:exec("ROLLBACK"))
    other:close()
    db:close()
  end)

  it("checks a database read-only, giving its schema version or why it is damaged", function()
    local db = store.open(home)
    db:close()
    assert.equal(#require("prisn.store.migrations"), store.quick_check(store.path(home)))
    assert.is_nil(store.quick_check(home .. "/missing.db"))
    assert.is_nil(uv.fs_stat(home .. "/missing.db"))
    local f = assert(io.open(home .. "/junk.db", "w"))
    f:write(string.rep("not a database ", 100))
    f:close()
    local version, err = store.quick_check(home .. "/junk.db")
    assert.is_nil(version)
    assert.is_string(err)
  end)
end)
