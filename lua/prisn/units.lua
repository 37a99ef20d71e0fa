-- prisn.units: durations and sizes as users type them ("30s", "1h30m",
-- "256M", "1.5GiB") and as prisn prints them.
--
-- Parsing is strict: anything not fully understood is rejected with a message
-- that shows accepted forms, because a silently misread "--timeout 5mn" or
-- "--memory 1GB0" is worse than an error.
local M = {}

local DURATION_UNITS = { ms = 0.001, s = 1, m = 60, h = 3600, d = 86400, w = 604800 }

--- Parses a duration into seconds (a number). "90" is seconds; units are
-- ms, s, m, h, d, w and may be combined ("1h30m"). Returns nil, message for
-- anything else.
function M.parse_duration(text)
  if type(text) == "number" then
    if text >= 0 then return text end
    return nil, "a duration cannot be negative"
  end
  if type(text) ~= "string" or text == "" then
    return nil, "expected a duration like 30s, 5m, 1h30m or 7d"
  end
  if text:match("^%d+%.?%d*$") then return tonumber(text) end
  local total, rest = 0, text
  while rest ~= "" do
    local number, unit, tail = rest:match("^(%d+%.?%d*)(%a+)(.*)$")
    if not number or not DURATION_UNITS[unit] then
      return nil, string.format("'%s' is not a duration; use forms like 30s, 5m, 1h30m or 7d", text)
    end
    total = total + tonumber(number) * DURATION_UNITS[unit]
    rest = tail
  end
  return total
end

--- Formats seconds compactly: 0.25 -> "250ms", 90 -> "1m30s", 86400 -> "1d".
function M.format_duration(seconds)
  if seconds == 0 then return "0s" end
  if seconds < 1 then return string.format("%dms", math.floor(seconds * 1000 + 0.5)) end
  if seconds < 60 and seconds % 1 ~= 0 then return string.format("%.1fs", seconds) end
  seconds = math.floor(seconds + 0.5)
  local parts = {}
  for _, unit in ipairs({ { "d", 86400 }, { "h", 3600 }, { "m", 60 }, { "s", 1 } }) do
    local n = seconds // unit[2]
    if n > 0 then
      parts[#parts + 1] = n .. unit[1]
      seconds = seconds - n * unit[2]
    end
  end
  return #parts > 0 and table.concat(parts) or "0s"
end

-- Binary multiples throughout: "256M" means 256 MiB, as in cgroups and ulimit.
local SIZE_UNITS = {
  [""] = 1, b = 1,
  k = 1024, kb = 1024, kib = 1024,
  m = 1024 ^ 2, mb = 1024 ^ 2, mib = 1024 ^ 2,
  g = 1024 ^ 3, gb = 1024 ^ 3, gib = 1024 ^ 3,
  t = 1024 ^ 4, tb = 1024 ^ 4, tib = 1024 ^ 4,
}

--- Parses a size into bytes (an integer): "512", "64K", "256M", "1.5G",
-- "2GiB". Returns nil, message for anything else.
function M.parse_size(text)
  if math.type(text) == "integer" and text >= 0 then return text end
  if type(text) ~= "string" then return nil, "expected a size like 512M or 1G" end
  local number, unit = text:match("^(%d+%.?%d*)%s*(%a*)$")
  local factor = unit and SIZE_UNITS[unit:lower()]
  if not number or not factor then
    return nil, string.format("'%s' is not a size; use forms like 64K, 256M, 1.5G (binary units)", text)
  end
  return math.floor(tonumber(number) * factor + 0.5)
end

--- Formats bytes with a binary unit: 1536 -> "1.5K", 268435456 -> "256M".
function M.format_size(bytes)
  local units = { "", "K", "M", "G", "T" }
  local value, i = bytes, 1
  while value >= 1024 and i < #units do
    value = value / 1024
    i = i + 1
  end
  if i == 1 then return string.format("%dB", bytes) end
  if value % 1 == 0 or value >= 100 then return string.format("%d%s", math.floor(value + 0.5), units[i]) end
  return (string.format("%.1f", value):gsub("%.0$", "")) .. units[i]
end

return M
