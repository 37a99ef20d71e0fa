-- prisn.bundle: a script's folder as one content-addressed blob, for
-- `prisn run --detach`, `prisn cron` and `prisn deploy` to hand to a server.
--
-- Format: the line "prisn-bundle 1\n", then for each regular file, sorted by
-- path, a header line "F <mode octal> <size> <path>\n", the bytes, and "\n".
-- Sorted and without timestamps, the same folder always gives the same bytes,
-- so the same hash: uploading it again is a no-op.
--
-- What is packed: the script's folder (everything a script may import or
-- read beside it: sibling modules, templates, its dependency files), minus
-- what prisn.bundle.ignore's built-in list and the folder's .prisnignore
-- leave out, plus what the caller names in `include` (`--include PATH`,
-- which wins over both). Never packed, whatever the rules: a .git folder at
-- any depth, the client's own $PRISN_HOME (opts.skip) when it lies inside
-- the folder, and symlinks (their targets may lie outside the folder).
-- Too big a folder fails before anything is read, naming its biggest
-- entries, so the user knows what to list in .prisnignore. Unpacking
-- refuses absolute paths, "..", and anything beyond the size limits, so a
-- hostile bundle cannot write outside its directory.
local uv = require("luv")
local crypto = require("prisn.core.crypto")
local fs = require("prisn.fs")
local units = require("prisn.units")
local ignore = require("prisn.bundle.ignore")

local M = {}

M.MAGIC = "prisn-bundle 1\n"
M.MAX_BYTES = 20 * 1024 * 1024
M.MAX_FILES = 10000
M.IGNORE_FILE = ".prisnignore"

-- Whether `path` is `base` or lies below it (both relative, "/"-separated).
local function under(path, base)
  return path == base or path:sub(1, #base + 1) == base .. "/"
end

-- How the walk treats `rel`: "keep", "enter" (a left-out folder holding an
-- --include path: only that path is packed from it) or "skip".
local function decide(walk, rel, full, is_dir, parent_left_out)
  if is_dir and rel:match("[^/]+$") == ".git" then return "skip" end
  if is_dir and next(walk.skip) and walk.skip[uv.fs_realpath(full) or full] then return "skip" end
  for _, inc in ipairs(walk.include) do
    if under(rel, inc) then return "keep" end
  end
  if parent_left_out or ignore.ignored(walk.rules, rel, is_dir) then
    if is_dir then
      for _, inc in ipairs(walk.include) do
        if under(inc, rel) then return "enter" end
      end
    end
    return "skip"
  end
  return "keep"
end

-- Collects { path (relative), full, mode, size } of the files below dir
-- into walk.files, adding each file's size to walk.bytes and to its
-- top-level entry's walk.sizes. Returns false once there are more files
-- than a bundle may hold (the walk stops: the folder may be a whole disk).
local function collect(walk, dir, prefix, parent_left_out)
  for _, entry in ipairs(fs.list_dir(dir)) do
    local full = dir .. "/" .. entry.name
    local rel = prefix == "" and entry.name or (prefix .. "/" .. entry.name)
    local st = uv.fs_lstat(full)
    local kind = st and st.type
    if kind == "directory" or kind == "file" then
      local how = decide(walk, rel, full, kind == "directory", parent_left_out)
      if how ~= "skip" and kind == "directory" then
        if not collect(walk, full, rel, how == "enter") then return false end
      elseif how == "keep" then
        walk.files[#walk.files + 1] = { path = rel, full = full, mode = st.mode & tonumber("755", 8), size = st.size }
        walk.bytes = walk.bytes + st.size
        local top = rel:match("^[^/]+/") or rel
        walk.sizes[top] = (walk.sizes[top] or 0) + st.size
        if #walk.files > M.MAX_FILES then return false end
      end
    end
  end
  return true
end

-- "data/ (180M), model.bin (30M)": the biggest top-level entries.
local function biggest(sizes, n)
  local list = {}
  for name, size in pairs(sizes) do list[#list + 1] = { name = name, size = size } end
  table.sort(list, function(a, b)
    if a.size ~= b.size then return a.size > b.size end
    return a.name < b.name
  end)
  local parts = {}
  for i = 1, math.min(n, #list) do
    parts[i] = string.format("%s (%s)", list[i].name, units.format_size(list[i].size))
  end
  return table.concat(parts, ", ")
end

--- The files of folder `dir` that a bundle holds, sorted by path, as
-- { path, full, mode, size }, or nil, message when there are too many or
-- too big ones (the message names the five biggest entries). opts.include
-- lists paths relative to dir packed whatever the rules say; opts.skip
-- lists absolute paths never packed (the client's $PRISN_HOME).
function M.files(dir, opts)
  opts = opts or {}
  local rules = ignore.parse(ignore.BUILTIN)
  ignore.parse(fs.read_file(dir .. "/" .. M.IGNORE_FILE), rules)
  local walk = { files = {}, bytes = 0, sizes = {}, rules = rules, include = opts.include or {}, skip = {} }
  for _, path in ipairs(opts.skip or {}) do walk.skip[uv.fs_realpath(path) or path] = true end
  local within = collect(walk, dir, "", false)
  if not within or walk.bytes > M.MAX_BYTES then
    local what = within and string.format("%s of files, over the %s limit", units.format_size(walk.bytes),
      units.format_size(M.MAX_BYTES)) or string.format("more than %d files", M.MAX_FILES)
    return nil, string.format("%s holds %s; the biggest entries: %s", dir, what, biggest(walk.sizes, 5))
  end
  table.sort(walk.files, function(a, b) return a.path < b.path end)
  return walk.files
end

--- Packs the folder `dir` (what M.files lists). Returns data, hash (hex),
-- { files, bytes } or nil, message.
function M.pack(dir, opts)
  local files, err = M.files(dir, opts)
  if not files then return nil, err end
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
