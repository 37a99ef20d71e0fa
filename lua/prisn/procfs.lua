-- prisn.procfs: what prisn reads about a process from /proc/PID/stat, parsed
-- in one place — its state, session, CPU ticks and start time — and the one
-- rule for "is this pid still the process we started".
--
-- Why one module: five parsers had grown, two of which split the line at
-- the first ")" although the command name (comm, up to 15 bytes chosen by
-- the process) may hold spaces and parentheses. The only safe split is after
-- the last ")": the fields that follow are numbers and one state letter.
--
-- Linux only: elsewhere every reader answers nil (or false) and callers
-- treat the process as unknown. Usable from every layer: it needs nothing
-- but prisn.fs.
local read_file = require("prisn.fs").read_file

local M = {}

-- /proc reports CPU and start times in USER_HZ ticks, fixed at 100 on Linux
-- whatever the kernel's HZ: it is ABI (sysconf(_SC_CLK_TCK) answers the
-- same, and the core does not bind sysconf for that reason). The one place
-- prisn states it.
M.USER_HZ = 100

-- How far the start time /proc shows may be from the one a spawner recorded
-- (its wall clock right after the spawn) for the process still to be the
-- same: ticks are 10 ms, and a loaded machine may take a while between fork
-- and the recording; a reused pid started seconds or days apart.
M.START_TOLERANCE_S = 2

-- Named fields, at their proc(5) numbers, converted to numbers.
local NUMBERED = {
  ppid = 4, pgrp = 5, session = 6, utime = 14, stime = 15, cutime = 16, cstime = 17,
  starttime = 22, vsize = 23, rss = 24,
}

--- Parses the text of /proc/PID/stat. Returns a table holding every field
-- as text at its proc(5) number (1 pid, 2 comm, 3 state, ... 22 starttime,
-- 23 vsize), and the common ones by name: pid, comm, state (a letter),
-- ppid, pgrp, session, utime, stime, cutime, cstime, starttime (ticks since
-- boot), vsize, rss (numbers). nil for nil or text that is not a stat line.
function M.parse_stat(text)
  if not text then return nil end
  local open, close = text:find("(", 1, true), text:match(".*()%)")
  local pid = text:match("^(%d+) ")
  if not (open and close and pid) or close < open then return nil end
  local fields = { pid, text:sub(open + 1, close - 1) }
  for word in text:sub(close + 1):gmatch("%S+") do fields[#fields + 1] = word end
  if not fields[3] then return nil end
  fields.pid, fields.comm, fields.state = math.tointeger(tonumber(pid)), fields[2], fields[3]
  for name, i in pairs(NUMBERED) do fields[name] = tonumber(fields[i]) end
  return fields
end

--- The parsed /proc/PID/stat of `pid` ("self" works too), or nil when the
-- process is gone (or this is not Linux). A float pid (luv's os_getpid gives
-- one) is taken as the integer it holds.
function M.stat(pid)
  return M.parse_stat(read_file("/proc/" .. (math.tointeger(pid) or pid) .. "/stat"))
end

--- Whether a parsed stat (M.stat) is of a process that still runs: not a
-- zombie waiting for its parent, not dead.
function M.running(stat)
  return stat ~= nil and stat.state ~= "Z" and stat.state ~= "X"
end

--- Whether process `pid` is alive and not a zombie.
function M.alive(pid)
  return M.running(M.stat(pid))
end

--- CPU ticks of a parsed stat: its own user and system time plus what it
-- collected from reaped children (utime + stime + cutime + cstime).
function M.cpu_ticks(stat)
  return (stat.utime or 0) + (stat.stime or 0) + (stat.cutime or 0) + (stat.cstime or 0)
end

--- The boot time (seconds since the epoch) in the text of /proc/stat, or nil.
function M.parse_boot_time(text)
  return text and tonumber(("\n" .. text):match("\nbtime (%d+)"))
end

--- The boot time of this machine, seconds since the epoch, or nil.
function M.boot_time()
  return M.parse_boot_time(read_file("/proc/stat"))
end

--- When the process of a parsed stat started, in seconds since the epoch
-- (fractional), given the boot time `boot` (M.boot_time()); nil when either
-- is unknown.
function M.start_time(stat, boot)
  if not (stat and stat.starttime and boot) then return nil end
  return boot + stat.starttime / M.USER_HZ
end

--- Whether `pid` is still the process prisn started at `started_ms` (wall
-- clock, ms since the epoch, recorded at the spawn) — before it signals or
-- adopts a pid it recorded in an earlier life (a server restarted, a runner
-- gone). The rule, the strongest of those that had grown apart:
--   * a session leader: prisn starts every job and instance with setsid,
--     and a pid reused by some other program rarely leads its own session;
--   * started within START_TOLERANCE_S of `started_ms`: a pid plus its
--     start time names one process for the life of the machine, so a pid
--     reused since (after a reboot, say) fails here.
-- A zombie that passes is still ours: its group may hold live processes
-- to stop. M.adoptable adds that it must be running.
-- Rules that tell a kind of process rather than this one (a command line,
-- a comm, a lock its holder keeps) stay with the code that knows that kind.
function M.still_ours(pid, started_ms)
  pid = math.tointeger(pid)
  if not pid or not started_ms then return false end
  local stat = M.stat(pid)
  if not stat or stat.session ~= pid then return false end
  local started = M.start_time(stat, M.boot_time())
  return started ~= nil and math.abs(started - started_ms / 1000) < M.START_TOLERANCE_S
end

--- Whether `pid` is still ours (M.still_ours) and running, not a zombie:
-- an instance or runner worth watching again rather than starting anew.
function M.adoptable(pid, started_ms)
  return M.alive(math.tointeger(pid) or pid) and M.still_ours(pid, started_ms)
end

return M
