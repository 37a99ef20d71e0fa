-- prisn.exec.environment: the dependency environment of a run — which
-- interpreter really runs the script, what its metadata asks for
-- (prisn.exec.deps), and the cached environment that provides it
-- (prisn.exec.envcache), built once, as the workload's own user when the
-- workload is restricted (prisn.exec.install.confined).
--
-- Only runs whose runner has a dependency manager (python, node) come here:
-- prisn.exec.job loads this module when one does, so `prisn run` of a bash
-- script does not pay for loading the detectors and installers.
--
-- The detectors (prisn.exec.deps), the environment cache and the installers
-- are loaded when needed, not at the top: a script whose detection is cached
-- (prisn.exec.deps.cache) and needs nothing, a python hello world, loads
-- none of them (~0.7 ms of its start; tests/layers.lua lists these).
local uv = require("luv")
local errors = require("prisn.error")
local fs = require("prisn.fs")
local deps_cache = require("prisn.exec.deps.cache")
local group = require("prisn.exec.group")
local interpreter = require("prisn.exec.interpreter")
local runners = require("prisn.exec.runners")

local M = {}

local INSTALLERS = {
  python = "prisn.exec.install.python",
  node = "prisn.exec.install.node",
}

local function set_of(list)
  local set = {}
  for _, name in ipairs(list or {}) do set[name] = true end
  return set
end

-- Whether `path` lies under `root` once symlinks and ".." are resolved
-- (a path that does not exist does not).
local function inside(root, path)
  local real, real_root = uv.fs_realpath(path), uv.fs_realpath(root)
  return real ~= nil and real_root ~= nil and (real == real_root or real:sub(1, #real_root + 1) == real_root .. "/")
end

-- The real filesystem, as prisn.exec.deps wants it. With `confine` (a
-- folder), nothing outside it exists: a restricted workload's metadata
-- (`-r /etc/shadow` in its requirements.txt) cannot make prisn read the
-- server's files for it.
local function deps_context(home_dir, cwd, identity, confine)
  local function allowed(path) return not confine or inside(confine, path) end
  return {
    read_file = function(path) return allowed(path) and fs.read_file(path) or nil end,
    exists = function(path) return allowed(path) and uv.fs_stat(path) ~= nil end,
    is_dir = function(path)
      local st = allowed(path) and uv.fs_stat(path)
      return st and st.type == "directory" or false
    end,
    home = home_dir,
    cwd = cwd,
    stdlib = function() return set_of(identity.stdlib) end,
    builtins = function() return set_of(identity.builtins) end,
  }
end

-- The installers' own lines worth a word in the progress line, and how they
-- read there (pip's and npm's; the rest of their output is not shown).
local SUMMARIES = {
  { "^Collecting (%S+)", "collecting %s" },
  { "^Processing (%S+)", "processing %s" },
  { "^%s*Downloading (%S+)", "downloading %s" },
  { "^%s*Building wheel for (%S+)", "building %s" },
  { "^Installing collected packages: (.+)$", "installing %s" },
  { "^Successfully installed (.+)$", "installed %s" },
  { "^(added %d+ packages?.*)$", "%s" },
}

--- What line `line` of pip's or npm's output says, in a few words
-- ("collecting requests", "installing a, b"), or nil when it is not worth
-- showing. Paths are cut to their last part.
function M.summarize(line)
  for _, s in ipairs(SUMMARIES) do
    local what = line:match(s[1])
    if what then
      if what:find("/", 1, true) then what = what:match("([^/]+)/?$") or what end
      return string.format(s[2], what)
    end
  end
  return nil
end

-- The widest the progress line gets, so that it stays one terminal line.
M.PROGRESS_WIDTH = 100

--- Progress of an environment build on `stream` (default stderr), shown
-- only when `show` (a terminal, no -q): what is installed, then a line
-- rewriting itself with the elapsed time and what the installer does now
-- (summarize), then how long it took.
function M.progress_printer(show, source, stream)
  stream = stream or io.stderr
  local started, pending, line_shown = uv.hrtime(), "", false
  local function status(text)
    local line = string.format("prisn: %.1fs %s", (uv.hrtime() - started) / 1e9, text)
    stream:write("\r\27[K", line:sub(1, M.PROGRESS_WIDTH))
    stream:flush()
    line_shown = true
  end
  return function(event, info)
    if not show then return end
    if event == "waiting" then
      stream:write("prisn: waiting for another prisn building the same environment...\n")
    elseif event == "building" then
      started = uv.hrtime()
      local list = info.dependencies
      stream:write(string.format("prisn: installing %d dependenc%s from %s: %s\n", #list,
        #list == 1 and "y" or "ies", source, table.concat(list, ", ")))
      status("starting the installer")
    elseif event == "output" then
      pending = pending .. tostring(info.data)
      for line in pending:gmatch("([^\r\n]*)[\r\n]") do
        local text = M.summarize(line)
        if text then status(text) end
      end
      pending = pending:match("[^\r\n]*$")
    elseif event == "failed" then
      if line_shown then stream:write("\r\27[K") end
    elseif event == "built" then
      if line_shown then stream:write("\r\27[K") end
      stream:write(string.format("prisn: environment ready in %.1fs\n", (uv.hrtime() - started) / 1e9))
    end
  end
end

-- Who builds a restricted workload's dependencies, and what the build may
-- read (prisn.exec.envcache's builder): the workload's own user
-- (opts.build_as, never root), with its bundle, the interpreter's and npm's
-- prefixes and the local wheel folders of the server's own PIP_FIND_LINKS
-- readable. Only paths prisn or its operator chose: a kept path is bound back
-- past directories the user could not traverse, so a path the workload names
-- (its PIP_FIND_LINKS, an absolute --find-links) would hand it what those
-- directories protect. nil when there is no such user (prisn is not root).
local function restricted_builder(opts, identity, npm)
  local user = opts.build_as
  if type(user) ~= "table" or math.type(user.uid) ~= "integer" or user.uid == 0 then return nil end
  local prefix_of = interpreter.prefix_of
  local keep = { { path = opts.bundle_dir }, { path = prefix_of(identity.executable) },
    { path = prefix_of(identity.real_executable) }, { path = npm and prefix_of(uv.fs_realpath(npm) or npm) } }
  for dir in (os.getenv("PIP_FIND_LINKS") or ""):gmatch("%S+") do
    if dir:sub(1, 1) == "/" then keep[#keep + 1] = { path = dir } end
  end
  local list = {}
  for _, k in ipairs(keep) do if k.path then list[#list + 1] = k end end
  return { user = { uid = user.uid, gid = user.gid or user.uid }, keep = list }
end

--- What `opts.script` needs (prisn.exec.deps.detect), with the list
-- normalized for the environment's key (found.normalized): from
-- prisn.exec.deps.cache while nothing the detection read has changed,
-- detected (and kept) otherwise. A restricted workload's detection, confined
-- to its bundle, is never cached. Returns found or nil, message, code.
function M.detect(opts, manager, identity, script_dir)
  local confine = opts.restricted and (opts.bundle_dir or script_dir) or nil
  local ctx = deps_context(os.getenv("HOME"), opts.cwd, identity, confine)
  local key
  if not confine and opts.home then
    key = deps_cache.key({ manager, opts.script, identity.executable, identity.version, ctx.home })
    local found = deps_cache.lookup(opts.home, key)
    if found then return found end
  end
  local deps = require("prisn.exec.deps")
  local consulted
  if key then ctx, consulted = deps_cache.recording(ctx) end
  local found, err, code = deps.detect(manager, opts.script, ctx)
  if not found then return nil, err, code end
  found.normalized = #found.dependencies > 0 and deps.normalize(manager, found.dependencies) or nil
  if key then deps_cache.store(opts.home, key, consulted, found) end
  return found
end

--- Resolves the environment of `launch` (prisn.exec.job.prepare's, for
-- `runner` and `opts`): the real interpreter, the detected dependencies and
-- the cached environment applied to the launch. Recorded through `rec`;
-- fail(code, message, hint) reports a failure to start and raises.
function M.resolve(opts, runner, launch, rec, fail)
  local manager = runner.deps
  local path, env = launch.interpreter, launch.env
  local script_dir = opts.script and opts.script:match("^(.*)/[^/]*$") or opts.cwd
  local identity, err, icode2 = interpreter.identify(opts.home, path, manager, script_dir)
  if not identity then
    fail(icode2 or "EINTERPRETER", err, "check that " .. path .. " runs: " .. (runner.install_hint or ""))
  end
  -- Exec the real interpreter, not a version manager's shim in front of it.
  launch.interpreter = identity.executable
  -- A venv's bin/python is a symlink to this one: the sandbox of a
  -- workload switched to another user must keep its prefix reachable.
  launch.base_interpreter = identity.real_executable or identity.executable
  if opts.script and not opts.no_deps then
    local found, derr, dcode = M.detect(opts, manager, identity, script_dir)
    if not found then fail(dcode or "EDEPS", derr, "fix the dependency metadata, or run with --no-deps") end
    launch.deps_source = found.source
    rec.update({ deps_source = found.source })
    if #found.dependencies > 0 then
      local envcache = require("prisn.exec.envcache")
      local list = found.normalized or require("prisn.exec.deps").normalize(manager, found.dependencies)
      local key_parts = { table.unpack(list) }
      for _, o in ipairs(found.options or {}) do key_parts[#key_parts + 1] = "option:" .. o end
      if found.requires_python then key_parts[#key_parts + 1] = "requires-python:" .. found.requires_python end
      -- A restricted workload's own PATH does not choose the npm its build runs.
      local npm = manager == "node"
        and runners.which("npm", opts.restricted and os.getenv("PATH") or env.PATH, runners.system_probes()) or nil
      -- A restricted workload's environment is built by its own user,
      -- confined, into a cache entry of its namespace's own (building runs
      -- the packages' code); with no such user to build as, never.
      local builder
      if opts.restricted then
        key_parts[#key_parts + 1] = "restricted:" .. tostring(opts.restricted)
        builder = restricted_builder(opts, identity, npm)
      end
      local where = found.source .. (found.file and found.file ~= opts.script and (" (" .. found.file .. ")") or "")
      local show = M.progress_printer(opts.show_progress, where)
      local function progress(event, info)
        -- A build, or the wait for another prisn's, takes seconds: the job
        -- is on record first (a CLI run's creation waits for its start
        -- otherwise, see prisn.exec.job_record).
        if (event == "waiting" or event == "building") and rec.flush then rec.flush() end
        show(event, info)
      end
      local ok, env_dir, env_key = pcall(envcache.ensure, {
        builder = builder,
        cached_only = opts.restricted and not builder,
        home = opts.home,
        runner = runner.name,
        manager = manager,
        interpreter = identity,
        dependencies = list,
        key_parts = key_parts,
        options = found.options,
        source = where,
        env = group.env_list(env),
        npm = npm,
        progress = progress,
      })
      if not ok then
        progress("failed")
        rec.fail_to_start(errors.is(env_dir) and env_dir.message or tostring(env_dir))
        error(env_dir, 0)
      end
      launch.env_key = env_key
      launch.env_dir = env_dir
      rec.update({ env_key = env_key })
      require(INSTALLERS[manager]).apply(env_dir, launch)
    end
  end
end

return M
