-- The CPU a `prisn run` spends loading its Lua: the modules the run path
-- requires (argv parse, the run command, its handler, the runners), loaded
-- again from the binary's embedded bytecode ROUNDS times, and each module's
-- own load (LZ4 + lua_load + its top level, with what it requires already
-- loaded). In-process CPU time (os.clock), so steady on a busy machine;
-- run it with two binaries to compare their embedded Lua:
--
--   /tmp/base/build/prisn lua tests/bench/run-modules.lua 200
--   build/prisn lua tests/bench/run-modules.lua 200 python
--
-- "python" adds what a python script whose environment is cached loads on
-- top (the detection cache, the environment cache, the installer's apply).
-- (tests/bench/run-report.md, third pass.)
local ROUNDS = tonumber(arg[1]) or 200

-- What a local `prisn run -q hello.sh` requires, by its entry points.
local ROOTS = { "prisn.main", "prisn.cli", "prisn.cli.parse", "prisn.cli.commands.run", "prisn.output",
  "prisn.cli.run", "prisn.exec.runners" }
if arg[2] == "python" then
  for _, name in ipairs({ "prisn.exec.environment", "prisn.exec.deps.cache", "prisn.exec.envcache",
    "prisn.exec.install.python" }) do
    ROOTS[#ROOTS + 1] = name
  end
end
for _, name in ipairs({ "bash", "bun", "deno", "lua", "node", "perl", "php", "python3", "ruby", "sh" }) do
  ROOTS[#ROOTS + 1] = "prisn.runners." .. name
end

-- Lua modules of prisn's (the C ones, prisn.core.*, stay loaded).
local function ours(name)
  return name:match("^prisn%.") and not name:match("^prisn%.core%.")
end

local function unload()
  for name in pairs(package.loaded) do
    if ours(name) then package.loaded[name] = nil end
  end
end

local function load_all()
  for _, root in ipairs(ROOTS) do require(root) end
end

local function median(list)
  table.sort(list)
  return list[(#list + 1) // 2]
end

unload()
load_all()
local names = {}
for name in pairs(package.loaded) do
  if ours(name) then names[#names + 1] = name end
end

local all = {}
for i = 1, ROUNDS do
  unload()
  collectgarbage()
  local t0 = os.clock()
  load_all()
  all[i] = (os.clock() - t0) * 1e3
end

-- Each module alone: its loader called with everything else loaded.
local each = {}
for _, name in ipairs(names) do
  local times = {}
  for i = 1, math.max(10, ROUNDS // 10) do
    local t0 = os.clock()
    package.preload[name](name)
    times[i] = (os.clock() - t0) * 1e3
  end
  each[#each + 1] = { name = name, ms = median(times) }
end
table.sort(each, function(a, b) return a.ms > b.ms end)

local sum = 0
for _, m in ipairs(each) do sum = sum + m.ms end
io.write(string.format("%d modules: all loaded %.3f ms CPU (median of %d); each alone, summed %.3f ms\n",
  #names, median(all), ROUNDS, sum))
for i = 1, math.min(#each, 15) do
  io.write(string.format("  %-32s %.3f ms\n", each[i].name, each[i].ms))
end
