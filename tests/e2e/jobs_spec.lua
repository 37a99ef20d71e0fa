-- Job records as a user meets them: `prisn get jobs`, `prisn get job ID` and
-- `prisn logs job/ID` over a PRISN_HOME seeded through `prisn lua` with the
-- store and log modules `prisn run` uses, and on a fresh machine.
local h = require("e2e.helper")
local write = h.write
local cjson = require("cjson")
local uv = require("luv")

-- Seeds PRISN_HOME with three jobs in "default" and one in "ops", with logs;
-- prints their ids, one a line: a (succeeded), b (failed), c (running), d (ops).
local SEED = [[
local home = require("prisn.home").ensure()
local store = require("prisn.store")
local jobs = require("prisn.store.jobs")
local logs = require("prisn.logs")
local ids = require("prisn.ids")
local db = store.open(home)
local T = 1795161600000 -- 2026-11-20T08:00:00.000Z
local function id_at(ms, r) return ids.encode((ms << ids.RANDOM_BITS) | r) end
local function job(id, ns, script, runner, state, reason, exit_code, chunks, max_bytes)
  local path = logs.job_path(home, ns, id)
  jobs.create(db, { id = id, namespace = ns, script = script, runner = runner, args = { "--full" },
    env_keys = { "TOKEN" }, cwd = "/srv", log_path = path, created_at = ids.time_ms(id) })
  jobs.start(db, id, { pid = 4242, started_at = ids.time_ms(id) + 10 })
  local w = assert(logs.writer(path, { max_bytes = max_bytes }))
  for _, c in ipairs(chunks) do assert(w:write(c[1], c[2])) end
  w:close()
  if state ~= "running" then
    jobs.finish(db, id, { state = state, reason = reason, exit_code = exit_code,
      finished_at = ids.time_ms(id) + 1510 })
  end
  print(id)
end
job(id_at(T, 1), "default", "/srv/backup.py", "python3", "succeeded", "exited", 0,
  { { "stdout", "out 1\n" }, { "stderr", "err 1\n" }, { "stdout", "out 2\n" } })
job(id_at(T + 1, 1), "default", "/srv/report.js", "node", "failed", "exited", 3,
  { { "stdout", "report\n" }, { "stderr", "boom\n" } })
local big = {}
for i = 1, 100 do big[i] = { "stdout", string.format("line %03d\n", i) } end
job(id_at(T + 3600000, 1), "default", "/srv/long.sh", "bash", "running", nil, nil, big, 1024)
job(id_at(T + 7200000, 1), "ops", "/srv/clean.sh", "bash", "failed", "timeout", nil, {})
db:close()
]]

local function seeded()
  local env = h.env()
  local dir = h.tempdir()
  write(dir .. "/seed.lua", SEED)
  local r = h.prisn({ "lua", dir .. "/seed.lua" }, { env = env })
  assert.equal(0, r.code, r.stderr)
  local ids = {}
  for id in r.stdout:gmatch("[^\n]+") do ids[#ids + 1] = id end
  assert.equal(4, #ids)
  return env, { a = ids[1], b = ids[2], c = ids[3], d = ids[4] }
end

local function common_prefix(x, y)
  local n = 0
  while n < #x and x:sub(n + 1, n + 1) == y:sub(n + 1, n + 1) do n = n + 1 end
  return x:sub(1, n)
end

describe("prisn get jobs / get job / logs", function()
  after_each(h.cleanup)

  describe("on a fresh machine", function()
    it("lists no jobs and creates nothing", function()
      local env = h.env()
      local r = h.prisn({ "get", "jobs" }, { env = env })
      assert.equal(0, r.code, r.stderr)
      assert.equal("No jobs have been recorded yet. Run one with 'prisn run SCRIPT'.\n", r.stdout)
      r = h.prisn({ "get", "jobs", "-o", "json" }, { env = env })
      assert.equal(0, r.code, r.stderr)
      assert.equal("[]\n", r.stdout)
      assert.is_nil(uv.fs_stat(env.PRISN_HOME))
    end)

    it("says that no job has been recorded, exits 1 and creates nothing", function()
      local env = h.env()
      for _, args in ipairs({ { "get", "job", "06h1" }, { "logs", "job/06h1" } }) do
        local r = h.prisn(args, { env = env })
        assert.equal(1, r.code)
        assert.equal("", r.stdout)
        assert.equal("Error: job '06h1' not found: no jobs have been recorded yet\n"
          .. "Hint: run a script with 'prisn run SCRIPT'; its job is then listed by 'prisn get jobs'\n", r.stderr)
      end
      assert.is_nil(uv.fs_stat(env.PRISN_HOME))
    end)
  end)

  describe("with recorded jobs", function()
    local env, id

    before_each(function() env, id = seeded() end)

    it("lists the namespace's jobs newest first as a table", function()
      local r = h.prisn({ "get", "jobs" }, { env = env })
      assert.equal(0, r.code, r.stderr)
      local lines = {}
      for line in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.equal(4, #lines)
      assert.matches("^ID%s+STATE%s+REASON%s+EXIT%s+RUNNER%s+SCRIPT%s+STARTED%s+DURATION$", lines[1])
      assert.matches("^" .. id.c .. "%s+running%s+%-%s+%-%s+bash%s+long%.sh%s+%d+[smhd] ago%s+%S+$", lines[2])
      assert.matches("^" .. id.b .. "%s+failed%s+exited%s+3%s+node%s+report%.js%s+%d+[smhd] ago%s+1%.5s$", lines[3])
      assert.matches("^" .. id.a .. "%s+succeeded%s+exited%s+0%s+python3%s+backup%.py%s+%d+[smhd] ago%s+1%.5s$",
        lines[4])
    end)

    it("lists jobs as JSON with snake_case fields, newest first", function()
      local r = h.prisn({ "get", "jobs", "-o", "json" }, { env = env })
      assert.equal(0, r.code, r.stderr)
      local list = cjson.decode(r.stdout)
      assert.equal(3, #list)
      assert.same({ id.c, id.b, id.a }, { list[1].id, list[2].id, list[3].id })
      local b = list[2]
      assert.equal("failed", b.state)
      assert.equal(3, b.exit_code)
      assert.equal("exited", b.reason)
      assert.equal("/srv/report.js", b.script)
      assert.equal("node", b.runner)
      assert.same({ "--full" }, b.args)
      assert.same({ "TOKEN" }, b.env_keys)
      assert.equal("2026-11-20T08:00:00.011Z", b.started_at)
      assert.equal("2026-11-20T08:00:01.511Z", b.finished_at)
      assert.equal(1500, b.duration_ms)
      assert.equal(cjson.null, list[1].exit_code)
      assert.equal(cjson.null, list[1].finished_at)
    end)

    it("filters by state and script, limits, and spans namespaces with -A", function()
      local function listed(args)
        local r = h.prisn(args, { env = env })
        assert.equal(0, r.code, r.stderr)
        local out = {}
        for i, job in ipairs(cjson.decode(r.stdout)) do out[i] = job.id end
        return out
      end
      assert.same({ id.b }, listed({ "get", "jobs", "--state", "failed", "-o", "json" }))
      assert.same({ id.a }, listed({ "get", "jobs", "--script", "backup.py", "-o", "json" }))
      assert.same({ id.c }, listed({ "get", "jobs", "--limit", "1", "-o", "json" }))
      assert.same({ id.d }, listed({ "get", "jobs", "-n", "ops", "-o", "json" }))
      assert.same({ id.d, id.c, id.b, id.a }, listed({ "get", "jobs", "-A", "-o", "json" }))
      local r = h.prisn({ "get", "jobs", "-A" }, { env = env })
      assert.matches("^NAMESPACE%s+ID%s+STATE", r.stdout)
      assert.matches("\nops%s+" .. id.d .. "%s+failed%s+timeout", r.stdout)
      r = h.prisn({ "get", "jobs", "-n", "empty" }, { env = env })
      assert.equal("No jobs found in namespace 'empty'.\n", r.stdout)
      r = h.prisn({ "get", "jobs", "--state", "done" }, { env = env })
      assert.equal(2, r.code)
    end)

    it("shows one job by a unique prefix of its id", function()
      local prefix = common_prefix(id.a, id.b)
      local unique = id.a:sub(1, #prefix + 1)
      local r = h.prisn({ "get", "job", unique }, { env = env })
      assert.equal(0, r.code, r.stderr)
      assert.matches("^Id:%s+" .. id.a .. "\n", r.stdout)
      assert.matches("\nState:%s+succeeded\n", r.stdout)
      assert.matches("\nExit code:%s+0\n", r.stdout)
      assert.matches("\nEnv keys:%s+TOKEN\n", r.stdout)
      assert.matches("\nDuration:%s+1%.5s\n", r.stdout)
      r = h.prisn({ "get", "job", id.a, "-o", "json" }, { env = env })
      local job = cjson.decode(r.stdout)
      assert.equal(id.a, job.id)
      assert.equal("2026-11-20T08:00:00.000Z", job.created_at)
      assert.equal(cjson.null, job.signal)
    end)

    it("refuses an ambiguous prefix, listing the jobs it matches", function()
      local prefix = common_prefix(id.a, id.b)
      local r = h.prisn({ "get", "job", prefix }, { env = env })
      assert.equal(1, r.code)
      assert.equal("", r.stdout)
      assert.equal(string.format("Error: job id '%s' matches 2 jobs: %s, %s\n", prefix, id.b, id.a)
        .. "Hint: give more characters of the id\n", r.stderr)
    end)

    it("says a job is not found, or which namespace it is in", function()
      local r = h.prisn({ "get", "job", "zzzz" }, { env = env })
      assert.equal(1, r.code)
      assert.equal("Error: job 'zzzz' not found in namespace 'default'\n"
        .. "Hint: list the jobs with 'prisn get jobs' (add -A for every namespace)\n", r.stderr)
      r = h.prisn({ "get", "job", id.d }, { env = env })
      assert.equal(1, r.code)
      assert.equal(string.format("Error: job '%s' not found in namespace 'default'\n", id.d)
        .. string.format("Hint: job %s is in namespace 'ops': add -n ops\n", id.d), r.stderr)
      assert.equal(0, h.prisn({ "get", "job", id.d, "-n", "ops" }, { env = env }).code)
    end)

    it("prints a job's stdout to stdout and its stderr to stderr", function()
      for _, target in ipairs({ "job/" .. id.a, id.a, "job/" .. id.a:sub(1, 11) }) do
        local r = h.prisn({ "logs", target }, { env = env })
        assert.equal(0, r.code, r.stderr)
        assert.equal("out 1\nout 2\n", r.stdout)
        assert.equal("err 1\n", r.stderr)
      end
      local r = h.prisn({ "logs", "job/" .. id.a, "--stream", "stderr" }, { env = env })
      assert.equal("", r.stdout)
      assert.equal("err 1\n", r.stderr)
      r = h.prisn({ "logs", "job/" .. id.d, "-n", "ops" }, { env = env })
      assert.equal(0, r.code, r.stderr)
      assert.equal("", r.stdout)
    end)

    it("shows the last lines with --tail, and times with --timestamps", function()
      local r = h.prisn({ "logs", "job/" .. id.a, "--tail", "1" }, { env = env })
      assert.equal(0, r.code, r.stderr)
      assert.equal("out 2\n", r.stdout)
      assert.equal("", r.stderr)
      r = h.prisn({ "logs", "job/" .. id.a, "--tail", "2", "--stream", "stdout", "--timestamps" }, { env = env })
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ out 1\n"
        .. "%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ out 2\n$", r.stdout)
      r = h.prisn({ "logs", "job/" .. id.c, "--tail", "3" }, { env = env })
      assert.equal("line 098\nline 099\nline 100\n", r.stdout)
      assert.equal("", r.stderr)
    end)

    it("notes on stderr when older output was dropped, unless -q", function()
      local r = h.prisn({ "logs", "job/" .. id.c }, { env = env })
      assert.equal(0, r.code, r.stderr)
      assert.equal("Note: older output was dropped; the log keeps the last 1K\n", r.stderr)
      assert.matches("line 100\n$", r.stdout)
      assert.is_nil(r.stdout:find("line 001", 1, true))
      r = h.prisn({ "logs", "job/" .. id.c, "-q" }, { env = env })
      assert.equal("", r.stderr)
      r = h.prisn({ "logs", "job/" .. id.c, "-o", "json" }, { env = env })
      local data = cjson.decode(r.stdout)
      assert.is_true(data.truncated)
      assert.equal("line 100\n", data.records[#data.records].data)
      assert.equal("stdout", data.records[1].stream)
    end)

    it("names the supported forms for logs of other kinds", function()
      local r = h.prisn({ "logs", "cron/x" }, { env = env })
      assert.equal(2, r.code)
      assert.equal("Error: cannot show logs of 'cron/x': logs are kept for jobs and deployments\n"
        .. "Hint: use 'prisn logs job/ID' or 'prisn logs deploy/NAME' (or just the id or name); "
        .. "'prisn get jobs' lists the ids\n", r.stderr)
    end)
  end)
end)
