-- prisn.server.http: HTTP/1.1 on luv streams (unix socket and TCP).
--
-- One connection = one parser (prisn.core.http) and a queue of requests
-- answered in order, so pipelining and keep-alive work. Each request runs as
-- an async task, so a handler may wait (on a child process, a timer) without
-- blocking the loop. Limits protect the server from its clients:
--
--   header and body size     431 / 413, then the connection is closed
--   a request that does not arrive within request_timeout (slow client)
--                            408, closed
--   an idle keep-alive connection past idle_timeout: closed
--   more than max_connections at once: 503 with Retry-After, closed
--   a malformed request: 400, closed
--
-- A handler that raises gets its error rendered ({"error": {...}}); a bug
-- is logged with its traceback and answered 500. Nothing a client sends can
-- stop the loop.
local uv = require("luv")
local http = require("prisn.core.http")
local async = require("prisn.async")
local errors = require("prisn.error")
local api = require("prisn.server.api")
local auth = require("prisn.server.auth")
local json = require("prisn.output.json")

local M = {}

M.DEFAULTS = {
  max_header_bytes = 16 * 1024,
  max_body_bytes = 20 * 1024 * 1024,
  max_connections = 1024,
  request_timeout_ms = 10 * 1000,
  idle_timeout_ms = 60 * 1000,
}

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

function Connection:close()
  if self.closed then return end
  self.closed = true
  self.server.connections = self.server.connections - 1
  if self.timer then self.timer:stop(); self.timer:close(); self.timer = nil end
  if self.parser then self.parser:close() end
  if not self.stream:is_closing() then self.stream:close() end
end

function Connection:write(data)
  if not self.closed then self.stream:write(data) end
end

-- Sends a complete response; closes afterwards unless keep_alive.
function Connection:respond(status, body, headers, keep_alive, head_only)
  local text, content_type = encode_body(body)
  local h = {}
  for k, v in pairs(headers or {}) do h[k] = v end
  if content_type and not h["Content-Type"] then h["Content-Type"] = content_type end
  h["Content-Length"] = tostring(#text)
  self:write(response_head(status, h, keep_alive) .. (head_only and "" or text))
  if not keep_alive then
    -- Close once the write has been flushed.
    if not self.closed then self.stream:shutdown(function() self:close() end) end
    self.closing = true
  end
end

-- Sends a chunked response produced by producer(write); see api.stream.
function Connection:respond_stream(status, producer, headers, keep_alive)
  local h = { ["Transfer-Encoding"] = "chunked", ["Content-Type"] = "application/x-ndjson" }
  for k, v in pairs(headers or {}) do h[k] = v end
  if self.timer then self.timer:stop() end
  self:write(response_head(status, h, keep_alive))
  local ok, err = pcall(producer, function(text)
    if self.closed then return false end
    if #text > 0 then self:write(string.format("%x\r\n%s\r\n", #text, text)) end
    return true
  end)
  if not ok then self.server.log:error("streaming response failed: %s", tostring(err)) end
  self:write("0\r\n\r\n")
  if not keep_alive and not self.closed then
    self.stream:shutdown(function() self:close() end)
    self.closing = true
  end
end

-- Restarts the timer: `ms` until the connection is dropped with `on_expire`.
function Connection:arm(ms, on_expire)
  if self.closed then return end
  if not self.timer then self.timer = uv.new_timer() end
  self.timer:stop()
  self.timer:start(ms, 0, function() on_expire(self) end)
end

local function on_request_timeout(conn)
  if conn.busy then return end
  conn:respond(408, api.error_body(errors.new("timeout", "the request did not arrive in time")), nil, false)
end

local function on_idle_timeout(conn)
  conn:close()
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
      local valid = pcall(require("prisn.store.tokens").check_namespace, req.params.ns)
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
  if self.busy or self.closed then return end
  if #self.queue == 0 then
    if self.failure then
      self:respond(self.failure.status, self.failure.body, nil, false)
    else
      self:arm(self.server.limits.idle_timeout_ms, on_idle_timeout)
    end
    return
  end
  self.busy = true
  local server = self.server
  async.spawn(function()
    local keep_alive = true
    while keep_alive and not self.closed do
      local msg = table.remove(self.queue, 1)
      if not msg then break end
      local started = uv.hrtime()
      local status, body, headers, route_name = M.handle(server, msg)
      if self.closed then break end
      keep_alive = msg.keep_alive and not server.stopping
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

function Connection:on_data(data)
  if self.closing or self.failure then return end
  local messages, err, code = self.parser:feed(data)
  -- A read can complete requests and then fail: answer those, then the error.
  for _, msg in ipairs(messages or {}) do
    -- prisn speaks plain HTTP/1.1: an Upgrade request is answered, then closed.
    if msg.upgrade then msg.keep_alive = false end
    self.queue[#self.queue + 1] = msg
  end
  if err then
    local status = PARSER_ERROR_STATUS[code] or 400
    local message = status == 413 and "the request body is too large"
      or status == 431 and "the request headers are too large"
      or ("malformed request: " .. tostring(err))
    self.failure = { status = status, body = api.error_body(errors.new(code or "bad_request", message)) }
  end
  if messages and #messages > 0 then self.request_armed = false end
  if #self.queue > 0 or self.failure then
    self:pump()
  elseif not self.busy and not self.request_armed then
    -- Part of a request arrived: all of it must arrive within request_timeout,
    -- counted from its first byte (a client trickling bytes is not renewed).
    self.request_armed = true
    self:arm(self.server.limits.request_timeout_ms, on_request_timeout)
  end
end

local function accept(server, listener)
  local stream = listener.kind == "pipe" and uv.new_pipe(false) or uv.new_tcp()
  if not listener.handle:accept(stream) then
    stream:close()
    return
  end
  server.connections = server.connections + 1
  local conn = setmetatable({ server = server, stream = stream, queue = {} }, Connection)
  if server.connections > server.limits.max_connections or server.stopping then
    conn:respond(503, api.error_body(errors.new("unavailable",
      server.stopping and "the server is stopping" or "too many connections",
      { hint = "retry in a moment" })), { ["Retry-After"] = "1" }, false)
    return
  end
  conn.parser = http.new_parser("request", {
    max_header_bytes = server.limits.max_header_bytes,
    max_body_bytes = server.limits.max_body_bytes,
  })
  conn.request_armed = true
  conn:arm(server.limits.request_timeout_ms, on_request_timeout)
  stream:read_start(function(err, data)
    if err or not data then
      conn:close()
      return
    end
    conn:on_data(data)
  end)
end

--- Starts serving on `listener` = { kind = "pipe"|"tcp", handle = a bound
-- luv handle }. `server` carries router, limits, log, connections (a
-- counter) and optionally on_request(route, method, status, seconds).
function M.serve(server, listener)
  local ok, err = listener.handle:listen(511, function(listen_err)
    if listen_err then
      server.log:warn("accept failed: %s", listen_err)
      return
    end
    accept(server, listener)
  end)
  if not ok then return nil, err end
  return true
end

return M
