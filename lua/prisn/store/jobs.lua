-- prisn.store.jobs: job records in the state database.
--
-- A job is one run of a script. Its life: create (pending) -> start
-- (running, with a pid) -> finish (succeeded or failed, with a reason). A job
-- that never started finishes straight from pending (reason failed_to_start).
--
-- In Lua a job is a plain table with the columns of the jobs table
-- (prisn.store.migrations): times are integers, milliseconds since the epoch;
-- `args` and `env_keys` are lists of strings; `detached` is a boolean;
-- columns that are NULL are absent. `to_public` turns one into the JSON/YAML
-- shape of `prisn get job` and the API, where every field is always present.
--
-- `env_keys` holds the NAMES of the variables a job was given, never their
-- values: values may be secrets, and the state database is not for secrets.
local uv = require("luv")
local cjson = require("cjson")
local clock = require("prisn.clock")
local errors = require("prisn.error")
local ids = require("prisn.ids")
local json_value = require("prisn.output.value")
local store = require("prisn.store")
local job_specs = require("prisn.store.job_specs")

local M = {}

-- pending: a local run being prepared; queued: accepted by the server,
-- waiting for a slot.
M.STATES = { "pending", "queued", "running", "succeeded", "failed" }
M.FINAL_STATES = { "succeeded", "failed" }
M.REASONS = { "exited", "timeout", "killed", "failed_to_start", "interrupted", "oom_killed",
  "server_restarted", "deleted" }
M.DEFAULT_NAMESPACE = "default"
M.DEFAULT_LIMIT = 50

local function set_of(list)
  local set = {}
  for _, v in ipairs(list) do set[v] = true end
  return set
end

local STATE_SET, FINAL_SET, REASON_SET = set_of(M.STATES), set_of(M.FINAL_STATES), set_of(M.REASONS)

local check = store.check

--- Milliseconds since the Unix epoch, now.

-- Columns and their Lua <-> SQL conversions ------------------------------

local COLUMNS = {
  "id", "namespace", "script", "runner", "args", "env_keys", "env_key", "deps_source", "cwd",
  "state", "reason", "exit_code", "signal", "pid", "created_at", "started_at", "finished_at",
  "log_path", "message", "detached", "cron",
}

-- A list of strings as a JSON array ("[]" when empty; cjson would say "{}").
local function encode_list(list, field)
  local parts = {}
  for i, v in ipairs(list or {}) do
    if type(v) ~= "string" then
      error(string.format("jobs: %s[%d] must be a string, got %s", field, i, type(v)), 3)
    end
    parts[i] = cjson.encode(v)
  end
  return "[" .. table.concat(parts, ",") .. "]"
end

local function decode_list(text)
  local ok, list = pcall(cjson.decode, text or "[]")
  if not ok or type(list) ~= "table" then return {} end
  return list
end

-- A row of the jobs table as a job.
local function from_row(row)
  if not row then return nil end
  row.args = decode_list(row.args)
  row.env_keys = decode_list(row.env_keys)
  row.detached = row.detached == 1
  return row
end

-- `v` as an integer (luv hands some integers over as floats, e.g. pids);
-- nil stays nil; anything else raises, blaming the caller `level` up.
local function integer(v, field, level)
  if v == nil then return nil end
  local n = math.tointeger(v)
  if not n then
    error(string.format("jobs: %s must be an integer, got %s", field, tostring(v)), level + 1)
  end
  return n
end

-- Create ------------------------------------------------------------------

local INSERT = "INSERT INTO jobs (" .. table.concat(COLUMNS, ", ") .. ") VALUES (:"
  .. table.concat(COLUMNS, ", :") .. ")"

--- Records a new job and returns it (as `get` would). `fields`: script and
-- runner (required); id (default: a new prisn.ids id), namespace
-- ("default"), args, env_keys (lists of strings; env_keys are names: a
-- "NAME=value" entry raises), env_key, deps_source, cwd, state ("pending"),
-- pid, created_at (now), started_at, log_path, message, detached (false),
-- cron (the name of the cron job the run belongs to).
-- Raises on a missing or mistyped field; a store failure raises a prisn.error.
function M.create(db, fields)
  assert(type(fields) == "table", "jobs.create: fields must be a table")
  for _, name in ipairs({ "script", "runner" }) do
    if type(fields[name]) ~= "string" or fields[name] == "" then
      error("jobs.create: " .. name .. " is required", 2)
    end
  end
  for i, key in ipairs(fields.env_keys or {}) do
    if type(key) == "string" and key:find("=", 1, true) then
      error(string.format("jobs.create: env_keys[%d] holds a value; record only the name", i), 2)
    end
  end
  local state = fields.state or "pending"
  if not STATE_SET[state] then error("jobs.create: unknown state '" .. tostring(state) .. "'", 2) end
  local row = {
    namespace = fields.namespace or M.DEFAULT_NAMESPACE,
    script = fields.script,
    runner = fields.runner,
    args = encode_list(fields.args, "args"),
    env_keys = encode_list(fields.env_keys, "env_keys"),
    env_key = fields.env_key,
    deps_source = fields.deps_source,
    cwd = fields.cwd,
    state = state,
    reason = fields.reason,
    exit_code = integer(fields.exit_code, "exit_code", 2),
    signal = fields.signal,
    pid = integer(fields.pid, "pid", 2),
    created_at = integer(fields.created_at, "created_at", 2) or clock.now_ms(),
    started_at = integer(fields.started_at, "started_at", 2),
    log_path = fields.log_path,
    message = fields.message,
    detached = fields.detached and 1 or 0,
    cron = fields.cron,
  }
  -- A generated id collides with another process's only when both were made
  -- in the same millisecond with the same 12 random bits: take a fresh one.
  for attempt = 1, 5 do
    row.id = fields.id or ids.new()
    local ok, message, code = db:run(INSERT, row)
    if ok then return M.get_by_id(db, row.id) end
    if code ~= "SQLITE_CONSTRAINT" or fields.id or attempt == 5 then store.fail(message, code) end
  end
end

-- Transitions -------------------------------------------------------------

local function require_job(db, id)
  local job = M.get_by_id(db, id)
  if not job then errors.raise("not_found", string.format("job '%s' not found", tostring(id))) end
  return job
end

local function conflict(job, action)
  errors.raise("conflict", string.format("cannot %s job '%s': it is %s", action, job.id, job.state))
end

--- Records what preparing job `id` learned: `fields.deps_source` (where its
-- dependencies were found) and `fields.env_key` (its environment), each
-- when it is a string. Returns what db:run returns (rows changed, or nil,
-- message, code): a caller may let a failure pass, the job runs regardless.
function M.record_prepared(db, id, fields)
  local deps_source = type(fields.deps_source) == "string" and fields.deps_source or nil
  local env_key = type(fields.env_key) == "string" and fields.env_key or nil
  if not deps_source and not env_key then return 0 end
  return db:run("UPDATE jobs SET deps_source = coalesce(:deps_source, deps_source), "
    .. "env_key = coalesce(:env_key, env_key) WHERE id = :id",
    { id = id, deps_source = deps_source, env_key = env_key }) -- absent: NULL, kept by coalesce
end

--- Marks a pending job running. `info`: pid, started_at (default now).
-- Returns the job: read back, or, given `known` (the caller's copy of the
-- job as it was), that copy with the start, which spares a read per job on
-- the server's path. Raises "not_found", or "conflict" when it is not
-- pending.
function M.start(db, id, info, known)
  info = info or {}
  local pid, started_at = integer(info.pid, "pid", 2), integer(info.started_at, "started_at", 2)
  started_at = started_at or clock.now_ms()
  local n = check(db:run("UPDATE jobs SET state = 'running', pid = :pid, started_at = :started_at "
    .. "WHERE id = :id AND state IN ('pending', 'queued')",
    { id = id, pid = pid, started_at = started_at }))
  if n == 0 then conflict(require_job(db, id), "start") end
  if not known then return M.get_by_id(db, id) end
  local job = {}
  for k, v in pairs(known) do job[k] = v end
  job.state, job.pid, job.started_at = "running", pid, started_at
  return job
end

--- Records how a pending or running job ended. `result`: state ("succeeded"
-- or "failed"), reason (one of M.REASONS), exit_code, signal (e.g. "TERM"),
-- message, finished_at (default now). Returns the job. Raises on a bad state
-- or reason, "not_found", or "conflict" when the job has already finished.
function M.finish(db, id, result)
  assert(type(result) == "table", "jobs.finish: result must be a table")
  if not FINAL_SET[result.state] then
    error("jobs.finish: state must be succeeded or failed, got " .. tostring(result.state), 2)
  end
  if not REASON_SET[result.reason] then
    error("jobs.finish: unknown reason '" .. tostring(result.reason) .. "'", 2)
  end
  local exit_code = integer(result.exit_code, "exit_code", 2)
  local finished_at = integer(result.finished_at, "finished_at", 2)
  local n = check(db:run("UPDATE jobs SET state = :state, reason = :reason, exit_code = :exit_code, "
    .. "signal = :signal, message = :message, finished_at = :finished_at "
    .. "WHERE id = :id AND state IN ('pending', 'queued', 'running')",
    { id = id, state = result.state, reason = result.reason, exit_code = exit_code,
      signal = result.signal, message = result.message, finished_at = finished_at or clock.now_ms() }))
  if n == 0 then conflict(require_job(db, id), "finish") end
  return M.get_by_id(db, id)
end

--- Records the outcome a job's runner reported (`outcome`: state, reason,
-- exit_code, signal, message, finished_at (default now), and pid,
-- started_at when it started) for job `id` unless the job has ended
-- already, in one statement: a job still queued (its start was not
-- recorded) gets the start too. Returns the job as recorded (the one that
-- had ended already, untouched), nil when there is none. Raises on a bad
-- state or reason.
function M.settle(db, id, outcome)
  if not FINAL_SET[outcome.state] then
    error("jobs.settle: state must be succeeded or failed, got " .. tostring(outcome.state), 2)
  end
  if not REASON_SET[outcome.reason] then
    error("jobs.settle: unknown reason '" .. tostring(outcome.reason) .. "'", 2)
  end
  local started_at = integer(outcome.started_at, "started_at", 2)
  check(db:run("UPDATE jobs SET "
    .. "pid = CASE WHEN state = 'queued' AND :started_at IS NOT NULL THEN :pid ELSE pid END, "
    .. "started_at = CASE WHEN state = 'queued' AND :started_at IS NOT NULL THEN :started_at ELSE started_at END, "
    .. "state = :state, reason = :reason, exit_code = :exit_code, signal = :signal, message = :message, "
    .. "finished_at = :finished_at WHERE id = :id AND state IN ('queued', 'running')",
    { id = id, pid = integer(outcome.pid, "pid", 2), started_at = started_at, state = outcome.state,
      reason = outcome.reason, exit_code = integer(outcome.exit_code, "exit_code", 2), signal = outcome.signal,
      message = outcome.message, finished_at = integer(outcome.finished_at, "finished_at", 2) or clock.now_ms() }))
  return M.get_by_id(db, id)
end

--- Records that job `id`, which has finished, ended because it was
-- deleted (the reason a user sees). Returns what db:run returns.
function M.mark_deleted(db, id)
  return db:run("UPDATE jobs SET reason = 'deleted' WHERE id = ?", id)
end

local function pid_alive(job)
  if not job.pid then return false end
  local ok, _, code = uv.kill(job.pid, 0)
  return ok ~= nil or code == "EPERM"
end

--- Fails the running jobs whose process is gone, with reason "interrupted"
-- (prisn was stopped or killed while they ran). `opts`: alive (job) -> bool
-- (default: the pid exists; recovery passes a stricter test), namespace
-- (default all), now (ms). Returns the list of jobs marked.
function M.mark_interrupted(db, opts)
  opts = opts or {}
  local alive = opts.alive or pid_alive
  local marked = {}
  store.transaction(db, function()
    local rows = check(db:rows("SELECT * FROM jobs WHERE state = 'running' "
      .. "AND (:ns IS NULL OR namespace = :ns) ORDER BY id", { ns = opts.namespace }))
    for _, row in ipairs(rows) do
      local job = from_row(row)
      if not alive(job) then
        marked[#marked + 1] = M.finish(db, job.id, { state = "failed", reason = "interrupted",
          message = "the job's process was gone when prisn checked on it", finished_at = opts.now })
      end
    end
  end)
  return marked
end

-- Queries -----------------------------------------------------------------

--- Jobs by state: { state = n } with every state of M.STATES (0 when
-- none), counting only the namespaces `visible(ns)` allows (all when nil).
function M.count_by_state(db, visible)
  local counts = {}
  for _, state in ipairs(M.STATES) do counts[state] = 0 end
  for _, row in ipairs(db:rows("SELECT namespace, state, count(*) AS n FROM jobs GROUP BY namespace, state") or {}) do
    if not visible or visible(row.namespace) then counts[row.state] = (counts[row.state] or 0) + row.n end
  end
  return counts
end

--- The runs of cron job `cron` in namespace `ns` that are queued or running,
-- oldest first. A failure to read counts as none: the scheduler goes on.
function M.active_for_cron(db, ns, cron)
  local rows = db:rows("SELECT * FROM jobs WHERE namespace = ? AND cron = ? AND state IN ('queued', 'running') "
    .. "ORDER BY id", ns, cron) or {}
  for i, row in ipairs(rows) do rows[i] = from_row(row) end
  return rows
end

--- The runs of cron job `cron` in namespace `ns` that ended in `state`,
-- past the newest `keep` of them: { id, log_path } each, newest first, for
-- the history limit to delete. A failure to read counts as none.
function M.old_cron_runs(db, ns, cron, state, keep)
  return db:rows("SELECT id, log_path FROM jobs WHERE namespace = ? AND cron = ? AND state = ? "
    .. "ORDER BY id DESC LIMIT -1 OFFSET ?", ns, cron, state, math.max(0, keep)) or {}
end

--- The server's jobs that had not finished (queued or running, detached),
-- oldest first, for recovery after a restart: { id, state, pid, started_at,
-- log_path, runner_pid } each, runner_pid from the job's spec (absent when
-- it has none). A failure to read counts as none.
function M.unfinished_server_jobs(db)
  return db:rows("SELECT j.id, j.state, j.pid, j.started_at, j.log_path, s.runner_pid FROM jobs j "
    .. "LEFT JOIN job_specs s ON s.job_id = j.id WHERE j.detached = 1 AND j.state IN ('queued', 'running') "
    .. "ORDER BY j.id") or {}
end

--- Deletes the record of job `id` and its spec, together. Raises on a
-- store failure.
function M.delete(db, id)
  store.transaction(db, function()
    check(job_specs.drop(db, id))
    check(db:run("DELETE FROM jobs WHERE id = ?", id))
  end)
end

--- The job with exactly this id in any namespace, or nil.
function M.get_by_id(db, id)
  return from_row(check(db:first("SELECT * FROM jobs WHERE id = ?", id)))
end

local SHOWN_WHEN_AMBIGUOUS = 5

--- The job in namespace `ns` (nil: any namespace) whose id is `id_or_prefix`
-- or the only one starting with it; nil when there is none. Raises an
-- "ambiguous" prisn.error, listing a few of the matches, when several start
-- with it. Ids are lower case; the prefix is lower-cased first.
function M.get(db, ns, id_or_prefix)
  if type(id_or_prefix) ~= "string" then return nil end
  local key = id_or_prefix:lower()
  if not ids.valid_prefix(key) then return nil end
  local rows = check(db:rows("SELECT * FROM jobs WHERE id >= :lo AND id < :hi "
    .. "AND (:ns IS NULL OR namespace = :ns) ORDER BY id DESC LIMIT :limit",
    -- '~' sorts after every id character, so [key, key~) is "starts with key".
    { lo = key, hi = key .. "~", ns = ns, limit = SHOWN_WHEN_AMBIGUOUS + 1 }))
  -- A whole id has no longer ids above it, so an exact match is always alone.
  if #rows == 0 then return nil end
  if #rows == 1 then return from_row(rows[1]) end
  local shown = {}
  for i = 1, math.min(#rows, SHOWN_WHEN_AMBIGUOUS) do shown[i] = rows[i].id end
  local total = check(db:first("SELECT count(*) AS n FROM jobs WHERE id >= :lo AND id < :hi "
    .. "AND (:ns IS NULL OR namespace = :ns)", { lo = key, hi = key .. "~", ns = ns })).n
  errors.raise("ambiguous", string.format("job id '%s' matches %d jobs: %s%s", id_or_prefix, total,
    table.concat(shown, ", "), total > #shown and ", ..." or ""),
    { hint = "give more characters of the id" })
end

--- Jobs, newest first. `opts`: namespace (default "default"),
-- all_namespaces (bool), state, script (matches any part of the script's
-- path, so a file name works), cron (the runs of that cron job), limit
-- (default 50; 0 for no limit).
function M.list(db, opts)
  opts = opts or {}
  if opts.state and not STATE_SET[opts.state] then
    error("jobs.list: unknown state '" .. tostring(opts.state) .. "'", 2)
  end
  local limit = integer(opts.limit, "limit", 2) or M.DEFAULT_LIMIT
  -- Only the conditions asked for, so SQLite can walk (namespace, id).
  local where, params = {}, { limit = limit > 0 and limit or -1 }
  if not opts.all_namespaces then
    where[#where + 1] = "namespace = :ns"
    params.ns = opts.namespace or M.DEFAULT_NAMESPACE
  end
  if opts.state then
    where[#where + 1] = "state = :state"
    params.state = opts.state
  end
  if opts.script then
    where[#where + 1] = "instr(script, :script) > 0"
    params.script = opts.script
  end
  if opts.cron then
    where[#where + 1] = "cron = :cron"
    params.cron = opts.cron
  end
  local rows = check(db:rows("SELECT * FROM jobs"
    .. (#where > 0 and " WHERE " .. table.concat(where, " AND ") or "")
    .. " ORDER BY id DESC LIMIT :limit", params))
  for i, row in ipairs(rows) do rows[i] = from_row(row) end
  return rows
end

-- Public shape ------------------------------------------------------------


--- How long the job ran in ms: finished - started, or for a running job the
-- time so far (at `now`, default now); nil before it started.
function M.duration_ms(job, now)
  if not job.started_at then return nil end
  if job.finished_at then return math.max(job.finished_at - job.started_at, 0) end
  if job.state == "running" then return math.max((now or clock.now_ms()) - job.started_at, 0) end
  return nil
end

local function or_null(v)
  if v == nil then return json_value.null end
  return v
end

--- The fields of the public shape, in the order `prisn get job` shows them.
M.PUBLIC_FIELDS = {
  "id", "namespace", "state", "reason", "exit_code", "signal", "message", "script", "runner",
  "args", "cwd", "env_keys", "env_key", "deps_source", "pid", "detached", "created_at",
  "started_at", "finished_at", "duration_ms", "log_path", "cron",
}

--- The job as the CLI's -o json/yaml and the API show it: snake_case fields,
-- all of M.PUBLIC_FIELDS always present (null when unknown), times as ISO
-- 8601 UTC strings, duration_ms an integer. `now` (ms) for a running job's
-- duration.
function M.to_public(job, now)
  local args, env_keys = {}, {}
  for i, v in ipairs(job.args or {}) do args[i] = v end
  for i, v in ipairs(job.env_keys or {}) do env_keys[i] = v end
  return {
    id = job.id,
    namespace = job.namespace,
    state = job.state,
    reason = or_null(job.reason),
    exit_code = or_null(job.exit_code),
    signal = or_null(job.signal),
    message = or_null(job.message),
    script = job.script,
    runner = job.runner,
    args = json_value.array(args),
    cwd = or_null(job.cwd),
    env_keys = json_value.array(env_keys),
    env_key = or_null(job.env_key),
    deps_source = or_null(job.deps_source),
    pid = or_null(job.pid),
    detached = job.detached == true,
    created_at = clock.iso_time(job.created_at, json_value.null),
    started_at = clock.iso_time(job.started_at, json_value.null),
    finished_at = clock.iso_time(job.finished_at, json_value.null),
    duration_ms = or_null(M.duration_ms(job, now)),
    log_path = or_null(job.log_path),
    cron = or_null(job.cron),
  }
end

return M
