-- `prisn restart NAME`: a rolling restart of a deployment with the same
-- template (pm2's and systemd's `restart`, kubectl's `rollout restart`).
-- The server makes the current template a new revision and rolls it out
-- one instance at a time, so the service keeps serving, each new instance
-- must pass its health check, and a restart that does not come up is rolled
-- back like any deploy. The command waits, showing n/N ready.
--
-- `prisn stop` and `prisn start` are not commands: stopping is `prisn scale
-- NAME 0` and starting again is `prisn scale NAME N`, one verb with the
-- count in plain sight, rather than a second pair that would have to
-- remember a count somewhere. They are hidden commands that say so (exit
-- 2), for the pm2 and systemd habit.
local errors = require("prisn.error")
local kinds = require("prisn.cli.kinds")

local ALLOWED = { "deploy" }

local TARGET_ARGS = {
  { name = "TARGET", summary = "The deployment: NAME, deploy/NAME, or 'deploy' followed by NAME", required = true,
    complete = kinds.target_completer(ALLOWED) },
  { name = "NAME", summary = "The deployment's name, after the word deploy",
    complete = kinds.second_completer("TARGET") },
}

local function restart(ctx)
  local deployments_cli = require("prisn.cli.deployments")
  local client = require("prisn.client")
  local _, name = kinds.target("restart", ctx.args.TARGET, ctx.args.NAME, ALLOWED)
  local c = client.connect(ctx)
  local ns = client.namespace(ctx)
  local res = c:request("POST", deployments_cli.path_in(ns, name, "restart"), {})
  if ctx.flags.no_wait then
    if ctx.globals.output ~= "text" then
      ctx.out:emit(res)
    elseif not ctx.globals.quiet then
      io.stdout:write(string.format("deployment %s restarting as revision %d\n", name, res.revision))
    end
    return 0
  end
  local outcome, d = deployments_cli.follow_rollout(ctx, c, ns, name, res.revision, ctx.flags.timeout)
  if ctx.globals.output ~= "text" then
    d.outcome = outcome
    ctx.out:emit(d)
  elseif not ctx.globals.quiet and outcome == "active" then
    io.stdout:write(string.format("deployment %s restarted: revision %d serving, %d/%d ready\n", name,
      d.revision, d.ready, d.replicas))
  end
  if outcome ~= "active" then
    errors.raise("rollout_failed", string.format("the restart of %s did not become healthy (%s)", name, outcome),
      { hint = "'prisn describe deploy " .. name .. "' shows the instances and events" })
  end
  return 0
end

-- A hidden verb that explains what to type instead.
local function instead(verb, how)
  return {
    name = verb,
    hidden = true,
    summary = "Not a prisn command: " .. how,
    args = { { name = "ARGS", summary = "Ignored", rest = true } },
    handler = function(ctx)
      local name = (ctx.args.ARGS or {})[1] or "NAME"
      name = select(2, kinds.split(name)) or name
      errors.usage(string.format("prisn has no '%s': %s", verb, how),
        verb == "stop" and string.format("prisn scale %s 0", name)
          or string.format("prisn scale %s N (the count it ran before; 'prisn rollout history %s')", name, name))
    end,
  }
end

return {
  {
    name = "restart",
    usage = "prisn restart [flags] [deploy] NAME",
    summary = "Restart a deployment's instances one at a time, with the same template",
    description = "A rolling restart: the current template becomes a new revision, rolled\n"
      .. "out one instance at a time like a deploy (a new instance must be healthy\n"
      .. "before an old one stops; a restart that does not come up is rolled back).\n"
      .. "Waits and shows n/N ready; exits 0 once every instance serves, 1 when the\n"
      .. "restart failed, was rolled back or --timeout passed. NAME may be written\n"
      .. "deploy/NAME or 'deploy NAME'. To stop every instance: prisn scale NAME 0.",
    args = TARGET_ARGS,
    flags = {
      { name = "timeout", type = "duration", default = "5m", placeholder = "DURATION",
        summary = "Give up waiting after this long (the restart goes on)" },
      { name = "no-wait", type = "bool", summary = "Return once the restart is requested" },
    },
    examples = {
      { "prisn restart web", "Restart web's instances one by one and wait" },
      { "prisn restart deploy/web --no-wait -o json", "Request it; print the deployment as JSON" },
    },
    handler = restart,
  },
  instead("stop", "'prisn scale NAME 0' stops every instance and keeps the deployment"),
  instead("start", "'prisn scale NAME N' starts N instances again"),
}
