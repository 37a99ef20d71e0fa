-- prisn.client: how the CLI reaches a prisn server. Everything the CLI does
-- on a server goes through the HTTP API, so anything it does, curl can do.
--
-- Which server: PRISN_SERVER (with PRISN_TOKEN) when set, else the local
-- one: the unix socket $PRISN_HOME/prisn.sock with the admin token the
-- server saved in $PRISN_HOME/admin.token.
--
--   local c = require("prisn.client").connect(ctx)
--   local jobs = c:request("GET", "/api/v1/namespaces/default/jobs")
--
-- A non-2xx answer is raised as the prisn.error the server sent
-- ({"error": {code, message, hint}}), so the CLI prints it as is.
local cjson = require("cjson")
local async = require("prisn.async")
local errors = require("prisn.error")
local fs = require("prisn.fs")
local httpc = require("prisn.http.client")

local M = {}

local Client = {}
Client.__index = Client

local function decode(body)
  if body == nil or body == "" then return {} end
  local ok, value = pcall(cjson.decode, body)
  if ok then return value end
  return nil
end

-- Runs fn in an async task, starting one (and the loop) when needed.
local function in_task(fn)
  local co, main = coroutine.running()
  if co and not main then return fn() end
  return async.main(fn)
end

--- Sends a request; returns the decoded JSON body of a 2xx answer, or
-- raises a prisn.error. opts: on_chunk (stream the body), timeout_ms.
function Client:request(method, path, body, opts)
  opts = opts or {}
  return in_task(function()
    local headers = { Authorization = "Bearer " .. self.token }
    local payload
    if body ~= nil then
      payload = cjson.encode(body)
      headers["Content-Type"] = "application/json"
    end
    local res, err, code = httpc.request(self.address, method, path, {
      headers = headers, body = payload, on_chunk = opts.on_chunk, timeout_ms = opts.timeout_ms })
    if not res then
      if self.is_local and (code == "ENOENT" or code == "ECONNREFUSED") then
        errors.raise("no_server", "no prisn server is running (" .. self.address .. ")",
          { hint = "start one with 'prisn server start'" })
      end
      errors.raise(code or "ECONNREFUSED", string.format("cannot reach the prisn server at %s: %s",
        self.address, tostring(err)), { hint = "check the server address and that it is running" })
    end
    local data = decode(res.body)
    if res.status >= 200 and res.status < 300 then return data or res.body, res end
    local e = type(data) == "table" and type(data.error) == "table" and data.error or nil
    local hint = e and e.hint ~= cjson.null and e.hint or nil
    errors.raise(e and e.code or "http_" .. res.status,
      e and e.message or ("the server answered " .. res.status), { hint = hint, http_status = res.status })
  end)
end

--- The namespace a command acts in: -n, PRISN_NAMESPACE, else "default".
function M.namespace(ctx)
  return (ctx and ctx.globals and ctx.globals.namespace) or os.getenv("PRISN_NAMESPACE") or "default"
end

--- A client for the server the CLI should use (see the module header).
-- Raises a prisn.error with a hint when there is none.
function M.connect(_ctx)
  local server, token = os.getenv("PRISN_SERVER"), os.getenv("PRISN_TOKEN")
  if server and server ~= "" then
    if not token or token == "" then
      errors.raise("no_token", "PRISN_SERVER is set but PRISN_TOKEN is not",
        { hint = "export PRISN_TOKEN=prisn_... (a token from 'prisn token create')" })
    end
    return setmetatable({ address = server, token = token }, Client)
  end
  local home = require("prisn.home").path()
  local socket = home .. "/prisn.sock"
  local saved = fs.read_file(home .. "/admin.token")
  if not saved then
    errors.raise("no_server", "no prisn server has been set up in " .. home,
      { hint = "start one with 'prisn server start' (or 'prisn cluster init')" })
  end
  return setmetatable({ address = "unix:" .. socket, token = saved:gsub("%s+$", ""), is_local = true }, Client)
end

return M
