-- prisn.exec.job_host.report: how a job runner forked by the job host tells
-- the server about its job, instead of writing state.db itself.
--
-- Opening state.db, reading the job and writing its start and end took a
-- runner about 1.3 ms of CPU per job, most of it before the job's script
-- could start. The server already has the database open and batches what it
-- is told, so a runner reports on a pipe to the server (the job host's
-- stdout, which the host kept a copy of for its runners), one line a fact:
-- started, update, done (the lines: prisn.exec.job_host).
--
-- When a line cannot be written whole (the server is gone: EPIPE; or the
-- line is too long), the runner opens state.db and records the fact and
-- every later one itself, as an exec'd runner does.
--
-- Crash safety: the outcome goes into the job's log (an "x" record, see
-- prisn.logs) before it goes on the pipe. A server that is killed after a
-- runner told it of an outcome but before it wrote it down finds the outcome
-- there when it starts again (prisn.server.jobs, recovery).
local uv = require("luv")
local cjson = require("cjson")
local now_ms = require("prisn.clock").now_ms
local store = require("prisn.store")
local job_specs = require("prisn.store.job_specs")
local job_record = require("prisn.exec.job_record")
local protocol = require("prisn.exec.job_host")

local M = {}

--- A recorder (see prisn.exec.job_record) for job `job` ({ id, namespace,
-- log_path }) that reports on `report_fd`. rec.db() opens state.db when
-- something needs it (secrets, or the server being gone).
function M.recorder(home, job, report_fd, on_log_error)
  local rec = { job = job, log_path = job.log_path }
  local db, direct
  function rec.db()
    if not db then db = store.open(home) end
    return db
  end
  -- The state.db recorder, from the first fact the server could not be told.
  local function fallback()
    if not direct then
      direct = job_record.existing(rec.db(), job, on_log_error)
      direct.log = rec.log
    end
    return direct
  end
  local function tell(kind, fields)
    if direct or not report_fd then return false end
    local line = protocol.report_line(kind, job.id, fields)
    if #line > protocol.MAX_LINE then return false end
    return uv.fs_write(report_fd, line, -1) == #line
  end

  function rec.create() return job end
  function rec.update(fields)
    local known = { deps_source = fields.deps_source, env_key = fields.env_key }
    if next(known) ~= nil and not tell("update", known) then fallback().update(known) end
  end
  function rec.start(pid)
    rec.started = { pid = pid, started_at = now_ms() }
    -- In the log first (opened by rec.begin), as the outcome: the report
    -- may be lost with the server, and a restarted one then finds here
    -- which process to stop.
    if rec.log then rec.log:write_start(cjson.encode(rec.started)) end
    if not tell("started", rec.started) then fallback().start(pid, rec.started.started_at) end
  end
  function rec.finish(result)
    rec.finished = true
    -- With the start, so it can be recorded from this alone (a "started"
    -- report the server never wrote down, the log after a crash).
    local started = rec.started or {}
    local outcome = {
      state = result.state, reason = result.reason, exit_code = result.exit_code,
      signal = result.signal, message = result.message, finished_at = result.finished_at or now_ms(),
      pid = started.pid, started_at = started.started_at,
    }
    if rec.log then rec.log:write_outcome(cjson.encode(outcome)) end
    if not tell("done", outcome) then
      fallback().finish(outcome, rec.started)
      -- The spec (with the -e values) was needed to start the job only.
      job_specs.drop(rec.db(), job.id)
    end
  end
  function rec.fail_to_start(message)
    rec.finish({ state = "failed", reason = "failed_to_start", message = message })
  end
  function rec.begin() return job_record.begin_log(rec, on_log_error) end
  function rec.open_log() return job_record.open_log(rec, on_log_error) end
  function rec.close()
    if rec.log then rec.log:close() end
    if db then db:close() end
  end
  return rec
end

return M
