-- prisn.cli.declaration: the shape of a command declaration, checked once by
-- prisn.schema so a malformed command fails loudly in the test suite instead
-- of confusing a user.
--
-- A command family file (lua/prisn/cli/commands/<family>.lua) returns a list
-- of commands. A command is data:
--
--   {
--     name = "version",                 -- lower-case word, the verb
--     aliases = { "ver" },              -- other names that run it
--     summary = "Show ...",             -- one line, for lists
--     description = "...",              -- paragraphs for `prisn help CMD`
--     usage = "prisn version [flags]",  -- optional; derived from args/flags
--     args = { { name = "FILE", summary = "...", required = true,
--                rest = true,           -- takes every remaining word, flags too
--                complete = "file" } }, -- "file" | "dir" | { values } | function
--     -- A completer function is called as fn(partial, ctx), ctx = { root,
--     -- command, path, args, flags, globals } (raw text typed so far); it
--     -- returns a list of strings or { value, description } pairs, and an
--     -- optional directive "default" | "file" | "dir" | "none" (default none).
--     flags = { { name = "older-than", short = "x", type = "duration",
--                 default = "7d", values = {...}, repeatable = true,
--                 placeholder = "DUR", summary = "...", complete = "file" } },
--     examples = { { "prisn version -o json", "Versions as JSON" } },
--     handler = function(ctx) ... end,  -- returns the exit status (nil = 0)
--     subcommands = { ...commands... }, -- `prisn runner list`
--     hidden = true,                    -- left out of help and completion
--   }
--
-- The handler receives ctx = { args, flags, globals, out, command, path }:
-- args by argument name (a rest or repeatable argument is a list), flags by
-- long name with dashes turned into underscores, globals the global flags.
local schema = require("prisn.schema")

local M = {}

M.FLAG_TYPES = { "string", "bool", "int", "number", "duration", "size" }

local completion_shape = { type = { "string", "list", "function" }, check = function(v)
  if type(v) == "string" and v ~= "file" and v ~= "dir" then
    return nil, 'expected "file", "dir", a list of values or a function'
  end
  return true
end }

local flag_shape = {
  type = "table",
  fields = {
    name = { type = "string", required = true, pattern = "^[a-z][a-z0-9%-]*$",
             pattern_hint = "a lower-case flag name like older-than" },
    short = { type = "string", pattern = "^[a-zA-Z]$", pattern_hint = "a single letter" },
    type = { type = "string", required = true, values = M.FLAG_TYPES },
    default = { type = { "string", "number", "boolean" } },
    values = { type = "list", of = { type = "string" }, min_items = 1 },
    repeatable = { type = "boolean" },
    placeholder = { type = "string" },
    summary = { type = "string", required = true },
    complete = completion_shape,
    hidden = { type = "boolean" },
  },
}

local arg_shape = {
  type = "table",
  fields = {
    name = { type = "string", required = true, pattern = "^[A-Z][A-Z0-9_]*$",
             pattern_hint = "an upper-case placeholder like SCRIPT" },
    summary = { type = "string", required = true },
    required = { type = "boolean" },
    rest = { type = "boolean" },
    repeatable = { type = "boolean" },
    complete = completion_shape,
  },
}

local example_shape = {
  type = "list",
  of = { type = "string" },
  min_items = 2,
  check = function(v)
    if #v ~= 2 then return nil, "an example is { command, description }" end
    if not v[1]:match("^prisn ") then return nil, "an example command starts with 'prisn '" end
    return true
  end,
}

local command_shape = {
  type = "table",
  fields = {
    name = { type = "string", required = true, pattern = "^_*[a-z][a-z0-9%-]*$",
             pattern_hint = "a lower-case command name" },
    aliases = { type = "list", of = { type = "string" } },
    summary = { type = "string", required = true },
    description = { type = "string" },
    usage = { type = "string" },
    args = { type = "list", of = arg_shape },
    flags = { type = "list", of = flag_shape },
    examples = { type = "list", of = example_shape },
    handler = { type = "function" },
    subcommands = { type = "list" },
    hidden = { type = "boolean" },
    group = { type = "string" },
  },
}

local function check_command(cmd, path)
  local ok, err = schema.check(cmd, command_shape, path)
  if not ok then return nil, err end
  if not cmd.handler and not cmd.subcommands then
    return nil, path .. ": needs a handler or subcommands"
  end
  if cmd.handler and not cmd.hidden and (not cmd.examples or #cmd.examples == 0) then
    return nil, path .. ".examples: a command needs at least one example"
  end
  local seen_rest = false
  for i, a in ipairs(cmd.args or {}) do
    if seen_rest then
      return nil, string.format("%s.args[%d]: no argument may follow a rest argument", path, i)
    end
    seen_rest = a.rest or a.repeatable or false
  end
  local names, shorts = {}, {}
  for i, f in ipairs(cmd.flags or {}) do
    local where = string.format("%s.flags[%d]", path, i)
    if names[f.name] then return nil, where .. ": duplicate flag --" .. f.name end
    names[f.name] = true
    if f.short then
      if shorts[f.short] then return nil, where .. ": duplicate short flag -" .. f.short end
      shorts[f.short] = true
    end
  end
  for i, sub in ipairs(cmd.subcommands or {}) do
    local ok2, err2 = check_command(sub, string.format("%s.subcommands[%d]", path, i))
    if not ok2 then return nil, err2 end
  end
  return true
end

--- Checks one command declaration (and its subcommands). Returns true, or nil
-- and a message naming the bad field, e.g. "version.flags[1].type: ...".
function M.check(cmd, name)
  return check_command(cmd, name or (type(cmd) == "table" and cmd.name) or "command")
end

return M
