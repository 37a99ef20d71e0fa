-- prisn.exec.deps.paths: what dependency detection shares between Python
-- and Node: the module sets a scan subtracts, lexical clean/join/dirname, and the list of
-- directories to search for a manifest, from the script's folder up to its
-- project root.
--
-- Lexical only: nothing here touches the filesystem except through the
-- caller's ctx.exists, so specs run against a fake tree. Symlinks are not
-- resolved; the caller passes real paths if that matters.
local M = {}

--- The set ctx hands over for a scan (stdlib module names, node builtins):
-- the set itself, or a function returning it, so that asking the
-- interpreter happens only when a scan needs the answer. Raises otherwise.
function M.module_set(value, what)
  if type(value) == "function" then value = value() end
  if type(value) ~= "table" then
    error("ctx." .. what .. " must be a set of module names (or a function returning one)", 0)
  end
  return value
end

--- "/a/./b//c/../d/" -> "/a/b/d". Relative paths stay relative ("x/../.." -> "..").
function M.clean(path)
  local absolute = path:sub(1, 1) == "/"
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." then
      if #parts > 0 and parts[#parts] ~= ".." then
        parts[#parts] = nil
      elseif not absolute then
        parts[#parts + 1] = ".."
      end
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  local joined = table.concat(parts, "/")
  if absolute then return "/" .. joined end
  return joined == "" and "." or joined
end

--- `rel` resolved against directory `dir` (an absolute `rel` stands alone).
function M.join(dir, rel)
  if rel:sub(1, 1) == "/" then return M.clean(rel) end
  return M.clean(dir .. "/" .. rel)
end

--- The directory holding `path`: "/a/b.py" -> "/a", "/b.py" -> "/".
function M.dirname(path)
  local clean = M.clean(path)
  if clean == "/" then return "/" end
  local dir = clean:match("^(.*)/[^/]*$")
  if dir == nil then return "." end
  return dir == "" and "/" or dir
end

--- The last component: "/a/b.py" -> "b.py".
function M.basename(path)
  return M.clean(path):match("([^/]*)$")
end

--- `path` made absolute against `cwd`; raises when that is impossible, since
-- walking up from a relative path would stop at the wrong place silently.
function M.absolute(path, cwd)
  if path:sub(1, 1) == "/" then return M.clean(path) end
  if type(cwd) ~= "string" or cwd:sub(1, 1) ~= "/" then
    error("script path '" .. path .. "' is relative and ctx.cwd is not an absolute path", 3)
  end
  return M.join(cwd, path)
end

local function has_marker(ctx, dir, markers)
  for _, name in ipairs(markers) do
    if ctx.exists(M.join(dir, name)) then return true end
  end
  return false
end

--- The directories to search for a manifest, nearest first: `start` itself,
-- then its parents until one that holds a project root marker (that one is
-- included). The user's home and "/" are never searched unless `start` is
-- one of them: a stray ~/requirements.txt must not apply to every script
-- under the home directory.
function M.search_dirs(ctx, start, markers)
  local home = ctx.home and M.clean(ctx.home)
  local dirs = { start }
  local dir = start
  while dir ~= home and not has_marker(ctx, dir, markers) do
    local parent = M.dirname(dir)
    if parent == dir or parent == "/" or parent == home then break end
    dirs[#dirs + 1] = parent
    dir = parent
  end
  return dirs
end

return M
