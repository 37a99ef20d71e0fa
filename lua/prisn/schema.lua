-- prisn.schema: one checker for every definition that is data — CLI commands,
-- runners, policies, manifests — so a bad definition is reported the same way
-- everywhere: the path of the bad field, what was expected, what was found.
--
--   local ok, err = schema.check(value, shape, "runner")
--   -- nil, "runner.extensions[2]: expected a string, got number"
--
-- A shape is a table:
--   type      "string" | "number" | "integer" | "boolean" | "function" |
--             "table" | "list" | "any" (or a list of these, meaning any of them)
--   required  the field must be present
--   values    allowed values (for strings and numbers)
--   pattern   a Lua pattern a string must match; `pattern_hint` describes it
--   fields    for "table": shapes of the known fields
--   strict    for "table": unknown fields are an error (true by default)
--   of        for "list": the shape of each item
--   min_items for "list"
--   check     function(value) -> true | nil, message: a custom rule
local M = {}

local function describe(value)
  local t = type(value)
  if t == "string" then return string.format("%q", value) end
  if t == "number" or t == "boolean" then return tostring(value) end
  return t
end

local function is_list(value)
  if type(value) ~= "table" then return false end
  local n = #value
  for k in pairs(value) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then return false end
  end
  return true
end

local function type_matches(value, wanted)
  if wanted == "any" then return true end
  if wanted == "integer" then return math.type(value) == "integer" end
  if wanted == "list" then return is_list(value) end
  return type(value) == wanted
end

local function article(word)
  return (word:match("^[aeiou]") and "an " or "a ") .. word
end

local function expected_types(shape)
  local t = shape.type or "any"
  if type(t) == "table" then
    local names = {}
    for i, name in ipairs(t) do names[i] = article(name) end
    return table.concat(names, " or ")
  end
  return article(t)
end

local check_value

local function check_fields(value, shape, path)
  local fields = shape.fields or {}
  local names = {}
  for name in pairs(fields) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local field_shape = fields[name]
    local v = value[name]
    local field_path = path .. "." .. name
    if v == nil then
      if field_shape.required then
        return nil, field_path .. ": is required"
      end
    else
      local ok, err = check_value(v, field_shape, field_path)
      if not ok then return nil, err end
    end
  end
  if shape.strict ~= false then
    local unknown = {}
    for k in pairs(value) do
      if type(k) ~= "string" or not fields[k] then unknown[#unknown + 1] = tostring(k) end
    end
    if #unknown > 0 then
      table.sort(unknown)
      local known = {}
      for name in pairs(fields) do known[#known + 1] = name end
      table.sort(known)
      return nil, string.format("%s.%s: unknown field (known fields: %s)",
        path, unknown[1], table.concat(known, ", "))
    end
  end
  return true
end

function check_value(value, shape, path)
  local wanted = shape.type or "any"
  local alternatives = type(wanted) == "table" and wanted or { wanted }
  local matched
  for _, t in ipairs(alternatives) do
    if type_matches(value, t) then matched = t break end
  end
  if not matched then
    return nil, string.format("%s: expected %s, got %s", path, expected_types(shape), describe(value))
  end
  if shape.values then
    local allowed = false
    for _, v in ipairs(shape.values) do
      if v == value then allowed = true break end
    end
    if not allowed then
      local names = {}
      for i, v in ipairs(shape.values) do names[i] = tostring(v) end
      return nil, string.format("%s: %s is not one of %s", path, describe(value), table.concat(names, ", "))
    end
  end
  if shape.pattern and type(value) == "string" and not value:match(shape.pattern) then
    return nil, string.format("%s: %s is not %s", path, describe(value),
      shape.pattern_hint or ("matching " .. shape.pattern))
  end
  if matched == "table" and (shape.fields or shape.strict) then
    local ok, err = check_fields(value, shape, path)
    if not ok then return nil, err end
  end
  if matched == "list" then
    if shape.min_items and #value < shape.min_items then
      return nil, string.format("%s: needs at least %d item%s", path, shape.min_items,
        shape.min_items == 1 and "" or "s")
    end
    if shape.of then
      for i, item in ipairs(value) do
        local ok, err = check_value(item, shape.of, string.format("%s[%d]", path, i))
        if not ok then return nil, err end
      end
    end
  end
  if shape.check then
    local ok, err = shape.check(value)
    if not ok then return nil, path .. ": " .. err end
  end
  return true
end

--- Checks `value` against `shape`. Returns true, or nil and a message that
-- starts with the path of the first bad field (rooted at `name`).
function M.check(value, shape, name)
  return check_value(value, shape, name or "value")
end

M.is_list = is_list

return M
