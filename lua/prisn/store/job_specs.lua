-- prisn.store.job_specs: the launch spec of each server job waiting to run or
-- running, kept next to its record (the job_specs table) so that a queued job
-- survives a restart.
--
-- A spec is the JSON the job queue wrote at submission: it holds the values
-- of -e (which the jobs table never holds), so it is dropped once the job no
-- longer needs it (its runner has started it, or it was deleted). runner_pid
-- is the pid of the `prisn __job-run` that runs it, for a restarted server to
-- find.
--
-- The writes return what db:run returns (the number of rows changed, or
-- nil, message, code), so a caller can pass it to prisn.store.check or let
-- pass a failure it can live with.
local M = {}

--- Stores the spec (JSON text) of job `id`.
function M.put(db, id, spec_json)
  return db:run("INSERT INTO job_specs (job_id, spec) VALUES (?, ?)", id, spec_json)
end

--- The spec (JSON text) of job `id`, or nil.
function M.get(db, id)
  local row = db:first("SELECT spec FROM job_specs WHERE job_id = ?", id)
  return row and row.spec or nil
end

--- Records the pid of the runner that runs job `id`.
function M.set_runner_pid(db, id, pid)
  return db:run("UPDATE job_specs SET runner_pid = ? WHERE job_id = ?", pid, id)
end

--- Drops the spec of job `id` (no error when there is none).
function M.drop(db, id)
  return db:run("DELETE FROM job_specs WHERE job_id = ?", id)
end

return M
