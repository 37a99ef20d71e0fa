-- prisn.exec.proctree: CPU time and memory of a process and its
-- descendants, read from /proc — what a service instance uses when it has no
-- cgroup of its own.
--
-- Instances get a cgroup only when they have limits: on cgroup v1, moving a
-- process into a cgroup waits for an RCU grace period (10-20 ms), which
-- would more than double the time to restart a crashed instance. Without
-- one, the tree under the instance's process (children listed in
-- /proc/PID/task/*/children, Linux 3.5+) is summed instead: CPU time of the
-- live processes plus what they collected from reaped children, and
-- resident memory. Processes that left the tree (daemonized) are missed.
local fs = require("prisn.fs")
local procfs = require("prisn.procfs")
local sys = require("prisn.core.sys")

local read_file = fs.read_file
local proc_numbers = sys.proc_numbers

local M = {}

M.MAX_PROCESSES = 1024   -- a runaway tree is not walked forever

-- The page size, for /proc/PID/statm (in pages): AT_PAGESZ (6) of
-- /proc/self/auxv, read once; 4096 when that cannot be read.
local page_size
local function page_bytes()
  if page_size then return page_size end
  page_size = 4096
  local auxv = read_file("/proc/self/auxv") or ""
  for at = 1, #auxv - 15, 16 do
    local kind, v = string.unpack("=I8I8", auxv, at)
    if kind == 6 then page_size = v break end
    if kind == 0 then break end
  end
  return page_size
end

-- The numbers of the last /proc file read (sys.proc_numbers), reused: the
-- server samples a few instances every few milliseconds, and a table or a
-- string per read is garbage the collector pays for later (a sample through
-- io.open cost 120-160 us, six FILEs with their buffers and six strings;
-- tests/bench/deployments-report.md). Nothing here yields, so one is enough.
local numbers = {}

-- After a stat line's ")": state (3, a letter, skipped), then ppid (4) ...:
-- field k is numbers[k - 3].
local UTIME, STIME, CUTIME, CSTIME, THREADS = 14 - 3, 15 - 3, 16 - 3, 17 - 3, 20 - 3

-- CPU ticks (utime + stime + cutime + cstime), resident bytes and thread
-- count of one process; nil when it is gone. Resident memory comes from
-- statm, which the kernel makes far cheaper than status, and which sums
-- the per-CPU counters as status does (the rss of stat may lag behind by
-- dozens of pages).
local function sample(pid)
  local n = proc_numbers(pid, "stat", numbers, 1, ")")
  if not n or n < THREADS then return nil end
  local ticks = numbers[UTIME] + numbers[STIME] + numbers[CUTIME] + numbers[CSTIME]
  local threads = numbers[THREADS]
  n = proc_numbers(pid, "statm", numbers, 1)
  local pages = n and n >= 2 and numbers[2] or 0
  return ticks, pages * page_bytes(), threads
end

-- Appends the children of pid to out (from /proc/PID/task/*/children).
local function children(pid, threads, out)
  -- One thread (nearly every process): its own task's list; else every task's.
  if threads == 1 then
    proc_numbers(pid, "children", out, #out + 1, nil, pid)
    return
  end
  for _, task in ipairs(fs.list_dir("/proc/" .. pid .. "/task")) do
    local tid = math.tointeger(tonumber(task.name))
    if tid then proc_numbers(pid, "children", out, #out + 1, nil, tid) end
  end
end

-- The walk's queue and visited set, reused (see numbers).
local queue, seen = {}, {}

--- { cpu_usage_us, memory_current } of `pid` and its descendants (the
-- fields of a cgroup's stats), or nil when `pid` is gone. The figures go
-- into `out` when given (a caller sampling often keeps one), else a new
-- table.
function M.usage(pid, out)
  pid = math.tointeger(pid) or pid -- luv's os_getpid gives a float
  local ticks, rss, threads = sample(pid)
  if not ticks then return nil end
  local n = 1
  children(pid, threads, queue)
  while #queue > 0 and n < M.MAX_PROCESSES do
    local p = queue[#queue]
    queue[#queue] = nil
    if p ~= pid and not seen[p] then
      seen[p] = true
      n = n + 1
      local t, r, th = sample(p)
      if t then
        ticks, rss = ticks + t, rss + r
        children(p, th, queue)
      end
    end
  end
  for i = #queue, 1, -1 do queue[i] = nil end
  for p in pairs(seen) do seen[p] = nil end
  out = out or {}
  out.cpu_usage_us, out.memory_current = ticks * 1e6 // procfs.USER_HZ, rss
  return out
end

return M
