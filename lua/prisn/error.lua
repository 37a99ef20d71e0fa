-- prisn.error: the one error type that the CLI and the API both render.
--
-- An error has a stable `code` (a name such as "ENOENT", "usage", "not_found"),
-- a `message` saying what happened, and a `hint` saying what to do. The CLI
-- prints "Error: <message>" and "Hint: <hint>"; the API answers
-- {"error": {"code", "message", "hint"}}. Errors a user can cause are raised
-- or returned as these objects; anything else that is raised is a bug.
local M = {}

local Error = {}
Error.__index = Error
Error.__name = "prisn.error"

function Error:__tostring()
  if self.hint then
    return self.message .. " (hint: " .. self.hint .. ")"
  end
  return self.message
end

--- Creates an error. `fields` may carry `hint`, `status` (exit code for the
-- CLI, 1 by default; 2 for usage errors) and `http_status` for the API.
function M.new(code, message, fields)
  assert(type(code) == "string", "error code must be a string")
  assert(type(message) == "string", "error message must be a string")
  local e = setmetatable({ code = code, message = message }, Error)
  if fields then
    for k, v in pairs(fields) do e[k] = v end
  end
  return e
end

--- True when `value` is a prisn.error.
function M.is(value)
  return getmetatable(value) == Error
end

--- Raises a prisn.error (level 0: the message carries no position).
function M.raise(code, message, fields)
  error(M.new(code, message, fields), 0)
end

--- Raises a usage error: exit status 2.
function M.usage(message, hint)
  error(M.new("usage", message, { hint = hint, status = 2 }), 0)
end

--- Turns the `nil, message, code` convention of the core into a raised error
-- when the first value is nil; passes values through otherwise.
function M.check(hint, ok, message, code, ...)
  if ok == nil then
    M.raise(code or "error", message or "unknown error", { hint = hint })
  end
  return ok, message, code, ...
end

return M
