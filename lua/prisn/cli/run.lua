-- prisn.cli.run: what `prisn run` does with its flags. It checks them, then
-- runs the job on this machine (prisn.exec.job, recorded in state.db, its
-- output on this terminal) or, with --detach or against a remote context,
-- hands it to the server: uploads the script's folder as a bundle
-- (prisn.cli.workload), submits the job and follows its output.
--
-- Secrets live on the server: a local run named with --secret fetches their
-- values through the API, and they go into the script's environment only.
local uv = require("luv")
local errors = require("prisn.error")
local async = require("prisn.async")
local client = require("prisn.client")
local envfile = require("prisn.envfile")
local home = require("prisn.home")
local output = require("prisn.output")
local sys = require("prisn.core.sys")
local sandbox = require("prisn.core.sandbox")
local workload = require("prisn.cli.workload")
local exec_job = require("prisn.exec.job")
local job_record = require("prisn.exec.job_record")
local group = require("prisn.exec.group")
local limits = require("prisn.exec.limits")
local isolation = require("prisn.exec.isolation")

local M = {}

local function absolute(path, cwd)
  if path:sub(1, 1) == "/" then return path end
  return (cwd == "/" and "" or cwd) .. "/" .. path
end

--- Runs a job on this machine and returns the exit status prisn should
-- exit with: the job is recorded in opts.home's state.db and its output
-- goes to this terminal. Must run in an async task. opts as for
-- prisn.exec.job.execute, plus quiet (no closing note on stderr).
function M.run_here(opts)
  local rec = job_record.new(opts)
  local ok, result = pcall(function()
    local outcome = exec_job.execute(opts, rec, {
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

--- The values of the named secrets, from the server, as KEY -> value.
function M.secret_values(ctx, names)
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
  local c = client.connect(ctx)
  local dir = opts.script:match("^(.*)/[^/]*$")
  local hash = workload.upload(c, dir, "a detached script", ctx.flags.include)
  local env = {}
  for k, v in pairs(opts.env) do env[k] = v end
  local run_limits = opts.limits or {}
  return c:request("POST", "/api/v1/namespaces/" .. client.namespace(ctx) .. "/jobs", {
    bundle = hash, entry = opts.script:sub(#dir + 2), args = output.array(opts.args),
    env = next(env) and env or nil, secrets = #opts.secrets > 0 and opts.secrets or nil,
    runner = opts.runner, timeout = opts.timeout, grace = opts.grace, no_deps = opts.no_deps or nil,
    memory = run_limits.memory, cpu = run_limits.cpu, pids = run_limits.pids, isolation = opts.isolation,
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
  local final = client.connect(ctx):follow_job(client.namespace(ctx), id, print_output)
  local code = final and math.tointeger(final.exit_code)
  return code or 1
end

-- The script (absolute, checked to be a file) or the --exec code, and the
-- script's arguments.
local function script_or_code(flags, args, cwd)
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
  return script, code, script_args
end

-- The folder the script runs in: --cwd, checked, or `cwd`.
local function run_dir_of(flags, cwd)
  if not flags.cwd then return cwd end
  local dir = absolute(flags.cwd, cwd)
  local st = uv.fs_stat(dir)
  if not st or st.type ~= "directory" then
    errors.raise("ENOENT", "--cwd " .. flags.cwd .. " is not a directory", { hint = "give an existing directory" })
  end
  return dir
end

-- The identity of --user ({ uid, gid }), or nil without it.
local function user_of(flags)
  if not flags.user then return nil end
  local found, uerr = isolation.lookup_user(flags.user)
  if not found then errors.usage("--user: " .. uerr, "give a user name or a numeric uid") end
  if found.uid ~= uv.getuid() and uv.getuid() ~= 0 then
    errors.raise("EPERM", "--user " .. flags.user .. " needs prisn to run as root",
      { hint = "run it with sudo, or drop --user" })
  end
  return { uid = found.uid, gid = found.gid }
end

--- The `prisn run` command handler: turns flags into opts and runs the job,
-- here or on the server.
function M.handler(ctx)
  local flags, args = ctx.flags, ctx.args
  local cwd = uv.cwd()
  workload.check_flags(flags, { "timeout", "grace" })
  local script, code, script_args = script_or_code(flags, args, cwd)
  local run_dir = run_dir_of(flags, cwd)
  local run_limits, lerr, lhint = limits.check({ memory = flags.memory, cpu = flags.cpu, pids = flags.pids })
  if run_limits == nil then errors.usage(lerr, lhint) end
  local level = isolation.check_disk(isolation.check(flags.isolation), flags.disk)
  local user = user_of(flags)
  local env, keys = envfile.collect(flags.env_file and absolute(flags.env_file, cwd), flags.env)
  local remote = not client.context(ctx).is_local
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
      -- -o json/yaml: the job object, as 'prisn get job ID -o json' shows it.
      if ctx.globals.output ~= "text" then ctx.out:emit(job) else io.stdout:write(job.id, "\n") end
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
  local home_dir = home.ensure()
  group.protect_self()
  -- This process is one short-lived thread: its sandbox's init can be the
  -- clone itself instead of an exec of prisn (core/sandbox.c; it falls back
  -- to the exec whenever another thread exists).
  sandbox.init_in_place(true)
  -- run_here closes what it opens (state.db, the log, the workload's
  -- handles and cgroup): nothing is left for the Lua state's teardown.
  ctx.fast_exit = true
  return async.main(M.run_here, {
    home = home_dir,
    namespace = ctx.globals.namespace or "default",
    script = script,
    code = code,
    args = script_args,
    runner = flags.runner,
    env = env,
    env_keys = keys,
    cwd = run_dir,
    timeout = flags.timeout,
    grace = flags.grace or group.DEFAULT_GRACE,
    limits = run_limits,
    isolation = level,
    disk = flags.disk,
    user = user,
    no_deps = flags.no_deps,
    quiet = ctx.globals.quiet,
    show_progress = not ctx.globals.quiet and sys.isatty(2),
  })
end

return M
