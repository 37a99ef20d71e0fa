-- prisn.server.upgrade: the server replacing itself with another binary,
-- in place (`prisn server upgrade`, docs/SERVER.md "Upgrading").
--
-- Once the data plane is handed over (prisn.server.api.upgrade), the server
-- execs the new binary in its own process: the same pid, the command line
-- it was started with, the same environment. So systemd's main PID, a
-- terminal's --foreground and a daemonized server all go on as they were,
-- which a new process started beside the old one could not give. Before the
-- exec it stops accepting API connections and lets those in flight finish
-- briefly, and writes what waits for state.db; instances, jobs' runners and
-- the data plane run in processes of their own and are re-adopted by the
-- new program as after a restart. Nothing irreversible happens before the
-- exec: when it fails the server listens again and goes on serving.
--
-- The new program learns it replaced one from PRISN_UPGRADE ("TOKEN
-- VERSION", taken out of its environment at once) and writes the token to
-- server.json, which is how the CLI knows the upgrade is done; a failed
-- exec writes it there with the error. The old program's children stay
-- this process's children across the exec: the new one reaps them
-- (reap_inherited) as nobody else would.
local uv = require("luv")
local sys = require("prisn.core.sys")
local fs = require("prisn.fs")
local server_http = require("prisn.server.http")

local M = {}

M.ENV = "PRISN_UPGRADE"
-- How long API requests in flight get to finish before the exec.
M.DRAIN_MS = 1000
-- How often the children of the replaced program are looked at.
M.REAP_EVERY_MS = 1000

--- The command line this process was started with (its argv, from
-- /proc/self/cmdline), or nil when it cannot be read.
function M.command_line(path)
  local text = fs.read_file(path or "/proc/self/cmdline")
  if not text or text == "" then return nil end
  local argv = {}
  for item in text:gmatch("([^%z]*)%z") do argv[#argv + 1] = item end
  return #argv > 0 and argv or nil
end

--- A token naming one upgrade (what server.json says once it is done).
function M.new_token()
  return string.format("%x-%x", uv.os_getpid(), uv.hrtime())
end

--- What PRISN_UPGRADE said ({ token, from = the old version }), taken out
-- of this process's environment so that jobs and a later exec do not see
-- it; nil when this program did not replace another.
function M.take_marker(getenv, unsetenv)
  local value = (getenv or os.getenv)(M.ENV)
  if not value then return nil end
  ;(unsetenv or uv.os_unsetenv)(M.ENV)
  local token, from = value:match("^(%S+) (%S+)$")
  return token and { token = token, from = from } or nil
end

--- The pids of this process's children (the kernel's list per thread), or
-- {} when the kernel does not keep it.
function M.children(task_dir)
  task_dir = task_dir or "/proc/self/task"
  local pids = {}
  for _, entry in ipairs(fs.list_dir(task_dir) or {}) do
    local text = fs.read_file(task_dir .. "/" .. entry.name .. "/children") or ""
    for pid in text:gmatch("%d+") do pids[#pids + 1] = math.tointeger(tonumber(pid)) end
  end
  return pids
end

--- Reaps, as they end, the children this process had before it started
-- any (those of the program an upgrade replaced: the data plane it
-- started, a job host). Call it before spawning anything. Returns how many
-- there were.
function M.reap_inherited(log, pids)
  pids = pids or M.children()
  if #pids == 0 then return 0 end
  if log then log:info("upgrade: %d process(es) of the replaced program are reaped as they end", #pids) end
  local timer = uv.new_timer()
  timer:start(M.REAP_EVERY_MS, M.REAP_EVERY_MS, function()
    for i = #pids, 1, -1 do
      local reaped, err = sys.reap(pids[i])
      if reaped ~= false then
        if err and log then log:warn("upgrade: reaping pid %d: %s", pids[i], tostring(err)) end
        table.remove(pids, i)
      end
    end
    if #pids == 0 then timer:close() end
  end)
  timer:unref()
  return #pids
end

-- Closes the API listeners: no new connections during the exec.
local function close_listeners(server)
  for _, l in ipairs(server.listeners) do
    if l.handle and not l.handle:is_closing() then l.handle:close() end
    l.handle = nil
  end
end

-- Listens again on every API address after a failed exec; a listener that
-- cannot is logged (its port was taken meanwhile) and the others serve.
local function reopen_listeners(server)
  for _, l in ipairs(server.listeners) do
    local handle, err = server_http.bind(l)
    local ok = handle ~= nil
    if ok then
      l.handle = handle
      ok, err = server_http.serve(server, l)
    end
    if not ok then server.log:error("upgrade: cannot listen on %s again: %s", l.address, tostring(err)) end
  end
end

-- Calls done() once no API request is in flight, or after M.DRAIN_MS.
local function drain(server, done)
  local deadline = uv.now() + M.DRAIN_MS
  local timer = uv.new_timer()
  timer:start(0, 10, function()
    if server.connections > 0 and uv.now() < deadline then return end
    timer:close()
    if server.connections > 0 then
      server.log:warn("upgrade: %d API connection(s) still open are cut", server.connections)
    end
    done()
  end)
end

--- Replaces this server with `binary` in place (see above). deps.exec
-- (default sys.exec) for specs. On failure calls on_failed(message, code)
-- once the server serves again; on success never returns.
function M.replace(server, binary, token, on_failed, deps)
  local exec = deps and deps.exec or sys.exec
  local log = server.log
  server.upgrading = true
  close_listeners(server)
  drain(server, function()
    server.state_writer:drain()
    local argv = M.command_line()
    local err, code
    if argv then
      uv.os_setenv(M.ENV, token .. " " .. server.version)
      log:info("upgrade: exec %s in place (pid %d): %s", binary, uv.os_getpid(), table.concat(argv, " "))
      local _
      _, err, code = exec(binary, argv)
      uv.os_unsetenv(M.ENV)
    else
      err, code = "cannot read this process's command line (/proc/self/cmdline)", "ENOENT"
    end
    server.upgrading = nil
    log:error("upgrade: %s; serving on as prisn %s", tostring(err), server.version)
    reopen_listeners(server)
    on_failed(tostring(err), code)
  end)
end

return M
