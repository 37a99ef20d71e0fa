-- prisn.net.ingress.backends: the ingress's backends and their keep-alive
-- connections.
--
-- A backend record (one per id@host:port) counts the requests in flight to
-- it and keeps a bounded stack of idle connections (MAX_IDLE; the most
-- recent first, so a burst's extra connections age out). An idle connection
-- is still read: the backend closing it (or saying anything) removes it.
-- Idle connections older than IDLE_MS are closed by the sweep.
--
-- Draining: a record whose backend left every route gets no new request;
-- its in-flight requests go on, and when the last one ends its idle
-- connections are closed and the record is dropped. A connection that ends
-- a request of a draining backend is closed, not kept.
--
-- Not here: choosing a backend (the exchange asks for a given record),
-- health checks, TLS to backends.
local uv = require("luv")
local http = require("prisn.core.http")

local M = {}

M.MAX_IDLE = 32
-- A backend's response head may be larger than a client's request head
-- (cookies, CSP): the ingress trusts its backends more than its clients.
M.MAX_RESPONSE_HEAD = 64 * 1024
-- Shorter than the keep-alive timeouts of common servers (gunicorn 2 s,
-- Node 5 s), so the ingress closes an idle connection before the backend
-- does and rarely sends a request into one the backend is closing.
M.IDLE_MS = 1500

-- Starts a connect of tcp to host:port; cb(err). A test hook, as in proxy.lua.
function M.tcp_connect(tcp, host, port, cb)
  return tcp:connect(host, port, cb)
end

local function NOOP() end

local Link = {}
Link.__index = Link
M.Link = Link

--- The record of backend `b` ({ id, host, port, key }), made on first use.
function M.record(ig, b)
  local rec = ig.backends[b.key]
  if not rec then
    rec = { id = b.id, host = b.host, port = b.port, key = b.key, in_flight = 0, idle = {}, total = 0 }
    ig.backends[b.key] = rec
  end
  rec.draining = false
  return rec
end

local function remove_idle(rec, link)
  for i, l in ipairs(rec.idle) do
    if l == link then
      table.remove(rec.idle, i)
      return
    end
  end
end

--- Closes the link's socket (idempotent).
function Link:close()
  if self.closed then return end
  self.closed = true
  remove_idle(self.rec, self)
  self.ig.links[self] = nil
  self.parser:close()
  self.ig:close_handle(self.tcp)
end

-- While idle, anything from the backend (data, EOF, an error) ends the link.
local function on_idle_read(link)
  link:close()
end

local function link_read(link, err, data)
  if link.closed then return end
  local owner = link.owner
  if owner then return owner:on_backend_read(err, data) end
  on_idle_read(link)
end

--- Sets who gets the link's reads: owner:on_backend_read(err, data), or,
-- with nil, the link is idle.
function Link:set_owner(owner)
  self.owner = owner
end

local function new_link(ig, rec, tcp)
  local link = setmetatable({ ig = ig, rec = rec, tcp = tcp, reused = false,
    parser = http.new_parser("response", { stream_body = true, max_header_bytes = M.MAX_RESPONSE_HEAD }) }, Link)
  link.on_read = function(err, data) ig:protect(link_read, nil, link, err, data) end
  ig.links[link] = true
  return link
end

--- Gets a connection to rec: an idle one (reused = true) at once, or a new
-- one; cb(link) or cb(nil, err) once connected. Returns a cancel function
-- that abandons a pending connect (the socket is closed).
function M.acquire(ig, rec, cb)
  while #rec.idle > 0 do
    local link = table.remove(rec.idle, 1)
    if not link.closed and not link.tcp:is_closing() then
      link.reused = true
      link.parser:reset()
      cb(link)
      return NOOP
    end
  end
  local tcp = uv.new_tcp()
  ig:count_handle()
  local done = false
  local function cancel()
    if done then return end
    done = true
    ig:close_handle(tcp)
  end
  local ok, err = M.tcp_connect(tcp, rec.host, rec.port, function(cerr)
    ig:protect(function()
      if done then return end
      done = true
      if cerr then
        ig:close_handle(tcp)
        return cb(nil, cerr)
      end
      tcp:nodelay(true)
      local link = new_link(ig, rec, tcp)
      rec.total = rec.total + 1
      if not tcp:read_start(link.on_read) then
        link:close()
        return cb(nil, "read_start failed")
      end
      cb(link)
    end)
  end)
  if not ok then
    done = true
    ig:close_handle(tcp)
    cb(nil, err)
  end
  return cancel
end

--- Closes rec's idle links and forgets it once it is draining and idle.
function M.settle(ig, rec)
  if not rec.draining or rec.in_flight > 0 then return end
  while #rec.idle > 0 do rec.idle[1]:close() end
  if ig.backends[rec.key] == rec then ig.backends[rec.key] = nil end
end

--- Hands `link` back after a request: kept idle when `reusable`, the
-- backend is not draining and the stack has room; closed otherwise.
function M.release(ig, link, reusable)
  if link.closed then return end
  link.owner = nil
  local rec = link.rec
  if reusable and not rec.draining and not ig.closing and #rec.idle < M.MAX_IDLE then
    link.idle_since = uv.now()
    link.parser:reset()
    -- it may have been paused by backpressure: an idle link is always read
    link.tcp:read_stop()
    if not link.tcp:read_start(link.on_read) then return link:close() end
    table.insert(rec.idle, 1, link)
  else
    link:close()
  end
end

--- Marks every record not in `keep` (a set of keys) draining, and settles
-- those already idle.
function M.drain_others(ig, keep)
  local recs = {}
  for key, rec in pairs(ig.backends) do
    if not keep[key] then recs[#recs + 1] = rec end
  end
  for _, rec in ipairs(recs) do
    rec.draining = true
    M.settle(ig, rec)
  end
end

--- Closes idle links older than IDLE_MS.
function M.sweep(ig, now)
  local old = {}
  for _, rec in pairs(ig.backends) do
    for _, link in ipairs(rec.idle) do
      if now - link.idle_since > M.IDLE_MS then old[#old + 1] = link end
    end
  end
  for _, link in ipairs(old) do link:close() end
end

return M
