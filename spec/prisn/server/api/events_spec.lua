-- prisn.server.api.events: the event routes, their handlers called directly
-- with a fake request — namespace scoping, the admin view, since/for/limit/
-- after parsing, and the 400s for bad parameters.
local clock = require("prisn.clock")
local uv = require("luv")
local api = require("prisn.server.api")
local errors = require("prisn.error")
local output = require("prisn.output")
local store = require("prisn.store")
local events = require("prisn.store.events")
local routes = require("prisn.server.api.events")
local remove_tree = require("support").remove_tree
local schema = require("prisn.store.migrations")

local function route(method, pattern)
  for _, r in ipairs(routes) do
    if r.method == method and r.pattern == pattern then return r end
  end
  error("no route " .. method .. " " .. pattern)
end

local NS_ROUTE = "/api/v1/namespaces/{ns}/events"
local ALL_ROUTE = "/api/v1/events"
local MIN = 60 * 1000

describe("prisn.server.api.events", function()
  local home, db

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    db = store.open(home, { migrations = { schema.events } })
    local now = clock.now_ms()
    events.record(db, { namespace = "a", actor = "token:dev", action = "job.created", object = "job/01kaxq3v2m7r",
      message = "backup.py queued", time = now - 120 * MIN })
    events.record(db, { namespace = "b", actor = "token:ops", action = "secret.set", object = "secret/db",
      time = now - 90 * MIN })
    events.record(db, { actor = "token:admin", action = "token.created", object = "token/t1", time = now - 60 * MIN })
    events.record(db, { namespace = "a", action = "job.started", object = "job/01kaxq3v2m7r", time = now - 30 * MIN })
    events.record(db, { namespace = "a", action = "job.finished", object = "job/01kaxq3v2m7r",
      message = "exited 0", time = now - 10 * MIN })
    events.record(db, { namespace = "a", actor = "token:dev", action = "secret.deleted", object = "secret/api",
      time = now - 5 * MIN })
  end)

  after_each(function()
    db:close()
    remove_tree(home)
  end)

  local function call(method, pattern, params, query)
    return route(method, pattern).handler({ method = method, params = params or {}, query = query or {},
      server = { db = db }, token = { name = "t", role = "admin", namespaces = { "*" } } })
  end

  local function failure(pattern, params, query)
    local ok, err = pcall(call, "GET", pattern, params, query)
    assert.is_false(ok, "expected an error")
    assert.is_true(errors.is(err), "expected a prisn.error, got " .. tostring(err))
    return api.status_of(err), err
  end

  local function actions(body)
    local out = {}
    for i, ev in ipairs(body.items) do out[i] = ev.action end
    return out
  end

  it("declares a view route per namespace and an admin route for all", function()
    assert.equal("view", route("GET", NS_ROUTE).auth)
    assert.equal("admin", route("GET", ALL_ROUTE).auth)
    assert.equal(2, #routes)
  end)

  it("lists one namespace's events oldest first, in the public shape", function()
    local status, body = call("GET", NS_ROUTE, { ns = "a" })
    assert.equal(200, status)
    assert.same({ "job.created", "job.started", "job.finished", "secret.deleted" }, actions(body))
    local first = body.items[1]
    for _, k in ipairs(events.PUBLIC_FIELDS) do assert.is_not_nil(first[k], k) end
    assert.equal("a", first.namespace)
    assert.equal("token:dev", first.actor)
    assert.equal("job/01kaxq3v2m7r", first.object)
    assert.equal("backup.py queued", first.message)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", first.time)
    assert.equal(output.null, body.items[2].message)
  end)

  it("never shows another namespace's events or cluster-wide ones", function()
    local _, body = call("GET", NS_ROUTE, { ns = "b" })
    assert.same({ "secret.set" }, actions(body))
    _, body = call("GET", NS_ROUTE, { ns = "empty" })
    assert.same({}, body.items)
    -- an empty list is still a JSON array
    assert.is_true(require("prisn.output.value").is_marked_array(body.items))
  end)

  it("shows admins every namespace and the cluster-wide events", function()
    local status, body = call("GET", ALL_ROUTE)
    assert.equal(200, status)
    assert.same({ "job.created", "secret.set", "token.created", "job.started", "job.finished", "secret.deleted" },
      actions(body))
    assert.equal(output.null, body.items[3].namespace)
    local _, one = call("GET", ALL_ROUTE, {}, { namespace = "b" })
    assert.same({ "secret.set" }, actions(one))
  end)

  it("reads since as a duration or an ISO time", function()
    local _, body = call("GET", NS_ROUTE, { ns = "a" }, { since = "45m" })
    assert.same({ "job.started", "job.finished", "secret.deleted" }, actions(body))
    _, body = call("GET", ALL_ROUTE, {}, { since = "1h40m" })
    assert.same({ "secret.set", "token.created", "job.started", "job.finished", "secret.deleted" }, actions(body))
    local iso = clock.iso_time(clock.now_ms() - 20 * MIN)
    _, body = call("GET", NS_ROUTE, { ns = "a" }, { since = iso })
    assert.same({ "job.finished", "secret.deleted" }, actions(body))
    _, body = call("GET", NS_ROUTE, { ns = "a" }, { since = "" })
    assert.equal(4, #body.items)
  end)

  it("answers 400 for a since it cannot read", function()
    local status, err = failure(NS_ROUTE, { ns = "a" }, { since = "yesterday" })
    assert.equal(400, status)
    assert.equal("bad_request", err.code)
    assert.equal("bad 'since': 'yesterday' is neither a duration (like 30m, 1h, 7d) nor a time "
      .. "(like 2026-11-26T18:46:00Z)", err.message)
    assert.equal("use a duration like since=1h or a time like since=2026-11-26T18:46:00Z", err.hint)
    assert.equal(400, (failure(NS_ROUTE, { ns = "a" }, { since = "2026-11-26T18:46:00" })))
  end)

  it("filters by object with for, and by action prefix", function()
    local _, body = call("GET", NS_ROUTE, { ns = "a" }, { ["for"] = "job/01kaxq3v2m7r" })
    assert.same({ "job.created", "job.started", "job.finished" }, actions(body))
    _, body = call("GET", NS_ROUTE, { ns = "b" }, { ["for"] = "job/01kaxq3v2m7r" })
    assert.same({}, body.items)
    _, body = call("GET", ALL_ROUTE, {}, { action = "secret." })
    assert.same({ "secret.set", "secret.deleted" }, actions(body))
    local status, err = failure(NS_ROUTE, { ns = "a" }, { ["for"] = "01kaxq3v2m7r" })
    assert.equal(400, status)
    assert.equal("bad 'for': '01kaxq3v2m7r' is not KIND/NAME", err.message)
  end)

  it("returns the newest limit events, oldest first", function()
    local _, body = call("GET", NS_ROUTE, { ns = "a" }, { limit = "2" })
    assert.same({ "job.finished", "secret.deleted" }, actions(body))
  end)

  it("answers 400 for a limit outside 1..1000", function()
    for _, bad in ipairs({ "0", "1001", "ten", "-1", "2.5" }) do
      local status, err = failure(NS_ROUTE, { ns = "a" }, { limit = bad })
      assert.equal(400, status, bad)
      assert.equal(string.format("bad 'limit': '%s' is not a number from 1 to 1000", bad), err.message)
    end
  end)

  it("follows with after: the events recorded after an id, oldest first", function()
    local _, all = call("GET", NS_ROUTE, { ns = "a" })
    local _, body = call("GET", NS_ROUTE, { ns = "a" }, { after = all.items[1].id, limit = "2" })
    assert.same({ "job.started", "job.finished" }, actions(body))
    _, body = call("GET", NS_ROUTE, { ns = "a" }, { after = all.items[4].id })
    assert.same({}, body.items)
    local status, err = failure(NS_ROUTE, { ns = "a" }, { after = "not-an-id" })
    assert.equal(400, status)
    assert.equal("bad 'after': 'not-an-id' is not an event id", err.message)
  end)
end)
