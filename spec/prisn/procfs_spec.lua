-- prisn.procfs: /proc/PID/stat parsed once, and the one "still ours" rule.
local procfs = require("prisn.procfs")
local proc = require("prisn.core.proc")
local clock = require("prisn.clock")
local uv = require("luv")

-- A stat line whose command holds spaces and parentheses, as a process may
-- name itself.
local STAT = "4242 (prisn (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 15 5 3 2 20 0 1 0 "
  .. "123456 104857600 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"

local function on_linux()
  local f = io.open("/proc/self/stat")
  if f then f:close() end
  return f ~= nil
end

describe("prisn.procfs", function()
  it("parses a stat line after the last ')', whatever the command holds", function()
    local stat = procfs.parse_stat(STAT)
    assert.equal(4242, stat.pid)
    assert.equal("prisn (x) y", stat.comm)
    assert.equal("S", stat.state)
    assert.equal(1, stat.ppid)
    assert.equal(4242, stat.pgrp)
    assert.equal(4242, stat.session)
    assert.equal(123456, stat.starttime)
    assert.equal(104857600, stat.vsize)
    assert.equal(2000, stat.rss)
    -- Every field stays at its proc(5) number, as text.
    assert.equal("4242", stat[1])
    assert.equal("prisn (x) y", stat[2])
    assert.equal("123456", stat[22])
    assert.equal(15 + 5 + 3 + 2, procfs.cpu_ticks(stat))
  end)

  it("answers nil for what is not a stat line", function()
    assert.is_nil(procfs.parse_stat(nil))
    assert.is_nil(procfs.parse_stat(""))
    assert.is_nil(procfs.parse_stat("4242 no command here"))
    assert.is_nil(procfs.parse_stat("4242 (cut short)"))
  end)

  it("tells a running process from a zombie or a dead one", function()
    assert.is_true(procfs.running(procfs.parse_stat(STAT)))
    assert.is_false(procfs.running(procfs.parse_stat((STAT:gsub(" S ", " Z ", 1)))))
    assert.is_false(procfs.running(procfs.parse_stat((STAT:gsub(" S ", " X ", 1)))))
    assert.is_false(procfs.running(nil))
  end)

  it("computes a start time from the boot time and USER_HZ", function()
    local boot = procfs.parse_boot_time("cpu  1 2 3\nintr 5\nbtime 1795700000\nprocesses 9\n")
    assert.equal(1795700000, boot)
    assert.equal(1795700000 + 123456 / 100, procfs.start_time(procfs.parse_stat(STAT), boot))
    assert.is_nil(procfs.start_time(procfs.parse_stat(STAT), nil))
    assert.is_nil(procfs.start_time(nil, boot))
    assert.is_nil(procfs.parse_boot_time("cpu  1 2 3\n"))
  end)

  describe("on Linux", function()
    before_each(function()
      if not on_linux() then pending("no /proc here: prisn.procfs is Linux only") end
    end)

    it("reads this process", function()
      if not on_linux() then return end
      local stat = procfs.stat(uv.os_getpid())
      assert.equal(math.tointeger(uv.os_getpid()), stat.pid)
      assert.is_true(procfs.alive(uv.os_getpid()))
      assert.is_true(procfs.start_time(stat, procfs.boot_time()) <= os.time() + 1)
    end)

    it("knows a session leader it started by pid and start time, and nothing else", function()
      if not on_linux() then return end
      local started_ms = clock.now_ms()
      local p = assert(proc.spawn({ file = "/bin/sleep", argv = { "sleep", "10" }, env = {},
        stdin = "null", stdout = "null", stderr = "null", session = true }))
      local pid = p:pid()
      assert.is_true(procfs.still_ours(pid, started_ms))
      assert.is_true(procfs.adoptable(pid, started_ms))
      assert.is_false(procfs.still_ours(pid, started_ms - 60000), "started a minute apart: a reused pid")
      assert.is_false(procfs.still_ours(pid, nil))
      p:kill("KILL")
      -- Killed, not yet reaped: a zombie, still ours (its group may hold
      -- processes to stop) but not to adopt.
      for _ = 1, 100 do
        if not procfs.alive(pid) then break end
        uv.sleep(10)
      end
      assert.equal("Z", procfs.stat(pid).state)
      assert.is_true(procfs.still_ours(pid, started_ms))
      assert.is_false(procfs.adoptable(pid, started_ms))
      p:wait()
      assert.is_false(procfs.alive(pid))
      assert.is_false(procfs.still_ours(pid, started_ms))
      p:close()
      -- Not a session leader: not one prisn started as a job or instance.
      local q = assert(proc.spawn({ file = "/bin/sleep", argv = { "sleep", "10" }, env = {},
        stdin = "null", stdout = "null", stderr = "null" }))
      assert.is_false(procfs.still_ours(q:pid(), started_ms))
      q:kill("KILL")
      q:wait()
      q:close()
    end)
  end)
end)
