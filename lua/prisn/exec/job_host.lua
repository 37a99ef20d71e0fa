-- prisn.exec.job_host: a warm prisn that forks one job runner per job.
--
-- A job runs in a runner process of its own (prisn.exec.job.run_assigned),
-- which outlives a crashed server. Exec'ing a fresh `prisn __job-run ID` for
-- each job costs an exec, a Lua start and module loading: about 4 ms before
-- the job's own script starts. The server instead starts one `prisn
-- __job-host` at start-up, which loads those modules once and forks the
-- runners. It keeps one forked ahead (a spare, blocked reading its own pipe)
-- once no job has come for a moment, so the next job's start does not wait
-- for a fork; a job that finds no spare gets a runner forked at once.
--
-- Protocol (lines on the host's stdin and stdout, both pipes to the server):
--
--   server -> host   run <id> <json>       { namespace, log_path, spec }:
--                                          all the runner needs to start
--   host -> server   <id> <pid>            the runner's pid
--                    <id> error <message>  no runner could be forked
--   host -> runner   <id> <json>           on the spare's pipe
--   runner -> server started|update|done … on a copy of the host's stdout:
--                                          see prisn.exec.job_report
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
local M = {}

--- Where a job host writes its pid: $PRISN_HOME/run/job-host.pid.
function M.pid_path(home)
  return home .. "/run/job-host.pid"
end

--- Stops the job host a previous server of `home` started, and the rest of
-- its process group, unless it ended by itself at EOF (it then removed its
-- pid file and took its group with it, see M.main). Runners it forked stay
-- in its group until they hold their job's lock: one handed a job and held
-- back (a busy machine, a stopped process) would take the lock after this
-- server's recovery had queued the job again, and run it a second time. So
-- after this, every runner the old host forked for a job holds the job's
-- lock. SIGKILL, then up to a second for them to be gone.
function M.stop_previous(home)
  local uv = require("luv")
  local fs = require("prisn.fs")
  local pid = math.tointeger(tonumber((fs.read_file(M.pid_path(home)) or ""):match("%d+") or ""))
  if not pid or pid == uv.os_getpid() then return end
  local function is_host()
    local stat = fs.read_file("/proc/" .. pid .. "/stat") or ""
    local state = stat:match(".*%) (%a)")
    return stat:find("(prisn-jobhost)", 1, true) ~= nil and state ~= "Z" and state ~= "X"
  end
  -- The live members of group `pid` that are the host or one of its forks
  -- (whose command line stays `prisn __job-host`): a group of that number
  -- made since by someone else has none.
  local function members()
    local list = {}
    if not uv.kill(-pid, 0) then return list end -- no such group
    for _, entry in ipairs(fs.list_dir("/proc")) do
      local member = entry.name:match("^%d+$") and tonumber(entry.name)
      local stat = member and fs.read_file("/proc/" .. member .. "/stat") or ""
      local state, pgrp = stat:match(".*%) (%a) %d+ (%d+)") -- after the last ")": comm may hold one
      if tonumber(pgrp) == pid and state ~= "Z" and state ~= "X"
        and (fs.read_file("/proc/" .. member .. "/cmdline") or ""):find("\0__job-host\0", 1, true) then
        list[#list + 1] = member
      end
    end
    return list
  end
  -- A host still there; or, gone without removing its file (killed), forks
  -- of it left behind, which takes a look at every process.
  local gone = is_host() and function() return not is_host() end
    or #members() > 0 and function() return #members() == 0 end
  if not gone then return end
  -- Signalled as one group, so a runner the host forks at this very moment
  -- goes too.
  uv.kill(-pid, "sigkill")
  for _ = 1, 100 do
    if gone() then return end
    uv.sleep(10)
  end
end

-- How much a runner allocates before its garbage collector starts: enough
-- for a short job never to collect.
M.GC_AFTER_KB = 8 * 1024

--- In a runner just forked: no garbage collection until it has allocated
-- M.GC_AFTER_KB. A collection marks every object of the heap the runner
-- shares with the host, and each page it writes is copied: most of a short
-- runner's CPU went to those copies. A long job with much output gets its
-- collector back (checked every second).
function M.lazy_gc()
  local uv = require("luv")
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
  local uv = require("luv")
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
  local sys = require("prisn.core.sys")
  local job = require("prisn.exec.job")
  -- What does not depend on the job is done before it comes.
  require("prisn.exec.group").protect_self()
  local line = read_line(fd)
  require("luv").fs_close(fd)
  -- The loop's clock stopped when the host forked this runner (the host
  -- runs no loop): every timer of the job counts from now, not from then.
  require("luv").update_time()
  -- EOF: the host is gone (or stopping): there is nothing to run.
  if not line then os.exit(0) end
  local id, json = line:match("^(%S+) (.+)$")
  local ok, code = pcall(function()
    -- In the host's group until it holds the lock: a restarted server kills
    -- that group first (stop_previous), so a runner it cannot see by its
    -- lock cannot go on to start a job the server queues again.
    local lock, held = job.runner_lock(home, id)
    if held then error("job " .. id .. " has a runner already", 0) end
    sys.setsid()
    local assignment = require("cjson").decode(json)
    assignment.id = id
    return require("prisn.async").main(job.run_assigned, home, assignment, report_fd, lock)
  end)
  if not ok then io.stderr:write("prisn: job ", tostring(id), ": ", tostring(code), "\n") end
  io.stderr:flush()
  os.exit(ok and code or 1)
end

--- Forks a spare runner (see M.spare_main). Returns { pid, fd } (fd: where
-- its job is to be written), or nil, message.
function M.fork_spare(home, report_fd)
  local uv = require("luv")
  local sys = require("prisn.core.sys")
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
  local uv = require("luv")
  local sys = require("prisn.core.sys")
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
  local sys = require("prisn.core.sys")
  -- Warm: what every runner needs, loaded once here.
  for _, name in ipairs({ "prisn.store", "prisn.store.jobs", "prisn.logs", "prisn.exec.group",
    "prisn.exec.runners", "prisn.exec.limits", "prisn.exec.isolation", "prisn.exec.process",
    "prisn.exec.deps", "prisn.exec.envcache", "prisn.exec.interpreter", "prisn.secrets.keyring",
    "prisn.store.secrets", "prisn.exec.job_report", "prisn.exec.job", "prisn.async", "cjson" }) do
    require(name)
  end
  -- Checks the built-in runners once, here, rather than in every runner.
  require("prisn.exec.runners").load({ home = home })
  sys.ignore_children()
  -- A runner whose server is gone gets EPIPE, not death, and records its
  -- job itself.
  sys.ignore_sigpipe()
  sys.set_name("prisn-jobhost")
  local fs = require("prisn.fs")
  fs.mkdir_p(home .. "/run", tonumber("700", 8))
  fs.write_atomic(M.pid_path(home), tostring(require("luv").os_getpid()) .. "\n", tonumber("600", 8))
  local report_fd, dup_err = sys.dup(1)
  if not report_fd then
    require("prisn.error").raise("EMFILE", "the job host cannot keep its report pipe: " .. tostring(dup_err),
      { hint = "raise the open file limit of the server (LimitNOFILE=, ulimit -n)" })
  end
  -- Loads the key of the runners' lock names once, for all of them.
  require("prisn.exec.job").claim_name(home, "-")
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
      local id, json = line:match("^run (%S+) (.+)$")
      if id then
        -- The spare forked after the last job takes this one; without one
        -- (jobs came one after another), a runner is forked now.
        local runner, err = spare, nil
        if not runner then runner, err = M.fork_spare(home, report_fd) end
        spare = nil
        if runner then
          local handed, herr = require("prisn.fs").write_all(runner.fd, id .. " " .. json .. "\n")
          require("luv").fs_close(runner.fd)
          if not handed then runner, err = nil, "cannot hand the job to its runner: " .. tostring(herr) end
        end
        io.stdout:write(id, " ", runner and runner.pid or ("error " .. tostring(err)), "\n")
        io.stdout:flush()
      end
    end
  end
  -- The server is gone, or stopping. Runners handed a job that do not hold
  -- it yet are still in this process group: they go with the host, or one
  -- held back (a busy machine) could start its job after a restarted server
  -- has queued the job again. The pid file goes first: a host that ended
  -- this way leaves nothing for the next server to stop (stop_previous).
  local uv = require("luv")
  if tonumber((fs.read_file(M.pid_path(home)) or ""):match("%d+") or "") == uv.os_getpid() then
    uv.fs_unlink(M.pid_path(home))
  end
  if spare then uv.fs_close(spare.fd) end
  uv.kill(0, "sigkill") -- this process group, the host included
  return 0
end

return M
