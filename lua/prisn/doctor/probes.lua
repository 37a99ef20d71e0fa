-- prisn.doctor.probes: the real machine behind prisn.doctor's checks.
--
-- Each probe is a thin call into luv, the C core or the filesystem; the
-- decisions stay in prisn.doctor, which specs run against fakes.
local uv = require("luv")
local sys = require("prisn.core.sys")
local async = require("prisn.async")
local store = require("prisn.store")
local fs = require("prisn.fs")

local M = {}

--- The probe table prisn.doctor.run expects. Must run inside an async task
-- (capture and connect wait on the loop).
function M.system()
  local probes = {}
  function probes.uname() return uv.os_uname() end
  probes.read_file = fs.read_file
  function probes.writable(path) return uv.fs_access(path, "W") == true end
  function probes.probe_namespace(kind) return sys.probe_namespace(kind) end
  function probes.which(name)
    for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
      local candidate = dir .. "/" .. name
      local st = uv.fs_stat(candidate)
      if st and st.type == "file" and uv.fs_access(candidate, "X") then return candidate end
    end
    return nil
  end
  function probes.capture(path, args) return async.capture(path, args, { timeout_ms = 10000 }) end
  function probes.stat(path) return uv.fs_stat(path) end
  function probes.uid() return uv.getuid() end
  function probes.statfs(path) return uv.fs_statfs(path) end
  function probes.check_db(path)
    return store.quick_check(path)
  end
  function probes.connect(path)
    local pipe = uv.new_pipe(false)
    local timer = uv.new_timer()
    local err = async.wait(function(done)
      local finished = false
      local function finish(e)
        if finished then return end
        finished = true
        done(e)
      end
      timer:start(2000, 0, function() finish("did not answer within 2s") end)
      pipe:connect(path, function(e) finish(e or false) end)
    end)
    timer:close()
    pipe:close()
    if err then return nil, "refuses connections (" .. tostring(err) .. ")" end
    return true
  end
  return probes
end

return M
