-- What the ingress specs share: a real luv loop driven until a condition
-- holds, HTTP backends and raw clients on 127.0.0.1 written with luv and
-- prisn.core.http, external programs (curl, python3) run without blocking
-- the loop, and the bookkeeping that checks every handle was closed.
--
--   local h = require("spec.prisn.net.ingress.harness")
--   before_each(h.before); after_each(h.after)
--   local b = h.backend({ id = "a" })            -- answers "a <method> <path>"
--   local ig = h.ingress({ limits = { ... } })   -- closed by h.after
--   local c = h.client(ig:port()); c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"); c.wait_messages(1)
local uv = require("luv")
local http = require("prisn.core.http")
local ingress = require("prisn.net.ingress")
local sys = require("prisn.core.sys")

local M = {}

-- A write to a client that has gone raises SIGPIPE; the server ignores it
-- (server/init.lua), and so must this process.
sys.ignore_sigpipe()

local handles, ingresses, procs, baseline

function M.track(handle)
  handles[#handles + 1] = handle
  return handle
end

--- Drives the loop until cond() holds or ms pass; returns cond().
function M.run_until(cond, ms)
  local tick = uv.new_timer()
  tick:start(5, 5, function() end)
  local deadline = uv.hrtime() + (ms or 5000) * 1e6
  while not cond() and uv.hrtime() < deadline do uv.run("once") end
  tick:close()
  uv.run("nowait")
  return cond()
end

function M.sleep(ms)
  local t0 = uv.hrtime()
  M.run_until(function() return uv.hrtime() - t0 >= ms * 1e6 end, ms + 100)
end

local function open_handles()
  local n = 0
  uv.walk(function(h) if not h:is_closing() then n = n + 1 end end)
  return n
end

function M.before()
  uv.run("nowait")
  handles, ingresses, procs = {}, {}, {}
  baseline = open_handles()
end

function M.after()
  for _, p in ipairs(procs) do
    if not p.exited then pcall(p.handle.kill, p.handle, "sigkill") end
  end
  M.run_until(function()
    for _, p in ipairs(procs) do if not p.exited then return false end end
    return true
  end, 3000)
  local closed = 0
  for _, ig in ipairs(ingresses) do ig:close(function() closed = closed + 1 end) end
  M.run_until(function() return closed == #ingresses end, 3000)
  for _, h in ipairs(handles) do
    if not h:is_closing() then h:close() end
  end
  uv.run("nowait")
  uv.run("nowait")
  assert(closed == #ingresses, "an ingress's close did not call back")
  assert(baseline == open_handles(), "handles left open: " .. (open_handles() - baseline))
end

--- An ingress on 127.0.0.1, any port; closed by M.after.
function M.ingress(opts)
  opts = opts or {}
  if not opts.handle then opts.host, opts.port = "127.0.0.1", 0 end
  local ig = assert(ingress.listen(opts))
  ingresses[#ingresses + 1] = ig
  return ig
end

--- A port nothing listens on.
function M.dead_port()
  local t = uv.new_tcp()
  assert(t:bind("127.0.0.1", 0))
  local port = t:getsockname().port
  t:close()
  return port
end

--- An HTTP/1.1 backend. opts: id; handler(req, reply, conn) (default: a 200
-- whose body is "<id> <method> <url>"); reply(raw) writes raw bytes.
-- Fields: port, accepted, open (connections now), requests (list), spec().
function M.backend(opts)
  local b = { id = opts.id, accepted = 0, open = 0, requests = {}, conns = {} }
  local server = M.track(uv.new_tcp())
  assert(server:bind("127.0.0.1", 0))
  local function default(req, reply)
    local body = b.id .. " " .. req.method .. " " .. req.url
    reply(string.format("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Backend: %s\r\n\r\n%s", #body, b.id, body))
  end
  local handler = opts.handler or default
  assert(server:listen(128, function(err)
    assert(not err, err)
    local c = M.track(uv.new_tcp())
    assert(server:accept(c))
    b.accepted, b.open = b.accepted + 1, b.open + 1
    b.conns[#b.conns + 1] = c
    local parser = http.new_parser("request", { max_body_bytes = 64 * 1024 * 1024 })
    local function reply(raw) if not c:is_closing() then c:write(raw) end end
    c:read_start(function(rerr, data)
      if rerr or not data then
        b.open = b.open - 1
        if not c:is_closing() then c:close() end
        return
      end
      if opts.raw then return opts.raw(c, data) end
      for _, req in ipairs(parser:feed(data) or {}) do
        b.requests[#b.requests + 1] = req
        handler(req, reply, c)
      end
    end)
  end))
  b.port = server:getsockname().port
  function b.spec() return { id = b.id, host = "127.0.0.1", port = b.port } end
  return b
end

--- A raw client of port: c.send(bytes), c.text(), c.messages (responses
-- parsed as they come; c.skip_body() before a HEAD's), c.eof, c.close().
function M.client(port)
  local c = { chunks = {}, eof = false, messages = {} }
  local tcp = M.track(uv.new_tcp())
  local parser = http.new_parser("response", { max_body_bytes = 256 * 1024 * 1024 })
  c.tcp, c.parser = tcp, parser
  tcp:connect("127.0.0.1", port, function(err)
    if err then c.err = err return end
    c.connected = true
    c.on_read = function(rerr, data)
      if rerr then c.err = rerr return end
      if not data then
        c.eof = true
        for _, m in ipairs(parser:feed_eof() or {}) do c.messages[#c.messages + 1] = m end
        return
      end
      c.chunks[#c.chunks + 1] = data
      for _, m in ipairs(parser:feed(data) or {}) do c.messages[#c.messages + 1] = m end
    end
    tcp:read_start(c.on_read)
  end)
  function c.text() return table.concat(c.chunks) end
  function c.send(data) tcp:write(data) end
  function c.skip_body() parser:skip_body() end
  function c.close() if not tcp:is_closing() then tcp:close() end end
  function c.wait_messages(n, ms)
    assert(M.run_until(function() return #c.messages >= n or c.eof or c.err end, ms),
      "no answer; got: " .. c.text())
    return c.messages[n]
  end
  function c.wait_eof(ms) return M.run_until(function() return c.eof or c.err ~= nil end, ms) end
  return c
end

--- One request on a new connection; the response message (or nil on EOF).
function M.request(port, raw, ms)
  local c = M.client(port)
  c.send(raw)
  local m = c.wait_messages(1, ms)
  c.close()
  return m, c
end

--- Runs cmd (a list) without blocking the loop: p.wait() -> code, stdout, stderr.
function M.spawn(cmd, opts)
  opts = opts or {}
  local out, err = M.track(uv.new_pipe()), M.track(uv.new_pipe())
  local p = { stdout = {}, stderr = {}, exited = false }
  local args = {}
  for i = 2, #cmd do args[#args + 1] = cmd[i] end
  local handle, pid = uv.spawn(cmd[1], { args = args, stdio = { opts.stdin, out, err }, env = opts.env },
    function(code, signal)
      p.exited, p.code, p.signal = true, code, signal
    end)
  assert(handle, "spawn " .. cmd[1] .. ": " .. tostring(pid))
  M.track(handle)
  p.handle, p.pid = handle, pid
  out:read_start(function(_, data) if data then p.stdout[#p.stdout + 1] = data else p.out_eof = true end end)
  err:read_start(function(_, data) if data then p.stderr[#p.stderr + 1] = data else p.err_eof = true end end)
  procs[#procs + 1] = p
  function p.output() return table.concat(p.stdout) end
  function p.wait(ms)
    assert(M.run_until(function() return p.exited and p.out_eof and p.err_eof end, ms or 10000),
      cmd[1] .. " did not exit")
    return p.code, table.concat(p.stdout), table.concat(p.stderr)
  end
  return p
end

--- Whether program `name` is on PATH.
function M.have(name)
  return os.execute("command -v " .. name .. " >/dev/null 2>&1") == true
end

return M
