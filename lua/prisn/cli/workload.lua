-- prisn.cli.workload: what the commands that hand a script to the server
-- (`prisn run`, `prisn cron`, `prisn deploy`) share: the flags of `prisn
-- run` (derived from the workload's fields, prisn.exec.workload), the check
-- of their values after parsing, and the upload of the script's folder as a
-- bundle.
local errors = require("prisn.error")
local bundle = require("prisn.bundle")
local fields = require("prisn.exec.workload")

local M = {}

-- Completion of --runner: the runners prisn knows, loaded only when asked.
local function complete_runner(partial)
  local names = {}
  local ok, runners = pcall(require, "prisn.exec.runners")
  if ok then
    local loaded = pcall(function()
      for _, r in ipairs(runners.names and runners.names() or {}) do names[#names + 1] = r end
    end)
    if not loaded then names = {} end
  end
  local matches = {}
  for _, n in ipairs(names) do
    if n:sub(1, #partial) == partial then matches[#matches + 1] = n end
  end
  return matches
end

-- The flags of `prisn run`, in the order its help lists them: declared with
-- the workload's fields (prisn.exec.workload), completion added here.
local RUN_FLAGS = {}
for i, name in ipairs(fields.flag_names()) do
  RUN_FLAGS[i] = fields.flag(name)
  if name == "runner" then RUN_FLAGS[i].complete = complete_runner end
end

--- All of `prisn run`'s flag declarations.
M.RUN_FLAGS = RUN_FLAGS

--- The declarations of the workload's flags named in `names`, in that
-- order: flags of `prisn run`, and of the fields of one kind of workload
-- (--port for deployments, --concurrency for cron jobs).
function M.run_flags(names)
  local by_name = {}
  for _, f in ipairs(RUN_FLAGS) do by_name[f.name] = f end
  local list = {}
  for i, name in ipairs(names) do list[i] = by_name[name] or fields.flag(name) end
  return list
end

--- Checks parsed flag values (flags as ctx.flags has them) of the fields
-- named in `names` ("timeout", "no_deps") by their declarations; raises a
-- usage error naming the flag, with the words the API and manifests use for
-- the same value.
function M.check_flags(flags, names)
  for _, name in ipairs(names) do
    local key = fields.field(name).flag.name:gsub("%-", "_")
    local _, problem = fields.normalize(name, flags[key])
    if problem then errors.usage(fields.message(problem, "flag")) end
  end
end

--- The declaration of the workload's flag `name` (see run_flags).
function M.flag(name)
  return M.run_flags({ name })[1]
end

--- Uploads folder `dir` through client `c` unless the server has it
-- (bundles are content-addressed); returns the bundle hash. `what` names
-- the workload for the hint ("a cron job's script").
function M.upload(c, dir, what)
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
