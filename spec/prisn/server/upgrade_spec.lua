-- prisn.server.upgrade in this process, with a fake exec: what the new
-- program is given (its command line, the marker in its environment), that
-- API requests in flight are waited for (and no longer than DRAIN_MS), and
-- that a failed exec leaves a server that listens again and says why. The
-- real exec is tests/e2e/dataplane_spec.lua's.
local uv = require("luv")
local support = require("support")
local http = require("prisn.server.http")
local router = require("prisn.server.router")
local upgrade = require("prisn.server.upgrade")

local function tempdir()
  return assert(uv.fs_mkdtemp("/tmp/prisn-upgrade-spec-XXXXXX"))
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- A server as prisn.server.upgrade sees it, listening on loopback.
local function fake_server()
  local lines = {}
  local function log(_, fmt, ...) lines[#lines + 1] = string.format(fmt, ...) end
  local r = router.new()
  r:add({ method = "GET", pattern = "/health", auth = "none", handler = function() return 200, { status = "ok" } end })
  local server = { router = r, limits = http.DEFAULTS, connections = 0, lines = lines, version = "9.8.7",
    log = { info = log, warn = log, error = log }, listeners = {}, drained = 0 }
  server.state_writer = { drain = function() server.drained = server.drained + 1 end }
  local listener = { kind = "tcp", host = "127.0.0.1", port = 0 }
  listener.handle = assert(http.bind(listener))
  assert(http.serve(server, listener))
  listener.port = listener.handle:getsockname().port
  listener.address = "http://127.0.0.1:" .. listener.port
  server.listeners[1] = listener
  return server
end

-- Whether 127.0.0.1:port accepts a connection now.
local function accepts(port)
  local tcp, result = uv.new_tcp(), nil
  tcp:connect("127.0.0.1", port, function(err) result = err == nil end)
  while result == nil do uv.run("once") end
  tcp:close()
  uv.run("nowait")
  return result
end

local run_until = support.run_until

describe("prisn.server.upgrade", function()
  it("reads the command line as the kernel keeps it, empty arguments included", function()
    local dir = tempdir()
    write(dir .. "/cmdline", "/usr/bin/prisn\0server\0start\0--foreground\0\0--dns\0off\0")
    assert.are.same({ "/usr/bin/prisn", "server", "start", "--foreground", "", "--dns", "off" },
      upgrade.command_line(dir .. "/cmdline"))
    write(dir .. "/empty", "")
    assert.is_nil(upgrade.command_line(dir .. "/empty"))
    assert.is_nil(upgrade.command_line(dir .. "/missing"))
    assert.is_true(#upgrade.command_line() >= 1, "this process's own")
  end)

  it("takes the marker out of the environment, and only a well-formed one counts", function()
    local env = { PRISN_UPGRADE = "abc-123 0.4.1" }
    local function getenv(k) return env[k] end
    local function unsetenv(k) env[k] = nil end
    assert.are.same({ token = "abc-123", from = "0.4.1" }, upgrade.take_marker(getenv, unsetenv))
    assert.is_nil(env.PRISN_UPGRADE)
    assert.is_nil(upgrade.take_marker(getenv, unsetenv))
    env.PRISN_UPGRADE = "garbage"
    assert.is_nil(upgrade.take_marker(getenv, unsetenv))
    assert.is_nil(env.PRISN_UPGRADE)
  end)

  it("lists the children of every thread", function()
    local dir = tempdir()
    for tid, children in pairs({ ["100"] = "201 202 ", ["101"] = "", ["102"] = "305 " }) do
      assert(uv.fs_mkdir(dir .. "/" .. tid, tonumber("700", 8)))
      write(dir .. "/" .. tid .. "/children", children)
    end
    local pids = upgrade.children(dir)
    table.sort(pids)
    assert.are.same({ 201, 202, 305 }, pids)
    assert.are.same({}, upgrade.children(dir .. "/missing"))
  end)

  it("execs with the command line and the marker; when that fails it listens again and says why", function()
    local server = fake_server()
    local port = server.listeners[1].port
    local seen
    local function exec(path, argv)
      seen = { path = path, argv = argv, marker = os.getenv(upgrade.ENV), listening = server.listeners[1].handle ~= nil,
        drained = server.drained, upgrading = server.upgrading }
      return nil, "ENOEXEC: exec " .. path .. ": Exec format error", "ENOEXEC"
    end
    local failed
    upgrade.replace(server, "/opt/prisn.new", "tok-1", function(message, code) failed = { message, code } end,
      { exec = exec })
    assert.is_true(run_until(function() return failed ~= nil end))
    assert.are.equal("/opt/prisn.new", seen.path)
    assert.are.same(upgrade.command_line(), seen.argv)
    assert.are.equal("tok-1 9.8.7", seen.marker)
    assert.is_false(seen.listening, "no new API connections during the exec")
    assert.are.equal(1, seen.drained)
    assert.is_true(seen.upgrading)
    assert.are.same({ "ENOEXEC: exec /opt/prisn.new: Exec format error", "ENOEXEC" }, failed)
    assert.is_nil(os.getenv(upgrade.ENV), "the marker is not left for jobs")
    assert.is_nil(server.upgrading)
    assert.is_true(accepts(port), "it listens again")
    assert.are.equal("upgrade: ENOEXEC: exec /opt/prisn.new: Exec format error; serving on as prisn 9.8.7",
      server.lines[#server.lines])
    server.listeners[1].handle:close()
    uv.run("nowait")
  end)

  it("waits for requests in flight, but not longer than DRAIN_MS", function()
    local saved = upgrade.DRAIN_MS
    upgrade.DRAIN_MS = 300
    local server = fake_server()
    server.connections = 1
    local started, exec_at = uv.now(), nil
    local function exec()
      exec_at = uv.now()
      return nil, "EACCES: exec x: Permission denied", "EACCES"
    end
    local done = false
    upgrade.replace(server, "/x", "t", function() done = true end, { exec = exec })
    local t = uv.new_timer()
    t:start(100, 0, function() t:close(); server.connections = 0 end)
    assert.is_true(run_until(function() return done end))
    assert.is_true(exec_at - started >= 100 and exec_at - started < 300, "after the request: " .. exec_at - started)
    -- A connection that stays open is cut at DRAIN_MS.
    done, server.connections, started = false, 2, uv.now()
    upgrade.replace(server, "/x", "t", function() done = true end, { exec = exec })
    assert.is_true(run_until(function() return done end))
    assert.is_true(exec_at - started >= 300, "at the deadline: " .. exec_at - started)
    local warned = false
    for _, line in ipairs(server.lines) do
      if line == "upgrade: 2 API connection(s) still open are cut" then warned = true end
    end
    assert.is_true(warned)
    upgrade.DRAIN_MS = saved
    server.listeners[1].handle:close()
    uv.run("nowait")
  end)
end)
