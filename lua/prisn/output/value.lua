-- prisn.output.value: the data model every output format shares.
--
-- A renderable value is JSON's: null, booleans, numbers, strings, arrays and
-- objects. Lua cannot tell an empty array from an empty object and has no
-- null that survives in a table, so two markers fill the gaps: `null`
-- (cjson.null, so values decoded from the API pass through unchanged) and
-- `array(t)`, which records in a weak set that `t` is a list; an unmarked
-- empty table is an object. Everything else about shape is read off the
-- table: string keys make an object, keys 1..n make an array.
--
-- `check` walks a value once before any format writes a byte, so a value that
-- cannot be encoded fails with the path of the bad part instead of producing
-- half a document. After `check`, `kind` is cheap and trusted by the formats.
-- This module does no formatting itself.
local cjson = require("cjson")

local M = {}

M.null = cjson.null

-- Weak keys: marking a table must not keep it alive, and must not touch its
-- metatable (error objects and other tables with metatables are values too).
local arrays = setmetatable({}, { __mode = "k" })
-- The set itself, for the C encoder (prisn.core.json) to look tables up in.
M.marked_arrays = arrays

--- Marks `t` as an array, so an empty one encodes as [] rather than {}.
-- Returns `t`, so `{ items = output.array(items) }` reads naturally.
function M.array(t)
  if t == nil then t = {} end
  if type(t) ~= "table" then
    error("output.array: expected a table, got " .. type(t), 2)
  end
  arrays[t] = true
  return t
end

--- True when `t` was marked with `array`.
function M.is_marked_array(t)
  return arrays[t] == true
end

--- The kind of a value already passed by `check`: "null", "boolean",
-- "integer", "float", "string", "array" or "object".
function M.kind(v)
  if v == nil or v == M.null then return "null" end
  local t = type(v)
  if t == "number" then return math.type(v) end
  if t == "table" then
    if arrays[v] or rawget(v, 1) ~= nil then return "array" end
    return "object"
  end
  return t
end

local function describe_key(k)
  if type(k) == "number" then return tostring(k) end
  return type(k)
end

local function child_path(path, key)
  if type(key) == "number" then return path .. "[" .. key .. "]" end
  if key:match("^[%a_][%w_]*$") then return path .. "." .. key end
  return path .. string.format("[%q]", key)
end

local function fail(path, message)
  error("output: " .. path .. ": " .. message, 0)
end

local check_value

local function check_table(t, path, visiting, finite)
  if visiting[t] then fail(path, "cycle: the table contains itself") end
  local strings, integers, max_index = 0, 0, 0
  local a_string_key
  for k in pairs(t) do
    if type(k) == "string" then
      strings = strings + 1
      a_string_key = a_string_key or k
    elseif math.type(k) == "integer" and k >= 1 then
      integers = integers + 1
      if k > max_index then max_index = k end
    else
      fail(path, "key " .. describe_key(k) .. " is not a string or a list index")
    end
  end
  if strings > 0 and (integers > 0 or arrays[t]) then
    fail(path, string.format("mixed table: list items and string key %q", a_string_key))
  end
  if integers ~= max_index then
    for i = 1, max_index do
      if t[i] == nil then fail(path, "sparse list: item [" .. i .. "] is nil") end
    end
  end
  visiting[t] = true
  if integers > 0 then
    for i = 1, max_index do check_value(t[i], child_path(path, i), visiting, finite) end
  else
    for k, v in pairs(t) do check_value(v, child_path(path, k), visiting, finite) end
  end
  visiting[t] = nil
end

function check_value(v, path, visiting, finite)
  local t = type(v)
  if v == nil or v == M.null or t == "boolean" or t == "string" then return end
  if t == "number" then
    if finite and (v ~= v or v == math.huge or v == -math.huge) then
      fail(path, "cannot encode " .. tostring(v) .. " (use output.null for a missing number)")
    end
    return
  end
  if t == "table" then return check_table(v, path, visiting, finite) end
  fail(path, "cannot encode a " .. t)
end

--- Raises "output: <path>: <problem>" unless `v` can be rendered. `finite`
-- rejects NaN and infinities, which JSON and YAML data cannot carry.
function M.check(v, finite)
  check_value(v, "value", {}, finite)
end

-- Byte order, not strcoll: Lua's `<` follows the C locale, which a caller
-- could change, and the order of keys is part of the output's interface.
local function byte_less(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = a:byte(i), b:byte(i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
M.byte_less = byte_less

--- The keys of object `t` in byte order.
function M.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, byte_less)
  return keys
end

--- `s` with every byte that is not part of valid UTF-8 replaced by U+FFFD,
-- so JSON and YAML stay valid documents whatever a job printed.
function M.utf8_clean(s)
  if utf8.len(s) then return s end
  local parts, i, n = {}, 1, #s
  while i <= n do
    local ok, bad = utf8.len(s, i)
    if ok then parts[#parts + 1] = s:sub(i) break end
    parts[#parts + 1] = s:sub(i, bad - 1)
    parts[#parts + 1] = "\u{FFFD}"
    i = bad + 1
  end
  return table.concat(parts)
end

--- Float `x` as Python's repr writes it: the shortest digits that read back
-- as the same number, fixed notation with at least one decimal (2.0, 0.1,
-- 1000000000000000.0) unless the exponent is below -4 or above 15 (1e+16,
-- 1.5e-07). So `-o json` equals python3's json.dumps byte for byte, and YAML
-- needs only PyYAML's own tweak (1e+16 -> 1.0e+16). Finite `x` only.
function M.format_float(x)
  local s
  for precision = 0, 16 do
    s = string.format("%." .. precision .. "e", x)
    if tonumber(s) == x then break end
  end
  local sign, first, rest, exponent = s:match("^(%-?)(%d)%.?(%d*)e([-+]%d+)$")
  local digits = (first .. rest):gsub("0+$", "")
  if digits == "" then digits = "0" end
  local point = tonumber(exponent) + 1 -- digits before the decimal point
  if point <= -4 or point > 16 then
    local mantissa = digits:sub(1, 1) .. (#digits > 1 and "." .. digits:sub(2) or "")
    return string.format("%s%se%s%02d", sign, mantissa, point - 1 < 0 and "-" or "+", math.abs(point - 1))
  end
  if point <= 0 then return sign .. "0." .. string.rep("0", -point) .. digits end
  if point >= #digits then return sign .. digits .. string.rep("0", point - #digits) .. ".0" end
  return sign .. digits:sub(1, point) .. "." .. digits:sub(point + 1)
end

return M
