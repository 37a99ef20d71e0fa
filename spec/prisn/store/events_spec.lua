-- prisn.store.events: recording events (defaults, validation, what a message
-- may carry), listing with filters and in order, retention, the recorder
-- the server uses, and the time parsing behind `since`.
local clock = require("prisn.clock")
local uv = require("luv")
local errors = require("prisn.error")
local ids = require("prisn.ids")
local output = require("prisn.output")
local store = require("prisn.store")
local events = require("prisn.store.events")
local remove_tree = require("support").remove_tree
local schema = require("prisn.store.migrations")

-- Events raise plain errors for misuse (not prisn.errors): any error will do.
local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return err
end

-- A stand-in for prisn.server.log that keeps "<level> <message>" lines.
local function fake_log(lines)
  local log = {}
  for _, level in ipairs({ "info", "warn", "error" }) do
    log[level] = function(_, fmt, ...) lines[#lines + 1] = level .. " " .. string.format(fmt, ...) end
  end
  return log
end

local T = 1795718760000 -- 2026-11-26T18:46:00.000Z
local HOUR = 3600 * 1000
local DAY = 24 * HOUR

describe("prisn.store.events", function()
  local home, db

  before_each(function()
    home = assert(uv.fs_mkdtemp("/tmp/prisn-spec-XXXXXX"))
    db = store.open(home, { migrations = { schema.events } })
  end)

  after_each(function()
    db:close()
    remove_tree(home)
  end)

  -- An event stored as if recorded at `ms` (the id says when it was recorded).
  local seq = 0
  local function put(ms, fields)
    seq = seq + 1
    local row = { id = ids.encode((ms << ids.RANDOM_BITS) | seq), time = ms, actor = "system",
      action = "job.created" }
    for k, v in pairs(fields or {}) do row[k] = v end
    assert(db:run("INSERT INTO events (id, time, namespace, actor, action, object, message) "
      .. "VALUES (:id, :time, :namespace, :actor, :action, :object, :message)", row))
    return row.id
  end

  local function actions(list)
    local out = {}
    for i, ev in ipairs(list) do out[i] = ev.action end
    return out
  end

  local function count()
    return db:first("SELECT count(*) AS n FROM events").n
  end

  describe("record", function()
    it("stores an event with an id, the time now and the system actor", function()
      local before = clock.now_ms()
      local ev = events.record(db, { namespace = "ops", action = "job.created", object = "job/01kaxq3v2m7r",
        message = "backup.py queued" })
      assert.is_true(ids.valid(ev.id))
      assert.is_true(ev.time >= before and ev.time <= clock.now_ms())
      assert.equal("integer", math.type(ev.time))
      assert.equal("system", ev.actor)
      assert.same(ev, events.get(db, ev.id))
    end)

    it("keeps a given actor and time, and stores a cluster-wide event without namespace or object", function()
      local ev = events.record(db, { actor = "token:ci", action = "server.started", time = T })
      local stored = events.get(db, ev.id)
      assert.same({ id = ev.id, time = T, actor = "token:ci", action = "server.started" }, stored)
    end)

    it("gives events recorded one after another increasing ids", function()
      local a = events.record(db, { action = "job.created" })
      local b = events.record(db, { action = "job.started" })
      local c = events.record(db, { action = "job.finished" })
      assert.is_true(a.id < b.id and b.id < c.id)
    end)

    it("refuses malformed events, naming the field", function()
      assert.matches("events: action is required", raised(events.record, db, {}))
      assert.matches("events: action 'JobCreated' is not <kind>.<verb>",
        raised(events.record, db, { action = "JobCreated" }))
      assert.matches("is not <kind>.<verb>", raised(events.record, db, { action = "job" }))
      assert.matches("is not <kind>.<verb>", raised(events.record, db, { action = "job..x" }))
      assert.matches("events: object 'job' is not <kind>/<name>",
        raised(events.record, db, { action = "job.created", object = "job" }))
      assert.matches('events: namespace must be a non%-empty string, got ""',
        raised(events.record, db, { action = "job.created", namespace = "" }))
      assert.matches("events: message must be a string, got table",
        raised(events.record, db, { action = "job.created", message = {} }))
      assert.matches("events: time must be an integer",
        raised(events.record, db, { action = "job.created", time = 1.5 }))
      assert.matches("events: an event must be a table", raised(events.record, db, "job.created"))
      assert.equal(0, count())
    end)

    it("blames the caller's line for a malformed event", function()
      local err = raised(function() events.record(db, { action = "x" }) end)
      assert.matches("^[^:]*events_spec%.lua:%d+: events: action", err)
    end)

    it("cuts a message longer than 1 KiB at a character boundary", function()
      local long = string.rep("é", 600) -- 1200 bytes
      local ev = events.record(db, { action = "job.created", message = long })
      assert.is_true(#ev.message <= 1024)
      assert.truthy(utf8.len(ev.message))
      assert.equal("…", ev.message:sub(-3))
      assert.equal(string.rep("é", 510) .. "…", ev.message)
      assert.equal(ev.message, events.get(db, ev.id).message)
    end)

    it("keeps a message of exactly 1 KiB", function()
      local ev = events.record(db, { action = "job.created", message = string.rep("a", 1024) })
      assert.equal(string.rep("a", 1024), ev.message)
    end)

    it("redacts anything shaped like a prisn token from a message", function()
      local token = "prisn_" .. string.rep("Ab3", 12)
      local ev = events.record(db, { action = "token.created", message = "created " .. token .. " for ci" })
      assert.equal("created prisn_[redacted] for ci", ev.message)
      assert.is_nil(events.get(db, ev.id).message:find(token, 1, true))
      ev = events.record(db, { action = "token.created", message = "prisn_Zx-9_q2mK-aP7_Lw0eRt5-YuI8oP1_aa." })
      assert.equal("prisn_[redacted].", ev.message)
      -- short names that merely start with prisn_ stay
      ev = events.record(db, { action = "token.created", message = "name prisn_ci" })
      assert.equal("name prisn_ci", ev.message)
    end)

    it("drops an empty message", function()
      local ev = events.record(db, { action = "job.created", message = "" })
      assert.is_nil(events.get(db, ev.id).message)
    end)

    it("raises a prisn.error when the store fails", function()
      db:close()
      db = store.open(home, { migrations = { schema.events, "DROP TABLE events" } })
      local err = raised(events.record, db, { action = "job.created" })
      assert.is_true(errors.is(err))
      assert.equal("SQLITE_ERROR", err.code)
      assert.matches("no such table: events", err.message)
    end)
  end)

  describe("list", function()
    before_each(function()
      put(T, { namespace = "a", action = "job.created", object = "job/1" })
      put(T + 1, { namespace = "b", action = "job.created", object = "job/2" })
      put(T + 2, { action = "token.created", object = "token/x", actor = "token:admin" })
      put(T + 3, { namespace = "a", action = "job.started", object = "job/1" })
      put(T + 4, { namespace = "a", action = "secret.set", object = "secret/db" })
      put(T + 5, { namespace = "a", action = "job.finished", object = "job/1", message = "exited 0" })
    end)

    it("lists every event newest first, or oldest first", function()
      assert.same({ "job.finished", "secret.set", "job.started", "token.created", "job.created", "job.created" },
        actions(events.list(db)))
      assert.same({ "job.created", "job.created", "token.created", "job.started", "secret.set", "job.finished" },
        actions(events.list(db, { order = "asc" })))
    end)

    it("keeps a namespace to its own events: no other namespace's, no cluster-wide ones", function()
      local list = events.list(db, { namespace = "a", order = "asc" })
      assert.same({ "job.created", "job.started", "secret.set", "job.finished" }, actions(list))
      for _, ev in ipairs(list) do assert.equal("a", ev.namespace) end
      assert.same({ "job.created" }, actions(events.list(db, { namespace = "b" })))
      assert.same({}, events.list(db, { namespace = "c" }))
    end)

    it("filters by object and by action prefix", function()
      assert.same({ "job.finished", "job.started", "job.created" }, actions(events.list(db, { object = "job/1" })))
      assert.same({ "job.finished", "job.started", "job.created", "job.created" },
        actions(events.list(db, { action_prefix = "job." })))
      assert.same({ "token.created" }, actions(events.list(db, { action_prefix = "token." })))
      assert.same({ "secret.set" }, actions(events.list(db, { namespace = "a", action_prefix = "secret" })))
      assert.same({ "job.finished", "job.started", "job.created" },
        actions(events.list(db, { namespace = "a", object_prefix = "job/" })))
      assert.same({ "job.created" }, actions(events.list(db, { namespace = "b", object_prefix = "job/" })))
      assert.same({}, events.list(db, { object_prefix = "job/1x" }))
    end)

    it("takes at most limit events from the chosen end; 0 is no limit", function()
      assert.same({ "job.finished", "secret.set" }, actions(events.list(db, { limit = 2 })))
      assert.same({ "job.created", "job.created" }, actions(events.list(db, { limit = 2, order = "asc" })))
      assert.equal(6, #events.list(db, { limit = 0 }))
    end)

    it("defaults to the newest 100", function()
      for i = 1, 120 do put(T + 10 + i, { namespace = "many" }) end
      local list = events.list(db, { namespace = "many" })
      assert.equal(100, #list)
      assert.equal(T + 130, list[1].time)
    end)

    it("keeps events at or after since_ms, by when they happened", function()
      assert.same({ "job.finished", "secret.set" }, actions(events.list(db, { since_ms = T + 4 })))
      -- recorded now, but it happened two hours ago
      events.record(db, { namespace = "now", action = "job.finished", time = clock.now_ms() - 2 * HOUR })
      events.record(db, { namespace = "now", action = "job.started", time = clock.now_ms() - 60000 })
      assert.same({ "job.started" },
        actions(events.list(db, { namespace = "now", since_ms = clock.now_ms() - HOUR })))
    end)

    it("follows: events recorded after a given id", function()
      local all = events.list(db, { order = "asc" })
      assert.same({ "job.started", "secret.set" },
        actions(events.list(db, { after = all[3].id, order = "asc", limit = 2 })))
      assert.same({}, events.list(db, { after = all[6].id }))
    end)

    it("refuses a bad order or limit", function()
      assert.matches("order must be asc or desc", raised(events.list, db, { order = "up" }))
      assert.matches("limit must be an integer", raised(events.list, db, { limit = "ten" }))
    end)
  end)

  describe("prune", function()
    it("keeps the newest max_rows events", function()
      for i = 1, 10 do put(T + i, { message = tostring(i) }) end
      local deleted, more = events.prune(db, { max_rows = 4, now = T + 100 })
      assert.equal(6, deleted)
      assert.is_false(more)
      local left = events.list(db, { order = "asc" })
      assert.same({ "7", "8", "9", "10" }, { left[1].message, left[2].message, left[3].message, left[4].message })
    end)

    it("deletes events older than max_age_ms", function()
      put(T - 40 * DAY)
      put(T - 31 * DAY)
      put(T - 29 * DAY)
      put(T - HOUR)
      assert.equal(2, (events.prune(db, { now = T })))
      assert.equal(2, count())
      assert.equal(1, (events.prune(db, { now = T, max_age_ms = 2 * DAY })))
      assert.equal(0, (events.prune(db, { now = T, max_age_ms = 2 * DAY })))
    end)

    it("applies whichever bound removes more", function()
      for i = 1, 5 do put(T - 40 * DAY + i) end
      for i = 1, 5 do put(T + i) end
      assert.equal(7, (events.prune(db, { now = T, max_rows = 3 })))
      assert.equal(3, count())
    end)

    it("deletes at most batch events per call and says when more are due", function()
      for i = 1, 10 do put(T + i) end
      local deleted, more = events.prune(db, { max_rows = 1, batch = 4, now = T })
      assert.equal(4, deleted)
      assert.is_true(more)
      deleted, more = events.prune(db, { max_rows = 1, batch = 4, now = T })
      assert.same({ 4, true }, { deleted, more })
      deleted, more = events.prune(db, { max_rows = 1, batch = 4, now = T })
      assert.same({ 1, false }, { deleted, more })
      assert.equal(1, count())
      assert.equal(T + 10, events.list(db)[1].time)
    end)

    it("empties the table with max_rows 0, and does nothing on an empty one", function()
      for i = 1, 3 do put(T + i) end
      assert.equal(3, (events.prune(db, { max_rows = 0, now = T })))
      assert.same({ 0, false }, { events.prune(db, { now = T }) })
    end)
  end)

  describe("recorder", function()
    it("fills the default actor and time, stores, and tells on_record", function()
      local told = {}
      local rec = events.recorder(db, { actor = "system", now = function() return T end,
        on_record = function(ev) told[#told + 1] = ev end })
      local ev = rec:record({ namespace = "a", action = "job.started", object = "job/1" })
      assert.equal(T, ev.time)
      assert.equal("system", ev.actor)
      assert.same({ ev }, told)
      assert.same(ev, events.get(db, ev.id))
      assert.equal(1, rec.recorded)
    end)

    it("never raises for a store failure outside a transaction: it logs and counts it", function()
      db:close()
      db = store.open(home, { migrations = { schema.events, "DROP TABLE events" } })
      local logged = {}
      local rec = events.recorder(db, { log = fake_log(logged) })
      local ev, err = rec:record({ namespace = "a", action = "job.finished", object = "job/1" })
      assert.is_nil(ev)
      assert.is_true(errors.is(err))
      assert.equal(1, rec.failures)
      assert.equal(1, #logged)
      assert.matches("^error events: could not record job.finished job/1: .*no such table: events", logged[1])
    end)

    it("still raises for a malformed event", function()
      local rec = events.recorder(db)
      assert.matches("action is required", raised(rec.record, rec, { namespace = "a" }))
    end)

    it("logs an error raised by on_record and keeps the event", function()
      local logged = {}
      local rec = events.recorder(db, { on_record = function() error("boom") end,
        log = fake_log(logged) })
      local ev = rec:record({ action = "server.started" })
      assert.truthy(ev)
      assert.equal(1, count())
      assert.matches("^error events: on_record failed for server.started: .*boom", logged[1])
    end)

    it("commits events with their mutation, and tells on_record only after the commit", function()
      db:exec("CREATE TABLE things (x)")
      local told = {}
      local rec = events.recorder(db, { on_record = function(ev) told[#told + 1] = ev.action end })
      local result = rec:transaction(function()
        db:exec("INSERT INTO things VALUES (1)")
        rec:record({ namespace = "a", action = "thing.created", object = "thing/1" })
        assert.same({}, told)
        return "done"
      end)
      assert.equal("done", result)
      assert.same({ "thing.created" }, told)
      assert.equal(1, count())
    end)

    it("rolls the event back with a failed mutation and tells nobody", function()
      db:exec("CREATE TABLE things (x)")
      local told = {}
      local rec = events.recorder(db, { on_record = function(ev) told[#told + 1] = ev.action end })
      local err = raised(rec.transaction, rec, function()
        rec:record({ namespace = "a", action = "thing.created", object = "thing/1" })
        db:exec("INSERT INTO things VALUES (1)")
        error("mutation failed", 0)
      end)
      assert.equal("mutation failed", err)
      assert.same({}, told)
      assert.equal(0, count())
      assert.equal(0, db:first("SELECT count(*) AS n FROM things").n)
    end)

    it("fails the mutation when its event cannot be stored", function()
      db:close()
      db = store.open(home, { migrations = { schema.events, "DROP TABLE events; CREATE TABLE things (x)" } })
      local rec = events.recorder(db, { log = fake_log({}) })
      local err = raised(rec.transaction, rec, function()
        db:exec("INSERT INTO things VALUES (1)")
        rec:record({ namespace = "a", action = "thing.created", object = "thing/1" })
      end)
      assert.is_true(errors.is(err))
      assert.matches("no such table: events", err.message)
      assert.equal(0, db:first("SELECT count(*) AS n FROM things").n)
      assert.equal(1, rec.failures)
    end)

    it("prunes every prune_every records under its retention", function()
      local rec = events.recorder(db, { prune_every = 5, retention = { max_rows = 3, max_age_ms = DAY } })
      for _ = 1, 4 do rec:record({ action = "job.created" }) end
      assert.equal(4, count())
      rec:record({ action = "job.created" })
      assert.equal(3, count())
      for _ = 1, 4 do rec:record({ action = "job.created" }) end
      assert.equal(7, count())
      assert.same({ 4, false }, { rec:prune() })
      assert.equal(3, count())
    end)

    it("logs a failed prune instead of raising", function()
      db:close()
      db = store.open(home, { migrations = { schema.events, "DROP TABLE events" } })
      local logged = {}
      local rec = events.recorder(db, { log = fake_log(logged) })
      assert.is_nil(rec:prune())
      assert.matches("^error events: pruning failed: .*no such table: events", logged[1])
    end)
  end)

  describe("public shape", function()
    it("has every field, null when absent, and the time in ISO 8601 UTC", function()
      assert.same({ id = "01kaxq3v2m7r", time = "2026-11-26T18:46:00.123Z", namespace = output.null,
        actor = "system", action = "server.started", object = output.null, message = output.null },
        events.to_public({ id = "01kaxq3v2m7r", time = T + 123, actor = "system", action = "server.started" }))
      assert.same({ id = "01kaxq3v2m7r", time = "2026-11-26T18:46:00.000Z", namespace = "a",
        actor = "token:ci", action = "job.created", object = "job/1", message = "m" },
        events.to_public({ id = "01kaxq3v2m7r", time = T, namespace = "a", actor = "token:ci",
          action = "job.created", object = "job/1", message = "m" }))
    end)
  end)

  describe("times", function()
    it("parses ISO 8601 times with a zone, and dates as midnight UTC", function()
      assert.equal(T, events.parse_time("2026-11-26T18:46:00Z"))
      assert.equal(T + 123, events.parse_time("2026-11-26T18:46:00.123Z"))
      assert.equal(T + 500, events.parse_time("2026-11-26T18:46:00.5z"))
      assert.equal(T, events.parse_time("2026-11-26T20:46:00+02:00"))
      assert.equal(T, events.parse_time("2026-11-26T13:16:00-0530"))
      assert.equal(T, events.parse_time("2026-11-26 18:46Z"))
      assert.equal(T - (18 * 60 + 46) * 60000, events.parse_time("2026-11-26"))
      assert.equal(0, events.parse_time("1970-01-01T00:00:00Z"))
      assert.equal(951782400000, events.parse_time("2000-02-29"))
      assert.equal(T, events.parse_time(clock.iso_time(T)))
    end)

    it("refuses anything else", function()
      for _, text in ipairs({ "2026-11-26T18:46:00", "2026-13-01", "2026-02-29", "2026-11-31",
        "2026-11-26T24:00:00Z", "2026-11-26T18:60Z", "26-11-26", "2026-11-26T18:46:00.Z", "yesterday",
        "2026-11-26T18:46:00+2" }) do
        assert.is_nil(events.parse_time(text), text)
      end
    end)

    it("reads since as a duration back from now or as a time", function()
      assert.equal(T - HOUR, events.parse_since("1h", T))
      assert.equal(T - 90 * 60000, events.parse_since("1h30m", T))
      assert.equal(T - 1500, events.parse_since("1.5", T))
      assert.equal(T, events.parse_since("2026-11-26T18:46:00Z", T + DAY))
      local ms, err = events.parse_since("soon", T)
      assert.is_nil(ms)
      assert.equal("'soon' is neither a duration (like 30m, 1h, 7d) nor a time (like 2026-11-26T18:46:00Z)", err)
      assert.is_nil((events.parse_since("", T)))
    end)
  end)
end)
