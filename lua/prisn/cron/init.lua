-- prisn.cron: compiled cron schedules and their next fire times in a time zone.
--
--   local cron = require("prisn.cron")
--   local s = assert(cron.compile("30 2 * * *", { tz = "Europe/Berlin" }))
--   s:next(os.time())      --> next fire time, UTC epoch seconds, strictly after
--   s:next_n(os.time(), 5) --> the next five
--   s.expression           --> "30 2 * * *" (normalized, as stored and shown)
--
-- The search walks the zone's wall clock field by field (next allowed month,
-- then day, hour, minute, second), never minute by minute, and then maps the
-- local time found to UTC.
--
-- Daylight saving. A change neither skips nor doubles a run; what that means
-- depends on the kind of schedule (the rule of Debian and cronie cron):
--
-- * Fixed-time schedules (no `*` at the start of the second, minute or hour
--   field: "30 2 * * *", "0 9,17 * * 1-5"). A local time that does not exist
--   (in the spring-forward gap) fires once, at the first instant after the
--   gap: 02:30 on the day Berlin goes from 02:00 to 03:00 fires at 03:00 CEST.
--   Several times in one gap, or a gap time and the time just after the gap,
--   are the same instant and fire once. A local time that happens twice (in
--   the fall-back overlap) fires once, at its first occurrence.
-- * Interval schedules (second, minute or hour starting with `*`:
--   "*/15 * * * *", "0 * * * *", "@hourly", "*/10 9-17 * * *"). They follow
--   elapsed time: they fire at every instant whose local time matches. Local
--   times in the gap do not exist and do not fire (no time passes there), and
--   the repeated hour fires in both passes, so "*/15 * * * *" keeps firing
--   every 15 real minutes and "0 * * * *" every real hour through both changes.
local parse = require("prisn.cron.parse")
local tz = require("prisn.cron.tz")

local M = {}

-- A search gives up after this many years (only an impossible day could get
-- there; parse rejects those).
local SEARCH_YEARS = 30

local Schedule = {}
Schedule.__index = Schedule
Schedule.__name = "prisn.cron.schedule"

function Schedule:__tostring()
  return "cron schedule " .. self.expression .. " (" .. self.zone.name .. ")"
end

-- next_of[v] = the smallest allowed value >= v, or nil.
local function next_table(set, lo, hi)
  local t, nxt = {}, nil
  for v = hi, lo, -1 do
    if set[v] then nxt = v end
    t[v] = nxt
  end
  return t
end

local function day_matches(self, y, m, d)
  local wday = tz.weekday(tz.days_from_civil(y, m, d))
  if self.or_days then
    return self.dom[d] or self.dow[wday]
  end
  return self.dom[d] and self.dow[wday]
end

--- The smallest naive local time (seconds, wall clock read as UTC) strictly
-- after `naive` that matches the fields, or nil.
function Schedule:next_local(naive)
  local f = tz.fields(naive + 1)
  local y, mo, d, h, mi, s = f.year, f.month, f.day, f.hour, f.min, f.sec
  local limit = y + SEARCH_YEARS
  while y <= limit do
    local nmo = self.next_month[mo]
    if nmo ~= mo then
      if nmo then mo = nmo else y, mo = y + 1, self.next_month[1] end
      d, h, mi, s = 1, 0, 0, 0
    elseif not day_matches(self, y, mo, d) then
      d, h, mi, s = d + 1, 0, 0, 0
      if d > tz.days_in_month(y, mo) then
        d, mo = 1, mo + 1
        if mo > 12 then y, mo = y + 1, 1 end
      end
    else
      local nh = self.next_hour[h]
      if nh ~= h then
        if nh then
          h, mi, s = nh, 0, 0
        else
          -- carry to the next day; d may pass the month end, handled above
          h, mi, s = 0, 0, 0
          d = d + 1
          if d > tz.days_in_month(y, mo) then
            d, mo = 1, mo + 1
            if mo > 12 then y, mo = y + 1, 1 end
          end
        end
      else
        local nmi = self.next_minute[mi]
        if nmi ~= mi then
          if nmi then mi, s = nmi, 0 else h, mi, s = h + 1, 0, 0 end
          if h > 23 then
            h, d = 0, d + 1
            if d > tz.days_in_month(y, mo) then
              d, mo = 1, mo + 1
              if mo > 12 then y, mo = y + 1, 1 end
            end
          end
        else
          local ns = self.next_second[s]
          if ns then
            return tz.naive({ year = y, month = mo, day = d, hour = h, min = mi, sec = ns })
          end
          s, mi = 0, mi + 1
          if mi > 59 then
            mi, h = 0, h + 1
            if h > 23 then
              h, d = 0, d + 1
              if d > tz.days_in_month(y, mo) then
                d, mo = 1, mo + 1
                if mo > 12 then y, mo = y + 1, 1 end
              end
            end
          end
        end
      end
    end
  end
  return nil
end

-- The first instant after the spring-forward gap that contains naive local
-- time `naive`: the transition itself, found by bisection between the two
-- readings of `naive` (with the offsets before and after the gap).
local function gap_end(zone, naive)
  local after_offset = zone:offset_at(naive + 86400)
  local before_offset = zone:offset_at(naive - 86400)
  local lo, hi = naive - after_offset, naive - before_offset -- offset(lo) ~= after, offset(hi) == after
  while hi - lo > 1 do
    local mid = (lo + hi) // 2
    if zone:offset_at(mid) == after_offset then hi = mid else lo = mid end
  end
  return hi
end

--- The next fire time strictly after `after` (UTC epoch seconds, an integer),
-- or nil if there is none.
function Schedule:next(after)
  after = math.floor(after)
  local zone = self.zone
  -- Start early enough to see a repeated hour that begins after `after`.
  local now_offset, later_offset = zone:offset_at(after), (zone:offset_at(after + 86400))
  local cursor = after + math.min(now_offset, later_offset)
  -- Wall-clock order is not UTC order inside a repeated hour, so keep the
  -- earliest instant seen and stop once no later local time can beat it.
  local best, bound
  while true do
    local naive = self:next_local(cursor)
    if not naive then return best end
    if best and naive - bound >= best then return best end
    local candidate
    local utcs = zone:to_utc_candidates(tz.fields(naive))
    if #utcs == 0 then
      if self.fixed_time then candidate = gap_end(zone, naive) end
    elseif self.fixed_time then
      candidate = utcs[1]
    else
      for _, u in ipairs(utcs) do
        if u > after then
          candidate = u
          break
        end
      end
    end
    if candidate and candidate > after and (not best or candidate < best) then
      best = candidate
      -- A later local time N can only beat `best` with an instant in
      -- (max(after, best - 1 day), best) and an offset above N - best; the
      -- largest offset there is at one of the ends (one change a day at most).
      bound = math.max(zone:offset_at(math.max(after + 1, best - 86400)), (zone:offset_at(best)))
    end
    cursor = naive
  end
end

--- The next `n` fire times after `after`, ascending (fewer if the schedule ends).
function Schedule:next_n(after, n)
  local out = {}
  local t = after
  for i = 1, n do
    t = self:next(t)
    if not t then break end
    out[i] = t
  end
  return out
end

--- Compiles `expr` (a standard expression or macro). `opts.tz` is a zone
-- (from prisn.cron.tz) or a zone name; the server's local zone by default.
-- Returns a schedule { expression, zone, fixed_time, ... } or nil, message.
function M.compile(expr, opts)
  opts = opts or {}
  local parsed, err = parse.parse(expr)
  if not parsed then return nil, err end
  local zone
  if opts.tz == nil then
    zone = tz.local_zone()
  else
    local zerr
    zone, zerr = tz.load(opts.tz)
    if not zone then return nil, zerr end
  end
  local f = parsed.fields
  return setmetatable({
    expression = parsed.expression,
    parsed = parsed,
    zone = zone,
    fixed_time = not (f[1].star or f[2].star or f[3].star),
    or_days = not (parsed.dom.star or parsed.dow.star),
    dom = parsed.dom.set,
    dow = parsed.dow.set,
    next_second = next_table(f[1].set, 0, 59),
    next_minute = next_table(f[2].set, 0, 59),
    next_hour = next_table(f[3].set, 0, 23),
    next_month = next_table(f[5].set, 1, 12),
  }, Schedule)
end

--- True for a compiled schedule.
function M.is_schedule(v)
  return getmetatable(v) == Schedule
end

return M
