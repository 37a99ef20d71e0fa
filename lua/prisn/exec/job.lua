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
local fs = require("prisn.fs")
local units = require("prisn.units")
local group = require("prisn.exec.group")
local runners = require("prisn.exec.runners")
local deps = require("prisn.exec.deps")
local envcache = require("prisn.exec.envcache")
local interpreter = require("prisn.exec.interpreter")
local isolation = require("prisn.exec.isolation")

local M = {}

local INSTALLERS = {
  python = require("prisn.exec.install.python"),
  node = require("prisn.exec.install.node"),
}

local function set_of(list)
  local set = {}
  for _, name in ipairs(list or {}) do set[name] = true end
  return set
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
    read_file = function(path) return allowed(path) and fs.read_file(path) or nil end,
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
      local list = info.dependencies
      io.stderr:write(string.format("prisn: installing %d dependenc%s from %s: %s\n", #list,
        #list == 1 and "y" or "ies", source, table.concat(list, ", ")))
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
  local script_dir = opts.script and opts.script:match("^(.*)/[^/]*$") or opts.cwd
  local launch = { runner = runner, interpreter = path, env = env, cwd = opts.cwd, script = opts.script }

  local manager = runner.deps or "none"
  if manager ~= "none" then
    local identity, err, icode2 = interpreter.identify(opts.home, path, manager, script_dir)
    if not identity then
      fail(icode2 or "EINTERPRETER", err, "check that " .. path .. " runs: " .. (runner.install_hint or ""))
    end
    -- Exec the real interpreter, not a version manager's shim in front of it.
    launch.interpreter = identity.executable
    -- A venv's bin/python is a symlink to this one: the sandbox of a
    -- workload switched to another user must keep its prefix reachable.
    launch.base_interpreter = identity.real_executable or identity.executable
    if opts.script and not opts.no_deps then
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
        local ok, env_dir, env_key = pcall(envcache.ensure, {
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
          env = group.env_list(env),
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
        INSTALLERS[manager].apply(env_dir, launch)
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
