-- Fakes for the supervisor's specs (spec/prisn/server/supervisor/*_spec.lua):
-- a loop whose timers fire only when a spec says so, a clock that moves only
-- when told, an in-memory prisn.store.deployments, a server that records its
-- events and log lines, and process methods that start nothing.
--
-- `local fakes = require("prisn.server.supervisor.fakes")` (spec/ is on the
-- path; no embedded module has this name).
local supervisor = require("prisn.server.supervisor")

local M = {}

M.HOME = "/nonexistent/prisn-supervisor-spec"

--- A luv stand-in: timers are recorded (world.uv.timers) and fired by
-- fire()/fire_due(); kill() is recorded in `killed`; hrtime() is `ns`.
function M.uv()
  local uv = { timers = {}, killed = {}, ns = 0, next_port = 40000 }
  function uv.new_timer()
    local t = { closed = false, active = false }
    function t:start(timeout, rep, cb) self.timeout, self.rep, self.cb, self.active = timeout, rep, cb, true end
    function t:stop() self.active = false end
    function t:close() self.closed, self.active = true, false end
    function t:is_closing() return self.closed end
    function t:unref() self.unrefed = true end
    uv.timers[#uv.timers + 1] = t
    return t
  end
  function uv.kill(pid, sig) uv.killed[#uv.killed + 1] = { pid = pid, signal = sig } end
  function uv.hrtime() return uv.ns end
  function uv.fs_stat() return nil end
  function uv.fs_utime() return true end
  function uv.new_tcp()
    uv.next_port = uv.next_port + 1
    local port = uv.next_port
    return { bind = function() return true end, getsockname = function() return { port = port } end,
      close = function() end }
  end
  --- The active timers, in creation order.
  function uv.active()
    local list = {}
    for _, t in ipairs(uv.timers) do if t.active then list[#list + 1] = t end end
    return list
  end
  --- Fires timer `t` once (a one-shot stops first, as libuv does).
  function uv.fire(t)
    assert(t.active, "the timer is not running")
    if t.rep == 0 then t.active = false end
    t.cb()
  end
  --- Fires every active timer due within `ms` (one round).
  function uv.fire_due(ms)
    for _, t in ipairs(uv.active()) do
      if t.timeout <= ms and t.active then uv.fire(t) end
    end
  end
  return uv
end

--- A clock that reads `ms` (epoch milliseconds) until a spec moves it.
function M.clock(ms)
  local c = { ms = ms or 1800000000000 }
  function c.now_ms() return c.ms end
  function c.advance(by_ms) c.ms = c.ms + by_ms end
  return c
end

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

--- prisn.store.deployments in memory, the named operations the supervisor
-- uses. `store.rows[ns/name]` is the deployment, `store.revs[ns/name]` its
-- revisions by number, `store.insts[ns/name]` its instance records.
function M.store()
  local s = { rows = {}, revs = {}, insts = {}, numbers = {} }
  local function k(ns, name) return ns .. "/" .. name end
  --- Test set-up: a deployment `fields` (namespace, name, revision,
  -- replicas, ...) with revisions { [n] = { state, spec } }.
  function s.add(fields, revisions)
    local key = k(fields.namespace, fields.name)
    s.rows[key] = copy(fields)
    s.revs[key] = {}
    for n, rev in pairs(revisions) do
      s.revs[key][n] = { revision = n, state = rev.state, spec = rev.spec or { script = "app.py" } }
    end
    s.insts[key] = s.insts[key] or {}
    s.numbers[key] = s.numbers[key] or 0
  end
  --- Test set-up: a new revision `n` that the deployment now points at.
  function s.new_revision(ns, name, n, spec)
    s.revs[k(ns, name)][n] = { revision = n, state = "rolling_out", spec = spec or { script = "app.py" } }
    s.rows[k(ns, name)].revision = n
  end
  function s.rev_state(ns, name, n) return s.revs[k(ns, name)][n].state end

  function s.get(_, ns, name)
    local row = s.rows[k(ns, name)]
    return row and copy(row)
  end
  function s.list()
    local list = {}
    for _, row in pairs(s.rows) do list[#list + 1] = copy(row) end
    table.sort(list, function(a, b) return k(a.namespace, a.name) < k(b.namespace, b.name) end)
    return list
  end
  function s.revisions(_, ns, name)
    local list = {}
    for _, rev in pairs(s.revs[k(ns, name)] or {}) do list[#list + 1] = copy(rev) end
    table.sort(list, function(a, b) return a.revision < b.revision end)
    return list
  end
  function s.revision(_, ns, name, n)
    local rev = (s.revs[k(ns, name)] or {})[n]
    return rev and copy(rev)
  end
  function s.set_revision_state(_, ns, name, n, state, message)
    local rev = s.revs[k(ns, name)][n]
    rev.state, rev.message = state, message
  end
  function s.update(_, ns, name, fields)
    for f, v in pairs(fields) do s.rows[k(ns, name)][f] = v end
  end
  function s.next_number(_, ns, name)
    local key = k(ns, name)
    s.numbers[key] = s.numbers[key] + 1
    return s.numbers[key]
  end
  function s.save_instance(_, fields)
    local key = k(fields.namespace, fields.deployment)
    s.insts[key][fields.number] = copy(fields)
    if fields.number > s.numbers[key] then s.numbers[key] = fields.number end
  end
  function s.delete_instance(_, ns, name, number) s.insts[k(ns, name)][number] = nil end
  function s.instances(_, ns, name)
    local list = {}
    for _, row in pairs(s.insts[k(ns, name)] or {}) do list[#list + 1] = copy(row) end
    table.sort(list, function(a, b) return a.number < b.number end)
    return list
  end
  return s
end

-- A recorder of log lines: log.lines = { { level, text } }.
local function log()
  local l = { lines = {} }
  for _, level in ipairs({ "error", "warn", "info", "debug" }) do
    l[level] = function(self, fmt, ...)
      self.lines[#self.lines + 1] = { level = level, text = string.format(fmt, ...) }
    end
  end
  return l
end

-- A counter with labels: counts[label].
local function counter()
  local c = { counts = {} }
  function c.labels(_, label)
    return { inc = function() c.counts[label] = (c.counts[label] or 0) + 1 end }
  end
  return c
end

--- A supervisor driven by fakes, and the fakes: { sup, uv, clock, store,
-- server, events (recorded), started (start_process calls), log }.
-- Processes are never started: start_process gives the instance a fake pid.
-- opts.policies replaces prisn.policies; opts.still_ours the pid check.
function M.world(opts)
  opts = opts or {}
  local w = { uv = M.uv(), clock = M.clock(), store = M.store(), events = {}, started = {}, next_pid = 1000 }
  w.server = { db = {}, home = M.HOME, log = log(), metrics = { rollouts = counter(), instance_exits = counter() },
    events = { record = function(_, e) w.events[#w.events + 1] = e end } }
  w.log = w.server.log
  w.sup = supervisor.new(w.server, { uv = w.uv, clock = w.clock, store = { deployments = w.store },
    policies = opts.policies, still_ours = opts.still_ours or function() return false end })
  w.sup.start_process = function(self, d, inst)
    w.started[#w.started + 1] = inst
    if inst.removing or d.deleted then return end
    self:set_state(d, inst, inst.restarts > 0 and "restarting" or "starting")
    w.next_pid = w.next_pid + 1
    inst.pid = w.next_pid
    inst.started_at = w.clock.now_ms()
    inst.first_spawned_at = inst.first_spawned_at or inst.started_at
  end

  --- The events recorded with `action`, their messages in order.
  function w.messages(action)
    local list = {}
    for _, e in ipairs(w.events) do if e.action == action then list[#list + 1] = e.message or "" end end
    return list
  end
  --- Every instance of d that was SIGTERMed exits (as prisn asked).
  function w.stop_killed(d)
    local killed = {}
    for _, inst in pairs(d.instances) do
      if inst.kill_timer and inst.pid then killed[#killed + 1] = inst end
    end
    for _, inst in ipairs(killed) do w.sup:exited(d, inst, { signal = "SIGTERM" }) end
    return #killed > 0
  end
  --- Every running instance of d's current revision that is not healthy
  -- turns healthy.
  function w.heal(d)
    local starting = {}
    for _, inst in pairs(d.instances) do
      if inst.pid and not inst.healthy and not inst.removing and inst.revision == d.row.revision then
        starting[#starting + 1] = inst
      end
    end
    -- One at a time: each turning healthy lets the rollout take its next step.
    if starting[1] then w.sup:health_changed(d, starting[1], "healthy") end
    return #starting > 0
  end
  --- Lets d's instances start, serve and drain until nothing changes.
  function w.settle(d)
    for _ = 1, 50 do
      w.uv.fire_due(0) -- drains start with a 0 ms timer
      local changed = w.heal(d)
      changed = w.stop_killed(d) or changed
      if not changed then return end
    end
    error("the deployment did not settle")
  end
  return w
end

return M
