-- `prisn runner list | show NAME | check FILE`: the programs that run scripts.
--
-- list and show read the registry (built-ins plus $PRISN_HOME/runners);
-- check loads one operator file exactly as `prisn run` would and says what
-- is wrong with it. The logic lives in prisn.exec.runners; this file only
-- shapes what is printed.
local errors = require("prisn.error")
local output = require("prisn.output")

local DOCS_HINT = "see docs/RUNNERS.md for the runner format"

local function runners() return require("prisn.exec.runners") end

-- Warns on stderr about operator files that were skipped.
local function warn_skipped(registry, ctx)
  if ctx.globals.quiet then return end
  for _, e in ipairs(registry.errors) do
    io.stderr:write("Warning: skipped ", e.message, "\n")
  end
end

local function availability(runner, registry)
  local path = runners().resolve_interpreter(runner)
  return {
    name = runner.name,
    description = runner.description or output.null,
    extensions = output.array({ table.unpack(runner.extensions or {}) }),
    interpreter = runner.interpreter,
    interpreter_path = path or output.null,
    available = path ~= nil,
    deps = runner.deps or "none",
    source = registry.sources[runner.name],
  }
end

local function list_handler(ctx)
  local r = runners()
  local registry = r.load()
  warn_skipped(registry, ctx)
  local rows = {}
  for _, runner in ipairs(r.list(registry)) do rows[#rows + 1] = availability(runner, registry) end
  ctx.out:emit(output.array(rows), { columns = {
    { key = "name", header = "NAME" },
    { key = "extensions", header = "EXTENSIONS",
      format = function(v) return #v > 0 and table.concat(v, " ") or "-" end },
    { key = "interpreter", header = "INTERPRETER" },
    { key = "available", header = "AVAILABLE", format = function(v) return v and "yes" or "no" end },
    { key = "source", header = "SOURCE" },
  } })
end

local function template(list)
  if not list then return output.null end
  return output.array({ table.unpack(list) })
end

-- The first line the version command prints, or null.
local function installed_version(runner, path)
  local argv = path and runners().version_command(runner, path)
  if not argv then return output.null end
  local async = require("prisn.async")
  local res = async.main(function()
    return async.capture(argv[1], { table.unpack(argv, 2) }, { timeout_ms = 5000 })
  end)
  if not res or res.code ~= 0 then return output.null end
  local text = res.stdout ~= "" and res.stdout or res.stderr
  local line = text:match("^%s*([^\n]-)%s*\n") or text:match("^%s*(.-)%s*$")
  if not line or line == "" then return output.null end
  return (line:gsub("%s+", " "))
end

local FUNCTION = "(Lua function)"

-- An argv as a shell would read it: items with spaces or quotes are quoted.
local function command_line(argv)
  local words = {}
  for i, a in ipairs(argv) do
    words[i] = a:find("^[%w%-%._/{}@=:,+%%]+$") and a or "'" .. a:gsub("'", "'\\''") .. "'"
  end
  return table.concat(words, " ")
end

local function show_handler(ctx)
  local r = runners()
  local registry = r.load()
  local runner, err, code, hint = r.get(registry, ctx.args.NAME)
  if not runner then errors.raise(code, err, { hint = hint }) end
  local path = r.resolve_interpreter(runner)
  local env = {}
  for k, v in pairs(runner.env or {}) do env[k] = v end
  local value = {
    name = runner.name,
    description = runner.description or output.null,
    source = registry.sources[runner.name],
    extensions = template(runner.extensions or {}),
    shebangs = template(runner.shebangs or {}),
    interpreter = runner.interpreter,
    interpreter_path = path or output.null,
    available = path ~= nil,
    version = installed_version(runner, path),
    command = template(runner.command),
    inline = template(runner.inline),
    env = env,
    deps = runner.deps or "none",
    version_command = template(runner.version),
    install_hint = runner.install_hint or output.null,
    build_command = runner.build_command and FUNCTION or output.null,
    prepare = runner.prepare and FUNCTION or output.null,
  }
  local opts
  if ctx.globals.output == "text" then
    -- Argv templates read best as command lines.
    for _, key in ipairs({ "command", "inline", "version_command" }) do
      if value[key] ~= output.null then value[key] = command_line(value[key]) end
    end
    if next(env) == nil then value.env = output.null end
    value.available = path and "yes" or "no"
    opts = { fields = { "name", "description", "source", "extensions", "shebangs", "interpreter",
      "interpreter_path", "available", "version", "command", "inline", "build_command", "prepare",
      "env", "deps", "version_command", "install_hint" } }
  end
  ctx.out:emit(value, opts)
end

local function check_handler(ctx)
  local r = runners()
  local file = ctx.args.FILE
  local runner, err, code = r.load_file(file)
  if not runner then
    errors.raise(code, err, { hint = code == "ENOENT" and "check the path of the runner file" or DOCS_HINT })
  end
  local claims = #(runner.extensions or {}) > 0
    and "extensions " .. table.concat(runner.extensions, " ")
    or "no extensions"
  if ctx.globals.output == "text" then
    ctx.out:emit(string.format("ok: runner '%s' (%s)", runner.name, claims))
  else
    ctx.out:emit({ ok = true, file = file, name = runner.name,
      extensions = output.array({ table.unpack(runner.extensions or {}) }) })
  end
  local _, missing, _, hint = r.resolve_interpreter(runner)
  if missing and not ctx.globals.quiet then
    io.stderr:write("Note: ", missing, " on this machine", hint and (" (" .. hint .. ")") or "", "\n")
  end
end

return {
  {
    name = "runner",
    summary = "List, show and check the programs that run scripts",
    description = "A runner says which program runs a script: the extensions and shebang\n"
      .. "interpreters it claims, its command line, its environment and how its\n"
      .. "dependencies are found. Built-in runners cover python3, node, bash, sh, lua,\n"
      .. "ruby, perl, php, deno and bun; an operator adds or replaces runners with Lua\n"
      .. "files in $PRISN_HOME/runners (see docs/RUNNERS.md).",
    subcommands = {
      {
        name = "list",
        aliases = { "ls" },
        summary = "List the runners, their extensions and whether they are installed",
        description = "Lists every runner: the extensions it claims, its interpreter, whether\n"
          .. "that interpreter is installed here (found on PATH) and where the runner\n"
          .. "comes from (built-in, or the path of the operator's file). Operator files\n"
          .. "that fail to load are skipped with a warning on stderr.",
        examples = {
          { "prisn runner list", "The runners as a table" },
          { "prisn runner list -o json",
            "As JSON: [{name, description, extensions, interpreter, interpreter_path, available, deps, source}]" },
        },
        handler = list_handler,
      },
      {
        name = "show",
        summary = "Show every field of one runner",
        description = "Shows one runner: what it claims, its command lines (with their\n"
          .. "{placeholders}), environment, dependency manager, the interpreter found\n"
          .. "on PATH and the version it reports. Fields computed by Lua functions\n"
          .. "(build_command, prepare) are shown as \"(Lua function)\".",
        args = {
          { name = "NAME", summary = "The runner's name (see 'prisn runner list')", required = true,
            complete = function()
              local r = runners()
              return r.names(r.load())
            end },
        },
        examples = {
          { "prisn runner show python3", "How Python scripts are run" },
          { "prisn runner show tcl -o json", "An operator runner as JSON" },
        },
        handler = show_handler,
      },
      {
        name = "check",
        summary = "Check an operator's runner file and say exactly what is wrong",
        description = "Loads FILE the way prisn loads $PRISN_HOME/runners/*.lua (in the sandbox,\n"
          .. "under the instruction budget) and checks it against the runner format.\n"
          .. "Prints \"ok: runner 'NAME' (extensions ...)\" and exits 0, or prints the\n"
          .. "file and the bad field (or the line of a syntax error) and exits 1. A note\n"
          .. "on stderr says when the interpreter is not installed on this machine.",
        args = {
          { name = "FILE", summary = "The runner file to check (NAME.lua)", required = true,
            complete = "file" },
        },
        examples = {
          { "prisn runner check tcl.lua", "Check a runner before installing it" },
          { "prisn runner check ~/.prisn/runners/tcl.lua -o json",
            "The verdict as JSON: {ok, file, name, extensions}" },
        },
        handler = check_handler,
      },
    },
  },
}
