-- prisn.exec.runners: which program runs a script, and with what command line.
--
-- A runner is a table (see docs/RUNNERS.md and prisn.exec.runners.format):
-- the built-ins live in runners/*.lua (embedded as prisn.runners.<name>), the
-- operator's in $PRISN_HOME/runners/*.lua, loaded in a sandbox. An operator
-- runner with a built-in's name replaces it.
--
--   local registry = runners.load()
--   local runner, via = runners.detect(registry, "/srv/job.py")
--   local path = runners.resolve_interpreter(runner)
--   local argv = runners.command(runner, { script = "/srv/job.py", args = {}, interpreter = path })
--
-- Failures follow the core's convention plus a hint: nil, message, code, hint.
-- The filesystem and PATH are reached through a probe table (system_probes)
-- so specs run everything here against fakes.
local format = require("prisn.exec.runners.format")
local sandbox = require("prisn.sandbox")
local suggest = require("prisn.suggest")
local uv = require("luv")
local fs = require("prisn.fs")
local homes = require("prisn.home")

local M = {}

--- The built-in runners, by module name under prisn.runners.
M.BUILTINS = { "bash", "bun", "deno", "lua", "node", "perl", "php", "python3", "ruby", "sh" }

M.DOCS = "docs/RUNNERS.md"

--- The real machine: file reads, directory listing, executability, PATH.
function M.system_probes()
  local probes = {}
  probes.read_file = fs.read_file
  function probes.read_first_line(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local head = f:read(512) or ""
    f:close()
    return head:match("^[^\n]*")
  end
  function probes.list_dir(path)
    local entries, err = fs.list_dir(path)
    if err then return nil end
    local names = {}
    for i, e in ipairs(entries) do names[i] = e.name end
    return names
  end
  function probes.executable(path)
    local st = uv.fs_stat(path)
    return st ~= nil and st.type == "file" and uv.fs_access(path, "X") == true
  end
  function probes.exepath() return uv.exepath() end
  function probes.getenv(name) return os.getenv(name) end
  return probes
end

-- Registry ---------------------------------------------------------------

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- The string items of a possibly malformed list, for a broken file's claims.
local function strings_of(list)
  local out = {}
  if type(list) ~= "table" then return out end
  for _, v in ipairs(list) do
    if type(v) == "string" then out[#out + 1] = v end
  end
  return out
end

--- Loads and checks one operator runner file. Returns the runner, or nil, a
-- message starting with the file ("<file>: runner.extensions[2]: expected a
-- string, got number" or "<file>:3: syntax error..."), a code, and the
-- table the file returned (when it returned one) so its claims can be seen.
function M.load_file(path, probes, budget)
  probes = probes or M.system_probes()
  local text, err = probes.read_file(path)
  if not text then return nil, "cannot read " .. tostring(err), "ENOENT" end
  local def, load_err = sandbox.load(text, path, budget)
  if load_err then return nil, load_err, "invalid_runner" end
  if type(def) ~= "table" then
    return nil, string.format("%s: runner: expected the file to return a table, got %s", path, type(def)),
      "invalid_runner"
  end
  local ok, check_err = format.check(def, path)
  if not ok then return nil, path .. ": " .. check_err, "invalid_runner", def end
  return def
end

--- Builds the registry: the built-ins plus the operator runners in
-- `<home>/runners`. opts: `home` (default $PRISN_HOME), `probes`, `budget`,
-- `builtins` (a list of runner tables instead of the embedded ones).
--
-- Returns { runners = {name -> runner}, sources = {name -> "built-in" | file},
-- errors = { {file, name, message} }, broken = {name -> entry}, dir }. A bad
-- operator file is skipped and recorded in `errors`; a script that it would
-- have run (by name, or by the claims it makes) fails with its message.
function M.load(opts)
  opts = opts or {}
  local probes = opts.probes or M.system_probes()
  local home = opts.home or homes.path(probes.getenv)
  local registry = { runners = {}, sources = {}, errors = {}, broken = {}, dir = home .. "/runners" }
  local builtins = opts.builtins
  if not builtins then
    builtins = {}
    for i, name in ipairs(M.BUILTINS) do builtins[i] = require("prisn.runners." .. name) end
  end
  for _, def in ipairs(builtins) do
    -- The embedded runners never change: the test suite checks every one
    -- (spec/prisn/runners_spec.lua), as it does the CLI's declarations, and
    -- checking them again on every start was 0.3-0.45 ms of each `prisn
    -- run`. Runners given in opts.builtins are checked.
    if opts.builtins then
      local ok, err = format.check(def)
      if not ok then error("bad built-in runner " .. tostring(def.name) .. ": " .. err, 0) end
    end
    registry.runners[def.name] = def
    registry.sources[def.name] = "built-in"
  end
  local names = probes.list_dir(registry.dir) or {}
  table.sort(names)
  for _, file in ipairs(names) do
    local stem = file:match("^(.+)%.lua$")
    if stem then
      local path = registry.dir .. "/" .. file
      local def, err, _, raw = M.load_file(path, probes, opts.budget)
      if def then
        registry.runners[def.name] = def
        registry.sources[def.name] = path
      else
        local builtin = registry.sources[stem] == "built-in" and registry.runners[stem] or {}
        raw = type(raw) == "table" and raw or {}
        local entry = {
          name = stem, file = path, message = err, broken = true,
          extensions = strings_of(raw.extensions or builtin.extensions),
          shebangs = strings_of(raw.shebangs or builtin.shebangs),
        }
        registry.errors[#registry.errors + 1] = { file = path, name = stem, message = err }
        -- A broken replacement blocks the built-in: running the built-in
        -- instead would hide the operator's mistake.
        registry.runners[stem], registry.sources[stem] = nil, nil
        registry.broken[stem] = entry
      end
    end
  end
  return registry
end

--- The runners in `registry`, sorted by name.
function M.list(registry)
  local list = {}
  for _, name in ipairs(sorted_keys(registry.runners)) do list[#list + 1] = registry.runners[name] end
  return list
end

--- Names of the usable runners, sorted (of a freshly loaded registry when
-- none is given, e.g. for completion).
function M.names(registry)
  return sorted_keys((registry or M.load()).runners)
end

-- "Known runners: bash, lua, ...; <how> as <dir>/NAME.lua (see docs/RUNNERS.md)"
local function known_hint(registry, how)
  return string.format("Known runners: %s; %s as %s/NAME.lua (see %s)",
    table.concat(M.names(registry), ", "), how, registry.dir, M.DOCS)
end

local function broken_error(entry)
  return nil, string.format("runner '%s' is invalid: %s", entry.name, entry.message), "invalid_runner",
    string.format("fix %s; 'prisn runner check %s' shows what is wrong (see %s)", entry.file, entry.file, M.DOCS)
end

--- The runner called `name`. Returns it, or nil, message, code, hint.
function M.get(registry, name)
  local runner = registry.runners[name]
  if runner then return runner end
  if registry.broken[name] then return broken_error(registry.broken[name]) end
  local hint = known_hint(registry, "add one")
  local mean = suggest.did_you_mean(name, M.names(registry))
  if mean then hint = mean .. " " .. hint end
  return nil, string.format("unknown runner '%s'", name), "unknown_runner", hint
end

-- Detection --------------------------------------------------------------

--- Parses a shebang line. Returns { program, name, args } — `program` the
-- interpreter as written (absolute, or a bare name for `env` to look up),
-- `name` its basename, `args` its arguments — or nil when `line` is not a
-- usable shebang. With /usr/bin/env, options (-S, -i, -u NAME) and NAME=VALUE
-- assignments are skipped and the rest is split on spaces, as `env -S` does;
-- otherwise everything after the program is one argument, as the kernel
-- passes it.
function M.parse_shebang(line)
  if type(line) ~= "string" then return nil end
  local rest = line:match("^#!%s*(.-)%s*\r?$")
  if not rest or rest == "" then return nil end
  local program, tail = rest:match("^(%S+)%s*(.*)$")
  local base = program:match("([^/]+)$")
  if base ~= "env" then
    return { program = program, name = base, args = tail ~= "" and { tail } or {} }
  end
  local words = {}
  for w in tail:gmatch("%S+") do words[#words + 1] = w end
  local i = 1
  while words[i] do
    local w = words[i]
    if w == "-u" or w == "--unset" or w == "-C" or w == "--chdir" then
      i = i + 2
    elseif w:sub(1, 1) == "-" or w:find("=", 1, true) then
      i = i + 1
    else
      break
    end
  end
  if not words[i] then return nil end
  local interp = words[i]
  return { program = interp, name = interp:match("([^/]+)$"), args = { table.unpack(words, i + 1) } }
end

-- Runners in the order their claims are consulted: operator runners first
-- (sorted by name), then the built-ins; broken operator files take part so a
-- script they claim fails with their error.
local function claimants(registry)
  local operators, builtins = {}, {}
  for _, name in ipairs(sorted_keys(registry.runners)) do
    local list = registry.sources[name] == "built-in" and builtins or operators
    list[#list + 1] = registry.runners[name]
  end
  for _, name in ipairs(sorted_keys(registry.broken)) do operators[#operators + 1] = registry.broken[name] end
  table.sort(operators, function(a, b) return a.name < b.name end)
  for _, r in ipairs(builtins) do operators[#operators + 1] = r end
  return operators
end

local function by_shebang(registry, name)
  for _, runner in ipairs(claimants(registry)) do
    for _, p in ipairs(runner.shebangs or {}) do
      if format.shebang_matches(p, name) then return runner end
    end
  end
  return nil
end

local function by_extension(registry, base)
  local lower = base:lower()
  local best, best_len = nil, 0
  for _, runner in ipairs(claimants(registry)) do
    for _, ext in ipairs(runner.extensions or {}) do
      ext = ext:lower()
      if #ext > best_len and #lower > #ext and lower:sub(-#ext) == ext then
        best, best_len = runner, #ext
      end
    end
  end
  return best
end

--- A runner for a script whose shebang names an interpreter no runner
-- claims: it runs the script with that interpreter and its arguments,
-- exactly as the kernel would.
function M.shebang_runner(shebang)
  local extra = shebang.args
  return {
    name = "shebang",
    description = "The interpreter named by the script's shebang line",
    shebangs = { shebang.name },
    interpreter = shebang.program,
    deps = "none",
    install_hint = string.format("install %s, or choose a runner with --runner NAME", shebang.name),
    build_command = function(ctx)
      local argv = { ctx.interpreter }
      for _, a in ipairs(extra) do argv[#argv + 1] = a end
      argv[#argv + 1] = ctx.script
      for _, a in ipairs(ctx.args or {}) do argv[#argv + 1] = a end
      return argv
    end,
  }
end

--- Picks the runner for `script` (a path; nil for inline code). opts:
-- `runner` (the --runner NAME), `first_line` (else read through
-- opts.probes.read_first_line). Order: --runner, then a shebang a runner
-- claims, then a shebang no runner claims (the "shebang" runner), then the
-- extension. Returns runner, how ("flag" | "shebang" | "extension"), or nil,
-- message, code, hint.
function M.detect(registry, script, opts)
  opts = opts or {}
  if opts.runner then
    local runner, err, code, hint = M.get(registry, opts.runner)
    if not runner then return nil, err, code, hint end
    return runner, "flag"
  end
  if not script then
    return nil, "inline code needs a runner", "usage",
      "add --runner NAME (" .. table.concat(M.names(registry), ", ") .. ")"
  end
  local line = opts.first_line
  if line == nil then line = (opts.probes or M.system_probes()).read_first_line(script) end
  local shebang = M.parse_shebang(line)
  local chosen, how
  if shebang then
    chosen, how = by_shebang(registry, shebang.name), "shebang"
    if not chosen then return M.shebang_runner(shebang), "shebang" end
  else
    chosen, how = by_extension(registry, script:match("([^/]*)$")), "extension"
  end
  if chosen and chosen.broken then return broken_error(chosen) end
  if chosen then return chosen, how end
  local base = script:match("([^/]*)$")
  local ext = base:match("^.+(%.[^.]+)$")
  local why = ext and ("no runner claims the extension " .. ext)
    or "it has no extension and no shebang line"
  local hint = known_hint(registry, "choose one with --runner NAME, or add one")
  if #registry.errors > 0 then
    local skipped = {}
    for i, e in ipairs(registry.errors) do skipped[i] = e.file end
    hint = hint .. "; invalid runner files were skipped: " .. table.concat(skipped, ", ")
  end
  return nil, string.format("cannot tell how to run %s: %s", script, why), "unknown_type", hint
end

-- Interpreter and command line -------------------------------------------

--- Finds `name` on `path_var` (a PATH value). Returns the path or nil.
function M.which(name, path_var, probes)
  for dir in (path_var or ""):gmatch("[^:]+") do
    local candidate = dir .. "/" .. name
    if probes.executable(candidate) then return candidate end
  end
  return nil
end

--- The absolute path of the runner's interpreter: "@prisn" is this binary,
-- an absolute path must be executable, a bare name is looked up on
-- `path_var` (default: PATH). Returns it, or nil, "python3: not found",
-- "ENOENT", the runner's install_hint.
function M.resolve_interpreter(runner, probes, path_var)
  probes = probes or M.system_probes()
  local interp = runner.interpreter
  if interp == "@prisn" then
    local exe = probes.exepath()
    if exe then return exe end
    return nil, "cannot find the prisn binary itself", "ENOENT", runner.install_hint
  end
  local found
  if interp:sub(1, 1) == "/" then
    found = probes.executable(interp) and interp or nil
  else
    found = M.which(interp, path_var or probes.getenv("PATH"), probes)
  end
  if found then return found end
  return nil, interp .. ": not found", "ENOENT", runner.install_hint
end

local function copy_ctx(ctx)
  local c = {}
  for k, v in pairs(ctx) do c[k] = v end
  c.args = { table.unpack(ctx.args or {}) }
  local env = {}
  for k, v in pairs(ctx.env or {}) do env[k] = v end
  c.env = env
  if c.script and not c.script_dir then
    c.script_dir = c.script:match("^(.*)/[^/]*$") or "."
    if c.script_dir == "" then c.script_dir = "/" end
  end
  return c
end

--- The argv for running a script (ctx.script) or inline code (ctx.code).
-- ctx = { script, code, args, interpreter (resolved path), script_dir, env }.
-- Uses build_command when the runner has one, else the `command` (or
-- `inline`) template. Returns the argv, or nil, message, code.
function M.command(runner, ctx)
  ctx = copy_ctx(ctx)
  if ctx.code and not ctx.script_dir then ctx.script_dir = "." end
  local argv, err
  if runner.build_command then
    local results = table.pack(sandbox.call(runner.build_command, nil, ctx))
    if not results[1] then
      return nil, string.format("runner %s: build_command failed: %s", runner.name, results[2]), "invalid_runner"
    end
    argv = results[2]
    if not format.is_argv(argv) then
      return nil, string.format("runner %s: build_command returned %s, expected a non-empty list of strings",
        runner.name, type(argv) == "table" and "a table that is not one" or type(argv)), "invalid_runner"
    end
    return argv
  end
  local template = runner.command
  if ctx.code then
    template = runner.inline
    if not template then
      return nil, string.format("runner %s cannot run inline code", runner.name), "ENOTSUP"
    end
  end
  argv, err = format.expand(template, ctx)
  if not argv then return nil, string.format("runner %s: %s", runner.name, err), "invalid_runner" end
  return argv
end

--- The environment for the child: `ctx.env` plus the runner's `env` (which
-- never overrides a variable already set), then the runner's prepare(ctx).
-- Returns the new environment table, or nil, message, code.
function M.environment(runner, ctx)
  ctx = copy_ctx(ctx)
  for k, v in pairs(runner.env or {}) do
    if ctx.env[k] == nil then ctx.env[k] = v end
  end
  if runner.prepare then
    local ok, err = sandbox.call(runner.prepare, nil, ctx)
    if not ok then
      return nil, string.format("runner %s: prepare failed: %s", runner.name, err), "invalid_runner"
    end
    for k, v in pairs(ctx.env) do
      if type(k) ~= "string" or type(v) ~= "string" then
        return nil, string.format("runner %s: prepare left env.%s = %s, expected a string",
          runner.name, tostring(k), type(v)), "invalid_runner"
      end
    end
  end
  return ctx.env
end

--- The argv that checks the interpreter and prints its version.
function M.version_command(runner, interpreter)
  if not runner.version then return nil end
  return format.expand(runner.version, { interpreter = interpreter })
end

return M
