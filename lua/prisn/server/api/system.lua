-- The server's own endpoints: /health, /ready, /version, /api/v1/status and
-- /api/v1/nodes.
local uv = require("luv")
local version = require("prisn.version")
local api = require("prisn.server.api")
local auth = require("prisn.server.auth")
local cronjobs = require("prisn.store.cronjobs")
local jobs = require("prisn.store.jobs")
local store = require("prisn.store")
local clock = require("prisn.clock")

-- Deployments and their instances by state; a deployment with fewer
-- ready instances than it wants is a problem to report.
local function services_status(server, problems, visible)
  local sup = server.supervisor
  local out = { count = 0, instances = {} }
  if not sup then return out end
  for _, d in pairs(sup.deployments) do
    if visible(d.ns) then
      out.count = out.count + 1
      local ready = 0
      for _, inst in pairs(d.instances) do
        out.instances[inst.state] = (out.instances[inst.state] or 0) + 1
        if inst.healthy and inst.revision == d.row.revision then ready = ready + 1 end
      end
      if ready < d.row.replicas then
        problems[#problems + 1] = string.format("deployment %s/%s: %d/%d ready", d.ns, d.name, ready,
          d.row.replicas)
      end
    end
  end
  table.sort(problems)
  return out
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
      cronjobs = cronjobs.count(server.db, visible),
      connections = server.connections,
    }
  end },
  { method = "GET", pattern = "/api/v1/nodes", auth = "view", handler = function(req)
    return 200, { items = api.array({ node_info(req.server) }) }
  end },
}
