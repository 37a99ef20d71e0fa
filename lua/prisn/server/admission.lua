-- prisn.server.admission: puts every workload request to the admission
-- policy (policies/admission.lua, or the operator's
-- $PRISN_HOME/policies/admission.lua) before anything is stored.
--
-- The policy decides; this module gathers the facts it decides on and acts
-- on the answer. The facts are what will really happen, not what the request
-- wrote: the isolation level is resolved here and pinned into the spec (so a
-- workload the policy admitted at level 1 can never fall back to level 0 when
-- its sandbox fails to set up at spawn time), and the user it will run as is
-- worked out the way the spawn will work it out (prisn.exec.job
-- .server_workload_user). A denial is a 403 naming the reason, an
-- `admission.denied` event naming the token id (never the token), a count in
-- prisn_admission_denials_total, and nothing stored.
--
--   local admission = require("prisn.server.admission")
--   admission.admit(req, "job.submit", spec)          -- raises 403 on a denial
--   admission.admit(req, "deployment.apply", spec, { port = 8080 })
--   admission.check(server, caller, "cronjob.fire", ns, spec)  -- returns ok, err
local uv = require("luv")
local errors = require("prisn.error")
local isolation = require("prisn.exec.isolation")
local job = require("prisn.exec.job")
local policies = require("prisn.policies")

local M = {}

M.DEFAULT_MIN_ISOLATION = 1

--- The caller as the policy sees it, from a token record ({ id, name, role,
-- namespaces }). A snapshot of this is what a cron job keeps, so that its
-- firings are admitted as its creator's requests.
function M.caller(token)
  local namespaces, cluster = {}, false
  for i, ns in ipairs(token.namespaces or {}) do
    namespaces[i] = ns
    cluster = cluster or ns == "*"
  end
  return { token_id = token.id, name = token.name, role = token.role, namespaces = namespaces,
    cluster_admin = token.role == "admin" and cluster }
end

-- The user a workload at `level` runs as: { uid, gid }, the server's own
-- when it does not switch (not root, or level 0).
local function run_as(level)
  local user = job.server_workload_user(level)
  if user then return { uid = user.uid, gid = user.gid } end
  return { uid = uv.getuid(), gid = uv.getgid() }
end

--- Resolves the isolation level of `spec` (nil: the server's default, 0 when
-- this machine cannot isolate, raised to `floor` when given) and pins it,
-- with the user it will run as (spec.run_as). Raises a prisn.error for a
-- malformed PRISN_WORKLOAD_USER.
function M.resolve(spec, floor)
  if spec.isolation == nil then
    local level = isolation.resolve(nil, function() end)
    -- Not asked for: the server's minimum when it is above the default (a
    -- machine that cannot isolate at all stays at 0, for the policy to see).
    if floor and level > 0 and level < floor then level = floor end
    spec.isolation = level
  end
  spec.run_as = run_as(spec.isolation)
  return spec
end

-- The request the policy is given (see policies/admission.lua).
local function request_of(server, caller, action, namespace, spec, fields)
  local env_keys = {}
  for i, k in ipairs(spec.env_keys or {}) do env_keys[i] = k end
  return {
    action = action, namespace = namespace, caller = caller,
    spec = { isolation = spec.isolation, run_as = spec.run_as, script = spec.bundle == nil and spec.script or nil,
      bundle = spec.bundle, runner = spec.runner, env_keys = env_keys, hooks = spec.hooks, no_deps = spec.no_deps,
      port = fields and fields.port or nil, host = fields and fields.host or nil,
      hostname = fields and fields.hostname or nil, path = fields and fields.hostname and fields.path or nil,
      tls_cert = fields and fields.tls_cert or nil, tls_key = fields and fields.tls_key or nil },
    server = { uid = uv.getuid(), min_isolation = server.min_isolation or M.DEFAULT_MIN_ISOLATION },
  }
end

-- The policy's answer, made safe: anything but true, or false with a
-- string, is a denial with a reason that says the policy misbehaved.
local function decide(server, request)
  local policy = policies.get(server.home, "admission", server.log)
  local ok, allowed, reason, hint = pcall(policy.admit, request)
  if not ok then
    server.log:error("admission policy failed: %s; denying", tostring(allowed))
    return false, "the admission policy failed", "see the server log"
  end
  if allowed == true then return true end
  if type(reason) ~= "string" or reason == "" then reason = "the admission policy refused this request" end
  return false, reason, type(hint) == "string" and hint or nil
end

--- Puts `spec` (already resolved) to the policy for `caller`. Returns true,
-- or nil and a prisn.error (403 forbidden) after recording the denial.
function M.check(server, caller, action, namespace, spec, fields)
  local request = request_of(server, caller, action, namespace, spec, fields)
  local allowed, reason, hint = decide(server, request)
  if allowed then return true end
  if server.metrics and server.metrics.admission_denials then
    server.metrics.admission_denials:labels(action):inc()
  end
  if server.events then
    server.events:record({ namespace = namespace, actor = caller.name and ("token:" .. caller.name) or "system",
      action = "admission.denied", object = fields and fields.object or nil,
      message = string.format("%s by token %s: %s", action, tostring(caller.token_id or "?"), reason) })
  end
  return nil, errors.new("forbidden", reason, { hint = hint, http_status = 403 })
end

--- The user a stored spec runs as, for the API's detail views: { uid, gid,
-- user = name from /etc/passwd or null }, or null for a spec stored before
-- admission pinned it.
function M.public_run_as(spec, null)
  local ids = spec and spec.run_as
  if type(ids) ~= "table" or math.type(ids.uid) ~= "integer" then return null end
  local found = isolation.lookup_user(tostring(ids.uid))
  return { uid = ids.uid, gid = ids.gid, user = found and found.name or null }
end

--- For a route handler: resolves `spec` and admits it as a request of
-- req's token, or raises the 403. fields: port, host, hostname, path,
-- tls_cert and tls_key (deployments: the port's address, the ingress route
-- and its certificate files on the server), object
-- (the event's object, "deploy/api"). Returns the spec, marked restricted
-- (spec.restricted = the namespace) when the caller is not a cluster-wide
-- admin: prisn then reads its dependency metadata only inside its bundle
-- and builds its dependencies as its own user, confined, into its
-- namespace's own cache entries (see prisn.exec.job.prepare) — as prisn's
-- user, both would give it the host.
function M.admit(req, action, spec, fields)
  local caller = M.caller(req.token)
  M.resolve(spec, not caller.cluster_admin and (req.server.min_isolation or M.DEFAULT_MIN_ISOLATION) or nil)
  local ok, err = M.check(req.server, caller, action, req.params.ns, spec, fields)
  if not ok then error(err, 0) end
  spec.restricted = not caller.cluster_admin and req.params.ns or nil
  return spec
end

return M
