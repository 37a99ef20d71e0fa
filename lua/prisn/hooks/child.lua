-- prisn.hooks.child: the inside of one hook run, `prisn __hook FILE HOOK`.
--
-- The server (prisn.hooks) starts this as a child process of its own, in its
-- own session, for one hook of one file. It reads the event as JSON on
-- stdin, loads FILE as text into a fresh restricted environment (see
-- M.environment), calls the file's function for HOOK with a copy of the
-- event, and writes the outcome as one JSON line on stdout:
--
--   {"result":"ok"}                          ran (any return value but a veto)
--   {"result":"vetoed","message":"..."}      pre_deploy returned false[, msg]
--   {"result":"undefined"}                   the file has no function for HOOK
--   {"result":"failed","message":"..."}      did not parse, raised, bad shape
--
-- What the hook prints (print) goes to stderr, which the server keeps (the
-- first 4 KiB) for its log. The server kills the child's process group at
-- the time limit; the child also stops the hook a second past it (an
-- instruction hook that checks the clock), so a hook orphaned by a server
-- that died cannot loop on for ever.
--
-- This runs operator code in a process that holds nothing of the server's:
-- the restrictions (no io, os.execute, require, load) keep a hook to its
-- job of deciding and notifying; they are not a security boundary against
-- the operator who wrote it (who can run anything on the host anyway).
local uv = require("luv")
local cjson = require("cjson")
local sandbox = require("prisn.sandbox")
local hook_http = require("prisn.hooks.http")

local M = {}

-- The event as the hook sees it: JSON null becomes nil (`if event.signal
-- then` works) and whole numbers integers.
local plain = require("prisn.store").plain_json

-- An error message with the whole path of the file where Lua shortened it
-- ("...oks/deploy.lua:3: msg"); a message without a position (error(msg,
-- 0)) stays as the hook wrote it.
local function where(message, file)
  message = tostring(message)
  if message:sub(1, 3) == "..." then return sandbox.full_path(message, file) end
  return message
end

--- A fresh global table for one hook file: the sandbox's "child" set
-- (prisn.sandbox), plus json, http and print. `write_line(text)` receives
-- each printed line (default: stderr).
function M.environment(write_line)
  write_line = write_line or function(text) io.stderr:write(text, "\n") end
  local env = sandbox.environment("child")
  env.json = { encode = cjson.encode, decode = cjson.decode, null = cjson.null }
  env.http = hook_http.api()
  env.print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    write_line(table.concat(parts, "\t"))
  end
  env._G = env
  return env
end

-- Calls fn(...) in a coroutine of its own; with `deadline_ns` (uv.hrtime),
-- an instruction hook on that coroutine checks the clock every 10000
-- instructions and raises past the deadline, and from then on at every
-- instruction, so no pcall inside the hook can swallow it. Returns what
-- pcall would. prisn's own code never runs under the hook.
local function call(deadline_ns, limit_ms, fn, ...)
  local co = coroutine.create(fn)
  if deadline_ns then
    local message = string.format("ran past its time limit of %d ms", limit_ms)
    debug.sethook(co, function()
      if uv.hrtime() >= deadline_ns then
        debug.sethook(co, debug.gethook(co), "", 1)
        error(message, 0)
      end
    end, "", 10000)
  end
  local results = table.pack(coroutine.resume(co, ...))
  if results[1] and coroutine.status(co) ~= "dead" then
    return false, "the hook yielded (coroutines are not available to hooks)"
  end
  return table.unpack(results, 1, results.n)
end

--- Runs hook `hook` of the file `file` (its text `text`) with `event`.
-- Returns the outcome table written on stdout (see the module header).
-- opts: limit_ms (arms the clock check), write_line (for print).
function M.run(file, text, hook, event, opts)
  opts = opts or {}
  local env = M.environment(opts.write_line)
  local chunk, err = load(text, "@" .. file, "t", env)
  if not chunk then return { result = "failed", message = sandbox.full_path(err, file) } end
  -- A second of grace: the server's own timer classifies the run first.
  local deadline = opts.limit_ms and uv.hrtime() + (opts.limit_ms + 1000) * 1e6
  local ok, defs = call(deadline, opts.limit_ms, chunk)
  if not ok then return { result = "failed", message = where(defs, file) } end
  if type(defs) ~= "table" then
    return { result = "failed", message = file .. ": returns " .. type(defs)
      .. ", not a table of hook functions ({ on_crash = function(event) ... end })" }
  end
  local fn = defs[hook]
  if fn == nil then return { result = "undefined" } end
  if type(fn) ~= "function" then
    return { result = "failed", message = file .. ": " .. hook .. " is a " .. type(fn) .. ", not a function" }
  end
  local results = table.pack(call(deadline, opts.limit_ms, fn, plain(event)))
  if not results[1] then return { result = "failed", message = where(results[2], file) } end
  if hook == "pre_deploy" and results[2] == false then
    local message = results[3]
    if message == nil then
      message = "vetoed by " .. file
    else
      message = tostring(message)
    end
    return { result = "vetoed", message = message:sub(1, 1000) }
  end
  return { result = "ok" }
end

--- Which of `names` the file defines as functions: { "on_crash", ... } or
-- nil, message.
function M.list(file, text, names)
  local chunk, err = load(text, "@" .. file, "t", M.environment())
  if not chunk then return nil, sandbox.full_path(err, file) end
  local ok, defs = sandbox.call(chunk)
  if not ok then return nil, sandbox.full_path(defs, file) end
  if type(defs) ~= "table" then return nil, file .. ": returns " .. type(defs) .. ", not a table" end
  local found = {}
  for _, name in ipairs(names) do
    if type(defs[name]) == "function" then found[#found + 1] = name end
  end
  return found
end

-- The outcome as one line of JSON, "result" first and the other fields by
-- name: the server reads it and docs/HOOKS.md shows it, so it must not
-- depend on a table's hash order.
local function outcome_line(outcome)
  local keys = {}
  for k in pairs(outcome) do
    if k ~= "result" then keys[#keys + 1] = tostring(k) end
  end
  table.sort(keys)
  local parts = { cjson.encode("result") .. ":" .. cjson.encode(outcome.result) }
  for _, k in ipairs(keys) do parts[#parts + 1] = cjson.encode(k) .. ":" .. cjson.encode(outcome[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

--- The `prisn __hook` command: reads the event from stdin, runs, writes
-- the outcome. Returns the exit status (0 unless the hook failed).
function M.main(file, hook, limit_ms)
  -- stdin first, whatever happens next, so the server's write never meets
  -- a closed pipe.
  local ok, event = pcall(cjson.decode, io.stdin:read("a") or "")
  if not ok or type(event) ~= "table" then event = {} end
  local f, open_err = io.open(file, "rb")
  local outcome
  if not f then
    outcome = { result = "failed", message = "cannot read the hook file: " .. tostring(open_err) }
  else
    local text = f:read("a")
    f:close()
    local ran, result = pcall(M.run, file, text, hook, event, { limit_ms = limit_ms })
    outcome = ran and result or { result = "failed", message = tostring(result) }
  end
  io.stdout:write(outcome_line(outcome), "\n")
  io.stdout:flush()
  return outcome.result == "failed" and 1 or 0
end

return M
