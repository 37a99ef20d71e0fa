-- prisn.server.api.deployments, the list routes: the body is written as
-- text item by item from reused tables (tests/bench/deployments-report.md,
-- issue 17); it must be the bytes the encoder gives for the same values as
-- one table, for every kind of field (nulls, nested objects, floats, strings
-- that need escaping), and show only what the token's namespaces hold.
local uv = require("luv")
local cjson = require("cjson")
local clock = require("prisn.clock")
local json = require("prisn.output.json")
local output = require("prisn.output")
local store = require("prisn.store")
local deployments = require("prisn.store.deployments")
local routes = require("prisn.server.api.deployments")
local remove_tree = require("support").remove_tree

local null = cjson.null
local NOW = 1765000000123

local function route(method, pattern)
  for _, r in ipairs(routes) do
    if r.method == method and r.pattern == pattern then return r end
  end
  error("no route " .. method .. " " .. pattern)
end

describe("prisn.server.api.deployments list", function()
  local home, db, server, runtimes, real_now

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    db = store.open(home)
    runtimes = {}
    server = { db = db, supervisor = { get = function(_, ns, name) return runtimes[ns .. "/" .. name] end } }
    real_now = clock.now_ms
    clock.now_ms = function() return NOW end
  end)

  after_each(function()
    clock.now_ms = real_now
    db:close()
    remove_tree(home)
  end)

  local function make(ns, name, spec, fields)
    fields = fields or {}
    deployments.create(db, { namespace = ns, name = name, replicas = fields.replicas or 1, port = fields.port,
      host = fields.host, hostname = fields.hostname, path = fields.path, tls_secret = fields.tls_secret,
      spec = spec })
  end

  local function instance(ns, deployment, number, fields)
    deployments.save_instance(db, { namespace = ns, deployment = deployment, number = number, revision = 1,
      pid = fields.pid, port = fields.port, started_at = fields.started_at, state = fields.state or "running",
      restarts = fields.restarts or 0, last_exit = fields.last_exit })
  end

  local function list(ns, namespaces)
    local req = { server = server, params = { ns = ns }, query = {}, token = { namespaces = namespaces or { "*" } } }
    local status, body, headers = route("GET", "/api/v1/namespaces/{ns}/deployments").handler(req)
    assert.equal(200, status)
    if type(body) == "string" then
      assert.equal("application/json", headers["Content-Type"])
      return body
    end
    return json.encode(body)
  end

  local function list_all(namespaces)
    local req = { server = server, params = {}, query = {}, token = { namespaces = namespaces } }
    local status, body = route("GET", "/api/v1/deployments").handler(req)
    assert.equal(200, status)
    return type(body) == "string" and body or json.encode(body)
  end

  local function iso(ms) return clock.iso_time(ms) end

  -- The item the list shows for deployment `name` of `ns`, from the store
  -- and `extra` (the fields that depend on the runtime and the ingress).
  local function expected_item(ns, name, extra)
    local d = deployments.get(db, ns, name)
    local item = { name = d.name, namespace = d.namespace, replicas = d.replicas, revision = d.revision,
      revision_state = "rolling_out", revision_message = null, port = d.port or null,
      host = d.port and (d.host or "0.0.0.0") or null, strategy = d.strategy, autoscale = d.autoscale or null,
      hostname = d.hostname or null, path = d.hostname and d.path or null, url = null, tls = null,
      created_at = iso(d.created_at), updated_at = iso(d.updated_at), ready = 0, restart = "always",
      script = null, bundle = null, health = null,
      instances = output.array({}) }
    for k, v in pairs(extra) do item[k] = v end
    return item
  end

  it("writes the encoder's bytes for every kind of field", function()
    make("default", "plain", { script = "/srv/a.sh" })
    make("default", "odd", { entry = "caf\xc3\xa9 \"q\"\\.sh", bundle = "abc", restart = "on-failure",
      health = { kind = "http", path = "/healthz" } }, { port = 8080, hostname = "odd.example", path = "/api",
      tls_secret = "certs" })
    deployments.update(db, "default", "odd", { autoscale = { min = 1, max = 3, target_cpu = 70 } })
    make("default", "empty", { script = "/srv/b.sh", health = { kind = "tcp" } }, { replicas = 0 })
    instance("default", "plain", 1, { pid = 4242, port = 40001, started_at = NOW - 61500 })
    instance("default", "plain", 2, { state = "backoff", restarts = 3,
      last_exit = { at = NOW - 5000, code = 1, reason = "exited", message = "line\nbreak" } })
    instance("default", "odd", 1, { pid = 4343, started_at = NOW - 1000 })
    runtimes["default/plain"] = { instances = {
      [1] = { pid = 4242, state = "running", started_at = NOW - 61500, healthy = true,
        usage_sample = { pid = 4242, at = NOW - 250, cpu_usage_us = 1500000, memory_current = 4096000 } },
    } }
    runtimes["default/odd"] = { instances = {
      [1] = { pid = 4343, state = "starting", started_at = NOW - 1000, healthy = false,
        usage_sample = { pid = 4343, at = NOW, cpu_usage_us = 12, memory_current = 1 } },
    } }
    server.ingress = {
      listeners = { https = true },
      url = function(_, hostname, path) return "https://" .. hostname .. path end,
      certificate_info = function(_, _, detail)
        assert.is_false(detail) -- a list must not load certificates
        return { subject = "CN=odd.example", not_after = "2027-01-01T00:00:00Z" }
      end,
    }

    local body = list("default")
    local want = { items = output.array({
      expected_item("default", "empty", { script = "/srv/b.sh", health = "tcp" }),
      expected_item("default", "odd", { script = "caf\xc3\xa9 \"q\"\\.sh", bundle = "abc", restart = "on-failure",
        health = "http:/healthz", url = "https://odd.example/api",
        tls = { source = "secret", secret = "certs", cert = null, key = null, subject = "CN=odd.example",
          not_after = "2027-01-01T00:00:00Z" },
        instances = output.array({
          { name = "odd-1", number = 1, revision = 1, state = "starting", pid = 4343, port = null, restarts = 0,
            healthy = false, started_at = iso(NOW - 1000), uptime_seconds = 1, last_exit = null,
            cpu_seconds = 12 / 1e6, memory_bytes = 1, usage_age_ms = 0 },
        }) }),
      expected_item("default", "plain", { script = "/srv/a.sh", ready = 1, instances = output.array({
        { name = "plain-1", number = 1, revision = 1, state = "running", pid = 4242, port = 40001, restarts = 0,
          healthy = true, started_at = iso(NOW - 61500), uptime_seconds = 61, last_exit = null,
          cpu_seconds = 1.5, memory_bytes = 4096000, usage_age_ms = 250 },
        { name = "plain-2", number = 2, revision = 1, state = "backoff", pid = null, port = null, restarts = 3,
          healthy = false, started_at = null, uptime_seconds = null,
          last_exit = { at = iso(NOW - 5000), code = 1, signal = null, reason = "exited", message = "line\nbreak" },
          cpu_seconds = null, memory_bytes = null, usage_age_ms = null },
      }) }),
    }) }
    assert.equal(json.encode(want), body)
    assert.matches('"cpu_seconds": 1.5,', body, 1, true)
    assert.matches('"script": "caf\xc3\xa9 \\"q\\"\\\\.sh",', body, 1, true)
  end)

  it("writes an empty list and a namespace without instances as the encoder does", function()
    assert.equal('{\n  "items": []\n}\n', list("default"))
    make("default", "a", { script = "/srv/a.sh" })
    assert.equal(json.encode({ items = output.array({ expected_item("default", "a", { script = "/srv/a.sh" }) }) }),
      list("default"))
  end)

  it("reuses no table across items: a deployment with fewer instances shows only its own", function()
    make("default", "a", { script = "/srv/a.sh" })
    make("default", "b", { script = "/srv/b.sh" })
    for n = 1, 3 do instance("default", "a", n, { pid = 10 + n, started_at = NOW }) end
    instance("default", "b", 7, { pid = 20, started_at = NOW })
    local items = cjson.decode(list("default")).items
    assert.equal(3, #items[1].instances)
    assert.equal(1, #items[2].instances)
    assert.equal("b-7", items[2].instances[1].name)
    assert.equal(20, items[2].instances[1].pid)
  end)

  it("holds the collector for the list and gives it back, also when the list fails", function()
    make("default", "a", { script = "/srv/a.sh" })
    local seen
    server.supervisor.get = function()
      seen = collectgarbage("isrunning")
      error("supervisor gone")
    end
    assert.has_error(function() list("default") end, "supervisor gone")
    assert.is_false(seen)
    assert.is_true(collectgarbage("isrunning"))
    -- A collector someone else stopped stays stopped.
    collectgarbage("stop")
    server.supervisor.get = function() return nil end
    local ok, err = pcall(list, "default")
    local running = collectgarbage("isrunning")
    collectgarbage("restart")
    assert.is_true(ok, tostring(err))
    assert.is_false(running)
  end)

  it("shows only the namespaces the token holds", function()
    make("default", "a", { script = "/srv/a.sh" })
    make("team", "b", { script = "/srv/b.sh" })
    instance("team", "b", 1, { pid = 30, started_at = NOW })
    local names = function(body)
      local out = {}
      for _, item in ipairs(cjson.decode(body).items) do out[#out + 1] = item.namespace .. "/" .. item.name end
      return out
    end
    assert.same({ "default/a", "team/b" }, names(list_all({ "*" })))
    assert.same({ "team/b" }, names(list_all({ "team" })))
    assert.same({}, names(list_all({ "other" })))
    -- The route's namespace check (auth.authorize) runs before the handler;
    -- the handler itself filters too.
    assert.same({}, names(list("team", { "default" })))
    assert.same({ "team/b" }, names(list("team", { "team" })))
  end)
end)
