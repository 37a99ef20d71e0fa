-- POST /api/v1/server/upgrade: replace this server with another binary
-- without a refused connection on any service port (docs/SERVER.md,
-- "Upgrades"). The data plane hands its listening sockets to a data plane of
-- the new binary first (prisn.dataplane); once that one accepts, the answer
-- goes out and this server exits without stopping instances or the data
-- plane: `prisn server upgrade` then starts the new binary's server, which
-- re-adopts the instances as after a kill -9.
--
-- A cluster-wide admin only: it runs a binary of the caller's choosing as
-- the server's user.
local uv = require("luv")
local api = require("prisn.server.api")
local auth = require("prisn.server.auth")
local async = require("prisn.async")

-- How long after the answer the server exits (the answer must get out).
local EXIT_AFTER_MS = 100

return {
  { method = "POST", pattern = "/api/v1/server/upgrade", auth = "admin", handler = function(req)
    if not auth.allows_namespace(req.token, "*") then
      api.fail(403, "forbidden", "upgrading the server needs a cluster-wide admin token",
        "use the admin token of $PRISN_HOME/admin.token")
    end
    local body = api.json_body(req)
    local binary = api.field(body, "binary", "string")
    if binary:sub(1, 1) ~= "/" then
      api.fail(422, "invalid", "binary must be an absolute path, got " .. api.show(binary))
    end
    if not uv.fs_access(binary, "X") then
      api.fail(422, "invalid", "binary " .. binary .. " is not an executable file", "build or copy it there first")
    end
    local server = req.server
    if not server.dataplane or server.dataplane.in_process then
      api.fail(409, "conflict", "the data plane runs inside the server (PRISN_DATAPLANE=in-process): "
        .. "an upgrade would close the ports", "restart the server instead")
    end
    local pid, err, code = async.wait(function(cb) server.dataplane:upgrade(binary, cb) end)
    if not pid then
      api.fail(502, code or "upgrade_failed", "the data plane could not be handed over: " .. tostring(err),
        "see $PRISN_HOME/dataplane.log")
    end
    server.log:info("upgrade to %s by %s: data plane pid %d took over; this server exits", binary, req.actor, pid)
    server.events:record({ actor = req.actor, action = "server.upgrading",
      message = "to " .. binary .. "; data plane handed over to pid " .. pid })
    local t = uv.new_timer()
    t:start(EXIT_AFTER_MS, 0, function()
      t:close()
      server.exit_for_upgrade()
    end)
    return 200, { dataplane_pid = pid, server_pid = uv.os_getpid(), binary = binary }
  end },
}
