-- prisn.cli: the command tree, built from the declarations of every command
-- family, plus the global flags every command accepts.
--
-- Parsing, help, suggestions and completion all read this one tree, so a
-- command declared once is parsed, documented and completed the same way.
local declaration = require("prisn.cli.declaration")
local kinds = require("prisn.cli.kinds")

local M = {}

-- One module per command family, in the order `prisn help` lists them.
M.FAMILIES = {
  "run",
  "deploy",
  "rollout",
  "restart",
  "cron",
  "scale",
  "get",
  "describe",
  "logs",
  "runner",
  "env",
  "delete",
  "events",
  "secret",
  "server",
  "dns",
  "token",
  "context",
  "version",
  "doctor",
  "completion",
  "help",
  "lua",
  "hook",
}

M.GLOBAL_FLAGS = {
  { name = "output", short = "o", type = "string", values = { "text", "wide", "json", "yaml" },
    default = "text", placeholder = "FORMAT",
    summary = "Output format: text (aligned, for people), wide (text with more columns), json or yaml "
      .. "(stable, for scripts)" },
  { name = "namespace", short = "n", type = "string", placeholder = "NS",
    complete = kinds.complete_namespace,
    summary = "Namespace to act in (default: the context's, or \"default\")" },
  { name = "context", type = "string", placeholder = "NAME",
    summary = "Use this context (server and token) instead of the current one" },
  { name = "quiet", short = "q", type = "bool",
    summary = "Print only what was asked for: no progress, no notes" },
  { name = "no-color", type = "bool",
    summary = "Never use colour (also when NO_COLOR is set)" },
  { name = "help", short = "h", type = "bool",
    summary = "Show help for the command" },
  { name = "version", short = "v", type = "bool",
    summary = "Show prisn's version (the same as 'prisn version')" },
}

--- Global flags as handlers see them: -o wide is text with the wide
-- columns (globals.wide), so every handler checks only text or not.
function M.normalize_globals(globals)
  if globals.output == "wide" then globals.output, globals.wide = "text", true end
  return globals
end

local root

--- The root command: { name = "prisn", flags = GLOBAL_FLAGS, subcommands }.
-- Declarations are not checked here, on every start of prisn: the test suite
-- checks every family (M.check_all), which is where a bad one is a bug.
function M.root()
  if root then return root end
  local subcommands = {}
  for _, family in ipairs(M.FAMILIES) do
    for _, cmd in ipairs(require("prisn.cli.commands." .. family)) do
      subcommands[#subcommands + 1] = cmd
    end
  end
  root = {
    name = "prisn",
    summary = "Run any script as a job, a supervised service or a cron job",
    flags = M.GLOBAL_FLAGS,
    subcommands = subcommands,
  }
  return root
end

--- Checks every command declaration; returns true or nil and a message that
-- names the family and the bad field.
function M.check_all()
  for _, family in ipairs(M.FAMILIES) do
    for _, cmd in ipairs(require("prisn.cli.commands." .. family)) do
      local ok, err = declaration.check(cmd)
      if not ok then return nil, "bad command declaration in " .. family .. ": " .. err end
    end
  end
  return true
end

--- Finds the subcommand of `cmd` called `word` (by name or alias).
function M.find(cmd, word)
  for _, sub in ipairs(cmd.subcommands or {}) do
    if sub.name == word then return sub end
    for _, alias in ipairs(sub.aliases or {}) do
      if alias == word then return sub end
    end
  end
  return nil
end

--- Names (and aliases) of the visible subcommands of `cmd`, for suggestions.
function M.visible_names(cmd, with_aliases)
  local names = {}
  for _, sub in ipairs(cmd.subcommands or {}) do
    if not sub.hidden then
      names[#names + 1] = sub.name
      if with_aliases then
        for _, alias in ipairs(sub.aliases or {}) do names[#names + 1] = alias end
      end
    end
  end
  return names
end

return M
