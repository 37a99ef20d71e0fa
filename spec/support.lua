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

return M
