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

local read_file = fs.read_file

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

-- CPU ticks (utime + stime + cutime + cstime), resident bytes and thread
-- count of one process; nil when it is gone. Resident memory comes from
-- statm, which the kernel makes far cheaper than status, and which sums
-- the per-CPU counters as status does (the rss of stat may lag behind by
-- dozens of pages). A GET of a thousand deployments samples two processes
-- each (tests/bench/deployments-report.md).
local function sample(pid)
  local ticks, threads = procfs.ticks_and_threads(read_file("/proc/" .. pid .. "/stat"))
  if not ticks then return nil end
  local pages = tonumber((read_file("/proc/" .. pid .. "/statm") or ""):match("^%d+ (%d+)"))
  return ticks, (pages or 0) * page_bytes(), threads
end

local function children(pid, threads, out)
  -- One thread (nearly every process): its own task's list; else every task's.
  local tasks = threads == 1 and { { name = tostring(pid) } } or fs.list_dir("/proc/" .. pid .. "/task")
  for _, task in ipairs(tasks) do
    local text = read_file("/proc/" .. pid .. "/task/" .. task.name .. "/children") or ""
    for child in text:gmatch("%d+") do out[#out + 1] = tonumber(child) end
  end
end

--- { cpu_usage_us, memory_current } of `pid` and its descendants (the
-- fields of a cgroup's stats), or nil when `pid` is gone.
function M.usage(pid)
  pid = math.tointeger(pid) or pid -- luv's os_getpid gives a float
  local ticks, rss, threads = sample(pid)
  if not ticks then return nil end
  local queue, seen, n = {}, { [pid] = true }, 1
  children(pid, threads, queue)
  while #queue > 0 and n < M.MAX_PROCESSES do
    local p = table.remove(queue)
    if not seen[p] then
      seen[p] = true
      n = n + 1
      local t, r, th = sample(p)
      if t then
        ticks, rss = ticks + t, rss + r
        children(p, th, queue)
      end
    end
  end
  return { cpu_usage_us = ticks * 1e6 // procfs.USER_HZ, memory_current = rss }
end

return M
