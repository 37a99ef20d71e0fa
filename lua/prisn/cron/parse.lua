-- prisn.cron.parse: standard cron expressions, parsed into sets of allowed
-- values and printed back in one canonical spelling.
--
-- Five fields (minute hour day-of-month month day-of-week) or six with a
-- leading seconds field. A field is a comma-separated list of items: `*`,
-- `N`, `A-B`, and any of those with a step (`*/15`, `1-30/5`, `5/10` = 5
-- through the maximum every 10). Months take names (jan..dec), weekdays take
-- names (sun..sat); 0 and 7 are both Sunday. Macros: @yearly, @annually,
-- @monthly, @weekly, @daily, @midnight, @hourly.
--
-- Day matching follows Vixie cron: when day-of-month and day-of-week are both
-- restricted, a day matches if EITHER does; when one of them starts with `*`
-- (so `*/2` counts as unrestricted too, as in Vixie and cronie) both must.
--
-- Errors name the field and the problem: "minute: 61 is out of range 0-59".
-- This module is pure: no clock, no time zones (see prisn.cron).
local M = {}

-- name, min, max, value names (lower-case, index = value)
M.FIELDS = {
  { name = "second", min = 0, max = 59 },
  { name = "minute", min = 0, max = 59 },
  { name = "hour", min = 0, max = 23 },
  { name = "day-of-month", min = 1, max = 31 },
  { name = "month", min = 1, max = 12,
    names = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6,
              jul = 7, aug = 8, sep = 9, oct = 10, nov = 11, dec = 12 } },
  { name = "day-of-week", min = 0, max = 7,
    names = { sun = 0, mon = 1, tue = 2, wed = 3, thu = 4, fri = 5, sat = 6 } },
}

M.MACROS = {
  ["@yearly"] = "0 0 1 1 *",
  ["@annually"] = "0 0 1 1 *",
  ["@monthly"] = "0 0 1 * *",
  ["@weekly"] = "0 0 * * 0",
  ["@daily"] = "0 0 * * *",
  ["@midnight"] = "0 0 * * *",
  ["@hourly"] = "0 * * * *",
}

local MACRO_LIST = "@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly"

local DAYS_IN_MONTH = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 } -- at most
local MONTH_NAMES = { "January", "February", "March", "April", "May", "June", "July",
  "August", "September", "October", "November", "December" }

local function value_of(word, spec)
  if word:match("^%d+$") then return tonumber(word) end
  local v = spec.names and spec.names[word:lower()]
  if v then return v end
  if spec.names then
    return nil, string.format("'%s' is not a number or a %s name", word,
      spec.name == "month" and "month" or "weekday")
  end
  return nil, string.format("'%s' is not a number", word)
end

local function in_range(v, spec)
  if v < spec.min or v > spec.max then
    return nil, string.format("%d is out of range %d-%d", v, spec.min, spec.max)
  end
  return true
end

-- One list item -> { lo, hi, step, star } or nil, message.
local function parse_item(item, spec)
  local base, step_text = item:match("^([^/]*)/(.*)$")
  if not base then base = item end
  local step = 1
  if step_text then
    if not step_text:match("^%d+$") then
      return nil, string.format("step '%s' is not a number", step_text)
    end
    step = tonumber(step_text)
    if step < 1 then return nil, "a step must be at least 1" end
  end
  if base == "*" then
    return { lo = spec.min, hi = spec.max == 7 and 6 or spec.max, step = step, star = true }
  end
  if base == "" then return nil, string.format("'%s' has nothing before the step", item) end
  local a, b = base:match("^([^-]+)-([^-]+)$")
  if not a then
    if base:find("-", 1, true) then return nil, string.format("'%s' is not a range like 1-5", base) end
    a = base
  end
  local lo, err = value_of(a, spec)
  if not lo then return nil, err end
  local ok, rerr = in_range(lo, spec)
  if not ok then return nil, rerr end
  local hi = lo
  if b then
    hi, err = value_of(b, spec)
    if not hi then return nil, err end
    ok, rerr = in_range(hi, spec)
    if not ok then return nil, rerr end
    if spec.max == 7 and hi == 0 and lo > 0 then hi = 7 end -- "fri-sun"
    if hi < lo then return nil, string.format("range %d-%d goes backwards", lo, hi) end
  elseif step_text then
    hi = spec.max == 7 and 6 or spec.max -- "5/10": from 5 to the end, every 10
    if spec.max == 7 and lo == 7 then hi = 7 end
  end
  return { lo = lo, hi = hi, step = step, ranged = b ~= nil or step_text ~= nil }
end

-- Canonical spelling of one item.
local function item_text(it, spec)
  if it.star then
    return it.step == 1 and "*" or ("*/" .. it.step)
  end
  local lo, hi = it.lo, it.hi
  if spec.max == 7 and lo == 7 and hi == 7 then lo, hi = 0, 0 end
  if lo == hi then return tostring(lo) end
  if it.step == 1 then return lo .. "-" .. hi end
  return lo .. "-" .. hi .. "/" .. it.step
end

-- One field -> { set = {[v]=true}, star = bool, text = canonical } or nil, message.
local function parse_field(text, spec)
  if text == "" then return nil, "is empty" end
  local set, items = {}, {}
  for item in (text .. ","):gmatch("([^,]*),") do
    if item == "" then return nil, string.format("'%s' has an empty list item", text) end
    local it, err = parse_item(item, spec)
    if not it then return nil, err end
    for v = it.lo, it.hi, it.step do
      set[spec.max == 7 and v % 7 or v] = true
    end
    items[#items + 1] = it
  end
  table.sort(items, function(x, y)
    if x.star ~= y.star then return x.star == true end
    local xl, yl = x.lo % (spec.max == 7 and 7 or 100), y.lo % (spec.max == 7 and 7 or 100)
    if xl ~= yl then return xl < yl end
    return x.hi < y.hi
  end)
  local texts, seen = {}, {}
  for _, it in ipairs(items) do
    local t = item_text(it, spec)
    if not seen[t] then
      seen[t] = true
      texts[#texts + 1] = t
    end
  end
  return { set = set, star = text:sub(1, 1) == "*", text = table.concat(texts, ",") }
end

-- Vixie: with day-of-week unrestricted, day-of-month must exist in some
-- allowed month, or the schedule would never fire ("0 0 30 2 *").
local function check_days_exist(fields)
  local dom, month, dow = fields[4], fields[5], fields[6]
  if dom.star or (not dow.star) then return true end
  for m = 1, 12 do
    if month.set[m] then
      for d = 1, DAYS_IN_MONTH[m] do
        if dom.set[d] then return true end
      end
    end
  end
  local months = {}
  for m = 1, 12 do
    if month.set[m] then months[#months + 1] = MONTH_NAMES[m] end
  end
  return nil, string.format("day-of-month: %s never occurs in %s", dom.text, table.concat(months, " or "))
end

--- Parses a standard expression. Returns a table
-- { fields = { second, minute, hour, dom, month, dow }, has_seconds, expression }
-- where each field is { set = {[value] = true}, star = bool, text = canonical }
-- (day-of-week values 0-6, Sunday 0), or nil and a message naming the field.
function M.parse(expr)
  if type(expr) ~= "string" then return nil, "expected a cron expression like '0 3 * * *'" end
  local text = expr:match("^%s*(.-)%s*$")
  if text == "" then return nil, "empty cron expression; expected five fields like '0 3 * * *'" end
  if text:sub(1, 1) == "@" then
    local expansion = M.MACROS[text:lower()]
    if not expansion then
      return nil, string.format("unknown macro '%s' (use %s)", text, MACRO_LIST)
    end
    text = expansion
  end
  local words = {}
  for w in text:gmatch("%S+") do words[#words + 1] = w end
  if #words ~= 5 and #words ~= 6 then
    return nil, string.format("expected 5 fields (minute hour day-of-month month day-of-week) "
      .. "or 6 with seconds first, got %d in '%s'", #words, text)
  end
  local has_seconds = #words == 6
  if not has_seconds then table.insert(words, 1, "0") end
  local fields = {}
  for i, spec in ipairs(M.FIELDS) do
    local f, err = parse_field(words[i], spec)
    if not f then return nil, spec.name .. ": " .. err end
    fields[i] = f
  end
  local ok, err = check_days_exist(fields)
  if not ok then return nil, err end
  local parts = {}
  for i = 1, 6 do parts[i] = fields[i].text end
  if parts[1] == "0" then
    has_seconds = false
    table.remove(parts, 1)
  end
  return {
    fields = fields,
    second = fields[1], minute = fields[2], hour = fields[3],
    dom = fields[4], month = fields[5], dow = fields[6],
    has_seconds = has_seconds,
    expression = table.concat(parts, " "),
  }
end

--- The canonical spelling of `expr` (what prisn stores and shows): macros
-- expanded, names turned into numbers, Sunday as 0, `*/1` as `*`, list items
-- sorted and deduplicated, a seconds field of 0 dropped. Returns nil, message
-- for an invalid expression.
function M.normalize(expr)
  local parsed, err = M.parse(expr)
  if not parsed then return nil, err end
  return parsed.expression
end

return M
