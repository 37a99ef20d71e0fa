-- `prisn rollout status|history|undo NAME`: a deployment's revisions —
-- following the current one until it serves (an exit code for scripts),
-- listing them, and going back to an earlier one (its template becomes a
-- new revision, rolled out like any deploy). NAME may be written
-- deploy/NAME or `deploy NAME` (prisn.cli.kinds).
local errors = require("prisn.error")
local kinds = require("prisn.cli.kinds")

local ALLOWED = { "deploy" }

local function deployments_cli() return require("prisn.cli.deployments") end

local TARGET_ARGS = {
  { name = "TARGET", summary = "The deployment: NAME, deploy/NAME, or 'deploy' followed by NAME", required = true,
    complete = kinds.target_completer(ALLOWED) },
  { name = "NAME", summary = "The deployment's name, after the word deploy",
    complete = kinds.second_completer("TARGET") },
}

-- The handlers of prisn.cli.deployments read ctx.args.NAME: resolve the
-- target words into it first.
local function with_name(verb, fn)
  return function(ctx)
    local _, name = kinds.target("rollout " .. verb, ctx.args.TARGET, ctx.args.NAME, ALLOWED)
    ctx.args.NAME = name
    return fn(ctx)
  end
end

local function status(ctx)
  local client = require("prisn.client")
  local c = client.connect(ctx)
  local ns = client.namespace(ctx)
  local name = ctx.args.NAME
  local d = c:request("GET", deployments_cli().path_in(ns, name))
  local outcome
  outcome, d = deployments_cli().follow_rollout(ctx, c, ns, name, d.revision, ctx.flags.timeout)
  if ctx.globals.output ~= "text" then
    d.outcome = outcome
    ctx.out:emit(d)
  elseif not ctx.globals.quiet and outcome == "active" then
    io.stdout:write(string.format("deployment %s: revision %d rolled out, %d/%d ready\n", name, d.revision,
      d.ready, d.replicas))
  end
  if outcome == "active" then return 0 end
  local why = outcome == "timeout" and string.format("not rolled out after %ds", math.floor(ctx.flags.timeout))
    or outcome == "rolled_back" and "rolled back" or "failed"
  local message = type(d.revision_message) == "string" and (": " .. d.revision_message) or ""
  errors.raise("rollout_" .. outcome, string.format("the rollout of %s revision %d %s%s", name, d.revision, why,
    message), { hint = "'prisn describe deploy " .. name .. "' shows the instances and events" })
end

return {
  {
    name = "rollout",
    summary = "A deployment's revisions: status of the current one, history, undo",
    description = "Every change to a deployment's template (script, flags, environment,\n"
      .. "limits, health) and every restart is a revision, rolled out one instance\n"
      .. "at a time. 'status' waits for the current one to serve; 'history' lists\n"
      .. "them with their state (rolling_out, active, superseded, rolled_back,\n"
      .. "failed); 'undo' goes back.",
    subcommands = {
      {
        name = "status",
        usage = "prisn rollout status [flags] [deploy] NAME",
        summary = "Wait for the current revision to serve, showing n/N ready; exit 0 when it does",
        description = "Follows the current revision of deployment NAME until every instance\n"
          .. "serves (exit 0), or it failed or was rolled back (exit 1), or --timeout\n"
          .. "passed (exit 1). On a terminal the progress line is redrawn; elsewhere a\n"
          .. "line is printed per change. A revision that already serves exits 0 at\n"
          .. "once. With -o json: the deployment as last seen, with 'outcome' (active,\n"
          .. "failed, rolled_back, timeout).",
        args = TARGET_ARGS,
        flags = { { name = "timeout", type = "duration", default = "5m", placeholder = "DURATION",
          summary = "Give up after this long (exit 1; the rollout goes on)" } },
        examples = { { "prisn rollout status web", "Wait until web's current revision serves" },
          { "prisn rollout status deploy/web --timeout 30s && echo ready", "In a script" } },
        handler = with_name("status", status),
      },
      {
        name = "history",
        usage = "prisn rollout history [flags] [deploy] NAME",
        summary = "List a deployment's revisions, the current one marked *",
        description = "Each revision with its state, when and by whom it was made, its script,\n"
          .. "and why it was rolled back when it was.",
        args = TARGET_ARGS,
        examples = { { "prisn rollout history api", "The revisions of api" } },
        handler = with_name("history", function(ctx) return deployments_cli().history(ctx) end),
      },
      {
        name = "undo",
        usage = "prisn rollout undo [flags] [deploy] NAME",
        summary = "Roll back to the previous working revision, or to --to-revision N",
        description = "Makes the template of the revision before the current one (the last\n"
          .. "that served), or of revision N, the new current revision and rolls it out\n"
          .. "like a deploy; waits until it serves.",
        args = TARGET_ARGS,
        flags = { { name = "to-revision", type = "int", placeholder = "N", summary = "The revision to go back to" } },
        examples = { { "prisn rollout undo api", "Back to the previous revision" },
          { "prisn rollout undo api --to-revision 3", "Back to revision 3's template" } },
        handler = with_name("undo", function(ctx) return deployments_cli().undo(ctx) end),
      },
    },
  },
}
