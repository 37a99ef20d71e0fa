-- POST /api/v1/server/upgrade: replace this server with another binary
-- without a refused connection on any service port (docs/SERVER.md,
-- "Upgrades"). The data plane hands its listening sockets to a data plane of
-- the new binary first (prisn.dataplane); once that one accepts, the answer
-- goes out and this server replaces itself with the new binary in its own
-- process (prisn.server.upgrade: same pid, same command line), which
-- re-adopts the instances as after a restart. The answer carries a token
-- that the new program writes to server.json (`upgrade.token`), or the old
-- one with the error when the exec failed: `prisn server upgrade` waits for
-- it there, since this connection ends with the exec.
--
-- A cluster-wide admin only: it runs a binary of the caller's choosing as
-- the server's user.
local uv = require("luv")
local api = require("prisn.server.api")
local auth = require("prisn.server.auth")
local async = require("prisn.async")
local server_upgrade = require("prisn.server.upgrade")

-- How long after the answer the server replaces itself (the answer must get
-- out first).
local EXEC_AFTER_MS = 100

-- Whether the file at `path` starts as a program the kernel runs (an ELF
-- binary or a #! script): anything else passes the data plane's hand-over
-- (libuv hands it to /bin/sh) and then fails the exec.
local function looks_runnable(path)
  local fd = uv.fs_open(path, "r", 0)
  if not fd then return false end
  local head = uv.fs_read(fd, 4, 0) or ""
  uv.fs_close(fd)
  return head == "\127ELF" or head:sub(1, 2) == "#!"
end

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
    if not looks_runnable(binary) then
      api.fail(422, "invalid", "binary " .. binary .. " is not a program (neither an ELF binary nor a #! script)",
        "give the path of a prisn build")
    end
    local server = req.server
    if server.upgrading then
      api.fail(409, "conflict", "an upgrade of this server is under way", "wait for it, then try again")
    end
    if not server.dataplane or server.dataplane.in_process then
      api.fail(409, "conflict", "the data plane runs inside the server (PRISN_DATAPLANE=in-process): "
        .. "an upgrade would close the ports", "restart the server instead")
    end
    server.upgrading = true
    local pid, err, code = async.wait(function(cb) server.dataplane:upgrade(binary, cb) end)
    if not pid then
      server.upgrading = nil
      api.fail(502, code or "upgrade_failed", "the data plane could not be handed over: " .. tostring(err),
        "see $PRISN_HOME/dataplane.log")
    end
    server.log:info("upgrade to %s by %s: data plane pid %d took over; this server execs it", binary, req.actor, pid)
    server.events:record({ actor = req.actor, action = "server.upgrading",
      message = "to " .. binary .. "; data plane handed over to pid " .. pid })
    local token = server_upgrade.new_token()
    local t = uv.new_timer()
    t:start(EXEC_AFTER_MS, 0, function()
      t:close()
      server.replace_for_upgrade(binary, token)
    end)
    return 200, { dataplane_pid = pid, server_pid = uv.os_getpid(), binary = binary, version = server.version,
      token = token }
  end },
}
