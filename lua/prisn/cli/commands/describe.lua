-- `prisn describe KIND NAME` (or KIND/NAME): everything about one resource,
-- for people: a deployment with its instances and events, a cron job with
-- its next fire times and last runs, a job, an instance, a secret's keys, a
-- token, the node. The kinds and their words are prisn.cli.kinds'.
local kinds = require("prisn.cli.kinds")

-- Runs the handler of another command (`prisn get job`, `prisn secret get`):
-- one rendering per object, wherever it is asked for.
local function delegate(ctx, ...)
  local cli = require("prisn.cli")
  local cmd = cli.root()
  for _, word in ipairs({ ... }) do cmd = cli.find(cmd, word) end
  return cmd.handler(ctx)
end

local function describe_one(kind_name)
  return function(ctx)
    local client = require("prisn.client")
    local kind = kinds.find(kind_name)
    local key = ctx.args.NAME or ctx.args.ID
    local ns = client.namespace(ctx)
    local items = client.connect(ctx):request("GET", kinds.list_path(kind, ns)).items or {}
    for _, item in ipairs(items) do
      if item[kind.key] == key then
        if kind_name == "instance" and ctx.globals.output == "text" then
          item.last_exit = require("prisn.cli.deployments").exit_text(item.last_exit)
        end
        ctx.out:emit(item)
        if kind_name == "node" and ctx.globals.output == "text" and not ctx.globals.quiet then
          io.stderr:write("Note: one node, this machine, until prisn runs as a cluster.\n")
        end
        return 0
      end
    end
    require("prisn.error").raise("not_found", string.format("%s '%s' not found%s", kind.noun, key,
      kind.namespaced and string.format(" in namespace '%s'", ns) or ""),
      { hint = string.format("'prisn get %s' lists them", kind.words[2]) })
  end
end

local function kind_command(kind_name, primary, decl)
  decl.name, decl.aliases = kinds.words(kind_name, primary)
  return decl
end
local function describe_cron(ctx)
  local client = require("prisn.client")
  local output = require("prisn.output")
  local name = ctx.args.NAME
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

local function name_arg(kind_name, summary, arg)
  return { { name = arg or "NAME", summary = summary, required = true,
    complete = kinds.completer(kind_name) } }
end

return {
  {
    name = "describe",
    summary = "Describe one resource in full: a deployment, cron job, job, instance, secret, token or node",
    description = "'prisn describe KIND NAME' (or KIND/NAME) shows everything about one\n"
      .. "object, for people; -o json / -o yaml give the API's object. The kinds\n"
      .. "and their words are those of 'prisn get': deploy, cron, job, instance,\n"
      .. "secret, token, node (and their plurals).",
    subcommands = {
      kind_command("deploy", "deploy", {
        summary = "Show a deployment: spec, revision, each instance, recent events",
        description = "Everything about deployment NAME: its template (script, runner, args,\n"
          .. "environment NAMES, secrets, limits, isolation, health check, restart\n"
          .. "policy), the current revision and its rollout state, each instance (pid,\n"
          .. "port, state, restarts, uptime, last exit, CPU and memory), and the last\n"
          .. "events of the deployment and its instances.",
        args = name_arg("deploy", "The deployment (deploy/NAME works too)"),
        examples = { { "prisn describe deploy api", "Everything about deployment api" },
          { "prisn describe deploy/api -o json", "As JSON" } },
        handler = function(ctx) return require("prisn.cli.deployments").describe(ctx) end,
      }),
      kind_command("cron", "cron", {
        summary = "A cron job: schedule, policies, next fire times and last runs",
        description = "Shows the cron job's normalized schedule and time zone, its script and\n"
          .. "policies, its next 5 fire times (ISO 8601, UTC) and its last runs with\n"
          .. "their state. With -o json or -o yaml: the API's object, with next_fires\n"
          .. "and last_runs.",
        args = name_arg("cron", "The cron job's name (cron/NAME works too)"),
        examples = { { "prisn describe cron backup", "Schedule, next runs and last runs of backup" } },
        handler = describe_cron,
      }),
      kind_command("job", "job", {
        summary = "A job: state, reason, exit code, times, script, arguments, environment names",
        description = "The same as 'prisn get job ID': everything recorded about the job. Any\n"
          .. "unique prefix of the id will do.",
        args = name_arg("job", "The job's id, or a unique prefix of it", "ID"),
        examples = { { "prisn describe job 01kaxq3v2m7r", "Everything about one job" } },
        handler = function(ctx) return delegate(ctx, "get", "jobs") end,
      }),
      kind_command("instance", "instance", {
        summary = "An instance: state, revision, pid, port, restarts, last exit, CPU and memory",
        description = "One instance of a deployment (web-1) as 'prisn get instances' knows it,\n"
          .. "field by field.",
        args = name_arg("instance", "The instance, like web-1"),
        examples = { { "prisn describe instance web-1", "One instance of web" } },
        handler = describe_one("instance"),
      }),
      kind_command("secret", "secret", {
        summary = "A secret: its keys and times (never its values)",
        description = "The same as 'prisn secret get NAME' without --reveal.",
        args = name_arg("secret", "The secret's name"),
        examples = { { "prisn describe secret db", "The keys of secret db" } },
        handler = function(ctx) return delegate(ctx, "secret", "get") end,
      }),
      kind_command("token", "token", {
        summary = "An API token: name, role, namespaces, expiry, last use (admin only)",
        description = "Everything about one token but the token itself, which is shown only\n"
          .. "once, when created.",
        args = name_arg("token", "The token's id", "ID"),
        examples = { { "prisn describe token 01kaxq3v2m7r", "One token" } },
        handler = describe_one("token"),
      }),
      kind_command("node", "node", {
        summary = "A node: health, capacity and usage (one node, this machine, for now)",
        description = "Until prisn runs as a cluster there is one node: the machine the server\n"
          .. "runs on ('prisn get nodes' names it).",
        args = name_arg("node", "The node's name"),
        examples = { { "prisn describe node $(hostname)", "This machine as a node" } },
        handler = describe_one("node"),
      }),
    },
  },
}
