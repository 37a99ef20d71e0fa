-- prisn.error: the one error type that the CLI and the API both render.
--
-- An error has a stable `code` (a name such as "ENOENT", "usage", "not_found"),
-- a `message` saying what happened, and a `hint` saying what to do. The CLI
-- prints "Error: <message>" and "Hint: <hint>"; the API answers
-- {"error": {"code", "message", "hint"}}. Errors a user can cause are raised
-- or returned as these objects; anything else that is raised is a bug.
--
-- It also holds the one guard for code that must not raise into its caller
-- (M.call, M.guard): a luv callback, an event listener, a hook's reply. An
-- error escaping a luv callback would end the whole server, so each such
-- call runs under xpcall with a traceback handler and its error is reported
-- once, by the caller's own handler (Neovim's nlua_pcall, one for all).
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

-- Reports one guarded failure where nobody asked to hear it.
local function to_stderr(err, what)
  io.stderr:write(what, ": ", tostring(err), "\n")
end

local function finish(what, on_error, ok, ...)
  if ok then return true, ... end
  local err = ...
  on_error(err, what)
  return false, err
end

--- Calls fn(...) under xpcall with debug.traceback as the handler, so it
-- never raises into the caller. Returns true and fn's results, or false and
-- the error — a message with its traceback, or the value raised when it is
-- not a string (a prisn.error stays one) — after calling on_error(err, what)
-- once with it (default: "<what>: <err>" on stderr). `what` names the
-- callback for that report ("supervisor: restart").
function M.call(what, fn, on_error, ...)
  return finish(what, on_error or to_stderr, xpcall(fn, debug.traceback, ...))
end

--- `fn` wrapped by M.call, for a luv callback or a listener: the function
-- returned passes its arguments to fn and answers what M.call answers.
function M.guard(what, fn, on_error)
  on_error = on_error or to_stderr
  return function(...)
    return finish(what, on_error, xpcall(fn, debug.traceback, ...))
  end
end

return M
