-- prisn.cli.workload: what the commands that hand a script to the server
-- (`prisn run`, `prisn cron`, `prisn deploy`) share: the flags of `prisn
-- run` (derived from the workload's fields, prisn.exec.workload), the check
-- of their values after parsing, and the upload of the script's folder as a
-- bundle.
local errors = require("prisn.error")
local uv = require("luv")
local fields = require("prisn.exec.workload")
local home = require("prisn.home")

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

-- --include, for the commands that upload a script's folder (added to the
-- run flags, so cron and deploy name it in their lists).
M.INCLUDE_FLAG = { name = "include", type = "string", repeatable = true, placeholder = "PATH", complete = "file",
  summary = "Upload PATH with the script's folder although .prisnignore or the built-in list leaves it out" }
RUN_FLAGS[#RUN_FLAGS + 1] = M.INCLUDE_FLAG

-- The --include paths as bundle.pack wants them: relative to `dir`. A path
-- given on the command line is relative to the current directory.
local function relative_includes(dir, paths)
  local real_dir = uv.fs_realpath(dir) or dir
  local list = {}
  for _, path in ipairs(paths or {}) do
    local real = uv.fs_realpath(path)
    if not real then
      errors.usage("--include " .. path .. ": no such file or folder", "give a path inside " .. dir)
    end
    if real == real_dir then
      errors.usage("--include " .. path .. " is the script's folder itself", "name a path inside it")
    end
    if real:sub(1, #real_dir + 1) ~= real_dir .. "/" then
      errors.usage("--include " .. path .. " is outside the script's folder " .. dir,
        "only files below the script's folder are uploaded; move it there")
    end
    list[#list + 1] = real:sub(#real_dir + 2)
  end
  return list
end

--- Uploads folder `dir` through client `c` unless the server has it
-- (bundles are content-addressed); returns the bundle hash. `what` names
-- the workload for the hint ("a cron job's script"); `include` lists the
-- --include paths. What is packed: prisn.bundle (docs/RUN.md), loaded
-- here: `prisn run` declares its flags with this module and a local run
-- uploads nothing (the packer and its ignore rules: ~0.05 ms).
function M.upload(c, dir, what, include)
  local bundle = require("prisn.bundle")
  local ok_home, prisn_home = pcall(home.path)
  local blob, hash = bundle.pack(dir, { include = relative_includes(dir, include),
    skip = { ok_home and prisn_home or nil } })
  if not blob then
    errors.raise("EBUNDLE", "cannot pack " .. what .. ": " .. hash,
      { hint = "list what the script does not need in " .. dir .. "/" .. bundle.IGNORE_FILE
        .. " (lines like .gitignore's, e.g. data/); see docs/RUN.md" })
  end
  if not pcall(c.request, c, "GET", "/api/v1/bundles/" .. hash) then
    c:request_raw("PUT", "/api/v1/bundles/" .. hash, blob)
  end
  return hash
end

return M
