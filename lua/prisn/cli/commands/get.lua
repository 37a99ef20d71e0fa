-- `prisn get`: show recorded resources. `prisn get jobs` lists jobs, newest
-- first; `prisn get job ID` shows one (a unique prefix of the id will do).
-- More kinds (deployments, cronjobs, ...) join as further subcommands.
--
-- These commands only read: on a machine where nothing ran yet they create
-- neither PRISN_HOME nor state.db (see prisn.cli.jobs).
local errors = require("prisn.error")
local clock = require("prisn.clock")
local job_cli = require("prisn.cli.jobs")

local LIST_COLUMNS = {
  { key = "id", header = "ID" }, { key = "state", header = "STATE" },
  { key = "reason", header = "REASON" }, { key = "exit", header = "EXIT" },
  { key = "runner", header = "RUNNER" }, { key = "script", header = "SCRIPT" },
  { key = "started", header = "STARTED" }, { key = "duration", header = "DURATION" },
}

local function list_jobs(ctx)
  local jobs = require("prisn.store.jobs")
  local output = require("prisn.output")
  local limit = ctx.flags.limit
  if limit < 0 then errors.usage("--limit must be 0 (no limit) or more, got " .. limit) end
  local ns = job_cli.namespace(ctx)
  local remote = job_cli.remote(ctx)
  local db = not remote and job_cli.open_store() or nil
  local list = {}
  if remote then
    local query = { "limit=" .. limit }
    if ctx.flags.state then query[#query + 1] = "state=" .. ctx.flags.state end
    if ctx.flags.script then query[#query + 1] = "script=" .. ctx.flags.script:gsub("[^%w._/-]", function(c)
      return string.format("%%%02X", c:byte()) end) end
    if ctx.flags.cron then query[#query + 1] = "cron=" .. ctx.flags.cron:gsub("[^%w._-]", function(c)
      return string.format("%%%02X", c:byte()) end) end
    local path = ctx.flags.all_namespaces and "/api/v1/jobs" or ("/api/v1/namespaces/" .. ns .. "/jobs")
    for i, p in ipairs(remote:request("GET", path .. "?" .. table.concat(query, "&")).items or {}) do
      list[i] = job_cli.from_public(p)
    end
  elseif db then
    local ok, result = pcall(jobs.list, db, { namespace = ns, all_namespaces = ctx.flags.all_namespaces,
      state = ctx.flags.state, script = ctx.flags.script, cron = ctx.flags.cron, limit = limit })
    db:close()
    if not ok then error(result, 0) end
    list = result
  end
  local now = clock.now_ms()
  if ctx.globals.output ~= "text" then
    local public = output.array({})
    for i, job in ipairs(list) do public[i] = jobs.to_public(job, now) end
    ctx.out:emit(public)
    return 0
  end
  local rows, columns = output.array({}), LIST_COLUMNS
  for i, job in ipairs(list) do rows[i] = job_cli.job_row(job, now) end
  if ctx.flags.all_namespaces then
    columns = { { key = "namespace", header = "NAMESPACE" }, table.unpack(LIST_COLUMNS) }
  end
  local empty
  if not db and not remote then
    empty = "No jobs have been recorded yet. Run one with 'prisn run SCRIPT'."
  elseif ctx.flags.all_namespaces then
    empty = "No jobs found."
  else
    empty = string.format("No jobs found in namespace '%s'.", ns)
  end
  ctx.out:emit(rows, { columns = columns, empty = empty })
  return 0
end

local function show_job(ctx)
  local jobs = require("prisn.store.jobs")
  local remote = job_cli.remote(ctx)
  local job
  if remote then
    job = job_cli.from_public(remote:request("GET", string.format("/api/v1/namespaces/%s/jobs/%s",
      job_cli.namespace(ctx), ctx.args.ID)))
  else
    job = job_cli.load_job(job_cli.namespace(ctx), ctx.args.ID)
  end
  local now = clock.now_ms()
  local public = jobs.to_public(job, now)
  if ctx.globals.output ~= "text" then
    ctx.out:emit(public)
    return 0
  end
  -- For people: the duration as "4.2s" rather than milliseconds.
  local fields = {}
  for i, key in ipairs(jobs.PUBLIC_FIELDS) do fields[i] = key == "duration_ms" and "duration" or key end
  public.duration = job_cli.duration_text(jobs.duration_ms(job, now)) or require("prisn.output").null
  public.duration_ms = nil
  ctx.out:emit(public, { fields = fields })
  return 0
end

local function list_cron(ctx)
  local client = require("prisn.client")
  local output = require("prisn.output")
  local res = client.connect(ctx):request("GET", string.format("/api/v1/namespaces/%s/cronjobs",
    client.namespace(ctx)))
  local items = res.items or {}
  if ctx.globals.output ~= "text" then
    ctx.out:emit(output.array(items))
    return 0
  end
  local rows = output.array({})
  for i, c in ipairs(items) do
    rows[i] = { name = c.name, schedule = c.schedule, timezone = type(c.timezone) == "string" and c.timezone or "local",
      script = c.script, concurrency = c.concurrency, suspended = c.suspended and "yes" or "no",
      next = c.next_fire, last = c.last_fire }
  end
  ctx.out:emit(rows, { columns = { { key = "name", header = "NAME" }, { key = "schedule", header = "SCHEDULE" },
    { key = "timezone", header = "TZ" }, { key = "script", header = "SCRIPT" },
    { key = "concurrency", header = "CONCURRENCY" },
    { key = "suspended", header = "SUSPENDED" }, { key = "next", header = "NEXT RUN" },
    { key = "last", header = "LAST RUN" } },
    empty = string.format("No cron jobs in namespace '%s'. Create one with 'prisn cron SCRIPT \"EXPR\"'.",
      client.namespace(ctx)) })
  return 0
end

return {
  {
    name = "get",
    summary = "Show recorded resources: jobs, cron jobs, deployments, instances, nodes",
    description = "Lists or shows what prisn has recorded in its state database.\n"
      .. "'prisn get jobs' lists jobs newest first; 'prisn get job ID' shows one.",
    subcommands = {
      {
        name = "jobs",
        summary = "List jobs, newest first",
        description = "Lists the jobs of the namespace (-n, default \"default\"), newest first:\n"
          .. "every 'prisn run', finished or not. STARTED is how long ago the job\n"
          .. "started; DURATION how long it ran (so far, for a running job); EXIT the\n"
          .. "exit code, or the signal that ended it. With -o json or -o yaml the result\n"
          .. "is a list of job objects with the fields of 'prisn get job'. On a machine\n"
          .. "where nothing ran yet the list is empty and nothing is created.",
        flags = {
          { name = "state", type = "string", values = { "pending", "queued", "running", "succeeded", "failed" },
            placeholder = "STATE", summary = "Only jobs in this state: pending, running, succeeded or failed" },
          { name = "script", type = "string", placeholder = "NAME",
            summary = "Only jobs whose script path contains NAME (e.g. its file name)" },
          { name = "cron", type = "string", placeholder = "NAME",
            summary = "Only the runs of cron job NAME" },
          { name = "limit", type = "int", default = 50, placeholder = "N",
            summary = "Show at most N jobs (0 for all)" },
          { name = "all-namespaces", short = "A", type = "bool",
            summary = "List the jobs of every namespace" },
        },
        examples = {
          { "prisn get jobs", "The latest jobs of the default namespace" },
          { "prisn get jobs --state failed --script backup.py", "Failed runs of backup.py" },
          { "prisn get jobs -A -o json", "Jobs of every namespace, as JSON" },
          { "prisn get jobs --cron backup", "The kept runs of cron job backup" },
        },
        handler = list_jobs,
      },
      {
        name = "job",
        summary = "Show one job: state, exit code, times, script and arguments",
        description = "Shows everything recorded about job ID: its state (pending, running,\n"
          .. "succeeded, failed), why it ended (reason: exited, timeout, killed,\n"
          .. "failed_to_start, interrupted), the exit code or signal, the script,\n"
          .. "runner, arguments, working directory, the NAMES of the environment\n"
          .. "variables it was given (never their values), and when it was created,\n"
          .. "started and finished (ISO 8601, UTC). Any unique prefix of the id will\n"
          .. "do. Exits 1 when no job matches.",
        args = {
          { name = "ID", summary = "The job's id, or a unique prefix of it", required = true,
            complete = function(partial) return job_cli.complete_job_id(partial) end },
        },
        examples = {
          { "prisn get job 01kaxq3v2m7r", "Show one job" },
          { "prisn get job 01kax -o json", "The job whose id starts with 01kax, as JSON" },
        },
        handler = show_job,
      },
      {
        name = "cron",
        aliases = { "cronjobs", "cronjob", "crons" },
        summary = "List cron jobs: schedule, script, next and last run",
        description = "Lists the cron jobs of the namespace (-n) from the server, by name:\n"
          .. "the normalized schedule and its time zone, the script, the concurrency\n"
          .. "policy, whether it is suspended, and its next and last run (UTC). With\n"
          .. "-o json or -o yaml: the API's cron job objects.",
        examples = { { "prisn get cron", "The cron jobs of the default namespace" },
          { "prisn get cronjobs -o json", "As JSON" } },
        handler = list_cron,
      },
      {
        name = "deploy",
        aliases = { "deployments", "deployment", "deploys" },
        summary = "List deployments: ready instances, revision, rollout state, port",
        description = "Lists the deployments of the namespace (-n) from the server: READY is\n"
          .. "healthy instances of the current revision over the replicas wanted,\n"
          .. "ROLLOUT the state of the current revision (rolling_out, active, failed,\n"
          .. "rolled_back). With -o json or -o yaml: the API's deployment objects,\n"
          .. "instances included.",
        examples = { { "prisn get deploy", "The deployments of the default namespace" },
          { "prisn get deployments -n shop -o json", "Those of namespace shop, as JSON" } },
        handler = function(ctx) return require("prisn.cli.deployments").list(ctx) end,
      },
      {
        name = "instances",
        aliases = { "instance", "inst" },
        summary = "List the instances of every deployment, or of one",
        description = "One line per instance: state (starting, running, unhealthy, restarting,\n"
          .. "crash_loop_backoff, draining, stopped, failed), revision, pid, internal\n"
          .. "port, restarts, uptime, how it last exited, and CPU time and memory from\n"
          .. "its cgroup (when it has limits).",
        args = { { name = "NAME", summary = "Only this deployment's instances" } },
        examples = { { "prisn get instances", "Every instance in the namespace" },
          { "prisn get instances api", "The instances of deployment api" } },
        handler = function(ctx) return require("prisn.cli.deployments").instances(ctx) end,
      },
      {
        name = "nodes",
        aliases = { "node" },
        summary = "List the cluster's nodes: health, capacity and usage",
        description = "Asks the server for its nodes (a single node for now): name, role,\n"
          .. "health, CPUs, memory and disk, load and memory in use.",
        examples = { { "prisn get nodes", "This node and how busy it is" },
          { "prisn get nodes -o json", "As JSON, sizes in bytes" } },
        handler = function(ctx)
          local res = require("prisn.client").connect(ctx):request("GET", "/api/v1/nodes")
          local items = res.items or {}
          if ctx.globals.output ~= "text" then
            ctx.out:emit(require("prisn.output").array(items))
            return 0
          end
          local size = require("prisn.units").format_size
          local rows = {}
          for i, n in ipairs(items) do
            rows[i] = { name = n.name, role = n.role, health = n.health, cpus = n.capacity.cpus,
              memory = size(n.usage.memory_used_bytes) .. "/" .. size(n.capacity.memory_bytes),
              load = string.format("%.2f", n.usage.load1),
              disk_free = size(n.usage.disk_free_bytes) }
          end
          ctx.out:emit(rows, { columns = { { key = "name", header = "NAME" }, { key = "role", header = "ROLE" },
            { key = "health", header = "HEALTH" }, { key = "cpus", header = "CPUS" },
            { key = "memory", header = "MEMORY" }, { key = "load", header = "LOAD" },
            { key = "disk_free", header = "DISK FREE" } } })
          return 0
        end,
      },
    },
  },
}
