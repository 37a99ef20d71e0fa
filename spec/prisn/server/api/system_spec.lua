-- prisn.server.api.system and prisn.server.api: what a client sees while
-- state.db cannot be written — /health 503 "degraded" with the reason,
-- /ready 503, /api/v1/status naming the problem — and a failed write
-- answered 507 insufficient_storage (503 for a failing disk), never 500.
local uv = require("luv")
local api = require("prisn.server.api")
local errors = require("prisn.error")
local store = require("prisn.store")
local writer = require("prisn.store.writer")
local routes = require("prisn.server.api.system")
local remove_tree = require("support").remove_tree

local function route(method, pattern)
  for _, r in ipairs(routes) do
    if r.method == method and r.pattern == pattern then return r end
  end
  error("no route " .. method .. " " .. pattern)
end

-- What the client gets for a handler: status, body (errors rendered).
local function call(r, req)
  local ok, status, body = pcall(r.handler, req)
  if ok then return status, body end
  return api.status_of(status), api.error_body(status)
end

describe("prisn.server.api.system while state.db cannot be written", function()
  local home, server, timer_cb

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    local db = store.open(home)
    local quiet = { info = function() end, warn = function() end, error = function() end }
    server = { db = db, home = home, started_at = os.time(), version = "test", listeners = {}, connections = 0,
      state_writer = writer.new(db, { log = quiet, events = false, new_timer = function()
        return { start = function(_, _, _, cb) timer_cb = cb end, stop = function() end }
      end }) }
  end)

  after_each(function()
    server.db:close()
    remove_tree(home)
  end)

  local function degrade()
    server.state_writer:write("a record", function()
      store.fail("SQLITE_FULL: " .. home .. "/state.db: database or disk is full", "SQLITE_FULL")
    end)
  end

  it("answers /health 503 degraded with the reason, and ok again once a write succeeds", function()
    local health = route("GET", "/health")
    local status, body = call(health, { server = server })
    assert.equal(200, status)
    assert.same({ status = "ok" }, body)

    degrade()
    status, body = call(health, { server = server })
    assert.equal(503, status)
    assert.equal("degraded", body.status)
    assert.matches("^state%.db: disk full %(SQLITE_FULL%) since [%dT:.Z-]+; 1 record%(s%) waiting to be written$",
      body.reason)
    assert.matches("free space under %$PRISN_HOME", body.hint)
    status, body = call(route("GET", "/ready"), { server = server })
    assert.equal(503, status)
    assert.equal("unavailable", body.error.code)

    -- The record now fits: the retry ends the spell.
    server.state_writer.queue[server.state_writer.head].fn = function() end
    timer_cb()
    status, body = call(health, { server = server })
    assert.equal(200, status)
    assert.same({ status = "ok" }, body)
  end)

  it("names the problem in /api/v1/status", function()
    degrade()
    local status, body = call(route("GET", "/api/v1/status"), { server = server })
    assert.equal(200, status)
    assert.equal("degraded", body.health)
    assert.matches("^state%.db: disk full %(SQLITE_FULL%) since ", body.problems[1])
  end)

  it("answers a write refused for want of space 507, a failing disk 503, never 500", function()
    local full = errors.new("SQLITE_FULL", "SQLITE_FULL: /var/lib/prisn/state.db: database or disk is full")
    assert.equal(507, api.status_of(full))
    local body = api.error_body(full).error
    assert.equal("insufficient_storage", body.code)
    assert.equal("cannot write state.db: the disk is full (SQLITE_FULL)", body.message)
    assert.matches("^free space under %$PRISN_HOME", body.hint)
    -- No server path in what the client sees.
    assert.is_nil(body.message:find("/var/lib", 1, true))

    local io_err = errors.new("SQLITE_IOERR", "SQLITE_IOERR: /var/lib/prisn/state.db: disk I/O error")
    assert.equal(503, api.status_of(io_err))
    assert.equal("unavailable", api.error_body(io_err).error.code)
    local aborted = errors.new("SQLITE_ABORT", "SQLITE_ABORT: x/state.db: the transaction was rolled back")
    assert.equal(503, api.status_of(aborted))
    -- Other errors keep their status.
    assert.equal(404, api.status_of(errors.new("not_found", "no such job")))
  end)
end)
