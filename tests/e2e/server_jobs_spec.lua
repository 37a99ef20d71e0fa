-- Jobs through the server: detached runs, following, secrets, deletion,
-- the bounded queue, events, metrics, remote runs, and a kill -9 of the
-- server in the middle of it all.
local h = require("e2e.helper")
local read, write, alive = h.read, h.write, h.alive
local cjson = require("cjson")
local uv = require("luv")

-- Every file below `dir`, recursively.
local function files_below(dir, out)
  out = out or {}
  local scanner = uv.fs_scandir(dir)
  while scanner do
    local name, kind = uv.fs_scandir_next(scanner)
    if not name then break end
    local path = dir .. "/" .. name
    if kind == "directory" then files_below(path, out) elseif kind == "file" then out[#out + 1] = path end
  end
  return out
end

describe("jobs through the server", function()
  local env, home, dir

  local function prisn(args, opts)
    opts = opts or {}
    opts.env = opts.env or env
    return h.prisn(args, opts)
  end

  local function job(id)
    local r = prisn({ "get", "job", id, "-o", "json" })
    assert.equal(0, r.code, r.stderr)
    return cjson.decode(r.stdout)
  end

  local function wait_for(pred, ms)
    local deadline = uv.now() + (ms or 10000)
    while uv.now() < deadline do
      if pred() then return true end
      uv.sleep(50)
      uv.update_time()
    end
    return false
  end

  local function start_server(extra)
    for k, v in pairs(extra or {}) do env[k] = v end
    local r = prisn({ "server", "start", "-q" })
    assert.equal(0, r.code, r.stderr)
  end

  before_each(function()
    env = h.env()
    home = env.PRISN_HOME
    dir = h.tempdir("prisn-jobs")
  end)

  after_each(function()
    h.stop_server(env)
    h.cleanup()
  end)

  it("runs a detached job: id alone on stdout, output followed, events recorded", function()
    start_server()
    write(dir .. "/tick.py", "import sys, time\nfor i in range(3):\n    print('tick', i, flush=True)\n"
      .. "    time.sleep(0.2)\nprint('done', file=sys.stderr)\nsys.exit(4)\n")
    local r = prisn({ "run", "--detach", dir .. "/tick.py" })
    assert.equal(0, r.code, r.stderr)
    local id = r.stdout:match("^(%w+)\n$")
    assert.is_string(id, "stdout was: " .. r.stdout)
    local follow = prisn({ "logs", "-f", "job/" .. id })
    assert.equal(0, follow.code, follow.stderr)
    assert.equal("tick 0\ntick 1\ntick 2\n", follow.stdout)
    assert.matches("^done\n", follow.stderr)
    local j = job(id)
    assert.same({ "failed", "exited", 4 }, { j.state, j.reason, j.exit_code })
    local events = cjson.decode(prisn({ "events", "--for", "job/" .. id, "-o", "json" }).stdout)
    local actions = {}
    for _, e in ipairs(events) do actions[#actions + 1] = e.action end
    assert.same({ "job.created", "job.started", "job.finished" }, actions)
  end)

  it("gives a detached job its secret without keeping the value anywhere", function()
    start_server()
    local value = "hunter2-" .. string.format("%08x", math.random(0, 0x7fffffff))
    local set = prisn({ "secret", "set", "db", "PASSWORD=" .. value })
    assert.equal(0, set.code, set.stderr)
    write(dir .. "/check.py", "import hashlib, os\n"
      .. "print(hashlib.sha256(os.environ['PASSWORD'].encode()).hexdigest())\n")
    local r = prisn({ "run", "--detach", "--secret", "db", dir .. "/check.py" })
    assert.equal(0, r.code, r.stderr)
    local id = r.stdout:match("^(%w+)")
    local out = prisn({ "logs", "-f", "job/" .. id })
    local expected = h.run("/usr/bin/python3", { "-c",
      "import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())", value },
      { env = { PATH = "/usr/bin:/bin" } }).stdout
    assert.equal(expected, out.stdout)
    assert.equal("succeeded", job(id).state)
    -- Let the server write what it writes, then look at every byte it keeps.
    prisn({ "server", "stop" })
    for _, path in ipairs(files_below(home)) do
      assert.is_nil((read(path) or ""):find(value, 1, true), "the secret value is in " .. path)
    end
  end)

  -- A runner's memory holds what went through the job host before it was
  -- forked: other jobs' -e values, of any namespace. Its sandbox's init may
  -- be a copy of it (the init in place) only where the workload cannot read
  -- that copy: the default unprivileged workload user. A workload that stays
  -- root gets an exec'd init (prisn.exec.job_runner.init_in_place_allowed).
  it("a workload cannot read another job's -e value in its pid 1's memory, root or not", function()
    if uv.getuid() ~= 0 then return pending("needs root (the workload user is switched only by a root server)") end
    if not require("prisn.exec.isolation").probe().ok then return pending("no namespaces here") end
    -- Prints pid 1's command line, then whether the marker (given reversed,
    -- so the job's own spec does not hold it) is anywhere in its memory,
    -- read a MiB at a time; mappings over a GiB are a sanitizer build's
    -- shadow (terabytes, nothing of the init's own).
    write(dir .. "/scan.py", "import os\nmark = os.environ['MARK_REV'][::-1].encode()\n"
      .. "print(open('/proc/1/cmdline', 'rb').read().replace(b'\\0', b' ').decode().strip())\n"
      .. "try:\n    mem = open('/proc/1/mem', 'rb', 0)\nexcept OSError:\n    print('denied')\n    raise SystemExit\n"
      .. "found = False\nfor line in open('/proc/1/maps'):\n    f = line.split()\n"
      .. "    a, b = (int(x, 16) for x in f[0].split('-'))\n"
      .. "    if 'r' not in f[1] or b - a > 1 << 30:\n        continue\n"
      .. "    try:\n        mem.seek(a)\n        tail = b''\n"
      .. "        while a < b and not found:\n            n = min(b - a, 1 << 20)\n"
      .. "            chunk = tail + mem.read(n)\n            found = mark in chunk\n"
      .. "            tail = chunk[-len(mark):]\n            a += n\n    except OSError:\n        pass\n"
      .. "print('found' if found else 'not found')\n")
    write(dir .. "/other.sh", "true\n")
    assert(uv.fs_chmod(dir, tonumber("755", 8)))
    assert(uv.fs_chmod(dir .. "/scan.py", tonumber("755", 8)))
    local function scan()
      local mark = "leak-" .. string.format("%08x", math.random(0, 0x7fffffff))
      local other = prisn({ "run", "-d", "--isolation", "1", "-n", "other", "-e", "TOKEN=" .. mark,
        dir .. "/other.sh" })
      assert.equal(0, other.code, other.stderr)
      local oid = other.stdout:match("^(%w+)")
      assert.is_true(wait_for(function()
        return prisn({ "get", "job", oid, "-n", "other", "-o", "json" }).stdout:find('"succeeded"', 1, true) ~= nil
      end))
      local r = prisn({ "run", "-d", "--isolation", "1", "-e", "MARK_REV=" .. mark:reverse(), dir .. "/scan.py" })
      assert.equal(0, r.code, r.stderr)
      local follow = prisn({ "logs", "-f", "job/" .. r.stdout:match("^(%w+)") })
      assert.equal(0, follow.code, follow.stderr)
      assert.equal("", follow.stderr)
      return follow.stdout
    end
    -- Root: pid 1 is prisn exec'd in init mode, which holds nothing of the
    -- runner's (an init in place would: the marker is found there then).
    start_server({ PRISN_WORKLOAD_USER = "0:0" })
    assert.matches("^prisn%-init __sandbox%-init [%d ]+\nnot found\n$", scan())
    h.stop_server(env)
    -- Unprivileged (the default): the init in place, whose memory the
    -- workload cannot open.
    start_server({ PRISN_WORKLOAD_USER = "" })
    assert.equal("prisn-init\ndenied\n", scan())
  end)

  -- The jobs below write host pids into the test's directory (0700, root's):
  -- level 0, as the server's own user. Level 1 jobs: tests/e2e/isolation_spec.lua.
  it("stops a running job that is deleted, and removes a finished one", function()
    start_server()
    write(dir .. "/sleep.sh", "echo $$ > " .. dir .. "/pid\nsleep 30\n")
    local id = prisn({ "run", "-d", "--isolation", "0", dir .. "/sleep.sh" }).stdout:match("^(%w+)")
    assert.is_true(wait_for(function() return read(dir .. "/pid") ~= nil end))
    local pid = tonumber(read(dir .. "/pid"))
    local del = prisn({ "delete", "job", id })
    assert.equal(0, del.code, del.stderr)
    assert.is_true(wait_for(function() return job(id).state == "failed" end))
    assert.equal("deleted", job(id).reason)
    assert.is_true(wait_for(function() return not alive(pid) end), "the job's process is still running")
    local purge = prisn({ "delete", "job", id })
    assert.equal(0, purge.code, purge.stderr)
    assert.equal(1, prisn({ "get", "job", id }).code)
  end)

  it("answers 429 when the queue is full and drops no accepted job", function()
    start_server({ PRISN_MAX_RUNNING_JOBS = "1", PRISN_MAX_QUEUED_JOBS = "1" })
    write(dir .. "/short.sh", "sleep 0.5\n")
    local first = prisn({ "run", "-d", dir .. "/short.sh" })
    local second = prisn({ "run", "-d", dir .. "/short.sh" })
    local third = prisn({ "run", "-d", dir .. "/short.sh" })
    assert.equal(0, first.code, first.stderr)
    assert.equal(0, second.code, second.stderr)
    assert.equal(1, third.code)
    assert.matches("^Error: the job queue is full", third.stderr)
    local info = cjson.decode(read(home .. "/server.json"))
    local token = read(home .. "/admin.token"):gsub("%s+$", "")
    local raw = h.run("/usr/bin/curl", { "-s", "-i", "--cacert", home .. "/ca.crt", "-X", "POST",
      "-H", "Authorization: Bearer " .. token,
      "-H", "Content-Type: application/json", "--data-binary",
      cjson.encode({ script = dir .. "/short.sh" }), info.address .. "/api/v1/namespaces/default/jobs" },
      { env = { PATH = "/usr/bin:/bin" } })
    assert.matches("^HTTP/1%.1 429 ", raw.stdout)
    assert.matches("\r\nRetry%-After: 1\r\n", raw.stdout)
    for _, r in ipairs({ first, second }) do
      local id = r.stdout:match("^(%w+)")
      assert.is_true(wait_for(function() return job(id).state == "succeeded" end), "job " .. id)
    end
  end)

  local function ppid_of(pid)
    local status = read("/proc/" .. pid .. "/status") or ""
    return tonumber(status:match("PPid:%s*(%d+)"))
  end

  local function kill9_server()
    local server_pid = math.tointeger(cjson.decode(read(home .. "/server.json")).pid)
    uv.kill(server_pid, "sigkill")
    assert.is_true(wait_for(function() return not alive(server_pid) end))
  end

  it("re-adopts a running job after kill -9 of the server and runs a queued one once", function()
    start_server({ PRISN_MAX_RUNNING_JOBS = "1" })
    write(dir .. "/long.sh", "echo $$ > " .. dir .. "/long.pid\nsleep 2\necho finished\n")
    write(dir .. "/next.sh", "echo ran >> " .. dir .. "/next.count\n")
    local long = prisn({ "run", "-d", "--isolation", "0", dir .. "/long.sh" }).stdout:match("^(%w+)")
    local nxt = prisn({ "run", "-d", "--isolation", "0", dir .. "/next.sh" }).stdout:match("^(%w+)")
    assert.is_true(wait_for(function() return read(dir .. "/long.pid") ~= nil end))
    assert.equal("queued", job(nxt).state)
    kill9_server()
    start_server()
    -- The job ran on through the restart, was recorded by its runner, and
    -- only then did the queued one get the slot.
    assert.is_true(wait_for(function() return job(nxt).state == "succeeded" end, 15000))
    local l = job(long)
    assert.same({ "succeeded", "exited", 0 }, { l.state, l.reason, l.exit_code })
    assert.equal("finished\n", prisn({ "logs", "job/" .. long }).stdout)
    assert.equal("ran\n", read(dir .. "/next.count"))
    assert.equal(2, #cjson.decode(prisn({ "get", "jobs", "-o", "json" }).stdout))
  end)

  it("records the outcome a runner told a server that was killed before it wrote it down", function()
    start_server()
    write(dir .. "/wait.sh", "while [ ! -f " .. dir .. "/go ]; do sleep 0.02; done\necho done\nexit 7\n")
    local id = prisn({ "run", "-d", "--isolation", "0", dir .. "/wait.sh" }).stdout:match("^(%w+)")
    assert.is_true(wait_for(function() return job(id).state == "running" end))
    local server_pid = math.tointeger(cjson.decode(read(home .. "/server.json")).pid)
    -- A stopped server reads nothing: the runner's report waits in the pipe.
    uv.kill(server_pid, "sigstop")
    write(dir .. "/go", "")
    local claim = require("prisn.exec.job_lock").claim_name(home, id)
    assert.is_number(require("prisn.core.sys").claimant(claim), "the runner holds its job's claim")
    assert.is_true(wait_for(function() return require("prisn.core.sys").claimant(claim) == false end),
      "the runner did not finish")
    kill9_server()
    start_server()
    local j = job(id)
    assert.same({ "failed", "exited", 7 }, { j.state, j.reason, j.exit_code })
    assert.equal("done\n", prisn({ "logs", "job/" .. id }).stdout)
    assert.matches("1 outcome%(s%) recorded from job logs", read(home .. "/server.log"))
  end)

  it("fails a job whose runner died with the server, and stops what is left of it", function()
    start_server()
    write(dir .. "/long.sh", "echo $$ > " .. dir .. "/long.pid\nsleep 30\n")
    local long = prisn({ "run", "-d", "--isolation", "0", dir .. "/long.sh" }).stdout:match("^(%w+)")
    assert.is_true(wait_for(function() return read(dir .. "/long.pid") ~= nil end))
    local script_pid = tonumber(read(dir .. "/long.pid"))
    local runner_pid = ppid_of(script_pid)
    kill9_server()
    uv.kill(runner_pid, "sigkill")
    assert.is_true(wait_for(function() return not alive(runner_pid) end))
    start_server()
    local l = job(long)
    assert.same({ "failed", "server_restarted" }, { l.state, l.reason })
    assert.is_true(wait_for(function() return not alive(script_pid) end), "the job's process survived")
  end)

  it("forks runners from one job host, replaces a killed host, and execs runners without one", function()
    start_server()
    write(dir .. "/pid.sh", "echo $PPID\n")
    local function run_one()
      local id = prisn({ "run", "-d", "--isolation", "0", dir .. "/pid.sh" }).stdout:match("^(%w+)")
      assert.is_true(wait_for(function() return job(id).state == "succeeded" end))
      -- The script's parent is its runner.
      local runner = tonumber(prisn({ "logs", "job/" .. id }).stdout)
      return runner
    end
    -- The processes of this home named `name` (in /proc/PID/stat).
    local function named(name)
      local pids = {}
      for _, entry in ipairs(require("prisn.fs").list_dir("/proc")) do
        local pid = tonumber(entry.name)
        local stat = pid and read("/proc/" .. pid .. "/stat") or ""
        local environ = pid and read("/proc/" .. pid .. "/environ") or ""
        if stat:find("(" .. name .. ")", 1, true) and environ:find("PRISN_HOME=" .. home .. "\0", 1, true)
          and alive(pid) then
          pids[#pids + 1] = pid
        end
      end
      return pids
    end
    local function host_pids() return named("prisn-jobhost") end
    run_one()
    local hosts = host_pids()
    assert.equal(1, #hosts, "one job host")
    -- Once no job has come for a moment, one runner waits for the next.
    assert.is_true(wait_for(function() return #named("prisn-job") == 1 end), "a spare runner")
    uv.kill(hosts[1], "sigkill")
    assert.is_true(wait_for(function() return not alive(hosts[1]) end))
    run_one() -- a new host forks it
    local after = host_pids()
    assert.equal(1, #after)
    assert.are_not.equal(hosts[1], after[1])
    h.stop_server(env)
    assert.is_true(wait_for(function() return #host_pids() == 0 end), "the host leaves with the server")
    assert.is_true(wait_for(function() return #named("prisn-job") == 0 end), "the spare leaves with the host")

    start_server({ PRISN_JOB_HOST = "0" })
    local runner = run_one()
    assert.equal(0, #host_pids())
    assert.is_number(runner)
  end)

  it("serves /metrics that promtool accepts", function()
    start_server()
    write(dir .. "/ok.sh", "true\n")
    local id = prisn({ "run", "-d", dir .. "/ok.sh" }).stdout:match("^(%w+)")
    assert.is_true(wait_for(function() return job(id).state == "succeeded" end))
    local info = cjson.decode(read(home .. "/server.json"))
    local token = read(home .. "/admin.token"):gsub("%s+$", "")
    local r
    local function scrape()
      r = h.run("/usr/bin/curl", { "-sf", "--cacert", home .. "/ca.crt", "-H", "Authorization: Bearer " .. token,
        info.address .. "/metrics" },
        { env = { PATH = "/usr/bin:/bin" } })
      assert.equal(0, r.code, r.stderr)
      return r.stdout
    end
    -- The server checkpoints state.db on its thread within a second or two
    -- of the job's writes.
    assert.is_true(wait_for(function()
      return tonumber(scrape():match("prisn_state_checkpoint_duration_seconds_count (%d+)") or "0") >= 1
    end, 5000), "no checkpoint of state.db")
    assert.is_truthy(r.stdout:find("prisn_state_checkpoint_failures_total 0", 1, true))
    for _, name in ipairs({ "prisn_api_requests_total", "prisn_api_request_duration_seconds_bucket",
      "prisn_jobs{state=\"succeeded\"} 1", "prisn_job_duration_seconds_count 1", "prisn_queue_depth",
      "process_resident_memory_bytes" }) do
      assert.is_truthy(r.stdout:find(name, 1, true), name .. " missing from /metrics")
    end
    if not uv.fs_stat("/usr/bin/promtool") then
      pending("promtool (Debian package prometheus) is not installed")
      return
    end
    local check = h.run("/usr/bin/promtool", { "check", "metrics" }, { stdin = r.stdout,
      env = { PATH = "/usr/bin:/bin" } })
    assert.equal(0, check.code, check.stdout .. check.stderr)
  end)

  it("runs a script on a remote server with plain 'prisn run', streaming and exiting with its code", function()
    start_server()
    local info = cjson.decode(read(home .. "/server.json"))
    local token = read(home .. "/admin.token"):gsub("%s+$", "")
    write(dir .. "/remote.py", "import sys\nprint('on the server')\nsys.exit(7)\n")
    -- another home: the server's CA is pinned by its fingerprint
    local client_env = h.env({ PRISN_SERVER = info.address .. "#sha256=" .. info.ca_fingerprint, PRISN_TOKEN = token })
    local r = h.prisn({ "run", dir .. "/remote.py" }, { env = client_env })
    assert.equal(7, r.code, r.stderr)
    assert.equal("on the server\n", r.stdout)
    -- It ran on the server: the job is in the server's records, and the
    -- client reads it (list, one job, its log) through the API.
    assert.equal(1, #cjson.decode(prisn({ "get", "jobs", "-o", "json" }).stdout))
    local remote_list = h.prisn({ "get", "jobs", "-o", "json" }, { env = client_env })
    assert.equal(0, remote_list.code, remote_list.stderr)
    local jobs = cjson.decode(remote_list.stdout)
    assert.equal(1, #jobs)
    assert.same({ "failed", 7 }, { jobs[1].state, jobs[1].exit_code })
    local one = h.prisn({ "get", "job", jobs[1].id }, { env = client_env })
    assert.equal(0, one.code, one.stderr)
    assert.matches("Exit code:%s+7", one.stdout)
    local logs = h.prisn({ "logs", "job/" .. jobs[1].id }, { env = client_env })
    assert.equal("on the server\n", logs.stdout)
  end)
end)
