-- prisn.net.ingress against real loopback sockets: luv backends and raw
-- clients in this process (spec/prisn/net/ingress/harness.lua). Each test
-- drives the loop until what it waits for happens; after_each asserts that
-- every handle was closed. Real clients and servers (curl, python3) are in
-- ingress_clients_spec.lua.
local uv = require("luv")
local metrics = require("prisn.metrics")
local h = require("spec.prisn.net.ingress.harness")

local function get(host, path, extra)
  return "GET " .. (path or "/") .. " HTTP/1.1\r\nHost: " .. host .. "\r\n" .. (extra or "") .. "\r\n"
end

local function route(host, path, backends, key)
  local list = {}
  for i, b in ipairs(backends) do list[i] = b.spec and b.spec() or b end
  return { host = host, path = path, key = key or host .. (path or ""), backends = list }
end

describe("prisn.net.ingress", function()
  before_each(h.before)
  after_each(h.after)

  it("routes by Host (any case, port stripped) and the longest path prefix; 404 otherwise", function()
    local api, v1, web = h.backend({ id = "api" }), h.backend({ id = "v1" }), h.backend({ id = "web" })
    local ig = h.ingress()
    ig:set_routes({ route("api.test", nil, { api }), route("api.test", "/v1", { v1 }),
      route("web.test", nil, { web }) })
    local port = ig:port()
    assert.are.equal("api GET /", h.request(port, get("API.Test:" .. port, "/")).body)
    assert.are.equal("v1 GET /v1/users?x=1", h.request(port, get("api.test", "/v1/users?x=1")).body)
    assert.are.equal("v1 GET /v1", h.request(port, get("api.test", "/v1")).body)
    assert.are.equal("api GET /v10", h.request(port, get("api.test", "/v10")).body)
    assert.are.equal("web GET /v1", h.request(port, get("web.test.", "/v1")).body)
    local m = h.request(port, get("nope.test", "/"))
    assert.are.equal(404, m.status)
    assert.are.equal("no route for nope.test\n", m.body)
    assert.are.equal(400, h.request(port, "GET / HTTP/1.1\r\n\r\n").status)
    -- an absolute-form target routes by its authority, which wins over Host
    local m2 = h.request(port, "GET http://api.test/v1/abs?q=1 HTTP/1.1\r\nHost: web.test\r\n\r\n")
    assert.are.equal("v1 GET /v1/abs?q=1", m2.body)
    assert.are.equal("api.test", v1.requests[#v1.requests].headers["host"])
  end)

  it("sets X-Forwarded-For (appended), -Proto and -Host and drops hop-by-hop fields", function()
    local seen
    local b = h.backend({ id = "b", handler = function(req, reply)
      seen = req
      reply("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive, X-Internal\r\nX-Internal: 1\r\n"
        .. "Keep-Alive: timeout=5\r\nX-Public: 2\r\n\r\n")
    end })
    local ig = h.ingress({ scheme = "https" })
    ig:set_routes({ route("a.test", nil, { b }) })
    local m = h.request(ig:port(), get("a.test:8443", "/", "X-Forwarded-For: 10.1.2.3\r\nConnection: X-Hop\r\n"
      .. "X-Hop: secret\r\nTE: trailers\r\nX-Keep: yes\r\n"))
    assert.are.equal(200, m.status)
    assert.are.equal("10.1.2.3, 127.0.0.1", seen.headers["x-forwarded-for"])
    assert.are.equal("https", seen.headers["x-forwarded-proto"])
    assert.are.equal("a.test:8443", seen.headers["x-forwarded-host"])
    assert.are.equal("a.test:8443", seen.headers["host"])
    assert.are.equal("yes", seen.headers["x-keep"])
    assert.is_nil(seen.headers["x-hop"])
    assert.is_nil(seen.headers["te"])
    assert.is_nil(m.headers["x-internal"])
    assert.is_nil(m.headers["keep-alive"])
    assert.are.equal("2", m.headers["x-public"])
  end)

  it("serves through a wrap stream (as TLS does) and closes it", function()
    local seen
    local b = h.backend({ id = "b", handler = function(req, reply)
      seen = req
      reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    end })
    -- a stream with the luv methods the ingress uses, counting what passes
    local wrapped = {}
    local function wrap(tcp)
      local w = { tcp = tcp, read = 0, written = 0, closed = false }
      function w.read_start(_, cb)
        return tcp:read_start(function(err, data)
          if data then w.read = w.read + #data end
          cb(err, data)
        end)
      end
      function w.read_stop() return tcp:read_stop() end
      function w.write(_, data, cb)
        w.written = w.written + #data
        return tcp:write(data, cb)
      end
      function w.shutdown(_, cb) return tcp:shutdown(cb) end
      function w.close(_, cb)
        w.closed = true
        return tcp:close(cb)
      end
      function w.is_closing() return tcp:is_closing() end
      function w.get_write_queue_size() return tcp:get_write_queue_size() end
      function w.getpeername() return tcp:getpeername() end
      wrapped[#wrapped + 1] = w
      return w
    end
    local ig = h.ingress({ wrap = wrap, scheme = "https" })
    ig:set_routes({ route("a.test", nil, { b }) })
    local m, c = h.request(ig:port(), get("a.test", "/", "Connection: close\r\n"))
    assert.are.equal("ok", m.body)
    assert.are.equal("https", seen.headers["x-forwarded-proto"])
    assert.are.equal(1, #wrapped)
    assert.are.equal(#get("a.test", "/", "Connection: close\r\n"), wrapped[1].read)
    assert.are.equal(#c.text(), wrapped[1].written)
    assert.is_truthy(h.run_until(function() return wrapped[1].closed end))
  end)

  it("keeps both sides alive: many requests on one client connection reuse one backend connection", function()
    local b = h.backend({ id = "b" })
    local ig = h.ingress()
    ig:set_routes({ route("a.test", nil, { b }) })
    local c = h.client(ig:port())
    for i = 1, 5 do
      c.send(get("a.test", "/" .. i))
      assert.are.equal("b GET /" .. i, c.wait_messages(i).body)
    end
    -- pipelined: answered in order
    c.send(get("a.test", "/p1") .. get("a.test", "/p2") .. get("a.test", "/p3"))
    c.wait_messages(8)
    assert.are.same({ "b GET /p1", "b GET /p2", "b GET /p3" },
      { c.messages[6].body, c.messages[7].body, c.messages[8].body })
    -- many pipelined requests answered by the ingress itself, in one packet
    c.send(get("nope.test", "/"):rep(3000))
    c.wait_messages(3008)
    assert.are.equal(404, c.messages[3008].status)
    assert.are.equal(1, b.accepted)
    assert.are.equal(1, ig:stats().accepted)
    assert.are.equal(1, ig:stats().backends.b.idle)
    -- a second client takes the idle connection too
    assert.are.equal(200, h.request(ig:port(), get("a.test", "/again")).status)
    assert.are.equal(1, b.accepted)
    c.close()
  end)

  it("speaks HTTP/1.0 to a 1.0 client and rewrites a close-delimited answer as chunked for a 1.1 one", function()
    local b = h.backend({ id = "b", handler = function(req, reply, conn)
      -- an HTTP/1.0 backend: no length, the close ends the body
      reply("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close " .. req.path)
      conn:shutdown(function() conn:close() end)
    end })
    local ig = h.ingress()
    ig:set_routes({ route("a.test", nil, { b }) })
    local c = h.client(ig:port())
    c.send(get("a.test", "/one"))
    local m = c.wait_messages(1)
    assert.are.equal("until the close /one", m.body)
    assert.are.equal("chunked", m.headers["transfer-encoding"])
    -- the client connection stays open for the next request
    c.send(get("a.test", "/two"))
    assert.are.equal("until the close /two", c.wait_messages(2).body)
    c.close()
    local old = h.client(ig:port())
    old.send("GET /three HTTP/1.0\r\nHost: a.test\r\n\r\n")
    assert.is_true(old.wait_eof())
    assert.is_truthy(old.text():find("^HTTP/1.1 200 OK\r\n"))
    assert.is_truthy(old.text():find("connection: close\r\n\r\nuntil the close /three$"))
    old.close()
  end)

  it("drops a kept-alive connection the backend closed, and idle ones after IDLE_MS", function()
    local backends = require("prisn.net.ingress.backends")
    local saved = backends.IDLE_MS
    local closing = h.backend({ id = "b", handler = function(req, reply, conn)
      reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
      if req.path == "/bye" then conn:shutdown(function() conn:close() end) end
    end })
    local ig = h.ingress()
    ig:set_routes({ route("a.test", nil, { closing }) })
    assert.are.equal(200, h.request(ig:port(), get("a.test", "/bye")).status)
    assert.is_truthy(h.run_until(function() return ig:stats().backends.b.idle == 0 end))
    assert.are.equal(200, h.request(ig:port(), get("a.test", "/x")).status)
    assert.are.equal(2, closing.accepted)
    assert.are.equal(0, ig:stats().connect_failures)
    assert.are.equal(1, ig:stats().backends.b.idle)
    local last = closing.conns[2]
    backends.IDLE_MS = 100
    local ok, err = pcall(function()
      assert.is_truthy(h.run_until(function() return ig:stats().backends.b.idle == 0 and last:is_closing() end))
    end)
    backends.IDLE_MS = saved
    assert(ok, err)
  end)

  it("answers 502 to a response it cannot parse", function()
    local b = h.backend({ id = "b", handler = function(_, reply) reply("SMTP ready\r\n\r\n") end })
    local ig = h.ingress()
    ig:set_routes({ route("a.test", nil, { b }) })
    local m = h.request(ig:port(), "POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\n\r\nx")
    assert.are.equal(502, m.status)
    assert.is_truthy(m.body:find("^backend b failed: "))
  end)

  it("answers HEAD without a body and goes on on the same connection", function()
    local b = h.backend({ id = "b", handler = function(req, reply)
      if req.method == "HEAD" then
        reply("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
      else
        reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
      end
    end })
    local ig = h.ingress()
    ig:set_routes({ route("a.test", nil, { b }) })
    local c = h.client(ig:port())
    c.skip_body()
    c.send("HEAD / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    local m = c.wait_messages(1)
    assert.are.equal("1000", m.headers["content-length"])
    c.send(get("a.test", "/"))
    assert.are.equal("ok", c.wait_messages(2).body)
    assert.are.equal(1, b.accepted)
    c.close()
  end)

  it("streams chunked request and response bodies", function()
    local b = h.backend({ id = "b", handler = function(req, reply)
      reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ngot:\r\n"
        .. string.format("%x", #req.body) .. "\r\n" .. req.body .. "\r\n0\r\n\r\n")
    end })
    local ig = h.ingress()
    ig:set_routes({ route("a.test", nil, { b }) })
    local c = h.client(ig:port())
    c.send("POST /up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    h.sleep(50)
    c.send("6\r\n world\r\n0\r\n\r\n")
    local m = c.wait_messages(1)
    assert.are.equal("got:hello world", m.body)
    assert.are.equal("chunked", m.headers["transfer-encoding"])
    assert.are.equal("chunked", b.requests[1].headers["transfer-encoding"])
    c.close()
  end)

  it("answers 100 Continue itself and forwards the body without Expect", function()
    local b = h.backend({ id = "b" , handler = function(req, reply)
      reply("HTTP/1.1 201 Created\r\nContent-Length: " .. #req.body .. "\r\n\r\n" .. req.body)
    end })
    local ig = h.ingress()
    ig:set_routes({ route("a.test", nil, { b }) })
    local c = h.client(ig:port())
    c.send("PUT /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    assert.is_truthy(h.run_until(function() return c.text():find("^HTTP/1.1 100 Continue\r\n\r\n") end))
    c.send("data")
    local m = c.wait_messages(2)
    assert.are.equal(201, m.status)
    assert.are.equal("data", m.body)
    assert.is_nil(b.requests[1].headers["expect"])
    c.close()
  end)

  it("refuses a body over max_body_bytes (413) and a head over max_header_bytes (431)", function()
    local b = h.backend({ id = "b" })
    local ig = h.ingress({ limits = { max_body_bytes = 100, max_header_bytes = 512 } })
    ig:set_routes({ route("a.test", nil, { b }) })
    local m = h.request(ig:port(), "POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 101\r\n\r\n")
    assert.are.equal(413, m.status)
    local c = h.client(ig:port())
    c.send("POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n" .. ("x"):rep(80) .. "\r\n")
    h.sleep(30)
    c.send("50\r\n" .. ("x"):rep(80) .. "\r\n")
    assert.are.equal(413, c.wait_messages(1).status)
    assert.is_true(c.wait_eof())
    c.close()
    m = h.request(ig:port(), get("a.test", "/", "X-Big: " .. ("y"):rep(600) .. "\r\n"))
    assert.are.equal(431, m.status)
    assert.are.equal(0, #b.requests)
  end)

  it("answers malformed requests with 400 and goes on serving", function()
    local b = h.backend({ id = "b" })
    local ig = h.ingress()
    ig:set_routes({ route("a.test", nil, { b }) })
    for junk, status in pairs({ ["BLAH\r\n\r\n"] = 400, ["GET / HTTP/1.1\r\nHost a.test\r\n\r\n"] = 400,
      ["\0\1\2\3\r\n\r\n"] = 400, ["GET / HTTP/9.9\r\nHost: a.test\r\n\r\n"] = 505,
      ["POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: x\r\n\r\n"] = 400,
      ["CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n"] = 405 }) do
      local c = h.client(ig:port())
      c.send(junk)
      local m = c.wait_messages(1)
      assert.are.equal(status, m.status, junk)
      assert.is_true(c.wait_eof())
      c.close()
    end
    assert.are.equal(200, h.request(ig:port(), get("a.test")).status)
  end)

  it("answers 408 to a client that never sends a complete head, and closes idle ones", function()
    local ig = h.ingress({ limits = { header_timeout_ms = 200, idle_timeout_ms = 300 } })
    local silent = h.client(ig:port())
    local partial = h.client(ig:port())
    partial.send("GET / HTTP/1.1\r\nHost: a")
    local t0 = uv.hrtime()
    assert.is_true(silent.wait_eof(2000))
    assert.is_true(partial.wait_eof(2000))
    assert.is_true((uv.hrtime() - t0) / 1e6 >= 150)
    assert.are.equal(408, silent.messages[1].status)
    assert.are.equal(408, partial.messages[1].status)
    -- after a response, a keep-alive connection is closed when idle, without a word
    local b = h.backend({ id = "b" })
    ig:set_routes({ route("a.test", nil, { b }) })
    local c = h.client(ig:port())
    c.send(get("a.test"))
    c.wait_messages(1)
    assert.is_true(c.wait_eof(2000))
    assert.are.equal(1, #c.messages)
    silent.close()
    partial.close()
    c.close()
  end)

  it("waits for a backend, then answers 503; a route update during the wait serves the request", function()
    local ig = h.ingress({ limits = { wait_for_backend_ms = 200 } })
    local events = {}
    ig.on_event = function(kind, a) events[#events + 1] = kind .. ":" .. tostring(a) end
    ig:set_routes({ route("a.test", nil, {}, "default/a") })
    local t0 = uv.hrtime()
    local m = h.request(ig:port(), get("a.test"))
    assert.are.equal(503, m.status)
    assert.are.equal("no ready backend for default/a\n", m.body)
    assert.is_true((uv.hrtime() - t0) / 1e6 >= 150)
    assert.are.same({ "no_backend:default/a" }, events)
    local c = h.client(ig:port())
    c.send(get("a.test"))
    h.sleep(50)
    local b = h.backend({ id = "late" })
    ig:set_routes({ route("a.test", nil, { b }, "default/a") })
    assert.are.equal("late GET /", c.wait_messages(1).body)
    c.close()
  end)

  it("tries the next backend when one refuses; 502 when every one does", function()
    local live = h.backend({ id = "live" })
    local events = {}
    local ig = h.ingress({ on_event = function(kind, a) events[#events + 1] = kind .. ":" .. tostring(a) end })
    local dead = { id = "dead", host = "127.0.0.1", port = h.dead_port() }
    ig:set_routes({ route("a.test", nil, { dead, live }) })
    for _ = 1, 4 do assert.are.equal("live GET /", h.request(ig:port(), get("a.test")).body) end
    assert.is_true(#events >= 1)
    assert.are.equal("connect_failed:dead", events[1])
    ig:set_routes({ route("a.test", nil, { dead }) })
    local m = h.request(ig:port(), get("a.test"))
    assert.are.equal(502, m.status)
    assert.is_true(ig:stats().connect_failures >= 2)
    assert.are.equal(0, ig:in_flight("dead"))
  end)

  it("retries an idempotent request the backend dropped unanswered; 502 for a POST with a body", function()
    local drop = h.backend({ id = "drop", handler = function(_, _, conn) conn:close() end })
    local ok = h.backend({ id = "ok" })
    local ig = h.ingress()
    ig:set_routes({ route("a.test", nil, { drop, ok }) })
    for _ = 1, 3 do assert.are.equal("ok GET /", h.request(ig:port(), get("a.test")).body) end
    ig:set_routes({ route("a.test", nil, { drop }) })
    local m = h.request(ig:port(), "POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\n\r\nhi")
    assert.are.equal(502, m.status)
    local posts = 0
    for _, req in ipairs(drop.requests) do if req.method == "POST" then posts = posts + 1 end end
    assert.are.equal(1, posts) -- not sent twice
  end)

  it("answers 504 when the backend does not answer within backend_timeout_ms", function()
    local mute = h.backend({ id = "mute", handler = function() end })
    local ig = h.ingress({ limits = { backend_timeout_ms = 200 } })
    ig:set_routes({ route("a.test", nil, { mute }) })
    local t0 = uv.hrtime()
    local m = h.request(ig:port(), get("a.test"))
    assert.are.equal(504, m.status)
    assert.is_true((uv.hrtime() - t0) / 1e6 >= 150)
    assert.is_truthy(h.run_until(function() return mute.open == 0 end))
    assert.are.equal(0, ig:in_flight("mute"))
  end)

  it("drains a removed backend: its slow request finishes, then its idle connections close", function()
    local slow_reply
    local old = h.backend({ id = "old", handler = function(req, reply)
      if req.path == "/slow" then
        slow_reply = function() reply("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow") end
      else
        reply("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nold")
      end
    end })
    local new = h.backend({ id = "new" })
    local ig = h.ingress()
    ig:set_routes({ route("a.test", nil, { old }) })
    -- two connections to old: one carrying the slow request, one kept alive idle
    local slow = h.client(ig:port())
    slow.send(get("a.test", "/slow"))
    assert.is_truthy(h.run_until(function() return slow_reply ~= nil end))
    local warm = h.client(ig:port())
    warm.send(get("a.test", "/warm"))
    assert.are.equal("old", warm.wait_messages(1).body)
    assert.are.equal(1, ig:in_flight("old"))
    ig:set_routes({ route("a.test", nil, { new }) })
    -- new requests go to new; old's kept-alive connection waits for the slow one
    for _ = 1, 3 do assert.are.equal("new GET /", h.request(ig:port(), get("a.test")).body) end
    assert.are.equal(1, ig:in_flight("old"))
    h.sleep(100)
    assert.are.equal(2, old.open)
    slow_reply()
    assert.are.equal("slow", slow.wait_messages(1).body)
    assert.are.equal(0, ig:in_flight("old"))
    assert.is_truthy(h.run_until(function() return old.open == 0 end))
    assert.is_nil(ig:stats().backends.old)
    warm.close()
    slow.close()
  end)

  it("loses no request when backends are replaced under load (rolling update)", function()
    -- each client sends its next request as soon as the last is answered
    local function load(port, n)
      local l = { ok = 0, failed = 0, clients = {} }
      for i = 1, n do
        local c = h.client(port)
        local sent = 0
        l.clients[i] = c
        local function next_request()
          sent = sent + 1
          c.send(get("a.test", "/" .. sent))
        end
        c.on_message = next_request
        next_request()
      end
      function l.poll()
        for _, c in ipairs(l.clients) do
          while (c.seen or 0) < #c.messages do
            c.seen = (c.seen or 0) + 1
            if c.messages[c.seen].status == 200 then l.ok = l.ok + 1 else l.failed = l.failed + 1 end
            if not l.stopped then c.on_message() end
          end
          if c.eof and not c.counted_eof then
            c.counted_eof = true
            l.failed = l.failed + 1
          end
        end
      end
      return l
    end
    local gen = { h.backend({ id = "a1" }), h.backend({ id = "a2" }) }
    local ig = h.ingress()
    ig:set_routes({ route("a.test", nil, gen) })
    local l = load(ig:port(), 8)
    local function serve_for(ms)
      local t0 = uv.hrtime()
      h.run_until(function() l.poll() return uv.hrtime() - t0 > ms * 1e6 end, ms + 1000)
    end
    serve_for(100)
    for round = 1, 3 do
      -- the new instances join, the old ones leave the routes, drain, and stop
      local new = { h.backend({ id = "r" .. round .. "a" }), h.backend({ id = "r" .. round .. "b" }) }
      ig:set_routes({ route("a.test", nil, { gen[2], new[1] }) })
      serve_for(50)
      ig:set_routes({ route("a.test", nil, new) })
      local old = gen
      assert.is_truthy(h.run_until(function()
        l.poll()
        return ig:in_flight(old[1].id) == 0 and ig:in_flight(old[2].id) == 0
      end))
      for _, b in ipairs(old) do
        for _, c in ipairs(b.conns) do if not c:is_closing() then c:close() end end
      end
      gen = new
      serve_for(100)
    end
    l.stopped = true
    h.run_until(function() l.poll() return false end, 200)
    assert.are.equal(0, l.failed)
    assert.is_true(l.ok > 100, "only " .. l.ok .. " requests")
    for _, c in ipairs(l.clients) do c.close() end
  end)

  it("bounds memory with a slow reader: a large download pauses the backend", function()
    local total = 48 * 1024 * 1024
    local sent = 0
    local piece = ("z"):rep(64 * 1024)
    local b = h.backend({ id = "big", handler = function(_, _, conn)
      conn:write("HTTP/1.1 200 OK\r\nContent-Length: " .. total .. "\r\n\r\n")
      local function more()
        while sent < total do
          sent = sent + #piece
          conn:write(piece)
          if conn:get_write_queue_size() > 256 * 1024 then
            conn:write("", function() more() end)
            return
          end
        end
      end
      more()
    end })
    local ig = h.ingress()
    ig:set_routes({ route("a.test", nil, { b }) })
    local c = h.client(ig:port())
    local got = 0
    assert.is_truthy(h.run_until(function() return c.connected end))
    c.tcp:read_stop()
    c.send(get("a.test", "/big"))
    h.sleep(500)
    -- the kernel's socket buffers hold a few MB at most; the ingress held back the rest
    assert.is_true(sent < total / 2, "backend sent " .. sent)
    local queued = 0
    for conn in pairs(ig.conns) do queued = queued + conn.stream:get_write_queue_size() end
    assert.is_true(queued < 1024 * 1024, "queued " .. queued)
    c.tcp:read_start(function(err, data)
      assert(not err, err)
      if data then got = got + #data end
    end)
    assert.is_truthy(h.run_until(function() return got >= total end, 20000))
    assert.are.equal(total, sent)
    c.close()
  end)

  it("bounds memory with a slow backend: a large upload pauses the client", function()
    local total = 32 * 1024 * 1024
    local held, got = nil, 0 -- got: body bytes the backend read
    local b = h.backend({ id = "slow", raw = function(conn, data)
      -- read the head and whatever came with it, then stop reading
      local head_end = select(2, data:find("\r\n\r\n", 1, true))
      got = #data - head_end
      held = conn
      conn:read_stop()
    end })
    local ig = h.ingress()
    ig:set_routes({ route("a.test", nil, { b }) })
    local c = h.client(ig:port())
    assert.is_truthy(h.run_until(function() return c.connected end))
    local head = "PUT /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: " .. total .. "\r\n\r\n"
    c.send(head)
    local piece = ("u"):rep(1024 * 1024)
    for _ = 1, 32 do c.send(piece) end
    assert.is_truthy(h.run_until(function() return held ~= nil end))
    h.sleep(500)
    -- the client still has most of its body queued: the ingress stopped reading it
    assert.is_true(c.tcp:get_write_queue_size() > total / 2, "client queue " .. c.tcp:get_write_queue_size())
    local queued = 0
    for link in pairs(ig.links) do queued = queued + link.tcp:get_write_queue_size() end
    assert.is_true(queued < 1024 * 1024, "queued towards the backend " .. queued)
    held:read_start(function(err, data)
      assert(not err, err)
      if data then got = got + #data end
      if got == total then held:write("HTTP/1.1 204 No Content\r\n\r\n") end
    end)
    assert.are.equal(204, c.wait_messages(1, 20000).status)
    assert.are.equal(total, got)
    c.close()
  end)

  it("pipes an Upgrade both ways after the backend's 101", function()
    local backend_conn
    local b = h.backend({ id = "ws", handler = function(_, reply, conn)
      backend_conn = conn
      -- the first bytes of the new protocol in the same packet as the 101
      reply("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nwelcome;")
      conn:read_stop()
      conn:read_start(function(err, data)
        if err or not data then return conn:close() end
        conn:write("echo:" .. data)
      end)
    end })
    local ig = h.ingress()
    ig:set_routes({ route("a.test", nil, { b }) })
    local c = h.client(ig:port())
    c.send("GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
    assert.is_truthy(h.run_until(function() return c.text():find("\r\n\r\n", 1, true) end))
    assert.is_truthy(c.text():find("^HTTP/1.1 101 "))
    assert.is_truthy(c.text():find("Connection: Upgrade\r\n\r\n", 1, true))
    c.send("ping")
    assert.is_truthy(h.run_until(function() return c.text():find("\r\n\r\nwelcome;echo:ping$") end))
    assert.are.equal("echo", b.requests[1].headers["upgrade"])
    c.close()
    assert.is_truthy(h.run_until(function() return ig:in_flight("ws") == 0 and backend_conn:is_closing() end))
  end)

  it("answers a declined Upgrade as a response, then closes the client connection", function()
    local b = h.backend({ id = "b" })
    local ig = h.ingress()
    ig:set_routes({ route("a.test", nil, { b }) })
    local c = h.client(ig:port())
    c.send("GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
    local m = c.wait_messages(1)
    assert.are.equal(200, m.status)
    assert.are.equal("b GET /ws", m.body)
    assert.are.equal("close", m.headers["connection"])
    assert.is_true(c.wait_eof())
    c.close()
  end)

  it("counts requests per host and status class, latency and connect failures; one access entry each", function()
    local reg = metrics.registry()
    local entries = {}
    local b = h.backend({ id = "b" })
    local ig = h.ingress({ metrics = reg, on_access = function(e) entries[#entries + 1] = e end })
    ig:set_routes({ route("a.test", nil, { b }, "default/a"),
      route("dead.test", nil, { { id = "x", host = "127.0.0.1", port = h.dead_port() } }) })
    h.request(ig:port(), get("a.test", "/one"))
    h.request(ig:port(), get("a.test", "/two"))
    h.request(ig:port(), get("dead.test"))
    h.request(ig:port(), get("other.test"))
    local text = reg:render()
    assert.is_truthy(text:find('prisn_ingress_requests_total{host="a.test",class="2xx"} 2', 1, true))
    assert.is_truthy(text:find('prisn_ingress_requests_total{host="dead.test",class="5xx"} 1', 1, true))
    assert.is_truthy(text:find('prisn_ingress_requests_total{host="",class="4xx"} 1', 1, true))
    assert.is_truthy(text:find('prisn_ingress_request_duration_seconds_count{host="a.test"} 2', 1, true))
    assert.is_truthy(text:find('prisn_ingress_requests_in_flight{host="a.test"} 0', 1, true))
    assert.is_truthy(text:find('prisn_ingress_backend_connect_failures_total{host="dead.test"} 1', 1, true))
    assert.are.equal(4, #entries)
    local e = entries[1]
    assert.are.same({ "a.test", "GET", "/one", 200, #"b GET /one", "127.0.0.1", "default/a", "b" },
      { e.host, e.method, e.path, e.status, e.bytes, e.client, e.route_key, e.backend })
    assert.is_true(e.duration_ms >= 0)
    assert.are.equal(404, entries[4].status)
  end)

  it("closes everything it opened, connections in flight included", function()
    local b = h.backend({ id = "b", handler = function() end })
    local ig = h.ingress()
    ig:set_routes({ route("a.test", nil, { b }) })
    local c = h.client(ig:port())
    c.send(get("a.test"))
    assert.is_truthy(h.run_until(function() return #b.requests == 1 end))
    local closed = false
    ig:close(function() closed = true end)
    assert.is_truthy(h.run_until(function() return closed end))
    assert.is_true(c.wait_eof())
    c.close()
  end)

  it("listens on a socket it is handed, and closes it", function()
    local tcp = uv.new_tcp()
    assert(tcp:bind("127.0.0.1", 0))
    local b = h.backend({ id = "b" })
    local ig = h.ingress({ handle = tcp })
    assert.are.equal(tcp:getsockname().port, ig:port())
    ig:set_routes({ route("a.test", nil, { b }) })
    assert.are.equal("b GET /", h.request(ig:port(), get("a.test")).body)
    local closed = false
    ig:close(function() closed = true end)
    assert.is_truthy(h.run_until(function() return closed end))
    assert.is_true(tcp:is_closing())
  end)

  it("rejects bad options", function()
    local ingress = require("prisn.net.ingress")
    assert.has_error(function() ingress.listen({ port = 70000 }) end, "ingress.listen: port must be 0-65535, got 70000")
    assert.has_error(function() ingress.listen({ port = 0, scheme = "ftp" }) end,
      "ingress.listen: scheme must be http or https, got ftp")
    assert.has_error(function() ingress.listen({ port = 0, limits = { max_body = 1 } }) end,
      "ingress.listen: unknown limit max_body")
    local ig = h.ingress()
    local again, msg, code = ingress.listen({ host = "127.0.0.1", port = ig:port() })
    assert.is_nil(again)
    assert.are.equal("EADDRINUSE", code)
    assert.are.equal("port " .. ig:port() .. " is already in use", msg)
  end)
end)
