-- prisn.server.ingress: the server's side of the ingress (--ingress,
-- --ingress-tls): the listeners, routes and certificates the data plane's
-- ingress (prisn.dataplane.ingress) serves, kept here and sent to it.
--
-- A deployment with a host name (prisn deploy --host NAME [--path /P]) is a
-- route: requests whose Host is NAME and whose path is under /P go to its
-- ready instances (healthy, running, not draining: what the supervisor puts
-- in its port's pool). The listeners and the proxying live in the data plane
-- (a process that outlives this one, #19: the ingress keeps answering with
-- the last routes while the server is away); this module turns the
-- supervisor's deployments into the route table, sends it whenever it
-- changes (Sup.on_pool_change) and in full on every (re)connect, learns a
-- draining instance's requests in flight from the data plane's "in_flight"
-- events (the supervisor stops an instance once they are done) and writes
-- the access lines it is sent. The TLS listener's certificates, one per host
-- name, are certs.lua's (files polled, secrets, self-signed): it sends their
-- PEM texts, the data plane builds the TLS contexts.
--
-- Access log: one line per request in the server's log (server.log) while
-- the server is connected; in dataplane.log while it is away,
--   ingress GET api.example.com/v1/users 200 512B 3ms 10.0.0.7 default/api api-2
-- The ingress is the server's listener, one for every namespace, so its log
-- is the operator's: a request for an unknown host (404) has no deployment
-- whose logs could take it, and a deployment's logs keep what its own
-- processes print. PRISN_INGRESS_ACCESS_LOG=off turns the lines off.
--
-- The routes are a plain list built by a pure function (M.routes): what
-- the data plane is sent.
local cjson = require("cjson")
local errors = require("prisn.error")
local dp_ingress = require("prisn.dataplane.ingress")
local certs_mod = require("prisn.server.ingress.certs")

local M = {}

M.ACCESS_LOG_ENV = "PRISN_INGRESS_ACCESS_LOG"

--- Whether an instance serves: what the supervisor puts in a port's pool.
local function ready(inst)
  return inst.healthy and inst.pid and not inst.removing
end

--- The id of a backend: the instance's name in its namespace, unique in the
-- server ("default/api-2").
function M.backend_id(ns, name, number)
  return ns .. "/" .. name .. "-" .. math.tointeger(number)
end

--- The route of deployment `d` (the supervisor's: ns, name, row.hostname,
-- row.path, instances), or nil when it has no host name or was deleted.
function M.route(d)
  local row = d.row or {}
  if d.deleted or not row.hostname then return nil end
  local backends = {}
  for _, inst in pairs(d.instances or {}) do
    if ready(inst) then
      backends[#backends + 1] = { id = M.backend_id(d.ns, d.name, inst.number), host = "127.0.0.1",
        port = inst.port, number = inst.number }
    end
  end
  table.sort(backends, function(a, b) return a.number < b.number end)
  return { host = row.hostname, path = row.path or "/", key = d.ns .. "/" .. d.name, backends = backends }
end

--- The route table of `deployments` (the supervisor's, by key): a list
-- sorted by host and path, for ig:set_routes.
function M.routes(deployments)
  local list = {}
  for _, d in pairs(deployments) do
    local r = M.route(d)
    if r then list[#list + 1] = r end
  end
  table.sort(list, function(a, b)
    if a.host ~= b.host then return a.host < b.host end
    return a.path < b.path
  end)
  return list
end

--- "[HOST:]PORT" (":80", "8080", "10.0.0.5:80", "[::]:443") as host and port;
-- a port alone listens on every interface. nil when it is neither.
function M.parse_address(text)
  text = tostring(text)
  local host, port = text:match("^%[([^%]]+)%]:(%d+)$")
  if not host then host, port = text:match("^([^:%[%]]*):(%d+)$") end
  if not host then host, port = "", text:match("^(%d+)$") end
  port = math.tointeger(tonumber(port))
  if not port or port < 1 or port > 65535 then return nil end
  if host == "" then host = "0.0.0.0" end
  if not (host:match("^%d+%.%d+%.%d+%.%d+$") or host:find(":", 1, true)) then return nil end
  return host, port
end

--- One access log line of entry `e` (the data plane's access entries).
M.access_line = dp_ingress.access_line

local Ingress = {}
Ingress.__index = Ingress
M.Ingress = Ingress

--- The URL deployment route hostname + path is served at: the https
-- listener's when there is one, else the http one's. Nil with neither.
function Ingress:url(hostname, path)
  local l = self.listeners.https or self.listeners.http
  if not l then return nil end
  local default = l.scheme == "https" and 443 or 80
  return string.format("%s://%s%s%s", l.scheme, hostname, l.port == default and "" or (":" .. l.port),
    (path == nil or path == "/") and "/" or path)
end

--- Requests in flight to backend `id` in the data plane's ingress (the
-- supervisor waits for 0 before it stops a draining instance). While new
-- routes are on their way the count is not known and 1 is answered: the
-- drain waits until the data plane has stopped sending the backend requests.
function Ingress:in_flight(id)
  if self.unacked > 0 then return 1 end
  return math.tointeger(self.counts[id]) or 0
end

-- Takes the in-flight counts of a reply or an event.
function Ingress:take_counts(counts)
  if type(counts) == "table" then self.counts = counts end
end

--- Sends the current routes of every deployment of the supervisor (when
-- they changed) and the certificates (when one changed).
function Ingress:refresh()
  local routes = M.routes(self.supervisor.deployments)
  self.routes = routes
  if self.certs then
    self.certs:set_sources(certs_mod.sources(self.supervisor.deployments))
    self.certs:load_all()
  end
  -- Before the server's first sync its deployments are not all recovered:
  -- a partial table would cut routes the data plane still serves.
  if not self.dataplane.synced then return end
  local signature = cjson.encode(routes)
  if signature ~= self.routes_signature then
    self.routes_signature = signature
    self.unacked = self.unacked + 1
    self.dataplane:request({ kind = "ingress", op = "routes", routes = routes }, function(reply)
      self.unacked = self.unacked - 1
      if reply then self:take_counts(reply.in_flight) end
    end)
  end
  self:push_certs()
end

-- Sends the certificates when one was (re)loaded since the last time.
function Ingress:push_certs(force)
  if not self.certs or (not force and self.certs.version == self.certs_sent) then return end
  self.certs_sent = self.certs.version
  self.dataplane:request({ kind = "ingress", op = "certs", certs = self.certs:pems(),
    default = self.certs:default_pem() })
end

-- The listeners as the data plane takes them: scheme -> { host, port }.
function Ingress:wanted()
  local out = {}
  for scheme, l in pairs(self.listeners) do out[scheme] = { host = l.host, port = l.wanted_port } end
  return out
end

-- Takes a listen or sync reply: the ports bound, the listeners that failed.
function Ingress:take_listen_reply(reply)
  for scheme, port in pairs(reply.bound or {}) do
    if self.listeners[scheme] then self.listeners[scheme].port = math.tointeger(port) end
  end
  for scheme, f in pairs(reply.failed or {}) do
    self.log:error("ingress (%s): %s", scheme, tostring(f.message))
  end
end

--- The whole state, sent on every (re)connect of the data plane.
function Ingress:send_state()
  self.routes = M.routes(self.supervisor.deployments)
  self.routes_signature = cjson.encode(self.routes)
  local msg = { kind = "ingress", op = "sync", listeners = self:wanted(), routes = self.routes,
    access_log = self.access_log }
  if self.certs then
    msg.certs, msg.default = self.certs:pems(), self.certs:default_pem()
    self.certs_sent = self.certs.version
  end
  self.unacked = self.unacked + 1
  self.dataplane:request(msg, function(reply, err)
    self.unacked = self.unacked - 1
    if not reply then
      if err and err.code ~= "ENOTCONN" then self.log:error("data plane: ingress sync: %s", err.message) end
      return
    end
    self:take_counts(reply.in_flight)
    self:take_listen_reply(reply)
  end)
end

-- The events of the data plane's ingress: in-flight counts, access lines.
function Ingress:on_event(msg)
  if msg.event == "in_flight" then return self:take_counts(msg.backends) end
  if msg.event == "access" then
    for _, e in ipairs(msg.entries or {}) do self.log:info("%s", M.access_line(e)) end
    if msg.dropped then self.log:warn("ingress: %d access line(s) dropped (too many at once)", msg.dropped) end
  end
end

--- What the TLS listener serves for `hostname` (prisn.server.ingress.certs
-- info), or nil without one; with `load`, loaded now when it was not yet.
function Ingress:certificate_info(hostname, load)
  return self.certs and self.certs:info(hostname, load) or nil
end

--- Stops polling certificates. The listeners are the data plane's: they
-- close when it is stopped (server stop), and outlive a killed server.
function Ingress:close()
  if self.certs then self.certs:close() end
end

--- The addresses the listeners serve, by scheme ({ http = "0.0.0.0:80" }).
function Ingress:addresses()
  local out = {}
  for scheme, l in pairs(self.listeners) do out[scheme] = l.address end
  return out
end

-- The listener of `scheme` at `address` ("[HOST:]PORT"), as wanted; raises a
-- usage error for a malformed address.
local function want(self, scheme, address, flag)
  local host, port = M.parse_address(address)
  if not host then
    errors.usage(string.format("%s expects [HOST:]PORT, got '%s'", flag, tostring(address)),
      "e.g. " .. flag .. (scheme == "https" and " :443" or " :80") .. " or " .. flag .. " 127.0.0.1:8080")
  end
  self.listeners[scheme] = { scheme = scheme, host = host, port = port, wanted_port = port, flag = flag,
    address = host:find(":", 1, true) and ("[" .. host .. "]:" .. port) or (host .. ":" .. port) }
end

-- Asks the data plane for the listeners now (the server's start): raises
-- when an address cannot be had (a listener asked for by name must not
-- silently be missing). Not connected: they open with the first sync.
local function listen_now(self, server)
  local msg = { kind = "ingress", op = "listen", listeners = self:wanted(),
    default = self.certs and self.certs:default_pem() or nil }
  local reply, err = server.dataplane:call_at_start(msg)
  if not reply then
    if err and err.code == "ENOTCONN" then return end
    errors.raise(err and err.code or "EIO", "ingress: " .. tostring(err and err.message))
  end
  for scheme, f in pairs(reply.failed or {}) do
    local l = self.listeners[scheme]
    errors.raise(f.code or "EADDRINUSE", string.format("cannot listen on %s for %s: %s", l.address, l.flag,
      tostring(f.message)), { hint = "choose another address with " .. l.flag
      .. " [HOST:]PORT (below 1024 needs root)" })
  end
  self:take_listen_reply(reply)
  for _, l in pairs(self.listeners) do
    server.log:info("ingress (%s) on %s (%s)", l.scheme, l.address,
      server.dataplane.in_process and "in process" or "in the data plane")
  end
end

--- Starts the ingress of `server` (log, supervisor, dataplane,
-- metrics_registry). opts: http ("[HOST:]PORT" or nil: off), https (the
-- same, TLS with a certificate per host name). Returns the ingress, or nil
-- when both are off (the data plane is then told to close any it has);
-- raises when an address cannot be had.
function M.start(server, opts)
  opts = opts or {}
  local dp = server.dataplane
  if not opts.http and not opts.https then
    dp:add_service("ingress", function() return { { kind = "ingress", op = "sync", listeners = {}, routes = {} } } end)
    return nil
  end
  local self = setmetatable({ listeners = {}, supervisor = server.supervisor, dataplane = dp, log = server.log,
    counts = {}, unacked = 0, access_log = os.getenv(M.ACCESS_LOG_ENV) ~= "off" }, Ingress)
  if opts.http then want(self, "http", opts.http, "--ingress") end
  if opts.https then
    want(self, "https", opts.https, "--ingress-tls")
    self.certs = certs_mod.new(server, { poll_ms = math.tointeger(tonumber(os.getenv("PRISN_INGRESS_CERT_POLL_MS")
      or "")) })
    self.certs.on_change = function() self:push_certs() end
  end
  local ok, err = pcall(listen_now, self, server)
  if not ok then
    self:close()
    error(err, 0)
  end
  dp:add_service("ingress", function()
    self:send_state()
    return {}
  end, function(msg) self:on_event(msg) end)
  local sup = server.supervisor
  sup.on_pool_change[#sup.on_pool_change + 1] = function()
    errors.call("ingress routes", self.refresh, function(e) server.log:error("ingress: %s", tostring(e)) end, self)
  end
  -- A draining instance is stopped once its requests here are done too.
  sup.drain_counts = sup.drain_counts or {}
  sup.drain_counts[#sup.drain_counts + 1] = function(d, inst)
    return self:in_flight(M.backend_id(d.ns, d.name, inst.number))
  end
  self:refresh()
  return self
end

return M
