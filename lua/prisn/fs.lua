-- prisn.fs: the few filesystem routines prisn needs beyond luv's one-call
-- operations: mkdir -p, rm -rf, du, atomic writes, reading a whole file,
-- listing a directory.
--
-- Directories are listed with fs_opendir/readdir, never fs_scandir: the
-- lua-luv in Debian 12 (1.44.2) leaks every synchronous fs_scandir request
-- (luvit/luv#600), which a long-running server cannot afford. Every listing
-- in prisn goes through M.list_dir.
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

--- Writes all of `data` to descriptor `fd` (at its current position, or its
-- end when opened to append), however many writes it takes. Returns true or
-- nil, message, code.
function M.write_all(fd, data)
  local done = 0
  while done < #data do
    local n, err, code = uv.fs_write(fd, done == 0 and data or data:sub(done + 1), -1)
    if not n then return nil, err, code end
    done = done + n
  end
  return true
end

--- Writes `text` to `path` through a temporary file renamed into place, so a
-- reader never sees a half-written file. Returns true or nil, message, code.
-- The temporary file is created anew (O_EXCL, after removing a leftover of
-- that name): a symlink planted under its name, in a folder another user
-- wrote (a restricted build's), is replaced, never followed.
function M.write_atomic(path, text, mode)
  local tmp = string.format("%s.%d.tmp", path, uv.os_getpid())
  uv.fs_unlink(tmp)
  local fd, err, code = uv.fs_open(tmp, "wx", mode or tonumber("600", 8))
  if not fd then return nil, err, code end
  -- All of it: a short write (a disk filling up) must fail, not leave a
  -- truncated file renamed into place.
  local ok, werr, wcode = M.write_all(fd, text)
  if ok then ok, werr, wcode = uv.fs_fsync(fd) end
  uv.fs_close(fd)
  if ok then ok, werr, wcode = uv.fs_rename(tmp, path) end
  if not ok then
    uv.fs_unlink(tmp)
    return nil, werr, wcode
  end
  return true
end

--- Creates `path` and missing parents, each with `mode` (0700 by default)
-- less the umask; with `exact`, each one it creates gets exactly `mode`
-- (chmod after mkdir: a private tree must not depend on the caller's
-- umask). Returns true or nil, message, code.
function M.mkdir_p(path, mode, exact)
  mode = mode or tonumber("700", 8)
  local st = uv.fs_stat(path)
  if st then
    if st.type == "directory" then return true end
    return nil, "ENOTDIR: " .. path, "ENOTDIR"
  end
  local parent = path:match("^(.+)/[^/]+$")
  if parent and parent ~= "" then
    local ok, err, code = M.mkdir_p(parent, mode, exact)
    if not ok then return nil, err, code end
  end
  local ok, err, code = uv.fs_mkdir(path, mode)
  if not ok and code ~= "EEXIST" then return nil, err, code end
  if ok and exact then uv.fs_chmod(path, mode) end
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
  for _, entry in ipairs(M.list_dir(path)) do
    local ok, err, code = M.rm_rf(path .. "/" .. entry.name)
    if not ok then return nil, err, code end
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
  for _, entry in ipairs(M.list_dir(path)) do
    total = total + M.tree_size(path .. "/" .. entry.name)
  end
  return total
end

--- The entries of a directory, { name, type } sorted by name (type as
-- luv names it: "file", "directory", "link", ...), or an empty list and the
-- error when it cannot be read.
function M.list_dir(path)
  local entries = {}
  local dir, err = uv.fs_opendir(path, nil, 256)
  if not dir then return entries, err end
  while true do
    local batch = dir:readdir()
    if not batch then break end
    for _, e in ipairs(batch) do entries[#entries + 1] = { name = e.name, type = e.type } end
  end
  dir:closedir()
  table.sort(entries, function(a, b) return a.name < b.name end)
  return entries
end

return M
