-- prisn.fs: the few filesystem routines prisn needs beyond luv's one-call
-- operations: mkdir -p, rm -rf, du, atomic writes, reading a whole file.
--
-- All synchronous (luv's fs calls without callbacks): they touch prisn's own
-- small trees under $PRISN_HOME, never a workload's data.
local uv = require("luv")

local M = {}

--- Reads a whole file; returns its content or nil, message, code.
function M.read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err, "ENOENT" end
  local text = f:read("a")
  f:close()
  return text
end

--- Writes `text` to `path` through a temporary file renamed into place, so a
-- reader never sees a half-written file. Returns true or nil, message, code.
function M.write_atomic(path, text, mode)
  local tmp = string.format("%s.%d.tmp", path, uv.os_getpid())
  local fd, err, code = uv.fs_open(tmp, "w", mode or tonumber("600", 8))
  if not fd then return nil, err, code end
  local ok, werr, wcode = uv.fs_write(fd, text, 0)
  if ok then ok, werr, wcode = uv.fs_fsync(fd) end
  uv.fs_close(fd)
  if ok then ok, werr, wcode = uv.fs_rename(tmp, path) end
  if not ok then
    uv.fs_unlink(tmp)
    return nil, werr, wcode
  end
  return true
end

--- Creates `path` and missing parents. Returns true or nil, message, code.
function M.mkdir_p(path, mode)
  mode = mode or tonumber("700", 8)
  local st = uv.fs_stat(path)
  if st then
    if st.type == "directory" then return true end
    return nil, "ENOTDIR: " .. path, "ENOTDIR"
  end
  local parent = path:match("^(.+)/[^/]+$")
  if parent and parent ~= "" then
    local ok, err, code = M.mkdir_p(parent, mode)
    if not ok then return nil, err, code end
  end
  local ok, err, code = uv.fs_mkdir(path, mode)
  if not ok and code ~= "EEXIST" then return nil, err, code end
  return true
end

--- Removes `path` and everything below it; symlinks are removed, not
-- followed. A missing path is fine. Returns true or nil, message, code.
function M.rm_rf(path)
  local st = uv.fs_lstat(path)
  if not st then return true end
  if st.type ~= "directory" then
    local ok, err, code = uv.fs_unlink(path)
    if not ok and code ~= "ENOENT" then return nil, err, code end
    return true
  end
  local scanner = uv.fs_scandir(path)
  if scanner then
    while true do
      local name = uv.fs_scandir_next(scanner)
      if not name then break end
      local ok, err, code = M.rm_rf(path .. "/" .. name)
      if not ok then return nil, err, code end
    end
  end
  local ok, err, code = uv.fs_rmdir(path)
  if not ok and code ~= "ENOENT" then return nil, err, code end
  return true
end

--- Total size in bytes of the regular files below `path` (like du -sb).
function M.tree_size(path)
  local st = uv.fs_lstat(path)
  if not st then return 0 end
  if st.type ~= "directory" then return st.type == "file" and st.size or 0 end
  local total = 0
  local scanner = uv.fs_scandir(path)
  if scanner then
    while true do
      local name = uv.fs_scandir_next(scanner)
      if not name then break end
      total = total + M.tree_size(path .. "/" .. name)
    end
  end
  return total
end

--- Names in a directory (sorted), or an empty list when it does not exist.
function M.list_dir(path)
  local names = {}
  local scanner = uv.fs_scandir(path)
  if not scanner then return names end
  while true do
    local name, kind = uv.fs_scandir_next(scanner)
    if not name then break end
    names[#names + 1] = { name = name, type = kind }
  end
  table.sort(names, function(a, b) return a.name < b.name end)
  return names
end

return M
