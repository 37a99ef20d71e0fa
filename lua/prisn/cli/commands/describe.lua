-- `prisn describe KIND NAME`: everything about one resource, for people:
-- for a cron job its schedule, policies, next fire times and last runs.
local function describe_cron(ctx)
  local client = require("prisn.client")
  local output = require("prisn.output")
  local name = ctx.args.NAME:match("^cron/(.+)$") or ctx.args.NAME
  local res = client.connect(ctx):request("GET", string.format("/api/v1/namespaces/%s/cronjobs/%s",
    client.namespace(ctx), name))
  if ctx.globals.output ~= "text" then
    ctx.out:emit(res)
    return 0
  end
  if res.timezone == output.null then res.timezone = "(the server's local zone)" end
  local runs = res.last_runs or {}
  local next_fires = res.next_fires or {}
  res.last_runs, res.next_fires = nil, nil
  res.run_as = require("prisn.cli.deployments").run_as_text(res.run_as)
  ctx.out:emit(res, { fields = { "name", "namespace", "schedule", "timezone", "script", "bundle", "runner",
    "args", "env_keys", "secrets", "isolation", "run_as", "concurrency", "catch_up", "keep_succeeded",
    "keep_failed", "suspended", "next_fire", "last_fire", "created_at", "updated_at" } })
  io.stdout:write("\nNext runs:\n")
  if #next_fires == 0 then io.stdout:write("  (none: ", res.suspended and "suspended" or "never again", ")\n") end
  for _, t in ipairs(next_fires) do io.stdout:write("  ", t, "\n") end
  io.stdout:write("\nLast runs:\n")
  if #runs == 0 then
    io.stdout:write("  (none yet)\n")
  else
    local rows = output.array({})
    for i, r in ipairs(runs) do
      rows[i] = { id = r.id, state = r.state, reason = r.reason, exit = r.exit_code,
        created = r.created_at,
        duration = type(r.duration_ms) == "number" and string.format("%.1fs", r.duration_ms / 1000)
          or output.null }
    end
    io.stdout:write(output.render(rows, "text", { columns = {
      { key = "id", header = "ID" }, { key = "state", header = "STATE" }, { key = "reason", header = "REASON" },
      { key = "exit", header = "EXIT" }, { key = "created", header = "CREATED" },
      { key = "duration", header = "DURATION" } } }))
  end
  return 0
end

return {
  {
    name = "describe",
    summary = "Describe a resource in full: a cron job",
    subcommands = {
      {
        name = "deploy",
        aliases = { "deployment", "deployments" },
        summary = "Show a deployment: spec, revision, each instance, recent events",
        description = "Everything about deployment NAME: its template (script, runner, args,\n"
          .. "environment NAMES, secrets, limits, isolation, health check, restart\n"
          .. "policy), the current revision and its rollout state, each instance (pid,\n"
          .. "port, state, restarts, uptime, last exit, CPU and memory), and the last\n"
          .. "events of the deployment and its instances.",
        args = { { name = "NAME", summary = "The deployment (deploy/NAME works too)", required = true } },
        examples = { { "prisn describe deploy api", "Everything about deployment api" },
          { "prisn describe deploy api -o json", "As JSON" } },
        handler = function(ctx) return require("prisn.cli.deployments").describe(ctx) end,
      },
      {
        name = "cron",
        aliases = { "cronjob" },
        summary = "A cron job: schedule, policies, next fire times and last runs",
        description = "Shows the cron job's normalized schedule and time zone, its script and\n"
          .. "policies, its next 5 fire times (ISO 8601, UTC) and its last runs with\n"
          .. "their state. With -o json or -o yaml: the API's object, with next_fires\n"
          .. "and last_runs.",
        args = { { name = "NAME", summary = "The cron job's name (cron/NAME works too)", required = true } },
        examples = { { "prisn describe cron backup", "Schedule, next runs and last runs of backup" } },
        handler = describe_cron,
      },
    },
  },
}
