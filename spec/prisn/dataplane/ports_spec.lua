-- prisn.dataplane.ports: the reconcile of a full state (which listeners are
-- kept, reopened, opened, closed) with a fake proxy, and its events.
local ports = require("prisn.dataplane.ports")

-- A fake prisn.net.proxy.listen: records binds; `taken` ports fail.
local function fake_listen(log, taken)
  return function(opts)
    if taken and taken[opts.port] then return nil, "port " .. opts.port .. " is already in use", "EADDRINUSE" end
    local p = { opts = opts, backends = nil, closed = false, least = false, active_by = {} }
    function p:set_backends(list) self.backends = list end
    function p:set_strategy(s) self.least = s == "least-connections" end
    function p:port() return self.opts.port end
    function p:close(cb) self.closed = true; if cb then cb() end end
    function p:stats()
      local per = {}
      for id, n in pairs(self.active_by) do per[id] = { active = n, total = n } end
      return { per_backend = per }
    end
    log[#log + 1] = opts.name .. "@" .. opts.host .. ":" .. opts.port .. (opts.fd and (" fd " .. opts.fd) or "")
    return p
  end
end

local function port(name, p, backends, host)
  return { name = name, host = host, port = p, strategy = "round-robin", backends = backends or {} }
end

describe("prisn.dataplane.ports", function()
  describe("plan", function()
    it("keeps a port whose address did not change, reopens a moved one, opens new ones, closes the rest", function()
      local current = { ["a/keep"] = { host = "0.0.0.0", port = 8080 }, ["a/moved"] = { host = "0.0.0.0", port = 8081 },
        ["a/rehosted"] = { host = "0.0.0.0", port = 8083 }, ["a/gone"] = { host = "0.0.0.0", port = 8082 } }
      local plan = ports.plan(current, { port("a/keep", 8080), port("a/moved", 9081), port("a/new", 9000),
        port("a/rehosted", 8083, nil, "127.0.0.1") })
      local names = function(list)
        local out = {}
        for i, p in ipairs(list) do out[i] = p.name end
        return out
      end
      assert.are.same({ "a/keep" }, names(plan.keep))
      assert.are.same({ "a/moved", "a/rehosted" }, names(plan.reopen))
      assert.are.same({ "a/new" }, names(plan.open))
      assert.are.same({ "a/gone" }, plan.close)
    end)
  end)

  it("sync with the same state again binds nothing: pools are updated in place (a server restart)", function()
    local binds = {}
    local svc = ports.new({}, { listen = fake_listen(binds) })
    local backends = { { id = "web-1", host = "127.0.0.1", port = 40001.0 } }
    local reply = svc:op_sync({ ports = { port("default/web", 8080.0, backends) } })
    assert.are.same({ "default/web@0.0.0.0:8080" }, binds)
    assert.are.same({ ["default/web"] = 8080 }, reply.bound)
    local first = svc.ports["default/web"].proxy
    assert.are.equal(40001, first.backends[1].port)
    assert.are.equal("integer", math.type(first.backends[1].port), "JSON floats are made integers")
    local newer = { { id = "web-2", host = "127.0.0.1", port = 40002 } }
    reply = svc:op_sync({ ports = { { name = "default/web", port = 8080, strategy = "least-connections",
      backends = newer } } })
    assert.are.equal(1, #binds, "no second bind")
    assert.are.equal(1, reply.kept)
    assert.are.equal(first, svc.ports["default/web"].proxy)
    assert.are.same(newer, first.backends)
    assert.is_true(first.least)
    assert.is_false(first.closed)
  end)

  it("reports the ports that cannot be opened, and closes those the state no longer has", function()
    local binds = {}
    local svc = ports.new({}, { listen = fake_listen(binds, { [8081] = true }) })
    svc:op_sync({ ports = { port("a/one", 8080) } })
    local one = svc.ports["a/one"].proxy
    local reply = svc:op_sync({ ports = { port("a/two", 8081) } })
    assert.are.same({ ["a/two"] = { code = "EADDRINUSE", message = "port 8081 is already in use" } }, reply.failed)
    assert.is_true(one.closed)
    assert.is_nil(svc.ports["a/one"])
    assert.are.same({ nil, "port 8081 is already in use", "EADDRINUSE" },
      { svc:op_set({ port = port("a/two", 8081) }) })
  end)

  it("set keeps a listener at the same address and reopens a moved one; backends and close", function()
    local binds = {}
    local svc = ports.new({}, { listen = fake_listen(binds) })
    svc:op_set({ port = port("a/web", 8080) })
    svc:op_set({ port = port("a/web", 8080, { { id = "x", host = "127.0.0.1", port = 1 } }) })
    assert.are.equal(1, #binds)
    svc:op_set({ port = port("a/web", 8090) })
    assert.are.same({ "a/web@0.0.0.0:8080", "a/web@0.0.0.0:8090" }, binds)
    svc.ports["a/web"].proxy.active_by.x = 1
    assert.are.same({ connections = { x = 1 } },
      svc:op_backends({ name = "a/web", backends = { { id = "y", host = "127.0.0.1", port = 2 } } }),
      "the counts as of the new pool: x drains from 1")
    assert.are.equal("y", svc.ports["a/web"].proxy.backends[1].id)
    assert.are.same({ nil, "no port a/nope", "ENOENT" }, { svc:op_backends({ name = "a/nope", backends = {} }) })
    svc:op_close({ name = "a/web" })
    assert.is_nil(svc.ports["a/web"])
  end)

  it("sends the connections event only when the counts changed", function()
    local svc = ports.new({}, { listen = fake_listen({}) })
    svc:op_set({ port = port("a/web", 8080) })
    local p = svc.ports["a/web"].proxy
    p.active_by["web-1"] = 2
    assert.are.same({ event = "connections", ports = { ["a/web"] = { ["web-1"] = 2 } } }, svc:tick())
    assert.is_nil(svc:tick())
    p.active_by["web-1"] = 0
    assert.are.same({ ["a/web"] = { ["web-1"] = 0 } }, svc:tick().ports)
  end)

  it("a snapshot adopted by another service opens the same ports on the handed-over fds", function()
    local svc = ports.new({}, { listen = fake_listen({}) })
    local backends = { { id = "web-1", host = "127.0.0.1", port = 40001 } }
    svc:op_sync({ ports = { port("a/web", 8080, backends), port("a/api", 8081) } })
    local binds = {}
    local next_one = ports.new({}, { listen = fake_listen(binds) })
    next_one:adopt(svc:snapshot(), { ["a/web"] = 3, ["a/api"] = 4 })
    table.sort(binds)
    assert.are.same({ "a/api@0.0.0.0:8081 fd 4", "a/web@0.0.0.0:8080 fd 3" }, binds)
    assert.are.same(backends, next_one.ports["a/web"].proxy.backends)
  end)
end)
