-- prisn.async: straight-line code on top of luv's callbacks.
--
-- A task is a coroutine; an operation that would block yields and its luv
-- callback resumes it. `async.main(fn)` is for the CLI: it runs fn as a task
-- and drives the loop until fn returns. The server runs its own loop and
-- starts tasks with `async.spawn`. Lua never runs a nested uv.run: main() may
-- only be called when no loop is running.
local uv = require("luv")
local errors = require("prisn.error")

local M = {}

-- Who hears about a task's failure: task -> function(err). main() registers
-- one, because a task it resumes from a luv callback must not raise there:
-- luv reports an error escaping a callback as "Uncaught Error" and exits.
local on_failure = setmetatable({}, { __mode = "k" })

local function resume(co, ...)
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    -- An error in a task is an error of its owner: keep the task's traceback,
    -- and prisn.error objects (errors a user caused) as they are.
    if not errors.is(err) then err = debug.traceback(co, tostring(err)) end
    local handler = on_failure[co]
    if handler then return handler(err) end
    error(err, 0)
  end
end

--- Starts fn(...) as a task; it runs until its first wait.
function M.spawn(fn, ...)
  local co = coroutine.create(fn)
  resume(co, ...)
  return co
end

--- Waits inside a task: `start(callback)` begins an operation whose callback
-- delivers the results; the task sleeps until then and gets them back.
function M.wait(start)
  local co, main = coroutine.running()
  assert(co and not main, "async.wait outside a task")
  local results, done, waiting = nil, false, false
  start(function(...)
    results = table.pack(...)
    done = true
    if waiting then resume(co) end
  end)
  if not done then
    waiting = true
    coroutine.yield()
  end
  return table.unpack(results, 1, results.n)
end

--- Sleeps `ms` milliseconds inside a task.
function M.sleep(ms)
  M.wait(function(callback)
    local timer = uv.new_timer()
    timer:start(ms, 0, function()
      timer:close()
      callback()
    end)
  end)
end

--- Runs fn(...) as a task and drives the loop until it finishes. Returns what
-- fn returns; an error inside fn is raised here with the task's traceback,
-- and prisn.error objects pass through unchanged.
function M.main(fn, ...)
  local results, failure
  local co = coroutine.create(function(...)
    results = table.pack(fn(...))
  end)
  on_failure[co] = function(err) failure = err end
  resume(co, ...)
  while not failure and coroutine.status(co) ~= "dead" do
    local status, loop_err = pcall(uv.run, "once")
    if not status then failure = loop_err break end
  end
  if failure then error(failure, 0) end
  return table.unpack(results, 1, results.n)
end

--- Closes every luv handle still open and runs the loop until their close
-- callbacks have run. Call it before the Lua state closes: a close callback
-- that runs while lua_close frees the state (luv's loop finalizer runs the
-- loop once more) touches freed memory and crashes the process.
function M.drain()
  uv.walk(function(handle)
    if not handle:is_closing() then handle:close() end
  end)
  while uv.run("nowait") do end
end

--- Runs a program and collects its output, inside a task. `opts.env` is a
-- list of "K=V" (default: inherit), `opts.stdin` a string, `opts.timeout_ms`
-- kills it after that long. Returns { code, signal, stdout, stderr } or
-- nil, message, code when it cannot be started (ENOENT: not installed).
function M.capture(file, args, opts)
  opts = opts or {}
  local stdout, stderr = uv.new_pipe(false), uv.new_pipe(false)
  local stdin = opts.stdin and uv.new_pipe(false) or nil
  local out, err = {}, {}
  local pending = 3
  local result = {}
  local finish
  local handle, spawn_err, spawn_code = uv.spawn(file, {
    args = args,
    env = opts.env,
    cwd = opts.cwd,
    stdio = { stdin, stdout, stderr },
  }, function(code, signal)
    result.code, result.signal = code, signal
    pending = pending - 1
    if pending == 0 and finish then finish() end
  end)
  if not handle then
    stdout:close(); stderr:close()
    if stdin then stdin:close() end
    return nil, string.format("%s: %s", file, spawn_err), spawn_code
  end
  local function reader(chunks, pipe)
    return function(read_err, data)
      if data and not read_err then
        chunks[#chunks + 1] = data
        return
      end
      pipe:close()
      pending = pending - 1
      if pending == 0 and finish then finish() end
    end
  end
  stdout:read_start(reader(out, stdout))
  stderr:read_start(reader(err, stderr))
  if stdin then
    stdin:write(opts.stdin)
    stdin:shutdown(function() stdin:close() end)
  end
  local timer
  if opts.timeout_ms then
    timer = uv.new_timer()
    timer:start(opts.timeout_ms, 0, function()
      result.timed_out = true
      if not handle:is_closing() then handle:kill("sigkill") end
    end)
  end
  M.wait(function(callback)
    if pending == 0 then callback() else finish = callback end
  end)
  if timer then timer:stop(); timer:close() end
  handle:close()
  result.stdout, result.stderr = table.concat(out), table.concat(err)
  return result
end

return M
