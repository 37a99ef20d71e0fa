-- prisn.core.proc's spawn waited for on the loop (proc.spawn_start, and
-- prisn.exec.process.start with on_loop inside a task): the same results as
-- the blocking proc.spawn — the process, or nil, message, code, stage — for
-- an exec, a failure before exec and a child stuck past its deadline; many
-- at once; and no descriptor or child left behind by any of them.
local uv = require("luv")
local proc = require("prisn.core.proc")
local async = require("prisn.async")
local process = require("prisn.exec.process")

local O_WRONLY, O_NONBLOCK = 1, 2048 -- Linux x86_64 and arm64

local function open_fds()
  local n = 0
  local dir = uv.fs_scandir("/proc/self/fd")
  while uv.fs_scandir_next(dir) do n = n + 1 end
  return n
end

local function alive(pid)
  return uv.kill(pid, 0) == 0
end

-- A FIFO whose buffer is full, and a blocking descriptor of it: a child
-- writing "0" to it (as to a cgroup.procs file) blocks for good before its
-- exec. Returns that descriptor and a function that closes everything.
local function stuck_fd()
  local path = os.tmpname()
  os.remove(path)
  assert(require("prisn.core.sys").mkfifo(path, tonumber("600", 8)))
  local blocking = assert(uv.fs_open(path, "r+", 0))
  local filler = assert(uv.fs_open(path, O_WRONLY + O_NONBLOCK, 0))
  local block = string.rep("x", 4096)
  while uv.fs_write(filler, block) do end
  while uv.fs_write(filler, "x") do end
  return blocking, function()
    uv.fs_close(filler); uv.fs_close(blocking); os.remove(path)
  end
end

local function spec(script, extra)
  local s = { file = "/bin/sh", argv = { "sh", "-c", script }, env = {}, stdin = "null" }
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

describe("prisn.core.proc spawn on the loop", function()
  it("gives the process once the child has exec'd", function()
    local before = open_fds()
    async.main(function()
      local p, err = process.start(spec("exit 4"), { on_loop = true })
      assert.is_nil(err)
      assert.equal(4, p:wait().code)
    end)
    async.drain()
    assert.equal(before, open_fds())
  end)

  it("reports a failure before exec like proc.spawn", function()
    local before = open_fds()
    local want = table.pack(proc.spawn(spec("true", { cwd = "/nonexistent/prisn-spec" })))
    async.main(function()
      local got = table.pack(process.start(spec("true", { cwd = "/nonexistent/prisn-spec" }), { on_loop = true }))
      assert.same(want, got)
      assert.same({ nil, "ENOENT", "chdir" }, { got[1], got[3], got[4] })
    end)
    async.drain()
    assert.equal(before, open_fds())
  end)

  it("kills and reaps a child that does not reach exec by its deadline", function()
    local fd, cleanup = stuck_fd()
    local before = open_fds()
    local pids = {}
    async.main(function()
      local started = uv.hrtime()
      local p, err, code, stage = process.start(spec("true", { cgroup_procs_fds = { fd }, start_timeout_ms = 300 }),
        { on_loop = true, on_pending = function(pid) pids[#pids + 1] = pid end })
      local spent = (uv.hrtime() - started) / 1e6
      assert.is_nil(p)
      assert.equal("ETIMEDOUT", code)
      assert.equal("cgroup", stage)
      assert.matches("did not start within 300 ms; killed", err)
      assert.is_true(spent >= 290 and spent < 3000)
    end)
    async.drain()
    assert.equal(1, #pids)
    assert.is_false(alive(pids[1]))
    assert.equal(before, open_fds())
    cleanup()
  end)

  it("serves the loop while a child starts: a timer fires meanwhile", function()
    local fd, cleanup = stuck_fd()
    async.main(function()
      local ticks = 0
      local timer = uv.new_timer()
      timer:start(20, 20, function() ticks = ticks + 1 end)
      process.start(spec("true", { cgroup_procs_fds = { fd }, start_timeout_ms = 200 }), { on_loop = true })
      timer:close()
      assert.is_true(ticks >= 3)
    end)
    async.drain()
    cleanup()
  end)

  it("starts many at once, each with its own result, MAX_STARTING at a time", function()
    local before = open_fds()
    local codes, failures, now, most = {}, 0, 0, 0
    async.main(function()
      local left = 30
      async.wait(function(done)
        for i = 1, 30 do
          async.spawn(function()
            local s = i % 10 == 0 and spec("true", { cwd = "/nonexistent/prisn-spec" }) or spec("exit " .. i % 7)
            local mine = false
            local p = process.start(s, { on_loop = true, on_pending = function()
              mine, now = true, now + 1
              most = math.max(most, now)
            end })
            if mine then now = now - 1 end
            if p then codes[i] = p:wait().code else failures = failures + 1 end
            left = left - 1
            if left == 0 then done() end
          end)
        end
      end)
    end)
    async.drain()
    assert.equal(3, failures)
    assert.is_true(most >= 2 and most <= process.MAX_STARTING, "at most MAX_STARTING at once: " .. most)
    for i = 1, 30 do
      if i % 10 ~= 0 then assert.equal(i % 7, codes[i]) end
    end
    assert.equal(before, open_fds())
  end)

  it("kills the child of a pending spawn that is dropped or cancelled", function()
    local fd, cleanup = stuck_fd()
    local before = open_fds()
    local pending = assert(proc.spawn_start(spec("true", { cgroup_procs_fds = { fd } })))
    local pid = pending:pid()
    assert.is_false(pending:finish()) -- not there yet
    assert.is_true(pending:left_ms() > 0)
    pending:cancel()
    assert.is_false(alive(pid))
    assert.has_error(function() pending:finish() end)
    pending = assert(proc.spawn_start(spec("true", { cgroup_procs_fds = { fd } })))
    pid = pending:pid()
    pending = nil -- luacheck: ignore 311
    collectgarbage(); collectgarbage()
    assert.is_false(alive(pid))
    assert.equal(before, open_fds())
    cleanup()
  end)

  it("cancels a start still waiting for its turn when it is no longer wanted", function()
    local fd, cleanup = stuck_fd()
    local results, wanted = {}, true
    async.main(function()
      local left = process.MAX_STARTING + 1
      async.wait(function(done)
        for i = 1, left do
          async.spawn(function()
            local stuck = i <= process.MAX_STARTING -- these hold every turn for 200 ms
            local s = stuck and spec("true", { cgroup_procs_fds = { fd }, start_timeout_ms = 200 }) or spec("true")
            results[i] = table.pack(process.start(s, { on_loop = true, before_start = function() return wanted end }))
            left = left - 1
            if left == 0 then done() end
          end)
        end
        wanted = false -- the last one waits for its turn meanwhile
      end)
    end)
    async.drain()
    local last = results[process.MAX_STARTING + 1]
    assert.same({ "ECANCELED", "setup" }, { last[3], last[4] })
    assert.equal("ETIMEDOUT", results[1][3])
    cleanup()
  end)

  it("holds the child before its exec until on_pending's release", function()
    local out = os.tmpname()
    os.remove(out)
    local before = open_fds()
    local held_ms, seen
    async.main(function()
      local p = assert(process.start(spec("echo ran > " .. out), { on_loop = true, on_pending = function(_, release)
        local started = uv.hrtime()
        uv.update_time() -- the timer counts from now, not from the loop's cached time
        local timer = uv.new_timer()
        timer:start(150, 0, function()
          timer:close()
          seen = io.open(out) ~= nil
          held_ms = (uv.hrtime() - started) / 1e6
          release()
        end)
        return true
      end }))
      assert.equal(0, p:wait().code)
    end)
    async.drain()
    assert.is_false(seen, "the child ran before its release")
    assert.is_true(held_ms >= 149, "held " .. held_ms .. " ms") -- the loop's clock counts whole ms
    local f = assert(io.open(out))
    assert.equal("ran\n", f:read("a"))
    f:close()
    os.remove(out)
    assert.equal(before, open_fds())
  end)

  it("releases the child as soon as on_pending returns anything but true", function()
    async.main(function()
      local p = assert(process.start(spec("exit 5"), { on_loop = true, on_pending = function() return "yes" end }))
      assert.equal(5, p:wait().code)
    end)
    async.drain()
  end)

  it("kills a held child never released at its deadline, before it runs anything", function()
    local out = os.tmpname()
    os.remove(out)
    local before = open_fds()
    async.main(function()
      local p, _, code = process.start(spec("echo ran > " .. out, { start_timeout_ms = 200 }),
        { on_loop = true, on_pending = function() return true end })
      assert.is_nil(p)
      assert.equal("ETIMEDOUT", code)
    end)
    async.drain()
    assert.is_nil(io.open(out))
    assert.equal(before, open_fds())
  end)

  it("ends a held child without its exec when its parent dies first", function()
    local out, script = os.tmpname(), os.tmpname()
    os.remove(out)
    local f = assert(io.open(script, "w"))
    f:write(string.format([[
      local p = assert(require("prisn.core.proc").spawn_start({ file = "/bin/sh",
        argv = { "sh", "-c", "sleep 0.2; echo ran > %s" }, env = {}, stdin = "null", hold_gate = true }))
      io.write(p:pid())
      os.exit(0)
    ]], out))
    f:close()
    local pipe = io.popen(uv.exepath() .. " lua " .. script)
    local pid = math.tointeger(tonumber(pipe:read("a")))
    pipe:close()
    os.remove(script)
    assert.is_number(pid)
    local deadline = uv.hrtime() + 2e9
    local function running()
      local stat = io.open("/proc/" .. pid .. "/stat")
      if not stat then return false end
      local state = stat:read("a"):match("%) (%a)")
      stat:close()
      return state ~= "Z" and state ~= "X"
    end
    while running() and uv.hrtime() < deadline do uv.sleep(20) end
    assert.is_false(running(), "the held child outlived its parent")
    uv.sleep(300)
    assert.is_nil(io.open(out), "the held child ran its exec")
  end)

  it("refuses a held gate it could never open, and lets a spent pending be released", function()
    assert.has_error(function() proc.spawn(spec("true", { hold_gate = true })) end,
      "spawn: option 'hold_gate' needs proc.spawn_start (nothing could open it)")
    assert.has_error(function() proc.spawn_start(spec("true", { hold_gate = true, gate = function() return true end }))
    end, "spawn: options 'gate' and 'hold_gate' exclude each other")
    local pending = assert(proc.spawn_start(spec("exit 0", { hold_gate = true })))
    assert.is_true(pending:open_gate())
    assert.is_true(pending:open_gate())
    local p
    repeat p = pending:finish() until p
    assert.equal(0, p:wait().code)
    assert.is_true(pending:open_gate())
  end)

  it("blocks as before outside a task", function()
    local p = assert(process.start(spec("exit 2"), { on_loop = true }))
    async.main(function() assert.equal(2, p:wait().code) end)
    async.drain()
  end)
end)
