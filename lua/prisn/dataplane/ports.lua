-- prisn.dataplane.ports: the deployments' public ports, a service of the
-- data plane (kind "ports"). Each port is a prisn.net.proxy listener with the
-- pool the server last sent; it keeps that pool while no server is there.
--
-- Ops (fields of the request; replies in brackets):
--   sync     ports = [ PORT, ... ]: the full set. Ports not in it close;
--            a port whose host and port did not change keeps its listener
--            (no re-bind: no connection refused across a server restart),
--            the others are (re)opened. [ failed = { [name] = { code,
--            message } }, bound = { [name] = port } ]
--   set      port = PORT: opens or updates one port. [ bound ] or an error
--   backends name, backends: replaces one port's pool. [ connections = {
--            [backend id] = open } as of the new pool ]
--   close    name.
--   stats    [ ports = { [name] = proxy stats } ]
-- PORT = { name ("ns/deployment"), host, port, strategy, backends = [ { id,
-- host, port } ] }.
-- Event "connections" { ports = { [name] = { [backend id] = open } } }, sent
-- when it changed (at most every CONNECTIONS_MS): the supervisor drains an
-- instance until its count is 0.
local proxy = require("prisn.net.proxy")
local drain = require("prisn.dataplane.drain")

local M = {}

M.CONNECTIONS_MS = 100

--- What to do to go from `current` (name -> { host, port }) to `desired` (a
-- list of PORT): { open = { PORT }, keep = { PORT }, reopen = { PORT },
-- close = { name } }, each sorted by name. Pure: the reconcile's decision.
function M.plan(current, desired)
  local out, seen = { open = {}, keep = {}, reopen = {}, close = {} }, {}
  for _, p in ipairs(desired) do
    seen[p.name] = true
    local have = current[p.name]
    if not have then
      out.open[#out.open + 1] = p
    elseif have.host == (p.host or "0.0.0.0") and have.port == p.port then
      out.keep[#out.keep + 1] = p
    else
      out.reopen[#out.reopen + 1] = p
    end
  end
  for name in pairs(current) do
    if not seen[name] then out.close[#out.close + 1] = name end
  end
  local by_name = function(a, b) return a.name < b.name end
  table.sort(out.open, by_name)
  table.sort(out.keep, by_name)
  table.sort(out.reopen, by_name)
  table.sort(out.close)
  return out
end

-- JSON numbers arrive as floats; the proxy wants integers.
local function normalize(p)
  p.port = math.tointeger(p.port) or p.port
  p.host = p.host or "0.0.0.0"
  for _, b in ipairs(p.backends or {}) do b.port = math.tointeger(b.port) or b.port end
  return p
end

local Ports = {}
Ports.__index = Ports

--- The service for data-plane `host` (its log, metrics registry, emit).
-- deps.listen replaces proxy.listen (specs).
function M.new(host, deps)
  deps = deps or {}
  return setmetatable({ host = host, ports = {}, listen = deps.listen or proxy.listen, last_connections = "" },
    Ports)
end

-- Opens port p (normalized); fd: a listening socket inherited at an upgrade.
function Ports:open(p, fd)
  local log = self.host.log
  local listener, err, code = self.listen({
    host = p.host, port = p.port, strategy = p.strategy, name = p.name, fd = fd,
    metrics = self.host.metrics, log = log,
    on_event = function(kind, detail)
      if kind == "connect_failed" and log then
        log:warn("%s: connection to %s failed: retried", p.name, tostring(detail))
      end
    end,
  })
  if not listener then return nil, err, code end
  self.ports[p.name] = { host = p.host, port = p.port, proxy = listener, strategy = p.strategy,
    backends = p.backends or {} }
  listener:set_backends(p.backends or {})
  return listener
end

function Ports:close_one(name)
  local entry = self.ports[name]
  if not entry then return end
  self.ports[name] = nil
  entry.proxy:close(function() end)
end

-- Updates an open port to p: its pool and strategy.
function Ports:update(p)
  local entry = self.ports[p.name]
  if p.strategy and p.strategy ~= entry.strategy then
    entry.proxy:set_strategy(p.strategy)
    entry.strategy = p.strategy
  end
  entry.backends = p.backends or {}
  entry.proxy:set_backends(entry.backends)
end

function Ports:op_sync(msg)
  local desired = {}
  for i, p in ipairs(msg.ports or {}) do desired[i] = normalize(p) end
  local plan = M.plan(self.ports, desired)
  local failed, bound = {}, {}
  for _, name in ipairs(plan.close) do self:close_one(name) end
  for _, p in ipairs(plan.reopen) do self:close_one(p.name) end
  for _, p in ipairs(plan.keep) do
    self:update(p)
    bound[p.name] = self.ports[p.name].proxy:port()
  end
  for _, list in ipairs({ plan.open, plan.reopen }) do
    for _, p in ipairs(list) do
      local listener, err, code = self:open(p)
      if listener then
        bound[p.name] = listener:port()
      else
        failed[p.name] = { code = code or "failed", message = err }
      end
    end
  end
  return { failed = failed, bound = bound, kept = #plan.keep, opened = #plan.open + #plan.reopen,
    closed = #plan.close }
end

function Ports:op_set(msg)
  local p = normalize(msg.port or {})
  local entry = self.ports[p.name]
  if entry and entry.host == p.host and entry.port == p.port then
    self:update(p)
    return { bound = entry.proxy:port() }
  end
  self:close_one(p.name)
  local listener, err, code = self:open(p)
  if not listener then return nil, err, code end
  return { bound = listener:port() }
end

function Ports:op_backends(msg)
  local entry = self.ports[msg.name]
  if not entry then return nil, "no port " .. tostring(msg.name), "ENOENT" end
  for _, b in ipairs(msg.backends or {}) do b.port = math.tointeger(b.port) or b.port end
  entry.backends = msg.backends or {}
  entry.proxy:set_backends(entry.backends)
  -- The counts as of the new pool: a backend that left it gets no new
  -- connection, so its count only goes down from here (the drain's start).
  local counts = {}
  for id, st in pairs(entry.proxy:stats().per_backend) do counts[id] = st.active end
  return { connections = counts }
end

function Ports:op_close(msg)
  self:close_one(msg.name)
  return {}
end

function Ports:op_stats()
  local out = {}
  for name, entry in pairs(self.ports) do out[name] = entry.proxy:stats() end
  return { ports = out }
end

-- The open connections per backend, as the "connections" event carries them.
function Ports:connections()
  local out, parts = {}, {}
  for name, entry in pairs(self.ports) do
    local per = {}
    for id, s in pairs(entry.proxy:stats().per_backend) do
      per[id] = s.active
      parts[#parts + 1] = name .. "|" .. id .. "=" .. s.active
    end
    out[name] = per
  end
  table.sort(parts)
  return out, table.concat(parts, ",")
end

--- Called by the host every CONNECTIONS_MS: the event, when it changed.
function Ports:tick()
  local out, signature = self:connections()
  if signature == self.last_connections then return nil end
  self.last_connections = signature
  return { event = "connections", ports = out }
end

--- What the host replays when a server connects: the state as sync takes it.
function Ports:snapshot()
  local list = {}
  for name, entry in pairs(self.ports) do
    list[#list + 1] = { name = name, host = entry.host, port = entry.port, strategy = entry.strategy,
      backends = entry.backends }
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  return { ports = list }
end

--- The listening sockets to hand to a new data plane: { { name, fd } }.
function Ports:listeners()
  local out = {}
  for name, entry in pairs(self.ports) do
    local fd = entry.proxy:fileno()
    if fd then out[#out + 1] = { name = name, fd = fd } end
  end
  return out
end

--- Adopts a snapshot and the inherited sockets (name -> fd) of an upgrade.
function Ports:adopt(snapshot, fds)
  for _, p in ipairs(snapshot.ports or {}) do
    p = normalize(p)
    local ok, err = self:open(p, fds[p.name])
    if not ok and self.host.log then self.host.log:error("upgrade: port %s: %s", p.name, tostring(err)) end
  end
end

--- Stops accepting (an upgrade: the new process accepts now), keeps the
-- open connections; done() once they have all finished, or drain.MAX_MS.
function Ports:stop_accepting(done)
  for _, entry in pairs(self.ports) do entry.proxy:stop_accepting() end
  drain.wait(function()
    local open = 0
    for _, entry in pairs(self.ports) do open = open + entry.proxy.active end
    return open
  end, function(left)
    if left > 0 and self.host.log then
      self.host.log:warn("upgrade: closing %d connection(s) still open after %d ms", left, drain.MAX_MS)
    end
    done()
  end)
end

--- Closes every port; done() after.
function Ports:close(done)
  local ports = self.ports
  self.ports = {}
  drain.close_all(ports, function(entry, one) entry.proxy:close(one) end, done)
end

return M
