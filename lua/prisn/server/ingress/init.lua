-- prisn.server.ingress: the server's ingress listeners (--ingress,
-- --ingress-tls), fed with routes from the supervisor's pools.
--
-- A deployment with a host name (prisn deploy --host NAME [--path /P]) is a
-- route: requests whose Host is NAME and whose path is under /P go to its
-- ready instances (healthy, running, not draining: what the supervisor puts
-- in its port's pool). The proxying itself is prisn.net.ingress; this module
-- turns the supervisor's deployments into its route table, keeps that table
-- current (Sup.on_pool_change, as prisn.server.dns does for its records),
-- counts a draining instance's requests in flight for the supervisor (it
-- stops an instance once they are done) and writes the access log. The TLS
-- listener's certificates, one per host name, are certs.lua's.
--
-- Access log: one line per request in the server's log (server.log),
--   ingress GET api.example.com/v1/users 200 512B 3ms 10.0.0.7 default/api api-2
-- The ingress is the server's listener, one for every namespace, so its log
-- is the operator's: a request for an unknown host (404) has no deployment
-- whose logs could take it, and a deployment's logs keep what its own
-- processes print. PRISN_INGRESS_ACCESS_LOG=off turns the lines off.
--
-- The routes are a plain list built by a pure function (M.routes), so a
-- data-plane process could be handed the same table.
local errors = require("prisn.error")
local net_ingress = require("prisn.net.ingress")
local tls = require("prisn.net.tls")
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

--- One access log line of entry `e` (prisn.net.ingress's on_access); the
-- host as routed, without the port.
function M.access_line(e)
  local host = tostring(e.host or "-"):gsub(":%d+$", "")
  return string.format("ingress %s %s%s %s %dB %dms %s %s %s", tostring(e.method or "-"), host,
    tostring(e.path or ""), tostring(e.status or "-"), math.tointeger(e.bytes or 0) or 0,
    math.floor((e.duration_ms or 0) + 0.5), tostring(e.client or "-"), tostring(e.route_key or "-"),
    tostring(e.backend or "-"))
end

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

--- Requests in flight to backend `id` on every listener (the supervisor
-- waits for 0 before it stops a draining instance).
function Ingress:in_flight(id)
  local n = 0
  for _, l in pairs(self.listeners) do n = n + (l.ig:in_flight(id) or 0) end
  return n
end

--- Puts in the current routes of every deployment of the supervisor.
function Ingress:refresh()
  local routes = M.routes(self.supervisor.deployments)
  for _, l in pairs(self.listeners) do l.ig:set_routes(routes) end
  if self.certs then self.certs:set_sources(certs_mod.sources(self.supervisor.deployments)) end
end

--- What the TLS listener serves for `hostname` (prisn.server.ingress.certs
-- info), or nil without one; with `load`, loaded now when no client has
-- asked for it yet.
function Ingress:certificate_info(hostname, load)
  return self.certs and self.certs:info(hostname, load) or nil
end

--- Closes the listeners; in-flight requests are cut (the server is stopping).
function Ingress:close()
  for _, l in pairs(self.listeners) do l.ig:close(function() end) end
  self.listeners = {}
  if self.certs then self.certs:close() end
end

-- The TLS wrapper of the https listener: SNI picks the host name's
-- certificate (prisn.server.ingress.certs). A failed handshake (a scanner,
-- a client that does not trust a self-signed certificate) is counted, not
-- logged: the log would be theirs to fill.
local function tls_wrapper(self, server)
  self.certs = certs_mod.new(server, { poll_ms = math.tointeger(tonumber(os.getenv("PRISN_INGRESS_CERT_POLL_MS")
    or "")) })
  local ctx = tls.server_context({ default = self.certs:default_pair(),
    sni = function(name) return self.certs:pair(name) end })
  self.handshake_failures = 0
  return tls.wrapper(ctx, { on_error = function() self.handshake_failures = self.handshake_failures + 1 end })
end

--- The addresses the listeners serve, by scheme ({ http = "0.0.0.0:80" }).
function Ingress:addresses()
  local out = {}
  for scheme, l in pairs(self.listeners) do out[scheme] = l.address end
  return out
end

-- Opens the listener of `scheme` on `address` ("[HOST:]PORT"); raises a usage
-- error for a malformed address and an error naming the address when it
-- cannot be had.
local function listen(self, server, scheme, address, flag, wrap)
  local host, port = M.parse_address(address)
  if not host then
    errors.usage(string.format("%s expects [HOST:]PORT, got '%s'", flag, tostring(address)),
      "e.g. " .. flag .. (scheme == "https" and " :443" or " :80") .. " or " .. flag .. " 127.0.0.1:8080")
  end
  local access = os.getenv(M.ACCESS_LOG_ENV) ~= "off"
  local ig, err, code = net_ingress.listen({
    host = host, port = port, scheme = scheme, wrap = wrap, metrics = server.metrics_registry,
    on_access = access and function(e) server.log:info("%s", M.access_line(e)) end or nil,
    on_event = function(kind, detail)
      if kind == "error" then server.log:error("ingress: %s", tostring(detail)) end
    end,
  })
  if not ig then
    errors.raise(code or "EADDRINUSE", string.format("cannot listen on %s for %s: %s", address, flag, tostring(err)),
      { hint = "choose another address with " .. flag .. " [HOST:]PORT (below 1024 needs root)" })
  end
  local shown = host:find(":", 1, true) and ("[" .. host .. "]:" .. port) or (host .. ":" .. port)
  self.listeners[scheme] = { ig = ig, scheme = scheme, host = host, port = port, address = shown }
  server.log:info("ingress (%s) on %s", scheme, shown)
end

--- Starts the ingress of `server` (log, supervisor, metrics_registry).
-- opts: http ("[HOST:]PORT" or nil: off), https (the same, TLS with a
-- certificate per host name). Returns the ingress, or nil when both are off;
-- raises when an address cannot be had (a listener asked for by name must
-- not silently be missing).
function M.start(server, opts)
  opts = opts or {}
  if not opts.http and not opts.https then return nil end
  local self = setmetatable({ listeners = {}, supervisor = server.supervisor }, Ingress)
  local ok, err = pcall(function()
    if opts.http then listen(self, server, "http", opts.http, "--ingress") end
    if opts.https then listen(self, server, "https", opts.https, "--ingress-tls", tls_wrapper(self, server)) end
  end)
  if not ok then
    self:close()
    error(err, 0)
  end
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
