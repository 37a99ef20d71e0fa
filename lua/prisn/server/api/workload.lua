-- prisn.server.api.workload: what the handlers that accept a workload share
-- (jobs, cron jobs and deployments take the same fields): the launch spec
-- read from a request body and checked, raising 422 naming the bad field,
-- and the check, after admission, that a script on the server exists.
--
-- Its own module so that no handler calls another: the cron job and
-- deployment handlers used to reach into prisn.server.api.jobs for these.
local uv = require("luv")
local cjson = require("cjson")
local bundles = require("prisn.bundle")
local exec_isolation = require("prisn.exec.isolation")
local exec_limits = require("prisn.exec.limits")
local envfile = require("prisn.envfile")
local api = require("prisn.server.api")
local stored_secrets = require("prisn.store.secrets")
local units = require("prisn.units")

local M = {}

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

--- The launch spec of a job from a request body (the fields of POST .../jobs),
-- checked; raises 422 naming the bad field. Cron jobs and deployments take
-- the same fields.
function M.spec_from_body(req, body)
  local script, dir, bundle = script_of(req, body)
  local env, env_keys = {}, {}
  if body.env ~= nil and body.env ~= cjson.null then
    if type(body.env) ~= "table" then api.fail(422, "invalid", "env must be an object of strings") end
    for k, v in pairs(body.env) do
      if not envfile.valid_key(k) or type(v) ~= "string" then
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
  local limits, lerr, lhint = exec_limits.from_spec({ memory = null(body.memory),
    cpu = null(body.cpu), pids = null(body.pids) })
  if limits == nil then api.fail(422, "invalid", lerr, lhint) end
  local isolation = null(body.isolation)
  if isolation ~= nil then
    local n = math.tointeger(isolation)
    if not n or not exec_isolation.IMPLEMENTED[n] then
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
    local ok, level = pcall(exec_isolation.check_disk, isolation, disk)
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

return M
