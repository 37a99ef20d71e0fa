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

return {
  {
    name = "delete",
    summary = "Delete a resource: a job (stopped first if it runs)",
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
    },
  },
}
