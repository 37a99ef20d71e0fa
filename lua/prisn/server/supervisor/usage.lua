-- prisn.server.supervisor.usage: CPU time and memory of every running
-- instance, sampled on a timer, so the API serves the last sample (with its
-- age) instead of reading /proc or the cgroup on each request.
--
-- Read per request, a list of 1,000 deployments spent 45-90 ms in 6,000
-- small /proc reads before writing a byte, against a target of 30 ms for
-- the whole list (issue 17, tests/bench/deployments-report.md). The sweep
-- visits each instance once per interval (PRISN_USAGE_INTERVAL_MS, default
-- 5 s), two instances per tick, so the loop is held for about 0.2 ms at a
-- time: a sweep done at once would be the 45-90 ms pause the requests
-- waiting behind it see, and eight a tick held it 1-2 ms every 40 ms (the
-- largest stall the server made itself). A sample leaves no garbage (see
-- prisn.exec.proctree), so the more frequent ticks do not grow the heap. An
-- instance with no sample of its current process yet (just started or
-- restarted) is read when asked for, once.
local autoscale = require("prisn.server.supervisor.autoscale")

local M = {}

M.USAGE_INTERVAL_MS = 5000
M.MIN_TICK_MS = 10       -- more instances: bigger slices, not more wake-ups
M.SLICE = 2              -- instances per tick (about 0.1 ms of /proc reads)

-- Samples inst now into inst.usage_sample: { pid, at (ms), cpu_usage_us,
-- memory_current }, nil when it has nothing to read. The table is reused:
-- a new one per sample would survive long enough to turn old in the
-- generational collector, and old garbage waits for a major collection
-- (the heap grew by about 7 MB with 1,000 instances before it came); a
-- process tree's figures are read into `scratch`, for the same reason.
local scratch = {}
local function take(inst, now_ms)
  local st = autoscale.usage(inst, scratch)
  if not st then
    inst.usage_sample = nil
    return nil
  end
  local s = inst.usage_sample or {}
  s.pid, s.at, s.cpu_usage_us, s.memory_current = inst.pid, now_ms, st.cpu_usage_us, st.memory_current
  inst.usage_sample = s
  return s
end

--- The last sample of runtime instance `inst` (see take), taken now when it
-- has none of its current process; nil when it runs no process.
function M.sampled(inst, now_ms)
  if not inst.pid then return nil end
  local s = inst.usage_sample
  if s and s.pid == inst.pid then return s end
  return take(inst, now_ms)
end

-- The delay between ticks for a sweep of n instances: the sweep spread
-- over the interval, never closer than MIN_TICK_MS.
local function tick_ms(interval, n)
  if n == 0 then return interval end
  return math.max(M.MIN_TICK_MS, math.min(interval, interval * M.SLICE // n))
end

local Usage = {}
M.methods = Usage

-- Every instance with a process, for the next sweep, in `list` (reused,
-- for the same reason as the samples).
function Usage:usage_targets(list)
  for i = #list, 1, -1 do list[i] = nil end
  for _, d in pairs(self.deployments) do
    for _, inst in pairs(d.instances) do
      if inst.pid then list[#list + 1] = inst end
    end
  end
  return list
end

--- One tick of the sweep: the next slice of instances sampled (a new sweep
-- begins when the last one is done). Returns the delay to the next tick.
function Usage:usage_tick(interval)
  local sweep = self.usage_sweep
  if not sweep then
    sweep = { list = {}, next = 1 }
    self.usage_sweep = sweep
  end
  if sweep.next > #sweep.list then
    local n = #self:usage_targets(sweep.list)
    sweep.next, sweep.delay = 1, tick_ms(interval, n)
    sweep.per_tick = math.max(1, -(-n * sweep.delay // interval))
  end
  local now = self.clock.now_ms()
  local last = math.min(#sweep.list, sweep.next + sweep.per_tick - 1)
  for i = sweep.next, last do
    local inst = sweep.list[i]
    if inst.pid then take(inst, now) end -- gone since: skipped
  end
  sweep.next = last + 1
  return sweep.delay
end

--- Starts the sweep (PRISN_USAGE_INTERVAL_MS, default 5 s); stop_usage_sampler
-- ends it.
function Usage:start_usage_sampler()
  local interval = math.tointeger(tonumber(os.getenv("PRISN_USAGE_INTERVAL_MS") or ""))
  if not interval or interval < 1 then interval = M.USAGE_INTERVAL_MS end
  local timer = self.uv.new_timer()
  self.usage_timer = timer
  local tick
  tick = self:guard("usage", function()
    local ok, delay = pcall(self.usage_tick, self, interval)
    if not timer:is_closing() then timer:start(ok and delay or interval, 0, tick) end
    if not ok then error(delay, 0) end
  end)
  timer:start(0, 0, tick)
  timer:unref()
end

function Usage:stop_usage_sampler()
  local timer = self.usage_timer
  if timer and not timer:is_closing() then timer:close() end
  self.usage_timer = nil
end

return M
