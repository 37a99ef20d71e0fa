-- prisn.dataplane.drain: the two waits the data plane's services share when
-- an upgrade hands them over or a stop closes them: polling until what is
-- still open has finished (bounded), and closing many things with one
-- callback after the last.
local uv = require("luv")

local M = {}

M.MAX_MS = 30000 -- a connection still open after this is closed anyway
M.POLL_MS = 50

--- Calls open() now and every POLL_MS (it may close what has become idle
-- and returns how many are still open) until it returns 0 or MAX_MS pass;
-- then done(left), left being what was still open (0 when all finished).
function M.wait(open, done)
  local deadline = uv.now() + M.MAX_MS
  local t = uv.new_timer()
  t:start(0, M.POLL_MS, function()
    local left = open()
    if left == 0 or uv.now() >= deadline then
      t:close()
      done(left)
    end
  end)
end

--- Calls close(item, one) for each item of the table `items` (any keys),
-- then done() once every one has been called back (at once when empty).
function M.close_all(items, close, done)
  local pending = 1
  local function one()
    pending = pending - 1
    if pending == 0 and done then done() end
  end
  for _, item in pairs(items) do
    pending = pending + 1
    close(item, one)
  end
  one()
end

return M
