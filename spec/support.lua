-- What several specs share (tests/spec_runner.lua puts spec/ on the path:
-- `local support = require("support")`).
local errors = require("prisn.error")

local M = {}

--- Calls fn(...), which must raise a prisn.error; returns the error.
function M.raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  assert(errors.is(err), "expected a prisn.error, got " .. tostring(err))
  return err
end

--- Removes a directory tree (prisn.fs.rm_rf, asserting it worked).
function M.remove_tree(path)
  assert(require("prisn.fs").rm_rf(path))
end

--- Drives the luv loop until cond() holds or `ms` (default 3000) pass;
-- returns cond(). A 5 ms ticker keeps the loop turning meanwhile.
function M.run_until(cond, ms)
  local uv = require("luv")
  local tick = uv.new_timer()
  tick:start(5, 5, function() end)
  local deadline = uv.hrtime() + (ms or 3000) * 1e6
  while not cond() and uv.hrtime() < deadline do uv.run("once") end
  tick:close()
  uv.run("nowait")
  return cond()
end

return M
