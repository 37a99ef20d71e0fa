-- prisn.client: how the CLI reaches a prisn server. Everything the CLI does
-- on a server goes through the HTTP API, so anything it does, curl can do.
--
-- Which server: the context in effect (prisn.contexts.resolve: --context,
-- PRISN_CONTEXT, PRISN_SERVER with PRISN_TOKEN, the current context, else
-- "local": the unix socket $PRISN_HOME/prisn.sock with the admin token the
-- server saved in $PRISN_HOME/admin.token). It is resolved once per command
-- and kept for that command's ctx, so `connect` and `namespace` agree.
--
--   local c = require("prisn.client").connect(ctx)
--   local jobs = c:request("GET", "/api/v1/namespaces/" .. client.namespace(ctx) .. "/jobs")
--
-- A non-2xx answer is raised as the prisn.error the server sent
-- ({"error": {code, message, hint}}), so the CLI prints it as is.
local cjson = require("cjson")
local async = require("prisn.async")
local contexts = require("prisn.contexts")
local errors = require("prisn.error")
local httpc = require("prisn.http.client")
local homes = require("prisn.home")
local json = require("prisn.output.json")

local M = {}

-- What to do about a server the TLS check refused, by code.
M.TLS_HINTS = {
  EPINMISMATCH = "the server's CA is not the one this context pins: if it was made again, take the new "
    .. "fingerprint from 'prisn server status' on the server and add the context again; otherwise someone "
    .. "may be in the middle",
  EUNKNOWNCA = "the server's certificate is not signed by the CA given; check --ca or the fingerprint",
  EHOSTMISMATCH = "the server's certificate does not name this address: connect by a name it holds "
    .. "(see $PRISN_HOME/tls/server.crt), or restart the server with that --listen address",
  ECERTEXPIRED = "the server's certificate has expired: restarting the server renews it (within 30 days "
    .. "of its end)",
  ECERTFUTURE = "the certificate is not valid yet: check the clocks of both machines",
  ENOTTLS = "the server does not speak HTTPS there: was it started with --insecure-http? Then use http://",
}

local Client = {}
Client.__index = Client

local function decode(body)
  if body == nil or body == "" then return {} end
  -- prisn.output.json keeps `[]` an array (cjson alone makes it `{}`).
  local ok, value = pcall(json.decode, body)
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
-- raises a prisn.error. opts: on_chunk (stream the body), timeout_ms, raw
-- (body is a string sent as is).
function Client:request(method, path, body, opts)
  opts = opts or {}
  return in_task(function()
    local headers = { Authorization = "Bearer " .. self.token }
    local payload
    if opts.raw then
      payload = body
      headers["Content-Type"] = "application/octet-stream"
    elseif body ~= nil then
      payload = cjson.encode(body)
      headers["Content-Type"] = "application/json"
    end
    local res, err, code = httpc.request(self.address, method, path, {
      headers = headers, body = payload, on_chunk = opts.on_chunk, timeout_ms = opts.timeout_ms, tls = self.tls })
    if not res and M.TLS_HINTS[code] then
      errors.raise("tls_" .. code:lower():gsub("^e", ""), string.format("cannot trust the prisn server at %s: %s",
        self.address, tostring(err):gsub("^E%u+: ", "")), { hint = M.TLS_HINTS[code] })
    end
    if not res then
      if self.is_local and (code == "ENOENT" or code == "ECONNREFUSED") then
        errors.raise("no_server", "no prisn server is running (" .. self.address .. ")",
          { hint = "start one with 'prisn server start'" })
      end
      if self.context == contexts.ENV then
        errors.raise(code or "ECONNREFUSED", string.format("cannot reach the prisn server at %s (PRISN_SERVER): %s",
          self.address, tostring(err)), { hint = "check PRISN_SERVER and that the server is running there" })
      end
      errors.raise(code or "ECONNREFUSED", string.format("cannot reach the prisn server of context '%s' at %s: %s",
        self.context, self.address, tostring(err)),
        { hint = "check that the server runs there; 'prisn context list' shows the address, "
          .. "'--context local' uses this machine's server" })
    end
    local data = decode(res.body)
    if res.status >= 200 and res.status < 300 then return data or res.body, res end
    local e = type(data) == "table" and type(data.error) == "table" and data.error or nil
    local hint = e and e.hint ~= cjson.null and e.hint or nil
    errors.raise(e and e.code or "http_" .. res.status,
      e and e.message or ("the server answered " .. res.status), { hint = hint, http_status = res.status })
  end)
end

-- The resolved context of each command's ctx (weak: it goes with the ctx).
local resolved_for = setmetatable({}, { __mode = "k" })

--- The context `ctx` works with (see prisn.contexts.resolve), resolved on
-- first use and then kept for that ctx. Raises a prisn.error for an unknown
-- context or PRISN_SERVER without PRISN_TOKEN.
function M.context(ctx)
  local cached = ctx and resolved_for[ctx]
  if cached then return cached end
  local name = ctx and ctx.globals and ctx.globals.context
  local resolved = contexts.resolve(homes.path(), { context = name })
  if ctx then resolved_for[ctx] = resolved end
  return resolved
end

--- Follows job `id` in namespace `ns`: calls on_output(stream, data) for
-- its stored and then live output, until it ends. Returns the last record:
-- { ["end"] = true, state, reason, exit_code }.
function Client:follow_job(ns, id, on_output)
  local pending, final = "", nil
  self:request("GET", string.format("/api/v1/namespaces/%s/jobs/%s/logs?follow=1", ns, id), nil, {
    timeout_ms = 7 * 24 * 3600 * 1000,
    on_chunk = function(chunk)
      pending = pending .. chunk
      while true do
        local line, rest = pending:match("^([^\n]*)\n(.*)$")
        if not line then break end
        pending = rest
        local ok, rec = pcall(cjson.decode, line)
        if ok and type(rec) == "table" then
          if rec["end"] then final = rec else on_output(rec.stream, rec.data) end
        end
      end
    end,
  })
  return final
end

--- Sends `bytes` as the raw request body (application/octet-stream).
function Client:request_raw(method, path, bytes, opts)
  local o = { raw = true }
  for k, v in pairs(opts or {}) do o[k] = v end
  return self:request(method, path, bytes, o)
end

--- The namespace a command acts in: -n, else PRISN_NAMESPACE, else the
-- context's namespace, else "default".
function M.namespace(ctx)
  local flag = ctx and ctx.globals and ctx.globals.namespace
  if flag then return flag end
  return M.context(ctx).namespace
end

--- A client for the server of the context in effect (see the module
-- header). `client.namespace` is the context's namespace (with
-- PRISN_NAMESPACE applied; not -n). Raises a prisn.error with a hint when
-- there is no server to talk to.
function M.connect(ctx)
  local target = M.context(ctx)
  if target.is_local and not target.token then
    local home = homes.path()
    errors.raise("no_server", "no prisn server has been set up in " .. home,
      { hint = "start one with 'prisn server start' (or 'prisn cluster init'), "
        .. "or use a remote server with 'prisn context add' and 'prisn context use'" })
  end
  return setmetatable({ address = target.address, token = target.token, is_local = target.is_local,
    context = target.name, namespace = target.namespace, tls = target.tls }, Client)
end

return M
