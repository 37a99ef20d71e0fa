-- prisn.server.ingress: the route table built from the supervisor's
-- deployments, the listener addresses, the access log line, the URL a
-- deployment is served at, and what it sends the data plane (a fake one).
local ingress = require("prisn.server.ingress")

describe("prisn.server.ingress", function()
  local function inst(number, port, state)
    local i = { number = number, port = port, pid = 100 + number, healthy = true }
    if state == "draining" then i.removing = true end
    if state == "starting" then i.healthy = false end
    return i
  end

  it("routes a deployment with a host name to its ready instances only", function()
    local deployments = {
      ["default/api"] = { ns = "default", name = "api", row = { hostname = "api.example.com", path = "/v1" },
        instances = { [2] = inst(2, 4002), [1] = inst(1, 4001), [3] = inst(3, 4003, "draining"),
          [4] = inst(4, 4004, "starting") } },
      ["default/web"] = { ns = "default", name = "web", row = { hostname = "api.example.com", path = "/" },
        instances = {} },
      ["other/worker"] = { ns = "other", name = "worker", row = {}, instances = { [1] = inst(1, 5001) } },
      ["other/gone"] = { ns = "other", name = "gone", deleted = true, row = { hostname = "x.example.com" },
        instances = {} },
    }
    assert.same({
      { host = "api.example.com", path = "/", key = "default/web", backends = {} },
      { host = "api.example.com", path = "/v1", key = "default/api", backends = {
        { id = "default/api-1", host = "127.0.0.1", port = 4001, number = 1 },
        { id = "default/api-2", host = "127.0.0.1", port = 4002, number = 2 } } },
    }, ingress.routes(deployments))
  end)

  it("reads [HOST:]PORT; a port alone is every interface", function()
    assert.same({ "0.0.0.0", 80 }, { ingress.parse_address(":80") })
    assert.same({ "0.0.0.0", 8080 }, { ingress.parse_address("8080") })
    assert.same({ "127.0.0.1", 8443 }, { ingress.parse_address("127.0.0.1:8443") })
    assert.same({ "::", 443 }, { ingress.parse_address("[::]:443") })
    for _, bad in ipairs({ "", "http", "example.com:80", ":0", ":70000", "1.2.3.4", "80:" }) do
      assert.is_nil(ingress.parse_address(bad), bad)
    end
  end)

  it("writes one access line a request", function()
    assert.equal("ingress GET api.example.com/v1/users 200 512B 3ms 10.0.0.7 default/api default/api-2",
      ingress.access_line({ method = "GET", host = "api.example.com", path = "/v1/users", status = 200, bytes = 512,
        duration_ms = 2.6, client = "10.0.0.7", route_key = "default/api", backend = "default/api-2" }))
    assert.equal("ingress GET nope.example.com/ 404 30B 0ms 10.0.0.7 - -", ingress.access_line({ method = "GET",
      host = "nope.example.com", path = "/", status = 404, bytes = 30, duration_ms = 0.1, client = "10.0.0.7" }))
  end)

  it("says where a route is served, https first, default ports left out", function()
    local ig = setmetatable({ listeners = { http = { scheme = "http", port = 80 } } }, { __index = ingress.Ingress })
    assert.equal("http://api.example.com/v1", ig:url("api.example.com", "/v1"))
    ig.listeners.http.port = 8080
    assert.equal("http://api.example.com:8080/", ig:url("api.example.com", "/"))
    ig.listeners.https = { scheme = "https", port = 443 }
    assert.equal("https://api.example.com/v1", ig:url("api.example.com", "/v1"))
  end)

  describe("with a data plane", function()
    -- A fake prisn.server.dataplane client: requests kept, answered by hand.
    local function fake_dp()
      local dp = { sent = {}, synced = false }
      function dp:add_service(kind, state_fn, on_event)
        self.kind, self.state_fn, self.on_event = kind, state_fn, on_event
      end
      function dp:request(msg, cb) self.sent[#self.sent + 1] = { msg = msg, cb = cb } end
      function dp:call_at_start(msg)
        self.sent[#self.sent + 1] = { msg = msg }
        return { bound = { http = 8080 }, failed = {} }
      end
      return dp
    end

    local function server_with(dp, deployments)
      local lines = {}
      return { dataplane = dp, supervisor = { deployments = deployments, on_pool_change = {} },
        log = { info = function(_, fmt, ...) lines[#lines + 1] = string.format(fmt, ...) end,
          error = function(_, fmt, ...) lines[#lines + 1] = "ERROR " .. string.format(fmt, ...) end,
          warn = function() end } }, lines
    end

    it("asks for the listeners at start, sends routes only once synced and only when they changed", function()
      local dp = fake_dp()
      local deployments = { ["default/api"] = { ns = "default", name = "api", row = { hostname = "api.example.com" },
        instances = { [1] = inst(1, 4001) } } }
      local server = server_with(dp, deployments)
      local ig = ingress.start(server, { http = "127.0.0.1:8080" })
      assert.same({ kind = "ingress", op = "listen", listeners = { http = { host = "127.0.0.1", port = 8080 } } },
        dp.sent[1].msg)
      assert.equal(1, #dp.sent, "no routes before the server's first sync: its deployments are not whole yet")
      dp.synced = true
      dp.state_fn()
      local sync = dp.sent[2]
      assert.same({ "sync", 1 }, { sync.msg.op, #sync.msg.routes })
      assert.equal(1, ig:in_flight("default/api-1"), "unknown while the sync is on its way")
      sync.cb({ in_flight = { ["default/api-1"] = 2 }, bound = { http = 8080 } })
      assert.equal(2, ig:in_flight("default/api-1"))
      ig:refresh()
      assert.equal(2, #dp.sent, "unchanged routes are not sent again")
      deployments["default/api"].instances[1].removing = true
      server.supervisor.on_pool_change[1]()
      assert.same({ "routes", {} }, { dp.sent[3].msg.op, dp.sent[3].msg.routes[1].backends })
      dp.sent[3].cb({ in_flight = { ["default/api-1"] = 0 } })
      dp.on_event({ event = "in_flight", backends = { ["default/api-1"] = 0 } })
      assert.equal(0, ig:in_flight("default/api-1"))
      assert.equal(0, server.supervisor.drain_counts[1](deployments["default/api"], { number = 1 }))
    end)

    it("writes the access entries it is sent to the server's log", function()
      local dp = fake_dp()
      local server, lines = server_with(dp, {})
      ingress.start(server, { http = "8080" })
      dp.on_event({ event = "access", entries = { { method = "GET", host = "a.example.com", path = "/", status = 404.0,
        bytes = 30.0, duration_ms = 0, client = "127.0.0.1" } } })
      assert.equal("ingress GET a.example.com/ 404 30B 0ms 127.0.0.1 - -", lines[#lines])
    end)

    it("without listeners, has the data plane close any it still has", function()
      local dp = fake_dp()
      assert.is_nil(ingress.start(server_with(dp, {}), {}))
      assert.same({ { kind = "ingress", op = "sync", listeners = {}, routes = {} } }, dp.state_fn())
    end)
  end)
end)
