-- prisn.cli.workload: what the commands that hand a script to the server
-- (`prisn run`, `prisn cron`, `prisn deploy`) share: the flags of `prisn
-- run`, declared once here, and the upload of the script's folder as a
-- bundle.
local errors = require("prisn.error")
local uv = require("luv")
local bundle = require("prisn.bundle")
local home = require("prisn.home")

local M = {}

-- The flags of `prisn run`, in the order its help lists them.
local RUN_FLAGS = {
  { name = "env", short = "e", type = "string", repeatable = true, placeholder = "KEY=VALUE",
    summary = "Set an environment variable for the script (wins over --env-file)" },
  { name = "env-file", type = "string", placeholder = "FILE", complete = "file",
    summary = "Read KEY=VALUE lines into the script's environment (format: docs/RUN.md)" },
  { name = "cwd", type = "string", placeholder = "DIR", complete = "dir",
    summary = "Run the script in DIR (default: the current directory)" },
  { name = "timeout", type = "duration", placeholder = "DURATION",
    summary = "Stop the script after this long (30s, 5m, 1h) and exit 124" },
  { name = "grace", type = "duration", placeholder = "DURATION", default = "10s",
    summary = "Time between SIGTERM and SIGKILL when stopping the script" },
  { name = "memory", type = "size", placeholder = "SIZE",
    summary = "Limit the script's memory (256M, 1G); over it the kernel kills it (oom_killed)" },
  { name = "cpu", type = "number", placeholder = "CORES",
    summary = "Limit the script to this many CPU cores (0.5, 2); it is slowed down, not killed" },
  { name = "pids", type = "int", placeholder = "N",
    summary = "Limit the number of processes and threads the script may have at once" },
  { name = "isolation", type = "int", placeholder = "LEVEL",
    summary = "Sandbox level: 0 none, 1 process (default where available), 2 filesystem, 3 network" },
  { name = "disk", type = "size", placeholder = "SIZE",
    summary = "Bound what the script may write (workspace, /tmp) to SIZE; needs isolation 2 or 3" },
  { name = "user", type = "string", placeholder = "NAME|UID",
    summary = "Run the script as this user (needs root); default: you" },
  { name = "runner", type = "string", placeholder = "NAME",
    complete = function(partial)
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
    end,
    summary = "Use this runner instead of detecting one ('prisn runner list')" },
  { name = "no-deps", type = "bool",
    summary = "Do not detect or install dependencies; run with the plain interpreter" },
  { name = "exec", type = "string", placeholder = "CODE",
    summary = "Run CODE instead of a script file (needs --runner)" },
  { name = "detach", short = "d", type = "bool",
    summary = "Hand the job to the server and print its id; follow it with 'prisn logs -f job/ID'" },
  { name = "secret", type = "string", repeatable = true, placeholder = "NAME",
    summary = "Give the script the keys of secret NAME as environment variables" },
}

--- All of `prisn run`'s flag declarations.
M.RUN_FLAGS = RUN_FLAGS

--- The declarations of `prisn run`'s flags named in `names`, in that order.
function M.run_flags(names)
  local by_name = {}
  for _, f in ipairs(RUN_FLAGS) do by_name[f.name] = f end
  local list = {}
  for i, name in ipairs(names) do list[i] = assert(by_name[name], name) end
  return list
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
-- --include paths. What is packed: prisn.bundle (docs/RUN.md).
function M.upload(c, dir, what, include)
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
