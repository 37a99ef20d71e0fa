-- prisn.cron.tz: time zones read from the system's zoneinfo database, so cron
-- schedules can fire on a zone's wall clock without the C library's global TZ.
--
-- A zone is loaded from /usr/share/zoneinfo/<Name> (TZif versions 1-3; the
-- 64-bit section of v2+ files is used when present). Times past the last
-- transition in the file follow its POSIX TZ footer ("CET-1CEST,M3.5.0,
-- M10.5.0/3"), which is also how slim tzdata files describe every future year.
-- Names are validated (no "..", no absolute paths). UTC works without tzdata.
--
-- Time is integer seconds since the epoch (UTC); "local fields" are tables
-- { year, month, day, hour, min, sec, wday } with wday 0 = Sunday, as in cron.
-- Assumes at most one offset change per day, which holds for every real zone.
local M = {}

M.ZONEINFO = "/usr/share/zoneinfo"
M.HINT = "use an IANA name like Europe/Berlin or America/New_York (from /usr/share/zoneinfo)"

-- Calendar arithmetic (proleptic Gregorian, Howard Hinnant's algorithms) ---

--- Days since 1970-01-01 of a civil date.
function M.days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

--- Civil date (year, month, day) of a day count since 1970-01-01.
function M.civil_from_days(z)
  z = z + 719468
  local era = (z >= 0 and z or z - 146096) // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp + (mp < 10 and 3 or -9)
  if m <= 2 then y = y + 1 end
  return y, m, d
end

function M.is_leap(y)
  return y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)
end

local MONTH_DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

function M.days_in_month(y, m)
  if m == 2 and M.is_leap(y) then return 29 end
  return MONTH_DAYS[m]
end

--- Weekday (0 = Sunday) of a day count since the epoch (a Thursday).
function M.weekday(days)
  return (days + 4) % 7
end

--- Seconds of a civil date and time read as if it were UTC ("naive" time).
function M.naive(f)
  return M.days_from_civil(f.year, f.month, f.day) * 86400 + f.hour * 3600 + f.min * 60 + f.sec
end

--- Local fields of naive seconds.
function M.fields(naive)
  local days = naive // 86400
  local rest = naive - days * 86400
  local y, m, d = M.civil_from_days(days)
  return { year = y, month = m, day = d, hour = rest // 3600, min = rest % 3600 // 60,
           sec = rest % 60, wday = M.weekday(days) }
end

-- POSIX TZ strings ------------------------------------------------------------

local function parse_name(s, i)
  if s:sub(i, i) == "<" then
    local close = s:find(">", i, true)
    if not close then return nil end
    return s:sub(i + 1, close - 1), close + 1
  end
  local name = s:match("^%a+", i)
  if not name or #name < 3 then return nil end
  return name, i + #name
end

-- [+-]hh[:mm[:ss]] -> seconds, next index
local function parse_hms(s, i)
  local sign, h, rest = s:match("^([+-]?)(%d+)(.*)", i)
  if not h then return nil end
  local seconds = tonumber(h) * 3600
  local consumed = #sign + #h
  local mm = rest:match("^:(%d+)")
  if mm then
    seconds = seconds + tonumber(mm) * 60
    consumed = consumed + 1 + #mm
    local ss = rest:sub(2 + #mm):match("^:(%d+)")
    if ss then
      seconds = seconds + tonumber(ss)
      consumed = consumed + 1 + #ss
    end
  end
  if sign == "-" then seconds = -seconds end
  return seconds, i + consumed
end

local function parse_rule_date(s, i)
  local m, w, d = s:match("^M(%d+)%.(%d+)%.(%d+)", i)
  local kind, a, b, c, len
  if m then
    kind, a, b, c = "M", tonumber(m), tonumber(w), tonumber(d)
    len = 3 + #m + #w + #d
  else
    local j = s:match("^J(%d+)", i)
    if j then
      kind, a, len = "J", tonumber(j), 1 + #j
    else
      local n = s:match("^(%d+)", i)
      if not n then return nil end
      kind, a, len = "N", tonumber(n), #n
    end
  end
  local rule = { kind = kind, a = a, b = b, c = c, time = 7200 }
  i = i + len
  if s:sub(i, i) == "/" then
    local t, ni = parse_hms(s, i + 1)
    if not t then return nil end
    rule.time, i = t, ni
  end
  return rule, i
end

--- Parses a POSIX TZ string ("CET-1CEST,M3.5.0,M10.5.0/3"). Returns
-- { std_abbr, std_offset, dst_abbr, dst_offset, start, ["end"] } with offsets
-- in seconds EAST of UTC, or nil.
function M.parse_posix(s)
  if type(s) ~= "string" or s == "" then return nil end
  local std, i = parse_name(s, 1)
  if not std then return nil end
  local off
  off, i = parse_hms(s, i)
  if not off then return nil end
  local rule = { std_abbr = std, std_offset = -off }
  if i > #s then return rule end
  local dst
  dst, i = parse_name(s, i)
  if not dst then return nil end
  rule.dst_abbr, rule.dst_offset = dst, rule.std_offset + 3600
  if s:sub(i, i) ~= "," and i <= #s then
    off, i = parse_hms(s, i)
    if not off then return nil end
    rule.dst_offset = -off
  end
  if s:sub(i, i) ~= "," then
    -- No rule given: POSIX leaves it to the implementation; use the US rule.
    s, i = s:sub(1, i - 1) .. ",M3.2.0,M11.1.0", i
  end
  rule.start, i = parse_rule_date(s, i + 1)
  if not rule.start or s:sub(i, i) ~= "," then return nil end
  rule["end"], i = parse_rule_date(s, i + 1)
  if not rule["end"] or i <= #s then return nil end
  return rule
end

-- Day count of a rule date in year y.
local function rule_day(r, y)
  if r.kind == "M" then
    local first = M.days_from_civil(y, r.a, 1)
    local day = (r.c - M.weekday(first)) % 7 + (r.b - 1) * 7
    if day >= M.days_in_month(y, r.a) then day = day - 7 end
    return first + day
  elseif r.kind == "J" then -- 1..365, February 29 never counted
    local day = r.a - 1
    if M.is_leap(y) and r.a >= 60 then day = day + 1 end
    return M.days_from_civil(y, 1, 1) + day
  end
  return M.days_from_civil(y, 1, 1) + r.a
end

-- UTC instants where DST starts and ends in year y.
local function rule_transitions(rule, y)
  local start = rule_day(rule.start, y) * 86400 + rule.start.time - rule.std_offset
  local stop = rule_day(rule["end"], y) * 86400 + rule["end"].time - rule.dst_offset
  return start, stop
end

local function posix_offset(rule, utc)
  if not rule.dst_abbr then return rule.std_offset, rule.std_abbr, false end
  local y = M.civil_from_days((utc + rule.std_offset) // 86400)
  local start, stop = rule_transitions(rule, y)
  local dst
  if start < stop then
    dst = utc >= start and utc < stop
  else
    dst = not (utc >= stop and utc < start)
  end
  if dst then return rule.dst_offset, rule.dst_abbr, true end
  return rule.std_offset, rule.std_abbr, false
end

-- TZif ---------------------------------------------------------------------------

local function parse_block(data, pos, time_size)
  local magic, version = data:sub(pos, pos + 3), data:sub(pos + 4, pos + 4)
  if magic ~= "TZif" then return nil end
  local isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt =
    string.unpack(">I4I4I4I4I4I4", data, pos + 20)
  local p = pos + 44
  local tfmt = time_size == 8 and ">i8" or ">i4"
  local times, idx, types = {}, {}, {}
  for k = 1, timecnt do times[k], p = string.unpack(tfmt, data, p) end
  for k = 1, timecnt do idx[k], p = string.unpack("B", data, p) end
  local raw = {}
  for k = 1, typecnt do
    local utoff, isdst, desig
    utoff, isdst, desig, p = string.unpack(">i4BB", data, p)
    raw[k] = { offset = utoff, isdst = isdst == 1, desig = desig }
  end
  local chars = data:sub(p, p + charcnt - 1)
  p = p + charcnt + leapcnt * (time_size + 4) + isstdcnt + isutcnt
  for k, t in ipairs(raw) do
    types[k] = { offset = t.offset, isdst = t.isdst, abbr = chars:match("^[^%z]*", t.desig + 1) }
  end
  return { version = version, times = times, idx = idx, types = types }, p
end

local function parse_tzif(data)
  if #data < 44 then return nil end
  local ok, block, after = pcall(parse_block, data, 1, 4)
  if not ok or not block then return nil end
  local footer
  if block.version >= "2" and data:sub(after, after + 3) == "TZif" then
    local ok2, block2, after2 = pcall(parse_block, data, after, 8)
    if ok2 and block2 then
      block = block2
      footer = data:match("^\n([^\n]*)\n", after2)
    end
  end
  if #block.types == 0 then return nil end
  block.rule = footer and footer ~= "" and M.parse_posix(footer) or nil
  return block
end

-- Zones ------------------------------------------------------------------------

local Zone = {}
Zone.__index = Zone
Zone.__name = "prisn.cron.tz"

function Zone:__tostring()
  return "time zone " .. self.name
end

--- Offset in seconds east of UTC at instant `utc`, its abbreviation and
-- whether it is daylight-saving time.
function Zone:offset_at(utc)
  local times = self.times
  local n = times and #times or 0
  if n == 0 or utc >= times[n] then
    if self.rule then return posix_offset(self.rule, utc) end
    local t = n > 0 and self.types[self.idx[n] + 1] or self.types[1]
    return t.offset, t.abbr, t.isdst
  end
  if utc < times[1] then
    -- Before the first transition: the first standard-time type (RFC 8536).
    for _, t in ipairs(self.types) do
      if not t.isdst then return t.offset, t.abbr, false end
    end
    local t = self.types[1]
    return t.offset, t.abbr, t.isdst
  end
  local lo, hi = 1, n -- times[lo] <= utc < times[hi]
  while hi - lo > 1 do
    local mid = (lo + hi) // 2
    if times[mid] <= utc then lo = mid else hi = mid end
  end
  local t = self.types[self.idx[lo] + 1]
  return t.offset, t.abbr, t.isdst
end

--- Local fields at instant `utc` (plus offset, abbr, isdst).
function Zone:to_local(utc)
  local offset, abbr, isdst = self:offset_at(utc)
  local f = M.fields(utc + offset)
  f.offset, f.abbr, f.isdst = offset, abbr, isdst
  return f
end

--- The UTC instants, ascending, whose local time shows `fields` (year, month,
-- day, hour, min, sec): one normally, none in a spring-forward gap, two in a
-- fall-back overlap.
function Zone:to_utc_candidates(fields)
  local naive = M.naive({ year = fields.year, month = fields.month, day = fields.day,
    hour = fields.hour or 0, min = fields.min or 0, sec = fields.sec or 0 })
  local out, seen = {}, {}
  for _, probe in ipairs({ naive - 86400, naive, naive + 86400 }) do
    local offset = self:offset_at(probe)
    local utc = naive - offset
    if not seen[utc] and self:offset_at(utc) == offset then
      seen[utc] = true
      out[#out + 1] = utc
    end
  end
  table.sort(out)
  return out
end

local function fixed_zone(name, offset, abbr)
  return setmetatable({ name = name, times = {}, idx = {},
    types = { { offset = offset, isdst = false, abbr = abbr } } }, Zone)
end

M.UTC = fixed_zone("UTC", 0, "UTC")

local BUILTIN = { UTC = true, ["Etc/UTC"] = true, ["Etc/UCT"] = true, UCT = true,
  GMT = true, ["Etc/GMT"] = true, Zulu = true, ["Etc/Zulu"] = true }

local function valid_name(name)
  if type(name) ~= "string" or name == "" or #name > 255 then return false end
  if name:sub(1, 1) == "/" or not name:match("^[%w_%+%-/]+$") then return false end
  for part in name:gmatch("[^/]+") do
    if part == ".." or part == "." then return false end
  end
  return not name:find("//", 1, true) and name:sub(-1) ~= "/"
end

local read_file = require("prisn.fs").read_file

local function from_data(name, data)
  local block = data and parse_tzif(data)
  if not block then return nil end
  return setmetatable({ name = name, times = block.times, idx = block.idx,
    types = block.types, rule = block.rule }, Zone)
end

local cache = {}

--- Loads zone `name` (e.g. "Europe/Berlin"); `opts.zoneinfo` overrides the
-- directory. Returns the zone, or nil, "unknown time zone 'NAME'", "unknown_zone"
-- (M.HINT says what to use instead). A zone passed in is returned as is.
function M.load(name, opts)
  if getmetatable(name) == Zone then return name end
  local dir = opts and opts.zoneinfo or M.ZONEINFO
  local key = dir .. "\0" .. tostring(name)
  if cache[key] then return cache[key] end
  if not valid_name(name) then
    return nil, string.format("unknown time zone '%s'", tostring(name)), "unknown_zone"
  end
  local zone = from_data(name, read_file(dir .. "/" .. name))
  if not zone and BUILTIN[name] then zone = fixed_zone(name, 0, "UTC") end
  if not zone then
    return nil, string.format("unknown time zone '%s'", name), "unknown_zone"
  end
  cache[key] = zone
  return zone
end

--- True for a zone object.
function M.is_zone(v)
  return getmetatable(v) == Zone
end

--- The server's local zone: $TZ (a zone name, ":name", a file path or a POSIX
-- rule), else /etc/localtime (its link target names the zone), else UTC.
-- `opts` for specs: env (a table standing for os.getenv), localtime (path),
-- zoneinfo, readlink (function path -> target or nil).
function M.local_zone(opts)
  opts = opts or {}
  local getenv = opts.env and function(k) return opts.env[k] end or os.getenv
  local tz = getenv("TZ")
  if tz and tz ~= "" then
    local spec = tz:gsub("^:", "")
    if spec:sub(1, 1) == "/" then
      local zone = from_data(spec:match("zoneinfo/(.+)$") or spec, read_file(spec))
      if zone then return zone end
    else
      local zone = M.load(spec, opts)
      if zone then return zone end
      local rule = M.parse_posix(spec)
      if rule then
        local z = fixed_zone(spec, rule.std_offset, rule.std_abbr)
        z.rule = rule
        return z
      end
    end
  end
  local path = opts.localtime or "/etc/localtime"
  local readlink = opts.readlink or function(p)
    local ok, uv = pcall(require, "luv")
    if not ok then return nil end
    return (uv.fs_readlink(p))
  end
  local target = readlink(path)
  local name = target and target:match("zoneinfo/(.+)$")
  if name then
    local zone = M.load(name, opts)
    if zone then return zone end
  end
  local zone = from_data("localtime", read_file(path))
  if zone then return zone end
  return M.UTC
end

return M
