-- prisn.main: the program. Parses argv, runs the command's handler, and turns
-- whatever happens into output and an exit status.
--
--   0  success        1  error (Error:/Hint: on stderr)        2  usage error
--
-- A prisn.error raised anywhere below is something the user can act on and is
-- printed as "Error: ..." / "Hint: ...". Anything else raised is a bug: one
-- line and a hint by default, the traceback with PRISN_DEBUG=1.
local errors = require("prisn.error")

local M = {}

local function debug_enabled()
  return os.getenv("PRISN_DEBUG") == "1"
end

--- Whether to colour output on `fd`: never with --no-color, NO_COLOR set,
-- TERM=dumb, or when the descriptor is not a terminal.
function M.use_color(globals, fd)
  if globals.no_color then return false end
  local no_color = os.getenv("NO_COLOR")
  if no_color and no_color ~= "" then return false end
  if os.getenv("TERM") == "dumb" then return false end
  return require("prisn.core.sys").isatty(fd or 1)
end

local function report_error(err, traceback)
  io.stdout:flush()
  if errors.is(err) then
    io.stderr:write("Error: ", err.message, "\n")
    if err.hint then io.stderr:write("Hint: ", err.hint, "\n") end
    return err.status or 1
  end
  local text = tostring(err)
  if debug_enabled() then
    io.stderr:write("Error: internal error in prisn: ", text, "\n", traceback or "", "\n")
  else
    io.stderr:write("Error: internal error in prisn: ", (text:match("^[^\n]*")), "\n",
      "Hint: this is a bug; run again with PRISN_DEBUG=1 for a traceback and report it\n")
  end
  return 1
end

-- A tree of one family: the root's flags and the commands of the family
-- named `word`, when `word` names one (nil otherwise). Loading every
-- family's declarations is most of the cost of starting prisn (2 of the
-- 2.8 ms of `prisn version`, tests/bench/run-report.md), and a command line
-- that starts with its family's name needs only that family.
local function family_root(cli, word)
  for _, family in ipairs(cli.FAMILIES) do
    if family == word then
      return { name = "prisn", flags = cli.GLOBAL_FLAGS, subcommands = require("prisn.cli.commands." .. family) }
    end
  end
  return nil
end

-- Parses argv against the smallest tree that gives the same answer: the
-- family's alone when the first word names it and the line is a plain
-- command; the whole tree for help, --version, and any mistake (so errors
-- and their suggestions are the full tree's).
local function parse_argv(cli, parse, words)
  local small = family_root(cli, words[1])
  if small then
    local ok, parsed = pcall(parse.parse, small, words)
    if ok and parsed.command ~= small and not parsed.globals.help and not parsed.globals.version then
      return parsed, small
    end
  end
  local root = cli.root()
  return parse.parse(root, words), root
end

local function dispatch(argv)
  local cli = require("prisn.cli")
  local parse = require("prisn.cli.parse")
  local words = {}
  for i = 1, #argv do words[i] = argv[i] end
  local parsed, root = parse_argv(cli, parse, words)
  cli.normalize_globals(parsed.globals)
  if parsed.globals.version and not parsed.globals.help then
    -- `prisn --version`, `prisn -v`: what `prisn version` prints.
    parsed.command, parsed.path = cli.find(root, "version"), { "version" }
  end
  local cmd = parsed.command
  if parsed.globals.help or cmd == root then
    local help = require("prisn.cli.help")
    if cmd == root then
      io.stdout:write(help.root_help(root))
    else
      io.stdout:write(help.command_help(cmd, parsed.path, root))
    end
    return 0
  end
  if parsed.globals.context then
    -- A misspelt --context fails here, before anything runs, also for a
    -- command that never talks to a server (prisn.client resolves it again).
    require("prisn.contexts").resolve(require("prisn.home").path(), { context = parsed.globals.context })
  end
  local output = require("prisn.output")
  local ctx = {
    args = parsed.args,
    flags = parsed.flags,
    globals = parsed.globals,
    command = cmd,
    path = parsed.path,
    argv0 = argv[0],
    color = M.use_color(parsed.globals, 1),
  }
  ctx.out = output.writer({ format = parsed.globals.output, color = ctx.color })
  local status = cmd.handler(ctx)
  return math.tointeger(status) or 0, ctx.fast_exit
end

--- Runs prisn with `argv` (argv[0] is the program). Returns the exit status;
-- never raises for anything a user can cause.
function M.run(argv)
  local traceback
  local ok, result, fast_exit = xpcall(dispatch, function(err)
    if not errors.is(err) then traceback = debug.traceback(nil, 2) end
    return err
  end, argv)
  -- Nothing of luv's may outlive the Lua state (prisn.async.drain). Asked
  -- of luv's context in the registry, not of package.loaded: a script run by
  -- `prisn lua` may unload modules (busted's insulation does), leaving the
  -- loop alive and a close callback to run on the freed state.
  if debug.getregistry().luv_context ~= nil then require("prisn.async").drain() end
  io.stdout:flush()
  -- A handler that closed everything it opened sets ctx.fast_exit: the
  -- binary then exits without tearing the Lua state down (core/main.c).
  if ok and fast_exit then debug.getregistry()["prisn.fast_exit"] = true end
  if ok then return result end
  return report_error(result, traceback)
end

return M
