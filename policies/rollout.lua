-- prisn.policies.rollout: the next step of a rolling update (surge 1,
-- unavailable 0): start a new instance, drain an old one, wait, finish, or
-- roll back.
--
-- The supervisor calls step() whenever something changes during a rollout
-- (an instance started, turned healthy, exited, finished draining) and on a
-- timer, and does what the answer says; then it calls again. Pure: the time
-- comes in as `now`, the instance sets are read, never changed.
--
-- Contract (an operator's $PRISN_HOME/policies/rollout.lua must keep it):
--
--   M.step(rollout, opts, now) -> action
--     rollout { desired = n,
--               old = { { id, state }, ... },   -- the previous revision
--               new = { { id, state, started_at }, ... } }
--       state: "starting" | "healthy" | "unhealthy" | "draining" | "failed"
--       (an instance that is gone is simply not in the list)
--     opts    { surge = 1, progress_deadline = 120 } (seconds)
--   action, one of:
--     { start_new = 1 }               start one instance of the new revision
--     { drain_old = id }              take it out of the pool, SIGTERM, grace, SIGKILL
--     { wait = true, reason = s }     nothing to do until something changes
--     { done = true }
--     { rollback = true, reason = s } the new revision never became healthy
--
-- The rule: serving capacity (healthy instances not draining) never drops
-- below `desired` because of the rollout (unavailable 0), and at most
-- desired + surge instances exist at once, draining ones included (surge 1).
-- An old instance is drained only while the others still serve `desired`;
-- unhealthy old ones go first, since they serve nothing. A new instance not
-- healthy within progress_deadline of its start, or one the restart policy
-- gave up on ("failed"), rolls the whole revision back.
local M = {}

M.DEFAULTS = { surge = 1, progress_deadline = 120 }

local function serving(inst)
  return inst.state == "healthy"
end

local function old_to_drain(old, rest_serving, desired)
  -- Unhealthy or starting old instances serve nothing: drain them first.
  for _, inst in ipairs(old) do
    if inst.state ~= "draining" and not serving(inst) then return inst.id end
  end
  for _, inst in ipairs(old) do
    if serving(inst) and rest_serving - 1 >= desired then return inst.id end
  end
  return nil
end

--- See the contract at the top of the file.
function M.step(rollout, opts, now)
  opts = opts or {}
  local surge = opts.surge or M.DEFAULTS.surge
  local deadline = opts.progress_deadline or M.DEFAULTS.progress_deadline
  local desired, old, new = rollout.desired, rollout.old or {}, rollout.new or {}
  if math.type(desired) ~= "integer" or desired < 0 or type(now) ~= "number" then
    error("rollout: needs desired (an integer >= 0) and the time", 2)
  end

  local healthy_new, pending = 0, 0
  for _, inst in ipairs(new) do
    if inst.state == "failed" then
      return { rollback = true, reason = string.format("new instance %s failed and will not be restarted",
        tostring(inst.id)) }
    elseif serving(inst) then
      healthy_new = healthy_new + 1
    elseif inst.state ~= "draining" then
      pending = pending + 1
      if inst.started_at and now - inst.started_at > deadline then
        return { rollback = true, reason = string.format("new instance %s is not healthy %gs after it started",
          tostring(inst.id), deadline) }
      end
    end
  end

  local serving_old, draining = 0, 0
  for _, inst in ipairs(old) do
    if inst.state == "draining" then
      draining = draining + 1
    elseif serving(inst) then
      serving_old = serving_old + 1
    end
  end
  local active_old = #old - draining

  -- Drain an old instance if the rest still serve the desired count.
  local id = old_to_drain(old, serving_old + healthy_new, desired)
  if id then return { drain_old = id } end

  local total = #old + #new
  if #new < desired and total < desired + surge and pending < surge then
    return { start_new = 1 }
  end
  if active_old == 0 and draining == 0 and healthy_new >= desired then
    return { done = true }
  end
  if pending > 0 then
    return { wait = true, reason = string.format("waiting for %d new instance%s to become healthy", pending,
      pending == 1 and "" or "s") }
  end
  if draining > 0 then
    return { wait = true, reason = string.format("waiting for %d old instance%s to drain", draining,
      draining == 1 and "" or "s") }
  end
  return { wait = true, reason = "waiting for capacity" }
end

return M
