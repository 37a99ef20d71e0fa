-- prisn.cli.reference: docs/CLI.md, generated from the command declarations.
--
-- The page is the help text of every command, in order, under a short guide to
-- the conventions all commands share. A spec compares it with the committed
-- docs/CLI.md, so the reference cannot drift from the binary; regenerate it
-- with `build/prisn lua contrib/gen-cli-reference.lua > docs/CLI.md`.
local help = require("prisn.cli.help")

local M = {}

local PREAMBLE = [[
# prisn command reference

Generated from the command declarations in `lua/prisn/cli/commands/`; do not
edit by hand. Regenerate with:

    build/prisn lua contrib/gen-cli-reference.lua > docs/CLI.md

## Conventions

- Flags: `--name value`, `--name=value`, short `-o json` or `-ojson`; switches
  take no value (`--quiet`), and clusters of short switches work (`-qh`).
- Global flags (`-o`, `-n`, `--context`, `-q`, `--no-color`, `-h`, `-v`) are
  accepted anywhere on the command line. `prisn --version` (`-v`) is `prisn
  version`.
- Objects are named as kubectl names them, `KIND NAME` or `KIND/NAME`, with
  the same words for a kind in every verb: `deploy` (`deployment`,
  `deployments`), `cron` (`cronjob`, `cronjobs`), `job` (`jobs`), `instance`
  (`instances`, `inst`), `secret(s)`, `token(s)`, `node(s)`: `prisn get
  deploy/web`, `prisn describe job ID`, `prisn delete job/ID`.
- `--` ends prisn's flags: every later word is an argument (for `prisn run`,
  an argument for the script).
- A flag given twice keeps its last value, except repeatable flags
  (`-e A=1 -e B=2`), which collect every value.
- Durations: `30s`, `5m`, `1h30m`, `7d` (a bare number is seconds). Sizes:
  `512K`, `256M`, `1.5G`, binary units.
- Output: `-o text` (default; aligned tables and key/value blocks, colour only
  on a terminal), `-o wide` (text with more columns), `-o json` and `-o yaml`
  (stable snake_case field names, keys sorted, a list field always a list; an
  interface for scripts).
- Errors go to stderr as `Error: <what happened>` and `Hint: <what to do>`.
  A mistyped command or flag gets a suggestion.
]]

local function walk(cmd, path, visit)
  for _, sub in ipairs(cmd.subcommands or {}) do
    if not sub.hidden then
      local p = { table.unpack(path) }
      p[#p + 1] = sub.name
      visit(sub, p)
      walk(sub, p, visit)
    end
  end
end

--- The Markdown reference for the command tree `root`.
function M.markdown(root)
  local out = { PREAMBLE }
  out[#out + 1] = "## Exit status\n"
  for _, e in ipairs(help.EXIT_CODES) do
    out[#out + 1] = string.format("- `%d`: %s", e[1], e[2])
  end
  out[#out + 1] = "\n## Environment\n"
  for _, e in ipairs(help.ENVIRONMENT) do
    out[#out + 1] = string.format("- `%s`: %s", e[1], e[2])
  end
  out[#out + 1] = "\n## Commands\n"
  walk(root, {}, function(_, path)
    local name = table.concat(path, " ")
    out[#out + 1] = string.format("- [`prisn %s`](#prisn-%s)", name, name:gsub(" ", "-"))
  end)
  walk(root, {}, function(cmd, path)
    out[#out + 1] = string.format("\n### prisn %s\n", table.concat(path, " "))
    out[#out + 1] = "```"
    out[#out + 1] = (help.command_help(cmd, path):gsub("\n$", ""))
    out[#out + 1] = "```"
  end)
  return table.concat(out, "\n") .. "\n"
end

return M
