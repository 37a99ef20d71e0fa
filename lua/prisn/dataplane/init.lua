-- prisn.dataplane: the data-plane process. It holds what must keep
-- answering while the server (the control plane) is stopped, restarted or
-- replaced: the deployments' ports (prisn.net.proxy) and the DNS responder,
-- each a service of prisn.dataplane.host, fed by the server over the control
-- protocol (prisn.dataplane.protocol) on $PRISN_HOME/dataplane.sock.
--
-- One per PRISN_HOME (an flock on dataplane.lock). The server starts it
-- (`prisn server dataplane`, hidden) in a session of its own when none
-- answers, and `prisn server stop` stops it; a server killed with -9 leaves
-- it serving the last state it was sent, and the next server sends the full
-- state again (the services reconcile: unchanged listeners are kept).
--
-- An upgrade (host op "upgrade", binary): this process spawns the new binary
-- with its listening sockets as extra stdio descriptors and a handover file
-- (the services' snapshots, which descriptor is which), waits until the new
-- process accepts on them ("ready" on its stdout), then lets go of the lock
-- and the control socket (the new one takes them), stops accepting, and
-- exits once its open connections have finished. The sockets are never
-- closed in between: no connection is refused.
local uv = require("luv")
local cjson = require("cjson")
local sys = require("prisn.core.sys")
local clock = require("prisn.clock")
local fs = require("prisn.fs")
local metrics = require("prisn.metrics")
local protocol = require("prisn.dataplane.protocol")
local host_mod = require("prisn.dataplane.host")

local M = {}

M.SOCKET_FILE = "dataplane.sock"
M.LOCK_FILE = "dataplane.lock"
M.LOG_FILE = "dataplane.log"
M.HANDOVER_FILE = "dataplane.handover.json"
M.READY_TIMEOUT_MS = 10000
M.LOCK_POLL_MS = 10
-- How often it checks that its socket is still there: a data plane whose
-- home was removed (a test's temporary one) stops rather than holding ports
-- for nobody.
M.ORPHAN_CHECK_MS = 1000

-- The log: lines on stderr, which is dataplane.log (the spawner opened it).
local function new_log()
  local function write(level, fmt, ...)
    local ok, message = pcall(string.format, fmt, ...)
    io.stderr:write(string.format("%s %s %s\n", clock.iso_time(clock.now_ms()), level,
      ok and message or fmt))
  end
  return {
    info = function(_, ...) write("INFO", ...) end,
    warn = function(_, ...) write("WARN", ...) end,
    error = function(_, ...) write("ERROR", ...) end,
  }
end

local Plane = {}
Plane.__index = Plane

-- Control socket -------------------------------------------------------------

-- A request from a server. The host's upgrade and stop are the process's
-- own; the rest is the services' (prisn.dataplane.host).
function Plane:on_message(conn, msg)
  if msg.id == nil then return end -- an event from a server: none defined
  if msg.kind == "host" and msg.op == "upgrade" then return self:upgrade(conn, msg) end
  if msg.kind == "host" and msg.op == "stop" then
    conn:reply(msg, {})
    return self:stop("asked by the server")
  end
  local result, err, code = self.host:handle(msg)
  conn:reply(msg, result, err, code)
end

function Plane:listen_control()
  local path = self.home .. "/" .. M.SOCKET_FILE
  uv.fs_unlink(path) -- we hold the lock: a socket there is a dead one's
  local pipe = uv.new_pipe(false)
  local ok, err = pipe:bind(path)
  if ok then uv.fs_chmod(path, tonumber("600", 8)) end
  if ok then
    ok, err = pipe:listen(16, function(lerr)
      if lerr then return end
      local client = uv.new_pipe(false)
      if not pipe:accept(client) then return client:close() end
      local conn
      conn = protocol.connection(client, {
        on_message = function(c, msg) self:on_message(c, msg) end,
        on_close = function() self.clients[conn] = nil end,
      })
      self.clients[conn] = true
    end)
  end
  if not ok then
    pipe:close()
    return nil, "cannot listen on " .. path .. ": " .. tostring(err)
  end
  self.control = pipe
  return true
end

function Plane:broadcast(events)
  for _, ev in ipairs(events) do
    for conn in pairs(self.clients) do conn:send(ev) end
  end
end

-- Lets go of the lock and the control socket (an upgrade's successor takes
-- them; a stop).
function Plane:release()
  if self.control and not self.control:is_closing() then self.control:close() end
  self.control = nil
  local list = {}
  for conn in pairs(self.clients) do list[#list + 1] = conn end
  for _, conn in ipairs(list) do conn:close("the data plane is going away") end
  if self.lock then
    uv.fs_unlink(self.home .. "/" .. M.SOCKET_FILE)
    sys.unlock(self.lock)
    self.lock = nil
  end
end

-- Ending -------------------------------------------------------------------------

function Plane:finish()
  if self.tick_timer and not self.tick_timer:is_closing() then self.tick_timer:close() end
  if self.orphan_timer and not self.orphan_timer:is_closing() then self.orphan_timer:close() end
  for _, s in ipairs(self.signals) do if not s:is_closing() then s:close() end end
end

function Plane:stop(why)
  if self.stopping then return end
  self.stopping = true
  self.log:info("stopping (%s)", why)
  -- The ports close before the server hears the connection end: a `server
  -- stop` that returned has no port open behind it.
  self.host:close(function()
    self:release()
    self:finish()
  end)
end

-- Upgrade --------------------------------------------------------------------------

-- Spawns `binary` as this home's next data plane with the listening sockets;
-- callback(pid) once it accepts on them, or callback(nil, message).
function Plane:spawn_successor(binary, callback)
  local snapshot, fds = self.host:handover()
  -- No holes in stdio (luv reads it as a sequence): stdin is /dev/null.
  local null = uv.fs_open("/dev/null", "r", 0)
  local out = uv.new_pipe(false)
  local stdio, listed = { null, out, 2 }, {}
  for i, f in ipairs(fds) do
    stdio[3 + i] = f.fd
    listed[i] = { kind = f.kind, name = f.name, fd = 2 + i }
  end
  local path = self.home .. "/" .. M.HANDOVER_FILE
  local ok, err = fs.write_atomic(path, cjson.encode({ snapshot = snapshot, fds = listed }), tonumber("600", 8))
  if not ok then return callback(nil, "cannot write " .. path .. ": " .. tostring(err)) end
  local handle, pid
  handle, pid = uv.spawn(binary, { args = { "server", "dataplane", "--handover", path }, stdio = stdio,
    detached = true, cwd = "/" }, function() if handle then handle:close() end end)
  if null then uv.fs_close(null) end
  if not handle then
    out:close()
    return callback(nil, "cannot start " .. binary .. ": " .. tostring(pid))
  end
  handle:unref()
  local done, buffer = false, ""
  local timer = uv.new_timer()
  local function finish(result, message)
    if done then return end
    done = true
    timer:close()
    out:close()
    if not result then
      uv.kill(pid, "sigkill")
      uv.fs_unlink(path)
    end
    callback(result, message)
  end
  timer:start(M.READY_TIMEOUT_MS, 0, function() finish(nil, "the new data plane did not get ready in time") end)
  out:read_start(function(rerr, chunk)
    if rerr or not chunk then return finish(nil, "the new data plane exited before it was ready") end
    buffer = buffer .. chunk
    if buffer:find("ready\n", 1, true) then finish(pid) end
  end)
end

function Plane:upgrade(conn, msg)
  if self.upgrading or self.stopping then return conn:reply(msg, nil, "already upgrading or stopping", "busy") end
  self.upgrading = true
  local binary = msg.binary or uv.exepath()
  self.log:info("upgrade: handing the listening sockets to %s", binary)
  self:spawn_successor(binary, function(pid, err)
    if not pid then
      self.upgrading = false
      self.log:error("upgrade failed: %s", err)
      return conn:reply(msg, nil, err, "upgrade_failed")
    end
    self.log:info("upgrade: pid %d accepts now; draining and exiting", pid)
    conn:reply(msg, { pid = pid })
    self.stopping = true
    self:release()
    self.host:stop_accepting(function()
      self.host:close(function() self:finish() end)
    end)
  end)
end

-- Running ----------------------------------------------------------------------------

-- Reads an upgrade's handover file: the snapshot and kind -> name -> fd.
local function read_handover(path)
  local text = fs.read_file(path)
  if not text then return nil, "cannot read " .. path end
  uv.fs_unlink(path)
  local ok, doc = pcall(cjson.decode, text)
  if not ok or type(doc) ~= "table" then return nil, path .. " is not a handover" end
  local fds = {}
  for _, f in ipairs(doc.fds or {}) do
    fds[f.kind] = fds[f.kind] or {}
    fds[f.kind][f.name] = math.tointeger(f.fd)
  end
  return doc.snapshot or {}, fds
end

-- Waits for the lock (a predecessor lets go once this one is ready), then
-- serves the control socket.
function Plane:take_lock_and_listen(done)
  local path = self.home .. "/" .. M.LOCK_FILE
  local timer = uv.new_timer()
  local function try()
    local fd = sys.lock(path)
    if not fd then return end
    timer:close()
    self.lock = fd
    local ok, err = self:listen_control()
    if not ok then self.log:error("%s", err) end
    done(ok)
  end
  timer:start(0, M.LOCK_POLL_MS, try)
end

--- Runs the data plane of opts.home until it is stopped; opts.handover: the
-- handover file of an upgrade. Returns the exit status.
function M.run(opts)
  local home = opts.home
  local log = new_log()
  -- As in the server (prisn.server.run): long-lived handles, short-lived
  -- chunks; PRISN_GC_MODE=incremental for the other collector.
  collectgarbage(os.getenv("PRISN_GC_MODE") == "incremental" and "incremental" or "generational")
  local self = setmetatable({ home = home, log = log, clients = {}, signals = {} }, Plane)
  local registry = metrics.registry()
  self.host = host_mod.new({ log = log, metrics = registry, version = sys.version, pid = uv.os_getpid() })
  -- Whether a server is there to take the services' events (the ingress's access lines).
  self.host.connected = function() return next(self.clients) ~= nil end
  if opts.handover then
    local snapshot, fds = read_handover(opts.handover)
    if not snapshot then
      log:error("%s", fds)
      return 1
    end
    self.host:adopt(snapshot, fds)
    io.stdout:write("ready\n")
    io.stdout:flush()
    log:info("prisn %s data plane (pid %d) took over the listening sockets", sys.version, uv.os_getpid())
    self:take_lock_and_listen(function() log:info("serving %s/%s", home, M.SOCKET_FILE) end)
  else
    local lock = sys.lock(home .. "/" .. M.LOCK_FILE)
    if not lock then
      log:error("a data plane already runs for %s", home)
      return 1
    end
    self.lock = lock
    local ok, err = self:listen_control()
    if not ok then
      log:error("%s", err)
      return 1
    end
    log:info("prisn %s data plane (pid %d) serving %s/%s", sys.version, uv.os_getpid(), home, M.SOCKET_FILE)
  end
  self.tick_timer = uv.new_timer()
  self.tick_timer:start(host_mod.TICK_MS, host_mod.TICK_MS, function()
    local ok, events = pcall(self.host.tick, self.host)
    if ok then self:broadcast(events) else log:error("tick: %s", tostring(events)) end
  end)
  self.orphan_timer = uv.new_timer()
  self.orphan_timer:start(M.ORPHAN_CHECK_MS, M.ORPHAN_CHECK_MS, function()
    if self.control and not uv.fs_stat(home .. "/" .. M.SOCKET_FILE) then
      self:stop(home .. "/" .. M.SOCKET_FILE .. " was removed")
    end
  end)
  for _, name in ipairs({ "sigterm", "sigint" }) do
    local s = uv.new_signal()
    s:start(name, function() self:stop(name) end)
    self.signals[#self.signals + 1] = s
  end
  local sigpipe = uv.new_signal()
  sigpipe:start("sigpipe", function() end)
  self.signals[#self.signals + 1] = sigpipe
  uv.run("default")
  log:info("stopped")
  return 0
end

return M
