-- prisn.store.events: the audit trail, one row per mutation or lifecycle
-- change ("job.created", "token.revoked", "server.started", ...).
--
-- An event is a plain table:
--
--   id         a prisn.ids id, made when the event is recorded: ORDER BY id is
--              recording order, and an id range is a time range
--   time       when it happened, ms since the epoch (default: when recorded)
--   namespace  the namespace it belongs to; absent (NULL) for cluster-wide
--              events (tokens, the server itself), which only admins see
--   actor      who did it: "token:<name>" or "system"
--   action     "<kind>.<verb>", lower case: "job.finished", "secret.set"
--   object     what it was done to, "<kind>/<name>": "job/01kaxq3v2m7r",
--              "secret/db", "token/<id>"; absent when there is none
--   message    one line for people; absent when there is none
--
-- Messages and objects name things; they never carry values. Callers pass
-- secret and variable NAMES only. As a defence against a caller that slips,
-- a message longer than MAX_MESSAGE_BYTES is cut, and anything shaped like
-- a prisn token ("prisn_" and 24 or more token characters) is replaced by
-- "prisn_[redacted]".
--
-- Two ways to record:
--
--   events.record(db, ev)   inserts, raising on a store failure. Call it in
--       the same store.transaction as the mutation it describes, so the
--       change and its event commit together or not at all: the audit trail
--       never misses a change that happened.
--   events.recorder(db, opts)   for the server: fills defaults, and outside
--       a transaction never raises for a store failure, because a lifecycle
--       event that cannot be written (a job exited, the server started) must
--       not fail the work it describes: with opts.write (the server's
--       prisn.store.writer) it is kept and retried until it is written,
--       without, logged and counted. Inside recorder:transaction(fn) it
--       behaves like events.record and tells on_record only after the commit.
--
-- Retention: events.prune keeps at most max_rows events and none older than
-- max_age_ms, deleting the oldest in bounded batches (ids are time-ordered,
-- so every delete is a range at the start of the primary key). The recorder
-- prunes every `prune_every` records; a server timer should call
-- recorder:prune() as well, so a quiet server still ages events out.
local errors = require("prisn.error")
local ids = require("prisn.ids")
local json_value = require("prisn.output.value")
local store = require("prisn.store")
local units = require("prisn.units")
local clock = require("prisn.clock")

local M = {}


M.DEFAULT_LIMIT = 100
M.MAX_MESSAGE_BYTES = 1024
M.SYSTEM_ACTOR = "system"
M.DEFAULT_RETENTION = { max_rows = 100000, max_age_ms = 30 * 24 * 3600 * 1000 }
M.DEFAULT_PRUNE_BATCH = 1000
M.DEFAULT_PRUNE_EVERY = 500

local check = store.check
local TIME_MAX = (1 << 48) - 1

--- Milliseconds since the Unix epoch, now.

-- Validation ----------------------------------------------------------------

local function bad(field, problem, level)
  error(string.format("events: %s %s", field, problem), level + 1)
end

local function check_string(ev, field, required, level)
  local v = ev[field]
  if v == nil then
    if required then bad(field, "is required", level) end
    return
  end
  if type(v) ~= "string" or v == "" then
    bad(field, "must be a non-empty string, got " .. (type(v) == "string" and '""' or type(v)), level)
  end
end

-- "job.created", "server.started", "job.hook.failed": lower-case words
-- joined by dots, at least two of them.
local function valid_action(action)
  return action:match("^[a-z][a-z0-9_]*%.[a-z0-9_.]*[a-z0-9_]$") ~= nil and not action:find("..", 1, true)
end

-- "job/01kaxq3v2m7r", "secret/db": a lower-case kind, a slash, a name.
local function valid_object(object)
  return object:match("^[a-z][a-z0-9_]*/.") ~= nil and #object <= 512
end

local REDACTED = "prisn_[redacted]"

--- `message` made safe to store: prisn tokens redacted, cut to
-- MAX_MESSAGE_BYTES (on a UTF-8 character boundary, ending in "…").
function M.clean_message(message)
  message = message:gsub("prisn_[%w_%-]+", function(token)
    if #token >= #"prisn_" + 24 then return REDACTED end
  end)
  if #message <= M.MAX_MESSAGE_BYTES then return message end
  local cut = M.MAX_MESSAGE_BYTES - 3
  -- Back up over continuation bytes so no character is split.
  while cut > 0 and (message:byte(cut + 1) or 0) & 0xC0 == 0x80 do cut = cut - 1 end
  return message:sub(1, cut) .. "…"
end

-- The row to insert for event `ev`, checked; defaults from `defaults`. A
-- bad field raises blaming the frame `level` up from here (3: the caller's
-- caller).
local function to_row(ev, defaults, level)
  if type(ev) ~= "table" then error("events: an event must be a table, got " .. type(ev), level) end
  check_string(ev, "action", true, level + 1)
  if not valid_action(ev.action) then
    bad("action", string.format("'%s' is not <kind>.<verb> in lower case (like job.created)", ev.action),
      level)
  end
  local actor = ev.actor or defaults.actor or M.SYSTEM_ACTOR
  check_string({ actor = actor }, "actor", true, level + 1)
  check_string(ev, "namespace", false, level + 1)
  check_string(ev, "object", false, level + 1)
  if ev.object and not valid_object(ev.object) then
    bad("object", string.format("'%s' is not <kind>/<name> (like job/01kaxq3v2m7r)", ev.object), level)
  end
  if ev.message ~= nil and type(ev.message) ~= "string" then
    bad("message", "must be a string, got " .. type(ev.message), level)
  end
  local time = ev.time
  if time ~= nil then
    time = type(time) == "number" and math.tointeger(time)
    if not time then bad("time", "must be an integer (ms since the epoch), got " .. tostring(ev.time), level) end
  end
  local message = ev.message
  if message == "" then message = nil end
  return {
    time = time or (defaults.now or clock.now_ms)(),
    namespace = ev.namespace,
    actor = actor,
    action = ev.action,
    object = ev.object,
    message = message and M.clean_message(message),
  }
end

-- Record --------------------------------------------------------------------

local INSERT = "INSERT INTO events (id, time, namespace, actor, action, object, message) "
  .. "VALUES (:id, :time, :namespace, :actor, :action, :object, :message)"

-- Inserts `row` under a fresh id. Returns the event, or nil, message, code.
local function insert(db, row)
  -- An id collides with another process's only when both were made in the
  -- same millisecond with the same 12 random bits: take a fresh one.
  for attempt = 1, 5 do
    row.id = ids.new()
    local ok, message, code = db:run(INSERT, row)
    if ok then return row end
    if code ~= "SQLITE_CONSTRAINT" or attempt == 5 then return nil, message, code end
  end
end

--- Records event `ev` (fields as in the header: action required; actor
-- default "system", time default now) and returns it as stored. Raises on
-- a missing or malformed field (a bug in the caller) and, as a prisn.error,
-- on a store failure. Call it inside the mutation's store.transaction.
function M.record(db, ev)
  local row = to_row(ev, {}, 3)
  local event, message, code = insert(db, row)
  if not event then store.fail(message, code) end
  return event
end

-- Queries -------------------------------------------------------------------

-- The smallest id that can have been made at `ms` or later.
local function first_id_at(ms)
  return ids.encode(math.min(math.max(ms, 0), TIME_MAX) << ids.RANDOM_BITS)
end
M.first_id_at = first_id_at

local function integer_opt(v, field)
  if v == nil then return nil end
  local n = math.tointeger(v)
  if not n then error(string.format("events.list: %s must be an integer, got %s", field, tostring(v)), 3) end
  return n
end

--- Events matching `opts`, newest first (order "desc", the default) or
-- oldest first ("asc"); at most `limit`, taken from that end:
--   namespace      only this namespace (nil: every namespace and the
--                  cluster-wide events — for admins)
--   since_ms       only events whose time is at or after this (ms)
--   after          only events recorded after the event with this id (for
--                  following: pass the last id seen, with order "asc")
--   object         only events about this object ("job/01kaxq3v2m7r")
--   action_prefix  only actions starting with this ("job." for all job events)
--   limit          default 100; 0 for no limit
-- Raises on a bad option; a store failure raises a prisn.error.
function M.list(db, opts)
  opts = opts or {}
  local order = opts.order or "desc"
  if order ~= "asc" and order ~= "desc" then
    error("events.list: order must be asc or desc, got " .. tostring(order), 2)
  end
  local limit = integer_opt(opts.limit, "limit") or M.DEFAULT_LIMIT
  local since = integer_opt(opts.since_ms, "since_ms")
  local where, params = {}, { limit = limit > 0 and limit or -1 }
  if opts.namespace ~= nil then
    -- With an object range, the unary + keeps SQLite off the namespace
    -- index (it would walk every event of the namespace to find a few).
    where[#where + 1] = (opts.object_prefix ~= nil and "+" or "") .. "namespace = :namespace"
    params.namespace = opts.namespace
  end
  if since then
    -- The id bound lets SQLite walk an index range; the time condition is
    -- the one that decides (an event may be recorded after it happened).
    where[#where + 1] = "id >= :since_id AND time >= :since"
    params.since_id, params.since = first_id_at(since), since
  end
  if opts.after ~= nil then
    where[#where + 1] = "id > :after"
    params.after = tostring(opts.after)
  end
  if opts.object ~= nil then
    where[#where + 1] = "object = :object"
    params.object = opts.object
  end
  if opts.object_prefix ~= nil then
    -- A range, so the (object, id) index serves it.
    where[#where + 1] = "object >= :object_lo AND object < :object_hi"
    params.object_lo, params.object_hi = opts.object_prefix, opts.object_prefix .. "\xff"
  end
  if opts.action_prefix ~= nil and opts.action_prefix ~= "" then
    where[#where + 1] = "substr(action, 1, :prefix_len) = :prefix"
    params.prefix, params.prefix_len = opts.action_prefix, #opts.action_prefix
  end
  local rows = check(db:rows("SELECT * FROM events"
    .. (#where > 0 and " WHERE " .. table.concat(where, " AND ") or "")
    .. " ORDER BY id " .. order .. " LIMIT :limit", params))
  return rows
end

--- The event with this id, or nil.
function M.get(db, id)
  return check(db:first("SELECT * FROM events WHERE id = ?", id))
end

-- Retention -----------------------------------------------------------------

--- Deletes the events beyond retention, oldest first, at most `batch` of
-- them per call so one call never holds the write lock for long. `opts`:
-- max_rows (default 100000; keep the newest this many), max_age_ms
-- (default 30 days), batch (default 1000), now (ms). Returns the number
-- deleted and whether more are due (call again soon). A store failure
-- raises a prisn.error.
--
-- Cost, measured with 100,000 events: counting them ~1 ms, finding the cut
-- a walk of at most `batch` index entries from the oldest end, deleting
-- ~3 us an event. Nothing walks the whole table but the count.
function M.prune(db, opts)
  opts = opts or {}
  local max_rows = opts.max_rows or M.DEFAULT_RETENTION.max_rows
  local max_age_ms = opts.max_age_ms or M.DEFAULT_RETENTION.max_age_ms
  local batch = opts.batch or M.DEFAULT_PRUNE_BATCH
  assert(math.type(max_rows) == "integer" and max_rows >= 0, "events.prune: max_rows must be an integer >= 0")
  assert(math.type(batch) == "integer" and batch > 0, "events.prune: batch must be a positive integer")
  -- "~" sorts after every id: no bound.
  local function nth_oldest(n)
    local row = check(db:first("SELECT id FROM events ORDER BY id LIMIT 1 OFFSET :n", { n = n }))
    return row and row.id or "~"
  end
  -- The ids below `cut` go: those older than max_age_ms, but no more than
  -- `batch` of them (below the (batch+1)th oldest)...
  local cut, more = first_id_at((opts.now or clock.now_ms()) - max_age_ms), false
  local limit = nth_oldest(batch)
  if limit < cut then cut, more = limit, true end
  -- ...or, when there are more than max_rows, the oldest of the excess.
  local excess = check(db:first("SELECT count(*) AS n FROM events")).n - max_rows
  if excess > 0 then
    local keep_from = nth_oldest(math.min(excess, batch))
    if keep_from > cut then cut = keep_from end
    if excess > batch then more = true end
  end
  local deleted = check(db:run("DELETE FROM events WHERE id < :cut", { cut = cut }))
  return deleted, more
end

-- Times -----------------------------------------------------------------------


-- Days from 1970-01-01 to the proleptic Gregorian date y-m-d.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * (m > 2 and m - 3 or m + 9) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local MONTH_DAYS = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

--- Parses an ISO 8601 time into ms since the epoch: "2026-11-26T18:46:00Z",
-- "2026-11-26T18:46:00.123+02:00", "2026-11-26T18:46Z", or a date alone
-- ("2026-11-26", midnight UTC). A time of day needs its zone (Z or an
-- offset): the server cannot know the client's. Returns nil otherwise.
function M.parse_time(text)
  if type(text) ~= "string" then return nil end
  local y, mo, d, rest = text:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 or d < 1 or d > MONTH_DAYS[mo] then return nil end
  if mo == 2 and d == 29 and not (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) then return nil end
  local h, mi, s, frac, zone = 0, 0, 0, "", "Z"
  if rest ~= "" then
    local time_of_day
    time_of_day, zone = rest:match("^[T ]([%d:.]+)(.*)$")
    if not time_of_day then return nil end
    h, mi, s, frac = time_of_day:match("^(%d%d):(%d%d):(%d%d)(%.?%d*)$")
    if not h then
      h, mi = time_of_day:match("^(%d%d):(%d%d)$")
      s, frac = "0", ""
    end
    if not h or frac == "." then return nil end
    h, mi, s = tonumber(h), tonumber(mi), tonumber(s)
    if h > 23 or mi > 59 or s > 59 then return nil end
  end
  local offset_min = 0
  if zone ~= "Z" and zone ~= "z" then
    local sign, oh, om = zone:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then return nil end
    offset_min = (tonumber(oh) * 60 + tonumber(om)) * (sign == "+" and 1 or -1)
  end
  local ms = 0
  if frac ~= "" then ms = math.floor(tonumber("0" .. frac) * 1000 + 0.5) end
  local seconds = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset_min * 60
  return seconds * 1000 + ms
end

--- The start of a `since` window: a duration back from `now_ms` ("90s",
-- "1h", "7d") or an ISO 8601 time (see parse_time). Returns ms since the
-- epoch, or nil and a message for anything else.
function M.parse_since(text, now_ms)
  if type(text) ~= "string" or text == "" then
    return nil, "since must be a duration like 1h or a time like 2026-11-26T18:46:00Z"
  end
  local seconds = units.parse_duration(text)
  if seconds then return (now_ms or clock.now_ms()) - math.floor(seconds * 1000 + 0.5) end
  local ms = M.parse_time(text)
  if ms then return ms end
  return nil, string.format("'%s' is neither a duration (like 30m, 1h, 7d) nor a time "
    .. "(like 2026-11-26T18:46:00Z)", text)
end

-- Public shape ------------------------------------------------------------------

local function or_null(v)
  if v == nil then return json_value.null end
  return v
end

--- The fields of the public shape, in the order `prisn events` shows them.
M.PUBLIC_FIELDS = { "id", "time", "namespace", "actor", "action", "object", "message" }

--- The event as the API and the CLI's -o json/yaml show it: every field
-- present, null when absent (namespace null = cluster-wide), time as ISO
-- 8601 UTC.
function M.to_public(ev)
  return {
    id = ev.id,
    time = clock.iso_time(ev.time, json_value.null),
    namespace = or_null(ev.namespace),
    actor = ev.actor,
    action = ev.action,
    object = or_null(ev.object),
    message = or_null(ev.message),
  }
end

-- Recorder ------------------------------------------------------------------------

local Recorder = {}
Recorder.__index = Recorder

-- Where a recorder reports failures without a log: stderr.
local stderr_log = {
  error = function(_, fmt, ...) io.stderr:write("prisn: error: ", string.format(fmt, ...), "\n") end,
}

--- A recorder for the server. `opts`:
--   on_record(event)  called after each event is stored (after the commit,
--                     in recorder:transaction); an error in it is logged
--   log               where failures go: an object with :error(fmt, ...),
--                     as prisn.server.log (default: stderr)
--   actor             the default actor (default "system")
--   now               () -> ms, the clock for default times
--   retention         { max_rows, max_age_ms } for prune (defaults above)
--   prune_every       prune after this many records (default 500; 0 never)
--   write             function(what, fn, opts): a prisn.store.writer's
--                     write, through which events recorded outside a
--                     transaction go (kept and retried while state.db
--                     cannot be written)
-- Fields: `failures` counts events that could not be stored, `recorded`
-- counts those that were (for metrics).
function M.recorder(db, opts)
  opts = opts or {}
  return setmetatable({
    db = db,
    write = opts.write,
    on_record = opts.on_record,
    log = opts.log or stderr_log,
    defaults = { actor = opts.actor, now = opts.now },
    retention = opts.retention or M.DEFAULT_RETENTION,
    prune_every = opts.prune_every or M.DEFAULT_PRUNE_EVERY,
    since_prune = 0,
    failures = 0,
    recorded = 0,
    pending = nil, -- events of the open recorder:transaction, told after commit
  }, Recorder)
end

function Recorder:notify(event)
  if not self.on_record then return end
  local ok, err = pcall(self.on_record, event)
  if not ok then
    self.log:error("events: on_record failed for %s: %s", event.action, tostring(err))
  end
end

-- Counts a stored event and prunes when it is time.
function Recorder:stored()
  self.recorded = self.recorded + 1
  self.since_prune = self.since_prune + 1
  if self.prune_every > 0 and self.since_prune >= self.prune_every and not self.db:in_transaction() then
    self:prune()
  end
end

--- Records `ev` (defaults: actor, time now). Returns the event, or nil and
-- the error when it could not be stored. A malformed event raises (a bug in
-- the caller). Outside a transaction a store failure is never raised: with
-- a `write` the event is handed to it (and nil returned when it waits),
-- without it the failure is logged and counted. Inside one it raises, so
-- the transaction — the mutation the event describes — rolls back with it.
-- In a transaction opened with recorder:transaction, on_record hears of the
-- event after the commit; in one opened otherwise (store.transaction), at
-- once.
function Recorder:record(ev)
  local row = to_row(ev, self.defaults, 3)
  if self.write and not self.db:in_transaction() then
    local stored
    self.write("event " .. row.action, function()
      local event, message, code = insert(self.db, row)
      if not event then
        self.failures = self.failures + 1
        store.fail(message, code)
      end
      return event
    end, { droppable = true, after = function(event)
      stored = event
      self:notify(event)
      self:stored()
    end })
    return stored
  end
  if self.db:in_transaction() then
    local event, message, code = insert(self.db, row)
    if not event then
      self.failures = self.failures + 1
      store.fail(message, code)
    end
    if self.pending then
      self.pending[#self.pending + 1] = event
    else
      self:notify(event)
      self.recorded = self.recorded + 1
    end
    return event
  end
  local event, message, code = insert(self.db, row)
  if not event then
    self.failures = self.failures + 1
    local err = errors.new(code or "SQLITE_ERROR", message or "state database error")
    self.log:error("events: could not record %s%s: %s", row.action, row.object and " " .. row.object or "",
      err.message)
    return nil, err
  end
  self:notify(event)
  self:stored()
  return event
end

--- Runs fn(...) in a store.transaction; the events recorded in it are stored
-- with the mutation (or not at all) and told to on_record after the commit.
-- Returns fn's results; raises what fn (or the commit) raised.
function Recorder:transaction(fn, ...)
  if self.pending then return fn(...) end
  self.pending = {}
  local result = table.pack(pcall(store.transaction, self.db, fn, ...))
  local pending = self.pending
  self.pending = nil
  if not result[1] then error(result[2], 0) end
  for _, event in ipairs(pending) do
    self:notify(event)
    self:stored()
  end
  return table.unpack(result, 2, result.n)
end

--- One bounded prune under the recorder's retention. Returns the number
-- deleted and whether more are due; never raises (a failure is logged and
-- nil returned).
function Recorder:prune()
  self.since_prune = 0
  local opts = { max_rows = self.retention.max_rows, max_age_ms = self.retention.max_age_ms,
    batch = self.retention.batch, now = self.defaults.now and self.defaults.now() }
  local ok, deleted, more = pcall(M.prune, self.db, opts)
  if not ok then
    self.log:error("events: pruning failed: %s", tostring(errors.is(deleted) and deleted.message or deleted))
    return nil
  end
  return deleted, more
end

return M
