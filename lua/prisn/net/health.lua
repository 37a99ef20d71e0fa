-- prisn.net.health: health checks of service instances (docs/HEALTH.md).
--
--   local spec, err = health.parse("http:/healthz")        -- or "tcp", "none"
--   local spec, err = health.normalize(manifest_health)     -- string or table
--   health.probe({ kind, host, port, path, timeout_ms }, function(ok, detail) end)
--   local c = health.checker(spec, { host = "127.0.0.1", port = 8080,
--     on_change = function(state, detail) end })
--   c:start() ... c:stop()
--
-- Three layers, so the part with the rules is tested with a fake clock:
--
-- * parse/normalize turn what a user types (`--health http:/healthz`, a
--   manifest's `health = { http = "/healthz", interval = "5s" }`) into one
--   spec table with durations in milliseconds and every default filled.
-- * step() is the state machine: a pure function of (state, probe result,
--   now, spec), no clock, no I/O.
-- * probe() is one check over luv (HTTP status line or TCP connect, never
--   longer than its timeout); checker() only arms timers and runs probes,
--   feeding each result to step().
--
-- What it does not do: restart anything, or take instances out of the load
-- balancer — it reports state changes and the supervisor acts on them. It does
-- not resolve names asynchronously in a probe: host must be an IP address
-- ("localhost" is taken as 127.0.0.1).
local uv = require("luv")
local units = require("prisn.units")
local errors = require("prisn.error")

local M = {}

--- Defaults filled in by parse/normalize. Durations in milliseconds.
-- interval_ms: time between checks of an instance that has been healthy.
-- timeout_ms: a probe that has not answered by then failed.
-- failure_threshold: consecutive failures that mark an instance failed
-- (the supervisor restarts it).
-- start_grace_ms: after start, failures do not count for this long.
-- starting_interval_ms: while an instance has never been healthy it is
-- probed this often, so a new instance joins the pool within ~100 ms of
-- being ready (a rolling update waits for that).
M.DEFAULTS = {
  interval_ms = 2000,
  timeout_ms = 1000,
  failure_threshold = 3,
  start_grace_ms = 30000,
  starting_interval_ms = 100,
}

M.KINDS = { http = true, tcp = true, none = true }

local FORMS = "use http:/PATH (e.g. http:/healthz), tcp or none"

local function with_defaults(kind, path)
  local spec = { kind = kind, path = path }
  for k, v in pairs(M.DEFAULTS) do spec[k] = v end
  return spec
end

-- A request path must fit in a request line: no spaces or control characters.
local function check_path(path)
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    return nil, "the http path must start with /, as in http:/healthz"
  end
  if path:sub(1, 2) == "//" then
    return nil, string.format("'%s' is not a path; give just the path, as in http:/healthz", path)
  end
  if path:find("[%s%c]") then
    return nil, string.format("%q: the http path cannot contain spaces or control characters", path)
  end
  return true
end

--- Parses the command-line form: "http:/PATH", "tcp" or "none". Returns a
-- spec with defaults (see normalize), or nil, message.
function M.parse(text)
  if type(text) ~= "string" then return nil, "expected a health check; " .. FORMS end
  if text == "tcp" or text == "none" then return with_defaults(text) end
  if text:sub(1, 5) == "http:" then
    local path = text:sub(6)
    local ok, err = check_path(path)
    if not ok then return nil, err end
    return with_defaults("http", path)
  end
  return nil, string.format("'%s' is not a health check; %s", text, FORMS)
end

local TABLE_FIELDS = { http = true, tcp = true, none = true, interval = true, timeout = true,
  start_grace = true, failure_threshold = true,
  -- the form manifest.lua produces (seconds) and this module's own (ms)
  kind = true, path = true, interval_ms = true, timeout_ms = true, start_grace_ms = true,
  starting_interval_ms = true }
local KNOWN = "failure_threshold, http, interval, none, start_grace, tcp, timeout"

-- Every duration of a check is at most an hour, its failure threshold at
-- most MAX_THRESHOLD: past that a check means nothing, and a timer armed
-- with a huge or infinite delay breaks the supervisor instead.
M.MAX_MS = 3600 * 1000
M.MAX_THRESHOLD = 1000

local function duration_ms(t, name, positive)
  local v = t[name .. "_ms"]
  local min = positive and 1 or 0
  if v ~= nil then
    if type(v) ~= "number" or not (v >= min and v <= M.MAX_MS) then
      return nil, string.format("%s_ms: expected milliseconds from %d to %d, got %s", name, min, M.MAX_MS,
        tostring(v))
    end
  else
    v = t[name]
    if v == nil then return M.DEFAULTS[name .. "_ms"] end
    local seconds, err = units.parse_duration(v)
    if not seconds then return nil, name .. ": " .. err end
    v = seconds * 1000
    if not (v >= min and v <= M.MAX_MS) then
      return nil, string.format("%s: expected a duration from %s to 1h, got %s", name, positive and "1ms" or "0s",
        tostring(t[name]))
    end
  end
  return math.floor(v + 0.5)
end

--- Turns a health value as written in a manifest into a spec:
--   nil                    -> tcp (the manifest's default)
--   "http:/healthz" | "tcp" | "none"
--   { http = "/healthz" | tcp = true | none = true, interval, timeout,
--     start_grace, failure_threshold }  -- durations: "5s" or seconds
--   { kind = "http", path = ..., interval = 10, ... } -- manifest.lua's output
-- Returns { kind, path, interval_ms, timeout_ms, failure_threshold,
-- start_grace_ms, starting_interval_ms } or nil, message naming the field.
function M.normalize(value)
  if value == nil then return M.parse("tcp") end
  if type(value) == "string" then return M.parse(value) end
  if type(value) ~= "table" then
    return nil, "expected a string or a table, got " .. type(value) .. "; " .. FORMS
  end
  for k in pairs(value) do
    if not TABLE_FIELDS[k] then
      return nil, string.format("%s: unknown field (known fields: %s)", tostring(k), KNOWN)
    end
  end
  local kind, path = value.kind, value.path
  if kind == nil then
    local n = 0
    for _, k in ipairs({ "http", "tcp", "none" }) do
      if value[k] ~= nil and value[k] ~= false then n, kind = n + 1, k end
    end
    if n ~= 1 then return nil, "give exactly one of http, tcp or none" end
    if (value.tcp ~= nil and value.tcp ~= true) or (value.none ~= nil and value.none ~= true) then
      return nil, kind .. ": expected true"
    end
    path = value.http
  elseif not M.KINDS[kind] then
    return nil, "kind: expected http, tcp or none, got " .. tostring(kind)
  end
  if kind == "http" then
    local ok, err = check_path(path)
    if not ok then return nil, "http: " .. err end
  else
    path = nil
  end
  local spec = { kind = kind, path = path }
  local err
  for _, name in ipairs({ "interval", "timeout", "starting_interval" }) do
    spec[name .. "_ms"], err = duration_ms(value, name, true)
    if not spec[name .. "_ms"] then return nil, err end
  end
  spec.start_grace_ms, err = duration_ms(value, "start_grace", false)
  if not spec.start_grace_ms then return nil, err end
  local n = value.failure_threshold
  if n == nil then n = M.DEFAULTS.failure_threshold end
  n = math.tointeger(n) or n -- 3.0 from a JSON decoder is 3
  if math.type(n) ~= "integer" or n < 1 or n > M.MAX_THRESHOLD then
    return nil, string.format("failure_threshold: expected a whole number from 1 to %d, got %s", M.MAX_THRESHOLD,
      tostring(n))
  end
  spec.failure_threshold = n
  return spec
end

--- One line for status output: "http:/healthz every 2s (timeout 1s, 3
-- failures, grace 30s)".
function M.describe(spec)
  if spec.kind == "none" then return "none" end
  local s = function(ms) return units.format_duration(ms / 1000) end
  return string.format("%s every %s (timeout %s, %d failure%s, grace %s)",
    spec.kind == "http" and ("http:" .. spec.path) or "tcp", s(spec.interval_ms), s(spec.timeout_ms),
    spec.failure_threshold, spec.failure_threshold == 1 and "" or "s", s(spec.start_grace_ms))
end

-- The state machine ---------------------------------------------------------

--- The state of an instance started at now_ms.
function M.new_state(now_ms)
  return { state = "starting", started_ms = now_ms, failures = 0, counted_ms = nil, reason = nil }
end

--- Applies one probe result. Pure: returns a new state table and the name
-- of the state it changed to ("healthy", "unhealthy", "failed"), or nil when
-- the state name did not change. The new table's `reason` says why on a
-- change to unhealthy or failed.
--
-- Rules: the first success makes an instance healthy; a healthy instance's
-- first failure makes it unhealthy at once (out of the pool); a success makes
-- it healthy again and resets the count; failure_threshold consecutive
-- failures make it failed (final: the supervisor restarts it). While it has
-- never been healthy, failures within start grace do not count, and after
-- grace at most one failure counts per interval (it is probed faster than
-- that), so it fails about grace + (threshold - 1) * interval after start.
function M.step(st, ok, now_ms, spec)
  local nxt = { state = st.state, started_ms = st.started_ms, failures = st.failures,
    counted_ms = st.counted_ms, reason = nil }
  if st.state == "failed" then
    nxt.reason = st.reason
    return nxt, nil
  end
  if ok then
    nxt.failures, nxt.counted_ms = 0, nil
    nxt.state = "healthy"
    return nxt, st.state ~= "healthy" and "healthy" or nil
  end
  if st.state == "starting" then
    if now_ms - st.started_ms < spec.start_grace_ms then return nxt, nil end
    if st.counted_ms and now_ms - st.counted_ms < spec.interval_ms then return nxt, nil end
    nxt.counted_ms = now_ms
  end
  nxt.failures = st.failures + 1
  if nxt.failures >= spec.failure_threshold then
    nxt.state = "failed"
    if st.state == "starting" then
      nxt.reason = string.format("not healthy after the start grace of %s and %d failed check%s",
        units.format_duration(spec.start_grace_ms / 1000), nxt.failures, nxt.failures == 1 and "" or "s")
    else
      nxt.reason = string.format("%d consecutive failed check%s", nxt.failures, nxt.failures == 1 and "" or "s")
    end
    return nxt, "failed"
  end
  if st.state == "healthy" then
    nxt.state = "unhealthy"
    return nxt, "unhealthy"
  end
  return nxt, nil
end

--- Milliseconds from the start of one probe to the start of the next.
function M.next_delay(st, spec)
  if st.state == "starting" then return math.min(spec.starting_interval_ms, spec.interval_ms) end
  return spec.interval_ms
end

-- Probes --------------------------------------------------------------------

local ERRORS = {
  ECONNREFUSED = "connection refused", ECONNRESET = "connection reset", EPIPE = "connection closed",
  EHOSTUNREACH = "host unreachable", ENETUNREACH = "network unreachable", ETIMEDOUT = "timed out",
  EADDRNOTAVAIL = "address not available", ECONNABORTED = "connection aborted",
}

local function describe_error(err)
  local code = tostring(err):match("^(E%u+)")
  return code and ERRORS[code] or tostring(err)
end

local MAX_STATUS_LINE = 4096

--- Runs one check and calls done(ok, detail) exactly once, from a loop
-- callback (never before probe returns), at most timeout_ms after the call.
-- target: { kind = "http"|"tcp"|"none", host = "127.0.0.1", port, path,
-- timeout_ms }. detail: "HTTP 200" on a healthy HTTP check, else why it
-- failed: "connection refused", "timed out after 1s", "HTTP 500", ...
-- Returns cancel(): closes the probe's handles at once; done is then never
-- called. Raises on a malformed target. done must not raise: luv ends the
-- process on an error escaping a callback (the checker's own done does not).
function M.probe(target, done)
  assert(M.KINDS[target.kind], "probe: target.kind must be http, tcp or none")
  assert(type(done) == "function", "probe: done must be a function")
  local timeout_ms = target.timeout_ms or M.DEFAULTS.timeout_ms
  local host = target.host or "127.0.0.1"
  if host == "localhost" then host = "127.0.0.1" end
  uv.update_time() -- the timeout counts from now, not from the loop's last wake-up
  local timer, tcp = uv.new_timer(), nil
  local finished = false

  local function close_all()
    finished = true
    if not timer:is_closing() then timer:close() end
    if tcp and not tcp:is_closing() then tcp:close() end
  end
  local function finish(ok, detail)
    if finished then return end
    close_all()
    done(ok, detail)
  end
  -- A failure found before the loop runs is still reported from a callback.
  local function finish_soon(detail)
    timer:stop()
    timer:start(0, 0, function() finish(false, detail) end)
  end

  timer:start(timeout_ms, 0, function()
    finish(false, "timed out after " .. units.format_duration(timeout_ms / 1000))
  end)
  if target.kind == "none" then
    timer:stop()
    timer:start(0, 0, function() finish(true, nil) end)
    return close_all
  end
  if type(target.port) ~= "number" then error("probe: target.port must be a number", 2) end

  tcp = uv.new_tcp()
  local buffer = ""
  local function on_read(err, chunk)
    if finished then return end
    if err then return finish(false, describe_error(err)) end
    if not chunk then
      return finish(false, buffer == "" and "connection closed before a response"
        or "connection closed inside the status line")
    end
    buffer = buffer .. chunk
    local line = buffer:match("^([^\r\n]*)\r?\n")
    if not line then
      if #buffer > MAX_STATUS_LINE then finish(false, "status line too long") end
      return
    end
    local status = line:match("^HTTP/%d%.%d (%d%d%d)")
    if not status then return finish(false, string.format("not an HTTP response: %q", line:sub(1, 60))) end
    status = tonumber(status)
    finish(status >= 200 and status < 400, "HTTP " .. status)
  end
  local ok, req, err = pcall(tcp.connect, tcp, host, target.port, function(cerr)
    if finished then return end
    if cerr then return finish(false, describe_error(cerr)) end
    if target.kind == "tcp" then return finish(true, "connected") end
    local request = string.format("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: prisn-health\r\n"
      .. "Connection: close\r\n\r\n", target.path or "/", host:find(":") and ("[" .. host .. "]") or host,
      target.port)
    tcp:write(request, function(werr)
      if werr then finish(false, describe_error(werr)) end
    end)
    tcp:read_start(on_read)
  end)
  if not ok then
    finish_soon(string.format("%s:%s is not an IP address and port", host, tostring(target.port)))
  elseif not req then
    finish_soon(describe_error(err))
  end
  return close_all
end

-- The checker ---------------------------------------------------------------

local Checker = {}
Checker.__index = Checker

--- A checker of one instance: probes `opts.host` (127.0.0.1) : `opts.port`
-- by `spec` and calls opts.on_change(state, detail) on every change of
-- `c.state`: "healthy", "unhealthy" or "failed". It starts in "starting".
-- "failed" is final: the checker stops probing (the supervisor restarts the
-- instance and calls c:start() again, or makes a new checker).
-- opts.on_error(message) hears an error raised by on_change (default:
-- written to stderr); the checker goes on.
function M.checker(spec, opts)
  assert(type(spec) == "table" and M.KINDS[spec.kind], "checker: spec must come from parse or normalize")
  opts = opts or {}
  assert(spec.kind == "none" or type(opts.port) == "number", "checker: opts.port must be a number")
  return setmetatable({ spec = spec, host = opts.host or "127.0.0.1", port = opts.port,
    on_change = opts.on_change, on_error = opts.on_error, state = "starting", detail = nil,
    running = false }, Checker)
end

function Checker:_notify(state, detail)
  if not self.on_change then return end
  -- Reported to on_error, or (none given) on stderr as "health check on_change: <error>".
  errors.call("health check on_change", self.on_change, self.on_error, state, detail)
end

function Checker:_probe()
  if not self.running then return end
  uv.update_time()
  local started = uv.now()
  self.cancel = M.probe({ kind = self.spec.kind, host = self.host, port = self.port, path = self.spec.path,
    timeout_ms = self.spec.timeout_ms }, function(ok, detail)
    self.cancel = nil
    if not self.running then return end
    uv.update_time()
    local now = uv.now()
    local changed
    self.st, changed = M.step(self.st, ok, now, self.spec)
    self.state = self.st.state
    if ok or changed then self.detail = detail end
    if self.state == "failed" then
      self:stop()
    elseif self.spec.kind ~= "none" then
      local delay = math.max(0, M.next_delay(self.st, self.spec) - (now - started))
      self.timer:start(delay, 0, function() self:_probe() end)
    end
    if changed then
      self:_notify(changed, self.st.reason and detail and (self.st.reason .. ": " .. detail) or detail)
    end
  end)
end

--- Starts checking (again, from "starting", with a new grace). Idempotent.
function Checker:start()
  if self.running then return self end
  self.running = true
  uv.update_time()
  self.st = M.new_state(uv.now())
  self.state, self.detail = "starting", nil
  self.timer = uv.new_timer()
  self.timer:start(0, 0, function() self:_probe() end)
  return self
end

--- Stops checking: closes the timer and any probe in flight; on_change is
-- not called again. Idempotent; c.state keeps its last value.
function Checker:stop()
  self.running = false
  if self.cancel then
    self.cancel()
    self.cancel = nil
  end
  if self.timer then
    if not self.timer:is_closing() then self.timer:close() end
    self.timer = nil
  end
  return self
end

return M
