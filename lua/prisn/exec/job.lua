-- prisn.exec.job: one `prisn run` from the CLI, start to finish.
--
--   detect runner -> resolve interpreter -> detect dependencies -> environment
--   from the cache (built once) -> record the job -> spawn, stream, supervise
--   -> record the outcome -> the script's exit status
--
-- Everything a user can get wrong (a missing script, an unknown type, a
-- missing interpreter, a failed install) becomes a prisn.error with a hint.
-- Once a runner is known the run is recorded, failures to start included, so
-- `prisn get jobs` shows every attempt.
local uv = require("luv")
local async = require("prisn.async")
local errors = require("prisn.error")
local job_specs = require("prisn.store.job_specs")
local supervise = require("prisn.exec.group")

local M = {}

local INSTALLERS = {
  python = "prisn.exec.install.python",
  node = "prisn.exec.install.node",
}

local function set_of(list)
  local set = {}
  for _, name in ipairs(list or {}) do set[name] = true end
  return set
end

local function absolute(path, cwd)
  if path:sub(1, 1) == "/" then return path end
  return (cwd == "/" and "" or cwd) .. "/" .. path
end

-- Whether `path` lies under `root` once symlinks and ".." are resolved
-- (a path that does not exist does not).
local function inside(root, path)
  local real, real_root = uv.fs_realpath(path), uv.fs_realpath(root)
  return real ~= nil and real_root ~= nil and (real == real_root or real:sub(1, #real_root + 1) == real_root .. "/")
end
M._inside = inside

-- The real filesystem, as prisn.exec.deps wants it. With `confine` (a
-- folder), nothing outside it exists: a restricted workload's metadata
-- (`-r /etc/shadow` in its requirements.txt) cannot make prisn read the
-- server's files for it.
local function deps_context(home_dir, cwd, identity, confine)
  local function allowed(path) return not confine or inside(confine, path) end
  return {
    read_file = function(path) return allowed(path) and require("prisn.fs").read_file(path) or nil end,
    exists = function(path) return allowed(path) and uv.fs_stat(path) ~= nil end,
    is_dir = function(path)
      local st = allowed(path) and uv.fs_stat(path)
      return st and st.type == "directory" or false
    end,
    home = home_dir,
    cwd = cwd,
    stdlib = function() return set_of(identity.stdlib) end,
    builtins = function() return set_of(identity.builtins) end,
  }
end

-- Progress of an environment build, on stderr and only on a terminal.
local function progress_printer(show, source)
  local started
  return function(event, info)
    if not show then return end
    if event == "waiting" then
      io.stderr:write("prisn: waiting for another prisn building the same environment...\n")
    elseif event == "building" then
      started = uv.hrtime()
      local deps = info.dependencies
      io.stderr:write(string.format("prisn: installing %d dependenc%s from %s: %s\n", #deps,
        #deps == 1 and "y" or "ies", source, table.concat(deps, ", ")))
    elseif event == "built" then
      io.stderr:write(string.format("prisn: environment ready in %.1fs\n", (uv.hrtime() - started) / 1e9))
    end
  end
end

-- The folder that holds an interpreter's bin/, or its own folder.
local function prefix_of(executable)
  local dir = executable and executable:match("^(.*)/[^/]*$")
  return dir and (dir:match("^(.*)/bin$") or dir) or nil
end

-- Who builds a restricted workload's dependencies, and what the build may
-- read (prisn.exec.envcache's builder): the workload's own user
-- (opts.build_as, never root), with its bundle, the interpreter's and npm's
-- prefixes and the local wheel folders of the server's own PIP_FIND_LINKS
-- readable. Only paths prisn or its operator chose: a kept path is bound back
-- past directories the user could not traverse, so a path the workload names
-- (its PIP_FIND_LINKS, an absolute --find-links) would hand it what those
-- directories protect. nil when there is no such user (prisn is not root).
local function restricted_builder(opts, identity, npm)
  local user = opts.build_as
  if type(user) ~= "table" or math.type(user.uid) ~= "integer" or user.uid == 0 then return nil end
  local keep = { { path = opts.bundle_dir }, { path = prefix_of(identity.executable) },
    { path = prefix_of(identity.real_executable) }, { path = npm and prefix_of(uv.fs_realpath(npm) or npm) } }
  for dir in (os.getenv("PIP_FIND_LINKS") or ""):gmatch("%S+") do
    if dir:sub(1, 1) == "/" then keep[#keep + 1] = { path = dir } end
  end
  local list = {}
  for _, k in ipairs(keep) do if k.path then list[#list + 1] = k end end
  return { user = { uid = user.uid, gid = user.gid or user.uid }, keep = list }
end

--- Works out what to launch. Returns a launch table: { runner, file, argv,
-- env, cwd, env_key, deps_source, env_keys, script }. Raises prisn.errors.
-- `rec` records the job: rec.create(runner) as soon as the runner is known
-- (so a long environment build already shows in `prisn get jobs`),
-- rec.update(fields) as facts arrive, rec.fail_to_start(message).
function M.prepare(opts, rec)
  local runners = require("prisn.exec.runners")
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

  local env = supervise.current_environment()
  for k, v in pairs(opts.env) do env[k] = v end
  local script_dir = opts.script and opts.script:match("^(.*)/[^/]*$") or opts.cwd
  local launch = { runner = runner, interpreter = path, env = env, cwd = opts.cwd, script = opts.script }

  local manager = runner.deps or "none"
  if manager ~= "none" then
    local identity, err, icode2 = require("prisn.exec.interpreter").identify(opts.home, path, manager, script_dir)
    if not identity then
      fail(icode2 or "EINTERPRETER", err, "check that " .. path .. " runs: " .. (runner.install_hint or ""))
    end
    -- Exec the real interpreter, not a version manager's shim in front of it.
    launch.interpreter = identity.executable
    -- A venv's bin/python is a symlink to this one: the sandbox of a
    -- workload switched to another user must keep its prefix reachable.
    launch.base_interpreter = identity.real_executable or identity.executable
    if opts.script and not opts.no_deps then
      local deps = require("prisn.exec.deps")
      local confine = opts.restricted and (opts.bundle_dir or script_dir) or nil
      local found, derr, dcode = deps.detect(manager, opts.script,
        deps_context(os.getenv("HOME"), opts.cwd, identity, confine))
      if not found then fail(dcode or "EDEPS", derr, "fix the dependency metadata, or run with --no-deps") end
      launch.deps_source = found.source
      rec.update({ deps_source = found.source })
      if #found.dependencies > 0 then
        local list = deps.normalize(manager, found.dependencies)
        local key_parts = { table.unpack(list) }
        for _, o in ipairs(found.options or {}) do key_parts[#key_parts + 1] = "option:" .. o end
        if found.requires_python then key_parts[#key_parts + 1] = "requires-python:" .. found.requires_python end
        -- A restricted workload's own PATH does not choose the npm its build runs.
        local npm = manager == "node"
          and runners.which("npm", opts.restricted and os.getenv("PATH") or env.PATH, runners.system_probes()) or nil
        -- A restricted workload's environment is built by its own user,
        -- confined, into a cache entry of its namespace's own (building runs
        -- the packages' code); with no such user to build as, never.
        local builder
        if opts.restricted then
          key_parts[#key_parts + 1] = "restricted:" .. tostring(opts.restricted)
          builder = restricted_builder(opts, identity, npm)
        end
        local where = found.source .. (found.file and found.file ~= opts.script and (" (" .. found.file .. ")") or "")
        local ok, env_dir, env_key = pcall(require("prisn.exec.envcache").ensure, {
          builder = builder,
          cached_only = opts.restricted and not builder,
          home = opts.home,
          runner = runner.name,
          manager = manager,
          interpreter = identity,
          dependencies = list,
          key_parts = key_parts,
          options = found.options,
          source = where,
          env = supervise.env_list(env),
          npm = npm,
          progress = progress_printer(opts.show_progress, where),
        })
        if not ok then
          rec.fail_to_start(errors.is(env_dir) and env_dir.message or tostring(env_dir))
          error(env_dir, 0)
        end
        launch.env_key = env_key
        launch.env_dir = env_dir
        rec.update({ env_key = env_key })
        require(INSTALLERS[manager]).apply(env_dir, launch)
      end
    end
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

-- Opens the state database and the job's log; returns recorder functions.
local function recorder(opts)
  local store = require("prisn.store")
  local jobs = require("prisn.store.jobs")
  local logs = require("prisn.logs")
  local db = store.open(opts.home)
  local rec = { db = db }
  function rec.create(runner)
    local id = require("prisn.ids").new()
    rec.log_path = logs.job_path(opts.home, opts.namespace, id)
    rec.job = jobs.create(db, {
      id = id,
      script = opts.script or "(inline)",
      runner = runner.name,
      args = opts.args,
      env_keys = opts.env_keys,
      cwd = opts.cwd,
      namespace = opts.namespace,
      log_path = rec.log_path,
    })
    return rec.job
  end
  -- Only the columns prepare learns along the way.
  function rec.update(fields)
    jobs.record_prepared(db, rec.job.id, fields)
  end
  function rec.start(pid)
    jobs.start(db, rec.job.id, { pid = pid })
  end
  function rec.finish(result)
    jobs.finish(db, rec.job.id, result)
  end
  function rec.fail_to_start(message)
    jobs.finish(db, rec.job.id, { state = "failed", reason = "failed_to_start", message = message })
  end
  function rec.open_log()
    local w, err = logs.writer(rec.log_path)
    if not w then io.stderr:write("prisn: cannot keep the job's output: ", tostring(err), "\n") end
    rec.log = w
    return w
  end
  function rec.close()
    if rec.log then rec.log:close() end
    db:close()
  end
  return rec
end

--- Prepares and runs a recorded job to its end, inside an async task.
-- `rec` records it (see M.prepare); `sinks` = { stdout = fn, stderr = fn }
-- also receive the output (the log always does). opts as for M.run, plus
-- forward_signals (default true) and on_start(pid, proc). Returns the
-- outcome ({ state, reason, exit_code, signal, message }); raises a
-- prisn.error when the job could not start (after recording that).
--- Whether output `data` carries the system's words for a full disk.
function M.says_disk_full(data)
  return data:find("No space left on device", 1, true) ~= nil or data:find("Disk quota exceeded", 1, true) ~= nil
end

function M.execute(opts, rec, sinks)
  local disk_full = false
  local launch = M.prepare(opts, rec)
  -- A server job's start is on record before its workload can start (see
  -- M.begin_job_log).
  if rec.begin then rec.begin() end
  local log
  sinks = sinks or {}
  local outcome = supervise.supervise({
    isolation = M.isolation_context(opts, launch),
    file = launch.file,
    argv = launch.argv,
    env = launch.env,
    cwd = opts.cwd,
    timeout = opts.timeout,
    grace = opts.grace or supervise.DEFAULT_GRACE,
    limits = opts.limits or nil,
    name = "job-" .. rec.job.id,
    forward_signals = opts.forward_signals ~= false,
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
  if outcome.reason == "failed_to_start" then
    local message = outcome.message
    if outcome.code == "ENOENT" and outcome.stage == "exec" then message = launch.file .. ": not found" end
    rec.fail_to_start(message)
    if require("prisn.exec.isolation").setup_failed(outcome.code, outcome.stage) and opts.isolation then
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
    outcome.message = "out of disk space: the job filled its --disk " .. require("prisn.units").format_size(opts.disk)
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
  local isolation = require("prisn.exec.isolation")
  local level, explicit = isolation.resolve(opts.isolation)
  local script_dir = launch.script and launch.script:match("^(.*)/[^/]*$")
  local interpreter_dir = launch.file and launch.file:match("^(.*)/[^/]*$")
  -- The interpreter's prefix (its lib/ next to bin/), for a base outside /usr.
  if interpreter_dir and interpreter_dir:match("/bin$") then interpreter_dir = interpreter_dir:match("^(.*)/bin$") end
  return {
    level = level, explicit = explicit, home = opts.home, user = opts.user, disk = opts.disk,
    workspace = { path = opts.cwd, fresh = opts.workspace_fresh },
    keep = {
      { path = opts.cwd, writable = true },
      { path = script_dir },
      { path = launch.env_dir },
      { path = interpreter_dir },
      { path = launch.interpreter and launch.interpreter:match("^(.*)/bin/[^/]*$") },
      { path = prefix_of(launch.base_interpreter) },
    },
  }
end

--- Runs a job from the CLI and returns the exit status prisn should exit
-- with. Must run in an async task. opts: home, namespace, script (absolute)
-- or code, args, runner, env (table from -e and --env-file), env_keys, cwd,
-- timeout, grace, limits ({ memory, cpu, pids }, see prisn.exec.limits),
-- isolation (0..3, nil: the default), disk (bytes: level 2+ writes bound),
-- user ({ uid, gid }, nil: the caller),
-- no_deps, quiet, show_progress.
function M.run(opts)
  local rec = recorder(opts)
  local ok, result = pcall(function()
    local outcome = M.execute(opts, rec, {
      stdout = function(data)
        io.stdout:write(data)
        io.stdout:flush()
      end,
      stderr = function(data) io.stderr:write(data) end,
    })
    if outcome.message and not opts.quiet then
      io.stderr:write(string.format("prisn: job %s %s\n", rec.job.id, outcome.message))
    end
    return outcome.exit_code
  end)
  rec.close()
  if not ok then error(result, 0) end
  return result
end

--- A recorder (see M.prepare) for a job that is already recorded, as the
-- server's jobs are when they are submitted: writes to state.db (`db`).
function M.existing_recorder(db, job, on_log_error)
  local jobs = require("prisn.store.jobs")
  local rec = { db = db, job = job, log_path = job.log_path }
  function rec.create() return job end
  function rec.update(fields)
    jobs.record_prepared(db, job.id, fields)
  end
  function rec.start(pid, started_at)
    jobs.start(db, job.id, { pid = pid, started_at = started_at })
  end
  -- `started` ({ pid, started_at }): the start, when it may not be recorded
  -- yet (a server told of it died before it wrote it down).
  function rec.finish(result, started)
    rec.finished = true
    local current = jobs.get_by_id(db, job.id)
    if current and current.state == "queued" and started then
      jobs.start(db, job.id, { pid = started.pid, started_at = started.started_at })
    end
    jobs.finish(db, job.id, result)
  end
  function rec.fail_to_start(message)
    rec.finished = true
    jobs.finish(db, job.id, { state = "failed", reason = "failed_to_start", message = message })
  end
  function rec.begin() return M.begin_job_log(rec, on_log_error) end
  function rec.open_log() return M.open_job_log(rec, on_log_error) end
  function rec.close()
    if rec.log then rec.log:close() end
  end
  return rec
end

--- rec.open_log of a server job's recorder: opens rec.log_path as rec.log
-- (once); when it cannot, on_log_error(err) hears why and the job runs on
-- unlogged.
function M.open_job_log(rec, on_log_error)
  if rec.log then return rec.log end
  local w, err = require("prisn.logs").writer(rec.log_path)
  if not w and on_log_error then on_log_error(err) end
  rec.log = w
  return w
end

--- rec.begin of a server job's recorder: called in the job's runner, which
-- holds the job's lock, just before the workload starts. Opens the job's log
-- and writes its start record: the proof that the job started, which
-- outlives the runner and a server that never heard of the start (a report
-- lost with a `kill -9`); recovery never queues such a job again. A log
-- that exists already means an earlier runner started the job: raises
-- "already_started" and the job is not run a second time.
function M.begin_job_log(rec, on_log_error)
  local logs = require("prisn.logs")
  if logs.started(rec.log_path) then
    errors.raise("already_started", "job " .. rec.job.id .. " was started before (its log exists)",
      { hint = "a job runs at most once; submit it again to run it again" })
  end
  local w = M.open_job_log(rec, on_log_error)
  if w then
    w:write_start(string.format('{"runner_pid":%d,"at":%d}', uv.os_getpid(), require("prisn.clock").now_ms()))
  end
end

local function decode_object(text)
  local ok, t = pcall(require("cjson").decode, text or "")
  return ok and type(t) == "table" and t or nil
end

--- The outcome a job's runner wrote at the end of the log at `log_path`
-- (see prisn.exec.job_report), decoded; nil when there is none.
function M.logged_outcome(log_path)
  return log_path and decode_object(require("prisn.logs").outcome(log_path)) or nil
end

--- The start a job's runner wrote in the log at `log_path`: { pid,
-- started_at } once the workload started (only { runner_pid, at } when it
-- was about to); nil when there is none.
function M.logged_start(log_path)
  return log_path and decode_object(require("prisn.logs").start_record(log_path)) or nil
end

-- Records the end of a job that an earlier runner started (its log says
-- so) and that must not run again: the outcome that runner logged, or
-- failed "server_restarted" when it left none (it died with the job).
local function settle_started(rec)
  local outcome = M.logged_outcome(rec.log_path)
  if outcome and outcome.state then
    local started = outcome.started_at and { pid = outcome.pid, started_at = outcome.started_at } or nil
    rec.started = rec.started or started
    return rec.finish(outcome, started)
  end
  rec.finish({ state = "failed", reason = "server_restarted",
    message = "the job had started under an earlier runner, which is gone; it is not run again" })
end

-- Runs a server job (`job` = { id, namespace, log_path }, its `spec`) with
-- recorder `rec`; `db` (a function returning state.db, opened when first
-- needed) for its secrets. A failure to start is recorded through `rec`.
local function run_spec(home, job, spec, rec, db)
  local ok, err = pcall(function()
    local env = {}
    for k, v in pairs(spec.env or {}) do env[k] = v end
    if spec.secrets and #spec.secrets > 0 then
      local keyring = require("prisn.secrets.keyring").load(home, { db = db() })
      for k, v in pairs(require("prisn.store.secrets").env_for(db(), keyring, job.namespace, spec.secrets)) do
        env[k] = v
      end
    end
    local user = M.server_workload_user(spec.isolation)
    local workspace = M.server_workspace(home, job.id, spec, user)
    local run_ok, run_err = pcall(M.execute, {
      home = home, namespace = job.namespace, script = spec.script, args = spec.args or {},
      runner = spec.runner, env = env, cwd = workspace or spec.cwd or spec.script:match("^(.*)/[^/]*$"),
      timeout = spec.timeout, grace = spec.grace, no_deps = spec.no_deps,
      restricted = spec.restricted, bundle_dir = spec.bundle and spec.cwd or nil, build_as = user,
      limits = require("prisn.exec.limits").from_spec(spec) or nil,
      isolation = spec.isolation, user = user, disk = spec.disk, workspace_fresh = workspace and spec.disk and true,
      forward_signals = true,
    }, rec)
    if workspace then require("prisn.fs").rm_rf(workspace) end
    if not run_ok then error(run_err, 0) end
  end)
  if not ok then
    if errors.is(err) and err.code == "already_started" then
      pcall(settle_started, rec)
      return
    end
    if not rec.finished then
      pcall(rec.fail_to_start, errors.is(err) and err.message or tostring(err))
    end
    if not errors.is(err) then io.stderr:write("prisn: job ", job.id, ": ", tostring(err), "\n") end
  end
end

local function log_error_printer(id)
  return function(err)
    io.stderr:write("prisn: job ", id, ": cannot keep its output: ", tostring(err), "\n")
  end
end

--- Runs server job `id` of `home` to its end: the body of the job runner
-- process `prisn __job-run ID`, which the server execs when it has no job
-- host (see prisn.exec.job_host for the usual way). It reads the job and
-- its spec from state.db, gives it its secrets, runs it (SIGTERM to this
-- process stops the job's group, SIGKILL after the grace) and records the
-- outcome in state.db itself, so a job finishes and is recorded even if the
-- server dies meanwhile. Must run in an async task. Returns 0, or 1 when the
-- job could not be found.
function M.run_recorded(home, id)
  supervise.protect_self()
  -- Held for the runner's whole life: a restarted server knows by it that
  -- this job's runner still runs (see M.runner_alive).
  local lock, held = M.runner_lock(home, id)
  if held then
    io.stderr:write("prisn __job-run: job ", id, " has a runner already\n")
    return 1
  end
  local jobs = require("prisn.store.jobs")
  local db = require("prisn.store").open(home)
  local job = jobs.get_by_id(db, id)
  local spec_json = job_specs.get(db, id)
  if not job or not spec_json or (job.state ~= "queued" and job.state ~= "running") then
    db:close()
    M.runner_unlock(home, id, lock)
    io.stderr:write("prisn __job-run: job ", id, " is not waiting to run\n")
    return 1
  end
  local rec = M.existing_recorder(db, job, log_error_printer(id))
  run_spec(home, job, require("cjson").decode(spec_json), rec, function() return db end)
  -- The spec (with the -e values) was needed to start the job; not kept after.
  job_specs.drop(db, id)
  rec.close()
  db:close()
  M.runner_unlock(home, id, lock)
  return 0
end

--- Runs a job the server assigned through the job host: the body of a
-- runner the host forked. `assignment` = { id, namespace, log_path, spec }
-- (the server sends what the runner needs, so it need not read state.db);
-- `report_fd` the pipe to the server, on which the runner tells of the
-- job's start and outcome (prisn.exec.job_report), falling back to writing
-- state.db itself when the server is gone. `lock`: the job's lock, taken
-- (M.runner_lock). Must run in an async task. Returns 0.
function M.run_assigned(home, assignment, report_fd, lock)
  supervise.protect_self()
  local id = assignment.id
  local job = { id = id, namespace = assignment.namespace, log_path = assignment.log_path }
  local rec = require("prisn.exec.job_report").recorder(home, job, report_fd, log_error_printer(id))
  run_spec(home, job, assignment.spec, rec, rec.db)
  rec.close()
  M.runner_unlock(home, id, lock)
  return 0
end

-- A job's runner holds a lock for its whole life: a restarted server tells
-- by it that the runner still runs, and a second runner for the job cannot
-- start. The lock is a claim (prisn.core.sys.claim: an abstract unix
-- socket, gone with the process, no file) under a name only this home's
-- processes can work out (a hash keyed with the home's secret token key:
-- another user cannot hold a job's name first); where claims do not work,
-- a locked file, run/jobs/<id>.lock, with the runner's pid in it.

local function lock_path(home, id)
  return home .. "/run/jobs/" .. id .. ".lock"
end

local claim_keys = {}

--- The claim name of job `id`'s runner.
function M.claim_name(home, id)
  local key = claim_keys[home]
  if not key then
    key = require("prisn.store.tokens").load_key(home)
    claim_keys[home] = key
  end
  local crypto = require("prisn.core.crypto")
  return "prisn-job/" .. crypto.to_hex(crypto.hash("job-runner\0" .. home .. "\0" .. id, key)):sub(1, 40)
end

--- Takes the lock that says job `id`'s runner runs; returns it, or nil and
-- true when another runner holds it (nil alone when it cannot be taken at
-- all: the runner then has no lock).
function M.runner_lock(home, id)
  local sys = require("prisn.core.sys")
  local claim = sys.claim(M.claim_name(home, id))
  if claim then return { claim = claim } end
  if claim == false then return nil, true end
  uv.fs_mkdir(home .. "/run", tonumber("700", 8))
  uv.fs_mkdir(home .. "/run/jobs", tonumber("700", 8))
  local fd = sys.lock(lock_path(home, id))
  if fd == false then return nil, true end
  if not fd then return nil end
  uv.fs_ftruncate(fd, 0)
  uv.fs_write(fd, tostring(uv.os_getpid()) .. "\n", 0)
  return { file = fd }
end

function M.runner_unlock(home, id, lock)
  if not lock then return end
  if lock.claim then return uv.fs_close(lock.claim) end
  uv.fs_unlink(lock_path(home, id))
  require("prisn.core.sys").unlock(lock.file)
end

--- Whether the runner of job `id` still runs (it holds its lock), and its
-- pid (nil when it cannot be told).
function M.runner_alive(home, id)
  local sys = require("prisn.core.sys")
  local pid = sys.claimant(M.claim_name(home, id))
  if pid then return true, pid ~= 0 and pid or nil end
  local path = lock_path(home, id)
  if not uv.fs_stat(path) then return false end
  local fd = sys.lock(path)
  if fd then
    -- Nobody held it: a runner that died without cleaning up.
    uv.fs_unlink(path)
    sys.unlock(fd)
    return false
  end
  if fd ~= false then return false end
  return true, math.tointeger(tonumber((require("prisn.fs").read_file(path) or ""):match("%d+") or ""))
end

--- The workspace of a server job at isolation level 2 or 3: a folder of its
-- own, $PRISN_HOME/work/<id>, made here (owned by the workload's user) and
-- removed when the job ends; with --disk it is not made on the host at all
-- (the job gets a fresh tmpfs at that path). nil below level 2: the job
-- runs in its bundle's folder as before.
function M.server_workspace(home, id, spec, user)
  local level = math.tointeger(spec.isolation)
  if not level or level < 2 then return nil end
  local path = home .. "/work/" .. id
  if spec.disk then return path end
  local fs = require("prisn.fs")
  local function fail(what, err, code)
    errors.raise(code or "EIO", string.format("cannot %s the workspace of job %s (%s): %s", what, id, path,
      tostring(err)), { hint = require("prisn.home").write_hint(code) })
  end
  uv.fs_mkdir(home .. "/work", tonumber("711", 8))
  local ok, err, code = uv.fs_mkdir(path, tonumber("700", 8))
  if not ok and code == "EEXIST" then
    -- Left by an earlier attempt at this job whose runner did not clean up
    -- (killed with the server): the job starts in a fresh one.
    local removed, rerr, rcode = fs.rm_rf(path)
    if not removed then fail("clear the leftover", rerr, rcode) end
    ok, err, code = uv.fs_mkdir(path, tonumber("700", 8))
  end
  if not ok then fail("create", err, code) end
  if user then
    ok, err, code = uv.fs_chown(path, user.uid, user.gid)
    if not ok then fail("hand over", err, code) end
  end
  return path
end

--- Who a server-started workload runs as: when this process is root and
-- the isolation level is not 0, an unprivileged identity (see
-- prisn.exec.isolation.workload_user); else nil (the server's own user).
-- Raises a prisn.error for a malformed PRISN_WORKLOAD_USER.
function M.server_workload_user(level)
  local isolation = require("prisn.exec.isolation")
  if uv.getuid() ~= 0 then return nil end
  local resolved = isolation.resolve(level)
  if resolved == 0 then return nil end
  local user, err = isolation.workload_user()
  if not user then errors.raise("EINVAL", err, { hint = "PRISN_WORKLOAD_USER=uid:gid, e.g. 65534:65534" }) end
  return user
end

--- The values of the named secrets, from the server, as KEY -> value.
function M.secret_values(ctx, names)
  local client = require("prisn.client")
  local c = client.connect(ctx)
  local env = {}
  for _, name in ipairs(names) do
    local secret = c:request("GET", string.format("/api/v1/namespaces/%s/secrets/%s?reveal=1",
      client.namespace(ctx), name))
    for k, v in pairs(secret.data or {}) do env[k] = v end
  end
  return env
end

--- Hands a job to the server: uploads the script's folder as a bundle
-- (skipped when the server has it), submits the job and returns its record.
function M.submit(ctx, opts)
  local bundle = require("prisn.bundle")
  local client = require("prisn.client")
  local c = client.connect(ctx)
  local dir = opts.script:match("^(.*)/[^/]*$")
  local blob, hash_or_err = bundle.pack(dir)
  if not blob then
    errors.raise("EBUNDLE", "cannot pack " .. dir .. ": " .. hash_or_err,
      { hint = "keep a detached script in a folder of its own, under 20 MB" })
  end
  local hash = hash_or_err
  local present = pcall(c.request, c, "GET", "/api/v1/bundles/" .. hash)
  if not present then c:request_raw("PUT", "/api/v1/bundles/" .. hash, blob) end
  local env = {}
  for k, v in pairs(opts.env) do env[k] = v end
  local limits = opts.limits or {}
  return c:request("POST", "/api/v1/namespaces/" .. client.namespace(ctx) .. "/jobs", {
    bundle = hash, entry = opts.script:sub(#dir + 2), args = require("prisn.output").array(opts.args),
    env = next(env) and env or nil, secrets = #opts.secrets > 0 and opts.secrets or nil,
    runner = opts.runner, timeout = opts.timeout, grace = opts.grace, no_deps = opts.no_deps or nil,
    memory = limits.memory, cpu = limits.cpu, pids = limits.pids, isolation = opts.isolation,
    disk = opts.disk,
  })
end

-- Writes a job's output to this terminal, stdout to stdout and stderr to
-- stderr.
local function print_output(stream, data)
  local f = stream == "stderr" and io.stderr or io.stdout
  f:write(data)
  f:flush()
end

--- Streams a job's output from the server until it ends; returns the exit
-- status prisn should exit with: the job's code, or 1 when it has none.
function M.follow_remote(ctx, id)
  local client = require("prisn.client")
  local final = client.connect(ctx):follow_job(client.namespace(ctx), id, print_output)
  local code = final and math.tointeger(final.exit_code)
  return code or 1
end

--- The `prisn run` command handler: turns flags into opts and runs the job.
function M.run_from_cli(ctx)
  local flags, args = ctx.flags, ctx.args
  local cwd = uv.cwd()
  local script = args.SCRIPT
  local script_args = { table.unpack(args.ARGS or {}) }
  local code = flags.exec
  if code then
    if not flags.runner then
      errors.usage("--exec needs --runner to say which language the code is in",
        "for example: prisn run --exec 'print(42)' --runner python3")
    end
    if script then table.insert(script_args, 1, script) end
    script = nil
  elseif not script then
    errors.usage("missing argument SCRIPT for 'prisn run'", "see 'prisn help run'")
  end
  if script then
    script = absolute(script, cwd)
    local st = uv.fs_stat(script)
    if not st then
      errors.raise("ENOENT", "script not found: " .. args.SCRIPT, { hint = "check the path (it is relative to "
        .. cwd .. ")" })
    elseif st.type == "directory" then
      errors.raise("EISDIR", args.SCRIPT .. " is a directory, not a script",
        { hint = "give the script file inside it, e.g. prisn run " .. args.SCRIPT .. "/main.py" })
    end
  end
  local run_dir = cwd
  if flags.cwd then
    run_dir = absolute(flags.cwd, cwd)
    local st = uv.fs_stat(run_dir)
    if not st or st.type ~= "directory" then
      errors.raise("ENOENT", "--cwd " .. flags.cwd .. " is not a directory", { hint = "give an existing directory" })
    end
  end
  local run_limits, lerr, lhint = require("prisn.exec.limits").check({ memory = flags.memory, cpu = flags.cpu,
    pids = flags.pids })
  if run_limits == nil then errors.usage(lerr, lhint) end
  local isolation = require("prisn.exec.isolation")
  local level = isolation.check_disk(isolation.check(flags.isolation), flags.disk)
  local user
  if flags.user then
    local found, uerr = isolation.lookup_user(flags.user)
    if not found then errors.usage("--user: " .. uerr, "give a user name or a numeric uid") end
    if found.uid ~= uv.getuid() and uv.getuid() ~= 0 then
      errors.raise("EPERM", "--user " .. flags.user .. " needs prisn to run as root",
        { hint = "run it with sudo, or drop --user" })
    end
    user = { uid = found.uid, gid = found.gid }
  end
  local env, keys = require("prisn.envfile").collect(flags.env_file and absolute(flags.env_file, cwd), flags.env)
  local remote = not require("prisn.client").context(ctx).is_local
  if flags.detach or remote then
    if not script then
      errors.usage("--exec code runs only here, not on a server", "put the code in a file")
    end
    if user then
      errors.usage("--user applies to local runs only", "the server runs jobs as its workload user")
    end
    local job = M.submit(ctx, { script = script, args = script_args, env = env, runner = flags.runner,
      timeout = flags.timeout, grace = flags.grace, no_deps = flags.no_deps, secrets = flags.secret,
      limits = run_limits, isolation = level, disk = flags.disk })
    if flags.detach then
      io.stdout:write(job.id, "\n")
      return 0
    end
    return M.follow_remote(ctx, job.id)
  end
  if #flags.secret > 0 then
    for k, v in pairs(M.secret_values(ctx, flags.secret)) do
      env[k] = v
      keys[#keys + 1] = k
    end
  end
  local home = require("prisn.home").ensure()
  supervise.protect_self()
  return async.main(M.run, {
    home = home,
    namespace = ctx.globals.namespace or "default",
    script = script,
    code = code,
    args = script_args,
    runner = flags.runner,
    env = env,
    env_keys = keys,
    cwd = run_dir,
    timeout = flags.timeout,
    grace = flags.grace or supervise.DEFAULT_GRACE,
    limits = run_limits,
    isolation = level,
    disk = flags.disk,
    user = user,
    no_deps = flags.no_deps,
    quiet = ctx.globals.quiet,
    show_progress = not ctx.globals.quiet and require("prisn.core.sys").isatty(2),
  })
end

return M
