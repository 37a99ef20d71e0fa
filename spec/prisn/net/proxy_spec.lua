-- prisn.net.proxy: a real luv loop in this process, small luv TCP backends
-- and clients on 127.0.0.1 port 0. Each test drives the loop until what it
-- waits for happens (or fails after a few seconds) and closes every handle it
-- opened; after_each asserts that nothing is left open.
local uv = require("luv")
local support = require("support")
local proxy = require("prisn.net.proxy")
local metrics = require("prisn.metrics")

local handles -- every handle a test opened

local function track(h)
  handles[#handles + 1] = h
  return h
end

local run_until = support.run_until

local function sleep(ms)
  local t0 = uv.hrtime()
  run_until(function() return uv.hrtime() - t0 >= ms * 1e6 end, ms + 100)
end

-- A backend. mode "id": says "<id>\n" on accept, then echoes. mode
-- "reply_on_eof": reads until EOF, then answers "got:<data>" and shuts
-- down. mode "hold": accepts and does not read until b:resume(); then echoes.
local function backend(id, mode)
  local b = { id = id, conns = {}, accepted = 0 }
  local server = track(uv.new_tcp())
  assert(server:bind("127.0.0.1", 0))
  assert(server:listen(128, function(err)
    assert(not err, err)
    local c = track(uv.new_tcp())
    assert(server:accept(c))
    b.accepted = b.accepted + 1
    b.conns[#b.conns + 1] = c
    if mode == "id" then
      c:write(id .. "\n")
      c:read_start(function(rerr, data)
        if rerr or not data then return c:close() end
        c:write(data)
      end)
    elseif mode == "reply_on_eof" then
      local got = {}
      c:read_start(function(rerr, data)
        if rerr then return c:close() end
        if data then got[#got + 1] = data return end
        c:write("got:" .. table.concat(got))
        c:shutdown(function() end)
      end)
    elseif mode == "hold" then
      b.held = c
    end
  end))
  b.port = server:getsockname().port
  b.server = server
  function b.resume()
    local c = b.held
    c:read_start(function(rerr, data)
      if rerr or not data then
        if not c:is_closing() then c:shutdown(function() c:close() end) end
        return
      end
      c:write(data)
    end)
  end
  function b.spec() return { id = id, host = "127.0.0.1", port = b.port } end
  return b
end

-- A client connected to port, collecting what it receives.
local function client(port)
  local c = { chunks = {}, eof = false, err = nil, connected = false }
  local tcp = track(uv.new_tcp())
  c.tcp = tcp
  tcp:connect("127.0.0.1", port, function(err)
    if err then c.err = err return end
    c.connected = true
    tcp:read_start(function(rerr, data)
      if rerr then c.err = rerr return end
      if data then c.chunks[#c.chunks + 1] = data else c.eof = true end
    end)
  end)
  function c.text() return table.concat(c.chunks) end
  function c.line()
    assert(run_until(function() return c.text():find("\n") or c.eof or c.err end), "no line from the proxy")
    return (c.text():match("^([^\n]*)\n"))
  end
  function c.send(data) tcp:write(data) end
  function c.close() if not tcp:is_closing() then tcp:close() end end
  function c.ended() return run_until(function() return c.eof or c.err end) end
  return c
end

-- A port nothing listens on (bound, then closed): connects are refused.
local function dead_port()
  local t = uv.new_tcp()
  assert(t:bind("127.0.0.1", 0))
  local port = t:getsockname().port
  t:close()
  return port
end

local function open_handles()
  local n = 0
  uv.walk(function(h) if not h:is_closing() then n = n + 1 end end)
  return n
end

local proxies -- every proxy a test started

local function start(opts)
  opts.host = opts.host or "127.0.0.1"
  opts.port = opts.port or 0
  local p = assert(proxy.listen(opts))
  proxies[#proxies + 1] = p
  return p
end

local function stop(p)
  local done = false
  p:close(function() done = true end)
  assert(run_until(function() return done end), "close did not call back")
end

describe("prisn.net.proxy", function()
  local baseline

  before_each(function()
    uv.run("nowait")
    handles, proxies = {}, {}
    baseline = open_handles()
  end)

  after_each(function()
    for _, p in ipairs(proxies) do p:close() end
    for _, h in ipairs(handles) do
      if not h:is_closing() then h:close() end
    end
    uv.run("nowait")
    assert.are.equal(baseline, open_handles(), "handles left open")
  end)

  it("spreads connections evenly over the pool in turn (round-robin)", function()
    local a, b, c = backend("a", "id"), backend("b", "id"), backend("c", "id")
    local p = start({})
    p:set_backends({ a.spec(), b.spec(), c.spec() })
    local seen, clients = { a = 0, b = 0, c = 0 }, {}
    for i = 1, 30 do clients[i] = client(p:port()) end
    for i = 1, 30 do
      local id = clients[i].line()
      seen[id] = seen[id] + 1
    end
    assert.are.same({ a = 10, b = 10, c = 10 }, seen)
    local s = p:stats()
    assert.are.equal(30, s.accepted)
    assert.are.equal(30, s.active)
    assert.are.equal(10, s.per_backend.a.total)
    assert.are.equal(10, p:connections("b"))
    -- and the data path works: an echo comes back through the proxy
    clients[1].send("ping\n")
    assert.is_truthy(run_until(function() return clients[1].text():find("ping\n", 1, true) end))
    for i = 1, 30 do clients[i].close() end
    assert.is_truthy(run_until(function() return p:stats().active == 0 end))
    assert.are.equal(0, p:connections("a"))
    stop(p)
  end)

  it("gives a new connection to the backend with the fewest open (least-connections)", function()
    local a, b = backend("a", "id"), backend("b", "id")
    local p = start({ strategy = "least-connections" })
    p:set_backends({ a.spec(), b.spec() })
    local by_id = { a = {}, b = {} }
    for _ = 1, 4 do
      local c = client(p:port())
      local id = c.line()
      table.insert(by_id[id], c)
    end
    assert.are.equal(2, #by_id.a)
    assert.are.equal(2, #by_id.b)
    for _, c in ipairs(by_id.a) do c.close() end
    assert.is_truthy(run_until(function() return p:connections("a") == 0 end))
    -- a has 0 and b has 2: both new ones go to a (round-robin would split them)
    local c1, c2 = client(p:port()), client(p:port())
    assert.are.equal("a", c1.line())
    assert.are.equal("a", c2.line())
    stop(p)
  end)

  it("tries the next backend when one refuses, and reports it", function()
    local live = backend("live", "id")
    local events = {}
    local p = start({ on_event = function(kind, id, err) events[#events + 1] = { kind, id, err } end })
    p:set_backends({ { id = "dead", host = "127.0.0.1", port = dead_port() }, live.spec() })
    local clients = {}
    for i = 1, 6 do clients[i] = client(p:port()) end
    for i = 1, 6 do assert.are.equal("live", clients[i].line()) end
    local s = p:stats()
    assert.are.equal(0, s.failed)
    assert.are.equal(3, s.connect_failures) -- every other pick was the dead one
    assert.are.equal(3, #events)
    assert.are.equal("connect_failed", events[1][1])
    assert.are.equal("dead", events[1][2])
    assert.matches("ECONNREFUSED", events[1][3])
    assert.are.equal(0, p:connections("dead"))
    stop(p)
  end)

  it("gives up on a client when every backend refuses and none comes in time", function()
    local events = {}
    local p = start({ wait_for_backend_ms = 200, on_event = function(kind) events[#events + 1] = kind end })
    p:set_backends({ { id = "dead", host = "127.0.0.1", port = dead_port() } })
    local c = client(p:port())
    assert.is_truthy(c.ended())
    assert.are.equal("", c.text())
    assert.are.same({ "connect_failed", "no_backend" }, events)
    assert.are.equal(1, p:stats().failed)
    stop(p)
  end)

  it("fails over when a backend does not answer the connect in time", function()
    -- A backend that never answers: its connect is never started (a SYN the
    -- network drops cannot be made on loopback without root).
    local silent_port = dead_port()
    local real_connect = proxy.tcp_connect
    proxy.tcp_connect = function(tcp, host, port, cb)
      if port == silent_port then return true end
      return real_connect(tcp, host, port, cb)
    end
    finally(function() proxy.tcp_connect = real_connect end)
    local live = backend("live", "id")
    local events = {}
    local p = start({ connect_timeout_ms = 300,
      on_event = function(kind, id) events[#events + 1] = kind .. ":" .. id end })
    p:set_backends({ { id = "silent", host = "127.0.0.1", port = silent_port }, live.spec() })
    local t0 = uv.hrtime()
    local c = client(p:port())
    assert.are.equal("live", c.line())
    local ms = (uv.hrtime() - t0) / 1e6
    assert.are.same({ "connect_failed:silent" }, events)
    assert.is_true(ms >= 250 and ms < 1000, "failover took " .. ms .. " ms")
    assert.are.equal(0, p:connections("silent"))
    stop(p)
  end)

  it("sends no new connection to a removed backend and keeps its open one working (drain)", function()
    local a, b = backend("a", "id"), backend("b", "id")
    local p = start({})
    p:set_backends({ a.spec(), b.spec() })
    local old = client(p:port())
    assert.are.equal("a", old.line())
    p:set_backends({ b.spec() })
    for _ = 1, 5 do assert.are.equal("b", client(p:port()).line()) end
    assert.are.equal(1, a.accepted)
    assert.are.equal(1, p:connections("a"))
    old.send("still here\n")
    assert.is_truthy(run_until(function() return old.text():find("still here\n", 1, true) end))
    old.close()
    assert.is_truthy(run_until(function() return p:connections("a") == 0 end))
    assert.is_nil(p:stats().per_backend.a)
    stop(p)
  end)

  it("loses no client during a rolling update, even when the old instance stops before leaving the pool", function()
    local old, new = backend("old", "reply_on_eof"), backend("new", "reply_on_eof")
    local p = start({})
    p:set_backends({ old.spec() })
    -- 8 clients at a time, 300 in all: each sends its number, shuts down
    -- writing and expects "got:<number>" back
    local started, done, failed, open, phase = 0, 0, 0, {}, 0
    local function step()
      for i = #open, 1, -1 do
        local c = open[i]
        if c.eof or c.err then
          if c.text() == "got:" .. c.n then done = done + 1 else failed = failed + 1 end
          c.close()
          table.remove(open, i)
        elseif c.connected and not c.sent then
          c.sent = true
          c.send(c.n)
          c.tcp:shutdown()
        end
      end
      while #open < 8 and started < 300 do
        started = started + 1
        local c = client(p:port())
        c.n = tostring(started)
        open[#open + 1] = c
      end
      if phase == 0 and started >= 100 then
        phase = 1
        p:set_backends({ old.spec(), new.spec() }) -- the new one is healthy: in the pool
        old.server:close()                          -- the old one stops before the pool knows
      elseif phase == 1 and started >= 200 then
        phase = 2
        p:set_backends({ new.spec() })
      end
      return done + failed == 300
    end
    assert.is_truthy(run_until(step, 20000), done .. " done, " .. failed .. " failed")
    assert.are.equal(0, failed)
    assert.are.equal(300, done)
    assert.are.equal(0, p:stats().failed)
    assert.is_true(p:stats().connect_failures > 0, "the stopped instance was never tried")
    assert.are.equal(300, old.accepted + new.accepted)
    assert.is_true(new.accepted >= 200)
    stop(p)
  end)

  it("holds a client while the pool is empty and hands it to a backend that appears", function()
    local p = start({ wait_for_backend_ms = 3000 })
    local c = client(p:port())
    c.send("early\n") -- sent before any backend exists: must not be lost
    sleep(200)
    assert.is_false(c.eof)
    local a = backend("a", "id")
    p:set_backends({ a.spec() })
    assert.is_truthy(run_until(function() return c.text() == "a\nearly\n" end), c.text())
    assert.are.equal(0, p:stats().failed)
    stop(p)
  end)

  it("closes a waiting client after wait_for_backend_ms without a backend", function()
    local events = {}
    local p = start({ wait_for_backend_ms = 200,
      on_event = function(kind, msg) events[#events + 1] = { kind, msg } end })
    local t0 = uv.hrtime()
    local c = client(p:port())
    assert.is_truthy(c.ended())
    local ms = (uv.hrtime() - t0) / 1e6
    assert.is_true(ms >= 150 and ms < 1000, "closed after " .. ms .. " ms")
    assert.are.same({ { "no_backend", "no backend within 200 ms" } }, events)
    assert.are.equal(1, p:stats().failed)
    stop(p)
  end)

  it("close stops listening, closes every connection and calls back", function()
    local a = backend("a", "id")
    local p = start({})
    p:set_backends({ a.spec() })
    local port = p:port()
    local c1, c2 = client(port), client(port)
    assert.are.equal("a", c1.line())
    assert.are.equal("a", c2.line())
    local waiting_proxy = start({})
    local w = client(waiting_proxy:port())
    sleep(50)
    stop(p)
    stop(waiting_proxy)
    assert.is_truthy(c1.ended())
    assert.is_truthy(c2.ended())
    assert.is_truthy(w.ended())
    local late = client(port)
    assert.is_truthy(run_until(function() return late.err ~= nil end))
    assert.matches("ECONNREFUSED", late.err)
    -- the backend saw its connections closed too
    assert.is_truthy(run_until(function()
      for _, bc in ipairs(a.conns) do if not bc:is_closing() then return false end end
      return true
    end))
  end)

  it("copies several MB both ways without loss, pausing the sender while the receiver is slow", function()
    local slow = backend("slow", "hold")
    local p = start({})
    p:set_backends({ slow.spec() })
    local parts = {}
    for i = 1, 16 * 1024 do parts[i] = string.format("%08d", i) .. string.rep("x", 1016) end
    local payload = table.concat(parts) -- 16 MiB, every KiB numbered
    local c = client(p:port())
    assert.is_truthy(run_until(function() return c.connected and slow.held end))
    c.send(payload)
    sleep(300)
    -- the backend reads nothing: the proxy must have stopped reading the
    -- client, so most of the payload still waits on the client's side
    assert.is_true(c.tcp:get_write_queue_size() > 4 * 1024 * 1024,
      "client queue " .. c.tcp:get_write_queue_size() .. ": the proxy kept reading")
    slow.resume()
    c.tcp:shutdown()
    assert.is_truthy(run_until(function() return c.eof or c.err end, 20000))
    assert.is_nil(c.err)
    local got = c.text()
    assert.are.equal(#payload, #got)
    assert.is_true(got == payload, "the echo differs from what was sent")
    stop(p)
  end)

  it("passes a half-close on: the client shuts down writing and still gets the reply", function()
    local b = backend("b", "reply_on_eof")
    local p = start({})
    p:set_backends({ b.spec() })
    local c = client(p:port())
    assert.is_truthy(run_until(function() return c.connected end))
    c.send("hello")
    c.tcp:shutdown()
    assert.is_truthy(c.ended())
    assert.is_nil(c.err)
    assert.are.equal("got:hello", c.text())
    assert.is_truthy(run_until(function() return p:stats().active == 0 end))
    stop(p)
  end)

  it("counts connections in the registry under the proxy's name, families shared by proxies", function()
    local reg = metrics.registry()
    local a = backend("a", "id")
    local p1 = start({ name = "default/api", metrics = reg })
    local p2 = start({ name = "default/web", metrics = reg, wait_for_backend_ms = 0 })
    p1:set_backends({ a.spec(), { id = "dead", host = "127.0.0.1", port = dead_port() } })
    for _ = 1, 3 do assert.are.equal("a", client(p1:port()).line()) end
    assert.is_truthy(client(p2:port()).ended())
    local text = reg:render()
    assert.matches('prisn_proxy_connections_total{proxy="default/api"} 3', text, 1, true)
    assert.matches('prisn_proxy_connections_total{proxy="default/web"} 1', text, 1, true)
    assert.matches('prisn_proxy_connections_active{proxy="default/api"} 3', text, 1, true)
    assert.matches('prisn_proxy_connections_active{proxy="default/web"} 0', text, 1, true)
    -- turns: a, dead (fails, then a), a: two failed connects
    assert.matches('prisn_proxy_backend_connect_failures_total{proxy="default/api"} 2', text, 1, true)
    assert.matches('prisn_proxy_no_backend_total{proxy="default/web"} 1', text, 1, true)
    stop(p1)
    stop(p2)
  end)

  it("returns nil, a message and EADDRINUSE for a port in use", function()
    local taken = track(uv.new_tcp())
    assert(taken:bind("127.0.0.1", 0))
    assert(taken:listen(1, function() end))
    local port = taken:getsockname().port
    local p, err, code = proxy.listen({ host = "127.0.0.1", port = port })
    assert.is_nil(p)
    assert.are.equal("port " .. port .. " is already in use", err)
    assert.are.equal("EADDRINUSE", code)
  end)

  it("raises on misuse", function()
    assert.has_error(function() proxy.listen({ port = 0, strategy = "random" }) end,
      "proxy.listen: strategy must be round-robin or least-connections, got random")
    assert.has_error(function() proxy.listen({ host = "example.com", port = 0 }) end,
      "proxy.listen: host must be an IP address, got example.com")
    local p = start({})
    assert.has_error(function() p:set_backends({ { id = "x", host = "127.0.0.1", port = 0 } }) end,
      "proxy: backend x: port must be 1-65535, got 0")
    stop(p)
  end)
end)
