-- prisn.server.supervisor.recover: what a (re)started server does with the
-- deployments state.db remembers — instances whose process is still alive
-- and still the one recorded are adopted as they run; the others are
-- started again; cgroups left by instances that died meanwhile go first.
--
-- A server killed with `kill -9` (or upgraded) must not take its services
-- down with it, nor start a second copy of one that still runs: the pid,
-- its start time and its session must all agree with the record before an
-- instance is adopted (a recycled pid belongs to someone else).
--
-- Split out of the supervisor (#13) so these decisions can be driven by a
-- spec: the functions are methods of the supervisor object
-- (prisn.server.supervisor), reading state.db through self.store and
-- asking self.still_ours(pid, started_ms) whether a pid is ours.
local procfs = require("prisn.procfs")
local names = require("prisn.server.supervisor.names")

local M = {}

local key = names.key

--- Whether `pid` is alive (not a zombie), leads its own session (instances
-- are started in one) and started at `started_ms` (within 2 s): the one
-- rule of prisn.procfs, which every part of prisn asks.
M.still_ours = procfs.adoptable

--- What recovery does with an instance state.db remembers: "adopt" (its
-- process is alive and ours), "restart" (it is gone) or "keep" (its
-- revision's spec is gone too: the record stays, nothing runs).
function M.decide(pid_is_ours, has_spec)
  if not has_spec then return "keep" end
  return pid_is_ours and "adopt" or "restart"
end

local Recover = {}
M.methods = Recover

-- Whether the process recorded for an instance (row: pid, started_at) is
-- still running and still that instance.
function Recover:recorded_pid(irow)
  local pid = irow.pid and math.tointeger(irow.pid)
  if pid and self.still_ours(pid, irow.started_at) then return pid end
  return nil
end

-- Recovers one instance of d from its row; returns what was done.
function Recover:recover_instance(d, irow)
  -- Until its first health result a recovered instance counts as serving
  -- if it served before (a rollout must not drain it meanwhile).
  local inst = { number = irow.number, revision = irow.revision, port = irow.port, restarts = irow.restarts,
    state = irow.state, created_at = irow.created_at, last_exit = irow.last_exit,
    recovering = irow.state == "running" }
  d.instances[inst.number] = inst
  if inst.port then self.used_ports[inst.port] = true end
  local pid = self:recorded_pid(irow)
  local action = M.decide(pid ~= nil, d.specs[inst.revision] ~= nil)
  if action == "adopt" then
    inst.adopted = true -- serving still: it stays in the pool (supervisor.serving)
    self:adopt(d, inst, pid, irow.started_at)
  elseif action == "restart" then
    inst.pid = nil
    self:start_process(d, inst)
  end
  return action
end

--- At start: loads every deployment, re-adopts live instances and starts
-- the rest.
function Recover:recover()
  local db = self.server.db
  local done = { adopt = 0, restart = 0, keep = 0 }
  self:sweep_cgroups()
  for _, row in ipairs(self.store.deployments.list(db, { all_namespaces = true })) do
    local d = self:load(row.namespace, row.name)
    for _, irow in ipairs(self.store.deployments.instances(db, row.namespace, row.name)) do
      local action = self:recover_instance(d, irow)
      done[action] = done[action] + 1
    end
    local ok, err = self:open_port(d)
    if not ok then self.server.log:error("deploy %s: cannot listen on port %s: %s", key(d.ns, d.name),
      tostring(row.port), tostring(err)) end
    if d.revision_state == "rolling_out" then
      local from = {}
      for _, inst in pairs(d.instances) do
        if inst.revision ~= d.row.revision then from[#from + 1] = inst.revision end
      end
      self:start_rollout(d, from)
    end
    self:reconcile(d)
  end
  if done.adopt + done.restart > 0 then
    self.server.log:info("recovery: %d instance(s) re-adopted, %d restarted", done.adopt, done.restart)
  end
  self:start_autoscaler()
  self:start_usage_sampler()
end

-- At start, before any instance is started again: every cgroup of this
-- home's instances goes but those of instances that are re-adopted (alive,
-- same pid and start time) and are reused as they are. A server killed with
-- `kill -9` leaves the cgroups of instances that died meanwhile, and any
-- whose cleanup it had not finished; left there, the next instance of that
-- name would fail to make its own and run without its limits.
function Recover:sweep_cgroups()
  local db = self.server.db
  local keep, keep_pids = {}, {}
  for _, row in ipairs(self.store.deployments.list(db, { all_namespaces = true })) do
    local d = { ns = row.namespace, name = row.name, home_tag = names.home_tag(self.server.home) }
    for _, irow in ipairs(self.store.deployments.instances(db, row.namespace, row.name)) do
      local pid = self:recorded_pid(irow)
      if pid then
        keep[names.cgroup_name(d, { number = irow.number, restarts = irow.restarts })] = true
        keep_pids[pid] = true
      end
    end
  end
  local removed = self:remove_leftover_cgroups("", keep, keep_pids)
  if removed > 0 then self.server.log:info("recovery: %d leftover cgroup(s) removed", removed) end
end

return M
