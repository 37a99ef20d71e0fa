-- prisn.exec.deps.requirements: reads pip requirements files.
--
-- The rules are pip's own (pip/_internal/req/req_file.py), so a file means
-- here what it means to `pip install -r`: lines ending in a backslash are
-- joined first (a comment line never continues); then a '#' at the start of a
-- line or after whitespace starts a comment ("pkg#egg=x" URLs keep theirs);
-- a line starting with '-' is an option, anything else a requirement, kept as
-- written with whitespace squeezed, environment marker and per-requirement
-- options (--hash) included.
--
-- Options are split into `options`, one string per option ("--index-url
-- https://..."), in a form that can be written back into a requirements file
-- for pip: the installer can emit options then dependencies and hand pip the
-- result. `-r`/`--requirement` includes are followed instead (relative to the
-- including file, each file read once, so cycles end); the file paths in
-- `-c`/`--constraint`, `-f`/`--find-links` and `-e ./dir` are made absolute
-- against the file that names them, because the installer runs elsewhere.
local paths = require("prisn.exec.deps.paths")

local M = {}

local INCLUDE = { ["-r"] = true, ["--requirement"] = true }
-- Options whose value is a local path, relative to the requirements file.
local PATH_VALUED = {
  ["-c"] = true, ["--constraint"] = true,
  ["-f"] = true, ["--find-links"] = true,
  ["-e"] = true, ["--editable"] = true,
}

local function squeeze(s)
  return (s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

local function is_comment_line(line)
  return line:match("^%s*#") ~= nil
end

-- pip's join_lines: { { number = first physical line, text = joined } }.
local function logical_lines(text)
  local out, pending, first = {}, nil, nil
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = line:gsub("\r$", "")
    if line:sub(-1) ~= "\\" or is_comment_line(line) then
      if is_comment_line(line) then line = " " .. line end
      if pending then
        pending[#pending + 1] = line
        out[#out + 1] = { number = first, text = table.concat(pending) }
        pending = nil
      else
        out[#out + 1] = { number = n, text = line }
      end
    else
      if not pending then pending, first = {}, n end
      pending[#pending + 1] = line:sub(1, -2)
    end
  end
  if pending then out[#out + 1] = { number = first, text = table.concat(pending) } end
  return out
end

local function strip_comment(line)
  if line:sub(1, 1) == "#" then return "" end
  local at = line:find("%s#")
  return at and line:sub(1, at - 1) or line
end

-- "--index-url=x", "--index-url x", "-i x", "-ix" -> flag, value ("" for --pre).
local function split_option(line)
  local flag, value = line:match("^(%-%-[%w-]+)=(.*)$")
  if not flag then flag, value = line:match("^(%-%-[%w-]+)%s*(.*)$") end
  if not flag then flag, value = line:match("^(%-%a)%s*(.*)$") end
  return flag, value and squeeze(value)
end

local function is_local_path(value)
  return value ~= "" and not value:match("^%a[%w+.-]*:") -- no URL scheme
end

--- Parses one requirements file's text. `file` is its absolute path (for
-- messages and for resolving relative paths). Returns { dependencies,
-- options, includes = { { path, line } }, items } or nil, message, "EDEPS";
-- `items` holds the dependencies and includes in file order.
function M.parse(text, file)
  local dir = paths.dirname(file)
  local result = { dependencies = {}, options = {}, includes = {}, items = {} }
  for _, l in ipairs(logical_lines(text)) do
    local line = squeeze(strip_comment(l.text))
    if line:sub(1, 1) == "-" then
      local flag, value = split_option(line)
      if not flag then
        return nil, string.format("%s:%d: cannot read option '%s'", file, l.number, line), "EDEPS"
      end
      if INCLUDE[flag] then
        if value == "" then
          return nil, string.format("%s:%d: %s needs a file name", file, l.number, flag), "EDEPS"
        end
        local include = { path = paths.join(dir, value), line = l.number }
        result.includes[#result.includes + 1] = include
        result.items[#result.items + 1] = include
      else
        local editable = flag == "-e" or flag == "--editable"
        if PATH_VALUED[flag] and is_local_path(value)
          and (not editable or value:match("^%.%.?/") or value == "." or value == "..") then
          value = paths.join(dir, value)
        end
        result.options[#result.options + 1] = value == "" and flag or (flag .. " " .. value)
      end
    elseif line ~= "" then
      result.dependencies[#result.dependencies + 1] = line
      result.items[#result.items + 1] = line
    end
  end
  return result
end

--- Reads the requirements file `file` and everything it includes, through
-- ctx.read_file. Returns { dependencies, options } (file order, includes
-- expanded where they stand, exact duplicates dropped) or nil, message, code.
function M.read(file, ctx)
  local out = { dependencies = {}, options = {} }
  local seen_file, seen = {}, {}
  local function add(list, value)
    if not seen[value] then
      seen[value] = true
      list[#list + 1] = value
    end
  end
  local function visit(path, from, line)
    seen_file[path] = true
    local text = ctx.read_file(path)
    if not text then
      if from then return nil, string.format("%s:%d: cannot read included file %s", from, line, path), "EDEPS" end
      return nil, "cannot read " .. path, "EDEPS"
    end
    local parsed, err, code = M.parse(text, path)
    if not parsed then return nil, err, code end
    for _, opt in ipairs(parsed.options) do add(out.options, opt) end
    for _, item in ipairs(parsed.items) do
      if type(item) == "string" then
        add(out.dependencies, item)
      elseif not seen_file[item.path] then
        local ok, ierr, icode = visit(item.path, path, item.line)
        if not ok then return nil, ierr, icode end
      end
    end
    return true
  end
  local ok, err, code = visit(file)
  if not ok then return nil, err, code end
  return out
end

return M
