-- prisn.exec.runners.format: what a runner definition may contain, checked by
-- prisn.schema so every mistake is reported as the path of the bad field
-- ("runner.extensions[2]: expected a string, got number"), and the argv
-- templates that turn a runner into a command line.
--
-- The format is documented for operators in docs/RUNNERS.md; keep the two in
-- step. This module is pure: no filesystem, no processes.
local schema = require("prisn.schema")
local envfile = require("prisn.envfile")

local M = {}

M.DEPS = { "python", "node", "none" }

-- Placeholders each template may use. {args} expands to zero or more items,
-- so it must be an item of its own; the others are substituted inside items.
M.PLACEHOLDERS = {
  command = { interpreter = true, script = true, script_dir = true, args = true },
  inline = { interpreter = true, code = true, script_dir = true, args = true },
  version = { interpreter = true },
}

local function sorted_names(set)
  local names = {}
  for name in pairs(set) do names[#names + 1] = name end
  table.sort(names)
  return "{" .. table.concat(names, "}, {") .. "}"
end

-- A shape for an argv template whose items may use `allowed` placeholders.
local function template_shape(kind)
  local allowed = M.PLACEHOLDERS[kind]
  return {
    type = "list", min_items = 1,
    of = { type = "string", check = function(item)
      for name in item:gmatch("{([%a_]+)}") do
        if not allowed[name] then
          return nil, string.format("unknown placeholder {%s} (known: %s)", name, sorted_names(allowed))
        end
      end
      if item ~= "{args}" and item:find("{args}", 1, true) then
        return nil, "{args} must be an item of its own"
      end
      return true
    end },
  }
end

-- Lua compiles a pattern lazily, while matching, so a bad one may go
-- unnoticed until a shebang reaches it. Walk its syntax up front, as
-- lstrlib's classEnd does, and report what string.find would.
local function pattern_error(p)
  local i, n = 1, #p
  while i <= n do
    local c = p:sub(i, i)
    if c == "%" then
      local nx = p:sub(i + 1, i + 1)
      if nx == "" then return "malformed pattern (ends with '%')" end
      if nx == "b" then
        if i + 3 > n then return "malformed pattern (missing arguments to '%b')" end
        i = i + 4
      elseif nx == "f" then
        if p:sub(i + 2, i + 2) ~= "[" then return "missing '[' after '%f' in pattern" end
        i = i + 2
      else
        i = i + 2
      end
    elseif c == "[" then
      local j = i + 1
      if p:sub(j, j) == "^" then j = j + 1 end
      repeat
        if j > n then return "malformed pattern (missing ']')" end
        local d = p:sub(j, j)
        j = j + 1
        if d == "%" and j <= n then j = j + 1 end
      until p:sub(j, j) == "]"
      i = j + 1
    else
      i = i + 1
    end
  end
  local ok, err = pcall(string.find, p, p)
  if not ok then return (tostring(err):gsub("^.-:%d+: ", "")) end
  return nil
end

local function valid_pattern(p)
  if p == "" then return nil, "is empty" end
  local err = pattern_error(p)
  if err then return nil, "is not a valid Lua pattern: " .. err end
  return true
end

--- The shape of a runner definition, for prisn.schema.
M.SHAPE = {
  type = "table",
  fields = {
    name = { type = "string", required = true, pattern = "^[a-z][a-z0-9_%-]*$",
             pattern_hint = "a lower-case name like python3" },
    description = { type = "string" },
    extensions = { type = "list", of = { type = "string", pattern = "^%.[%w_%-%.%+]+$",
                   pattern_hint = 'an extension with its dot, like ".py"' } },
    shebangs = { type = "list", of = { type = "string", check = valid_pattern } },
    interpreter = { type = "string", required = true, check = function(v)
      if v == "@prisn" or v:sub(1, 1) == "/" or (v ~= "" and not v:find("/", 1, true)) then
        return true
      end
      return nil, string.format('%q is not a program name, an absolute path or "@prisn"', v)
    end },
    command = template_shape("command"),
    inline = template_shape("inline"),
    env = { type = "table", strict = false },
    deps = { type = "string", values = M.DEPS },
    version = template_shape("version"),
    install_hint = { type = "string" },
    build_command = { type = "function" },
    prepare = { type = "function" },
  },
}

local function mentions(template, placeholder)
  for _, item in ipairs(template) do
    if item:find(placeholder, 1, true) then return true end
  end
  return false
end

--- Checks a runner definition. `file` (optional) is the operator file it came
-- from: its name must then match the file name (tcl.lua defines "tcl").
-- Returns true, or nil and a message naming the bad field.
function M.check(def, file)
  local ok, err = schema.check(def, M.SHAPE, "runner")
  if not ok then return nil, err end
  if def.env then
    local keys = {}
    for k in pairs(def.env) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for _, k in ipairs(keys) do
      if not envfile.valid_key(k) then
        return nil, string.format("runner.env: %q is not an environment variable name", k)
      end
      local ok_value, value_err = schema.check(def.env[k], { type = "string" }, "runner.env." .. k)
      if not ok_value then return nil, value_err end
    end
  end
  if not def.command and not def.build_command then
    return nil, "runner.command: is required (or a build_command function)"
  end
  if def.command and not mentions(def.command, "{script}") then
    return nil, "runner.command: never mentions {script}"
  end
  if def.inline and not mentions(def.inline, "{code}") then
    return nil, "runner.inline: never mentions {code}"
  end
  if file then
    local stem = file:match("([^/]+)%.lua$")
    if stem and stem ~= def.name then
      return nil, string.format("runner.name: %q does not match the file name %s.lua", def.name, stem)
    end
  end
  return true
end

--- Expands an argv template: "{args}" becomes the items of `values.args`,
-- other placeholders are replaced by `values[name]` inside each item.
-- Returns the argv, or nil and a message when a placeholder has no value.
function M.expand(template, values)
  local argv = {}
  for _, item in ipairs(template) do
    if item == "{args}" then
      for _, a in ipairs(values.args or {}) do argv[#argv + 1] = a end
    else
      local missing
      argv[#argv + 1] = item:gsub("{([%a_]+)}", function(name)
        local v = values[name]
        if v == nil then missing = missing or name return nil end
        return tostring(v)
      end)
      if missing then return nil, string.format("no value for {%s}", missing) end
    end
  end
  return argv
end

--- True when `argv` is a non-empty list of strings.
function M.is_argv(argv)
  if type(argv) ~= "table" or #argv == 0 or not schema.is_list(argv) then return false end
  for _, a in ipairs(argv) do
    if type(a) ~= "string" then return false end
  end
  return true
end

--- True when interpreter basename `name` matches shebang pattern `p`. A
-- pattern is matched against the whole name (prisn anchors it), so
-- "python3[%d%.]*" matches python3 and python3.11 but not python3-config.
function M.shebang_matches(p, name)
  if p:sub(1, 1) ~= "^" then p = "^" .. p end
  if p:sub(-1) ~= "$" or p:sub(-2) == "%$" then p = p .. "$" end
  local ok, found = pcall(string.find, name, p)
  return ok and found ~= nil
end

return M
