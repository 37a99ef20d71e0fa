-- prisn.bundle.ignore: the gitignore-like rules that say what of a script's
-- folder stays out of its bundle (the built-in list, then the folder's
-- .prisnignore).
--
-- A rule per line, as in .gitignore: blank lines and "#" comments are
-- skipped; "!" re-includes what an earlier rule left out; a trailing "/"
-- matches folders only; a rule holding a "/" elsewhere is anchored to the
-- folder the script lives in, one without matches a name at any depth; "*"
-- and "?" match within one path segment, "[abc]" a character class, "**" any
-- number of segments. The last matching rule wins. Not supported: escapes
-- ("\#", "\!") and trailing-space quoting, which scripts' folders never need.
-- Like git, the walk never enters a folder a rule left out, so "!" cannot
-- bring back a file inside it (`--include` can, see prisn.bundle).
local M = {}

-- What never belongs in a script's bundle unless a .prisnignore line ("!")
-- or --include asks for it: version control, dependency folders that the
-- server rebuilds from the dependency files, caches and editor leftovers.
M.BUILTIN = [[
.hg/
.svn/
node_modules/
__pycache__/
.venv/
venv/
.mypy_cache/
.pytest_cache/
.tox/
.idea/
.vscode/
*.pyc
*.pyo
.DS_Store
*.swp
*~
]]

-- One glob segment as an anchored Lua pattern ("*" and "?" stay inside the
-- segment; "[!a]" is "[^a]").
local function segment_pattern(glob)
  local out, i = { "^" }, 1
  while i <= #glob do
    local c = glob:sub(i, i)
    if c == "*" then
      out[#out + 1] = "[^/]*"
    elseif c == "?" then
      out[#out + 1] = "[^/]"
    elseif c == "[" and glob:find("]", i + 2, true) then
      local close = glob:find("]", i + 2, true)
      local class = glob:sub(i + 1, close - 1):gsub("^!", "^"):gsub("%%", "%%%%")
      out[#out + 1] = "[" .. class .. "]"
      i = close
    else
      out[#out + 1] = c:gsub("%W", "%%%0")
    end
    i = i + 1
  end
  out[#out + 1] = "$"
  return table.concat(out)
end

local function split(path)
  local parts = {}
  for part in path:gmatch("[^/]+") do parts[#parts + 1] = part end
  return parts
end

-- Whether pattern segments pats[pi..] match path segments segs[si..];
-- "**" takes any number of segments (none included).
local function match_segments(pats, pi, segs, si)
  if pi > #pats then return si > #segs end
  if pats[pi] == "**" then
    for k = si, #segs + 1 do
      if match_segments(pats, pi + 1, segs, k) then return true end
    end
    return false
  end
  if si > #segs or not segs[si]:match(pats[pi]) then return false end
  return match_segments(pats, pi + 1, segs, si + 1)
end

-- A line as a rule { negate, dir_only, anchored, segments }, or nil for a
-- blank line or a comment.
local function parse_line(line)
  line = line:gsub("%s+$", "")
  if line == "" or line:sub(1, 1) == "#" then return nil end
  local rule = {}
  if line:sub(1, 1) == "!" then rule.negate, line = true, line:sub(2) end
  if line:sub(-1) == "/" then rule.dir_only, line = true, line:sub(1, -2) end
  rule.anchored = line:find("/", 1, true) ~= nil
  line = line:gsub("^/", "")
  if line == "" then return nil end
  rule.segments = {}
  for _, part in ipairs(split(line)) do
    rule.segments[#rule.segments + 1] = part == "**" and "**" or segment_pattern(part)
  end
  if not rule.anchored and rule.segments[1] == "**" then rule.segments[1] = segment_pattern("*") end
  return rule
end

--- The rules in `text` (the lines of a .prisnignore), appended to `rules`
-- when given. Returns the list.
function M.parse(text, rules)
  rules = rules or {}
  for line in (text or ""):gmatch("[^\r\n]+") do
    rules[#rules + 1] = parse_line(line)
  end
  return rules
end

--- Whether `rules` leave out `path` (relative to the script's folder,
-- "/"-separated); `is_dir` tells a folder from a file.
--   ignored(parse("data/\n*.log\n!keep.log"), "data", true)  --> true
function M.ignored(rules, path, is_dir)
  local segs = split(path)
  local result = false
  for _, rule in ipairs(rules) do
    if not (rule.dir_only and not is_dir) then
      local hit
      if rule.anchored then
        hit = match_segments(rule.segments, 1, segs, 1)
      else
        hit = segs[#segs] ~= nil and segs[#segs]:match(rule.segments[1]) ~= nil
      end
      if hit then result = not rule.negate end
    end
  end
  return result
end

return M
