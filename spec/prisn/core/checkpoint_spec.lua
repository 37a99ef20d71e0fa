-- prisn.core.checkpoint and prisn.store.checkpointer: state.db's write-ahead
-- log copied into the database on a thread, off the caller's loop.
local checkpoint = require("prisn.core.checkpoint")
local store = require("prisn.store")
local uv = require("luv")

local function remove_tree(path)
  os.execute("rm -rf '" .. path .. "'")
end

-- Runs the loop until fd is readable; returns handle:result().
local function result_of(handle, fd)
  local poll = uv.new_poll(fd)
  local results
  poll:start("r", function()
    poll:stop()
    poll:close()
    results = table.pack(handle:result())
  end)
  for _ = 1, 1000 do
    if results then break end
    uv.run("once")
  end
  return table.unpack(results, 1, results.n)
end

describe("prisn.core.checkpoint", function()
  local home, db

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    db = store.open(home)
    db:exec("PRAGMA wal_autocheckpoint=0")
    db:exec("CREATE TABLE filler (x TEXT)")
    for _ = 1, 300 do db:run("INSERT INTO filler VALUES (?)", string.rep("x", 1000)) end
  end)

  after_each(function()
    db:close()
    remove_tree(home)
  end)

  it("copies every frame of the log into the database, on a thread", function()
    local handle, fd = checkpoint.start(store.path(home))
    assert.is_number(fd)
    local ok, frames, copied = result_of(handle, fd)
    assert.is_true(ok)
    assert.is_true(frames > 50, "frames in the log: " .. tostring(frames))
    assert.equal(frames, copied)
    -- The caller's connection sees its data as before and goes on writing.
    assert.equal(300, db:first("SELECT count(*) AS n FROM filler").n)
    assert.equal(1, db:run("INSERT INTO filler VALUES ('after')"))
    assert.has_error(function() handle:result() end, "checkpoint: result already taken")
  end)

  it("says why when the database cannot be opened", function()
    local handle, fd = checkpoint.start(home .. "/missing.db")
    local ok, message, code = result_of(handle, fd)
    assert.is_nil(ok)
    assert.equal("SQLITE_CANTOPEN", code)
    assert.matches("unable to open", message)
  end)
end)

describe("prisn.store.checkpointer", function()
  it("turns SQLite's checkpoints off and checkpoints once the log changes", function()
    local checkpointer = require("prisn.store.checkpointer")
    local home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    local db = store.open(home)
    local saved = checkpointer.INTERVAL_MS
    checkpointer.INTERVAL_MS = 10
    local observed, failures = {}, 0
    local c = checkpointer.start(db, store.path(home), { metrics = {
      duration = { observe = function(_, s) observed[#observed + 1] = s end },
      failures = { inc = function() failures = failures + 1 end } } })
    checkpointer.INTERVAL_MS = saved
    assert.equal(0, db:first("PRAGMA wal_autocheckpoint").wal_autocheckpoint)
    db:exec("CREATE TABLE filler (x TEXT)")
    for _ = 1, 100 do db:run("INSERT INTO filler VALUES (?)", string.rep("y", 1000)) end
    -- The checkpointer's timer does not hold the loop: this one does.
    local tick = uv.new_timer()
    tick:start(5, 5, function() end)
    local deadline = uv.now() + 5000
    while #observed == 0 and uv.now() < deadline do uv.run("once") end
    assert.equal(1, #observed)
    assert.equal(0, failures)
    -- Nothing new: no more checkpoints.
    deadline = uv.now() + 60
    while uv.now() < deadline do uv.run("once") end
    tick:close()
    assert.equal(1, #observed)
    local row = db:first("PRAGMA wal_checkpoint(PASSIVE)")
    assert.equal(row.log, row.checkpointed)
    c.stop()
    uv.run("nowait")
    db:close()
    remove_tree(home)
  end)
end)
