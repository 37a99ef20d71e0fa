-- prisn.server.http in this process, on real loopback sockets: who is
-- refused (per client, per listener), the header, request and idle
-- deadlines, the HTTP versions it speaks, a half-closed client, and a
-- listener closed on EMFILE and bound again.
local uv = require("luv")
local http = require("prisn.server.http")
local router = require("prisn.server.router")
local wire = require("chaos.http_client")

local function fake_server(limits)
  local l = {}
  for k, v in pairs(http.DEFAULTS) do l[k] = v end
  for k, v in pairs(limits or {}) do l[k] = v end
  local r = router.new()
  r:add({ method = "GET", pattern = "/health", auth = "none", handler = function() return 200, { status = "ok" } end })
  r:add({ method = "POST", pattern = "/echo", auth = "none", handler = function(req) return 200, req.body end })
  local lines = {}
  local function log(_, fmt, ...) lines[#lines + 1] = string.format(fmt, ...) end
  return { router = r, limits = l, connections = 0, lines = lines,
    log = { info = log, warn = log, error = log } }
end

-- Serves `server` on 127.0.0.1 at a free port; returns the listener.
local function serve_tcp(server)
  local listener = { kind = "tcp", host = "127.0.0.1", port = 0 }
  listener.handle = assert(http.bind(listener))
  assert(http.serve(server, listener))
  listener.port = listener.handle:getsockname().port
  return listener
end

local function close_listener(listener)
  if listener.handle and not listener.handle:is_closing() then listener.handle:close() end
  uv.run("nowait")
end

describe("prisn.server.http", function()
  describe("refusal", function()
    local server
    before_each(function()
      server = fake_server({ max_connections = 3, max_connections_per_client = 2 })
      server.open, server.clients = { tcp = 0, pipe = 0 }, {}
    end)

    local function count(kind, client)
      server.open[kind] = server.open[kind] + 1
      if client then server.clients[client] = (server.clients[client] or 0) + 1 end
      return http.refusal(server, kind, client)
    end

    it("holds each TCP address to its cap, and each listener to max_connections", function()
      assert.is_nil(count("tcp", "10.0.0.1"))
      assert.is_nil(count("tcp", "10.0.0.1"))
      local status, code, message = count("tcp", "10.0.0.1")
      assert.same({ 429, "too_many_connections", "too many connections from 10.0.0.1 (at most 2 at once)" },
        { status, code, message })
      server.open.tcp = 2
      assert.is_nil(count("tcp", "10.0.0.2"))
      assert.same({ 503, "unavailable", "too many connections" }, { count("tcp", "10.0.0.3") })
      -- The unix socket has a budget of its own.
      assert.is_nil(count("pipe"))
      server.stopping = true
      assert.same({ 503, "unavailable", "the server is stopping" }, { count("pipe") })
    end)
  end)

  describe("on a socket", function()
    local server, listener, target

    before_each(function()
      server = fake_server({ header_timeout_ms = 300, request_timeout_ms = 900, idle_timeout_ms = 400,
        max_connections_per_client = 2 })
      listener = serve_tcp(server)
      target = { host = "127.0.0.1", port = listener.port }
    end)

    after_each(function()
      close_listener(listener)
      wire.wait(function() return server.connections == 0 end, 2000)
      assert.equal(0, server.connections, "every connection was closed and counted out")
    end)

    it("answers 408 when the head is not complete within the header timeout, however it trickles", function()
      local silent = wire.request(target, nil, { pieces = {}, timeout_ms = 3000 })
      assert.equal(408, silent.status)
      assert.matches("headers did not arrive in time", silent.responses[1].body)
      assert.is_true(silent.ms >= 280 and silent.ms < 700, "after about 300 ms: " .. silent.ms)
      local pieces = {}
      for c in ("GET /health HTTP/1.1\r\nHost: x\r\nX-A: bbbbbbbbbbbbbbbbbbbbbbbbb"):gmatch(".") do
        pieces[#pieces + 1] = { c, 20 }
      end
      local trickle = wire.request(target, nil, { pieces = pieces, timeout_ms = 3000 })
      assert.equal(408, trickle.status)
      assert.is_true(trickle.ms < 700, "not renewed by each byte: " .. trickle.ms)
    end)

    it("gives a body until the request timeout", function()
      local head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\n"
      local ok = wire.request(target, nil, { pieces = { { head .. "ab", 500 }, { "cd", 0 } }, timeout_ms = 3000 })
      assert.same({ 200, "abcd" }, { ok.status, ok.responses[1].body })
      local slow = wire.request(target, nil, { pieces = { { head .. "ab", 2000 } }, timeout_ms = 3000 })
      assert.equal(408, slow.status)
      assert.matches("the request did not arrive in time", slow.responses[1].body)
      assert.is_true(slow.ms >= 850 and slow.ms < 1500, "after about 900 ms: " .. slow.ms)
    end)

    it("closes an idle keep-alive connection after the idle timeout", function()
      local r = wire.request(target, wire.format("GET", "/health", { close = false }), { timeout_ms = 3000 })
      assert.equal(200, r.status)
      assert.is_true(r.closed)
      assert.is_true(r.ms >= 380 and r.ms < 1000, "after about 400 ms: " .. r.ms)
    end)

    it("speaks HTTP/1.1 and 1.0 and answers other versions 505", function()
      for _, version in ipairs({ "1.1", "1.0" }) do
        assert.equal(200, wire.request(target, wire.format("GET", "/health", { version = version })).status)
      end
      for _, version in ipairs({ "9.9", "2.0", "0.9", "1.2" }) do
        local r = wire.request(target, wire.format("GET", "/health", { version = version, close = false }))
        assert.equal(505, r.status, version)
        assert.is_true(r.closed)
        assert.matches("HTTP/" .. version:gsub("%.", "%%.") .. " is not supported", r.responses[1].body)
      end
      -- Requests before it are answered; nothing after it is read.
      local r = wire.request(target, wire.format("GET", "/health", { close = false })
        .. wire.format("GET", "/health", { version = "9.9", close = false }) .. wire.format("GET", "/health"))
      assert.same({ 200, 505 }, { r.responses[1].status, r.responses[2].status })
      assert.is_nil(r.responses[3])
    end)

    it("answers a client that half-closed after its requests", function()
      local req = wire.format("GET", "/health", { close = false })
      local r = wire.request(target, req .. req, { half_close = true, timeout_ms = 3000 })
      assert.same({ 200, 200 }, { r.responses[1].status, r.responses[2].status })
      assert.is_true(r.closed)
      assert.is_true(r.ms < 300, "closed after the answers, not after a timeout")
    end)

    it("refuses a client past its cap at once with 429 and Retry-After", function()
      local held = {}
      for i = 1, 2 do
        wire.start(target, nil, { pieces = {}, timeout_ms = 2000 }, function(r) held[i] = r end)
      end
      wire.wait(function() return server.connections == 2 end, 1000)
      local r = wire.request(target, wire.format("GET", "/health"))
      assert.equal(429, r.status)
      assert.equal("1", r.responses[1].headers["retry-after"])
      assert.matches("too many connections from 127%.0%.0%.1", r.responses[1].body)
      assert.is_true(r.closed)
      -- Another address is not affected.
      local other = wire.request({ host = "127.0.0.1", port = listener.port, bind = "127.0.0.2" },
        wire.format("GET", "/health"))
      assert.equal(200, other.status)
      wire.wait(function() return held[1] and held[2] end, 3000)
    end)

    it("refuses 503 to the connection that takes incomplete requests past max_buffered_bytes", function()
      server.limits.max_buffered_bytes = 3000
      local head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n"
      local first
      wire.start(target, nil, { pieces = { { head .. ("a"):rep(1500), 200 }, { ("a"):rep(500), 0 } },
        timeout_ms = 3000 }, function(r) first = r end)
      wire.wait(function() return (server.held_bytes or 0) > 1500 end, 1000)
      local second = wire.request({ host = "127.0.0.1", port = listener.port, bind = "127.0.0.2" },
        head .. ("b"):rep(1600), { timeout_ms = 3000 })
      assert.equal(503, second.status)
      assert.equal("1", second.responses[1].headers["retry-after"])
      assert.matches("too many large requests", second.responses[1].body)
      wire.wait(function() return first ~= nil end, 3000)
      assert.same({ 200, ("a"):rep(2000) }, { first.status, first.responses[1].body })
      assert.equal(0, server.held_bytes, "nothing held once both are done")
    end)

    it("closes a listener that reports EMFILE and binds it again", function()
      http.PAUSE_MS = 50
      local old = listener.handle
      http.listen_failed(server, listener, "EMFILE: too many open files")
      assert.is_true(old:is_closing())
      wire.wait(function() return not listener.paused end, 2000)
      assert.is_false(listener.paused)
      assert.are_not.equal(old, listener.handle)
      assert.equal(200, wire.request(target, wire.format("GET", "/health")).status)
      assert.matches("accept failed: EMFILE", server.lines[1])
      assert.matches("listening again", server.lines[2])
      http.PAUSE_MS = 1000
    end)
  end)
end)
