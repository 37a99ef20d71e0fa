-- prisn.exec.job_host.host: the body of `prisn __job-host`, a warm prisn
-- that forks one job runner per job (the protocol: prisn.exec.job_host).
--
-- It loads what a runner needs once and keeps one runner forked ahead (a
-- spare, blocked reading its own pipe) once no job has come for a moment,
-- so the next job's start does not wait for a fork; a job that finds no
-- spare gets a runner forked at once.
--
-- The host never opens state.db nor runs an event loop, so a fork copies
-- nothing that two processes must not share. Runners are not the host's to
-- wait for: SIGCHLD is ignored, the kernel reaps them. A runner stays in the
-- host's process group until it holds its job's lock (see M.spare_main).
-- When the server goes away (EOF on stdin) the host ends with its whole
-- group: the idle spare, and any runner handed a job that does not hold it
-- yet (the job did not start; a restarted server queues it again). Runners
-- that hold their job are in sessions of their own: they go on and finish
-- it.
local uv = require("luv")
local cjson = require("cjson")
local async = require("prisn.async")
local errors = require("prisn.error")
local fs = require("prisn.fs")
local sys = require("prisn.core.sys")
local group = require("prisn.exec.group")
local runners = require("prisn.exec.runners")
local isolation = require("prisn.exec.isolation")
local job_lock = require("prisn.exec.job_lock")
local job_runner = require("prisn.exec.job_runner")
local protocol = require("prisn.exec.job_host")

local M = {}

-- How much a runner allocates before its garbage collector starts: enough
-- for a short job never to collect.
M.GC_AFTER_KB = 8 * 1024

--- In a runner just forked: no garbage collection until it has allocated
-- M.GC_AFTER_KB. A collection marks every object of the heap the runner
-- shares with the host, and each page it writes is copied: most of a short
-- runner's CPU went to those copies. A long job with much output gets its
-- collector back (checked every second).
function M.lazy_gc()
  collectgarbage("stop")
  local limit = collectgarbage("count") + M.GC_AFTER_KB
  local timer = uv.new_timer()
  timer:start(1000, 1000, function()
    if collectgarbage("count") > limit then
      collectgarbage("restart")
      timer:stop()
      timer:close()
    end
  end)
  timer:unref()
end

-- Reads one line from blocking `fd`; nil at EOF before a whole line.
local function read_line(fd)
  local parts = {}
  while true do
    local chunk = uv.fs_read(fd, 65536, -1)
    if not chunk or chunk == "" then return nil end
    local nl = chunk:find("\n", 1, true)
    if nl then
      parts[#parts + 1] = chunk:sub(1, nl - 1)
      return table.concat(parts)
    end
    parts[#parts + 1] = chunk
  end
end

--- In a runner forked ahead of its job: waits for the job ("<id> <json>"
-- on `fd`), takes its lock, leaves the host's process group and runs it.
-- Exits the process.
function M.spare_main(home, fd, report_fd)
  -- What does not depend on the job is done before it comes.
  group.protect_self()
  local line = read_line(fd)
  uv.fs_close(fd)
  -- The loop's clock stopped when the host forked this runner (the host
  -- runs no loop): every timer of the job counts from now, not from then.
  uv.update_time()
  -- EOF: the host is gone (or stopping): there is nothing to run.
  if not line then os.exit(0) end
  local id, json = protocol.parse_assignment(line)
  local ok, code = pcall(function()
    -- In the host's group until it holds the lock: a restarted server kills
    -- that group first (client.stop_previous), so a runner it cannot see by
    -- its lock cannot go on to start a job the server queues again.
    local lock, held = job_lock.take(home, id)
    if held then error("job " .. id .. " has a runner already", 0) end
    sys.setsid()
    local assignment = cjson.decode(json)
    assignment.id = id
    return async.main(job_runner.run_assigned, home, assignment, report_fd, lock)
  end)
  if not ok then io.stderr:write("prisn: job ", tostring(id), ": ", tostring(code), "\n") end
  io.stderr:flush()
  os.exit(ok and code or 1)
end

--- Forks a spare runner (see M.spare_main). Returns { pid, fd } (fd: where
-- its job is to be written), or nil, message.
function M.fork_spare(home, report_fd)
  local pipe, perr = uv.pipe({ nonblock = false }, { nonblock = false })
  if not pipe then return nil, perr end
  local pid, err = sys.fork()
  if pid == 0 then
    uv.fs_close(pipe.write)
    sys.set_name("prisn-job")
    M.lazy_gc()
    M.spare_main(home, pipe.read, report_fd)
  end
  uv.fs_close(pipe.read)
  if not pid then
    uv.fs_close(pipe.write)
    return nil, err
  end
  return { pid = pid, fd = pipe.write }
end

-- How long the host waits for another job before it forks a spare runner.
M.SPARE_AFTER_MS = 5

--- A reader of the lines on blocking `fd`: read(wait_ms) returns the next
-- line; false when none came within wait_ms (-1: wait for ever); nil at
-- EOF.
function M.line_reader(fd)
  local buffer, eof = "", false
  return function(wait_ms)
    while true do
      local nl = buffer:find("\n", 1, true)
      if nl then
        local line = buffer:sub(1, nl - 1)
        buffer = buffer:sub(nl + 1)
        return line
      end
      if eof then return nil end
      if wait_ms >= 0 and not sys.wait_readable(fd, wait_ms) then return false end
      local chunk = uv.fs_read(fd, 65536, -1)
      if not chunk or chunk == "" then eof = true else buffer = buffer .. chunk end
    end
  end
end

--- The body of `prisn __job-host`. Returns 0 at EOF.
function M.main(home)
  -- Warm: what every runner needs (prisn.exec.job_runner and what it
  -- requires) was loaded once, with this module. The built-in runners are
  -- checked once, here, rather than in every runner.
  runners.load({ home = home })
  -- So is whether namespaces can be made here (a read of
  -- /proc/self/status): the host's capabilities are its runners'.
  isolation.probe()
  sys.ignore_children()
  -- A runner whose server is gone gets EPIPE, not death, and records its
  -- job itself.
  sys.ignore_sigpipe()
  sys.set_name("prisn-jobhost")
  fs.mkdir_p(home .. "/run", tonumber("700", 8))
  fs.write_atomic(protocol.pid_path(home), tostring(uv.os_getpid()) .. "\n", tonumber("600", 8))
  local report_fd, dup_err = sys.dup(1)
  if not report_fd then
    errors.raise("EMFILE", "the job host cannot keep its report pipe: " .. tostring(dup_err),
      { hint = "raise the open file limit of the server (LimitNOFILE=, ulimit -n)" })
  end
  -- Loads the key of the runners' lock names once, for all of them.
  job_lock.claim_name(home, "-")
  local spare, fork_failed
  local input = M.line_reader(0)
  while true do
    -- The next spare is forked once no job has come for a moment: forked
    -- at once, it would take a CPU from the runner just handed a job. After
    -- a failed fork, not before the next job.
    local line = input((spare or fork_failed) and -1 or M.SPARE_AFTER_MS)
    if line == nil then break end
    if line == false then
      spare = M.fork_spare(home, report_fd)
      fork_failed = spare == nil
    else
      fork_failed = false
      local id, json = protocol.parse_run(line)
      if id then
        -- The spare forked after the last job takes this one; without one
        -- (jobs came one after another), a runner is forked now.
        local runner, err = spare, nil
        if not runner then runner, err = M.fork_spare(home, report_fd) end
        spare = nil
        if runner then
          local handed, herr = fs.write_all(runner.fd, protocol.assignment_line(id, json))
          uv.fs_close(runner.fd)
          if not handed then runner, err = nil, "cannot hand the job to its runner: " .. tostring(herr) end
        end
        io.stdout:write(protocol.answer_line(id, runner and runner.pid, err))
        io.stdout:flush()
      end
    end
  end
  -- The server is gone, or stopping. Runners handed a job that do not hold
  -- it yet are still in this process group: they go with the host, or one
  -- held back (a busy machine) could start its job after a restarted server
  -- has queued the job again. The pid file goes first: a host that ended
  -- this way leaves nothing for the next server to stop
  -- (client.stop_previous).
  if tonumber((fs.read_file(protocol.pid_path(home)) or ""):match("%d+") or "") == uv.os_getpid() then
    uv.fs_unlink(protocol.pid_path(home))
  end
  if spare then uv.fs_close(spare.fd) end
  uv.kill(0, "sigkill") -- this process group, the host included
  return 0
end

return M
