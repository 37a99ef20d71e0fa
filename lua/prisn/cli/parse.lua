-- prisn.cli.parse: argv -> the command to run, its arguments and flags.
--
-- The rules (docs/CLI.md repeats them for users):
--   * long flags: --name value, --name=value; bool flags take no value
--     (--name=false is accepted);
--   * short flags: -o json, -ojson, and clusters of bool flags: -qh;
--   * global flags are accepted anywhere, before or after the command;
--   * `--` ends flags: every later word is a positional argument;
--   * a `rest` argument (prisn lua FILE ARGS...) takes every remaining word
--     verbatim, flags included; a `repeatable` argument collects positionals
--     while flags around it are still parsed;
--   * a flag given twice keeps the last value unless it is repeatable;
--   * a word like "-1" (a dash and a digit) is an argument, not a flag;
--   * KIND/NAME where a subcommand KIND is expected is KIND NAME.
-- Every mistake raises a usage error (exit status 2) that says what was wrong
-- and, where something close exists, what was probably meant.
local cli = require("prisn.cli")
local errors = require("prisn.error")
local suggest = require("prisn.suggest")
local units = require("prisn.units")

local M = {}

--- Key under which a flag's value is stored: "older-than" -> "older_than".
function M.flag_key(name)
  return (name:gsub("%-", "_"))
end

local function command_path_string(path)
  return table.concat(path, " ")
end

local function usage_hint(path)
  return string.format("see 'prisn help%s'", #path > 0 and (" " .. command_path_string(path)) or "")
end

-- Converts a flag's raw text to its typed value, or raises a usage error.
local function convert(flag, raw, spelled)
  local value
  if flag.type == "string" then
    value = raw
  elseif flag.type == "int" then
    value = raw:match("^%-?%d+$") and math.tointeger(tonumber(raw))
    if not value then
      errors.usage(string.format("%s expects a whole number, got '%s'", spelled, raw))
    end
  elseif flag.type == "number" then
    value = raw:match("^%-?%d+%.?%d*$") and tonumber(raw)
    if not value then
      errors.usage(string.format("%s expects a number, got '%s'", spelled, raw))
    end
  elseif flag.type == "duration" then
    local seconds, err = units.parse_duration(raw)
    if not seconds then errors.usage(string.format("%s: %s", spelled, err)) end
    value = seconds
  elseif flag.type == "size" then
    local bytes, err = units.parse_size(raw)
    if not bytes then errors.usage(string.format("%s: %s", spelled, err)) end
    value = bytes
  elseif flag.type == "bool" then
    if raw == "true" or raw == "1" or raw == "yes" then
      value = true
    elseif raw == "false" or raw == "0" or raw == "no" then
      value = false
    else
      errors.usage(string.format("%s is a switch; it takes true or false, got '%s'", spelled, raw))
    end
  end
  if flag.values then
    local ok = false
    for _, allowed in ipairs(flag.values) do
      if allowed == value then ok = true break end
    end
    if not ok then
      errors.usage(string.format("invalid value '%s' for %s", raw, spelled),
        "choose one of: " .. table.concat(flag.values, ", "))
    end
  end
  return value
end

-- The flags a word may name at this point: the command's own, then globals.
local function visible_flags(state)
  local list = {}
  for _, f in ipairs(state.command.flags or {}) do list[#list + 1] = f end
  if state.command ~= state.root then
    for _, f in ipairs(state.root.flags or {}) do list[#list + 1] = f end
  end
  return list
end

local function find_flag(state, long, short)
  for _, f in ipairs(visible_flags(state)) do
    if (long and f.name == long) or (short and f.short == short) then return f end
  end
  return nil
end

local function is_global(state, flag)
  for _, f in ipairs(state.root.flags or {}) do
    if f == flag then return true end
  end
  return false
end

local function set_flag(state, flag, value)
  local target = is_global(state, flag) and state.globals or state.flags
  local key = M.flag_key(flag.name)
  if flag.repeatable then
    target[key] = target[key] or {}
    table.insert(target[key], value)
  else
    target[key] = value
  end
  state.used[flag] = true
end

-- A word the walk cannot place: a usage error, or when forgiving (a line
-- being completed) the end of the walk.
local function cannot_place(state, raise)
  if state.forgiving then
    state.dead = true
    return
  end
  raise()
end

local function unknown_flag(state, spelled)
  local names = {}
  for _, f in ipairs(visible_flags(state)) do
    if not f.hidden then names[#names + 1] = "--" .. f.name end
  end
  local hint = suggest.did_you_mean(spelled, names)
  local where = #state.path > 0 and (" for 'prisn " .. command_path_string(state.path) .. "'") or ""
  errors.usage(string.format("unknown flag %s%s", spelled, where),
    hint or usage_hint(state.path))
end

local function needs_value(state, flag, spelled)
  errors.usage(string.format("%s needs a value", spelled), flag.values
    and ("choose one of: " .. table.concat(flag.values, ", ")) or usage_hint(state.path))
end

-- Sets a flag from its text (nil: a switch given bare), converted to its
-- type; a forgiving walk keeps the text as typed and checks nothing.
local function set_value(state, flag, raw, spelled)
  if raw == nil then
    set_flag(state, flag, true)
  elseif state.forgiving then
    set_flag(state, flag, raw)
  else
    set_flag(state, flag, convert(flag, raw, spelled))
  end
end

-- "--name", "--name=value". A flag that takes a value and has none inline
-- waits for the next word (state.pending).
local function long_flag(state, word)
  local name, inline = word:match("^%-%-([^=]+)=(.*)$")
  name = name or word:sub(3)
  local flag = find_flag(state, name, nil)
  if not flag then
    -- Completing, an unknown flag is taken to be a switch: guessing it takes
    -- a value would swallow the next word, which is worse when wrong.
    if state.forgiving then return end
    unknown_flag(state, "--" .. name)
  end
  local spelled = "--" .. flag.name
  if flag.type == "bool" or inline then
    set_value(state, flag, inline, spelled)
  else
    state.pending, state.pending_spelled = flag, spelled
  end
end

-- "-q", "-ojson", "-o json", "-o=json", "-qo json": switches until a letter
-- whose flag takes a value, which takes the rest of the word or the next.
local function short_flags(state, word)
  for pos = 2, #word do
    local letter = word:sub(pos, pos)
    local flag = find_flag(state, nil, letter)
    if not flag then
      if state.forgiving then return end
      unknown_flag(state, "-" .. letter)
    end
    local spelled = "-" .. letter
    if flag.type == "bool" then
      set_value(state, flag, nil, spelled)
    else
      local attached = word:sub(pos + 1)
      if attached == "" then
        state.pending, state.pending_spelled = flag, spelled
      else
        set_value(state, flag, (attached:gsub("^=", "")), spelled)
      end
      return
    end
  end
end

-- Places one positional word: a subcommand, the next argument, or one more
-- word of a repeatable or rest argument.
local function add_positional(state, word)
  local cmd = state.command
  if cmd.subcommands and not state.command_done then
    local sub = cli.find(cmd, word)
    if sub then
      state.command = sub
      state.path[#state.path + 1] = sub.name
      return
    end
    -- KIND/NAME (describe deploy/web) is KIND NAME when KIND names a
    -- subcommand that takes an argument: kubectl's habit, for every verb.
    local kind_word, name = word:match("^([%a]+)/(.+)$")
    local kind_sub = kind_word and cli.find(cmd, kind_word)
    if kind_sub and kind_sub.args and #kind_sub.args > 0 then
      state.command = kind_sub
      state.path[#state.path + 1] = kind_sub.name
      return add_positional(state, name)
    end
    if not cmd.handler or not cmd.args or #cmd.args == 0 then
      return cannot_place(state, function()
        local where = cmd == state.root and "" or (" for 'prisn " .. command_path_string(state.path) .. "'")
        errors.usage(string.format("unknown command '%s'%s", word, where),
          suggest.did_you_mean(word, cli.visible_names(cmd)) or usage_hint(state.path))
      end)
    end
  end
  state.command_done = true
  local spec = (cmd.args or {})[state.next_arg]
  if not spec then
    return cannot_place(state, function()
      errors.usage(string.format("unexpected argument '%s'", word), usage_hint(state.path))
    end)
  end
  state.nargs = state.nargs + 1
  if spec.rest or spec.repeatable then
    -- The last argument: it keeps the index and takes every later word (a
    -- rest argument verbatim, flags included).
    state.args[spec.name] = state.args[spec.name] or {}
    table.insert(state.args[spec.name], word)
    if spec.rest then state.rest = true end
    return
  end
  state.args[spec.name] = word
  state.next_arg = state.next_arg + 1
  -- An argument followed by a rest argument (prisn lua FILE ARGS...): every
  -- later word belongs to the rest, flags included.
  local following = (cmd.args or {})[state.next_arg]
  if following and following.rest then
    state.args[following.name] = {}
    state.rest = true
  end
end

--- Reads `words` (argv without the program name) by the rules above: the one
-- walk behind the parser and the completion engine (prisn.cli.complete).
-- Returns the state: `command` reached, its `path`, `args` and `flags` (and
-- `globals`) as handlers see them, `used` flags, `next_arg` (the argument
-- the next positional fills), `command_done` once a positional was placed,
-- `pending` (a flag still waiting for its value), `rest` and `dashdash`.
--
-- Strict (the default), every mistake raises a usage error and values are
-- converted to their types. With `forgiving` (a half-typed line), values
-- stay as typed, unknown flags are skipped, and a word that cannot be placed
-- sets `dead` and ends the walk.
function M.walk(root, words, forgiving)
  local state = {
    root = root, command = root, path = {}, args = {}, flags = {}, globals = {},
    used = {}, next_arg = 1, nargs = 0, forgiving = forgiving or false,
  }
  for _, word in ipairs(words) do
    if state.pending then
      local flag = state.pending
      state.pending = nil
      set_value(state, flag, word, state.pending_spelled)
    elseif state.rest or state.dashdash then
      add_positional(state, word)
    elseif word == "--" then
      state.dashdash = true
    elseif word:sub(1, 2) == "--" then
      long_flag(state, word)
    elseif word:sub(1, 1) == "-" and #word > 1 and not word:match("^%-%d") then
      -- (no flag starts with a digit: "-1" is a value, e.g. for prisn scale,
      -- which refuses it with the safe forms)
      short_flags(state, word)
    else
      add_positional(state, word)
    end
    if state.dead then break end
  end
  return state
end

local function fill_defaults(flags, target)
  for _, f in ipairs(flags or {}) do
    local key = M.flag_key(f.name)
    if target[key] == nil then
      if f.repeatable then
        target[key] = {}
      elseif f.default ~= nil then
        target[key] = f.default
        if type(f.default) == "string" and f.type ~= "string" then
          target[key] = convert(f, f.default, "--" .. f.name)
        end
      elseif f.type == "bool" then
        target[key] = false
      end
    end
  end
end

--- Parses `words` (argv without the program name) against the command tree.
-- Returns { command, path, args, flags, globals }; raises a usage error
-- (prisn.error with status 2) for anything it cannot make sense of. When
-- --help is given, missing arguments are not an error.
function M.parse(root, words)
  local state = M.walk(root, words)
  if state.pending then needs_value(state, state.pending, state.pending_spelled) end
  fill_defaults(root.flags, state.globals)
  if state.command ~= root then fill_defaults(state.command.flags, state.flags) end
  if not state.globals.help and state.command ~= root then
    local cmd = state.command
    if cmd.subcommands and not cmd.handler then
      errors.usage(string.format("'prisn %s' needs a subcommand", command_path_string(state.path)),
        "choose one of: " .. table.concat(cli.visible_names(cmd), ", "))
    end
    for _, spec in ipairs(cmd.args or {}) do
      if spec.required and state.args[spec.name] == nil then
        errors.usage(string.format("missing argument %s for 'prisn %s'", spec.name,
          command_path_string(state.path)), usage_hint(state.path))
      end
    end
  end
  return {
    command = state.command,
    path = state.path,
    args = state.args,
    flags = state.flags,
    globals = state.globals,
  }
end

return M
