-- prisn.server.supervisor.autoscale: deployments under `prisn scale --auto`
-- get their replica count from their CPU use — on a timer, each one's
-- instances are sampled, policies/autoscale.lua decides, and a change is
-- written to state.db, recorded as an event, hooked (on_scale) and
-- reconciled.
--
-- Split out of the supervisor (#13): the sampling and the acting on a
-- decision are methods of the supervisor object (prisn.server.supervisor)
-- using self.uv (timers, hrtime), self.clock and self.store, so a spec can
-- drive a round with fakes; the decision itself is the policy's.
local proctree = require("prisn.exec.proctree")
local names = require("prisn.server.supervisor.names")

local M = {}

M.AUTOSCALE_INTERVAL_MS = 15000
M.AUTOSCALE_SLICE = 100  -- deployments looked at per step of a round
M.STEP_GAP_MS = 1        -- between the steps: what waits on the loop runs

--- CPU time and memory of an instance: from its cgroup when it has one,
-- else from its process tree. { cpu_usage_us, memory_current } or nil; a
-- process tree's figures go into `out` when given (the usage sweep's).
function M.usage(inst, out)
  local cg = inst.limiter and inst.limiter.cgroup
  if cg then return cg:stats() end
  if inst.pid then return proctree.usage(inst.pid, out) end
  return nil
end

-- CPU use of each serving instance since the last sample, in % of the CPU
-- it may use (--cpu, else one core); `now` is the loop's hrtime (ns).
local function cpu_readings(d, now)
  local readings = {}
  local allowed = (d.specs[d.row.revision] or {}).cpu or 1
  for _, inst in pairs(d.instances) do
    local st = inst.healthy and not inst.removing and M.usage(inst)
    if st and st.cpu_usage_us then
      local last = inst.cpu_sample
      inst.cpu_sample = { at = now, usage = st.cpu_usage_us }
      if last and last.usage <= st.cpu_usage_us and now > last.at then
        local busy = (st.cpu_usage_us - last.usage) / ((now - last.at) / 1e3)
        readings[#readings + 1] = 100 * busy / allowed
      end
    end
  end
  return readings
end

local Autoscale = {}
M.methods = Autoscale

-- Writes, records, hooks and reconciles d's new replica count.
function Autoscale:autoscaled(d, current, decision)
  self.store.deployments.update(self.server.db, d.ns, d.name, { replicas = decision.desired })
  d.row.replicas = decision.desired
  self:event(d, "deployment.autoscaled", "deploy/" .. d.name, decision.reason)
  self:hook("on_scale", { namespace = d.ns, deployment = d.name, from = current, to = decision.desired,
    actor = "autoscaler", reason = decision.reason }, d)
  self:reconcile(d)
end

-- One deployment's decision, when it is under --auto and not rolling out.
function Autoscale:autoscale_one(d)
  local current = d.row.replicas
  local ok, decision = pcall(self:policy("autoscale").decide, d.autoscale_state,
    { at = self.clock.now_ms() / 1000, current = current, cpu = cpu_readings(d, self.uv.hrtime()) }, d.row.autoscale)
  if not ok then
    self.server.log:error("%s: autoscale policy: %s", names.key(d.ns, d.name), tostring(decision))
    return
  end
  d.autoscale_state = decision.next
  if decision.desired ~= current then self:autoscaled(d, current, decision) end
end

--- The next `limit` deployments of the current round (a round begins
-- when the last one ended): each under --auto gets a decision from
-- policies/autoscale.lua, applied, recorded and hooked. None while a
-- rollout runs (its instances come and go on their own). Returns true
-- when the round is done.
--
-- A round resumes where the last step stopped (`next` from the last key
-- seen). Deployments made between steps may rebuild the table: then the
-- walk starts over (the last key gone) or goes on in the new order (some
-- deployments seen later or not this round, never decided twice: each
-- autoscaled one is marked with the round it was decided in).
function Autoscale:autoscale_step(limit)
  local walk = self.autoscale_walk
  if not walk then
    walk = { round = 0, busy = false }
    self.autoscale_walk = walk
  end
  if not walk.busy then walk.round, walk.busy, walk.key = walk.round + 1, true, nil end
  local deployments = self.deployments
  local ok, key, d = pcall(next, deployments, walk.key)
  if not ok then key, d = next(deployments) end
  local n = 0
  while key ~= nil and n < limit do
    if d.row.autoscale and not d.deleted and not d.rollout and d.autoscale_round ~= walk.round then
      d.autoscale_round = walk.round
      self:autoscale_one(d)
    end
    walk.key, n = key, n + 1
    key, d = next(deployments, key)
  end
  if key ~= nil then return false end
  walk.busy, walk.key = false, nil
  return true
end

--- One whole autoscaling round at once (see autoscale_step).
function Autoscale:autoscale()
  self:autoscale_step(math.huge)
end

--- Starts the autoscaling timer (PRISN_AUTOSCALE_INTERVAL_MS, default 15 s):
-- a round every interval, AUTOSCALE_SLICE deployments a step, the steps
-- STEP_GAP_MS apart. Walking 1,000 deployments at once held the loop for
-- 0.3-1 ms every 15 s (tests/bench/deployments-report.md, issue 17).
function Autoscale:start_autoscaler()
  local interval = math.tointeger(tonumber(os.getenv("PRISN_AUTOSCALE_INTERVAL_MS") or ""))
    or M.AUTOSCALE_INTERVAL_MS
  local timer = self.uv.new_timer()
  self.autoscale_timer = timer
  local stepping = false
  local step
  step = self:guard("autoscale", function()
    local done = self:autoscale_step(M.AUTOSCALE_SLICE)
    if timer:is_closing() or (done and not stepping) then return end
    stepping = not done
    timer:start(stepping and M.STEP_GAP_MS or interval, interval, step)
  end)
  timer:start(interval, interval, step)
  timer:unref()
end

return M
