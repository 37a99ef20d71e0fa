-- Runs busted inside the prisn binary: `prisn lua tests/spec_runner.lua SPEC...`.
--
-- `prisn lua` gives this file Lua's standard search paths, so busted and its
-- C modules load from the system, while every prisn module comes from the
-- binary itself: the specs test the real embedded core.
local source_dir = os.getenv("PRISN_SOURCE_DIR") or "."
package.path = source_dir .. "/tests/?.lua;" .. source_dir .. "/spec/?.lua;" .. package.path

-- busted reads its options from the global `arg`; default to plain output
-- (no colours in ctest logs) unless the caller chose one.
local has_output = false
for _, a in ipairs(arg) do
  if a:match("^%-o") or a:match("^%-%-output") then has_output = true end
end
if not has_output then table.insert(arg, 1, "--output=plainTerminal") end

require("busted.runner")({ standalone = false })
