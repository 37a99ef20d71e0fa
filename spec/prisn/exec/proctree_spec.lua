local proctree = require("prisn.exec.proctree")
local proc = require("prisn.core.proc")

describe("prisn.exec.proctree", function()
  it("sums CPU time and memory over a process and its descendants", function()
    -- A shell that burns some CPU in a child, then waits on a sleeping one.
    local p = assert(proc.spawn({ file = "/bin/sh", argv = { "sh", "-c",
      "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 5 & wait" },
      env = { "PATH=/usr/bin:/bin" }, stdin = "null", stdout = "null", stderr = "null", session = true }))
    local pid = p:pid()
    local usage
    for _ = 1, 200 do
      usage = proctree.usage(pid)
      -- The busy loop is done once the sleeping child exists.
      if usage and (require("prisn.fs").read_file("/proc/" .. pid .. "/task/" .. pid .. "/children") or "")
        :match("%d") then break end
      require("luv").sleep(10)
    end
    local alone = proctree.usage(pid)
    assert.is_true(alone.cpu_usage_us > 0, "the shell's own CPU time counts")
    assert.is_true(alone.memory_current > 0)
    -- Two processes: more memory than the shell alone reports in its status.
    local rss = tonumber(require("prisn.fs").read_file("/proc/" .. pid .. "/status"):match("VmRSS:%s*(%d+)")) * 1024
    assert.is_true(alone.memory_current > rss, "the child's memory is added")
    p:kill("KILL", { group = true })
    p:wait()
    p:close()
    assert.is_nil(proctree.usage(pid))
  end)

  it("counts a lone process's memory as its VmRSS, and a parent's children", function()
    local fs = require("prisn.fs")
    local p = assert(proc.spawn({ file = "/bin/sleep", argv = { "sleep", "5" }, env = { "PATH=/usr/bin:/bin" },
      stdin = "null", stdout = "null", stderr = "null" }))
    local pid = p:pid()
    require("luv").sleep(50)
    local rss = tonumber(fs.read_file("/proc/" .. pid .. "/status"):match("VmRSS:%s*(%d+)")) * 1024
    assert.equal(rss, proctree.usage(pid).memory_current)
    p:kill("KILL")
    p:wait()
    p:close()
    -- This process (however many threads it has): its children count too.
    local child = assert(proc.spawn({ file = "/bin/sleep", argv = { "sleep", "5" }, env = { "PATH=/usr/bin:/bin" },
      stdin = "null", stdout = "null", stderr = "null" }))
    local self = require("luv").os_getpid()
    local own = tonumber(fs.read_file("/proc/self/status"):match("VmRSS:%s*(%d+)")) * 1024
    assert.is_true(proctree.usage(self).memory_current > own, "the child is counted")
    child:kill("KILL")
    child:wait()
    child:close()
  end)

  it("writes into the table it is given, and forgets a walk's pids before the next", function()
    local p = assert(proc.spawn({ file = "/bin/sh", argv = { "sh", "-c", "sleep 5 & wait" },
      env = { "PATH=/usr/bin:/bin" }, stdin = "null", stdout = "null", stderr = "null", session = true }))
    local pid = p:pid()
    require("luv").sleep(50)
    local out = {}
    local first = proctree.usage(pid)
    assert.equal(out, proctree.usage(pid, out))
    assert.equal(first.memory_current, out.memory_current)
    -- The same tree again: the child is counted again (not taken as seen).
    assert.equal(first.memory_current, proctree.usage(pid, out).memory_current)
    p:kill("KILL", { group = true })
    p:wait()
    p:close()
    assert.is_nil(proctree.usage(pid, out))
  end)

  it("reads a process's CPU ticks from the fields parse_stat names", function()
    local procfs = require("prisn.procfs")
    -- Busy, then asleep in the same process (exec keeps the counters).
    local p = assert(proc.spawn({ file = "/bin/sh", argv = { "sh", "-c",
      "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; exec sleep 5" },
      env = { "PATH=/usr/bin:/bin" }, stdin = "null", stdout = "null", stderr = "null", session = true }))
    local pid = p:pid()
    local stat
    for _ = 1, 500 do
      stat = procfs.stat(pid)
      if stat and stat.comm == "sleep" then break end
      require("luv").sleep(10)
    end
    assert.equal("sleep", stat.comm)
    local ticks = procfs.cpu_ticks(stat)
    assert.is_true(ticks > 0, "the loop took some CPU")
    assert.equal(ticks * 1e6 // procfs.USER_HZ, proctree.usage(pid).cpu_usage_us)
    p:kill("KILL", { group = true })
    p:wait()
    p:close()
  end)
end)
