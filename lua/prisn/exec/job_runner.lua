-- prisn.exec.job_runner: the body of a server job's runner, the process that
-- runs one queued job to its end. The server starts it one of two ways: the
-- job host forks it (M.run_assigned, the usual way: see prisn.exec.job_host)
-- or it execs `prisn __job-run ID` (M.run_recorded, when there is no host).
--
-- A runner outlives a crashed server: it holds its job's lock
-- (prisn.exec.job_lock) for its whole life, gives the job its secrets and
-- workspace, runs it (prisn.exec.job) and records the outcome, through the
-- server when it can and in state.db itself when it cannot. A job runs at
-- most once: a runner that finds the job started before (its log says so)
-- records what the earlier runner logged instead of running it again.
local uv = require("luv")
local cjson = require("cjson")
local sandbox = require("prisn.core.sandbox")
local errors = require("prisn.error")
local store = require("prisn.store")
local jobs = require("prisn.store.jobs")
local job_specs = require("prisn.store.job_specs")
local secrets = require("prisn.store.secrets")
local keyring = require("prisn.secrets.keyring")
local group = require("prisn.exec.group")
local limits = require("prisn.exec.limits")
local isolation = require("prisn.exec.isolation")
local exec_job = require("prisn.exec.job")
local job_lock = require("prisn.exec.job_lock")
local job_record = require("prisn.exec.job_record")
local report = require("prisn.exec.job_host.report")
local workspace = require("prisn.exec.workspace")

local M = {}

-- Records the end of a job that an earlier runner started (its log says
-- so) and that must not run again: the outcome that runner logged, or
-- failed "server_restarted" when it left none (it died with the job).
local function settle_started(rec)
  local outcome = job_record.logged_outcome(rec.log_path)
  if outcome and outcome.state then
    local started = outcome.started_at and { pid = outcome.pid, started_at = outcome.started_at } or nil
    rec.started = rec.started or started
    return rec.finish(outcome, started)
  end
  rec.finish({ state = "failed", reason = "server_restarted",
    message = "the job had started under an earlier runner, which is gone; it is not run again" })
end

-- The environment of a server job: its -e values and the keys of the
-- secrets it names; `db` (a function returning state.db, opened when first
-- needed) only for the secrets.
local function job_env(home, job, spec, db)
  local env = {}
  for k, v in pairs(spec.env or {}) do env[k] = v end
  if spec.secrets and #spec.secrets > 0 then
    local ring = keyring.load(home, { db = db() })
    for k, v in pairs(secrets.env_for(db(), ring, job.namespace, spec.secrets)) do env[k] = v end
  end
  return env
end

--- Whether a server job's sandbox init may run in the runner's own clone
-- (prisn.core.sandbox.init_in_place) instead of an exec of prisn's binary,
-- for a workload that runs as `user` ({ uid, gid }, nil: the runner's own
-- user; see prisn.exec.job.server_workload_user).
--
-- The init in place keeps a copy-on-write image of the runner for the job's
-- life, and the runner's memory is not the job's alone: it is a fork of the
-- job host, whose heap keeps, freed but not cleared, the assignment lines of
-- earlier jobs of every namespace (their -e values), and the key of the
-- runners' lock names; a runner whose job names secrets adds the keyring
-- (the key to every namespace's secrets). Clearing all that reliably is out
-- of reach (the allocator's free lists, Lua's interned strings), so the copy
-- is kept only where the workload cannot read it. The init in place is not
-- dumpable (core/sandbox.c): only a process with CAP_SYS_PTRACE over the
-- runner's user namespace may read its memory (/proc/1/mem, ptrace,
-- process_vm_readv). A root runner's workload switched to another uid than
-- 0 loses its capabilities and, with no_new_privs (every sandboxed level),
-- cannot regain them; a workload in a user namespace of its own (a server
-- that is not root) holds capabilities in that namespace only. A workload
-- that stays root (PRISN_WORKLOAD_USER=0:0) could read it: its init is
-- exec'd, as before. `probe` (for specs): prisn.exec.isolation.probe.
function M.init_in_place_allowed(user, uid, probe)
  if (uid or uv.getuid()) == 0 then return user ~= nil and user.uid ~= 0 end
  return (probe or isolation.probe)().user_ns == true
end

-- Runs a server job (`job` = { id, namespace, log_path }, its `spec`) with
-- recorder `rec`; `db` as for job_env. A failure to start is recorded
-- through `rec`.
local function run_spec(home, job, spec, rec, db)
  local ok, err = pcall(function()
    local env = job_env(home, job, spec, db)
    local user = exec_job.server_workload_user(spec.isolation)
    sandbox.init_in_place(M.init_in_place_allowed(user))
    local path = workspace.make(home, job.id, spec, user)
    local run_ok, run_err = pcall(exec_job.execute, {
      home = home, namespace = job.namespace, script = spec.script, args = spec.args or {},
      runner = spec.runner, env = env, cwd = path or spec.cwd or spec.script:match("^(.*)/[^/]*$"),
      timeout = spec.timeout, grace = spec.grace, no_deps = spec.no_deps,
      restricted = spec.restricted, bundle_dir = spec.bundle and spec.cwd or nil, build_as = user,
      limits = limits.from_spec(spec) or nil,
      isolation = spec.isolation, user = user, disk = spec.disk, workspace_fresh = path and spec.disk and true,
      resolv_conf = isolation.workload_resolv_conf(home), -- prisn's DNS first, when the server has one
      forward_signals = true,
    }, rec)
    if path then workspace.remove(path) end
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
  group.protect_self()
  -- Held for the runner's whole life: a restarted server knows by it that
  -- this job's runner still runs (see prisn.exec.job_lock.runner_alive).
  local lock, held = job_lock.take(home, id)
  if held then
    io.stderr:write("prisn __job-run: job ", id, " has a runner already\n")
    return 1
  end
  local db = store.open(home)
  local job = jobs.get_by_id(db, id)
  local spec_json = job_specs.get(db, id)
  if not job or not spec_json or (job.state ~= "queued" and job.state ~= "running") then
    db:close()
    job_lock.release(home, id, lock)
    io.stderr:write("prisn __job-run: job ", id, " is not waiting to run\n")
    return 1
  end
  local rec = job_record.existing(db, job, log_error_printer(id))
  run_spec(home, job, cjson.decode(spec_json), rec, function() return db end)
  -- The spec (with the -e values) was needed to start the job; not kept after.
  job_specs.drop(db, id)
  rec.close()
  db:close()
  job_lock.release(home, id, lock)
  return 0
end

--- Runs a job the server assigned through the job host: the body of a
-- runner the host forked. `assignment` = { id, namespace, log_path, spec }
-- (the server sends what the runner needs, so it need not read state.db);
-- `report_fd` the pipe to the server, on which the runner tells of the
-- job's start and outcome (prisn.exec.job_host.report), falling back to
-- writing state.db itself when the server is gone. `lock`: the job's lock,
-- taken (prisn.exec.job_lock.take). Must run in an async task. Returns 0.
function M.run_assigned(home, assignment, report_fd, lock)
  group.protect_self()
  local id = assignment.id
  local job = { id = id, namespace = assignment.namespace, log_path = assignment.log_path }
  local rec = report.recorder(home, job, report_fd, log_error_printer(id))
  run_spec(home, job, assignment.spec, rec, rec.db)
  rec.close()
  job_lock.release(home, id, lock)
  return 0
end

return M
