-- Deployments: /api/v1/namespaces/{ns}/deployments. A deployment is a
-- supervised service (prisn.server.supervisor runs it); these routes create
-- and change it (a changed template is a new revision, rolled out one
-- instance at a time), scale it, roll it back, show it and delete it.
-- Every mutation records an event (deployment.created, deployment.updated,
-- deployment.scaled, deployment.deleted, deployment.rollback_requested,
-- deployment.restarted).
local uv = require("luv")
local cjson = require("cjson")
local async = require("prisn.async")
local deploy_logs = require("prisn.deploy_logs")
local runners = require("prisn.exec.runners")
local health_checks = require("prisn.net.health")
local admission = require("prisn.server.admission")
local api = require("prisn.server.api")
local workload = require("prisn.server.api.workload")
local exec_workload = require("prisn.exec.workload")
local redeploy = require("prisn.server.api.redeploy")
local auth = require("prisn.server.auth")
local supervisor = require("prisn.server.supervisor")
local cronjobs = require("prisn.store.cronjobs")
local stored_secrets = require("prisn.store.secrets")
local deployments = require("prisn.store.deployments")
local events = require("prisn.store.events")
local clock = require("prisn.clock")
local json = require("prisn.output.json")

local MAX_REPLICAS = exec_workload.MAX_REPLICAS
local MAX_PROGRESS_DEADLINE = 86400

local function null(v)
  if v == cjson.null then return nil end
  return v
end

-- clock.iso_time(ms) or null, its date and time part kept by second (a
-- list of 1,000 formats 3,000 times, most of them in a few seconds:
-- os.date was the costly part). At most SECONDS_KEPT seconds, then anew.
local SECONDS_KEPT = 512
local seconds, kept = {}, 0
local function iso(ms)
  if math.type(ms) ~= "integer" then return clock.iso_time(ms, cjson.null) end
  local sec = ms // 1000
  local head = seconds[sec]
  if not head then
    if kept >= SECONDS_KEPT then seconds, kept = {}, 0 end
    head = clock.iso_time(sec * 1000):sub(1, -6) -- without ".000Z"
    seconds[sec], kept = head, kept + 1
  end
  return string.format("%s.%03dZ", head, ms % 1000)
end

local function find(req)
  local d = deployments.get(req.server.db, req.params.ns, req.params.name)
  if not d then
    api.fail(404, "not_found", string.format("deployment '%s' not found in namespace '%s'", req.params.name,
      req.params.ns), "list the deployments with 'prisn get deploy -n " .. req.params.ns .. "'")
  end
  return d
end

local function event(req, ns, name, action, message)
  if req.server.events then
    req.server.events:record({ namespace = ns, actor = req.actor, action = action, object = "deploy/" .. name,
      message = message })
  end
end

-- Where the certificate of hostname's TLS comes from: { cert, key } files
-- on the server, { secret } of the namespace, or {} (self-signed).
local function tls_of(body, hostname)
  local cert, key = workload.value(body, "tls_cert"), workload.value(body, "tls_key")
  local secret = workload.value(body, "tls_secret")
  if (cert or key or secret) and not hostname then
    api.fail(422, "invalid", (cert and "tls_cert" or key and "tls_key" or "tls_secret")
      .. " goes with hostname: the certificate is the host name's", "add \"hostname\": \"api.example.com\"")
  end
  if (cert == nil) ~= (key == nil) then
    api.fail(422, "invalid", "tls_cert and tls_key go together", "give both files, or neither")
  end
  if secret and cert then
    api.fail(422, "invalid", "give tls_secret or tls_cert and tls_key, not both")
  end
  return { cert = cert, key = key, secret = secret }
end

-- The TLS sources of an admitted deploy, checked: the secret holds
-- TLS_CERT and TLS_KEY; the files (an admin's) can be read.
local function check_tls(req, ns, fields)
  if fields.tls_secret then
    local info = stored_secrets.describe(req.server.db, ns, fields.tls_secret)
    local keys = {}
    for _, k in ipairs(info and info.keys or {}) do keys[k] = true end
    if not (keys.TLS_CERT and keys.TLS_KEY) then
      api.fail(422, "invalid", string.format(info and "secret '%s' has no TLS_CERT and TLS_KEY keys"
        or "secret '%s' not found in namespace '%s'", fields.tls_secret, ns),
        string.format("prisn secret set %s --from-file TLS_CERT=cert.pem --from-file TLS_KEY=key.pem -n %s",
          fields.tls_secret, ns))
    end
  end
  for _, file in ipairs({ fields.tls_cert, fields.tls_key }) do
    local fd = uv.fs_open(file, "r", 0)
    if not fd then api.fail(422, "invalid", "cannot read " .. file .. " on the server") end
    uv.fs_close(fd)
  end
end

-- The instance template (revision spec) and the deployment fields of a body.
local function template_from_body(req, body)
  local spec = workload.spec_from_body(req, body)
  spec.timeout = nil -- a service runs until stopped
  if null(body.bundle) ~= nil then spec.bundle, spec.entry = tostring(body.bundle):lower(), body.entry end
  local health = null(body.health)
  local port = workload.value(body, "port")
  -- A port or an ingress route has clients: it serves once it accepts.
  if health == nil then health = (port or null(body.hostname) ~= nil) and "tcp" or "none" end
  local normalized, herr = health_checks.normalize(health)
  if not normalized then api.fail(422, "invalid", "health: " .. tostring(herr),
    "http:/PATH (an HTTP GET answering 2xx or 3xx), tcp (a connect) or none") end
  spec.health = normalized
  spec.restart = workload.value(body, "restart") or "always"
  spec.progress_deadline = api.duration_field(body, "progress_deadline", 0.001, MAX_PROGRESS_DEADLINE)
  if port and spec.isolation == 3 then
    api.fail(422, "invalid", "a deployment with a port cannot run at isolation level 3 (no network)",
      "use --isolation 2, or drop --port for a worker that serves nothing")
  end
  local hooks = workload.value(body, "hooks")
  if hooks then
    spec.hooks = {}
    for i, file in ipairs(hooks) do
      if file:sub(1, 1) == "/" or file:find("..", 1, true) then
        api.fail(422, "invalid", string.format("hooks[%d] must be a path inside the bundle", i))
      end
      spec.hooks[i] = spec.cwd .. "/" .. file
    end
  end
  local strategy = null(body.strategy) or "round-robin"
  if not deployments.STRATEGIES[strategy] then
    api.fail(422, "invalid", "strategy must be round-robin or least-connections, got " .. api.show(strategy))
  end
  local host = null(body.host)
  if host ~= nil and (type(host) ~= "string" or not host:match("^[%x%.:]+$")) then
    api.fail(422, "invalid", "host must be an IP address like 0.0.0.0 or 127.0.0.1")
  end
  local hostname, path = workload.value(body, "hostname"), workload.value(body, "path")
  if path and not hostname then
    api.fail(422, "invalid", "path goes with hostname: the ingress routes by host name first",
      "add \"hostname\": \"api.example.com\", or drop path")
  end
  local tls = tls_of(body, hostname)
  return spec, { port = port, host = host, strategy = strategy, hostname = hostname,
    path = hostname and (path or "/") or nil, tls_cert = tls.cert, tls_key = tls.key, tls_secret = tls.secret,
    replicas = workload.value(body, "replicas") }
end

-- The ingress route of a deploy: a host name belongs to one namespace, and
-- (hostname, path) to one deployment. Raises the 409, naming only the
-- caller's own deployments. Checked again by the database when the row is
-- written (prisn.store.deployments), which settles a race between two
-- requests for one name.
local function check_route(req, ns, name, fields)
  if not fields.hostname then return end
  for _, row in ipairs(deployments.by_hostname(req.server.db, fields.hostname)) do
    if row.namespace ~= ns then
      api.fail(409, "conflict", string.format("host %s is used by another namespace", fields.hostname),
        "choose another --host")
    end
    if row.name ~= name and row.path == fields.path then
      api.fail(409, "conflict", string.format("host %s path %s is already used by deployment %s", fields.hostname,
        fields.path, row.name), "choose another --path, or change that deployment")
    end
  end
end

-- Whether `port` can be listened on (nothing else holds it).
local function port_free(host, port)
  local tcp = uv.new_tcp()
  local ok, err = tcp:bind(host or "0.0.0.0", port)
  if ok then ok, err = tcp:listen(1, function() end) end
  tcp:close()
  return ok and true or nil, err
end

local function check_port(req, ns, name, fields)
  if not fields.port then return end
  local owner = deployments.by_port(req.server.db, fields.port)
  if owner and (owner.namespace ~= ns or owner.name ~= name) then
    -- Another namespace's deployment is named only to a token that may see it.
    if auth.allows_namespace(req.token, owner.namespace) then
      api.fail(409, "conflict", string.format("port %d is already used by deployment %s/%s", fields.port,
        owner.namespace, owner.name), "choose another --port, or delete that deployment")
    end
    api.fail(409, "conflict", string.format("port %d is already used by another namespace's deployment", fields.port),
      "choose another --port")
  end
  if not owner then
    local ok, err = port_free(fields.host, fields.port)
    if not ok then
      api.fail(409, "conflict", string.format("cannot listen on port %d: %s", fields.port, tostring(err)),
        "choose another --port (something else on this machine holds it)")
    end
  end
end

local function vetoed(req, event_table, files)
  local hooks = req.server.hooks
  if not hooks then return end
  event_table.hook = "pre_deploy"
  event_table.time = clock.iso_time(clock.now_ms())
  local result = async.wait(function(cb)
    hooks:fire("pre_deploy", event_table, { files = files, namespace = event_table.namespace }, cb)
  end)
  if result and result.vetoed then
    api.fail(403, "vetoed", "the pre_deploy hook " .. tostring(result.file or "") .. " refused the deploy: "
      .. tostring(result.message or "no reason given"),
      "'prisn events --action hook.vetoed -n " .. event_table.namespace .. "' lists the vetoes; hooks live in "
      .. "$PRISN_HOME/hooks")
  end
end

-- The fields of instance `inst` of d as the API shows it, written into
-- `out`: every field, null when absent, so a list may reuse `out`. Usage is
-- the supervisor's last sample (prisn.server.supervisor.usage), with its
-- age: read per request, it was most of a list's time.
local function instance_fields(d, inst, now, runtime, out)
  local stats = runtime and supervisor.sampled_usage(runtime, now)
  out.name, out.number, out.revision = d.name .. "-" .. inst.number, inst.number, inst.revision
  out.state, out.pid, out.port = inst.state, inst.pid or cjson.null, inst.port or cjson.null
  out.restarts = inst.restarts or 0
  out.healthy = runtime and runtime.healthy or false
  out.started_at = iso(inst.started_at)
  out.uptime_seconds = inst.pid and inst.started_at and (now - inst.started_at) // 1000 or cjson.null
  out.last_exit = inst.last_exit and {
    at = iso(inst.last_exit.at), code = inst.last_exit.code or cjson.null,
    signal = inst.last_exit.signal or cjson.null, reason = inst.last_exit.reason or cjson.null,
    message = inst.last_exit.message or cjson.null,
  } or cjson.null
  out.cpu_seconds = stats and stats.cpu_usage_us and stats.cpu_usage_us / 1e6 or cjson.null
  out.memory_bytes = stats and stats.memory_current or cjson.null
  out.usage_age_ms = stats and math.max(0, now - stats.at) or cjson.null
  return out
end

-- The last RECENT_EVENTS events of deployment d and its instances, newest
-- first (indexed by object: the namespace may hold many other events).
local RECENT_EVENTS = 20
local function recent_events(db, d)
  local list = events.list(db, { namespace = d.namespace, object = "deploy/" .. d.name, limit = RECENT_EVENTS })
  -- "instance/api-" also begins "instance/api-v2-1": only a number may follow.
  local pattern = "^instance/" .. d.name:gsub("%-", "%%-") .. "%-%d+$"
  for _, ev in ipairs(events.list(db, { namespace = d.namespace, object_prefix = "instance/" .. d.name .. "-",
    limit = 10 * RECENT_EVENTS })) do
    if ev.object:match(pattern) then list[#list + 1] = ev end
  end
  table.sort(list, function(a, b) return a.id > b.id end)
  local out = {}
  for i = 1, math.min(#list, RECENT_EVENTS) do
    local ev = list[i]
    out[i] = { time = iso(ev.time), action = ev.action, object = ev.object, message = ev.message or cjson.null }
  end
  return out
end

-- The instance the last rollout failed on ({ name, number, revision }, for
-- `prisn deploy` to show its last lines), or null: the supervisor keeps it
-- until the next rollout starts.
local function failed_instance(d, runtime)
  local f = runtime and runtime.failed_instance
  if not f then return cjson.null end
  return { name = d.name .. "-" .. f.number, number = f.number, revision = f.revision }
end

-- Where the ingress serves deployment `d` (prisn.server.ingress), or nil.
local function ingress_url(server, d)
  return server.ingress and d.hostname and server.ingress:url(d.hostname, d.path) or nil
end

-- Where the certificate of d's host name comes from, as the API shows it:
-- { source = "file" | "secret" | "self-signed", cert, key, secret, and
-- what the ingress loaded: subject, not_after, fingerprint, error }, or
-- null without a host name (or with neither a TLS listener nor a source).
local function tls_public(server, d, detail)
  local https = server.ingress and server.ingress.listeners.https
  if not d.hostname or not (https or d.tls_secret or d.tls_cert) then return cjson.null end
  local t = { source = d.tls_secret and "secret" or d.tls_cert and "file" or "self-signed",
    secret = d.tls_secret or cjson.null, cert = d.tls_cert or cjson.null, key = d.tls_key or cjson.null }
  -- A list shows what is loaded; one deployment's view loads it (a list of
  -- a thousand must not make a thousand self-signed certificates).
  local loaded = server.ingress and server.ingress:certificate_info(d.hostname, detail)
  for k, v in pairs(loaded or {}) do t[k] = v end
  return t
end

-- The spec fields public() shows without `detail`.
local LISTED_SPEC = { "entry", "script", "bundle", "health.kind", "health.path", "restart" }

local EMPTY = {} -- never written: no spec, no instances
local ITEM_DEPTH = 2 -- {"items": [ITEM, ...]}

-- Lays the supervisor's runtime of instance row `inst` (rt, or nil) over
-- it; 1 when it counts as ready for d, else 0.
local function overlay(d, inst, rt)
  if not rt then return 0 end
  inst.pid, inst.state, inst.started_at = rt.pid, rt.state, rt.started_at
  return rt.healthy and inst.revision == d.revision and 1 or 0
end

-- The fields of deployment d as a list shows it (all but instances),
-- written into `out`: every field, null when absent, so a list may reuse
-- `out`. rev: its current revision row, or nil.
local function deployment_fields(server, d, rev, ready, detail, out)
  local spec = rev and rev.spec or EMPTY
  out.name, out.namespace, out.replicas, out.ready, out.revision = d.name, d.namespace, d.replicas, ready, d.revision
  out.revision_state = rev and rev.state or cjson.null
  out.revision_message = rev and rev.message or cjson.null
  out.port = d.port or cjson.null
  out.host = d.port and (d.host or "0.0.0.0") or cjson.null
  out.strategy = d.strategy
  out.autoscale = d.autoscale or cjson.null
  out.script = spec.entry or spec.script or cjson.null
  out.bundle = spec.bundle or cjson.null
  out.health = spec.health and (spec.health.kind == "http" and ("http:" .. tostring(spec.health.path))
    or spec.health.kind) or cjson.null
  out.restart = spec.restart or "always"
  out.hostname = d.hostname or cjson.null
  out.path = d.hostname and d.path or cjson.null
  out.url = ingress_url(server, d) or cjson.null
  out.tls = tls_public(server, d, detail)
  out.created_at, out.updated_at = iso(d.created_at), iso(d.updated_at)
  return out
end

-- `known` (optional, for a list): { instances = rows, revision = row } read
-- for many deployments at once (rows may be nil: none).
local function public(req, d, detail, known)
  local sup = req.server.supervisor
  local runtime = sup and sup:get(d.namespace, d.name)
  local rows = known and (known.instances or {}) or deployments.instances(req.server.db, d.namespace, d.name)
  local ready, items, now = 0, {}, clock.now_ms()
  for i, inst in ipairs(rows) do
    local rt = runtime and runtime.instances[inst.number]
    ready = ready + overlay(d, inst, rt)
    items[i] = instance_fields(d, inst, now, rt, {})
  end
  local rev
  if known then rev = known.revision else rev = deployments.revision(req.server.db, d.namespace, d.name, d.revision) end
  local p = deployment_fields(req.server, d, rev, ready, detail, {})
  p.instances = api.array(items)
  if detail then
    local spec = rev and rev.spec or {}
    p.spec = {
      args = api.array(spec.args or {}), env_keys = api.array(spec.env_keys or {}),
      secrets = api.array(spec.secrets or {}), runner = spec.runner or cjson.null,
      memory = spec.memory or cjson.null, cpu = spec.cpu or cjson.null, pids = spec.pids or cjson.null,
      isolation = spec.isolation or cjson.null, disk = spec.disk or cjson.null,
      run_as = admission.public_run_as(spec, cjson.null),
      grace = spec.grace or cjson.null, health = spec.health or cjson.null,
    }
    p.events = api.array(recent_events(req.server.db, d))
    p.failed_instance = failed_instance(d, runtime)
  end
  return p
end

-- The tables a list reuses for its items (see item_text): a deployment's
-- fields, its instances array and one fields table per instance number.
local function list_scratch()
  return { item = {}, instances = api.array({}), pool = {} }
end

-- Deployment d of a list as JSON text at an item's depth: the bytes the
-- encoder writes for public(req, d, false, known) there, from tables the
-- list reuses (fresh ones per item lived through the request, turned old in
-- the generational collector and cost a major collection every few lists:
-- tests/bench/deployments-report.md).
local function item_text(req, d, known, now, scratch)
  local sup = req.server.supervisor
  local runtime = sup and sup:get(d.namespace, d.name)
  local rows, list, pool, ready = known.instances or EMPTY, scratch.instances, scratch.pool, 0
  local n = #rows
  for i = 1, n do
    local inst = rows[i]
    local rt = runtime and runtime.instances[inst.number]
    ready = ready + overlay(d, inst, rt)
    local fields = pool[i] or {}
    pool[i] = fields
    list[i] = instance_fields(d, inst, now, rt, fields)
  end
  for i = #list, n + 1, -1 do list[i] = nil end
  local fields = deployment_fields(req.server, d, known.revision, ready, false, scratch.item)
  fields.instances = list
  return json.encode_part(fields, ITEM_DEPTH)
end

local function apply(req, ns, name)
  local ok, err = req.server.supervisor:apply(ns, name)
  if not ok then
    api.fail(409, "conflict", "cannot listen on the deployment's port: " .. tostring(err),
      "choose another --port")
  end
end

-- The body a deploy is made from: the request's, or with "merge" the
-- request laid over the existing deployment's template and settings
-- (prisn.server.api.redeploy says why the merge is the server's).
local function body_for(req, body, existing)
  local problem, hint = redeploy.merge_fields_problem(body)
  if problem then api.fail(422, "invalid", problem, hint) end
  if body.merge ~= true or not existing then return body end
  local current = deployments.revision(req.server.db, existing.namespace, existing.name, existing.revision)
  return redeploy.merge(redeploy.base_body(current and current.spec or {}, existing), body)
end

-- What a deploy would do, for "dry_run": nothing is stored, applied or
-- asked of hooks.
local function dry_run_answer(name, existing, changed, changes)
  return 200, { name = name, dry_run = true, created = existing == nil, changed = changed,
    revision = existing and (changed and existing.revision + 1 or existing.revision) or 1,
    changes = api.array(changes) }
end

local function deploy(req)
  local db, ns = req.server.db, req.params.ns
  local request_body = api.json_body(req)
  local requested_name = api.field(request_body, "name", "string", true)
  local existing = requested_name and deployments.get(db, ns, requested_name)
  local body = body_for(req, request_body, existing)
  local spec, fields = template_from_body(req, body)
  local name = requested_name or cronjobs.name_from_script(spec.entry or spec.script or "")
  local ok, err = deployments.valid_name(name)
  if not ok then api.fail(422, "invalid", err, "choose a name with --name NAME") end
  existing = existing or deployments.get(db, ns, name)
  local port = fields.port
  if port == nil and body.port == nil and existing then port = existing.port end
  admission.admit(req, "deployment.apply", spec, { port = port, host = fields.host, hostname = fields.hostname,
    path = fields.path, tls_cert = fields.tls_cert, tls_key = fields.tls_key, object = "deploy/" .. name })
  check_tls(req, ns, fields)
  -- A script nobody can run is refused now, not after the deploy (and only
  -- once admitted: the answer says what a path on the server holds).
  workload.check_server_script(spec)
  local runner, rerr, _, rhint = runners.detect(req.server.queue:runners(), spec.script,
    { runner = spec.runner })
  if not runner then api.fail(422, "invalid", rerr, rhint) end
  local current = existing and deployments.revision(db, ns, name, existing.revision)
  local changed = not current or redeploy.canonical(current.spec) ~= redeploy.canonical(spec)
  check_port(req, ns, name, fields)
  check_route(req, ns, name, fields)
  local changes = {}
  if existing then
    local after = { replicas = fields.replicas or existing.replicas, strategy = fields.strategy,
      port = existing.port, host = existing.host, hostname = fields.hostname, path = fields.path,
      tls_cert = fields.tls_cert, tls_key = fields.tls_key, tls_secret = fields.tls_secret }
    if body.port ~= nil then after.port, after.host = fields.port, fields.host end
    changes = redeploy.changes(current and current.spec or {}, spec, existing, after)
  end
  if request_body.dry_run == true then return dry_run_answer(name, existing, changed, changes) end
  vetoed(req, { namespace = ns, deployment = name, revision = existing and (changed and existing.revision + 1
    or existing.revision) or 1, replicas = fields.replicas or (existing and existing.replicas) or 1,
    script = spec.entry or spec.script, actor = req.actor }, spec.hooks)
  local status = 200
  if not existing then
    deployments.create(db, { namespace = ns, name = name, replicas = fields.replicas or 1, port = fields.port,
      host = fields.host, hostname = fields.hostname, path = fields.path, tls_cert = fields.tls_cert,
      tls_key = fields.tls_key, tls_secret = fields.tls_secret, strategy = fields.strategy, spec = spec,
      actor = req.actor })
    event(req, ns, name, "deployment.created", string.format("revision 1, %d replica(s)%s", fields.replicas or 1,
      fields.port and (", port " .. fields.port) or ""))
    status = 201
  else
    if changed then deployments.add_revision(db, ns, name, spec, req.actor) end
    -- The body is complete for the route (a merge starts from the current
    -- one): no hostname takes the deployment off the ingress.
    local update = { strategy = fields.strategy, hostname = fields.hostname or false, path = fields.path or false,
      tls_cert = fields.tls_cert or false, tls_key = fields.tls_key or false, tls_secret = fields.tls_secret or false }
    if fields.replicas then update.replicas = fields.replicas end
    if body.port ~= nil then update.port = fields.port or false; update.host = fields.host or false end
    deployments.update(db, ns, name, update)
    local d = deployments.get(db, ns, name)
    event(req, ns, name, "deployment.updated", changed and ("revision " .. d.revision .. " rolling out")
      or "no change to the template; same revision")
  end
  apply(req, ns, name)
  local p = public(req, deployments.get(db, ns, name))
  p.changed = changed
  p.created = status == 201
  p.changes = api.array(changes)
  return status, p
end

-- The replica count a scale body asks for: replicas, add, remove or
-- multiply (rounded up, at least 1).
local function target_of(body, current)
  local given = {}
  for _, f in ipairs({ "replicas", "add", "remove", "multiply" }) do
    if null(body[f]) ~= nil then given[#given + 1] = f end
  end
  if #given ~= 1 then
    api.fail(422, "invalid", "give exactly one of replicas, add, remove or multiply",
      "e.g. {\"replicas\": 3} or {\"add\": 2}")
  end
  local f = given[1]
  if f == "multiply" then
    local m = api.number_field(body, "multiply", 0.01, MAX_REPLICAS)
    return math.min(math.max(1, math.ceil(current * m - 1e-9)), MAX_REPLICAS)
  end
  local n = api.integer_field(body, f, 0, MAX_REPLICAS)
  if f == "replicas" then return n end
  if f == "add" then return math.min(current + n, MAX_REPLICAS) end
  return math.max(current - n, 0)
end

-- More instances of a template are more of the workload it describes: a
-- scale up (or turning on autoscaling) is admitted as the caller's request
-- for the current revision, as a rollback is for the revision it brings
-- back. A scale down never needs admission.
local function admit_template(req, action, d, spec)
  local copy = {}
  for k, v in pairs(spec or {}) do copy[k] = v end
  return admission.admit(req, action, copy, { port = d.port, host = d.host, hostname = d.hostname, path = d.path,
    object = "deploy/" .. d.name })
end

local function current_spec(req, d)
  local rev = deployments.revision(req.server.db, d.namespace, d.name, d.revision)
  return rev and rev.spec or {}
end

local function scale(req)
  local body = api.json_body(req)
  local d = find(req)
  local db, ns = req.server.db, req.params.ns
  local dry_run = body.dry_run == true
  local auto = null(body.auto)
  if auto ~= nil then
    if auto == false then
      if not dry_run then
        deployments.update(db, ns, d.name, { autoscale = false })
        event(req, ns, d.name, "deployment.autoscale", "autoscaling off")
        apply(req, ns, d.name)
      end
      return 200, { name = d.name, from = d.replicas, to = d.replicas, autoscale = cjson.null, dry_run = dry_run }
    end
    if type(auto) ~= "table" then api.fail(422, "invalid", "auto must be an object { min, max, target_cpu }") end
    -- At least 1: with no instance there is no CPU to measure, so an
    -- autoscaler at 0 would never scale up again.
    local min = api.integer_field(auto, "min", 1, MAX_REPLICAS, "auto.min") or 1
    local max = api.integer_field(auto, "max", 1, MAX_REPLICAS, "auto.max") or 10
    local target = api.integer_field(auto, "target_cpu", 1, 100, "auto.target_cpu") or 70
    if min > max then api.fail(422, "invalid", string.format("min (%d) is above max (%d)", min, max)) end
    local to = math.min(math.max(d.replicas, min), max)
    local settings = { min = min, max = max, target_cpu = target }
    admit_template(req, "deployment.scale", d, current_spec(req, d))
    if not dry_run then
      deployments.update(db, ns, d.name, { autoscale = settings, replicas = to })
      event(req, ns, d.name, "deployment.autoscale", string.format("autoscaling %d-%d at %d%% CPU; %d -> %d",
        min, max, target, d.replicas, to))
      apply(req, ns, d.name)
    end
    return 200, { name = d.name, from = d.replicas, to = to, autoscale = settings, dry_run = dry_run }
  end
  local to = target_of(body, d.replicas)
  if to > d.replicas then admit_template(req, "deployment.scale", d, current_spec(req, d)) end
  if not dry_run and (to ~= d.replicas or d.autoscale) then
    local fields = { replicas = to }
    if d.autoscale then fields.autoscale = false end -- a plain count turns autoscaling off
    deployments.update(db, ns, d.name, fields)
    event(req, ns, d.name, "deployment.scaled", string.format("%d -> %d replicas%s", d.replicas, to,
      d.autoscale and "; autoscaling off" or ""))
    if req.server.supervisor and to ~= d.replicas then
      req.server.supervisor:hook("on_scale", { namespace = ns, deployment = d.name, from = d.replicas, to = to,
        actor = req.actor }, req.server.supervisor:get(ns, d.name))
    end
    apply(req, ns, d.name)
  end
  return 200, { name = d.name, from = d.replicas, to = to, autoscale = cjson.null, dry_run = dry_run }
end

local function delete(req)
  local d = find(req)
  local instances = deployments.instances(req.server.db, d.namespace, d.name)
  local names = {}
  for i, inst in ipairs(instances) do names[i] = d.name .. "-" .. inst.number end
  local summary = { name = d.name, namespace = d.namespace, port = d.port or cjson.null,
    instances = api.array(names), revisions = #deployments.revisions(req.server.db, d.namespace, d.name),
    logs = deploy_logs.dir(req.server.home, d.namespace, d.name) }
  if req.query.dry_run == "1" then
    summary.dry_run = true
    return 200, summary
  end
  async.wait(function(cb) req.server.supervisor:delete(d.namespace, d.name, cb) end)
  deployments.delete(req.server.db, d.namespace, d.name)
  deploy_logs.remove(req.server.home, d.namespace, d.name)
  event(req, d.namespace, d.name, "deployment.deleted", string.format("%d instance(s) stopped", #names))
  summary.deleted = true
  return 200, summary
end

local function revisions(req)
  local d = find(req)
  local items = {}
  for i, rev in ipairs(deployments.revisions(req.server.db, d.namespace, d.name)) do
    items[i] = { revision = rev.revision, state = rev.state, message = rev.message or cjson.null,
      created_at = iso(rev.created_at), created_by = rev.created_by or cjson.null,
      script = rev.spec.entry or rev.spec.script or cjson.null, bundle = rev.spec.bundle or cjson.null,
      current = rev.revision == d.revision }
  end
  return 200, { name = d.name, revision = d.revision, items = api.array(items) }
end

-- Rollback: the template of an earlier revision (the one before the current
-- by default) becomes a new revision, rolled out like any deploy.
local function rollback(req)
  local body = req.body ~= "" and req.body ~= nil and api.json_body(req) or {}
  local d = find(req)
  local db = req.server.db
  local target = api.integer_field(body, "revision", 1, math.maxinteger)
  local revs = deployments.revisions(db, d.namespace, d.name)
  local chosen
  if target then
    for _, rev in ipairs(revs) do if rev.revision == target then chosen = rev end end
    if not chosen then
      api.fail(404, "not_found", string.format("deployment %s has no revision %d", d.name, target),
        "'prisn rollout history " .. d.name .. "' lists them")
    end
  else
    for i = #revs, 1, -1 do
      local rev = revs[i]
      if rev.revision < d.revision and (rev.state == "active" or rev.state == "superseded") then chosen = rev break end
    end
    if not chosen then
      api.fail(409, "conflict", "deployment " .. d.name .. " has no earlier working revision to go back to",
        "'prisn rollout history " .. d.name .. "' lists its revisions; pick one with --to-revision N")
    end
  end
  if chosen.revision == d.revision then
    api.fail(409, "conflict", string.format("revision %d is already the current one", chosen.revision))
  end
  local spec = admit_template(req, "deployment.rollback", d, chosen.spec)
  local number = deployments.add_revision(db, d.namespace, d.name, spec, req.actor)
  event(req, d.namespace, d.name, "deployment.rollback_requested", string.format(
    "revision %d (the template of revision %d) rolling out", number, chosen.revision))
  apply(req, d.namespace, d.name)
  local p = public(req, deployments.get(db, d.namespace, d.name))
  p.from_revision = chosen.revision
  return 200, p
end

-- Restart: the current template again as a new revision, rolled out one
-- instance at a time like any deploy (kubectl's `rollout restart`), so a
-- restart keeps serving, waits for health and rolls back when it fails.
local function restart(req)
  local d = find(req)
  local db = req.server.db
  local spec = admit_template(req, "deployment.restart", d, current_spec(req, d))
  local number = deployments.add_revision(db, d.namespace, d.name, spec, req.actor)
  event(req, d.namespace, d.name, "deployment.restarted", string.format(
    "revision %d (the template of revision %d) rolling out", number, d.revision))
  apply(req, d.namespace, d.name)
  local p = public(req, deployments.get(db, d.namespace, d.name))
  p.from_revision = d.revision
  return 200, p
end

-- The collector held for a list, then one young collection. A list of
-- 1,000 allocates megabytes that live until it ends: with minor collections
-- running midway they turned old and only a major collection (30-40 ms over
-- the server's heap) freed them, every second or third list. Held, all of it
-- is still young when the list ends, and the young collection right after
-- frees it (a step in generational mode with no debt is a minor one, never a
-- major). tests/bench/deployments-report.md measures it.
--   local _ <close> = hold_collector()
-- gives it back however the block ends, an error's traceback taken first.
local RELEASE = setmetatable({}, { __close = function()
  collectgarbage("restart")
  collectgarbage("step", 0)
end })

local function hold_collector()
  if not collectgarbage("isrunning") then return nil end -- someone else's stop: left as it is
  collectgarbage("stop")
  return RELEASE
end

-- `{"items": [...]}` of deployments `list` (those the token may see):
-- each namespace's instances and current revisions read in two queries for
-- the lot, not two per deployment, and each item written as text as it is
-- made (item_text; tests/bench/deployments-report.md).
local function public_list(req, list)
  local db, known, items, n = req.server.db, {}, {}, 0
  local scratch, these, now = list_scratch(), {}, clock.now_ms()
  for _, d in ipairs(list) do
    if auth.allows_namespace(req.token, d.namespace) then
      local ns = known[d.namespace]
      if not ns then
        ns = { rows = deployments.instances_by_deployment(db, d.namespace),
          current = deployments.current_revisions(db, d.namespace, LISTED_SPEC) }
        known[d.namespace] = ns
      end
      these.instances, these.revision = ns.rows[d.name], ns.current[d.name]
      n = n + 1
      items[n] = item_text(req, d, these, now, scratch)
    end
  end
  if n == 0 then return 200, { items = api.array({}) } end
  local indent = string.rep("  ", ITEM_DEPTH)
  return 200, '{\n  "items": [\n' .. indent .. table.concat(items, ",\n" .. indent, 1, n) .. "\n  ]\n}\n",
    { ["Content-Type"] = "application/json" }
end

-- A list longer than this lets the collector run: held, its garbage (a few
-- KB a deployment) would all be kept until the end.
local HOLD_COLLECTOR_MAX = 5000

-- Every deployment of the namespace.
local function list(req)
  local all = deployments.list(req.server.db, { namespace = req.params.ns })
  local _ <close> = #all <= HOLD_COLLECTOR_MAX and hold_collector() or nil
  return public_list(req, all)
end

-- Every deployment the token may see, of every namespace (`prisn get deploy -A`).
local function list_all(req)
  local all = deployments.list(req.server.db, { all_namespaces = true })
  local _ <close> = #all <= HOLD_COLLECTOR_MAX and hold_collector() or nil
  return public_list(req, all)
end

local function instances(req)
  local ns, db = req.params.ns, req.server.db
  local items = {}
  local filter = req.query.deployment
  -- The whole namespace in three queries; one deployment by its own.
  local rows = not filter and deployments.instances_by_deployment(db, ns)
  local current = not filter and deployments.current_revisions(db, ns, LISTED_SPEC)
  for _, d in ipairs(deployments.list(db, { namespace = ns })) do
    if not filter or filter == d.name then
      local known = rows and { instances = rows[d.name], revision = current[d.name] }
      for _, inst in ipairs(public(req, d, false, known).instances) do
        inst.deployment = d.name
        items[#items + 1] = inst
      end
    end
  end
  if filter and not deployments.get(db, ns, filter) then
    req.params.name = filter
    find(req)
  end
  return 200, { items = api.array(items) }
end

return {
  { method = "GET", pattern = "/api/v1/namespaces/{ns}/deployments", auth = "view", handler = list },
  { method = "GET", pattern = "/api/v1/deployments", auth = "view", handler = list_all },
  { method = "POST", pattern = "/api/v1/namespaces/{ns}/deployments", auth = "edit", handler = deploy },
  { method = "GET", pattern = "/api/v1/namespaces/{ns}/deployments/{name}", auth = "view", handler = function(req)
    return 200, public(req, find(req), true)
  end },
  { method = "DELETE", pattern = "/api/v1/namespaces/{ns}/deployments/{name}", auth = "edit", handler = delete },
  { method = "POST", pattern = "/api/v1/namespaces/{ns}/deployments/{name}/scale", auth = "edit", handler = scale },
  { method = "GET", pattern = "/api/v1/namespaces/{ns}/deployments/{name}/revisions", auth = "view",
    handler = revisions },
  { method = "POST", pattern = "/api/v1/namespaces/{ns}/deployments/{name}/rollback", auth = "edit",
    handler = rollback },
  { method = "POST", pattern = "/api/v1/namespaces/{ns}/deployments/{name}/restart", auth = "edit",
    handler = restart },
  { method = "GET", pattern = "/api/v1/namespaces/{ns}/instances", auth = "view", handler = instances },
}
