-- prisn.server.log_host: the server's side of the data plane's log pumps
-- (prisn.dataplane.logs, kind "logs"): which instances' output pipes must be
-- read into which log files, kept here and sent to the data plane.
--
-- The supervisor attaches an instance when its process starts or is
-- adopted and detaches it when the instance is forgotten or stopped with
-- the server (prisn.server.supervisor.instance). Each change is sent as it
-- happens; on every (re)connect the whole list goes (a sync: the data plane
-- attaches what it lacks and lets go of what the server no longer has), so
-- a server restarted after kill -9 takes over pumps that never stopped.
-- While the data plane is not connected, changes wait for that sync.
local M = {}

local LogHost = {}
LogHost.__index = LogHost

-- Logs a failed request (not connected: the next sync carries it).
local function report(self, what)
  return function(reply, err)
    if reply or not err or err.code == "ENOTCONN" then return end
    self.log:error("data plane: logs %s: %s", what, tostring(err.message))
  end
end

--- Has the data plane pump `key`'s pipes into its log: spec = { fifos =
-- { stdout, stderr }, path, max_bytes }. Returns true (a failure is
-- logged when the data plane answers).
function LogHost:attach(key, spec)
  local wanted = { fifos = { stdout = spec.fifos.stdout, stderr = spec.fifos.stderr }, path = spec.path,
    max_bytes = spec.max_bytes }
  self.wanted[key] = wanted
  self.dataplane:request({ kind = "logs", op = "attach", key = key, fifos = wanted.fifos, path = wanted.path,
    max_bytes = wanted.max_bytes }, report(self, key))
  return true
end

--- Has the data plane read what is left of `key`'s pipes and let go.
function LogHost:detach(key)
  self.wanted[key] = nil
  self.dataplane:request({ kind = "logs", op = "detach", key = key }, report(self, key))
end

--- Sends the whole list (on every (re)connect, see the header).
function LogHost:send_state()
  self.dataplane:request({ kind = "logs", op = "sync", attachments = self.wanted }, function(reply, err)
    if not reply then return report(self, "sync")(reply, err) end
    for key, message in pairs(reply.failed or {}) do
      self.log:error("data plane: logs %s: %s", key, tostring(message))
    end
  end)
end

--- The log host of `dataplane` (prisn.server.dataplane's client), which it
-- joins as a service to be sent the list on each connect. log: the
-- server's log.
function M.new(dataplane, log)
  local self = setmetatable({ dataplane = dataplane, log = log, wanted = {} }, LogHost)
  -- The sync is sent here, with a callback that logs what failed; the
  -- client's list of requests to send stays empty.
  dataplane:add_service("logs", function()
    self:send_state()
    return {}
  end)
  return self
end

return M
