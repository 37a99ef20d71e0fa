-- prisn.exec.deps.node: what a JavaScript script needs installed.
--
--   1. package.json beside the script, or in a parent up to the project root
--      (a directory with .git or a package.json): its `dependencies`, as
--      "name@range" strings. devDependencies are for building and testing,
--      not running; optionalDependencies and peerDependencies are left to
--      npm's own resolution of the listed packages. A package.json without a
--      `dependencies` field (often there only for "type": "module") ends the
--      search but declares nothing, so the script is scanned instead.
--   2. a scan of the script for require("x"), import ... from "x", import "x",
--      import("x") and export ... from "x": bare specifiers reduced to their
--      package name, minus node's builtin modules.
--
-- The scan uses a small tokenizer that knows comments, strings, template
-- literals (with ${} nesting) and, by the usual heuristic, regular expression
-- literals, so `// require("x")` or "import 'y'" inside a string do not count.
-- Computed specifiers (require(name), import(`./${x}`)) cannot be known.
local cjson = require("cjson")
local paths = require("prisn.exec.deps.paths")

local M = {}

local find, sub, match = string.find, string.sub, string.match

M.ROOT_MARKERS = { ".git", "package.json" }

-- After one of these words a '/' starts a regular expression, not a division.
local BEFORE_REGEX = {}
for _, w in ipairs({ "return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw",
  "case", "do", "else", "yield", "await" }) do
  BEFORE_REGEX[w] = true
end

local function regex_allowed(prev)
  if not prev then return true end
  if prev.kind == "name" then return BEFORE_REGEX[prev.value] or false end
  if prev.kind == "op" then return not (prev.value == ")" or prev.value == "]" or prev.value == "}") end
  return false -- after a string, number or template: division
end

-- From `i` inside a template literal: the index after its closing backtick
-- ("end") or after a `${` that opens an expression ("expr").
local function skip_template(src, i)
  while true do
    local at = find(src, "[`\\$]", i)
    if not at then return #src + 1, "end" end
    local c = sub(src, at, at)
    if c == "\\" then
      i = at + 2
    elseif c == "`" then
      return at + 1, "end"
    elseif sub(src, at + 1, at + 1) == "{" then
      return at + 2, "expr"
    else
      i = at + 1
    end
  end
end

-- A '...' or "..." string at `i`: its raw content and the index after it.
-- An unterminated string ends at the line's end.
local function read_string(src, i)
  local q = sub(src, i, i)
  local j = i + 1
  while true do
    local at = find(src, "[\\\n" .. q .. "]", j)
    if not at or sub(src, at, at) == "\n" then return sub(src, i + 1, (at or #src + 1) - 1), at or #src + 1 end
    if sub(src, at, at) == q then return sub(src, i + 1, at - 1), at + 1 end
    j = at + 2
  end
end

-- A regular expression literal at `i` (the opening '/'): the index after it
-- and its flags. A '/' inside [...] does not end it.
local function skip_regex(src, i)
  local j, in_class = i + 1, false
  while j <= #src do
    local c = sub(src, j, j)
    if c == "\\" then
      j = j + 1
    elseif c == "\n" then
      return j
    elseif c == "[" then
      in_class = true
    elseif c == "]" then
      in_class = false
    elseif c == "/" and not in_class then
      local _, e = find(src, "^[%w_$]*", j + 1)
      return e + 1
    end
    j = j + 1
  end
  return j
end

--- Tokens: { kind = "name"|"string"|"op"|"other", value }; strings carry
-- their raw content, ops are single characters.
function M.tokens(src)
  local toks, n = {}, #src
  local i = match(src, "^#!") and (find(src, "\n") or n + 1) or 1
  local depth, templates = 0, {} -- brace depth; depths at which a ${ returns to its template
  local function push(kind, value)
    toks[#toks + 1] = { kind = kind, value = value }
  end
  while i <= n do
    local c = sub(src, i, i)
    local c2 = sub(src, i, i + 1)
    if find(c, "%s") then
      i = find(src, "[^%s]", i) or n + 1
    elseif c2 == "//" then
      i = find(src, "\n", i) or n + 1
    elseif c2 == "/*" then
      local _, e = find(src, "*/", i + 2, true)
      i = (e or n) + 1
    elseif c == '"' or c == "'" then
      local value
      value, i = read_string(src, i)
      push("string", value)
    elseif c == "`" then
      local state
      i, state = skip_template(src, i + 1)
      if state == "expr" then
        templates[#templates + 1] = depth
        depth = depth + 1
      end
      push("other")
    elseif c == "}" and templates[#templates] == depth - 1 then
      depth = depth - 1
      templates[#templates] = nil
      local state
      i, state = skip_template(src, i + 1)
      if state == "expr" then
        templates[#templates + 1] = depth
        depth = depth + 1
      end
    elseif c == "/" and regex_allowed(toks[#toks]) then
      i = skip_regex(src, i)
      push("other")
    elseif find(c, "[%a_$\128-\255]") then
      local s, e = find(src, "^[%w_$\128-\255]+", i)
      push("name", sub(src, s, e))
      i = e + 1
    elseif find(c, "%d") then
      local _, e = find(src, "^[%w_.]+", i)
      push("other")
      i = e + 1
    else
      if c == "{" then
        depth = depth + 1
      elseif c == "}" and depth > 0 then
        depth = depth - 1
      end
      push("op", c)
      i = i + 1
    end
  end
  return toks
end

local function is(tok, kind, value)
  return tok ~= nil and tok.kind == kind and (value == nil or tok.value == value)
end

--- The module specifiers `src` loads, in order of appearance, as written.
function M.scan(src)
  local toks, out = M.tokens(src), {}
  for k, tok in ipairs(toks) do
    local prev = toks[k - 1]
    local member = is(prev, "op", ".") -- obj.require(...) is somebody else's method
    if tok.kind == "name" and not member then
      local nxt = toks[k + 1]
      if tok.value == "require" then
        -- require("x") and require.resolve("x")
        local at = k + 1
        if is(nxt, "op", ".") and is(toks[k + 2], "name", "resolve") then at = k + 3 end
        if is(toks[at], "op", "(") and is(toks[at + 1], "string") and is(toks[at + 2], "op", ")") then
          out[#out + 1] = toks[at + 1].value
        end
      elseif tok.value == "import" then
        if is(nxt, "string") then
          out[#out + 1] = nxt.value -- import "x"
        elseif is(nxt, "op", "(") and is(toks[k + 2], "string")
          and (is(toks[k + 3], "op", ")") or is(toks[k + 3], "op", ",")) then
          out[#out + 1] = toks[k + 2].value -- import("x")
        end
      elseif tok.value == "from" and is(nxt, "string") then
        out[#out + 1] = nxt.value -- import ... from "x", export ... from "x"
      end
    end
  end
  return out
end

--- The npm package a specifier names ("lodash/fp" -> "lodash", "@scope/pkg/sub"
-- -> "@scope/pkg"), or nil when it is not a bare package specifier: relative
-- or absolute paths, URLs and prefixed schemes (node:, data:, https:) and
-- package-internal "#imports".
function M.package_name(spec)
  if spec == "" or match(spec, "^[./#~]") or match(spec, "^%a[%w+.-]*:") then return nil end
  local name
  if sub(spec, 1, 1) == "@" then
    name = match(spec, "^(@[^/]+/[^/]+)")
  else
    name = match(spec, "^[^/]+")
  end
  if not name or not match(name, "^@?[%w][%w._~-]*/?[%w._~-]*$") then return nil end
  return name
end

local function from_imports(ctx, script, source)
  local builtins = paths.module_set(ctx.builtins, "builtins")
  local seen, deps = {}, {}
  for _, spec in ipairs(M.scan(source)) do
    local name = M.package_name(spec)
    if name and not builtins[name] and not builtins[spec] and not seen[name] then
      seen[name] = true
      deps[#deps + 1] = name
    end
  end
  table.sort(deps)
  if #deps == 0 then return { source = "none", dependencies = {}, options = {} } end
  return { source = "imports", file = script, dependencies = deps, options = {} }
end

-- "file:../lib" and "../lib" ranges point at the package.json's folder; made
-- absolute, since the environment is installed elsewhere.
local function resolve_range(range, dir)
  local rel = match(range, "^file:(.*)$")
  if rel and sub(rel, 1, 1) ~= "/" then return "file:" .. paths.join(dir, rel) end
  if match(range, "^%.%.?/") then return "file:" .. paths.join(dir, range) end
  return range
end

local function json_error(file, text, err)
  local at = tonumber(match(tostring(err), "character (%d+)"))
  if not at then return file .. ": invalid JSON: " .. tostring(err) end
  local _, newlines = sub(text, 1, at - 1):gsub("\n", "")
  return string.format("%s:%d: invalid JSON: %s", file, newlines + 1, tostring(err))
end

-- A result, false (declares nothing), or nil, message, code.
local function from_package_json(ctx, file)
  local text = ctx.read_file(file)
  if not text then return nil, "cannot read " .. file, "EDEPS" end
  local ok, doc = pcall(cjson.decode, text)
  if not ok then return nil, json_error(file, text, doc), "EDEPS" end
  if type(doc) ~= "table" then return nil, file .. ": expected a JSON object", "EDEPS" end
  local deps = doc.dependencies
  if deps == nil or deps == cjson.null then return false end
  if type(deps) ~= "table" then return nil, file .. ": 'dependencies' must be an object", "EDEPS" end
  local dir, list = paths.dirname(file), {}
  for name, range in pairs(deps) do
    if type(name) ~= "string" or type(range) ~= "string" then
      return nil, string.format("%s: dependencies.%s: expected a version range string", file, tostring(name)),
        "EDEPS"
    end
    list[#list + 1] = name .. "@" .. (range == "" and "*" or resolve_range(range, dir))
  end
  table.sort(list)
  return { source = "package.json", file = file, dependencies = list, options = {} }
end

--- Detects the dependencies of the JavaScript file at `script_path`.
-- ctx: read_file, exists, is_dir, home, cwd (as for Python) and builtins (a
-- set of node's builtin module names, or a function returning it; only called
-- for the scan). Returns a result (see prisn.exec.deps) or nil, message, code.
function M.detect(script_path, ctx)
  local script = paths.absolute(script_path, ctx.cwd)
  local source = ctx.read_file(script)
  if not source then return nil, "cannot read " .. script, "ENOENT" end
  source = source:gsub("^\239\187\191", "") -- a UTF-8 byte order mark
  for _, dir in ipairs(paths.search_dirs(ctx, paths.dirname(script), M.ROOT_MARKERS)) do
    local manifest = paths.join(dir, "package.json")
    if ctx.exists(manifest) then
      local result, err, code = from_package_json(ctx, manifest)
      if result ~= false then return result, err, code end
      break
    end
  end
  return from_imports(ctx, script, source)
end

--- The canonical list for the environment cache key: sorted, duplicates
-- removed, each entry as written (npm names are already case-sensitive and
-- exact).
function M.normalize(list)
  local seen, out = {}, {}
  for _, dep in ipairs(list) do
    if not seen[dep] then
      seen[dep] = true
      out[#out + 1] = dep
    end
  end
  table.sort(out)
  return out
end

return M
