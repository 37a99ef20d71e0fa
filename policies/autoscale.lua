-- prisn.policies.autoscale: how many instances a deployment under
-- `prisn scale NAME --auto --min 1 --max 10 --target-cpu 70` should have.
--
-- The supervisor samples each instance's cgroup CPU (utilisation of the CPU
-- it may use, in %) on a timer, calls decide() with the readings, scales to
-- `desired` when it differs from the current count (an event with `reason`),
-- and keeps `decision.next` for the next call. Pure: time comes in the
-- reading, nothing is read or remembered here.
--
-- Contract (an operator's $PRISN_HOME/policies/autoscale.lua must keep it):
--
--   M.decide(state, reading, opts) -> decision
--     state    what the last decision returned in `next`, or nil
--     reading  { at = t, current = n, cpu = { 63.5, 81.0, ... } }
--              (one number per running instance; may be empty)
--     opts     { min, max, target_cpu, tolerance, scale_up_cooldown,
--                scale_down_window } (seconds; missing ones from M.DEFAULTS)
--   decision { desired = n, reason = string, next = state }
--
-- The default algorithm (that of Kubernetes' HPA):
--
-- 1. A count outside [min, max] is brought inside at once.
-- 2. avg = mean of the readings; ratio = avg / target_cpu. Within the
--    tolerance (|ratio - 1| <= 0.1) nothing changes, so noise does not scale.
-- 3. recommendation = ceil(current * ratio), clamped to [min, max].
-- 4. Scaling up happens at once, but not within scale_up_cooldown (30 s) of
--    the last change: new instances need time to take load before the next
--    reading means anything.
-- 5. Scaling down is stabilised: the count goes down only to the HIGHEST
--    recommendation of the last scale_down_window (5 min), so one quiet
--    reading in a busy period changes nothing, and a load that keeps
--    dipping and returning does not flap.
-- With no readings (every instance starting) nothing changes.
local M = {}

M.DEFAULTS = {
  min = 1,
  max = 10,
  target_cpu = 70,
  tolerance = 0.1,
  scale_up_cooldown = 30,
  scale_down_window = 300,
}

local function options(opts)
  local o = {}
  for k, v in pairs(M.DEFAULTS) do
    local given = opts[k]
    if given == nil then
      o[k] = v
    elseif type(given) ~= "number" or given < 0 then
      error(string.format("autoscale option %s: expected a non-negative number, got %s", k, tostring(given)), 3)
    else
      o[k] = given
    end
  end
  if math.type(o.min) ~= "integer" or math.type(o.max) ~= "integer" or o.min > o.max then
    error(string.format("autoscale: min and max must be integers with min <= max (got %s, %s)",
      tostring(o.min), tostring(o.max)), 3)
  end
  if o.target_cpu <= 0 then error("autoscale: target_cpu must be above 0", 3) end
  return o
end

local function clamp(n, o)
  return math.max(o.min, math.min(o.max, n))
end

--- See the contract at the top of the file.
function M.decide(state, reading, opts)
  local o = options(opts or {})
  state = state or {}
  local now, current = reading.at, reading.current
  if type(now) ~= "number" or math.type(current) ~= "integer" then
    error("autoscale: the reading needs a time (at) and the current count (an integer)", 2)
  end
  -- Keep the recommendations still inside the window.
  local history = {}
  for _, h in ipairs(state.history or {}) do
    if now - h.at < o.scale_down_window then history[#history + 1] = h end
  end
  local next_state = { history = history, last_change = state.last_change }
  local function result(desired, reason)
    if desired ~= current then next_state.last_change = now end
    return { desired = desired, reason = reason, next = next_state }
  end

  if current < o.min or current > o.max then
    return result(clamp(current, o), string.format("%d instances is outside min %d, max %d", current, o.min, o.max))
  end
  local cpu = reading.cpu or {}
  if #cpu == 0 then return result(current, "no CPU readings yet") end
  local sum = 0
  for _, v in ipairs(cpu) do sum = sum + v end
  local avg = sum / #cpu
  local ratio = avg / o.target_cpu
  local what = string.format("average CPU %.0f%% (target %.0f%%)", avg, o.target_cpu)
  local recommended = current
  if math.abs(ratio - 1) > o.tolerance then
    -- The epsilon keeps 3 * 1.2 from becoming ceil(3.6000000000000001) = 4 by rounding.
    recommended = clamp(math.ceil(current * ratio - 1e-9), o)
  end
  history[#history + 1] = { at = now, desired = recommended }

  if recommended > current then
    if state.last_change and now - state.last_change < o.scale_up_cooldown then
      return result(current, string.format("%s wants %d, but the last change was %gs ago (cooldown %gs)",
        what, recommended, now - state.last_change, o.scale_up_cooldown))
    end
    return result(recommended, string.format("%s: scaling up from %d to %d", what, current, recommended))
  end
  local highest = recommended
  for _, h in ipairs(history) do highest = math.max(highest, h.desired) end
  local desired = math.min(highest, current)
  if desired < current then
    return result(desired, string.format("%s: scaling down from %d to %d", what, current, desired))
  end
  if recommended < current then
    return result(current, string.format("%s wants %d; holding %d for the %gs window", what, recommended,
      current, o.scale_down_window))
  end
  return result(current, what .. ": no change")
end

return M
