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

--- One autoscaling round: each deployment under --auto gets a decision from
-- policies/autoscale.lua; a change is applied, recorded and hooked. None
-- while a rollout runs (its instances come and go on their own).
function Autoscale:autoscale()
  for _, d in pairs(self.deployments) do
    local settings = d.row.autoscale
    if settings and not d.deleted and not d.rollout then
      local current = d.row.replicas
      local ok, decision = pcall(self:policy("autoscale").decide, d.autoscale_state,
        { at = self.clock.now_ms() / 1000, current = current, cpu = cpu_readings(d, self.uv.hrtime()) }, settings)
      if not ok then
        self.server.log:error("%s: autoscale policy: %s", names.key(d.ns, d.name), tostring(decision))
      else
        d.autoscale_state = decision.next
        if decision.desired ~= current then self:autoscaled(d, current, decision) end
      end
    end
  end
end

--- Starts the autoscaling timer (PRISN_AUTOSCALE_INTERVAL_MS, default 15 s).
function Autoscale:start_autoscaler()
  local interval = math.tointeger(tonumber(os.getenv("PRISN_AUTOSCALE_INTERVAL_MS") or ""))
    or M.AUTOSCALE_INTERVAL_MS
  self.autoscale_timer = self.uv.new_timer()
  self.autoscale_timer:start(interval, interval, self:guard("autoscale", function() self:autoscale() end))
  self.autoscale_timer:unref()
end

return M
