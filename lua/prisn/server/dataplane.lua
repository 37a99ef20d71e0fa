-- prisn.server.dataplane: the server's side of the data plane
-- (prisn.dataplane): the deployments' ports and the DNS records, kept here as
-- the state the data plane must serve, and sent to it.
--
--   local dp = dataplane.new(server)        -- server: home, log, events
--   dp:start()                              -- connect, or spawn it
--   local port = dp:open_port({ name, host, port, strategy }, on_failed)
--   port:set_backends(list); port:connections(id); port:close()
--   dp:set_dns(listen) ; dp:set_dns_records(key, records)
--   dp:metrics(cb) ; dp:upgrade(binary, cb) ; dp:stop(cb)
--   dp:request(msg, cb) ; dp:add_service(kind, state_fn, on_event)   -- more kinds
--
-- The server keeps the full desired state (every port with its pool, the
-- DNS address and records) and sends each change as it happens. Whenever the
-- connection is (re)made it sends the full state (ports sync, dns sync): the
-- data plane reconciles, keeping listeners that did not change, so a server
-- restarted after kill -9 takes over without a refused connection. When the
-- connection ends while the server runs (the data plane died, or was
-- replaced by an upgrade), it reconnects, starting a new data plane when
-- none answers within RECONNECT_GRACE_MS, and sends the state again.
--
-- A port that cannot be opened (its address is taken) is reported to
-- on_failed(message, code) when that is learnt; open_port called inside an
-- async task (an API request) while connected waits for the answer and
-- returns nil, message, code, as proxy.listen did.
--
-- PRISN_DATAPLANE=in-process runs the same services inside the server
-- instead (the ports go dark with it: the behaviour before the data plane;
-- the benchmark's baseline).
local uv = require("luv")
local cjson = require("cjson")
local async = require("prisn.async")
local homes = require("prisn.home")
local metrics = require("prisn.metrics")
local protocol = require("prisn.dataplane.protocol")
local plane = require("prisn.dataplane")
local host_mod = require("prisn.dataplane.host")

local M = {}

M.CONNECT_RETRY_MS = 20
M.START_TIMEOUT_MS = 5000
M.RECONNECT_GRACE_MS = 300
-- A started data plane that has not answered after this long is started again
-- (the first failed, or is stuck; a second one finding the lock taken exits).
M.RESPAWN_MS = 5000

local Client = {}
Client.__index = Client

--- A client for `server` (home, log, events). opts: exe (the binary to
-- start the data plane with; default this one), in_process (run the
-- services here; default from PRISN_DATAPLANE).
function M.new(server, opts)
  opts = opts or {}
  local in_process = opts.in_process
  if in_process == nil then in_process = os.getenv("PRISN_DATAPLANE") == "in-process" end
  return setmetatable({ server = server, log = server.log, exe = opts.exe or uv.exepath(),
    in_process = in_process, ports = {}, dns_listen = nil, records = {}, record_signatures = {}, connections = {},
    providers = {}, event_handlers = {} }, Client)
end

-- Transport --------------------------------------------------------------------

-- Sends request msg; cb(reply, err) (err: { code, message }). Dropped while
-- not connected: the full state goes out on the next connect.
function Client:request(msg, cb)
  if self.local_host then
    local result, message, code = self.local_host:handle(msg)
    if cb then cb(result, result == nil and { code = code, message = message } or nil) end
    return
  end
  if not self.conn then
    if cb then cb(nil, { code = "ENOTCONN", message = "the data plane is not connected" }) end
    return
  end
  self.conn:request(msg, cb)
end

function Client:on_event(msg)
  if msg.kind == "ports" and msg.event == "connections" then self.connections = msg.ports or {} end
  local handler = self.event_handlers[msg.kind]
  if handler then handler(msg) end
end

--- For another service of the data plane (an ingress, log pumps): fn()
-- returns the requests that carry its whole state (a list), sent after the
-- ports and the DNS at every sync; on_event(msg) gets the events of `kind`.
-- Changes in between go through request.
function Client:add_service(kind, fn, on_event)
  self.providers[#self.providers + 1] = fn
  self.event_handlers[kind] = on_event
end

-- The full state, as sync requests.
function Client:send_state()
  local list = {}
  for _, p in pairs(self.ports) do list[#list + 1] = p.spec end
  self:request({ kind = "ports", op = "sync", ports = list }, function(reply, err)
    if not reply then return self.log:error("data plane: ports sync: %s", err.message) end
    for name, f in pairs(reply.failed or {}) do self:port_failed(name, f.message, f.code) end
    if (reply.kept or 0) > 0 then
      self.log:info("data plane: %d port(s) kept their listeners, %d opened, %d closed", reply.kept,
        reply.opened or 0, reply.closed or 0)
    end
  end)
  if self.dns_listen then
    self:request({ kind = "dns", op = "listen", host = self.dns_listen.host, port = self.dns_listen.port,
      zone = self.dns_listen.zone, forward = self.dns_listen.forward })
  end
  self:request({ kind = "dns", op = "sync", records = self.records })
  for _, provider in ipairs(self.providers) do
    for _, msg in ipairs(provider()) do self:request(msg) end
  end
end

function Client:port_failed(name, message, code)
  local p = self.ports[name]
  if not p then return end
  self.ports[name] = nil
  self.log:error("data plane: %s: %s", name, tostring(message))
  if p.on_failed then p.on_failed(message, code) end
end

--- Sends the full state now and on every reconnect: the server calls it
-- once its state is whole (after recovery); until then changes go one by one
-- and the data plane keeps what it had.
function Client:sync()
  self.synced = true
  if self.conn or self.local_host then self:send_state() end
end

-- Connecting ----------------------------------------------------------------------

function Client:socket_path()
  return self.server.home .. "/" .. plane.SOCKET_FILE
end

-- Tries once; cb(true) connected, cb(false) nobody answers.
function Client:try_connect(cb)
  local pipe = uv.new_pipe(false)
  pipe:connect(self:socket_path(), function(err)
    if err then
      pipe:close()
      return cb(false)
    end
    self.conn = protocol.connection(pipe, {
      on_message = function(_, msg) self:on_event(msg) end,
      on_close = function(_, why) self:lost(why) end,
    })
    self:request({ kind = "host", op = "hello" }, function(reply)
      if reply then
        self.data_plane_pid = math.tointeger(reply.pid)
        self.log:info("data plane (pid %s, %s) connected; sending the state", tostring(self.data_plane_pid),
          tostring(reply.version))
      end
    end)
    -- Before the server's first sync its state is not whole yet (recovery
    -- runs after the connect): a sync now would close ports it still wants.
    if self.synced then self:send_state() end
    cb(true)
  end)
end

--- Starts the data plane of this home: detached (a session of its own,
-- output to dataplane.log), so it outlives the server.
function Client:spawn()
  local log_path = self.server.home .. "/" .. plane.LOG_FILE
  local fd = uv.fs_open(log_path, "a", tonumber("600", 8))
  local null = uv.fs_open("/dev/null", "r", 0)
  local handle, pid
  handle, pid = uv.spawn(self.exe, { args = { "server", "dataplane" }, env = homes.child_env(self.server.home),
    stdio = { null, fd, fd }, detached = true, cwd = "/" }, function() if handle then handle:close() end end)
  if fd then uv.fs_close(fd) end
  if null then uv.fs_close(null) end
  if not handle then
    self.log:error("cannot start the data plane: %s", tostring(pid))
    return nil
  end
  handle:unref()
  self.log:info("started the data plane (pid %d)", pid)
  return pid
end

-- Connects, starting a data plane when none answers after `grace_ms`; keeps
-- trying until it is connected (or the server stops).
function Client:connect_loop(grace_ms)
  if self.connecting or self.stopping then return end
  self.connecting = true
  local started, spawned_at = uv.now(), nil
  local timer = uv.new_timer()
  local function attempt()
    self:try_connect(function(ok)
      if ok or self.stopping then
        self.connecting = false
        timer:close()
        return
      end
      -- A data plane that was started but never answered (it failed at its
      -- start, or was killed too) is started again after RESPAWN_MS.
      local now = uv.now()
      if (not spawned_at and now - started >= grace_ms) or (spawned_at and now - spawned_at >= M.RESPAWN_MS) then
        spawned_at = now
        self:spawn()
      end
      timer:start(M.CONNECT_RETRY_MS, 0, attempt)
    end)
  end
  attempt()
end

function Client:lost(why)
  self.conn = nil
  self.connections = {}
  if self.stopping then return end
  self.log:warn("data plane connection lost (%s): reconnecting", tostring(why))
  self:connect_loop(M.RECONNECT_GRACE_MS)
end

--- Connects to the data plane, or starts it (in the background: the state
-- is sent once connected). In-process: the services run here.
function Client:start()
  if self.in_process then
    self.local_host = host_mod.new({ log = self.log, metrics = self.server.metrics_registry or metrics.registry() })
    local timer = uv.new_timer()
    timer:start(host_mod.TICK_MS, host_mod.TICK_MS, function()
      for _, ev in ipairs(self.local_host:tick()) do self:on_event(ev) end
    end)
    timer:unref()
    self.tick_timer = timer
    self.log:info("data plane in process (PRISN_DATAPLANE=in-process): ports close with the server")
    return
  end
  self:connect_loop(0)
end

--- Before the server's loop runs (its start): starts the data plane and
-- waits up to START_TIMEOUT_MS for the connection. Runs the loop itself,
-- which is why only the start may call it. Returns true, or false when the
-- data plane did not answer (the state is sent when it does).
function Client:start_and_wait()
  self:start()
  local deadline = uv.now() + M.START_TIMEOUT_MS
  while not (self.conn or self.local_host) and uv.now() < deadline do uv.run("once") end
  return self.conn ~= nil or self.local_host ~= nil
end

--- Like request, for the server's start only (see start_and_wait): waits
-- for the reply. Returns the reply, or nil and { code, message }.
function Client:call_at_start(msg)
  local reply, err, done = nil, nil, false
  self:request(msg, function(r, e) reply, err, done = r, e, true end)
  while not done do uv.run("once") end
  return reply, err
end

-- Ports ------------------------------------------------------------------------------

local Port = {}
Port.__index = Port

--- Replaces the port's pool (sent only when it changed: the supervisor
-- recomputes it on every health report).
function Port:set_backends(backends)
  if self.closed then return end
  local signature = cjson.encode(backends)
  if signature == self.signature then return end
  self.signature = signature
  self.spec.backends = backends
  self.unacked = (self.unacked or 0) + 1
  self.client:request({ kind = "ports", op = "backends", name = self.spec.name, backends = backends },
    function(reply)
      self.unacked = self.unacked - 1
      if reply and reply.connections then self.client.connections[self.spec.name] = reply.connections end
    end)
end

--- Open connections to backend `id` through this port: as of the last pool
-- the data plane took, or later events. While a new pool is on its way the
-- count is not known and 1 is answered: a drain waits for the data plane to
-- have stopped sending the backend new connections.
function Port:connections(id)
  if (self.unacked or 0) > 0 then return 1 end
  local per = self.client.connections[self.spec.name]
  return per and math.tointeger(per[id]) or 0
end

function Port:close(callback)
  if not self.closed then
    self.closed = true
    if self.client.ports[self.spec.name] == self then self.client.ports[self.spec.name] = nil end
    self.client:request({ kind = "ports", op = "close", name = self.spec.name })
  end
  if callback then callback() end
end

--- Opens (or moves) port spec = { name, host, port, strategy }. Returns the
-- port, or (inside an async task, connected) nil, message, code when it
-- cannot be had; a failure learnt later goes to on_failed(message, code).
function Client:open_port(spec, on_failed)
  spec.backends = spec.backends or {}
  local port = setmetatable({ client = self, spec = spec, on_failed = on_failed }, Port)
  self.ports[spec.name] = port
  local msg = { kind = "ports", op = "set", port = spec }
  if self.local_host or (self.conn and coroutine.isyieldable()) then
    local reply, err
    if self.local_host then
      self:request(msg, function(r, e) reply, err = r, e end)
    else
      reply, err = async.wait(function(cb) self:request(msg, cb) end)
    end
    if not reply then
      if self.ports[spec.name] == port then self.ports[spec.name] = nil end
      return nil, err.message, err.code
    end
    return port
  end
  self:request(msg, function(reply, err)
    if not reply and err.code ~= "ENOTCONN" and self.ports[spec.name] == port then
      self:port_failed(spec.name, err.message, err.code)
    end
  end)
  return port
end

-- DNS ----------------------------------------------------------------------------------

--- Starts the DNS responder at listen = { host, port, zone, forward };
-- callback(port) or callback(nil, message, code). nil: stop it.
function Client:set_dns(listen, callback)
  self.dns_listen = listen
  if not listen then return self:request({ kind = "dns", op = "stop" }) end
  local msg = { kind = "dns", op = "listen", host = listen.host, port = listen.port, zone = listen.zone,
    forward = listen.forward }
  self:request(msg, function(reply, err)
    if not callback then return end
    if reply then return callback(math.tointeger(reply.port)) end
    callback(nil, err.message, err.code)
  end)
end

--- The records of deployment `key`, nil once it is gone (sent when they
-- changed).
function Client:set_dns_records(key, records)
  local signature = records and cjson.encode(records) or ""
  if self.record_signatures[key] == signature then return end
  self.record_signatures[key] = records and signature or nil
  self.records[key] = records
  self:request({ kind = "dns", op = "records", key = key, records = records })
end

-- The rest ---------------------------------------------------------------------------

--- cb(text): the data plane's metrics in the Prometheus text format ("" when
-- it cannot be asked; in process they are in the server's registry already).
function Client:metrics(cb)
  if self.local_host then return cb("") end
  self:request({ kind = "host", op = "metrics" }, function(reply) cb(reply and reply.text or "") end)
end

--- Hands the data plane over to `binary`; cb(pid) or cb(nil, message, code).
function Client:upgrade(binary, cb)
  self:request({ kind = "host", op = "upgrade", binary = binary }, function(reply, err)
    if reply then return cb(math.tointeger(reply.pid)) end
    cb(nil, err.message, err.code)
  end)
end

--- Stops the data plane (its ports close) and lets go; done() once it has
-- closed them, or after timeout_ms.
function Client:stop(done, timeout_ms)
  self.stopping = true
  if self.local_host then
    if self.tick_timer then self.tick_timer:close() end
    return self.local_host:close(done)
  end
  if not self.conn then return done() end
  local finished = false
  local timer = uv.new_timer()
  local function finish()
    if finished then return end
    finished = true
    timer:close()
    done()
  end
  timer:start(timeout_ms or 3000, 0, finish)
  local conn = self.conn
  local previous = conn.handlers.on_close
  conn.handlers.on_close = function(...)
    previous(...)
    finish()
  end
  self:request({ kind = "host", op = "stop" })
end

--- Lets go of the data plane without stopping it (an upgrade of the server).
function Client:detach()
  self.stopping = true
  if self.conn then self.conn:close("the server is being replaced") end
end

return M
