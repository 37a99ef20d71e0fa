-- The data plane outlives the server (#19), against the real binary: a
-- client sends 200 requests a second to a 3-replica python deployment
-- while the server is killed with -9, kept down 3 s and started again, five
-- times (PRISN_DATAPLANE_CYCLES to change it), and across `prisn server
-- upgrade` to a copy of the binary: no request fails, and the server is
-- replaced in its own process (same pid, same command line). The DNS
-- answers while the server is down; a data plane killed while the server
-- runs is started again and serves the ports; `server stop` closes the
-- ports and ends it. Upgrades in place: a --foreground server stays the
-- same process with the flags it was started with; a binary that fails the
-- exec, or is no program at all, leaves the old server serving.
-- The ingress (HTTP, and HTTPS with the host name's certificate picked by
-- SNI) keeps answering through two kill -9 cycles and an upgrade too, its
-- access lines going to dataplane.log while no server is there.
local h = require("e2e.helper")
local uv = require("luv")
local cjson = require("cjson")

local CYCLES = tonumber(os.getenv("PRISN_DATAPLANE_CYCLES") or "") or 5
local RATE = 200 -- requests a second

local APP = [[
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("instance %s\n" % os.environ["PRISN_INSTANCE"]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # python's 5 drops SYNs under load: 1 s retransmits
S(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
]]

-- A load of RATE requests a second on 127.0.0.1:port, each on a connection
-- of its own, driven by the loop the helper runs while it waits.
local loads = {} -- every load started, stopped after each test
local function load(port, host)
  local self = { sent = 0, ok = 0, failed = {}, latencies = {}, open = 0 }
  loads[#loads + 1] = self
  local function one()
    self.sent = self.sent + 1
    self.open = self.open + 1
    local started, tcp, buffer, done = uv.hrtime(), uv.new_tcp(), "", false
    local timer = uv.new_timer()
    local function finish(err)
      if done then return end
      done = true
      self.open = self.open - 1
      if not timer:is_closing() then timer:close() end
      if not tcp:is_closing() then tcp:close() end
      if err then
        -- A request in flight through an instance killed on purpose may fail
        -- (the issue allows it): counted apart.
        if self.instance_killed_at and math.abs(started - self.instance_killed_at) < 300e6 then
          self.through_killed = (self.through_killed or 0) + 1
          return
        end
        self.failed[#self.failed + 1] = err
      else
        self.ok = self.ok + 1
        self.latencies[#self.latencies + 1] = (uv.hrtime() - started) / 1e6
      end
    end
    timer:start(5000, 0, function() finish("timeout") end)
    tcp:connect("127.0.0.1", port, function(cerr)
      if cerr then return finish("connect: " .. cerr) end
      tcp:write("GET / HTTP/1.0\r\nHost: " .. (host or "x") .. "\r\n\r\n")
      tcp:read_start(function(rerr, chunk)
        if rerr then return finish("read: " .. rerr) end
        if chunk then
          buffer = buffer .. chunk
          return
        end
        if buffer:match("^HTTP/1%.%d 200") then return finish() end
        finish("answer: " .. (buffer == "" and "(empty)" or buffer:sub(1, 40)))
      end)
    end)
  end
  self.timer = uv.new_timer()
  self.timer:start(0, 1000 // RATE, one)
  function self.stop()
    if self.timer:is_closing() then return end
    self.timer:close()
    h.wait_for(function() return self.open == 0 end, 10000)
    table.sort(self.latencies)
    local n = #self.latencies
    self.p99 = n > 0 and self.latencies[math.max(1, math.ceil(n * 0.99))] or 0
    self.p50 = n > 0 and self.latencies[math.max(1, math.ceil(n * 0.5))] or 0
    self.slow = 0
    for _, ms in ipairs(self.latencies) do if ms > 500 then self.slow = self.slow + 1 end end
  end
  return self
end

-- The pids of this home's data planes (by their command line and PRISN_HOME).
local function dataplane_pids(home)
  local out = {}
  for _, entry in ipairs(require("prisn.fs").list_dir("/proc")) do
    local pid = entry.name:match("^%d+$") and tonumber(entry.name)
    local cmdline = pid and h.read("/proc/" .. pid .. "/cmdline") or ""
    if cmdline:find("server\0dataplane", 1, true) then
      local environ = h.read("/proc/" .. pid .. "/environ") or ""
      if environ:find("PRISN_HOME=" .. home .. "\0", 1, true) then out[#out + 1] = pid end
    end
  end
  table.sort(out)
  return out
end

local function server_pid(env)
  return math.tointeger(cjson.decode(h.read(env.PRISN_HOME .. "/server.json")).pid)
end

-- The children of process `pid` that are zombies (nobody reaped them).
local function zombie_children(pid)
  local out = {}
  for _, entry in ipairs(require("prisn.fs").list_dir("/proc/" .. pid .. "/task") or {}) do
    for child in (h.read("/proc/" .. pid .. "/task/" .. entry.name .. "/children") or ""):gmatch("%d+") do
      local fields = h.stat_fields(tonumber(child))
      if fields and fields[1] == "Z" then out[#out + 1] = tonumber(child) end
    end
  end
  return out
end

local function ms_of(iso)
  local hh, mm, ss = iso:match("T(%d+):(%d+):([%d.]+)Z")
  return ((tonumber(hh) * 60 + tonumber(mm)) * 60 + tonumber(ss)) * 1000
end

-- After a restart: how long from the server's "serving on" line until the
-- recovery (an instance that died meanwhile started again) and until the
-- last re-adopted instance's first health result (events).
local function resume_figures(env)
  local serving, recovered
  -- `server start` returns once server.json is written; recovery follows.
  assert(h.wait_for(function()
    local log = h.read(env.PRISN_HOME .. "/server.log")
    for t in log:gmatch("(%S+) INFO prisn %S+ serving on") do serving = t end
    recovered = log:match(".*\n(%S+) INFO recovery: %d+ instance")
    return recovered ~= nil and ms_of(recovered) >= ms_of(serving)
  end, 10000), "the recovery after the restart")
  local healthy
  assert(h.wait_for(function()
    local r = h.prisn({ "events", "-o", "json" }, { env = env })
    local ok_json, items = pcall(cjson.decode, r.stdout)
    if not ok_json or type(items) ~= "table" then return false end
    local n, last = 0, nil
    for _, e in ipairs(items) do
      if e.action == "instance.healthy" and ms_of(e.time) >= ms_of(serving) then n, last = n + 1, e.time end
    end
    healthy = n >= 2 and last or nil
    return healthy ~= nil
  end, 10000), "health results after the restart")
  return { restarted_ms = math.floor(ms_of(recovered) - ms_of(serving)),
    healthy_ms = math.floor(ms_of(healthy) - ms_of(serving)) }
end

-- The pid of the HTTPS client loop of the ingress test (a shell running
-- curl with --cacert: a request answered with another host name's
-- certificate fails), stopped by a file, then by its pid.
local https_loop

local function kill9(pid)
  uv.kill(pid, "sigkill")
  assert.is_true(h.wait_for(function() return not h.alive(pid) end, 5000))
end

describe("e2e: the data plane outlives the server", function()
  local env, dir, app_port, dns_port, ingress_port, tls_port, with_ingress
  local prisn, ok, json = h.cli(function() return env end)

  local function dig(name)
    local r = h.run("/usr/bin/dig", { "@127.0.0.1", "-p", tostring(dns_port), "+time=2", "+tries=1", "+short", name },
      { env = { PATH = "/usr/bin:/bin" } })
    return r.code == 0 and r.stdout:gsub("%s+$", "") or nil
  end

  local function start()
    local args = { "server", "start", "-q", "--dns", "127.0.0.1:" .. dns_port, "--dns-forward", "off" }
    if with_ingress then
      for _, a in ipairs({ "--ingress", "127.0.0.1:" .. ingress_port, "--ingress-tls", "127.0.0.1:" .. tls_port }) do
        args[#args + 1] = a
      end
    end
    ok(args)
  end

  before_each(function()
    env = h.env()
    dir = h.tempdir("prisn-dataplane")
    app_port, dns_port = h.free_udp_tcp_port(), h.free_udp_tcp_port()
    ingress_port, tls_port = h.free_port(), h.free_port()
    h.write(dir .. "/app.py", APP)
    start()
    ok({ "deploy", dir .. "/app.py", "--name", "web", "--port", tostring(app_port), "-r", "3", "--isolation", "0" })
  end)

  after_each(function()
    for _, l in ipairs(loads) do l.stop() end
    loads = {}
    with_ingress = false
    if https_loop then
      h.write(dir .. "/stop-https", "")
      h.wait_for(function() return not h.alive(https_loop) end, 10000)
      if h.alive(https_loop) then uv.kill(https_loop, "sigkill") end
      https_loop = nil
    end
    -- A server left down by a failure is started again, so that its stop
    -- ends the instances and the data plane.
    if not h.read(env.PRISN_HOME .. "/server.json") then prisn({ "server", "start", "-q" }) end
    h.stop_server(env)
    for _, pid in ipairs(dataplane_pids(env.PRISN_HOME)) do uv.kill(pid, "sigkill") end
    h.cleanup()
  end)

  it("serves every request while the server is killed with -9, kept down 3 s and started again, and DNS "
    .. "answers meanwhile", function()
    local planes = dataplane_pids(env.PRISN_HOME)
    assert.are.equal(1, #planes)
    local resumed
    local l = load(app_port)
    for cycle = 1, CYCLES do
      h.sleep(1000)
      kill9(server_pid(env))
      h.sleep(1000)
      if cycle == 1 then
        assert.are.equal("127.0.0.1", dig("web.default.prisn.local"))
        -- An instance dies while the server is away: its connections are
        -- refused and retried on the others; the next server restarts it.
        local pid = h.recorded_pids(env.PRISN_HOME)[1]
        l.instance_killed_at = uv.hrtime()
        kill9(pid)
      end
      h.sleep(2000)
      start()
      if cycle == 1 then resumed = resume_figures(env) end
    end
    h.sleep(1000)
    l.stop()
    print(string.format("\n  data plane, %d kill -9 cycles: %d requests, %d failed, p50 %.1f ms, p99 %.1f ms, "
      .. "%d above 500 ms; %d in flight through the instance killed", CYCLES, l.sent, #l.failed, l.p50, l.p99,
      l.slow, l.through_killed or 0))
    print(string.format("  after the first restart: the dead instance restarted %d ms after the server served, "
      .. "the first two health results after %d ms", resumed.restarted_ms, resumed.healthy_ms))
    assert.are.same({}, l.failed)
    assert.is_true(l.ok >= CYCLES * 4 * RATE * 0.5, "the load ran: " .. l.ok)
    assert.matches("recovery: 2 instance(s) re-adopted, 1 restarted", h.read(env.PRISN_HOME .. "/server.log"), 1, true)
    assert.are.same(planes, dataplane_pids(env.PRISN_HOME), "the same data plane all along")
    assert.matches("kept their listeners", h.read(env.PRISN_HOME .. "/server.log"), 1, true)
  end)

  it("keeps the ingress answering (HTTP, HTTPS with SNI) while the server is killed with -9 and restarted, "
    .. "and across an upgrade", function()
    -- A server with the ingress listeners takes over from the one without.
    kill9(server_pid(env))
    with_ingress = true
    start()
    ok({ "deploy", dir .. "/app.py", "--name", "site", "--host", "web.example.com", "-r", "2", "--isolation", "0" })
    local crt = env.PRISN_HOME .. "/tls/ingress/web.example.com.crt"
    assert.is_true(h.wait_for(function() return h.read(crt) ~= nil end, 5000), "the self-signed certificate")
    local url = "https://web.example.com:" .. tls_port .. "/"
    local curl = "curl -s -o /dev/null --max-time 5 --cacert '" .. crt .. "' --resolve web.example.com:" .. tls_port
      .. ":127.0.0.1 -w '%{http_code}\\n' " .. url
    assert.are.equal("200\n", h.run("/bin/sh", { "-c", curl }, { env = { PATH = "/usr/bin:/bin" } }).stdout)
    local out = dir .. "/https.out"
    local handle
    handle, https_loop = uv.spawn("/bin/sh", { args = { "-c", "while [ ! -e '" .. dir .. "/stop-https' ]; do "
      .. curl .. " >> '" .. out .. "'; done" }, env = { "PATH=/usr/bin:/bin" } }, function() handle:close() end)
    assert(handle, https_loop)
    local l = load(ingress_port, "web.example.com")
    for _ = 1, 2 do
      h.sleep(1000)
      kill9(server_pid(env))
      h.sleep(2000)
      start()
    end
    h.sleep(1000)
    local copy = dir .. "/prisn-copy-ingress"
    h.run("/bin/cp", { h.bin, copy }, { env = { PATH = "/usr/bin:/bin" } })
    ok({ "server", "upgrade", "--binary", copy })
    h.sleep(1500)
    l.stop()
    h.write(dir .. "/stop-https", "")
    assert.is_true(h.wait_for(function() return not h.alive(https_loop) end, 10000))
    https_loop = nil
    local codes, bad = {}, 0
    for code in (h.read(out) or ""):gmatch("(%d+)\n") do
      codes[code] = (codes[code] or 0) + 1
      if code ~= "200" then bad = bad + 1 end
    end
    print(string.format("\n  ingress, 2 kill -9 cycles and an upgrade: http %d requests, %d failed, p99 %.1f ms; "
      .. "https %d requests, %d failed", l.sent, #l.failed, l.p99, (codes["200"] or 0) + bad, bad))
    assert.are.same({}, l.failed)
    assert.is_true(l.ok >= 2 * 3 * RATE * 0.5, "the http load ran: " .. l.ok)
    assert.are.equal(0, bad, "https answers other than 200: " .. cjson.encode(codes))
    assert.is_true((codes["200"] or 0) >= 20, "the https load ran: " .. tostring(codes["200"]))
    -- The listeners were kept, not reopened; the access lines went to
    -- dataplane.log while the server was away and to server.log otherwise.
    local dplog = h.read(env.PRISN_HOME .. "/dataplane.log")
    assert.matches("ingress GET web%.example%.com/ 200 %d+B %d+ms 127%.0%.0%.1 default/site default/site%-%d", dplog)
    assert.matches("ingress GET web%.example%.com/ 200 ", h.read(env.PRISN_HOME .. "/server.log"))
    local admin = (h.read(env.PRISN_HOME .. "/admin.token"):gsub("%s+$", ""))
    local metrics = h.run("/usr/bin/curl", { "-s", "--unix-socket", env.PRISN_HOME .. "/prisn.sock", "-H",
      "Authorization: Bearer " .. admin, "http://prisn/metrics" }, { env = { PATH = "/usr/bin:/bin" } }).stdout
    assert.matches('prisn_ingress_requests_total{host="web.example.com",class="2xx"} ', metrics, 1, true)
  end)

  it("serves every request across 'prisn server upgrade --binary COPY', replaced in the same process", function()
    local copy = dir .. "/prisn-copy"
    h.run("/bin/cp", { h.bin, copy }, { env = { PATH = "/usr/bin:/bin" } })
    local old_server, old_planes = server_pid(env), dataplane_pids(env.PRISN_HOME)
    local cmdline = h.read("/proc/" .. old_server .. "/cmdline")
    local log_before = #h.read(env.PRISN_HOME .. "/server.log")
    local running = 0
    for _, d in ipairs(json({ "get", "deploy", "-o", "json" })) do
      running = running + #json({ "get", "instances", d.name, "-o", "json" })
    end
    local l = load(app_port)
    h.sleep(1000)
    local out = ok({ "server", "upgrade", "--binary", copy }).stdout
    assert.matches("^prisn server upgraded to " .. copy:gsub("%p", "%%%0") .. " in place: prisn %S+ %-> %S+, pid "
      .. old_server .. " kept; data plane pid %d+; instances kept\n$", out)
    h.sleep(1500)
    l.stop()
    print(string.format("\n  data plane, upgrade: %d requests, %d failed, p99 %.1f ms", l.sent, #l.failed, l.p99))
    assert.are.same({}, l.failed)
    assert.are.equal(old_server, server_pid(env), "the same server process")
    assert.are.equal(copy, uv.fs_readlink("/proc/" .. old_server .. "/exe"))
    assert.are.equal(cmdline, h.read("/proc/" .. old_server .. "/cmdline"))
    assert.is_true(h.wait_for(function() return #zombie_children(old_server) == 0 end, 5000),
      "the replaced program's children are reaped")
    local planes = dataplane_pids(env.PRISN_HOME)
    assert.are.equal(1, #planes)
    assert.are_not.equal(old_planes[1], planes[1])
    assert.are.equal(copy, uv.fs_readlink("/proc/" .. planes[1] .. "/exe"))
    assert.are.equal("127.0.0.1", dig("web.default.prisn.local"))
    -- The upgraded server's own recovery (the log since the upgrade began).
    assert.matches("recovery: " .. running .. " instance(s) re-adopted, 0 restarted",
      h.read(env.PRISN_HOME .. "/server.log"):sub(log_before + 1), 1, true)
    -- And again, back to the build, as JSON.
    local doc = json({ "server", "upgrade", "-o", "json" })
    assert.are.equal(old_server, doc.pid)
    assert.are.equal(uv.fs_realpath(h.bin), uv.fs_readlink("/proc/" .. old_server .. "/exe"))
    assert.are.equal(doc.old_version, doc.version)
  end)

  it("is started again when it dies while the server runs; 'server stop' closes the ports and ends it",
    function()
      local first = dataplane_pids(env.PRISN_HOME)[1]
      kill9(first)
      assert.is_true(h.wait_for(function()
        local r = h.run("/usr/bin/curl", { "-s", "--max-time", "2", "http://127.0.0.1:" .. app_port .. "/" },
          { env = { PATH = "/usr/bin:/bin" } })
        return r.code == 0 and r.stdout:match("^instance web%-%d") ~= nil
      end, 20000), "the port answers again")
      assert.are_not.equal(first, dataplane_pids(env.PRISN_HOME)[1])
      assert.matches("data plane connection lost", h.read(env.PRISN_HOME .. "/server.log"), 1, true)
      -- A taken port is refused to the deploy, as before (the CLI's check; the
      -- server's, from the data plane, is in spec/prisn/server/dataplane_spec).
      local holder, taken = uv.new_tcp(), h.free_udp_tcp_port()
      assert(holder:bind("127.0.0.1", taken))
      assert(holder:listen(1, function() end))
      local refused = prisn({ "deploy", dir .. "/app.py", "--name", "other", "--port", tostring(taken), "--bind",
        "127.0.0.1", "--isolation", "0" })
      holder:close()
      assert.are.equal(1, refused.code)
      assert.are.equal("Error: cannot listen on port " .. taken .. ": EADDRINUSE: address already in use\n"
        .. "Hint: choose another --port (something else on this machine holds it)\n", refused.stderr)
      -- The upgrade route: a cluster-wide admin's only.
      local info = cjson.decode(h.read(env.PRISN_HOME .. "/server.json"))
      local address = info.address
      local function upgrade_as(token)
        -- The API is HTTPS: trust the server's CA.
        local r = h.run("/usr/bin/curl", { "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
          "--cacert", info.ca_file,
          "-H", "Authorization: Bearer " .. token, "-d", cjson.encode({ binary = h.bin }),
          address .. "/api/v1/server/upgrade" }, { env = { PATH = "/usr/bin:/bin" } })
        return r.stdout
      end
      local function token(...)
        return (ok({ "token", "create", ... }).stdout:gsub("%s+$", ""))
      end
      assert.are.equal("403", upgrade_as(token("viewer", "--role", "view", "--namespace", "*", "-q")))
      assert.are.equal("403", upgrade_as(token("team-admin", "--role", "admin", "--namespace", "team", "-q")))
      assert.are.equal("403", upgrade_as(token("editor", "--role", "edit", "--namespace", "default", "-q")))
      -- A binary that cannot take over: the data plane and the server go on.
      local before = server_pid(env)
      local failed = prisn({ "server", "upgrade", "--binary", "/bin/true" })
      assert.are.equal(1, failed.code)
      assert.matches("^Error: the data plane could not be handed over: the new data plane exited before it was "
        .. "ready\nHint: see %$PRISN_HOME/dataplane.log\n$", failed.stderr)
      assert.are.equal(before, server_pid(env))
      assert.are.equal("instance web-", (h.run("/usr/bin/curl", { "-s", "--max-time", "2",
        "http://127.0.0.1:" .. app_port .. "/" }, { env = { PATH = "/usr/bin:/bin" } }).stdout:sub(1, 13)))
      -- Usage errors of the upgrade.
      local r = prisn({ "server", "upgrade", "--binary", dir .. "/nope" })
      assert.are.equal(2, r.code)
      assert.are.equal("Error: --binary " .. dir .. "/nope is not an executable file\n"
        .. "Hint: e.g. --binary /usr/local/bin/prisn\n", r.stderr)
      ok({ "server", "stop" })
      local curl = h.run("/usr/bin/curl", { "-s", "--max-time", "2", "http://127.0.0.1:" .. app_port .. "/" },
        { env = { PATH = "/usr/bin:/bin" } })
      assert.are.equal(7, curl.code, "connection refused")
      assert.are.same({}, dataplane_pids(env.PRISN_HOME))
    end)
end)

describe("e2e: server upgrade in place", function()
  local env, dir, foreground
  local prisn, ok, json = h.cli(function() return env end)

  -- `prisn server start ARGS...` as a child of this spec (as systemd or a
  -- terminal runs it): { pid, code (once it exited) }.
  local function start_foreground(args)
    local list = {}
    for k, v in pairs(env) do list[#list + 1] = k .. "=" .. v end
    local self = {}
    local handle
    handle, self.pid = uv.spawn(h.bin, { args = args, env = list, cwd = dir }, function(code)
      self.code = code
      handle:close()
    end)
    assert(handle, self.pid)
    assert.is_true(h.wait_for(function()
      local info = h.read(env.PRISN_HOME .. "/server.json")
      return info ~= nil and cjson.decode(info).pid == self.pid
    end, 10000), "the foreground server serves")
    return self
  end

  local function answers_on_tcp()
    local address = cjson.decode(h.read(env.PRISN_HOME .. "/server.json")).address
    return h.run("/usr/bin/curl", { "-sk", "--max-time", "2", "-o", "/dev/null", "-w", "%{http_code}",
      address .. "/health" }, { env = { PATH = "/usr/bin:/bin" } }).stdout
  end

  before_each(function()
    env = h.env()
    dir = h.tempdir("prisn-upgrade")
    foreground = nil
  end)

  after_each(function()
    h.stop_server(env)
    if foreground and not foreground.code then
      uv.kill(foreground.pid, "sigkill")
      h.wait_for(function() return foreground.code ~= nil end, 5000)
    end
    for _, pid in ipairs(dataplane_pids(env.PRISN_HOME)) do uv.kill(pid, "sigkill") end
    h.cleanup()
  end)

  it("replaces a --foreground server in its own process, with the flags it was started with", function()
    local dns_port, ingress_port = h.free_udp_tcp_port(), h.free_port()
    foreground = start_foreground({ "server", "start", "--foreground", "--min-isolation", "2",
      "--dns", "127.0.0.1:" .. dns_port, "--dns-forward", "off", "--ingress", "127.0.0.1:" .. ingress_port })
    local pid = foreground.pid
    local cmdline = h.read("/proc/" .. pid .. "/cmdline")
    local before = cjson.decode(h.read(env.PRISN_HOME .. "/server.json"))
    local copy = dir .. "/prisn-copy"
    h.run("/bin/cp", { h.bin, copy }, { env = { PATH = "/usr/bin:/bin" } })
    local doc = json({ "server", "upgrade", "--binary", copy, "-o", "json" })
    assert.are.equal(pid, doc.pid)
    assert.are.equal(copy, doc.binary)
    assert.is_nil(foreground.code, "the process the terminal started is still there")
    assert.are.equal(copy, uv.fs_readlink("/proc/" .. pid .. "/exe"))
    assert.are.equal(cmdline, h.read("/proc/" .. pid .. "/cmdline"))
    local after = cjson.decode(h.read(env.PRISN_HOME .. "/server.json"))
    assert.are.same(before.options, after.options)
    assert.are.equal(2, after.options.min_isolation)
    assert.are.equal("127.0.0.1:" .. dns_port, after.dns)
    assert.are.same(before.ingress, after.ingress)
    assert.are.same({ token = after.upgrade.token, from = before.version }, after.upgrade)
    -- Each listener of those flags answers again, from the new program.
    assert.are.equal("200", answers_on_tcp())
    local dig = h.run("/usr/bin/dig", { "@127.0.0.1", "-p", tostring(dns_port), "+time=2", "+tries=1",
      "nothing.default.prisn.local" }, { env = { PATH = "/usr/bin:/bin" } })
    assert.matches("status: NXDOMAIN", dig.stdout, 1, true)
    local ingress = h.run("/usr/bin/curl", { "-s", "--max-time", "2", "-o", "/dev/null", "-w", "%{http_code}",
      "-H", "Host: nobody.example", "http://127.0.0.1:" .. ingress_port .. "/" }, { env = { PATH = "/usr/bin:/bin" } })
    assert.are.equal("404", ingress.stdout)
    local events = json({ "events", "-A", "--action", "server.", "-o", "json" })
    local upgraded
    for _, e in ipairs(events) do if e.action == "server.upgraded" then upgraded = e.message end end
    assert.are.equal("in place from prisn " .. before.version .. " to " .. after.version .. " (pid " .. pid .. ")",
      upgraded)
    -- It stops as it always did: the process the terminal waits for exits 0.
    ok({ "server", "stop" })
    assert.is_true(h.wait_for(function() return foreground.code ~= nil end, 10000))
    assert.are.equal(0, foreground.code)
  end)

  it("says what a new binary that execs but fails at start said, and a start brings the server back", function()
    ok({ "server", "start", "-q" })
    local pid = server_pid(env)
    -- A data plane like any other; a server that refuses to start.
    local script = h.write(dir .. "/prisn-refuses", "#!/bin/sh\nif [ \"$2\" = start ]; then\n"
      .. "  echo 'Error: this build refuses the database' >&2; echo 'Hint: go back to the old build' >&2; exit 1\n"
      .. "fi\nexec " .. h.bin .. " \"$@\"\n", tonumber("755", 8))
    local r = prisn({ "server", "upgrade", "--binary", script })
    assert.are.equal(1, r.code, r.stdout)
    assert.are.equal("Error: the new binary's server exited at start: this build refuses the database\n"
      .. "Hint: go back to the old build; the old binary is not running either: start the server again "
      .. "('prisn server start'); its log is " .. env.PRISN_HOME .. "/server.log\n", r.stderr)
    assert.is_false(h.alive(pid))
    ok({ "server", "start", "-q" })
    assert.are.equal(0, prisn({ "server", "status" }).code)
  end)

  it("lets a running job finish across the upgrade, and reaps what the replaced program started", function()
    ok({ "server", "start", "-q" })
    local pid = server_pid(env)
    h.write(dir .. "/slow.sh", "#!/bin/sh\nsleep 2\necho done\n", tonumber("755", 8))
    local job = json({ "run", "--detach", "-o", "json", "--isolation", "0", dir .. "/slow.sh" })
    local function state()
      for _, j in ipairs(h.jobs(env)) do if j.id == job.id then return j.state end end
    end
    assert.is_true(h.wait_for(function() return state() == "running" end, 10000), "the job runs")
    ok({ "server", "upgrade" })
    assert.are.equal(pid, server_pid(env))
    assert.is_true(h.wait_for(function() return state() == "succeeded" end, 15000), "the job succeeded: "
      .. tostring(state()))
    assert.is_true(h.wait_for(function() return #zombie_children(pid) == 0 end, 5000), "no zombie left")
    assert.matches("upgrade: %d+ process%(es%) of the replaced program are reaped as they end",
      h.read(env.PRISN_HOME .. "/server.log"))
  end)

  it("leaves the old server serving when the binary is no program, or its exec fails", function()
    ok({ "server", "start", "-q" })
    local pid = server_pid(env)
    -- Not a program: refused before anything is handed over.
    local text = h.write(dir .. "/not-a-program", "echo hello\n", tonumber("755", 8))
    local r = prisn({ "server", "upgrade", "--binary", text })
    assert.are.equal(1, r.code)
    assert.are.equal("Error: binary " .. text .. " is not a program (neither an ELF binary nor a #! script)\n"
      .. "Hint: give the path of a prisn build\n", r.stderr)
    -- A script that serves as the new data plane, then cannot be executed
    -- any more: the server's own exec fails after the hand-over.
    local script = h.write(dir .. "/prisn-once", "#!/bin/sh\nchmod a-x \"$0\"\nexec " .. h.bin .. " \"$@\"\n",
      tonumber("755", 8))
    r = prisn({ "server", "upgrade", "--binary", script })
    assert.are.equal(1, r.code, r.stdout)
    assert.are.equal("Error: the server could not run " .. script .. ": EACCES: exec " .. script
      .. ": Permission denied\nHint: it serves on with its old binary (pid " .. pid .. "); see " .. env.PRISN_HOME
      .. "/server.log\n", r.stderr)
    assert.are.equal(pid, server_pid(env))
    assert.are.equal(uv.fs_realpath(h.bin), uv.fs_readlink("/proc/" .. pid .. "/exe"))
    assert.are.equal("200", answers_on_tcp(), "the API listens again")
    assert.are.equal(0, prisn({ "server", "status" }).code)
    assert.matches("ERROR upgrade: EACCES: exec " .. script:gsub("%p", "%%%0") .. ": Permission denied; serving on",
      h.read(env.PRISN_HOME .. "/server.log"))
    -- The next upgrade goes through.
    assert.are.equal(pid, json({ "server", "upgrade", "-o", "json" }).pid)
  end)
end)
