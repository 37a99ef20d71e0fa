-- prisn.store.deployments: the queries that read a whole namespace at once
-- for the list routes (the current revision and the instances of every
-- deployment) agree with the per-deployment ones.
local uv = require("luv")
local cjson = require("cjson")
local store = require("prisn.store")
local deployments = require("prisn.store.deployments")
local remove_tree = require("support").remove_tree

describe("prisn.store.deployments", function()
  local home, db

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    db = store.open(home)
  end)

  after_each(function()
    db:close()
    remove_tree(home)
  end)

  local function make(ns, name, spec)
    deployments.create(db, { namespace = ns, name = name, replicas = 1, spec = spec or { script = "/srv/a.sh" } })
  end

  local function instance(ns, deployment, number, revision)
    deployments.save_instance(db, { namespace = ns, deployment = deployment, number = number, revision = revision,
      pid = 100 + number, started_at = 1, state = "running", restarts = 0, last_exit = { code = 1 } })
  end

  -- The 409 a write of a route raises: its message, or nil when it went in.
  local function route_error(fn)
    local ok, err = pcall(fn)
    if ok then return nil end
    assert.equal(409, err.http_status, tostring(err.message))
    return err.message
  end

  it("keeps an ingress host name in one namespace and a (host name, path) on one deployment", function()
    deployments.create(db, { namespace = "a", name = "api", replicas = 1, hostname = "api.example.com",
      spec = { script = "/srv/a.sh" } })
    assert.equal("/", deployments.get(db, "a", "api").path)
    assert.equal("host api.example.com path / is already used by deployment api", route_error(function()
      deployments.create(db, { namespace = "a", name = "web", replicas = 1, hostname = "api.example.com",
        spec = { script = "/srv/a.sh" } })
    end))
    -- Another path of the same host, in the same namespace: fine.
    assert.is_nil(route_error(function()
      deployments.create(db, { namespace = "a", name = "v2", replicas = 1, hostname = "api.example.com", path = "/v2",
        spec = { script = "/srv/a.sh" } })
    end))
    -- Another namespace: neither a new path nor a change to the name; a's
    -- deployments are not named to b.
    assert.equal("host api.example.com is used by another namespace", route_error(function()
      deployments.create(db, { namespace = "b", name = "api", replicas = 1, hostname = "api.example.com",
        path = "/b", spec = { script = "/srv/a.sh" } })
    end))
    assert.is_nil(deployments.get(db, "b", "api"))
    make("b", "web")
    assert.equal("host api.example.com is used by another namespace", route_error(function()
      deployments.update(db, "b", "web", { hostname = "api.example.com", path = "/other" })
    end))
    assert.is_nil(deployments.get(db, "b", "web").hostname)
    -- Once a gives the name up, b may have it.
    deployments.update(db, "a", "api", { hostname = false, path = false })
    deployments.delete(db, "a", "v2")
    assert.is_nil(route_error(function()
      deployments.update(db, "b", "web", { hostname = "api.example.com", path = "/" })
    end))
    local rows = deployments.by_hostname(db, "api.example.com")
    assert.same({ { "b", "web", "/" } }, { { rows[1].namespace, rows[1].name, rows[1].path } })
  end)

  it("current_revisions gives each deployment's current revision, as revision() does", function()
    make("default", "api", { script = "/srv/api-1.sh" })
    make("default", "web")
    make("other", "api")
    deployments.add_revision(db, "default", "api", { script = "/srv/api-2.sh", args = { "x" } }, "me")
    local current = deployments.current_revisions(db, "default")
    assert.same({ "api", "web" }, (function()
      local names = {}
      for name in pairs(current) do names[#names + 1] = name end
      table.sort(names)
      return names
    end)())
    assert.equal(2, current.api.revision)
    assert.same({ script = "/srv/api-2.sh", args = { "x" } }, current.api.spec)
    assert.same(deployments.revision(db, "default", "api", 2), current.api)
    assert.same(deployments.revision(db, "default", "web", 1), current.web)
    assert.same({}, deployments.current_revisions(db, "empty"))
    -- Only some fields of each spec, made plain as revision() makes them.
    local brief = deployments.current_revisions(db, "default", { "script", "args", "entry" })
    assert.same({ script = "/srv/api-2.sh", args = { "x" } }, brief.api.spec)
    assert.same({ script = "/srv/a.sh" }, brief.web.spec)
    assert.equal("rolling_out", brief.api.state)
    assert.is_nil(brief.api.listed)
    -- One key; a field of an object field; values that are not strings.
    assert.same({ script = "/srv/a.sh" }, deployments.current_revisions(db, "default", { "script" }).web.spec)
    deployments.add_revision(db, "default", "web", { script = "/srv/w.sh", health = { kind = "http", path = "/up" },
      grace = 5, no_deps = false, cpu = 0.5, memory = cjson.null }, "me")
    brief = deployments.current_revisions(db, "default", { "health.kind", "health.path", "grace", "no_deps", "cpu",
      "memory", "restart" })
    assert.same({ health = { kind = "http", path = "/up" }, grace = 5, no_deps = false, cpu = 0.5 }, brief.web.spec)
    assert.equal("integer", math.type(brief.web.spec.grace))
    -- A spec that is not JSON gives {} (as revision() does), not an error.
    assert(db:run("UPDATE revisions SET spec = 'not json' WHERE name = 'web'"))
    assert.same({}, deployments.current_revisions(db, "default", { "script", "health.kind" }).web.spec)
    assert.has_error(function() deployments.current_revisions(db, "default", { "a'b" }) end)
  end)

  it("leaves no read open after the lookups a GET makes (their statements are kept)", function()
    make("default", "api")
    instance("default", "api", 1, 1)
    for _ = 1, 2 do
      assert.equal("api", deployments.get(db, "default", "api").name)
      assert.is_nil(deployments.get(db, "default", "nope"))
      assert.equal(1, #deployments.instances(db, "default", "api"))
      assert.equal(1, deployments.revision(db, "default", "api", 1).revision)
      assert.is_nil(deployments.revision(db, "default", "api", 9))
    end
    -- Lookups that found a row last: a statement left stepping would hold
    -- a read open and the checkpoint back.
    deployments.get(db, "default", "api")
    deployments.revision(db, "default", "api", 1)
    local r = db:first("PRAGMA wal_checkpoint(TRUNCATE)")
    assert.equal(0, r.busy)
    -- Another database (a later open) prepares its own.
    local other = store.open(home)
    assert.equal("api", deployments.get(other, "default", "api").name)
    other:close()
    assert.equal("api", deployments.get(db, "default", "api").name)
  end)

  it("instances_by_deployment groups the namespace's instances by deployment, by number", function()
    make("default", "api")
    make("default", "web")
    make("default", "idle")
    make("other", "api")
    instance("default", "api", 2, 1)
    instance("default", "api", 1, 1)
    instance("default", "web", 1, 1)
    instance("other", "api", 1, 1)
    local by = deployments.instances_by_deployment(db, "default")
    assert.same(deployments.instances(db, "default", "api"), by.api)
    assert.same(deployments.instances(db, "default", "web"), by.web)
    assert.same({ 1, 2 }, { by.api[1].number, by.api[2].number })
    assert.same({ code = 1 }, by.api[1].last_exit)
    assert.is_nil(by.idle)
    assert.same({}, deployments.instances_by_deployment(db, "empty"))
  end)
end)
