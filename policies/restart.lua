-- prisn.policies.restart: whether a service instance that exited is started
-- again, and after how long.
--
-- The supervisor keeps one small state table per instance and calls decide()
-- for every exit it sees and every health change; it acts on the decision
-- (arm a timer for delay_s, show `status`) and stores `decision.next` as the
-- instance's new state. This module never reads a clock or a random source
-- of its own: time comes in the event (`at`), jitter through `rand`, so the
-- same inputs always give the same answer.
--
-- Contract (an operator's $PRISN_HOME/policies/restart.lua must keep it):
--
--   M.decide(state, event, opts, rand) -> decision
--     state  { failures = n, healthy_since = t | nil } or nil for a new
--            instance (M.new_state())
--     event  { type = "exit", at = t, code = n | nil, signal = name | nil,
--              oom_killed = bool, requested = bool,    -- requested: prisn
--              stopped it (scale down, drain, delete); never restarted
--              status_unknown = bool,   -- an instance re-adopted after a
--              server restart: how it ended is lost; counts as a failure
--              failed_to_start = bool } -- its process could not be started
--              (exec failed, or it did not reach exec in time); a failure
--            { type = "healthy", at = t } | { type = "unhealthy", at = t }
--     opts   { restart_policy = "always" | "on-failure" | "never",
--              initial_delay, max_delay, multiplier, reset_after, jitter }
--            (seconds; missing ones from M.DEFAULTS)
--     rand   function() -> number in [0, 1); math.random when nil
--   decision {
--     restart    = bool,     -- start the instance again
--     delay_s    = n,        -- after this many seconds (0: at once)
--     crash_loop = bool,     -- delays are growing
--     status     = "running" | "restarting" | "crash_loop_backoff" | "stopped",
--     reason     = string,   -- one line for the event log
--     next       = state,    -- store this for the next call
--   }
--
-- The default algorithm: the first restart after a run of good health is
-- immediate (a crashed instance is back within milliseconds); from the second
-- consecutive failure on the delay is initial_delay * multiplier^(n-2) —
-- 1 s, 2 s, 4 s … capped at max_delay (5 min) — spread by ±jitter (10 %) so
-- instances that crashed together do not restart together. An instance that
-- stayed healthy for reset_after (60 s) before exiting starts a new run: its
-- failure count goes back to zero. With "on-failure" a clean exit (code 0, no
-- signal, not OOM-killed) is not restarted; with "never" nothing is.
local M = {}

M.DEFAULTS = {
  restart_policy = "always",
  initial_delay = 1,
  max_delay = 300,
  multiplier = 2,
  reset_after = 60,
  jitter = 0.1,
}

M.POLICIES = { always = true, ["on-failure"] = true, never = true }

--- The state of an instance that has not exited yet.
function M.new_state()
  return { failures = 0, healthy_since = nil }
end

local function option(opts, name)
  local v = opts[name]
  if v == nil then return M.DEFAULTS[name] end
  if type(v) ~= "number" or v < 0 then
    error(string.format("restart policy option %s: expected a non-negative number, got %s", name,
      tostring(v)), 3)
  end
  return v
end

--- Whether an exit counts as a failure (for "on-failure").
function M.is_failure(event)
  return (event.code ~= nil and event.code ~= 0) or event.signal ~= nil or event.oom_killed == true
    or event.status_unknown == true or event.failed_to_start == true
end

--- The delay before restart number `failures` of a run (1 = the first),
-- without jitter.
function M.base_delay(failures, opts)
  opts = opts or {}
  if failures <= 1 then return 0 end
  local delay = option(opts, "initial_delay") * option(opts, "multiplier") ^ (failures - 2)
  return math.min(delay, option(opts, "max_delay"))
end

local function describe_exit(event)
  if event.failed_to_start then return "could not start" end
  if event.status_unknown then return "ended (its exit status was lost with a server restart)" end
  if event.oom_killed then return "killed for running out of memory" end
  if event.signal then return "killed by signal " .. tostring(event.signal) end
  return "exited with code " .. tostring(event.code or 0)
end

local function on_exit(state, event, opts, rand)
  local policy = opts.restart_policy or M.DEFAULTS.restart_policy
  if not M.POLICIES[policy] then
    error(string.format("restart policy: %q is not one of always, on-failure, never", tostring(policy)), 3)
  end
  local what = describe_exit(event)
  local failures = state.failures or 0
  if state.healthy_since and event.at - state.healthy_since >= option(opts, "reset_after") then
    failures = 0
  end
  local stop = function(why)
    return { restart = false, delay_s = 0, crash_loop = false, status = "stopped",
      reason = what .. "; " .. why, next = { failures = failures, healthy_since = nil } }
  end
  if event.requested then return stop("stopped by prisn") end
  if policy == "never" then return stop("restart policy is never") end
  if policy == "on-failure" and not M.is_failure(event) then
    return stop("restart policy is on-failure")
  end
  failures = failures + 1
  local delay = M.base_delay(failures, opts)
  if delay > 0 then
    local jitter = option(opts, "jitter")
    local r = (rand or math.random)()
    delay = math.min(delay * (1 - jitter + 2 * jitter * r), option(opts, "max_delay"))
  end
  local crash_loop = failures > 1
  local reason
  if delay == 0 then
    reason = what .. "; restarting now"
  else
    reason = string.format("%s; restart %d in a row, waiting %.3gs", what, failures, delay)
  end
  return {
    restart = true, delay_s = delay, crash_loop = crash_loop,
    status = crash_loop and "crash_loop_backoff" or "restarting",
    reason = reason,
    next = { failures = failures, healthy_since = nil },
  }
end

--- See the contract at the top of the file.
function M.decide(state, event, opts, rand)
  state = state or M.new_state()
  opts = opts or {}
  if type(event) ~= "table" or type(event.at) ~= "number" then
    error("restart policy: the event needs a type and a time (at)", 2)
  end
  if event.type == "exit" then return on_exit(state, event, opts, rand) end
  local next_state = { failures = state.failures or 0, healthy_since = state.healthy_since }
  if event.type == "healthy" then
    next_state.healthy_since = next_state.healthy_since or event.at
  elseif event.type == "unhealthy" then
    next_state.healthy_since = nil
  else
    error(string.format("restart policy: unknown event type %q", tostring(event.type)), 2)
  end
  return { restart = false, delay_s = 0, crash_loop = false, status = "running",
    reason = event.type, next = next_state }
end

return M
