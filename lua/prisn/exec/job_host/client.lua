-- prisn.exec.job_host.client: the server's end of the job host (the
-- protocol: prisn.exec.job_host). Starts `prisn __job-host` when first
-- needed, asks it to fork a runner for a job, and hands back the runner's
-- pid. The runners' reports (prisn.exec.job_host.report) arrive on the same
-- pipe: each chunk read goes to on_reports as one list, which the queue
-- records in one transaction. If the host is gone (it crashed, or was
-- killed), the next request starts a new one; while it cannot be started,
-- run() fails and the queue execs a runner the old way.
local uv = require("luv")
local fs = require("prisn.fs")
local procfs = require("prisn.procfs")
local process = require("prisn.exec.process")
local protocol = require("prisn.exec.job_host")

local M = {}

local Host = {}
Host.__index = Host

--- A host client for `server` (home, log); env is the runner environment;
-- on_reports(list of { kind, id, fields }) hears the runners' reports.
function M.new(server, env, on_reports)
  return setmetatable({ server = server, env = env, pending = {}, buffer = "", on_reports = on_reports }, Host)
end

function Host:fail_pending(message)
  local pending = self.pending
  self.pending = {}
  for _, callbacks in pairs(pending) do
    for _, cb in ipairs(callbacks) do cb(nil, message) end
  end
end

-- One answer line: "<id> <pid>" or "<id> error <message>".
function Host:answer(line)
  local id, pid, message = protocol.parse_answer(line)
  local callbacks = id and self.pending[id]
  if not callbacks then return end
  local cb = table.remove(callbacks, 1)
  if #callbacks == 0 then self.pending[id] = nil end
  if pid then cb(pid) else cb(nil, message) end
end

function Host:start()
  local exe = uv.exepath()
  local proc, err = process.start({
    file = exe, argv = { exe, "__job-host" }, env = self.env, cwd = "/",
    stdin = "pipe", stdout = "pipe", stderr = { file = self.server.home .. "/server.log", mode = "a" },
    session = true,
  })
  if not proc then return nil, err end
  self.proc = proc
  process.drain(proc.stdout, function(data)
    local lines
    lines, self.buffer = protocol.split_lines(self.buffer .. data)
    local reports = {}
    for _, line in ipairs(lines) do
      local kind, id, fields = protocol.parse_report(line)
      if kind and protocol.REPORTS[kind] then
        reports[#reports + 1] = { kind = kind, id = id, fields = fields }
      elseif kind then
        self.server.log:warn("job host: unknown report %q", kind)
      else
        self:answer(line)
      end
    end
    if #reports > 0 and self.on_reports then self.on_reports(reports) end
  end)
  proc:on_exit(function(status)
    if self.proc == proc then self.proc = nil end
    if proc.stdin and not proc.stdin:is_closing() then proc.stdin:close() end
    if not self.closing then
      self.server.log:warn("the job host (pid %d) ended (%s); the next job starts a new one", proc:pid(),
        status.exited and ("exit " .. tostring(status.code)) or ("signal " .. tostring(status.signal)))
    end
    self:fail_pending("the job host ended")
  end)
  return proc
end

--- Asks for a runner for job `id`, given `assignment` (a JSON object: what
-- the runner needs, see prisn.exec.job_runner.run_assigned): callback(pid) once
-- forked, or callback(nil, message).
function Host:run(id, assignment, callback)
  if self.closing then return callback(nil, "the server is stopping") end
  if not self.proc then
    local ok, err = self:start()
    if not ok then return callback(nil, "cannot start the job host: " .. tostring(err)) end
  end
  self.pending[id] = self.pending[id] or {}
  table.insert(self.pending[id], callback)
  self.proc.stdin:write(protocol.run_line(id, assignment))
end

--- Lets the host go: it exits at EOF; the runners it forked go on.
function Host:close()
  self.closing = true
  local proc = self.proc
  if proc and proc.stdin and not proc.stdin:is_closing() then proc.stdin:close() end
end

--- Stops the job host a previous server of `home` started, and the rest of
-- its process group, unless it ended by itself at EOF (it then removed its
-- pid file and took its group with it, see prisn.exec.job_host.host.main).
-- Runners it forked stay in its group until they hold their job's lock: one
-- handed a job and held back (a busy machine, a stopped process) would take
-- the lock after this server's recovery had queued the job again, and run
-- it a second time. So after this, every runner the old host forked for a
-- job holds the job's lock. SIGKILL, then up to a second for them to be
-- gone.
function M.stop_previous(home)
  local pid = math.tointeger(tonumber((fs.read_file(protocol.pid_path(home)) or ""):match("%d+") or ""))
  if not pid or pid == uv.os_getpid() then return end
  local function is_host()
    local stat = procfs.stat(pid)
    return stat ~= nil and stat.comm == "prisn-jobhost" and procfs.running(stat)
  end
  -- The live members of group `pid` that are the host or one of its forks
  -- (whose command line stays `prisn __job-host`): a group of that number
  -- made since by someone else has none.
  local function members()
    local list = {}
    if not uv.kill(-pid, 0) then return list end -- no such group
    for _, entry in ipairs(fs.list_dir("/proc")) do
      local member = entry.name:match("^%d+$") and tonumber(entry.name)
      local stat = member and procfs.stat(member)
      if stat and stat.pgrp == pid and procfs.running(stat)
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

return M
