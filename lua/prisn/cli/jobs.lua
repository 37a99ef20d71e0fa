-- prisn.cli.jobs: what the commands that read jobs share (`prisn get jobs`,
-- `prisn get job`, `prisn logs`): opening the state database without creating
-- it, finding a job by id or prefix with errors that say what to do next,
-- completing job ids, and the text forms of times and durations.
--
-- Reading never creates anything: on a machine where nothing ran yet there is
-- no PRISN_HOME and no state.db, and these commands say that no job has been
-- recorded instead of making them.
local errors = require("prisn.error")
local client = require("prisn.client")
local cjson = require("cjson")
local events = require("prisn.store.events")
local store = require("prisn.store")
local jobs = require("prisn.store.jobs")
local units = require("prisn.units")

local M = {}

--- The namespace a command acts in: -n, else the context's (see
-- prisn.client.namespace), else "default".
function M.namespace(ctx)
  return client.namespace(ctx)
end

--- A client when the context in effect is a remote server (jobs are then
-- read through its API), nil for this machine (read from state.db).
function M.remote(ctx)
  if client.context(ctx).is_local then return nil end
  return client.connect(ctx)
end

local TIME_FIELDS = { "created_at", "started_at", "finished_at" }

--- A job record from the API's public form: times back to milliseconds,
-- nulls dropped, so the text renderers work on both.
function M.from_public(p)
  local job = {}
  for k, v in pairs(p) do
    if v ~= cjson.null then job[k] = v end
  end
  for _, field in ipairs(TIME_FIELDS) do
    if job[field] then job[field] = events.parse_time(job[field]) end
  end
  return job
end

--- The state database, opened without creating PRISN_HOME or state.db; nil
-- when no job was ever recorded here.
function M.open_store()
  return store.open(nil, { create = false })
end

M.NOTHING_RECORDED_HINT = "run a script with 'prisn run SCRIPT'; its job is then listed by 'prisn get jobs'"

--- Job `id` (or a unique prefix of it) in namespace `ns` of `db`, where db
-- nil means nothing is recorded yet. Raises "not_found" with a hint (naming
-- the namespace the job is in, when it is in another one) or "ambiguous".
function M.find_job(db, ns, id)
  if not db then
    errors.raise("not_found", string.format("job '%s' not found: no jobs have been recorded yet", id),
      { hint = M.NOTHING_RECORDED_HINT })
  end
  local job = jobs.get(db, ns, id)
  if job then return job end
  local ok, elsewhere = pcall(jobs.get, db, nil, id)
  local hint = "list the jobs with 'prisn get jobs' (add -A for every namespace)"
  if ok and elsewhere then
    hint = string.format("job %s is in namespace '%s': add -n %s", elsewhere.id,
      elsewhere.namespace, elsewhere.namespace)
  end
  errors.raise("not_found", string.format("job '%s' not found in namespace '%s'", id, ns), { hint = hint })
end

--- Opens the store, finds the job as find_job does, closes the store and
-- returns the job.
function M.load_job(ns, id)
  local db = M.open_store()
  local ok, job = pcall(M.find_job, db, ns, id)
  if db then db:close() end
  if not ok then error(job, 0) end
  return job
end

--- Completion of a job id: the recent ids starting with `partial`, with
-- their state and script as the description. Never raises.
function M.complete_job_id(partial)
  local ok, result = pcall(function()
    local db = M.open_store()
    if not db then return {} end
    local list = jobs.list(db, { all_namespaces = true, limit = 200 })
    db:close()
    local out = {}
    for _, job in ipairs(list) do
      if job.id:sub(1, #partial) == partial then
        out[#out + 1] = { job.id, string.format("%s %s", job.state, M.basename(job.script)) }
      end
    end
    return out
  end)
  return ok and result or {}
end

-- Text forms ---------------------------------------------------------------

--- The last component of a path.
function M.basename(path)
  return path:match("[^/]*$")
end

--- "5s ago", "3m ago", "2h ago", "4d ago": the time `ms` seen from `now`.
function M.ago(ms, now)
  local s = math.max(now - ms, 0) // 1000
  if s < 60 then return s .. "s ago" end
  if s < 3600 then return (s // 60) .. "m ago" end
  if s < 86400 then return (s // 3600) .. "h ago" end
  return (s // 86400) .. "d ago"
end

--- A duration in ms the way people read it ("250ms", "4.2s", "3m12s"); nil
-- for nil.
function M.duration_text(ms)
  if ms == nil then return nil end
  return units.format_duration(ms / 1000)
end

--- How the job's process ended: its exit code, "SIGTERM" for a signal, nil
-- while unknown.
function M.exit_text(job)
  if job.exit_code then return job.exit_code end
  if job.signal then return "SIG" .. job.signal end
  return nil
end

--- A job as one row of `prisn get jobs`' text table, at time `now` (ms).
function M.job_row(job, now)
  return {
    namespace = job.namespace,
    id = job.id,
    state = job.state,
    reason = job.reason,
    exit = M.exit_text(job),
    runner = job.runner,
    script = M.basename(job.script),
    started = job.started_at and M.ago(job.started_at, now),
    duration = M.duration_text(jobs.duration_ms(job, now)),
  }
end

return M
