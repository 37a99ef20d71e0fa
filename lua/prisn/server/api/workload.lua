-- prisn.server.api.workload: what the handlers that accept a workload share
-- (jobs, cron jobs and deployments take the same fields): the launch spec
-- read from a request body and checked, raising 422 naming the bad field,
-- and the check, after admission, that a script on the server exists.
--
-- Every field is checked by its declaration in prisn.exec.workload, so the
-- API's 422 says what `prisn run` says of the same value, without the
-- dashes. Its own module so that no handler calls another: the cron job and
-- deployment handlers used to reach into prisn.server.api.jobs for these.
local uv = require("luv")
local cjson = require("cjson")
local bundles = require("prisn.bundle")
local fields = require("prisn.exec.workload")
local api = require("prisn.server.api")
local stored_secrets = require("prisn.store.secrets")

local M = {}

--- body[name] checked as workload field `name` (prisn.exec.workload):
-- the normalized value, nil when absent or null; raises 422 naming the
-- field otherwise ("cpu is a number of cores from 0.01 to 1024, got 0").
function M.value(body, name)
  local v = body[name]
  if v == cjson.null then return nil end
  local value, problem = fields.normalize(name, v)
  if problem then api.fail(422, "invalid", fields.message(problem, "api")) end
  return value
end

-- Where the script to run is: an uploaded bundle and the entry inside it,
-- or (for an admin: see prisn.server.admission) an absolute path on the
-- server. Returns the script's path, its folder, and the bundle's hash.
local function script_of(req, body)
  if body.bundle ~= nil and body.bundle ~= cjson.null then
    local dir = bundles.dir(req.server.home, body.bundle)
    if not (dir and uv.fs_stat(dir)) then
      api.fail(422, "invalid", "unknown bundle '" .. tostring(body.bundle) .. "'",
        "upload it first: PUT /api/v1/bundles/<hash>")
    end
    local entry = api.field(body, "entry", "string")
    if entry:sub(1, 1) == "/" or entry:find("%.%.") then
      api.fail(422, "invalid", "entry must be a path inside the bundle, got '" .. entry .. "'")
    end
    local file = uv.fs_stat(dir .. "/" .. entry)
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
function M.check_server_script(spec)
  if spec.bundle then return end
  local st = uv.fs_stat(spec.script)
  if not st or st.type ~= "file" then api.fail(422, "invalid", "no such script on the server: " .. spec.script) end
end

-- The isolation level of a body: its isolation, made 2 by a disk when
-- absent; raises 422 when the disk needs a higher level.
local function isolation_of(isolation, disk)
  local level, problem = fields.disk_level(isolation, disk)
  if problem then api.fail(422, "invalid", fields.message(problem, "api")) end
  return level
end

--- The launch spec of a job from a request body (the fields of POST .../jobs),
-- checked; raises 422 naming the bad field. Cron jobs and deployments take
-- the same fields.
function M.spec_from_body(req, body)
  local script, dir, bundle = script_of(req, body)
  local env = M.value(body, "env") or {}
  local env_keys = {}
  for k in pairs(env) do env_keys[#env_keys + 1] = k end
  table.sort(env_keys)
  local secrets = M.value(body, "secrets") or {}
  for _, name in ipairs(secrets) do
    if not stored_secrets.exists(req.server.db, req.params.ns, name) then
      api.fail(422, "invalid", string.format("secret '%s' not found in namespace '%s'", name, req.params.ns),
        "create it with 'prisn secret set " .. name .. " KEY=VALUE'")
    end
  end
  local spec = {
    script = script, bundle = bundle, entry = bundle and body.entry or nil, cwd = dir,
    env = env, env_keys = env_keys, secrets = secrets, args = M.value(body, "args") or {},
    no_deps = M.value(body, "no_deps") == true,
  }
  for _, name in ipairs({ "runner", "timeout", "grace", "memory", "cpu", "pids", "isolation", "disk" }) do
    spec[name] = M.value(body, name)
  end
  spec.isolation = isolation_of(spec.isolation, spec.disk)
  return spec
end

return M
