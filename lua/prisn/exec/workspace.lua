-- prisn.exec.workspace: the working folder of a server job at isolation
-- level 2 or 3, $PRISN_HOME/work/<id>: a folder of its own, made before the
-- job starts (owned by the workload's user) and removed when it ends, so a
-- job sees neither its bundle's folder nor what another job left behind.
-- With --disk it is not made on the host at all: the job gets a fresh tmpfs
-- at that path (prisn.exec.isolation). Below level 2 a job runs in its
-- bundle's folder and has no workspace.
local uv = require("luv")
local errors = require("prisn.error")
local fs = require("prisn.fs")
local write_hint = require("prisn.home").write_hint

local M = {}

--- The workspace of server job `id` of `home` (`spec`: its isolation and
-- disk), made and handed to `user` ({ uid, gid }, nil: prisn's own user)
-- when the job needs one on the host; its path, or nil below level 2.
-- Raises a prisn.error naming the job and the path when it cannot be made.
function M.make(home, id, spec, user)
  local level = math.tointeger(spec.isolation)
  if not level or level < 2 then return nil end
  local path = home .. "/work/" .. id
  if spec.disk then return path end
  local function fail(what, err, code)
    errors.raise(code or "EIO", string.format("cannot %s the workspace of job %s (%s): %s", what, id, path,
      tostring(err)), { hint = write_hint(code) })
  end
  uv.fs_mkdir(home .. "/work", tonumber("711", 8))
  local ok, err, code = uv.fs_mkdir(path, tonumber("700", 8))
  if not ok and code == "EEXIST" then
    -- Left by an earlier attempt at this job whose runner did not clean up
    -- (killed with the server): the job starts in a fresh one.
    local removed, rerr, rcode = fs.rm_rf(path)
    if not removed then fail("clear the leftover", rerr, rcode) end
    ok, err, code = uv.fs_mkdir(path, tonumber("700", 8))
  end
  if not ok then fail("create", err, code) end
  if user then
    ok, err, code = uv.fs_chown(path, user.uid, user.gid)
    if not ok then fail("hand over", err, code) end
  end
  return path
end

--- Removes a workspace M.make returned, with what the job left in it.
function M.remove(path)
  return fs.rm_rf(path)
end

return M
