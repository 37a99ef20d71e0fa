-- prisn.server.supervisor.rollout: the revision state machine of a
-- deployment — a new revision rolls out one instance at a time, becomes
-- "active" when its instances serve, is rolled back to the last revision
-- that served when they never do, or "failed" when there is none.
--
-- A revision's states (in state.db, through self.store.deployments):
--   rolling_out -> active        every new instance healthy, the old drained
--   rolling_out -> rolled_back   the rollout policy gave up; the previous
--                                serving revision is active again
--   rolling_out -> failed        nothing ever served to go back to
--   rolling_out -> superseded    replaced by a newer revision meanwhile
--   active      -> superseded    a newer one finished its rollout
-- The steps themselves (start one, drain one, wait, done, roll back) are the
-- rollout policy's (policies/rollout.lua: surge 1, unavailable 0); this
-- module feeds it the instances' states and does what it answers, and counts
-- each rollout's outcome (the rollouts metric).
--
-- Split out of the supervisor (#13) so the state machine can be driven by a
-- spec with a fake loop, store and clock: its functions are methods of the
-- supervisor object (prisn.server.supervisor) and reach those through
-- self.uv, self.store and self.clock.
local instance = require("prisn.server.supervisor.instance")
local names = require("prisn.server.supervisor.names")

local M = {}

M.ROLLOUT_TICK_MS = 500

local key, instance_name, sorted_instances = names.key, names.name, instance.sorted
local close_handle = instance.close_handle

--- What the rollout policy calls an instance's state.
function M.instance_state(inst)
  if inst.removing then return "draining" end
  if inst.healthy or inst.recovering then return "healthy" end
  if inst.state == "failed" or inst.state == "stopped" then return "failed" end
  -- Crashing again before ever being healthy: this revision does not start.
  if not inst.ever_healthy and inst.restarts >= 2 then return "failed" end
  if inst.ever_healthy then return "unhealthy" end
  return "starting"
end
local rollout_state = M.instance_state

--- The number of the new instance a rollback is about, from the rollout
-- policy's view of the new instances ({ id, state }): the one that failed,
-- else the first not healthy (the one the progress deadline gave up on).
-- Kept on the deployment (d.failed_instance) so that the API can name it
-- and `prisn deploy` print its last lines, not the healthy ones' traffic.
function M.failing(new)
  for _, entry in ipairs(new) do if entry.state == "failed" then return entry.id end end
  for _, entry in ipairs(new) do
    if entry.state ~= "healthy" and entry.state ~= "draining" then return entry.id end
  end
  return nil
end

local Rollout = {}
M.methods = Rollout

function Rollout:mark_revision(d, number, state, message)
  if number == d.row.revision then d.revision_state = state end
  local name = key(d.ns, d.name) .. "/revision/" .. number
  self:write("state of " .. name, name, function(db)
    self.store.deployments.set_revision_state(db, d.ns, d.name, number, state, message)
  end)
end

function Rollout:count_rollout(outcome)
  local m = self.server.metrics
  if m and m.rollouts then m.rollouts:labels(outcome):inc() end
end

--- The newest revision before the current one that served (active or
-- superseded), or nil.
function Rollout:last_serving_revision(d)
  local best
  for _, rev in ipairs(self.store.deployments.revisions(self.server.db, d.ns, d.name)) do
    if rev.revision ~= d.row.revision and (rev.state == "active" or rev.state == "superseded") then
      best = rev.revision
    end
  end
  return best
end

--- Starts rolling d's current revision out over the instances of the
-- revisions in `from`; a timer looks again now and then, since deadlines
-- pass without any event.
function Rollout:start_rollout(d, from)
  d.failed_instance = nil
  d.rollout = { from = from, previous = self:last_serving_revision(d), started_at = self.clock.now_ms() }
  d.rollout.timer = self.uv.new_timer()
  d.rollout.timer:start(M.ROLLOUT_TICK_MS, M.ROLLOUT_TICK_MS, function() self:reconcile(d) end)
end

-- Ends d's rollout (if any) and returns it.
local function end_rollout(d)
  local r = d.rollout
  d.rollout = nil
  if r and r.timer then close_handle(r.timer) end
  return r
end

function Rollout:post_deploy(d)
  self:hook("post_deploy", { namespace = d.ns, deployment = d.name, revision = d.row.revision,
    replicas = d.row.replicas, script = d.specs[d.row.revision].entry or d.specs[d.row.revision].script }, d)
end

-- Without old instances a new revision is "active" once every instance is
-- healthy, "failed" when they do not start.
function Rollout:check_first_rollout(d, current)
  if #current < d.row.replicas then return end
  local healthy, failed = 0, nil
  for _, inst in ipairs(current) do
    if inst.healthy then healthy = healthy + 1 end
    if rollout_state(inst) == "failed" then failed = inst end
  end
  if healthy >= d.row.replicas then
    self:mark_revision(d, d.row.revision, "active")
    self:event(d, "deployment.rolled_out", "deploy/" .. d.name, "revision " .. d.row.revision .. " is serving")
    self:post_deploy(d)
  elseif failed and d.revision_state ~= "failed" then
    local message = string.format("instance %s does not start: %s", instance_name(d, failed),
      instance.describe_exit(failed))
    d.failed_instance = { number = failed.number, revision = d.row.revision }
    self:mark_revision(d, d.row.revision, "failed", message)
    self:event(d, "deployment.failed", "deploy/" .. d.name, message)
  end
end

function Rollout:rollout_step(d)
  local old, new = {}, {}
  for _, inst in ipairs(sorted_instances(d)) do
    -- The progress deadline runs from the first spawn (not from a long
    -- dependency build), and only until the instance was first healthy.
    local entry = { id = inst.number, state = rollout_state(inst),
      started_at = not inst.ever_healthy and inst.first_spawned_at and inst.first_spawned_at / 1000 or nil }
    if inst.revision == d.row.revision then
      if not inst.removing then new[#new + 1] = entry end
    else
      old[#old + 1] = entry
    end
  end
  local spec = d.specs[d.row.revision]
  local action = self:policy("rollout").step({ desired = d.row.replicas, old = old, new = new },
    { progress_deadline = spec.progress_deadline }, self.clock.now_ms() / 1000)
  if action.start_new then
    self:new_instance(d, d.row.revision)
  elseif action.drain_old then
    self:remove_instance(d, d.instances[action.drain_old])
  elseif action.rollback then
    self:rollback(d, action.reason, M.failing(new))
  elseif action.done then
    self:rollout_finished(d)
  end
end

function Rollout:rollout_finished(d)
  local r = end_rollout(d)
  self:mark_revision(d, d.row.revision, "active")
  for _, rev in ipairs(r and r.from or {}) do self:mark_revision(d, rev, "superseded") end
  self:event(d, "deployment.rolled_out", "deploy/" .. d.name, "revision " .. d.row.revision .. " is serving")
  self:count_rollout("rolled_out")
  self:post_deploy(d)
  self:reconcile(d)
end

-- The revisions a rollout replaced that are still "rolling_out" (a revision
-- replaced before it finished) are superseded; `back` is not.
function Rollout:supersede_unfinished(d, r, back)
  for _, rev in ipairs(r and r.from or {}) do
    local row = self.store.deployments.revision(self.server.db, d.ns, d.name, rev)
    if rev ~= back and row and row.state == "rolling_out" then self:mark_revision(d, rev, "superseded") end
  end
end

function Rollout:rollback(d, reason, failing_number)
  local r = end_rollout(d)
  local failed = d.row.revision
  d.failed_instance = failing_number and { number = failing_number, revision = failed } or nil
  local back = r and r.previous
  if not back then
    -- Nothing that ever served to go back to: like a first deploy that does
    -- not start, it fails, and its instances go on restarting with backoff.
    local message = "revision " .. failed .. " does not start: " .. reason
    self:mark_revision(d, failed, "failed", reason)
    self:event(d, "deployment.failed", "deploy/" .. d.name, message)
    self.server.log:warn("%s: %s", key(d.ns, d.name), message)
    self:supersede_unfinished(d, r, nil)
    return self:reconcile(d)
  end
  local message = "revision " .. failed .. " rolled back: " .. reason
  self:mark_revision(d, failed, "rolled_back", reason)
  self:event(d, "deployment.rolled_back", "deploy/" .. d.name, message .. ", revision " .. back .. " serves again")
  self.server.log:warn("%s: %s", key(d.ns, d.name), message)
  self:count_rollout("rolled_back")
  self:write("rollback of " .. key(d.ns, d.name), nil, function(db)
    self.store.deployments.update(db, d.ns, d.name, { revision = back })
  end)
  d.row.revision = back
  d.revision_state = "active"
  self:mark_revision(d, back, "active")
  for _, inst in ipairs(sorted_instances(d)) do
    if inst.revision == failed then self:remove_instance(d, inst) end
  end
  self:supersede_unfinished(d, r, back)
  self:reconcile(d)
end

return M
