-- prisn.net.ingress.client: one client connection of the ingress.
--
-- The connection is read into a request parser (bodies streamed); its
-- entries (a head, body chunks, the end, or a parse error) wait in a queue
-- and are taken in order: one request (an exchange, exchange.lua) at a
-- time, the next head waiting (and the client not read) until the current
-- response is complete, so pipelined requests are answered in order.
--
-- Deadlines are fields of the connection (deadline, deadline_kind) that the
-- ingress's sweep checks (expire): "header" (408), "idle" (close), "wait"
-- (503), "connect" (try the next backend), "backend" (504, or a cut when
-- the response has begun), "linger" (a closing connection that did not
-- finish).
local uv = require("luv")
local http = require("prisn.core.http")
local wire = require("prisn.net.ingress.wire")
local exchange = require("prisn.net.ingress.exchange")

local M = {}

-- How long a closing client connection may take to flush what it was sent.
local LINGER_MS = 2000

local answer, abort, backend_failed = exchange.answer, exchange.abort, exchange.backend_failed

local Conn = {}
Conn.__index = Conn

--- Sets (or, kind nil, clears) the connection's deadline: kind in ms.
function Conn:set_deadline(kind, ms)
  if kind then
    self.deadline, self.deadline_kind = uv.now() + ms, kind
  else
    self.deadline, self.deadline_kind = nil, nil
  end
end

-- Reads the client unless backpressure, a waiting request or a close stops it.
function Conn:update_reading()
  if self.closed then return end
  local want = not self.paused and #self.queue == 0 and not self.closing_after and not self.eof
  if want and not self.reading then
    self.reading = true
    if not self.stream:read_start(self.on_read) then self:close() end
  elseif not want and self.reading then
    self.reading = false
    self.stream:read_stop()
  end
end

function Conn:write(data)
  if self.closed then return false end
  if not self.stream:write(data) then
    self:close()
    return false
  end
  return true
end

--- Closes the client connection at once; an exchange in progress ends (499).
function Conn:close()
  if self.closed then return end
  self.closed = true
  local ex = self.ex
  if ex then abort(ex, 499) end
  local ig = self.ig
  ig.conns[self] = nil
  ig.active = ig.active - 1
  self.parser:close()
  if self.stream ~= self.tcp then pcall(self.stream.close, self.stream) end
  if self.tcp:is_closing() then
    ig.on_handle_closed()
  else
    ig:close_handle(self.tcp)
  end
end

-- Ends the connection once what was written is out.
function Conn:close_after_write()
  if self.closed or self.closing_after then return end
  self.closing_after = true
  self:update_reading()
  self:set_deadline("linger", LINGER_MS)
  local ok = self.stream:shutdown(function() self.ig:protect(self.close, nil, self) end)
  if not ok then self:close() end
end


local function parse_error_status(code)
  if code == "body_too_large" then return 413, "request body too large" end
  if code == "header_too_large" or code == "too_many_headers" then return 431, "request header too large" end
  return 400, "malformed request"
end

local function client_error(conn, e)
  local status, text = parse_error_status(e.code)
  local ex = conn.ex
  if e.code == "incomplete_message" then
    -- the client went away inside a request
    if ex then abort(ex, 499) end
    return conn:close()
  end
  if ex then
    if ex.resp_started then return abort(ex, 400) end
    ex.keep_alive = false
    return answer(ex, status, text)
  end
  answer(exchange.refused(conn), status, text)
end

--- Takes the queued entries in order (see the top of this file).
function Conn:pump()
  local conn = self
  -- a request answered at once (404, 400...) finishes inside the loop below,
  -- and finish pumps: the loop goes on instead of nesting once per request
  if conn.pumping then return end
  conn.pumping = true
  local queue = conn.queue
  while not conn.closed and #queue > 0 do
    local e = queue[1]
    local ex = conn.ex
    if e.method then
      if ex then break end
      table.remove(queue, 1)
      -- a request without body comes with its end: known before any answer,
      -- so an answer made at once can keep the connection
      local complete = queue[1] ~= nil and queue[1].done == true
      if complete then table.remove(queue, 1) end
      exchange.start(conn, e, complete)
    elseif e.error then
      if ex and ex.req_done then break end
      table.remove(queue, 1)
      client_error(conn, e)
    else
      table.remove(queue, 1)
      if ex and e.chunk then
        exchange.body(ex, e.chunk)
      elseif ex and e.done then
        exchange.body_done(ex)
      end
    end
  end
  conn.pumping = false
  conn:update_reading()
end

local function tunnel_from_client(conn, err, data)
  local ex = conn.ex
  if err then return abort(ex, 499) end
  if data then return exchange.body(ex, data) end
  -- the client is done: the backend gets a FIN and backend_timeout_ms to close
  conn.eof = true
  conn:update_reading()
  conn:set_deadline("backend", conn.ig.limits.backend_timeout_ms)
  if ex.link then ex.link.tcp:shutdown() end
end

local function on_client_read(conn, err, data)
  if conn.closed then return end
  if conn.ex and conn.ex.tunnel then return tunnel_from_client(conn, err, data) end
  if err then return conn:close() end
  local queue = conn.queue
  local entries, msg, code
  if data then
    if conn.deadline_kind == "idle" then conn:set_deadline("header", conn.ig.limits.header_timeout_ms) end
    entries, msg, code = conn.parser:feed(data)
  else
    conn.eof = true
    if conn.parser:pending() ~= "none" then entries, msg, code = conn.parser:feed_eof() end
    if not conn.ex and #queue == 0 and not code then return conn:close() end
  end
  for _, e in ipairs(entries or {}) do queue[#queue + 1] = e end
  if code then queue[#queue + 1] = { error = true, code = code, message = msg } end
  conn:pump()
  if conn.eof and not conn.ex and not conn.closed and #queue == 0 then conn:close_after_write() end
end

--- A new client connection on ig's listener.
function M.accept(ig, tcp)
  local stream = tcp
  if ig.wrap then
    local ok, wrapped = pcall(ig.wrap, tcp)
    if not ok or not wrapped then
      ig:emit("error", "ingress: wrap failed: " .. tostring(wrapped))
      return ig:close_handle(tcp)
    end
    stream = wrapped
  end
  local peer = tcp:getpeername()
  local limits = ig.limits
  local conn = setmetatable({ ig = ig, tcp = tcp, stream = stream, client = peer and peer.ip or "", queue = {},
    parser = http.new_parser("request", { stream_body = true, max_body_bytes = limits.max_body_bytes,
      max_header_bytes = limits.max_header_bytes }) }, Conn)
  ig.conns[conn] = true
  ig.accepted = ig.accepted + 1
  ig.active = ig.active + 1
  conn.on_bug = function(err)
    ig:report_bug(err)
    pcall(conn.close, conn)
  end
  conn.on_read = function(err, data) ig:protect(on_client_read, conn.on_bug, conn, err, data) end
  conn:set_deadline("header", limits.header_timeout_ms)
  conn:update_reading()
end

--- The sweep found conn's deadline passed.
function M.expire(conn)
  local kind, ex = conn.deadline_kind, conn.ex
  conn.deadline, conn.deadline_kind = nil, nil
  if kind == "header" and not ex then
    local data = wire.error_response(408, exchange.REASONS[408], "no complete request head in time", false)
    conn:write(data)
    return conn:close_after_write()
  end
  if kind == "idle" or kind == "linger" or not ex then return conn:close() end
  if kind == "wait" then
    conn.ig.waiting[ex] = nil
    conn.ig:emit("no_backend", ex.route.key)
    return answer(ex, 503, "no ready backend for " .. ex.route.key)
  end
  if kind == "connect" then
    return backend_failed(ex, "ETIMEDOUT: connect timed out", true)
  end
  if kind == "backend" then
    if ex.resp_started then return abort(ex, 504) end
    return answer(ex, 504, "backend " .. tostring(ex.backend_id) .. " did not answer in time")
  end
end

return M
