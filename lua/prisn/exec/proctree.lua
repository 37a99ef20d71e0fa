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

-- utime, stime, cutime, cstime (ticks) of one process, or nil when gone.
local function cpu_ticks(pid)
  local stat = procfs.stat(pid)
  return stat and procfs.cpu_ticks(stat)
end

local function rss_bytes(pid)
  local status = read_file("/proc/" .. pid .. "/status")
  local kb = status and status:match("\nVmRSS:%s*(%d+) kB")
  return kb and tonumber(kb) * 1024 or 0
end

local function children(pid, out)
  for _, task in ipairs(fs.list_dir("/proc/" .. pid .. "/task")) do
    local text = read_file("/proc/" .. pid .. "/task/" .. task.name .. "/children") or ""
    for child in text:gmatch("%d+") do out[#out + 1] = tonumber(child) end
  end
end

--- { cpu_usage_us, memory_current } of `pid` and its descendants (the
-- fields of a cgroup's stats), or nil when `pid` is gone.
function M.usage(pid)
  if not cpu_ticks(pid) then return nil end
  local ticks, rss = 0, 0
  local queue, seen, n = { pid }, {}, 0
  while #queue > 0 and n < M.MAX_PROCESSES do
    local p = table.remove(queue)
    if not seen[p] then
      seen[p] = true
      n = n + 1
      ticks = ticks + (cpu_ticks(p) or 0)
      rss = rss + rss_bytes(p)
      children(p, queue)
    end
  end
  return { cpu_usage_us = ticks * 1e6 // procfs.USER_HZ, memory_current = rss }
end

return M
