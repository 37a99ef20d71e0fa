-- prisn.server.http: HTTP/1.1 on luv streams (unix socket and TCP).
--
-- One connection = one parser (prisn.core.http) and a queue of requests
-- answered in order, so pipelining and keep-alive work. Each request runs as
-- an async task, so a handler may wait (on a child process, a timer) without
-- blocking the loop. Limits protect the server from its clients, and one
-- client from another:
--
--   header and body size     431 / 413, then the connection is closed
--   a request whose head does not arrive within header_timeout, or that is
--   not complete within request_timeout (counted from the connection's
--   opening, or from the first byte of a later request): 408, closed
--   an idle keep-alive connection past idle_timeout: closed
--   more than max_connections_per_client from one TCP address at once:
--                            429 with Retry-After, closed
--   more than max_connections on one listener (TCP, or the unix socket,
--   each its own budget, so TCP clients cannot crowd out the local CLI):
--                            503 with Retry-After, closed
--   more than max_buffered_bytes of incomplete requests, all connections
--   together: 503 with Retry-After to the one that crossed it, closed
--   an HTTP version other than 1.0 and 1.1: 505, closed
--   a malformed request: 400, closed
--
-- A refused connection costs one small write and a close: no parser, no
-- timer (on a TLS listener, just the close). A TLS listener (listener.tls, a
-- prisn.net.tls server context) wraps each accepted handle; everything below
-- reads and writes plaintext through the same stream interface. A handler
-- that raises gets its error rendered ({"error": {...}}); a bug is logged
-- with its traceback and answered 500. Nothing a client sends can stop the
-- loop.
local uv = require("luv")
local http = require("prisn.core.http")
local async = require("prisn.async")
local errors = require("prisn.error")
local api = require("prisn.server.api")
local auth = require("prisn.server.auth")
local json = require("prisn.output.json")
local tokens = require("prisn.store.tokens")
local tls = require("prisn.net.tls")

local M = {}

M.DEFAULTS = {
  max_header_bytes = 16 * 1024,
  max_body_bytes = 20 * 1024 * 1024,
  max_connections = 1024,
  -- A CLI holds one connection, a browser six, a benchmark a few dozen; a
  -- reverse proxy in front of prisn is one address for all its clients and
  -- needs more (docs/SERVER.md).
  max_connections_per_client = 64,
  -- Bytes of requests not yet complete, held for all connections together:
  -- many clients sending large bodies at once cannot take the memory.
  max_buffered_bytes = 128 * 1024 * 1024,
  -- A head is a few hundred bytes: seconds are plenty on any link, and a
  -- slow client gives its slot back soon.
  header_timeout_ms = 5 * 1000,
  request_timeout_ms = 10 * 1000,
  idle_timeout_ms = 60 * 1000,
}

-- The HTTP versions prisn speaks; anything else is answered 505.
local VERSIONS = { ["1.0"] = true, ["1.1"] = true }

local PARSER_ERROR_STATUS = {
  header_too_large = 431,
  too_many_headers = 431,
  body_too_large = 413,
}

-- application/x-www-form-urlencoded decoding of one name or value.
local function unescape_query(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

local function decode_query(query)
  local out = {}
  if not query or query == "" then return out end
  for pair in query:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    out[unescape_query(k)] = unescape_query(v)
  end
  return out
end

local function response_head(status, headers, keep_alive)
  local lines = { string.format("HTTP/1.1 %d %s", status, http.status_text(status) or "Status") }
  for name, value in pairs(headers) do lines[#lines + 1] = name .. ": " .. value end
  if not keep_alive then lines[#lines + 1] = "Connection: close" end
  lines[#lines + 1] = ""
  lines[#lines + 1] = ""
  return table.concat(lines, "\r\n")
end

-- The body and content type for a handler's return value.
local function encode_body(body)
  if body == nil then return "", nil end
  if type(body) == "string" then return body, "text/plain; charset=utf-8" end
  return json.encode(body), "application/json"
end

local Connection = {}
Connection.__index = Connection

-- Counts a connection in: per listener kind and, on TCP, per remote address.
local function count_in(server, conn)
  server.connections = server.connections + 1
  server.open[conn.kind] = (server.open[conn.kind] or 0) + 1
  if conn.client then server.clients[conn.client] = (server.clients[conn.client] or 0) + 1 end
end

local function count_out(server, conn)
  server.connections = server.connections - 1
  server.open[conn.kind] = server.open[conn.kind] - 1
  if conn.client then
    local n = server.clients[conn.client] - 1
    server.clients[conn.client] = n > 0 and n or nil
  end
end

--- Whether a connection just counted in (of `kind`, from `client`, the
-- remote address on TCP) may stay. Returns nil, or the refusal: status,
-- code, message.
function M.refusal(server, kind, client)
  if server.stopping then return 503, "unavailable", "the server is stopping" end
  local limits = server.limits
  if client and server.clients[client] > limits.max_connections_per_client then
    return 429, "too_many_connections", string.format("too many connections from %s (at most %d at once)",
      client, limits.max_connections_per_client)
  end
  if server.open[kind] > limits.max_connections then
    return 503, "unavailable", "too many connections"
  end
  return nil
end

-- Sets the bytes this connection holds of requests not yet complete, and
-- the server's total with them.
function Connection:hold(n)
  local server = self.server
  server.held_bytes = (server.held_bytes or 0) + n - (self.held or 0)
  self.held = n
end

function Connection:close()
  if self.closed then return end
  self.closed = true
  count_out(self.server, self)
  self:hold(0)
  if self.timer then self.timer:stop(); self.timer:close(); self.timer = nil end
  if self.parser then self.parser:close() end
  if not self.stream:is_closing() then self.stream:close() end
end

function Connection:write(data)
  if self.closed then return end
  -- A peer that is gone (EPIPE, ECONNRESET) ends the connection, so that a
  -- streamed response stops (its write() then says false) even when the
  -- peer had half-closed before and no read will report it.
  self.stream:write(data, function(err) if err then self:close() end end)
end

-- Closes once what was written has been flushed.
function Connection:finish()
  self.closing = true
  if self.closed then return end
  if self.timer then self.timer:stop() end
  if not self.stream:shutdown(function() self:close() end) then self:close() end
end

-- Sends a complete response; closes afterwards unless keep_alive.
function Connection:respond(status, body, headers, keep_alive, head_only)
  local text, content_type = encode_body(body)
  local h = {}
  for k, v in pairs(headers or {}) do h[k] = v end
  if content_type and not h["Content-Type"] then h["Content-Type"] = content_type end
  h["Content-Length"] = tostring(#text)
  -- Head and body as two buffers (the stream writes both with one writev):
  -- joining them copied the body, 1.1 MB for a list of 1,000 deployments.
  local head = response_head(status, h, keep_alive)
  self:write((head_only or text == "") and head or { head, text })
  if not keep_alive then self:finish() end
end

-- Sends a chunked response produced by producer(write); see api.stream.
function Connection:respond_stream(status, producer, headers, keep_alive)
  local h = { ["Transfer-Encoding"] = "chunked", ["Content-Type"] = "application/x-ndjson" }
  for k, v in pairs(headers or {}) do h[k] = v end
  self:write(response_head(status, h, keep_alive))
  local ok, err = pcall(producer, function(text)
    if self.closed then return false end
    if #text > 0 then self:write({ string.format("%x\r\n", #text), text, "\r\n" }) end
    return true
  end)
  if not ok then self.server.log:error("streaming response failed: %s", tostring(err)) end
  self:write("0\r\n\r\n")
  if not keep_alive then self:finish() end
end

-- Restarts the timer: `ms` until `on_expire(conn)`.
function Connection:arm(ms, on_expire)
  if self.closed then return end
  if not self.timer then self.timer = uv.new_timer() end
  self.timer:stop()
  self.timer:start(math.max(0, ms), 0, function() on_expire(self) end)
end

local function on_request_timeout(conn)
  if conn.busy or conn.closing then return end
  local what = conn.phase == "body" and "the request did not arrive in time"
    or "the request headers did not arrive in time"
  conn:respond(408, api.error_body(errors.new("timeout", what)), nil, false)
end

local function on_idle_timeout(conn)
  if conn.busy then return end
  conn:close()
end

-- Arms the timer for what the connection waits for, from the parser's view
-- of the bytes so far. Phases: "new" (accepted, no request yet: the head's
-- deadline runs from the opening), "idle" (between keep-alive requests),
-- "head" and "body" (a request arriving; both deadlines run from its first
-- byte, or from the opening for the first request, and are never renewed by
-- a trickle of bytes), "busy" (requests being answered: no deadline).
function Connection:watch()
  if self.closed or self.closing or self.busy then return end
  local limits, now = self.server.limits, uv.now()
  local pending = self.parser:pending()
  if pending == "none" then
    if self.phase ~= "new" and self.phase ~= "idle" then
      self.phase = "idle"
      self:arm(limits.idle_timeout_ms, on_idle_timeout)
    end
    return
  end
  if self.phase == "idle" or self.phase == "busy" then self.started = now end
  if pending == "head" and self.phase ~= "head" then
    self.phase = "head"
    self:arm(self.started + math.min(limits.header_timeout_ms, limits.request_timeout_ms) - now, on_request_timeout)
  elseif pending == "body" and self.phase ~= "body" then
    self.phase = "body"
    self:arm(self.started + limits.request_timeout_ms - now, on_request_timeout)
  end
end

--- Runs one request through routing, auth and the handler; returns status,
-- body, headers.
function M.handle(server, msg)
  local route, params_or_why, allowed = server.router:match(msg.method, msg.path)
  if not route then
    if params_or_why == "method_not_allowed" then
      return 405, api.error_body(errors.new("method_not_allowed",
        msg.method .. " is not allowed here", { hint = "allowed: " .. table.concat(allowed, ", ") })),
        { Allow = table.concat(allowed, ", ") }, "unmatched"
    end
    return 404, api.error_body(errors.new("not_found", "no such endpoint: " .. msg.path,
      { hint = "see docs/API.md for the endpoints" })), nil, "unmatched"
  end
  local req = {
    method = msg.method, path = msg.path, params = params_or_why,
    query = decode_query(msg.query), headers = msg.headers, body = msg.body,
    server = server,
  }
  local ok, status, body, headers = xpcall(function()
    if req.params.ns then
      local valid = pcall(tokens.check_namespace, req.params.ns)
      if not valid or req.params.ns == "*" then
        api.fail(400, "bad_request", string.format("'%s' is not a namespace name", req.params.ns),
          "lower-case letters, digits and '-', up to 63 characters")
      end
    end
    if route.auth ~= "none" then
      req.token = auth.authenticate(server, msg.headers)
      req.actor = "token:" .. req.token.name
      auth.authorize(req.token, route.auth, req.params.ns)
    end
    return route.handler(req)
  end, function(err)
    if errors.is(err) then return err end
    return { bug = err, traceback = debug.traceback(tostring(err), 2) }
  end)
  if ok then return status or 200, body, headers, route.name end
  if errors.is(status) then
    local retry = status.retry_after and { ["Retry-After"] = tostring(status.retry_after) } or nil
    return api.status_of(status), api.error_body(status), retry, route.name
  end
  server.log:error("handler for %s %s failed: %s", msg.method, msg.path, status.traceback)
  return 500, api.error_body(nil), nil, route.name
end

-- Answers the queued requests of a connection one after another, in one
-- task that loops while requests wait (a client may pipeline hundreds: one
-- task per request, each started from the last, would nest without bound).
function Connection:pump()
  if self.busy or self.closed or self.closing then return end
  if #self.queue == 0 then
    if self.failure then
      self:respond(self.failure.status, self.failure.body, self.failure.headers, false)
    elseif self.eof then
      self:close()
    else
      self:watch()
    end
    return
  end
  self.busy = true
  self.phase = "busy"
  if self.timer then self.timer:stop() end
  local server = self.server
  async.spawn(function()
    local keep_alive = true
    while keep_alive and not self.closed do
      local msg = table.remove(self.queue, 1)
      if not msg then break end
      local started = uv.hrtime()
      local status, body, headers, route_name = M.handle(server, msg)
      if self.closed then break end
      -- A client that has sent its last byte (a half-close) still gets the
      -- answers to what it sent; the last one closes.
      keep_alive = msg.keep_alive and not server.stopping and not (self.eof and #self.queue == 0 and not self.failure)
      if type(body) == "table" and type(body.stream) == "function" then
        self:respond_stream(status, body.stream, headers, keep_alive)
      else
        self:respond(status, body, headers, keep_alive, msg.method == "HEAD")
      end
      if server.on_request then
        server.on_request(route_name, msg.method, status, (uv.hrtime() - started) / 1e9)
      end
    end
    self.busy = false
    -- Nothing waits: arm the idle timer (or answer a parse failure).
    if keep_alive and not self.closed then self:pump() end
  end)
end

local function failure(status, code, message)
  return { status = status, body = api.error_body(errors.new(code, message)) }
end

function Connection:on_data(data)
  if self.closing or self.failure then return end
  local messages, err, code = self.parser:feed(data)
  -- A read can complete requests and then fail: answer those, then the error.
  for _, msg in ipairs(messages or {}) do
    if not VERSIONS[msg.http_version] then
      -- What follows a message in a version we do not speak is not read.
      self.failure = failure(505, "http_version_not_supported", string.format(
        "HTTP/%s is not supported; prisn speaks HTTP/1.1 and HTTP/1.0", msg.http_version))
      break
    end
    -- prisn speaks plain HTTP/1.1: an Upgrade request is answered, then closed.
    if msg.upgrade then msg.keep_alive = false end
    self.queue[#self.queue + 1] = msg
  end
  -- What the parser holds: nothing between messages, else (at most) all
  -- that was fed since the last message completed.
  self:hold(self.parser:pending() == "none" and 0 or (self.held or 0) + #data)
  if not err and not self.failure and self.server.held_bytes > self.server.limits.max_buffered_bytes then
    self.failure = failure(503, "unavailable", "the server is receiving too many large requests at once")
    self.failure.headers = { ["Retry-After"] = "1" }
    -- Its bytes are let go now, not when the answers before it are done.
    self:hold(0)
    self.parser:close()
  end
  if err and not self.failure then
    local status = PARSER_ERROR_STATUS[code] or 400
    local message = status == 413 and "the request body is too large"
      or status == 431 and "the request headers are too large"
      or ("malformed request: " .. tostring(err))
    self.failure = failure(status, code or "bad_request", message)
  end
  if #self.queue > 0 or self.failure then
    self:pump()
  else
    self:watch()
  end
end

-- The peer sent its last byte. What it asked for completely is answered;
-- a partial request never will be.
function Connection:on_eof()
  self.eof = true
  if not self.busy and #self.queue == 0 and not self.failure then self:close() end
end

-- Logs a failed accept (EMFILE: out of descriptors) at most every 10 s:
-- a flood of them must not flood the log too. On EMFILE libuv has already
-- accepted and closed the connections it could not serve (with a descriptor
-- it keeps in reserve), so the listener does not spin.
local function accept_failed(server, err)
  local now, last = uv.now(), server.accept_warned
  if last and now - last.at < 10000 then
    last.missed = last.missed + 1
    return
  end
  server.log:warn("accept failed: %s%s", tostring(err), last and last.missed > 0
    and string.format(" (and %d more since the last warning)", last.missed) or "")
  server.accept_warned = { at = now, missed = 0 }
end

local function accept(server, listener)
  local stream = listener.kind == "pipe" and uv.new_pipe(false) or uv.new_tcp()
  if not stream then return accept_failed(server, "cannot create a handle") end
  if not listener.handle:accept(stream) then
    stream:close()
    return
  end
  local client
  if listener.kind == "tcp" then
    local peer = stream:getpeername()
    if not peer then -- gone already
      stream:close()
      return
    end
    client = peer.ip
  end
  local conn = setmetatable({ server = server, stream = stream, queue = {}, kind = listener.kind,
    client = client }, Connection)
  count_in(server, conn)
  local status, code, message = M.refusal(server, listener.kind, client)
  if status then
    -- Refused at once: what fits in the socket's buffer now (all of it, on
    -- a new connection) is sent, and the descriptor is let go, so a flood
    -- of refusals holds nothing.
    -- (A TLS listener closes without a word: an answer would cost a handshake.)
    local body = json.encode(api.error_body(errors.new(code, message, { hint = "retry in a moment" })))
    if not listener.tls then stream:try_write(response_head(status, { ["Content-Type"] = "application/json",
      ["Content-Length"] = tostring(#body), ["Retry-After"] = "1" }, false) .. body) end
    conn:close()
    return
  end
  if listener.tls then
    -- HTTPS: the connection's stream decrypts; a failed or stalled handshake
    -- closes it (counted and logged by the context's on_error).
    stream = tls.wrap(stream, listener.tls, { on_error = listener.tls.on_error,
      handshake_timeout_ms = math.min(server.limits.header_timeout_ms, server.limits.request_timeout_ms) })
    conn.stream = stream
  end
  conn.parser = http.new_parser("request", {
    max_header_bytes = server.limits.max_header_bytes,
    max_body_bytes = server.limits.max_body_bytes,
  })
  conn.phase, conn.started = "new", uv.now()
  conn:arm(math.min(server.limits.header_timeout_ms, server.limits.request_timeout_ms), on_request_timeout)
  stream:read_start(function(err, data)
    if err then
      conn:close()
    elseif data then
      conn:on_data(data)
    else
      conn:on_eof()
    end
  end)
end

--- Makes the bound handle of a listener: { kind = "pipe", path = ... }
-- (a stale socket file is replaced; the new one is made 0600) or
-- { kind = "tcp", host = ..., port = ... }. Returns it, or nil, message.
function M.bind(listener)
  if listener.kind == "pipe" then
    uv.fs_unlink(listener.path)
    local pipe = uv.new_pipe(false)
    local ok, err = pipe:bind(listener.path)
    if not ok then
      pipe:close()
      return nil, err
    end
    uv.fs_chmod(listener.path, tonumber("600", 8))
    return pipe
  end
  local tcp = uv.new_tcp()
  local ok, err = tcp:bind(listener.host, listener.port)
  if not ok then
    tcp:close()
    return nil, err
  end
  return tcp
end

M.PAUSE_MS = 1000
-- The kernel's queue of connections not yet accepted (capped by
-- net.core.somaxconn). Under a flood of connects a short one overflows and
-- every client's SYN is dropped alike, to be sent again a second later;
-- the loop accepts the whole queue at each turn, so a long one costs little.
M.BACKLOG = 4096

local function listen(server, listener)
  return listener.handle:listen(M.BACKLOG, function(listen_err)
    if listen_err then return M.listen_failed(server, listener, listen_err) end
    accept(server, listener)
  end)
end

--- The listen callback's error path. libuv sheds the connections it cannot
-- accept for want of descriptors with one it keeps in reserve, silently;
-- only when that reserve is gone too (another thread took the descriptor)
-- does the callback hear of EMFILE, and then libuv calls it again at once,
-- in a loop that never returns to the event loop. Closing the listener ends
-- that loop; it is bound again PAUSE_MS later (and again, until it works).
function M.listen_failed(server, listener, err)
  accept_failed(server, err)
  local e = tostring(err)
  if not (e:find("EMFILE", 1, true) or e:find("ENFILE", 1, true)) or listener.paused then return end
  listener.paused = true
  if not listener.handle:is_closing() then listener.handle:close() end
  local timer = uv.new_timer()
  local function retry()
    if server.stopping then
      timer:close()
      return
    end
    local handle, berr = M.bind(listener)
    local ok, lerr
    if handle then
      listener.handle = handle
      ok, lerr = listen(server, listener)
      if not ok then handle:close() end
    end
    if ok then
      listener.paused = false
      timer:close()
      server.log:info("listening again on %s", listener.address or listener.kind)
    else
      accept_failed(server, berr or lerr)
      timer:start(M.PAUSE_MS, 0, retry)
    end
  end
  timer:start(M.PAUSE_MS, 0, retry)
end

--- Starts serving on `listener` = { kind = "pipe"|"tcp", handle = a bound
-- luv handle, and what M.bind needs to bind it again }. `server` carries
-- router, limits, log, connections (a counter) and optionally
-- on_request(route, method, status, seconds).
function M.serve(server, listener)
  server.open = server.open or {}
  server.clients = server.clients or {}
  local ok, err = listen(server, listener)
  if not ok then return nil, err end
  return true
end

return M
