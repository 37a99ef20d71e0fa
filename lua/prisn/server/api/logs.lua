-- A namespace's logs: GET /api/v1/namespaces/{ns}/logs.
--
-- Everything the namespace's workloads printed, merged in time order and
-- streamed as NDJSON, one line of output per JSON line, each named by its
-- source: a deployment's instance ("web-1"), a job ("job/01kaxq3v2m7r") or
-- a run of a cron job ("cron/nightly/01kaxq3v2m7r"):
--
--   {"source":"web-1","stream":"stdout","time_ms":1795718760123,"data":"GET / 200\n"}
--
-- This is `prisn logs` without a target: "what happened in the last hour",
-- as `docker compose logs` shows a project. Query: since (a duration back
-- from now like 1h, or an ISO 8601 time; default 1h), tail (the last N
-- lines, after merging), stream (stdout or stderr: only that one, before
-- the tail is taken), follow=1 (then keep sending new lines, polled
-- every 100 ms, including deployments and jobs that start later, until the
-- client goes away or the server stops; the last line is then
-- {"end":true,"reason":"server_stopping"}).
--
-- The logs are the files of prisn.logs (jobs, local runs included: they
-- share the server's $PRISN_HOME) and prisn.deploy_logs, read through
-- deploy_logs' line readers so every source is cut into lines alike.
local clock = require("prisn.clock")
local logs = require("prisn.logs")
local deploy_logs = require("prisn.deploy_logs")
local api = require("prisn.server.api")
local deployments = require("prisn.store.deployments")
local jobs = require("prisn.store.jobs")

-- New deployments and jobs are looked for every this many polls.
local REFRESH_EVERY = 10
local DEFAULT_SINCE_MS = 3600 * 1000

-- The source name of job `job`'s lines.
local function job_source(job)
  if job.cron then return "cron/" .. job.cron .. "/" .. job.id end
  return "job/" .. job.id
end

-- The readers of namespace `ns`: one follower per deployment and one line
-- reader per job that may have printed since `since` (ms), all sharing one
-- counter so their lines merge stably. Adds to `readers` (key -> reader)
-- the ones it does not hold yet; returns it.
local function add_readers(server, ns, since, readers, counter)
  for _, d in ipairs(deployments.list(server.db, { namespace = ns })) do
    local key = "deploy/" .. d.name
    if not readers[key] then
      readers[key] = deploy_logs.follower(server.home, ns, d.name, { counter = counter })
    end
  end
  for _, job in ipairs(jobs.list(server.db, { namespace = ns, limit = 0 })) do
    local key = "job/" .. job.id
    if not readers[key] and (not job.finished_at or job.finished_at >= since) then
      readers[key] = deploy_logs.file_lines(job.log_path or logs.job_path(server.home, ns, job.id),
        job_source(job), { counter = counter })
    end
  end
  return readers
end

-- The lines of every reader since the last poll, merged.
local function poll_all(readers, final)
  local out = {}
  for _, reader in pairs(readers) do
    -- A deployment's follower merges its own lines; a job's reader appends.
    if reader.deployment then
      for _, l in ipairs(reader:poll(final)) do out[#out + 1] = l end
    else
      reader:poll(final, out)
    end
  end
  return deploy_logs.merge(out)
end

local function stream(req, opts)
  local server, ns = req.server, req.params.ns
  local since = opts.since or (clock.now_ms() - DEFAULT_SINCE_MS)
  local counter = { n = 0 }
  local readers = add_readers(server, ns, since, {}, counter)
  return api.log_stream(server, {
    follow = opts.follow,
    poll = function(final) return poll_all(readers, final) end,
    first = function(lines) return deploy_logs.select(lines, { tail = opts.tail, stream = opts.stream }) end,
    keep = function(l) return l.time_ms >= since and (not opts.stream or l.stream == opts.stream) end,
    encode = function(l) return { source = l.source, stream = l.stream, time_ms = l.time_ms, data = l.data } end,
    -- Workloads started since are followed too.
    tick = function(polls)
      if polls % REFRESH_EVERY == 0 then add_readers(server, ns, since, readers, counter) end
    end,
  })
end

return {
  { method = "GET", pattern = "/api/v1/namespaces/{ns}/logs", auth = "view", handler = function(req)
    local opts, err, hint = deploy_logs.options(req.query)
    if not opts then api.fail(400, "bad_request", err, hint) end
    if opts.instance then
      api.fail(400, "bad_request", "instance is for one deployment's logs",
        "name the deployment: prisn logs NAME --instance N -n " .. req.params.ns)
    end
    return 200, stream(req, opts)
  end },
}
