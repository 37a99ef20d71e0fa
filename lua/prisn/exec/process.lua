-- prisn.exec.process: a workload process on the event loop.
--
-- Wraps prisn.core.proc: the child's exit is observed by polling its pidfd
-- (Linux 5.3+), or by SIGCHLD plus a non-blocking wait of this one pid on
-- older kernels — never waitpid(-1), which would steal luv's children. Pipes
-- the child writes to become luv pipes. Everything here is mechanism; when to
-- signal and what an exit means is decided by the caller.
local uv = require("luv")
local proc = require("prisn.core.proc")
local async = require("prisn.async")
local procfs = require("prisn.procfs")
local sys = require("prisn.core.sys")

local M = {}

local Process = {}
Process.__index = Process

local function open_pipe(fd)
  local pipe = uv.new_pipe(false)
  local ok, err = pipe:open(fd)
  if not ok then
    pipe:close()
    error("cannot open pipe descriptor " .. fd .. ": " .. tostring(err))
  end
  return pipe
end

-- Calls self:_exited(status) once the child has ended.
function Process:_watch()
  local pidfd = self.handle:pidfd()
  local function reap()
    local status = self.handle:wait({ nohang = true })
    if status then self:_exited(status) end
  end
  if pidfd then
    self.poll = uv.new_poll(pidfd)
    self.poll:start("r", reap)
  else
    self.sigchld = uv.new_signal()
    self.sigchld:start("sigchld", reap)
    reap() -- it may already have ended before the handler was installed
  end
end

function Process:_exited(status)
  if self.status then return end
  self.status = status
  if self.poll then self.poll:stop(); self.poll:close(); self.poll = nil end
  if self.sigchld then self.sigchld:stop(); self.sigchld:close(); self.sigchld = nil end
  self.handle:close()
  local waiters = self.waiters
  self.waiters = {}
  for _, callback in ipairs(waiters) do callback(status) end
end

--- Waits (inside an async task) until the process ends; returns its status:
-- { exited = bool, code = n, signal = "TERM", signal_number = n, core_dumped }.
function Process:wait()
  if self.status then return self.status end
  return async.wait(function(callback)
    self.waiters[#self.waiters + 1] = callback
  end)
end

--- Calls callback(status) when the process ends (at once if it has).
function Process:on_exit(callback)
  if self.status then callback(self.status) else self.waiters[#self.waiters + 1] = callback end
end

--- Sends `signal` ("TERM", "KILL", a number) to the process, or with
-- group=true to its whole process group. Returns true or nil, msg, code
-- (ESRCH: nothing left to signal).
function Process:kill(signal, group)
  return self.handle:kill(signal, { group = group and true or false })
end

--- The process id.
function Process:pid()
  return self.handle:pid()
end

--- Starts a process. `spec` takes the options of prisn.core.proc.spawn; a
-- "pipe" for stdin/stdout/stderr becomes a luv pipe in proc.stdin/stdout/
-- stderr, owned by the caller. Returns the process, or nil, message, code,
-- stage when it could not be started (stage "exec" with ENOENT: the program
-- does not exist; code ETIMEDOUT: it did not reach exec within
-- spec.start_timeout_ms, 5 s by default, and was killed — the call blocks at
-- most that long). With opts.on_loop inside an async task, the task waits
-- for the child to reach its exec on the loop instead (a sandboxed chain
-- takes 10-20 ms: the server goes on serving, and other starts overlap),
-- calling opts.on_pending(pid, release) once the child exists, which
-- waits just before its exec until then: until on_pending returns, or
-- when it returns true, until it calls release() (from the loop, any time
-- later; a start never released is killed at its deadline). So a caller
-- can have the child's pid recorded before the child runs anything of the
-- workload's: if the caller dies first, the child ends too. At most
-- M.MAX_STARTING children start at once, the others wait their turn, and
-- opts.before_start() returning false then cancels (ECANCELED, stage
-- "setup"). A caller outside a task blocks as before.
-- Waits inside a task for a pending spawn (proc.spawn_start) to end: its
-- report fd readable, or its deadline. Returns what proc.spawn returns.
local function finish_on_loop(pending)
  local result = pending:finish()
  if result ~= false then return result end
  local poll, timer = uv.new_poll(pending:fd()), uv.new_timer()
  local handle, err, code, stage = async.wait(function(callback)
    local on_readable, on_deadline
    local function watch()
      poll:start("r", on_readable)
      timer:start(pending:left_ms() + 1, 0, on_deadline)
    end
    local function conclude(expired)
      -- Stopped while the fd is still open: finish closes it when it ends.
      poll:stop(); timer:stop()
      local got = table.pack(pending:finish(expired))
      if got[1] == false then return watch() end -- woken early
      callback(table.unpack(got, 1, got.n))
    end
    on_readable = function() conclude(false) end
    on_deadline = function() conclude(true) end
    watch()
  end)
  poll:close(); timer:close()
  return handle, err, code, stage
end

-- How many children may be starting (cloned, not yet exec'd) on the loop at
-- once; the next start waits its turn on the loop. Overlapping setups frees
-- the loop, but a hundred of them at once only compete for the CPUs (and
-- the kernel's mount locks) with the workloads already started: one per CPU
-- keeps a chain of them busy without flooding.
M.MAX_STARTING = math.max(2, uv.available_parallelism and uv.available_parallelism() or 2)
local starting, turns = 0, {}

local function take_turn()
  if starting < M.MAX_STARTING then
    starting = starting + 1
    return
  end
  async.wait(function(callback) turns[#turns + 1] = callback end)
end

-- The turn passes on from the loop, never from inside the task that ends
-- it (a chain of starts that fail at once would nest deeper and deeper).
local function end_turn()
  local next_turn = table.remove(turns, 1)
  if not next_turn then
    starting = starting - 1
    return
  end
  local timer = uv.new_timer()
  timer:start(0, 0, function() timer:close(); next_turn() end)
end

-- The process handle of the child spawned, or nil, message, code, stage:
-- with `on_loop` (inside a task), its wait for the child's exec happens on
-- the loop, so the loop serves others meanwhile.
local function spawn(spec, opts)
  local co, main = coroutine.running()
  if not opts.on_loop or not co or main then return proc.spawn(spec) end
  take_turn()
  if opts.before_start and not opts.before_start() then
    end_turn()
    return nil, "ECANCELED: setup " .. spec.file .. ": no longer wanted", "ECANCELED", "setup"
  end
  local on_pending = opts.on_pending
  if on_pending then
    local held = {}
    for k, v in pairs(spec) do held[k] = v end
    held.hold_gate = true
    spec = held
  end
  local ok, pending, err, code, stage = pcall(proc.spawn_start, spec)
  if not ok then end_turn(); error(pending, 0) end
  if not pending then end_turn(); return nil, err, code, stage end
  if on_pending then
    -- Writing one byte into a pipe this process holds both ends of cannot
    -- fail; a spent pending (its deadline passed) has nothing to release.
    local function release() pending:open_gate() end
    local called, holds = pcall(on_pending, pending:pid(), release)
    if not called then pending:cancel(); end_turn(); error(holds, 0) end
    if holds ~= true then release() end
  end
  -- The turn is given back whatever happens, or one failure would hold a
  -- place among MAX_STARTING for good.
  local result = table.pack(pcall(finish_on_loop, pending))
  end_turn()
  if not result[1] then error(result[2], 0) end
  return table.unpack(result, 2, result.n)
end

function M.start(spec, opts)
  local handle, err, code, stage = spawn(spec, opts or {})
  if not handle then return nil, err, code, stage end
  local self = setmetatable({ handle = handle, waiters = {}, started_at = uv.now() }, Process)
  for _, name in ipairs({ "stdin", "stdout", "stderr" }) do
    local fd = handle:take_fd(name)
    if fd then self[name] = open_pipe(fd) end
  end
  self:_watch()
  return self
end

--- Calls on_exit() once when process `pid`, which need not be our child
-- (a process a restarted server re-adopts, a runner the job host forked),
-- has ended: through a pidfd (Linux 5.3+), else by polling /proc every
-- `poll_ms` (200). No exit status: only the parent can have that. Returns a
-- function that stops watching.
function M.watch_pid(pid, on_exit, poll_ms)
  local handle, fd
  local function stop()
    if handle and not handle:is_closing() then
      handle:stop()
      handle:close()
    end
    if fd then uv.fs_close(fd); fd = nil end
  end
  local function ended()
    stop()
    on_exit()
  end
  fd = sys.pidfd_open(pid)
  if fd then
    handle = uv.new_poll(fd)
    handle:start("r", ended)
  else
    handle = uv.new_timer()
    handle:start(poll_ms or 200, poll_ms or 200, function()
      if not procfs.alive(pid) then ended() end
    end)
  end
  return stop
end

--- Reads a luv pipe until EOF, calling on_data(chunk) for each chunk, then
-- closes it and calls on_eof(). Read errors end the stream like EOF.
function M.drain(pipe, on_data, on_eof)
  pipe:read_start(function(err, data)
    if data and not err then
      on_data(data)
      return
    end
    pipe:read_stop()
    pipe:close()
    if on_eof then on_eof(err) end
  end)
end

return M
