-- Jobs: /api/v1/namespaces/{ns}/jobs and /api/v1/jobs (every namespace).
local uv = require("luv")
local cjson = require("cjson")
local async = require("prisn.async")
local logs = require("prisn.logs")
local deploy_logs = require("prisn.deploy_logs")
local admission = require("prisn.server.admission")
local api = require("prisn.server.api")
local workload = require("prisn.server.api.workload")
local jobs = require("prisn.store.jobs")
local clock = require("prisn.clock")

local function list_options(req, namespace)
  local q = req.query
  local limit = q.limit and math.tointeger(tonumber(q.limit))
  if q.limit and (not limit or limit < 0) then
    api.fail(400, "bad_request", "limit must be a whole number, got '" .. q.limit .. "'")
  end
  local known = false
  for _, state in ipairs(jobs.STATES) do known = known or state == q.state end
  if q.state and not known then
    api.fail(400, "bad_request", "unknown state '" .. q.state .. "'",
      "use one of: " .. table.concat(jobs.STATES, ", "))
  end
  return { namespace = namespace, all_namespaces = namespace == nil, state = q.state,
    script = q.script, cron = q.cron, limit = limit }
end

local function public_list(rows)
  local items = {}
  for i, job in ipairs(rows) do items[i] = jobs.to_public(job) end
  return { items = api.array(items) }
end

local function find(req)
  local job = jobs.get(req.server.db, req.params.ns, req.params.id)
  if not job then
    api.fail(404, "not_found", string.format("job '%s' not found in namespace '%s'", req.params.id, req.params.ns),
      "list the jobs with 'prisn get jobs -n " .. req.params.ns .. "'")
  end
  return job
end

local function submit(req)
  local spec = admission.admit(req, "job.submit", workload.spec_from_body(req, api.json_body(req)))
  workload.check_server_script(spec)
  local job = req.server.queue:submit(req.params.ns, spec, req.actor)
  return 201, jobs.to_public(job)
end

-- Streams a job's log as NDJSON, {stream, data, time_ms} a line: the
-- stored records, then (follow=1) what it writes from now on, read from
-- its log file as the job's runner writes it, and a last line with its
-- outcome. With since or tail (query) the stored output is sent as lines
-- instead: those written since then, the last N of them.
local function stream_logs(req, job)
  local db = req.server.db
  local path = job.log_path or logs.job_path(req.server.home, job.namespace, job.id)
  local opts, err, hint = deploy_logs.options(req.query)
  if not opts then api.fail(400, "bad_request", err, hint) end
  return api.stream(function(write)
    local function line(t) return write(cjson.encode(t) .. "\n") end
    local function send(records)
      for _, r in ipairs(records) do
        if not line({ stream = r.stream, data = r.data, time_ms = r.time_ms }) then return false end
      end
      return true
    end
    -- Output kept from before a rotation is in the .1 file: sent first, once.
    local stored = logs.tailer(path .. ".1").poll()
    local tail = logs.tailer(path)
    for _, r in ipairs(tail.poll()) do stored[#stored + 1] = r end
    if opts.since or opts.tail then stored = deploy_logs.select(logs.lines(stored), opts) end
    if not send(stored) then return end
    local final = jobs.get_by_id(db, job.id) or job
    while opts.follow and (final.state == "queued" or final.state == "running" or final.state == "pending") do
      async.sleep(100)
      if not send(tail.poll()) then return end
      final = jobs.get_by_id(db, job.id) or final
    end
    if opts.follow then send(tail.poll()) end
    line({ ["end"] = true, state = final.state, reason = final.reason or cjson.null,
      exit_code = final.exit_code or cjson.null })
  end)
end

local routes = {
  { method = "POST", pattern = "/api/v1/namespaces/{ns}/jobs", auth = "edit", handler = submit },
  { method = "DELETE", pattern = "/api/v1/namespaces/{ns}/jobs/{id}", auth = "edit", handler = function(req)
    local job = find(req)
    if job.state == "queued" or job.state == "running" then
      req.server.queue:delete(job, req.actor)
      return 202, jobs.to_public(jobs.get_by_id(req.server.db, job.id))
    end
    jobs.delete(req.server.db, job.id)
    for _, suffix in ipairs({ "", ".1" }) do
      uv.fs_unlink((job.log_path or "") .. suffix)
    end
    if req.server.events then
      req.server.events:record({ namespace = job.namespace, actor = req.actor, action = "job.deleted",
        object = "job/" .. job.id })
    end
    return 200, { id = job.id, deleted = true }
  end },
  { method = "GET", pattern = "/api/v1/namespaces/{ns}/jobs", auth = "view", handler = function(req)
    return 200, public_list(jobs.list(req.server.db, list_options(req, req.params.ns)))
  end },
  { method = "GET", pattern = "/api/v1/jobs", auth = "admin", handler = function(req)
    return 200, public_list(jobs.list(req.server.db, list_options(req, nil)))
  end },
  { method = "GET", pattern = "/api/v1/namespaces/{ns}/jobs/{id}", auth = "view", handler = function(req)
    return 200, jobs.to_public(find(req))
  end },
  { method = "GET", pattern = "/api/v1/namespaces/{ns}/jobs/{id}/logs", auth = "view", handler = function(req)
    local job = find(req)
    if req.query.follow == "1" or req.query.format == "ndjson" then return 200, stream_logs(req, job) end
    local records, truncated = logs.read(job.log_path or logs.job_path(req.server.home, job.namespace, job.id))
    local items = {}
    for i, r in ipairs(records or {}) do
      items[i] = { stream = r.stream, time = clock.iso_time(r.time_ms), data = r.data }
    end
    return 200, { id = job.id, namespace = job.namespace, truncated = truncated or false,
      records = api.array(items) }
  end },
}

return routes
