-- prisn.units: durations and sizes as users type them ("30s", "1h30m",
-- "256M", "1.5GiB") and as prisn prints them.
--
-- Parsing is strict: anything not fully understood is rejected with a message
-- that shows accepted forms, because a silently misread "--timeout 5mn" or
-- "--memory 1GB0" is worse than an error.
local M = {}

local DURATION_UNITS = { ms = 0.001, s = 1, m = 60, h = 3600, d = 86400, w = 604800 }

-- Past any timeout, grace or expiry that means something (100 years), and
-- far from where milliseconds stop being exact integers: a longer
-- duration is a mistake, or an attempt to break a timer.
M.MAX_DURATION = 100 * 365 * 86400

--- Parses a duration into seconds (a number). "90" is seconds; units are
-- ms, s, m, h, d, w and may be combined ("1h30m"). Returns nil, message for
-- anything else, for NaN, and for more than MAX_DURATION.
function M.parse_duration(text)
  local total
  if type(text) == "number" then
    if text ~= text then return nil, "a duration must be a number of seconds, not NaN" end
    if text < 0 then return nil, "a duration cannot be negative" end
    total = text
  elseif type(text) ~= "string" or text == "" then
    return nil, "expected a duration like 30s, 5m, 1h30m or 7d"
  elseif text:match("^%d+%.?%d*$") then
    total = tonumber(text)
  else
    local rest = text
    total = 0
    while rest ~= "" do
      local number, unit, tail = rest:match("^(%d+%.?%d*)(%a+)(.*)$")
      if not number or not DURATION_UNITS[unit] then
        return nil, string.format("'%s' is not a duration; use forms like 30s, 5m, 1h30m or 7d", text)
      end
      total = total + tonumber(number) * DURATION_UNITS[unit]
      rest = tail
    end
  end
  if total > M.MAX_DURATION then
    return nil, "a duration can be at most " .. M.format_duration(M.MAX_DURATION)
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
  p = 1024 ^ 5, pb = 1024 ^ 5, pib = 1024 ^ 5,
}

-- 8P: every size up to it is an exact integer in a double (JSON's numbers).
M.MAX_SIZE = 1 << 53

--- Parses a size into bytes (an integer): "512", "64K", "256M", "1.5G",
-- "2GiB". Returns nil, message for anything else, and past MAX_SIZE.
function M.parse_size(text)
  local bytes
  if math.type(text) == "integer" and text >= 0 then
    bytes = text
  elseif type(text) ~= "string" then
    return nil, "expected a size like 512M or 1G"
  else
    local number, unit = text:match("^(%d+%.?%d*)%s*(%a*)$")
    local factor = unit and SIZE_UNITS[unit:lower()]
    if not number or not factor then
      return nil, string.format("'%s' is not a size; use forms like 64K, 256M, 1.5G (binary units)", text)
    end
    bytes = tonumber(number) * factor + 0.5
    if bytes > M.MAX_SIZE then bytes = M.MAX_SIZE + 1 else bytes = math.floor(bytes) end
  end
  if bytes > M.MAX_SIZE then return nil, "a size can be at most " .. M.format_size(M.MAX_SIZE) end
  return bytes
end

--- Formats bytes with a binary unit: 1536 -> "1.5K", 268435456 -> "256M".
function M.format_size(bytes)
  local units = { "", "K", "M", "G", "T", "P" }
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
