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
end)
