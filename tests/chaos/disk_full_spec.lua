-- Chaos: $PRISN_HOME on a 2 MB tmpfs that fills up under the server, with
-- jobs running and deployments restarting, then gets its space back.
--
-- While full: API writes answer 507 insufficient_storage (never 500),
-- /health answers 503 "degraded" with the reason, /api/v1/status names
-- it, and the server keeps answering. Once the filler is deleted: every job
-- reaches its final state with its real outcome, the instance records match
-- the live processes, /health is ok again, state.db passes
-- PRAGMA integrity_check, and nothing refused was half written.
--
-- Needs root (mount); skipped, visibly, where mount is not permitted.
-- PRISN_CHAOS_LONG=1 runs more jobs and keeps the disk full longer.
local h = require("e2e.helper")
local cjson = require("cjson")
local uv = require("luv")

local LONG = os.getenv("PRISN_CHAOS_LONG") == "1"
local JOBS = LONG and 24 or 6
local FULL_SECONDS = LONG and 20 or 3

-- Appends to a file for ever; on ENOSPC tries again a millisecond later.
local REFILLER = [[
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
block = bytes(4096)
while True:
    try:
        os.write(fd, block)
    except OSError:
        time.sleep(0.001)
]]

local function sleep_ms(ms) uv.sleep(ms); uv.update_time() end

local function wait_for(pred, ms)
  local deadline = uv.now() + ms
  while true do
    local v = pred()
    if v then return v end
    if uv.now() >= deadline then return nil end
    sleep_ms(100)
  end
end

describe("chaos: a full disk under $PRISN_HOME", function()
  local mnt, mounted, env, home, dir, token, skip, refill_group

  -- Kills the refiller (its whole session), by pid.
  local function stop_refiller()
    if not refill_group then return end
    uv.kill(-refill_group, "sigkill")
    refill_group = nil
    uv.run("nowait")
    sleep_ms(50)
  end

  -- curl on the server's socket: status, decoded body (or the raw text).
  local function call(method, path, body)
    local args = { "-s", "--max-time", "5", "--unix-socket", home .. "/prisn.sock", "-X", method,
      "-H", "Authorization: Bearer " .. token, "-w", "\n%{http_code}", "http://localhost" .. path }
    if body then
      table.insert(args, 1, cjson.encode(body))
      table.insert(args, 1, "--data")
    end
    local r = h.run("/usr/bin/curl", args, { env = { PATH = "/usr/bin:/bin" } })
    local text, status = r.stdout:match("^(.*)\n(%d+)$")
    local ok, decoded = pcall(cjson.decode, text or "")
    return tonumber(status), ok and decoded or text
  end

  local function prisn(args, opts)
    opts = opts or {}
    opts.env = env
    return h.prisn(args, opts)
  end

  before_each(function()
    if not uv.fs_stat("/usr/bin/python3") then
      skip = "needs /usr/bin/python3 (the refiller that keeps the disk full)"
      return
    end
    mnt = h.tempdir("prisn-chaos-disk")
    local r = h.run("/bin/mount", { "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt },
      { env = { PATH = "/usr/bin:/bin:/usr/sbin:/sbin" } })
    mounted = r.code == 0
    if not mounted then
      skip = "mount -t tmpfs is not permitted here (" .. (r.stderr:match("[^\n]*") or "") .. "); run as root"
      return
    end
    env = h.env({ PRISN_HOME = mnt .. "/home", PRISN_MAX_RUNNING_JOBS = tostring(JOBS + 4),
      PRISN_STOP_GRACE_SECONDS = "1" })
    home = env.PRISN_HOME
    dir = h.tempdir("prisn-chaos-scripts")
    -- Workloads of a root server run as an unprivileged user.
    assert(uv.fs_chmod(dir, tonumber("755", 8)))
    h.write(dir .. "/job.sh", "#!/bin/sh\nsleep \"$1\"\necho \"job $2 done\"\nexit \"$2\"\n", tonumber("755", 8))
  end)

  after_each(function()
    stop_refiller()
    if env then h.stop_server(env) end
    if mounted then
      local r = h.run("/bin/umount", { mnt }, { env = { PATH = "/usr/bin:/bin" } })
      -- Something still holds it: detach it now, it goes when released.
      if r.code ~= 0 then h.run("/bin/umount", { "-l", mnt }, { env = { PATH = "/usr/bin:/bin" } }) end
    end
    mounted, env = false, nil
    h.cleanup()
  end)

  local function start_server()
    local r = prisn({ "server", "start", "-q" })
    assert.equal(0, r.code, r.stderr)
    token = assert(h.read(home .. "/admin.token")):match("%S+")
  end

  -- Fills the disk and keeps it full: a process in a session of its own
  -- takes every page freed (a runner's lock file, a temporary file) within
  -- a millisecond, as a busy disk would. A reserve made first is what `free` gives
  -- back for sure: the WAL may have taken a few pages the refiller lost.
  local function fill()
    local fs = assert(uv.fs_statfs(mnt))
    h.write(mnt .. "/reserve", string.rep("\0", math.min(512 * 1024, fs.bavail * fs.bsize // 2)))
    local handle, pid = uv.spawn("/usr/bin/python3", { args = { "-c", REFILLER, mnt .. "/filler" },
      detached = true }, function() end)
    assert(handle, pid)
    refill_group = pid
    assert.truthy(wait_for(function()
      local st = uv.fs_statfs(mnt)
      return st and st.bavail == 0
    end, 5000), "the disk did not fill")
  end

  local function free()
    stop_refiller()
    assert(os.remove(mnt .. "/filler"))
    assert(os.remove(mnt .. "/reserve"))
  end

  -- Writes through the API until the disk refuses them for good (state.db
  -- keeps taking writes while its WAL has room and checkpoints can move it
  -- into the database file; large rows leave neither): each answer is a
  -- success or 507, never a 500. Few are accepted (300 KB), so that the
  -- reserve given back holds what the WAL must move into the database. Returns the names accepted, the names refused
  -- and the last 507's body.
  local function refuse_writes()
    local accepted, refused, full_body, refused_since = {}, {}, nil, nil
    for i = 1, 2000 do
      if #accepted >= 10 and full_body then break end
      local name = "s" .. i
      local status, body = call("PUT", "/api/v1/namespaces/default/secrets/" .. name,
        { data = { V = string.rep("v", 30000) } })
      assert.is_true(status == 200 or status == 201 or status == 507, "secret " .. name .. ": " .. tostring(status)
        .. " " .. cjson.encode(body))
      if status == 507 then
        refused[#refused + 1] = name
        full_body = body
        refused_since = refused_since or uv.now()
        if uv.now() - refused_since > 2500 then break end
        sleep_ms(100)
      else
        accepted[#accepted + 1] = name
        refused_since = nil
      end
    end
    assert.truthy(full_body, "the disk never refused a write")
    return accepted, refused, full_body
  end

  it("answers 507 and degraded while full, and finishes every job once space returns", function()
    if skip then return pending(skip) end
    start_server()

    -- A steady, chatty service (its output goes to logs that cannot be
    -- written for a while) and one that keeps crashing (its restarts are
    -- state changes recorded while the disk is full).
    h.write(dir .. "/steady.sh", "#!/bin/sh\nwhile :; do echo tick; sleep 0.05; done\n", tonumber("755", 8))
    h.write(dir .. "/flappy.sh", "#!/bin/sh\necho flap\nsleep 0.3\nexit 3\n", tonumber("755", 8))
    local r = prisn({ "deploy", dir .. "/steady.sh", "--name", "steady", "--health", "none" })
    assert.equal(0, r.code, r.stderr)
    r = prisn({ "deploy", dir .. "/flappy.sh", "--name", "flappy", "--health", "none", "--no-wait" })
    assert.equal(0, r.code, r.stderr)

    -- Jobs that end while the disk is full, each with its own exit status.
    local expected = {} -- job id -> exit code
    for i = 1, JOBS do
      local status, job = call("POST", "/api/v1/namespaces/default/jobs",
        { script = dir .. "/job.sh", args = { "2", tostring(i % 4) } })
      assert.equal(201, status, cjson.encode(job))
      expected[job.id] = i % 4
    end

    fill()
    -- API writes are refused with 507 and the hint, never a 500; what was
    -- accepted meanwhile must be kept whole.
    local accepted, refused, full_body = refuse_writes()
    assert.equal("insufficient_storage", full_body.error.code)
    assert.matches("^cannot write state%.db: the disk is full %(SQLITE_FULL%)$", full_body.error.message)
    assert.matches("^free space under %$PRISN_HOME", full_body.error.hint)

    -- A job and a deployment change are refused the same way.
    local status, body = call("POST", "/api/v1/namespaces/default/jobs",
      { script = dir .. "/job.sh", args = { "0", "0" } })
    assert.is_true(status == 507 or status == 201, tostring(status) .. " " .. cjson.encode(body))
    if status == 201 then expected[body.id] = 0 end
    -- The CLI says it as an error with the hint, not an internal error.
    r = prisn({ "secret", "set", "cli", "V=1" })
    if r.code ~= 0 then
      assert.equal(1, r.code)
      assert.matches("^Error: cannot write state%.db: the disk is full %(SQLITE_FULL%)\nHint: free space under ",
        r.stderr)
      refused[#refused + 1] = "cli"
    end
    status, body = call("POST", "/api/v1/namespaces/default/deployments",
      { name = "late", script = dir .. "/steady.sh", health = "none" })
    assert.is_true(status == 507 or status == 201, tostring(status) .. " " .. cjson.encode(body))
    local late_created = status == 201

    -- Degraded, saying why, and still answering.
    local health = wait_for(function()
      local s, b = call("GET", "/health")
      return s == 503 and b
    end, 5000)
    assert.truthy(health, "/health never said degraded")
    assert.equal("degraded", health.status)
    assert.matches("^state%.db: disk full %(SQLITE_FULL%) since ", health.reason)
    local st = select(2, call("GET", "/api/v1/status"))
    assert.equal("degraded", st.health)
    local named = false
    for _, p in ipairs(st.problems) do named = named or p:find("state.db: disk full (SQLITE_FULL) since", 1, true) end
    assert.truthy(named, cjson.encode(st.problems))

    -- An instance killed while full is restarted (its state kept in memory).
    local steady = select(2, call("GET", "/api/v1/namespaces/default/deployments/steady"))
    local old_pid = steady.instances[1].pid
    uv.kill(old_pid, "sigkill")

    -- The jobs end while the disk is still full: their outcomes wait, the
    -- jobs stay running as recorded, and the server stays degraded.
    sleep_ms(FULL_SECONDS * 1000)
    local waiting = 0
    for id in pairs(expected) do
      local _, job = call("GET", "/api/v1/namespaces/default/jobs/" .. id)
      if job.state == "running" or job.state == "queued" then waiting = waiting + 1 end
    end
    assert.is_true(waiting > 0, "every job was recorded while the disk was full")
    assert.truthy(wait_for(function() return call("GET", "/health") == 503 end, 3000))

    -- Space returns.
    free()

    local ok = wait_for(function() return call("GET", "/health") == 200 end, 15000)
    assert.truthy(ok, "/health did not come back to ok")

    -- Every job reaches its final state, with its own outcome.
    local final = wait_for(function()
      local all = {}
      for id in pairs(expected) do
        local _, job = call("GET", "/api/v1/namespaces/default/jobs/" .. id)
        if job.state ~= "succeeded" and job.state ~= "failed" then return nil end
        all[id] = job
      end
      return all
    end, 15000)
    assert.truthy(final, "some job did not finish after space returned")
    for id, code in pairs(expected) do
      local job = final[id]
      assert.equal(code, job.exit_code, id)
      assert.equal(code == 0 and "succeeded" or "failed", job.state, id)
      assert.equal("exited", job.reason, id)
    end

    -- The restarted instance is running, and recorded so.
    local restarted = wait_for(function()
      local d = select(2, call("GET", "/api/v1/namespaces/default/deployments/steady"))
      local inst = d.instances and d.instances[1]
      return inst and inst.pid ~= old_pid and inst.state == "running" and inst
    end, 10000)
    assert.truthy(restarted, "the killed instance was not restarted")

    -- What was refused is not there; what was accepted is whole.
    for _, name in ipairs(refused) do
      assert.equal(404, (call("GET", "/api/v1/namespaces/default/secrets/" .. name)), name)
    end
    for _, name in ipairs(accepted) do
      assert.equal(200, (call("GET", "/api/v1/namespaces/default/secrets/" .. name)), name)
    end
    if not late_created then
      assert.equal(404, (call("GET", "/api/v1/namespaces/default/deployments/late")))
    end

    -- The spell is on record and counted.
    local events = select(2, call("GET", "/api/v1/events?limit=1000"))
    local actions = {}
    for _, e in ipairs(events.items or events) do actions[e.action] = true end
    assert.truthy(actions["server.degraded"])
    assert.truthy(actions["server.recovered"])
    local _, metrics = call("GET", "/metrics")
    assert.matches("\nprisn_state_degraded 0\n", metrics)
    assert.truthy(tonumber(metrics:match("\nprisn_state_write_errors_total (%d+)")) > 0)
    local st2 = select(2, call("GET", "/api/v1/status"))
    for _, p in ipairs(st2.problems) do assert.is_nil(p:find("disk full", 1, true), p) end

    -- The instance record in state.db matches the live process.
    local db = assert(require("prisn.core.store").open(home .. "/state.db", { readonly = true }))
    local row = db:first("SELECT state, pid FROM instances WHERE deployment = 'steady'")
    assert.same({ "running", restarted.pid }, { row.state, row.pid })
    local left = db:first("SELECT count(*) AS n FROM job_specs").n
    assert.equal(0, left)
    db:close()

    -- Stopped, the database is whole.
    h.stop_server(env)
    db = assert(require("prisn.core.store").open(home .. "/state.db", { readonly = true }))
    assert.equal("ok", db:first("PRAGMA integrity_check").integrity_check)
    db:close()
  end)

  it("stops while full without waiting for what it cannot write, and the job ends at the next start", function()
    if skip then return pending(skip) end
    start_server()
    local status, job = call("POST", "/api/v1/namespaces/default/jobs",
      { script = dir .. "/job.sh", args = { "1", "3" } })
    assert.equal(201, status, cjson.encode(job))
    fill()
    refuse_writes()
    -- The job ends while its outcome cannot be written.
    sleep_ms(1500)
    local _, now = call("GET", "/api/v1/namespaces/default/jobs/" .. job.id)
    assert.is_true(now.state == "queued" or now.state == "running", now.state)

    local started = uv.now()
    local r = prisn({ "server", "stop", "--timeout", "20s" }, { timeout_ms = 30000 })
    assert.equal(0, r.code, r.stderr)
    assert.is_true(uv.now() - started < 8000, "the stop took " .. (uv.now() - started) .. " ms")

    free()
    start_server()
    local final = wait_for(function()
      local _, j = call("GET", "/api/v1/namespaces/default/jobs/" .. job.id)
      return (j.state == "succeeded" or j.state == "failed") and j
    end, 10000)
    assert.truthy(final, "the job did not end after the restart")
    assert.equal(200, (call("GET", "/health")))
  end)
end)
