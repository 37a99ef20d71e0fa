-- prisn.dataplane.ingress: the reconcile of a full state (listeners kept,
-- moved, closed; routes and certificates taken), its events (in-flight
-- counts, access entries or dataplane.log lines) and its upgrade snapshot,
-- with a fake prisn.net.ingress.
local ingress = require("prisn.dataplane.ingress")
local support = require("support")

-- A fake prisn.net.ingress.listen: records binds; `taken` ports fail.
local function fake_listen(binds, taken)
  return function(opts)
    if taken and taken[opts.port] then return nil, "port " .. opts.port .. " is already in use", "EADDRINUSE" end
    local ig = { opts = opts, routes = nil, closed = false, in_flight_by = {}, conns = {}, active = 0 }
    function ig:set_routes(list) self.routes = list end
    function ig:port() return self.opts.port end
    function ig:close(cb) self.closed = true; if cb then cb() end end
    function ig:stats()
      local per = {}
      for id, n in pairs(self.in_flight_by) do per[id] = { in_flight = n } end
      return { backends = per }
    end
    binds[#binds + 1] = opts.scheme .. "@" .. opts.host .. ":" .. opts.port .. (opts.wrap and " tls" or "")
    return ig
  end
end

-- A fake prisn.net.tls: pairs are their texts, a wrapper is a function.
local fake_tls = {
  load_pair = function(cert, key) return { cert = cert, key = key } end,
  server_context = function(opts) return opts end,
  wrapper = function(ctx) return function() return ctx end end,
}

local ROUTES = { { host = "api.example.com", path = "/", key = "default/api",
  backends = { { id = "default/api-1", host = "127.0.0.1", port = 40001.0 } } } }

local function new(binds, opts)
  opts = opts or {}
  local lines = {}
  local host = { log = { info = function(_, fmt, ...) lines[#lines + 1] = string.format(fmt, ...) end,
    error = function() end, warn = function() end }, connected = opts.connected }
  local svc = ingress.new(host, { listen = fake_listen(binds, opts.taken), tls = fake_tls })
  return svc, lines
end

describe("prisn.dataplane.ingress", function()
  it("plan keeps a listener whose address did not change, moves one that did, closes the rest", function()
    local plan = ingress.plan({ http = { host = "0.0.0.0", port = 80 }, https = { host = "0.0.0.0", port = 443 } },
      { http = { host = "0.0.0.0", port = 80.0 }, https = { host = "127.0.0.1", port = 443 } })
    assert.are.same({ open = { "https" }, keep = { "http" }, close = { "https" } }, plan)
    assert.are.same({ open = {}, keep = {}, close = { "http" } },
      ingress.plan({ http = { host = "0.0.0.0", port = 80 } }, {}))
  end)

  it("sync with the same state again binds nothing (a server restart); routes reach the kept listener", function()
    local binds = {}
    local svc = new(binds)
    local state = { listeners = { http = { host = "127.0.0.1", port = 8080.0 }, https = { host = "127.0.0.1",
      port = 8443 } }, routes = ROUTES, certs = { ["API.example.com"] = { cert = "C1", key = "K1" } },
      default = { cert = "DC", key = "DK" } }
    local reply = svc:op_sync(state)
    assert.are.same({ http = 8080, https = 8443 }, reply.bound)
    assert.are.same({ "http@127.0.0.1:8080", "https@127.0.0.1:8443 tls" }, binds)
    local http = svc.open_listeners.http.ig
    assert.are.equal("integer", math.type(http.routes[1].backends[1].port), "JSON floats are made integers")
    assert.are.same({ cert = "C1", key = "K1" }, svc.pairs["api.example.com"], "names are matched without case")
    local pair_before = svc.pairs["api.example.com"]
    local newer = { { host = "web.example.com", path = "/", key = "default/web", backends = {} } }
    reply = svc:op_sync({ listeners = state.listeners, routes = newer, certs = state.certs, default = state.default })
    assert.are.equal(2, #binds, "no second bind")
    assert.are.equal(2, reply.kept)
    assert.are.equal(http, svc.open_listeners.http.ig)
    assert.are.same(newer, http.routes)
    assert.are.equal(pair_before, svc.pairs["api.example.com"], "an unchanged PEM is not parsed again")
    -- A moved listener is reopened, one no longer wanted closed.
    svc:op_sync({ listeners = { http = { host = "127.0.0.1", port = 9090 } }, routes = newer })
    assert.is_true(http.closed)
    assert.is_nil(svc.open_listeners.https)
    assert.are.same({}, svc.pairs, "the certificates are the full set")
    assert.are.equal("http@127.0.0.1:9090", binds[3])
  end)

  it("reports a listener it cannot open and keeps the other", function()
    local binds = {}
    local svc = new(binds, { taken = { [8443] = true } })
    local reply = svc:op_listen({ listeners = { http = { host = "127.0.0.1", port = 8080 },
      https = { host = "127.0.0.1", port = 8443 } }, default = { cert = "DC", key = "DK" } })
    assert.are.same({ http = 8080 }, reply.bound)
    assert.are.equal("EADDRINUSE", reply.failed.https.code)
    -- Without a default certificate there is no TLS listener.
    local other = new({})
    reply = other:op_listen({ listeners = { https = { host = "127.0.0.1", port = 8443 } } })
    assert.are.equal("invalid", reply.failed.https.code)
  end)

  it("sends the in-flight counts when they change, and with a new route table", function()
    local svc = new({})
    svc:op_sync({ listeners = { http = { host = "127.0.0.1", port = 8080 } }, routes = ROUTES })
    local ig = svc.open_listeners.http.ig
    ig.in_flight_by["default/api-1"] = 2
    assert.are.same({ event = "in_flight", backends = { ["default/api-1"] = 2 } }, svc:tick())
    assert.is_nil(svc:tick(), "unchanged: no event")
    ig.in_flight_by["default/api-1"] = 1
    assert.are.same({ in_flight = { ["default/api-1"] = 1 } }, svc:op_routes({ routes = {} }))
  end)

  it("hands access entries to a connected server, writes them to its own log otherwise", function()
    local connected = true
    local svc, lines = new({}, { connected = function() return connected end })
    local e = { method = "GET", host = "api.example.com:8080", path = "/x", status = 200.0, bytes = 5.0,
      duration_ms = 1.4, client = "127.0.0.1", route_key = "default/api", backend = "default/api-1" }
    svc:on_access(e)
    assert.are.same({ event = "access", entries = { e } }, svc:tick())
    connected = false
    svc:on_access(e)
    assert.are.same({ "ingress GET api.example.com/x 200 5B 1ms 127.0.0.1 default/api default/api-1" }, lines)
    -- Entries kept for a server that went before the tick are written here.
    connected = true
    svc:on_access(e)
    connected = false
    assert.is_nil(svc:tick())
    assert.are.equal(2, #lines)
    lines[2] = nil
    svc.access_log = false
    svc:on_access(e)
    assert.are.equal(1, #lines)
  end)

  it("snapshot holds what adopt needs; adopt reopens on the inherited sockets", function()
    local svc = new({})
    svc:op_sync({ listeners = { http = { host = "127.0.0.1", port = 8080 } }, routes = ROUTES,
      certs = { ["api.example.com"] = { cert = "C1", key = "K1" } }, default = { cert = "DC", key = "DK" },
      access_log = false })
    local snap = svc:snapshot()
    assert.are.same({ http = { host = "127.0.0.1", port = 8080 } }, snap.listeners)
    assert.are.same({ cert = "C1", key = "K1" }, snap.certs["api.example.com"])
    assert.is_false(snap.access_log)
    local binds = {}
    local next_one = new(binds)
    next_one:adopt(snap, {})
    assert.are.same({ "http@127.0.0.1:8080" }, binds)
    assert.are.same(ROUTES, next_one.open_listeners.http.ig.routes)
    assert.is_false(next_one.access_log)
  end)

  it("at a hand-over closes idle keep-alive connections only: one in its handshake or first head, or with a "
    .. "request in flight, is served first", function()
    local svc = new({})
    svc:op_sync({ listeners = { http = { host = "127.0.0.1", port = 8080 } }, routes = ROUTES })
    local ig = svc.open_listeners.http.ig
    function ig:close_handle() self.handle_closed = true end
    local closed = {}
    local function conn(name, fields)
      function fields:close_after_write()
        closed[#closed + 1] = name
        ig.conns[self] = nil
        ig.active = ig.active - 1
      end
      fields.queue = {}
      ig.conns[fields], ig.active = true, ig.active + 1
      return fields
    end
    conn("idle", { deadline_kind = "idle" })
    local first = conn("first head", { deadline_kind = "header" })
    local busy = conn("in flight", { ex = {}, deadline_kind = "backend" })
    local done = false
    svc:stop_accepting(function() done = true end)
    assert.is_true(support.run_until(function() return #closed == 1 end, 2000))
    assert.is_true(ig.handle_closed)
    assert.are.same({ "idle" }, closed)
    -- Their answers written, both wait for the next request: now idle.
    first.deadline_kind = "idle"
    busy.ex, busy.deadline_kind = nil, "idle"
    assert.is_true(support.run_until(function() return done end, 2000))
    table.sort(closed)
    assert.are.same({ "first head", "idle", "in flight" }, closed)
  end)
end)
