-- prisn.core.store as Lua code sees it: opening, the bind/step round trip,
-- the convenience queries, the `nil, message, code` failures and the handle
-- lifecycle (close, finalize, <close>, tostring).
local uv = require("luv")
local store = require("prisn.core.store")
local remove_tree = require("support").remove_tree

describe("prisn.core.store", function()
  local dir, db

  before_each(function()
    dir = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    db = assert(store.open(dir .. "/state.db"))
  end)

  after_each(function()
    db:close()
    remove_tree(dir)
  end)

  describe("open", function()
    it("uses WAL and enforces foreign keys", function()
      assert.equal("wal", db:first("PRAGMA journal_mode").journal_mode)
      assert.equal(1, db:first("PRAGMA foreign_keys").foreign_keys)
      assert.equal(5000, db:first("PRAGMA busy_timeout").timeout)
    end)

    it("keeps the WAL file and skips the checkpoint on close with keep_wal", function()
      local kept = assert(store.open(dir .. "/kept.db", { keep_wal = true }))
      assert(kept:exec("CREATE TABLE t(x); INSERT INTO t VALUES (1)"))
      kept:close()
      assert.is_truthy(uv.fs_stat(dir .. "/kept.db-wal"), "the WAL was deleted")
      local plain = assert(store.open(dir .. "/plain.db"))
      assert(plain:exec("CREATE TABLE t(x); INSERT INTO t VALUES (1)"))
      plain:close()
      assert.is_nil(uv.fs_stat(dir .. "/plain.db-wal"))
      local again = assert(store.open(dir .. "/kept.db", { keep_wal = true }))
      assert.equal(1, again:first("SELECT count(*) AS n FROM t").n)
      again:close()
    end)

    it("honours readonly, create and busy_timeout_ms", function()
      local ro = assert(store.open(dir .. "/state.db", { readonly = true, busy_timeout_ms = 100 }))
      assert.equal(100, ro:first("PRAGMA busy_timeout").timeout)
      local ok, msg, code = ro:exec("CREATE TABLE t(x)")
      assert.is_nil(ok)
      assert.equal("SQLITE_READONLY", code)
      assert.equal("SQLITE_READONLY: " .. dir .. "/state.db: attempt to write a readonly database", msg)
      ro:close()

      ok, msg, code = store.open(dir .. "/missing.db", { create = false })
      assert.is_nil(ok)
      assert.equal("SQLITE_CANTOPEN", code)
      assert.equal("SQLITE_CANTOPEN: " .. dir .. "/missing.db: unable to open database file", msg)
    end)

    it("refuses a file that is not a database", function()
      local f = assert(io.open(dir .. "/notes.txt", "w"))
      f:write(("not a database\n"):rep(100))
      f:close()
      local ok, msg, code = store.open(dir .. "/notes.txt")
      assert.is_nil(ok)
      assert.equal("SQLITE_NOTADB", code)
      assert.equal("SQLITE_NOTADB: " .. dir .. "/notes.txt: file is not a database", msg)
    end)

    it("raises on bad options", function()
      assert.has_error(function() store.open(":memory:", { readOnly = true }) end,
        "bad argument #2 to 'open' (unknown option 'readOnly')")
      assert.has_error(function() store.open(":memory:", { create = "yes" }) end,
        "bad argument #2 to 'open' (create must be a boolean)")
      assert.has_error(function() store.open(":memory:", { busy_timeout_ms = 1.5 }) end,
        "bad argument #2 to 'open' (busy_timeout_ms must be a non-negative integer)")
    end)

    it("reports the SQLite version", function()
      assert.matches("^3%.%d+%.%d+$", store.version())
    end)
  end)

  describe("statements", function()
    before_each(function()
      assert(db:exec("CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT UNIQUE, size REAL, data BLOB)"))
    end)

    it("round-trips every type", function()
      local ins = assert(db:prepare("INSERT INTO item(id, name, size, data) VALUES (?, ?, ?, ?)"))
      assert.is_false(ins:bind(7, "seven", 7.5, nil):step())
      assert.is_false(ins:bind(8, "eight", nil, true):bind_blob(4, "\0\1\2"):step())
      ins:finalize()
      local sel = assert(db:prepare("SELECT id, name, size, data, typeof(data) AS t FROM item ORDER BY id"))
      assert.same({ id = 7, name = "seven", size = 7.5, t = "null" }, sel:step())
      assert.same({ id = 8, name = "eight", data = "\0\1\2", t = "blob" }, sel:step())
      assert.is_false(sel:step())
      assert.same({ "id", "name", "size", "data", "t" }, sel:columns())
      assert.same({ 7, "seven", 7.5, nil, "null", n = 5 }, sel:reset():step_array())
      sel:close()
    end)

    it("binds by name", function()
      assert.equal(1, db:run("INSERT INTO item(id, name, size) VALUES (:id, @name, $size)",
        { id = 1, name = "one", size = 1 }))
      assert.equal(1, db:last_insert_rowid())
      local row = db:first("SELECT * FROM item WHERE name = :name", { name = "one" })
      assert.same({ id = 1, name = "one", size = 1.0 }, row)
      assert.equal("float", math.type(row.size))
    end)

    it("rebinding replaces every parameter", function()
      local s = assert(db:prepare("SELECT ? AS a, ? AS b"))
      assert.same({ a = 1, b = 2 }, s:bind(1, 2):step())
      assert.same({ a = 3 }, s:bind(3):step())
      assert.same({}, s:bind():step())
      s:finalize()
    end)

    it("returns the failure of a step and stays usable", function()
      local ins = assert(db:prepare("INSERT INTO item(name) VALUES (?)"))
      assert.is_false(ins:bind("dup"):step())
      local ok, msg, code = ins:bind("dup"):step()
      assert.is_nil(ok)
      assert.equal("SQLITE_CONSTRAINT", code)
      assert.equal("SQLITE_CONSTRAINT: " .. dir .. "/state.db: UNIQUE constraint failed: item.name", msg)
      assert.is_false(ins:bind("other"):step())
      ins:finalize()
    end)

    it("raises on values SQLite cannot hold", function()
      local s = assert(db:prepare("SELECT ? AS a, :b AS b"))
      assert.has_error(function() s:bind({}, 1) end, "bad argument #1 to 'bind' (cannot bind a table to parameter 1)")
      assert.has_error(function() s:bind({ b = print }) end,
        "bad argument #1 to 'bind' (cannot bind a function to parameter :b)")
      assert.has_error(function() s:bind(1, 2, 3) end, "bad argument #3 to 'bind' (statement takes 2 parameters)")
      assert.has_error(function() s:bind_blob(3, "x") end, "bad argument #1 to 'bind_blob' (no such parameter)")
      assert.same({ a = "x", b = "y" }, s:bind_blob(1, "x"):bind_blob("b", "y"):step())
      s:finalize()
    end)

    it("prepares exactly one statement", function()
      local ok, msg, code = db:prepare("SELECT 1; SELECT 2")
      assert.is_nil(ok)
      assert.equal("SQLITE_MISUSE", code)
      assert.equal("SQLITE_MISUSE: " .. dir .. "/state.db: SQL holds more than one statement (use exec)", msg)
      ok, msg, code = db:prepare("  -- nothing")
      assert.is_nil(ok)
      assert.equal("SQLITE_MISUSE", code)
      assert.equal("SQLITE_MISUSE: " .. dir .. "/state.db: SQL holds no statement", msg)
      assert.truthy(db:prepare("SELECT 1; -- trailing comment"))
    end)
  end)

  describe("queries", function()
    it("rows, first and run", function()
      assert.is_true(db:exec("CREATE TABLE n(v INTEGER); INSERT INTO n VALUES (1), (2), (3)"))
      assert.same({ { v = 2 }, { v = 3 } }, db:rows("SELECT v FROM n WHERE v > ? ORDER BY v", 1))
      assert.same({}, db:rows("SELECT v FROM n WHERE v > 9"))
      assert.same({ v = 3 }, db:first("SELECT max(v) AS v FROM n"))
      assert.equal(0, select("#", db:first("SELECT v FROM n WHERE v > 9")) - 1)
      assert.is_nil(db:first("SELECT v FROM n WHERE v > 9"))
      assert.equal(2, db:run("UPDATE n SET v = v * 10 WHERE v >= ?", 2))
      assert.equal(2, db:changes())
    end)

    it("keeps the statements of rows, first and run, and leaves nothing open or bound", function()
      assert.is_true(db:exec("CREATE TABLE n(v INTEGER, s TEXT); INSERT INTO n VALUES (1, 'a'), (2, 'b'), (3, 'c')"))
      local other = assert(store.open(dir .. "/state.db", { busy_timeout_ms = 0 }))
      for round = 1, 3 do
        -- The same texts again: new bindings each time, no rows left over.
        assert.same({ { v = 2 }, { v = 3 } }, db:rows("SELECT v FROM n WHERE v > ? ORDER BY v", 1))
        assert.same({ { v = 3 } }, db:rows("SELECT v FROM n WHERE v > ? ORDER BY v", 2))
        assert.same({ v = 1 }, db:first("SELECT v FROM n WHERE v >= :min ORDER BY v", { min = 1 }))
        assert.is_nil(db:first("SELECT v FROM n WHERE v >= :min ORDER BY v", { min = 9 }))
        assert.equal(1, db:run("UPDATE n SET s = ? WHERE v = ?", "x" .. round, 1))
        -- A kept statement stopped after its first row holds no read open:
        -- another connection can still write and checkpoint.
        assert.equal(1, other:run("UPDATE n SET s = 'o' WHERE v = 3"))
        assert.equal(0, other:first("PRAGMA wal_checkpoint(TRUNCATE)").busy)
        -- A failure leaves the kept statement usable.
        assert.equal("SQLITE_MISMATCH", select(3, db:run("INSERT INTO n (rowid, v) VALUES (?, ?)", "x", 0)))
        assert.equal(1, db:run("INSERT INTO n (rowid, v) VALUES (?, ?)", 10 + round, 0))
      end
      assert.equal("x3", db:first("SELECT s FROM n WHERE v = 1").s)
      assert.equal(3, db:first("SELECT count(*) AS n FROM n WHERE v = 0").n)
      -- Many texts: the keep starts over, every query still answers.
      for i = 1, 200 do assert.equal(i, db:first("SELECT " .. i .. " AS v").v) end
      assert.equal(2, #db:rows("SELECT v FROM n WHERE v > ? ORDER BY v", 1))
      -- A bad value raises, and the text is still served afterwards.
      assert.has_error(function() db:rows("SELECT v FROM n WHERE v > ?", print) end)
      assert.equal(2, #db:rows("SELECT v FROM n WHERE v > ?", 1))
      other:close()
      -- Closing the database finalizes the kept statements with the rest.
      assert.is_true(db:close())
      assert.has_error(function() db:rows("SELECT v FROM n WHERE v > ?", 1) end)
      db = assert(store.open(dir .. "/state.db"))
    end)

    it("returns nil, message, code for bad SQL", function()
      for _, call in ipairs({ "exec", "prepare", "rows", "first", "run" }) do
        local ok, msg, code = db[call](db, "SELEC 1")
        assert.is_nil(ok)
        assert.equal("SQLITE_ERROR", code)
        assert.equal("SQLITE_ERROR: " .. dir .. '/state.db: near "SELEC": syntax error', msg)
      end
    end)

    it("enforces foreign keys", function()
      db:exec("CREATE TABLE parent(id INTEGER PRIMARY KEY); CREATE TABLE child(p REFERENCES parent(id))")
      local ok, msg, code = db:run("INSERT INTO child VALUES (1)")
      assert.is_nil(ok)
      assert.equal("SQLITE_CONSTRAINT", code)
      assert.equal("SQLITE_CONSTRAINT: " .. dir .. "/state.db: FOREIGN KEY constraint failed", msg)
    end)

    it("reads and writes user_version", function()
      assert.equal(0, db:user_version())
      assert.is_true(db:set_user_version(3))
      assert.equal(3, db:user_version())
      assert.has_error(function() db:set_user_version(1 << 40) end,
        "bad argument #1 to 'set_user_version' (must fit in 32 bits)")
    end)

    it("reports an open transaction", function()
      assert.is_false(db:in_transaction())
      db:exec("BEGIN IMMEDIATE")
      assert.is_true(db:in_transaction())
      db:exec("ROLLBACK")
      assert.is_false(db:in_transaction())
    end)

    it("sees SQLITE_BUSY when another connection holds the write lock", function()
      local other = assert(store.open(dir .. "/state.db", { busy_timeout_ms = 0 }))
      assert.is_true(db:exec("BEGIN IMMEDIATE"))
      local ok, msg, code = other:exec("BEGIN IMMEDIATE")
      assert.is_nil(ok)
      assert.equal("SQLITE_BUSY", code)
      assert.equal("SQLITE_BUSY: " .. dir .. "/state.db: database is locked", msg)
      db:exec("COMMIT")
      other:close()
    end)
  end)

  describe("lifecycle", function()
    it("closing the database finalizes its statements", function()
      local s = assert(db:prepare("SELECT 1 AS one UNION ALL SELECT 2"))
      assert.same({ one = 1 }, s:step())
      assert.equal("prisn.store.stmt (SELECT 1 AS one UNION ALL SELECT 2)", tostring(s))
      assert.equal("prisn.store.db (" .. dir .. "/state.db)", tostring(db))
      assert.is_true(db:close())
      assert.is_true(db:close())
      assert.equal("prisn.store.db (closed)", tostring(db))
      assert.equal("prisn.store.stmt (finalized)", tostring(s))
      assert.has_error(function() s:step() end,
        "calling 'step' on bad self (statement is finalized: its database was closed)")
      assert.has_error(function() db:exec("SELECT 1") end, "calling 'exec' on bad self (database is closed)")
      assert.is_true(s:finalize())
    end)

    it("finalize is idempotent and final", function()
      local s = assert(db:prepare("SELECT 1"))
      assert.is_true(s:finalize())
      assert.is_true(s:close())
      assert.has_error(function() s:step() end, "calling 'step' on bad self (statement is finalized)")
    end)

    it("closes to-be-closed handles", function()
      local kept, stmt
      do
        local other <close> = assert(store.open(dir .. "/state.db"))
        local s <close> = assert(other:prepare("SELECT 1"))
        kept, stmt = other, s
      end
      assert.equal("prisn.store.db (closed)", tostring(kept))
      assert.equal("prisn.store.stmt (finalized)", tostring(stmt))
    end)
  end)
end)
