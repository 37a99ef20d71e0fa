-- prisn.store.jobs: a job's life (create, start, finish), lookups by id and
-- prefix, listing with filters, interrupted jobs and the public shape.
local uv = require("luv")
local ids = require("prisn.ids")
local output = require("prisn.output")
local store = require("prisn.store")
local jobs = require("prisn.store.jobs")
local remove_tree, raised = require("support").remove_tree, require("support").raised

-- An id made at `ms` with the given random part, for predictable prefixes.
local function id_at(ms, random)
  return ids.encode((ms << ids.RANDOM_BITS) | (random or 0))
end

local T = 1795718760000 -- 2026-11-26T18:46:00.000Z

describe("prisn.store.jobs", function()
  local home, db

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    db = store.open(home)
  end)

  after_each(function()
    db:close()
    remove_tree(home)
  end)

  local function make(fields)
    local f = { script = "/srv/backup.py", runner = "python3" }
    for k, v in pairs(fields or {}) do f[k] = v end
    return jobs.create(db, f)
  end

  describe("create", function()
    it("records a pending job with defaults and an id", function()
      local job = make({ args = { "--full", "a b", "\255bytes" }, env_keys = { "TOKEN", "HOME" }, cwd = "/srv" })
      assert.is_true(ids.valid(job.id))
      assert.equal("default", job.namespace)
      assert.equal("pending", job.state)
      assert.same({ "--full", "a b", "\255bytes" }, job.args)
      assert.same({ "TOKEN", "HOME" }, job.env_keys)
      assert.is_false(job.detached)
      assert.equal("integer", math.type(job.created_at))
      assert.is_nil(job.reason)
      assert.is_nil(job.exit_code)
      assert.same(job, jobs.get(db, "default", job.id))
    end)

    it("keeps an explicit id, namespace and empty lists", function()
      local job = make({ id = id_at(T, 1), namespace = "ops", created_at = T, detached = true,
        log_path = "/x.log", env_key = "abc", deps_source = "requirements.txt" })
      assert.equal(id_at(T, 1), job.id)
      assert.equal("ops", job.namespace)
      assert.same({}, job.args)
      assert.same({}, job.env_keys)
      assert.is_true(job.detached)
      assert.equal(T, job.created_at)
      assert.equal("requirements.txt", job.deps_source)
      local err = raised(make, { id = id_at(T, 1) })
      assert.equal("SQLITE_CONSTRAINT", err.code)
    end)

    it("refuses environment values, missing fields and unknown states", function()
      assert.has_error(function() make({ env_keys = { "TOKEN=secret" } }) end,
        "jobs.create: env_keys[1] holds a value; record only the name")
      assert.has_error(function() jobs.create(db, { runner = "python3" }) end, "jobs.create: script is required")
      assert.has_error(function() make({ state = "done" }) end, "jobs.create: unknown state 'done'")
      assert.has_error(function() make({ args = { 1 } }) end)
    end)
  end)

  describe("start and finish", function()
    it("moves a job through running to succeeded", function()
      local job = make({ created_at = T })
      job = jobs.start(db, job.id, { pid = 4242, started_at = T + 5 })
      assert.equal("running", job.state)
      assert.equal(4242, job.pid)
      assert.equal(T + 5, job.started_at)
      job = jobs.finish(db, job.id, { state = "succeeded", reason = "exited", exit_code = 0, finished_at = T + 1505 })
      assert.equal("succeeded", job.state)
      assert.equal("exited", job.reason)
      assert.equal(0, job.exit_code)
      assert.equal(1500, jobs.duration_ms(job))
    end)

    it("records a signal, a message, and a job that failed to start", function()
      local a = make()
      jobs.start(db, a.id, { pid = 1 })
      a = jobs.finish(db, a.id, { state = "failed", reason = "killed", signal = "TERM" })
      assert.equal("TERM", a.signal)
      assert.is_nil(a.exit_code)
      local b = make()
      b = jobs.finish(db, b.id, { state = "failed", reason = "failed_to_start", message = "python3: not found" })
      assert.equal("python3: not found", b.message)
      assert.is_nil(b.started_at)
    end)

    it("refuses transitions that make no sense", function()
      local job = make()
      jobs.start(db, job.id, { pid = 1 })
      local err = raised(jobs.start, db, job.id, { pid = 2 })
      assert.equal("conflict", err.code)
      assert.equal("cannot start job '" .. job.id .. "': it is running", err.message)
      jobs.finish(db, job.id, { state = "failed", reason = "timeout" })
      err = raised(jobs.finish, db, job.id, { state = "succeeded", reason = "exited" })
      assert.equal("cannot finish job '" .. job.id .. "': it is failed", err.message)
      err = raised(jobs.start, db, "000000000000", {})
      assert.equal("not_found", err.code)
      assert.has_error(function() jobs.finish(db, job.id, { state = "running", reason = "exited" }) end)
      assert.has_error(function() jobs.finish(db, job.id, { state = "failed", reason = "bored" }) end,
        "jobs.finish: unknown reason 'bored'")
    end)
  end)

  describe("start with the caller's copy, and settle", function()
    it("starts a job without reading it back: the caller's copy, with the start", function()
      local job = make({ state = "queued", created_at = T })
      local started = jobs.start(db, job.id, { pid = 4242, started_at = T + 5 }, job)
      assert.equal("queued", job.state) -- the caller's copy is left as it was
      assert.equal("running", started.state)
      assert.same(jobs.get_by_id(db, job.id), started)
    end)

    it("records a runner's outcome in one statement, with the start of a job still queued", function()
      local job = make({ state = "queued", created_at = T })
      local final = jobs.settle(db, job.id, { state = "succeeded", reason = "exited", exit_code = 0,
        finished_at = T + 50, pid = 77, started_at = T + 5 })
      assert.same({ "succeeded", "exited", 0, 77, T + 5, T + 50 },
        { final.state, final.reason, final.exit_code, final.pid, final.started_at, final.finished_at })
      assert.same(jobs.get_by_id(db, job.id), final)
    end)

    it("keeps the recorded start of a running job, and fails one that never started", function()
      local job = make({ state = "queued", created_at = T })
      jobs.start(db, job.id, { pid = 10, started_at = T + 1 })
      local final = jobs.settle(db, job.id, { state = "failed", reason = "killed", signal = "KILL",
        exit_code = 137, pid = 99, started_at = T + 9 })
      assert.same({ "failed", "killed", 10, T + 1, "KILL" },
        { final.state, final.reason, final.pid, final.started_at, final.signal })
      local other = make({ state = "queued" })
      final = jobs.settle(db, other.id, { state = "failed", reason = "failed_to_start", message = "no bash" })
      assert.same({ "failed", "no bash" }, { final.state, final.message })
      assert.is_nil(final.started_at)
      assert.equal("integer", math.type(final.finished_at))
    end)

    it("leaves a job that has ended as it is, and says nil for none", function()
      local job = make({ state = "queued" })
      jobs.finish(db, job.id, { state = "failed", reason = "deleted", finished_at = T })
      local final = jobs.settle(db, job.id, { state = "succeeded", reason = "exited", exit_code = 0 })
      assert.same({ "failed", "deleted", T }, { final.state, final.reason, final.finished_at })
      assert.is_nil(jobs.settle(db, "000000000000", { state = "succeeded", reason = "exited" }))
      assert.has_error(function() jobs.settle(db, job.id, { state = "running", reason = "exited" }) end,
        "jobs.settle: state must be succeeded or failed, got running")
    end)
  end)

  describe("get", function()
    it("finds a job by its id or a unique prefix, in its namespace", function()
      local a = make({ id = id_at(T, 1) })
      make({ id = id_at(T + 100000, 2), namespace = "ops" })
      assert.equal(a.id, jobs.get(db, "default", a.id).id)
      assert.equal(a.id, jobs.get(db, "default", a.id:sub(1, 9)).id)
      assert.equal(a.id, jobs.get(db, "default", a.id:upper()).id)
      assert.is_nil(jobs.get(db, "ops", a.id))
      assert.equal(a.id, jobs.get(db, nil, a.id).id)
      assert.is_nil(jobs.get(db, "default", "zzzz"))
      assert.is_nil(jobs.get(db, "default", "not an id"))
      assert.is_nil(jobs.get(db, "default", ""))
    end)

    it("raises 'ambiguous' for a prefix of several jobs, listing a few", function()
      for i = 1, 7 do make({ id = id_at(T, i) }) end
      local prefix = id_at(T, 1):sub(1, 9)
      local err = raised(jobs.get, db, "default", prefix)
      assert.equal("ambiguous", err.code)
      assert.equal(string.format("job id '%s' matches 7 jobs: %s, %s, %s, %s, %s, ...", prefix,
        id_at(T, 7), id_at(T, 6), id_at(T, 5), id_at(T, 4), id_at(T, 3)), err.message)
      assert.equal("give more characters of the id", err.hint)
      -- The whole id is never ambiguous.
      assert.equal(id_at(T, 3), jobs.get(db, "default", id_at(T, 3)).id)
    end)
  end)

  describe("list", function()
    before_each(function()
      make({ id = id_at(T, 1), script = "/srv/backup.py" })
      make({ id = id_at(T + 1000, 1), script = "/srv/report.js", runner = "node", state = "running" })
      make({ id = id_at(T + 2000, 1), script = "/srv/backup.py", namespace = "ops" })
      make({ id = id_at(T + 3000, 1), script = "/home/backup/clean.sh", runner = "bash" })
    end)

    local function listed(opts)
      local out = {}
      for i, job in ipairs(jobs.list(db, opts)) do out[i] = job.id end
      return out
    end

    it("lists the namespace's jobs newest first", function()
      assert.same({ id_at(T + 3000, 1), id_at(T + 1000, 1), id_at(T, 1) }, listed())
      assert.same({ id_at(T + 2000, 1) }, listed({ namespace = "ops" }))
      assert.same({ id_at(T + 3000, 1), id_at(T + 2000, 1), id_at(T + 1000, 1), id_at(T, 1) },
        listed({ all_namespaces = true }))
    end)

    it("filters by state and script, and limits", function()
      assert.same({ id_at(T + 1000, 1) }, listed({ state = "running" }))
      assert.same({ id_at(T, 1) }, listed({ script = "backup.py" }))
      assert.same({ id_at(T + 3000, 1), id_at(T, 1) }, listed({ script = "backup" }))
      assert.same({ id_at(T + 3000, 1) }, listed({ limit = 1 }))
      assert.equal(3, #listed({ limit = 0 }))
      assert.same({}, listed({ namespace = "nobody" }))
      assert.has_error(function() jobs.list(db, { state = "done" }) end, "jobs.list: unknown state 'done'")
    end)

    it("lists fifty by default", function()
      for i = 1, 60 do make({ id = id_at(T + 10000 + i, 0) }) end
      assert.equal(50, #listed())
    end)
  end)

  describe("mark_interrupted", function()
    it("fails running jobs whose process is gone, and only those", function()
      local gone = make()
      jobs.start(db, gone.id, { pid = 11 })
      local alive = make()
      jobs.start(db, alive.id, { pid = 12 })
      local pending = make()
      local marked = jobs.mark_interrupted(db, { alive = function(job) return job.pid == 12 end, now = T })
      assert.equal(1, #marked)
      assert.equal(gone.id, marked[1].id)
      local job = jobs.get(db, "default", gone.id)
      assert.equal("failed", job.state)
      assert.equal("interrupted", job.reason)
      assert.equal(T, job.finished_at)
      assert.equal("running", jobs.get(db, "default", alive.id).state)
      assert.equal("pending", jobs.get(db, "default", pending.id).state)
    end)

    it("checks the pid by default", function()
      local job = make()
      jobs.start(db, job.id, { pid = uv.os_getpid() })
      assert.same({}, jobs.mark_interrupted(db))
    end)
  end)

  describe("to_public", function()
    it("has every field, snake_case, with ISO times and nulls", function()
      local job = make({ id = id_at(T, 1), created_at = T, args = {}, env_keys = { "TOKEN" } })
      job = jobs.start(db, job.id, { pid = 7, started_at = T + 123 })
      job = jobs.finish(db, job.id, { state = "failed", reason = "exited", exit_code = 3, finished_at = T + 61123 })
      local p = jobs.to_public(job)
      for _, field in ipairs(jobs.PUBLIC_FIELDS) do assert.is_not_nil(p[field], field) end
      assert.equal(id_at(T, 1), p.id)
      assert.equal("failed", p.state)
      assert.equal(3, p.exit_code)
      assert.equal("exited", p.reason)
      assert.equal("2026-11-26T18:46:00.000Z", p.created_at)
      assert.equal("2026-11-26T18:46:00.123Z", p.started_at)
      assert.equal("2026-11-26T18:47:01.123Z", p.finished_at)
      assert.equal(61000, p.duration_ms)
      assert.equal(output.null, p.signal)
      assert.equal(output.null, p.message)
      assert.equal(output.null, p.env_key)
      assert.is_false(p.detached)
      assert.equal("[]", output.render(p.args, "json"):gsub("%s", ""))
      assert.same({ "TOKEN" }, p.env_keys)
    end)

    it("gives a pending job null times and a running job its time so far", function()
      local job = make({ created_at = T })
      local p = jobs.to_public(job)
      assert.equal(output.null, p.started_at)
      assert.equal(output.null, p.duration_ms)
      job = jobs.start(db, job.id, { pid = 1, started_at = T })
      assert.equal(2500, jobs.to_public(job, T + 2500).duration_ms)
    end)
  end)

  it("counts jobs by state, every state present, in the namespaces a token may see", function()
    make({ namespace = "a", state = "queued" })
    make({ namespace = "a", state = "queued" })
    make({ namespace = "b", state = "queued" })
    make({ namespace = "b" })
    assert.same({ pending = 1, queued = 3, running = 0, succeeded = 0, failed = 0 }, jobs.count_by_state(db))
    assert.same({ pending = 0, queued = 2, running = 0, succeeded = 0, failed = 0 },
      jobs.count_by_state(db, function(ns) return ns == "a" end))
  end)

  it("records what preparing a job learned, one field at a time, strings only", function()
    local job = make()
    assert.equal(1, jobs.record_prepared(db, job.id, { deps_source = "requirements.txt" }))
    assert.equal(1, jobs.record_prepared(db, job.id, { env_key = "0123abcd" }))
    assert.equal(0, jobs.record_prepared(db, job.id, { env_key = 42 }))
    local got = jobs.get_by_id(db, job.id)
    assert.same({ "requirements.txt", "0123abcd" }, { got.deps_source, got.env_key })
  end)

  describe("runs of a cron job", function()
    -- Runs of cron job "nightly" in namespace "a", created in id order.
    local function run(state, ms, extra)
      local f = { namespace = "a", cron = "nightly", state = state, id = id_at(ms), log_path = "/logs/" .. ms }
      for k, v in pairs(extra or {}) do f[k] = v end
      return make(f)
    end

    it("finds the queued and running ones, oldest first, as jobs", function()
      run("queued", T + 2)
      run("running", T + 1)
      run("succeeded", T + 3)
      run("queued", T + 4, { namespace = "b" })
      run("queued", T + 5, { cron = "hourly" })
      local active = jobs.active_for_cron(db, "a", "nightly")
      assert.same({ id_at(T + 1), id_at(T + 2) }, { active[1].id, active[2].id })
      assert.equal(2, #active)
      assert.same({}, active[1].args) -- decoded like any job
      assert.same({}, jobs.active_for_cron(db, "a", "weekly"))
    end)

    it("lists the ended ones past the newest `keep`, newest first, with their logs", function()
      for i = 1, 4 do run("succeeded", T + i) end
      run("failed", T + 5)
      run("succeeded", T + 6, { cron = "hourly" })
      assert.same({ { id = id_at(T + 2), log_path = "/logs/" .. (T + 2) },
        { id = id_at(T + 1), log_path = "/logs/" .. (T + 1) } },
        jobs.old_cron_runs(db, "a", "nightly", "succeeded", 2))
      assert.equal(4, #jobs.old_cron_runs(db, "a", "nightly", "succeeded", 0))
      assert.equal(4, #jobs.old_cron_runs(db, "a", "nightly", "succeeded", -1))
      assert.same({}, jobs.old_cron_runs(db, "a", "nightly", "failed", 1))
    end)
  end)

  it("marks a finished job as ended by its deletion", function()
    local job = make({ state = "queued" })
    jobs.finish(db, job.id, { state = "failed", reason = "killed" })
    assert.equal(1, jobs.mark_deleted(db, job.id))
    assert.equal("deleted", jobs.get_by_id(db, job.id).reason)
  end)

  it("lists the server's unfinished jobs with their runner's pid, for recovery", function()
    local specs = require("prisn.store.job_specs")
    local queued = make({ state = "queued", detached = true, id = id_at(T + 1), log_path = "/l/1" })
    local running = make({ state = "running", detached = true, pid = 42, started_at = T, id = id_at(T + 2) })
    make({ state = "running", id = id_at(T + 3) }) -- a local run: not the server's
    local done = make({ state = "queued", detached = true, id = id_at(T + 4) })
    jobs.finish(db, done.id, { state = "succeeded", reason = "exited" })
    assert(specs.put(db, running.id, "{}"))
    assert(specs.set_runner_pid(db, running.id, 4242))
    assert.same({
      { id = queued.id, state = "queued", log_path = "/l/1" },
      { id = running.id, state = "running", pid = 42, started_at = T, runner_pid = 4242 },
    }, jobs.unfinished_server_jobs(db))
  end)
end)
