-- prisn.server.jobs: what runners report is recorded through the state
-- writer. A done report that meets a full disk (SQLITE_FULL, made here with
-- PRISN_HOME's state.db capped by PRAGMA max_page_count) keeps the job's
-- slot and waits; once there is room it is recorded with the runner's own
-- outcome and times, the slot is freed and the listeners told, once.
local clock = require("prisn.clock")
local uv = require("luv")
local store = require("prisn.store")
local events = require("prisn.store.events")
local jobs = require("prisn.store.jobs")
local writer = require("prisn.store.writer")
local remove_tree = require("support").remove_tree

describe("prisn.server.jobs: runners' reports under a full disk", function()
  local home, db, server, queue, timer_cb, finished

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    db = store.open(home)
    local quiet = { info = function() end, warn = function() end, error = function() end }
    server = { db = db, home = home, log = quiet }
    server.state_writer = writer.new(db, { log = quiet,
      transaction = function(fn) return server.events:transaction(fn) end,
      new_timer = function()
        return { start = function(_, _, _, cb) timer_cb = cb end, stop = function() timer_cb = nil end }
      end })
    server.events = events.recorder(db, { log = quiet,
      write = function(...) return server.state_writer:write(...) end })
    -- No job host: nothing is forked here.
    uv.os_setenv("PRISN_JOB_HOST", "0")
    queue = require("prisn.server.jobs").new(server)
    uv.os_unsetenv("PRISN_JOB_HOST")
    finished = {}
    queue.on_finished[1] = function(job) finished[#finished + 1] = job end
  end)

  after_each(function()
    db:close()
    remove_tree(home)
  end)

  -- A job the queue has started (its runner is out there).
  local function running_job()
    local job = jobs.create(db, { script = "/srv/x.sh", runner = "sh", state = "queued", detached = true })
    assert(db:run("INSERT INTO job_specs (job_id, spec) VALUES (?, '{}')", job.id))
    queue.running[job.id] = { job = job, started = uv.hrtime() }
    queue.running_count = 1
    return job
  end

  -- Caps the file at its size and fills the room left in its pages with
  -- events, so that the next event needs a page there is no room for.
  local function fill()
    assert(db:exec("PRAGMA max_page_count = " .. db:first("PRAGMA page_count").page_count))
    for i = 1, 100000 do
      local ok, err = pcall(events.record, db, { action = "test.filler", message = "filler " .. i })
      if not ok then
        assert.equal("SQLITE_FULL", err.code)
        return
      end
    end
    error("the database never filled")
  end
  local function free() assert(db:exec("PRAGMA max_page_count = 1000000")) end

  it("keeps a job whose end cannot be written running, with its slot, and records it once there is room", function()
    local job = running_job()
    local t0 = clock.now_ms() - 5000
    fill()
    queue:reports({
      { kind = "started", id = job.id, fields = { pid = 4242, started_at = t0 } },
      { kind = "done", id = job.id, fields = { state = "failed", reason = "exited", exit_code = 3,
        finished_at = t0 + 1500, pid = 4242, started_at = t0 } },
    })
    assert.equal("queued", jobs.get_by_id(db, job.id).state)
    assert.truthy(queue.running[job.id], "the slot was freed before the end was written")
    assert.equal(1, queue.running_count)
    assert.same({}, finished)
    assert.is_true(server.state_writer:status().degraded)
    -- The runner's exit does not record another end.
    queue:finished(job.id)
    assert.equal(1, queue.running_count)

    timer_cb() -- still full
    assert.equal("queued", jobs.get_by_id(db, job.id).state)

    free()
    timer_cb()
    local final = jobs.get_by_id(db, job.id)
    assert.same({ "failed", "exited", 3, 4242, t0, t0 + 1500 },
      { final.state, final.reason, final.exit_code, final.pid, final.started_at, final.finished_at })
    assert.is_nil(queue.running[job.id])
    assert.equal(0, queue.running_count)
    assert.equal(1, #finished)
    assert.equal("failed", finished[1].state)
    assert.is_nil(db:first("SELECT job_id FROM job_specs WHERE job_id = ?", job.id))
    -- Its events carry the times things happened, not when they were written.
    local started = db:first("SELECT time FROM events WHERE action = 'job.started'")
    local ended = db:first("SELECT time FROM events WHERE action = 'job.finished'")
    assert.same({ t0, t0 + 1500 }, { started.time, ended.time })
    assert.is_false(server.state_writer:status().degraded)
  end)

  it("records a runner that ended without telling once there is room", function()
    local job = running_job()
    fill()
    queue:finished(job.id)
    assert.equal(1, queue.running_count)
    free()
    timer_cb()
    local final = jobs.get_by_id(db, job.id)
    assert.same({ "failed", "killed" }, { final.state, final.reason })
    assert.equal(0, queue.running_count)
    assert.equal(1, #finished)
  end)
end)
