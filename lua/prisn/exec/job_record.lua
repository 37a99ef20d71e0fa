-- prisn.exec.job_record: how a job's life is written down, in state.db and
-- in the job's log. prisn.exec.job.prepare and .execute report what happens
-- to a recorder; this module makes the recorders that write to state.db
-- (prisn.exec.job_host.report makes the one that tells the server instead)
-- and reads back what a runner left in a job's log.
--
-- A recorder is a table of functions:
--   create(runner)        the job's record, made once the runner is known
--   update(fields)        deps_source, env_key: facts prepare learns
--   flush()               CLI recorders only: writes a record still waiting
--                         for the start (before a slow environment build)
--   start(pid)            the workload started
--   finish(result)        its outcome ({ state, reason, exit_code, … })
--   fail_to_start(msg)    it never started
--   open_log()            the job's log writer (nil when it cannot be kept)
--   open()                CLI recorders only: opens state.db now (else the
--                         first write does; prisn.exec.job opens it while
--                         the workload is set up)
--   begin()               server jobs only: the start record, see M.begin_log
--   close()
-- with fields job (the record), log_path, log, and finished once it ended.
local uv = require("luv")
local cjson = require("cjson")
local errors = require("prisn.error")
local clock = require("prisn.clock")
local ids = require("prisn.ids")
local logs = require("prisn.logs")
local store = require("prisn.store")
local jobs = require("prisn.store.jobs")
local events = require("prisn.store.events")

local M = {}

-- Who runs a job from the CLI, for its events: "user:<login>". Looked up
-- when the first event is written (after the workload started, see rec.create).
local function local_actor()
  local pw = uv.os_get_passwd()
  return "user:" .. (pw and pw.username or tostring(uv.getuid and uv.getuid() or "?"))
end

--- The message of a job.finished event: "failed (exited, exit 1)", as the
-- server's job queue writes it.
function M.finished_message(job)
  return string.format("%s (%s%s)", job.state, job.reason or "?",
    job.exit_code and (", exit " .. job.exit_code) or "")
end

--- A recorder for a job run from the CLI: opens state.db (in opts.home) when
-- it is first needed and records a new job in opts.namespace once the runner
-- is known (opts:
-- script, args, env_keys, cwd as for prisn.exec.job.prepare). Each step is
-- recorded with its event (job.created, job.started, job.finished, as the
-- server's jobs have), in one transaction: `prisn events` shows local runs.
-- Events name the script, never arguments or values (they may be secret).
function M.new(opts)
  local rec = {}
  local db
  -- Raises the store's error (a database from a newer prisn, no space...).
  function rec.open()
    if not db then
      db = store.open(opts.home)
      rec.db = db
    end
    return db
  end
  local actor
  local function event(action, message, job)
    job = job or rec.job
    actor = actor or local_actor()
    events.record(db, { namespace = job.namespace, actor = actor, action = action, object = "job/" .. job.id,
      message = message })
  end
  -- The job's row and its job.created event, when they wait to be written
  -- with the start (see rec.create).
  local pending
  local function write_pending()
    if not pending then return end
    local fields = pending
    pending = nil
    rec.job = jobs.create(db, fields)
    event("job.created", "run locally: " .. rec.job.script)
  end
  -- Runs fn in a transaction that first writes a pending create.
  local function with_pending(fn)
    store.transaction(rec.open(), function()
      write_pending()
      return fn()
    end)
  end
  function rec.create(runner)
    local id = ids.new()
    rec.log_path = logs.job_path(opts.home, opts.namespace, id)
    pending = {
      id = id,
      script = opts.script or "(inline)",
      runner = runner.name,
      args = opts.args,
      env_keys = opts.env_keys,
      cwd = opts.cwd,
      namespace = opts.namespace,
      log_path = rec.log_path,
      created_at = clock.now_ms(),
    }
    rec.job = { id = id, namespace = opts.namespace, script = pending.script, runner = runner.name, state = "pending" }
    -- A job that starts within milliseconds (no dependencies, or their
    -- environment already built) has its creation, and what prepare learnt,
    -- written with its start: one commit instead of up to four
    -- (tests/bench/run-report.md). A slow start (an environment to build,
    -- or another prisn's build to wait for) calls rec.flush first, so the
    -- job shows in `prisn get jobs` while it waits.
    return rec.job
  end
  function rec.flush()
    if pending then with_pending(function() end) end
  end
  -- Only the columns prepare learns along the way; a record not written
  -- yet takes them with its creation.
  function rec.update(fields)
    if pending then
      pending.deps_source = type(fields.deps_source) == "string" and fields.deps_source or pending.deps_source
      pending.env_key = type(fields.env_key) == "string" and fields.env_key or pending.env_key
    else
      jobs.record_prepared(db, rec.job.id, fields)
    end
  end
  function rec.start(pid)
    with_pending(function()
      jobs.start(db, rec.job.id, { pid = pid })
      event("job.started", "pid " .. tostring(math.tointeger(pid) or pid))
    end)
  end
  function rec.finish(result)
    with_pending(function()
      event("job.finished", M.finished_message(jobs.finish(db, rec.job.id, result)))
    end)
  end
  function rec.fail_to_start(message)
    with_pending(function()
      event("job.finished", M.finished_message(jobs.finish(db, rec.job.id,
        { state = "failed", reason = "failed_to_start", message = message })))
    end)
  end
  function rec.open_log()
    local w, err = logs.writer(rec.log_path)
    if not w then io.stderr:write("prisn: cannot keep the job's output: ", tostring(err), "\n") end
    rec.log = w
    return w
  end
  function rec.close()
    -- A create nothing followed (a bug between prepare and the start) is
    -- still written, as it would have been before the start.
    if pending then pcall(with_pending, function() end) end
    if rec.log then rec.log:close() end
    if db then db:close() end
  end
  return rec
end

--- A recorder for a job that is already recorded, as the server's jobs are
-- when they are submitted: writes to state.db (`db`). on_log_error(err)
-- hears why the job's log cannot be kept.
function M.existing(db, job, on_log_error)
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
  function rec.begin() return M.begin_log(rec, on_log_error) end
  function rec.open_log() return M.open_log(rec, on_log_error) end
  function rec.close()
    if rec.log then rec.log:close() end
  end
  return rec
end

--- rec.open_log of a server job's recorder: opens rec.log_path as rec.log
-- (once); when it cannot, on_log_error(err) hears why and the job runs on
-- unlogged.
function M.open_log(rec, on_log_error)
  if rec.log then return rec.log end
  local w, err = logs.writer(rec.log_path)
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
function M.begin_log(rec, on_log_error)
  if logs.started(rec.log_path) then
    errors.raise("already_started", "job " .. rec.job.id .. " was started before (its log exists)",
      { hint = "a job runs at most once; submit it again to run it again" })
  end
  local w = M.open_log(rec, on_log_error)
  if w then
    w:write_start(string.format('{"runner_pid":%d,"at":%d}', uv.os_getpid(), clock.now_ms()))
  end
end

local function decode_object(text)
  local ok, t = pcall(cjson.decode, text or "")
  return ok and type(t) == "table" and t or nil
end

--- The outcome a job's runner wrote at the end of the log at `log_path`
-- (see prisn.exec.job_host.report), decoded; nil when there is none.
function M.logged_outcome(log_path)
  return log_path and decode_object(logs.outcome(log_path)) or nil
end

--- The start a job's runner wrote in the log at `log_path`: { pid,
-- started_at } once the workload started (only { runner_pid, at } when it
-- was about to); nil when there is none.
function M.logged_start(log_path)
  return log_path and decode_object(logs.start_record(log_path)) or nil
end

return M
