-- prisn.server.supervisor: keeps every deployment's instances running.
--
-- For each deployment the supervisor holds the desired state (replicas, the
-- current revision, the public port) and the actual one (instances and
-- their processes), and reconciles them whenever something changes: an
-- instance exited, turned healthy or unhealthy, a deploy, a scale, a timer.
--
--   * An instance is one process of a revision (prisn.exec.instance starts
--     it) with its own internal port in $PORT, its output in its log
--     (prisn.deploy_logs), a health checker (prisn.net.health) and, when the
--     deployment has a port, a place in the load balancer's pool
--     (prisn.net.proxy) while it is healthy.
--   * Exits go to the restart policy (policies/restart.lua): restart at once,
--     after a growing delay (crash_loop_backoff), or not at all.
--   * A new revision rolls out one instance at a time as the rollout policy
--     (policies/rollout.lua) says: surge 1, unavailable 0; a revision whose
--     instances never become healthy is rolled back.
--   * Removing an instance drains it: out of the pool, open connections get
--     up to the grace to finish, then SIGTERM to its group, SIGKILL after the
--     grace.
--
-- Everything it knows is also in state.db (prisn.store.deployments), so a
-- restarted server re-adopts instances that are still alive (pid, start
-- time and session agree) and starts the ones that are gone.
local uv = require("luv")
local async = require("prisn.async")
local deployments = require("prisn.store.deployments")
local instance_exec = require("prisn.exec.instance")
local clock = require("prisn.clock")

local M = {}

M.DEFAULT_GRACE = 10           -- seconds between SIGTERM and SIGKILL
M.DRAIN_POLL_MS = 50
M.ADOPTED_POLL_MS = 200        -- when pidfd_open is missing
M.ROLLOUT_TICK_MS = 500
M.NONE_HEALTHY_AFTER_MS = 1000 -- health "none": up this long counts as healthy

local Sup = {}
Sup.__index = Sup

-- The policy `name`: the operator's in $PRISN_HOME/policies, or the built-in.
function Sup:policy(name)
  return require("prisn.policies").get(self.server.home, name, self.server.log)
end

local now_ms = clock.now_ms

local function key(ns, name) return ns .. "/" .. name end

--- A supervisor for `server` (db, home, log, events, metrics_registry,
-- keyring, hooks).
function M.new(server)
  return setmetatable({ server = server, deployments = {}, launches = {}, used_ports = {} }, Sup)
end

--- `fn` wrapped for a luv callback: an error is logged and the server goes
-- on (an error escaping a callback would end the whole process).
function Sup:guard(what, fn)
  return function(...)
    local ok, err = xpcall(fn, debug.traceback, ...)
    if not ok then self.server.log:error("supervisor: %s: %s", what, tostring(err)) end
  end
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

local function instance_name(d, inst) return d.name .. "-" .. inst.number end

-- The tag of this server's home in its cgroups' names: cgroups are
-- machine-wide, and two servers may each run a default/api.
local function home_tag(home)
  local crypto = require("prisn.core.crypto")
  return crypto.to_hex(crypto.hash(home)):sub(1, 8)
end

-- The cgroup of an instance's current process: a new one per restart (the
-- old one is cleaned up in the background), named after the server's home,
-- the deployment and the instance: "svc-<tag>-<ns>.<name>-<number>-<restarts>".
-- Names and namespaces hold no ".", so no two deployments share one (as
-- "a-b"/"c" and "a"/"b-c" would with a "-"): a name found taken is a
-- leftover of this very instance, and is replaced.
local function cgroup_name(d, inst)
  return string.format("svc-%s-%s.%s-%d-%d", d.home_tag, d.ns, d.name, inst.number, inst.restarts)
end

-- A pattern matching the cgroup names of every instance of deployment `d`.
local function cgroup_pattern(d)
  return "^" .. (string.format("svc-%s-%s.%s-", d.home_tag, d.ns, d.name):gsub("%p", "%%%0")) .. "%d+%-%d+$"
end

-- Ports --------------------------------------------------------------------

-- A free loopback port for an instance: the kernel picks one; ports handed
-- out and still in use are never given twice.
function Sup:free_port()
  for _ = 1, 20 do
    local tcp = uv.new_tcp()
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

-- Records ------------------------------------------------------------------

-- Instance and revision records go through the server's writer: kept in
-- order and retried while state.db cannot take them, only the latest state
-- of an instance kept meanwhile (the key).
function Sup:write(what, record_key, fn)
  local db = self.server.db
  if not self.server.state_writer then return fn(db) end
  self.server.state_writer:write(what, function() fn(db) end, { key = record_key })
end

function Sup:save(d, inst)
  local fields = {
    namespace = d.ns, deployment = d.name, number = inst.number, revision = inst.revision, port = inst.port,
    pid = inst.pid, started_at = inst.started_at, state = inst.state, restarts = inst.restarts,
    last_exit = inst.last_exit, created_at = inst.created_at,
  }
  local name = key(d.ns, d.name) .. "/" .. inst.number
  self:write("instance " .. name, "instance/" .. name, function(db) deployments.save_instance(db, fields) end)
end

function Sup:set_state(d, inst, state)
  if inst.state == state then return end
  inst.state = state
  if not inst.forgotten then self:save(d, inst) end
end

-- Launches -----------------------------------------------------------------

-- Calls done(launch) or done(nil, err) for revision `rev` of d; prepares it
-- once (in a child) however many instances ask at the same time.
function Sup:launch_for(d, rev, done)
  local spec = d.specs[rev]
  local cache_key = require("cjson").encode({ spec.script, spec.args or {}, spec.runner or "", spec.no_deps or false,
    spec.env or {} })
  local entry = self.launches[cache_key]
  if entry and entry.launch and entry.launch.env_dir and not uv.fs_stat(entry.launch.env_dir) then
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
function Sup:instance_env(d, inst, launch, spec)
  local env = {}
  for k, v in pairs(launch.env or {}) do env[k] = v end
  env.PORT = tostring(inst.port)
  env.PRISN_DEPLOYMENT = d.name
  env.PRISN_NAMESPACE = d.ns
  env.PRISN_INSTANCE = instance_name(d, inst)
  if spec.secrets and #spec.secrets > 0 then
    local values = require("prisn.store.secrets").env_for(self.server.db, self.server.keyring, d.ns, spec.secrets)
    for k, v in pairs(values) do env[k] = v end
  end
  return env
end

-- Starting -----------------------------------------------------------------

local function close_handle(h)
  if h and not h:is_closing() then h:close() end
end

-- Stops reading an instance's output and its health checks.
local function detach(inst)
  if inst.checker then inst.checker:stop(); inst.checker = nil end
  if inst.none_timer then close_handle(inst.none_timer); inst.none_timer = nil end
  for _, pipe in ipairs(inst.readers or {}) do
    if not pipe:is_closing() then pipe:read_stop(); pipe:close() end
  end
  inst.readers = nil
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

-- SIGTERM to the instance's group, SIGKILL after `grace` seconds.
local function kill_process(inst, grace)
  local pid = inst.pid
  if not pid then return end
  uv.kill(-pid, "sigterm")
  local t = uv.new_timer()
  t:start(math.floor(grace * 1000), 0, function()
    close_handle(t)
    if inst.pid == pid then uv.kill(-pid, "sigkill") end
  end)
  inst.kill_timer = t
end

local function describe_exit(inst)
  local e = inst.last_exit
  if not e then return "not healthy" end
  if e.message then return e.message end
  if e.reason == "oom_killed" then return "out of memory" end
  if e.signal then return "killed by signal " .. e.signal end
  return "exited with code " .. tostring(e.code)
end

-- The pool ----------------------------------------------------------------

local function update_pool(d)
  if not d.proxy then return end
  local backends = {}
  for _, inst in pairs(d.instances) do
    if inst.healthy and inst.pid and not inst.removing then
      backends[#backends + 1] = { id = instance_name(d, inst), host = "127.0.0.1", port = inst.port,
        number = inst.number }
    end
  end
  table.sort(backends, function(a, b) return a.number < b.number end)
  d.proxy:set_backends(backends)
end

-- Opens the instance's log and starts reading its output pipes into it.
function Sup:attach_output(d, inst)
  local deploy_logs = require("prisn.deploy_logs")
  if not inst.log then
    local path = deploy_logs.instance_path(self.server.home, d.ns, d.name, inst.number)
    local writer, err = require("prisn.logs").writer(path, {
      max_bytes = deploy_logs.max_bytes_per_instance(d.replicas) })
    if not writer then
      self.server.log:error("%s: cannot keep its output: %s", instance_name(d, inst), tostring(err))
    end
    inst.log = writer
  end
  inst.readers = {}
  for _, stream in ipairs({ "stdout", "stderr" }) do
    local pipe, err = instance_exec.open_reader(inst.fifos[stream])
    if pipe then
      inst.readers[#inst.readers + 1] = pipe
      pipe:read_start(function(rerr, data)
        if data and not rerr then
          if inst.log then inst.log:write(stream, data) end
        elseif not pipe:is_closing() then
          pipe:read_stop(); pipe:close()
        end
      end)
    else
      self.server.log:error("%s: cannot read its %s: %s", instance_name(d, inst), stream, tostring(err))
    end
  end
end

function Sup:start_health(d, inst)
  local spec = d.specs[inst.revision]
  local health = spec.health or { kind = "none" }
  if health.kind == "none" then
    -- Up for a moment counts as healthy: a script that crashes at start is
    -- never put in the pool, and a rollout of one is rolled back.
    inst.none_timer = uv.new_timer()
    inst.none_timer:start(M.NONE_HEALTHY_AFTER_MS, 0, self:guard("health", function()
      close_handle(inst.none_timer); inst.none_timer = nil
      self:health_changed(d, inst, "healthy")
    end))
    return
  end
  inst.checker = require("prisn.net.health").checker(health, { host = "127.0.0.1", port = inst.port,
    on_change = self:guard("health", function(state, detail) self:health_changed(d, inst, state, detail) end) })
  inst.checker:start()
end

-- Starts (or restarts) the process of `inst`.
function Sup:start_process(d, inst)
  if inst.removing or d.deleted then return end
  local spec = d.specs[inst.revision]
  self:set_state(d, inst, inst.restarts > 0 and "restarting" or "starting")
  self:launch_for(d, inst.revision, function(launch, err)
    if inst.removing or d.deleted or inst.forgotten or self.stopping_all then return end
    if not launch then
      -- Retried like a crash, with the restart policy's growing delays (a
      -- package index down for a moment must not leave it failed for good).
      inst.last_exit = { at = now_ms(), reason = "failed_to_start", message = err.message }
      return self:exited(d, inst, { failed_to_start = true })
    end
    local ok, start_err = pcall(self.spawn, self, d, inst, launch, spec)
    if not ok then
      self.server.log:error("%s: %s", instance_name(d, inst), tostring(start_err))
      inst.last_exit = { at = now_ms(), reason = "failed_to_start",
        message = type(start_err) == "table" and start_err.message or tostring(start_err) }
      self:exited(d, inst, { failed_to_start = true })
    end
  end)
end

function Sup:spawn(d, inst, launch, spec)
  local job = require("prisn.exec.job")
  local home = self.server.home
  if not inst.fifos then
    local fifos, ferr = instance_exec.fifo_paths(home, d.ns, d.name, inst.number)
    if not fifos then
      require("prisn.error").raise("EIO", "cannot make the output pipes of " .. instance_name(d, inst) .. ": "
        .. tostring(ferr), { hint = "check the free space and permissions of " .. home .. "/run" })
    end
    inst.fifos = fifos
  end
  local level = spec.isolation
  local user = job.server_workload_user(level)
  local limits = require("prisn.exec.limits").from_spec(spec) or nil
  if inst.limiter then release_limiter(inst.limiter) end
  -- A cgroup only with limits: on cgroup v1 joining one costs 10-20 ms,
  -- which a restart should not pay for accounting (prisn.exec.proctree
  -- measures the others).
  inst.limiter = limits and require("prisn.exec.limits").apply(limits, {
    name = cgroup_name(d, inst), replace = true,
    warn = function(text) self.server.log:warn("%s: %s", instance_name(d, inst), text) end,
  }) or nil
  local cwd = spec.cwd
  local iso = job.isolation_context({ home = home, cwd = cwd, user = user, disk = spec.disk, isolation = level },
    launch)
  self:attach_output(d, inst)
  local env = self:instance_env(d, inst, launch, spec)
  local proc, err = instance_exec.start({ home = home, launch = launch, env = env, cwd = cwd,
    limiter = inst.limiter, isolation = iso, fifos = inst.fifos })
  if not proc then error(err, 0) end
  inst.proc = proc
  inst.pid = proc:pid()
  inst.started_at = now_ms()
  inst.first_spawned_at = inst.first_spawned_at or inst.started_at
  if launch.env_dir then
    -- In use: `prisn env prune` goes by the marker's age.
    local t = os.time()
    uv.fs_utime(launch.env_dir .. "/" .. require("prisn.exec.envcache").MARKER, t, t)
  end
  local m = self.server.metrics
  if inst.exit_seen_ns and m and m.instance_restart_latency then
    m.instance_restart_latency:observe((uv.hrtime() - inst.exit_seen_ns) / 1e9)
  end
  inst.exit_seen_ns = nil
  inst.healthy = false
  self:save(d, inst)
  self:watch_exit(d, inst)
  self:start_health(d, inst)
end

-- Calls self:exited when the instance's process ends: its pidfd (our
-- child: the exact status), or for an adopted one a pidfd_open (no status)
-- or polling /proc.
function Sup:watch_exit(d, inst)
  if inst.proc then
    local proc = inst.proc
    proc:on_exit(self:guard("exit", function(status)
      if inst.proc == proc then self:exited(d, inst, status) end
    end))
    return
  end
  local pid = inst.pid
  inst.stop_watch = require("prisn.exec.process").watch_pid(pid, self:guard("exit", function()
    inst.stop_watch = nil
    if inst.pid == pid then self:exited(d, inst, { unknown = true }) end
  end), M.ADOPTED_POLL_MS)
end


-- Exits and health ---------------------------------------------------------

local function exit_event(status, limiter)
  local event = { type = "exit", at = now_ms() / 1000, status_unknown = status.unknown or nil,
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

function Sup:exited(d, inst, status)
  inst.recovering = nil
  -- Whatever the instance left in its process group goes with it (it may
  -- hold $PORT, which the restarted instance needs).
  if inst.pid then uv.kill(-inst.pid, "sigkill") end
  inst.proc, inst.pid = nil, nil
  if inst.port and d.proxy then update_pool(d) end
  local was_healthy = inst.healthy
  inst.healthy = false
  detach(inst)
  local event = exit_event(status, inst.limiter)
  event.requested = inst.removing or inst.stopping or d.deleted or self.stopping_all
  local reason = exit_reason(event, status)
  local exit = { at = now_ms(), code = event.code, signal = event.signal, reason = reason,
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
  if event.requested then
    self:event(d, "instance.stopped", "instance/" .. instance_name(d, inst), what)
    local cb = inst.on_stopped
    inst.on_stopped = nil
    -- Stopped on request (a removal, a delete, a server stop): done once its
    -- cgroup is gone too, so a deleted deployment leaves none behind.
    if limiter then
      release_limiter(limiter, cb and self:guard("stopped", cb))
    elseif cb then
      cb()
    end
    return
  end
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
  if not decision.restart then
    self:set_state(d, inst, "stopped")
    self:reconcile(d)
    return
  end
  inst.restarts = inst.restarts + 1
  inst.crash_loop = decision.crash_loop
  local m = self.server.metrics
  if m and m.instance_exits then m.instance_exits:labels(reason):inc() end
  if decision.delay_s <= 0 then
    inst.exit_seen_ns = uv.hrtime()
    self:start_process(d, inst)
  else
    self:set_state(d, inst, decision.status)
    inst.restart_timer = uv.new_timer()
    inst.restart_timer:start(math.floor(decision.delay_s * 1000), 0, self:guard("restart", function()
      close_handle(inst.restart_timer)
      inst.restart_timer = nil
      self:start_process(d, inst)
    end))
  end
  self:reconcile(d)
end

function Sup:health_changed(d, inst, state, detail)
  if inst.removing or not inst.pid then return end
  inst.recovering = nil
  local name = instance_name(d, inst)
  if state == "healthy" then
    inst.healthy = true
    inst.ever_healthy = true
    inst.restart_state = self:policy("restart").decide(inst.restart_state,
      { type = "healthy", at = now_ms() / 1000 }).next
    inst.crash_loop = false
    self:set_state(d, inst, "running")
    self:event(d, "instance.healthy", "instance/" .. name, detail)
  elseif state == "unhealthy" then
    inst.healthy = false
    inst.restart_state = self:policy("restart").decide(inst.restart_state,
      { type = "unhealthy", at = now_ms() / 1000 }).next
    self:set_state(d, inst, "unhealthy")
    self:event(d, "instance.unhealthy", "instance/" .. name, detail)
  elseif state == "failed" then
    inst.healthy = false
    self:set_state(d, inst, "unhealthy")
    self:event(d, "instance.unhealthy", "instance/" .. name, "failed its health check"
      .. (detail and (": " .. detail) or "") .. "; restarting it")
    -- Restarted through the restart policy, like a crash.
    kill_process(inst, d.specs[inst.revision].grace or M.DEFAULT_GRACE)
  end
  update_pool(d)
  self:reconcile(d)
end


function Sup:open_port(d)
  if d.proxy then
    if d.proxy_port == d.row.port then return true end
    d.proxy:close(function() end)
    d.proxy = nil
  end
  if not d.row.port then return true end
  local proxy, err, code = require("prisn.net.proxy").listen({
    host = d.row.host or "0.0.0.0", port = d.row.port, strategy = d.row.strategy, name = key(d.ns, d.name),
    metrics = self.server.metrics_registry,
    on_event = function(kind, detail)
      if kind == "connect_failed" then
        self.server.log:warn("%s: connection to %s failed: %s", key(d.ns, d.name), tostring(detail), "retried")
      end
    end,
  })
  if not proxy then return nil, err, code end
  d.proxy, d.proxy_port = proxy, d.row.port
  update_pool(d)
  return true
end

-- Removing -----------------------------------------------------------------

-- Drains and stops an instance, then forgets it; calls done() after.
function Sup:remove_instance(d, inst, done)
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
  update_pool(d)
  if inst.restart_timer then close_handle(inst.restart_timer); inst.restart_timer = nil end
  local grace = d.specs[inst.revision] and d.specs[inst.revision].grace or M.DEFAULT_GRACE
  local function finish()
    if inst.kill_timer then close_handle(inst.kill_timer); inst.kill_timer = nil end
    detach(inst)
    if inst.log then inst.log:close(); inst.log = nil end
    if inst.limiter then release_limiter(inst.limiter); inst.limiter = nil end
    instance_exec.remove_fifos(inst.fifos)
    if inst.port then self.used_ports[inst.port] = nil end
    d.instances[inst.number] = nil
    inst.forgotten = true
    if not d.deleted then
      local name = key(d.ns, d.name) .. "/" .. inst.number
      self:write("removal of instance " .. name, "instance/" .. name, function(db)
        deployments.delete_instance(db, d.ns, d.name, inst.number)
      end)
      -- The logs of instances that are gone go first when the deployment's
      -- logs are over their bound.
      local keep = {}
      for number in pairs(d.instances) do keep[number] = true end
      pcall(require("prisn.deploy_logs").prune, self.server.home, d.ns, d.name, keep)
    end
    self:event(d, "instance.removed", "instance/" .. instance_name(d, inst))
    local cb = inst.on_removed
    inst.on_removed = nil
    if cb then cb() end
    self:reconcile(d)
  end
  if not inst.pid then return finish() end
  inst.on_stopped = finish
  -- Connections already open get until the grace to finish first.
  local waited = 0
  local t = uv.new_timer()
  t:start(0, M.DRAIN_POLL_MS, self:guard("drain", function()
    local open = d.proxy and d.proxy:connections(instance_name(d, inst)) or 0
    if open == 0 or waited >= grace * 1000 or not inst.pid then
      close_handle(t)
      if inst.pid then kill_process(inst, grace) end
      return
    end
    waited = waited + M.DRAIN_POLL_MS
  end))
end

-- Reconciling --------------------------------------------------------------

function Sup:new_instance(d, revision)
  local number = deployments.next_number(self.server.db, d.ns, d.name)
  local inst = { number = number, revision = revision, port = self:free_port(), restarts = 0, state = "starting",
    created_at = now_ms() }
  d.instances[number] = inst
  self:save(d, inst)
  self:start_process(d, inst)
  return inst
end

local function sorted_instances(d)
  local list = {}
  for _, inst in pairs(d.instances) do list[#list + 1] = inst end
  table.sort(list, function(a, b) return a.number < b.number end)
  return list
end

-- What the rollout policy calls an instance's state.
local function rollout_state(inst)
  if inst.removing then return "draining" end
  if inst.healthy or inst.recovering then return "healthy" end
  if inst.state == "failed" or inst.state == "stopped" then return "failed" end
  -- Crashing again before ever being healthy: this revision does not start.
  if not inst.ever_healthy and inst.restarts >= 2 then return "failed" end
  if inst.ever_healthy then return "unhealthy" end
  return "starting"
end

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
    local ok, err = xpcall(self.reconcile_once, debug.traceback, self, d)
    if not ok then self.server.log:error("%s: reconcile: %s", key(d.ns, d.name), tostring(err)) end
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

-- Without old instances a new revision is "active" once every instance is
-- healthy, "failed" when they do not start.
function Sup:check_first_rollout(d, current)
  if #current < d.row.replicas then return end
  local healthy, failed = 0, nil
  for _, inst in ipairs(current) do
    if inst.healthy then healthy = healthy + 1 end
    if rollout_state(inst) == "failed" then failed = inst end
  end
  if healthy >= d.row.replicas then
    self:mark_revision(d, d.row.revision, "active")
    self:event(d, "deployment.rolled_out", "deploy/" .. d.name, "revision " .. d.row.revision .. " is serving")
    self:hook("post_deploy", { namespace = d.ns, deployment = d.name, revision = d.row.revision,
      replicas = d.row.replicas, script = d.specs[d.row.revision].entry or d.specs[d.row.revision].script }, d)
  elseif failed and d.revision_state ~= "failed" then
    local message = string.format("instance %s does not start: %s", instance_name(d, failed),
      describe_exit(failed))
    self:mark_revision(d, d.row.revision, "failed", message)
    self:event(d, "deployment.failed", "deploy/" .. d.name, message)
  end
end


function Sup:mark_revision(d, number, state, message)
  if number == d.row.revision then d.revision_state = state end
  local name = key(d.ns, d.name) .. "/revision/" .. number
  self:write("state of " .. name, name, function(db)
    deployments.set_revision_state(db, d.ns, d.name, number, state, message)
  end)
end

function Sup:rollout_step(d)
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
    { progress_deadline = spec.progress_deadline }, now_ms() / 1000)
  if action.start_new then
    self:new_instance(d, d.row.revision)
  elseif action.drain_old then
    self:remove_instance(d, d.instances[action.drain_old])
  elseif action.rollback then
    self:rollback(d, action.reason)
  elseif action.done then
    self:rollout_finished(d)
  end
end

function Sup:count_rollout(outcome)
  local m = self.server.metrics
  if m and m.rollouts then m.rollouts:labels(outcome):inc() end
end

function Sup:rollout_finished(d)
  local r = d.rollout
  d.rollout = nil
  if r and r.timer then close_handle(r.timer) end
  self:mark_revision(d, d.row.revision, "active")
  for _, rev in ipairs(r and r.from or {}) do self:mark_revision(d, rev, "superseded") end
  self:event(d, "deployment.rolled_out", "deploy/" .. d.name, "revision " .. d.row.revision .. " is serving")
  self:count_rollout("rolled_out")
  self:hook("post_deploy", { namespace = d.ns, deployment = d.name, revision = d.row.revision,
    replicas = d.row.replicas, script = d.specs[d.row.revision].entry or d.specs[d.row.revision].script }, d)
  self:reconcile(d)
end

function Sup:rollback(d, reason)
  local r = d.rollout
  d.rollout = nil
  if r and r.timer then close_handle(r.timer) end
  local failed = d.row.revision
  local back = r and r.previous
  if not back then
    -- Nothing that ever served to go back to: like a first deploy that does
    -- not start, it fails, and its instances go on restarting with backoff.
    local message = "revision " .. failed .. " does not start: " .. reason
    self:mark_revision(d, failed, "failed", reason)
    self:event(d, "deployment.failed", "deploy/" .. d.name, message)
    self.server.log:warn("%s: %s", key(d.ns, d.name), message)
    for _, rev in ipairs(r and r.from or {}) do
      local row = deployments.revision(self.server.db, d.ns, d.name, rev)
      if row and row.state == "rolling_out" then self:mark_revision(d, rev, "superseded") end
    end
    return self:reconcile(d)
  end
  local message = "revision " .. failed .. " rolled back: " .. reason
  self:mark_revision(d, failed, "rolled_back", reason)
  self:event(d, "deployment.rolled_back", "deploy/" .. d.name, message
    .. (back and (", revision " .. back .. " serves again") or ""))
  self.server.log:warn("%s: %s", key(d.ns, d.name), message)
  self:count_rollout("rolled_back")
  if back then
    self:write("rollback of " .. key(d.ns, d.name), nil, function(db)
      deployments.update(db, d.ns, d.name, { revision = back })
    end)
    d.row.revision = back
    d.revision_state = "active"
    self:mark_revision(d, back, "active")
  end
  for _, inst in ipairs(sorted_instances(d)) do
    if inst.revision == failed then self:remove_instance(d, inst) end
  end
  for _, rev in ipairs(r and r.from or {}) do
    local row = deployments.revision(self.server.db, d.ns, d.name, rev)
    if rev ~= back and row and row.state == "rolling_out" then self:mark_revision(d, rev, "superseded") end
  end
  self:reconcile(d)
end

--- The newest revision before the current one that served (active or
-- superseded), or nil.
function Sup:last_serving_revision(d)
  local best
  for _, rev in ipairs(deployments.revisions(self.server.db, d.ns, d.name)) do
    if rev.revision ~= d.row.revision and (rev.state == "active" or rev.state == "superseded") then
      best = rev.revision
    end
  end
  return best
end

-- Public operations (the API calls these) -----------------------------------

-- Loads (or reloads) the desired state of a deployment from state.db.
function Sup:load(ns, name)
  local row = deployments.get(self.server.db, ns, name)
  if not row then return nil end
  local d = self.deployments[key(ns, name)]
  if not d then
    d = { ns = ns, name = name, instances = {}, specs = {}, home_tag = home_tag(self.server.home) }
    self.deployments[key(ns, name)] = d
  end
  d.row = row
  for _, rev in ipairs(deployments.revisions(self.server.db, ns, name)) do
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
      d.rollout = { from = list, previous = self:last_serving_revision(d), started_at = now_ms() }
      -- Deadlines pass without any event: look again now and then.
      d.rollout.timer = uv.new_timer()
      d.rollout.timer:start(M.ROLLOUT_TICK_MS, M.ROLLOUT_TICK_MS, function() self:reconcile(d) end)
    end
  end
  update_pool(d)
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
    self:remove_leftover_cgroups(cgroup_pattern(d))
    done()
  end
  local function one_gone()
    pending = pending - 1
    if pending == 0 and not finished then all_gone() end
  end
  d.row.replicas = 0
  d.deleted = true
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
  local limits = require("prisn.exec.limits")
  local removed = 0
  for _, name in ipairs(limits.list("svc-" .. home_tag(self.server.home) .. "-")) do
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

-- Recovery and stop --------------------------------------------------------

-- Whether `pid` is still the instance started at `started_ms`.
local function still_ours(pid, started_ms)
  local jobs = require("prisn.server.jobs")
  return pid and jobs.alive(pid) and jobs.still_ours(pid, started_ms)
end

--- At start: loads every deployment, re-adopts live instances and starts
-- the rest.
function Sup:recover()
  local db = self.server.db
  local adopted, restarted = 0, 0
  self:sweep_cgroups()
  for _, row in ipairs(deployments.list(db, { all_namespaces = true })) do
    local d = self:load(row.namespace, row.name)
    for _, irow in ipairs(deployments.instances(db, row.namespace, row.name)) do
      -- Until its first health result a recovered instance counts as
      -- serving if it served before (a rollout must not drain it meanwhile).
      local inst = { number = irow.number, revision = irow.revision, port = irow.port, restarts = irow.restarts,
        state = irow.state, created_at = irow.created_at, last_exit = irow.last_exit,
        recovering = irow.state == "running" }
      d.instances[inst.number] = inst
      if inst.port then self.used_ports[inst.port] = true end
      local pid = irow.pid and math.tointeger(irow.pid)
      if still_ours(pid, irow.started_at) and d.specs[inst.revision] then
        inst.pid, inst.started_at = pid, irow.started_at
        inst.first_spawned_at = now_ms() -- a fresh progress deadline
        local limits = require("prisn.exec.limits").from_spec(d.specs[inst.revision])
        if limits then
          inst.limiter = require("prisn.exec.limits").adopt(limits, { name = cgroup_name(d, inst) })
        end
        inst.fifos = instance_exec.fifo_paths(self.server.home, d.ns, d.name, inst.number)
        self:attach_output(d, inst)
        self:watch_exit(d, inst)
        self:start_health(d, inst)
        adopted = adopted + 1
      elseif d.specs[inst.revision] then
        inst.pid = nil
        self:start_process(d, inst)
        restarted = restarted + 1
      end
    end
    local ok, err = self:open_port(d)
    if not ok then self.server.log:error("deploy %s: cannot listen on port %s: %s", key(d.ns, d.name),
      tostring(row.port), tostring(err)) end
    if d.revision_state == "rolling_out" then
      d.rollout = { from = {}, started_at = now_ms(), previous = self:last_serving_revision(d) }
      for _, inst in pairs(d.instances) do
        if inst.revision ~= d.row.revision then d.rollout.from[#d.rollout.from + 1] = inst.revision end
      end
      d.rollout.timer = uv.new_timer()
      d.rollout.timer:start(M.ROLLOUT_TICK_MS, M.ROLLOUT_TICK_MS, function() self:reconcile(d) end)
    end
    self:reconcile(d)
  end
  if adopted + restarted > 0 then
    self.server.log:info("recovery: %d instance(s) re-adopted, %d restarted", adopted, restarted)
  end
  self:start_autoscaler()
end

-- At start, before any instance is started again: every cgroup of this
-- home's instances goes but those of instances that are re-adopted (alive,
-- same pid and start time) and are reused as they are. A server killed with
-- `kill -9` leaves the cgroups of instances that died meanwhile, and any
-- whose cleanup it had not finished; left there, the next instance of that
-- name would fail to make its own and run without its limits.
function Sup:sweep_cgroups()
  local db = self.server.db
  local keep, keep_pids = {}, {}
  for _, row in ipairs(deployments.list(db, { all_namespaces = true })) do
    local d = { ns = row.namespace, name = row.name, home_tag = home_tag(self.server.home) }
    for _, irow in ipairs(deployments.instances(db, row.namespace, row.name)) do
      local pid = irow.pid and math.tointeger(irow.pid)
      if still_ours(pid, irow.started_at) then
        keep[cgroup_name(d, { number = irow.number, restarts = irow.restarts })] = true
        keep_pids[pid] = true
      end
    end
  end
  local removed = self:remove_leftover_cgroups("", keep, keep_pids)
  if removed > 0 then self.server.log:info("recovery: %d leftover cgroup(s) removed", removed) end
end

--- Stops every instance of every deployment gracefully (a server stop):
-- the records stay, so the next start brings them back. done() after.
function Sup:stop_all(grace, done)
  self.stopping_all = true
  if self.autoscale_timer then close_handle(self.autoscale_timer) end
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
          if inst.log then inst.log:close(); inst.log = nil end
          one()
        end
        kill_process(inst, math.min(grace, d.specs[inst.revision].grace or M.DEFAULT_GRACE))
      end
    end
  end
  if pending == 0 then done() end
end

-- Autoscaling ---------------------------------------------------------------

--- CPU time and memory of an instance: from its cgroup when it has one,
-- else from its process tree. { cpu_usage_us, memory_current } or nil.
function M.usage(inst)
  local cg = inst.limiter and inst.limiter.cgroup
  if cg then return cg:stats() end
  if inst.pid then return require("prisn.exec.proctree").usage(inst.pid) end
  return nil
end

M.AUTOSCALE_INTERVAL_MS = 15000

-- CPU use of each serving instance since the last sample, in % of the CPU
-- it may use (--cpu, else one core).
local function cpu_readings(d)
  local readings = {}
  local now = uv.hrtime()
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

--- One autoscaling round: each deployment under --auto gets a decision from
-- policies/autoscale.lua; a change is applied, recorded and hooked.
function Sup:autoscale()
  for _, d in pairs(self.deployments) do
    local settings = d.row.autoscale
    if settings and not d.deleted and not d.rollout then
      local current = d.row.replicas
      local ok, decision = pcall(self:policy("autoscale").decide, d.autoscale_state,
        { at = now_ms() / 1000, current = current, cpu = cpu_readings(d) }, settings)
      if not ok then
        self.server.log:error("%s: autoscale policy: %s", key(d.ns, d.name), tostring(decision))
      else
        d.autoscale_state = decision.next
        if decision.desired ~= current then
          deployments.update(self.server.db, d.ns, d.name, { replicas = decision.desired })
          d.row.replicas = decision.desired
          self:event(d, "deployment.autoscaled", "deploy/" .. d.name, decision.reason)
          self:hook("on_scale", { namespace = d.ns, deployment = d.name, from = current, to = decision.desired,
            actor = "autoscaler", reason = decision.reason }, d)
          self:reconcile(d)
        end
      end
    end
  end
end

--- Starts the autoscaling timer (PRISN_AUTOSCALE_INTERVAL_MS, default 15 s).
function Sup:start_autoscaler()
  local interval = math.tointeger(tonumber(os.getenv("PRISN_AUTOSCALE_INTERVAL_MS") or ""))
    or M.AUTOSCALE_INTERVAL_MS
  self.autoscale_timer = uv.new_timer()
  self.autoscale_timer:start(interval, interval, self:guard("autoscale", function() self:autoscale() end))
  self.autoscale_timer:unref()
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
