-- What the benchmarks in tests/bench share: shell output, files, medians,
-- and child processes on the luv loop (started, waited for, all stopped).
--
--   package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
--   local common = require("common")
local uv = require("luv")

local M = {}

--- The output of shell command `cmd` (stderr dropped), trailing space cut.
function M.sh(cmd)
  local p = assert(io.popen(cmd .. " 2>/dev/null"))
  local out = p:read("a")
  p:close()
  return (out:gsub("%s+$", ""))
end

--- Writes `text` to `path` (chmod `mode` when given).
function M.write(path, text, mode)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  if mode then uv.fs_chmod(path, mode) end
end

--- The content of `path`, or nil.
function M.read(path)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

--- Wall time in milliseconds of one run of `file` with `args` and `env` (a
-- "K=V" list), output discarded. With `check`, a non-zero exit raises.
function M.time_run(file, args, env, check)
  local done, t0, handle = false, uv.hrtime(), nil
  handle = assert(uv.spawn(file, { args = args, env = env, stdio = { nil, nil, nil } }, function(code)
    assert(not check or code == 0, file .. " " .. table.concat(args, " ") .. " exited " .. code)
    done = true
    handle:close()
  end))
  while not done do uv.run("once") end
  return (uv.hrtime() - t0) / 1e6
end

--- Builds DIR/wheels/benchdep-1.0-py3-none-any.whl (a pure-Python package,
-- `import benchdep; benchdep.VALUE == 42`) with `python`: the local wheel
-- the dependency benchmarks install from, offline.
function M.write_bench_wheel(dir, python)
  uv.fs_mkdir(dir .. "/wheels", tonumber("755", 8))
  M.write(dir .. "/mkwheel.py", string.format([[
import zipfile
name, version = "benchdep", "1.0"
dist = f"{name}-{version}.dist-info"
files = {
    f"{name}/__init__.py": "VALUE = 42\n",
    f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: prisn-bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
files[f"{dist}/RECORD"] = "".join(f"{p},,\n" for p in files) + f"{dist}/RECORD,,\n"
wheel = "%s/wheels/" + f"{name}-{version}-py3-none-any.whl"
with zipfile.ZipFile(wheel, "w") as z:
    for p, text in files.items():
        z.writestr(p, text)
]], dir))
  M.sh(python .. " " .. dir .. "/mkwheel.py")
end

--- The median of a list of numbers (NaN for none).
function M.median(list)
  if #list == 0 then return 0 / 0 end
  local s = { table.unpack(list) }
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

--- Splits the whole HTTP/1.1 responses (bodies framed by Content-Length) off
-- the front of `buf`: returns a list of { status, body } and the rest.
function M.http_responses(buf)
  local out = {}
  while true do
    local head_end = buf:find("\r\n\r\n", 1, true)
    if not head_end then break end
    local head = buf:sub(1, head_end - 1)
    local len = tonumber(head:match("\r\n[Cc]ontent%-[Ll]ength:%s*(%d+)")) or 0
    if #buf < head_end + 3 + len then break end
    out[#out + 1] = { status = tonumber(head:match("^HTTP/1%.%d (%d+)")),
      body = buf:sub(head_end + 4, head_end + 3 + len) }
    buf = buf:sub(head_end + 4 + len)
  end
  return out, buf
end

-- The loop and child processes ---------------------------------------------

--- Keeps the loop waking every `ms`, so run_until's conditions are looked
-- at even when nothing else happens. Returns the timer.
function M.ticker(ms)
  local tick = uv.new_timer()
  tick:start(ms, ms, function() end)
  return tick
end

--- Drives the loop until cond() holds or `seconds` pass; returns cond().
function M.run_until(cond, seconds)
  local deadline = uv.hrtime() + seconds * 1e9
  while not cond() and uv.hrtime() < deadline do uv.run("once") end
  return cond()
end

function M.sleep_ms(ms)
  local t0 = uv.hrtime()
  M.run_until(function() return uv.hrtime() - t0 >= ms * 1e6 end, ms / 1000 + 1)
end

M.children = {} -- pid -> true for every process started here and running

--- Starts `file` with `args`. opts: env (a list, required), stdout (true:
-- captured into p.out), stderr ("capture" into p.out too, or a descriptor
-- such as 2; default: none), on_exit(p). Returns p = { pid, done, code,
-- signal, out, reading }.
function M.spawn(file, args, opts)
  local p = { out = {}, reading = false }
  local pipes = {}
  local stdout = opts.stdout and uv.new_pipe(false) or nil
  local stderr = opts.stderr == "capture" and uv.new_pipe(false) or opts.stderr
  if stdout then pipes[#pipes + 1] = stdout end
  if opts.stderr == "capture" then pipes[#pipes + 1] = stderr end
  local handle, pid = uv.spawn(file, { args = args, env = opts.env, stdio = { nil, stdout, stderr } },
    function(code, signal)
      p.code, p.signal, p.done = code, signal, true
      M.children[p.pid] = nil
      p.handle:close()
      if opts.on_exit then opts.on_exit(p) end
    end)
  assert(handle, file .. ": " .. tostring(pid))
  p.handle, p.pid = handle, pid
  M.children[pid] = true
  local open = #pipes
  p.reading = open > 0
  for _, pipe in ipairs(pipes) do
    pipe:read_start(function(_, data)
      if data then p.out[#p.out + 1] = data return end
      pipe:close()
      open = open - 1
      p.reading = open > 0
    end)
  end
  return p
end

--- Waits for p to end (SIGTERM after `seconds`, then SIGKILL); returns
-- what it printed (when captured).
function M.finish(p, seconds)
  if not M.run_until(function() return p.done and not p.reading end, seconds) then
    if not p.done then uv.kill(p.pid, "sigterm") end
    if not M.run_until(function() return p.done end, 5) then
      uv.kill(p.pid, "sigkill")
      M.run_until(function() return p.done end, 5)
    end
  end
  return table.concat(p.out)
end

--- Stops every child still running: SIGTERM, SIGKILL after `grace` seconds.
function M.stop_children(grace)
  for pid in pairs(M.children) do uv.kill(pid, "sigterm") end
  if not M.run_until(function() return next(M.children) == nil end, grace) then
    for pid in pairs(M.children) do uv.kill(pid, "sigkill") end
    M.run_until(function() return next(M.children) == nil end, 5)
  end
end

-- A keep-alive HTTP/1.1 client on a unix socket (prisn's API) ----------------

local Conn = {}
Conn.__index = Conn
M.Conn = Conn

-- The server may close an idle connection (answering 408 first): an answer
-- nobody waits for marks the connection dead and the next send reconnects.
function Conn:open()
  local pipe = uv.new_pipe(false)
  local done, err
  pipe:connect(self.path, function(e) done, err = true, e end)
  assert(M.run_until(function() return done end, 5) and not err, "cannot connect: " .. tostring(err))
  self.pipe, self.buf, self.pending, self.dead = pipe, "", {}, false
  pipe:read_start(function(e, data)
    if self.pipe ~= pipe then return end
    if e or not data then
      self.dead = true
      for _, cb in ipairs(self.pending) do cb(nil, e or "closed") end
      self.pending = {}
      return
    end
    local answers
    answers, self.buf = M.http_responses(self.buf .. data)
    for _, a in ipairs(answers) do
      local cb = table.remove(self.pending, 1)
      if not cb then
        self.dead = true
        self.unsolicited = (self.unsolicited or 0) + 1
        return
      end
      cb(a.status, a.body)
    end
  end)
end

function M.connect(path, token)
  local c = setmetatable({ path = path, token = token }, Conn)
  c:open()
  return c
end

function Conn:send(method, path, body, cb, ctype)
  local req = { method .. " " .. path .. " HTTP/1.1", "Host: localhost", "Authorization: Bearer " .. self.token }
  if body then
    req[#req + 1] = "Content-Type: " .. (ctype or "application/json")
    req[#req + 1] = "Content-Length: " .. #body
  end
  req[#req + 1] = ""
  req[#req + 1] = body or ""
  if self.dead then
    if not self.pipe:is_closing() then self.pipe:close() end
    self:open()
  end
  self.pending[#self.pending + 1] = cb
  self.pipe:write(table.concat(req, "\r\n"))
end

function Conn:request(method, path, body, ctype)
  local status, text, done
  self:send(method, path, body, function(s, b) status, text, done = s, b, true end, ctype)
  assert(M.run_until(function() return done end, 60), method .. " " .. path .. ": no answer")
  return status, text
end

function Conn:close()
  if not self.pipe:is_closing() then self.pipe:close() end
end

return M
