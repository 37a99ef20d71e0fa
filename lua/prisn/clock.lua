-- prisn.clock: wall-clock time as prisn records it — milliseconds since the
-- Unix epoch, and the ISO 8601 UTC text the API and the CLI show.
--
-- One home for what six modules each wrote for themselves. Time that must
-- not jump (timeouts, latencies) is the event loop's monotonic clock
-- (uv.now, uv.hrtime), not this.
local uv = require("luv")

local M = {}

--- Milliseconds since the Unix epoch, now.
function M.now_ms()
  local sec, usec = uv.gettimeofday()
  return sec * 1000 + usec // 1000
end

--- `ms` (since the epoch) as "2026-11-26T18:46:00.000Z"; for nil, `absent`
-- (the public shapes pass prisn.output.value's null, shown as JSON null).
function M.iso_time(ms, absent)
  if ms == nil then return absent end
  return os.date("!%Y-%m-%dT%H:%M:%S", ms // 1000) .. string.format(".%03dZ", ms % 1000)
end

return M
