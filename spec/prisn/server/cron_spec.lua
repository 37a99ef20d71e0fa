-- prisn.server.cron: the scheduler driven by a fake clock, a fake timer and
-- fake schedules (a period in seconds per expression), over a real state
-- database and a fake job queue: one timer for the earliest cron job,
-- forbid / replace / allow, missed runs skipped or caught up once, history
-- limits, suspend and trigger.
local uv = require("luv")
local ids = require("prisn.ids")
local store = require("prisn.store")
local cronjobs = require("prisn.store.cronjobs")
local events = require("prisn.store.events")
local jobs = require("prisn.store.jobs")
local scheduler = require("prisn.server.cron")
local remove_tree = require("support").remove_tree

local T = 1795718760000 -- 2026-11-26T18:46:00.000Z, a whole minute

-- Fake schedules: the expression names a period in seconds.
local PERIODS = { ["* * * * * *"] = 1, ["*/10 * * * * *"] = 10, ["0 * * * * *"] = 60 }
local function compile(expression)
  local period = PERIODS[expression]
  if not period then return nil, "unknown expression " .. expression end
  return { expression = expression, next = function(_, after) return (after // period + 1) * period end }
end

describe("prisn.server.cron", function()
  local home, db, clock, timer, timers_made, server, submitted, deleted, lateness, logged, s

  -- The fake timer: one pending callback at a due time on the fake clock.
  local function new_timer()
    timers_made = timers_made + 1
    timer = { due = nil }
    function timer.start(self, ms, rep, fn)
      assert.equal(0, rep, "the cron timer is one-shot, not a poll")
      self.due, self.fn = clock + ms, fn
    end
    function timer.stop(self) self.due = nil end
    function timer.close(self) self.due, self.closed = nil, true end
    return timer
  end

  -- Moves the fake clock to `t`, firing the timer whenever it is due; at
  -- most `max_fires` times when given (a busy loop fails instead of hanging).
  local function advance_to(t, max_fires)
    local fired = 0
    while timer and timer.due and timer.due <= t do
      fired = fired + 1
      assert.is_true(not max_fires or fired <= max_fires, "the cron timer spins while state.db cannot be written")
      clock = math.max(clock, timer.due)
      local fn = timer.fn
      timer.due = nil
      fn()
    end
    clock = t
  end

  local seq = 0
  local queue = {
    submit = function(_, ns, spec, actor)
      seq = seq + 1
      local job = jobs.create(db, { id = ids.encode((clock << ids.RANDOM_BITS) | seq), namespace = ns,
        script = spec.script, runner = "bash", state = "queued", detached = true, cron = spec.cron,
        created_at = clock })
      submitted[#submitted + 1] = { job = job, spec = spec, actor = actor }
      return job
    end,
    delete = function(_, job)
      deleted[#deleted + 1] = job.id
      jobs.finish(db, job.id, { state = "failed", reason = "deleted" })
    end,
  }

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    db = store.open(home)
    clock, timer, timers_made, seq = T - 500, nil, 0, 0
    submitted, deleted, lateness, logged = {}, {}, {}, {}
    queue.on_finished = {}
    server = {
      home = home, db = db, queue = queue,
      events = events.recorder(db),
      log = { error = function(_, fmt, ...) logged[#logged + 1] = string.format(fmt, ...) end },
      metrics = { cron_lateness = { observe = function(_, v) lateness[#lateness + 1] = v end } },
    }
    s = scheduler.new(server, { now_ms = function() return clock end, new_timer = new_timer, compile = compile })
  end)

  after_each(function()
    db:close()
    remove_tree(home)
  end)

  -- Made by the cluster's admin: every run is admitted (the admission of a
  -- namespaced creator's runs has its own tests below).
  local ADMIN = { token_id = "t1", name = "admin", role = "admin", namespaces = { "*" }, cluster_admin = true }
  local function make(fields)
    local f = { name = "tick", expression = "* * * * * *", spec = { script = "/srv/tick.sh", admitted_for = ADMIN } }
    for k, v in pairs(fields or {}) do f[k] = v end
    return s:reschedule(cronjobs.create(db, f))
  end

  local function actions(name)
    local list = {}
    for _, e in ipairs(events.list(db, { namespace = "default", object = "cron/" .. (name or "tick"),
      limit = 0 }) or {}) do
      list[#list + 1] = e.action .. ": " .. (e.message or "")
    end
    table.sort(list)
    return list
  end

  local function finish(job, state)
    jobs.start(db, job.id, { pid = 1, started_at = clock })
    local final = jobs.finish(db, job.id, { state = state or "succeeded", reason = "exited", exit_code = 0 })
    for _, fn in ipairs(queue.on_finished) do fn(final) end
    return final
  end

  it("arms one timer for the earliest cron job and fires it on time", function()
    clock = T + 500
    make({ name = "slow", expression = "0 * * * * *" })
    local tick = make({ concurrency = "allow" })
    assert.equal(T + 1000, tick.next_fire)
    assert.equal(T + 1000, s.armed_for)
    assert.equal(1, timers_made)
    assert.equal(T + 1000, timer.due)
    advance_to(T + 1999)
    assert.equal(1, #submitted)
    local run = submitted[1]
    assert.equal("tick", run.job.cron)
    assert.equal("tick", run.spec.cron)
    assert.equal("/srv/tick.sh", run.spec.script)
    assert.same({ 0 }, lateness)
    local stored = cronjobs.get(db, "default", "tick")
    assert.same({ T + 1000, T + 2000 }, { stored.last_fire, stored.next_fire })
    advance_to(T + 60000)
    -- 60 per-second runs and the minute one, all from the one timer.
    assert.equal(61, #submitted)
    assert.equal(1, timers_made)
    local slow = 0
    for _, r in ipairs(submitted) do if r.job.cron == "slow" then slow = slow + 1 end end
    assert.equal(1, slow)
    assert.equal(T + 61000, timer.due)
  end)

  it("records lateness when the timer wakes late", function()
    make()
    clock = T + 40 -- the loop was busy: the timer runs 40 ms after the due time
    timer.fn()
    assert.same({ 0.04 }, lateness)
  end)

  it("forbid: skips a run while the last one is still queued or running, with an event", function()
    make()
    advance_to(T)
    advance_to(T + 1000)
    assert.equal(1, #submitted)
    assert.same({ "cron.skipped: skipped the run due 2026-11-26T18:46:01.000Z: job " .. submitted[1].job.id
      .. " is still queued" }, actions())
    assert.equal(T + 2000, cronjobs.get(db, "default", "tick").next_fire)
    finish(submitted[1].job)
    advance_to(T + 2000)
    assert.equal(2, #submitted)
  end)

  it("replace: deletes the run in progress and starts a new one", function()
    make({ concurrency = "replace" })
    advance_to(T)
    advance_to(T + 1000)
    assert.equal(2, #submitted)
    assert.same({ submitted[1].job.id }, deleted)
    assert.same({ "cron.replaced: stopped job " .. submitted[1].job.id .. " to start a new run" }, actions())
  end)

  it("allow: runs alongside the one in progress", function()
    make({ concurrency = "allow" })
    advance_to(T + 2000)
    assert.equal(3, #submitted)
    assert.same({}, deleted)
    assert.same({}, actions())
  end)

  describe("runs missed while the server was down", function()
    local function down_then_start(fields)
      cronjobs.create(db, (function()
        local f = { name = "tick", expression = "*/10 * * * * *",
          spec = { script = "/srv/tick.sh", admitted_for = ADMIN }, next_fire = T }
        for k, v in pairs(fields or {}) do f[k] = v end
        return f
      end)())
      clock = T + 25000 -- due at T, T+10s, T+20s: three missed
      s:start()
    end

    it("skips them by default: next fire in the future, one event with the count", function()
      down_then_start()
      assert.equal(0, #submitted)
      assert.equal(T + 30000, cronjobs.get(db, "default", "tick").next_fire)
      assert.same({ "cron.missed: 3 runs missed while the server was down; next at 2026-11-26T18:46:30.000Z" },
        actions())
      assert.equal(T + 30000, timer.due)
    end)

    it("runs once now with catch_up", function()
      down_then_start({ catch_up = true })
      assert.equal(1, #submitted)
      assert.equal(T + 30000, cronjobs.get(db, "default", "tick").next_fire)
      assert.same({ "cron.caught_up: 3 runs missed while the server was down; ran once now: job "
        .. submitted[1].job.id }, actions())
      assert.same({}, lateness)
    end)

    it("leaves alone what is not due yet and what is suspended", function()
      local spec = { script = "/x", admitted_for = ADMIN }
      cronjobs.create(db, { name = "later", expression = "*/10 * * * * *", spec = spec, next_fire = T + 30000 })
      cronjobs.create(db, { name = "off", expression = "*/10 * * * * *", spec = spec,
        suspended = true })
      clock = T + 25000
      s:start()
      assert.same({}, actions("later"))
      assert.same({}, actions("off"))
      assert.equal(T + 30000, timer.due)
    end)
  end)

  it("keeps only the last keep_succeeded and keep_failed runs, logs included", function()
    make({ concurrency = "allow", keep_succeeded = 2, keep_failed = 1 })
    local logs = home .. "/logs"
    assert(uv.fs_mkdir(logs, 448))
    for i = 0, 5 do
      advance_to(T + i * 1000)
      local job = submitted[#submitted].job
      local path = logs .. "/" .. job.id .. ".log"
      require("prisn.fs").write_atomic(path, "x")
      db:run("UPDATE jobs SET log_path = ? WHERE id = ?", path, job.id)
      finish(job, i % 2 == 0 and "succeeded" or "failed")
    end
    local left = jobs.list(db, { cron = "tick" })
    local states = {}
    for i, job in ipairs(left) do states[i] = job.state end
    assert.same({ "failed", "succeeded", "succeeded" }, states)
    assert.same({ submitted[6].job.id, submitted[5].job.id, submitted[3].job.id },
      { left[1].id, left[2].id, left[3].id })
    assert.is_nil(uv.fs_stat(logs .. "/" .. submitted[1].job.id .. ".log"))
    assert.is_not_nil(uv.fs_stat(logs .. "/" .. submitted[5].job.id .. ".log"))
  end)

  it("does not fire a suspended cron job and resumes from the next future time", function()
    make()
    cronjobs.set_suspended(db, "default", "tick", true)
    s:arm()
    assert.is_nil(timer.due)
    advance_to(T + 5000)
    assert.equal(0, #submitted)
    s:reschedule(cronjobs.set_suspended(db, "default", "tick", false, nil))
    assert.equal(T + 6000, cronjobs.get(db, "default", "tick").next_fire)
    advance_to(T + 6000)
    assert.equal(1, #submitted)
  end)

  it("triggers a run now without moving the schedule; forbid refuses while one runs", function()
    local cron = make()
    local job = s:trigger(cron, "token:ci")
    assert.equal("token:ci", submitted[1].actor)
    assert.equal("tick", job.cron)
    assert.equal(T, cronjobs.get(db, "default", "tick").next_fire)
    local ok, err = pcall(s.trigger, s, cron, "token:ci")
    assert.is_false(ok)
    assert.same({ "conflict", 409 }, { err.code, err.http_status })
  end)

  describe("admission of each run", function()
    local EDIT_A = { token_id = "t2", name = "ci", role = "edit", namespaces = { "default" }, cluster_admin = false }

    it("admits a firing as a request of the cron job's creator: a path on the server is refused", function()
      make({ spec = { script = "/srv/tick.sh", admitted_for = EDIT_A } })
      local ok, err = pcall(advance_to, T)
      assert.is_true(ok, err)
      assert.equal(0, #submitted)
      assert.same({ "admission.denied: cronjob.fire by token t2: a script path on the server needs an admin token",
        "cron.failed: run not admitted: a script path on the server needs an admin token" }, actions())
      -- The schedule goes on.
      assert.equal(T + 1000, cronjobs.get(db, "default", "tick").next_fire)
    end)

    it("admits a bundle's run for a namespaced creator, pinned to an isolated level and user", function()
      make({ spec = { script = home .. "/bundles/x/tick.sh", bundle = "x", entry = "tick.sh",
        admitted_for = EDIT_A } })
      advance_to(T)
      assert.equal(1, #submitted)
      local spec = submitted[1].spec
      assert.is_nil(spec.admitted_for)
      if uv.getuid() == 0 then
        assert.is_true(spec.isolation >= 1)
        assert.not_equal(0, spec.run_as.uid)
      end
    end)

    it("admits a trigger as the triggering token's request", function()
      local cron = make({ spec = { script = "/srv/tick.sh", isolation = 0, admitted_for = ADMIN } })
      local ok, err = pcall(s.trigger, s, cron, "token:ci", EDIT_A)
      assert.is_false(ok)
      assert.same({ "forbidden", 403, "isolation 0 needs an admin token" }, { err.code, err.http_status, err.message })
      assert.equal(0, #submitted)
      s:trigger(cron, "token:admin", ADMIN)
      assert.equal(1, #submitted)
    end)
  end)

  it("survives a queue that refuses: an event, and the schedule goes on", function()
    make()
    queue.submit_real, queue.submit = queue.submit, function() error(require("prisn.error").new("too_many_requests",
      "the job queue is full (1 waiting)")) end
    local ok, err = pcall(advance_to, T)
    queue.submit = queue.submit_real
    assert.is_true(ok, err)
    assert.same({ "cron.failed: could not submit a run: the job queue is full (1 waiting)" }, actions())
    assert.equal(T + 1000, cronjobs.get(db, "default", "tick").next_fire)
    assert.equal(T + 1000, timer.due)
  end)

  it("sleeps at most MAX_SLEEP_MS before looking at the clock again", function()
    clock = T + 1
    make({ expression = "0 * * * * *", name = "hourly" })
    assert.equal(T + 60000, timer.due)
    PERIODS["0 0 * * * *"] = 3600
    make({ expression = "0 0 * * * *", name = "rare" })
    cronjobs.delete(db, "default", "hourly")
    s:arm()
    assert.equal(clock + scheduler.MAX_SLEEP_MS, timer.due)
  end)

  it("while state.db cannot be written, tries a due run once a second and submits it once", function()
    make({ concurrency = "allow" })
    local errors = require("prisn.error")
    local real_record, real_set = cronjobs.record_fire, cronjobs.set_next_fire
    local function full() errors.raise("SQLITE_FULL", "SQLITE_FULL: state.db: database or disk is full") end
    cronjobs.record_fire, cronjobs.set_next_fire = full, full
    server.state_writer = { degraded = true }
    local ok, err = pcall(function()
      advance_to(T + 200, 5)
      assert.equal(1, #submitted)
      assert.is_true(timer.due >= clock + 1000 - 200, "retried sooner than a second")
      advance_to(T + 3200, 5)
      assert.equal(1, #submitted) -- the same due run, not submitted again
    end)
    cronjobs.record_fire, cronjobs.set_next_fire = real_record, real_set
    server.state_writer = nil
    if not ok then error(err, 0) end
    -- Space returns: the run's record is written, the schedule goes on.
    advance_to(T + 4200)
    local c = cronjobs.get(db, "default", "tick")
    assert.is_true(c.next_fire > T + 3200, "the next fire time did not move on")
    -- The run due at T was submitted at T, once; at most the next one since.
    assert.equal(T, submitted[1].job.created_at)
    assert.is_true(#submitted <= 2)
  end)
end)
