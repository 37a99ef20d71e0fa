-- Cron jobs: /api/v1/namespaces/{ns}/cronjobs. A cron job is a schedule and
-- the spec of the job each run submits (the body fields of POST .../jobs);
-- prisn.server.cron fires it, these routes create, show, suspend, resume,
-- trigger and delete it. Every mutation records an event ("cron.created",
-- "cron.updated", "cron.deleted", "cron.suspended", "cron.resumed",
-- "cron.triggered").
local cjson = require("cjson")
local schedules = require("prisn.cron")
local human = require("prisn.cron.human")
local tz = require("prisn.cron.tz")
local admission = require("prisn.server.admission")
local api = require("prisn.server.api")
local auth = require("prisn.server.auth")
local workload = require("prisn.server.api.workload")
local redeploy = require("prisn.server.api.redeploy")
local store = require("prisn.store")
local cronjobs = require("prisn.store.cronjobs")
local jobs = require("prisn.store.jobs")
local clock = require("prisn.clock")

local NEXT_SHOWN = 5
local RUNS_SHOWN = 10

local function null(v)
  if v == cjson.null then return nil end
  return v
end

local function find(req)
  local cron = cronjobs.get(req.server.db, req.params.ns, req.params.name)
  if not cron then
    api.fail(404, "not_found", string.format("cron job '%s' not found in namespace '%s'", req.params.name,
      req.params.ns), "list the cron jobs with 'prisn get cron -n " .. req.params.ns .. "'")
  end
  return cron
end

local function event(req, cron, action, message)
  if req.server.events then
    req.server.events:record({ namespace = cron.namespace, actor = req.actor, action = action,
      object = "cron/" .. cron.name, message = message })
  end
end

-- The normalized expression and the time zone name (nil: the server's
-- local zone) of a body: `schedule` (standard syntax) or `every` (human,
-- with `at` and `on`), and `timezone`.
local function schedule_of(body)
  local schedule = api.field(body, "schedule", "string", true)
  local every = api.field(body, "every", "string", true)
  local at = api.field(body, "at", "string", true)
  local on = api.field(body, "on", "string", true)
  local timezone = api.field(body, "timezone", "string", true)
  if (schedule == nil) == (every == nil) then
    api.fail(422, "invalid", "give either 'schedule' (a cron expression) or 'every' (like \"day at 03:00\")",
      "e.g. {\"schedule\": \"0 * * * *\"} or {\"every\": \"hour\"}")
  end
  if schedule and (at or on) then
    api.fail(422, "invalid", "'at' and 'on' go with 'every', not with 'schedule'")
  end
  if timezone then
    local zone, err = tz.load(timezone)
    if not zone then api.fail(422, "invalid", "timezone: " .. tostring(err), "an IANA name like Europe/Berlin") end
  end
  local expression = schedule
  if every then
    local normalized, err = human.normalize(every, { at = at, on = on })
    if not normalized then api.fail(422, "invalid", "every: " .. tostring(err)) end
    expression = normalized
  end
  local compiled, err = schedules.compile(expression, { tz = timezone })
  if not compiled then api.fail(422, "invalid", "schedule: " .. tostring(err)) end
  return compiled.expression, timezone
end

-- Finished runs kept per cron job and outcome (each is a job record and a
-- log), prisn.exec.workload's keep_succeeded and keep_failed.
local function keep_field(body, name)
  local n = workload.value(body, name)
  if n == nil then return cronjobs.DEFAULT_KEEP end
  return n
end

local function runs_of(db, cron, limit)
  local runs = {}
  for i, job in ipairs(jobs.list(db, { namespace = cron.namespace, cron = cron.name, limit = limit })) do
    runs[i] = { id = job.id, state = job.state, reason = job.reason or cjson.null,
      exit_code = job.exit_code or cjson.null, created_at = clock.iso_time(job.created_at),
      duration_ms = jobs.duration_ms(job) or cjson.null }
  end
  return api.array(runs)
end

-- The public shape, with the next fire times and the last runs when `detail`.
local function public(req, cron, detail)
  local p = cronjobs.to_public(cron)
  -- The last run's outcome, so that a cron job failing every time shows in
  -- 'prisn get cron' (null before the first run, or once none is kept).
  p.last_run = runs_of(req.server.db, cron, 1)[1] or cjson.null
  if detail then
    -- Stored as JSON, read back as a float: the level is a whole number.
    p.isolation = math.tointeger(cron.spec.isolation) or cjson.null
    p.run_as = admission.public_run_as(cron.spec, cjson.null)
    local next_fires = {}
    if not cron.suspended then
      for i, t in ipairs(req.server.cron:next_fires(cron, NEXT_SHOWN)) do next_fires[i] = clock.iso_time(t) end
    end
    p.next_fires = api.array(next_fires)
    p.last_runs = runs_of(req.server.db, cron, RUNS_SHOWN)
  end
  return p
end

-- A cron job's settings outside its job spec, as changes() compares them.
local SETTINGS = { "schedule", "timezone", "concurrency", "catch_up", "keep_succeeded", "keep_failed" }

local function settings_of(cron)
  return { schedule = cron.expression, timezone = cron.timezone, concurrency = cron.concurrency,
    catch_up = cron.catch_up == true, keep_succeeded = cron.keep_succeeded, keep_failed = cron.keep_failed }
end

-- The body an edit is made from: the request's, or with "merge" (`prisn
-- cron` without --reset) the request laid over the existing cron job's spec
-- and settings, as for a deployment (prisn.server.api.redeploy). The
-- schedule is the request's when it gives one.
local function body_for(body, existing)
  local problem, hint = redeploy.merge_fields_problem(body)
  if problem then api.fail(422, "invalid", problem, hint) end
  if body.merge ~= true or not existing then return body end
  local base = redeploy.base_body(existing.spec, {})
  base.schedule, base.timezone = existing.expression, existing.timezone
  base.concurrency, base.catch_up = existing.concurrency, existing.catch_up or nil
  base.keep_succeeded, base.keep_failed = existing.keep_succeeded, existing.keep_failed
  if null(body.schedule) ~= nil or null(body.every) ~= nil then base.schedule = nil end
  return redeploy.merge(base, body)
end

local function edit(req)
  local request_body = api.json_body(req)
  local db, ns = req.server.db, req.params.ns
  local requested_name = api.field(request_body, "name", "string", true)
  local body = body_for(request_body, requested_name and cronjobs.get(db, ns, requested_name))
  local spec = workload.spec_from_body(req, body)
  if null(body.bundle) ~= nil then
    spec.bundle, spec.entry = tostring(body.bundle):lower(), body.entry
  end
  local name = api.field(body, "name", "string", true)
    or cronjobs.name_from_script(spec.entry or spec.script or "")
  local ok, err = cronjobs.valid_name(name)
  if not ok then api.fail(422, "invalid", err, "give a name with 'name'") end
  local expression, timezone = schedule_of(body)
  local concurrency = workload.value(body, "concurrency") or cronjobs.DEFAULT_CONCURRENCY
  local fields = {
    namespace = ns, name = name, expression = expression, timezone = timezone, spec = spec,
    concurrency = concurrency, catch_up = workload.value(body, "catch_up") == true,
    keep_succeeded = keep_field(body, "keep_succeeded"), keep_failed = keep_field(body, "keep_failed"),
  }
  -- Admitted now as the caller's request, and at each firing again as
  -- theirs (prisn.server.cron): the spec keeps who asked.
  admission.admit(req, "cronjob.apply", spec, { object = "cron/" .. name })
  workload.check_server_script(spec)
  spec.admitted_for = admission.caller(req.token)
  local existing = cronjobs.get(db, ns, name)
  local changes = existing and redeploy.changes(existing.spec, spec, settings_of(existing), settings_of(fields),
    SETTINGS) or {}
  if request_body.dry_run == true then
    return 200, { name = name, dry_run = true, created = existing == nil, changed = #changes > 0,
      changes = api.array(changes) }
  end
  local cron
  store.transaction(db, function()
    if existing then
      fields.suspended = existing.suspended
      cron = cronjobs.update(db, fields)
    else
      cron = cronjobs.create(db, fields)
    end
  end)
  cron = req.server.cron:reschedule(cron)
  event(req, cron, existing and "cron.updated" or "cron.created", string.format("%s %s%s", expression,
    cronjobs.script_name(cron), timezone and (" (" .. timezone .. ")") or ""))
  local p = public(req, cron, true)
  p.changes, p.created = api.array(changes), existing == nil
  return existing and 200 or 201, p
end

local function set_suspended(suspended)
  return function(req)
    local cron = find(req)
    cron = cronjobs.set_suspended(req.server.db, cron.namespace, cron.name, suspended, nil)
    cron = req.server.cron:reschedule(cron)
    event(req, cron, suspended and "cron.suspended" or "cron.resumed",
      not suspended and cron.next_fire and ("next at " .. clock.iso_time(cron.next_fire)) or nil)
    return 200, public(req, cron, false)
  end
end

return {
  { method = "POST", pattern = "/api/v1/namespaces/{ns}/cronjobs", auth = "edit", handler = edit },
  { method = "GET", pattern = "/api/v1/namespaces/{ns}/cronjobs", auth = "view", handler = function(req)
    local items = {}
    for i, cron in ipairs(cronjobs.list(req.server.db, { namespace = req.params.ns })) do
      items[i] = public(req, cron, false)
    end
    return 200, { items = api.array(items) }
  end },
  -- Every cron job the token may see, of every namespace (`prisn get cron -A`).
  { method = "GET", pattern = "/api/v1/cronjobs", auth = "view", handler = function(req)
    local items = {}
    for _, cron in ipairs(cronjobs.list(req.server.db, { all_namespaces = true })) do
      if auth.allows_namespace(req.token, cron.namespace) then items[#items + 1] = public(req, cron, false) end
    end
    return 200, { items = api.array(items) }
  end },
  { method = "GET", pattern = "/api/v1/namespaces/{ns}/cronjobs/{name}", auth = "view", handler = function(req)
    return 200, public(req, find(req), true)
  end },
  { method = "DELETE", pattern = "/api/v1/namespaces/{ns}/cronjobs/{name}", auth = "edit", handler = function(req)
    local cron = find(req)
    cronjobs.delete(req.server.db, cron.namespace, cron.name)
    req.server.cron:arm()
    event(req, cron, "cron.deleted")
    return 200, { namespace = cron.namespace, name = cron.name, deleted = true }
  end },
  { method = "POST", pattern = "/api/v1/namespaces/{ns}/cronjobs/{name}/suspend", auth = "edit",
    handler = set_suspended(true) },
  { method = "POST", pattern = "/api/v1/namespaces/{ns}/cronjobs/{name}/resume", auth = "edit",
    handler = set_suspended(false) },
  { method = "POST", pattern = "/api/v1/namespaces/{ns}/cronjobs/{name}/trigger", auth = "edit",
    handler = function(req)
      local cron = find(req)
      local job = req.server.cron:trigger(cron, req.actor, admission.caller(req.token))
      event(req, cron, "cron.triggered", "job " .. job.id)
      return 201, jobs.to_public(job)
    end },
}
