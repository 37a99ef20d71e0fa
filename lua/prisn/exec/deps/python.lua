-- prisn.exec.deps.python: what a Python script needs installed, read from the
-- first of these that exists (the result names the one used):
--
--   1. a PEP 723 `# /// script` block in the script itself;
--   2. requirements.txt beside the script or in a parent up to the project root;
--   3. pyproject.toml's [project].dependencies at the project root;
--   4. a scan of the script's import statements.
--
-- Declarations beat guesses: a declared file is taken as the whole truth even
-- when it lists nothing. Only a pyproject.toml that declares no dependencies
-- (a [tool.*]-only file, or `dynamic = ["dependencies"]`) falls through to the
-- scan, since it is common as a home for linter settings.
--
-- Nothing here installs or runs anything; every filesystem access goes
-- through `ctx` (see M.detect), so specs pass a fake tree.
local paths = require("prisn.exec.deps.paths")
local toml = require("prisn.exec.deps.toml")
local requirements = require("prisn.exec.deps.requirements")
local imports = require("prisn.exec.deps.python_imports")
local names = require("prisn.exec.deps.python_names")

local M = {}

-- A directory holding one of these is a project root: the manifest search
-- goes no higher. (pyproject.toml is both a marker and a source.)
M.ROOT_MARKERS = { ".git", "pyproject.toml", "setup.py", "setup.cfg" }

local function squeeze(s)
  return (s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

local function fail(file, line, message)
  return nil, string.format("%s:%d: %s", file, line, message), "EDEPS"
end

-- A list of requirement strings from a TOML value, or nil, why.
local function string_list(value, key)
  local bad = "'" .. key .. "' must be an array of strings"
  -- An inline table has keys but no [1]: not an array.
  if type(value) ~= "table" or (next(value) ~= nil and value[1] == nil) then return nil, bad end
  local list = {}
  for i, v in ipairs(value) do
    if type(v) ~= "string" then return nil, bad end
    list[i] = squeeze(v)
  end
  return list
end

-- PEP 723: "# /// TYPE" opens a block, every following line is "#" or
-- "# ...", and the last "# ///" of that run of comment lines closes it.
local function is_content(line)
  return line == "#" or line:sub(1, 2) == "# "
end

--- The `script` blocks of PEP 723 metadata in `source`: a list of
-- { first = line number of the opening, text = the TOML content } or nil,
-- message, code for an unterminated or duplicated block. `file` names the
-- script in messages.
function M.script_blocks(source, file)
  local lines = {}
  for line in (source .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line:gsub("\r$", "") end
  local blocks, i = {}, 1
  while i <= #lines do
    local kind = lines[i]:match("^# /// ([%w-]+)%s*$")
    if not kind then
      i = i + 1
    else
      local close, j = nil, i + 1
      while j <= #lines and is_content(lines[j]) do
        if lines[j]:match("^# ///%s*$") then close = j end
        j = j + 1
      end
      if not close then
        local stray = lines[j]
        if stray and stray:sub(1, 1) == "#" then
          return fail(file, j, "line in '# /// " .. kind .. "' block must be '#' or start with '# '")
        end
        return fail(file, i, "unterminated '# /// " .. kind .. "' block (no closing '# ///')")
      end
      if kind == "script" then
        if blocks[1] then
          return fail(file, i, "second '# /// script' block (the first is at line " .. blocks[1].first .. ")")
        end
        local content = {}
        for k = i + 1, close - 1 do content[#content + 1] = lines[k]:sub(lines[k] == "#" and 2 or 3) end
        blocks[1] = { first = i, text = table.concat(content, "\n") }
      end
      i = close + 1
    end
  end
  return blocks
end

-- 1. PEP 723. Returns a result, false (no block), or nil, message, code.
-- `name` is the script as the user named it, for messages.
local function from_pep723(script, name, source)
  local blocks, err, code = M.script_blocks(source, name)
  if not blocks then return nil, err, code end
  local block = blocks[1]
  if not block then return false end
  local doc, terr = toml.parse(block.text, { name = name, first_line = block.first + 1 })
  if not doc then return nil, terr, "EDEPS" end
  local deps = {}
  if doc.dependencies ~= nil then
    local list, lerr = string_list(doc.dependencies, "dependencies")
    if not list then return fail(name, block.first, lerr) end
    deps = list
  end
  local requires = doc["requires-python"]
  if requires ~= nil and type(requires) ~= "string" then
    return fail(name, block.first, "'requires-python' must be a string")
  end
  return { source = "pep723", file = script, dependencies = deps, options = {}, requires_python = requires }
end

-- 3. pyproject.toml. Returns a result, false (declares nothing), or nil, message, code.
local function from_pyproject(ctx, file)
  local text = ctx.read_file(file)
  if not text then return nil, "cannot read " .. file, "EDEPS" end
  local doc, err = toml.parse(text, { name = file })
  if not doc then return nil, err, "EDEPS" end
  local project = doc.project
  if type(project) ~= "table" then return false end
  for _, field in ipairs(type(project.dynamic) == "table" and project.dynamic or {}) do
    if field == "dependencies" then return false end
  end
  local deps = {}
  if project.dependencies ~= nil then
    local list, lerr = string_list(project.dependencies, "project.dependencies")
    if not list then return nil, file .. ": " .. lerr, "EDEPS" end
    deps = list
  end
  local requires = project["requires-python"]
  return {
    source = "pyproject.toml", file = file, dependencies = deps, options = {},
    requires_python = type(requires) == "string" and requires or nil,
  }
end

-- 4. The import scan.
local function from_imports(ctx, script, source)
  local stdlib = paths.module_set(ctx.stdlib, "stdlib")
  local dir = paths.dirname(script)
  local seen, deps = {}, {}
  local local_cache = {}
  local function is_local(top)
    if local_cache[top] == nil then
      local_cache[top] = ctx.exists(paths.join(dir, top .. ".py")) or ctx.is_dir(paths.join(dir, top)) or false
    end
    return local_cache[top]
  end
  for _, dotted in ipairs(imports.scan(source)) do
    local top = dotted:match("^[^.]+")
    if top ~= "__future__" and not stdlib[top] and not is_local(top) then
      local dist = names.distribution(dotted)
      -- A leading underscore marks a private module (_pytest, __main__):
      -- never something to install under that name.
      if dist and dist:sub(1, 1) ~= "_" and not seen[dist] then
        seen[dist] = true
        deps[#deps + 1] = dist
      end
    end
  end
  table.sort(deps)
  if #deps == 0 then return { source = "none", dependencies = {}, options = {} } end
  return { source = "imports", file = script, dependencies = deps, options = {} }
end

--- Detects the dependencies of the Python script at `script_path`.
--
-- ctx: read_file(path) -> string|nil, exists(path) -> bool, is_dir(path) ->
-- bool, home (the search never climbs into it), stdlib (set of top-level
-- stdlib module names, or a function returning it; only called for the
-- import scan), cwd (needed only when script_path is relative).
--
-- Returns { source, file, dependencies, options, requires_python } (see
-- prisn.exec.deps) or nil, message, "EDEPS" for malformed metadata. Messages
-- about the script name it as `script_path` was given; `file` is absolute.
function M.detect(script_path, ctx)
  local script = paths.absolute(script_path, ctx.cwd)
  local source = ctx.read_file(script)
  if not source then return nil, "cannot read " .. script, "ENOENT" end
  source = source:gsub("^\239\187\191", "") -- a UTF-8 byte order mark

  local result, err, code = from_pep723(script, script_path, source)
  if result ~= false then return result, err, code end

  local pyproject
  for _, dir in ipairs(paths.search_dirs(ctx, paths.dirname(script), M.ROOT_MARKERS)) do
    local req = paths.join(dir, "requirements.txt")
    if ctx.exists(req) and not ctx.is_dir(req) then
      local parsed, rerr, rcode = requirements.read(req, ctx)
      if not parsed then return nil, rerr, rcode end
      return { source = "requirements.txt", file = req, dependencies = parsed.dependencies,
        options = parsed.options }
    end
    local candidate = paths.join(dir, "pyproject.toml")
    if ctx.exists(candidate) then
      pyproject = candidate
      break
    end
  end
  if pyproject then
    result, err, code = from_pyproject(ctx, pyproject)
    if result ~= false then return result, err, code end
  end

  return from_imports(ctx, script, source)
end

-- PEP 503: runs of '-', '_' and '.' become one '-', all lower case.
local function canonical_name(name)
  return (name:lower():gsub("[-_.]+", "-"))
end

local ARCHIVE = { "%.whl$", "%.zip$", "%.tar%.gz$", "%.tgz$", "%.tar%.bz2$", "%.egg$" }

-- One requirement in canonical form, or the text as written (squeezed) when
-- it is not PEP 508 (a URL, a path, an archive file name).
local function canonical_requirement(spec)
  spec = squeeze(spec)
  local req, marker = spec:match("^([^;]*);(.*)$")
  req = req or spec
  -- Per-requirement options (--hash=...) stay, after the requirement proper.
  local head, opts = req:match("^(.-)%s+(%-.*)$")
  if head then req = head end
  local name, rest = req:match("^([%a%d][%w._-]*)(.*)$")
  if not name then return spec end
  for _, suffix in ipairs(ARCHIVE) do
    if name:lower():match(suffix) then return spec end
  end
  local extras, after = rest:match("^%s*%[([^%]]*)%](.*)$")
  after = after or rest
  local out = canonical_name(name)
  if extras then
    local list = {}
    for extra in extras:gmatch("[^,%s]+") do list[#list + 1] = canonical_name(extra) end
    table.sort(list)
    out = out .. "[" .. table.concat(list, ",") .. "]"
  end
  local url = after:match("^%s*@%s*(.-)%s*$")
  if url then
    out = out .. " @ " .. url
  else
    local version = after:gsub("%s", "")
    if version ~= "" and not version:match("^[<>=!~(]") then return spec end
    out = out .. version
  end
  if opts then out = out .. " " .. opts end
  if marker then out = out .. "; " .. squeeze(marker) end
  return out
end

--- The canonical form of a dependency list, for the environment cache key:
-- names PEP 503-normalized, extras sorted, whitespace dropped from version
-- specifiers, markers kept (whitespace squeezed); sorted, duplicates removed.
function M.normalize(list)
  local seen, out = {}, {}
  for _, spec in ipairs(list) do
    local c = canonical_requirement(spec)
    if c ~= "" and not seen[c] then
      seen[c] = true
      out[#out + 1] = c
    end
  end
  table.sort(out)
  return out
end

return M
