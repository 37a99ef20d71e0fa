-- prisn.server.jobs: the server's job queue.
--
-- A submitted job is recorded "queued" together with its launch spec
-- (job_specs), so it survives a restart; it starts as soon as a slot is free
-- (at most max_running at once), in submission order. The queue is bounded:
-- past max_queued, submit answers 429 and nothing is recorded, so an
-- accepted job is never dropped.
--
-- Each job runs in a runner process of its own, in its own session, forked
-- by the job host (prisn.exec.job_host; or exec'd as `prisn __job-run ID`
-- when there is none): it prepares and runs the job and writes its log. A
-- forked runner tells the server of the job's start and outcome on a pipe
-- (prisn.exec.job_host.report), and the server records what a chunk of reports
-- says in one transaction; an exec'd runner, or one whose server is gone,
-- records in state.db itself. So a job outlives a crashed server and is still
-- recorded exactly once. The server watches its runners: a runner that ends
-- without an outcome recorded or reported failed its job ("killed").
--
-- Recovery at start: a job whose runner is still alive (it holds the job's
-- lock) is re-adopted (watched until it ends); one whose runner ended after
-- writing the outcome to the job's log, but before the old server recorded
-- it, gets that outcome; queued jobs that never started are queued again;
-- every other job started (it is running, or its runner made its log, which
-- happens before the workload starts) and is failed with reason
-- "server_restarted": a job runs at most once. The old server's job host,
-- and every runner it forked that holds no job yet, are stopped first, so
-- none can still be about to start one.
local uv = require("luv")
local cjson = require("cjson")
local errors = require("prisn.error")
local procfs = require("prisn.procfs")
local job_specs = require("prisn.store.job_specs")
local jobs = require("prisn.store.jobs")
local job_lock = require("prisn.exec.job_lock")
local job_record = require("prisn.exec.job_record")
local logs = require("prisn.logs")
local client = require("prisn.exec.job_host.client")
local runners = require("prisn.exec.runners")
local ids = require("prisn.ids")
local fs = require("prisn.fs")
local process = require("prisn.exec.process")

local check = require("prisn.store").check
local read_file = require("prisn.fs").read_file

local M = {}

M.DEFAULT_MAX_QUEUED = 10000

local Queue = {}
Queue.__index = Queue

-- The environment a runner starts with: the server's own (PATH, HOME, the
-- package managers' settings), with PRISN_HOME pinned.
local runner_env = require("prisn.home").child_env

-- Signals a running job's runner, started here or adopted.
local function signal_runner(entry, signal)
  if entry.runner then
    entry.runner:kill(signal)
  elseif entry.runner_pid then
    uv.kill(entry.runner_pid, "sig" .. signal:lower())
  end
end

local function env_number(name, default)
  local v = tonumber(os.getenv(name) or "")
  return v and math.floor(v) or default
end

--- A queue for `server` (which has db, home, log, events, metrics).
function M.new(server)
  local q = setmetatable({
    server = server,
    waiting = {},   -- job ids, in order
    running = {},   -- id -> { proc, job, followers = {fn...}, deleted }
    running_count = 0,
    specs = {},     -- id -> the spec's JSON, for jobs submitted since start
    followers = {}, -- id -> list of functions(event, data)
    on_finished = {}, -- functions(job) called after a job has ended and is recorded
    max_running = env_number("PRISN_MAX_RUNNING_JOBS", 2 * #uv.cpu_info()),
    max_queued = env_number("PRISN_MAX_QUEUED_JOBS", M.DEFAULT_MAX_QUEUED),
  }, Queue)
  -- Runners forked by a warm job host (PRISN_JOB_HOST=0: exec each one).
  if os.getenv("PRISN_JOB_HOST") ~= "0" then
    q.host = client.new(server, runner_env(server.home),
      function(reports) q:reports(reports) end)
  end
  return q
end

-- `time` (ms): when it happened, for an event recorded late; default now.
function Queue:event(job, action, message, actor, time)
  if self.server.events then
    self.server.events:record({ namespace = job.namespace, actor = actor or "system", action = action,
      object = "job/" .. job.id, message = message, time = time })
  end
end

--- Accepts a job. spec = { script (absolute path on this machine), args,
-- env (KEY -> value), env_keys, secrets (names), runner (name or nil),
-- timeout, grace, no_deps, cwd, memory (bytes), cpu (cores), pids, cron (the
-- name of the cron job this is a run of, kept on the job record) }. Returns
-- the job record; raises 429 when the queue is full, 422 for a script nobody
-- can run.
function Queue:submit(ns, spec, actor)
  if #self.waiting >= self.max_queued then
    errors.raise("too_many_requests", string.format("the job queue is full (%d waiting)", #self.waiting),
      { hint = "retry later", http_status = 429, retry_after = 1 })
  end
  local runner, err, _, hint = runners.detect(self:runners(), spec.script, { runner = spec.runner })
  if not runner then errors.raise("invalid", err, { hint = hint, http_status = 422 }) end
  local db = self.server.db
  local job, spec_json
  -- One transaction: the job, its spec and the event.
  self.server.events:transaction(function()
    local id = ids.new()
    job = jobs.create(db, {
      id = id, namespace = ns, script = spec.script, runner = runner.name, args = spec.args,
      env_keys = spec.env_keys, cwd = spec.cwd, state = "queued", detached = true, cron = spec.cron,
      log_path = logs.job_path(self.server.home, ns, id),
    })
    spec_json = cjson.encode(spec)
    check(job_specs.put(db, id, spec_json))
    self:event(job, "job.created", "queued " .. spec.script, actor)
  end)
  self.specs[job.id] = spec_json
  self.waiting[#self.waiting + 1] = job.id
  self.queued_at = self.queued_at or {}
  self.queued_at[job.id] = uv.hrtime()
  self:pump()
  return job
end

--- The runner registry, loaded again only when the operator's runner files
-- change (their names or modification times), not on every submission.
function Queue:runners()
  local dir = self.server.home .. "/runners"
  local stamp = {}
  for _, entry in ipairs(fs.list_dir(dir)) do
    local st = uv.fs_stat(dir .. "/" .. entry.name)
    stamp[#stamp + 1] = entry.name .. "@" .. (st and (st.mtime.sec .. "." .. st.mtime.nsec) or "?")
  end
  stamp = table.concat(stamp, ",")
  if not self.registry or self.registry_stamp ~= stamp then
    self.registry = runners.load({ home = self.server.home })
    self.registry_stamp = stamp
  end
  return self.registry
end

--- Starts waiting jobs while slots are free.
function Queue:pump()
  while self.running_count < self.max_running and #self.waiting > 0 and not self.server.stopping do
    local id = table.remove(self.waiting, 1)
    self:start(id)
  end
  if self.server.metrics and self.server.metrics.queue_depth then
    self.server.metrics.queue_depth:set(#self.waiting)
  end
end

-- Records the end of job `id` (`final`: the job as recorded, finished) in
-- the transaction open: the spec goes, a deleted job's reason says so, and
-- the event. Returns the job as recorded.
function Queue:record_end(id, entry, final)
  local db = self.server.db
  check(job_specs.drop(db, id))
  if final and entry and entry.deleted and final.reason ~= "deleted" then
    check(jobs.mark_deleted(db, id))
    final = jobs.get_by_id(db, id)
  end
  if final then
    self:event(final, "job.finished", string.format("%s (%s%s)", final.state, final.reason or "?",
      final.exit_code and (", exit " .. final.exit_code) or ""), nil, math.tointeger(final.finished_at))
  end
  return final
end

-- Frees job `id`'s slot once its end is recorded: metrics, the listeners
-- (the cron scheduler's history limits), the next job.
function Queue:release(id, entry, final)
  local server = self.server
  self.running[id] = nil
  self.running_count = self.running_count - 1
  self.specs[id] = nil
  if final then
    if entry.started and server.metrics and server.metrics.job_duration then
      server.metrics.job_duration:observe((uv.hrtime() - entry.started) / 1e9)
    end
    -- An error in one listener is logged and the queue goes on.
    for _, fn in ipairs(self.on_finished) do
      errors.call("on_finished", fn, function(err) server.log:error("job %s: on_finished: %s", id, err) end, final)
    end
  end
  self:pump()
end

--- Records `outcome` (a runner's: state, reason, exit_code, signal,
-- message, finished_at, and pid, started_at when it started) for job `id`
-- unless the job has ended already. Returns the job as recorded.
function M.apply_outcome(db, id, outcome)
  return jobs.settle(db, id, outcome)
end

-- The outcome a runner wrote at the end of job `job`'s log, decoded, or nil.
local function logged_outcome(job)
  return job and job_record.logged_outcome(job.log_path)
end

-- Called when the runner of job `id` has ended (for whatever reason). A
-- forked runner's "done" report has usually ended the job already. The end
-- is recorded through the server's writer: when state.db cannot take it,
-- it waits (in order) and the job keeps its slot until it is recorded.
function Queue:finished(id)
  local entry = self.running[id]
  if not entry then return end
  entry.exited = true
  if entry.ended then return end
  entry.ended = true
  local server = self.server
  local adopted_by
  server.state_writer:write("the end of job " .. id, function()
    adopted_by = nil
    local final = jobs.get_by_id(server.db, id)
    if final and (final.state == "queued" or final.state == "running") then
      -- Told on the pipe but not read yet, or not told: the log has it.
      local outcome = logged_outcome(final)
      local holder_alive, holder
      if not outcome then holder_alive, holder = job_lock.runner_alive(server.home, id) end
      if outcome then
        final = M.apply_outcome(server.db, id, outcome)
      elseif holder_alive then
        -- Another runner holds the job (one of a server that died, which
        -- this runner found there): it runs the job; watch it instead.
        adopted_by = holder or false
        final = nil
      else
        -- The runner died before it could record anything (killed, crashed).
        final = jobs.finish(server.db, id, { state = "failed", reason = "killed",
          message = "the job's runner process ended without recording an outcome" })
      end
    end
    if adopted_by ~= nil then return nil end
    return self:record_end(id, entry, final)
  end, {
    after = function(final)
      if adopted_by == nil then return self:release(id, entry, final) end
      self.running[id] = nil
      self.running_count = self.running_count - 1
      server.log:warn("job %s: its runner found another one running it; watching that one", id)
      local adopted = self:adopt(id, adopted_by or nil)
      if entry.deleted then
        adopted.deleted = true
        signal_runner(adopted, "TERM")
      end
    end,
    on_error = function() self:release(id, entry, nil) end,
  })
end

-- Records `reports` (see Queue:reports) in the transaction open; returns
-- the jobs that ended, as { id, entry, final }.
function Queue:apply_reports(reports)
  local db = self.server.db
  local ended = {}
  for _, r in ipairs(reports) do
    local entry = self.running[r.id]
    local f = r.fields
    if r.kind == "started" then
      local pid = math.tointeger(f.pid)
      local job = jobs.start(db, r.id, { pid = pid, started_at = math.tointeger(f.started_at) }, entry and entry.job)
      if entry then entry.job = job end
      self:event(job, "job.started", "pid " .. tostring(pid), nil, math.tointeger(f.started_at))
    elseif r.kind == "update" then
      check(jobs.record_prepared(db, r.id, f))
    elseif r.kind == "done" then
      local final = self:record_end(r.id, entry, M.apply_outcome(db, r.id, f))
      ended[#ended + 1] = { id = r.id, entry = entry, final = final }
    end
  end
  return ended
end

-- Records `reports` through the server's writer (in order, retried while
-- state.db cannot take them), then frees the slots of the jobs that ended.
-- A batch the store refuses for good is recorded one report at a time, so
-- one bad report does not lose the others; a report refused alone is
-- logged and skipped, and its job is ended by its runner's exit.
function Queue:record_reports(reports, alone)
  self.server.state_writer:write(alone and ("job " .. reports[1].id .. "'s " .. reports[1].kind .. " report")
    or "runners' reports", function() return self:apply_reports(reports) end, {
    after = function(ended)
      for _, e in ipairs(ended) do
        if e.entry then self:release(e.id, e.entry, e.final) end
      end
    end,
    on_error = function()
      if not alone then
        for _, r in ipairs(reports) do self:record_reports({ r }, true) end
        return
      end
      local r, entry = reports[1], self.running[reports[1].id]
      if r.kind == "done" and entry then
        -- Not recorded: the runner's exit (or its log) ends the job.
        entry.ended = nil
        if entry.exited then self:finished(r.id) end
      end
    end,
  })
end

--- Takes what runners reported (see prisn.exec.job_host.report): `reports`, a
-- list of { kind, id, fields }, recorded in one transaction.
function Queue:reports(reports)
  local taken = {}
  for _, r in ipairs(reports) do
    local entry = self.running[r.id]
    -- Skipped when the job ended already (its runner's exit came first).
    if entry and not entry.ended then
      taken[#taken + 1] = r
      -- Its end is being recorded, now or once state.db takes it: the
      -- runner's exit must not record another.
      if r.kind == "done" then entry.ended = true end
    end
  end
  if #taken > 0 then self:record_reports(taken) end
end

-- Marks job `id` started with runner `pid` and watches the runner: `proc`
-- when it is our child, else (forked by the job host) through its pid.
function Queue:runner_started(id, entry, pid, proc)
  local server = self.server
  -- An exec'd runner is known by its pid (and command line) after a
  -- restart; a forked one by the lock its host took for it.
  if proc then
    server.state_writer:write("job " .. id .. "'s runner pid", function()
      check(job_specs.set_runner_pid(server.db, id, pid))
    end)
  end
  -- Submitted -> its runner process started (the script starts once the
  -- runner has prepared it: add the runner's start-up for that).
  local waited = self.queued_at and self.queued_at[id]
  if waited and server.metrics and server.metrics.scheduling_latency then
    server.metrics.scheduling_latency:observe((uv.hrtime() - waited) / 1e9)
  end
  if self.queued_at then self.queued_at[id] = nil end
  -- A forked runner's "started" report is the job's start; an exec'd
  -- runner records that itself.
  if proc then self:event(entry.job, "job.started", "runner pid " .. pid) end
  if proc then
    entry.runner = proc
    proc:on_exit(function() self:finished(id) end)
  else
    entry.runner_pid = pid
    process.watch_pid(pid, function() self:finished(id) end)
  end
  if entry.deleted then signal_runner(entry, "TERM") end
end

-- Execs `prisn __job-run ID`: the way without the job host.
function Queue:exec_runner(id, entry)
  local server = self.server
  local exe = uv.exepath()
  local runner, err = process.start({
    file = exe, argv = { exe, "__job-run", id }, env = runner_env(server.home), cwd = "/",
    stdin = "null", stdout = "null", stderr = { file = server.home .. "/server.log", mode = "a" },
    session = true,
  })
  if not runner then
    server.log:error("job %s: cannot start its runner: %s", id, tostring(err))
    entry.ended, entry.exited = true, true
    server.state_writer:write("job " .. id .. "'s failure to start", function()
      return self:record_end(id, entry, jobs.finish(server.db, id, { state = "failed", reason = "failed_to_start",
        message = "cannot start the job runner: " .. tostring(err) }))
    end, {
      after = function(final) self:release(id, entry, final) end,
      on_error = function() self:release(id, entry, nil) end,
    })
    return
  end
  self:runner_started(id, entry, runner:pid(), runner)
end

-- What a forked runner needs to run job `job` (prisn.exec.job_runner.run_assigned),
-- as JSON; nil when its spec is gone.
function Queue:assignment(job)
  local spec = self.specs[job.id]
  if not spec then
    spec = job_specs.get(self.server.db, job.id)
  end
  if not spec then return nil end
  return string.format('{"namespace":%s,"log_path":%s,"spec":%s}', cjson.encode(job.namespace),
    cjson.encode(job.log_path), spec)
end

function Queue:start(id)
  local server = self.server
  local job = jobs.get_by_id(server.db, id)
  if not job or job.state ~= "queued" then return end
  local entry = { job = job, started = uv.hrtime() }
  self.running[id] = entry
  self.running_count = self.running_count + 1
  local assignment = self.host and self:assignment(job)
  if not assignment then return self:exec_runner(id, entry) end
  self.host:run(id, assignment, function(pid, err)
    if pid then return self:runner_started(id, entry, pid, nil) end
    server.log:warn("job %s: the job host could not fork a runner (%s); starting one directly", id, tostring(err))
    self:exec_runner(id, entry)
  end)
end


--- Deletes a job: a waiting one leaves the queue, a running one is stopped
-- (its runner gets SIGTERM and stops the job's group: SIGTERM, then SIGKILL
-- after the grace); the record stays, failed with reason "deleted".
function Queue:delete(job, actor)
  local id = job.id
  for i, waiting in ipairs(self.waiting) do
    if waiting == id then
      -- Recorded first (both or neither), then out of the queue: a delete
      -- that cannot be written (507) leaves the job queued, as recorded.
      self.server.events:transaction(function()
        jobs.finish(self.server.db, id, { state = "failed", reason = "deleted", message = "deleted while queued" })
        check(job_specs.drop(self.server.db, id))
      end)
      table.remove(self.waiting, i)
      break
    end
  end
  local entry = self.running[id]
  if entry then
    entry.deleted = true
    signal_runner(entry, "TERM")
  end
  self:event(job, "job.deleted", nil, actor)
end


--- Recovers after a (re)start; see the module header.
function Queue:recover()
  local db = self.server.db
  client.stop_previous(self.server.home)
  local rows = jobs.unfinished_server_jobs(db)
  local requeued, adopted, failed, logged = 0, 0, 0, 0
  local runner_alive = job_lock.runner_alive
  for _, row in ipairs(rows) do
    local runner_pid = row.runner_pid and math.tointeger(row.runner_pid)
    -- A runner holds its job's lock for its whole life (see
    -- prisn.exec.job_lock.take); an exec'd one is also known by its pid.
    local locked, locked_pid = runner_alive(self.server.home, row.id)
    local outcome = not locked and logged_outcome(row)
    if locked then
      self:adopt(row.id, locked_pid)
      adopted = adopted + 1
    elseif runner_pid and procfs.alive(runner_pid) and M.is_runner(runner_pid, row.id) then
      self:adopt(row.id, runner_pid)
      adopted = adopted + 1
    elseif outcome then
      -- Its runner ended and told the old server, which died before it
      -- recorded the outcome.
      local final = self.server.events:transaction(function()
        return self:record_end(row.id, nil, M.apply_outcome(db, row.id, outcome))
      end)
      for _, fn in ipairs(self.on_finished) do pcall(fn, final) end
      logged = logged + 1
    elseif row.state == "queued" and not runner_pid and not (row.log_path and logs.started(row.log_path)) then
      -- Never started: no runner holds it (the old job host's are gone, see
      -- stop_previous) and none made its log, which a runner does before the
      -- workload starts (prisn.exec.job_record.begin_log).
      self.waiting[#self.waiting + 1] = row.id
      requeued = requeued + 1
    else
      -- Started (running, or queued with a log: its start report was lost
      -- with the old server) and its runner is gone: at most once, so it
      -- is not run again. What is left of its workload is stopped.
      local pid, started_at = row.pid, row.started_at
      if row.state == "queued" then
        local start = job_record.logged_start(row.log_path) or {}
        pid, started_at = math.tointeger(start.pid), math.tointeger(start.started_at)
        if pid then jobs.start(db, row.id, { pid = pid, started_at = started_at }) end
      end
      if pid and procfs.still_ours(pid, started_at) then uv.kill(-pid, "sigkill") end
      local final = jobs.finish(db, row.id, { state = "failed", reason = "server_restarted",
        message = "the server stopped while the job ran, and its runner is gone" })
      job_specs.drop(db, row.id)
      self:event(final, "job.finished", "failed (server_restarted)")
      failed = failed + 1
    end
  end
  if requeued + adopted + failed + logged > 0 then
    self.server.log:info("recovery: %d queued job(s) queued again, %d running job(s) re-adopted, "
      .. "%d interrupted job(s) failed, %d outcome(s) recorded from job logs", requeued, adopted, failed, logged)
  end
  self:pump()
end

--- Whether `pid` is the runner of job `id` (its command line says so).
function M.is_runner(pid, id)
  local cmdline = read_file("/proc/" .. pid .. "/cmdline")
  if not cmdline then return false end
  return cmdline:find("\0__job-run\0" .. id, 1, true) ~= nil
end

-- Watches a runner the server did not start (it survived a restart): it is
-- not our child, so its end is noticed by polling.
-- Without its pid (a lock that cannot name its holder), the lock is polled.
-- Returns the queue's entry for the job.
function Queue:adopt(id, runner_pid)
  local entry = { runner_pid = runner_pid, adopted = true }
  self.running[id] = entry
  self.running_count = self.running_count + 1
  if runner_pid then
    process.watch_pid(runner_pid, function() self:finished(id) end)
    return entry
  end
  local timer = uv.new_timer()
  timer:start(200, 200, function()
    if job_lock.runner_alive(self.server.home, id) then return end
    timer:stop()
    timer:close()
    self:finished(id)
  end)
  return entry
end

--- Stops every running job (SIGTERM to each runner, which stops its job's
-- group with the job's grace; SIGKILL to what is left after `grace`
-- seconds) and calls done() when none is left. Used by a graceful stop.
function Queue:stop_all(grace, done)
  if self.host then self.host:close() end
  -- A job whose runner has ended is stopped, even while its end waits for
  -- state.db (a full disk): the server's last drain tries it once more, and
  -- its log keeps the outcome for the next start.
  local function runners_left()
    local n = 0
    for _, entry in pairs(self.running) do
      if not entry.exited then n = n + 1 end
    end
    return n
  end
  if runners_left() == 0 then return done() end
  for _, entry in pairs(self.running) do signal_runner(entry, "TERM") end
  local t = uv.new_timer()
  local elapsed, killed = 0, false
  t:start(50, 50, function()
    elapsed = elapsed + 50
    if runners_left() == 0 then
      t:stop(); t:close()
      done()
    elseif elapsed >= grace * 1000 and not killed then
      killed = true
      for _, entry in pairs(self.running) do signal_runner(entry, "KILL") end
    end
  end)
end

return M
