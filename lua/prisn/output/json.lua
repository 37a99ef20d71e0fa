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

--- Encodes `v` as pretty JSON ending in a newline. Raises
-- "output: <path>: <problem>" for values JSON cannot carry.
function M.encode(v)
  value.check(v, true)
  local out = {}
  write(v, "", out)
  out[#out + 1] = "\n"
  return table.concat(out)
end

return M
