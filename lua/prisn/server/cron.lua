-- prisn.server.cron: the server's cron clock.
--
-- Each cron job that is not suspended has a next fire time (next_fire, UTC
-- ms, in state.db). ONE timer is armed for the earliest of them; it is not a
-- poll: when nothing is due for an hour the server sleeps for an hour (in
-- steps of at most MAX_SLEEP_MS, so a wall clock set meanwhile is noticed).
-- When it fires, every cron job that is due runs:
--
--   concurrency  allow: submit; forbid (the default): when a run of the cron
--                job is still queued or running, skip this one (event
--                "cron.skipped"); replace: delete the running one, submit
--   submit       through the job queue (server.queue:submit) with the cron
--                job's spec and `cron = name` on the job record
--   lateness     job created - due, into prisn_cron_lateness_seconds
--   next         the schedule's next time after the due one (or after now,
--                when the server was busy for longer than a period), and the
--                timer is armed again for the earliest cron job
--
-- Runs missed while the server was down (found by `start`): skipped by
-- default (next_fire moves to the next future time, event "cron.missed" with
-- the count), or with catch_up run ONCE now (event "cron.caught_up").
--
-- History: when a run ends (server.queue.on_finished), only the last
-- keep_succeeded succeeded and keep_failed failed runs of its cron job are
-- kept; older job records and their logs are deleted.
--
-- The clock, the timer and the schedule compiler are dependencies with
-- defaults (luv, prisn.cron), so specs drive it with fakes.
local uv = require("luv")
local admission = require("prisn.server.admission")
local clock = require("prisn.clock")
local cronjobs = require("prisn.store.cronjobs")
local errors = require("prisn.error")
local jobs = require("prisn.store.jobs")
local schedules = require("prisn.cron")

local M = {}

-- The longest the timer sleeps before looking at the clock again.
M.MAX_SLEEP_MS = 5 * 60 * 1000
-- A timer may wake a little before the wall clock's due time (libuv's loop
-- time is cached and monotonic): that close counts as due.
M.EARLY_MS = 2
-- Missed runs are counted up to this many.
M.MAX_MISSED_COUNT = 100000

local Scheduler = {}
Scheduler.__index = Scheduler

local function default_compile(expression, timezone)
  return schedules.compile(expression, { tz = timezone })
end

--- A scheduler for `server` (db, queue, events, log, metrics). `deps`:
-- now_ms () -> ms, new_timer () -> a luv-like timer (start(ms, repeat, fn),
-- stop(), close()), compile (expression, timezone) -> schedule | nil, message.
-- Registers its history limits on server.queue.on_finished.
function M.new(server, deps)
  deps = deps or {}
  local s = setmetatable({
    server = server,
    db = server.db,
    now_ms = deps.now_ms or clock.now_ms,
    new_timer = deps.new_timer or uv.new_timer,
    update_time = deps.update_time or (not deps.new_timer and uv.update_time) or nil,
    compile = deps.compile or default_compile,
    schedules = {},
    submitted = {}, -- "ns/name" -> { due, job }: submitted, next fire time not yet recorded
  }, Scheduler)
  if server.queue then
    server.queue.on_finished = server.queue.on_finished or {}
    table.insert(server.queue.on_finished, function(job) s:job_finished(job) end)
  end
  return s
end

function Scheduler:event(cron, action, message, actor)
  if self.server.events then
    self.server.events:record({ namespace = cron.namespace, actor = actor or "system", action = action,
      object = "cron/" .. cron.name, message = message })
  end
end

--- The compiled schedule of `cron` (cached while its expression and zone
-- stay), or nil and a message.
function Scheduler:schedule(cron)
  local key = cron.namespace .. "/" .. cron.name
  local cached = self.schedules[key]
  if cached and cached.expression == cron.expression and cached.timezone == cron.timezone then
    return cached.schedule
  end
  local schedule, err = self.compile(cron.expression, cron.timezone)
  if not schedule then return nil, err end
  self.schedules[key] = { expression = cron.expression, timezone = cron.timezone, schedule = schedule }
  return schedule
end

--- The first fire time of `cron` strictly after `after_ms` (ms), or nil
-- when its schedule never fires again (or does not compile).
function Scheduler:next_after(cron, after_ms)
  local schedule = self:schedule(cron)
  if not schedule then return nil end
  local t = schedule:next(after_ms // 1000)
  return t and math.tointeger(t * 1000) or nil
end

--- The next `n` fire times of `cron` after `from_ms` (default now), in ms.
function Scheduler:next_fires(cron, n, from_ms)
  local list, t = {}, from_ms or self.now_ms()
  for _ = 1, n do
    t = self:next_after(cron, t)
    if not t then break end
    list[#list + 1] = t
  end
  return list
end

-- Each run is admitted (prisn.server.admission) as a request of whoever
-- asks for it: the token that triggers it, or for a firing the token that
-- created the cron job (a snapshot kept in its spec; a cron job stored
-- before admission existed has none and is admitted as an edit token of its
-- namespace would be). The server's minimum isolation, PRISN_WORKLOAD_USER
-- or the operator's policy may have changed since. Returns the denial's
-- message, or nil when the run may go.
function Scheduler:denied(cron, spec, opts)
  local caller = opts.caller or cron.spec.admitted_for
    or { role = "edit", namespaces = { cron.namespace }, cluster_admin = false }
  local floor = not caller.cluster_admin and (self.server.min_isolation or admission.DEFAULT_MIN_ISOLATION) or nil
  local resolved, rerr = pcall(admission.resolve, spec, floor)
  if not resolved then return errors.is(rerr) and rerr.message or tostring(rerr) end
  local ok, err = admission.check(self.server, caller, opts.caller and "cronjob.trigger" or "cronjob.fire",
    cron.namespace, spec, { object = "cron/" .. cron.name })
  if ok then
    spec.restricted = not caller.cluster_admin and cron.namespace or nil
    return nil
  end
  self:event(cron, "cron.failed", "run not admitted: " .. err.message, opts.actor)
  return err
end

--- Starts one run of `cron`, applying its concurrency policy. `opts`: due
-- (ms, for the messages), actor. Returns the job; or nil, "skipped" and the
-- run in the way (forbid); or nil, "failed" and a message (the queue refused).
function Scheduler:run(cron, opts)
  opts = opts or {}
  local queue = self.server.queue
  local active = jobs.active_for_cron(self.db, cron.namespace, cron.name)
  if #active > 0 then
    if cron.concurrency == "forbid" then
      self:event(cron, "cron.skipped", string.format("skipped the run%s: job %s is still %s",
        opts.due and (" due " .. clock.iso_time(opts.due)) or "", active[1].id, active[1].state), opts.actor)
      return nil, "skipped", active[1]
    elseif cron.concurrency == "replace" then
      for _, job in ipairs(active) do
        queue:delete(job, opts.actor or "system")
        self:event(cron, "cron.replaced", "stopped job " .. job.id .. " to start a new run", opts.actor)
      end
    end
  end
  local spec = {}
  for k, v in pairs(cron.spec) do spec[k] = v end
  spec.cron, spec.admitted_for = cron.name, nil
  local denied = self:denied(cron, spec, opts)
  if denied then return nil, "denied", denied end
  local ok, job = pcall(queue.submit, queue, cron.namespace, spec, opts.actor or "system")
  if not ok then
    local message = errors.is(job) and job.message or tostring(job)
    self:event(cron, "cron.failed", "could not submit a run: " .. message, opts.actor)
    return nil, "failed", message
  end
  return job
end

-- Runs one due cron job and moves its next fire time on. While state.db
-- cannot be written the move fails and the run is tried again (late, once
-- space returns); a run submitted whose move failed is not submitted again
-- for the same due time.
function Scheduler:fire(cron, now)
  local due = cron.next_fire
  local key = cron.namespace .. "/" .. cron.name
  local submitted = self.submitted[key]
  local again = submitted and submitted.due == due
  local job = again and submitted.job or self:run(cron, { due = due })
  if job and not again and self.server.metrics and self.server.metrics.cron_lateness then
    self.server.metrics.cron_lateness:observe(math.max(0, (job.created_at or now) - due) / 1000)
  end
  local next_fire = self:next_after(cron, math.max(due, now))
  if job then
    self.submitted[key] = { due = due, job = job }
    cronjobs.record_fire(self.db, cron.namespace, cron.name, job.created_at or now, next_fire)
  else
    cronjobs.set_next_fire(self.db, cron.namespace, cron.name, next_fire)
  end
  self.submitted[key] = nil
end

--- Fires every cron job that is due, then arms the timer again. Called by
-- the timer; never raises (an error is logged, that cron job's fire time
-- moves on, and the others still run).
function Scheduler:tick()
  if self.server.stopping then return end
  local now = self.now_ms()
  local ok, due = pcall(cronjobs.due, self.db, now + M.EARLY_MS)
  for _, cron in ipairs(ok and due or {}) do
    local fired = errors.call("fire", self.fire, function(err)
      self.server.log:error("cron %s/%s: %s", cron.namespace, cron.name, tostring(err))
    end, self, cron, now)
    if not fired then
      pcall(function()
        cronjobs.set_next_fire(self.db, cron.namespace, cron.name, self:next_after(cron, math.max(now,
          cron.next_fire)))
      end)
    end
  end
  if not ok then self.server.log:error("cron: cannot read the due cron jobs: %s", tostring(due)) end
  self:arm()
end

--- Arms the one timer for the earliest next fire time (or stops it when no
-- cron job is scheduled).
function Scheduler:arm()
  if self.server.stopping or self.closed then return end
  local ok, earliest = pcall(cronjobs.earliest, self.db)
  if not ok then
    self.server.log:error("cron: %s", tostring(earliest))
    earliest = self.now_ms() + 1000
  end
  if self.timer then self.timer:stop() end
  self.armed_for = earliest
  if not earliest then return end
  if not self.timer then
    self.timer = self.new_timer()
    if self.timer.unref then self.timer:unref() end
  end
  if self.update_time then self.update_time() end
  local delay = math.max(0, math.min(earliest - self.now_ms(), M.MAX_SLEEP_MS))
  -- A due time that could not be moved on (state.db cannot be written) is
  -- tried again once a second, not in a busy loop.
  local writer = self.server.state_writer
  if writer and writer.degraded then delay = math.max(delay, 1000) end
  self.timer:start(delay, 0, function()
    local fine = errors.call("tick", self.tick, function(err) self.server.log:error("cron: %s", tostring(err)) end,
      self)
    if not fine then pcall(self.arm, self) end
  end)
end

-- How many fire times of `cron` fell in [next_fire, now], and the first one
-- after now.
function Scheduler:count_missed(cron, now)
  local count, t = 0, cron.next_fire
  while t and t <= now and count < M.MAX_MISSED_COUNT do
    count = count + 1
    t = self:next_after(cron, t)
  end
  if t and t <= now then t = self:next_after(cron, now) end
  return count, t
end

--- At server start: deals with the runs missed while the server was down
-- (skip them, or with catch_up run once now), then arms the timer.
function Scheduler:start()
  local now = self.now_ms()
  for _, cron in ipairs(cronjobs.due(self.db, now)) do
    errors.call("start", function()
      local count, next_fire = self:count_missed(cron, now)
      local plural = count == 1 and "" or "s"
      if cron.catch_up then
        local job, why = self:run(cron, { due = cron.next_fire })
        if job then
          cronjobs.record_fire(self.db, cron.namespace, cron.name, job.created_at or now, next_fire)
          self:event(cron, "cron.caught_up", string.format("%d run%s missed while the server was down; "
            .. "ran once now: job %s", count, plural, job.id))
        else
          cronjobs.set_next_fire(self.db, cron.namespace, cron.name, next_fire)
          self:event(cron, "cron.missed", string.format("%d run%s missed while the server was down; "
            .. "the catch-up run was %s", count, plural, why))
        end
      else
        cronjobs.set_next_fire(self.db, cron.namespace, cron.name, next_fire)
        self:event(cron, "cron.missed", string.format("%d run%s missed while the server was down; next at %s",
          count, plural, next_fire and clock.iso_time(next_fire) or "never"))
      end
    end, function(err)
      self.server.log:error("cron %s/%s at start: %s", cron.namespace, cron.name, tostring(err))
    end)
  end
  self:arm()
end

--- After a cron job was created, changed or resumed: its next fire time
-- from now (nil while suspended), and the timer armed again. Returns the
-- cron job as stored.
function Scheduler:reschedule(cron)
  local next_fire = not cron.suspended and self:next_after(cron, self.now_ms()) or nil
  cronjobs.set_next_fire(self.db, cron.namespace, cron.name, next_fire)
  self:arm()
  return cronjobs.get(self.db, cron.namespace, cron.name)
end

--- Runs `cron` now, out of schedule (its next fire time stays). Returns the
-- job; raises 409 when forbid finds a run in progress, 503 when the queue
-- refuses.
function Scheduler:trigger(cron, actor, caller)
  local job, why, detail = self:run(cron, { actor = actor, caller = caller })
  if not job then
    if why == "denied" then error(detail, 0) end
    if why == "skipped" then
      errors.raise("conflict", string.format("cron job '%s' has a run in progress (job %s) and its concurrency "
        .. "is forbid", cron.name, detail.id), { hint = "wait for it, or delete it with 'prisn delete job "
        .. detail.id .. "'", http_status = 409 })
    end
    errors.raise("unavailable", "cannot start a run of cron job '" .. cron.name .. "': " .. tostring(detail),
      { http_status = 503 })
  end
  cronjobs.record_fire(self.db, cron.namespace, cron.name, job.created_at or self.now_ms(), nil)
  return job
end

--- The history limit: after a run of a cron job ends, deletes all but the
-- last keep_succeeded succeeded and keep_failed failed runs (records and
-- logs). Returns how many runs were deleted.
function Scheduler:job_finished(job)
  if not (job and job.cron) then return 0 end
  local cron = cronjobs.get(self.db, job.namespace, job.cron)
  if not cron then return 0 end
  local deleted = 0
  for _, limit in ipairs({ { "succeeded", cron.keep_succeeded }, { "failed", cron.keep_failed } }) do
    local old = jobs.old_cron_runs(self.db, cron.namespace, cron.name, limit[1], limit[2])
    for _, row in ipairs(old) do
      jobs.delete(self.db, row.id)
      if row.log_path then
        uv.fs_unlink(row.log_path)
        uv.fs_unlink(row.log_path .. ".1")
      end
      deleted = deleted + 1
    end
  end
  return deleted
end

--- Stops the timer (the server is stopping).
function Scheduler:close()
  self.closed = true
  if self.timer and not (self.timer.is_closing and self.timer:is_closing()) then
    self.timer:stop()
    self.timer:close()
  end
end

return M
