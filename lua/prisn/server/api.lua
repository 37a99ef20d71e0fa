-- prisn.server.api: what route handlers share.
--
-- A handler module (lua/prisn/server/api/<area>.lua) returns a list of
-- routes:
--
--   return {
--     { method = "GET", pattern = "/api/v1/namespaces/{ns}/jobs", auth = "view",
--       handler = function(req) return 200, { items = ... } end },
--   }
--
-- auth is "none" (no token needed: /health, /ready), "view", "edit" or
-- "admin"; a route with {ns} in its pattern is also checked against the
-- token's namespaces. The handler gets `req`:
--
--   req.method, req.path, req.params ({ns=..., id=...}), req.query (decoded
--   name -> value), req.headers (lower-case names), req.body (string),
--   req.token ({ id, name, role, namespaces } or nil for auth "none"),
--   req.actor ("token:<name>"), req.server (the running server: db, home,
--   events, metrics, log, ...)
--
-- and returns status, body[, headers]: a table body is sent as JSON, a string
-- as text/plain, nil as no body. Errors are raised as prisn.errors (use
-- api.fail): the server answers {"error": {"code", "message", "hint"}} with
-- the error's http_status, or one derived from its code.
local cjson = require("cjson")
local async = require("prisn.async")
local errors = require("prisn.error")
local store = require("prisn.store")
local units = require("prisn.units")
local workload = require("prisn.exec.workload")

local M = {}

-- Request bodies are JSON as RFC 8259 has it: cjson's default decoder also
-- takes NaN, Infinity and hex numbers, which no client means to send.
local strict_json = cjson.new()
strict_json.decode_invalid_numbers(false)

-- HTTP status for error codes that carry none.
M.STATUS_OF_CODE = {
  usage = 400, bad_request = 400, invalid_json = 400,
  unauthorized = 401, forbidden = 403,
  not_found = 404, method_not_allowed = 405,
  conflict = 409, ambiguous = 409, exists = 409,
  too_large = 413, invalid = 422,
  too_many_requests = 429, unavailable = 503, insufficient_storage = 507,
}

--- Raises an API error.
function M.fail(status, code, message, hint)
  errors.raise(code, message, { hint = hint, http_status = status })
end

M.STORAGE_HINT = "free space under $PRISN_HOME on the server (state.db, logs and bundles live there); "
  .. "nothing was changed, so the request can be sent again once there is room"

-- A failure to write the state (prisn.store.storage_failure) as the client
-- sees it: 507 insufficient_storage for a full disk, 503 unavailable for a
-- disk that fails or is read-only; never a 500, it is not a bug. The
-- message names state.db or the file, not the server's paths.
local function storage_error(err)
  local kind = store.storage_failure(err)
  if not kind or err.http_status then return err end
  local subject = tostring(err.message):match("([^/%s:]+%.db)") or "the state"
  if kind == "full" then
    return errors.new("insufficient_storage", string.format("cannot write %s: the disk is full (%s)",
      subject, err.code), { hint = M.STORAGE_HINT, http_status = 507 })
  end
  return errors.new("unavailable", string.format("cannot write %s: %s (%s)", subject,
    kind == "readonly" and "it is read-only" or "the disk failed", err.code),
    { hint = "see the server log; /health says when the server can write again", http_status = 503 })
end

--- The HTTP status for a raised error.
function M.status_of(err)
  if errors.is(err) then
    err = storage_error(err)
    return err.http_status or M.STATUS_OF_CODE[err.code] or 500
  end
  return 500
end

--- The JSON body for an error.
function M.error_body(err)
  if errors.is(err) then
    err = storage_error(err)
    return { error = { code = err.code, message = err.message, hint = err.hint or cjson.null } }
  end
  return { error = { code = "internal", message = "internal server error",
    hint = "this is a bug; the server log has the details" } }
end

--- The request body decoded from JSON (an object); raises 400 otherwise.
function M.json_body(req)
  if req.body == nil or req.body == "" then
    M.fail(400, "bad_request", "the request needs a JSON body", "send Content-Type: application/json")
  end
  local ok, value = pcall(strict_json.decode, req.body)
  if not ok or type(value) ~= "table" then
    M.fail(400, "invalid_json", "the request body is not a JSON object", "send a JSON object")
  end
  return value
end

--- A request value as an error message shows it: numbers as JSON writes
-- them (NaN and the infinities by name), strings quoted and cut short.
M.show = workload.show

local function absent(v) return v == nil or v == cjson.null end

--- body[name] as a whole number from min to max (3.0, as JSON decoders
-- give 3, counts), or nil when absent or null; raises 422 naming the field
-- (as `label`, default name) and the range otherwise.
function M.integer_field(body, name, min, max, label)
  local v = body[name]
  if absent(v) then return nil end
  local n = type(v) == "number" and math.tointeger(v)
  if not n or n < min or n > max then
    M.fail(422, "invalid", string.format("%s must be a whole number from %d to %d, got %s", label or name, min, max,
      M.show(v)))
  end
  return n
end

--- body[name] as a number from min to max (not NaN), or nil when absent;
-- raises 422 naming the field and the range otherwise.
function M.number_field(body, name, min, max, label)
  local v = body[name]
  if absent(v) then return nil end
  if type(v) ~= "number" or not (v >= min and v <= max) then
    M.fail(422, "invalid", string.format("%s must be a number from %g to %g, got %s", label or name, min, max,
      M.show(v)))
  end
  return v
end

--- body[name] as a duration in seconds from min to max: a string like
-- "30s" or "1h30m", or a number of seconds. nil when absent; raises 422
-- naming the field and the range otherwise.
function M.duration_field(body, name, min, max, label)
  local v = body[name]
  if absent(v) then return nil end
  local seconds = units.parse_duration(v)
  if not seconds or seconds < min or seconds > max then
    M.fail(422, "invalid", string.format("%s must be a duration from %s to %s, like 30s, 5m or 1h30m, got %s",
      label or name, units.format_duration(min), units.format_duration(max), M.show(v)))
  end
  return seconds
end

--- Checks that `body[name]` is of `kind` ("string", "number", "table",
-- "boolean"); raises 422 naming the field otherwise. Returns the value.
function M.field(body, name, kind, optional)
  local v = body[name]
  if v == nil or v == cjson.null then
    if optional then return nil end
    M.fail(422, "invalid", "the field '" .. name .. "' is required")
  end
  if type(v) ~= kind then
    M.fail(422, "invalid", string.format("the field '%s' must be a %s", name, kind))
  end
  return v
end

M.null = cjson.null

--- A streamed (chunked) response body: producer(write) runs in the request's
-- task and calls write(text) for each piece; the response ends when it
-- returns. write returns false once the client has gone.
function M.stream(producer)
  return { stream = producer }
end

-- How often a followed log stream looks for new lines.
M.LOG_POLL_MS = 100

--- A producer (for M.stream) of log lines as NDJSON, one object a line.
-- o.poll(final) returns the lines since its last call (final: all that is
-- left), o.first(lines) chooses the first batch (--tail), o.keep(line)
-- whether a line is sent, o.encode(line) the object written. With
-- o.follow it polls every LOG_POLL_MS until the client leaves, the server
-- stops (a last {"end": true, "reason": "server_stopping"}) or o.tick(n),
-- called on poll n, returns a reason of its own to end.
function M.log_stream(server, o)
  return M.stream(function(write)
    local function send(lines)
      for _, l in ipairs(lines) do
        if o.keep(l) and not write(cjson.encode(o.encode(l)) .. "\n") then return false end
      end
      return true
    end
    local function finish(reason)
      send(o.poll(true))
      write(cjson.encode({ ["end"] = true, reason = reason }) .. "\n")
    end
    if not send(o.first(o.poll(not o.follow))) then return end
    local polls = 0
    while o.follow do
      async.sleep(M.LOG_POLL_MS)
      -- write("") sends nothing and says whether the client is still there.
      if not write("") then return end
      if server.stopping then return finish("server_stopping") end
      polls = polls + 1
      local reason = o.tick and o.tick(polls)
      if reason then return finish(reason) end
      if not send(o.poll()) then return end
    end
  end)
end

--- Marks a table as a JSON array (so an empty one is [] not {}).
M.array = require("prisn.output").array

return M
