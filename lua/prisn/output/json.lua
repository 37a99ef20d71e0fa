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
local core_json = require("prisn.core.json")
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

-- The fast path is C (prisn.core.json, core/json_lua.c): the same bytes
-- as check + write, for the values API handlers build (plain strings,
-- integers, few floats). It gives up (nil) on anything the careful path
-- must look at: a string that needs escaping or may not be UTF-8, a key
-- that is not a string, a list with holes or string keys, NaN, infinities,
-- other types, a table with a metatable, or depth 100; the careful path then
-- encodes it or names the bad part. Keys are sorted in byte order, which is
-- the careful path's order (table.sort, strcoll) only in the C locale, so
-- another collation takes the careful path. Measured
-- (tests/bench/deployments-report.md): the 1 MB list of 1,000 deployments
-- in 24 ms by the Lua fast path this replaced, 40-90 ms inside the server.
local function careful_encode(v)
  value.check(v, true)
  local out = {}
  write(v, "", out)
  out[#out + 1] = "\n"
  return table.concat(out)
end

--- The careful path alone (for specs: the C fast path must give its bytes).
M.careful_encode = careful_encode

--- Encodes `v` as pretty JSON ending in a newline. Raises
-- "output: <path>: <problem>" for values JSON cannot carry.
function M.encode(v)
  local collation = os.setlocale(nil, "collate")
  if collation == "C" or collation == "POSIX" then
    local text = core_json.encode(v, cjson.null, value.marked_arrays)
    if text then return text end
  end
  return careful_encode(v)
end

--- `v` as a part of a document, for a caller that splices texts: written
-- as at `depth` (0-99; nested lines indented from there), its first line
-- not indented, no newline after it; the same bytes as `v` has inside
-- encode's output at that depth. Raises as encode.
function M.encode_part(v, depth)
  local collation = os.setlocale(nil, "collate")
  if collation == "C" or collation == "POSIX" then
    local text = core_json.encode(v, cjson.null, value.marked_arrays, depth)
    if text then return text end
  end
  value.check(v, true)
  local out = {}
  write(v, string.rep("  ", depth), out)
  return table.concat(out)
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
