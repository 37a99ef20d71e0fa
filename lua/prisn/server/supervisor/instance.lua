-- prisn.server.supervisor.instance: the life of one service instance —
-- starting its process, reading its output, watching its health, handling
-- its exit (restart at once, after a backoff, or not at all), draining and
-- removing it.
--
-- Split out of the supervisor (#13) so the mechanics of one process live
-- apart from the decisions about a deployment (reconcile, rollout,
-- recovery). Its functions are methods of the supervisor object (see
-- prisn.server.supervisor): they reach the loop, the clock and the store
-- through self.uv, self.clock and self.store, which a spec replaces with
-- fakes. The restart policy (policies/restart.lua) decides; this module
-- arms the timers and starts the processes it asks for.
--
-- Output. An instance writes into two named pipes (prisn.exec.instance);
-- what reads them into its log is the "log host": the data plane's log pump
-- when the server has one (prisn.server.log_host: the pump lives in a
-- process that outlives the server, so output keeps flowing while it is
-- away), else a pump in this process (prisn.dataplane.logs). An instance is attached
-- when its process starts or is adopted and stays attached across its
-- restarts (the pump holds the pipes open); it is detached when forgotten
-- or stopped with the server.
--
-- It also holds the small helpers the other parts share (sorted instances,
-- closing a handle, describing an exit).
local cjson = require("cjson")
local async = require("prisn.async")
local errors = require("prisn.error")
local deploy_logs = require("prisn.deploy_logs")
local log_pump = require("prisn.dataplane.logs")
local log_host = require("prisn.server.log_host")
local envcache = require("prisn.exec.envcache")
local instance_exec = require("prisn.exec.instance")
local exec_job = require("prisn.exec.job")
local limits = require("prisn.exec.limits")
local process = require("prisn.exec.process")
local health = require("prisn.net.health")
local names = require("prisn.server.supervisor.names")

local M = {}

-- Tunables; the supervisor re-exports them under its own name.
M.DEFAULT_GRACE = 10           -- seconds between SIGTERM and SIGKILL
M.DRAIN_POLL_MS = 50
M.ADOPTED_POLL_MS = 200        -- when pidfd_open is missing
M.NONE_HEALTHY_AFTER_MS = 1000 -- health "none": up this long counts as healthy

-- Shared helpers -------------------------------------------------------------

--- The instances of `d`, by number.
function M.sorted(d)
  local list = {}
  for _, inst in pairs(d.instances) do list[#list + 1] = inst end
  table.sort(list, function(a, b) return a.number < b.number end)
  return list
end

function M.close_handle(h)
  if h and not h:is_closing() then h:close() end
end
local close_handle = M.close_handle

--- One line on why an instance is not serving (its last exit), for events.
function M.describe_exit(inst)
  local e = inst.last_exit
  if not e then return "not healthy" end
  if e.message then return e.message end
  if e.reason == "oom_killed" then return "out of memory" end
  if e.signal then return "killed by signal " .. e.signal end
  return "exited with code " .. tostring(e.code)
end

local key, instance_name = names.key, names.name

-- Stops watching an instance: its health checks and its exit. (Its output
-- stays attached: see the header.)
local function detach(inst)
  if inst.checker then inst.checker:stop(); inst.checker = nil end
  if inst.none_timer then close_handle(inst.none_timer); inst.none_timer = nil end
  if inst.stop_watch then inst.stop_watch(); inst.stop_watch = nil end
end

-- Cleans up after an instance's process in the background: its cgroup
-- emptied and removed; then() after, when given.
local function release_limiter(limiter, after)
  async.spawn(function()
    pcall(limiter.cleanup, limiter)
    if after then after() end
  end)
end

local function exit_event(status, limiter, now_ms)
  local event = { type = "exit", at = now_ms / 1000, status_unknown = status.unknown or nil,
    failed_to_start = status.failed_to_start or nil }
  if status.exited then event.code = status.code
  elseif status.signal then event.signal = status.signal end
  if limiter and limiter.cgroup then
    local st = limiter.cgroup:stats()
    if st and st.oom_kills and st.oom_kills > 0 then event.oom_killed = true end
  end
  return event
end

local function exit_reason(event, status)
  if status.failed_to_start then return "failed_to_start" end
  if status.unknown then return "exited" end
  if event.oom_killed then return "oom_killed" end
  if event.signal then return "killed" end
  return "exited"
end

-- The methods ----------------------------------------------------------------

local Instance = {}
M.methods = Instance

-- A free loopback port for an instance: the kernel picks one; ports handed
-- out and still in use are never given twice.
function Instance:free_port()
  for _ = 1, 20 do
    local tcp = self.uv.new_tcp()
    local ok = tcp:bind("127.0.0.1", 0)
    local addr = ok and tcp:getsockname()
    tcp:close()
    if addr and not self.used_ports[addr.port] then
      self.used_ports[addr.port] = true
      return addr.port
    end
  end
  error("no free port for an instance")
end

-- SIGTERM to the instance's group, SIGKILL after `grace` seconds.
function Instance:kill_process(inst, grace)
  local uv = self.uv
  local pid = inst.pid
  if not pid then return end
  if inst.starting then -- no group to signal yet: at once when it has started
    inst.kill_after_start = grace
    return
  end
  uv.kill(-pid, "sigterm")
  local t = uv.new_timer()
  t:start(math.floor(grace * 1000), 0, function()
    close_handle(t)
    if inst.pid == pid then uv.kill(-pid, "sigkill") end
  end)
  inst.kill_timer = t
end

-- Calls done(launch) or done(nil, err) for revision `rev` of d; prepares it
-- once (in a child) however many instances ask at the same time.
function Instance:launch_for(d, rev, done)
  local spec = d.specs[rev]
  local cache_key = cjson.encode({ spec.script, spec.args or {}, spec.runner or "", spec.no_deps or false,
    spec.env or {} })
  local entry = self.launches[cache_key]
  if entry and entry.launch and entry.launch.env_dir and not self.uv.fs_stat(entry.launch.env_dir) then
    -- Its environment was pruned (prisn env prune): prepare it again.
    self.launches[cache_key], entry = nil, nil
  end
  if entry and entry.launch then return done(entry.launch) end
  if entry and entry.waiting then
    entry.waiting[#entry.waiting + 1] = done
    return
  end
  entry = { waiting = { done } }
  self.launches[cache_key] = entry
  instance_exec.prepare(self.server.home, spec, function(launch, err)
    local waiting = entry.waiting
    entry.waiting = nil
    if launch then entry.launch = launch else self.launches[cache_key] = nil end
    for _, cb in ipairs(waiting) do self:guard("prepared", cb)(launch, err) end
  end)
end

-- The environment of an instance: the launch's (the runner's, with -e
-- values), the identity variables, and the secrets' keys.
function Instance:instance_env(d, inst, launch, spec)
  local env = {}
  for k, v in pairs(launch.env or {}) do env[k] = v end
  env.PORT = tostring(inst.port)
  env.PRISN_DEPLOYMENT = d.name
  env.PRISN_NAMESPACE = d.ns
  env.PRISN_INSTANCE = instance_name(d, inst)
  if spec.secrets and #spec.secrets > 0 then
    local values = self.store.secrets.env_for(self.server.db, self.server.keyring, d.ns, spec.secrets)
    for k, v in pairs(values) do env[k] = v end
  end
  return env
end

--- The log host, made on first use: the data plane's
-- (prisn.server.log_host) when the server has one, else a pump in this
-- process (specs, tools). Either has attach(key, spec) and detach(key).
function Instance:log_host()
  if not self.output_host then
    if self.server.dataplane then
      self.output_host = log_host.new(self.server.dataplane, self.server.log)
    else
      self.output_host = log_pump.pump({ on_error = function(output_key, text)
        self.server.log:error("%s: %s", output_key, text)
      end })
    end
  end
  return self.output_host
end

--- The key of an instance's output at the log host: "ns/name/number".
function M.output_key(d, inst)
  return key(d.ns, d.name) .. "/" .. inst.number
end

--- What the log host needs to pump an instance's output into its log.
function Instance:output_spec(d, inst)
  return { fifos = inst.fifos, path = deploy_logs.instance_path(self.server.home, d.ns, d.name, inst.number),
    max_bytes = deploy_logs.max_bytes_per_instance(d.replicas) }
end

-- Has the log host read the instance's output pipes into its log; again
-- on each start, which updates the bound (the replicas may have changed).
function Instance:attach_output(d, inst)
  local ok, err = self:log_host():attach(M.output_key(d, inst), self:output_spec(d, inst))
  inst.output_attached = true
  if not ok then
    self.server.log:error("%s: cannot keep its output: %s", instance_name(d, inst), tostring(err))
  end
end

--- Has the log host read what is left of the instance's output and let go
-- of its pipes (the instance is forgotten, or stopped with the server).
function Instance:release_output(d, inst)
  if not inst.output_attached then return end
  inst.output_attached = nil
  self:log_host():detach(M.output_key(d, inst))
end

function Instance:start_health(d, inst)
  local spec = d.specs[inst.revision]
  local check = spec.health or { kind = "none" }
  if check.kind == "none" then
    -- Up for a moment counts as healthy: a script that crashes at start is
    -- never put in the pool, and a rollout of one is rolled back.
    inst.none_timer = self.uv.new_timer()
    inst.none_timer:start(M.NONE_HEALTHY_AFTER_MS, 0, self:guard("health", function()
      close_handle(inst.none_timer); inst.none_timer = nil
      self:health_changed(d, inst, "healthy")
    end))
    return
  end
  inst.checker = health.checker(check, { host = "127.0.0.1", port = inst.port,
    on_change = self:guard("health", function(state, detail) self:health_changed(d, inst, state, detail) end) })
  inst.checker:start()
end

-- Starts (or restarts) the process of `inst`.
function Instance:start_process(d, inst)
  if inst.removing or d.deleted then return end
  local spec = d.specs[inst.revision]
  self:set_state(d, inst, inst.restarts > 0 and "restarting" or "starting")
  self:launch_for(d, inst.revision, function(launch, err)
    if inst.removing or d.deleted or inst.forgotten or self.stopping_all then return end
    if not launch then
      -- Retried like a crash, with the restart policy's growing delays (a
      -- package index down for a moment must not leave it failed for good).
      inst.last_exit = { at = self.clock.now_ms(), reason = "failed_to_start", message = err.message }
      return self:exited(d, inst, { failed_to_start = true })
    end
    -- A task of its own: it waits on the loop for the child to reach its
    -- exec, while the server serves and other instances start.
    async.spawn(self:guard("start", function()
      local ok, start_err = pcall(self.spawn, self, d, inst, launch, spec)
      if not ok then
        inst.starting, inst.kill_after_start = nil, nil
        self.server.log:error("%s: %s", instance_name(d, inst), tostring(start_err))
        inst.last_exit = { at = self.clock.now_ms(), reason = "failed_to_start",
          message = type(start_err) == "table" and start_err.message or tostring(start_err) }
        self:exited(d, inst, { failed_to_start = true })
      end
    end))
  end)
end

-- Whether an instance no longer needs a process (one not yet started).
function Instance:unwanted(d, inst)
  return inst.removing or d.deleted or inst.forgotten or self.stopping_all or false
end

-- While its child starts (on_pending), the instance has its pid: a stop or
-- removal meanwhile waits for it (kill_process). The child waits before its
-- exec until that pid is in state.db (release): a server killed before the
-- record takes the child with it (the gate's end of file), and one killed
-- after is found at recovery — never a workload nobody owns. The record is
-- written at once but when the writer has others waiting (state.db busy):
-- then the child waits for its turn, at most RECORD_WAIT_MS; while state.db
-- cannot be written at all (degraded) it is not waited for.
M.RECORD_WAIT_MS = 2000

-- Returns true when release() is called later (process.start's on_pending).
function Instance:spawn_pending(d, inst, pid, release)
  inst.pid, inst.starting = pid, true
  inst.started_at = self.clock.now_ms()
  if not release then return self:save(d, inst) end
  local done, timer = false, nil
  local function go()
    if done then return end
    done = true
    if timer then close_handle(timer); timer = nil end
    release()
  end
  self:save(d, inst, go)
  if done then return true end -- written at once, and released
  local writer = self.server.state_writer
  if writer and writer.degraded then
    done = true
    return false
  end
  timer = self.uv.new_timer()
  timer:start(M.RECORD_WAIT_MS, 0, self:guard("record", function()
    if done then return end
    self.server.log:warn("%s: its pid is not recorded after %d ms; starting it anyway", instance_name(d, inst),
      M.RECORD_WAIT_MS)
    go()
  end))
  return true
end

function Instance:spawn(d, inst, launch, spec)
  local uv = self.uv
  local home = self.server.home
  if not inst.fifos then
    local fifos, ferr = instance_exec.fifo_paths(home, d.ns, d.name, inst.number)
    if not fifos then
      errors.raise("EIO", "cannot make the output pipes of " .. instance_name(d, inst) .. ": "
        .. tostring(ferr), { hint = "check the free space, owner and mode of the directory named (prisn's own, 0700: "
        .. "docs/SERVER.md, 'The runtime directory')" })
    end
    inst.fifos = fifos
  end
  local level = spec.isolation
  local user = exec_job.server_workload_user(level)
  local wanted = limits.from_spec(spec) or nil
  if inst.limiter then release_limiter(inst.limiter) end
  -- A cgroup only with limits: on cgroup v1 joining one costs 10-20 ms,
  -- which a restart should not pay for accounting (prisn.exec.proctree
  -- measures the others).
  inst.limiter = wanted and limits.apply(wanted, {
    name = names.cgroup_name(d, inst), replace = true,
    warn = function(text) self.server.log:warn("%s: %s", instance_name(d, inst), text) end,
  }) or nil
  local cwd = spec.cwd
  -- (resolv_conf: prisn's DNS first, prisn.server.dns)
  local dns = self.server.dns
  local iso = exec_job.isolation_context({ home = home, cwd = cwd, user = user, disk = spec.disk, isolation = level,
    resolv_conf = dns and dns.resolv_conf }, launch)
  self:attach_output(d, inst)
  local env = self:instance_env(d, inst, launch, spec)
  local proc, err, code = instance_exec.start({ home = home, launch = launch, env = env, cwd = cwd,
    limiter = inst.limiter, isolation = iso, fifos = inst.fifos,
    on_pending = function(pid, release) return self:spawn_pending(d, inst, pid, release) end,
    before_start = function() return not self:unwanted(d, inst) end })
  local saved = inst.starting
  inst.starting = nil
  if not proc then
    inst.pid = nil
    -- Removed, deleted or stopped while it waited for its turn: never started.
    if code == "ECANCELED" and self:unwanted(d, inst) then return end
    error(err, 0)
  end
  inst.proc = proc
  if inst.pid ~= proc:pid() then
    inst.pid, saved = proc:pid(), false
    inst.started_at = self.clock.now_ms()
  end
  inst.first_spawned_at = inst.first_spawned_at or inst.started_at
  if launch.env_dir then
    -- In use: `prisn env prune` goes by the marker's age.
    local t = os.time()
    uv.fs_utime(launch.env_dir .. "/" .. envcache.MARKER, t, t)
  end
  local m = self.server.metrics
  if inst.exit_seen_ns and m and m.instance_restart_latency then
    m.instance_restart_latency:observe((uv.hrtime() - inst.exit_seen_ns) / 1e9)
  end
  inst.exit_seen_ns = nil
  inst.healthy = false
  if not saved then self:save(d, inst) end
  self:watch_exit(d, inst)
  self:start_health(d, inst)
  local grace = inst.kill_after_start
  if grace then -- stopped while it started
    inst.kill_after_start = nil
    self:kill_process(inst, grace)
  end
end

--- Takes over `inst`, whose process `pid` (started at `started_at`) a
-- previous server started and left running: its cgroup, its output pipes,
-- its exit and its health are watched again as if this server had started it.
function Instance:adopt(d, inst, pid, started_at)
  inst.pid, inst.started_at = pid, started_at
  inst.first_spawned_at = self.clock.now_ms() -- a fresh progress deadline
  local wanted = limits.from_spec(d.specs[inst.revision])
  if wanted then
    inst.limiter = limits.adopt(wanted, { name = names.cgroup_name(d, inst) })
  end
  inst.fifos = instance_exec.fifo_paths(self.server.home, d.ns, d.name, inst.number)
  self:attach_output(d, inst)
  self:watch_exit(d, inst)
  self:start_health(d, inst)
end

-- Calls self:exited when the instance's process ends: its pidfd (our
-- child: the exact status), or for an adopted one a pidfd_open (no status)
-- or polling /proc.
function Instance:watch_exit(d, inst)
  if inst.proc then
    local proc = inst.proc
    proc:on_exit(self:guard("exit", function(status)
      if inst.proc == proc then self:exited(d, inst, status) end
    end))
    return
  end
  local pid = inst.pid
  inst.stop_watch = process.watch_pid(pid, self:guard("exit", function()
    inst.stop_watch = nil
    if inst.pid == pid then self:exited(d, inst, { unknown = true }) end
  end), M.ADOPTED_POLL_MS)
end

-- Stopped on request (a removal, a delete, a server stop): no restart, and
-- done once its cgroup is gone too, so a deleted deployment leaves none behind.
function Instance:stopped_on_request(d, inst, limiter, what)
  self:event(d, "instance.stopped", "instance/" .. instance_name(d, inst), what)
  local cb = inst.on_stopped
  inst.on_stopped = nil
  if limiter then
    release_limiter(limiter, cb and self:guard("stopped", cb))
  elseif cb then
    cb()
  end
end

-- Acts on the restart policy's decision for an instance that crashed:
-- stopped for good, started again at once, or after a delay.
function Instance:restart_after(d, inst, decision, reason)
  if not decision.restart then
    self:set_state(d, inst, "stopped")
    return
  end
  inst.restarts = inst.restarts + 1
  inst.crash_loop = decision.crash_loop
  local m = self.server.metrics
  if m and m.instance_exits then m.instance_exits:labels(reason):inc() end
  if decision.delay_s <= 0 then
    inst.exit_seen_ns = self.uv.hrtime()
    self:start_process(d, inst)
    return
  end
  self:set_state(d, inst, decision.status)
  inst.restart_timer = self.uv.new_timer()
  inst.restart_timer:start(math.floor(decision.delay_s * 1000), 0, self:guard("restart", function()
    close_handle(inst.restart_timer)
    inst.restart_timer = nil
    self:start_process(d, inst)
  end))
end

function Instance:exited(d, inst, status)
  local now_ms = self.clock.now_ms()
  inst.recovering = nil
  -- Whatever the instance left in its process group goes with it (it may
  -- hold $PORT, which the restarted instance needs).
  if inst.pid then self.uv.kill(-inst.pid, "sigkill") end
  inst.proc, inst.pid = nil, nil
  if inst.port then self:update_pool(d) end
  local was_healthy = inst.healthy
  inst.healthy = false
  detach(inst)
  local event = exit_event(status, inst.limiter, now_ms)
  event.requested = inst.removing or inst.stopping or d.deleted or self.stopping_all
  local reason = exit_reason(event, status)
  local exit = { at = now_ms, code = event.code, signal = event.signal, reason = reason,
    message = inst.last_exit and status.failed_to_start and inst.last_exit.message or nil }
  inst.last_exit = exit
  local limiter = inst.limiter
  inst.limiter = nil
  if limiter and not event.requested then release_limiter(limiter) end
  local what = status.failed_to_start and ("could not start: " .. tostring(exit.message))
    or status.unknown and "exited (its status was lost with a server restart)"
    or event.oom_killed and "was killed for running out of memory"
    or event.signal and ("was killed by signal " .. event.signal)
    or ("exited with code " .. tostring(event.code))
  if event.requested then return self:stopped_on_request(d, inst, limiter, what) end
  local decision = self:policy("restart").decide(inst.restart_state, event, {
    restart_policy = d.specs[inst.revision].restart or "always" }, math.random)
  inst.restart_state = decision.next
  -- The policy's reason says how it ended and what happens next; a start
  -- failure's own message says more than its "could not start".
  local reason_text = status.failed_to_start and (what .. "; " .. decision.reason:gsub("^could not start; ", ""))
    or status.unknown and (what .. "; " .. decision.reason) or decision.reason
  self:event(d, "instance.exited", "instance/" .. instance_name(d, inst), reason_text)
  self:hook("on_crash", { namespace = d.ns, deployment = d.name, instance = instance_name(d, inst),
    exit_code = event.code, signal = event.signal, reason = reason, restarts = inst.restarts,
    was_healthy = was_healthy }, d)
  self:restart_after(d, inst, decision, reason)
  self:reconcile(d)
end

function Instance:health_changed(d, inst, state, detail)
  if inst.removing or not inst.pid then return end
  inst.recovering = nil
  local name = instance_name(d, inst)
  local at = self.clock.now_ms() / 1000
  if state == "healthy" then
    inst.healthy = true
    inst.ever_healthy = true
    inst.restart_state = self:policy("restart").decide(inst.restart_state, { type = "healthy", at = at }).next
    inst.crash_loop = false
    self:set_state(d, inst, "running")
    self:event(d, "instance.healthy", "instance/" .. name, detail)
  elseif state == "unhealthy" then
    inst.healthy = false
    inst.restart_state = self:policy("restart").decide(inst.restart_state, { type = "unhealthy", at = at }).next
    self:set_state(d, inst, "unhealthy")
    self:event(d, "instance.unhealthy", "instance/" .. name, detail)
  elseif state == "failed" then
    inst.healthy = false
    self:set_state(d, inst, "unhealthy")
    self:event(d, "instance.unhealthy", "instance/" .. name, "failed its health check"
      .. (detail and (": " .. detail) or "") .. "; restarting it")
    -- Restarted through the restart policy, like a crash.
    self:kill_process(inst, d.specs[inst.revision].grace or M.DEFAULT_GRACE)
  end
  self:update_pool(d)
  self:reconcile(d)
end

function Instance:new_instance(d, revision)
  local number = self.store.deployments.next_number(self.server.db, d.ns, d.name)
  local inst = { number = number, revision = revision, port = self:free_port(), restarts = 0, state = "starting",
    created_at = self.clock.now_ms() }
  d.instances[number] = inst
  self:save(d, inst)
  self:start_process(d, inst)
  return inst
end

-- Forgets a stopped instance: its handles, log, cgroup, pipes, port and
-- record go; then on_removed and a reconcile.
function Instance:forget(d, inst)
  if inst.kill_timer then close_handle(inst.kill_timer); inst.kill_timer = nil end
  detach(inst)
  self:release_output(d, inst)
  if inst.limiter then release_limiter(inst.limiter); inst.limiter = nil end
  instance_exec.remove_fifos(inst.fifos)
  if inst.port then self.used_ports[inst.port] = nil end
  d.instances[inst.number] = nil
  inst.forgotten = true
  if not d.deleted then
    local name = key(d.ns, d.name) .. "/" .. inst.number
    self:write("removal of instance " .. name, "instance/" .. name, function(db)
      self.store.deployments.delete_instance(db, d.ns, d.name, inst.number)
    end)
    -- The logs of instances that are gone go first when the deployment's
    -- logs are over their bound.
    local keep = {}
    for number in pairs(d.instances) do keep[number] = true end
    pcall(deploy_logs.prune, self.server.home, d.ns, d.name, keep)
  end
  self:event(d, "instance.removed", "instance/" .. instance_name(d, inst))
  local cb = inst.on_removed
  inst.on_removed = nil
  if cb then cb() end
  self:reconcile(d)
end

-- Drains and stops an instance, then forgets it; calls done() after.
function Instance:remove_instance(d, inst, done)
  if inst.removing then
    if done then
      local previous = inst.on_removed
      inst.on_removed = function() if previous then previous() end done() end
    end
    return
  end
  inst.removing = true
  inst.on_removed = done
  self:set_state(d, inst, "draining")
  self:update_pool(d)
  if inst.restart_timer then close_handle(inst.restart_timer); inst.restart_timer = nil end
  local grace = d.specs[inst.revision] and d.specs[inst.revision].grace or M.DEFAULT_GRACE
  local function finish() self:forget(d, inst) end
  if not inst.pid then return finish() end
  inst.on_stopped = finish
  -- Connections already open get until the grace to finish first.
  local waited = 0
  local t = self.uv.new_timer()
  t:start(0, M.DRAIN_POLL_MS, self:guard("drain", function()
    local open = d.proxy and d.proxy:connections(instance_name(d, inst)) or 0
    for _, count in ipairs(self.drain_counts or {}) do open = open + count(d, inst) end -- the ingress's
    if open == 0 or waited >= grace * 1000 or not inst.pid then
      close_handle(t)
      if inst.pid then self:kill_process(inst, grace) end
      return
    end
    waited = waited + M.DRAIN_POLL_MS
  end))
end

return M
