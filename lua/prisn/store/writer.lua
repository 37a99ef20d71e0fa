-- prisn.store.writer: what the server records from its loop (runners'
-- reports of a job's start and end, instance states, revision states,
-- events), written to state.db in order and retried until it is written;
-- and whether the server can write its state at all.
--
-- A write is a function run in one transaction. It is tried at once. When
-- state.db cannot take it -- a full disk, an I/O error, a read-only file
-- (prisn.store.storage_failure), or another process holding the lock past
-- the busy timeout -- it is kept in memory and tried again after 50 ms,
-- then twice as long each time up to 2 s, until it is written. Writes are
-- recorded in the order they were asked for: while one waits, the later
-- ones wait behind it. What follows a write (freeing a job's slot, telling
-- listeners) is its `after`, run once it is written, however late. A write
-- that fails for good (a constraint, a bug) is logged and its `on_error`
-- told; it never blocks the ones behind it.
--
-- The server is "degraded" from the first storage failure -- here, or
-- anywhere prisn.store raises one (an API write answered 507), as its
-- observer -- until a write succeeds again. Entering records a
-- "server.degraded" event and leaving a "server.recovered" one, each with a
-- log line. The degraded event is itself a write that waits in the queue,
-- so while degraded there is always something to retry, and the first
-- retry that goes through ends it. A commit made elsewhere (an API write
-- that went through) retries at once instead of after the backoff.
--
-- Memory: a write given a `key` replaces the one of the same key still
-- waiting (an instance's state: only the latest counts); a `droppable` one
-- (an event) is dropped, and counted, once MAX_PENDING writes wait.
-- Reports and states are never dropped; their number is bounded by the
-- work in flight, which a degraded server does not add to.
local uv = require("luv")
local clock = require("prisn.clock")
local errors = require("prisn.error")
local events = require("prisn.store.events")
local store = require("prisn.store")

local M = {}

M.MIN_DELAY_MS = 50
M.MAX_DELAY_MS = 2000
M.MAX_PENDING = 10000

-- Not storage failures, but passing ones: retried without degrading.
local PASSING = { SQLITE_BUSY = true, SQLITE_LOCKED = true }

local KIND_WORDS = { full = "disk full", io = "I/O error", readonly = "read-only" }

local Writer = {}
Writer.__index = Writer

--- A writer for `db`. opts:
--   log          :info/:warn/:error(fmt, ...) (prisn.server.log)
--   transaction  fn -> results: runs fn in a transaction (default
--                store.transaction on db; the server passes its event
--                recorder's, which counts and prunes events)
--   write_errors a counter (:inc()) of failed write attempts
--   on_change    function(writer) after entering or leaving degraded
--   new_timer    () -> a luv-like timer (specs pass a fake)
--   now          () -> ms since the epoch
--   min_delay_ms, max_delay_ms, max_pending
--   events       false: record no server.degraded/recovered events
function M.new(db, opts)
  opts = opts or {}
  return setmetatable({
    db = db,
    log = opts.log,
    transaction = opts.transaction or function(fn) return store.transaction(db, fn) end,
    write_errors = opts.write_errors,
    on_change = opts.on_change,
    new_timer = opts.new_timer or uv.new_timer,
    now = opts.now or clock.now_ms,
    min_delay = opts.min_delay_ms or M.MIN_DELAY_MS,
    max_delay = opts.max_delay_ms or M.MAX_DELAY_MS,
    max_pending = opts.max_pending or M.MAX_PENDING,
    record_events = opts.events ~= false,
    queue = {}, head = 1, -- waiting writes: queue[head .. #queue]
    keys = {},            -- key -> the waiting write of that key
    failures = 0,         -- failed attempts (all time)
    dropped = 0,          -- droppable writes dropped (this degraded spell)
    late = 0,             -- writes written after waiting (this degraded spell)
  }, Writer)
end

--- The number of writes waiting.
function Writer:pending()
  return #self.queue - self.head + 1
end

local function log(self, level, fmt, ...)
  if self.log then self.log[level](self.log, fmt, ...) end
end

-- Runs fn(...) and logs what it raises: an `after` must not stop the others.
local function guarded(self, what, fn, ...)
  if not fn then return end
  errors.call(what, fn, function(err) log(self, "error", "after recording %s: %s", what, tostring(err)) end, ...)
end

-- Counts one failed attempt (once: the store's observer may have counted it).
function Writer:count_failure()
  self.failures = self.failures + 1
  if self.write_errors then self.write_errors:inc() end
end

--- What the server shows: { degraded, kind, code, message, since_ms,
-- pending, reason } (reason: one line for /health and /api/v1/status,
-- e.g. "state.db: disk full (SQLITE_FULL) since 2026-12-07T15:24:10.303Z").
function Writer:status()
  local d = self.degraded
  local out = { degraded = d ~= nil, pending = self:pending(), failures = self.failures }
  if d then
    out.kind, out.code, out.message, out.since_ms = d.kind, d.code, d.message, d.since_ms
    out.reason = string.format("state.db: %s (%s) since %s", KIND_WORDS[d.kind] or d.kind, d.code,
      clock.iso_time(d.since_ms))
  end
  return out
end

-- The server cannot write its state: note why (the first failure of the
-- spell), record the event, say so.
function Writer:enter(code, message)
  if self.degraded then
    self.degraded.last_message = message
    return
  end
  local since = self.now()
  self.degraded = { kind = store.storage_failure(code), code = code, message = message, since_ms = since }
  self.late, self.dropped = 0, 0
  local reason = self:status().reason
  log(self, "warn", "%s: the server is degraded; what it records is kept in memory and retried (%s)", reason,
    tostring(message))
  if self.record_events then
    -- Waits in the queue like any other write: the first retry that works
    -- records it (at the time it happened) and ends the spell.
    self:enqueue({ what = "event server.degraded", fn = function()
      events.record(self.db, { action = "server.degraded", time = since, message = reason })
    end })
  end
  guarded(self, "server.degraded", self.on_change, self)
end

-- A write went through after a spell: record and say so.
function Writer:leave()
  local d = self.degraded
  if not d then return end
  self.degraded = nil
  local seconds = (self.now() - d.since_ms) / 1000
  local message = string.format("state.db can be written again after %.1f s (%s); %d record(s) written late%s",
    seconds, KIND_WORDS[d.kind] or d.code, self.late,
    self.dropped > 0 and string.format(", %d event(s) dropped", self.dropped) or "")
  log(self, "info", "%s: the server is no longer degraded", message)
  if self.record_events then
    self:write("event server.recovered", function()
      events.record(self.db, { action = "server.recovered", message = message })
    end, { droppable = true })
  end
  guarded(self, "server.recovered", self.on_change, self)
end

-- Runs item.fn in a transaction. Returns true, results; or false, err,
-- retry (true when the failure passes: keep the write and try again).
function Writer:try(item)
  self.observed = false
  self.attempting = true
  local r = table.pack(pcall(self.transaction, item.fn))
  self.attempting = false
  if r[1] then return true, r end
  local err = r[2]
  local code = errors.is(err) and err.code
  if code and (store.storage_failure(code) or PASSING[code]) then
    if not self.observed then self:count_failure() end
    if store.storage_failure(code) then self:enter(code, err.message) end
    return false, err, true
  end
  return false, err, false
end

function Writer:written(item, r)
  if self.degraded then self.late = self.late + 1 end
  guarded(self, item.what, item.after, table.unpack(r, 2, r.n))
end

function Writer:failed_for_good(item, err)
  log(self, "error", "cannot record %s: %s", item.what, tostring(errors.is(err) and err.message or err))
  guarded(self, item.what, item.on_error, err)
end

function Writer:enqueue(item)
  if item.key then
    local old = self.keys[item.key]
    if old then old.fn = nil end -- superseded: skipped when its turn comes
    self.keys[item.key] = item
  end
  self.queue[#self.queue + 1] = item
end

-- Tries again after the backoff (or after `delay` ms).
function Writer:schedule(delay)
  if not delay then
    self.delay = math.min(self.max_delay, self.delay and self.delay * 2 or self.min_delay)
    delay = self.delay
  end
  if not self.timer then self.timer = self.new_timer() end
  self.timer:stop()
  self.timer:start(delay, 0, function() self:drain() end)
end

--- Writes what waits, in order, until one fails (then tries again later)
-- or none is left. Called by the timer; the server calls it once more when
-- it stops.
function Writer:drain()
  if self.draining then return end
  self.draining = true
  while self.head <= #self.queue do
    local item = self.queue[self.head]
    if item.fn then
      local ok, r, retry = self:try(item)
      if not ok and retry then
        self.draining = false
        return self:schedule()
      end
      if item.key and self.keys[item.key] == item then self.keys[item.key] = nil end
      self.queue[self.head] = nil
      self.head = self.head + 1
      if ok then self:written(item, r) else self:failed_for_good(item, r) end
    else
      self.queue[self.head] = nil
      self.head = self.head + 1
    end
  end
  self.queue, self.head, self.delay = {}, 1, nil
  self.draining = false
  if self.timer then self.timer:stop() end
  self:leave()
end

--- Records what fn(db-in-a-transaction) writes. opts:
--   after     function(fn's results...) once it is written
--   on_error  function(err) when it fails for good (not a storage failure)
--   key       a write of the same key still waiting is replaced by this one
--   droppable may be dropped when MAX_PENDING writes wait (events)
-- Returns true when it was written now, false when it waits (or was
-- dropped), nil when it failed for good.
function Writer:write(what, fn, opts)
  opts = opts or {}
  local item = { what = what, fn = fn, after = opts.after, on_error = opts.on_error, key = opts.key }
  if self:pending() > 0 or self.draining then
    if opts.droppable and self:pending() >= self.max_pending then
      self.dropped = self.dropped + 1
      if self.dropped == 1 then log(self, "warn", "%d records wait: events are dropped until state.db "
        .. "can be written", self:pending()) end
      return false
    end
    self:enqueue(item)
    return false
  end
  self.draining = true
  local ok, r, retry = self:try(item)
  self.draining = false
  if ok then
    self:written(item, r)
    if self:pending() > 0 then self:drain() else self:leave() end
    return true
  end
  if retry then
    -- First in line, before anything that entering degraded queued.
    table.insert(self.queue, self.head, item)
    if item.key then self.keys[item.key] = item end
    self:schedule()
    return false
  end
  self:failed_for_good(item, r)
  return nil
end

--- The store's observer (prisn.store.set_observer): a storage failure
-- anywhere degrades the server; a commit anywhere is a reason to retry now.
function Writer:observe(event, code, message)
  if event == "failed" then
    self.observed = true
    if not self.attempting then
      self:count_failure()
      local was = self.degraded
      self:enter(code, message)
      if not was and not self.draining and self:pending() > 0 then self:schedule() end
    else
      self:count_failure()
    end
  elseif event == "committed" and not self.draining and self:pending() > 0 then
    self:schedule(0)
  end
end

--- Stops retrying (the server is stopping). Returns the number of writes
-- left unwritten.
function Writer:close()
  if self.timer and not self.timer:is_closing() then self.timer:close() end
  self.timer = nil
  return self:pending()
end

return M
