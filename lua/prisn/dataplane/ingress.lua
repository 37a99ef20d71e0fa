-- prisn.dataplane.ingress: the ingress's HTTP and HTTPS listeners, a service
-- of the data plane (kind "ingress"). Each listener is a prisn.net.ingress
-- with the routes and, for HTTPS, the certificates the server last sent, so
-- host names keep answering while the server is away (#19).
--
-- The server decides which certificate a host name gets (files polled,
-- secrets, self-signed: prisn.server.ingress.certs) and sends the PEM texts;
-- this service only parses them into TLS pairs and picks one by SNI. The
-- control socket is 0600 in a 0700 home, so the keys travel no further
-- than the files they came from.
--
-- Ops:
--   sync     listeners = { http = { host, port }, https = ... }, routes,
--            certs, default, access_log: the full state. A listener whose
--            host and port did not change is kept (no re-bind: no refused
--            connection across a server restart); one not named closes.
--            [ bound = { [scheme] = port }, failed = { [scheme] = { code,
--            message } }, in_flight ]
--   listen   listeners: only the listeners (the server's start, before its
--            routes are whole: the last routes stay). [ bound, failed ]
--   routes   routes = [ { host, path, key, backends = [ { id, host, port } ] } ]
--            [ in_flight = { [backend id] = n } as of the new table ]
--   certs    certs = { [host name] = { cert, key } }, default = { cert, key }
--   stats    [ listeners = { [scheme] = prisn.net.ingress stats } ]
-- Events: "in_flight" { backends = { [id] = n } } when it changed (the
-- supervisor waits for 0 before it stops a draining instance); "access" {
-- entries = [ on_access entries ] } every tick while a server is connected
-- (it writes them to its log); with none connected the lines go to
-- dataplane.log, so no request goes unlogged.
local uv = require("luv")
local net_ingress = require("prisn.net.ingress")
local tls = require("prisn.net.tls")
local drain = require("prisn.dataplane.drain")

local M = {}

-- Access entries kept for the next tick at most (a flood is cut, counted).
M.MAX_PENDING_ACCESS = 10000

--- One access log line of entry `e` (prisn.net.ingress's on_access, or
-- the same come over the control socket: numbers as floats); the host as
-- routed, without the port.
function M.access_line(e)
  local host = tostring(e.host or "-"):gsub(":%d+$", "")
  return string.format("ingress %s %s%s %s %dB %dms %s %s %s", tostring(e.method or "-"), host,
    tostring(e.path or ""), tostring(math.tointeger(e.status) or e.status or "-"), math.tointeger(e.bytes or 0) or 0,
    math.floor((e.duration_ms or 0) + 0.5), tostring(e.client or "-"), tostring(e.route_key or "-"),
    tostring(e.backend or "-"))
end

-- JSON numbers arrive as floats; the ingress wants integers.
local function normalize_routes(routes)
  for _, r in ipairs(routes or {}) do
    for _, b in ipairs(r.backends or {}) do b.port = math.tointeger(b.port) or b.port end
  end
  return routes or {}
end

--- What to do to go from `current` (scheme -> { host, port }) to `desired`
-- (the same): { open = { scheme }, keep = { scheme }, close = { scheme } },
-- sorted. Pure: the reconcile's decision (a moved listener is closed and
-- opened).
function M.plan(current, desired)
  local out = { open = {}, keep = {}, close = {} }
  for scheme, want in pairs(desired) do
    local have = current[scheme]
    if have and have.host == want.host and have.port == math.tointeger(want.port) then
      out.keep[#out.keep + 1] = scheme
    else
      if have then out.close[#out.close + 1] = scheme end
      out.open[#out.open + 1] = scheme
    end
  end
  for scheme in pairs(current) do
    if not desired[scheme] then out.close[#out.close + 1] = scheme end
  end
  table.sort(out.open)
  table.sort(out.keep)
  table.sort(out.close)
  return out
end

local Service = {}
Service.__index = Service

--- The service for data-plane `host` (log, metrics, connected()). deps.listen
-- replaces prisn.net.ingress.listen, deps.tls prisn.net.tls (specs).
function M.new(host, deps)
  deps = deps or {}
  return setmetatable({ host = host, open_listeners = {}, routes = {}, pems = {}, pairs = {}, access_log = true,
    pending = {}, dropped = 0, last_in_flight = "", listen = deps.listen or net_ingress.listen,
    tls = deps.tls or tls }, Service)
end

-- Certificates ------------------------------------------------------------------

-- A pair from `pem` ({ cert, key }), reusing the one of the same texts.
function Service:pair_of(pem, old_pem, old_pair)
  if old_pem and old_pair and old_pem.cert == pem.cert and old_pem.key == pem.key then return old_pair end
  local pair, err = self.tls.load_pair(pem.cert, pem.key)
  if not pair and self.host.log then self.host.log:error("ingress: a certificate does not load: %s", tostring(err)) end
  return pair
end

function Service:op_certs(msg)
  local pems, pairs_ = {}, {}
  for name, pem in pairs(msg.certs or {}) do
    if type(pem) == "table" and pem.cert and pem.key then
      name = name:lower()
      pems[name] = pem
      pairs_[name] = self:pair_of(pem, self.pems[name], self.pairs[name])
    end
  end
  self.pems, self.pairs = pems, pairs_
  self:set_default(msg.default)
  return {}
end

-- The pair of host names no certificate was sent for.
function Service:set_default(pem)
  if type(pem) ~= "table" or not pem.cert then return end
  self.default_pair = self:pair_of(pem, self.default_pem, self.default_pair) or self.default_pair
  self.default_pem = pem
end

-- The TLS wrapper of the https listener: SNI picks from the pairs the
-- server sent (looked up at each handshake, so a new certificate needs no
-- new listener). A failed handshake (a scanner) is counted, not logged.
function Service:tls_wrap()
  if not self.default_pair then return nil, "no default certificate was sent", "invalid" end
  local ctx = self.tls.server_context({ default = self.default_pair,
    sni = function(name) return type(name) == "string" and self.pairs[name:lower()] or nil end })
  self.handshake_failures = self.handshake_failures or 0
  return self.tls.wrapper(ctx, { on_error = function() self.handshake_failures = self.handshake_failures + 1 end })
end

-- Listeners -----------------------------------------------------------------------

function Service:on_access(e)
  if not self.access_log then return end
  local connected = self.host.connected
  if connected and not connected() then
    if self.host.log then self.host.log:info("%s", M.access_line(e)) end
    return
  end
  if #self.pending >= M.MAX_PENDING_ACCESS then
    self.dropped = self.dropped + 1
    return
  end
  self.pending[#self.pending + 1] = e
end

-- Opens the listener of `scheme` at want = { host, port }; fd: a listening
-- socket inherited at an upgrade. Returns the port, or nil, message, code.
function Service:open(scheme, want, fd)
  local wrap
  if scheme == "https" then
    local err, code
    wrap, err, code = self:tls_wrap()
    if not wrap then return nil, err, code end
  end
  local handle
  if fd then
    handle = uv.new_tcp()
    local ok, err, code = handle:open(fd)
    if not ok then
      handle:close()
      return nil, err, code
    end
  end
  local log = self.host.log
  local ig, err, code = self.listen({ host = want.host, port = math.tointeger(want.port), handle = handle,
    scheme = scheme, wrap = wrap, metrics = self.host.metrics, log = log,
    on_access = function(e) self:on_access(e) end,
    on_event = function(kind, detail)
      if kind == "error" and log then log:error("ingress: %s", tostring(detail)) end
    end })
  if not ig then return nil, err, code end
  ig:set_routes(self.routes)
  self.open_listeners[scheme] = { host = want.host, port = math.tointeger(want.port), ig = ig }
  return ig:port()
end

function Service:close_one(scheme)
  local l = self.open_listeners[scheme]
  if not l then return end
  self.open_listeners[scheme] = nil
  l.ig:close(function() end)
end

function Service:op_listen(msg)
  self:set_default(msg.default)
  local desired = {}
  for scheme, want in pairs(msg.listeners or {}) do
    if scheme == "http" or scheme == "https" then desired[scheme] = want end
  end
  local plan = M.plan(self.open_listeners, desired)
  for _, scheme in ipairs(plan.close) do self:close_one(scheme) end
  local bound, failed = {}, {}
  for _, scheme in ipairs(plan.keep) do bound[scheme] = self.open_listeners[scheme].ig:port() end
  for _, scheme in ipairs(plan.open) do
    local port, err, code = self:open(scheme, desired[scheme])
    if port then
      bound[scheme] = port
    else
      failed[scheme] = { code = code or "failed", message = err }
    end
  end
  return { bound = bound, failed = failed, kept = #plan.keep, opened = #plan.open }
end

-- Requests in flight per backend id, over every listener.
function Service:in_flight()
  local out = {}
  for _, l in pairs(self.open_listeners) do
    for id, s in pairs(l.ig:stats().backends) do out[id] = (out[id] or 0) + s.in_flight end
  end
  return out
end

function Service:op_routes(msg)
  self.routes = normalize_routes(msg.routes)
  for _, l in pairs(self.open_listeners) do l.ig:set_routes(self.routes) end
  -- The counts as of the new table: a backend that left it gets no new
  -- request, so its count only goes down from here (the drain's start).
  return { in_flight = self:in_flight() }
end

function Service:op_sync(msg)
  if msg.access_log ~= nil then self.access_log = msg.access_log ~= false end
  self:op_certs(msg)
  local reply = self:op_routes(msg)
  local listened = self:op_listen(msg)
  listened.in_flight = reply.in_flight
  return listened
end

function Service:op_stats()
  local out = {}
  for scheme, l in pairs(self.open_listeners) do out[scheme] = l.ig:stats() end
  return { listeners = out, handshake_failures = self.handshake_failures or 0 }
end

--- Called by the host every tick: the access entries, or the in-flight
-- counts when they changed (the entries first: both go on the next tick).
function Service:tick()
  if #self.pending > 0 then
    local entries = self.pending
    self.pending = {}
    local connected = self.host.connected
    if connected and not connected() then
      -- The server went between the request and this tick: its lines stay here.
      for _, e in ipairs(entries) do self.host.log:info("%s", M.access_line(e)) end
      return nil
    end
    local ev = { event = "access", entries = entries }
    if self.dropped > 0 then
      ev.dropped, self.dropped = self.dropped, 0
    end
    return ev
  end
  local counts, parts = self:in_flight(), {}
  for id, n in pairs(counts) do parts[#parts + 1] = id .. "=" .. n end
  table.sort(parts)
  local signature = table.concat(parts, ",")
  if signature == self.last_in_flight then return nil end
  self.last_in_flight = signature
  return { event = "in_flight", backends = counts }
end

-- Upgrades ------------------------------------------------------------------------

--- The state as sync takes it (an upgrade hands it on; it holds the keys:
-- the handover file is 0600 in the 0700 home and removed once read).
function Service:snapshot()
  local listeners = {}
  for scheme, l in pairs(self.open_listeners) do listeners[scheme] = { host = l.host, port = l.port } end
  return { listeners = listeners, routes = self.routes, certs = self.pems, default = self.default_pem,
    access_log = self.access_log }
end

--- The listening sockets to hand over: { { name = scheme, fd } }.
function Service:listeners()
  local out = {}
  for scheme, l in pairs(self.open_listeners) do
    local fd = l.ig.server and l.ig.server:fileno()
    if fd then out[#out + 1] = { name = scheme, fd = fd } end
  end
  return out
end

--- Adopts an upgrade's snapshot and sockets (scheme -> fd).
function Service:adopt(snapshot, fds)
  self.access_log = snapshot.access_log ~= false
  self:op_certs(snapshot)
  self.routes = normalize_routes(snapshot.routes)
  for scheme, want in pairs(snapshot.listeners or {}) do
    local ok, err = self:open(scheme, want, fds[scheme])
    if not ok and self.host.log then self.host.log:error("upgrade: ingress %s: %s", scheme, tostring(err)) end
  end
end

-- A client connection with nothing in flight, between keep-alive requests.
-- One still in its TLS handshake or sending its first head is not idle: it
-- was accepted before the hand-over and its request is served here (closing
-- it failed about one HTTPS request in 600 across an upgrade).
local function idle(conn)
  return not conn.ex and #(conn.queue or {}) == 0 and conn.deadline_kind == "idle"
end

--- Stops accepting (the new process accepts now); requests in flight
-- finish, idle keep-alive connections are closed as they become idle;
-- done() once none is open, or after drain.MAX_MS.
function Service:stop_accepting(done)
  local list = {}
  for _, l in pairs(self.open_listeners) do
    list[#list + 1] = l.ig
    l.ig:close_handle(l.ig.server)
  end
  drain.wait(function()
    local open = 0
    for _, ig in ipairs(list) do
      for conn in pairs(ig.conns) do
        if idle(conn) then conn:close_after_write() end
      end
      open = open + ig.active
    end
    return open
  end, function(left)
    if left > 0 and self.host.log then
      self.host.log:warn("upgrade: ingress: closing %d connection(s) still open after %d ms", left, drain.MAX_MS)
    end
    done()
  end)
end

function Service:close(done)
  local listeners = self.open_listeners
  self.open_listeners = {}
  drain.close_all(listeners, function(l, one) l.ig:close(one) end, done)
end

return M
