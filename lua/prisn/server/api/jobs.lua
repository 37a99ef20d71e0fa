-- Jobs: /api/v1/namespaces/{ns}/jobs and /api/v1/jobs (every namespace).
local api = require("prisn.server.api")
local jobs = require("prisn.store.jobs")

local function list_options(req, namespace)
  local q = req.query
  local limit = q.limit and math.tointeger(tonumber(q.limit))
  if q.limit and (not limit or limit < 0) then
    api.fail(400, "bad_request", "limit must be a whole number, got '" .. q.limit .. "'")
  end
  if q.state and not (q.state == "pending" or q.state == "running" or q.state == "succeeded"
      or q.state == "failed") then
    api.fail(400, "bad_request", "unknown state '" .. q.state .. "'",
      "use pending, running, succeeded or failed")
  end
  return { namespace = namespace, all_namespaces = namespace == nil, state = q.state,
    script = q.script, limit = limit }
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
      "list the jobs with GET /api/v1/namespaces/" .. req.params.ns .. "/jobs")
  end
  return job
end

return {
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
    local logs = require("prisn.logs")
    local records, truncated = logs.read(job.log_path or logs.job_path(req.server.home, job.namespace, job.id))
    local items = {}
    for i, r in ipairs(records or {}) do
      items[i] = { stream = r.stream, time = jobs.iso_time(r.time_ms), data = r.data }
    end
    return 200, { id = job.id, namespace = job.namespace, truncated = truncated or false,
      records = api.array(items) }
  end },
}
