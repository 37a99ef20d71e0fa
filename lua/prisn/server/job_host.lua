-- prisn.server.job_host: the server's side of the job host (see
-- prisn.exec.job_host): starts `prisn __job-host` when first needed, asks it
-- to fork a runner for a job, and hands back the runner's pid. The runners'
-- reports (prisn.exec.job_report) arrive on the same pipe: each chunk read
-- goes to on_reports as one list, which the queue records in one
-- transaction. If the host is gone (it crashed, or was killed), the next
-- request starts a new one; while it cannot be started, run() fails and the
-- queue execs a runner the old way.
local uv = require("luv")
local process = require("prisn.exec.process")

local M = {}

local Host = {}
Host.__index = Host

local REPORTS = { started = true, update = true, done = true }

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
  local id, rest = line:match("^(%S+) (.*)$")
  local callbacks = id and self.pending[id]
  if not callbacks then return end
  local cb = table.remove(callbacks, 1)
  if #callbacks == 0 then self.pending[id] = nil end
  local pid = math.tointeger(tonumber(rest))
  if pid and pid > 0 then cb(pid) else cb(nil, (rest:gsub("^error ", ""))) end
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
  local parse = require("prisn.exec.job_report").parse
  process.drain(proc.stdout, function(data)
    self.buffer = self.buffer .. data
    local reports = {}
    for line in self.buffer:gmatch("([^\n]*)\n") do
      local kind, id, fields = parse(line)
      if kind and REPORTS[kind] then
        reports[#reports + 1] = { kind = kind, id = id, fields = fields }
      elseif kind then
        self.server.log:warn("job host: unknown report %q", kind)
      else
        self:answer(line)
      end
    end
    self.buffer = self.buffer:match("[^\n]*$")
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
-- the runner needs, see prisn.exec.job.run_assigned): callback(pid) once
-- forked, or callback(nil, message).
function Host:run(id, assignment, callback)
  if self.closing then return callback(nil, "the server is stopping") end
  if not self.proc then
    local ok, err = self:start()
    if not ok then return callback(nil, "cannot start the job host: " .. tostring(err)) end
  end
  self.pending[id] = self.pending[id] or {}
  table.insert(self.pending[id], callback)
  self.proc.stdin:write("run " .. id .. " " .. assignment .. "\n")
end

--- Lets the host go: it exits at EOF; the runners it forked go on.
function Host:close()
  self.closing = true
  local proc = self.proc
  if proc and proc.stdin and not proc.stdin:is_closing() then proc.stdin:close() end
end

return M
