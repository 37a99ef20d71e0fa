-- prisn.exec.job: prepares and runs one job's workload, start to finish.
--
--   detect runner -> resolve interpreter -> detect dependencies -> environment
--   from the cache (built once) -> spawn, stream, supervise (prisn.exec.group)
--   -> the outcome
--
-- Both kinds of job run through here: `prisn run` on this machine
-- (prisn.cli.run) and the server's jobs, in their runners
-- (prisn.exec.job_runner); a service's launch is prepared here too
-- (prisn.exec.instance). What happens is told to a recorder
-- (prisn.exec.job_record), which writes it down. Everything a user can get
-- wrong (a missing script, an unknown type, a missing interpreter, a failed
-- install) becomes a prisn.error with a hint. Once a runner is known the run
-- is recorded, failures to start included, so `prisn get jobs` shows every
-- attempt.
local uv = require("luv")
local errors = require("prisn.error")
local units = require("prisn.units")
local group = require("prisn.exec.group")
local runners = require("prisn.exec.runners")
local interpreter = require("prisn.exec.interpreter")
local isolation = require("prisn.exec.isolation")

local M = {}

--- Works out what to launch. Returns a launch table: { runner, file, argv,
-- env, cwd, env_key, deps_source, env_keys, script }. Raises prisn.errors.
-- `rec` records the job: rec.create(runner) as soon as the runner is known,
-- rec.flush() (when the recorder has it) before a long environment build, so
-- the job shows in `prisn get jobs` meanwhile, rec.update(fields) as facts
-- arrive, rec.fail_to_start(message).
function M.prepare(opts, rec)
  local registry = runners.load({ home = opts.home })
  local runner, how_or_err, code, hint = runners.detect(registry, opts.script, { runner = opts.runner })
  if not runner then
    errors.raise(code or "unknown_type", how_or_err, { hint = hint, status = code == "usage" and 2 or 1 })
  end
  rec.create(runner)
  local function fail(err_code, message, err_hint)
    rec.fail_to_start(message)
    errors.raise(err_code, message, { hint = err_hint })
  end
  local path, ierr, icode, ihint = runners.resolve_interpreter(runner)
  if not path then fail(icode, ierr, ihint) end

  local env = group.current_environment()
  for k, v in pairs(opts.env) do env[k] = v end
  local launch = { runner = runner, interpreter = path, env = env, cwd = opts.cwd, script = opts.script }

  if (runner.deps or "none") ~= "none" then
    -- Loaded here, not at the top: scripts whose runner has no dependency
    -- manager (bash, sh, lua) never need it, and it is most of what `prisn
    -- run` would load (tests/layers.lua lists this exception).
    require("prisn.exec.environment").resolve(opts, runner, launch, rec, fail)
  end

  local full_env, eerr, ecode = runners.environment(runner, { script = opts.script, code = opts.code,
    args = opts.args, interpreter = launch.interpreter, env = launch.env })
  if not full_env then fail(ecode, eerr, "fix the runner with 'prisn runner check'") end
  launch.env = full_env
  local argv, aerr, acode = runners.command(runner, { script = opts.script, code = opts.code,
    args = opts.args, interpreter = launch.interpreter, env = launch.env })
  if not argv then
    fail(acode, aerr, acode == "ENOTSUP" and "choose a runner with inline support, or put the code in a file"
      or "fix the runner with 'prisn runner check'")
  end
  launch.argv = argv
  -- The program is argv[1] as the runner wrote it, or the interpreter.
  launch.file = argv[1]:sub(1, 1) == "/" and argv[1] or launch.interpreter
  return launch
end

--- Whether output `data` carries the system's words for a full disk.
function M.says_disk_full(data)
  return data:find("No space left on device", 1, true) ~= nil or data:find("Disk quota exceeded", 1, true) ~= nil
end

--- Prepares and runs a recorded job to its end, inside an async task.
-- `rec` records it (see M.prepare and prisn.exec.job_record); `sinks` =
-- { stdout = fn, stderr = fn } also receive the output (the log always
-- does). opts: home, namespace, script (absolute) or code, args, runner,
-- env (a table), env_keys, cwd, timeout, grace, limits ({ memory, cpu,
-- pids }, see prisn.exec.limits), isolation (0..3, nil: the default), disk
-- (bytes: level 2+ writes bound), user ({ uid, gid }, nil: the caller),
-- no_deps, show_progress, forward_signals (default true), on_start(pid,
-- proc), and for a server job restricted, bundle_dir, build_as and
-- workspace_fresh. Returns the outcome ({ state, reason, exit_code, signal,
-- message }); raises a prisn.error when the job could not start (after
-- recording that).
function M.execute(opts, rec, sinks)
  local disk_full = false
  local launch = M.prepare(opts, rec)
  -- A server job's start is on record before its workload can start (see
  -- prisn.exec.job_record.begin_log).
  if rec.begin then rec.begin() end
  local log
  sinks = sinks or {}
  -- A recorder that opens its store lazily (a local run's) opens it while
  -- the workload is set up: nothing runs unless it opens (its error is
  -- raised below), and the opening is off the start's critical path
  -- (tests/bench/run-report.md).
  local gate, gate_err
  if rec.open then
    gate = function()
      local ok, err = pcall(rec.open)
      gate_err = not ok and err or nil
      return ok
    end
  end
  local outcome = group.supervise({
    isolation = M.isolation_context(opts, launch),
    file = launch.file,
    argv = launch.argv,
    env = launch.env,
    cwd = opts.cwd,
    timeout = opts.timeout,
    grace = opts.grace or group.DEFAULT_GRACE,
    limits = opts.limits or nil,
    name = "job-" .. rec.job.id,
    forward_signals = opts.forward_signals ~= false,
    gate = gate,
    on_start = function(pid, proc)
      rec.start(pid)
      -- Opened once the workload runs (its output waits in the pipe until
      -- it is read), so creating the file is off the path to its start.
      log = rec.open_log()
      if opts.on_start then opts.on_start(pid, proc) end
    end,
    on_stdout = function(data)
      if sinks.stdout then sinks.stdout(data) end
      if log then log:write("stdout", data) end
    end,
    on_stderr = function(data)
      if sinks.stderr then sinks.stderr(data) end
      if log then log:write("stderr", data) end
      disk_full = disk_full or M.says_disk_full(data)
    end,
  })
  if gate_err then error(gate_err, 0) end
  if outcome.reason == "failed_to_start" then
    local message = outcome.message
    if outcome.code == "ENOENT" and outcome.stage == "exec" then message = launch.file .. ": not found" end
    rec.fail_to_start(message)
    if isolation.setup_failed(outcome.code, outcome.stage) and opts.isolation then
      errors.raise(outcome.code or "ESPAWN", "cannot set up isolation level " .. tostring(opts.isolation)
        .. ": " .. outcome.message,
        { hint = "'prisn doctor' shows which levels work here; --isolation 0 runs without a sandbox" })
    end
    errors.raise(outcome.code or "ESPAWN", "cannot start " .. launch.argv[1] .. ": " .. outcome.message,
      { hint = launch.runner.install_hint or "check the runner's interpreter with 'prisn runner show "
        .. launch.runner.name .. "'" })
  end
  if opts.disk and disk_full and outcome.state == "failed" and not outcome.message then
    -- The workspace tmpfs is gone with the sandbox; what the script said is
    -- the evidence that --disk stopped it.
    outcome.message = "out of disk space: the job filled its --disk " .. units.format_size(opts.disk)
  end
  local reason = opts.reason_override and opts.reason_override() or outcome.reason
  rec.finish({
    state = outcome.state, reason = reason, exit_code = outcome.exit_code,
    signal = outcome.signal, message = outcome.message,
  })
  outcome.reason = reason
  return outcome
end

--- The isolation of a run (see prisn.exec.isolation and
-- prisn.exec.group.supervise): the level asked (opts.isolation, nil for the
-- default), the identity (opts.user = { uid, gid }), and what must stay
-- reachable inside the sandbox: the cwd (writable), the script's folder,
-- the dependency environment and the interpreter's folder (read-only).
function M.isolation_context(opts, launch)
  local level, explicit = isolation.resolve(opts.isolation)
  local script_dir = launch.script and launch.script:match("^(.*)/[^/]*$")
  local interpreter_dir = launch.file and launch.file:match("^(.*)/[^/]*$")
  -- The interpreter's prefix (its lib/ next to bin/), for a base outside /usr.
  if interpreter_dir and interpreter_dir:match("/bin$") then interpreter_dir = interpreter_dir:match("^(.*)/bin$") end
  return {
    level = level, explicit = explicit, home = opts.home, user = opts.user, disk = opts.disk,
    resolv_conf = opts.resolv_conf,
    workspace = { path = opts.cwd, fresh = opts.workspace_fresh },
    keep = {
      { path = opts.cwd, writable = true },
      { path = script_dir },
      { path = launch.env_dir },
      { path = interpreter_dir },
      { path = launch.interpreter and launch.interpreter:match("^(.*)/bin/[^/]*$") },
      { path = interpreter.prefix_of(launch.base_interpreter) },
    },
  }
end

--- Who a server-started workload runs as: when this process is root and
-- the isolation level is not 0, an unprivileged identity (see
-- prisn.exec.isolation.workload_user); else nil (the server's own user).
-- Raises a prisn.error for a malformed PRISN_WORKLOAD_USER.
function M.server_workload_user(level)
  if uv.getuid() ~= 0 then return nil end
  local resolved = isolation.resolve(level)
  if resolved == 0 then return nil end
  local user, err = isolation.workload_user()
  if not user then errors.raise("EINVAL", err, { hint = "PRISN_WORKLOAD_USER=uid:gid, e.g. 65534:65534" }) end
  return user
end

return M
