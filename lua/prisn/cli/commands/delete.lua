-- `prisn delete job ID`: stop a queued or running job, or remove a finished
-- one and its log. Works through the server (later: deployments, cron jobs).
local function delete_job(ctx)
  local client = require("prisn.client")
  local c = client.connect(ctx)
  local ns = client.namespace(ctx)
  local id = ctx.args.ID:match("^jobs?/(.+)$") or ctx.args.ID
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
  local name = ctx.args.NAME:match("^cron/(.+)$") or ctx.args.NAME
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

return {
  {
    name = "delete",
    summary = "Delete a resource: a job (stopped first if it runs), a cron job",
    subcommands = {
      {
        name = "job",
        aliases = { "jobs" },
        summary = "Stop a queued or running job, or remove a finished one",
        description = "A queued job leaves the queue and a running one is stopped (SIGTERM to\n"
          .. "its process group, SIGKILL after 5s); both stay in the history, failed\n"
          .. "with reason 'deleted'. Deleting a finished job removes its record and its\n"
          .. "log. Needs a running server and an edit token.",
        args = { { name = "ID", summary = "The job id (job/ID works too; a unique prefix will do)", required = true } },
        examples = {
          { "prisn delete job 06h1jgs5aqg5", "Stop (or remove) a job" },
        },
        handler = delete_job,
      },
      {
        name = "deploy",
        aliases = { "deployment", "deployments" },
        summary = "Delete a deployment: stop every instance, free its port, remove it",
        description = "Stops every instance of deployment NAME (drained: no new connections,\n"
          .. "SIGTERM, SIGKILL after its grace), closes its port and removes it with its\n"
          .. "revisions and logs. --dry-run lists exactly what would go and changes\n"
          .. "nothing. On a terminal it asks first; elsewhere --yes is required.",
        args = { { name = "NAME", summary = "The deployment (deploy/NAME works too)", required = true } },
        flags = { { name = "yes", short = "y", type = "bool", summary = "Delete without asking" },
          { name = "dry-run", type = "bool", summary = "Show what would be deleted; change nothing" } },
        examples = { { "prisn delete deploy api --dry-run", "What deleting api would stop and remove" },
          { "prisn delete deploy api --yes", "Delete it without asking" } },
        handler = function(ctx) return require("prisn.cli.deployments").delete(ctx) end,
      },
      {
        name = "cron",
        aliases = { "cronjob", "cronjobs" },
        summary = "Delete a cron job: no more runs; its past runs stay as jobs",
        description = "Removes the cron job from the server's schedule. A run in progress goes\n"
          .. "on; the kept runs stay in 'prisn get jobs --cron NAME' until deleted. Asks\n"
          .. "for confirmation on a terminal; elsewhere --yes is required.",
        args = { { name = "NAME", summary = "The cron job's name (cron/NAME works too)", required = true } },
        flags = { { name = "yes", short = "y", type = "bool", summary = "Delete without asking" } },
        examples = { { "prisn delete cron backup --yes", "Delete cron job backup without asking" } },
        handler = delete_cron,
      },
    },
  },
}
