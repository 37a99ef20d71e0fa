-- prisn.manifest: `prisn deploy -f prisn.lua` manifests — a Lua file that
-- declares deployments and cron jobs (schema and example: docs/MANIFEST.md).
--
--   local m, err = manifest.load("prisn.lua")
--   -- m = { deployments = { ... }, cronjobs = { ... } }, normalized
--   -- err = 'prisn.lua:12: deployments[2].replicas: expected an integer, got "3"'
--
-- The file runs in the operator-code sandbox (prisn.sandbox):
-- pure helpers and os.getenv only, no require, io or os.execute, under an
-- instruction budget — evaluating a manifest has no side effects. It declares
-- entries with `deployment { ... }` and `cron { ... }`, which record the line
-- they are called on, and/or returns { deployments = {...}, cronjobs = {...} }
-- of plain tables (their line is found from their `name = "..."`), so every
-- error names the file line of the offending entry and the bad field.
local schema = require("prisn.schema")
local units = require("prisn.units")
local envfile = require("prisn.envfile")
local sandbox = require("prisn.sandbox")
local net_health = require("prisn.net.health")
local human = require("prisn.cron.human")
local schedules = require("prisn.cron")
local fs = require("prisn.fs")

local M = {}

local NAME = { type = "string", required = true, pattern = "^[a-z0-9][a-z0-9-]*$",
  pattern_hint = "a name of lowercase letters, digits and dashes" }

local function checker(parse)
  return function(v)
    local ok, err = parse(v)
    if ok == nil then return nil, err end
    return true
  end
end

local DURATION = { type = { "string", "number" }, check = checker(units.parse_duration) }
local SIZE = { type = { "string", "integer" }, check = checker(units.parse_size) }
local ENV = { type = "table", strict = false, check = function(t)
  for k, v in pairs(t) do
    if not envfile.valid_key(k) then
      return nil, string.format("%s is not a variable name", tostring(k))
    end
    if type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean" then
      return nil, string.format("%s: expected a string, got %s", k, type(v))
    end
  end
  return true
end }
local SECRETS = { type = "list", of = { type = "string" } }

local HEALTH_TABLE = { type = "table", fields = {
  http = { type = "string", pattern = "^/", pattern_hint = "a path starting with /" },
  tcp = { type = "boolean" }, none = { type = "boolean" },
  interval = DURATION, timeout = DURATION, start_grace = DURATION,
  failure_threshold = { type = "integer", check = function(n) return n >= 1 or nil, "must be at least 1" end },
} }

local function common(fields)
  fields.name = NAME
  fields.script = { type = "string", required = true }
  fields.entry = { type = "string" }
  fields.namespace = { type = "string" }
  fields.env = ENV
  fields.secrets = SECRETS
  fields.memory, fields.disk = SIZE, SIZE
  fields.cpu = { type = "number", check = function(n) return n > 0 or nil, "must be above 0" end }
  fields.pids = { type = "integer", check = function(n) return n >= 1 or nil, "must be at least 1" end }
  fields.isolation = { type = "integer", values = { 0, 1, 2, 3 } }
  return { type = "table", fields = fields }
end

M.DEPLOYMENT = common({
  port = { type = "integer", check = function(n) return (n >= 1 and n <= 65535) or nil, "must be 1-65535" end },
  replicas = { type = "integer", check = function(n) return n >= 0 or nil, "cannot be negative" end },
  health = { type = { "string", "table" } },
  restart = { type = "string", values = { "always", "on-failure", "never" } },
  hooks = { type = "list", of = { type = "string" } },
})

M.CRONJOB = common({
  schedule = { type = "string" }, every = { type = "string" }, at = { type = "string" }, on = { type = "string" },
  timezone = { type = "string" },
  concurrency = { type = "string", values = { "allow", "forbid", "replace" } },
  catch_up = { type = "boolean" },
  keep_succeeded = { type = "integer" }, keep_failed = { type = "integer" },
  timeout = DURATION,
})

-- Health is checked here (so an error names the file line) and sent as
-- given: the server fills the defaults (prisn.net.health, docs/HEALTH.md)
-- and, when there is none, picks tcp with a port and none without.
local function normalize_health(h, path)
  if h == nil then return nil end
  if type(h) == "table" then
    local checked, serr = schema.check(h, HEALTH_TABLE, path)
    if not checked then return nil, serr end
  end
  local ok, err = net_health.normalize(h)
  if not ok then return nil, path .. ": " .. tostring(err) end
  return h
end

local function normalize_common(e, dir)
  local out = {}
  for k, v in pairs(e) do out[k] = v end
  if out.script:sub(1, 1) ~= "/" then out.script = dir .. "/" .. out.script end
  if e.env then
    out.env = {}
    for k, v in pairs(e.env) do out.env[k] = tostring(v) end
  end
  out.secrets = e.secrets or {}
  out.memory = e.memory and units.parse_size(e.memory)
  out.disk = e.disk and units.parse_size(e.disk)
  return out
end

local function check_deployment(e, path, dir)
  local ok, err = schema.check(e, M.DEPLOYMENT, path)
  if not ok then return nil, err end
  local out = normalize_common(e, dir)
  out.replicas = e.replicas or 1
  out.restart = e.restart or "always"
  out.health, err = normalize_health(e.health, path .. ".health")
  if err then return nil, err end
  return out
end

local function check_cronjob(e, path, dir)
  local ok, err = schema.check(e, M.CRONJOB, path)
  if not ok then return nil, err end
  if (e.schedule == nil) == (e.every == nil) then
    return nil, path .. ": give exactly one of schedule or every"
  end
  if (e.at or e.on) and not e.every then return nil, path .. ": at and on go with every" end
  local out = normalize_common(e, dir)
  local expr = e.schedule
  if e.every then
    expr, err = human.normalize(e.every, { at = e.at, on = e.on })
    if not expr then return nil, path .. ".every: " .. err end
  end
  local compiled
  compiled, err = schedules.compile(expr, { tz = e.timezone })
  if not compiled then
    return nil, path .. (e.schedule and ".schedule: " or ".every: ") .. err
  end
  out.schedule, out.every, out.at, out.on = compiled.expression, nil, nil, nil
  out.timeout = e.timeout and units.parse_duration(e.timeout)
  out.concurrency = e.concurrency or "forbid"
  out.keep_succeeded, out.keep_failed = e.keep_succeeded or 10, e.keep_failed or 10
  out.catch_up = e.catch_up or false
  return out
end

-- The line of a plain entry: the line of its `name = "..."` in the source.
local function line_of_name(text, name)
  if type(name) ~= "string" then return nil end
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    for q in line:gmatch("name%s*=%s*([\"'][^\"']*[\"'])") do
      if q:sub(2, -2) == name then return n end
    end
  end
end

--- Evaluates manifest source `text` (from `file`, for messages and relative
-- script paths). Returns the normalized manifest or nil, message.
function M.evaluate(text, file)
  local env = sandbox.environment()
  local declared, lines = {}, {}
  local function constructor(kind)
    return function(t)
      if type(t) ~= "table" then error(kind .. " { ... } expects a table", 2) end
      lines[t] = debug.getinfo(2, "l").currentline
      declared[#declared + 1] = { kind = kind, entry = t }
      return t
    end
  end
  env.deployment, env.cron = constructor("deployment"), constructor("cron")
  local chunk, err = load(text, "@" .. file, "t", env)
  if not chunk then return nil, sandbox.full_path(err, file) end
  local ok, returned = sandbox.call(chunk)
  if not ok then return nil, sandbox.full_path(returned, file) end

  local lists = { deployment = {}, cron = {} }
  local seen = {}
  for _, d in ipairs(declared) do
    lists[d.kind][#lists[d.kind] + 1] = d.entry
    seen[d.entry] = true
  end
  if returned ~= nil then
    if type(returned) ~= "table" then
      return nil, string.format("%s: the manifest returns %s; return nothing, or a table of deployments "
        .. "and cronjobs", file, type(returned))
    end
    for k in pairs(returned) do
      if k ~= "deployments" and k ~= "cronjobs" and not seen[returned[k]] then
        return nil, string.format("%s: %s: unknown field (known fields: cronjobs, deployments)", file, tostring(k))
      end
    end
    for key, kind in pairs({ deployments = "deployment", cronjobs = "cron" }) do
      local list = returned[key] or {}
      if not schema.is_list(list) then return nil, file .. ": " .. key .. ": expected a list" end
      for _, e in ipairs(list) do
        if not seen[e] then
          lists[kind][#lists[kind] + 1] = e
          seen[e] = true
        end
      end
    end
  end

  local dir = file:match("^(.*)/[^/]*$") or "."
  local result = { deployments = {}, cronjobs = {} }
  local names = {}
  for _, spec in ipairs({ { "deployment", "deployments", check_deployment }, { "cron", "cronjobs", check_cronjob } }) do
    local kind, key, check = spec[1], spec[2], spec[3]
    for i, e in ipairs(lists[kind]) do
      local path = string.format("%s[%d]", key, i)
      local line = type(e) == "table" and (lines[e] or line_of_name(text, e.name))
      local where = line and (file .. ":" .. line .. ": ") or (file .. ": ")
      if type(e) ~= "table" then
        return nil, string.format("%s%s: expected a table, got %s", where, path, type(e))
      end
      local out, bad = check(e, path, dir)
      if not out then return nil, where .. bad end
      if names[key .. e.name] then
        return nil, string.format("%s%s.name: %q is declared twice", where, path, e.name)
      end
      names[key .. e.name] = true
      out.line = line or nil
      result[key][i] = out
    end
  end
  return result
end

--- Reads and evaluates the manifest at `path`. Returns it or nil, message.
function M.load(path)
  local text, err = fs.read_file(path)
  if not text then return nil, err end
  return M.evaluate(text, path)
end

return M
