-- prisn.output.json: a deterministic, pretty JSON encoder for `-o json`.
--
-- Scripts diff and cache this output, so the same data must always produce
-- the same bytes: object keys in byte order, two-space indentation, one
-- value per line, `[]` and `{}` for empty containers. cjson.encode is not
-- used for containers because it orders keys by hash and cannot indent.
--
-- Numbers: integers print as integers; floats print as Python's repr does
-- (shortest exact digits; 2.0, 0.1, 1e+20), so a float stays a float for
-- readers that care and the whole document equals python3's
-- json.dumps(indent=2, sort_keys=True, ensure_ascii=False). NaN and
-- infinities are errors (JSON has no spelling for them; pass output.null).
-- Strings: invalid UTF-8 bytes become U+FFFD; '/' is not escaped; other
-- characters are written as UTF-8, only '"', '\' and controls are escaped.
local cjson = require("cjson")
local value = require("prisn.output.value")

local M = {}

local kind, sorted_keys, format_float = value.kind, value.sorted_keys, value.format_float

local ESCAPES = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function escape_char(c)
  return ESCAPES[c] or string.format("\\u%04x", c:byte())
end

--- `s` as a JSON string literal, quotes included.
function M.quote(s)
  return '"' .. value.utf8_clean(s):gsub('[%c"\\]', escape_char) .. '"'
end

local quote = M.quote

local function scalar(v, k)
  if k == "null" then return "null" end
  if k == "boolean" then return tostring(v) end
  if k == "integer" then return string.format("%d", v) end
  if k == "float" then return format_float(v) end
  return quote(v)
end

local function write(v, indent, out)
  local k = kind(v)
  if k == "array" then
    local n = #v
    if n == 0 then out[#out + 1] = "[]" return end
    local inner = indent .. "  "
    out[#out + 1] = "[\n"
    for i = 1, n do
      out[#out + 1] = inner
      write(v[i], inner, out)
      out[#out + 1] = i < n and ",\n" or "\n"
    end
    out[#out + 1] = indent .. "]"
  elseif k == "object" then
    local keys = sorted_keys(v)
    if #keys == 0 then out[#out + 1] = "{}" return end
    local inner = indent .. "  "
    out[#out + 1] = "{\n"
    for i, key in ipairs(keys) do
      out[#out + 1] = inner .. quote(key) .. ": "
      write(v[key], inner, out)
      out[#out + 1] = i < #keys and ",\n" or "\n"
    end
    out[#out + 1] = indent .. "}"
  else
    out[#out + 1] = scalar(v, k)
  end
end

-- The fast path: the same bytes as check + write in one walk, for the
-- values API handlers build (plain strings, integers, few floats). It gives
-- up (raises BAIL) on anything the careful path must look at: a string
-- that needs escaping or may not be UTF-8, a key that is not a string, a
-- list with holes or string keys, NaN, infinities, other types, or a depth
-- that may be a cycle; the careful path then encodes it or names the bad
-- part. Keys are sorted by table.sort, which compares with strcoll: byte
-- order only in the C locale, so another collation takes the careful path.
-- Measured (tests/bench/deployments-report.md): the 983 KB list of 1,000
-- deployments in 24 ms instead of 80 (cjson, unsorted and flat: 4 ms).
local BAIL = {}
local PLAIN = '[%c"\\\128-\255]' -- a byte quote() would change or check
local MAX_DEPTH = 100

-- `indent  "key": ` for each indent and key met, so a list of a thousand
-- alike objects does not build (and intern) the same strings again.
-- Emptied when it grows past MAX_PREFIXES (keys may come from users).
local MAX_PREFIXES = 4096
local prefixes, prefix_count = {}, 0

local function key_prefix(inner, key)
  local by_key = prefixes[inner]
  local prefix = by_key and by_key[key]
  if prefix then return prefix end
  if key:find(PLAIN) then error(BAIL) end
  if prefix_count >= MAX_PREFIXES then prefixes, prefix_count = {}, 0 end
  by_key = prefixes[inner]
  if not by_key then
    by_key = {}
    prefixes[inner] = by_key
  end
  prefix = inner .. '"' .. key .. '": '
  by_key[key] = prefix
  prefix_count = prefix_count + 1
  return prefix
end

local fast_write

local function fast_scalar(v, t)
  if t == "string" then
    if v:find(PLAIN) then error(BAIL) end
    return '"' .. v .. '"'
  elseif t == "number" then
    if math.type(v) == "integer" then return string.format("%d", v) end
    if v ~= v or v == math.huge or v == -math.huge then error(BAIL) end
    return format_float(v)
  elseif t == "boolean" then
    return v and "true" or "false"
  elseif v == nil or v == cjson.null then
    return "null"
  end
  error(BAIL)
end

local function fast_array(v, indent, out, n, depth)
  local len, count = #v, 0
  for _ in pairs(v) do count = count + 1 end
  if count ~= len then error(BAIL) end
  if len == 0 then out[n + 1] = "[]" return n + 1 end
  local inner = indent .. "  "
  n = n + 1
  out[n] = "[\n"
  for i = 1, len do
    n = n + 1
    out[n] = inner
    n = fast_write(v[i], inner, out, n, depth)
    n = n + 1
    out[n] = i < len and ",\n" or "\n"
  end
  n = n + 1
  out[n] = indent .. "]"
  return n
end

local function fast_object(v, indent, out, n, depth)
  local keys, count = {}, 0
  for k in pairs(v) do
    if type(k) ~= "string" then error(BAIL) end
    count = count + 1
    keys[count] = k
  end
  if count == 0 then out[n + 1] = "{}" return n + 1 end
  table.sort(keys)
  local inner = indent .. "  "
  n = n + 1
  out[n] = "{\n"
  for i = 1, count do
    local key = keys[i]
    n = n + 1
    out[n] = key_prefix(inner, key)
    n = fast_write(v[key], inner, out, n, depth)
    n = n + 1
    out[n] = i < count and ",\n" or "\n"
  end
  n = n + 1
  out[n] = indent .. "}"
  return n
end

function fast_write(v, indent, out, n, depth)
  local t = type(v)
  if t ~= "table" then
    n = n + 1
    out[n] = fast_scalar(v, t)
    return n
  end
  if depth >= MAX_DEPTH then error(BAIL) end
  if value.is_marked_array(v) or rawget(v, 1) ~= nil then return fast_array(v, indent, out, n, depth + 1) end
  return fast_object(v, indent, out, n, depth + 1)
end

local function fast_encode(v)
  local out = {}
  local n = fast_write(v, "", out, 0, 0)
  out[n + 1] = "\n"
  return table.concat(out)
end

local function careful_encode(v)
  value.check(v, true)
  local out = {}
  write(v, "", out)
  out[#out + 1] = "\n"
  return table.concat(out)
end

--- Encodes `v` as pretty JSON ending in a newline. Raises
-- "output: <path>: <problem>" for values JSON cannot carry.
function M.encode(v)
  local collation = os.setlocale(nil, "collate")
  if collation == "C" or collation == "POSIX" then
    local ok, text = pcall(fast_encode, v)
    if ok then return text end
    if text ~= BAIL then error(text, 0) end
  end
  return careful_encode(v)
end

-- Decoding. cjson turns `[]` into an empty Lua table, which encodes back
-- as `{}`: an API's `"args": []` would become `"args": {}` on its way
-- through the CLI. Empty arrays are marked before cjson sees them and
-- turned into output.array({}) after.
local EMPTY = "\0prisn:empty-array"
local EMPTY_JSON = '["\\u0000prisn:empty-array"]'

-- `text` with every `[]` outside string literals replaced by EMPTY_JSON.
local function mark_empty_arrays(text)
  if not text:find("[", 1, true) then return text end
  local out, copied, pos = {}, 1, 1
  while true do
    local s = text:find('[%["]', pos)
    if not s then break end
    if text:byte(s) == 34 then -- a string: skip to its closing quote
      local e = s + 1
      while true do
        local q = text:find('["\\]', e)
        if not q then return text end -- not JSON: cjson reports it
        if text:byte(q) == 92 then e = q + 2 else pos = q + 1 break end
      end
    else
      local after = text:match("^%[%s*%]()", s)
      if after then
        out[#out + 1] = text:sub(copied, s - 1)
        out[#out + 1] = EMPTY_JSON
        copied = after
      end
      pos = s + 1
    end
  end
  out[#out + 1] = text:sub(copied)
  return table.concat(out)
end

-- Marks the tables that were `[]` (and whole numbers back to integers:
-- cjson decodes every number as a float).
local function restore(v)
  if type(v) == "number" then return math.tointeger(v) or v end
  if type(v) ~= "table" then return v end
  if #v == 1 and v[1] == EMPTY then
    v[1] = nil
    return value.array(v)
  end
  for k, item in pairs(v) do v[k] = restore(item) end
  return v
end

--- Decodes JSON `text` so that encoding the result gives the same shapes:
-- `[]` stays an (empty) array, whole numbers are integers. Raises what
-- cjson.decode raises for text that is not JSON.
function M.decode(text)
  return restore(cjson.decode(mark_empty_arrays(text)))
end

return M
