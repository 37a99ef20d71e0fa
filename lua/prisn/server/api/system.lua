-- The server's own endpoints: /health, /ready, /version, /api/v1/status and
-- /api/v1/nodes.
--
-- /api/v1/status is what `prisn status` shows: the server's health, counts,
-- the running services, and the problems of the workloads a token may see
-- (deployments short of ready instances or crash-looping, cron jobs whose
-- last run failed, jobs queued too long or running past their timeout),
-- each naming the command that looks further.
local uv = require("luv")
local version = require("prisn.version")
local api = require("prisn.server.api")
local auth = require("prisn.server.auth")
local cronjobs = require("prisn.store.cronjobs")
local jobs = require("prisn.store.jobs")
local store = require("prisn.store")
local clock = require("prisn.clock")
local units = require("prisn.units")
local cjson = require("cjson")

local DEFAULT_GRACE_S = require("prisn.exec.group").DEFAULT_GRACE

-- Deployments and their instances by state, and the services they are:
-- { name, namespace, ready, replicas, port, restarts, state } each, state
-- "ready", "short" (fewer ready instances than wanted) or "crash_loop" (an
-- instance restarting with backoff). A short or crash-looping deployment is
-- a problem to report, named with what a user needs to look further.
local function services_status(server, problems, visible)
  local sup = server.supervisor
  local out = { count = 0, instances = {}, services = api.array() }
  if not sup then return out end
  local list = {}
  for _, d in pairs(sup.deployments) do list[#list + 1] = d end
  table.sort(list, function(a, b)
    if a.ns ~= b.ns then return a.ns < b.ns end
    return a.name < b.name
  end)
  for _, d in ipairs(list) do
    if visible(d.ns) then
      out.count = out.count + 1
      local ready, restarts, looping = 0, 0, nil
      for _, inst in pairs(d.instances) do
        out.instances[inst.state] = (out.instances[inst.state] or 0) + 1
        if inst.healthy and inst.revision == d.row.revision then ready = ready + 1 end
        restarts = restarts + (inst.restarts or 0)
        if inst.crash_loop and (not looping or inst.number < looping.number) then looping = inst end
      end
      local state = looping and "crash_loop" or ready < d.row.replicas and "short" or "ready"
      out.services[#out.services + 1] = { namespace = d.ns, name = d.name, ready = ready,
        replicas = d.row.replicas, port = d.row.port or api.null, restarts = restarts, state = state }
      if state ~= "ready" then
        local detail, look = "", string.format("prisn get instances -n %s", d.ns)
        if looping then
          local exit = looping.last_exit or {}
          detail = string.format("; %s-%d is crash-looping (%d restarts%s)", d.name, looping.number,
            looping.restarts or 0, exit.code and (", last exit code " .. math.tointeger(exit.code))
              or exit.signal and (", last killed by " .. tostring(exit.signal)) or "")
          look = string.format("prisn logs %s --instance %d --tail 20 -n %s", d.name, looping.number, d.ns)
        elseif restarts > 0 then
          detail = string.format("; %d restarts", restarts)
        end
        problems[#problems + 1] = string.format("deployment %s/%s: %d/%d ready%s (%s)",
          d.ns, d.name, ready, d.row.replicas, detail, look)
      end
    end
  end
  return out
end

-- How many runs of a cron job are looked at for a run of failures.
local CRON_RUNS_SEEN = 10

-- The cron jobs (not suspended) whose last run failed, with how many runs
-- in a row failed, as problems.
local function failing_cronjobs(db, problems, visible)
  for _, cron in ipairs(cronjobs.list(db, { all_namespaces = true })) do
    if visible(cron.namespace) and not cron.suspended then
      local failed, newest = 0, nil
      for _, run in ipairs(jobs.list(db, { namespace = cron.namespace, cron = cron.name, limit = CRON_RUNS_SEEN })) do
        if run.state == "failed" then
          failed, newest = failed + 1, newest or run
        elseif run.state == "succeeded" then
          break
        end
      end
      if newest then
        local runs = failed == 1 and "run" or string.format("%d%s runs", failed, failed == CRON_RUNS_SEEN and "+" or "")
        problems[#problems + 1] = string.format("cron job %s/%s: the last %s failed (%s%s at %s; %s)",
          cron.namespace, cron.name, runs, newest.reason or "failed",
          newest.exit_code and (", exit " .. newest.exit_code) or "",
          clock.iso_time(newest.finished_at or newest.created_at),
          string.format("prisn logs job/%s -n %s", newest.id, cron.namespace))
      end
    end
  end
end

-- A queued job waiting longer than this (PRISN_STUCK_AFTER on the server,
-- a duration, default 10m) is stuck; so is a running job past its timeout
-- and grace (its runner should have stopped it by then).
local DEFAULT_STUCK_AFTER_S = 600
local function stuck_after_ms()
  local s = units.parse_duration(os.getenv("PRISN_STUCK_AFTER") or "")
  return math.floor((s or DEFAULT_STUCK_AFTER_S) * 1000)
end
-- The slack past timeout + grace before a running job counts as stuck.
local RUNNING_SLACK_MS = 5000

-- The timeout and grace (seconds) of running job `id`, from the spec the
-- queue keeps while it runs; nil when it has none or is unknown.
local function limits_of(queue, id)
  local ok, spec = pcall(cjson.decode, queue and queue.specs[id] or "")
  if not ok or type(spec) ~= "table" or type(spec.timeout) ~= "number" then return nil end
  return spec.timeout, type(spec.grace) == "number" and spec.grace or DEFAULT_GRACE_S
end

-- Jobs queued too long, or running past their timeout, as problems.
local function stuck_jobs(server, problems, visible)
  local now, after = clock.now_ms(), stuck_after_ms()
  for _, job in ipairs(jobs.list(server.db, { all_namespaces = true, state = "queued", limit = 0 })) do
    if visible(job.namespace) and now - job.created_at > after then
      problems[#problems + 1] = string.format("job %s/%s: queued for %s (prisn get job %s -n %s)",
        job.namespace, job.id, units.format_duration((now - job.created_at) // 1000), job.id, job.namespace)
    end
  end
  for _, job in ipairs(jobs.list(server.db, { all_namespaces = true, state = "running", limit = 0 })) do
    local timeout, grace = limits_of(server.queue, job.id)
    if visible(job.namespace) and timeout and job.started_at
      and now - job.started_at > math.floor((timeout + grace) * 1000) + RUNNING_SLACK_MS then
      problems[#problems + 1] = string.format(
        "job %s/%s: running for %s, past its timeout of %s (prisn delete job %s -n %s)", job.namespace, job.id,
        units.format_duration((now - job.started_at) // 1000), units.format_duration(timeout), job.id, job.namespace)
    end
  end
end

-- What to do while state.db cannot be written.
local DEGRADED_HINT = "free space under $PRISN_HOME (or fix what makes its disk fail); the server keeps what "
  .. "it must record in memory, retries it, and is ok again once a write succeeds"

-- Why the server cannot write its state (prisn.store.writer's reason), or
-- nil. A write that failed counts, not a probe: the lock a probe takes
-- says nothing about free space.
local function degraded_reason(server)
  local writer = server.state_writer
  if not writer or not writer.degraded then return nil end
  local status = writer:status()
  if status.pending > 0 then
    return string.format("%s; %d record(s) waiting to be written", status.reason, status.pending)
  end
  return status.reason
end

local function node_info(server)
  local uname = uv.os_uname()
  local fs_stat = uv.fs_statfs(server.home)
  local total, free = uv.get_total_memory(), uv.get_free_memory()
  local load = { uv.loadavg() }
  return {
    name = uv.os_gethostname(),
    role = "control-plane,worker",
    health = "ok",
    os = uname.sysname:lower(),
    kernel = uname.release,
    arch = uname.machine,
    capacity = { cpus = #uv.cpu_info(), memory_bytes = math.floor(total),
      disk_bytes = fs_stat and fs_stat.blocks * fs_stat.bsize or api.null },
    usage = { load1 = load[1], memory_used_bytes = math.floor(total - free),
      disk_free_bytes = fs_stat and fs_stat.bavail * fs_stat.bsize or api.null },
  }
end

return {
  { method = "GET", pattern = "/health", auth = "none", handler = function(req)
    local reason = degraded_reason(req.server)
    if reason then
      return 503, { status = "degraded", reason = reason, hint = DEGRADED_HINT }
    end
    return 200, { status = "ok" }
  end },
  { method = "GET", pattern = "/ready", auth = "none", handler = function(req)
    if req.server.stopping then
      api.fail(503, "unavailable", "the server is stopping")
    end
    local reason = degraded_reason(req.server)
    if reason then api.fail(503, "unavailable", reason, DEGRADED_HINT) end
    if not store.writable(req.server.db) then
      api.fail(503, "unavailable", "the state database is not writable", "see the server log")
    end
    return 200, { status = "ready" }
  end },
  { method = "GET", pattern = "/version", auth = "view", handler = function()
    return 200, version.info()
  end },
  { method = "GET", pattern = "/api/v1/status", auth = "view", handler = function(req)
    local server = req.server
    local problems = api.array()
    local reason = degraded_reason(server)
    if reason then
      problems[#problems + 1] = reason
    elseif not store.writable(server.db) then
      problems[#problems + 1] = "the state database is not writable"
    end
    -- The server's health is its own; deployments short of ready instances
    -- are listed as problems too, without making the server degraded.
    local server_ok = #problems == 0
    -- Failing checkpoints do not stop writes (the WAL takes them) until
    -- the WAL can grow no more: a problem to show, not yet degraded.
    local checkpoint = server.checkpointer and server.checkpointer.failing()
    if checkpoint then
      problems[#problems + 1] = string.format("state.db: checkpoints failing since %s: %s",
        clock.iso_time(checkpoint.since_ms), checkpoint.message)
    end
    -- A token sees the counts and problems of its own namespaces only.
    local visible = function(ns) return auth.allows_namespace(req.token, ns) end
    local deployments = services_status(server, problems, visible)
    local services = deployments.services
    deployments.services = nil
    failing_cronjobs(server.db, problems, visible)
    stuck_jobs(server, problems, visible)
    return 200, {
      health = server_ok and "ok" or "degraded",
      problems = problems,
      version = server.version,
      pid = math.tointeger(uv.os_getpid()),
      uptime_seconds = os.time() - server.started_at,
      started_at = clock.iso_time(server.started_at * 1000),
      addresses = api.array((function()
        local out = {}
        for _, l in ipairs(server.listeners) do out[#out + 1] = l.address end
        return out
      end)()),
      jobs = jobs.count_by_state(server.db, visible),
      deployments = deployments,
      services = services,
      cronjobs = cronjobs.count(server.db, visible),
      connections = server.connections,
    }
  end },
  { method = "GET", pattern = "/api/v1/nodes", auth = "view", handler = function(req)
    return 200, { items = api.array({ node_info(req.server) }) }
  end },
}
