-- Helpers for end-to-end specs: run the real binary (PRISN_BIN) with a
-- temporary PRISN_HOME and capture what it prints.
--
--   local h = require("e2e.helper")
--   local r = h.prisn({ "version", "-o", "json" })
--   assert.equal(0, r.code); print(r.stdout, r.stderr)
--
-- Everything runs through luv with an explicit environment, so a test sees
-- exactly what a user's shell would hand prisn, and every process started is
-- waited for (a test never leaves one behind).
local uv = require("luv")

local M = {}

-- Specs write to sockets the server may close: EPIPE, not death by SIGPIPE.
local sigpipe = uv.new_signal()
sigpipe:start("sigpipe", function() end)
sigpipe:unref()

M.bin = assert(os.getenv("PRISN_BIN"), "PRISN_BIN is not set: run the e2e specs through ctest")
M.source_dir = os.getenv("PRISN_SOURCE_DIR") or "."

local homes = {}

--- A fresh temporary directory (removed by M.cleanup).
function M.tempdir(prefix)
  local dir = assert(uv.fs_mkdtemp("/tmp/" .. (prefix or "prisn-e2e") .. "-XXXXXX"))
  homes[#homes + 1] = dir
  return dir
end

--- The base environment for a run: PATH and a temporary PRISN_HOME.
function M.env(extra)
  local env = {
    PATH = os.getenv("PATH") or "/usr/bin:/bin",
    HOME = os.getenv("HOME") or "/root",
    PRISN_HOME = M.tempdir("prisn-home") .. "/home",
    -- contrib/coverage.sh: the binaries a test runs count their Lua lines too.
    PRISN_LUA_COVERAGE = os.getenv("PRISN_LUA_COVERAGE"),
  }
  for k, v in pairs(extra or {}) do
    if v == false then env[k] = nil else env[k] = v end
  end
  return env
end

local function env_list(env)
  local list = {}
  for k, v in pairs(env) do list[#list + 1] = k .. "=" .. v end
  table.sort(list)
  return list
end

--- Runs `file` with `args`. opts: env (a table, default M.env()), stdin (a
-- string), cwd, timeout_ms (default 20000; the process is killed after it).
-- Returns { code, signal, stdout, stderr, timed_out }.
function M.run(file, args, opts)
  opts = opts or {}
  local stdin, stdout, stderr = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
  local out, err = {}, {}
  local result = { stdout = "", stderr = "" }
  local open = 3 -- exit + stdout EOF + stderr EOF
  local function done() open = open - 1 end
  local handle, spawn_err
  handle, spawn_err = uv.spawn(file, {
    args = args,
    env = env_list(opts.env or M.env()),
    cwd = opts.cwd,
    stdio = { stdin, stdout, stderr },
  }, function(code, signal)
    result.code, result.signal = code, signal
    handle:close()
    done()
  end)
  if not handle then
    stdin:close(); stdout:close(); stderr:close()
    error("cannot start " .. file .. ": " .. tostring(spawn_err))
  end
  local function reader(chunks, pipe)
    return function(read_err, data)
      assert(not read_err, read_err)
      if data then chunks[#chunks + 1] = data else pipe:close(); done() end
    end
  end
  stdout:read_start(reader(out, stdout))
  stderr:read_start(reader(err, stderr))
  if opts.stdin then stdin:write(opts.stdin) end
  stdin:shutdown(function() stdin:close() end)
  local timer = uv.new_timer()
  timer:start(opts.timeout_ms or 20000, 0, function()
    result.timed_out = true
    if handle and not handle:is_closing() then handle:kill("sigkill") end
  end)
  while open > 0 do uv.run("once") end
  timer:stop(); timer:close()
  uv.run("nowait")
  result.stdout, result.stderr = table.concat(out), table.concat(err)
  return result
end

--- Runs the prisn binary with `args` (see M.run for opts).
function M.prisn(args, opts)
  return M.run(M.bin, args, opts)
end

--- The content of a file, or nil when it cannot be read.
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

--- Writes `text` to `path` (with `mode`, e.g. tonumber("755", 8), when
-- given) and returns the path.
function M.write(path, text, mode)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  if mode then assert(uv.fs_chmod(path, mode)) end
  return path
end

--- Whether process `pid` is alive and not a zombie (a killed orphan may wait
-- a while for its reaper).
function M.alive(pid)
  local stat = M.read("/proc/" .. pid .. "/stat")
  if not stat then return false end
  local state = stat:match("%) (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

--- Sleeps `ms` milliseconds while the loop turns: what runs through luv
-- (requests in flight, processes started with M.run) goes on meanwhile.
function M.sleep(ms)
  local t = uv.new_timer()
  local fired = false
  t:start(ms, 0, function() fired = true end)
  while not fired do uv.run("once") end
  t:close()
  uv.update_time()
end

--- Asks pred() every 50 ms until it says true or `ms` (default 10000)
-- pass; returns whether it did.
function M.wait_for(pred, ms)
  uv.update_time()
  local deadline = uv.now() + (ms or 10000)
  while uv.now() < deadline do
    if pred() then return true end
    M.sleep(50)
  end
  return pred() and true or false
end

--- The fields of /proc/<pid>/stat after the command, numbered from the
-- state (1 state, 2 ppid, 3 pgrp, 4 session, ...); nil when it is gone.
function M.stat_fields(pid)
  local stat = M.read("/proc/" .. pid .. "/stat")
  if not stat then return nil end
  local fields = {}
  for f in (stat:match(".*%) (.*)$") or ""):gmatch("%S+") do fields[#fields + 1] = f end
  return fields
end

--- A port free on 127.0.0.1 for both UDP and TCP just now, for a DNS
-- listener (--dns).
function M.free_udp_tcp_port()
  for _ = 1, 20 do
    local udp = uv.new_udp()
    assert(udp:bind("127.0.0.1", 0))
    local port = udp:getsockname().port
    local tcp = uv.new_tcp()
    local bound = tcp:bind("127.0.0.1", port) and tcp:listen(1, function() end)
    udp:close()
    tcp:close()
    uv.run("nowait")
    if bound then return port end
  end
  error("no port free for both UDP and TCP")
end

--- A TCP port free on 127.0.0.1 just now (the kernel's pick), for a
-- deployment's --port.
function M.free_port()
  local tcp = uv.new_tcp()
  assert(tcp:bind("127.0.0.1", 0))
  local port = tcp:getsockname().port
  tcp:close()
  return port
end

--- The prisn commands of a spec, run with the environment `get_env()`
-- returns at the time of the call (a spec makes a fresh one before each
-- test): prisn(args, opts) as M.prisn; ok(args, opts) asserts exit 0 (the
-- message names the command and its stderr); json(args, opts) decodes ok's
-- stdout.
function M.cli(get_env)
  local c = {}
  function c.prisn(args, opts)
    opts = opts or {}
    opts.env = opts.env or get_env()
    return M.prisn(args, opts)
  end
  function c.ok(args, opts)
    local r = c.prisn(args, opts)
    assert(r.code == 0, table.concat(args, " ") .. ": exit " .. tostring(r.code) .. ": " .. r.stderr)
    return r
  end
  function c.json(args, opts)
    return require("cjson").decode(c.ok(args, opts).stdout)
  end
  return c.prisn, c.ok, c.json
end

--- The pid of every service instance state.db of `home` records (read
-- directly: the server may be gone).
function M.recorded_pids(home)
  local pids = {}
  local ok_open, db = pcall(require("prisn.store").open, home)
  if not ok_open then return pids end
  for _, row in ipairs(db:rows("SELECT pid FROM instances WHERE pid IS NOT NULL") or {}) do
    pids[#pids + 1] = math.tointeger(row.pid)
  end
  db:close()
  return pids
end

--- The jobs `prisn get jobs -o json` lists with `env`, newest first.
function M.jobs(env)
  local r = M.prisn({ "get", "jobs", "-o", "json" }, { env = env })
  assert(r.code == 0, r.stderr)
  return require("cjson").decode(r.stdout)
end

--- Stops the server of `env` (its PRISN_HOME) if one runs: `prisn server
-- stop`, then SIGKILL if it is still there. Returns the pid it stopped.
function M.stop_server(env)
  local info = M.read(env.PRISN_HOME .. "/server.json")
  if not info then return nil end
  local pid = math.tointeger(require("cjson").decode(info).pid)
  M.prisn({ "server", "stop", "--timeout", "5s" }, { env = env })
  if pid and uv.kill(pid, 0) then uv.kill(pid, "sigkill") end
  return pid
end

--- The end of a spec that started a server of `env`: the server stopped,
-- every instance state.db still records killed with its process group (a
-- server that failed may have left them), the temporary directories
-- removed.
function M.teardown_server(env)
  M.stop_server(env)
  for _, pid in ipairs(M.recorded_pids(env.PRISN_HOME)) do
    if M.alive(pid) then uv.kill(-pid, "sigkill") end
  end
  M.cleanup()
end

--- Removes every temporary directory this spec made.
function M.cleanup()
  for _, dir in ipairs(homes) do
    M.run("/bin/rm", { "-rf", dir }, { env = { PATH = "/usr/bin:/bin" } })
  end
  homes = {}
end

return M
