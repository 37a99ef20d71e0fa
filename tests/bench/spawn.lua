-- Benchmark of the spawn primitive as the server uses it: how long
-- proc.spawn blocks the caller (the server's loop pays this for every
-- service start and restart: until the workload has exec'd) and how long a
-- short workload (/bin/true) takes from spawn to reaped, at isolation levels
-- 0, 1 and 2 with the options prisn.exec.isolation makes (an unprivileged
-- user when root).
--
--   build/prisn lua tests/bench/spawn.lua [ROUNDS] [MB]
--
-- MB: grow this process by MB megabytes of touched memory first, as a
-- server with many deployments is (copying its page tables is part of
-- every clone).
-- Medians of interleaved rounds. Compare two builds by running the script
-- with each binary, alternately (see docs/DEVELOPING.md).
--
-- BATCH (third argument, default 0: skipped): then BATCH children of each
-- level are started at once, "serial" (proc.spawn, one after the other, as
-- the server did) against "on loop" (proc.spawn_start for all, each
-- finished when its report fd is readable: what the server does now), a
-- few interleaved rounds: the wall time until all have exec'd, the longest
-- the caller was blocked in one call, and this process's CPU time.
local uv = require("luv")
local proc = require("prisn.core.proc")
local isolation = require("prisn.exec.isolation")
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local median = require("common").median

local ROUNDS = tonumber(arg[1]) or 200
-- Kept until the end (the last line reads it), so the memory stays in use.
local ballast = {}
for i = 1, tonumber(arg[2]) or 0 do ballast[i] = string.rep(string.char(i % 256), 1024 * 1024) end
local home = assert(uv.fs_mkdtemp("/tmp/prisn-bench-spawn-XXXXXX"))
local user = uv.getuid() == 0 and { uid = 65534, gid = 65534 } or nil

local function options(level)
  local o = isolation.spawn_options(level, { home = home, user = user })
  o.file, o.argv, o.env = "/bin/true", { "true" }, { "PATH=/usr/bin:/bin" }
  o.session, o.stdin, o.stdout, o.stderr = true, "null", "null", "null"
  return o
end

local cases = { { "level 0", options(0) }, { "level 1", options(1) } }
local ok2, o2 = pcall(options, 2)
if ok2 then cases[#cases + 1] = { "level 2", o2 } end

local spawn_ms, total_ms = {}, {}
for round = 0, ROUNDS do
  for i, c in ipairs(cases) do
    local t0 = uv.hrtime()
    local p = assert(proc.spawn(c[2]))
    local t1 = uv.hrtime()
    assert(p:wait())
    local t2 = uv.hrtime()
    p:close()
    if round > 0 then -- round 0 warms up
      spawn_ms[i] = spawn_ms[i] or {}
      total_ms[i] = total_ms[i] or {}
      table.insert(spawn_ms[i], (t1 - t0) / 1e6)
      table.insert(total_ms[i], (t2 - t0) / 1e6)
    end
  end
end
local rss_kb = tonumber((require("common").read("/proc/self/status") or ""):match("VmRSS:%s*(%d+)")) or 0
for i, c in ipairs(cases) do
  print(string.format("%-8s spawn returns after %6.3f ms, /bin/true reaped after %6.3f ms "
    .. "(medians of %d; spawner RSS %.0f MB)", c[1], median(spawn_ms[i]), median(total_ms[i]), ROUNDS, rss_kb / 1024))
end

-- The batch part: BATCH spawns at once, serial against on the loop.
local BATCH = tonumber(arg[3]) or 0

local function cpu_ms()
  local r = uv.getrusage()
  return (r.utime.sec + r.stime.sec) * 1e3 + (r.utime.usec + r.stime.usec) / 1e3
end

local function serial(o, procs)
  local longest = 0
  for i = 1, BATCH do
    local t = uv.hrtime()
    procs[i] = assert(proc.spawn(o))
    longest = math.max(longest, (uv.hrtime() - t) / 1e6)
  end
  return longest
end

local function on_loop(o, procs)
  local longest, left = 0, BATCH
  for i = 1, BATCH do
    local t = uv.hrtime()
    local pending = assert(proc.spawn_start(o))
    longest = math.max(longest, (uv.hrtime() - t) / 1e6)
    local poll = uv.new_poll(pending:fd())
    poll:start("r", function()
      poll:stop()
      local t1 = uv.hrtime()
      procs[i] = assert(pending:finish(true))
      longest = math.max(longest, (uv.hrtime() - t1) / 1e6)
      poll:close()
      left = left - 1
    end)
  end
  while left > 0 do uv.run("once") end
  return longest
end

if BATCH > 0 then
  local results = {}
  for round = 1, 3 do
    for i, c in ipairs(cases) do
      for _, way in ipairs(round % 2 == 1 and { "serial", "on loop" } or { "on loop", "serial" }) do
        local procs = {}
        local t0, c0 = uv.hrtime(), cpu_ms()
        local longest = (way == "serial" and serial or on_loop)(c[2], procs)
        local wall, cpu = (uv.hrtime() - t0) / 1e6, cpu_ms() - c0
        for _, p in ipairs(procs) do p:wait(); p:close() end
        local key = c[1] .. " " .. way
        results[key] = results[key] or { wall = {}, cpu = {}, longest = {}, order = i }
        table.insert(results[key].wall, wall)
        table.insert(results[key].cpu, cpu)
        table.insert(results[key].longest, longest)
      end
    end
  end
  local keys = {}
  for k in pairs(results) do keys[#keys + 1] = k end
  table.sort(keys)
  print(string.format("\n%d spawns at once (medians of 3 rounds; load average %s):", BATCH,
    (require("common").read("/proc/loadavg") or ""):match("^(%S+ %S+ %S+)")))
  for _, k in ipairs(keys) do
    local r = results[k]
    print(string.format("  %-16s all exec'd after %7.1f ms, longest block %6.2f ms, spawner CPU %6.1f ms",
      k, median(r.wall), median(r.longest), median(r.cpu)))
  end
end
os.execute("rm -rf " .. home)
assert(#ballast == (tonumber(arg[2]) or 0))
