-- prisn.cli.log_resume: where a followed log stream (`prisn logs -f` of a
-- deployment or a namespace) left off, so that a new stream after the
-- server went away and came back continues there: no line twice, none
-- skipped.
--
-- The server's lines carry the time their first byte was read (ms), not a
-- position, and lines of different sources arrive merged per poll only, so
-- one "last time" would not do. For each source and stream (the lines of one
-- log file's stream come in file order, their times never going back) it
-- keeps the last time shown and how many lines of that very millisecond
-- were shown. The new stream asks for the lines since the earliest of those
-- times (since=, inclusive) and each line is then shown only when it is
-- past its source's mark; the lines of a millisecond already shown are
-- skipped by count. A source not shown yet is shown from the earliest line
-- shown on (older lines of it were left out by --tail, not missed).
--
-- Pure: no I/O, so a spec drives it with records.
local M = {}

local Resume = {}
Resume.__index = Resume

local function key_of(rec)
  return tostring(rec.instance or rec.source) .. "\0" .. tostring(rec.stream)
end

--- Whether line `rec` ({ instance or source, stream, time_ms }) is to be
-- shown: not seen before this resume point. Records it as shown when so.
function Resume:fresh(rec)
  local t = math.tointeger(rec.time_ms)
  if not t then return true end
  local k = key_of(rec)
  local m = self.marks[k]
  if not m and self.resumed and self.floor and t < self.floor then return false end
  if not self.floor or t < self.floor then self.floor = t end
  if m then
    if t < m.time_ms then return false end
    if t == m.time_ms and m.skip > 0 then
      m.skip = m.skip - 1
      return false
    end
  end
  if not m or t > m.time_ms then
    self.marks[k] = { time_ms = t, count = 1, skip = 0 }
  else
    m.count = m.count + 1
  end
  return true
end

--- Arms the marks for a new stream and returns the time (ms) it must start
-- at, or nil when no line was shown yet (start as the first one did).
function Resume:resume()
  self.resumed = true
  local since
  for _, m in pairs(self.marks) do
    m.skip = m.count
    if not since or m.time_ms < since then since = m.time_ms end
  end
  return since
end

--- A new resume point (nothing shown yet).
function M.new()
  return setmetatable({ marks = {} }, Resume)
end

return M
