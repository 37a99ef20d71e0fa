-- prisn.cli.help: help text, derived from the command declarations.
--
-- `prisn help`, `prisn help CMD` and `prisn CMD --help` all come from here, as
-- does the reference in docs/CLI.md (tests/e2e checks it against this), so
-- help can never drift from what the parser accepts.
local M = {}

M.EXIT_CODES = {
  { 0, "success (for `prisn run`: the script's own exit code)" },
  { 1, "error: something failed; the message says what and a hint says what to do" },
  { 2, "usage error: unknown command or flag, missing or invalid argument" },
}

M.ENVIRONMENT = {
  { "PRISN_HOME", "state directory (default: /var/lib/prisn as root, ~/.prisn otherwise)" },
  { "PRISN_DEBUG=1", "show tracebacks for internal errors" },
  { "PRISN_DEV=1", "load Lua modules from the source tree (development; PRISN_DEV=DIR for another tree)" },
  { "NO_COLOR", "never use colour" },
}

local function path_string(path)
  return #path > 0 and ("prisn " .. table.concat(path, " ")) or "prisn"
end

--- The usage line of a command: declared, or derived from its arguments.
function M.usage(cmd, path)
  if cmd.usage then return cmd.usage end
  local parts = { path_string(path) }
  if cmd.subcommands then parts[#parts + 1] = "<command>" end
  if cmd.flags and #cmd.flags > 0 or #path > 0 then parts[#parts + 1] = "[flags]" end
  for _, a in ipairs(cmd.args or {}) do
    local word = a.name
    if a.rest or a.repeatable then word = word .. "..." end
    if not a.required then word = "[" .. word .. "]" end
    parts[#parts + 1] = word
  end
  return table.concat(parts, " ")
end

local function flag_label(f)
  local label = f.short and ("-" .. f.short .. ", --" .. f.name) or ("    --" .. f.name)
  if f.type ~= "bool" then
    local placeholder = f.placeholder
    if not placeholder then
      placeholder = f.values and table.concat(f.values, "|") or f.type:upper()
    end
    label = label .. " " .. placeholder
  end
  return label
end

local function flag_summary(f)
  local text = f.summary
  local extras = {}
  if f.values and f.placeholder then extras[#extras + 1] = "one of " .. table.concat(f.values, ", ") end
  if f.default ~= nil and f.type ~= "bool" then extras[#extras + 1] = "default " .. tostring(f.default) end
  if f.repeatable then extras[#extras + 1] = "repeatable" end
  if #extras > 0 then text = text .. " (" .. table.concat(extras, "; ") .. ")" end
  return text
end

-- Two aligned columns, indented by two spaces.
local function columns(rows)
  local width = 0
  for _, r in ipairs(rows) do width = math.max(width, #r[1]) end
  local lines = {}
  for _, r in ipairs(rows) do
    lines[#lines + 1] = "  " .. r[1] .. string.rep(" ", width - #r[1] + 3) .. r[2]
  end
  return table.concat(lines, "\n")
end

local function flag_rows(flags)
  local rows = {}
  for _, f in ipairs(flags or {}) do
    if not f.hidden then rows[#rows + 1] = { flag_label(f), flag_summary(f) } end
  end
  return rows
end

local function command_rows(cmd)
  local rows = {}
  for _, sub in ipairs(cmd.subcommands or {}) do
    if not sub.hidden then rows[#rows + 1] = { sub.name, sub.summary } end
  end
  return rows
end

local function indent(text, prefix)
  return (prefix .. text:gsub("\n", "\n" .. prefix)):gsub("[ \t]+\n", "\n")
end

--- Help for the whole program (`prisn help`).
function M.root_help(root)
  local out = {
    "prisn - " .. root.summary:lower(),
    "",
    "Usage:",
    "  prisn <command> [flags] [arguments]",
    "",
    "Commands:",
    columns(command_rows(root)),
    "",
    "Global flags (accepted by every command, anywhere on the line):",
    columns(flag_rows(root.flags)),
    "",
    "Exit status:",
  }
  local exit_rows = {}
  for _, e in ipairs(M.EXIT_CODES) do exit_rows[#exit_rows + 1] = { tostring(e[1]), e[2] } end
  out[#out + 1] = columns(exit_rows)
  out[#out + 1] = ""
  out[#out + 1] = "Environment:"
  out[#out + 1] = columns(M.ENVIRONMENT)
  out[#out + 1] = ""
  out[#out + 1] = "Run 'prisn help <command>' or 'prisn <command> --help' for more about a command."
  return table.concat(out, "\n") .. "\n"
end

--- The examples `cmd`'s help shows: its own, or for a group without any
--- (`prisn server`), the first example of each visible subcommand, so every
--- help page a user can reach shows a command to copy.
function M.examples(cmd)
  if cmd.examples and #cmd.examples > 0 then return cmd.examples end
  local list = {}
  for _, sub in ipairs(cmd.subcommands or {}) do
    if not sub.hidden and sub.examples and sub.examples[1] then list[#list + 1] = sub.examples[1] end
  end
  return list
end

--- Help for one command (`prisn help CMD`, `prisn CMD --help`).
function M.command_help(cmd, path, root)
  local out = { path_string(path) .. " - " .. cmd.summary, "", "Usage:", "  " .. M.usage(cmd, path) }
  if cmd.aliases and #cmd.aliases > 0 then
    out[#out + 1] = ""
    out[#out + 1] = "Aliases: " .. table.concat(cmd.aliases, ", ")
  end
  if cmd.description then
    out[#out + 1] = ""
    out[#out + 1] = indent(cmd.description, "  ")
  end
  if cmd.subcommands then
    out[#out + 1] = ""
    out[#out + 1] = "Commands:"
    out[#out + 1] = columns(command_rows(cmd))
  end
  if cmd.args and #cmd.args > 0 then
    local rows = {}
    for _, a in ipairs(cmd.args) do rows[#rows + 1] = { a.name, a.summary } end
    out[#out + 1] = ""
    out[#out + 1] = "Arguments:"
    out[#out + 1] = columns(rows)
  end
  local rows = flag_rows(cmd.flags)
  if #rows > 0 then
    out[#out + 1] = ""
    out[#out + 1] = "Flags:"
    out[#out + 1] = columns(rows)
  end
  if root then
    out[#out + 1] = ""
    out[#out + 1] = "Global flags:"
    out[#out + 1] = columns(flag_rows(root.flags))
  end
  local examples = M.examples(cmd)
  if #examples > 0 then
    out[#out + 1] = ""
    out[#out + 1] = "Examples:"
    for _, ex in ipairs(examples) do
      out[#out + 1] = "  # " .. ex[2]
      out[#out + 1] = "  " .. ex[1]
    end
  end
  if cmd.subcommands then
    out[#out + 1] = ""
    out[#out + 1] = string.format("Run '%s <command> --help' for more about a command.", path_string(path))
  end
  return table.concat(out, "\n") .. "\n"
end

return M
