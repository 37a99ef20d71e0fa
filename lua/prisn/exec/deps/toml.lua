-- prisn.exec.deps.toml: a TOML reader, enough of TOML 1.0 for pyproject.toml
-- and PEP 723 `# /// script` blocks.
--
-- Dependency detection only needs two or three keys, but it has to read whole
-- real-world files to reach them: pyproject.toml carries [tool.*] tables,
-- [[tool.mypy.overrides]] arrays of tables, inline tables for `license` and
-- `authors`, numbers and multi-line strings. So this reads all of TOML's
-- syntax, and is strict where a mistake would change the answer (unterminated
-- strings and arrays, duplicate keys, a table defined twice) rather than
-- guessing.
--
-- What it does not do: dates and times are returned as their text (nothing
-- here needs them as values, and impossible dates are not caught); a few
-- things TOML forbids are accepted (re-opening a table made by dotted keys
-- with a [header], extending inline tables, control characters in comments);
-- integers beyond 64 bits become floats. It never writes TOML. Every valid
-- file of CPython's tomllib test suite reads the same as with tomllib.
--
--   local doc, err = toml.parse(text, { name = "pyproject.toml" })
--   -- nil, "pyproject.toml:7: unterminated string", "ETOML"
local M = {}

local sub, find, match = string.sub, string.find, string.match

-- Raised inside the parser and turned into `nil, message, code` by M.parse,
-- so the recursive descent does not thread errors through every return.
local Failure = {}

local ESCAPES = { b = "\b", t = "\t", n = "\n", f = "\f", r = "\r", e = "\27", ['"'] = '"', ["\\"] = "\\" }

local Parser = {}
Parser.__index = Parser

function Parser:fail(message, pos)
  error(setmetatable({ pos = pos or self.pos, message = message }, Failure), 0)
end

function Parser:peek(n)
  return sub(self.src, self.pos, self.pos + (n or 1) - 1)
end

-- Spaces and tabs only: newlines are significant between key/value pairs.
function Parser:skip_blank()
  self.pos = find(self.src, "[^ \t]", self.pos) or #self.src + 1
end

function Parser:skip_comment()
  if self:peek() == "#" then self.pos = find(self.src, "\n", self.pos) or #self.src + 1 end
end

-- Inside arrays and inline tables: blanks, comments and newlines.
function Parser:skip_space()
  while true do
    self:skip_blank()
    local c = self:peek()
    if c == "#" then
      self:skip_comment()
    elseif c == "\n" then
      self.pos = self.pos + 1
    else
      return
    end
  end
end

-- Whatever follows a value or a header on its line: a comment, then the end.
function Parser:end_of_line()
  self:skip_blank()
  self:skip_comment()
  local c = self:peek()
  if c == "\n" then
    self.pos = self.pos + 1
  elseif c ~= "" then
    self:fail("unexpected '" .. c .. "' after a value (one key = value per line)")
  end
end

function Parser:escape()
  local c = sub(self.src, self.pos + 1, self.pos + 1)
  if ESCAPES[c] then
    self.pos = self.pos + 2
    return ESCAPES[c]
  end
  local digits = (c == "u" and 4) or (c == "U" and 8) or (c == "x" and 2)
  if digits then
    local hex = sub(self.src, self.pos + 2, self.pos + 1 + digits)
    if #hex ~= digits or find(hex, "%X") then self:fail("bad \\" .. c .. " escape") end
    local code = tonumber(hex, 16)
    if code > 0x10FFFF or (code >= 0xD800 and code <= 0xDFFF) then
      self:fail("\\" .. c .. hex .. " is not a Unicode scalar value")
    end
    self.pos = self.pos + 2 + digits
    return utf8.char(code)
  end
  self:fail("unknown escape '\\" .. c .. "'")
end

-- "basic" strings (escapes) and 'literal' strings (none), one line each.
function Parser:short_string(quote)
  local start = self.pos
  self.pos = self.pos + 1
  local parts = {}
  local stop = quote == '"' and '["\\\n]' or "['\n]"
  while true do
    local at = find(self.src, stop, self.pos)
    if not at or sub(self.src, at, at) == "\n" then self:fail("unterminated string", start) end
    parts[#parts + 1] = sub(self.src, self.pos, at - 1)
    self.pos = at
    if sub(self.src, at, at) == quote then
      self.pos = at + 1
      return table.concat(parts)
    end
    parts[#parts + 1] = self:escape()
  end
end

-- """multi-line basic""" and '''multi-line literal''' strings. A newline
-- right after the opening quotes is dropped; in basic ones a backslash at the
-- end of a line swallows the newline and the indentation that follows.
function Parser:long_string(quote)
  local start = self.pos
  local close = quote:rep(3)
  self.pos = self.pos + 3
  if self:peek() == "\n" then self.pos = self.pos + 1 end
  local parts = {}
  local stop = quote == '"' and '["\\]' or "'"
  while true do
    local at = find(self.src, stop, self.pos)
    if not at then self:fail("unterminated " .. close .. " string", start) end
    parts[#parts + 1] = sub(self.src, self.pos, at - 1)
    self.pos = at
    if sub(self.src, at, at + 2) == close then
      -- Up to two quotes may end the content right before the closing three.
      local run = #match(self.src, "^" .. quote .. "*", at)
      if run > 5 then self:fail("too many quotes closing a string") end
      parts[#parts + 1] = quote:rep(run - 3)
      self.pos = at + run
      return table.concat(parts)
    elseif sub(self.src, at, at) == quote then
      parts[#parts + 1] = quote
      self.pos = at + 1
    elseif match(self.src, "^\\[ \t]*\n", at) then
      self.pos = find(self.src, "[^ \t\n]", at + 1) or #self.src + 1
    else
      parts[#parts + 1] = self:escape()
    end
  end
end

function Parser:string()
  local c = self:peek()
  if self:peek(3) == c:rep(3) then return self:long_string(c) end
  return self:short_string(c)
end

-- One part of a key: bare (A-Za-z0-9_-) or quoted.
function Parser:key_part()
  local c = self:peek()
  if c == '"' or c == "'" then return self:short_string(c) end
  local s, e = find(self.src, "^[%w_%-]+", self.pos)
  if not s then self:fail(c == "" and "expected a key" or "expected a key, found '" .. c .. "'") end
  self.pos = e + 1
  return sub(self.src, s, e)
end

-- a.b."c d" -> { "a", "b", "c d" }
function Parser:key()
  local parts = {}
  while true do
    self:skip_blank()
    parts[#parts + 1] = self:key_part()
    self:skip_blank()
    if self:peek() ~= "." then return parts end
    self.pos = self.pos + 1
  end
end

local function number(text)
  local clean = text:gsub("_", "")
  local sign, radix, digits = match(clean, "^([+-]?)0([xob])(%w+)$")
  if radix then
    if sign ~= "" then return nil end
    local n = tonumber(digits, ({ x = 16, o = 8, b = 2 })[radix])
    return n and math.tointeger(n)
  end
  local special_sign, special = match(clean, "^([+-]?)(%a+)$")
  if special == "inf" then return special_sign == "-" and -math.huge or math.huge end
  if special == "nan" then return 0 / 0 end
  if not match(clean, "^[+-]?%d") or match(clean, "^[+-]?0%d") then return nil end
  return tonumber(clean)
end

-- Numbers, booleans, dates and times: everything that is not quoted or bracketed.
function Parser:scalar()
  local s, e = find(self.src, "^[%w_:+%-%.]+", self.pos)
  if not s then
    local c = self:peek()
    self:fail((c == "" or c == "\n") and "expected a value" or "expected a value, found '" .. c .. "'")
  end
  local text = sub(self.src, s, e)
  -- "1979-05-27 07:32:00": the date and the time are separated by a space.
  if match(text, "^%d%d%d%d%-%d%d%-%d%d$") then
    local ts, te = find(self.src, "^ %d%d:%d%d[%w:+%-%.]*", e + 1)
    if ts then text, e = text .. sub(self.src, ts, te), te end
  end
  self.pos = e + 1
  if text == "true" then return true end
  if text == "false" then return false end
  if match(text, "^%d%d%d%d%-%d%d%-%d%d") or match(text, "^%d%d:%d%d") then return text end
  local n = number(text)
  if n == nil then self:fail("cannot read value '" .. text .. "'", s) end
  return n
end

function Parser:array()
  local start = self.pos
  self.pos = self.pos + 1
  local list = {}
  while true do
    self:skip_space()
    local c = self:peek()
    if c == "]" then
      self.pos = self.pos + 1
      return list
    elseif c == "" then
      self:fail("unterminated array", start)
    end
    list[#list + 1] = self:value()
    self:skip_space()
    c = self:peek()
    if c == "," then
      self.pos = self.pos + 1
    elseif c ~= "]" then
      self:fail(c == "" and "unterminated array" or "expected ',' or ']' in an array, found '" .. c .. "'",
        c == "" and start or nil)
    end
  end
end

-- Inline tables; newlines and a trailing comma are accepted (TOML 1.1).
function Parser:inline_table()
  local start = self.pos
  self.pos = self.pos + 1
  local tbl = {}
  while true do
    self:skip_space()
    local c = self:peek()
    if c == "}" then
      self.pos = self.pos + 1
      return tbl
    elseif c == "" then
      self:fail("unterminated inline table", start)
    end
    self:key_value(tbl)
    self:skip_space()
    c = self:peek()
    if c == "," then
      self.pos = self.pos + 1
    elseif c ~= "}" then
      self:fail("expected ',' or '}' in an inline table, found '" .. c .. "'")
    end
  end
end

function Parser:value()
  local c = self:peek()
  if c == '"' or c == "'" then return self:string() end
  if c == "[" then return self:array() end
  if c == "{" then return self:inline_table() end
  return self:scalar()
end

-- Walks `path` from `tbl`, creating tables; a path through an array of
-- tables continues in its last element, as TOML specifies.
function Parser:descend(tbl, path, last)
  for i = 1, last do
    local k = path[i]
    local v = tbl[k]
    if v == nil then
      v = {}
      tbl[k] = v
    elseif type(v) == "table" and self.arrays[v] then
      v = v[#v]
    elseif type(v) ~= "table" or self.values[v] then
      self:fail("key '" .. table.concat(path, ".", 1, i) .. "' is already a value, not a table")
    end
    tbl = v
  end
  return tbl
end

function Parser:key_value(tbl)
  local key_pos = self.pos
  local path = self:key()
  if self:peek() ~= "=" then self:fail("expected '=' after key '" .. table.concat(path, ".") .. "'") end
  self.pos = self.pos + 1
  self:skip_blank()
  local target = self:descend(tbl, path, #path - 1)
  local name = path[#path]
  if target[name] ~= nil then self:fail("duplicate key '" .. table.concat(path, ".") .. "'", key_pos) end
  local v = self:value()
  if type(v) == "table" then self.values[v] = true end
  target[name] = v
end

-- [table] and [[array.of.tables]] headers; returns the table that the
-- following key/value lines fill.
function Parser:header()
  local header_pos = self.pos
  local is_array = self:peek(2) == "[["
  self.pos = self.pos + (is_array and 2 or 1)
  local path = self:key()
  local close = is_array and "]]" or "]"
  if self:peek(#close) ~= close then self:fail("expected '" .. close .. "' to close the table header") end
  self.pos = self.pos + #close
  self:end_of_line()
  local parent = self:descend(self.root, path, #path - 1)
  local name = path[#path]
  local existing = parent[name]
  local dotted = table.concat(path, ".")
  if is_array then
    if existing == nil then
      existing = {}
      parent[name] = existing
      self.arrays[existing] = true
    elseif not self.arrays[existing] then
      self:fail("'" .. dotted .. "' is not an array of tables", header_pos)
    end
    local tbl = {}
    existing[#existing + 1] = tbl
    return tbl
  end
  if existing == nil then
    existing = {}
    parent[name] = existing
  elseif type(existing) ~= "table" or self.values[existing] or self.arrays[existing] or self.defined[existing] then
    self:fail("table '" .. dotted .. "' is defined more than once", header_pos)
  end
  self.defined[existing] = true
  return existing
end

function Parser:document()
  local current = self.root
  while self.pos <= #self.src do
    self:skip_blank()
    local c = self:peek()
    if c == "\n" then
      self.pos = self.pos + 1
    elseif c == "#" then
      self:skip_comment()
    elseif c == "[" then
      current = self:header()
    elseif c ~= "" then
      self:key_value(current)
      self:end_of_line()
    end
  end
  return self.root
end

--- Parses TOML text. `opts.name` prefixes messages ("pyproject.toml:3: ..."),
-- `opts.first_line` is the line number of the text's first line in that file
-- (for TOML embedded in a comment block). Returns the document as nested Lua
-- tables, or nil, message, "ETOML".
function M.parse(text, opts)
  opts = opts or {}
  local src = text:gsub("^\239\187\191", ""):gsub("\r\n", "\n")
  local parser = setmetatable({
    src = src, pos = 1, root = {},
    -- Identity sets (weak keys) instead of markers inside the result tables.
    arrays = setmetatable({}, { __mode = "k" }),
    values = setmetatable({}, { __mode = "k" }),
    defined = setmetatable({}, { __mode = "k" }),
  }, Parser)
  local ok, result = pcall(parser.document, parser)
  if ok then return result end
  if getmetatable(result) ~= Failure then error(result, 0) end
  local _, newlines = sub(src, 1, result.pos - 1):gsub("\n", "")
  local line = newlines + (opts.first_line or 1)
  return nil, string.format("%s%d: %s", opts.name and (opts.name .. ":") or "line ", line, result.message), "ETOML"
end

return M
