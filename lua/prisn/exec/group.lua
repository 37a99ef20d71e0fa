-- prisn.exec.group: supervises one workload's process group, from its start
-- to an outcome: spawn it (with its limits and isolation), stream its
-- output, forward prisn's signals to the group, stop it at its timeout, and
-- turn its exit into a job state and a reason. One-off jobs (prisn.exec.job)
-- and dependency builds (prisn.exec.install.confined) both run through it.
--
-- Policy lives here: which signals are forwarded, how long the grace period
-- is, what a timeout means (SIGTERM to the whole process group, SIGKILL after
-- the grace, exit 124), how an exit becomes a job state and a reason. The
-- mechanism is prisn.exec.process over prisn.core.proc.
local uv = require("luv")
local async = require("prisn.async")
local process = require("prisn.exec.process")
local units = require("prisn.units")
local limits = require("prisn.exec.limits")
local isolation = require("prisn.exec.isolation")
local sys = require("prisn.core.sys")

local M = {}

M.DEFAULT_GRACE = 10 -- seconds between SIGTERM and SIGKILL
M.DRAIN_AFTER_EXIT_MS = 200 -- how long a background child may hold stdout open

local FORWARDED = { "sigint", "sigterm", "sighup", "sigquit" }
local SIGNAL_NUMBERS = { INT = 2, TERM = 15, HUP = 1, QUIT = 3, KILL = 9 }

-- The caller's environment as a table, for `prisn run` from a shell: the
-- script should see what it would see when run directly.
local function current_environment()
  return uv.os_environ()
end

local function env_list(env)
  local list = {}
  for k, v in pairs(env) do list[#list + 1] = k .. "=" .. v end
  table.sort(list)
  return list
end

-- Stops the process group: SIGTERM now, SIGKILL when `grace` seconds pass
-- and something of the group is still alive. Returns a function that
-- cancels the pending SIGKILL.
local function stop_group(proc, grace, signal)
  proc:kill(signal or "TERM", true)
  uv.update_time() -- see the timeout below
  local timer = uv.new_timer()
  timer:start(math.floor(grace * 1000), 0, function()
    timer:close()
    proc:kill("KILL", true)
  end)
  return timer
end

-- Whether any process of the group led by `pid` is still alive.
local function group_alive(proc)
  local ok, _, code = proc:kill(0, true)
  return ok or code ~= "ESRCH"
end

-- Streams, signals and timeout of a started process, to its end; returns
-- the outcome table of M.supervise.
local function watch(proc, launch, limiter)
  if launch.on_start then launch.on_start(proc:pid(), proc) end
  local open_streams = 0
  local streams_done
  local function stream(pipe, sink)
    if not pipe then return end
    open_streams = open_streams + 1
    process.drain(pipe, sink, function()
      open_streams = open_streams - 1
      if open_streams == 0 and streams_done then streams_done() end
    end)
  end
  stream(proc.stdout, launch.on_stdout)
  stream(proc.stderr, launch.on_stderr)

  local timed_out, forwarded, kill_timer = false, nil, nil
  local handles = {}
  for _, name in ipairs(launch.forward_signals == false and {} or FORWARDED) do
    local sig = uv.new_signal()
    sig:start(name, function()
      -- A second Ctrl-C means "now": no more grace.
      if forwarded and name == "sigint" then
        proc:kill("KILL", true)
        return
      end
      forwarded = name:sub(4):upper()
      -- The signal is sent once: stop_group sends it and arms the SIGKILL.
      if kill_timer then
        proc:kill(forwarded, true)
      else
        kill_timer = stop_group(proc, launch.grace, forwarded)
      end
    end)
    handles[#handles + 1] = sig
  end
  local timeout_timer
  if launch.timeout then
    -- A timer counts from the loop's cached "now", which is as old as the
    -- loop's last turn: in a runner forked by the job host, whose loop never
    -- ran, that is when the host started, and a 10 s limit fired at once.
    -- The limit counts from the workload's start, that is from now.
    uv.update_time()
    timeout_timer = uv.new_timer()
    timeout_timer:start(math.floor(launch.timeout * 1000), 0, function()
      timed_out = true
      if not kill_timer then kill_timer = stop_group(proc, launch.grace) end
    end)
  end

  local status = proc:wait()
  -- A stopped group may still have members that ignore SIGTERM: wait for the
  -- grace to run out (the SIGKILL timer) or the group to empty.
  if kill_timer then
    while group_alive(proc) and not kill_timer:is_closing() do async.sleep(20) end
    if group_alive(proc) then proc:kill("KILL", true) end
  end
  -- The workload has ended: whatever it left in its cgroup goes too.
  if limiter then limiter:stop() end
  if open_streams > 0 then
    async.wait(function(done)
      local t = uv.new_timer()
      local fired = false
      local function finish()
        if fired then return end
        fired = true
        t:stop(); t:close()
        done()
      end
      streams_done = finish
      t:start(M.DRAIN_AFTER_EXIT_MS, 0, finish)
    end)
    -- Whatever still holds the pipes open is a background child; stop reading.
    for _, pipe in ipairs({ proc.stdout, proc.stderr }) do
      if pipe and not pipe:is_closing() then pipe:read_stop(); pipe:close() end
    end
  end
  for _, h in ipairs(handles) do h:stop(); h:close() end
  if timeout_timer and not timeout_timer:is_closing() then timeout_timer:stop(); timeout_timer:close() end
  if kill_timer and not kill_timer:is_closing() then kill_timer:stop(); kill_timer:close() end

  local result = { status = status, timed_out = timed_out }
  if timed_out then
    result.state, result.reason, result.exit_code = "failed", "timeout", 124
    result.signal = status.signal
    result.message = "timed out after " .. units.format_duration(launch.timeout)
  elseif status.exited then
    result.state = status.code == 0 and "succeeded" or "failed"
    result.reason, result.exit_code = "exited", status.code
  else
    result.state, result.reason = "failed", "killed"
    result.signal = status.signal
    result.exit_code = 128 + (status.signal_number or SIGNAL_NUMBERS[status.signal] or 0)
    result.message = "killed by signal " .. tostring(status.signal)
      .. (status.core_dumped and " (core dumped)" or "")
  end
  if forwarded then result.forwarded = forwarded end
  if limiter then limiter:name_outcome(result, status) end
  return result
end

--- Runs a prepared launch and waits for it, inside an async task.
-- launch = { file, argv, env (table), cwd, timeout (seconds|nil), grace,
--   forward_signals (default true: prisn's SIGINT/TERM/HUP/QUIT go to the
--   group), on_stdout(chunk), on_stderr(chunk), on_start(pid, proc),
--   limits ({ memory, cpu, pids } from prisn.exec.limits.check, or nil),
--   name (the workload's cgroup name, e.g. "job-<id>"), isolation (nil for
--   level 0, or { level, explicit, home, keep, user }: see
--   prisn.exec.isolation.spawn_options; a default level that cannot be set up
--   falls back to 0 with a note), warn(text), stdin ("inherit" by default,
--   or "null") }.
-- With limits, the workload runs in a cgroup of its own (or under rlimits
-- when there is no cgroup access); everything it leaves running is killed
-- when it ends and the cgroup is removed, whatever happens.
-- Returns { state, reason, exit_code, signal, status (the raw exit status),
-- message, timed_out, stats (cgroup counters, with limits) }, with state
-- "failed" and reason "failed_to_start" (plus code and stage) when the
-- program cannot be started, and reason "oom_killed" when the memory limit
-- killed it.
function M.supervise(launch)
  local limiter = launch.limits and limits.apply(launch.limits, { name = launch.name })
  local spec = {
    file = launch.file,
    argv = launch.argv,
    env = env_list(launch.env),
    cwd = launch.cwd,
    stdin = launch.stdin or "inherit",
    stdout = "pipe",
    stderr = "pipe",
    session = true,
    -- A protected prisn (see protect_self) must not hand its -1000 down.
    oom_score_adj = M.protected and 0 or nil,
    -- Called while the workload is set up, before its exec (prisn.core.proc).
    gate = launch.gate,
  }
  local iso = launch.isolation
  local level = iso and iso.level or 0
  local iso_options = iso and isolation.spawn_options(level, iso) or {}
  local function start(include_v2_procs)
    local s = {}
    for k, v in pairs(spec) do s[k] = v end
    if limiter then
      for k, v in pairs(limiter:spawn_options(include_v2_procs)) do s[k] = v end
    end
    for k, v in pairs(iso_options) do s[k] = v end
    return process.start(s)
  end
  local proc, err, code, stage = start(false)
  if not proc and limiter and limiter:retry_without_clone_into(code, stage) then
    proc, err, code, stage = start(true) -- a kernel without CLONE_INTO_CGROUP
  end
  if not proc and level > 0 and not iso.explicit and isolation.setup_failed(code, stage) then
    -- The default level cannot be set up on this machine: run as before.
    isolation.note("isolation level " .. level .. " cannot be set up here (" .. tostring(err) .. ")", launch.warn)
    level = 0
    iso_options = isolation.spawn_options(0, iso)
    proc, err, code, stage = start(false)
    if not proc and limiter and limiter:retry_without_clone_into(code, stage) then
      proc, err, code, stage = start(true)
    end
  end
  if not proc then
    if limiter then limiter:cleanup() end
    return { state = "failed", reason = "failed_to_start", message = err, code = code, stage = stage }
  end
  local ok, result = pcall(watch, proc, launch, limiter)
  if limiter then limiter:cleanup() end
  if not ok then error(result, 0) end
  result.isolation = level
  return result
end

--- When prisn runs as root, takes it out of the OOM killer's reach
-- (oom_score_adj -1000), so a workload over its memory is killed, never the
-- process that supervises and records it; workloads start back at 0.
-- Idempotent. Returns true when protected.
function M.protect_self()
  if M.protected ~= nil then return M.protected end
  M.protected = false
  if uv.getuid() == 0 then
    M.protected = sys.set_oom_score_adj(-1000) == true
  end
  return M.protected
end

M.current_environment = current_environment
M.env_list = env_list

return M
