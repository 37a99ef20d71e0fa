-- prisn.store.cronjobs: cron job records in the state database.
--
-- A cron job is a schedule (a normalized standard expression and a time
-- zone) plus the spec of the job each run submits (the shape of a job spec
-- of prisn.server.jobs, with `bundle` and `entry` saying where the script
-- came from), and its policies: concurrency (allow | forbid | replace),
-- catch_up (run once at start for runs missed while the server was down),
-- and how many finished runs to keep (keep_succeeded, keep_failed).
--
-- The scheduler (prisn.server.cron) keeps `next_fire`: the UTC time (ms) of
-- the next run, NULL while the cron job is suspended. `last_fire` is when a
-- run was last submitted. Each run is a job whose `cron` column holds the
-- cron job's name (migration 7), so history is a query on jobs.
--
-- In Lua a cron job is a plain table with the columns below: `spec` decoded,
-- `catch_up` and `suspended` booleans, NULL columns absent. `to_public`
-- gives the API's shape, where every field is present.
local cjson = require("cjson")
local errors = require("prisn.error")
local json_value = require("prisn.output.value")
local store = require("prisn.store")
local clock = require("prisn.clock")

local M = {}


M.CONCURRENCY = { "allow", "forbid", "replace" }
M.DEFAULT_CONCURRENCY = "forbid"
M.DEFAULT_KEEP = 10
M.MAX_NAME = 63

local check = store.check

local CONCURRENCY_SET = {}
for _, v in ipairs(M.CONCURRENCY) do CONCURRENCY_SET[v] = true end

--- Milliseconds since the Unix epoch, now.

--- Whether `name` may name a cron job: lower-case letters, digits and
-- dashes, starting and ending with a letter or digit, at most 63 long.
-- Returns true, or nil and a message.
function M.valid_name(name)
  if type(name) ~= "string" or name == "" then return nil, "a cron job needs a name" end
  if #name > M.MAX_NAME or not name:match("^[a-z0-9]$") and not name:match("^[a-z0-9][a-z0-9%-]*[a-z0-9]$") then
    return nil, string.format("invalid cron job name '%s': use lower-case letters, digits and dashes "
      .. "(at most %d, starting and ending with a letter or digit)", name, M.MAX_NAME)
  end
  return true
end

--- A cron job name from a script's file name: "nightly_backup.py" ->
-- "nightly-backup"; nil when nothing usable is left.
function M.name_from_script(path)
  local base = (path:match("([^/]+)$") or path):gsub("%.[^.]*$", ""):lower()
  base = base:gsub("[^a-z0-9]+", "-"):gsub("^%-+", ""):gsub("%-+$", "")
  base = base:sub(1, M.MAX_NAME):gsub("%-+$", "")
  if base == "" then return nil end
  return base
end

local function from_row(row)
  if not row then return nil end
  local ok, spec = pcall(cjson.decode, row.spec)
  row.spec = ok and type(spec) == "table" and spec or {}
  row.catch_up = row.catch_up == 1
  row.suspended = row.suspended == 1
  return row
end

local function integer(v, field, default)
  if v == nil then return default end
  local n = math.tointeger(v)
  if not n then error(string.format("cronjobs: %s must be an integer, got %s", field, tostring(v)), 3) end
  return n
end

-- The row to write for `fields`, checked. A bad field is a bug in the
-- caller (the API validates what users send): it raises.
local function to_row(fields)
  assert(type(fields) == "table", "cronjobs: fields must be a table")
  local ok, err = M.valid_name(fields.name)
  if not ok then error("cronjobs: " .. err, 3) end
  if type(fields.expression) ~= "string" or fields.expression == "" then
    error("cronjobs: expression is required", 3)
  end
  if type(fields.spec) ~= "table" then error("cronjobs: spec must be a table", 3) end
  local concurrency = fields.concurrency or M.DEFAULT_CONCURRENCY
  if not CONCURRENCY_SET[concurrency] then
    error("cronjobs: concurrency must be allow, forbid or replace, got " .. tostring(concurrency), 3)
  end
  return {
    namespace = fields.namespace or "default",
    name = fields.name,
    expression = fields.expression,
    timezone = fields.timezone,
    spec = cjson.encode(fields.spec),
    concurrency = concurrency,
    catch_up = fields.catch_up and 1 or 0,
    keep_succeeded = integer(fields.keep_succeeded, "keep_succeeded", M.DEFAULT_KEEP),
    keep_failed = integer(fields.keep_failed, "keep_failed", M.DEFAULT_KEEP),
    suspended = fields.suspended and 1 or 0,
    next_fire = integer(fields.next_fire, "next_fire"),
    last_fire = integer(fields.last_fire, "last_fire"),
  }
end

local COLUMNS = { "namespace", "name", "expression", "timezone", "spec", "concurrency", "catch_up",
  "keep_succeeded", "keep_failed", "suspended", "next_fire", "last_fire", "created_at", "updated_at" }

--- Records a new cron job and returns it. `fields`: name, expression, spec
-- (required); namespace ("default"), timezone, concurrency ("forbid"),
-- catch_up, keep_succeeded, keep_failed (10), suspended, next_fire,
-- last_fire, created_at (now). Raises "exists" when the name is taken.
function M.create(db, fields)
  local row = to_row(fields)
  row.created_at = integer(fields.created_at, "created_at") or clock.now_ms()
  row.updated_at = row.created_at
  local ok, message, code = db:run("INSERT INTO cronjobs (" .. table.concat(COLUMNS, ", ") .. ") VALUES (:"
    .. table.concat(COLUMNS, ", :") .. ")", row)
  if not ok then
    if code == "SQLITE_CONSTRAINT" then
      errors.raise("exists", string.format("cron job '%s' already exists in namespace '%s'", row.name,
        row.namespace))
    end
    store.fail(message, code)
  end
  return M.get(db, row.namespace, row.name)
end

--- Replaces the schedule, spec and policies of an existing cron job (its
-- history, created_at and last_fire stay). `fields` as for create. Returns
-- the cron job, or nil when there is none.
function M.update(db, fields)
  local row = to_row(fields)
  row.updated_at = integer(fields.updated_at, "updated_at") or clock.now_ms()
  local n = check(db:run("UPDATE cronjobs SET expression = :expression, timezone = :timezone, spec = :spec, "
    .. "concurrency = :concurrency, catch_up = :catch_up, keep_succeeded = :keep_succeeded, "
    .. "keep_failed = :keep_failed, suspended = :suspended, next_fire = :next_fire, updated_at = :updated_at "
    .. "WHERE namespace = :namespace AND name = :name", row))
  if n == 0 then return nil end
  return M.get(db, row.namespace, row.name)
end

--- The cron job `name` of namespace `ns`, or nil.
function M.get(db, ns, name)
  return from_row(check(db:first("SELECT * FROM cronjobs WHERE namespace = ? AND name = ?", ns, name)))
end

--- Cron jobs by name. `opts`: namespace ("default"), all_namespaces.
--- How many cron jobs there are in the namespaces `visible(ns)` allows (all
-- when nil).
function M.count(db, visible)
  local n = 0
  for _, row in ipairs(db:rows("SELECT namespace, count(*) AS n FROM cronjobs GROUP BY namespace") or {}) do
    if not visible or visible(row.namespace) then n = n + row.n end
  end
  return n
end

function M.list(db, opts)
  opts = opts or {}
  local rows
  if opts.all_namespaces then
    rows = check(db:rows("SELECT * FROM cronjobs ORDER BY namespace, name"))
  else
    rows = check(db:rows("SELECT * FROM cronjobs WHERE namespace = ? ORDER BY name", opts.namespace or "default"))
  end
  for i, row in ipairs(rows) do rows[i] = from_row(row) end
  return rows
end

--- Deletes a cron job (its runs stay, as jobs). Returns true when it existed.
function M.delete(db, ns, name)
  return check(db:run("DELETE FROM cronjobs WHERE namespace = ? AND name = ?", ns, name)) > 0
end

--- Suspends (next_fire cleared) or resumes (next_fire set to `next_fire`)
-- a cron job. Returns the cron job, or nil when there is none.
function M.set_suspended(db, ns, name, suspended, next_fire)
  local n = check(db:run("UPDATE cronjobs SET suspended = ?, next_fire = ?, updated_at = ? "
    .. "WHERE namespace = ? AND name = ?", suspended and 1 or 0, not suspended and integer(next_fire, "next_fire")
    or nil, clock.now_ms(), ns, name))
  if n == 0 then return nil end
  return M.get(db, ns, name)
end

--- Sets the next fire time (ms, or nil) without recording a run.
function M.set_next_fire(db, ns, name, next_fire)
  check(db:run("UPDATE cronjobs SET next_fire = ? WHERE namespace = ? AND name = ?",
    integer(next_fire, "next_fire"), ns, name))
end

--- Records a run submitted at `fired_at` (ms) and the next fire time
-- (nil keeps the current one: a manual trigger does not move the schedule).
function M.record_fire(db, ns, name, fired_at, next_fire)
  if next_fire == nil then
    check(db:run("UPDATE cronjobs SET last_fire = ? WHERE namespace = ? AND name = ?",
      integer(fired_at, "fired_at"), ns, name))
  else
    check(db:run("UPDATE cronjobs SET last_fire = ?, next_fire = ? WHERE namespace = ? AND name = ?",
      integer(fired_at, "fired_at"), integer(next_fire, "next_fire"), ns, name))
  end
end

--- The earliest next_fire among the cron jobs that are not suspended
-- (ms), or nil when none is scheduled.
function M.earliest(db)
  local row = check(db:first("SELECT min(next_fire) AS t FROM cronjobs WHERE suspended = 0 AND next_fire IS NOT NULL"))
  return row and row.t and math.tointeger(row.t) or nil
end

--- The cron jobs due at `now_ms` (next_fire <= now_ms, not suspended),
-- earliest first.
function M.due(db, now_ms)
  local rows = check(db:rows("SELECT * FROM cronjobs WHERE suspended = 0 AND next_fire IS NOT NULL "
    .. "AND next_fire <= ? ORDER BY next_fire, namespace, name", now_ms))
  for i, row in ipairs(rows) do rows[i] = from_row(row) end
  return rows
end


local function or_null(v)
  if v == nil then return json_value.null end
  return v
end

--- The script a cron job runs, for people: its entry in the bundle, or the
-- path it was given.
function M.script_name(cron)
  local spec = cron.spec or {}
  return spec.entry or spec.script or "?"
end

--- The cron job as the API and -o json/yaml show it: every field present
-- (null when unknown), times as ISO 8601 UTC, the spec's values of -e left
-- out (only their names, as for jobs).
function M.to_public(cron)
  local spec = cron.spec or {}
  local args, env_keys, secrets = {}, {}, {}
  for i, v in ipairs(spec.args or {}) do args[i] = v end
  for i, v in ipairs(spec.env_keys or {}) do env_keys[i] = v end
  for i, v in ipairs(spec.secrets or {}) do secrets[i] = v end
  return {
    namespace = cron.namespace,
    name = cron.name,
    schedule = cron.expression,
    timezone = or_null(cron.timezone),
    script = M.script_name(cron),
    bundle = or_null(spec.bundle),
    runner = or_null(spec.runner),
    args = json_value.array(args),
    env_keys = json_value.array(env_keys),
    secrets = json_value.array(secrets),
    concurrency = cron.concurrency,
    catch_up = cron.catch_up == true,
    keep_succeeded = cron.keep_succeeded,
    keep_failed = cron.keep_failed,
    suspended = cron.suspended == true,
    next_fire = clock.iso_time(cron.next_fire, json_value.null),
    last_fire = clock.iso_time(cron.last_fire, json_value.null),
    created_at = clock.iso_time(cron.created_at, json_value.null),
    updated_at = clock.iso_time(cron.updated_at, json_value.null),
  }
end

return M
