-- prisn.metrics.process: the standard process_* metrics every Prometheus
-- client exports, computed at scrape time, named and documented as the Go
-- and Python clients do so existing dashboards work:
--
--   process_resident_memory_bytes  RSS (libuv: any platform)
--   process_virtual_memory_bytes   virtual size (/proc/self/stat)
--   process_cpu_seconds_total      user + system CPU time (getrusage: any platform)
--   process_open_fds               entries of /proc/self/fd
--   process_max_fds                the soft "Max open files" of /proc/self/limits
--   process_start_time_seconds     boot time (/proc/stat btime) + the start
--                                  tick of /proc/self/stat (prisn.procfs)
--
-- The /proc ones are Linux only: elsewhere their functions return nil and
-- the families are simply absent from /metrics. A scrape reads two small
-- /proc files and lists one directory: tens of microseconds.
local uv = require("luv")

local fs = require("prisn.fs")
local procfs = require("prisn.procfs")

local read_file = fs.read_file

local M = {}

local function count_entries(path)
  local entries, err = fs.list_dir(path)
  if err then return nil end
  return #entries
end

--- The soft limit of "Max open files" in /proc/<pid>/limits text: a
-- number, math.huge for "unlimited", or nil.
function M.parse_max_fds(text)
  if not text then return nil end
  local soft = text:match("\nMax open files%s+(%S+)") or text:match("^Max open files%s+(%S+)")
  if soft == "unlimited" then return math.huge end
  return soft and tonumber(soft)
end

--- Registers the process_* families on registry `reg`. `deps` (for specs):
-- read_file(path) -> text|nil, count_entries(path) -> n|nil, rusage() ->
-- { utime = {sec, usec}, stime = {sec, usec} }, rss() -> bytes. Returns the
-- families by short name.
function M.register(reg, deps)
  deps = deps or {}
  local read = deps.read_file or read_file
  local count = deps.count_entries or count_entries
  local rusage = deps.rusage or uv.getrusage
  local rss = deps.rss or uv.resident_set_memory
  local start_time -- fixed for the life of the process: computed once

  local families = {}
  families.resident_memory = reg:gauge_fn("process_resident_memory_bytes",
    "Resident memory size in bytes.", function() return rss() end)
  families.virtual_memory = reg:gauge_fn("process_virtual_memory_bytes",
    "Virtual memory size in bytes.", function()
      local stat = procfs.parse_stat(read("/proc/self/stat"))
      return stat and stat.vsize
    end)
  families.cpu = reg:counter_fn("process_cpu_seconds_total",
    "Total user and system CPU time spent in seconds.", function()
      local r = rusage()
      if not r then return nil end
      return r.utime.sec + r.stime.sec + (r.utime.usec + r.stime.usec) / 1e6
    end)
  families.open_fds = reg:gauge_fn("process_open_fds",
    "Number of open file descriptors.", function() return count("/proc/self/fd") end)
  families.max_fds = reg:gauge_fn("process_max_fds",
    "Maximum number of open file descriptors.", function()
      return M.parse_max_fds(read("/proc/self/limits"))
    end)
  families.start_time = reg:gauge_fn("process_start_time_seconds",
    "Start time of the process since unix epoch in seconds.", function()
      if start_time then return start_time end
      start_time = procfs.start_time(procfs.parse_stat(read("/proc/self/stat")),
        procfs.parse_boot_time(read("/proc/stat")))
      return start_time
    end)
  return families
end

return M
