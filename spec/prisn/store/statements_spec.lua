-- prisn.store.statements: db:first and db:run through statements prepared
-- once per handle, with the same results and failures as the plain calls.
local uv = require("luv")
local store = require("prisn.store")
local statements = require("prisn.store.statements")
local remove_tree = require("support").remove_tree

describe("prisn.store.statements", function()
  local home, db

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    db = store.open(home)
    assert(db:exec("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)"))
  end)

  after_each(function()
    db:close()
    remove_tree(home)
  end)

  it("answers as db:run and db:first do, by name and by position", function()
    assert.equal(1, statements.run(db, "INSERT INTO t (k, v) VALUES (:k, :v)", { k = "a", v = 1 }))
    assert.equal(1, statements.run(db, "INSERT INTO t (k, v) VALUES (:k, :v)", { k = "b", v = 2 }))
    assert.same({ k = "b", v = 2 }, statements.first(db, "SELECT * FROM t WHERE k = ?", "b"))
    assert.is_nil(statements.first(db, "SELECT * FROM t WHERE k = ?", "zz"))
    assert.equal(2, statements.run(db, "UPDATE t SET v = v + 10"))
    assert.equal(0, statements.run(db, "DELETE FROM t WHERE k = ?", "zz"))
    assert.same(db:first("SELECT * FROM t WHERE k = ?", "a"), statements.first(db, "SELECT * FROM t WHERE k = ?", "a"))
  end)

  it("returns a failure as nil, message, code and goes on working", function()
    statements.run(db, "INSERT INTO t (k, v) VALUES (?, ?)", "a", 1)
    local ok, message, code = statements.run(db, "INSERT INTO t (k, v) VALUES (?, ?)", "a", 2)
    assert.is_nil(ok)
    assert.equal("SQLITE_CONSTRAINT", code)
    assert.matches("UNIQUE", message)
    assert.equal(1, statements.run(db, "INSERT INTO t (k, v) VALUES (?, ?)", "b", 2))
    local none, perr, pcode = statements.first(db, "SELECT * FROM nowhere")
    assert.is_nil(none)
    assert.equal("SQLITE_ERROR", pcode)
    assert.matches("nowhere", perr)
  end)

  it("leaves no read open: another connection can write and checkpoint after a first()", function()
    statements.run(db, "INSERT INTO t (k, v) VALUES (?, ?)", "a", 1)
    statements.run(db, "INSERT INTO t (k, v) VALUES (?, ?)", "b", 2)
    assert.is_table(statements.first(db, "SELECT * FROM t ORDER BY k"))
    assert.is_false(db:in_transaction())
    local other = store.open(home)
    assert.equal(1, other:run("UPDATE t SET v = 5 WHERE k = 'a'"))
    -- A full checkpoint would be blocked by a statement of ours still reading.
    local row = other:first("PRAGMA wal_checkpoint(TRUNCATE)")
    other:close()
    assert.equal(0, row.busy)
    assert.same({ k = "a", v = 5 }, statements.first(db, "SELECT * FROM t WHERE k = ?", "a"))
  end)

  it("uses the plain calls of a handle that cannot prepare", function()
    local fake = {
      run = function(_, sql, x) return "run " .. sql .. " " .. x end,
      first = function(_, sql, x) return { sql = sql, x = x } end,
    }
    assert.equal("run UPDATE 1", statements.run(fake, "UPDATE", 1))
    assert.same({ sql = "SELECT", x = 2 }, statements.first(fake, "SELECT", 2))
  end)
end)
