-- prisn.exec.instance: how the server starts one instance of a deployment.
--
-- Two steps, because only the second may happen on the server's loop:
--
-- 1. prepare: detect the runner, resolve the interpreter, build (or find)
--    the dependency environment — the same work as for `prisn run`
--    (prisn.exec.job.prepare), which may take minutes on a cold cache. It
--    runs in a child process, `prisn __prepare` (JSON in on stdin, the
--    launch out on stdout), so the loop never blocks. A launch is computed
--    once per revision and reused for every instance and restart.
-- 2. start: spawn the launch with the instance's environment, limits and
--    isolation: a fork/exec, a millisecond of the server's time — so a
--    crashed instance is back within milliseconds. Inside a task, the wait
--    for the child's exec (10-20 ms for a sandbox) happens on the loop.
--
-- Output. An instance writes stdout and stderr into two named pipes in
-- <runtime dir>/<ns>/ (prisn.exec.runtime_dir: a tmpfs where there is one,
-- else $PRISN_HOME/run), opened read-write for the child: its own
-- descriptor keeps a reader on the pipe, so a write never fails with EPIPE
-- while nobody reads. A log pump (prisn.dataplane.logs) reads them into the
-- instance's log; it runs in the data plane, which outlives the server, so
-- a pipe's 64 KiB never fills while the server is away.
local uv = require("luv")
local cjson = require("cjson")
local errors = require("prisn.error")
local fs = require("prisn.fs")
local process = require("prisn.exec.process")
local sys = require("prisn.core.sys")
local job = require("prisn.exec.job")
local group = require("prisn.exec.group")
local exec_isolation = require("prisn.exec.isolation")
local runtime_dir = require("prisn.exec.runtime_dir")

local M = {}

M.PREPARE_TIMEOUT_MS = 30 * 60 * 1000 -- a cold environment may install a lot
local DIR_MODE = tonumber("700", 8)

-- The body of `prisn __prepare`: reads { home, script, args, runner, env,
-- no_deps, cwd, restricted, bundle_dir, build_as } as JSON from stdin and writes { launch = {...} } or
-- { error = { code, message, hint } } as JSON to stdout. Returns 0.
function M.prepare_main()
  local input = io.stdin:read("a")
  local ok, opts = pcall(cjson.decode, input)
  local result
  if not ok or type(opts) ~= "table" then
    result = { error = { code = "invalid", message = "prisn __prepare: expected a JSON object on stdin" } }
  else
    local done, launch = pcall(job.prepare, {
      home = opts.home, script = opts.script, args = opts.args or {}, runner = opts.runner,
      env = opts.env or {}, no_deps = opts.no_deps, cwd = opts.cwd, show_progress = false,
      restricted = opts.restricted, bundle_dir = opts.bundle_dir, build_as = opts.build_as,
    }, { create = function() end, update = function() end, fail_to_start = function() end })
    if done then
      result = { launch = { file = launch.file, argv = launch.argv, env = launch.env, env_dir = launch.env_dir,
        interpreter = launch.interpreter, base_interpreter = launch.base_interpreter,
        runner = launch.runner.name, script = launch.script,
        deps_source = launch.deps_source, env_key = launch.env_key } }
    elseif errors.is(launch) then
      result = { error = { code = launch.code, message = launch.message, hint = launch.hint } }
    else
      result = { error = { code = "internal", message = tostring(launch) } }
    end
  end
  io.stdout:write(cjson.encode(result), "\n")
  io.stdout:flush()
  return 0
end

--- Prepares a launch in a `prisn __prepare` child; calls done(launch) or
-- done(nil, err) with err = { code, message, hint }. Never blocks.
function M.prepare(home, spec, done)
  local input = cjson.encode({ home = home, script = spec.script, args = spec.args or {}, runner = spec.runner,
    env = next(spec.env or {}) and spec.env or nil, no_deps = spec.no_deps, cwd = spec.cwd,
    restricted = spec.restricted, bundle_dir = spec.bundle and spec.cwd or nil, build_as = spec.run_as })
  local proc, err = process.start({ file = uv.exepath(), argv = { "prisn", "__prepare" }, stdin = "pipe",
    stdout = "pipe", stderr = "pipe", session = true, env = group.env_list(
      group.current_environment()) })
  if not proc then
    return done(nil, { code = "ESPAWN", message = "cannot start prisn __prepare: " .. tostring(err) })
  end
  local out, errs = {}, {}
  process.drain(proc.stdout, function(data) out[#out + 1] = data end)
  process.drain(proc.stderr, function(data) if #errs < 64 then errs[#errs + 1] = data end end)
  proc.stdin:write(input)
  proc.stdin:shutdown(function() proc.stdin:close() end)
  local timer = uv.new_timer()
  timer:start(M.PREPARE_TIMEOUT_MS, 0, function() proc:kill("KILL", true) end)
  proc:on_exit(function()
    timer:stop(); timer:close()
    -- The pipes may still hold the last bytes: read them on the next turns.
    local check = uv.new_timer()
    check:start(5, 0, function()
      check:close()
      local ok, result = pcall(cjson.decode, table.concat(out))
      if ok and type(result) == "table" and type(result.launch) == "table" then return done(result.launch) end
      if ok and type(result) == "table" and type(result.error) == "table" then return done(nil, result.error) end
      done(nil, { code = "EPREPARE", message = "preparing the script failed: "
        .. (table.concat(errs):gsub("%s+$", ""):sub(1, 400)) })
    end)
  end)
end

-- The pipes' paths of instance `number` of ns/name in folder `dir`.
local function paths_in(dir, ns, name, number)
  local base = string.format("%s/%s/%s-%d", dir, ns, name, number)
  return { stdout = base .. ".out", stderr = base .. ".err" }
end

local function is_fifo(path)
  local st = uv.fs_lstat(path)
  return st ~= nil and st.type == "fifo"
end

--- Makes the named pipes of an instance's output in the home's runtime
-- directory (prisn.exec.runtime_dir); returns their paths { stdout = ...,
-- stderr = ... }, or nil, message, code. Old ones (a previous run) are
-- reused: those of the runtime directory, else those an older prisn made
-- in $PRISN_HOME/run (an instance it started still writes into them).
function M.fifo_paths(home, ns, name, number)
  local dir, derr, dcode = runtime_dir.ensure(home)
  if not dir then return nil, derr, dcode end
  local paths = paths_in(dir, ns, name, number)
  local own = home .. "/run"
  if dir ~= own and not is_fifo(paths.stdout) then
    local old = paths_in(own, ns, name, number)
    if is_fifo(old.stdout) and is_fifo(old.stderr) then return old end
  end
  fs.mkdir_p(dir .. "/" .. ns, DIR_MODE) -- a failure shows as mkfifo's, below
  for _, path in pairs(paths) do
    local st = uv.fs_lstat(path)
    if st and st.type ~= "fifo" then uv.fs_unlink(path); st = nil end
    if not st then
      local ok, err, code = sys.mkfifo(path, tonumber("600", 8))
      if not ok then return nil, err, code end
    end
  end
  return paths
end

--- Removes the pipes of an instance, and their folders once empty (a
-- runtime directory outlives its home otherwise: /run is only emptied at
-- a reboot). rmdir fails on a folder still in use, which is the check.
function M.remove_fifos(paths)
  if not paths then return end
  for _, path in pairs(paths) do uv.fs_unlink(path) end
  local ns_dir = paths.stdout and paths.stdout:match("^(.+)/[^/]+$")
  if not ns_dir or not uv.fs_rmdir(ns_dir) then return end
  local dir = ns_dir:match("^(.+)/[^/]+$")
  if dir and runtime_dir.is_runtime(dir) then uv.fs_rmdir(dir) end
end

-- The isolation context with the pipes' runtime directory hidden like
-- $PRISN_HOME (which held them before), when the workload could open it:
-- it runs as the server's user (the directory is that user's, 0700) or as
-- root. A root server's unprivileged workload user cannot, and its start
-- saves the mount.
local function hide_runtime_dir(iso, fifos)
  if not iso or (iso.user and iso.user.uid ~= 0) then return iso end
  local dir = fifos.stdout:match("^(.+)/[^/]+/[^/]+$")
  if not dir or not runtime_dir.is_runtime(dir) then return iso end
  local copy = {}
  for k, v in pairs(iso) do copy[k] = v end
  copy.hide = { dir }
  return copy
end

local function env_list(env)
  return group.env_list(env)
end

--- Starts an instance. o = { home, launch (from prepare), env (the full
-- environment, table), cwd, limiter (from prisn.exec.limits.apply, or nil),
-- isolation (the context of prisn.exec.job.isolation_context, or nil),
-- fifos (from fifo_paths), on_pending (see below) }. Returns the process
-- (prisn.exec.process) with proc.level (the isolation level it got), or nil,
-- message, code, stage. Inside a task the task waits on the loop for the
-- child to reach its exec (prisn.exec.process, on_loop), and
-- o.on_pending(pid) hears of each child as soon as it exists (a fallback
-- may make a second one); o.before_start() false cancels a start still
-- waiting for its turn (code ECANCELED).
-- The caller has the pipes attached to a log pump first (a request to the
-- data plane that may still be in flight: what the child writes meanwhile
-- waits in the pipe, which its own descriptor keeps open).
function M.start(o)
  local out_fd, oerr = uv.fs_open(o.fifos.stdout, "r+", 0)
  if not out_fd then return nil, "cannot open " .. o.fifos.stdout .. ": " .. tostring(oerr), "EIO", "setup" end
  local err_fd, eerr = uv.fs_open(o.fifos.stderr, "r+", 0)
  if not err_fd then
    uv.fs_close(out_fd)
    return nil, "cannot open " .. o.fifos.stderr .. ": " .. tostring(eerr), "EIO", "setup"
  end
  local spec = {
    file = o.launch.file, argv = o.launch.argv, env = env_list(o.env), cwd = o.cwd,
    stdin = "null", stdout = { fd = out_fd }, stderr = { fd = err_fd }, session = true,
    oom_score_adj = group.protected and 0 or nil,
  }
  local iso = hide_runtime_dir(o.isolation, o.fifos)
  local isolation = iso and exec_isolation
  local level = iso and iso.level or 0
  -- include_v2: a kernel without CLONE_INTO_CGROUP joins the v2 cgroup by
  -- its procs file instead (see prisn.exec.limits).
  local function attempt(lvl, include_v2)
    local s = {}
    for k, v in pairs(spec) do s[k] = v end
    if o.limiter then
      for k, v in pairs(o.limiter:spawn_options(include_v2)) do s[k] = v end
    end
    if iso then
      for k, v in pairs(isolation.spawn_options(lvl, iso)) do s[k] = v end
    end
    return process.start(s, { on_loop = true, on_pending = o.on_pending, before_start = o.before_start })
  end
  local function start(lvl)
    local proc, err, code, stage = attempt(lvl, false)
    if not proc and o.limiter and o.limiter:retry_without_clone_into(code, stage) then
      return attempt(lvl, true)
    end
    return proc, err, code, stage
  end
  local proc, err, code, stage = start(level)
  if not proc and level > 0 and not iso.explicit and isolation.setup_failed(code, stage) then
    level = 0 -- the default level cannot be set up on this machine
    proc, err, code, stage = start(0)
  end
  uv.fs_close(out_fd)
  uv.fs_close(err_fd)
  if not proc then return nil, err, code, stage end
  proc.level = level
  return proc
end

return M
