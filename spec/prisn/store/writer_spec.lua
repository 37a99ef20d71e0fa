-- prisn.store.writer: the server's records written in order and retried
-- while state.db cannot take them, and the degraded state that follows.
-- state.db is real; a full disk is made with PRAGMA max_page_count (SQLite
-- then answers SQLITE_FULL exactly as for a full disk), and the backoff
-- timer is a fake the spec fires by hand.
local uv = require("luv")
local store = require("prisn.store")
local writer = require("prisn.store.writer")
local remove_tree = require("support").remove_tree

describe("prisn.store.writer", function()
  local home, db, timer, lines, w

  local function fake_timer()
    timer = { starts = {} }
    function timer.start(self, ms, _, cb) self.ms, self.cb = ms, cb; self.starts[#self.starts + 1] = ms end
    function timer.stop(self) self.cb = nil end
    function timer.close(self) self.closed = true end
    function timer.is_closing(self) return self.closed end
    return timer
  end

  local function fire()
    local cb = assert(timer.cb, "no retry is armed")
    timer.cb = nil
    cb()
  end

  local function fill()
    local pages = db:first("PRAGMA page_count").page_count
    assert(db:exec("PRAGMA max_page_count = " .. pages))
  end

  local function free()
    assert(db:exec("PRAGMA max_page_count = 1000000"))
  end

  -- A row of `n` bytes: more than a page, so it needs room a full database lacks.
  local function insert(name, n)
    return function()
      store.check(db:run("INSERT INTO t (name, data) VALUES (?, ?)", name, string.rep("x", n or 8000)))
      return name
    end
  end

  local function names()
    local out = {}
    for _, row in ipairs(db:rows("SELECT name FROM t ORDER BY rowid")) do out[#out + 1] = row.name end
    return out
  end

  local function actions()
    local out = {}
    for _, row in ipairs(db:rows("SELECT action FROM events ORDER BY id")) do out[#out + 1] = row.action end
    return out
  end

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    db = store.open(home)
    assert(db:exec("CREATE TABLE t (name TEXT UNIQUE, data TEXT)"))
    lines = {}
    local log = {}
    for _, level in ipairs({ "info", "warn", "error" }) do
      log[level] = function(_, fmt, ...) lines[#lines + 1] = level:upper() .. " " .. string.format(fmt, ...) end
    end
    local errors_counted = 0
    w = writer.new(db, { log = log, new_timer = fake_timer,
      write_errors = { inc = function() errors_counted = errors_counted + 1 end } })
    w.errors_counted = function() return errors_counted end
  end)

  after_each(function()
    store.set_observer(nil)
    db:close()
    remove_tree(home)
  end)

  it("writes at once when it can, and runs what follows", function()
    local got
    assert.is_true(w:write("a", insert("a"), { after = function(name) got = name end }))
    assert.equal("a", got)
    assert.same({ "a" }, names())
    assert.is_false(w:status().degraded)
    assert.equal(0, w:pending())
  end)

  it("keeps what a full disk refuses, in order, and writes it all once there is room", function()
    fill()
    local order = {}
    local function after(name) order[#order + 1] = name end
    assert.is_false(w:write("a", insert("a"), { after = after }))
    -- Later writes, even ones that would fit, wait behind the first.
    assert.is_false(w:write("b", insert("b", 10), { after = after }))
    assert.is_false(w:write("c", insert("c"), { after = after }))
    local status = w:status()
    assert.is_true(status.degraded)
    assert.equal("SQLITE_FULL", status.code)
    assert.matches("^state%.db: disk full %(SQLITE_FULL%) since %d%d%d%d%-%d%d%-%d%dT[%d:.]+Z$", status.reason)
    assert.equal(4, status.pending) -- a, b, c and the server.degraded event
    assert.same({}, names())
    assert.same({}, order)
    assert.is_true(w.errors_counted() >= 1)
    assert.matches("^WARN state%.db: disk full %(SQLITE_FULL%) since .*the server is degraded", lines[1])

    -- Still full: the retry fails and waits longer.
    fire()
    assert.same({}, names())
    assert.is_true(w:status().degraded)

    free()
    fire()
    assert.same({ "a", "b", "c" }, names())
    assert.same({ "a", "b", "c" }, order)
    assert.is_false(w:status().degraded)
    assert.equal(0, w:pending())
    assert.same({ "server.degraded", "server.recovered" }, actions())
    local recovered = db:first("SELECT message FROM events WHERE action = 'server.recovered'").message
    assert.matches("^state%.db can be written again after [%d.]+ s %(disk full%); 4 record%(s%) written late$",
      recovered)
    assert.matches("^INFO state%.db can be written again .*no longer degraded$", lines[#lines])
    assert.equal("ok", db:first("PRAGMA integrity_check").integrity_check)
  end)

  it("waits twice as long after each failure, up to the bound", function()
    fill()
    w:write("a", insert("a"))
    for _ = 1, 8 do fire() end
    assert.same({ 50, 100, 200, 400, 800, 1600, 2000, 2000, 2000 }, timer.starts)
    free()
    fire()
    -- Back to the shortest wait for the next spell.
    fill()
    w:write("b", insert("b"))
    assert.equal(50, timer.starts[#timer.starts])
  end)

  it("keeps only the latest write of a key while they wait", function()
    fill()
    w:write("x", insert("x"))
    w:write("k1", insert("k1"), { key = "k" })
    w:write("y", insert("y"))
    w:write("k2", insert("k2"), { key = "k" })
    free()
    fire()
    assert.same({ "x", "y", "k2" }, names())
  end)

  it("drops droppable writes past the bound, never the others", function()
    w = writer.new(db, { new_timer = fake_timer, max_pending = 3, log = { warn = function() end,
      info = function() end, error = function() end } })
    fill()
    w:write("a", insert("a"))
    w:write("b", insert("b"), { droppable = true })
    assert.equal(3, w:pending()) -- a, the degraded event, b
    assert.is_false(w:write("c", insert("c"), { droppable = true }))
    w:write("d", insert("d"))
    assert.equal(4, w:pending())
    free()
    fire()
    assert.same({ "a", "b", "d" }, names())
    assert.matches("1 event%(s%) dropped$",
      db:first("SELECT message FROM events WHERE action = 'server.recovered'").message)
  end)

  it("logs a write that fails for good and goes on with the next", function()
    w:write("a", insert("a"))
    local failed
    assert.is_nil(w:write("a again", insert("a"), { on_error = function(err) failed = err end }))
    assert.equal("SQLITE_CONSTRAINT", failed.code)
    assert.matches("^ERROR cannot record a again: ", lines[#lines])
    -- Waiting behind a full disk, the same.
    fill()
    w:write("b", insert("b"))
    w:write("b again", insert("b", 10))
    w:write("c", insert("c", 10))
    free()
    fire()
    assert.same({ "a", "b", "c" }, names())
    assert.is_false(w:status().degraded)
  end)

  it("hears of storage failures and commits elsewhere through the store's observer", function()
    store.set_observer(function(...) w:observe(...) end)
    fill()
    -- An API write that fails degrades the server...
    local ok, err = pcall(store.transaction, db, insert("api"))
    assert.is_false(ok)
    assert.equal("SQLITE_FULL", err.code)
    assert.is_true(w:status().degraded)
    assert.equal(1, w.errors_counted())
    assert.equal(50, timer.ms)
    -- ...a commit elsewhere retries at once...
    free()
    store.transaction(db, insert("api"))
    assert.equal(0, timer.ms)
    -- ...and the retry ends the spell.
    fire()
    assert.is_false(w:status().degraded)
    assert.same({ "server.degraded", "server.recovered" }, actions())
  end)
end)
