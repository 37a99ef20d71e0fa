-- `prisn get KIND [NAME]`: show recorded resources, kubectl's way. Every
-- kind of prisn.cli.kinds is a subcommand under all of its words (`get
-- deploy`, `get deployments`, `get deploy/web`): without NAME a list, with
-- NAME that one object. `-o wide` adds columns; `-w`/`--watch` redraws the
-- list when it changes until Ctrl-C (exit 0).
--
-- Jobs are read from this machine's state database when the context is
-- local: on a machine where nothing ran yet they create neither PRISN_HOME
-- nor state.db (see prisn.cli.jobs). Everything else asks the server.
local errors = require("prisn.error")
local clock = require("prisn.clock")
local job_cli = require("prisn.cli.jobs")
local output = require("prisn.output")
local kinds = require("prisn.cli.kinds")

local WATCH_POLL_MS = 2000

local LIST_COLUMNS = {
  { key = "id", header = "ID" }, { key = "state", header = "STATE" },
  { key = "reason", header = "REASON" }, { key = "exit", header = "EXIT" },
  { key = "runner", header = "RUNNER" }, { key = "script", header = "SCRIPT" },
  { key = "started", header = "STARTED" }, { key = "duration", header = "DURATION" },
  { key = "created_at", header = "CREATED", wide = true }, { key = "cron", header = "CRON", wide = true },
  { key = "cwd", header = "CWD", wide = true },
}

-- The columns to show: those marked wide only with -o wide.
local function shown(ctx, columns)
  return output.visible_columns(columns, ctx.globals.wide)
end

-- "No jobs found in namespace 'x' with --state failed, --script backup.py."
local function none_found(what, ns, all, filters)
  local where = all and "in any namespace" or string.format("in namespace '%s'", ns)
  local with = {}
  for _, f in ipairs(filters) do
    if f[2] ~= nil and f[2] ~= false then with[#with + 1] = f[1] .. " " .. tostring(f[2]) end
  end
  return string.format("No %s found %s%s.", what, where, #with > 0 and (" with " .. table.concat(with, ", ")) or "")
end

local function escape(text)
  return (tostring(text):gsub("[^%w._/-]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function list_jobs(ctx)
  local jobs = require("prisn.store.jobs")
  local limit = ctx.flags.limit
  if limit < 0 then errors.usage("--limit must be 0 (no limit) or more, got " .. limit) end
  local ns = job_cli.namespace(ctx)
  local remote = job_cli.remote(ctx)
  local db = not remote and job_cli.open_store() or nil
  local list = {}
  if remote then
    local query = { "limit=" .. limit }
    if ctx.flags.state then query[#query + 1] = "state=" .. ctx.flags.state end
    if ctx.flags.script then query[#query + 1] = "script=" .. escape(ctx.flags.script) end
    if ctx.flags.cron then query[#query + 1] = "cron=" .. escape(ctx.flags.cron) end
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
  for i, job in ipairs(list) do
    rows[i] = job_cli.job_row(job, now)
    rows[i].created_at, rows[i].cron, rows[i].cwd = clock.iso_time(job.created_at), job.cron, job.cwd
  end
  if ctx.flags.all_namespaces then
    columns = { { key = "namespace", header = "NAMESPACE" }, table.unpack(LIST_COLUMNS) }
  end
  local empty
  if not db and not remote then
    empty = "No jobs have been recorded yet. Run one with 'prisn run SCRIPT'."
  else
    empty = none_found("jobs", ns, ctx.flags.all_namespaces,
      { { "--state", ctx.flags.state }, { "--script", ctx.flags.script }, { "--cron", ctx.flags.cron } })
  end
  ctx.out:emit(rows, { columns = shown(ctx, columns), empty = empty })
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

local function jobs_handler(ctx)
  if ctx.args.ID then return show_job(ctx) end
  return list_jobs(ctx)
end

-- The API's objects of a kind, or the one named NAME (a not_found error
-- naming the namespace otherwise).
local function fetch(ctx, kind_name, name)
  local client = require("prisn.client")
  local kind = kinds.find(kind_name)
  local ns = client.namespace(ctx)
  local c = client.connect(ctx)
  local items = c:request("GET", kinds.list_path(kind, ns)).items or {}
  if not name then return items, ns end
  for _, item in ipairs(items) do
    if item[kind.key] == name then return { item }, ns end
  end
  errors.raise("not_found", string.format("%s '%s' not found%s", kind.noun, name,
    kind.namespaced and string.format(" in namespace '%s'", ns) or ""),
    { hint = string.format("'prisn get %s' lists them%s", kind.words[2],
      kind.namespaced and " (-n NS for another namespace)" or "") })
end

-- "succeeded (exit 0)", "failed (exit 3)", "running", or "-".
local function run_result(run)
  if type(run) ~= "table" then return "-" end
  local text = tostring(run.state)
  if type(run.exit_code) == "number" then
    text = text .. " (exit " .. math.tointeger(run.exit_code) .. ")"
  elseif type(run.reason) == "string" and run.state == "failed" then
    text = text .. " (" .. run.reason .. ")"
  end
  return text
end

local CRON_COLUMNS = {
  { key = "name", header = "NAME" }, { key = "schedule", header = "SCHEDULE" },
  { key = "timezone", header = "TZ" }, { key = "script", header = "SCRIPT" },
  { key = "concurrency", header = "CONCURRENCY" }, { key = "suspended", header = "SUSPENDED" },
  { key = "next", header = "NEXT RUN" }, { key = "last", header = "LAST RUN" },
  { key = "result", header = "LAST RESULT" }, { key = "last_job", header = "LAST JOB", wide = true },
}

-- -A (every namespace the token may see) goes with no NAME.
local function all_namespaces(ctx, name)
  if ctx.flags.all_namespaces and name then
    errors.usage("-A lists every namespace; it takes no NAME", "prisn get cron NAME -n NS shows one")
  end
  return ctx.flags.all_namespaces
end

-- The columns with NAMESPACE first (-A).
local function with_namespace(columns)
  local out = { { key = "namespace", header = "NAMESPACE" } }
  for _, c in ipairs(columns) do out[#out + 1] = c end
  return out
end

local function list_cron(ctx)
  local items, ns
  if all_namespaces(ctx, ctx.args.NAME) then
    local client = require("prisn.client")
    items = client.connect(ctx):request("GET", "/api/v1/cronjobs").items or {}
  else
    items, ns = fetch(ctx, "cron", ctx.args.NAME)
  end
  if ctx.globals.output ~= "text" then
    ctx.out:emit(ctx.args.NAME and items[1] or output.array(items))
    return 0
  end
  local rows = output.array({})
  for i, c in ipairs(items) do
    local run = type(c.last_run) == "table" and c.last_run or nil
    rows[i] = { namespace = c.namespace, name = c.name, schedule = c.schedule,
      timezone = type(c.timezone) == "string" and c.timezone or "local",
      script = c.script, concurrency = c.concurrency, suspended = c.suspended and "yes" or "no",
      next = c.next_fire, last = run and run.created_at or c.last_fire, result = run_result(run),
      last_job = run and run.id or "-" }
  end
  local columns = shown(ctx, CRON_COLUMNS)
  ctx.out:emit(rows, { columns = ns and columns or with_namespace(columns),
    empty = ns and string.format("No cron jobs found in namespace '%s'. "
      .. "Create one with 'prisn cron SCRIPT \"EXPR\"'.", ns)
      or "No cron jobs found in any namespace this token may see." })
  return 0
end

local function list_secrets(ctx)
  local cli = require("prisn.cli")
  local secret = cli.find(cli.root(), "secret")
  if ctx.args.NAME then return cli.find(secret, "get").handler(ctx) end
  return cli.find(secret, "list").handler(ctx)
end

local TOKEN_COLUMNS = {
  { key = "id", header = "ID" }, { key = "name", header = "NAME" }, { key = "role", header = "ROLE" },
  { key = "namespaces", header = "NAMESPACES" }, { key = "state", header = "STATE" },
  { key = "expires", header = "EXPIRES" }, { key = "last_used", header = "LAST USED" },
  { key = "created", header = "CREATED", wide = true },
}

local function list_tokens(ctx)
  local items = fetch(ctx, "token", ctx.args.ID)
  if ctx.globals.output ~= "text" then
    ctx.out:emit(ctx.args.ID and items[1] or output.array(items))
    return 0
  end
  local rows = output.array({})
  for i, t in ipairs(items) do
    rows[i] = { id = t.id, name = t.name, role = t.role, namespaces = table.concat(t.namespaces, ","),
      expires = t.expires_at, last_used = t.last_used_at, created = t.created_at,
      state = t.revoked_at ~= output.null and "revoked" or "active" }
  end
  ctx.out:emit(rows, { columns = shown(ctx, TOKEN_COLUMNS), empty = "No tokens found." })
  return 0
end

local NODE_COLUMNS = {
  { key = "name", header = "NAME" }, { key = "role", header = "ROLE" }, { key = "health", header = "HEALTH" },
  { key = "cpus", header = "CPUS" }, { key = "memory", header = "MEMORY" }, { key = "load", header = "LOAD" },
  { key = "disk_free", header = "DISK FREE" },
}

local function list_nodes(ctx)
  local items = fetch(ctx, "node", ctx.args.NAME)
  if ctx.globals.output ~= "text" then
    ctx.out:emit(ctx.args.NAME and items[1] or output.array(items))
    return 0
  end
  local size = require("prisn.units").format_size
  local rows = output.array({})
  for i, n in ipairs(items) do
    rows[i] = { name = n.name, role = n.role, health = n.health, cpus = n.capacity.cpus,
      memory = size(n.usage.memory_used_bytes) .. "/" .. size(n.capacity.memory_bytes),
      load = string.format("%.2f", n.usage.load1), disk_free = size(n.usage.disk_free_bytes) }
  end
  ctx.out:emit(rows, { columns = shown(ctx, NODE_COLUMNS) })
  if not ctx.globals.quiet and not ctx.watching then
    io.stderr:write("Note: one node, this machine, until prisn runs as a cluster.\n")
  end
  return 0
end

-- Runs `fn` every WATCH_POLL_MS and writes its output when it changed: on
-- a terminal the screen is redrawn, elsewhere each version follows the
-- last (with -o json/yaml one document per line for JSON). Ctrl-C ends it
-- with exit 0.
local function watch(ctx, fn)
  local uv = require("luv")
  local async = require("prisn.async")

  local tty = ctx.globals.output == "text" and require("prisn.core.sys").isatty(1)
  local stopped = false
  ctx.watching = true
  async.main(function()
    local sig = uv.new_signal()
    sig:start("sigint", function() stopped = true end)
    local last
    local ok, err = pcall(function()
      while not stopped do
        local parts = {}
        local saved = ctx.out
        ctx.out = output.writer({ format = ctx.globals.output, color = ctx.color,
          stdout = { write = function(_, s) parts[#parts + 1] = s end } })
        local done, failure = pcall(fn, ctx)
        ctx.out = saved
        if not done then error(failure, 0) end
        local text = table.concat(parts)
        if ctx.globals.output == "json" then text = text:gsub("\n%s*", "") .. "\n" end
        if ctx.globals.output == "yaml" then text = "---\n" .. text end
        if text ~= last then
          if tty then io.stdout:write("\27[H\27[2J") elseif last and ctx.globals.output == "text" then
            io.stdout:write("\n") end
          io.stdout:write(text)
          io.stdout:flush()
          last = text
        end
        local waited = 0
        while not stopped and waited < WATCH_POLL_MS do
          async.sleep(100)
          waited = waited + 100
        end
      end
    end)
    sig:close()
    if not ok then error(err, 0) end
  end)
  return 0
end

-- Every get subcommand takes -w and runs through `watchable`.
local WATCH_FLAG = { name = "watch", short = "w", type = "bool",
  summary = "Redraw when the result changes, every 2s, until Ctrl-C" }

local function watchable(fn)
  return function(ctx)
    if ctx.flags.watch then return watch(ctx, fn) end
    return fn(ctx)
  end
end

local function with_watch(flags)
  local out = { WATCH_FLAG }
  for i, f in ipairs(flags or {}) do out[i + 1] = f end
  return out
end

-- One subcommand per kind, named `primary`, its other words as aliases.
local function kind_command(kind_name, primary, decl)
  decl.name, decl.aliases = kinds.words(kind_name, primary)
  decl.flags = with_watch(decl.flags)
  decl.handler = watchable(decl.handler)
  return decl
end

local function name_arg(kind_name, summary)
  return { { name = kind_name == "job" and "ID" or (kind_name == "token" and "ID" or "NAME"), summary = summary,
    complete = kinds.completer(kind_name) } }
end

return {
  {
    name = "get",
    summary = "List or show resources: deployments, cron jobs, jobs, instances, secrets, tokens, nodes",
    description = "'prisn get KIND' lists the objects of a kind in the namespace (-n);\n"
      .. "'prisn get KIND NAME' (or KIND/NAME) shows that one. The kinds, with the\n"
      .. "other words that name them (every verb takes the same): deploy\n"
      .. "(deployment, deployments), cron (cronjob, cronjobs), job (jobs), instance\n"
      .. "(instances, inst), secret (secrets), token (tokens), node (nodes).\n"
      .. "-o wide adds columns, -o json / -o yaml give the API's objects, -w\n"
      .. "redraws when the result changes until Ctrl-C.",
    subcommands = {
      kind_command("job", "jobs", {
        summary = "List jobs, newest first, or show one: state, exit code, times, script and arguments",
        description = "Lists the jobs of the namespace (-n, default \"default\"), newest first:\n"
          .. "every 'prisn run', finished or not. STARTED is how long ago the job\n"
          .. "started; DURATION how long it ran (so far, for a running job); EXIT the\n"
          .. "exit code, or the signal that ended it. On a machine where nothing ran\n"
          .. "yet the list is empty and nothing is created.\n"
          .. "\n"
          .. "With ID (any unique prefix of it) shows everything recorded about that\n"
          .. "job: its state (pending, running, succeeded, failed), why it ended\n"
          .. "(reason: exited, timeout, killed, failed_to_start, interrupted), the exit\n"
          .. "code or signal, the script, runner, arguments, working directory, the\n"
          .. "NAMES of the environment variables it was given (never their values),\n"
          .. "and when it was created, started and finished (ISO 8601, UTC). Exits 1\n"
          .. "when no job matches.",
        args = name_arg("job", "A job's id, or a unique prefix of it: show that job"),
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
          { "prisn get job 01kaxq3v2m7r", "Show one job" },
          { "prisn get job/01kax -o json", "The job whose id starts with 01kax, as JSON" },
        },
        handler = jobs_handler,
      }),
      kind_command("cron", "cron", {
        summary = "List cron jobs: schedule, script, next run, last run and its result",
        description = "Lists the cron jobs of the namespace (-n) from the server, by name:\n"
          .. "the normalized schedule and its time zone, the script, the concurrency\n"
          .. "policy, whether it is suspended, its next run and its last run (UTC) with\n"
          .. "that run's result (succeeded, failed and the exit code, running). -o wide\n"
          .. "adds the last run's job id. With -o json or -o yaml: the API's cron job\n"
          .. "objects (last_run included).",
        args = name_arg("cron", "Only this cron job"),
        flags = {
          { name = "all-namespaces", short = "A", type = "bool",
            summary = "List the cron jobs of every namespace the token may see (a NAMESPACE column first)" },
        },
        examples = { { "prisn get cron", "The cron jobs of the default namespace" },
          { "prisn get cron -A", "Those of every namespace" },
          { "prisn get cron backup -o wide", "One, with every column" },
          { "prisn get cronjobs -o json", "As JSON" } },
        handler = list_cron,
      }),
      kind_command("deploy", "deploy", {
        summary = "List deployments: ready instances, revision, rollout state, port",
        description = "Lists the deployments of the namespace (-n) from the server: READY is\n"
          .. "healthy instances of the current revision over the replicas wanted,\n"
          .. "ROLLOUT the state of the current revision (rolling_out, active, failed,\n"
          .. "rolled_back). -o wide adds the strategy, health check, restart policy and\n"
          .. "autoscaling. With -o json or -o yaml: the API's deployment objects,\n"
          .. "instances included.",
        args = name_arg("deploy", "Only this deployment"),
        flags = {
          { name = "all-namespaces", short = "A", type = "bool",
            summary = "List the deployments of every namespace the token may see (a NAMESPACE column first)" },
        },
        examples = { { "prisn get deploy", "The deployments of the default namespace" },
          { "prisn get deploy -A", "Those of every namespace" },
          { "prisn get deploy web", "Only web" },
          { "prisn get deployments -n shop -o json", "Those of namespace shop, as JSON" },
          { "prisn get deploy -w", "Watch them change (Ctrl-C ends)" } },
        handler = function(ctx) return require("prisn.cli.deployments").list(ctx) end,
      }),
      kind_command("instance", "instances", {
        summary = "List the instances of every deployment, of one, or one instance",
        description = "One line per instance: state (starting, running, unhealthy, restarting,\n"
          .. "crash_loop_backoff, draining, stopped, failed), revision, pid, internal\n"
          .. "port, restarts, uptime, how it last exited, and CPU time and memory from\n"
          .. "its cgroup (when it has limits). NAME is an instance (web-1) or a\n"
          .. "deployment (web: its instances).",
        args = name_arg("instance", "An instance (web-1), or a deployment: its instances"),
        examples = { { "prisn get instances", "Every instance in the namespace" },
          { "prisn get instances api", "The instances of deployment api" },
          { "prisn get inst api-1 -o json", "One instance, as JSON" } },
        handler = function(ctx) return require("prisn.cli.deployments").instances(ctx) end,
      }),
      kind_command("secret", "secrets", {
        summary = "List secrets (names and keys, never values), or show one",
        description = "The secrets of the namespace (-n) with their keys; with NAME that one\n"
          .. "('prisn secret get NAME --reveal' shows the values).",
        args = name_arg("secret", "Only this secret"),
        examples = { { "prisn get secrets", "The secrets of the default namespace" },
          { "prisn get secret db -o json", "One, as JSON (keys, no values)" } },
        handler = list_secrets,
      }),
      kind_command("token", "tokens", {
        summary = "List API tokens (admin only), or show one",
        description = "Every token: id, name, role, namespaces, whether it is revoked, when it\n"
          .. "expires and was last used. The token itself is shown only once, when\n"
          .. "created. Needs an admin token.",
        args = name_arg("token", "Only the token with this id"),
        examples = { { "prisn get tokens", "Every token" }, { "prisn get tokens -o wide", "With creation times" } },
        handler = list_tokens,
      }),
      kind_command("node", "nodes", {
        summary = "List the cluster's nodes: health, capacity and usage (one node, this machine, for now)",
        description = "Asks the server for its nodes: name, role, health, CPUs, memory and\n"
          .. "disk, load and memory in use. Until prisn runs as a cluster there is one\n"
          .. "node, the machine the server runs on.",
        args = name_arg("node", "Only this node"),
        examples = { { "prisn get nodes", "This node and how busy it is" },
          { "prisn get nodes -o json", "As JSON, sizes in bytes" } },
        handler = list_nodes,
      }),
    },
  },
}
