-- prisn.http.client: a small HTTP/1.1 client on luv, for the CLI talking to
-- the server: unix socket ("unix:/path"), TCP ("http://host:port") or TLS
-- ("https://host:port", verified against opts.tls: a pinned CA fingerprint
-- or a CA PEM, and the host name; see prisn.net.tls).
--
-- One request per connection (the CLI makes few), JSON in and out, and a
-- streaming mode for chunked responses such as log following. Must run
-- inside an async task (prisn.async).
local uv = require("luv")
local http = require("prisn.core.http")
local async = require("prisn.async")
local tls = require("prisn.net.tls")

local M = {}

M.TIMEOUT_MS = 30000

--- Splits an address into { kind = "unix", path } or { kind = "tcp", host,
-- port, tls, fingerprint }; nil, message for anything else. An https
-- address may end in "#sha256=HEX", the pinned fingerprint.
function M.parse_address(address)
  local path = address:match("^unix:(.+)$")
  if path then return { kind = "unix", path = path } end
  local scheme, rest = address:match("^(https?)://(.*)$")
  local fingerprint
  local base, fragment = (rest or ""):match("^([^#]*)#(.*)$")
  if base then
    rest, fingerprint = base, fragment:match("^sha256[=:](.+)$") or fragment
  end
  local host, port = (rest or ""):match("^%[?([^%]/]+)%]?:(%d+)/?$")
  if not host then
    host = (rest or ""):match("^([^:/]+)/?$")
    port = host and (scheme == "https" and 443 or 80)
  end
  if not host then
    return nil, "'" .. address .. "' is not a server address (unix:/path, https://host:port or http://host:port)"
  end
  return { kind = "tcp", host = host, port = tonumber(port), tls = scheme == "https", fingerprint = fingerprint }
end

-- Runs the TLS handshake on a connected TCP handle: the stream, or nil,
-- message, code (ECERTEXPIRED, EUNKNOWNCA, EPINMISMATCH, EHOSTMISMATCH, ...).
local function secure(tcp, target, trust)
  local ctx, cerr, ccode = tls.client_context{ fingerprint = trust.fingerprint, ca_pem = trust.ca_pem,
    host = target.host }
  if not ctx then
    tcp:close()
    return nil, cerr, ccode
  end
  local stream, failure
  local ok = async.wait(function(done)
    stream = tls.wrap(tcp, ctx, {
      on_ready = function() done(true) end,
      on_error = function(message, code) failure = { message, code } done(false) end })
  end)
  if ok then return stream end
  if not stream:is_closing() then stream:close() end
  return nil, failure[1], failure[2]
end

local function connect(target)
  local stream
  local ok, err = async.wait(function(done)
    if target.kind == "unix" then
      stream = uv.new_pipe(false)
      stream:connect(target.path, function(e) done(e == nil, e) end)
    else
      uv.getaddrinfo(target.host, tostring(target.port), { socktype = "stream" }, function(gerr, addrs)
        if gerr or not addrs or #addrs == 0 then
          done(false, gerr or "no address")
          return
        end
        stream = uv.new_tcp()
        stream:connect(addrs[1].addr, addrs[1].port, function(e) done(e == nil, e) end)
      end)
    end
  end)
  if not ok then
    if stream and not stream:is_closing() then stream:close() end
    return nil, err
  end
  return stream
end

local function request_text(target, method, path, headers, body)
  local lines = { string.format("%s %s HTTP/1.1", method, path),
    "Host: " .. (target.kind == "unix" and "localhost" or (target.host .. ":" .. target.port)),
    "Connection: close", "User-Agent: prisn" }
  for name, value in pairs(headers or {}) do lines[#lines + 1] = name .. ": " .. value end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  lines[#lines + 1] = ""
  lines[#lines + 1] = body or ""
  return table.concat(lines, "\r\n")
end

--- Sends a request and returns { status, headers, body } or nil, message,
-- code ("ECONNREFUSED", "ENOENT" for a missing socket, "ETIMEDOUT", ...).
-- opts: headers, body (string), timeout_ms, on_chunk (streams the body:
-- called with each chunk; the result's body is then ""), tls ({ fingerprint,
-- ca_pem }: what an https server must prove; TLS failures come back with
-- their codes, see prisn.net.tls).
function M.request(address, method, path, opts)
  opts = opts or {}
  local target, perr = M.parse_address(address)
  if not target then return nil, perr, "EINVAL" end
  local stream, cerr = connect(target)
  if not stream then
    local code = tostring(cerr):match("^(E%u+)") or "ECONNREFUSED"
    return nil, tostring(cerr), code
  end
  if target.tls then
    local trust = opts.tls or {}
    local secured, serr, scode = secure(stream, target, { fingerprint = trust.fingerprint or target.fingerprint,
      ca_pem = trust.ca_pem })
    if not secured then return nil, serr, scode end
    stream = secured
  end
  local parser = http.new_parser("response", { max_body_bytes = 256 * 1024 * 1024,
    stream_body = opts.on_chunk ~= nil })
  local result, failure
  local timer = uv.new_timer()
  local finished = async.wait(function(done)
    local settled = false
    local function settled_ok() return settled end
    local function settle(ok)
      if settled then return end
      settled = true
      done(ok)
    end
    local function consume(messages)
      for _, m in ipairs(messages) do
        if m.chunk then
          opts.on_chunk(m.chunk)
        elseif m.done then
          settle(true)
        elseif m.streaming then
          result = { status = m.status, headers = m.headers, body = "" }
        else
          result = m
          settle(true)
        end
      end
    end
    timer:start(opts.timeout_ms or M.TIMEOUT_MS, 0, function()
      failure = { "the server did not answer in time", "ETIMEDOUT" }
      settle(false)
    end)
    stream:read_start(function(err, data)
      if err then
        failure = { tostring(err), "ECONNRESET" }
        settle(false)
        return
      end
      local messages, merr, mcode
      if data then
        messages, merr, mcode = parser:feed(data)
      else
        messages, merr, mcode = parser:feed_eof()
      end
      consume(messages or {})
      if merr and not settled_ok() then
        failure = { "bad response from the server: " .. tostring(merr), mcode or "EPROTO" }
        settle(false)
        return
      end
      if not data then settle(result ~= nil) end
    end)
    stream:write(request_text(target, method, path, opts.headers, opts.body))
  end)
  timer:stop()
  timer:close()
  parser:close()
  if not stream:is_closing() then stream:close() end
  if not finished then
    if failure then return nil, failure[1], failure[2] end
    return nil, "the connection closed before a response", "ECONNRESET"
  end
  return result
end

return M
