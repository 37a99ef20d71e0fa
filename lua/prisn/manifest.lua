-- prisn.manifest: `prisn deploy -f prisn.lua` manifests — a Lua file that
-- declares deployments and cron jobs (schema and example: docs/MANIFEST.md).
--
--   local m, err = manifest.load("prisn.lua")
--   -- m = { deployments = { ... }, cronjobs = { ... } }, normalized
--   -- err = 'prisn.lua:12: deployments[2].replicas: must be a whole number from 0 to 1000, got "3"'
--
-- The file runs in the operator-code sandbox (prisn.sandbox):
-- pure helpers and os.getenv only, no require, io or os.execute, under an
-- instruction budget — evaluating a manifest has no side effects. It declares
-- entries with `deployment { ... }` and `cron { ... }`, which record the line
-- they are called on, and/or returns { deployments = {...}, cronjobs = {...} }
-- of plain tables (their line is found from their `name = "..."`), so every
-- error names the file line of the offending entry and the bad field. The
-- workload's fields (env, limits, isolation, port, ...) are checked by their
-- declarations in prisn.exec.workload, as the flags and the API check them.
local schema = require("prisn.schema")
local units = require("prisn.units")
local fields = require("prisn.exec.workload")
local sandbox = require("prisn.sandbox")
local net_health = require("prisn.net.health")
local human = require("prisn.cron.human")
local schedules = require("prisn.cron")
local fs = require("prisn.fs")

local M = {}

local NAME = { type = "string", required = true, pattern = "^[a-z0-9][a-z0-9-]*$",
  pattern_hint = "a name of lowercase letters, digits and dashes" }

local DURATION = { type = { "string", "number" }, check = function(v)
  local ok, err = units.parse_duration(v)
  if ok == nil then return nil, err end
  return true
end }

local HEALTH_TABLE = { type = "table", fields = {
  http = { type = "string", pattern = "^/", pattern_hint = "a path starting with /" },
  tcp = { type = "boolean" }, none = { type = "boolean" },
  interval = DURATION, timeout = DURATION, start_grace = DURATION,
  failure_threshold = { type = "integer", check = function(n) return n >= 1 or nil, "must be at least 1" end },
} }

-- The shape of a workload field: checked by its declaration, so that a bad
-- value reads as it does on the command line and in the API.
local function field_shape(name)
  return { type = "any", check = function(v)
    local _, problem = fields.normalize(name, v, { coerce = true })
    if problem then return nil, (fields.message(problem, "manifest")) end
    return true
  end }
end

-- The shape of an entry of `kind`: the workload fields a manifest takes
-- for it (prisn.exec.workload), and `own`.
local function entry_shape(kind, own)
  own.name = NAME
  own.script = { type = "string", required = true }
  own.entry = { type = "string" }
  own.namespace = { type = "string" }
  for _, name in ipairs(fields.names(kind, true)) do own[name] = field_shape(name) end
  return { type = "table", fields = own }
end

M.DEPLOYMENT = entry_shape("deployment", { health = { type = { "string", "table" } } })

M.CRONJOB = entry_shape("cron", {
  schedule = { type = "string" }, every = { type = "string" }, at = { type = "string" }, on = { type = "string" },
  timezone = { type = "string" },
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

-- The entry with its workload fields normalized (sizes in bytes, durations
-- in seconds, env values strings), or nil and the problem with the disk.
local function normalize_common(e, dir, kind, path)
  local out = {}
  for k, v in pairs(e) do out[k] = v end
  if out.script:sub(1, 1) ~= "/" then out.script = dir .. "/" .. out.script end
  for _, name in ipairs(fields.names(kind, true)) do
    out[name] = fields.normalize(name, e[name], { coerce = true })
  end
  out.secrets = out.secrets or {}
  local _, problem = fields.disk_level(out.isolation, out.disk)
  if problem then return nil, path .. ".disk: " .. fields.message(problem, "manifest") end
  return out
end

local function check_deployment(e, path, dir)
  local ok, err = schema.check(e, M.DEPLOYMENT, path)
  if not ok then return nil, err end
  local out
  out, err = normalize_common(e, dir, "deployment", path)
  if not out then return nil, err end
  out.replicas = out.replicas or 1
  out.restart = out.restart or "always"
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
  local out
  out, err = normalize_common(e, dir, "cron", path)
  if not out then return nil, err end
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
  out.concurrency = out.concurrency or "forbid"
  out.keep_succeeded, out.keep_failed = out.keep_succeeded or 10, out.keep_failed or 10
  out.catch_up = out.catch_up or false
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
