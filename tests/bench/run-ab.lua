-- A/B timing of whole commands: each command run ROUNDS times, all of them
-- interleaved (the order reversed every other round), so builds compared on
-- a shared, busy machine see the same load. Prints the median and the
-- quartiles of each command's wall time; output is discarded.
--
--   build/prisn lua tests/bench/run-ab.lua ROUNDS CMD... [-- CMD...]...
--
-- e.g. comparing an old and a new binary against bash (tests/bench/run-report.md):
--   build/prisn lua tests/bench/run-ab.lua 200 /usr/bin/bash hello.sh \
--     -- /tmp/prisn-old run -q hello.sh -- build/prisn run -q hello.sh
local uv = require("luv")
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local common = require("common")

local ROUNDS = assert(tonumber(arg[1]), "usage: run-ab.lua ROUNDS CMD... [-- CMD...]...")
local cmds, current = {}, {}
for i = 2, #arg do
  if arg[i] == "--" then
    cmds[#cmds + 1], current = current, {}
  else
    current[#current + 1] = arg[i]
  end
end
cmds[#cmds + 1] = current

local env = {}
for k, v in pairs(uv.os_environ()) do env[#env + 1] = k .. "=" .. v end

-- Wall time of one run of `cmd`, in milliseconds.
local function once(cmd)
  return common.time_run(cmd[1], { table.unpack(cmd, 2) }, env)
end

local times = {}
for i, cmd in ipairs(cmds) do
  times[i] = {}
  once(cmd) -- warm the page cache
end
for round = 1, ROUNDS do
  for j = 1, #cmds do
    local i = round % 2 == 0 and j or #cmds - j + 1
    table.insert(times[i], once(cmds[i]))
  end
end
for i, cmd in ipairs(cmds) do
  local t = times[i]
  table.sort(t)
  print(string.format("%-60s median %7.2f ms   p25 %7.2f   p75 %7.2f", table.concat(cmd, " "):sub(1, 60),
    t[ROUNDS // 2 + 1], t[ROUNDS // 4 + 1], t[3 * ROUNDS // 4 + 1]))
end
