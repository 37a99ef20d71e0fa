-- prisn.cli.complete: the one completion engine behind every shell.
--
-- Shells do not know prisn's commands. Their scripts (prisn.cli.completion.*)
-- hand the words typed so far to `prisn __complete`, which asks this module
-- what may come next and prints the answer in a line protocol (M.format).
-- So completion is written, and tested, once, in Lua, against the same
-- command tree the parser reads; a command whose arguments complete with a
-- function (deployment names, runner names) completes in every shell.
--
-- The words typed so far are read by the parser's own walk (prisn.cli.parse
-- `walk`, forgiving): a word it cannot place ends completion quietly instead
-- of raising, because a half-typed line is normal.
--
-- Not here: the shell scripts (prisn.cli.completion), printing and error
-- handling around a failing completer (prisn.cli.commands.completion).
local cli = require("prisn.cli")
local parse = require("prisn.cli.parse")

local M = {}

--- What the shell does besides showing the candidates:
--   default  show the candidates; with none, fall back to file names
--   file     complete file names
--   dir      complete directory names
--   none     show the candidates, never file names
M.DIRECTIVES = { "default", "file", "dir", "none" }

local function starts_with(s, prefix)
  return s:sub(1, #prefix) == prefix
end

local function takes_value(flag)
  return flag.type ~= "bool"
end

-- Flags a command accepts: its own, then the global ones (the root's). Own
-- flags come first so a command may shadow a global flag's meaning.
local function scopes(st)
  if st.command == st.root then return { st.root.flags or {} } end
  return { st.command.flags or {}, st.root.flags or {} }
end

local function find_flag(st, key, value)
  for _, flags in ipairs(scopes(st)) do
    for _, flag in ipairs(flags) do
      if flag[key] == value then return flag end
    end
  end
  return nil
end

local function has_subcommands(cmd)
  return cmd.subcommands ~= nil and #cmd.subcommands > 0
end

-- The argument declaration the next positional word fills, or nil. A rest
-- or repeatable argument is last and keeps the index, so it fills them all.
local function current_arg(st)
  return (st.command.args or {})[st.next_arg]
end

-- Candidates are { value = "json", description = "..." | nil }.
local function candidate(value, description)
  if type(value) == "table" then
    return { value = tostring(value.value or value[1]), description = value.description or value[2] }
  end
  return { value = tostring(value), description = description }
end

-- Keeps the candidates that start with `partial`, puts `prefix` before each
-- (the `--output=` of `--output=js`) and drops duplicates.
local function matching(items, partial, prefix)
  local out, seen = {}, {}
  for _, item in ipairs(items) do
    local c = candidate(item)
    if starts_with(c.value, partial) and not seen[c.value] then
      seen[c.value] = true
      c.value = prefix .. c.value
      out[#out + 1] = c
    end
  end
  return out
end

-- What a completer function sees: the command reached and what the line
-- holds so far, in the shape handlers get (args by name, flags with
-- underscores), so a completer can narrow by, say, --namespace.
local function completer_context(st)
  return { root = st.root, command = st.command, path = st.path, args = st.args,
           flags = st.flags, globals = st.globals }
end

-- Applies a `complete` spec ("file" | "dir" | { values } | function).
-- A function is called as fn(partial, ctx) and returns a list of values
-- (strings or { value, description }) and optionally a directive ("none"
-- if it gives none); the engine filters them by `partial`.
local function from_spec(spec, partial, st, prefix)
  if spec == "file" or spec == "dir" then return {}, spec end
  if type(spec) == "table" then return matching(spec, partial, prefix), "none" end
  local items, directive = spec(partial, completer_context(st))
  return matching(items or {}, partial, prefix), directive or "none"
end

local function flag_values(st, flag, partial, prefix)
  if flag.values then return matching(flag.values, partial, prefix), "none" end
  if flag.complete then return from_spec(flag.complete, partial, st, prefix) end
  -- A name, a number, a duration: nothing to offer, and file names would
  -- be wrong. A flag that takes a path says so with complete = "file".
  return {}, "none"
end

local function long_flags(st, partial)
  local out, seen = {}, {}
  for _, flags in ipairs(scopes(st)) do
    for _, flag in ipairs(flags) do
      local word = "--" .. flag.name
      if not flag.hidden and not seen[word] and starts_with(word, partial)
          and (flag.repeatable or not st.used[flag]) then
        seen[word] = true
        out[#out + 1] = candidate(word, flag.summary)
      end
    end
  end
  return out, "none"
end

-- `-o`, `-ojs`, `-qo`: walks the letters as the parser would; a letter for
-- a flag that takes a value turns the rest of the word into that value.
local function short_flags(st, current)
  for i = 2, #current do
    local flag = find_flag(st, "short", current:sub(i, i))
    if not flag then return {}, "none" end
    if takes_value(flag) then
      local inline = current:sub(i + 1)
      if inline == "" then return { candidate(current, flag.summary) }, "none" end
      local glue = inline:sub(1, 1) == "=" and 1 or 0 -- the parser takes -o=json too
      return flag_values(st, flag, inline:sub(1 + glue), current:sub(1, i + glue))
    end
    if i == #current then return { candidate(current, flag.summary) }, "none" end
  end
  return {}, "none"
end

local function flag_candidates(st, current)
  local name, value = current:match("^%-%-([^=]*)=(.*)$")
  if name then
    local flag = find_flag(st, "name", name)
    if not flag then return {}, "none" end
    if not takes_value(flag) then -- `--quiet=false` parses too, though nobody types it
      return matching({ "true", "false" }, value, "--" .. name .. "="), "none"
    end
    return flag_values(st, flag, value, "--" .. name .. "=")
  end
  if current == "-" or starts_with(current, "--") then return long_flags(st, current) end
  return short_flags(st, current)
end

local function subcommand_candidates(cmd, partial)
  local out = {}
  for _, sub in ipairs(cmd.subcommands) do
    if not sub.hidden and starts_with(sub.name, partial) then
      out[#out + 1] = candidate(sub.name, sub.summary)
    end
  end
  -- Aliases only when no name fits: `rm<TAB>` should still finish, but
  -- `l<TAB>` should not list `list` and `ls` side by side.
  if #out == 0 then
    for _, sub in ipairs(cmd.subcommands) do
      for _, alias in ipairs(sub.hidden and {} or sub.aliases or {}) do
        if starts_with(alias, partial) then out[#out + 1] = candidate(alias, sub.summary) end
      end
    end
  end
  return out, "none"
end

--- What may replace `current`, the word under the cursor, after the
-- complete `words` (those after "prisn"). Returns a list of candidates
-- { value, description } and a directive (see M.DIRECTIVES).
--
--   complete.candidates(root, { "-o" }, "j")  --> { { value = "json" } }, "none"
--
-- Raises only if a completer function raises; the caller decides what the
-- shell sees then.
function M.candidates(root, words, current)
  current = current or ""
  local st = parse.walk(root, words, true)
  if st.dead then return {}, "none" end
  if st.pending then return flag_values(st, st.pending, current, "") end
  if not st.rest and not st.dashdash and starts_with(current, "-") then
    return flag_candidates(st, current)
  end
  if has_subcommands(st.command) and not st.command_done then
    -- KIND/NAME (the parser reads it as KIND NAME): complete NAME.
    local kind_word, partial = current:match("^([%a]+)/(.*)$")
    local sub = kind_word and cli.find(st.command, kind_word)
    if sub and sub.args and sub.args[1] and sub.args[1].complete then
      st.command = sub
      st.path[#st.path + 1] = sub.name
      return from_spec(sub.args[1].complete, partial, st, kind_word .. "/")
    end
    local subs = subcommand_candidates(st.command, current)
    -- A command that takes its own arguments too (prisn scale NAME | deploy
    -- NAME): its first argument's candidates as well.
    local first = st.command.handler and (st.command.args or {})[1]
    if first and first.complete and first.complete ~= "file" and first.complete ~= "dir" then
      for _, c in ipairs((from_spec(first.complete, current, st, ""))) do subs[#subs + 1] = c end
    end
    return subs, "none"
  end
  local arg = current_arg(st)
  if not arg then return {}, "none" end
  if arg.complete then return from_spec(arg.complete, current, st, "") end
  -- Nothing declared: most free-form arguments are paths (a script, a
  -- manifest), and a rest argument is handed to another program.
  return {}, "default"
end

--- A completer for arguments that name a command, like COMMAND in
-- `prisn help COMMAND...`: the subcommands that may follow the words of
-- that argument typed so far. Use it as `complete = complete.command_words`
-- on a repeatable argument called COMMAND (or pass `name`).
function M.command_words(_, ctx, name)
  local cmd = ctx.root or cli.root()
  for _, word in ipairs(ctx.args[name or "COMMAND"] or {}) do
    cmd = cli.find(cmd, word)
    if not cmd then return {}, "none" end
  end
  if not has_subcommands(cmd) then return {}, "none" end
  local items = {}
  for _, sub in ipairs(cmd.subcommands) do
    if not sub.hidden then items[#items + 1] = candidate(sub.name, sub.summary) end
  end
  return items, "none"
end

local function one_line(s)
  return (s:gsub("[\t\r\n]+", " "))
end

--- The `prisn __complete` answer: one candidate a line, "value\tdescription"
-- when there is a description, then ":<directive>" as the last line.
--
--   json\n yaml\n :none\n
function M.format(items, directive)
  local lines = {}
  for _, item in ipairs(items) do
    if not item.value:find("[\r\n]") and item.value ~= "" then
      if item.description and item.description ~= "" then
        lines[#lines + 1] = item.value .. "\t" .. one_line(item.description)
      else
        lines[#lines + 1] = item.value
      end
    end
  end
  lines[#lines + 1] = ":" .. directive
  return table.concat(lines, "\n") .. "\n"
end

--- Answers a shell: `words` is everything after `prisn __complete --`, the
-- last being the word under the cursor (possibly ""). Never raises: on any
-- failure the answer is just ":default", so a shell falls back to file
-- names instead of printing a traceback into the user's command line.
function M.respond(root, words)
  local ok, text = pcall(function()
    local complete = {}
    for i = 1, #words - 1 do complete[i] = words[i] end
    return M.format(M.candidates(root or cli.root(), complete, words[#words] or ""))
  end)
  if ok then return text end
  return ":default\n"
end

return M
