-- prisn.exec.runtime_dir: where a home keeps what only lives as long as its
-- services do — their output pipes (prisn.exec.instance.fifo_paths).
--
-- Why not $PRISN_HOME/run: a named pipe is an inode, and two are made for
-- every instance start. On a disk that costs 0.06-0.23 ms each (an ext4
-- without a journal skips the inodes freed in the last minutes, which on a
-- busy machine is most of a block group), on a tmpfs a few µs. So:
--
--   root     /run/prisn-HASH (a tmpfs on any systemd machine)
--   others   $PRISN_HOME/run, as before
--
-- Not $XDG_RUNTIME_DIR for others: a restarted server must find the same
-- directory to adopt its instances' pipes, and that variable depends on
-- how the server was started (a login shell, cron, a unit), and logind
-- removes the directory at the user's last logout.
--
-- HASH is that of the home's real path: two homes never share a directory,
-- and a restarted server (or data plane) finds the same one by the same
-- rule, so instances started before are adopted with their pipes. The
-- directory is made 0700 and checked on every use (a directory, not a
-- symlink, this user's, mode 0700): one someone else made is refused.
-- Pipes made by an older prisn in $PRISN_HOME/run are still found
-- (prisn.exec.instance looks there too), so an upgrade keeps its services'
-- output.
--
-- It knows nothing of deployments: callers add their own subdirectories.
local uv = require("luv")
local crypto = require("prisn.core.crypto")
local fs = require("prisn.fs")

local M = {}

M.MODE = tonumber("700", 8)
M.ROOT_BASE = "/run"
M.PREFIX = "prisn-" -- (is_runtime matches it)

-- Where runtime directories may go for this user, or nil (the home's run/).
local function base_dir(d)
  if d.uid ~= 0 then return nil end
  local st = d.uv.fs_lstat(M.ROOT_BASE)
  return st and st.type == "directory" and M.ROOT_BASE or nil
end

--- The runtime directory's path for `home` (not created, not checked), or
-- nil when this user has no base for one. deps (specs): { uid, uv }.
function M.path(home, deps)
  local d = { uid = deps and deps.uid or uv.getuid(), uv = deps and deps.uv or uv }
  local base = base_dir(d)
  if not base then return nil end
  local real = d.uv.fs_realpath(home) or home
  return base .. "/" .. M.PREFIX .. crypto.to_hex(crypto.hash(real)):sub(1, 16)
end

-- Makes `dir` 0700 when missing (exactly: the umask may only narrow it, and
-- a narrower one would be refused below), then checks it is ours.
local function ensure(dir, d)
  local st = d.uv.fs_lstat(dir)
  if not st then
    local ok, err, code = d.uv.fs_mkdir(dir, M.MODE)
    if not ok and code ~= "EEXIST" then return nil, err, code end
    if ok then d.uv.fs_chmod(dir, M.MODE) end
    st = d.uv.fs_lstat(dir)
    if not st then return nil, "ENOENT: " .. dir, "ENOENT" end
  end
  local mode = st.mode & tonumber("7777", 8)
  if st.type ~= "directory" or st.uid ~= d.uid or mode ~= M.MODE then
    return nil, string.format("%s is not prisn's own runtime directory (a %s, owner uid %d, mode %04o): "
      .. "refusing to use it", dir, st.type, st.uid, mode), "EACCES"
  end
  return dir
end

local known = {} -- home -> its runtime directory's path, or false (none)

--- The runtime directory of `home`, made and checked (see the header):
-- returns its path, or nil, message, code (EACCES: someone else's).
-- deps (specs): { uid, uv }; without them the path is worked out once
-- per home and process (the checks run on every call).
function M.ensure(home, deps)
  local d = { uid = deps and deps.uid or uv.getuid(), uv = deps and deps.uv or uv }
  local dir = not deps and known[home]
  if dir == nil or deps then
    dir = M.path(home, deps) or false
    if not deps then known[home] = dir end
  end
  if not dir then
    local own = home .. "/run"
    local ok, err, code = fs.mkdir_p(own, M.MODE)
    if not ok then return nil, err, code end
    return own
  end
  return ensure(dir, d)
end

--- Whether `dir` is a runtime directory made by this module (by its name):
-- such a directory is removed once it is empty.
function M.is_runtime(dir)
  return dir:match("/prisn%-%x+$") ~= nil
end

return M
