-- prisn.server.jobs: the server's job queue and workers.
--
-- A submitted job is recorded "queued" together with its launch spec
-- (job_specs), so it survives a restart; it starts as soon as a slot is free
-- (at most max_running at once), in submission order. The queue is bounded:
-- past max_queued, submit answers 429 and nothing is recorded, so an
-- accepted job is never dropped. A running job's output goes to its log
-- (prisn logs job/ID [-f]); followers get it live.
--
-- Recovery at start: queued jobs are queued again; running ones whose
-- process is gone are failed with reason "server_restarted". (A job's
-- process runs in its own session and outlives a crashed server, but its
-- output pipes do not, so it is stopped rather than adopted blind.)
local uv = require("luv")
local cjson = require("cjson")
local async = require("prisn.async")
local errors = require("prisn.error")
local jobs = require("prisn.store.jobs")

local M = {}

M.DEFAULT_MAX_QUEUED = 10000

local Queue = {}
Queue.__index = Queue

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
    followers = {}, -- id -> list of functions(event, data)
    max_running = env_number("PRISN_MAX_RUNNING_JOBS", 2 * #uv.cpu_info()),
    max_queued = env_number("PRISN_MAX_QUEUED_JOBS", M.DEFAULT_MAX_QUEUED),
  }, Queue)
  return q
end

function Queue:event(job, action, message, actor)
  if self.server.events then
    self.server.events:record({ namespace = job.namespace, actor = actor or "system", action = action,
      object = "job/" .. job.id, message = message })
  end
end

--- Accepts a job. spec = { script (absolute path on this machine), args,
-- env (KEY -> value), env_keys, secrets (names), runner (name or nil),
-- timeout, grace, no_deps, cwd, memory (bytes), cpu (cores), pids }. Returns the job record; raises 429 when
-- the queue is full, 422 for a script nobody can run.
function Queue:submit(ns, spec, actor)
  if #self.waiting >= self.max_queued then
    errors.raise("too_many_requests", string.format("the job queue is full (%d waiting)", #self.waiting),
      { hint = "retry later", http_status = 429, retry_after = 1 })
  end
  local runners = require("prisn.exec.runners")
  local registry = runners.load({ home = self.server.home })
  local runner, err, _, hint = runners.detect(registry, spec.script, { runner = spec.runner })
  if not runner then errors.raise("invalid", err, { hint = hint, http_status = 422 }) end
  local db = self.server.db
  local job
  require("prisn.store").transaction(db, function()
    local id = require("prisn.ids").new()
    job = jobs.create(db, {
      id = id, namespace = ns, script = spec.script, runner = runner.name, args = spec.args,
      env_keys = spec.env_keys, cwd = spec.cwd, state = "queued", detached = true,
      log_path = require("prisn.logs").job_path(self.server.home, ns, id),
    })
    assert(db:run("INSERT INTO job_specs (job_id, spec) VALUES (?, ?)", id, cjson.encode(spec)))
  end)
  self:event(job, "job.created", "queued " .. spec.script, actor)
  self.waiting[#self.waiting + 1] = job.id
  self.queued_at = self.queued_at or {}
  self.queued_at[job.id] = uv.hrtime()
  self:pump()
  return job
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

-- The secrets named in a spec, as environment variables.
local function secret_env(server, ns, names)
  if not names or #names == 0 then return {} end
  local secrets = require("prisn.store.secrets")
  return secrets.env_for(server.db, server.keyring, ns, names)
end

function Queue:notify(id, event, data)
  for _, fn in ipairs(self.followers[id] or {}) do fn(event, data) end
  if event == "end" then self.followers[id] = nil end
end

function Queue:start(id)
  local server = self.server
  local job = jobs.get_by_id(server.db, id)
  if not job or job.state ~= "queued" then return end
  local row = server.db:first("SELECT spec FROM job_specs WHERE job_id = ?", id)
  local spec = row and cjson.decode(row.spec) or {}
  local entry = { job = job, followers = {} }
  self.running[id] = entry
  self.running_count = self.running_count + 1
  local waited = self.queued_at and self.queued_at[id]
  if waited and server.metrics and server.metrics.scheduling_latency then
    server.metrics.scheduling_latency:observe((uv.hrtime() - waited) / 1e9)
  end
  if self.queued_at then self.queued_at[id] = nil end
  async.spawn(function()
    local started = uv.hrtime()
    local ok, outcome = pcall(function()
      local env = {}
      for k, v in pairs(spec.env or {}) do env[k] = v end
      for k, v in pairs(secret_env(server, job.namespace, spec.secrets)) do env[k] = v end
      local rec = M.recorder(server, job)
      local result = require("prisn.exec.job").execute({
        home = server.home, namespace = job.namespace, script = spec.script, args = spec.args or {},
        runner = spec.runner, env = env, cwd = spec.cwd or (spec.script:match("^(.*)/[^/]*$")),
        timeout = spec.timeout, grace = spec.grace, no_deps = spec.no_deps,
        limits = require("prisn.exec.limits").from_spec(spec) or nil,
        forward_signals = false,
        on_start = function(_, proc)
          entry.proc = proc
          self:event(job, "job.started", nil)
        end,
        reason_override = function() return entry.deleted and "deleted" or nil end,
      }, rec, {
        stdout = function(data) self:notify(id, "stdout", data) end,
        stderr = function(data) self:notify(id, "stderr", data) end,
      })
      rec.close_log()
      return result
    end)
    self.running[id] = nil
    self.running_count = self.running_count - 1
    -- The spec (with the -e values) was needed to start the job; not kept after.
    server.db:run("DELETE FROM job_specs WHERE job_id = ?", id)
    local final = jobs.get_by_id(server.db, id)
    if not ok then
      if final and (final.state == "queued" or final.state == "running") then
        jobs.finish(server.db, id, { state = "failed", reason = "failed_to_start",
          message = errors.is(outcome) and outcome.message or tostring(outcome) })
        final = jobs.get_by_id(server.db, id)
      end
      if not errors.is(outcome) then server.log:error("job %s: %s", id, tostring(outcome)) end
    end
    if final then
      self:event(final, "job.finished", string.format("%s (%s%s)", final.state, final.reason or "?",
        final.exit_code and (", exit " .. final.exit_code) or ""))
      if server.metrics and server.metrics.job_duration then
        server.metrics.job_duration:observe((uv.hrtime() - started) / 1e9)
      end
    end
    self:notify(id, "end", final)
    self:pump()
  end)
end

--- Deletes a job: a waiting one leaves the queue, a running one is stopped
-- (its process group gets SIGTERM, then SIGKILL after the grace); the record
-- stays, failed with reason "deleted", unless `purge` removes it too.
function Queue:delete(job, actor)
  local id = job.id
  for i, waiting in ipairs(self.waiting) do
    if waiting == id then
      table.remove(self.waiting, i)
      jobs.finish(self.server.db, id, { state = "failed", reason = "deleted", message = "deleted while queued" })
    end
  end
  local entry = self.running[id]
  if entry then
    entry.deleted = true
    if entry.proc then
      entry.proc:kill("TERM", true)
      local t = uv.new_timer()
      t:start(5000, 0, function()
        t:close()
        if self.running[id] and entry.proc then entry.proc:kill("KILL", true) end
      end)
    end
  end
  self:event(job, "job.deleted", nil, actor)
end

--- Registers fn(event, data) for a running job's output ("stdout",
-- "stderr") and its end ("end", final job). Returns an unsubscribe function.
function Queue:follow(id, fn)
  self.followers[id] = self.followers[id] or {}
  local list = self.followers[id]
  list[#list + 1] = fn
  return function()
    for i, f in ipairs(list) do
      if f == fn then table.remove(list, i) break end
    end
  end
end

--- Whether process `pid` is still the one a job started at `started_ms`:
-- a session leader (every job is) that started within 2 s of that time. A
-- pid reused since (after a reboot, say) fails the test and is left alone.
function M.still_ours(pid, started_ms)
  local f = io.open("/proc/" .. pid .. "/stat", "r")
  if not f then return false end
  local stat = f:read("a")
  f:close()
  local fields = {}
  for field in (stat:match("%) (.*)$") or ""):gmatch("%S+") do fields[#fields + 1] = field end
  -- After the command: state(1) ppid(2) pgrp(3) session(4) ... starttime(20).
  if tonumber(fields[4]) ~= pid or not fields[20] or not started_ms then return false end
  local boot
  for line in io.lines("/proc/stat") do
    boot = boot or tonumber(line:match("^btime (%d+)"))
  end
  if not boot then return false end
  local started = boot + tonumber(fields[20]) / 100 -- USER_HZ is 100 on Linux
  return math.abs(started - started_ms / 1000) < 2
end

--- Recovers after a (re)start; see the module header.
function Queue:recover()
  local db = self.server.db
  local rows = db:rows("SELECT id, state, pid, started_at FROM jobs WHERE detached = 1 "
    .. "AND state IN ('queued', 'running') "
    .. "ORDER BY id") or {}
  local requeued, failed = 0, 0
  for _, row in ipairs(rows) do
    if row.state == "queued" then
      self.waiting[#self.waiting + 1] = row.id
      requeued = requeued + 1
    else
      if row.pid and M.still_ours(row.pid, row.started_at) then uv.kill(-row.pid, "sigkill") end
      local final = jobs.finish(db, row.id, { state = "failed", reason = "server_restarted",
        message = "the server stopped while the job ran" })
      db:run("DELETE FROM job_specs WHERE job_id = ?", row.id)
      self:event(final, "job.finished", "failed (server_restarted)")
      failed = failed + 1
    end
  end
  if requeued + failed > 0 then
    self.server.log:info("recovery: %d queued job(s) queued again, %d interrupted job(s) failed", requeued, failed)
  end
  self:pump()
end

--- Stops every running job (SIGTERM to each group, SIGKILL after `grace`
-- seconds) and calls done() when none is left. Used by a graceful stop.
function Queue:stop_all(grace, done)
  local left = 0
  for _, entry in pairs(self.running) do
    if entry.proc then
      left = left + 1
      entry.deleted = false
      entry.proc:kill("TERM", true)
    end
  end
  if left == 0 then return done() end
  local t = uv.new_timer()
  local elapsed = 0
  t:start(50, 50, function()
    elapsed = elapsed + 50
    if self.running_count == 0 then
      t:stop(); t:close()
      done()
    elseif elapsed >= grace * 1000 then
      for _, entry in pairs(self.running) do if entry.proc then entry.proc:kill("KILL", true) end end
    end
  end)
end

--- A recorder (see prisn.exec.job) for a job the server created at submit.
function M.recorder(server, job)
  local logs = require("prisn.logs")
  local rec = { db = server.db, job = job, log_path = job.log_path }
  function rec.create() return job end
  function rec.update(fields)
    for _, column in ipairs({ "deps_source", "env_key" }) do
      if fields[column] ~= nil then
        server.db:run("UPDATE jobs SET " .. column .. " = ? WHERE id = ?", fields[column], job.id)
      end
    end
  end
  function rec.fail_to_start(message)
    jobs.finish(server.db, job.id, { state = "failed", reason = "failed_to_start", message = message })
  end
  function rec.open_log()
    local w, err = logs.writer(rec.log_path)
    if not w then server.log:warn("job %s: cannot open its log: %s", job.id, tostring(err)) end
    rec.log = w
    return w
  end
  function rec.close_log()
    if rec.log then rec.log:close() end
  end
  return rec
end

return M
