-- prisn.exec.job_host.report: a forked job runner tells its server of the
-- job's start and outcome on a pipe, and records in state.db itself when the
-- server cannot be told.
local report = require("prisn.exec.job_host.report")
local protocol = require("prisn.exec.job_host")
local job_runner = require("prisn.exec.job_runner")
local store = require("prisn.store")
local jobs = require("prisn.store.jobs")
local logs = require("prisn.logs")
local sys = require("prisn.core.sys")
local cjson = require("cjson")
local uv = require("luv")

describe("prisn.exec.job_host.report", function()
  local home, db, job

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    db = store.open(home)
    local row = jobs.create(db, { namespace = "default", script = "/x/a.sh", runner = "bash", state = "queued",
      detached = true, log_path = logs.job_path(home, "default", "06h1m9kbzd7n"), id = "06h1m9kbzd7n" })
    db:run("INSERT INTO job_specs (job_id, spec) VALUES (?, '{}')", row.id)
    job = { id = row.id, namespace = row.namespace, log_path = row.log_path }
  end)

  after_each(function()
    db:close()
    os.execute("rm -rf '" .. home .. "'")
  end)

  -- Reads what is waiting on `fd` (non-blocking read end of a pipe).
  local function drain(fd)
    local chunks = {}
    while true do
      local data = uv.fs_read(fd, 65536, -1)
      if not data or data == "" then break end
      chunks[#chunks + 1] = data
    end
    return table.concat(chunks)
  end

  it("parses report lines and refuses anything else", function()
    local kind, id, fields = protocol.parse_report('done 06h1m9kbzd7n {"state":"succeeded","exit_code":0}')
    assert.same({ "done", "06h1m9kbzd7n", "succeeded", 0 }, { kind, id, fields.state, fields.exit_code })
    assert.is_nil(protocol.parse_report("06h1m9kbzd7n 1234"))
    assert.is_nil(protocol.parse_report("done 06h1m9kbzd7n {not json}"))
    assert.is_nil(protocol.parse_report('done 06h1m9kbzd7n ["a list"]'))
  end)

  it("tells the server on the pipe, and ends the log with the outcome", function()
    local pipe = uv.pipe({ nonblock = true }, { nonblock = false })
    local rec = report.recorder(home, job, pipe.write)
    rec.start(4321)
    rec.open_log()
    rec.log:write("stdout", "hi\n")
    rec.finish({ state = "failed", reason = "exited", exit_code = 3 })
    rec.close()
    local lines = {}
    for line in drain(pipe.read):gmatch("[^\n]+") do lines[#lines + 1] = { protocol.parse_report(line) } end
    assert.equal(2, #lines)
    assert.same({ "started", job.id, 4321 }, { lines[1][1], lines[1][2], lines[1][3].pid })
    assert.same({ "done", "failed", "exited", 3, 4321 },
      { lines[2][1], lines[2][3].state, lines[2][3].reason, lines[2][3].exit_code, lines[2][3].pid })
    assert.same(lines[2][3], cjson.decode(logs.outcome(job.log_path)))
    -- state.db was not touched: the server records what it is told.
    assert.equal("queued", jobs.get_by_id(db, job.id).state)
    uv.fs_close(pipe.read)
    uv.fs_close(pipe.write)
  end)

  it("records in state.db itself once the server is gone", function()
    sys.ignore_sigpipe() -- a write to a pipe nobody reads fails with EPIPE
    local pipe = uv.pipe({ nonblock = true }, { nonblock = false })
    uv.fs_close(pipe.read)
    local rec = report.recorder(home, job, pipe.write)
    rec.start(4321)
    rec.update({ deps_source = "requirements.txt" })
    rec.finish({ state = "succeeded", reason = "exited", exit_code = 0 })
    rec.close()
    local j = jobs.get_by_id(db, job.id)
    assert.same({ "succeeded", "exited", 0, 4321, "requirements.txt" },
      { j.state, j.reason, j.exit_code, j.pid, j.deps_source })
    assert.is_number(j.started_at)
    assert.is_nil(db:first("SELECT spec FROM job_specs WHERE job_id = ?", job.id))
    uv.fs_close(pipe.write)
  end)

  it("puts the start in the log before the workload starts, then the workload's pid", function()
    local pipe = uv.pipe({ nonblock = true }, { nonblock = false })
    local rec = report.recorder(home, job, pipe.write)
    assert.is_false(logs.started(job.log_path))
    rec.begin()
    assert.is_true(logs.started(job.log_path))
    assert.equal(uv.os_getpid(), cjson.decode(logs.start_record(job.log_path)).runner_pid)
    rec.start(4321)
    assert.equal(4321, cjson.decode(logs.start_record(job.log_path)).pid)
    rec.close()
    -- A second runner of the same job finds the log: the job is not run.
    local second = report.recorder(home, job, pipe.write)
    local ok, err = pcall(second.begin)
    assert.is_false(ok)
    assert.equal("already_started", err.code)
    uv.fs_close(pipe.read)
    uv.fs_close(pipe.write)
  end)

  it("never runs a job again that an earlier runner started; reports what that one logged", function()
    local script = home .. "/a.sh"
    local f = assert(io.open(script, "w"))
    f:write("echo ran >> " .. home .. "/ran\n")
    f:close()
    local assignment = { id = job.id, namespace = job.namespace, log_path = job.log_path,
      spec = { script = script, runner = "bash", isolation = 0 } }
    local function run_once()
      local pipe = uv.pipe({ nonblock = true }, { nonblock = false })
      require("prisn.async").main(job_runner.run_assigned, home, assignment, pipe.write, nil)
      local lines = {}
      for line in drain(pipe.read):gmatch("[^\n]+") do lines[#lines + 1] = { protocol.parse_report(line) } end
      uv.fs_close(pipe.read)
      uv.fs_close(pipe.write)
      return lines
    end
    local first = run_once()
    assert.same({ "started", "done" }, { first[1][1], first[2][1] })
    assert.same({ "succeeded", "exited" }, { first[2][3].state, first[2][3].reason })
    -- Its outcome never reached the server; a late runner comes for it.
    local again = run_once()
    assert.equal(1, #again)
    assert.same({ "done", "succeeded", "exited", first[1][3].pid, first[1][3].started_at },
      { again[1][1], again[1][3].state, again[1][3].reason, again[1][3].pid, again[1][3].started_at })
    local ran = assert(io.open(home .. "/ran")):read("a")
    assert.equal("ran\n", ran)
    -- With no outcome logged (the earlier runner died with the job), the
    -- job fails server_restarted, and still does not run.
    local text = assert(io.open(job.log_path)):read("a")
    f = assert(io.open(job.log_path, "w"))
    f:write((text:gsub("x %d+ %d+\n.*$", "")))
    f:close()
    local third = run_once()
    assert.same({ "done", "failed", "server_restarted" }, { third[1][1], third[1][3].state, third[1][3].reason })
    assert.equal("ran\n", assert(io.open(home .. "/ran")):read("a"))
  end)

  it("records a fact too long for one pipe write in state.db", function()
    local pipe = uv.pipe({ nonblock = true }, { nonblock = false })
    local rec = report.recorder(home, job, pipe.write)
    rec.fail_to_start(string.rep("m", protocol.MAX_LINE))
    rec.close()
    assert.equal("", drain(pipe.read))
    local j = jobs.get_by_id(db, job.id)
    assert.same({ "failed", "failed_to_start", protocol.MAX_LINE }, { j.state, j.reason, #j.message })
    uv.fs_close(pipe.read)
    uv.fs_close(pipe.write)
  end)
end)
