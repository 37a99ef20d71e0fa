-- prisn.store.checkpointer: keeps the server's state.db checkpointed off its
-- event loop.
--
-- SQLite copies the write-ahead log into the database when a commit takes
-- the log past 1,000 pages, inside that commit, syncing both files: a few
-- milliseconds on the server's loop, paid by whatever request waits behind
-- that commit (a job's submission took 3-4 ms instead of 0.3 every hundred
-- or so). The server turns that off on its connection and checkpoints here
-- instead: once a second, when the log has changed since the last
-- checkpoint, a thread with a connection of its own runs a PASSIVE
-- checkpoint (prisn.core.checkpoint), which never blocks a writer or a
-- reader. Other processes (a local `prisn run`, a runner whose server is
-- gone) keep SQLite's own checkpoints.
local uv = require("luv")
local checkpoint = require("prisn.core.checkpoint")
local clock = require("prisn.clock")

local M = {}

M.INTERVAL_MS = 1000

--- Starts checkpointing `db` (the server's connection to the database at
-- `path`). opts: log (a prisn.server.log), metrics ({ duration =
-- histogram, failures = counter }, optional), now (ms clock). Returns
-- { stop = fn, failing = fn }: failing() is nil, or { message, since_ms }
-- while checkpoints fail (a full disk: the database file cannot grow).
-- A failure is logged when checkpoints start failing (or fail otherwise),
-- and once when they work again, not every second.
function M.start(db, path, opts)
  opts = opts or {}
  local log, metrics = opts.log, opts.metrics or {}
  db:exec("PRAGMA wal_autocheckpoint=0")
  local running, last_stamp = false, nil
  -- The log's size and modification time: when both are as they were after
  -- the last checkpoint, there is nothing new to copy.
  local function stamp()
    local st = uv.fs_stat(path .. "-wal")
    return st and (st.size .. ":" .. st.mtime.sec .. "." .. st.mtime.nsec) or nil
  end
  local now = opts.now or clock.now_ms
  local failing -- { message, since_ms } while checkpoints fail
  local function failed(message)
    message = tostring(message)
    if metrics.failures then metrics.failures:inc() end
    if log and (not failing or failing.message ~= message) then
      log:warn("state.db checkpoint failed (the next one tries again): %s", message)
    end
    if not failing or failing.message ~= message then failing = { message = message, since_ms = now() } end
  end
  local function succeeded()
    if not failing then return end
    if log then log:info("state.db checkpoints work again (failing since %s: %s)",
      clock.iso_time(failing.since_ms), failing.message) end
    failing = nil
  end
  local timer = uv.new_timer()
  timer:start(M.INTERVAL_MS, M.INTERVAL_MS, function()
    if running then return end
    local before = stamp()
    if not before or before == last_stamp then return end
    local handle, fd = checkpoint.start(path)
    if not handle then return failed(fd) end
    running = true
    local started = uv.hrtime()
    local poll = uv.new_poll(fd)
    poll:start("r", function()
      poll:stop()
      poll:close()
      running = false
      local ok, message = handle:result()
      if not ok then return failed(message) end
      succeeded()
      last_stamp = before
      if metrics.duration then metrics.duration:observe((uv.hrtime() - started) / 1e9) end
    end)
  end)
  timer:unref()
  return {
    stop = function()
      if not timer:is_closing() then timer:close() end
    end,
    failing = function() return failing end,
  }
end

return M
