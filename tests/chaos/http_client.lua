-- Raw HTTP for the chaos specs: many exchanges at once on one luv loop, over
-- TCP (from a chosen source address; TLS when the target has a ca_pem, as
-- the API's TCP port has) or the unix socket, with the bytes exactly as given
-- (malformed ones too), timed, and a server's RSS.
--
--   local wire = require("chaos.http_client")
--   local r = wire.request({ host = "127.0.0.1", port = 7433 }, wire.format("GET", "/health"))
--   -- r.status == 200, r.ms, r.responses[1].body
--
-- An exchange writes its bytes, reads until the server closes (or, with
-- `responses = n`, until n responses have arrived) or `timeout_ms`, and
-- parses what came back with prisn's own response parser. Every handle it
-- opens is closed before its callback runs.
local uv = require("luv")
local cjson = require("cjson")
local http = require("prisn.core.http")
local tls = require("prisn.net.tls")

local M = {}

-- Specs write to sockets the server closes: EPIPE, not death by SIGPIPE.
local sigpipe = uv.new_signal()
sigpipe:start("sigpipe", function() end)
sigpipe:unref()

--- The bytes of one request. headers: a list of "Name: value" lines (Host
-- and Content-Length are added unless given).
function M.format(method, path, opts)
  opts = opts or {}
  local lines = { string.format("%s %s HTTP/%s", method, path, opts.version or "1.1") }
  local has_host, has_length = false, false
  for _, line in ipairs(opts.headers or {}) do
    has_host = has_host or line:lower():match("^host:") ~= nil
    has_length = has_length or line:lower():match("^content%-length:") ~= nil
    lines[#lines + 1] = line
  end
  if not has_host then lines[#lines + 1] = "Host: prisn" end
  if opts.token then lines[#lines + 1] = "Authorization: Bearer " .. opts.token end
  if opts.body and not has_length then lines[#lines + 1] = "Content-Length: " .. #opts.body end
  if opts.close ~= false then lines[#lines + 1] = "Connection: close" end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (opts.body or "")
end

local function parse(raw, head_only)
  local out = {}
  if head_only then
    -- A response to HEAD has no body whatever its Content-Length says,
    -- which a parser cannot know: only the status line counts.
    local status = raw:match("^HTTP/1%.%d (%d%d%d)")
    if status then out[1] = { status = tonumber(status), headers = {}, body = "" } end
    return out
  end
  local parser = http.new_parser("response", { max_body_bytes = 64 * 1024 * 1024 })
  local list = parser:feed(raw) or {}
  local tail = parser:feed_eof() or {}
  parser:close()
  for _, m in ipairs(list) do out[#out + 1] = m end
  for _, m in ipairs(tail) do out[#out + 1] = m end
  if #out == 0 then
    local status = raw:match("^HTTP/1%.%d (%d%d%d)")
    if status then out[1] = { status = tonumber(status), headers = {}, body = "" } end
  end
  return out
end

-- Makes the stream for `target` and connects it; calls on_connect(err).
-- With target.ca_pem the TCP stream is wrapped in TLS once connected:
-- on_stream(wrapped) says so at once, on_connect comes after the handshake.
local function connect(target, on_connect, on_stream)
  if target.ca_pem then
    local plain = { host = target.host, port = target.port, bind = target.bind }
    return connect(plain, function(err, tcp)
      if err then return on_connect(err) end
      local ctx = assert(tls.client_context{ ca_pem = target.ca_pem, host = target.host or "127.0.0.1" })
      on_stream(tls.wrap(tcp, ctx, { on_ready = function() on_connect(nil) end,
        on_error = function(msg) on_connect(msg) end }))
    end)
  end
  if target.path then
    local pipe = uv.new_pipe(false)
    pipe:connect(target.path, on_connect)
    return pipe
  end
  local tcp = uv.new_tcp()
  if target.bind then
    local ok, err = tcp:bind(target.bind, 0)
    if not ok then
      tcp:close()
      return nil, err
    end
  end
  local ok, err = tcp:connect(target.host or "127.0.0.1", target.port, function(cerr) on_connect(cerr, tcp) end)
  if not ok then
    tcp:close()
    return nil, err
  end
  return tcp
end

--- Starts one exchange; `done(result)` is called once, later, with
-- { status (of the first response), responses, raw, ms, closed (by the
-- server), timed_out, error }. opts: timeout_ms (5000), half_close (shut
-- down the writing side after the bytes), responses (stop after n), pieces
-- (a list of { bytes, delay_ms } sent one after another instead of `bytes`),
-- head (the request is a HEAD).
function M.start(target, bytes, opts, done)
  opts = opts or {}
  local t0 = uv.hrtime()
  local chunks, result, finished = {}, {}, false
  local stream, timer, pending_pieces
  local function finish()
    if finished then return end
    finished = true
    timer:stop(); timer:close()
    if pending_pieces then pending_pieces:stop(); pending_pieces:close() end
    if stream and not stream:is_closing() then stream:close() end
    result.raw = table.concat(chunks)
    result.ms = (uv.hrtime() - t0) / 1e6
    result.responses = parse(result.raw, opts.head)
    result.status = result.responses[1] and result.responses[1].status
    done(result)
  end
  timer = uv.new_timer()
  timer:start(opts.timeout_ms or 5000, 0, function()
    result.timed_out = true
    finish()
  end)
  local err
  stream, err = connect(target, function(cerr)
    if finished then return end
    if cerr then
      result.error = cerr
      return finish()
    end
    stream:read_start(function(rerr, data)
      if finished then return end
      if rerr then result.error = rerr; return finish() end
      if not data then result.closed = true; return finish() end
      chunks[#chunks + 1] = data
      if opts.responses and #parse(table.concat(chunks), opts.head) >= opts.responses then finish() end
    end)
    local pieces = opts.pieces or { { bytes, 0 } }
    local i = 0
    local function send_next()
      if finished then return end
      i = i + 1
      local piece = pieces[i]
      if not piece then
        if opts.half_close then stream:shutdown() end
        return
      end
      stream:write(piece[1])
      if (piece[2] or 0) > 0 then
        pending_pieces = pending_pieces or uv.new_timer()
        pending_pieces:start(piece[2], 0, send_next)
      else
        send_next()
      end
    end
    send_next()
  end, function(wrapped) stream = wrapped end)
  if not stream then
    result.error = err
    -- Not from inside the caller's own call: a callback comes later.
    local t = uv.new_check()
    t:start(function() t:stop(); t:close(); finish() end)
  end
end

--- Runs the loop until pred() is true or timeout_ms passed; returns pred().
function M.wait(pred, timeout_ms)
  local deadline = uv.now() + (timeout_ms or 10000)
  while not pred() and uv.now() < deadline do
    uv.run("once")
    uv.update_time()
  end
  return pred()
end

--- One exchange, waited for.
function M.request(target, bytes, opts)
  local result
  M.start(target, bytes, opts, function(r) result = r end)
  M.wait(function() return result ~= nil end, (opts and opts.timeout_ms or 5000) + 5000)
  return result
end

--- A JSON API call: method, path, token, body (a table or string); returns
-- status, decoded body (or nil), the result.
function M.api(target, method, path, token, body)
  if type(body) == "table" then body = cjson.encode(body) end
  local r = M.request(target, M.format(method, path, { token = token, body = body,
    headers = body and { "Content-Type: application/json" } or nil }))
  local text = r.responses[1] and r.responses[1].body
  local ok, decoded = pcall(cjson.decode, text or "")
  return r.status, ok and decoded or nil, r
end

--- Uploads folder `dir` as a bundle with `token`; returns its hash.
function M.upload(target, token, dir)
  local blob, hash = require("prisn.bundle").pack(dir)
  assert(blob, hash)
  local status = M.api(target, "PUT", "/api/v1/bundles/" .. hash, token, blob)
  assert(status == 200 or status == 201, "bundle upload: " .. tostring(status))
  return hash
end

--- Starts a server (`prisn server start`) with a fresh PRISN_HOME and the
-- variables of `extra_env` and the flags `args` (e.g. { "--insecure-http" }),
-- through the e2e helper `h`. Returns { env, home,
-- pid, tcp (a target, over TLS), unix (a target), admin (the admin token),
-- ca_pem (the server's CA) }.
function M.start_server(h, extra_env, args)
  local env = h.env(extra_env)
  local argv = { "server", "start" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local r = h.prisn(argv, { env = env })
  assert(r.code == 0, "the server did not start: " .. r.stderr)
  local info = cjson.decode(assert(h.read(env.PRISN_HOME .. "/server.json")))
  local s = { env = env, home = env.PRISN_HOME, pid = math.tointeger(info.pid), socket = info.socket }
  s.ca_pem = info.address:match("^https:") and h.read(s.home .. "/ca.crt") or nil
  s.tcp = { host = "127.0.0.1", port = tonumber(info.address:match(":(%d+)$")), ca_pem = s.ca_pem }
  s.unix = { path = info.socket }
  s.admin = (h.read(s.home .. "/admin.token"):gsub("%s+$", ""))
  return s
end

--- A new token (`prisn token create`) of `role` for `namespace`.
function M.token(h, s, name, role, namespace)
  local r = h.prisn({ "token", "create", name, "--role", role, "--namespace", namespace, "-o", "json" },
    { env = s.env })
  assert(r.code == 0, r.stderr)
  return cjson.decode(r.stdout).token
end

--- The resident set of process `pid` in KiB, or nil when it is gone.
function M.rss_kb(pid)
  local f = io.open("/proc/" .. pid .. "/status")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)"))
end

--- The open descriptors of process `pid` (nil when it is gone).
function M.open_fds(pid)
  local entries, err = require("prisn.fs").list_dir("/proc/" .. pid .. "/fd")
  return not err and #entries or nil
end

--- Total CPU seconds (user + system) process `pid` has used.
function M.cpu_seconds(pid)
  local procfs = require("prisn.procfs")
  local stat = procfs.stat(pid)
  if not stat then return nil end
  return (stat.utime + stat.stime) / procfs.USER_HZ
end

return M
