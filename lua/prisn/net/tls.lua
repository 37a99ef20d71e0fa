-- prisn.net.tls: TLS for luv sockets, and the certificates prisn makes.
--
-- prisn.core.tls is a pure transform (ciphertext in, plaintext out); this
-- module puts it on a luv TCP handle and hands back a stream with the luv
-- stream interface the HTTP server, the ingress and the client already use
-- (read_start, read_stop, write, shutdown, close, is_closing,
-- get_write_queue_size, getpeername), plus server_name() (the SNI the client
-- sent), protocol() ("TLSv1.2") and peer_fingerprint(). So a listener goes
-- TLS by wrapping each accepted handle and nothing above it changes.
--
--   local ctx = tls.server_context{ default = pair, sni = function(name) return pairs[name] end }
--   server:listen(128, function() local c = uv.new_tcp(); server:accept(c)
--     serve(tls.wrap(c, ctx, { on_error = function(msg, code) log(msg) end })) end)
--
-- A handshake that fails or stalls (handshake_timeout_ms) closes the
-- connection and calls opts.on_error(message, code, stream) — the caller
-- counts and logs. A plain HTTP request sent to a TLS port gets a short
-- plain-text 400 saying to use https:// before the close, so curl shows why.
-- Certificates: ECDSA P-256, a CA of ten years, leaves of one year (policy
-- here, mechanism in core/tls.c); the minimum protocol is TLS 1.2 (mbedTLS
-- 2.28 has no TLS 1.3).
local uv = require("luv")
local core = require("prisn.core.tls")

local M = {}

M.HANDSHAKE_TIMEOUT_MS = 10000
M.CA_DAYS = 3650
M.LEAF_DAYS = 365
local DAY = 86400
-- Certificates start a little in the past so a peer whose clock lags
-- by a few minutes does not see them as not valid yet.
local BACKDATE = 3600

local PLAIN_HTTP_ANSWER = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
  .. "Content-Length: 46\r\n\r\nThis port speaks HTTPS: use https:// instead.\n"

-- ---- certificates -------------------------------------------------------------

M.cert_info = core.cert_info
M.load_pair = core.load_pair

--- A new CA: { cert = pem, key = pem } (self-signed, CA:true).
function M.new_ca(opts)
  opts = opts or {}
  local now = opts.now or os.time()
  local key = core.generate_key()
  local cert, err, code = core.create_cert{ key = key, common_name = opts.common_name or "prisn CA",
    ca = true, not_before = now - BACKDATE, not_after = now + (opts.days or M.CA_DAYS) * DAY }
  if not cert then return nil, err, code end
  return { cert = cert, key = key }
end

--- A leaf for `names` (host names and IP addresses, the first is the common
-- name), signed by `ca` ({ cert, key }) or self-signed without one.
-- opts.not_before / opts.not_after (epoch seconds) override the lifetime.
function M.new_leaf(names, ca, opts)
  opts = opts or {}
  local now = opts.now or os.time()
  local key = core.generate_key()
  local cert, err, code = core.create_cert{ key = key, common_name = opts.common_name or names[1],
    sans = names, issuer_cert = ca and ca.cert, issuer_key = ca and ca.key,
    not_before = opts.not_before or now - BACKDATE,
    not_after = opts.not_after or now + (opts.days or M.LEAF_DAYS) * DAY }
  if not cert then return nil, err, code end
  return { cert = cert, key = key }
end

--- True when the certificate's SANs hold `name` exactly (case-insensitive).
function M.covers(info, name)
  for _, san in ipairs(info.sans) do
    if san:lower() == name:lower() then return true end
  end
  return false
end

--- A normalized fingerprint: 64 lower-case hex digits (colons and case
-- dropped), or nil when `text` is not one.
function M.normalize_fingerprint(text)
  if type(text) ~= "string" then return nil end
  local hex = text:gsub(":", ""):lower()
  if #hex ~= 64 or hex:find("[^0-9a-f]") then return nil end
  return hex
end

-- ---- contexts -----------------------------------------------------------------

--- A server context: default = a pair (load_pair), sni = function(name) ->
-- pair or nil (nil keeps the default; without a default the name is refused).
function M.server_context(opts)
  return { server = true, config = core.server_config{ default = opts.default, sni = opts.sni } }
end

--- A client context. Trust is ca_pem (a PEM of CA certificates) or
-- fingerprint (SHA-256 of any certificate of the server's chain: prisn pins
-- its CA); host is the name the server's certificate must hold.
-- nil, message, code when neither trust is given or ca_pem does not parse.
function M.client_context(opts)
  if not opts.ca_pem and not opts.fingerprint then
    return nil, "a TLS client needs a CA or a pinned fingerprint to trust", "ENOTRUST"
  end
  local fingerprint = opts.fingerprint and M.normalize_fingerprint(opts.fingerprint)
  if opts.fingerprint and not fingerprint then
    return nil, "'" .. tostring(opts.fingerprint) .. "' is not a SHA-256 fingerprint (64 hex digits)", "EINVAL"
  end
  local config, err, code = core.client_config{ ca_pem = opts.ca_pem, fingerprint = fingerprint }
  if not config then return nil, err, code end
  return { server = false, config = config, host = opts.host }
end

-- ---- the stream ---------------------------------------------------------------

local Stream = {}
Stream.__index = Stream

local function looks_like_http(data)
  return data:match("^%u+ %S+ HTTP/%d") ~= nil
end

function Stream:_set_tcp_reading(on)
  if on == self.tcp_reading or self.tcp:is_closing() then return end
  self.tcp_reading = on
  if on then
    self.tcp:read_start(function(err, data) self:_on_tcp(err, data) end)
  else
    self.tcp:read_stop()
  end
end

function Stream:_flush(cb)
  if self.session_closed then
    if cb then cb("EPIPE: the TLS connection is closed") end
    return
  end
  local out = self.session:take_output()
  if #out > 0 and not self.tcp:is_closing() then
    self.tcp:write(out, cb)
  elseif cb then
    cb()
  end
end

function Stream:_stop_timer()
  if self.timer and not self.timer:is_closing() then self.timer:close() end
  self.timer = nil
end

function Stream:_stop_drain()
  if self.drain_timer and not self.drain_timer:is_closing() then self.drain_timer:close() end
  self.drain_timer = nil
end

function Stream:_deliver(err, data)
  self.pending[#self.pending + 1] = { err, data }
  self:_drain()
end

function Stream:_drain()
  while self.reading and #self.pending > 0 do
    local item = table.remove(self.pending, 1)
    self.read_cb(item[1], item[2])
  end
end

function Stream:_handshake_failed(message, code, first)
  self:_stop_timer()
  self.failed = true
  if self.ctx.server and first and looks_like_http(first) and not self.tcp:is_closing() then
    self.tcp:write(PLAIN_HTTP_ANSWER)
    self.tcp:shutdown()
  else
    self:_flush() -- the alert, when the session made one
  end
  local reader = self.reading and self.read_cb
  if self.opts.on_error then self.opts.on_error(message, code, self) end
  self:close()
  -- The reader learns it too, so whoever owns the connection lets it go.
  if reader then reader(message, nil) end
end

function Stream:_handshake_step(data)
  local done, err, code = self.session:handshake()
  if done == nil then return self:_handshake_failed(err, code, data) end
  self:_flush()
  if not done then return end
  self.ready = true
  self:_stop_timer()
  for _, w in ipairs(self.queued) do self:write(w[1], w[2]) end
  self.queued = {}
  if self.shutdown_cb then self:shutdown(self.shutdown_cb) end
  if self.opts.on_ready then self.opts.on_ready(self) end
  if not self.reading and not self.tcp:is_closing() then self:_set_tcp_reading(false) end
end

function Stream:_on_tcp(err, data)
  if self.session_closed then return end
  if err or not data then
    if not self.ready then
      return self:_handshake_failed(err or "the connection closed during the TLS handshake",
        err and err:match("^(%u+)") or "ECONNRESET")
    end
    return self:_deliver(err, nil)
  end
  self.session:feed(data)
  local first = not self.seen_bytes and data
  self.seen_bytes = true
  if not self.ready then
    self:_handshake_step(first or nil)
    if not self.ready then return end
  end
  local plain, closed_or_err, code = self.session:read()
  self:_flush()
  if plain == nil then
    if self.opts.on_error then self.opts.on_error(closed_or_err, code, self) end
    return self:_deliver(closed_or_err, nil)
  end
  if #plain > 0 then self:_deliver(nil, plain) end
  if closed_or_err then self:_deliver(nil, nil) end
end

--- luv's read_start: cb(err, data), data nil at the end of the stream.
-- Data that arrived while reading was stopped comes on the next loop turn,
-- never inside this call (as with luv).
function Stream:read_start(cb)
  self.read_cb, self.reading = cb, true
  self:_set_tcp_reading(true)
  if #self.pending > 0 and not self.drain_timer then
    self.drain_timer = uv.new_timer()
    self.drain_timer:start(0, 0, function()
      self.drain_timer:close()
      self.drain_timer = nil
      self:_drain()
    end)
  end
  return true
end

function Stream:read_stop()
  self.reading = false
  if self.ready then self:_set_tcp_reading(false) end
  return true
end

--- luv's write: data a string or a list of strings; cb(err) once the
-- ciphertext is handed to the kernel.
function Stream:write(data, cb)
  if type(data) == "table" then data = table.concat(data) end
  if self.session_closed or self.tcp:is_closing() then
    if cb then cb("EPIPE: the TLS connection is closed") end
    return nil, "EPIPE: the TLS connection is closed", "EPIPE"
  end
  if not self.ready then
    self.queued[#self.queued + 1] = { data, cb }
    self.queued_bytes = self.queued_bytes + #data
    return true
  end
  self.queued_bytes = 0
  local ok, err, code = self.session:write(data)
  if not ok then
    if cb then cb(err) end
    return nil, err, code
  end
  self:_flush(cb)
  return true
end

--- Sends close_notify, then shuts the TCP write side; cb(err).
function Stream:shutdown(cb)
  if self.session_closed or self.tcp:is_closing() then
    if cb then cb("EPIPE: the TLS connection is closed") end
    return
  end
  if not self.ready then
    self.shutdown_cb = cb or function() end
    return true
  end
  self.shutdown_cb = nil
  self.session:close_notify()
  self:_flush()
  return self.tcp:shutdown(cb)
end

function Stream:close(cb)
  self:_stop_timer()
  self:_stop_drain()
  self.reading, self.pending = false, {} -- nothing reaches the reader after a close
  if not self.session_closed then
    self.session_closed = true
    self.session:close()
  end
  if not self.tcp:is_closing() then
    self.tcp:close(cb)
  elseif cb then
    cb()
  end
end

function Stream:is_closing() return self.tcp:is_closing() end
function Stream:is_active() return self.tcp:is_active() end
function Stream:get_write_queue_size() return self.tcp:get_write_queue_size() + self.queued_bytes end
function Stream:getpeername() return self.tcp:getpeername() end
function Stream:getsockname() return self.tcp:getsockname() end
function Stream:nodelay(on) return self.tcp:nodelay(on) end
function Stream:keepalive(...) return self.tcp:keepalive(...) end

function Stream:server_name()
  if self.session_closed then return self.sni end
  self.sni = self.sni or self.session:server_name()
  return self.sni
end

function Stream:protocol()
  return self.ready and not self.session_closed and self.session:protocol() or nil
end

function Stream:peer_fingerprint()
  return self.ready and not self.session_closed and self.session:peer_fingerprint() or nil
end

--- Wraps a connected (or accepted) TCP handle. opts: on_ready(stream) once
-- the handshake is done, on_error(message, code, stream) when it fails (the
-- stream is then closed), handshake_timeout_ms. Writes before the handshake
-- is done are queued.
function M.wrap(tcp, ctx, opts)
  opts = opts or {}
  local self = setmetatable({ tcp = tcp, ctx = ctx, opts = opts, session = ctx.config:session(ctx.host),
    pending = {}, queued = {}, queued_bytes = 0, ready = false, reading = false, tcp_reading = false },
    Stream)
  local timeout = opts.handshake_timeout_ms or M.HANDSHAKE_TIMEOUT_MS
  if timeout > 0 then
    self.timer = uv.new_timer()
    self.timer:start(timeout, 0, function()
      self:_handshake_failed("the TLS handshake timed out after " .. timeout .. " ms", "ETIMEDOUT")
    end)
  end
  self:_set_tcp_reading(true)
  if not ctx.server then self:_handshake_step(nil) end
  return self
end

--- fn(tcp) -> stream for listeners that take a wrap hook (opts as in wrap).
function M.wrapper(ctx, opts)
  return function(tcp) return M.wrap(tcp, ctx, opts) end
end

return M
