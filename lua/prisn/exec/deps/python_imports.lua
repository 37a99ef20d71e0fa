-- prisn.exec.deps.python_imports: the modules a Python source file imports,
-- found by a small tokenizer rather than by line patterns.
--
-- A pattern over lines would see `import os` inside a docstring, an example
-- in a comment, or miss `import a, \` continued lines. The tokenizer knows
-- Python's comments, string literals (prefixed, triple-quoted, escaped) and
-- bracket nesting, which is all that decides where a statement starts: an
-- `import` or `from` keyword is a statement when it opens a logical line or
-- follows ';' or a top-level ':' (`try: import ujson`). Imports at any
-- indentation count, inside functions, `try:` and `if` blocks included: the
-- script may take those paths.
--
-- Not found: `__import__("x")`, `importlib.import_module("x")` (computed
-- names), and imports in code built from strings. Relative imports (`from .
-- import x`, `from .mod import y`) are skipped: they name the script's own
-- package.
local M = {}

local find, sub, match = string.find, string.sub, string.match

-- Letters that may prefix a string literal: r, b, u, f, t and pairs of them.
local STRING_PREFIX = {}
for _, p in ipairs({ "r", "u", "b", "f", "t", "br", "rb", "fr", "rf", "tr", "rt" }) do
  STRING_PREFIX[p] = true
end

local OPEN = { ["("] = true, ["["] = true, ["{"] = true }
local CLOSE = { [")"] = true, ["]"] = true, ["}"] = true }

-- Skips the string literal whose quote is at `i`; returns the index after it.
-- An unterminated one-line string ends at the line's end and an unterminated
-- triple-quoted one at the end of the file: a scan must not fail on code the
-- interpreter would reject anyway.
local function skip_string(src, i)
  local q = sub(src, i, i)
  local triple = sub(src, i, i + 2) == q:rep(3)
  local j = triple and i + 3 or i + 1
  local stop = triple and ("[\\" .. q .. "]") or ("[\\\n" .. q .. "]")
  while true do
    local at = find(src, stop, j)
    if not at then return #src + 1 end
    local c = sub(src, at, at)
    if c == "\\" then
      j = at + 2
    elseif c == "\n" then
      return at
    elseif not triple then
      return at + 1
    elseif sub(src, at, at + 2) == q:rep(3) then
      return at + 3
    else
      j = at + 1
    end
  end
end

--- The token stream that matters for imports: { kind, value } with kind
-- "name", "op" (one character; `top` is true outside brackets), "newline"
-- (end of a logical line) or "other" (strings, numbers).
function M.tokens(src)
  local toks, i, n, depth = {}, 1, #src, 0
  while i <= n do
    local c = sub(src, i, i)
    if c == "\n" then
      if depth == 0 then toks[#toks + 1] = { kind = "newline" } end
      i = i + 1
    elseif c == "#" then
      i = find(src, "\n", i) or n + 1
    elseif c == "\\" and match(src, "^\\\r?\n", i) then
      i = find(src, "\n", i) + 1 -- explicit line joining
    elseif find(c, "%s") then
      i = i + 1
    elseif c == '"' or c == "'" then
      i = skip_string(src, i)
      toks[#toks + 1] = { kind = "other" }
    elseif find(c, "[%a_\128-\255]") then
      local s, e = find(src, "^[%w_\128-\255]+", i)
      local word = sub(src, s, e)
      local after = sub(src, e + 1, e + 1)
      if (after == '"' or after == "'") and STRING_PREFIX[word:lower()] then
        i = skip_string(src, e + 1)
        toks[#toks + 1] = { kind = "other" }
      else
        i = e + 1
        toks[#toks + 1] = { kind = "name", value = word }
      end
    elseif find(c, "%d") then
      -- digits, letters, '_' and '.' cover 1_000, 0x1f, 1.5e-3's mantissa
      local _, e = find(src, "^[%w_.]+", i)
      i = e + 1
      toks[#toks + 1] = { kind = "other" }
    else
      if OPEN[c] then
        depth = depth + 1
      elseif CLOSE[c] and depth > 0 then
        depth = depth - 1
      end
      toks[#toks + 1] = { kind = "op", value = c, top = depth == 0 }
      i = i + 1
    end
  end
  return toks
end

local function is_op(tok, value)
  return tok and tok.kind == "op" and tok.value == value
end

local function is_name(tok, value)
  return tok and tok.kind == "name" and (value == nil or tok.value == value)
end

-- a.b.c at toks[k]: the dotted name and the index after it, or nil.
local function dotted_name(toks, k)
  if not is_name(toks[k]) then return nil, k end
  local parts = { toks[k].value }
  k = k + 1
  while is_op(toks[k], ".") and is_name(toks[k + 1]) do
    parts[#parts + 1] = toks[k + 1].value
    k = k + 2
  end
  return table.concat(parts, "."), k
end

-- import a.b [as c], d ...  (k is the token after `import`)
local function import_statement(toks, k, out)
  while true do
    local name
    name, k = dotted_name(toks, k)
    if not name then return end
    out[#out + 1] = name
    if is_name(toks[k], "as") then k = k + 2 end
    if not is_op(toks[k], ",") then return end
    k = k + 1
  end
end

-- from [.]*mod import a [as b], (c, d) | *   (k is the token after `from`)
-- Each imported name is reported as mod.name, since it may be a submodule
-- (from google.cloud import storage); `*` reports mod itself.
local function from_statement(toks, k, out)
  if is_op(toks[k], ".") then return end -- relative import
  local module
  module, k = dotted_name(toks, k)
  if not module or not is_name(toks[k], "import") then return end
  k = k + 1
  if is_op(toks[k], "(") then k = k + 1 end
  if is_op(toks[k], "*") then
    out[#out + 1] = module
    return
  end
  local any = false
  while is_name(toks[k]) do
    out[#out + 1] = module .. "." .. toks[k].value
    any = true
    k = k + 1
    if is_name(toks[k], "as") then k = k + 2 end
    if not is_op(toks[k], ",") then break end
    k = k + 1
  end
  if not any then out[#out + 1] = module end
end

--- The dotted names imported by `src`, in order of appearance (repeats kept):
-- "a.b" for `import a.b`, "x.y.z" for `from x.y import z`.
function M.scan(src)
  local toks = M.tokens(src)
  local out = {}
  local at_start = true
  for k, tok in ipairs(toks) do
    if at_start and tok.kind == "name" then
      if tok.value == "import" then
        import_statement(toks, k + 1, out)
      elseif tok.value == "from" then
        from_statement(toks, k + 1, out)
      end
    end
    at_start = tok.kind == "newline" or is_op(tok, ";") or (is_op(tok, ":") and tok.top)
  end
  return out
end

return M
