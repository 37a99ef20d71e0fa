-- Jobs: /api/v1/namespaces/{ns}/jobs and /api/v1/jobs (every namespace).
local cjson = require("cjson")
local admission = require("prisn.server.admission")
local api = require("prisn.server.api")
local jobs = require("prisn.store.jobs")
local stored_secrets = require("prisn.store.secrets")
local units = require("prisn.units")

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
      "list the jobs with GET /api/v1/namespaces/" .. req.params.ns .. "/jobs")
  end
  return job
end

-- The longest a job may run (timeout), and may take to stop after SIGTERM
-- (grace): past these, a value is a mistake or an attempt to break a timer.
local MAX_TIMEOUT = 365 * 86400
local MAX_GRACE = 3600

local function string_list(body, name)
  local v = body[name]
  if v == nil or v == cjson.null then return {} end
  if type(v) ~= "table" then api.fail(422, "invalid", "the field '" .. name .. "' must be a list of strings") end
  for i, item in ipairs(v) do
    if type(item) ~= "string" then
      api.fail(422, "invalid", string.format("%s[%d] must be a string", name, i))
    end
  end
  return v
end

-- Where the script to run is: an uploaded bundle and the entry inside it,
-- or (for an admin: see prisn.server.admission) an absolute path on the
-- server. Returns the script's path, its folder, and the bundle's hash.
local function script_of(req, body)
  if body.bundle ~= nil and body.bundle ~= cjson.null then
    local dir = require("prisn.bundle").dir(req.server.home, body.bundle)
    if not (dir and require("luv").fs_stat(dir)) then
      api.fail(422, "invalid", "unknown bundle '" .. tostring(body.bundle) .. "'",
        "upload it first: PUT /api/v1/bundles/<hash>")
    end
    local entry = api.field(body, "entry", "string")
    if entry:sub(1, 1) == "/" or entry:find("%.%.") then
      api.fail(422, "invalid", "entry must be a path inside the bundle, got '" .. entry .. "'")
    end
    local file = require("luv").fs_stat(dir .. "/" .. entry)
    if not file or file.type ~= "file" then
      api.fail(422, "invalid", "the bundle has no file '" .. entry .. "'", "give the script's path inside the bundle")
    end
    return dir .. "/" .. entry, dir, tostring(body.bundle):lower()
  end
  local script = api.field(body, "script", "string")
  if script:sub(1, 1) ~= "/" then api.fail(422, "invalid", "script must be an absolute path") end
  return script, script:match("^(.*)/[^/]*$")
end

--- Checks that the script of an admitted spec is a file on the server. A
-- path on the server is looked at only after admission: before, the answer
-- would tell any token what exists on the server's filesystem.
local function check_server_script(spec)
  if spec.bundle then return end
  local st = require("luv").fs_stat(spec.script)
  if not st or st.type ~= "file" then api.fail(422, "invalid", "no such script on the server: " .. spec.script) end
end

-- The launch spec of a job from a request body (the fields of POST .../jobs),
-- checked; raises 422 naming the bad field. Cron jobs take the same fields.
local function spec_from_body(req, body)
  local script, dir, bundle = script_of(req, body)
  local env, env_keys = {}, {}
  if body.env ~= nil and body.env ~= cjson.null then
    if type(body.env) ~= "table" then api.fail(422, "invalid", "env must be an object of strings") end
    for k, v in pairs(body.env) do
      if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") or type(v) ~= "string" then
        api.fail(422, "invalid", "env." .. tostring(k) .. " must be a string variable name and value")
      end
      env[k] = v
      env_keys[#env_keys + 1] = k
    end
    table.sort(env_keys)
  end
  local secrets = string_list(body, "secrets")
  for _, name in ipairs(secrets) do
    if not stored_secrets.exists(req.server.db, req.params.ns, name) then
      api.fail(422, "invalid", string.format("secret '%s' not found in namespace '%s'", name, req.params.ns),
        "create it with 'prisn secret set " .. name .. " KEY=VALUE'")
    end
  end
  local null = function(v) if v == cjson.null then return nil end return v end
  local limits, lerr, lhint = require("prisn.exec.limits").from_spec({ memory = null(body.memory),
    cpu = null(body.cpu), pids = null(body.pids) })
  if limits == nil then api.fail(422, "invalid", lerr, lhint) end
  local isolation = null(body.isolation)
  if isolation ~= nil then
    local n = math.tointeger(isolation)
    if not n or not require("prisn.exec.isolation").IMPLEMENTED[n] then
      api.fail(422, "invalid", "isolation must be 0, 1, 2 or 3, got " .. tostring(isolation),
        "0 none, 1 process (default), 2 filesystem, 3 network")
    end
    isolation = n
  end
  local disk = null(body.disk)
  if disk ~= nil then
    local shown = api.show(disk)
    if type(disk) == "string" then disk = units.parse_size(disk) end
    disk = type(disk) == "number" and math.tointeger(disk) or nil
    if not disk then
      api.fail(422, "invalid", "disk must be a size from 1M to 8P, got " .. shown, "a size like \"100M\"")
    end
    local ok, level = pcall(require("prisn.exec.isolation").check_disk, isolation, disk)
    if not ok then
      local message = type(level) == "table" and level.message or tostring(level)
      api.fail(422, "invalid", "disk: " .. message:gsub("^%-%-disk ", ""),
        "a size like \"100M\" or a number of bytes, with isolation 2 or 3 (the default becomes 2)")
    end
    isolation = level
  end
  return {
    script = script, bundle = bundle, entry = bundle and body.entry or nil,
    args = string_list(body, "args"), env = env, env_keys = env_keys, secrets = secrets,
    runner = type(body.runner) == "string" and body.runner or nil,
    timeout = api.duration_field(body, "timeout", 0.001, MAX_TIMEOUT),
    grace = api.duration_field(body, "grace", 0.001, MAX_GRACE),
    no_deps = body.no_deps == true, cwd = dir,
    memory = limits and limits.memory or nil, cpu = limits and limits.cpu or nil,
    pids = limits and limits.pids or nil, isolation = isolation, disk = disk,
  }
end

local function submit(req)
  local spec = admission.admit(req, "job.submit", spec_from_body(req, api.json_body(req)))
  check_server_script(spec)
  local job = req.server.queue:submit(req.params.ns, spec, req.actor)
  return 201, jobs.to_public(job)
end

-- Streams a job's log as NDJSON: the stored records, then (follow=1) what
-- it writes from now on, read from its log file as the job's runner writes
-- it, and a last line with its outcome.
local function stream_logs(req, job)
  local logs = require("prisn.logs")
  local async = require("prisn.async")
  local db = req.server.db
  local path = job.log_path or logs.job_path(req.server.home, job.namespace, job.id)
  local follow = req.query.follow == "1"
  return api.stream(function(write)
    local function line(t) return write(cjson.encode(t) .. "\n") end
    -- Output kept from before a rotation is in the .1 file: sent first, once.
    for _, r in ipairs(logs.tailer(path .. ".1").poll()) do
      if not line({ stream = r.stream, data = r.data }) then return end
    end
    local tail = logs.tailer(path)
    for _, r in ipairs(tail.poll()) do
      if not line({ stream = r.stream, data = r.data }) then return end
    end
    local final = jobs.get_by_id(db, job.id) or job
    while follow and (final.state == "queued" or final.state == "running" or final.state == "pending") do
      async.sleep(100)
      for _, r in ipairs(tail.poll()) do
        if not line({ stream = r.stream, data = r.data }) then return end
      end
      final = jobs.get_by_id(db, job.id) or final
    end
    if follow then
      for _, r in ipairs(tail.poll()) do line({ stream = r.stream, data = r.data }) end
    end
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
      require("luv").fs_unlink((job.log_path or "") .. suffix)
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

-- Not routes: the body checks, for the cron job and deployment routes.
routes.spec_from_body = spec_from_body
routes.check_server_script = check_server_script

return routes
