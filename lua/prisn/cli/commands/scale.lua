-- `prisn scale NAME COUNT`: change how many instances a deployment runs —
-- COUNT, --add N, --remove N, --multiply F (rounded up, at least 1), or
-- --auto --min --max --target-cpu (policies/autoscale.lua decides from
-- measured CPU). --dry-run shows before and after. For a cron job, 0
-- suspends it and 1 resumes it. A count is a plain whole number: the forms
-- a shell or a reader could take for something else (-1, +2, 1.5, *2, 00)
-- are refused with the safe forms shown, rather than guessed at.
--
-- `prisn scale deploy NAME N`, `scale deploy/NAME N` and `scale cron/NAME 0`
-- name the kind (prisn.cli.kinds), as every verb takes it.
local errors = require("prisn.error")
local deployments_cli = require("prisn.cli.deployments")
local kinds = require("prisn.cli.kinds")

local function scale_cron(ctx, name, count)
  local client = require("prisn.client")
  if count > 1 or ctx.flags.add or ctx.flags.remove or ctx.flags.multiply or ctx.flags.auto then
    errors.usage(string.format("cron job %s can only be suspended (0) or resumed (1)", name),
      "prisn scale " .. name .. " 0  |  prisn scale " .. name .. " 1")
  end
  local verb = count == 0 and "suspend" or "resume"
  local res = client.connect(ctx):request("POST", string.format("/api/v1/namespaces/%s/cronjobs/%s/%s",
    client.namespace(ctx), name, verb), {})
  if ctx.globals.output ~= "text" then
    ctx.out:emit(res)
  elseif not ctx.globals.quiet then
    io.stdout:write(string.format("cron job %s %s\n", name, count == 0 and "suspended" or "resumed"))
  end
  return 0
end

local function exists(c, path)
  local ok, err = pcall(c.request, c, "GET", path)
  if ok then return true end
  if errors.is(err) and (err.code == "not_found" or err.http_status == 404) then return false end
  error(err, 0)
end

local function scale(ctx, kind_name)
  -- A hostile COUNT is refused before anything else, whatever NAME is.
  local body = deployments_cli.scale_body(ctx.args.COUNT, ctx.flags)
  local client = require("prisn.client")
  local c = client.connect(ctx)
  local ns = client.namespace(ctx)
  local target = ctx.args.NAME
  local kind, name = kinds.split(target)
  if kind_name then kind, name = kinds.find(kind_name), target end
  if kind and kind.name ~= "deploy" and kind.name ~= "cron" then
    errors.usage(string.format("prisn scale does not act on %ss", kind.noun),
      "it scales a deployment (deploy/NAME) or suspends and resumes a cron job (cron/NAME)")
  end
  local cron = kind and kind.name == "cron" and name or nil
  local deploy = kind and kind.name == "deploy" and name or nil
  if not cron and not deploy then
    if exists(c, deployments_cli.path_in(ns, target)) then
      deploy = target
    elseif exists(c, string.format("/api/v1/namespaces/%s/cronjobs/%s", ns, target)) then
      cron = target
    else
      errors.raise("not_found", string.format("no deployment or cron job '%s' in namespace '%s'", target, ns),
        { hint = "'prisn get deploy' and 'prisn get cron' list them" })
    end
  end
  if cron then
    if body.replicas == nil then
      errors.usage("a cron job is scaled with 0 (suspend) or 1 (resume)", "prisn scale " .. cron .. " 0")
    end
    return scale_cron(ctx, cron, body.replicas)
  end
  return deployments_cli.scale(ctx, deploy, ctx.args.COUNT)
end

local FLAGS = {
  { name = "add", type = "string", placeholder = "N", summary = "Add N instances" },
  { name = "remove", type = "string", placeholder = "N", summary = "Remove N instances (not below 0)" },
  { name = "multiply", type = "string", placeholder = "F", summary = "Multiply the count by F, rounded up" },
  { name = "auto", type = "bool", summary = "Autoscale on CPU between --min and --max" },
  { name = "min", type = "int", placeholder = "N", summary = "With --auto: the fewest instances (1)" },
  { name = "max", type = "int", placeholder = "N", summary = "With --auto: the most instances (10)" },
  { name = "target-cpu", type = "int", placeholder = "PCT",
    summary = "With --auto: target CPU per instance, % (70)" },
  { name = "dry-run", type = "bool", summary = "Show before and after; change nothing" },
  }

local NAME_ARG = { name = "NAME", summary = "The deployment or cron job (deploy/NAME, cron/NAME)", required = true,
  complete = function(partial, ctx)
    local out = kinds.live_names("deploy", partial, ctx)
    for _, n in ipairs(kinds.live_names("cron", partial, ctx)) do out[#out + 1] = n end
    return out
  end }
local COUNT_ARG = { name = "COUNT", summary = "How many instances (a cron job: 0 suspends, 1 resumes)" }

-- `prisn scale deploy NAME N`, `prisn scale cron NAME 0`.
local function kind_command(kind_name, primary, summary, description, example)
  local name, aliases = kinds.words(kind_name, primary)
  return {
    name = name, aliases = aliases, summary = summary, description = description,
    args = { { name = "NAME", summary = "Its name", required = true, complete = kinds.completer(kind_name) },
      COUNT_ARG },
    flags = FLAGS,
    examples = { example },
    handler = function(ctx) return scale(ctx, kind_name) end,
  }
end

return {
  {
    name = "scale",
    usage = "prisn scale [flags] [deploy|cron] NAME [COUNT]",
    summary = "Scale a deployment (N, --add, --remove, --multiply, --auto); 0/1 suspends/resumes a cron job",
    description = "For a deployment: 'prisn scale NAME 5' runs five instances; 0 stops every\n"
      .. "instance and keeps the deployment; --add N and --remove N change the count;\n"
      .. "--multiply F multiplies it (rounded up, at least 1); --auto --min --max\n"
      .. "--target-cpu lets policies/autoscale.lua choose from the instances' measured\n"
      .. "CPU (each decision is an event; a plain count turns autoscaling off).\n"
      .. "--dry-run shows before and after and changes nothing.\n"
      .. "\n"
      .. "For a cron job, 0 suspends it (no new runs; history kept) and 1 resumes it,\n"
      .. "like 'prisn cron suspend|resume NAME'. NAME may be deploy/NAME or cron/NAME\n"
      .. "when both exist. COUNT is a plain whole number: -1, +2, 1.5, *2 or 00 are\n"
      .. "refused with the safe forms shown.",
    args = { NAME_ARG, COUNT_ARG },
    flags = FLAGS,
    examples = {
      { "prisn scale api 5", "Run five instances of api" },
      { "prisn scale api --add 2", "Two more" },
      { "prisn scale api --multiply 1.5 --dry-run", "What 1.5 times as many would be" },
      { "prisn scale api --auto --min 1 --max 10 --target-cpu 70", "Let CPU decide" },
      { "prisn scale api 0", "Stop every instance; keep the deployment" },
      { "prisn scale backup 0", "Suspend cron job backup (1 resumes it)" },
    },
    handler = function(ctx) return scale(ctx) end,
    subcommands = {
      kind_command("deploy", "deploy", "Scale a deployment (the same as 'prisn scale NAME ...')",
        "'prisn scale deploy NAME N' (or deploy/NAME) is 'prisn scale NAME N' for\n"
          .. "a deployment, with the same flags; useful when a cron job has the same name.",
        { "prisn scale deploy api 3", "Run three instances of api" }),
      kind_command("cron", "cron", "Suspend (0) or resume (1) a cron job",
        "'prisn scale cron NAME 0' (or cron/NAME) suspends the cron job, 1 resumes\n"
          .. "it, like 'prisn cron suspend|resume NAME'.",
        { "prisn scale cron backup 0", "Suspend cron job backup" }),
    },
  },
}
