-- prisn.net.ingress.exchange: one request through the ingress, from its
-- head to the end of its response.
--
-- An exchange picks the next backend of its route in turn and gets a
-- connection (backends.lua: kept alive or new). Body bytes that arrive before
-- it is connected are held, at most HIGH_WATER before the client stops being
-- read. The response is parsed as it comes, its head rewritten (wire.lua) and
-- its body copied; past HIGH_WATER queued for the client the backend is not
-- read until the queue drains, so memory stays bounded whatever the size.
--
-- Retries: a connect that fails (refused, reset, timed out) costs nothing but
-- time: the next backend is tried. A backend that closes or resets before
-- its first response byte is retried too (on a new connection when the dead
-- one was a kept-alive one, which is how a backend's idle close shows) when
-- no body byte was sent and the method is idempotent (GET, HEAD, PUT,
-- DELETE, OPTIONS, TRACE). Otherwise the client gets 502.
--
-- Upgrade: a request asking to switch protocols is sent as it is, and the
-- client's later bytes go to the backend raw. A 101 answer goes to the
-- client as it came, with anything after it, and from then on both sides are
-- piped raw until the backend closes (or the client does and the backend
-- follows within backend_timeout_ms). Any other answer is an ordinary
-- response, after which the client connection is closed. Bytes a client
-- sends after its upgrade head in the same packet are lost (clients wait
-- for the 101).
--
-- The client connection (client.lua) hands an exchange its head (start),
-- body (body, body_done) and failures (answer, abort, backend_failed); the
-- exchange calls back the connection's methods (write, set_deadline,
-- update_reading, close_after_write, pump, close).
local uv = require("luv")
local http = require("prisn.core.http")
local routes = require("prisn.net.ingress.routes")
local backends = require("prisn.net.ingress.backends")
local wire = require("prisn.net.ingress.wire")

local M = {}

-- Past this many bytes queued (or held) for one side, the other is not read.
M.HIGH_WATER = 64 * 1024

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true, TRACE = true }
M.REASONS = { [400] = "Bad Request", [404] = "Not Found", [405] = "Method Not Allowed", [408] = "Request Timeout",
  [413] = "Content Too Large", [431] = "Request Header Fields Too Large", [499] = "Client Closed Request",
  [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
  [505] = "HTTP Version Not Supported" }
local REASONS = M.REASONS

local dispatch, finish, abort

local Exchange = {}
Exchange.__index = Exchange

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
  if not ex.client_keep or conn.eof then return conn:close_after_write() end
  conn.paused = false
  conn:set_deadline("idle", conn.ig.limits.idle_timeout_ms)
  conn:pump()
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

-- Backpressure: past HIGH_WATER queued on `dst`, `pause(ex)` now and
-- `resume(ex)` once the queue is out (an empty write completes after
-- everything queued before it).
local function throttle(ex, dst, pause, resume)
  if dst:get_write_queue_size() <= M.HIGH_WATER then return end
  pause(ex)
  dst:write("", function()
    ex.conn.ig:protect(function() if not ex.finished then resume(ex) end end)
  end)
end

local function pause_client(ex)
  ex.conn.paused = true
  ex.conn:update_reading()
end

local function resume_client(ex)
  ex.conn.paused = false
  ex.conn:update_reading()
end

local function pause_backend(ex)
  ex.link_paused = true
  ex.link.tcp:read_stop()
end

local function resume_backend(ex)
  ex.link_paused = false
  local link = ex.link
  if link and not link.closed and not link.tcp:read_start(link.on_read) then abort(ex, 502) end
end

local function send_to_backend(ex, data)
  local tcp = ex.link.tcp
  if not tcp:write(data) then return abort(ex, 502) end
  throttle(ex, tcp, pause_client, resume_client)
end

local function send_request(ex)
  local conn, link = ex.conn, ex.link
  if ex.method == "HEAD" then link.parser:skip_body() end
  ex.sent = true
  -- the head and what body came first, in one write
  local list = { ex.req_head }
  for _, piece in ipairs(ex.held) do
    ex.body_sent = true
    list[#list + 1] = ex.upgrade and piece or encode(ex, piece)
  end
  ex.held, ex.held_bytes = {}, 0
  if ex.req_done and ex.req_chunked then list[#list + 1] = wire.chunk("") end
  if not link.tcp:write(#list == 1 and list[1] or list) then return abort(ex, 502) end
  conn:set_deadline("backend", conn.ig.limits.backend_timeout_ms)
  conn.paused = false
  throttle(ex, link.tcp, pause_client, resume_client)
  conn:update_reading()
end

-- A body piece (or, in a tunnel, raw bytes) from the client.
local function client_body(ex, data)
  if ex.finished then return end
  if ex.link and ex.sent then
    ex.body_sent = true
    -- a slow upload is not a slow backend
    if not ex.tunnel then ex.conn:set_deadline("backend", ex.conn.ig.limits.backend_timeout_ms) end
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
  conn:set_deadline("connect", ig.limits.connect_timeout_ms)
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
  if ex.finished or not ex.link then return end
  throttle(ex, conn.stream, pause_backend, resume_backend)
end

-- What one backend read makes for the client is gathered and written at
-- once (a head and a small body: one writev, not two writes).
local function out(ex, data)
  local list = ex.out
  if list then
    list[#list + 1] = data
  else
    ex.out = { data }
  end
end

local function flush(ex)
  local list = ex.out
  if not list then return end
  ex.out = nil
  local conn = ex.conn
  -- a plain socket takes the list as is; another stream (TLS) a string
  to_client(ex, #list == 1 and list[1] or (conn.stream == conn.tcp and list or table.concat(list)))
end

local function response_entry(ex, e)
  local conn = ex.conn
  if e.status then
    if e.status < 200 then
      ex.interim = true
      if e.status ~= 100 and ex.head.http_version == "1.1" then
        out(ex, (wire.response_head(e, ex.method, { client_version = "1.1" })))
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
    out(ex, head)
  elseif e.chunk then
    ex.bytes = ex.bytes + #e.chunk
    out(ex, ex.framing == "chunked" and wire.chunk(e.chunk) or e.chunk)
  elseif e.done then
    if ex.interim then
      ex.interim = false
      return
    end
    if ex.framing == "chunked" then out(ex, wire.chunk("")) end
    flush(ex)
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
  ex.conn:set_deadline(nil)
  ex.conn:write(raw:sub(1, head_end))
  if head_end < #raw then tunnel_from_backend(ex, nil, raw:sub(head_end + 1)) end
end

--- The link's reads while it serves ex (backends.lua calls it).
function Exchange.on_backend_read(ex, err, data)
  if ex.finished then return end
  if ex.tunneled then return tunnel_from_backend(ex, err, data) end
  local conn = ex.conn
  if err then return backend_failed(ex, err) end
  conn:set_deadline("backend", conn.ig.limits.backend_timeout_ms)
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
  flush(ex)
  if perr then return backend_failed(ex, perr) end
  if not data then backend_failed(ex, "closed before answering") end
end

--- A new exchange for request `head` on client connection conn (complete:
-- the request has no body, its end came with the head).
function M.start(conn, head, complete)
  local ig = conn.ig
  conn:set_deadline(nil)
  ig.requests = ig.requests + 1
  ig.in_flight_n = ig.in_flight_n + 1
  local ex = setmetatable({ conn = conn, head = head, method = head.method, t0 = uv.hrtime(), held = {},
    held_bytes = 0, bytes = 0, tried = {}, retries = 0, keep_alive = head.keep_alive,
    upgrade = wire.wants_upgrade(head),
    req_chunked = head.content_length == nil and head.headers["transfer-encoding"] ~= nil }, Exchange)
  conn.ex = ex
  if complete then client_body_done(ex) end
  wire.origin_form(head)
  local host = head.headers["host"]
  ex.route = host and routes.match(ig.routes, host, head.path)
  if ig.families then ig.families.in_flight:labels(labels_host(ex)):inc() end
  if head.http_version ~= "1.1" and head.http_version ~= "1.0" then
    ex.keep_alive = false
    return answer(ex, 505, "HTTP/" .. head.http_version .. " is not supported")
  end
  if not host then
    ex.keep_alive = false
    return answer(ex, 400, "the request has no Host header")
  end
  if head.method == "CONNECT" then
    -- a forward proxy's tunnel: not what a reverse proxy offers
    ex.keep_alive = false
    return answer(ex, 405, "CONNECT is not supported")
  end
  if not ex.route then return answer(ex, 404, "no route for " .. routes.normalize_host(host)) end
  ex.req_head = wire.request_head(head, { client = conn.client, proto = ig.scheme })
  local expect = head.headers["expect"]
  if expect and expect:lower() == "100-continue" and head.http_version == "1.1" then
    conn:write("HTTP/1.1 100 Continue\r\n\r\n")
  end
  dispatch(ex)
end

-- The client said something the parser refused.
--- An exchange for a request the parser refused, so it is answered and
-- counted like any other.
function M.refused(conn)
  local ig = conn.ig
  ig.in_flight_n = ig.in_flight_n + 1
  if ig.families then ig.families.in_flight:labels(""):inc() end
  local ex = setmetatable({ conn = conn, method = "", head = { headers = {}, path = "" }, t0 = uv.hrtime(),
    bytes = 0, tried = {}, retries = 0, held = {}, held_bytes = 0, req_done = true }, Exchange)
  conn.ex = ex
  return ex
end

M.answer, M.abort, M.finish, M.backend_failed = answer, abort, finish, backend_failed
M.body, M.body_done = client_body, client_body_done

return M
