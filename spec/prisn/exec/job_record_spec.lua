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
