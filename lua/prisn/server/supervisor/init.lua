-- prisn.server.supervisor: keeps every deployment's instances running.
--
-- For each deployment the supervisor holds the desired state (replicas, the
-- current revision, the public port) and the actual one (instances and
-- their processes), and reconciles them whenever something changes: an
-- instance exited, turned healthy or unhealthy, a deploy, a scale, a timer.
-- This file is that reconcile and the public operations the server and the
-- API call (load, get, apply, delete, recover, stop_all, counts, hook); the
-- rest lives in one part per concern, each a set of methods of the same
-- supervisor object:
--
--   instance   one process: start, output, health, exit and restart (the
--              restart policy, policies/restart.lua), drain and removal
--   rollout    the revision state machine: a new revision rolls out one
--              instance at a time (policies/rollout.lua), is rolled back
--              when it never serves
--   recover    after a server (re)start: adopt what still runs, restart
--              the rest
--   autoscale  replicas from CPU use (policies/autoscale.lua)
--   usage      CPU time and memory of each instance, sampled on a timer
--              for the API
--   names      what things are called: deployment keys, instance and
--              cgroup names
--
-- A deployment's port is opened in the data plane (prisn.server.dataplane:
-- a process of its own that outlives the server), d.proxy its handle there.
-- Removing an instance drains it: out of the pool, open
-- connections get up to the grace to finish, then SIGTERM to its group,
-- SIGKILL after the grace. Everything the supervisor knows is also in
-- state.db (prisn.store.deployments), so a restarted server re-adopts
-- instances that are still alive and starts the ones that are gone.
--
-- What the parts use from outside comes in through M.new's `deps` (the
-- loop, the clock, the store, the policies, the pid check), defaulting to
-- the real ones: specs drive each part with fakes.
local uv = require("luv")
local errors = require("prisn.error")
local clock = require("prisn.clock")
local policies = require("prisn.policies")
local deployments = require("prisn.store.deployments")
local secrets = require("prisn.store.secrets")
local limits = require("prisn.exec.limits")
local instance_exec = require("prisn.exec.instance")
local dataplane = require("prisn.server.dataplane")
local instance = require("prisn.server.supervisor.instance")
local names = require("prisn.server.supervisor.names")
local rollout = require("prisn.server.supervisor.rollout")
local recover = require("prisn.server.supervisor.recover")
local autoscale = require("prisn.server.supervisor.autoscale")
local usage = require("prisn.server.supervisor.usage")

local M = {}

M.DEFAULT_GRACE = instance.DEFAULT_GRACE
M.DRAIN_POLL_MS = instance.DRAIN_POLL_MS
M.ADOPTED_POLL_MS = instance.ADOPTED_POLL_MS
M.NONE_HEALTHY_AFTER_MS = instance.NONE_HEALTHY_AFTER_MS
M.ROLLOUT_TICK_MS = rollout.ROLLOUT_TICK_MS
M.AUTOSCALE_INTERVAL_MS = autoscale.AUTOSCALE_INTERVAL_MS
M.usage = autoscale.usage
M.sampled_usage = usage.sampled

local Sup = {}
Sup.__index = Sup

for _, part in ipairs({ instance, rollout, recover, autoscale, usage }) do
  for name, method in pairs(part.methods) do
    assert(Sup[name] == nil, "two parts of the supervisor define " .. name)
    Sup[name] = method
  end
end

local key, close_handle, sorted_instances = names.key, instance.close_handle, instance.sorted

--- A supervisor for `server` (db, home, log, events, metrics, metrics_registry,
-- keyring, hooks, state_writer). `deps` (optional, for specs) replaces what
-- the parts use: uv (the luv loop), clock (prisn.clock), store ({ deployments,
-- secrets }: prisn.store.*), policies (prisn.policies), still_ours(pid,
-- started_ms) (whether a recorded pid is still that instance).
function M.new(server, deps)
  deps = deps or {}
  return setmetatable({
    server = server, deployments = {}, launches = {}, used_ports = {}, on_pool_change = {},
    uv = deps.uv or uv,
    clock = deps.clock or clock,
    store = deps.store or { deployments = deployments, secrets = secrets },
    policies = deps.policies or policies,
    still_ours = deps.still_ours or recover.still_ours,
  }, Sup)
end

-- The policy `name`: the operator's in $PRISN_HOME/policies, or the built-in.
function Sup:policy(name)
  return self.policies.get(self.server.home, name, self.server.log)
end

--- `fn` wrapped for a luv callback: an error is logged and the server goes
-- on (an error escaping a callback would end the whole process).
function Sup:guard(what, fn)
  return errors.guard(what, fn, function(err) self.server.log:error("supervisor: %s: %s", what, tostring(err)) end)
end

function Sup:event(d, action, object, message, actor)
  if self.server.events then
    self.server.events:record({ namespace = d.ns, actor = actor or "system", action = action, object = object,
      message = message })
  end
end

--- Fires hook `name` with `event` (prisn.hooks): the files in
-- $PRISN_HOME/hooks and those of deployment d's current revision.
function Sup:hook(name, event, d, callback)
  local hooks = self.server.hooks
  if not hooks then
    if callback then callback({ vetoed = false, ran = 0, failures = {} }) end
    return
  end
  local spec = d and d.specs and d.specs[d.row.revision]
  hooks:fire(name, event, { files = spec and spec.hooks, namespace = d and d.ns }, callback)
end

-- Records ------------------------------------------------------------------

-- Instance and revision records go through the server's writer: kept in
-- order and retried while state.db cannot take them, only the latest state
-- of an instance kept meanwhile (the key). `settled`, when given, is called
-- once the record is written, or has failed for good. Returns true when it
-- was written at once.
function Sup:write(what, record_key, fn, settled)
  local db = self.server.db
  if not self.server.state_writer then
    fn(db)
    if settled then settled() end
    return true
  end
  return self.server.state_writer:write(what, function() fn(db) end,
    { key = record_key, after = settled, on_error = settled }) == true
end

-- Calls and forgets what waits for the record of inst (Sup:save).
local function recorded(inst)
  local waiting = inst.on_recorded
  inst.on_recorded = nil
  for _, fn in ipairs(waiting or {}) do fn() end
end

--- Records inst. `on_recorded`, when given, is called once a record with
-- what inst holds now is written (or has failed for good): a later save
-- of inst replaces one still waiting, so what waited goes with the one
-- that replaced it. Returns true when it was written at once.
function Sup:save(d, inst, on_recorded)
  local fields = {
    namespace = d.ns, deployment = d.name, number = inst.number, revision = inst.revision, port = inst.port,
    pid = inst.pid, started_at = inst.started_at, state = inst.state, restarts = inst.restarts,
    last_exit = inst.last_exit, created_at = inst.created_at,
  }
  if on_recorded then
    inst.on_recorded = inst.on_recorded or {}
    inst.on_recorded[#inst.on_recorded + 1] = on_recorded
  end
  local name = key(d.ns, d.name) .. "/" .. inst.number
  return self:write("instance " .. name, "instance/" .. name, function(db)
    self.store.deployments.save_instance(db, fields)
  end, inst.on_recorded and function() recorded(inst) end)
end

function Sup:set_state(d, inst, state)
  if inst.state == state then return end
  inst.state = state
  if not inst.forgotten then self:save(d, inst) end
end

-- The port and its pool ------------------------------------------------------

--- Calls each fn(d) of self.on_pool_change (the DNS records, prisn.server.dns)
-- when the ready instances of d may have changed, or d was deleted.
function Sup:pool_changed(d)
  for _, fn in ipairs(self.on_pool_change) do fn(d) end
end

--- Whether instance inst serves: healthy, running, not draining; or re-adopted
-- at a server start after it served, until its first health result (the data
-- plane kept it in the pool while the server was away: it stays). One
-- restarted at that start waits for its health check like any other.
function M.serving(inst)
  return (inst.healthy or (inst.recovering and inst.adopted)) == true and inst.pid ~= nil and not inst.removing
end

-- The load balancer's pool: the instances serving.
function Sup:update_pool(d)
  self:pool_changed(d)
  if not d.proxy then return end
  local backends = {}
  for _, inst in pairs(d.instances) do
    if M.serving(inst) then
      backends[#backends + 1] = { id = names.name(d, inst), host = "127.0.0.1", port = inst.port,
        number = inst.number }
    end
  end
  table.sort(backends, function(a, b) return a.number < b.number end)
  d.proxy:set_backends(backends)
end

-- The server's data plane (started by the server; in process when a spec
-- gives the supervisor a server without one).
function Sup:dataplane()
  local server = self.server
  if not server.dataplane then
    server.dataplane = dataplane.new(server, { in_process = true })
    server.dataplane:start()
  end
  return server.dataplane
end

-- Opens (or moves, or closes) the deployment's public port. Returns true or
-- nil, message, code.
function Sup:open_port(d)
  if d.proxy then
    if d.proxy_port == d.row.port then return true end
    d.proxy:close(function() end)
    d.proxy = nil
  end
  if not d.row.port then return true end
  local listener, err, code = self:dataplane():open_port({
    host = d.row.host or "0.0.0.0", port = d.row.port, strategy = d.row.strategy, name = key(d.ns, d.name),
  }, function(message)
    -- Learnt later (a data plane restarted, a sync after the server's start).
    if d.proxy == nil or d.deleted then return end
    d.proxy = nil
    self:event(d, "deployment.port_failed", key(d.ns, d.name), "cannot listen on the deployment's port: "
      .. tostring(message))
  end)
  if not listener then return nil, err, code end
  d.proxy, d.proxy_port = listener, d.row.port
  self:update_pool(d)
  return true
end

-- Reconciling --------------------------------------------------------------

-- A reconcile asked for while one runs (an instance removed at once, a
-- rollout finishing) runs right after it, never nested.
function Sup:reconcile(d)
  if d.deleted or self.stopping_all then return end
  if d.reconciling then
    d.reconcile_again = true
    return
  end
  d.reconciling = true
  for _ = 1, 10 do
    d.reconcile_again = false
    errors.call("reconcile", self.reconcile_once, function(err)
      self.server.log:error("%s: reconcile: %s", key(d.ns, d.name), tostring(err))
    end, self, d)
    if not d.reconcile_again or d.deleted then break end
  end
  d.reconciling = false
end

function Sup:reconcile_once(d)
  local current, other = {}, {}
  for _, inst in ipairs(sorted_instances(d)) do
    if not inst.removing then
      if inst.revision == d.row.revision then current[#current + 1] = inst else other[#other + 1] = inst end
    end
  end
  local desired = d.row.replicas
  if d.rollout then
    -- Nothing to replace one by one when no instance is wanted.
    if desired == 0 then return self:rollout_finished(d) end
    return self:rollout_step(d)
  end
  -- No rollout: instances of other revisions go; the current one is scaled.
  for _, inst in ipairs(other) do self:remove_instance(d, inst) end
  if #current < desired then
    for _ = #current + 1, desired do self:new_instance(d, d.row.revision) end
  elseif #current > desired then
    -- The newest, and the ones not serving, go first.
    table.sort(current, function(a, b)
      if a.healthy ~= b.healthy then return not a.healthy end
      return a.number > b.number
    end)
    for i = 1, #current - desired do self:remove_instance(d, current[i]) end
  end
  if d.rollout == nil and d.revision_state ~= "active" then self:check_first_rollout(d, current) end
end

-- Public operations (the API calls these) -----------------------------------

-- Loads (or reloads) the desired state of a deployment from state.db.
function Sup:load(ns, name)
  local store = self.store.deployments
  local row = store.get(self.server.db, ns, name)
  if not row then return nil end
  local d = self.deployments[key(ns, name)]
  if not d then
    d = { ns = ns, name = name, instances = {}, specs = {}, home_tag = names.home_tag(self.server.home) }
    self.deployments[key(ns, name)] = d
  end
  d.row = row
  for _, rev in ipairs(store.revisions(self.server.db, ns, name)) do
    d.specs[rev.revision] = rev.spec
    if rev.revision == row.revision then d.revision_state = rev.state end
  end
  return d
end

--- The runtime view of a deployment, or nil.
function Sup:get(ns, name)
  return self.deployments[key(ns, name)]
end

--- Applies what state.db now says about deployment ns/name (after create,
-- a new revision, a scale, a port change): opens or moves the port, starts
-- a rollout when the revision changed. Returns true or nil, message, code
-- (the port cannot be opened).
function Sup:apply(ns, name)
  local d = self:get(ns, name)
  local previous = d and d.row.revision
  local previous_state = d and d.revision_state
  d = self:load(ns, name)
  local ok, err, code = self:open_port(d)
  if not ok then return nil, err, code end
  if previous and previous ~= d.row.revision then
    -- A revision replaced before it finished rolling out is superseded.
    if previous_state == "rolling_out" then self:mark_revision(d, previous, "superseded") end
    local from = {}
    for _, inst in pairs(d.instances) do
      if inst.revision ~= d.row.revision then from[inst.revision] = true end
    end
    local list = {}
    for rev in pairs(from) do list[#list + 1] = rev end
    if #list > 0 then
      if d.rollout and d.rollout.timer then close_handle(d.rollout.timer) end
      self:start_rollout(d, list)
    end
  end
  self:update_pool(d)
  self:reconcile(d)
  return true
end

--- Stops every instance of a deployment, frees its port and forgets it;
-- done() when all are gone.
function Sup:delete(ns, name, done)
  local d = self:get(ns, name)
  if not d then return done() end
  d.deleting = true
  if d.rollout and d.rollout.timer then close_handle(d.rollout.timer) end
  d.rollout = nil
  if d.proxy then d.proxy:close(function() end); d.proxy = nil end
  local pending = 0
  local finished = false
  local function all_gone()
    finished = true
    self.deployments[key(ns, name)] = nil
    -- Cgroups of its instances that an earlier server left behind go too.
    self:remove_leftover_cgroups(names.cgroup_pattern(d))
    done()
  end
  local function one_gone()
    pending = pending - 1
    if pending == 0 and not finished then all_gone() end
  end
  d.row.replicas = 0
  d.deleted = true
  self:pool_changed(d)
  for _, inst in pairs(d.instances) do
    pending = pending + 1
    self:remove_instance(d, inst, one_gone)
  end
  if pending == 0 then all_gone() end
end

--- Removes the cgroups of this home's instances whose names match
-- `pattern` and that no instance uses (none in `keep`, a set of names; no
-- process of `keep_pids`, a set of pids, inside): ones a server killed with
-- `kill -9` never cleaned up. Synchronous (see prisn.exec.limits.
-- remove_leftover). Returns how many it removed.
function Sup:remove_leftover_cgroups(pattern, keep, keep_pids)
  local removed = 0
  for _, name in ipairs(limits.list("svc-" .. names.home_tag(self.server.home) .. "-")) do
    if name:match(pattern) and not (keep and keep[name]) then
      local ok, err = limits.remove_leftover(name, { keep_pids = keep_pids })
      if ok == true then
        removed = removed + 1
      elseif ok == nil then
        self.server.log:warn("cannot remove the leftover cgroup %s: %s", name, tostring(err))
      end
    end
  end
  return removed
end

--- Stops every instance of every deployment gracefully (a server stop):
-- the records stay, so the next start brings them back. done() after.
function Sup:stop_all(grace, done)
  self.stopping_all = true
  if self.autoscale_timer then close_handle(self.autoscale_timer) end
  self:stop_usage_sampler()
  local pending = 0
  local function one()
    pending = pending - 1
    if pending == 0 then done() end
  end
  for _, d in pairs(self.deployments) do
    if d.rollout and d.rollout.timer then close_handle(d.rollout.timer) end
    if d.proxy then d.proxy:close(function() end); d.proxy = nil end
    for _, inst in pairs(d.instances) do
      if inst.restart_timer then close_handle(inst.restart_timer); inst.restart_timer = nil end
      if inst.pid then
        pending = pending + 1
        inst.stopping = true
        local previous = inst.on_stopped -- a removal in progress finishes too
        inst.on_stopped = function()
          if previous then previous() end
          self:release_output(d, inst)
          instance_exec.remove_fifos(inst.fifos) -- made again at the next start
          one()
        end
        self:kill_process(inst, math.min(grace, d.specs[inst.revision].grace or M.DEFAULT_GRACE))
      else
        instance_exec.remove_fifos(inst.fifos)
      end
    end
  end
  if pending == 0 then done() end
end

--- Counts for `prisn status`: deployments, instances by state.
function Sup:counts()
  local n, by_state = 0, {}
  for _, d in pairs(self.deployments) do
    n = n + 1
    for _, inst in pairs(d.instances) do by_state[inst.state] = (by_state[inst.state] or 0) + 1 end
  end
  return n, by_state
end

return M
