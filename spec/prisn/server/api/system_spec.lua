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

describe("prisn.server.api.system: what /api/v1/status says needs attention", function()
  local home, db, server
  local jobs = require("prisn.store.jobs")
  local cronjobs = require("prisn.store.cronjobs")
  local now = require("prisn.clock").now_ms

  local function status_for(namespaces)
    local status, body = call(route("GET", "/api/v1/status"),
      { server = server, token = { role = "view", namespaces = namespaces } })
    assert.equal(200, status)
    return body
  end

  -- A deployment as the supervisor holds it, with its instances.
  local function deployment(ns, name, replicas, port, instances)
    local d = { ns = ns, name = name, row = { revision = 1, replicas = replicas, port = port }, instances = {} }
    for i, inst in ipairs(instances) do
      inst.number, inst.revision, inst.restarts = i, 1, inst.restarts or 0
      d.instances[i] = inst
    end
    server.supervisor.deployments[ns .. "/" .. name] = d
  end

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    db = store.open(home)
    server = { db = db, home = home, started_at = os.time(), version = "test", listeners = {}, connections = 0,
      supervisor = { deployments = {} }, queue = { specs = {} } }
  end)

  after_each(function()
    db:close()
    remove_tree(home)
  end)

  it("names every service and reports short and crash-looping deployments, in the token's namespaces", function()
    deployment("a", "web", 2, 8080, { { state = "running", healthy = true }, { state = "running", healthy = true } })
    deployment("a", "api", 2, nil, { { state = "running", healthy = true },
      { state = "crash_loop_backoff", crash_loop = true, restarts = 7, last_exit = { code = 1 } } })
    deployment("b", "secret", 1, 9090, { { state = "starting" } })
    local body = status_for({ "a" })
    assert.same({
      { namespace = "a", name = "api", ready = 1, replicas = 2, port = api.null, restarts = 7, state = "crash_loop" },
      { namespace = "a", name = "web", ready = 2, replicas = 2, port = 8080, restarts = 0, state = "ready" },
    }, body.services)
    assert.same({ "deployment a/api: 1/2 ready; api-2 is crash-looping (7 restarts, last exit code 1) "
      .. "(prisn logs api --instance 2 --tail 20 -n a)" }, body.problems)
    assert.equal("ok", body.health)
    body = status_for({ "b" })
    assert.same({ "deployment b/secret: 0/1 ready (prisn get instances -n b)" }, body.problems)
    assert.equal(1, #body.services)
  end)

  it("reports a cron job whose last runs failed, not one that recovered or is suspended", function()
    local spec = { script = "/x/job.sh" }
    for _, name in ipairs({ "broken", "fixed", "paused" }) do
      cronjobs.create(db, { namespace = "a", name = name, expression = "0 3 * * *", spec = spec,
        suspended = name == "paused" })
    end
    local function run(cron, state, exit_code)
      local job = jobs.create(db, { namespace = "a", script = "/x/job.sh", runner = "bash", cron = cron })
      return jobs.finish(db, job.id, { state = state, reason = "exited", exit_code = exit_code })
    end
    run("broken", "succeeded", 0)
    run("broken", "failed", 1)
    local last = run("broken", "failed", 2)
    run("fixed", "failed", 1)
    run("fixed", "succeeded", 0)
    run("paused", "failed", 1)
    local body = status_for({ "a" })
    assert.equal(1, #body.problems)
    assert.matches("^cron job a/broken: the last 2 runs failed %(exited, exit 2 at [%dT:.Z-]+; prisn logs job/"
      .. last.id .. " %-n a%)$", body.problems[1])
    assert.same({}, status_for({ "b" }).problems)
  end)

  it("reports jobs queued too long and jobs running past their timeout and grace", function()
    local old = now() - 3600 * 1000
    local queued = jobs.create(db, { namespace = "a", script = "/x/q.sh", runner = "bash", state = "queued",
      created_at = old })
    jobs.create(db, { namespace = "a", script = "/x/new.sh", runner = "bash", state = "queued" })
    local stuck = jobs.create(db, { namespace = "a", script = "/x/s.sh", runner = "bash", state = "queued" })
    jobs.start(db, stuck.id, { pid = 1, started_at = now() - 120 * 1000 })
    server.queue.specs[stuck.id] = '{"timeout": 60, "grace": 5}'
    local fine = jobs.create(db, { namespace = "a", script = "/x/f.sh", runner = "bash", state = "queued" })
    jobs.start(db, fine.id, { pid = 2, started_at = now() - 30 * 1000 })
    server.queue.specs[fine.id] = '{"timeout": 60}'
    local body = status_for({ "a" })
    assert.same({
      string.format("job a/%s: queued for 1h (prisn get job %s -n a)", queued.id, queued.id),
      string.format("job a/%s: running for 2m, past its timeout of 1m (prisn delete job %s -n a)", stuck.id, stuck.id),
    }, body.problems)
    assert.same({}, status_for({ "b" }).problems)
  end)
end)
