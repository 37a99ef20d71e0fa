-- `prisn rollout history NAME` and `prisn rollout undo NAME [--to-revision N]`:
-- a deployment's revisions, and going back to an earlier one (its template
-- becomes a new revision, rolled out like any deploy).
local function deployments_cli() return require("prisn.cli.deployments") end

local NAME_ARG = { name = "NAME", summary = "The deployment (deploy/NAME works too)", required = true }

return {
  {
    name = "rollout",
    summary = "A deployment's revisions: history, and undo to an earlier one",
    description = "Every change to a deployment's template (script, flags, environment,\n"
      .. "limits, health) is a revision, rolled out one instance at a time. 'history'\n"
      .. "lists them with their state (rolling_out, active, superseded, rolled_back,\n"
      .. "failed); 'undo' goes back.",
    subcommands = {
      {
        name = "history",
        summary = "List a deployment's revisions, the current one marked *",
        description = "Each revision with its state, when and by whom it was made, its script,\n"
          .. "and why it was rolled back when it was.",
        args = { NAME_ARG },
        examples = { { "prisn rollout history api", "The revisions of api" } },
        handler = function(ctx) return deployments_cli().history(ctx) end,
      },
      {
        name = "undo",
        summary = "Roll back to the previous working revision, or to --to-revision N",
        description = "Makes the template of the revision before the current one (the last\n"
          .. "that served), or of revision N, the new current revision and rolls it out\n"
          .. "like a deploy; waits until it serves.",
        args = { NAME_ARG },
        flags = { { name = "to-revision", type = "int", placeholder = "N", summary = "The revision to go back to" } },
        examples = { { "prisn rollout undo api", "Back to the previous revision" },
          { "prisn rollout undo api --to-revision 3", "Back to revision 3's template" } },
        handler = function(ctx) return deployments_cli().undo(ctx) end,
      },
    },
  },
}
