-- prisn.output.text: the `-o text` renderer, for people at a terminal.
--
-- Three shapes, chosen from the value:
--   a list of records  -> a table: upper-case headers, left-aligned columns
--                         three spaces apart, one row per record;
--   an object          -> a key/value block: "Label:" then the value, values
--                         aligned in one column, nested objects and lists of
--                         records indented under their label;
--   anything else      -> one line per scalar (a top-level string as is).
--
-- In cells and values, null, "" and empty containers show as "-", so a
-- column is never blank and `awk '{print $3}'` keeps working; lists join with
-- ", " and nested objects become "k=v, k2=v2". Control characters are shown
-- escaped ("\n", "\x1b") so a value can neither break the alignment nor send
-- escape sequences to the terminal. Widths count terminal columns (wide CJK
-- and emoji count two, combining marks zero), not bytes.
--
-- Colour is optional and lives in `paint` alone: bold headers, and green,
-- yellow or red for whole values that are state words. Cells are padded
-- before they are painted, so colour never moves a column.
--
-- Unlike JSON and YAML, this format is not an interface: scripts use -o json.
local value = require("prisn.output.value")

local M = {}

local kind, sorted_keys, format_float = value.kind, value.sorted_keys, value.format_float

local SEPARATOR = "   "
local NONE = "-"

-- Colour -----------------------------------------------------------------

local SGR = { header = "1", good = "32", warn = "33", bad = "31" }

local STATE_ROLES = {
  ok = "good", running = "good", succeeded = "good", success = "good",
  healthy = "good", ready = "good", active = "good", passed = "good",
  warn = "warn", warning = "warn", pending = "warn", starting = "warn",
  stopping = "warn", restarting = "warn", degraded = "warn", unknown = "warn",
  fail = "bad", failed = "bad", failure = "bad", error = "bad", crashed = "bad",
  unhealthy = "bad", killed = "bad", timeout = "bad", dead = "bad",
}

--- `text` wrapped in the SGR codes of `role` when `color` is on; a value
-- role is looked up from the text itself (state words only).
local function paint(text, role, color)
  if not color then return text end
  if role == "value" then role = STATE_ROLES[text:lower()] end
  if not role then return text end
  return "\27[" .. SGR[role] .. "m" .. text .. "\27[0m"
end

-- Width ------------------------------------------------------------------

-- Code point ranges that take no column (combining marks, zero-width
-- characters, variation selectors) or two (East Asian wide, emoji).
local ZERO_WIDTH = {
  { 0x0300, 0x036F }, { 0x0483, 0x0489 }, { 0x0591, 0x05BD }, { 0x200B, 0x200F },
  { 0x20D0, 0x20FF }, { 0xFE00, 0xFE0F }, { 0xFE20, 0xFE2F },
}
local DOUBLE_WIDTH = {
  { 0x1100, 0x115F }, { 0x2E80, 0x303E }, { 0x3041, 0x33FF }, { 0x3400, 0x4DBF },
  { 0x4E00, 0x9FFF }, { 0xA000, 0xA4CF }, { 0xAC00, 0xD7A3 }, { 0xF900, 0xFAFF },
  { 0xFE30, 0xFE4F }, { 0xFF00, 0xFF60 }, { 0xFFE0, 0xFFE6 }, { 0x1F300, 0x1F64F },
  { 0x1F900, 0x1F9FF }, { 0x20000, 0x3FFFD },
}

local function in_ranges(c, ranges)
  for _, r in ipairs(ranges) do
    if c >= r[1] and c <= r[2] then return true end
  end
  return false
end

--- Terminal columns taken by UTF-8 string `s` (without escape sequences).
function M.width(s)
  if not s:find("[\128-\255]") then return #s end
  local w = 0
  for _, c in utf8.codes(value.utf8_clean(s)) do
    if c < 0x300 then w = w + 1
    elseif in_ranges(c, ZERO_WIDTH) then w = w + 0
    elseif in_ranges(c, DOUBLE_WIDTH) then w = w + 2
    else w = w + 1 end
  end
  return w
end

local width = M.width

local function pad(s, w)
  return s .. string.rep(" ", w - width(s))
end

-- Values -----------------------------------------------------------------

local CONTROL_ESCAPES = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

-- One line of `s` that is safe to print: valid UTF-8, controls escaped.
local function clean(s)
  s = value.utf8_clean(s):gsub("%c", function(c)
    return CONTROL_ESCAPES[c] or string.format("\\x%02x", c:byte())
  end)
  -- C1 controls (U+0080..U+009F); some terminals obey them as escapes.
  return (s:gsub("\194[\128-\159]", function(c)
    return string.format("\\u{%x}", utf8.codepoint(c))
  end))
end

local function number_text(v, k)
  if k == "integer" then return string.format("%d", v) end
  if v ~= v then return "NaN" end
  if v == math.huge then return "Inf" end
  if v == -math.huge then return "-Inf" end
  return format_float(v)
end

-- `v` on one line. Inside a list or object, containers get brackets so the
-- nesting stays readable: "a=1, b={c=2}, d=[x, y]".
local function compact(v, nested)
  local k = kind(v)
  if k == "null" then return NONE end
  if k == "boolean" then return tostring(v) end
  if k == "integer" or k == "float" then return number_text(v, k) end
  if k == "string" then return clean(v) end
  local parts = {}
  if k == "array" then
    for i = 1, #v do parts[i] = compact(v[i], true) end
  else
    for _, key in ipairs(sorted_keys(v)) do
      parts[#parts + 1] = clean(key) .. "=" .. compact(v[key], true)
    end
  end
  local joined = table.concat(parts, ", ")
  if not nested then return joined end
  return k == "array" and "[" .. joined .. "]" or "{" .. joined .. "}"
end

--- `v` as one table cell or inline value: never empty.
function M.cell(v)
  local s = compact(v, false)
  return s == "" and NONE or s
end

local cell = M.cell

local function is_records(list)
  if kind(list) ~= "array" or #list == 0 then return false end
  for i = 1, #list do
    if kind(list[i]) ~= "object" then return false end
  end
  return true
end

-- Table ------------------------------------------------------------------

--- The header of column key `key`: "exit_code" -> "EXIT CODE".
function M.header(key)
  return (key:upper():gsub("_", " "))
end

local function normalize_columns(columns, records)
  local result = {}
  if columns then
    for i, c in ipairs(columns) do
      if type(c) == "string" then c = { key = c } end
      result[i] = { key = c.key, header = c.header or M.header(c.key), format = c.format }
    end
    return result
  end
  local seen, keys = {}, {}
  for _, record in ipairs(records) do
    for key in pairs(record) do
      if not seen[key] then seen[key] = true keys[#keys + 1] = key end
    end
  end
  table.sort(keys, value.byte_less)
  for i, key in ipairs(keys) do result[i] = { key = key, header = M.header(key) } end
  return result
end

local function format_row(cells, widths, indent, role, color)
  local parts = {}
  for i, text in ipairs(cells) do
    local painted = paint(text, role, color)
    if i < #cells then painted = painted .. string.rep(" ", widths[i] - width(text)) end
    parts[i] = painted
  end
  return (indent .. table.concat(parts, SEPARATOR)):gsub("%s+$", "")
end

-- Appends the lines of a table of `records` to `out`.
local function write_table(records, columns, indent, color, out)
  columns = normalize_columns(columns, records)
  local header, widths, rows = {}, {}, {}
  for i, c in ipairs(columns) do
    header[i] = clean(c.header)
    widths[i] = width(header[i])
  end
  for r, record in ipairs(records) do
    local row = {}
    for i, c in ipairs(columns) do
      local v = record[c.key]
      local text = c.format and clean(tostring(c.format(v, record))) or cell(v)
      if text == "" then text = NONE end
      row[i] = text
      widths[i] = math.max(widths[i], width(text))
    end
    rows[r] = row
  end
  out[#out + 1] = format_row(header, widths, indent, "header", color)
  for _, row in ipairs(rows) do
    out[#out + 1] = format_row(row, widths, indent, "value", color)
  end
end

-- Key/value block --------------------------------------------------------

--- The label of field `key`: "exit_code" -> "Exit code".
function M.label(key)
  local s = clean(key):gsub("_", " ")
  return s:sub(1, 1):upper() .. s:sub(2)
end

-- The keys of `obj` to show: `fields` first, in their order (shown even when
-- absent, as "-"), then the remaining keys in byte order.
local function ordered_fields(obj, fields)
  local entries, listed = {}, {}
  for _, f in ipairs(fields or {}) do
    if type(f) == "string" then f = { key = f } end
    entries[#entries + 1] = f
    listed[f.key] = true
  end
  for _, key in ipairs(sorted_keys(obj)) do
    if not listed[key] then entries[#entries + 1] = { key = key } end
  end
  return entries
end

local write_object

-- True when `v` goes on the lines below its label rather than beside it.
local function is_block(v)
  return (kind(v) == "object" and next(v) ~= nil) or is_records(v)
end

-- Appends the value lines of one field; multi-line strings continue in the
-- value column.
local function write_field(label, v, label_width, indent, color, out)
  local k = kind(v)
  if is_block(v) then
    out[#out + 1] = indent .. label
    if k == "object" then
      write_object(v, indent .. "  ", nil, false, color, out)
    else
      write_table(v, nil, indent .. "  ", color, out)
    end
    return
  end
  local lines = { cell(v) }
  if k == "string" and v:find("\n", 1, true) then
    lines = {}
    local body = v:gsub("\r?\n$", "")
    for line in (body .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = clean(line) end
  end
  local lead = indent .. pad(label, label_width) .. "  "
  for i, line in ipairs(lines) do
    out[#out + 1] = ((i == 1 and lead or string.rep(" ", #indent + label_width + 2))
      .. paint(line, "value", color)):gsub("%s+$", "")
  end
end

-- Appends the key/value lines of `obj`. Labels are derived from the keys
-- at the top level only ("exit_code" -> "Exit code"); nested objects are
-- mostly user data (labels, env) whose keys must appear exactly as written.
-- Only labels with a value beside them set the width of the label column.
function write_object(obj, indent, fields, top, color, out)
  local entries = ordered_fields(obj, fields)
  local labels, label_width = {}, 0
  for i, f in ipairs(entries) do
    labels[i] = (f.label or (top and M.label(f.key) or clean(f.key))) .. ":"
    if not is_block(obj[f.key]) then label_width = math.max(label_width, width(labels[i])) end
  end
  for i, f in ipairs(entries) do
    write_field(labels[i], obj[f.key], label_width, indent, color, out)
  end
end

--- Renders `v` as text ending in a newline. `opts`: `columns` and `empty`
-- for a list of records, `fields` for an object, `color`.
function M.render(v, opts)
  opts = opts or {}
  value.check(v, false)
  local k = kind(v)
  local out = {}
  if k == "array" then
    if #v == 0 then
      out[1] = opts.empty or "No resources found."
    elseif is_records(v) then
      write_table(v, opts.columns, "", opts.color, out)
    else
      for i = 1, #v do out[i] = cell(v[i]) end
    end
  elseif k == "object" then
    write_object(v, "", opts.fields, true, opts.color, out)
    if #out == 0 then out[1] = NONE end
  elseif k == "string" then
    -- A bare string is a document (a token, a script): printed verbatim.
    return v:sub(-1) == "\n" and v or v .. "\n"
  else
    out[1] = cell(v)
  end
  out[#out + 1] = ""
  return table.concat(out, "\n")
end

return M
