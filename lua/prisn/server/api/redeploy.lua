-- prisn.server.api.redeploy: what a redeploy of an existing deployment
-- starts from, and what it changes (#14).
--
-- An imperative `prisn deploy app.py --name web -e K=V` asks for a merge
-- ("merge": true in POST .../deployments): the previous revision's template
-- and the deployment's settings are the base, the request's fields are laid
-- over it (env key by key; env_remove takes keys away; a field sent as null
-- goes back to its default), so a flag left out keeps its value instead of
-- silently going back to the default. Without "merge" (a manifest, an API
-- client) a body stays declarative and complete.
--
-- The merge is done here, on the server, and not by the CLI sending a full
-- spec read from GET: GET shows env keys but never their values (a view
-- token reads it), so a client could not carry COLOR=red forward without a
-- read that leaks values; and one request is atomic where a GET-then-POST
-- could undo a change made in between.
--
-- changes() lists what differs between two templates and the deployment's
-- settings: the script by its bundle digest, env by key only (never a
-- value). Pure functions on tables, spec'd with plain tables.
local cjson = require("cjson")
local health_checks = require("prisn.net.health")
local output = require("prisn.output")

local M = {}

-- Template fields that are not shown as a change of their own: derived from
-- others (env_keys from env, script and cwd from bundle + entry), or shown
-- with the script (bundle, entry).
-- admitted_for is who last applied a cron job, not its configuration.
local DERIVED = { env_keys = true, cwd = true, script = true, bundle = true, entry = true, env = true,
  admitted_for = true }

-- The order changes are listed in (others follow, sorted).
local ORDER = { "script", "args", "env", "secrets", "runner", "no_deps", "memory", "cpu", "pids", "isolation",
  "disk", "run_as", "timeout", "grace", "health", "restart", "progress_deadline", "hooks" }

-- A deployment's settings (outside its template) that changes() compares.
M.DEPLOYMENT_SETTINGS = { "replicas", "port", "host", "hostname", "path", "tls_cert", "tls_key", "tls_secret",
  "strategy" }

local function copy(t)
  local c = {}
  for k, v in pairs(t or {}) do c[k] = v end
  return c
end

--- The request body that would make template `spec` with deployment row
-- `d`'s settings (port, host, ingress hostname and path, strategy): the
-- base a merge starts from.
-- Replicas are left out: a redeploy keeps them (and an autoscaler's count).
function M.base_body(spec, d)
  local hooks
  if spec.hooks then
    hooks = {}
    for i, file in ipairs(spec.hooks) do
      hooks[i] = spec.cwd and file:sub(1, #spec.cwd + 1) == spec.cwd .. "/" and file:sub(#spec.cwd + 2) or file
    end
  end
  return {
    bundle = spec.bundle, entry = spec.entry, script = not spec.bundle and spec.script or nil,
    args = spec.args, env = copy(spec.env), secrets = spec.secrets, runner = spec.runner, grace = spec.grace,
    timeout = spec.timeout,
    no_deps = spec.no_deps or nil, memory = spec.memory, cpu = spec.cpu, pids = spec.pids,
    isolation = spec.isolation, disk = spec.disk, health = spec.health, restart = spec.restart,
    progress_deadline = spec.progress_deadline, hooks = hooks,
    port = d.port, host = d.host, strategy = d.strategy, hostname = d.hostname, path = d.hostname and d.path or nil,
    tls_cert = d.tls_cert, tls_key = d.tls_key, tls_secret = d.tls_secret,
  }
end

--- Whether `v` is a list of strings (env_remove's shape).
function M.key_list(v)
  if type(v) ~= "table" then return false end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  for i = 1, n do if type(v[i]) ~= "string" then return false end end
  return true
end

--- `body` laid over `base` (from base_body): a field `body` has replaces
-- the base's, null removes it; env is merged key by key and body.env_remove
-- (a list of keys) takes keys away. A bundle replaces a server path and the
-- other way round. Returns a new body; neither argument is changed.
--- What is wrong with a request's merge fields, as message and hint, or
-- nil: env_remove goes only with "merge": true, and lists variable names.
function M.merge_fields_problem(body)
  if body.env_remove ~= nil and body.merge ~= true then
    return "env_remove goes with \"merge\": true (a body without it is complete)"
  end
  if body.env_remove ~= nil and not M.key_list(body.env_remove) then
    return "env_remove must be a list of variable names", "e.g. {\"env_remove\": [\"DEBUG\"]}"
  end
  return nil
end

function M.merge(base, body)
  local merged = copy(base)
  for k, v in pairs(body) do
    if k ~= "env" and k ~= "env_remove" and k ~= "merge" and k ~= "dry_run" then
      if v == cjson.null then merged[k] = nil else merged[k] = v end
    end
  end
  if body.bundle ~= nil and body.bundle ~= cjson.null then merged.script = nil end
  if body.script ~= nil and body.script ~= cjson.null then merged.bundle, merged.entry = nil, nil end
  -- A certificate's files replace a secret, and the other way round.
  if body.tls_cert ~= nil and body.tls_cert ~= cjson.null then merged.tls_secret = nil end
  if body.tls_secret ~= nil and body.tls_secret ~= cjson.null then merged.tls_cert, merged.tls_key = nil, nil end
  local env = copy(base.env)
  if type(body.env) == "table" then
    for k, v in pairs(body.env) do env[k] = v end
  elseif body.env == cjson.null then
    env = {}
  end
  if type(body.env_remove) == "table" then
    for _, k in ipairs(body.env_remove) do if type(k) == "string" then env[k] = nil end end
  end
  merged.env = next(env) and env or nil
  return merged
end

-- JSON with keys in order, so equal values compare equal.
local function canonical(v)
  if type(v) ~= "table" then return cjson.encode(v) end
  if #v > 0 or next(v) == nil then
    local parts = {}
    for i, item in ipairs(v) do parts[i] = canonical(item) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = cjson.encode(k) .. ":" .. canonical(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

M.canonical = canonical

-- The script as shown: "app.py (bundle 1a2b3c4d5e6f)", or the server path.
local function script_text(spec)
  if spec.bundle then
    return string.format("%s (bundle %s)", tostring(spec.entry), tostring(spec.bundle):sub(1, 12))
  end
  return spec.script
end

local function shown(field, v)
  if v == nil then return cjson.null end
  if field == "health" and type(v) == "table" then
    local ok, text = pcall(health_checks.describe, v)
    return ok and text or canonical(v)
  end
  return v
end

-- The env keys added, removed and changed from `old` to `new` (values are
-- compared, never returned), or nil when the keys and values are the same.
local function env_change(old, new)
  old, new = old or {}, new or {}
  local added, removed, changed = {}, {}, {}
  for k, v in pairs(new) do
    if old[k] == nil then added[#added + 1] = k elseif old[k] ~= v then changed[#changed + 1] = k end
  end
  for k in pairs(old) do if new[k] == nil then removed[#removed + 1] = k end end
  if #added + #removed + #changed == 0 then return nil end
  table.sort(added); table.sort(removed); table.sort(changed)
  return { field = "env", added = output.array(added), removed = output.array(removed),
    changed = output.array(changed) }
end

--- What changes from template `old` with settings `old_settings` to `new`
-- with `new_settings` (the fields named in `setting_names`, default
-- DEPLOYMENT_SETTINGS: replicas, port, host, hostname, path, strategy): a list of
-- { field, from, to } (from/to null when unset; the script as "ENTRY
-- (bundle DIGEST)"), env as { field = "env", added, removed, changed } with
-- keys only. Empty when nothing changes.
function M.changes(old, new, old_settings, new_settings, setting_names)
  setting_names = setting_names or M.DEPLOYMENT_SETTINGS
  local list, seen, settings = {}, {}, {}
  for _, name in ipairs(setting_names) do settings[name] = true end
  local function add(field, a, b)
    if canonical(a) ~= canonical(b) then
      list[#list + 1] = { field = field, from = shown(field, a), to = shown(field, b) }
    end
  end
  local function compare(field)
    if seen[field] then return end
    seen[field] = true
    if field == "script" then
      if script_text(old) ~= script_text(new) then
        list[#list + 1] = { field = "script", from = script_text(old) or cjson.null, to = script_text(new) }
      end
    elseif field == "env" then
      list[#list + 1] = env_change(old.env, new.env)
    elseif settings[field] then
      add(field, old_settings[field], new_settings[field])
    elseif not DERIVED[field] then
      add(field, old[field], new[field])
    end
  end
  for _, field in ipairs(ORDER) do compare(field) end
  for _, field in ipairs(setting_names) do compare(field) end
  compare("env")
  local rest = {}
  for k in pairs(old) do rest[#rest + 1] = k end
  for k in pairs(new) do if old[k] == nil then rest[#rest + 1] = k end end
  table.sort(rest)
  for _, field in ipairs(rest) do compare(field) end
  return list
end

return M
