-- prisn.exec.deps.cache: what prisn.exec.deps.detect found for a script,
-- kept in $PRISN_HOME/cache/deps/ and reused while nothing the detection
-- read has changed. Detecting reads the script (and for Python scans its
-- imports) and looks for manifests in its folder and the folders above;
-- with the detectors' modules loaded it was most of what `prisn run` of a
-- .py file did before starting it (tests/bench/run-report.md).
--
-- An entry is keyed by everything the answer depends on besides files (the
-- manager, the script's path, the interpreter and its version, HOME, this
-- binary) and records every path the detection consulted through its ctx
-- (read_file, exists, is_dir) with its stamp: type, size, inode, mtime and
-- ctime, or its absence. A lookup stats those paths again: one stamp that
-- differs (a file edited, a requirements.txt created beside the script) and
-- the entry is not used. A file changed within the last RACY_SECONDS is not
-- recorded at all (file times tick in milliseconds: a second edit of the
-- same size in the same tick would look unchanged). Writing is best effort:
-- a cache that cannot be written only costs the detection next time.
--
--   local key = cache.key({ "python", script, interpreter, version, home })
--   local found = cache.lookup(home, key)
--   if not found then
--     local ctx2, consulted = cache.recording(ctx)
--     found = deps.detect(manager, script, ctx2)
--     if found then cache.store(home, key, consulted, found) end
--   end
local uv = require("luv")
local cjson = require("cjson")
local crypto = require("prisn.core.crypto")
local sys = require("prisn.core.sys")
local fs = require("prisn.fs")

local M = {}

-- Bump when a detector's answer for the same files changes.
M.FORMAT = 1
M.RACY_SECONDS = 2

--- The stamp of `path`: "none" when it does not exist; else its type, and
-- for a path whose content was read (`read`) its size, inode, mtime and
-- ctime too (a folder's times change with every file made in it: only its
-- existence is asked about).
function M.stamp(path, read)
  local st = uv.fs_stat(path)
  if not st then return "none" end
  if not read then return st.type end
  return string.format("%s:%d:%d:%d.%09d:%d.%09d", st.type, st.size, st.ino, st.mtime.sec, st.mtime.nsec,
    st.ctime.sec, st.ctime.nsec)
end

--- The key of an entry: a hash of `parts` (strings) and of this binary.
function M.key(parts)
  local all = { "format " .. M.FORMAT, tostring(sys.version), tostring(sys.commit), tostring(sys.build_date) }
  for _, p in ipairs(parts) do all[#all + 1] = tostring(p) end
  return crypto.to_hex(crypto.hash(table.concat(all, "\0"))):sub(1, 32)
end

--- The folder of the entries in `home`.
function M.dir(home)
  return home .. "/cache/deps"
end

local function entry_path(home, key)
  return M.dir(home) .. "/" .. key .. ".json"
end

--- The result stored under `key`, when every path it consulted still has
-- its stamp; nil otherwise.
function M.lookup(home, key)
  local text = fs.read_file(entry_path(home, key))
  if not text then return nil end
  local ok, entry = pcall(cjson.decode, text)
  if not ok or type(entry) ~= "table" or entry.format ~= M.FORMAT or type(entry.files) ~= "table"
    or type(entry.result) ~= "table" then
    return nil
  end
  for path, stamp in pairs(entry.files) do
    if type(stamp) ~= "string" or M.stamp(path, stamp:find(":", 1, true) ~= nil) ~= stamp then return nil end
  end
  return entry.result
end

--- A ctx that does what `ctx` does and notes every path asked about;
-- returns it and those paths (path -> true when its content was read,
-- false when only its existence or type was asked).
function M.recording(ctx)
  local consulted = {}
  local wrapped = {}
  for k, v in pairs(ctx) do wrapped[k] = v end
  for _, name in ipairs({ "read_file", "exists", "is_dir" }) do
    local fn = ctx[name]
    if fn then
      wrapped[name] = function(path, ...)
        consulted[path] = consulted[path] or name == "read_file"
        return fn(path, ...)
      end
    end
  end
  return wrapped, consulted
end

-- Whether a stamp's times are too recent to trust (see RACY_SECONDS).
local function racy(stamp, now)
  local mtime, ctime = stamp:match(":(%d+)%.%d+:(%d+)%.%d+$")
  if not mtime then return false end
  return now - tonumber(mtime) < M.RACY_SECONDS or now - tonumber(ctime) < M.RACY_SECONDS
end

--- Stores `result` under `key` with the stamps of the `consulted` paths.
-- Returns true when stored; false when a path changed too recently or the
-- entry could not be written. `now` (seconds) is for specs.
function M.store(home, key, consulted, result, now)
  now = now or os.time()
  local files = {}
  for path, read in pairs(consulted) do
    local stamp = M.stamp(path, read)
    if read and racy(stamp, now) then return false end
    files[path] = stamp
  end
  if not fs.mkdir_p(M.dir(home)) then return false end
  -- Renamed into place, not synced: an entry a power cut left torn does not
  -- decode, and is detected again.
  local path = entry_path(home, key)
  local tmp = string.format("%s.%d.tmp", path, uv.os_getpid())
  uv.fs_unlink(tmp)
  local fd = uv.fs_open(tmp, "wx", tonumber("600", 8))
  if not fd then return false end
  local ok = fs.write_all(fd, cjson.encode({ format = M.FORMAT, files = files, result = result }))
  uv.fs_close(fd)
  if ok then ok = uv.fs_rename(tmp, path) end
  if not ok then uv.fs_unlink(tmp) end
  return ok and true or false
end

return M
