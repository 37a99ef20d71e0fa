-- luacheck configuration: prisn's Lua is plain Lua 5.4 with no globals.
std = "lua54"
max_line_length = 120
codes = true

files["spec/**/*_spec.lua"] = { std = "+busted" }
files["tests/e2e/**/*_spec.lua"] = { std = "+busted" }
files["tests/chaos/**/*_spec.lua"] = { std = "+busted" }
-- `prisn lua` sets the global `arg`, as the stand-alone interpreter does.
files["tests/spec_runner.lua"] = { globals = { "arg" } }
files["lua/prisn/cli/commands/lua.lua"] = { globals = { "arg" } }
