-- prisn.bundle: a script's folder as one content-addressed blob, for
-- `prisn run --detach` (and later `prisn deploy`) to hand to a server.
--
-- Format: the line "prisn-bundle 1\n", then for each regular file, sorted by
-- path, a header line "F <mode octal> <size> <path>\n", the bytes, and "\n".
-- Sorted and without timestamps, the same folder always gives the same bytes,
-- so the same hash: uploading it again is a no-op.
--
-- Packing skips what is never part of a script's source: .git, version
-- control and editor leftovers, node_modules, virtualenvs, __pycache__,
-- *.pyc. Symlinks are skipped too (their targets may lie outside the
-- folder). Unpacking refuses absolute paths, "..", and anything beyond the
-- size limits, so a hostile bundle cannot write outside its directory.
local uv = require("luv")
local crypto = require("prisn.core.crypto")
local fs = require("prisn.fs")

local M = {}

M.MAGIC = "prisn-bundle 1\n"
M.MAX_BYTES = 20 * 1024 * 1024
M.MAX_FILES = 10000

local SKIP_DIRS = { [".git"] = true, [".hg"] = true, [".svn"] = true, node_modules = true,
  __pycache__ = true, [".venv"] = true, venv = true, [".mypy_cache"] = true, [".pytest_cache"] = true,
  [".tox"] = true, [".idea"] = true, [".vscode"] = true }
local SKIP_FILES = { "%.pyc$", "%.pyo$", "^%.DS_Store$", "%.swp$", "~$" }

local function skipped_file(name)
  for _, pattern in ipairs(SKIP_FILES) do
    if name:match(pattern) then return true end
  end
  return false
end

-- Collects { path (relative), full, mode, size } of the files below dir.
local function collect(dir, prefix, out, limits)
  for _, entry in ipairs(fs.list_dir(dir)) do
    local full = dir .. "/" .. entry.name
    local rel = prefix == "" and entry.name or (prefix .. "/" .. entry.name)
    local st = uv.fs_lstat(full)
    if st and st.type == "directory" and not SKIP_DIRS[entry.name] then
      local ok, err = collect(full, rel, out, limits)
      if not ok then return nil, err end
    elseif st and st.type == "file" and not skipped_file(entry.name) then
      out[#out + 1] = { path = rel, full = full, mode = st.mode & tonumber("755", 8), size = st.size }
      limits.bytes = limits.bytes + st.size
      if #out > M.MAX_FILES then
        return nil, string.format("%s holds more than %d files", limits.root, M.MAX_FILES)
      end
      if limits.bytes > M.MAX_BYTES then
        return nil, string.format("%s holds more than %d MB of files", limits.root, M.MAX_BYTES // (1024 * 1024))
      end
    end
  end
  return true
end

--- Packs the folder `dir`. Returns data, hash (hex), { files, bytes } or
-- nil, message.
function M.pack(dir)
  local files = {}
  local ok, err = collect(dir, "", files, { bytes = 0, root = dir })
  if not ok then return nil, err end
  table.sort(files, function(a, b) return a.path < b.path end)
  local parts = { M.MAGIC }
  local total = 0
  for _, f in ipairs(files) do
    local data, rerr = fs.read_file(f.full)
    if not data then return nil, "cannot read " .. f.full .. ": " .. tostring(rerr) end
    parts[#parts + 1] = string.format("F %o %d %s\n", f.mode, #data, f.path)
    parts[#parts + 1] = data
    parts[#parts + 1] = "\n"
    total = total + #data
  end
  local blob = table.concat(parts)
  return blob, M.hash(blob), { files = #files, bytes = total }
end

--- Where the server keeps bundle `hash` in `home` (nil for a malformed hash).
function M.dir(home, hash)
  if type(hash) ~= "string" or #hash ~= 64 or not hash:match("^%x+$") then return nil end
  return home .. "/bundles/" .. hash:lower()
end

--- The content address of a bundle: hex BLAKE2b-256.
function M.hash(blob)
  return crypto.to_hex(crypto.hash(blob))
end

local function safe_path(path)
  if path == "" or path:sub(1, 1) == "/" or path:find("\0", 1, true) then return false end
  for part in path:gmatch("[^/]+") do
    if part == ".." or part == "." then return false end
  end
  return not path:find("//", 1, true)
end

--- Unpacks `blob` into `dest` (created). Returns the number of files, or
-- nil, message for a malformed or hostile bundle, or nil, message, code
-- (ENOSPC, EIO, ...) when a file cannot be written whole.
function M.unpack(blob, dest)
  if blob:sub(1, #M.MAGIC) ~= M.MAGIC then return nil, "not a prisn bundle" end
  local pos, count = #M.MAGIC + 1, 0
  local ok, err, code = fs.mkdir_p(dest, tonumber("755", 8))
  if not ok then return nil, err, code or "EIO" end
  while pos <= #blob do
    local mode, size, path, body = blob:match("^F (%d+) (%d+) ([^\n]+)\n()", pos)
    if not mode then return nil, "malformed bundle entry at byte " .. pos end
    size = tonumber(size)
    if not safe_path(path) then return nil, "unsafe path in bundle: " .. path end
    if body + size > #blob + 1 or blob:sub(body + size, body + size) ~= "\n" then
      return nil, "truncated bundle entry: " .. path
    end
    count = count + 1
    if count > M.MAX_FILES then return nil, "too many files in bundle" end
    local full = dest .. "/" .. path
    local parent = full:match("^(.*)/[^/]+$")
    ok, err, code = fs.mkdir_p(parent, tonumber("755", 8))
    if not ok then return nil, err, code or "EIO" end
    local fd, oerr, ocode = uv.fs_open(full, "w", tonumber(mode, 8) & tonumber("755", 8) | tonumber("400", 8))
    if not fd then return nil, "cannot write " .. path .. ": " .. tostring(oerr), ocode or "EIO" end
    local written, werr, wcode = fs.write_all(fd, blob:sub(body, body + size - 1))
    uv.fs_close(fd)
    if not written then return nil, "cannot write " .. path .. ": " .. tostring(werr), wcode or "EIO" end
    pos = body + size + 1
  end
  return count
end

return M
