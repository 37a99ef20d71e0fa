-- The output pipes of service instances live in the home's runtime
-- directory (prisn.exec.runtime_dir: /run/prisn-HASH for root, a tmpfs on
-- a systemd machine, so an instance start makes no inode on disk; issue
-- 17): a server killed and started again finds them there (the instance's
-- output goes on reaching `prisn logs`), a `prisn server stop` leaves none
-- behind, pipes an older prisn made in $PRISN_HOME/run are still used, and
-- a runtime directory that is not prisn's own is refused with the reason.
-- Root only: for anyone else the pipes stay in $PRISN_HOME/run as before
-- (spec/prisn/exec/runtime_dir_spec.lua).
local h = require("e2e.helper")
local cjson = require("cjson")
local uv = require("luv")
local runtime_dir = require("prisn.exec.runtime_dir")

-- Prints a numbered line every 50 ms.
local TICKER = "import time\nn = 0\nwhile True:\n    n += 1\n    print('tick', n, flush=True)\n"
  .. "    time.sleep(0.05)\n"

describe("the runtime directory of the instances' pipes", function()
  local env, ok, json, home, dir

  before_each(function()
    env = h.env({ PRISN_STOP_GRACE_SECONDS = "2" })
    home = env.PRISN_HOME
    ok, json = select(2, h.cli(function() return env end))
    dir = h.tempdir("prisn-rtdir")
    h.write(dir .. "/ticker.py", TICKER)
  end)

  after_each(function()
    h.stop_server(env)
    for _, pid in ipairs(h.recorded_pids(home)) do
      if h.alive(pid) then uv.kill(-pid, "sigkill") end
    end
    -- A killed server's pipes stay (a tmpfs empties at a reboot); remove
    -- this test's.
    local rt = runtime_dir.path(home)
    if rt then h.run("/bin/rm", { "-rf", rt }, { env = { PATH = "/usr/bin:/bin" } }) end
    h.cleanup()
  end)

  local function kind(path)
    local st = uv.fs_lstat(path)
    return st and st.type
  end

  local function last_tick()
    local n
    for v in ok({ "logs", "ticker" }).stdout:gmatch("tick (%d+)") do n = tonumber(v) end
    return n or 0
  end

  if uv.getuid() ~= 0 then
    it("needs root (/run)", function() pending("run as root: without it the pipes stay in $PRISN_HOME/run") end)
    return
  end

  it("keeps them in /run/prisn-HASH across a kill -9 of the server, and removes them at a stop", function()
    ok({ "server", "start", "-q" })
    ok({ "deploy", dir .. "/ticker.py", "--name", "ticker" })
    assert.is_true(h.wait_for(function() return last_tick() > 2 end, 15000), "no output in prisn logs")
    local rt = runtime_dir.path(home)
    assert.matches("^/run/prisn%-%x+$", rt)
    assert.equal("fifo", kind(rt .. "/default/ticker-1.out"))
    assert.equal("fifo", kind(rt .. "/default/ticker-1.err"))
    assert.equal(tonumber("700", 8), uv.fs_lstat(rt).mode & tonumber("7777", 8))
    assert.is_nil(kind(home .. "/run/default/ticker-1.out"))

    -- kill -9 and a new server: the instance is adopted, its output still
    -- reaches the log through the same pipes.
    local server_pid = math.tointeger(cjson.decode(h.read(home .. "/server.json")).pid)
    local instance_pid = h.recorded_pids(home)[1]
    uv.kill(server_pid, "sigkill")
    assert.is_true(h.wait_for(function() return not h.alive(server_pid) end, 5000))
    ok({ "server", "start", "-q" })
    local before = last_tick()
    assert.is_true(h.wait_for(function() return last_tick() > before + 5 end, 15000),
      "the adopted instance's output no longer reaches prisn logs")
    assert.equal(instance_pid, h.recorded_pids(home)[1])
    assert.equal("fifo", kind(rt .. "/default/ticker-1.out"))

    ok({ "server", "stop" })
    assert.is_nil(kind(rt), "the runtime directory is left after a stop")
    -- The next start makes them again.
    ok({ "server", "start", "-q" })
    local after_restart = last_tick()
    assert.is_true(h.wait_for(function() return last_tick() > after_restart + 3 end, 15000))
    assert.equal("fifo", kind(rt .. "/default/ticker-1.out"))
  end)

  -- $PRISN_HOME, which held the pipes before, is hidden from a sandboxed
  -- workload: so is the runtime directory, or one instance could read or
  -- write another's output. The default workload user (unprivileged)
  -- cannot open it (0700, root's); one running as root sees an empty folder.
  for _, case in ipairs({ { user = nil, expect = "denied" }, { user = "0:0", expect = "[]" } }) do
    it("keeps it from a sandboxed workload" .. (case.user and " running as root" or ""), function()
      local rt = runtime_dir.path(home)
      h.write(dir .. "/peek.py", "import os, time\ntry:\n    seen = repr(os.listdir(" .. string.format("%q", rt)
        .. "))\nexcept PermissionError:\n    seen = 'denied'\nprint('seen', seen, flush=True)\ntime.sleep(60)\n")
      if case.user then env.PRISN_WORKLOAD_USER = case.user end
      ok({ "server", "start", "-q" })
      ok({ "deploy", dir .. "/peek.py", "--name", "peek", "--isolation", "1" })
      local line
      assert.is_true(h.wait_for(function()
        line = ok({ "logs", "peek" }).stdout:match("seen ([^\n]*)")
        return line
      end, 15000), "the workload printed nothing")
      assert.equal(case.expect, line)
      assert.equal("fifo", kind(rt .. "/default/peek-1.out"))
    end)
  end

  it("refuses a runtime directory that is not its own, with the reason", function()
    local rt = runtime_dir.path(home)
    assert(uv.fs_mkdir(rt, tonumber("755", 8)))
    assert(uv.fs_chmod(rt, tonumber("777", 8)))
    ok({ "server", "start", "-q" })
    ok({ "deploy", dir .. "/ticker.py", "--name", "ticker", "--no-wait" })
    local message
    assert.is_true(h.wait_for(function()
      local i = json({ "get", "instances", "ticker", "-o", "json" })[1]
      message = i and type(i.last_exit) == "table" and i.last_exit.message
      return message
    end, 15000), "no start failure recorded")
    assert.equal("cannot make the output pipes of ticker-1: " .. rt .. " is not prisn's own runtime directory "
      .. "(a directory, owner uid 0, mode 0777): refusing to use it", message)
    assert.is_nil(kind(rt .. "/default"))
    assert.matches("refusing to use it", h.read(home .. "/server.log"), 1, true)
  end)

  it("goes on using the pipes an older prisn made in $PRISN_HOME/run", function()
    assert(uv.fs_mkdir(home, tonumber("700", 8)))
    for _, d in ipairs({ home .. "/run", home .. "/run/default" }) do assert(uv.fs_mkdir(d, tonumber("700", 8))) end
    local sys = require("prisn.core.sys")
    assert(sys.mkfifo(home .. "/run/default/ticker-1.out", tonumber("600", 8)))
    assert(sys.mkfifo(home .. "/run/default/ticker-1.err", tonumber("600", 8)))
    ok({ "server", "start", "-q" })
    ok({ "deploy", dir .. "/ticker.py", "--name", "ticker" })
    assert.is_true(h.wait_for(function() return last_tick() > 2 end, 15000), "no output in prisn logs")
    assert.is_nil(kind(runtime_dir.path(home) .. "/default/ticker-1.out"))
  end)
end)
