-- prisn.dataplane.dns: the DNS responder for prisn.local, a service of the
-- data plane (kind "dns"). It answers from the records the server last sent,
-- so names keep resolving while the server is away.
--
-- Ops:
--   listen   host, port, zone, forward = [ { host, port } ]: starts the
--            responder; one already listening on the same host and port is
--            kept (its upstreams updated), another is closed first.
--            [ port ] or an error (the address cannot be had)
--   records  key ("ns/name"), records (name -> [ { type, data } ]) or
--            nothing: the records of one deployment (none: it is gone)
--   sync     records = { [key] = records }: the full set (others dropped)
--   stop     the responder closes (the server runs with --dns off)
local dns = require("prisn.net.dns")
local zone = require("prisn.dataplane.zone")

local M = {}

local Service = {}
Service.__index = Service

--- The service for data-plane `host` (log, metrics). deps.new replaces
-- prisn.net.dns.new (specs).
function M.new(host, deps)
  deps = deps or {}
  return setmetatable({ host = host, zone = zone.new(dns.DEFAULT_ZONE), new_responder = deps.new or dns.new },
    Service)
end

local function same_address(r, host, port)
  return r and r.host == host and r.port == port
end

-- A responder on host:port (nil: bind them) or on the inherited fds.
function Service:start(msg, fds)
  local z = self.zone
  local r = self.new_responder({ zone = msg.zone or dns.DEFAULT_ZONE, lookup = function(name) return z:lookup(name) end,
    forward = msg.forward or {}, metrics = self.host.metrics, log = self.host.log })
  local port, err, code
  if fds then
    port, err, code = r:listen(msg.host, math.tointeger(msg.port), fds)
  else
    port, err, code = r:listen(msg.host, math.tointeger(msg.port))
  end
  if not port then
    r:close()
    return nil, err, code
  end
  self.responder, self.listen_msg = r, msg
  return port
end

function Service:op_listen(msg)
  local port = math.tointeger(msg.port)
  if same_address(self.responder, msg.host, port) then
    self.listen_msg = msg
    return { port = port }
  end
  if self.responder then self.responder:close() end
  self.responder = nil
  local bound, err, code = self:start(msg)
  if not bound then return nil, err, code end
  return { port = bound }
end

function Service:op_stop()
  if self.responder then self.responder:close() end
  self.responder, self.listen_msg = nil, nil
  return {}
end

function Service:op_records(msg)
  if type(msg.key) ~= "string" then return nil, "records: key must be a string", "invalid" end
  self.zone:set(msg.key, msg.records)
  return {}
end

function Service:op_sync(msg)
  local keep = msg.records or {}
  for key in pairs(self.zone:all()) do
    if keep[key] == nil then self.zone:set(key, nil) end
  end
  for key, records in pairs(keep) do self.zone:set(key, records) end
  return {}
end

--- The state as a server would send it (an upgrade hands it on).
function Service:snapshot()
  return { listen = self.listen_msg, records = self.zone:all() }
end

--- The listening sockets to hand over: { { name = "udp"|"tcp", fd } }.
function Service:listeners()
  local out = {}
  for _, h in ipairs(self.responder and self.responder.handles or {}) do
    local fd = h:fileno()
    if fd then out[#out + 1] = { name = h:get_type() == "udp" and "udp" or "tcp", fd = fd } end
  end
  return out
end

--- Adopts an upgrade's snapshot and sockets.
function Service:adopt(snapshot, fds)
  self:op_sync({ records = snapshot.records })
  if not snapshot.listen then return end
  local ok, err = self:start(snapshot.listen, (fds.udp and fds.tcp) and fds or nil)
  if not ok and self.host.log then self.host.log:error("upgrade: dns: %s", tostring(err)) end
end

--- Stops answering on its sockets (the new process answers now).
function Service:stop_accepting(done)
  if self.responder then self.responder:close() end
  self.responder = nil
  done()
end

function Service:close(done)
  if self.responder then self.responder:close() end
  self.responder = nil
  if done then done() end
end

return M
