-- `prisn lua FILE [ARGS...]`: run a Lua file in prisn's own Lua 5.4, with the
-- C core, luv, cjson and every embedded module available (like `nvim -l`).
--
-- This is how the test suite runs busted inside the real binary, and how an
-- operator can try a runner or hook against the real modules. Lua's standard
-- search paths are restored for the script (prisn itself never uses them), so
-- system modules such as busted load; prisn.* modules still come from the
-- binary because package.preload is searched first.
local errors = require("prisn.error")

local function handler(ctx)
  local sys = require("prisn.core.sys")
  local file = ctx.args.FILE
  local words = { table.unpack(ctx.args.ARGS or {}) }
  package.path = sys.lua_path_default
  package.cpath = sys.lua_cpath_default
  local chunk, load_err
  if ctx.flags.exec then
    -- With -e there is no file: every word is an argument of the code.
    if file then table.insert(words, 1, file) end
    file = "(command line)"
    chunk, load_err = load(ctx.flags.exec, "=(command line)")
    if not chunk then
      errors.raise("syntax", "cannot load the code given with -e: " .. load_err,
        { hint = "fix the Lua syntax error above" })
    end
  elseif not file then
    errors.usage("missing argument FILE for 'prisn lua'", "give a Lua file, '-' for standard input, or -e CODE")
  elseif file == "-" then
    chunk, load_err = load(io.stdin:read("a"), "=stdin")
  else
    chunk, load_err = loadfile(file)
  end
  if not chunk then
    local code = load_err:match("cannot open") and "ENOENT" or "syntax"
    errors.raise(code, "cannot load " .. file .. ": " .. load_err,
      { hint = code == "ENOENT" and "check the path of the Lua file" or "fix the Lua syntax error above" })
  end
  -- The global `arg`, as the stand-alone lua interpreter sets it.
  local script_args = { [0] = file, [-1] = ctx.argv0 }
  for i, word in ipairs(words) do script_args[i] = word end
  _G.arg = script_args
  -- os.exit(code, true) closes the Lua state at once: the loop's handles are
  -- closed first, as prisn does on its own way out, or a close callback
  -- would run on a freed state (busted exits this way when a test fails).
  local exit = os.exit
  os.exit = function(code, close) -- luacheck: ignore 122 (os is read-only to luacheck)
    require("prisn.async").drain()
    io.stdout:flush()
    return exit(code, close)
  end
  local ok, err = xpcall(chunk, debug.traceback, table.unpack(script_args))
  io.stdout:flush()
  if not ok then
    io.stderr:write("prisn lua: ", tostring(err), "\n")
    return 1
  end
  return 0
end

return {
  {
    name = "lua",
    summary = "Run a Lua file in prisn's own Lua, with its modules available",
    description = "Runs FILE in the Lua 5.4 built into prisn, with the C core\n"
      .. "(prisn.core.*), luv, cjson and every prisn module available to require.\n"
      .. "Every word after FILE goes to the script, in the global 'arg' table as\n"
      .. "with the stand-alone lua interpreter. FILE '-' reads the script from\n"
      .. "standard input; -e CODE runs CODE instead of a file. An error in the\n"
      .. "script prints its traceback and exits 1.",
    args = {
      { name = "FILE", summary = "The Lua file to run ('-' for standard input; omit with -e)",
        complete = "file" },
      { name = "ARGS", summary = "Arguments for the script, passed on untouched (flags too)",
        rest = true },
    },
    flags = {
      { name = "exec", short = "e", type = "string", placeholder = "CODE",
        summary = "Run CODE instead of a file; the words that follow are its arguments" },
    },
    examples = {
      { "prisn lua script.lua one two", "Run script.lua with arg[1]='one', arg[2]='two'" },
      { "prisn lua -e 'print(_VERSION, ...)' a b", "Run a line of Lua with arguments" },
      { "prisn lua tests/spec_runner.lua spec", "Run the busted specs inside the binary" },
    },
    handler = handler,
  },
}
