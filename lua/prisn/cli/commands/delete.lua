-- `prisn delete KIND NAME` (or KIND/NAME): a job (stopped first if it
-- runs), a deployment, a cron job, a secret, a token (revoked). The kinds
-- and their words are prisn.cli.kinds'; an instance or a node cannot be
-- deleted, and saying so is a usage error that names what to do instead.
local kinds = require("prisn.cli.kinds")

-- `prisn delete job ID`: stop a queued or running job, or remove a finished
-- one and its log. Works through the server.
local function delete_job(ctx)
  local client = require("prisn.client")
  local c = client.connect(ctx)
  local ns = client.namespace(ctx)
  local id = ctx.args.ID
  local res = c:request("DELETE", string.format("/api/v1/namespaces/%s/jobs/%s", ns, id))
  if ctx.globals.output ~= "text" then
    ctx.out:emit(res)
  elseif not ctx.globals.quiet then
    if res.deleted then
      io.stdout:write(string.format("job %s deleted\n", res.id))
    else
      io.stdout:write(string.format("job %s is being stopped\n", res.id))
    end
  end
  return 0
end

-- `prisn delete cron NAME`: the cron job goes (no more runs); its runs stay
-- as jobs. Asks first on a terminal; elsewhere --yes is required.
local function delete_cron(ctx)
  local client = require("prisn.client")
  local errors = require("prisn.error")
  local ns = client.namespace(ctx)
  local name = ctx.args.NAME
  if not ctx.flags.yes then
    if not require("prisn.core.sys").isatty(0) then
      errors.usage(string.format("refusing to delete cron job '%s' without --yes: there is no terminal "
        .. "to confirm on", name), "add --yes to delete without asking")
    end
    io.stderr:write(string.format("Delete cron job '%s' in namespace '%s'? [y/N] ", name, ns))
    io.stderr:flush()
    local answer = io.stdin:read("l")
    if not (answer and answer:match("^%s*[yY]")) then
      io.stderr:write("Nothing deleted.\n")
      return 1
    end
  end
  local res = client.connect(ctx):request("DELETE", string.format("/api/v1/namespaces/%s/cronjobs/%s", ns, name))
  if ctx.globals.output ~= "text" then
    ctx.out:emit(res)
  elseif not ctx.globals.quiet then
    io.stdout:write(string.format("cron job %s deleted\n", name))
  end
  return 0
end

-- Runs the handler of another command (`prisn secret delete`).
local function delegate(ctx, ...)
  local cli = require("prisn.cli")
  local cmd = cli.root()
  for _, word in ipairs({ ... }) do cmd = cli.find(cmd, word) end
  return cmd.handler(ctx)
end

local function kind_command(kind_name, primary, decl)
  decl.name, decl.aliases = kinds.words(kind_name, primary)
  local arg = decl.args and decl.args[1]
  if arg and not arg.complete then
    arg.complete = kinds.completer(kind_name)
  end
  return decl
end

-- A kind that cannot be deleted: hidden, and a usage error saying why.
local function not_deletable(kind_name, why, instead)
  return kind_command(kind_name, kind_name, {
    hidden = true,
    summary = "Cannot be deleted",
    args = { { name = "NAME", summary = "Ignored" } },
    handler = function(ctx)
      local name = ctx.args.NAME or "NAME"
      require("prisn.error").usage(string.format("%s %s cannot be deleted: %s", kinds.find(kind_name).noun, name,
        why), instead(name))
    end,
  })
end

local YES_FLAG = { name = "yes", short = "y", type = "bool", summary = "Delete without asking" }

return {
  {
    name = "delete",
    summary = "Delete a resource: a job (stopped first if it runs), deployment, cron job, secret or token",
    description = "'prisn delete KIND NAME' (or KIND/NAME), with the kinds and words of\n"
      .. "'prisn get'. Deleting a deployment, a cron job or a secret asks first on a\n"
      .. "terminal; elsewhere --yes is required. Instances and nodes are not\n"
      .. "deleted: 'prisn restart NAME' replaces a deployment's instances, 'prisn\n"
      .. "scale NAME N' changes how many there are.",
    subcommands = {
      kind_command("job", "job", {
        summary = "Stop a queued or running job, or remove a finished one",
        description = "A queued job leaves the queue and a running one is stopped (SIGTERM to\n"
          .. "its process group, SIGKILL after 5s); both stay in the history, failed\n"
          .. "with reason 'deleted'. Deleting a finished job removes its record and its\n"
          .. "log. Needs a running server and an edit token.",
        args = { { name = "ID", summary = "The job id (job/ID works too; a unique prefix will do)", required = true } },
        examples = {
          { "prisn delete job 06h1jgs5aqg5", "Stop (or remove) a job" },
          { "prisn delete job/06h1jgs5aqg5", "The same, kubectl's way" },
        },
        handler = delete_job,
      }),
      kind_command("deploy", "deploy", {
        summary = "Delete a deployment: stop every instance, free its port, remove it",
        description = "Stops every instance of deployment NAME (drained: no new connections,\n"
          .. "SIGTERM, SIGKILL after its grace), closes its port and removes it with its\n"
          .. "revisions and logs. --dry-run lists exactly what would go and changes\n"
          .. "nothing. On a terminal it asks first; elsewhere --yes is required.",
        args = { { name = "NAME", summary = "The deployment (deploy/NAME works too)", required = true } },
        flags = { YES_FLAG,
          { name = "dry-run", type = "bool", summary = "Show what would be deleted; change nothing" } },
        examples = { { "prisn delete deploy api --dry-run", "What deleting api would stop and remove" },
          { "prisn delete deploy api --yes", "Delete it without asking" } },
        handler = function(ctx) return require("prisn.cli.deployments").delete(ctx) end,
      }),
      kind_command("cron", "cron", {
        summary = "Delete a cron job: no more runs; its past runs stay as jobs",
        description = "Removes the cron job from the server's schedule. A run in progress goes\n"
          .. "on; the kept runs stay in 'prisn get jobs --cron NAME' until deleted. Asks\n"
          .. "for confirmation on a terminal; elsewhere --yes is required.",
        args = { { name = "NAME", summary = "The cron job's name (cron/NAME works too)", required = true } },
        flags = { YES_FLAG },
        examples = { { "prisn delete cron backup --yes", "Delete cron job backup without asking" } },
        handler = delete_cron,
      }),
      kind_command("secret", "secret", {
        summary = "Delete a secret (the same as 'prisn secret delete NAME')",
        description = "Removes the secret from the namespace. Workloads that name it fail to\n"
          .. "start until it exists again. Asks first on a terminal; elsewhere --yes is\n"
          .. "required.",
        args = { { name = "NAME", summary = "The secret's name", required = true } },
        flags = { YES_FLAG },
        examples = { { "prisn delete secret db --yes", "Delete secret db without asking" } },
        handler = function(ctx) return delegate(ctx, "secret", "delete") end,
      }),
      kind_command("token", "token", {
        summary = "Revoke an API token (the same as 'prisn token revoke ID')",
        description = "The token stops working at once; it stays listed as revoked.",
        args = { { name = "ID", summary = "The token's id", required = true } },
        examples = { { "prisn delete token 01kaxq3v2m7r", "Revoke one token" } },
        handler = function(ctx) return delegate(ctx, "token", "revoke") end,
      }),
      not_deletable("instance", "a deployment keeps its instances running",
        function(name) return string.format("'prisn restart %s' replaces them one by one; 'prisn scale %s N' "
          .. "changes how many there are", (name:gsub("%-%d+$", "")), (name:gsub("%-%d+$", ""))) end),
      not_deletable("node", "there is one node, this machine, until prisn runs as a cluster",
        function() return "'prisn server stop' stops this machine's server" end),
    },
  },
}
