-- prisn.net.ingress: the HTTP/1.1 reverse proxy that routes by Host and path.
--
--   local ingress = require("prisn.net.ingress")
--   local ig, err, code = ingress.listen({ host = "0.0.0.0", port = 8080, -- or handle = a bound luv tcp
--     scheme = "http", wrap = function(tcp) return stream end, metrics = registry,
--     on_access = function(entry) end, on_event = function(kind, ...) end,
--     limits = { max_body_bytes, max_header_bytes, header_timeout_ms, idle_timeout_ms, backend_timeout_ms,
--                wait_for_backend_ms, connect_timeout_ms } })
--   ig:set_routes({ { host = "api.example.com", path = "/v1", key = "default/api",
--     backends = { { id = "api-1", host = "127.0.0.1", port = 40001 } } } })
--   ig:in_flight("api-1")  -- requests in flight to that backend
--   ig:port()              -- the port listened on (port 0: the one chosen)
--   ig:stats()             -- { accepted, active, requests, in_flight, connect_failures,
--                          --   backends = { [id] = { in_flight, idle, connections, draining } } }
--   ig:close(cb)
--
-- Every client connection is parsed request by request (prisn.core.http,
-- bodies streamed); each request goes to its route (routes.lua: Host without
-- case or port, longest path prefix on segment boundaries) and to the next
-- backend of that route in turn, over a kept-alive connection when one is
-- idle (backends.lua). What the ingress answers itself: 404 (no route), 503
-- (the route has no backend within wait_for_backend_ms), 502 (every
-- backend refused, or one failed before answering), 504 (no answer within
-- backend_timeout_ms), 400 (malformed), 408 (no complete head within
-- header_timeout_ms), 413 (body over max_body_bytes), 431 (head over
-- max_header_bytes), 405 (CONNECT), 505 (not HTTP/1.0 or 1.1). A client connection is
-- client.lua, one request through it exchange.lua, the bytes written
-- wire.lua.
--
-- wrap(tcp) is called for each accepted socket and returns the stream to
-- use instead (TLS): it needs read_start, read_stop, write(string[, cb]),
-- shutdown(cb), close, is_closing and get_write_queue_size, as a luv stream
-- has. It may raise or return nil: that connection is closed (on_event
-- "error"). The client's address is read from tcp. The process must ignore
-- SIGPIPE (the server does): a write to a client that has gone raises it.
--
-- opts.handle: a luv tcp already bound (the data plane hands sockets over);
-- the ingress listens on it and owns it from then on (close closes it).
--
-- set_routes replaces the table; a backend no route names any more drains:
-- no new request, its in-flight ones finish, then its idle connections are
-- closed (ig:in_flight(id) counts down to 0).
--
-- on_access(entry): one per request, { host, method, path, status, bytes (of
-- the response body), duration_ms, client, route_key, backend } (status 499:
-- the client went away first). on_event(kind, ...): "connect_failed",
-- backend id, error; "no_backend", route key; "error", traceback (a bug here:
-- that connection is closed, the listener goes on).
--
-- Not here: TLS (wrap does it), HTTP/2, caching, compression, rewriting
-- paths, health checks (the caller keeps only ready backends in routes).
local uv = require("luv")
local errors = require("prisn.error")
local address = require("prisn.net.address")
local routes_mod = require("prisn.net.ingress.routes")
local backends = require("prisn.net.ingress.backends")
local exchange = require("prisn.net.ingress.exchange")
local client = require("prisn.net.ingress.client")

local M = {}

M.DEFAULT_LIMITS = {
  max_body_bytes = 64 * 1024 * 1024,
  max_header_bytes = 16 * 1024,
  header_timeout_ms = 10000,
  idle_timeout_ms = 60000,
  backend_timeout_ms = 60000,
  wait_for_backend_ms = 3000,
  connect_timeout_ms = 1000,
}

-- How often deadlines (timeouts, waits, idle backend connections) are checked.
M.SWEEP_MS = 50

local Ingress = {}
Ingress.__index = Ingress

-- Metrics ---------------------------------------------------------------------

local families_of = setmetatable({}, { __mode = "k" })

local FAMILIES = {
  { "requests", "counter", "prisn_ingress_requests_total", "Requests through the ingress, by host and status class.",
    { "host", "class" } },
  { "duration", "histogram", "prisn_ingress_request_duration_seconds",
    "Time from a request's head to the end of its response, by host.", { "host" } },
  { "in_flight", "gauge", "prisn_ingress_requests_in_flight", "Requests the ingress is serving now, by host.",
    { "host" } },
  { "connect_failures", "counter", "prisn_ingress_backend_connect_failures_total",
    "Connects from the ingress to a backend that failed (refused, reset, timed out), by host.", { "host" } },
}

--- The ingress metric families in `registry` (registered once per registry).
-- The host label is a route's host, or "" for a request that matched none.
function M.metrics(registry)
  local families = families_of[registry]
  if families then return families end
  families = {}
  for _, f in ipairs(FAMILIES) do
    local key, kind, name, help, labels = f[1], f[2], f[3], f[4], f[5]
    families[key] = registry:get(name) or registry[kind](registry, name, help, labels)
  end
  families_of[registry] = families
  return families
end

-- Plumbing the other files use --------------------------------------------------

function Ingress:emit(kind, a, b)
  local fn = self.on_event
  if not fn then return end
  local ok, err = pcall(fn, kind, a, b)
  if not ok and self.log then self.log:warn("ingress: on_event: %s", tostring(err)) end
end

function Ingress:report_bug(err)
  self:emit("error", err)
  if self.log then self.log:error("ingress: %s", err) end
end

--- Runs fn(...) from a luv callback: a bug is reported (on_bug, default
-- the ingress's), the loop goes on. Arguments, not a closure: this runs for
-- every read.
function Ingress:protect(fn, on_bug, ...)
  errors.call("ingress", fn, on_bug or self.on_bug, ...)
end

function Ingress:count_handle()
  self.open_handles = self.open_handles + 1
end

function Ingress:close_handle(handle)
  if handle and not handle:is_closing() then handle:close(self.on_handle_closed) end
end

-- Routes ------------------------------------------------------------------------

--- Replaces the routing table (see routes.lua for the list's form). Requests
-- waiting for a backend are dispatched again; backends left out drain.
-- Raises on a malformed list.
function Ingress:set_routes(list)
  local table_ = routes_mod.build(list)
  self.routes = table_
  local keep = routes_mod.backend_keys(table_)
  for key in pairs(keep) do
    local rec = self.backends[key]
    if rec then rec.draining = false end
  end
  backends.drain_others(self, keep)
  local waiting = {}
  for ex in pairs(self.waiting) do waiting[#waiting + 1] = ex end
  self.waiting = {}
  for _, ex in ipairs(waiting) do exchange.redispatch(ex) end
end

--- Requests in flight to backend `id` now (in a route or draining).
function Ingress:in_flight(id)
  local n = 0
  for _, rec in pairs(self.backends) do
    if rec.id == id then n = n + rec.in_flight end
  end
  return n
end

--- A snapshot: accepted, active (client connections open), requests (ever),
-- in_flight, connect_failures, backends = { [id] = { in_flight, idle,
-- connections (made, ever), draining } }.
function Ingress:stats()
  local per = {}
  for _, rec in pairs(self.backends) do
    local s = per[rec.id] or { in_flight = 0, idle = 0, connections = 0, draining = rec.draining }
    s.in_flight = s.in_flight + rec.in_flight
    s.idle = s.idle + #rec.idle
    s.connections = s.connections + rec.total
    per[rec.id] = s
  end
  return { accepted = self.accepted, active = self.active, requests = self.requests, in_flight = self.in_flight_n,
    connect_failures = self.connect_failures, backends = per }
end

--- The port the ingress listens on (useful with port 0).
function Ingress:port()
  return self.bound_port
end

-- Deadlines ---------------------------------------------------------------------

-- The connections filed under the ticks that have passed (see
-- client.lua's set_deadline_at) are due; one that moved on since is not.
local function sweep(self)
  local now = uv.now()
  local last, wheel = now // self.tick_ms, self.wheel
  for tick = self.swept + 1, last do
    local bucket = wheel[tick]
    if bucket then
      wheel[tick] = nil
      local due = {}
      for conn in pairs(bucket) do due[#due + 1] = conn end
      for _, conn in ipairs(due) do
        if conn.tick == tick then
          conn.tick = nil
          client.expire(conn)
        end
      end
    end
  end
  self.swept = last
  backends.sweep(self, now)
end

-- Listening ---------------------------------------------------------------------

local function on_accept(self, err)
  if err then
    if self.log then self.log:warn("ingress: accept: %s", tostring(err)) end
    return
  end
  if self.closing then return end
  local tcp = uv.new_tcp()
  self:count_handle()
  if not self.server:accept(tcp) then return self:close_handle(tcp) end
  tcp:nodelay(true)
  client.accept(self, tcp)
end

--- Stops listening, closes every connection, then calls callback() once
-- every handle is closed. Idempotent.
function Ingress:close(callback)
  if callback then self.close_callbacks[#self.close_callbacks + 1] = callback end
  if self.closing then
    if self.open_handles == 0 then self:finish_close() end
    return
  end
  self.closing = true
  self.timer:stop()
  self:close_handle(self.timer)
  self:close_handle(self.server)
  local conns = {}
  for conn in pairs(self.conns) do conns[#conns + 1] = conn end
  for _, conn in ipairs(conns) do conn:close() end
  local links = {}
  for link in pairs(self.links) do links[#links + 1] = link end
  for _, link in ipairs(links) do link:close() end
end

function Ingress:finish_close()
  local callbacks = self.close_callbacks
  self.close_callbacks = {}
  for _, cb in ipairs(callbacks) do self:protect(cb) end
end

local function check_opts(opts)
  if type(opts) ~= "table" then error("ingress.listen expects a table of options", 3) end
  if opts.handle == nil then
    local host = opts.host or "0.0.0.0"
    if type(host) ~= "string" or not address.is_ip(host) then
      error("ingress.listen: host must be an IP address, got " .. tostring(host), 3)
    end
    if math.type(opts.port) ~= "integer" or opts.port < 0 or opts.port > 65535 then
      error("ingress.listen: port must be 0-65535, got " .. tostring(opts.port), 3)
    end
  end
  if opts.scheme ~= nil and opts.scheme ~= "http" and opts.scheme ~= "https" then
    error("ingress.listen: scheme must be http or https, got " .. tostring(opts.scheme), 3)
  end
  for _, key in ipairs({ "wrap", "on_access", "on_event" }) do
    if opts[key] ~= nil and type(opts[key]) ~= "function" then
      error("ingress.listen: " .. key .. " must be a function", 3)
    end
  end
  local limits = {}
  for key, v in pairs(M.DEFAULT_LIMITS) do limits[key] = v end
  if opts.limits ~= nil and type(opts.limits) ~= "table" then error("ingress.listen: limits must be a table", 3) end
  for key, v in pairs(opts.limits or {}) do
    if M.DEFAULT_LIMITS[key] == nil then error("ingress.listen: unknown limit " .. tostring(key), 3) end
    if math.type(v) ~= "integer" or v < 1 then
      error("ingress.listen: limits." .. key .. " must be an integer >= 1, got " .. tostring(v), 3)
    end
    limits[key] = v
  end
  return limits
end

--- Starts an ingress (see the top of this file). Returns it, or nil,
-- message, code ("EADDRINUSE", "EACCES", ...). Raises on bad options.
function M.listen(opts)
  local limits = check_opts(opts)
  local self = setmetatable({
    scheme = opts.scheme or "http", wrap = opts.wrap, on_access = opts.on_access, on_event = opts.on_event,
    log = opts.log, limits = limits, routes = {}, backends = {}, conns = {}, links = {}, waiting = {},
    wheel = {}, tick_ms = M.SWEEP_MS, swept = uv.now() // M.SWEEP_MS,
    accepted = 0, active = 0, requests = 0, in_flight_n = 0, connect_failures = 0,
    open_handles = 2, close_callbacks = {},
  }, Ingress)
  self.on_handle_closed = function()
    self.open_handles = self.open_handles - 1
    if self.closing and self.open_handles == 0 then self:finish_close() end
  end
  self.on_bug = function(err) self:report_bug(err) end
  if opts.metrics then self.families = M.metrics(opts.metrics) end

  local server = opts.handle
  local ok, err, code = true, nil, nil
  if not server then
    server = uv.new_tcp()
    ok, err, code = server:bind(opts.host or "0.0.0.0", opts.port)
  end
  if ok then
    ok, err, code = server:listen(opts.backlog or 511, function(aerr)
      self:protect(on_accept, nil, self, aerr)
    end)
  end
  if not ok then
    if not opts.handle then server:close() end
    return nil, address.listen_error(opts.host or "0.0.0.0", opts.port or 0, err, code), code
  end
  self.server = server
  self.bound_port = server:getsockname().port
  self.timer = uv.new_timer()
  self.timer:start(M.SWEEP_MS, M.SWEEP_MS, function() self:protect(sweep, nil, self) end)
  self.timer:unref()
  return self
end

return M
