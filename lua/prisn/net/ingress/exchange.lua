-- prisn.net.ingress.exchange: one client connection of the ingress and the
-- requests it carries, each forwarded to a backend and answered.
--
-- A client connection is read into a request parser (bodies streamed); its
-- entries (a head, body chunks, the end, or a parse error) wait in a queue
-- and are taken in order: one request (an "exchange") at a time, the next
-- head waiting (and the client not read) until the current response is
-- complete, so pipelined requests are answered in order.
--
-- An exchange picks the next backend of its route in turn and gets a
-- connection (backends.lua: kept alive or new). Body bytes that arrive first
-- are held, at most HIGH_WATER before the client stops being read. The
-- response is parsed as it comes, its head rewritten (wire.lua) and its body
-- copied; past HIGH_WATER queued for the client the backend is not read
-- until the queue drains, so memory stays bounded whatever the size.
--
-- Retries: a connect that fails (refused, reset, timed out) costs nothing but
-- time: the next backend is tried. A backend that closes or resets before
-- its first response byte is retried too (on a new connection when the dead
-- one was a kept-alive one, which is how a backend's idle close shows) when
-- no body byte was sent and the method is idempotent (GET, HEAD, PUT,
-- DELETE, OPTIONS, TRACE). Otherwise the client gets 502.
--
-- Upgrade: a request asking to switch protocols is sent as it is; from then
-- on both connections are copied raw both ways (the backend's answer too,
-- 101 or not) until either side closes. Bytes a client sends in the same
-- packet as its upgrade head, after it, are lost (clients wait for the 101).
--
-- Deadlines are fields of the connection (deadline, deadline_kind) that the
-- ingress's sweep checks: "header" (408), "idle" (close), "wait" (503),
-- "connect" (try the next backend), "backend" (504, or a cut when the
-- response has begun), "linger" (a closing connection that did not finish).
local uv = require("luv")
local http = require("prisn.core.http")
local routes = require("prisn.net.ingress.routes")
local backends = require("prisn.net.ingress.backends")
local wire = require("prisn.net.ingress.wire")

local M = {}

-- Past this many bytes queued (or held) for one side, the other is not read.
M.HIGH_WATER = 64 * 1024
-- How long a closing client connection may take to flush what it was sent.
local LINGER_MS = 2000

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true, TRACE = true }
local REASONS = { [400] = "Bad Request", [404] = "Not Found", [408] = "Request Timeout",
  [413] = "Content Too Large", [431] = "Request Header Fields Too Large", [499] = "Client Closed Request",
  [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
  [505] = "HTTP Version Not Supported" }

local Conn = {}
Conn.__index = Conn

local pump, dispatch, finish, abort

-- Client connection ------------------------------------------------------------

local function set_deadline(conn, kind, ms)
  if kind then
    conn.deadline, conn.deadline_kind = uv.now() + ms, kind
  else
    conn.deadline, conn.deadline_kind = nil, nil
  end
end

-- Reads the client unless backpressure, a waiting request or a close stops it.
local function update_reading(conn)
  if conn.closed then return end
  local want = not conn.paused and #conn.queue == 0 and not conn.closing_after and not conn.eof
  if want and not conn.reading then
    conn.reading = true
    if not conn.stream:read_start(conn.on_read) then conn:close() end
  elseif not want and conn.reading then
    conn.reading = false
    conn.stream:read_stop()
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
local function close_after_write(conn)
  if conn.closed or conn.closing_after then return end
  conn.closing_after = true
  update_reading(conn)
  set_deadline(conn, "linger", LINGER_MS)
  local ok = conn.stream:shutdown(function() conn.ig:protect(function() conn:close() end) end)
  if not ok then conn:close() end
end

-- Exchange ---------------------------------------------------------------------

local function labels_host(ex)
  return ex.route and ex.route.host or ""
end

local function record(ex)
  local conn, ig = ex.conn, ex.conn.ig
  local status = ex.status or 499
  local duration_ms = (uv.hrtime() - ex.t0) / 1e6
  ig.in_flight_n = ig.in_flight_n - 1
  local f = ig.families
  if f then
    local host = labels_host(ex)
    f.requests:labels(host, (status // 100) .. "xx"):inc()
    f.duration:labels(host):observe(duration_ms / 1000)
    f.in_flight:labels(host):dec()
  end
  if ig.on_access then
    local entry = { host = ex.head.headers["host"] or "", method = ex.method, path = ex.head.path, status = status,
      bytes = ex.bytes, duration_ms = duration_ms, client = conn.client, route_key = ex.route and ex.route.key,
      backend = ex.backend_id }
    local ok, err = pcall(ig.on_access, entry)
    if not ok and ig.log then ig.log:warn("ingress: on_access: %s", tostring(err)) end
  end
end

-- Gives back the backend connection and the in-flight count.
local function let_go(ex, reusable)
  local ig = ex.conn.ig
  if ex.cancel then
    ex.cancel()
    ex.cancel = nil
  end
  if ex.link then
    backends.release(ig, ex.link, reusable)
    ex.link = nil
  end
  local rec = ex.rec
  if rec then
    ex.rec = nil
    rec.in_flight = rec.in_flight - 1
    backends.settle(ig, rec)
  end
end

finish = function(ex)
  if ex.finished then return end
  ex.finished = true
  local conn = ex.conn
  conn.ig.waiting[ex] = nil
  if conn.ex == ex then conn.ex = nil end
  let_go(ex, ex.resp_done and ex.req_done and ex.resp_keep and not ex.upgrade and not ex.aborted)
  record(ex)
  if conn.closed then return end
  if ex.aborted or ex.tunneled then return conn:close() end
  if not ex.client_keep or conn.eof then return close_after_write(conn) end
  conn.paused = false
  set_deadline(conn, "idle", conn.ig.limits.idle_timeout_ms)
  pump(conn)
end

-- Ends ex at once (the client or the backend broke off); the client
-- connection is closed by the caller or by finish.
abort = function(ex, status)
  if ex.finished then return end
  ex.aborted = true
  ex.status = ex.status and ex.resp_started and ex.status or status
  if ex.link then
    ex.link:close()
    ex.link = nil
  end
  finish(ex)
end

-- The ingress answers the request itself.
local function answer(ex, status, text)
  if ex.resp_started then return abort(ex, status) end
  local conn = ex.conn
  local keep = ex.keep_alive and ex.req_done and not conn.eof and not conn.ig.closing
  local data, n = wire.error_response(status, REASONS[status] or http.status_text(status) or "", text, keep)
  ex.status, ex.bytes, ex.resp_started, ex.resp_done, ex.client_keep = status, n, true, true, keep
  if ex.link then
    ex.link:close()
    ex.link = nil
  end
  conn:write(data)
  finish(ex)
end

-- Body bytes as the backend is sent them.
local function encode(ex, data)
  if ex.req_chunked then return wire.chunk(data) end
  return data
end

-- Backpressure: past HIGH_WATER queued on `dst`, `pause()` now and
-- `resume()` once the queue is out.
local function throttle(ex, dst, pause, resume)
  if dst:get_write_queue_size() <= M.HIGH_WATER then return end
  pause()
  dst:write("", function() ex.conn.ig:protect(function() if not ex.finished then resume() end end) end)
end

local function pause_client(ex)
  ex.conn.paused = true
  update_reading(ex.conn)
end

local function resume_client(ex)
  ex.conn.paused = false
  update_reading(ex.conn)
end

local function send_to_backend(ex, data)
  local tcp = ex.link.tcp
  if not tcp:write(data) then return abort(ex, 502) end
  throttle(ex, tcp, function() pause_client(ex) end, function() resume_client(ex) end)
end

local function send_request(ex)
  local conn, link = ex.conn, ex.link
  if ex.method == "HEAD" then link.parser:skip_body() end
  ex.sent = true
  if not link.tcp:write(ex.req_head) then return abort(ex, 502) end
  local held = ex.held
  ex.held, ex.held_bytes = {}, 0
  for _, piece in ipairs(held) do
    ex.body_sent = true
    link.tcp:write(ex.upgrade and piece or encode(ex, piece))
  end
  if ex.req_done and ex.req_chunked then link.tcp:write(wire.chunk("")) end
  set_deadline(conn, "backend", conn.ig.limits.backend_timeout_ms)
  conn.paused = false
  throttle(ex, link.tcp, function() pause_client(ex) end, function() resume_client(ex) end)
  update_reading(conn)
end

-- A body piece (or, in a tunnel, raw bytes) from the client.
local function client_body(ex, data)
  if ex.finished then return end
  if ex.link and ex.sent then
    ex.body_sent = true
    -- a slow upload is not a slow backend
    if not ex.tunnel then set_deadline(ex.conn, "backend", ex.conn.ig.limits.backend_timeout_ms) end
    return send_to_backend(ex, ex.tunnel and data or encode(ex, data))
  end
  ex.held[#ex.held + 1] = data
  ex.held_bytes = ex.held_bytes + #data
  if ex.held_bytes > M.HIGH_WATER then pause_client(ex) end
end

local function client_body_done(ex)
  ex.req_done = true
  if ex.upgrade then
    ex.tunnel = true
    return
  end
  if ex.link and ex.sent and ex.req_chunked then send_to_backend(ex, wire.chunk("")) end
end

local function can_retry(ex)
  if ex.resp_bytes or ex.body_sent or ex.upgrade then return false end
  if ex.sent and not IDEMPOTENT[ex.method] then return false end
  ex.retries = ex.retries + 1
  return ex.retries <= #ex.route.backends + 1
end

-- The backend failed before its response began (or could not be reached).
local function backend_failed(ex, why, connect)
  local ig, rec = ex.conn.ig, ex.rec
  if ex.resp_started then return abort(ex, 502) end
  local reused = ex.link and ex.link.reused
  if connect then
    ig.connect_failures = ig.connect_failures + 1
    if ig.families then ig.families.connect_failures:labels(labels_host(ex)):inc() end
    ig:emit("connect_failed", rec.id, tostring(why))
  end
  if not can_retry(ex) then return answer(ex, 502, "backend " .. rec.id .. " failed: " .. tostring(why)) end
  if ex.link then
    ex.link:close()
    ex.link = nil
  end
  -- a kept-alive connection the backend had closed says nothing about it
  if not reused then ex.tried[rec.key] = true end
  let_go(ex, false)
  ex.sent = false
  dispatch(ex)
end

local function on_link(ex, attempt, link, err)
  if ex.finished or ex.attempt ~= attempt then
    if link then backends.release(ex.conn.ig, link, true) end
    return
  end
  ex.cancel, ex.attempt = nil, nil
  if not link then return backend_failed(ex, err or "connect failed", true) end
  ex.link = link
  link:set_owner(ex)
  send_request(ex)
end

local function pick(ex)
  local route = ex.route
  local list = route.backends
  local n = #list
  for k = 0, n - 1 do
    local b = list[(route.turn + k) % n + 1]
    if not ex.tried[b.key] then
      route.turn = route.turn + k + 1
      return b
    end
  end
  return nil
end

dispatch = function(ex)
  if ex.finished then return end
  local conn, ig = ex.conn, ex.conn.ig
  local b = pick(ex)
  if not b then
    if #ex.route.backends > 0 then return answer(ex, 502, "no backend of " .. ex.route.key .. " answered") end
    ex.wait_until = ex.wait_until or (uv.now() + ig.limits.wait_for_backend_ms)
    ig.waiting[ex] = true
    conn.deadline, conn.deadline_kind = ex.wait_until, "wait"
    return
  end
  local rec = backends.record(ig, b)
  rec.in_flight = rec.in_flight + 1
  ex.rec, ex.backend_id = rec, rec.id
  set_deadline(conn, "connect", ig.limits.connect_timeout_ms)
  -- acquire may answer before it returns (an idle link, a refused connect)
  local attempt = {}
  ex.attempt = attempt
  local cancel = backends.acquire(ig, rec, function(link, err) on_link(ex, attempt, link, err) end)
  if ex.attempt == attempt and not ex.finished then ex.cancel = cancel end
end

--- After set_routes: a request waiting for a backend finds its route again.
function M.redispatch(ex)
  if ex.finished then return end
  local route = routes.match(ex.conn.ig.routes, ex.head.headers["host"], ex.head.path)
  if not route then return answer(ex, 404, "no route for " .. routes.normalize_host(ex.head.headers["host"])) end
  ex.route = route
  dispatch(ex)
end

-- Response ------------------------------------------------------------------------

local function to_client(ex, data)
  local conn = ex.conn
  if not conn:write(data) then return end
  local link = ex.link
  throttle(ex, conn.stream, function()
    ex.link_paused = true
    link.tcp:read_stop()
  end, function()
    ex.link_paused = false
    if not link.closed and not link.tcp:read_start(link.on_read) then abort(ex, 502) end
  end)
end

local function response_entry(ex, e)
  local conn = ex.conn
  if e.status then
    if e.status < 200 then
      ex.interim = true
      if e.status ~= 100 and ex.head.http_version == "1.1" then
        conn:write((wire.response_head(e, ex.method, { client_version = "1.1" })))
      end
      return
    end
    ex.status, ex.resp_started, ex.resp_keep, ex.raw = e.status, true, e.keep_alive, nil
    -- after a declined upgrade the request parser cannot go on: close
    local keep = ex.keep_alive and ex.req_done and not conn.eof and not conn.ig.closing and not ex.upgrade
    ex.client_keep = keep
    local head, framing = wire.response_head(e, ex.method, { client_version = ex.head.http_version,
      keep_alive = keep, reason = http.status_text(e.status) })
    ex.framing = framing
    if framing == "close" then ex.client_keep = false end
    conn:write(head)
  elseif e.chunk then
    ex.bytes = ex.bytes + #e.chunk
    to_client(ex, ex.framing == "chunked" and wire.chunk(e.chunk) or e.chunk)
  elseif e.done then
    if ex.interim then
      ex.interim = false
      return
    end
    if ex.framing == "chunked" then conn:write(wire.chunk("")) end
    ex.resp_done = true
    if not ex.req_done then ex.client_keep = false end
    finish(ex)
  end
end

-- Upgrade, after the 101: backend bytes go to the client as they are.
local function tunnel_from_backend(ex, err, data)
  local conn = ex.conn
  if err or not data then
    -- the backend is done: the client gets what is queued, then a close
    if err or conn.closed then return finish(ex) end
    if not conn.stream:shutdown(function() conn.ig:protect(finish, nil, ex) end) then finish(ex) end
    return
  end
  ex.bytes = ex.bytes + #data
  to_client(ex, data)
end

-- The backend switched protocols: its 101 head goes to the client as it
-- came (Sec-WebSocket-Accept and all), and so does anything after it in the
-- same read; from now on both sides are piped raw.
local function switch_protocols(ex)
  local raw = ex.raw
  local head_end = select(2, raw:find("\r?\n\r?\n"))
  ex.raw, ex.tunneled, ex.status, ex.resp_started = nil, true, 101, true
  set_deadline(ex.conn, nil)
  ex.conn:write(raw:sub(1, head_end))
  if head_end < #raw then tunnel_from_backend(ex, nil, raw:sub(head_end + 1)) end
end

--- The link's reads while it serves ex (backends.lua calls it).
function M.on_backend_read(ex, err, data)
  if ex.finished then return end
  if ex.tunneled then return tunnel_from_backend(ex, err, data) end
  local conn = ex.conn
  if err then return backend_failed(ex, err) end
  set_deadline(conn, "backend", conn.ig.limits.backend_timeout_ms)
  local entries, perr
  if data then
    if #data > 0 then ex.resp_bytes = true end
    -- an upgrade's answer is kept raw until its head is known
    if ex.upgrade and not ex.resp_started then ex.raw = (ex.raw or "") .. data end
    entries, perr = ex.link.parser:feed(data)
  else
    entries, perr = ex.link.parser:feed_eof()
  end
  for _, e in ipairs(entries or {}) do
    if e.status == 101 and ex.upgrade and not ex.resp_started then return switch_protocols(ex) end
    response_entry(ex, e)
    if ex.finished then return end
  end
  if perr then return backend_failed(ex, perr) end
  if not data then backend_failed(ex, "closed before answering") end
end

local Exchange = { on_backend_read = M.on_backend_read }
Exchange.__index = Exchange

local function parse_error_status(code)
  if code == "body_too_large" then return 413, "request body too large" end
  if code == "header_too_large" or code == "too_many_headers" then return 431, "request header too large" end
  return 400, "malformed request"
end

local function start(conn, head)
  local ig = conn.ig
  set_deadline(conn, nil)
  ig.requests = ig.requests + 1
  ig.in_flight_n = ig.in_flight_n + 1
  local ex = setmetatable({ conn = conn, head = head, method = head.method, t0 = uv.hrtime(), held = {},
    held_bytes = 0, bytes = 0, tried = {}, retries = 0, keep_alive = head.keep_alive,
    upgrade = wire.wants_upgrade(head),
    req_chunked = head.content_length == nil and head.headers["transfer-encoding"] ~= nil }, Exchange)
  conn.ex = ex
  local host = head.headers["host"]
  ex.route = host and routes.match(ig.routes, host, head.path)
  if ig.families then ig.families.in_flight:labels(labels_host(ex)):inc() end
  if head.http_version ~= "1.1" and head.http_version ~= "1.0" then
    return answer(ex, 505, "HTTP/" .. head.http_version .. " is not supported")
  end
  if not host then return answer(ex, 400, "the request has no Host header") end
  if not ex.route then return answer(ex, 404, "no route for " .. routes.normalize_host(host)) end
  ex.req_head = wire.request_head(head, { client = conn.client, proto = ig.scheme })
  local expect = head.headers["expect"]
  if expect and expect:lower() == "100-continue" and head.http_version == "1.1" then
    conn:write("HTTP/1.1 100 Continue\r\n\r\n")
  end
  dispatch(ex)
end

-- The client said something the parser refused.
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
  ex = setmetatable({ conn = conn, method = "", head = { headers = {}, path = "" }, t0 = uv.hrtime(), bytes = 0,
    tried = {}, retries = 0, held = {}, held_bytes = 0, req_done = true }, Exchange)
  conn.ig.in_flight_n = conn.ig.in_flight_n + 1
  if conn.ig.families then conn.ig.families.in_flight:labels(""):inc() end
  conn.ex = ex
  answer(ex, status, text)
end

pump = function(conn)
  local queue = conn.queue
  while not conn.closed and #queue > 0 do
    local e = queue[1]
    local ex = conn.ex
    if e.method then
      if ex then break end
      table.remove(queue, 1)
      start(conn, e)
    elseif e.error then
      if ex and ex.req_done then break end
      table.remove(queue, 1)
      client_error(conn, e)
    else
      table.remove(queue, 1)
      if ex and e.chunk then
        client_body(ex, e.chunk)
      elseif ex and e.done then
        client_body_done(ex)
      end
    end
  end
  update_reading(conn)
end

local function tunnel_from_client(conn, err, data)
  local ex = conn.ex
  if err then return abort(ex, 499) end
  if data then return client_body(ex, data) end
  -- the client is done: the backend gets a FIN and backend_timeout_ms to close
  conn.eof = true
  update_reading(conn)
  set_deadline(conn, "backend", conn.ig.limits.backend_timeout_ms)
  if ex.link then ex.link.tcp:shutdown() end
end

local function on_client_read(conn, err, data)
  if conn.closed then return end
  if conn.ex and conn.ex.tunnel then return tunnel_from_client(conn, err, data) end
  if err then return conn:close() end
  local queue = conn.queue
  local entries, msg, code
  if data then
    if conn.deadline_kind == "idle" then set_deadline(conn, "header", conn.ig.limits.header_timeout_ms) end
    entries, msg, code = conn.parser:feed(data)
  else
    conn.eof = true
    if conn.parser:pending() ~= "none" then entries, msg, code = conn.parser:feed_eof() end
    if not conn.ex and #queue == 0 and not code then return conn:close() end
  end
  for _, e in ipairs(entries or {}) do queue[#queue + 1] = e end
  if code then queue[#queue + 1] = { error = true, code = code, message = msg } end
  pump(conn)
  if conn.eof and not conn.ex and not conn.closed and #queue == 0 then close_after_write(conn) end
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
  set_deadline(conn, "header", limits.header_timeout_ms)
  update_reading(conn)
end

--- The sweep found conn's deadline passed.
function M.expire(conn)
  local kind, ex = conn.deadline_kind, conn.ex
  conn.deadline, conn.deadline_kind = nil, nil
  if kind == "header" and not ex then
    local data = wire.error_response(408, REASONS[408], "no complete request head in time", false)
    conn:write(data)
    return close_after_write(conn)
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
