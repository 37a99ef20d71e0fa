-- prisn.cron.explain: a cron expression in plain English, for `prisn cron
-- explain` and `prisn describe cron`.
--
--   explain.describe("0 3 * * *")     --> "at 03:00 every day"
--   explain.describe("*/15 * * * *")  --> "every 15 minutes"
--   explain.describe("30 9 * * 1-5")  --> "at 09:30 on Monday through Friday"
--   explain.describe("0 0 1 * *")     --> "at 00:00 on day 1 of the month"
--
-- Meant to be read, not parsed back: unusual combinations get a plainer,
-- field-by-field wording rather than a wrong fluent one.
local parse = require("prisn.cron.parse")

local M = {}

local MONTHS = { "January", "February", "March", "April", "May", "June", "July",
  "August", "September", "October", "November", "December" }
local DAYS = { [0] = "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday" }

local function join(list)
  if #list <= 1 then return list[1] or "" end
  return table.concat(list, ", ", 1, #list - 1) .. " and " .. list[#list]
end

-- The items of a canonical field text: { lo, hi, step, star }.
local function items(text)
  local out = {}
  for item in text:gmatch("[^,]+") do
    local base, step = item:match("^(.-)/(%d+)$")
    base, step = base or item, tonumber(step) or 1
    local lo, hi = base:match("^(%d+)-(%d+)$")
    if base == "*" then
      out[#out + 1] = { star = true, step = step }
    elseif lo then
      out[#out + 1] = { lo = tonumber(lo), hi = tonumber(hi), step = step }
    else
      out[#out + 1] = { lo = tonumber(base), hi = tonumber(base), step = step }
    end
  end
  return out
end

-- All items single values?
local function singles(text)
  local values = {}
  for _, it in ipairs(items(text)) do
    if it.star or it.lo ~= it.hi then return nil end
    values[#values + 1] = it.lo
  end
  return values
end

-- "Monday through Friday", "1 and 15", "every 2nd from 1 through 31"...
local function list_phrase(text, name)
  name = name or tostring
  local parts = {}
  for _, it in ipairs(items(text)) do
    if it.star then
      parts[#parts + 1] = "every " .. it.step .. "th" -- only reached for odd fields
    elseif it.lo == it.hi then
      parts[#parts + 1] = name(it.lo)
    elseif it.step == 1 then
      parts[#parts + 1] = name(it.lo) .. " through " .. name(it.hi)
    else
      parts[#parts + 1] = string.format("every %d from %s through %s", it.step, name(it.lo), name(it.hi))
    end
  end
  return join(parts)
end

-- Phrase for a second/minute/hour field that is not a single fixed value.
local function unit_phrase(text, unit)
  if text == "*" then return "every " .. unit end
  local step = text:match("^%*/(%d+)$")
  if step then return string.format("every %s %ss", step, unit) end
  local values = singles(text)
  if values and #values == 1 then return string.format("at %s %d", unit, values[1]) end
  if values then return string.format("at %ss %s", unit, list_phrase(text)) end
  local it = items(text)
  if #it == 1 and it[1].step > 1 then
    return string.format("every %d %ss from %s %d through %d", it[1].step, unit, unit, it[1].lo, it[1].hi)
  end
  return string.format("at %ss %s", unit, list_phrase(text))
end

local function clock(h, m, s)
  if s and s ~= 0 then return string.format("%02d:%02d:%02d", h, m, s) end
  return string.format("%02d:%02d", h, m)
end

-- The time-of-day part and whether it is a fixed time (so "every day" fits).
local function time_phrase(p)
  local sec, min, hour = p.second.text, p.minute.text, p.hour.text
  local s, m, h = singles(sec), singles(min), singles(hour)
  if s and #s == 1 and m and #m == 1 and h then
    local times = {}
    for i, hv in ipairs(h) do times[i] = clock(hv, m[1], s[1]) end
    return "at " .. join(times), true
  end
  local parts = {}
  local sec_trivial = sec == "0"
  if not sec_trivial then parts[#parts + 1] = unit_phrase(sec, "second") end
  if min == "*" and sec_trivial and hour == "*" then
    parts[#parts + 1] = "every minute"
  elseif min ~= "*" or sec_trivial then
    local mstep = min:match("^%*/(%d+)$")
    if m and #m == 1 and hour == "*" then
      parts[#parts + 1] = "every hour" .. (m[1] ~= 0 and (" at minute " .. m[1]) or "")
      if not sec_trivial then parts[#parts] = parts[#parts]:gsub("^every hour at", "of every hour at") end
      return table.concat(parts, ", "), false
    elseif m and #m == 1 and hour:match("^%*/%d+$") then
      parts[#parts + 1] = "every " .. hour:match("%d+") .. " hours" .. (m[1] ~= 0 and (" at minute " .. m[1]) or "")
      return table.concat(parts, ", "), false
    elseif min == "*" then
      parts[#parts + 1] = "every minute"
    elseif mstep then
      parts[#parts + 1] = "every " .. mstep .. " minutes"
    else
      parts[#parts + 1] = unit_phrase(min, "minute")
    end
  end
  if hour ~= "*" then
    if h then
      parts[#parts + 1] = (#h == 1 and "during hour " or "during hours ") .. list_phrase(hour)
    else
      parts[#parts + 1] = unit_phrase(hour, "hour"):gsub("^at hours", "during hours")
    end
  end
  return table.concat(parts, ", "), false
end

local function ordinal(n)
  local suffix = "th"
  if n % 100 < 11 or n % 100 > 13 then
    suffix = ({ "st", "nd", "rd" })[n % 10] or "th"
  end
  return n .. suffix
end

local function ordinal_day(text)
  local values = singles(text)
  if values then
    return (#values == 1 and "on day " or "on days ") .. join(values) .. " of the month"
  end
  local step = text:match("^%*/(%d+)$")
  if step then return "on every " .. ordinal(tonumber(step)) .. " day of the month" end
  return "on days " .. list_phrase(text) .. " of the month"
end

local function weekday_phrase(text)
  local step = text:match("^%*/(%d+)$")
  if step then return "on every " .. ordinal(tonumber(step)) .. " day of the week from Sunday" end
  return "on " .. list_phrase(text, function(v) return DAYS[v % 7] end)
end

local function month_phrase(text)
  local step = text:match("^%*/(%d+)$")
  local values = {}
  if step then
    for v = 1, 12, tonumber(step) do values[#values + 1] = MONTHS[v] end
    return "in " .. join(values)
  end
  return "in " .. list_phrase(text, function(v) return MONTHS[v] end)
end

--- An English description of `expr`, or nil, message for an invalid one.
function M.describe(expr)
  local p, err = parse.parse(expr)
  if not p then return nil, err end
  local time, fixed = time_phrase(p)
  local out = { time }
  local dom, dow, month = p.dom.text, p.dow.text, p.month.text
  local dom_restricted, dow_restricted = dom ~= "*", dow ~= "*"
  if dom_restricted and dow_restricted then
    if p.dom.star or p.dow.star then -- Vixie: a `*` start means both must match
      out[#out + 1] = ordinal_day(dom) .. " if it is a " .. weekday_phrase(dow):gsub("^on ", "")
    else
      out[#out + 1] = ordinal_day(dom) .. " or " .. weekday_phrase(dow)
    end
  elseif dom_restricted then
    out[#out + 1] = ordinal_day(dom)
  elseif dow_restricted then
    out[#out + 1] = weekday_phrase(dow)
  elseif fixed then
    out[#out + 1] = "every day"
  end
  if month ~= "*" then out[#out + 1] = month_phrase(month) end
  return table.concat(out, " ")
end

return M
