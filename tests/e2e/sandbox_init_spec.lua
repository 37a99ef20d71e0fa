-- The init of a service's sandbox (pid 1 of its PID namespace, the pid
-- prisn records for the instance) is the small program without a C library
-- embedded in prisn, exec'd from a memfd (core/init_raw.c; issue 17), not
-- prisn's own binary: it still passes the workload's exit and the signals
-- sent to it on, and PRISN_INIT_FROM=self gives the binary back. Root only
-- (namespaces).
local h = require("e2e.helper")
local uv = require("luv")

describe("a service's sandbox init", function()
  local env, ok, json, dir

  before_each(function()
    env = h.env({ PRISN_STOP_GRACE_SECONDS = "2" })
    ok, json = select(2, h.cli(function() return env end))
    dir = h.tempdir("prisn-init")
    h.write(dir .. "/sleeper.py", "import time\nprint('up', flush=True)\ntime.sleep(300)\n")
  end)

  after_each(function()
    h.teardown_server(env)
  end)

  if uv.getuid() ~= 0 then
    it("needs root (namespaces)", function() pending("run as root") end)
    return
  end

  local function instance()
    return json({ "get", "instances", "sleeper", "-o", "json" })[1]
  end

  -- Deploys the sleeper at isolation 1; returns its init's pid once it runs.
  local function deploy()
    ok({ "server", "start", "-q" })
    ok({ "deploy", dir .. "/sleeper.py", "--name", "sleeper", "--isolation", "1" })
    local pid
    assert.is_true(h.wait_for(function()
      local i = instance()
      pid = i and i.state == "running" and math.tointeger(i.pid)
      return pid
    end, 15000), "the instance never ran")
    return pid
  end

  it("is the embedded program, passes a TERM on and says how the workload ended", function()
    local pid = deploy()
    assert.matches("^/memfd:prisn%-init", uv.fs_readlink("/proc/" .. pid .. "/exe"))
    assert.equal("prisn-init __sandbox-init", h.read("/proc/" .. pid .. "/cmdline"):gsub("%z", " ")
      :match("^(%S+ %S+)"))
    -- Small: no copy of prisn's binary mapped.
    local rss = tonumber(h.read("/proc/" .. pid .. "/status"):match("VmRSS:%s+(%d+)"))
    assert.is_true(rss < 512, "the init's RSS is " .. rss .. " kB")
    uv.kill(pid, "sigterm")
    local exit
    assert.is_true(h.wait_for(function()
      local i = instance()
      exit = i and type(i.last_exit) == "table" and i.last_exit
      return exit
    end, 10000), "no exit recorded")
    assert.equal("TERM", exit.signal)
  end)

  it("is prisn's binary with PRISN_INIT_FROM=self", function()
    env.PRISN_INIT_FROM = "self"
    local pid = deploy()
    assert.equal(uv.fs_realpath(h.bin), uv.fs_readlink("/proc/" .. pid .. "/exe"))
    assert.is_true(h.wait_for(function() return ok({ "logs", "sleeper" }).stdout:find("up", 1, true) end, 10000),
      "no output in prisn logs")
  end)
end)
