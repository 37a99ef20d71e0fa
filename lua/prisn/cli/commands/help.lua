-- `prisn help [COMMAND...]`: the same text as `prisn COMMAND --help`.
local errors = require("prisn.error")

local function handler(ctx)
  local cli = require("prisn.cli")
  local help = require("prisn.cli.help")
  local suggest = require("prisn.suggest")
  local root = cli.root()
  local words = ctx.args.COMMAND or {}
  if #words == 0 then
    io.stdout:write(help.root_help(root))
    return 0
  end
  local cmd, path = root, {}
  for _, word in ipairs(words) do
    local sub = cli.find(cmd, word)
    if not sub then
      local where = #path > 0 and (" for 'prisn " .. table.concat(path, " ") .. "'") or ""
      errors.usage(string.format("no help for unknown command '%s'%s", word, where),
        suggest.did_you_mean(word, cli.visible_names(cmd)) or "run 'prisn help' for the list of commands")
    end
    cmd = sub
    path[#path + 1] = sub.name
  end
  io.stdout:write(help.command_help(cmd, path, root))
  return 0
end

return {
  {
    name = "help",
    summary = "Show help for prisn or for a command",
    description = "Without arguments, lists every command, the global flags, exit codes and\n"
      .. "environment variables. With a command, shows its usage, flags and examples:\n"
      .. "'prisn help version' is the same as 'prisn version --help'.",
    args = {
      { name = "COMMAND", summary = "The command (and subcommand) to explain", repeatable = true,
        complete = function(partial, ctx) return require("prisn.cli.complete").command_words(partial, ctx) end },
    },
    examples = {
      { "prisn help", "List every command" },
      { "prisn help completion", "Show how to install shell completion" },
    },
    handler = handler,
  },
}
