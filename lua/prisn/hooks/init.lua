-- prisn.hooks: operator-written Lua run on server events (docs/HOOKS.md).
--
-- A hook file is a Lua file returning a table of functions keyed by hook
-- name. The files in $PRISN_HOME/hooks/*.lua run in name order, then the
-- extra files a caller names (a manifest's hooks).
--
--   local h = hooks.new({ home = home, log = log, record_event = fn })
--   h:fire("on_crash", event, { files = { "/srv/api/hooks.lua" }, namespace = "default" },
--     function(result) ... end)
--
-- Every run of a hook is a child process of its own, `prisn __hook FILE
-- HOOK` (prisn.hooks.child), in its own session, with the event as JSON on
-- stdin and a time limit: at the limit its process group gets SIGKILL. So a
-- hook that loops, hangs, raises or does not parse costs the server a child
-- process and an event ("hook.failed", "hook.timed_out"), never a blocked
-- loop or a corrupted Lua state; the caller only ever gets a result.
--
-- Cheap when unused: a file is run for a hook only when the hook's name
-- appears in its text (read once per modification), so an event with no hook
-- files, or none that mention that hook, starts no process at all.
--
-- Not done here: fail-closed vetoes. A pre_deploy hook that fails or times
-- out does not veto (a broken hook must not stop every deploy); the failure
-- is an event and is in result.failures for a caller that wants to be
-- stricter.
local uv = require("luv")
local cjson = require("cjson")
local fs = require("prisn.fs")
local errors = require("prisn.error")
local jobs = require("prisn.store.jobs")
local exec_process = require("prisn.exec.process")

local M = {}

M.NAMES = { "pre_deploy", "post_deploy", "on_crash", "on_scale", "on_job_finish" }
M.DEFAULT_TIMEOUT_MS = 5000
M.MAX_OUTPUT_BYTES = 4096   -- of a hook's stderr (its print output), kept for the log and events
M.MAX_RESULT_BYTES = 65536  -- of its stdout (the one JSON line)
M.MAX_RUNNING = 8           -- hook processes at once; more wait their turn
M.MAX_WAITING = 1000        -- past that a run is dropped (and is a failure)

local KNOWN = {}
for _, name in ipairs(M.NAMES) do KNOWN[name] = true end

--- Which hook names `text` mentions as whole words: { on_crash = true, ... }.
-- Only these are worth a process; a file that defines a hook names it.
function M.mentions(text)
  local found = {}
  for _, name in ipairs(M.NAMES) do
    if text:find("%f[%w_]" .. name .. "%f[^%w_]") then found[name] = true end
  end
  return found
end

--- The time limit: PRISN_HOOK_TIMEOUT_MS when it is a positive number,
-- else M.DEFAULT_TIMEOUT_MS.
function M.timeout_from_env(value)
  local ms = tonumber(value or "")
  if ms and ms > 0 then return math.floor(ms) end
  return M.DEFAULT_TIMEOUT_MS
end

--- What a finished child amounts to. run = { status (the exit status:
-- { exited, code, signal }), stdout, stderr, timed_out, limit_ms }. Returns
-- { status = "ok"|"vetoed"|"undefined"|"failed"|"timed_out", message, output }.
function M.interpret(run)
  local output = (run.stderr or ""):gsub("%s+$", "")
  if run.timed_out then
    return { status = "timed_out", output = output,
      message = string.format("ran past its time limit of %d ms and was killed", run.limit_ms or 0) }
  end
  local line = (run.stdout or ""):match("([^\n]+)\n?$")
  local ok, reply = pcall(cjson.decode, line or "")
  if ok and type(reply) == "table" and type(reply.result) == "string" then
    local message = type(reply.message) == "string" and reply.message or nil
    if reply.result == "failed" and message and message:find("ran past its time limit", 1, true) then
      return { status = "timed_out", message = message, output = output }
    end
    if reply.result == "ok" or reply.result == "vetoed" or reply.result == "undefined"
        or reply.result == "failed" then
      return { status = reply.result, message = message, output = output }
    end
  end
  local status = run.status or {}
  local how = status.signal and ("was killed by SIG" .. status.signal)
    or ("exited with status " .. tostring(status.code))
  local message = "the hook process " .. how .. " without an outcome"
  if output ~= "" then message = message .. ": " .. output:match("^[^\n]*") end
  return { status = "failed", message = message, output = output }
end

--- The on_job_finish event for a finished job record (prisn.store.jobs):
-- { namespace, job, script, cron, state, reason, exit_code, duration_ms }.
function M.job_event(job)
  local duration = jobs.duration_ms(job)
  local function plain(v) if v ~= cjson.null then return v end end
  return { namespace = job.namespace, job = job.id, script = plain(job.script), cron = plain(job.cron),
    state = job.state, reason = plain(job.reason), exit_code = plain(job.exit_code),
    duration_ms = plain(duration) }
end

local Hooks = {}
Hooks.__index = Hooks

-- The environment of a hook process: the server's own (a hook reads its
-- settings with os.getenv), with PRISN_HOME pinned.
local child_env = require("prisn.home").child_env

--- A hook runner. opts: home ($PRISN_HOME; hooks are read from home/hooks),
-- log (a prisn.server.log, optional), record_event (function(ev), optional),
-- timeout_ms (default PRISN_HOOK_TIMEOUT_MS or 5000), exe (the prisn binary,
-- default uv.exepath()), start (default prisn.exec.process.start; specs
-- pass a fake).
function M.new(opts)
  opts = opts or {}
  return setmetatable({
    home = opts.home,
    dir = opts.dir or (opts.home and (opts.home .. "/hooks")),
    log = opts.log,
    record_event = opts.record_event,
    timeout_ms = opts.timeout_ms or M.timeout_from_env(os.getenv("PRISN_HOOK_TIMEOUT_MS")),
    exe = opts.exe,
    start = opts.start,
    scanned = {},  -- path -> { stamp, mentions } | { stamp, error }
    running = {},  -- process -> true
    running_count = 0,
    waiting = {},  -- functions that start a run
    closed = false,
  }, Hooks)
end

-- What `path` mentions, re-read only when its size or mtime changed.
-- Returns the mentions set, or nil, message when it cannot be read.
function Hooks:scan(path)
  local st, err = uv.fs_stat(path)
  if not st then
    self.scanned[path] = nil
    return nil, "cannot read the hook file: " .. tostring(err)
  end
  local stamp = st.size .. "@" .. st.mtime.sec .. "." .. st.mtime.nsec
  local known = self.scanned[path]
  if known and known.stamp == stamp then return known.mentions, known.error end
  local text, rerr = fs.read_file(path)
  local entry = { stamp = stamp }
  if text then entry.mentions = M.mentions(text) else entry.error = "cannot read the hook file: " .. tostring(rerr) end
  self.scanned[path] = entry
  return entry.mentions, entry.error
end

--- The hook files, in the order they run: { { path, label } ... }, the
-- directory's *.lua files by name (label: the file name), then `extra`
-- (label: the path as given).
function Hooks:files(extra)
  local list = {}
  if self.dir then
    for _, entry in ipairs(fs.list_dir(self.dir)) do
      if entry.name:match("%.lua$") and entry.type ~= "directory" and not entry.name:match("^%.") then
        list[#list + 1] = { path = self.dir .. "/" .. entry.name, label = entry.name }
      end
    end
  end
  for _, path in ipairs(extra or {}) do list[#list + 1] = { path = path, label = path } end
  return list
end

--- The hook files and the hooks each one mentions:
-- { { file, path, hooks = { "on_crash", ... } | error } }. For `prisn doctor`:
-- it reads the files, it does not run them.
function Hooks:list(extra)
  local out = {}
  for _, f in ipairs(self:files(extra)) do
    local mentions, err = self:scan(f.path)
    local names = {}
    for _, name in ipairs(M.NAMES) do
      if mentions and mentions[name] then names[#names + 1] = name end
    end
    out[#out + 1] = { file = f.label, path = f.path, hooks = names, error = err }
  end
  return out
end

function Hooks:note(action, namespace, label, hook, message)
  if self.record_event then
    local ok, err = pcall(self.record_event, { action = action, namespace = namespace,
      object = "hook/" .. label .. ":" .. hook, message = message })
    if not ok and self.log then self.log:error("hooks: record_event: %s", tostring(err)) end
  end
end

-- Starts waiting runs while fewer than MAX_RUNNING run.
function Hooks:pump()
  while self.running_count < M.MAX_RUNNING and #self.waiting > 0 do
    table.remove(self.waiting, 1).go()
  end
end

-- SIGKILL to the process group of a child that has not been reaped yet
-- (after that its pid may belong to someone else).
local function kill_group(child)
  if child.status then return end
  pcall(child.kill, child, "KILL", true)
end

-- Runs `hook` of `path` in a child; calls done(outcome) (see M.interpret).
function Hooks:run_child(path, hook, payload, done)
  local exe = self.exe or uv.exepath()
  local limit = self.timeout_ms
  local start = self.start or exec_process.start
  local child, err = start({
    file = exe, argv = { exe, "__hook", path, hook, "--timeout-ms", tostring(limit) },
    env = child_env(self.home), cwd = "/",
    stdin = "pipe", stdout = "pipe", stderr = "pipe", session = true,
    -- A CPU-bound loop orphaned by a dead server ends anyway; no core files.
    rlimits = { cpu = limit // 1000 + 3, core = 0 },
  })
  if not child then
    return done({ status = "failed", message = "cannot start the hook process: " .. tostring(err) })
  end
  self.running[child] = true
  self.running_count = self.running_count + 1
  local run = { limit_ms = limit }
  local out, out_len, errs, err_len = {}, 0, {}, 0
  local streams_open, finished = 2, false
  local timer = uv.new_timer()
  local function finish()
    if finished or not run.status or streams_open > 0 then return end
    finished = true
    timer:stop()
    timer:close()
    self.running[child] = nil
    self.running_count = self.running_count - 1
    run.stdout, run.stderr = table.concat(out), table.concat(errs)
    done(M.interpret(run))
    self:pump()
  end
  local function eof() streams_open = streams_open - 1; finish() end
  local process = exec_process
  process.drain(child.stdout, function(data)
    if out_len < M.MAX_RESULT_BYTES then out[#out + 1] = data; out_len = out_len + #data end
  end, eof)
  process.drain(child.stderr, function(data)
    if err_len < M.MAX_OUTPUT_BYTES then
      data = data:sub(1, M.MAX_OUTPUT_BYTES - err_len)
      errs[#errs + 1] = data
      err_len = err_len + #data
    end
  end, eof)
  child.stdin:write(payload, function() end)
  child.stdin:shutdown(function() if not child.stdin:is_closing() then child.stdin:close() end end)
  timer:start(limit, 0, function()
    run.timed_out = true
    kill_group(child)
  end)
  child:on_exit(function(status)
    run.status = status
    if streams_open > 0 then
      -- Something the hook started (a curl) still holds the pipes: give it
      -- a moment, then stop reading.
      timer:stop()
      timer:start(1000, 0, function()
        for _, pipe in ipairs({ child.stdout, child.stderr }) do
          if not pipe:is_closing() then pipe:read_stop(); pipe:close() end
        end
        streams_open = 0
        finish()
      end)
    end
    finish()
  end)
end

-- Runs one hook of one file (through the queue); calls done(outcome).
function Hooks:run(path, hook, payload, done)
  local function go() self:run_child(path, hook, payload, done) end
  if self.running_count < M.MAX_RUNNING then return go() end
  if #self.waiting >= M.MAX_WAITING then
    return done({ status = "failed", message = string.format(
      "dropped: %d hook runs were already waiting", #self.waiting) })
  end
  self.waiting[#self.waiting + 1] = { go = go, done = done }
end

local function iso_now()
  return os.date("!%Y-%m-%dT%H:%M:%SZ")
end

--- Runs hook `name` of every hook file that mentions it, with `event` (a
-- table; `hook` and `time` are filled in when absent). opts: files (extra
-- hook files, run after the directory's), namespace (for the events;
-- default event.namespace). pre_deploy runs the files one after another and
-- stops at the first veto; the other hooks run concurrently. callback
-- (optional) gets { vetoed, message, file, ran, failures = { { file, hook,
-- reason = "failed"|"timed_out", message } } } once every run has ended, or
-- at once (before fire returns) when there is nothing to run.
function Hooks:fire(name, event, opts, callback)
  if not KNOWN[name] then
    error("hooks.fire: unknown hook '" .. tostring(name) .. "' (one of " .. table.concat(M.NAMES, ", ") .. ")", 2)
  end
  opts = opts or {}
  callback = callback or function() end
  local result = { vetoed = false, ran = 0, failures = {} }
  local todo = {}
  for _, f in ipairs(self:files(opts.files)) do
    local mentions, err = self:scan(f.path)
    if mentions and mentions[name] then
      todo[#todo + 1] = f
    elseif err then
      -- A named file that is missing is the operator's to fix: say so.
      todo[#todo + 1] = { path = f.path, label = f.label, error = err }
    end
  end
  if #todo == 0 or self.closed then return callback(result) end

  local payload = {}
  for k, v in pairs(event or {}) do payload[k] = v end
  payload.hook = payload.hook or name
  payload.time = payload.time or iso_now()
  local ns = opts.namespace or payload.namespace
  local ok, encoded = pcall(cjson.encode, payload)
  if not ok then error("hooks.fire: the event cannot be encoded as JSON: " .. tostring(encoded), 2) end

  local function record(f, outcome)
    if outcome.output and outcome.output ~= "" and self.log then
      self.log:info("hook %s:%s printed: %s", f.label, name, outcome.output)
    end
    if outcome.status == "ok" then
      result.ran = result.ran + 1
      self:note("hook.ran", ns, f.label, name, "ran")
    elseif outcome.status == "vetoed" then
      result.ran = result.ran + 1
      result.vetoed, result.message, result.file = true, outcome.message, f.label
      self:note("hook.vetoed", ns, f.label, name, outcome.message)
    elseif outcome.status == "failed" or outcome.status == "timed_out" then
      local message = outcome.message or outcome.status
      if outcome.status == "failed" and outcome.output and outcome.output ~= "" then
        message = message .. " (output: " .. outcome.output:sub(1, 500) .. ")"
      end
      result.failures[#result.failures + 1] = { file = f.label, hook = name, reason = outcome.status,
        message = outcome.message }
      if self.log then self.log:warn("hook %s:%s %s: %s", f.label, name, outcome.status, message) end
      self:note("hook." .. outcome.status, ns, f.label, name, message)
    end
  end
  local function report(err)
    if self.log then self.log:error("hooks: %s", tostring(err)) end
  end
  local function guarded(fn, ...)
    errors.call("hooks", fn, report, ...)
  end

  if name == "pre_deploy" then
    local i = 0
    local function step()
      i = i + 1
      local f = todo[i]
      if not f or result.vetoed or self.closed then return guarded(callback, result) end
      if f.error then
        record(f, { status = "failed", message = f.error })
        return step()
      end
      self:run(f.path, name, encoded, function(outcome)
        guarded(record, f, outcome)
        step()
      end)
    end
    return step()
  end

  local left = #todo
  local function one_done()
    left = left - 1
    if left == 0 then guarded(callback, result) end
  end
  for _, f in ipairs(todo) do
    if f.error then
      record(f, { status = "failed", message = f.error })
      one_done()
    else
      self:run(f.path, name, encoded, function(outcome)
        guarded(record, f, outcome)
        one_done()
      end)
    end
  end
end

--- Stops: no new runs, waiting runs are dropped (as failures), running ones
-- get SIGKILL (their callbacks still come, as failures).
function Hooks:close()
  self.closed = true
  local waiting = self.waiting
  self.waiting = {}
  for _, w in ipairs(waiting) do
    w.done({ status = "failed", message = "dropped: the server is stopping" })
  end
  for child in pairs(self.running) do kill_group(child) end
end

return M
