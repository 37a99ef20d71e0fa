-- prisn.output.yaml: a block-style YAML emitter for `-o yaml`.
--
-- The output is the same data as `-o json`, written for people to read and
-- for any YAML parser to load back unchanged: mapping keys in byte order,
-- nested containers indented by two spaces, sequences of mappings in the
-- "- key: value" style, `[]` and `{}` for empty containers, numbers formatted
-- as in JSON except that a float always carries a '.', which YAML 1.1
-- parsers need to see a float (1.0e+20, not 1e+20).
--
-- The hard part is strings. A plain (unquoted) scalar is used only when no
-- YAML 1.1 or 1.2 parser could read it as anything but that string; every
-- other string is double-quoted with escapes, on one line. `plain_ok` holds
-- the rules; they err towards quoting, which is never wrong.
--
-- It writes one document with no "---" marker and no comments, tags,
-- anchors, flow collections or multi-line scalars.
local value = require("prisn.output.value")

local M = {}

local kind, sorted_keys, format_float = value.kind, value.sorted_keys, value.format_float

-- Words some parser resolves to a boolean or null (YAML 1.1 knows
-- yes/no/on/off/y/n in several cases; compared lower-cased, so "tRUE" is
-- quoted too, which costs nothing). "<<" is the 1.1 merge key, "=" the 1.1
-- value key; PyYAML's safe loader rejects or rewrites both.
local RESERVED = {
  ["true"] = true, ["false"] = true, yes = true, no = true, on = true, off = true,
  y = true, n = true, null = true, ["~"] = true, ["<<"] = true, ["="] = true,
  [".inf"] = true, ["-.inf"] = true, ["+.inf"] = true, [".nan"] = true,
}

-- Characters that open something else when they start a plain scalar:
-- key/value indicators, flow collections, comments, anchors, aliases, tags,
-- block scalars, quotes, directives and reserved characters. '-' is an
-- indicator only before a space ("- a"), so "--flag" stays plain.
local LEADING_INDICATORS = "^[?:,%[%]{}#&*!|>'\"%%@`]"

--- True when `s` can be written as a plain scalar and read back as the
-- same string by YAML 1.1 (PyYAML) and 1.2 parsers.
function M.plain_ok(s)
  if s == "" or RESERVED[s:lower()] then return false end
  -- Numbers of every base, dates, times and 1.1 sexagesimals ("1:30")
  -- all start with a digit, maybe after a sign or a dot.
  if s:find("^[-+]?%.?%d") then return false end
  if s:find(LEADING_INDICATORS) or s == "-" or s:find("^%-%s") then return false end
  -- Document markers, when the scalar is the whole document.
  if s:find("^%-%-%-") or s:find("^%.%.%.") then return false end
  if s:find("^%s") or s:find("%s$") then return false end
  -- ": " starts a mapping value, " #" a comment; a final ':' too.
  if s:find(": ", 1, true) or s:find(" #", 1, true) or s:find(":$") then return false end
  -- Control characters (tab included) and every non-ASCII character
  -- YAML treats as a line break or non-printable need escapes.
  if s:find("%c") then return false end
  if s:find("[\128-\255]") then
    for _, c in utf8.codes(s) do
      if (c >= 0x80 and c <= 0x9F) or c == 0x2028 or c == 0x2029
          or c == 0xFEFF or c >= 0xFFFE and c <= 0xFFFF then
        return false
      end
    end
  end
  return true
end

local ESCAPES = {
  [0x00] = "\\0", [0x07] = "\\a", [0x08] = "\\b", [0x09] = "\\t", [0x0A] = "\\n",
  [0x0B] = "\\v", [0x0C] = "\\f", [0x0D] = "\\r", [0x1B] = "\\e",
  [0x22] = '\\"', [0x5C] = "\\\\", [0x85] = "\\N", [0x2028] = "\\L", [0x2029] = "\\P",
}

local function escape_code_point(c)
  if ESCAPES[c] then return ESCAPES[c] end
  if c < 0x20 or (c >= 0x7F and c <= 0x9F) then return string.format("\\x%02X", c) end
  if c == 0xFEFF or c == 0xFFFE or c == 0xFFFF then return string.format("\\u%04X", c) end
  return utf8.char(c)
end

--- `s` as a double-quoted YAML scalar on one line.
function M.double_quote(s)
  local out = {}
  for _, c in utf8.codes(s) do out[#out + 1] = escape_code_point(c) end
  return '"' .. table.concat(out) .. '"'
end

--- `s` as a YAML scalar: plain when that is safe, double-quoted otherwise.
function M.string(s)
  s = value.utf8_clean(s)
  if M.plain_ok(s) then return s end
  return M.double_quote(s)
end

--- Float `x` as a YAML 1.1 and 1.2 parser reads a float: as in JSON, but
-- an exponent needs a dot before it (1e+16 -> 1.0e+16), as PyYAML writes it.
function M.float(x)
  local s = format_float(x)
  if not s:find(".", 1, true) then s = s:gsub("e", ".0e", 1) end
  return s
end

local function scalar(v, k)
  if k == "null" then return "null" end
  if k == "boolean" then return tostring(v) end
  if k == "integer" then return string.format("%d", v) end
  if k == "float" then return M.float(v) end
  return M.string(v)
end

-- A non-empty container goes on the lines below its key or dash; anything
-- else (scalars, [] and {}) stays on the same line.
local function inline(v)
  local k = kind(v)
  if k == "array" then return #v == 0 and "[]" or nil end
  if k == "object" then return next(v) == nil and "{}" or nil end
  return scalar(v, k)
end

-- YAML limits an implicit key to 1024 characters on one line; longer keys
-- use the explicit "? key" form. Bytes bound characters, so this is safe.
local MAX_SIMPLE_KEY = 1000

local write_block

-- Writes the entries of a mapping. `first_prefix` replaces the indent of
-- the first line, for a mapping that starts after "- " in a sequence.
local function write_mapping(map, indent, first_prefix, out)
  for i, key in ipairs(sorted_keys(map)) do
    local lead = (i == 1 and first_prefix) or indent
    local v = map[key]
    local rendered_key = M.string(key)
    local text = inline(v)
    if #rendered_key > MAX_SIMPLE_KEY then
      out[#out + 1] = lead .. "? " .. rendered_key
      if text then
        out[#out + 1] = indent .. ": " .. text
      else
        out[#out + 1] = indent .. ":"
        write_block(v, indent .. "  ", out)
      end
    elseif text then
      out[#out + 1] = lead .. rendered_key .. ": " .. text
    else
      out[#out + 1] = lead .. rendered_key .. ":"
      write_block(v, indent .. "  ", out)
    end
  end
end

local function write_sequence(list, indent, out)
  for _, item in ipairs(list) do
    local text = inline(item)
    if text then
      out[#out + 1] = indent .. "- " .. text
    elseif kind(item) == "object" then
      write_mapping(item, indent .. "  ", indent .. "- ", out)
    else
      -- A list in a list: "- - a" would need compact nesting on one line;
      -- a bare dash with the inner list indented below is simpler to read.
      out[#out + 1] = indent .. "-"
      write_block(item, indent .. "  ", out)
    end
  end
end

-- Writes a non-empty container, every line starting with `indent`.
function write_block(v, indent, out)
  if kind(v) == "array" then
    write_sequence(v, indent, out)
  else
    write_mapping(v, indent, nil, out)
  end
end

--- Encodes `v` as a YAML document ending in a newline. Raises
-- "output: <path>: <problem>" for values YAML data cannot carry.
function M.encode(v)
  value.check(v, true)
  local text = inline(v)
  if text then return text .. "\n" end
  local out = {}
  write_block(v, "", out)
  out[#out + 1] = ""
  return table.concat(out, "\n")
end

return M
