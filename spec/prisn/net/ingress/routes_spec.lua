-- prisn.net.ingress.routes: Host without case, port or trailing dot; the
-- longest path prefix on a segment boundary; malformed tables raise.
local routes = require("prisn.net.ingress.routes")

local function b(id) return { id = id, host = "127.0.0.1", port = 4000 } end

describe("prisn.net.ingress.routes", function()
  local t = routes.build({
    { host = "API.example.com", path = "/v1", key = "default/v1", backends = { b("v1") } },
    { host = "api.example.com", path = "/v1/admin/", key = "default/admin", backends = { b("admin") } },
    { host = "api.example.com", key = "default/root", backends = { b("root") } },
    { host = "other.test", path = "/x", key = "ns2/x", backends = {} },
  })

  it("normalizes Host: case, port, trailing dot, IPv6 brackets", function()
    assert.are.equal("api.example.com", routes.normalize_host("API.Example.COM.:8080"))
    assert.are.equal("api.example.com", routes.normalize_host("api.example.com:"))
    assert.are.equal("::1", routes.normalize_host("[::1]:80"))
    assert.are.equal("", routes.normalize_host(nil))
  end)

  it("picks the longest prefix on segment boundaries", function()
    local function key(host, path) local r = routes.match(t, host, path) return r and r.key end
    assert.are.equal("default/v1", key("api.example.com", "/v1"))
    assert.are.equal("default/v1", key("api.example.com:443", "/v1/users"))
    assert.are.equal("default/root", key("api.example.com", "/v10"))
    assert.are.equal("default/admin", key("API.EXAMPLE.COM", "/v1/admin"))
    assert.are.equal("default/admin", key("api.example.com", "/v1/admin/x"))
    assert.are.equal("default/v1", key("api.example.com", "/v1/administrator"))
    assert.are.equal("default/root", key("api.example.com", "/"))
    assert.are.equal("ns2/x", key("other.test", "/x/y"))
    assert.is_nil(key("other.test", "/"))
    assert.is_nil(key("other.test", "/xy"))
    assert.is_nil(key("unknown.test", "/v1"))
  end)

  it("lists the backends that stay in service", function()
    local keys = routes.backend_keys(t)
    assert.is_truthy(keys["v1@127.0.0.1:4000"])
    assert.is_truthy(keys["root@127.0.0.1:4000"])
  end)

  it("raises on a malformed table, naming the route", function()
    assert.has_error(function() routes.build("x") end, "ingress: set_routes expects a list of routes")
    assert.has_error(function() routes.build({ { host = "", backends = {} } }) end,
      "ingress: route 1: host must be a non-empty string")
    assert.has_error(function() routes.build({ { host = "a", path = "v1", backends = {} } }) end,
      "ingress: route 1: path must start with /, got v1")
    assert.has_error(function()
      routes.build({ { host = "a", backends = {} }, { host = "A", path = "/", backends = {} } })
    end, "ingress: route 2: a/ is routed twice")
    local function one(backend) return { { host = "a", backends = { backend } } } end
    assert.has_error(function() routes.build(one({ id = "x", host = "h.test", port = 1 })) end,
      "ingress: backend x: host must be an IP address, got h.test")
    assert.has_error(function() routes.build(one({ id = "x", host = "127.0.0.1", port = 0 })) end,
      "ingress: backend x: port must be 1-65535, got 0")
  end)
end)
