local uv = require("luv")
local support = require("support")
local health = require("prisn.net.health")

-- Drives the loop until cond() is true or max_ms passed; a ticking timer keeps
-- uv.run("once") from sleeping past the deadline. Returns cond().
local run_until = support.run_until

local function run_for(ms)
  run_until(function() return false end, ms)
end

-- Handles still known to the loop (closed ones are gone after a nowait run).
local function open_handles()
  uv.run("nowait")
  local list = {}
  uv.walk(function(h) list[#list + 1] = tostring(h) end)
  return list
end

-- A small HTTP server on 127.0.0.1, port 0. server.mode picks the answer:
-- a status code (200, 302, 500), "silent" (accepts, never answers), "hangup"
-- (closes at once), "split" (200 in pieces), "garbage".
local function start_server(mode, host)
  local server = { mode = mode, requests = {}, clients = {} }
  local listener = uv.new_tcp()
  assert(listener:bind(host or "127.0.0.1", 0))
  server.port = listener:getsockname().port
  assert(listener:listen(16, function(err)
    assert(not err, err)
    local client = uv.new_tcp()
    listener:accept(client)
    server.clients[client] = true
    local function drop()
      server.clients[client] = nil
      if not client:is_closing() then client:close() end
    end
    if server.mode == "hangup" then return drop() end
    local text = ""
    client:read_start(function(rerr, chunk)
      if rerr or not chunk then return drop() end
      text = text .. chunk
      if not text:find("\r\n\r\n", 1, true) then return end
      server.requests[#server.requests + 1] = text
      local m = server.mode
      if m == "silent" then return end
      if m == "split" then
        client:write("HTT")
        local t = uv.new_timer()
        t:start(20, 0, function()
          t:close()
          if not client:is_closing() then client:write("P/1.1 204 No Content\r\n\r\n", drop) end
        end)
      elseif m == "garbage" then
        client:write("SSH-2.0-OpenSSH\r\n", drop)
      else
        client:write(string.format("HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", m), drop)
      end
    end)
  end))
  function server.close()
    for c in pairs(server.clients) do
      if not c:is_closing() then c:close() end
    end
    server.clients = {}
    if not listener:is_closing() then listener:close() end
  end
  return server
end

-- A port on 127.0.0.1 where nothing listens.
local function refused_port()
  local s = uv.new_tcp()
  assert(s:bind("127.0.0.1", 0))
  local port = s:getsockname().port
  s:close()
  uv.run("nowait")
  return port
end

local function probe(target)
  local result
  uv.update_time()
  local t0 = uv.now()
  health.probe(target, function(ok, detail)
    assert.is_nil(result, "done called twice")
    result = { ok = ok, detail = detail }
  end)
  assert.is_nil(result, "done must not be called before probe returns")
  assert.is_truthy(run_until(function() return result end, 5000), "the probe never finished")
  uv.update_time()
  return result.ok, result.detail, uv.now() - t0
end

describe("prisn.net.health", function()
  describe("parse", function()
    it("reads the command-line forms with defaults filled", function()
      assert.same({ kind = "http", path = "/healthz", interval_ms = 2000, timeout_ms = 1000, failure_threshold = 3,
        start_grace_ms = 30000, starting_interval_ms = 100 }, health.parse("http:/healthz"))
      assert.equal("/x?y=1", health.parse("http:/x?y=1").path)
      assert.equal("/", health.parse("http:/").path)
      local tcp = health.parse("tcp")
      assert.equal("tcp", tcp.kind)
      assert.is_nil(tcp.path)
      assert.equal(2000, tcp.interval_ms)
      assert.equal("none", health.parse("none").kind)
    end)

    it("says what is wrong and which forms are accepted", function()
      local cases = {
        { "http", "'http' is not a health check; use http:/PATH (e.g. http:/healthz), tcp or none" },
        { "TCP", "'TCP' is not a health check; use http:/PATH (e.g. http:/healthz), tcp or none" },
        { "", "'' is not a health check; use http:/PATH (e.g. http:/healthz), tcp or none" },
        { "http:", "the http path must start with /, as in http:/healthz" },
        { "http:healthz", "the http path must start with /, as in http:/healthz" },
        { "http://localhost:8080/healthz",
          "'//localhost:8080/healthz' is not a path; give just the path, as in http:/healthz" },
        { "http:/a b", '"/a b": the http path cannot contain spaces or control characters' },
      }
      for _, c in ipairs(cases) do
        local spec, err = health.parse(c[1])
        assert.is_nil(spec, c[1])
        assert.equal(c[2], err)
      end
      assert.equal("expected a health check; use http:/PATH (e.g. http:/healthz), tcp or none",
        select(2, health.parse(nil)))
    end)
  end)

  describe("normalize", function()
    it("takes the manifest's string and table forms", function()
      assert.same(health.parse("http:/healthz"), health.normalize("http:/healthz"))
      assert.same(health.parse("tcp"), health.normalize(nil))
      assert.same({ kind = "http", path = "/healthz", interval_ms = 5000, timeout_ms = 1500, failure_threshold = 2,
        start_grace_ms = 20000, starting_interval_ms = 100 },
        health.normalize({ http = "/healthz", interval = "5s", timeout = 1.5, failure_threshold = 2,
          start_grace = "20s" }))
      assert.equal("tcp", health.normalize({ tcp = true }).kind)
      local none = health.normalize({ none = true })
      assert.equal("none", none.kind)
      assert.equal(0, health.normalize({ tcp = true, start_grace = 0 }).start_grace_ms)
      assert.equal(250, health.normalize({ tcp = true, interval = "250ms" }).interval_ms)
    end)

    it("takes what prisn.manifest produces and its own output", function()
      local m = assert(require("prisn.manifest").evaluate(
        'deployment { name = "web", script = "app.py", health = { http = "/h", interval = "5s" } }', "prisn.lua"))
      local spec = assert(health.normalize(m.deployments[1].health))
      assert.equal("http", spec.kind)
      assert.equal("/h", spec.path)
      assert.equal(5000, spec.interval_ms)
      assert.equal(health.DEFAULTS.timeout_ms, spec.timeout_ms) -- the manifest leaves defaults to the server
      local again = health.normalize({ http = "/x", interval = "3s" })
      assert.same(again, health.normalize(again))
      local decoded = require("cjson").decode(require("cjson").encode(again)) -- as stored and read back
      assert.same(again, health.normalize(decoded))
      assert.equal("integer", math.type(health.normalize(decoded).failure_threshold))
    end)

    it("names the bad field", function()
      local cases = {
        { {}, "give exactly one of http, tcp or none" },
        { { http = "/h", tcp = true }, "give exactly one of http, tcp or none" },
        { { tcp = "yes" }, "tcp: expected true" },
        { { http = "healthz" }, "http: the http path must start with /, as in http:/healthz" },
        { { tcp = true, interval = "5mn" },
          "interval: '5mn' is not a duration; use forms like 30s, 5m, 1h30m or 7d" },
        { { tcp = true, interval = 0 }, "interval: expected a duration from 1ms to 1h, got 0" },
        { { tcp = true, timeout = "0s" }, "timeout: expected a duration from 1ms to 1h, got 0s" },
        { { tcp = true, start_grace = -1 }, "start_grace: a duration cannot be negative" },
        -- Huge, infinite and NaN durations would break the timers that run checks.
        { { tcp = true, interval = 1e308 }, "interval: a duration can be at most 36500d" },
        { { tcp = true, timeout = "2h" }, "timeout: expected a duration from 1ms to 1h, got 2h" },
        { { tcp = true, start_grace = 0 / 0 }, "start_grace: a duration must be a number of seconds, not NaN" },
        { { tcp = true, interval_ms = math.huge },
          "interval_ms: expected milliseconds from 1 to 3600000, got inf" },
        { { tcp = true, start_grace_ms = 0 / 0 }, "start_grace_ms: expected milliseconds from 0 to 3600000, got " ..
          tostring(0 / 0) },
        { { tcp = true, failure_threshold = 0 }, "failure_threshold: expected a whole number from 1 to 1000, got 0" },
        { { tcp = true, failure_threshold = 2.5 },
          "failure_threshold: expected a whole number from 1 to 1000, got 2.5" },
        { { tcp = true, failure_threshold = 1e9 },
          "failure_threshold: expected a whole number from 1 to 1000, got 1000000000" },
        { { tcp = true, retries = 3 },
          "retries: unknown field (known fields: failure_threshold, http, interval, none, start_grace, tcp, timeout)" },
        { { kind = "udp" }, "kind: expected http, tcp or none, got udp" },
        { 5, "expected a string or a table, got number; use http:/PATH (e.g. http:/healthz), tcp or none" },
      }
      for i, c in ipairs(cases) do
        local spec, err = health.normalize(c[1])
        assert.is_nil(spec, "case " .. i)
        assert.equal(c[2], err, "case " .. i)
      end
    end)

    it("describes a spec in one line", function()
      assert.equal("http:/healthz every 2s (timeout 1s, 3 failures, grace 30s)",
        health.describe(health.parse("http:/healthz")))
      assert.equal("tcp every 500ms (timeout 100ms, 1 failure, grace 0s)", health.describe(health.normalize(
        { tcp = true, interval = "500ms", timeout = "100ms", failure_threshold = 1, start_grace = 0 })))
      assert.equal("none", health.describe(health.parse("none")))
    end)
  end)

  describe("step (fake clock)", function()
    local spec = assert(health.normalize({ http = "/h", interval = "2s", timeout = "1s", start_grace = "30s",
      failure_threshold = 3 }))

    -- Feeds results (true/false) at times (ms); returns the final state and
    -- the list of { at, changed } changes.
    local function feed(st, results)
      local changes = {}
      for _, r in ipairs(results) do
        local changed
        st, changed = health.step(st, r[2], r[1], spec)
        if changed then changes[#changes + 1] = { r[1], changed } end
      end
      return st, changes
    end

    it("does not count failures during start grace, and the first success is healthy", function()
      local st = health.new_state(0)
      local results = {}
      for t = 0, 29900, 100 do results[#results + 1] = { t, false } end
      local changes
      st, changes = feed(st, results)
      assert.same({}, changes)
      assert.equal("starting", st.state)
      assert.equal(0, st.failures)
      st, changes = feed(st, { { 29950, true } })
      assert.same({ { 29950, "healthy" } }, changes)
      assert.equal("healthy", st.state)
    end)

    it("takes a healthy instance out at its first failure, back at a success, failed at the threshold", function()
      local st, changes = feed(health.new_state(0), {
        { 100, true }, { 2100, false }, { 4100, false }, { 6100, true }, { 8100, false }, { 10100, false },
        { 12100, false }, { 14100, true },
      })
      assert.same({ { 100, "healthy" }, { 2100, "unhealthy" }, { 6100, "healthy" }, { 8100, "unhealthy" },
        { 12100, "failed" } }, changes)
      assert.equal("failed", st.state, "failed is final: a later success does not change it")
      assert.equal("3 consecutive failed checks", st.reason)
    end)

    it("fails a healthy instance at once with a threshold of 1", function()
      local one = assert(health.normalize({ tcp = true, failure_threshold = 1 }))
      local st = health.step(health.new_state(0), true, 10, one)
      local changed
      st, changed = health.step(st, false, 2010, one)
      assert.equal("failed", changed)
      assert.equal("1 consecutive failed check", st.reason)
    end)

    it("fails an instance never healthy: grace, then one counted failure per interval", function()
      local results = {}
      for t = 1000, 40000, 100 do results[#results + 1] = { t, false } end
      local st, changes = feed(health.new_state(1000), results)
      -- grace ends at 31000; failures counted at 31000, 33000, 35000
      assert.same({ { 35000, "failed" } }, changes)
      assert.equal("not healthy after the start grace of 30s and 3 failed checks", st.reason)
    end)

    it("counts from the start without grace", function()
      local nograce = assert(health.normalize({ tcp = true, start_grace = 0, interval = "1s", failure_threshold = 2 }))
      local st, changed = health.step(health.new_state(0), false, 0, nograce)
      assert.is_nil(changed)
      assert.equal(1, st.failures)
      st, changed = health.step(st, false, 500, nograce)
      assert.is_nil(changed, "a second failure within the interval does not count")
      st, changed = health.step(st, false, 1000, nograce)
      assert.equal("failed", changed)
      assert.equal(2, st.failures)
    end)

    it("is pure: the state given is not changed", function()
      local st = health.new_state(0)
      local after = health.step(st, true, 5, spec)
      assert.equal("starting", st.state)
      assert.equal("healthy", after.state)
      assert.same(health.new_state(0), st)
    end)

    it("probes fast until healthy, then every interval", function()
      local st = health.new_state(0)
      assert.equal(100, health.next_delay(st, spec))
      assert.equal(2000, health.next_delay(health.step(st, true, 1, spec), spec))
      local quick = assert(health.normalize({ tcp = true, interval = "50ms" }))
      assert.equal(50, health.next_delay(st, quick))
    end)
  end)

  describe("probe and checker (real sockets on 127.0.0.1)", function()
    local servers, baseline

    before_each(function()
      servers = {}
      baseline = #open_handles()
    end)

    after_each(function()
      for _, s in ipairs(servers) do s.close() end
      assert.same({}, { table.unpack(open_handles(), baseline + 1) }, "handles left open")
    end)

    local function server(mode)
      local s = start_server(mode)
      servers[#servers + 1] = s
      return s
    end

    it("HTTP: 2xx and 3xx are healthy, others not, and the request is a plain GET", function()
      local s = server(200)
      local ok, detail = probe({ kind = "http", port = s.port, path = "/healthz?x=1", timeout_ms = 1000 })
      assert.is_true(ok)
      assert.equal("HTTP 200", detail)
      assert.equal("GET /healthz?x=1 HTTP/1.1\r\nHost: 127.0.0.1:" .. s.port .. "\r\n",
        s.requests[1]:match("^[^\n]*\n[^\n]*\n"))
      assert.truthy(s.requests[1]:find("\r\nConnection: close\r\n", 1, true))
      s.mode = 302
      ok, detail = probe({ kind = "http", host = "127.0.0.1", port = s.port, path = "/", timeout_ms = 1000 })
      assert.is_true(ok)
      assert.equal("HTTP 302", detail)
      s.mode = 500
      ok, detail = probe({ kind = "http", port = s.port, path = "/", timeout_ms = 1000 })
      assert.is_false(ok)
      assert.equal("HTTP 500", detail)
      s.mode = 404
      assert.is_false((probe({ kind = "http", port = s.port, path = "/", timeout_ms = 1000 })))
      s.mode = "split"
      ok, detail = probe({ kind = "http", host = "localhost", port = s.port, path = "/", timeout_ms = 1000 })
      assert.is_true(ok)
      assert.equal("HTTP 204", detail)
    end)

    it("HTTP over IPv6 loopback puts the address in brackets in Host", function()
      local probe6 = uv.new_tcp()
      local can_bind = probe6:bind("::1", 0)
      probe6:close()
      if not can_bind then return pending("no IPv6 loopback here") end
      local s = start_server(200, "::1")
      servers[#servers + 1] = s
      local ok, detail = probe({ kind = "http", host = "::1", port = s.port, path = "/", timeout_ms = 1000 })
      assert.is_true(ok, detail)
      assert.truthy(s.requests[1]:find("\r\nHost: [::1]:" .. s.port .. "\r\n", 1, true))
    end)

    it("HTTP: a server that never answers fails at the timeout, not later", function()
      local s = server("silent")
      local ok, detail, elapsed = probe({ kind = "http", port = s.port, path = "/", timeout_ms = 150 })
      assert.is_false(ok)
      assert.equal("timed out after 150ms", detail)
      assert.is_true(elapsed >= 140 and elapsed < 400, "took " .. elapsed .. " ms")
      assert.equal(1, #s.requests)
    end)

    it("HTTP: refused, hung up, not HTTP", function()
      local ok, detail = probe({ kind = "http", port = refused_port(), path = "/", timeout_ms = 1000 })
      assert.is_false(ok)
      assert.equal("connection refused", detail)
      local s = server("hangup")
      ok, detail = probe({ kind = "http", port = s.port, path = "/", timeout_ms = 1000 })
      assert.is_false(ok)
      assert.truthy(detail == "connection closed before a response" or detail == "connection reset", detail)
      s.mode = "garbage"
      ok, detail = probe({ kind = "http", port = s.port, path = "/", timeout_ms = 1000 })
      assert.is_false(ok)
      assert.equal('not an HTTP response: "SSH-2.0-OpenSSH"', detail)
    end)

    it("TCP: a connect is healthy, a refused port is not; none is healthy", function()
      local s = server("silent")
      local ok, detail = probe({ kind = "tcp", port = s.port, timeout_ms = 1000 })
      assert.is_true(ok)
      assert.equal("connected", detail)
      ok, detail = probe({ kind = "tcp", port = refused_port(), timeout_ms = 1000 })
      assert.is_false(ok)
      assert.equal("connection refused", detail)
      ok, detail = probe({ kind = "tcp", host = "example.invalid", port = 80, timeout_ms = 1000 })
      assert.is_false(ok)
      assert.equal("example.invalid:80 is not an IP address and port", detail)
      assert.is_true((probe({ kind = "none" })))
    end)

    it("cancel closes a probe in flight and done is never called", function()
      local s = server("silent")
      local called = false
      local cancel = health.probe({ kind = "http", port = s.port, path = "/", timeout_ms = 5000 },
        function() called = true end)
      assert.is_truthy(run_until(function() return #s.requests == 1 end, 2000))
      cancel()
      cancel()
      run_for(20)
      local server_handles = 1
      for _ in pairs(s.clients) do server_handles = server_handles + 1 end
      assert.equal(baseline + server_handles, #open_handles(), "only the server's handles are left")
      assert.is_false(called)
    end)

    it("checker: starting -> healthy -> unhealthy -> healthy -> unhealthy -> failed as the server changes", function()
      local s = server(500)
      local spec = assert(health.normalize({ http = "/healthz", interval = "60ms", timeout = "50ms",
        start_grace = "10s", failure_threshold = 3, starting_interval_ms = 10 }))
      local events = {}
      local c = health.checker(spec, { port = s.port, on_change = function(state, detail)
        events[#events + 1] = state .. ": " .. tostring(detail)
      end })
      c:start()
      assert.equal("starting", c.state)
      run_for(80)
      assert.equal("starting", c.state, "failures in start grace do not count")
      assert.same({}, events)
      assert.is_true(#s.requests >= 4, "probes fast while starting: " .. #s.requests .. " requests in 80 ms")

      s.mode = 200
      uv.update_time()
      local t0 = uv.now()
      assert.is_truthy(run_until(function() return c.state == "healthy" end, 1000))
      uv.update_time()
      assert.is_true(uv.now() - t0 < 80, "healthy noticed after " .. (uv.now() - t0) .. " ms")
      assert.same({ "healthy: HTTP 200" }, events)

      s.mode = 500
      t0 = uv.now()
      assert.is_truthy(run_until(function() return c.state == "unhealthy" end, 1000))
      uv.update_time()
      assert.is_true(uv.now() - t0 <= 60 + 70, "out of the pool after " .. (uv.now() - t0) .. " ms")
      s.mode = 200
      assert.is_truthy(run_until(function() return c.state == "healthy" end, 1000))
      s.mode = "silent"
      assert.is_truthy(run_until(function() return c.state == "failed" end, 2000))
      assert.same({ "healthy: HTTP 200", "unhealthy: HTTP 500", "healthy: HTTP 200",
        "unhealthy: timed out after 50ms", "failed: 3 consecutive failed checks: timed out after 50ms" }, events)
      local n = #s.requests
      run_for(150)
      assert.equal(n, #s.requests, "no probes after failed")
      assert.equal("failed", c.state)
    end)

    it("checker: never healthy by the end of grace is failed", function()
      local spec = assert(health.normalize({ tcp = true, interval = "40ms", timeout = "50ms", start_grace = "100ms",
        failure_threshold = 2, starting_interval_ms = 10 }))
      local events = {}
      local c = health.checker(spec, { port = refused_port(), on_change = function(state, detail)
        events[#events + 1] = state .. ": " .. detail
      end }):start()
      uv.update_time()
      local t0 = uv.now()
      assert.is_truthy(run_until(function() return c.state == "failed" end, 2000))
      uv.update_time()
      local elapsed = uv.now() - t0
      assert.is_true(elapsed >= 130 and elapsed < 400, "failed after " .. elapsed .. " ms")
      assert.same({ "failed: not healthy after the start grace of 100ms and 2 failed checks: connection refused" },
        events)
    end)

    it("checker: stop with a probe in flight closes everything and reports nothing", function()
      local s = server("silent")
      local changes = 0
      local c = health.checker(health.parse("http:/healthz"), { port = s.port,
        on_change = function() changes = changes + 1 end })
      c:start()
      c:start()
      assert.is_truthy(run_until(function() return #s.requests == 1 end, 2000))
      c:stop()
      c:stop()
      run_for(20)
      local server_handles = 1
      for _ in pairs(s.clients) do server_handles = server_handles + 1 end
      assert.equal(baseline + server_handles, #open_handles(), "only the server's handles are left")
      assert.equal(0, changes)
      assert.equal("starting", c.state)
    end)

    it("checker: kind none is healthy on the next loop tick", function()
      local events = {}
      local c = health.checker(health.parse("none"), { on_change = function(state) events[#events + 1] = state end })
      c:start()
      assert.same({}, events)
      assert.is_truthy(run_until(function() return c.state == "healthy" end, 100))
      run_for(20)
      assert.same({ "healthy" }, events)
      c:stop()
    end)

    it("checker: an error in on_change is reported and checking goes on", function()
      local s = server(200)
      local reported
      local c = health.checker(health.normalize({ http = "/", interval = "20ms", start_grace = 0 }), {
        port = s.port, on_change = function() error("policy bug") end,
        on_error = function(err) reported = err end })
      c:start()
      assert.is_truthy(run_until(function() return reported end, 1000))
      assert.truthy(reported:find("policy bug", 1, true))
      local n = #s.requests
      s.mode = 500
      assert.is_truthy(run_until(function() return c.state == "unhealthy" end, 1000))
      assert.is_true(#s.requests > n)
      c:stop()
    end)
  end)
end)
