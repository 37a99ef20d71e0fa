-- prisn.cli.workload: what the commands that hand a script to the server
-- (`prisn cron`, `prisn deploy`) share with `prisn run`: its flags, declared
-- once in run.lua, and the upload of the script's folder as a bundle.
local errors = require("prisn.error")

local M = {}

--- The declarations of `prisn run`'s flags named in `names`, in that order.
function M.run_flags(names)
  local by_name = {}
  for _, f in ipairs(require("prisn.cli.commands.run")[1].flags) do by_name[f.name] = f end
  local list = {}
  for i, name in ipairs(names) do list[i] = assert(by_name[name], name) end
  return list
end

--- Uploads folder `dir` through client `c` unless the server has it
-- (bundles are content-addressed); returns the bundle hash. `what` names
-- the workload for the hint ("a cron job's script").
function M.upload(c, dir, what)
  local bundle = require("prisn.bundle")
  local blob, hash = bundle.pack(dir)
  if not blob then
    errors.raise("EBUNDLE", "cannot pack " .. dir .. ": " .. hash,
      { hint = "keep " .. what .. " in a folder of its own, under 20 MB" })
  end
  if not pcall(c.request, c, "GET", "/api/v1/bundles/" .. hash) then
    c:request_raw("PUT", "/api/v1/bundles/" .. hash, blob)
  end
  return hash
end

return M
