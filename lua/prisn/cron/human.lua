-- prisn.cron.human: the human schedule syntax of `--every`, turned into a
-- standard cron expression (which is what prisn stores and shows).
--
--   5m, 30s, "15 minutes", minute, hour, "2 hours", day, weekday, weekend,
--   monday (or mon, mondays), "monday,friday", week, month, year
--
-- with an optional time and day, in the text or given separately:
--
--   "day at 03:00", "weekday at 9:30am", "monday,friday at 18:00",
--   "month on the 1st at 00:00", "hour at :15", "15 minutes on weekdays"
--   human.normalize("day", { at = "03:00" })  --> "0 3 * * *"
--
-- Intervals must divide their unit evenly ("7 minutes" would not run every 7
-- minutes across the hour boundary), so they are rejected with the choices.
-- Anything not understood is an error that shows the accepted forms.
local parse = require("prisn.cron.parse")

local M = {}

M.FORMS = '5m, "15 minutes", hour, "2 hours", day, weekday, monday, month, '
  .. '"day at 03:00", "weekday at 9:30am", "monday,friday at 18:00", "month on the 1st at 00:00"'

local WEEKDAYS = {
  sunday = 0, monday = 1, tuesday = 2, wednesday = 3, thursday = 4, friday = 5, saturday = 6,
  sun = 0, mon = 1, tue = 2, tues = 2, wed = 3, thu = 4, thur = 4, thurs = 4, fri = 5, sat = 6,
}

local UNITS = {
  s = "second", sec = "second", secs = "second", second = "second", seconds = "second",
  m = "minute", min = "minute", mins = "minute", minute = "minute", minutes = "minute",
  h = "hour", hr = "hour", hrs = "hour", hour = "hour", hours = "hour",
}

local function divisors(n)
  local out = {}
  for d = 1, n - 1 do
    if n % d == 0 then out[#out + 1] = tostring(d) end
  end
  return table.concat(out, ", ")
end

--- Parses a time of day: "03:00", "9:30am", "9am", "18", "noon", "midnight".
-- Returns hour, minute or nil, message.
function M.parse_time(text)
  local t = text:lower():gsub("%s+", "")
  if t == "noon" then return 12, 0 end
  if t == "midnight" then return 0, 0 end
  local h, m, ampm = t:match("^(%d%d?):(%d%d)([ap]?m?)$")
  if not h then
    h, ampm = t:match("^(%d%d?)([ap]m)$")
    m = "0"
    if not h then
      h, ampm = t:match("^(%d%d?)$"), ""
    end
  end
  if not h or (ampm ~= "" and ampm ~= "am" and ampm ~= "pm") then
    return nil, string.format("'%s' is not a time of day; use 24-hour 03:00 or 9:30am", text)
  end
  h, m = tonumber(h), tonumber(m)
  if ampm ~= "" then
    if h < 1 or h > 12 then
      return nil, string.format("'%s' is not a time of day: %d is not an hour on a 12-hour clock", text, h)
    end
    h = h % 12 + (ampm == "pm" and 12 or 0)
  end
  if h > 23 or m > 59 then
    return nil, string.format("'%s' is not a time of day; hours go 0-23 and minutes 0-59", text)
  end
  return h, m
end

-- "monday,friday", "weekdays", "mon-fri" -> day-of-week field, or nil.
local function weekday_field(text)
  local t = text:lower()
  if t == "weekday" or t == "weekdays" then return "1-5" end
  if t == "weekend" or t == "weekends" then return "0,6" end
  local a, b = t:match("^(%a+)%s*%-%s*(%a+)$")
  if a then
    local x, y = WEEKDAYS[a:gsub("s$", "")] or WEEKDAYS[a], WEEKDAYS[b:gsub("s$", "")] or WEEKDAYS[b]
    if x and y and x < y then return x .. "-" .. y end
    return nil
  end
  local days = {}
  for word in t:gmatch("[^,%s]+") do
    if word ~= "and" then
      local d = WEEKDAYS[word] or WEEKDAYS[(word:gsub("s$", ""))]
      if not d then return nil end
      days[#days + 1] = d
    end
  end
  if #days == 0 then return nil end
  table.sort(days)
  return table.concat(days, ",")
end

-- "the 1st", "1st", "15", "1st,15th" -> day-of-month field, or nil.
local function month_day_field(text)
  local t = text:lower():gsub("^the%s+", "")
  local days = {}
  for word in t:gmatch("[^,%s]+") do
    if word ~= "and" and word ~= "the" then
      local n = word:match("^(%d%d?)$") or word:match("^(%d%d?)st$") or word:match("^(%d%d?)nd$")
        or word:match("^(%d%d?)rd$") or word:match("^(%d%d?)th$")
      n = tonumber(n)
      if not n or n < 1 or n > 31 then return nil end
      days[#days + 1] = n
    end
  end
  if #days == 0 then return nil end
  table.sort(days)
  return table.concat(days, ",")
end

local function not_understood(what, text)
  return nil, string.format("cannot understand %s '%s'; accepted forms: %s", what, text, M.FORMS)
end

-- Splits "X at T on D" / "X on D at T" into X, T, D.
local function split(text)
  local rest, at, on = text, nil, nil
  for _ = 1, 2 do
    local head, kw, tail = rest:match("^(.-)%s+(at)%s+(.+)$")
    local head2, kw2, tail2 = rest:match("^(.-)%s+(on)%s+(.+)$")
    if kw2 and (not kw or #head2 > #head) then head, kw, tail = head2, kw2, tail2 end
    if not kw then break end
    if kw == "at" then at = at or tail else on = on or tail end
    rest = head
  end
  return rest, at, on
end

--- Turns human text (and opts.at, opts.on) into a standard expression.
-- Returns the normalized expression or nil, message.
function M.normalize(text, opts)
  opts = opts or {}
  if type(text) ~= "string" or text:match("^%s*$") then
    return nil, "an empty schedule; accepted forms: " .. M.FORMS
  end
  local every, at, on = split(text:lower():gsub("^%s*every%s+", ""):match("^%s*(.-)%s*$"))
  if opts.at then
    if at then return nil, "the time is given twice: in the text and with --at" end
    at = opts.at
  end
  if opts.on then
    if on then return nil, "the day is given twice: in the text and with --on" end
    on = opts.on
  end
  local n, unit = every:match("^(%d+)%s*(%a+)$")
  n = tonumber(n)
  if not n then unit = UNITS[every] and every end
  local unit_name = unit and UNITS[unit]
  local minute, hour, dom, dow, month, second = "0", "0", "*", "*", "*", nil

  if unit_name then
    n = n or 1
    local span = unit_name == "hour" and 24 or 60
    if n < 1 or (n ~= 1 and span % n ~= 0) or n >= span then
      local whole = ({ second = "a minute", minute = "an hour", hour = "a day" })[unit_name]
      return nil, string.format("every %d %ss does not divide %s evenly; use one of %s %ss",
        n, unit_name, whole, divisors(span), unit_name)
    end
    local step = n == 1 and "*" or ("*/" .. n)
    if unit_name == "second" then
      second, minute, hour = step, "*", "*"
    elseif unit_name == "minute" then
      minute, hour = step, "*"
    else
      hour = step
    end
    if at then
      local mm = at:match("^:(%d%d?)$")
      if unit_name ~= "hour" or not mm or tonumber(mm) > 59 then
        return nil, string.format("'at %s' does not fit 'every %s'; only hours take a minute, like 'hour at :15'",
          at, every)
      end
      minute = tostring(tonumber(mm))
    end
    if on then
      dow = weekday_field(on)
      if not dow then return not_understood("day", on) end
    end
  else
    local kind = every
    if kind == "day" or kind == "days" or kind == "daily" then
      if on then
        dow = weekday_field(on)
        if not dow then return not_understood("day", on) end
      end
    elseif kind == "week" or kind == "weekly" then
      dow = "0"
      if on then
        dow = weekday_field(on)
        if not dow then return not_understood("day", on) end
      end
    elseif kind == "month" or kind == "monthly" then
      dom = "1"
      if on then
        dom = month_day_field(on)
        if not dom then return not_understood("day of the month", on) end
      end
    elseif kind == "year" or kind == "yearly" then
      dom, month = "1", "1"
      if on then return nil, "'every year' takes no day; use a standard expression like '0 0 24 12 *'" end
    else
      dow = weekday_field(kind)
      if not dow then return not_understood("schedule", text) end
      if on then return nil, string.format("'every %s' already names the days; drop 'on %s'", kind, on) end
    end
    if at then
      local h, m = M.parse_time(at)
      if not h then return nil, m end
      hour, minute = tostring(h), tostring(m)
    end
  end
  local expr = table.concat({ minute, hour, dom, month, dow }, " ")
  if second then expr = second .. " " .. expr end
  return parse.normalize(expr)
end

return M
