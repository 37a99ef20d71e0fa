-- `prisn run --memory/--cpu/--pids` for real: a memory bomb is killed and
-- named oom_killed, a busy loop is throttled to its share, a fork bomb is
-- contained, whatever a workload leaves running is killed, and no cgroup
-- directory or process is left after any test. Needs root and cgroup
-- controllers (v1 or v2); each test says why when it cannot run. Without
-- root, the fallback to rlimits is what is tested.
local h = require("e2e.helper")
local read, write, alive = h.read, h.write, h.alive
local cjson = require("cjson")
local uv = require("luv")

local M64 = 64 * 1024 * 1024

local function pids_in(path)
  local list = {}
  for pid in (read(path) or ""):gmatch("%d+") do list[#list + 1] = tonumber(pid) end
  return list
end

-- Why the real cgroup tests cannot run here, or nil when they can.
local function no_cgroups_reason()
  if uv.getuid() ~= 0 then return "needs root (cgroup limits; the rlimit fallback is tested instead)" end
  local layout = require("prisn.core.cgroup").detect()
  for _, c in ipairs({ "memory", "cpu", "pids" }) do
    if not layout or not layout[c] then return "no cgroup hierarchy carries " .. c .. " here" end
  end
  return nil
end

local function has_python()
  return uv.fs_access("/usr/bin/python3", "X") and true or false
end

-- The directories the job's cgroup had (or would have) in every hierarchy.
local function cgroup_dirs(job_id)
  local layout = require("prisn.core.cgroup").detect() or {}
  local dirs, seen = {}, {}
  for _, c in ipairs({ "memory", "cpu", "pids", "cpuacct" }) do
    local mount = layout[c] and layout[c].mount
    if mount and not seen[mount] then
      seen[mount] = true
      dirs[#dirs + 1] = mount .. "/prisn/job-" .. job_id
    end
  end
  return dirs
end

describe("prisn run with limits", function()
  local dir, env, reason

  local function prisn(args, opts)
    opts = opts or {}
    opts.env = opts.env or env
    return h.prisn(args, opts)
  end

  local function jobs() return h.jobs(env) end

  -- After every test: no cgroup directory of any of its jobs is left.
  local function assert_no_cgroup_left()
    for _, job in ipairs(jobs()) do
      for _, path in ipairs(cgroup_dirs(job.id)) do
        assert.is_nil(uv.fs_stat(path), "cgroup left behind: " .. path)
      end
    end
  end

  before_each(function()
    dir = h.tempdir("prisn-limits")
    env = h.env()
    reason = no_cgroups_reason()
  end)

  after_each(function()
    if not reason then assert_no_cgroup_left() end
    h.cleanup()
  end)

  it("kills a memory bomb at its limit and names it oom_killed; prisn is unharmed", function()
    if reason then return pending(reason) end
    if not has_python() then return pending("python3 is not installed") end
    -- Ten times the limit, touched page by page.
    write(dir .. "/bomb.py", "print('allocating', flush=True)\nchunks = []\n"
      .. "for i in range(64):\n    chunks.append(b'x' * (10 << 20))\nprint('survived')\n")
    local r = prisn({ "run", "--memory", "64M", dir .. "/bomb.py" })
    assert.equal(137, r.code, r.stderr)
    assert.equal(0, r.signal) -- prisn itself exited, with the code it chose
    assert.equal("allocating\n", r.stdout)
    local job = jobs()[1]
    assert.same({ "failed", "oom_killed", 137, "KILL" }, { job.state, job.reason, job.exit_code, job.signal })
    assert.equal("killed: out of memory (--memory 64M)", job.message)
    assert.equal("prisn: job " .. job.id .. " killed: out of memory (--memory 64M)\n", r.stderr)
  end)

  it("throttles a busy loop to its CPU share instead of killing it", function()
    if reason then return pending(reason) end
    if not has_python() then return pending("python3 is not installed") end
    write(dir .. "/busy.py", "import time\nstart = time.monotonic()\n"
      .. "while time.monotonic() - start < 2:\n    pass\nprint(time.process_time())\n")
    local r = prisn({ "run", "--cpu", "0.25", dir .. "/busy.py" })
    assert.equal(0, r.code, r.stderr)
    local cpu = tonumber(r.stdout)
    io.stderr:write(string.format("  [limits] busy loop, 2 s wall under --cpu 0.25: %.3f s of CPU\n", cpu))
    assert.is_true(cpu >= 0.3 and cpu <= 0.8, "CPU seconds: " .. tostring(cpu))
    assert.same({ "succeeded", "exited" }, { jobs()[1].state, jobs()[1].reason })
  end)

  it("contains a fork bomb at --pids 32 and leaves nothing running", function()
    if reason then return pending(reason) end
    if not has_python() then return pending("python3 is not installed") end
    -- Forks until refused, children sleep a minute, the parent exits at once.
    write(dir .. "/forks.py", "import os, sys, time\nok = refused = 0\npids = []\n"
      .. "for i in range(100):\n    try:\n        pid = os.fork()\n    except BlockingIOError:\n"
      .. "        refused += 1\n        continue\n    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n"
      .. "    pids.append(pid)\nopen(sys.argv[1], 'w').write(' '.join(map(str, pids)))\n"
      .. "print(len(pids), refused)\n")
    -- Level 0: the pids written are host pids (level 1 is tests/e2e/isolation_spec.lua).
    local r = prisn({ "run", "--isolation", "0", "--pids", "32", dir .. "/forks.py", dir .. "/pids" })
    assert.equal(0, r.code, r.stderr)
    local forked, refused = r.stdout:match("^(%d+) (%d+)\n$")
    assert.is_true(tonumber(forked) < 32 and tonumber(refused) > 0, r.stdout)
    local pids = pids_in(dir .. "/pids")
    assert.equal(tonumber(forked), #pids)
    for _, pid in ipairs(pids) do assert.is_false(alive(pid), "still running: " .. pid) end
  end)

  it("contains a shell fork bomb and kills every copy when the script ends", function()
    if reason then return pending(reason) end
    -- The script forks once, before any copy exists (`bomb &`, not `bomb`,
    -- whose pipeline is two forks of the script's), then waits with a
    -- builtin (read's timeout on a FIFO nobody writes): a fork of its own
    -- once the bomb holds every pid (a `sleep`, the pipeline's second half)
    -- has to win against the copies retrying theirs, and under load it lost
    -- for bash's whole fork retry (15 s, then exit 254).
    assert(require("prisn.core.sys").mkfifo(dir .. "/tick", tonumber("600", 8)))
    write(dir .. "/bomb.sh", "bomb() { echo $BASHPID >> " .. dir .. "/pids; bomb | bomb & }\n"
      .. "exec 9<> " .. dir .. "/tick\nbomb &\nread -t 1 -u 9\necho still here\n")
    local started = uv.hrtime()
    local r = prisn({ "run", "--isolation", "0", "--pids", "32", dir .. "/bomb.sh" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("still here\n", r.stdout)
    assert.matches("Resource temporarily unavailable", r.stderr)
    assert.is_true((uv.hrtime() - started) / 1e9 < 5)
    local pids = pids_in(dir .. "/pids")
    assert.is_true(#pids > 1)
    for _, pid in ipairs(pids) do assert.is_false(alive(pid), "still running: " .. pid) end
  end)

  it("kills what escaped the process group when a limited job times out", function()
    if reason then return pending(reason) end
    -- setsid puts the sleeper outside the group that --timeout signals; only
    -- the cgroup still holds it.
    write(dir .. "/escape.sh", "setsid sleep 60 & echo $! > " .. dir .. "/pid\nsleep 60\n")
    local r = prisn({ "run", "--isolation", "0", "--pids", "50", "--timeout", "1s", "--grace", "1s",
      dir .. "/escape.sh" })
    assert.equal(124, r.code, r.stderr)
    local pid = pids_in(dir .. "/pid")[1]
    assert.is_number(pid)
    assert.is_false(alive(pid), "escaped process still running: " .. tostring(pid))
    assert.equal("timeout", jobs()[1].reason)
  end)

  it("takes limits for detached jobs on the server", function()
    if reason then return pending(reason) end
    if not has_python() then return pending("python3 is not installed") end
    local start = prisn({ "server", "start", "-q" })
    assert.equal(0, start.code, start.stderr)
    finally(function()
      local info = read(env.PRISN_HOME .. "/server.json")
      prisn({ "server", "stop", "--timeout", "5s" })
      local pid = info and math.tointeger(cjson.decode(info).pid)
      if pid and uv.kill(pid, 0) then uv.kill(pid, "sigkill") end
    end)
    write(dir .. "/bomb.py", "chunks = []\nfor i in range(64):\n    chunks.append(b'x' * (10 << 20))\n")
    local r = prisn({ "run", "--detach", "--memory", "64M", dir .. "/bomb.py" })
    assert.equal(0, r.code, r.stderr)
    local id = r.stdout:match("^(%w+)\n$")
    local follow = prisn({ "logs", "-f", "job/" .. id })
    assert.equal(0, follow.code, follow.stderr)
    local job = cjson.decode(prisn({ "get", "job", id, "-o", "json" }).stdout)
    assert.same({ "failed", "oom_killed", 137 }, { job.state, job.reason, job.exit_code })
  end)

  it("refuses a limit that is surely a mistake", function()
    write(dir .. "/ok.sh", "echo ok\n")
    local r = prisn({ "run", "--memory", "64", dir .. "/ok.sh" })
    assert.equal(2, r.code)
    assert.equal("Error: --memory must be a size from 1M to 8P, got 64\n"
      .. "Hint: sizes without a unit are bytes: write --memory 256M\n", r.stderr)
    local cpu = prisn({ "run", "--cpu", "0", dir .. "/ok.sh" })
    assert.equal(2, cpu.code)
    assert.matches("%-%-cpu is a number of cores", cpu.stderr)
  end)

  it("falls back to rlimits without cgroup access, and says so once", function()
    if not has_python() then return pending("python3 is not installed") end
    reason = "no cgroup in this test" -- nothing for after_each to look for
    local cmd, args = h.bin, {}
    if uv.getuid() == 0 then
      -- Root sees cgroups: run as nobody to lose them.
      if not uv.fs_access("/usr/bin/setpriv", "X") then return pending("setpriv (util-linux) is not installed") end
      cmd, args = "/usr/bin/setpriv", { "--reuid=65534", "--regid=65534", "--clear-groups", "--", h.bin }
      assert(uv.fs_chmod(dir, tonumber("755", 8)))
      local home = h.tempdir("prisn-limits-home")
      assert(uv.fs_chown(home, 65534, 65534))
      env = h.env({ PRISN_HOME = home .. "/home", HOME = home })
    end
    write(dir .. "/show.py", "import resource\nprint(resource.getrlimit(resource.RLIMIT_AS)[0])\n")
    for _, a in ipairs({ "run", "--memory", "64M", "--cpu", "0.5", dir .. "/show.py" }) do args[#args + 1] = a end
    local r = h.run(cmd, args, { env = env })
    assert.equal(0, r.code, r.stderr)
    assert.equal(tostring(M64) .. "\n", r.stdout)
    local _, notes = r.stderr:gsub("limits fall back to rlimits", "")
    assert.equal(1, notes, r.stderr)
    assert.matches("\n  %-%-memory 64M: RLIMIT_AS, which bounds address space, not memory in use", r.stderr)
    assert.matches("\n  %-%-cpu 0.5: not enforced %(no rlimit can throttle CPU%)\n", r.stderr)
  end)
end)
