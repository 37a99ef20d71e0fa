-- prisn.net.proxy: the TCP load balancer in front of a deployment's replicas.
--
--   local proxy = require("prisn.net.proxy")
--   local p, err, code = proxy.listen({ host = "0.0.0.0", port = 8080, name = "default/api",
--     strategy = "round-robin", metrics = registry, on_event = fn, wait_for_backend_ms = 3000 })
--   p:set_backends({ { id = "api-1", host = "127.0.0.1", port = 40001 }, ... })
--   p:connections("api-1")  -- open connections to that backend now
--   p:stats()  -- { accepted, active, failed, connect_failures, per_backend = { [id] = { active, total } } }
--   p:close(function() ... end)
--
-- Each accepted client is given a backend from the current pool: round-robin,
-- or the one with the fewest open connections ("least-connections", ties in
-- turn). The client is not read until the backend has answered the connect,
-- so a refused, reset or slow (connect_timeout_ms) backend costs nothing but
-- time: the next backend of the pool is tried, each at most once. That is what
-- lets a rolling update show no failed requests. A client that finds no
-- backend (empty pool, or every backend failed) waits wait_for_backend_ms for
-- set_backends to bring one, then is closed ("no_backend").
--
-- set_backends replaces the pool; connections already open to a backend that
-- left it go on untouched (draining) and p:connections(id) counts them down.
--
-- Data is copied both ways as it arrives. When the other side's write queue
-- grows past HIGH_WATER this side stops being read until the queue drains
-- (backpressure: memory stays bounded whatever the transfer size). EOF on one
-- side shuts down writing on the other once its queue is flushed; the pair is
-- closed when both directions are done, or at once on an error.
--
-- on_event(kind, ...): "connect_failed", backend id, error; "no_backend",
-- message; "error", traceback (a bug in this module: that connection is
-- closed, the listener goes on). Callbacks from luv never raise.
--
-- Not here: health checks (the caller removes a failing backend from the
-- pool), TLS, PROXY protocol, idle timeouts, name resolution (backend hosts are
-- IP addresses).
local uv = require("luv")
local errors = require("prisn.error")
local address = require("prisn.net.address")

local M = {}

M.DEFAULTS = {
  strategy = "round-robin",
  wait_for_backend_ms = 3000,
  connect_timeout_ms = 1000,
  backlog = 511,
}

-- Past this many bytes queued for writing on one side, the other side is not
-- read until the queue is back under it.
local HIGH_WATER = 64 * 1024
-- The timer checking connect and wait deadlines runs this often while any are
-- pending.
local SWEEP_MS = 100

-- Starts a connect of tcp to host:port; cb(err) when it completes. A test
-- hook: a spec replaces it to simulate a backend that never answers.
function M.tcp_connect(tcp, host, port, cb)
  return tcp:connect(host, port, cb)
end

local STRATEGIES = { ["round-robin"] = true, ["least-connections"] = true }

local protect, pairs, next = errors.call, pairs, next

local Proxy = {}
Proxy.__index = Proxy

-- Metrics ---------------------------------------------------------------------

local families_of = setmetatable({}, { __mode = "k" })

local FAMILIES = {
  { "accepted", "counter", "prisn_proxy_connections_total", "Client connections accepted by a deployment's proxy." },
  { "active", "gauge", "prisn_proxy_connections_active", "Client connections open through a deployment's proxy." },
  { "connect_failures", "counter", "prisn_proxy_backend_connect_failures_total",
    "Connects from a deployment's proxy to an instance that failed (refused, reset, timed out)." },
  { "no_backend", "counter", "prisn_proxy_no_backend_total",
    "Client connections a deployment's proxy closed because no instance could take them." },
}

--- The proxy metric families in `registry`, registered on first use (one
-- set per registry, shared by every proxy; label: proxy = the proxy's name).
function M.metrics(registry)
  local families = families_of[registry]
  if families then return families end
  families = {}
  for _, f in ipairs(FAMILIES) do
    local key, kind, name, help = f[1], f[2], f[3], f[4]
    families[key] = registry:get(name) or registry[kind](registry, name, help, { "proxy" })
  end
  families_of[registry] = families
  return families
end

-- Bookkeeping -----------------------------------------------------------------

local function emit(self, kind, a, b)
  local fn = self.on_event
  if not fn then return end
  local ok, err = pcall(fn, kind, a, b)
  if not ok and self.log then self.log:warn("proxy %s: on_event: %s", self.name, tostring(err)) end
end

local function close_handle(self, handle)
  if handle and not handle:is_closing() then handle:close(self.on_handle_closed) end
end

-- The per-id counters of a backend that left the pool are dropped once its
-- last connection closes.
local function release_backend(self, target)
  local stats = target.stats
  stats.active = stats.active - 1
  if stats.active == 0 and not self.in_pool[target.id] and self.per_backend[target.id] == stats then
    self.per_backend[target.id] = nil
  end
end

local function ensure_sweep(self)
  if self.sweeping or self.closing then return end
  if not self.timer then
    self.timer = uv.new_timer()
    self.open_handles = self.open_handles + 1
  end
  self.sweeping = true
  self.timer:start(SWEEP_MS, SWEEP_MS, self.on_sweep)
end

-- Connections -----------------------------------------------------------------

local Conn = {}
Conn.__index = Conn

function Conn:close()
  if self.closed then return end
  self.closed = true
  local p = self.proxy
  p.conns[self] = nil
  p.connecting[self] = nil
  p.waiting[self] = nil
  p.active = p.active - 1
  if p.m_active then p.m_active:dec() end
  if self.target then
    release_backend(p, self.target)
    self.target = nil
  end
  close_handle(p, self.client)
  close_handle(p, self.backend)
end

-- The client is closed without having reached a backend.
function Conn:give_up(message)
  local p = self.proxy
  p.failed = p.failed + 1
  if p.m_no_backend then p.m_no_backend:inc() end
  emit(p, "no_backend", message)
  self:close()
end

-- One side's write side is shut down (or could not be): when both are, the
-- pair is done.
function Conn:shut(side)
  self[side] = true
  if self.client_shut and self.backend_shut then self:close() end
end

local function on_data(conn, err, data, src, dst, paused_key, on_written, shut_key, on_shutdown)
  if conn.closed then return end
  if err then return conn:close() end
  if data then
    -- No callback per write: one is asked for only when src is paused (an
    -- empty write completes after everything queued before it).
    if not dst:write(data) then return conn:close() end
    if dst:get_write_queue_size() > HIGH_WATER then
      src:read_stop()
      conn[paused_key] = true
      if not dst:write("", on_written) then return conn:close() end
    end
    return
  end
  -- EOF: no more from src; dst gets a FIN once what is queued for it is out.
  if not dst:shutdown(on_shutdown) then conn:shut(shut_key) end
end

local function on_written(conn, err, src, paused_key, on_read)
  if conn.closed then return end
  if err then return conn:close() end
  -- everything queued before the marker write is out, and src was not read since
  if not conn[paused_key] then return end
  conn[paused_key] = false
  if not src:read_start(on_read) then conn:close() end
end

local function report_bug(self, conn, err)
  emit(self, "error", err)
  if self.log then self.log:error("proxy %s: %s", self.name, err) end
  if conn then pcall(conn.close, conn) end
end

-- Runs fn(conn, ...) from a luv callback: a bug closes that connection only.
local function guard(conn, fn, ...)
  protect("proxy", fn, conn.on_bug, conn, ...)
end

local function client_data(c, err, data)
  on_data(c, err, data, c.client, c.backend, "client_paused", c.on_to_backend, "backend_shut", c.on_backend_shut)
end
local function backend_data(c, err, data)
  on_data(c, err, data, c.backend, c.client, "backend_paused", c.on_to_client, "client_shut", c.on_client_shut)
end
local function to_backend(c, err) on_written(c, err, c.client, "client_paused", c.on_client_read) end
local function to_client(c, err) on_written(c, err, c.backend, "backend_paused", c.on_backend_read) end

-- A connection: two handles and the six callbacks luv calls for them (luv
-- passes no context, so each is a small closure over the connection).
local function new_conn(self, client)
  local conn = setmetatable({ proxy = self, client = client, deadline = uv.now() + self.wait_ms }, Conn)
  conn.on_bug = function(err) report_bug(self, conn, err) end
  conn.on_client_read = function(err, data) guard(conn, client_data, err, data) end
  conn.on_backend_read = function(err, data) guard(conn, backend_data, err, data) end
  conn.on_to_backend = function(err) guard(conn, to_backend, err) end
  conn.on_to_client = function(err) guard(conn, to_client, err) end
  conn.on_backend_shut = function() guard(conn, Conn.shut, "backend_shut") end
  conn.on_client_shut = function() guard(conn, Conn.shut, "client_shut") end
  return conn
end

-- Backend choice ----------------------------------------------------------------

-- The next backend for a client that already tried the keys in `tried` (nil:
-- none), or nil when the pool has nothing left to try.
function Proxy:pick(tried)
  local pool = self.pool
  local n = #pool
  if n == 0 then return nil end
  local start = self.turn % n
  self.turn = self.turn + 1
  local best, best_active
  for k = 0, n - 1 do
    local b = pool[(start + k) % n + 1]
    if not (tried and tried[b.key]) then
      if not self.least then return b end
      local a = b.stats.active
      if not best or a < best_active then best, best_active = b, a end
    end
  end
  return best
end

local dispatch

local function connect_failed(self, conn, tcp, err)
  self.connecting[conn] = nil
  if conn.backend == tcp then conn.backend = nil end
  close_handle(self, tcp)
  local target = conn.target
  conn.target = nil
  release_backend(self, target)
  conn.tried = conn.tried or {}
  conn.tried[target.key] = true
  self.connect_failures = self.connect_failures + 1
  if self.m_connect_failures then self.m_connect_failures:inc() end
  emit(self, "connect_failed", target.id, tostring(err))
  dispatch(self, conn)
end

local function on_connect(conn, tcp, err)
  local self = conn.proxy
  if conn.closed or conn.backend ~= tcp then return end -- timed out, or the client is gone
  if err then return connect_failed(self, conn, tcp, err) end
  self.connecting[conn] = nil
  conn.deadline = nil
  tcp:nodelay(true)
  local stats = conn.target.stats
  stats.total = stats.total + 1
  if not conn.client:read_start(conn.on_client_read) or not tcp:read_start(conn.on_backend_read) then
    conn:close()
  end
end

local function connect(self, conn, target)
  local tcp = uv.new_tcp()
  self.open_handles = self.open_handles + 1
  conn.backend, conn.target = tcp, target
  target.stats.active = target.stats.active + 1
  conn.connect_deadline = uv.now() + self.connect_timeout_ms
  self.connecting[conn] = true
  ensure_sweep(self)
  local ok, err = M.tcp_connect(tcp, target.host, target.port, function(cerr) guard(conn, on_connect, tcp, cerr) end)
  if not ok then connect_failed(self, conn, tcp, err) end
end

-- Gives conn a backend, or makes it wait for one.
dispatch = function(self, conn)
  if conn.closed then return end
  local target = self:pick(conn.tried)
  if target then return connect(self, conn, target) end
  if uv.now() >= conn.deadline then
    return conn:give_up(#self.pool == 0 and "no backend in the pool" or "every backend refused the connection")
  end
  self.waiting[conn] = true
  ensure_sweep(self)
end

-- Connect timeouts and expired waits.
local function sweep(self)
  local now, expired = uv.now(), nil
  for conn in pairs(self.connecting) do
    if now >= conn.connect_deadline then
      expired = expired or {}
      expired[#expired + 1] = conn
    end
  end
  if expired then
    for _, conn in ipairs(expired) do
      if self.connecting[conn] then connect_failed(self, conn, conn.backend, "ETIMEDOUT: connect timed out") end
    end
    expired = nil
  end
  for conn in pairs(self.waiting) do
    if now >= conn.deadline then
      expired = expired or {}
      expired[#expired + 1] = conn
    end
  end
  if expired then
    for _, conn in ipairs(expired) do
      self.waiting[conn] = nil
      conn:give_up(string.format("no backend within %d ms", self.wait_ms))
    end
  end
  if next(self.connecting) == nil and next(self.waiting) == nil and self.sweeping then
    self.sweeping = false
    self.timer:stop()
  end
end

local function on_accept(self, err)
  if err then
    if self.log then self.log:warn("proxy %s: accept: %s", self.name, tostring(err)) end
    return
  end
  if self.closing then return end
  local client = uv.new_tcp()
  self.open_handles = self.open_handles + 1
  if not self.server:accept(client) then return close_handle(self, client) end
  client:nodelay(true)
  self.accepted = self.accepted + 1
  self.active = self.active + 1
  if self.m_accepted then
    self.m_accepted:inc()
    self.m_active:inc()
  end
  local conn = new_conn(self, client)
  self.conns[conn] = true
  dispatch(self, conn)
end

-- The proxy -------------------------------------------------------------------

local function check_port(port, allow_zero)
  return math.type(port) == "integer" and port >= (allow_zero and 0 or 1) and port <= 65535
end

--- Replaces the pool with `backends`, a list of { id, host (an IP address;
-- "localhost" is 127.0.0.1), port }. New connections go only to these; open ones are left alone. Raises
-- on a malformed list.
function Proxy:set_backends(backends)
  if type(backends) ~= "table" then error("proxy: set_backends expects a list of backends", 2) end
  local pool, in_pool = {}, {}
  for i, b in ipairs(backends) do
    if type(b) ~= "table" or type(b.id) ~= "string" or b.id == "" then
      error(string.format("proxy: backend %d: id must be a non-empty string", i), 2)
    end
    local host = b.host == "localhost" and "127.0.0.1" or b.host
    if type(host) ~= "string" or not address.is_ip(host) then
      error(string.format("proxy: backend %s: host must be an IP address, got %s", b.id, tostring(b.host)), 2)
    end
    if not check_port(b.port) then
      error(string.format("proxy: backend %s: port must be 1-65535, got %s", b.id, tostring(b.port)), 2)
    end
    local stats = self.per_backend[b.id]
    if not stats then
      stats = { active = 0, total = 0 }
      self.per_backend[b.id] = stats
    end
    pool[i] = { id = b.id, host = host, port = b.port, key = b.id .. "@" .. host .. ":" .. b.port, stats = stats }
    in_pool[b.id] = true
  end
  self.pool, self.in_pool = pool, in_pool
  for id, stats in pairs(self.per_backend) do
    if not in_pool[id] and stats.active == 0 then self.per_backend[id] = nil end
  end
  if #pool > 0 and next(self.waiting) then
    local waiters = {}
    for conn in pairs(self.waiting) do waiters[#waiters + 1] = conn end
    self.waiting = {}
    for _, conn in ipairs(waiters) do dispatch(self, conn) end
  end
end

--- Connections open (or being opened) to backend `id` now, whether it is in
-- the pool or draining.
function Proxy:connections(id)
  local stats = self.per_backend[id]
  return stats and stats.active or 0
end

--- A snapshot: accepted (clients, ever), active (clients open now), failed
-- (clients closed without a backend), connect_failures (backend connects that
-- failed), per_backend = { [id] = { active, total } } (total: connections
-- made to it; an id that left the pool is dropped once it has no connection).
function Proxy:stats()
  local per_backend = {}
  for id, s in pairs(self.per_backend) do per_backend[id] = { active = s.active, total = s.total } end
  return { accepted = self.accepted, active = self.active, failed = self.failed,
    connect_failures = self.connect_failures, per_backend = per_backend }
end

--- Changes how new clients are given a backend ("round-robin" or
-- "least-connections"); open connections are left alone. Raises on another.
function Proxy:set_strategy(strategy)
  if not STRATEGIES[strategy] then error("proxy: unknown strategy " .. tostring(strategy), 2) end
  self.least = strategy == "least-connections"
end

--- Stops accepting new clients: the listening socket closes in this process
-- (one it was handed to goes on accepting on it); open connections go on.
function Proxy:stop_accepting()
  close_handle(self, self.server)
end

--- The listening socket's descriptor (to hand it to another process), or nil.
function Proxy:fileno()
  if self.server:is_closing() then return nil end
  return self.server:fileno()
end

--- The port the proxy listens on (useful with port 0).
function Proxy:port()
  return self.bound_port
end

--- Stops listening, closes every connection (and waiting client), then calls
-- callback() once every handle is closed. Idempotent.
function Proxy:close(callback)
  if callback then self.close_callbacks[#self.close_callbacks + 1] = callback end
  if self.closing then
    if self.open_handles == 0 then self:finish_close() end
    return
  end
  self.closing = true
  if self.timer then
    self.timer:stop()
    close_handle(self, self.timer)
  end
  close_handle(self, self.server)
  local conns = {}
  for conn in pairs(self.conns) do conns[#conns + 1] = conn end
  for _, conn in ipairs(conns) do conn:close() end
end

function Proxy:finish_close()
  local callbacks = self.close_callbacks
  self.close_callbacks = {}
  for _, cb in ipairs(callbacks) do protect("proxy", cb, self.on_bug) end
end

--- Starts a proxy listening on opts.host (an IP address, default "0.0.0.0")
-- and opts.port (0: any free port). opts: strategy ("round-robin" or
-- "least-connections"), name (for logs and the metric label), metrics (a
-- prisn.metrics registry), on_event, log (a prisn.server.log), wait_for_backend_ms,
-- connect_timeout_ms, backlog, fd (adopt this listening socket instead of
-- binding one). Returns the proxy, or nil, message, code
-- ("EADDRINUSE", "EACCES", ...). Raises on bad options.
function M.listen(opts)
  if type(opts) ~= "table" then error("proxy.listen expects a table of options", 2) end
  local host = opts.host or "0.0.0.0"
  if type(host) ~= "string" or not address.is_ip(host) then
    error("proxy.listen: host must be an IP address, got " .. tostring(host), 2)
  end
  if not check_port(opts.port, true) then
    error("proxy.listen: port must be 0-65535, got " .. tostring(opts.port), 2)
  end
  local strategy = opts.strategy or M.DEFAULTS.strategy
  if not STRATEGIES[strategy] then
    error("proxy.listen: strategy must be round-robin or least-connections, got " .. tostring(strategy), 2)
  end
  for _, key in ipairs({ "wait_for_backend_ms", "connect_timeout_ms", "backlog" }) do
    local v = opts[key]
    if v ~= nil and (type(v) ~= "number" or v < 0) then
      error("proxy.listen: " .. key .. " must be a number >= 0, got " .. tostring(v), 2)
    end
  end
  if opts.on_event ~= nil and type(opts.on_event) ~= "function" then
    error("proxy.listen: on_event must be a function", 2)
  end
  local name = opts.name or (host .. ":" .. opts.port)

  local self = setmetatable({
    name = name, least = strategy == "least-connections", on_event = opts.on_event, log = opts.log,
    wait_ms = opts.wait_for_backend_ms or M.DEFAULTS.wait_for_backend_ms,
    connect_timeout_ms = opts.connect_timeout_ms or M.DEFAULTS.connect_timeout_ms,
    pool = {}, in_pool = {}, per_backend = {}, turn = 0,
    conns = {}, connecting = {}, waiting = {},
    accepted = 0, active = 0, failed = 0, connect_failures = 0,
    open_handles = 1, close_callbacks = {},
  }, Proxy)
  self.on_handle_closed = function()
    self.open_handles = self.open_handles - 1
    if self.closing and self.open_handles == 0 then self:finish_close() end
  end
  -- A bug outside any one connection is reported and the proxy goes on.
  self.on_bug = function(err) report_bug(self, nil, err) end
  self.on_sweep = function() protect("proxy", sweep, self.on_bug, self) end

  local server = uv.new_tcp()
  self.server = server
  -- opts.fd: a socket already bound and listening, handed over by the
  -- process that had it (a data-plane upgrade): adopted, never re-bound.
  local ok, err, code
  if opts.fd then
    ok, err, code = server:open(opts.fd)
  else
    ok, err, code = server:bind(host, opts.port)
  end
  if ok then
    ok, err, code = server:listen(opts.backlog or M.DEFAULTS.backlog, function(aerr)
      protect("proxy", on_accept, self.on_bug, self, aerr)
    end)
  end
  if not ok then
    server:close()
    return nil, address.listen_error(host, opts.port, err, code), code
  end
  self.bound_port = server:getsockname().port

  if opts.metrics then
    local families = M.metrics(opts.metrics)
    self.m_accepted = families.accepted:labels(name)
    self.m_active = families.active:labels(name)
    self.m_connect_failures = families.connect_failures:labels(name)
    self.m_no_backend = families.no_backend:labels(name)
  end
  return self
end

return M
