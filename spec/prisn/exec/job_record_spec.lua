-- prisn.exec.job_record: the recorders that write a job's life to state.db,
-- and what a runner left in the job's log.
local uv = require("luv")
local cjson = require("cjson")
local job_record = require("prisn.exec.job_record")
local store = require("prisn.store")
local jobs = require("prisn.store.jobs")
local logs = require("prisn.logs")
local remove_tree = require("support").remove_tree

describe("prisn.exec.job_record", function()
  local home

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
  end)

  after_each(function()
    remove_tree(home)
  end)

  it("records a CLI run as a new job once its runner is known, then its start and end", function()
    local rec = job_record.new({ home = home, namespace = "default", script = "/x/a.sh", args = { "1" },
      env_keys = {}, cwd = "/x" })
    local job = rec.create({ name = "bash" })
    assert.equal(logs.job_path(home, "default", job.id), rec.log_path)
    rec.update({ deps_source = "requirements.txt" })
    rec.start(4321)
    rec.finish({ state = "failed", reason = "exited", exit_code = 3 })
    rec.close()
    local db = store.open(home)
    local j = jobs.get_by_id(db, job.id)
    db:close()
    assert.same({ "bash", "/x/a.sh", "failed", 3, 4321, "requirements.txt" },
      { j.runner, j.script, j.state, j.exit_code, j.pid, j.deps_source })
  end)

  it("records a CLI run's events as the server's jobs have them, without arguments or values", function()
    local rec = job_record.new({ home = home, namespace = "team", script = "/x/a.sh", args = { "hunter2" },
      env_keys = { "PASSWORD" }, cwd = "/x" })
    local job = rec.create({ name = "bash" })
    rec.start(4321)
    rec.finish({ state = "failed", reason = "exited", exit_code = 3 })
    rec.close()
    local db = store.open(home)
    local list = require("prisn.store.events").list(db, { object = "job/" .. job.id, order = "asc" })
    db:close()
    local seen = {}
    for i, ev in ipairs(list) do
      seen[i] = { ev.namespace, ev.action, ev.message }
      assert.matches("^user:", ev.actor)
    end
    assert.same({ { "team", "job.created", "run locally: /x/a.sh" }, { "team", "job.started", "pid 4321" },
      { "team", "job.finished", "failed (exited, exit 3)" } }, seen)
  end)

  -- What the CLI's recorder has written so far: the job's row and its events' actions.
  local function written(id)
    local db = store.open(home)
    local row = jobs.get_by_id(db, id)
    local actions = {}
    for _, ev in ipairs(require("prisn.store.events").list(db, { object = "job/" .. id, order = "asc" })) do
      actions[#actions + 1] = ev.action
    end
    db:close()
    return row, actions
  end

  it("writes a CLI run's creation and what prepare learnt with its start, in one commit", function()
    local rec = job_record.new({ home = home, namespace = "default", script = "/x/a.py", args = {},
      env_keys = {}, cwd = "/x" })
    local job = rec.create({ name = "python3", deps = "python" })
    rec.update({ deps_source = "pep723" })
    rec.update({ env_key = "0123456789abcdef" })
    assert.is_nil((written(job.id)))
    rec.start(4321)
    local row, actions = written(job.id)
    assert.same({ "running", 4321, "pep723", "0123456789abcdef" }, { row.state, row.pid, row.deps_source, row.env_key })
    assert.same({ "job.created", "job.started" }, actions)
    rec.finish({ state = "succeeded", reason = "exited", exit_code = 0 })
    rec.close()
    assert.equal("succeeded", (written(job.id)).state)
  end)

  it("writes a CLI run's record at once when it is flushed (before an environment build)", function()
    local rec = job_record.new({ home = home, namespace = "default", script = "/x/a.py", args = {},
      env_keys = {}, cwd = "/x" })
    local job = rec.create({ name = "python3", deps = "python" })
    rec.update({ deps_source = "requirements.txt" })
    rec.flush()
    local row, actions = written(job.id)
    assert.same({ "pending", "requirements.txt" }, { row.state, row.deps_source })
    assert.same({ "job.created" }, actions)
    rec.update({ env_key = "fedcba9876543210" })
    assert.equal("fedcba9876543210", (written(job.id)).env_key)
    rec.flush() -- nothing left to write
    rec.fail_to_start("installing python dependencies failed")
    rec.close()
    row, actions = written(job.id)
    assert.same({ "failed", "failed_to_start" }, { row.state, row.reason })
    assert.same({ "job.created", "job.finished" }, actions)
  end)

  it("records a CLI run that never started, and one closed before it started, with their creation", function()
    local rec = job_record.new({ home = home, namespace = "default", script = "/x/a.sh", args = {},
      env_keys = {}, cwd = "/x" })
    local failed = rec.create({ name = "bash" })
    rec.fail_to_start("bash: not found")
    rec.close()
    local row, actions = written(failed.id)
    assert.same({ "failed", "failed_to_start", "bash: not found" }, { row.state, row.reason, row.message })
    assert.same({ "job.created", "job.finished" }, actions)
    rec = job_record.new({ home = home, namespace = "default", script = "/x/a.sh", args = {}, env_keys = {},
      cwd = "/x" })
    local left = rec.create({ name = "bash" })
    rec.close()
    row, actions = written(left.id)
    assert.same({ "pending" }, { row.state })
    assert.same({ "job.created" }, actions)
  end)

  it("opens state.db only when a CLI run first needs it, or when asked to", function()
    local rec = job_record.new({ home = home, namespace = "default", script = "/x/a.sh", args = {},
      env_keys = {}, cwd = "/x" })
    local job = rec.create({ name = "bash" })
    assert.is_nil(uv.fs_stat(home .. "/state.db"))
    assert.equal(rec.open(), rec.open()) -- once
    assert.is_not_nil(uv.fs_stat(home .. "/state.db"))
    assert.is_nil((written(job.id)))
    rec.start(1)
    rec.close()
    assert.equal("running", (written(job.id)).state)
    -- A store that cannot be opened is raised by open (and by the first write).
    local bad = job_record.new({ home = home .. "/missing/deeper", namespace = "default", script = "/x/a.sh",
      args = {}, env_keys = {}, cwd = "/x" })
    bad.create({ name = "bash" })
    assert.has_error(function() bad.open() end)
    assert.has_error(function() bad.start(1) end)
    bad.close()
  end)

  it("records the start it is given with the end of a job still queued", function()
    local db = store.open(home)
    local row = jobs.create(db, { namespace = "default", script = "/x/a.sh", runner = "bash", state = "queued",
      detached = true, log_path = logs.job_path(home, "default", "06h1m9kbzd7n"), id = "06h1m9kbzd7n" })
    local rec = job_record.existing(db, row)
    rec.finish({ state = "succeeded", reason = "exited", exit_code = 0 }, { pid = 4321, started_at = 1000 })
    local j = jobs.get_by_id(db, row.id)
    db:close()
    assert.is_true(rec.finished)
    assert.same({ "succeeded", 4321, 1000 }, { j.state, j.pid, j.started_at })
  end)

  it("reads back the start and the outcome a runner logged, nil when it left none", function()
    local path = logs.job_path(home, "default", "06h1m9kbzd7n")
    assert.is_nil(job_record.logged_start(path))
    assert.is_nil(job_record.logged_outcome(path))
    assert.is_nil(job_record.logged_outcome(nil))
    local rec = { job = { id = "06h1m9kbzd7n" }, log_path = path }
    job_record.begin_log(rec)
    assert.equal(uv.os_getpid(), job_record.logged_start(path).runner_pid)
    rec.log:write_outcome(cjson.encode({ state = "failed", reason = "killed" }))
    rec.log:close()
    assert.same({ state = "failed", reason = "killed" }, job_record.logged_outcome(path))
  end)
end)
