-- prisn.home: where prisn keeps its state ($PRISN_HOME).
--
-- PRISN_HOME wins; otherwise root uses /var/lib/prisn and anyone else
-- ~/.prisn. The directory is created 0700 on first use because it will hold
-- tokens, keys and logs. An existing directory is never chmod-ed behind the
-- user's back (PRISN_HOME=/tmp must not change /tmp); `prisn doctor` reports
-- one that is too open.
local uv = require("luv")
local errors = require("prisn.error")
local fs = require("prisn.fs")

local M = {}

M.MODE = tonumber("700", 8)

--- This process's environment, as a list of "NAME=value" for a prisn it
-- starts (the server, the job host, a runner, a hook), with PRISN_HOME
-- pinned to `home`.
function M.child_env(home)
  local env = {}
  for k, v in pairs(uv.os_environ()) do
    if k ~= "PRISN_HOME" then env[#env + 1] = k .. "=" .. v end
  end
  if home then env[#env + 1] = "PRISN_HOME=" .. home end
  return env
end

--- The hint for a failure (`code`) to write something under PRISN_HOME:
-- free space for a full disk, else who may write there.
function M.write_hint(code)
  if code == "ENOSPC" or code == "EDQUOT" or code == "SQLITE_FULL" then
    return "free some disk space where PRISN_HOME lives ('prisn env prune' removes unused environments)"
  end
  return "check that you own PRISN_HOME and may write to it ('prisn doctor' checks it)"
end

--- The state directory's path (not created).
function M.path(env)
  env = env or os.getenv
  local explicit = env("PRISN_HOME")
  if explicit and explicit ~= "" then return explicit end
  if uv.getuid() == 0 then return "/var/lib/prisn" end
  local home = env("HOME")
  if not home or home == "" then
    local passwd = uv.os_get_passwd()
    home = passwd and passwd.homedir
  end
  if not home or home == "" then
    errors.raise("no_home", "cannot tell where to keep prisn's state: HOME is not set",
      { hint = "set PRISN_HOME to a directory prisn may use" })
  end
  return home .. "/.prisn"
end

-- The parents (mode 0755, as mkdir(1) would make them), then the directory
-- itself with `mode`.
local function make_dirs(path, mode)
  local parent = path:match("^(.+)/[^/]+$")
  if parent and parent ~= "" then
    local ok, err, code = fs.mkdir_p(parent, tonumber("755", 8))
    if not ok then return nil, err, code end
  end
  return fs.mkdir_p(path, mode)
end

--- Ensures the state directory exists (created 0700) and returns its path.
-- Raises a prisn.error when it cannot be created or is not a directory.
function M.ensure(env)
  local path = M.path(env)
  local st = uv.fs_stat(path)
  if st then
    if st.type ~= "directory" then
      errors.raise("ENOTDIR", string.format("PRISN_HOME %s is not a directory", path),
        { hint = "point PRISN_HOME at a directory, or remove the file" })
    end
    return path
  end
  local ok, err, code = make_dirs(path, M.MODE)
  if not ok then
    errors.raise(code or "EIO", string.format("cannot create PRISN_HOME %s: %s", path, err),
      { hint = "set PRISN_HOME to a directory you can write, or fix the permissions" })
  end
  -- mkdir honours the umask, which can only narrow 0700; make it exact.
  uv.fs_chmod(path, M.MODE)
  return path
end

return M
