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
os.execute("rm -rf " .. home)
assert(#ballast == (tonumber(arg[2]) or 0))
