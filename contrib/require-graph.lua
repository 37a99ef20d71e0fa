-- Prints the figures of prisn's Lua require graph: modules, edges (at the
-- top of a module and inside functions), cycles, requires that break the
-- layering (tests/layers.lua says which layer each module is in) and the
-- longest files.
--
--   build/prisn lua contrib/require-graph.lua        # from the source tree
local layers = dofile("tests/layers.lua")

local mods = layers.modules(".")
local edges, lazy = 0, 0
for _, mod in ipairs(mods) do
  for _, dep in ipairs(mod.requires) do
    edges = edges + 1
    if dep.lazy then lazy = lazy + 1 end
  end
end
print(string.format("modules %d, edges %d (%d at the top, %d inside functions)", #mods, edges, edges - lazy, lazy))
local cycles = layers.cycles(mods)
print(string.format("cycles %d", #cycles))
for _, cycle in ipairs(cycles) do print("  " .. table.concat(cycle, " ")) end
local upward = layers.violations(mods)
print(string.format("upward edges %d", #upward))
for _, line in ipairs(upward) do print("  " .. line) end
table.sort(mods, function(a, b) return a.lines > b.lines end)
print("longest files")
for i = 1, 8 do print(string.format("  %5d %s", mods[i].lines, mods[i].path)) end
