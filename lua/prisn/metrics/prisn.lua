-- prisn.metrics.prisn: prisn's own metrics, declared as data. The server
-- registers them once (`register`) and updates the families it gets back:
--
--   local m = metrics.prisn_metrics(reg, { jobs_by_state = count_jobs })
--   m.api_requests:labels(route.name, req.method, status):inc()
--   m.api_request_duration:labels(route.name):observe(seconds)
--   m.job_duration:observe(seconds)            -- when a job finishes
--   m.job_scheduling_latency:observe(seconds)  -- submitted -> process started
--   m.queue_depth:set(#queue)
--   m.cron_lateness:observe(seconds)           -- cron run due -> job submitted
--
-- Label values must stay few: `route` is the route's pattern
-- ("/api/v1/namespaces/{ns}/jobs/{id}", or "unmatched" for a path no route
-- matched), never the path itself; `code` the status code; `method` the
-- request method. A later feature adds its families to M.FAMILIES.
local jobs = require("prisn.store.jobs")

local M = {}

-- Seconds. API requests are budgeted at 2 ms p99, so the resolution is below that.
M.API_DURATION_BUCKETS = { .0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5 }
-- From `bash -c true` (milliseconds) to hour-long batch jobs.
M.JOB_DURATION_BUCKETS = { .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600 }
-- Submit -> process started is budgeted at 5 ms p99 while slots are free;
-- the long tail is time spent waiting in the queue.
-- Cron runs are due to fire within 1 s, aiming under 100 ms.
M.CRON_LATENESS_BUCKETS = { .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 60 }
M.SCHEDULING_LATENCY_BUCKETS = { .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60 }

--- The families: key (the field of `register`'s result), kind, name, help,
-- labels, buckets (histograms), option (gauge_fn: the name of the
-- function in `register`'s opts that computes it).
M.FAMILIES = {
  { key = "api_requests", kind = "counter", name = "prisn_api_requests_total",
    help = "API requests answered, by route pattern, method and status code.",
    labels = { "route", "method", "code" } },
  { key = "api_request_duration", kind = "histogram", name = "prisn_api_request_duration_seconds",
    help = "Time from a request's arrival to its response, by route pattern.",
    labels = { "route" }, buckets = M.API_DURATION_BUCKETS },
  { key = "jobs", kind = "gauge_fn", name = "prisn_jobs",
    help = "Jobs recorded in the state database, by state.",
    labels = { "state" }, option = "jobs_by_state" },
  { key = "job_duration", kind = "histogram", name = "prisn_job_duration_seconds",
    help = "How long finished jobs ran, from process start to exit.",
    buckets = M.JOB_DURATION_BUCKETS },
  { key = "job_scheduling_latency", kind = "histogram", name = "prisn_job_scheduling_latency_seconds",
    help = "Time from a job's submission to the start of its runner process.",
    buckets = M.SCHEDULING_LATENCY_BUCKETS },
  { key = "queue_depth", kind = "gauge", name = "prisn_queue_depth",
    help = "Jobs waiting in the queue for a free slot." },
  { key = "instances", kind = "gauge_fn", name = "prisn_instances",
    help = "Service instances, by state.", labels = { "state" }, option = "instances_by_state" },
  { key = "instance_exits", kind = "counter", name = "prisn_instance_exits_total",
    help = "Service instances that exited without being asked to, by reason.", labels = { "reason" } },
  { key = "instance_restart_latency", kind = "histogram", name = "prisn_instance_restart_latency_seconds",
    help = "Time from an instance's exit being seen to its new process started, for immediate restarts.",
    buckets = { .001, .0025, .005, .01, .02, .05, .1, .25, .5, 1 } },
  { key = "rollouts", kind = "counter", name = "prisn_rollouts_total",
    help = "Rollouts of new revisions, by outcome (rolled_out, rolled_back).", labels = { "outcome" } },
  { key = "admission_denials", kind = "counter", name = "prisn_admission_denials_total",
    help = "Workload requests the admission policy refused, by action (job.submit, deployment.apply, ...).",
    labels = { "action" } },
  { key = "cron_lateness", kind = "histogram", name = "prisn_cron_lateness_seconds",
    help = "Time from a cron run's due time to the submission of its job.",
    buckets = M.CRON_LATENESS_BUCKETS },
  { key = "state_checkpoint_duration", kind = "histogram", name = "prisn_state_checkpoint_duration_seconds",
    help = "How long each checkpoint of state.db's write-ahead log took (on a thread, off the event loop).",
    buckets = M.CRON_LATENESS_BUCKETS },
  { key = "state_checkpoint_failures", kind = "counter", name = "prisn_state_checkpoint_failures_total",
    help = "Checkpoints of state.db that failed (the next one tries again)." },
  { key = "state_write_errors", kind = "counter", name = "prisn_state_write_errors_total",
    help = "Writes to state.db that failed for want of space, an I/O error or a lock (retried or answered 507)." },
  { key = "state_degraded", kind = "gauge_fn", name = "prisn_state_degraded",
    help = "1 while state.db cannot be written (the server is degraded), else 0.", option = "state_degraded" },
  { key = "state_pending_writes", kind = "gauge_fn", name = "prisn_state_pending_writes",
    help = "Records (reports, states, events) kept in memory until state.db can take them.",
    option = "state_pending_writes" },
}

-- prisn_jobs from a function returning { state = count }: every state of
-- `states` is reported (0 when absent), then any other the function knew.
local function by_state(count, states)
  return function()
    local counts = count()
    if counts == nil then return nil end
    local entries, seen = {}, {}
    for _, state in ipairs(states) do
      entries[#entries + 1] = { labels = { state = state }, value = counts[state] or 0 }
      seen[state] = true
    end
    local extra = {}
    for state in pairs(counts) do
      if not seen[state] then extra[#extra + 1] = state end
    end
    table.sort(extra)
    for _, state in ipairs(extra) do
      entries[#entries + 1] = { labels = { state = state }, value = counts[state] }
    end
    return entries
  end
end

--- The states prisn_instances always reports.
M.INSTANCE_STATES = { "starting", "running", "unhealthy", "restarting", "crash_loop_backoff", "draining",
  "stopped", "failed" }

--- Registers M.FAMILIES on `reg` and returns them by key. `opts`:
--   jobs_by_state  () -> { state = count } (e.g. a GROUP BY over jobs);
--                  without it prisn_jobs is not registered
--   instances_by_state  () -> { state = count }, for prisn_instances
--   job_states     the states always reported (default prisn.store.jobs.STATES)
function M.register(reg, opts)
  opts = opts or {}
  local families = {}
  for _, f in ipairs(M.FAMILIES) do
    if f.kind == "counter" then
      families[f.key] = reg:counter(f.name, f.help, f.labels)
    elseif f.kind == "gauge" then
      families[f.key] = reg:gauge(f.name, f.help, f.labels)
    elseif f.kind == "histogram" then
      families[f.key] = reg:histogram(f.name, f.help, f.labels, f.buckets)
    elseif f.kind == "gauge_fn" and opts[f.option] then
      local fn = opts[f.option]
      if f.key == "jobs" then
        fn = by_state(fn, opts.job_states or jobs.STATES)
      elseif f.key == "instances" then
        fn = by_state(fn, M.INSTANCE_STATES)
      end
      families[f.key] = reg:gauge_fn(f.name, f.help, fn, f.labels)
    end
  end
  return families
end

return M
