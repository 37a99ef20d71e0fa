-- prisn.hooks.http: the `http` table a hook sees, so a hook can call a
-- webhook without io or os.execute.
--
--   local status, body = http.post(url, body, { headers = {...}, timeout = 5 })
--   local status, body = http.get(url, { timeout = 2 })
--   local status, body, headers = http.request("PUT", url, { body = "...", headers = {...} })
--
-- A table body is sent as JSON (Content-Type application/json unless a
-- header says otherwise). Returns the status code, the response body and the
-- response headers, or nil and a message ("connection refused", "timed out
-- after 5 s"). An HTTP error status (404, 500) is an answer, not a failure.
--
-- http:// goes through prisn's own client (prisn.http.client, on luv);
-- https:// runs curl, when it is installed (else nil, a message saying so).
-- Calls block the hook (it runs in a child process of its own, where that is
-- the point): each drives the child's loop until its answer or its timeout.
local uv = require("luv")
local cjson = require("cjson")
local async = require("prisn.async")
local client = require("prisn.http.client")

local M = {}

M.DEFAULT_TIMEOUT = 5         -- seconds
M.MAX_RESPONSE_BYTES = 1048576

--- Splits "http://host:port/path?q" into scheme, host, port, path; nil,
-- message for anything else.
function M.parse_url(url)
  if type(url) ~= "string" then return nil, "the URL must be a string" end
  local scheme, rest = url:match("^(https?)://(.+)$")
  if not scheme then return nil, "'" .. url .. "' is not an http:// or https:// URL" end
  local authority, path = rest:match("^([^/?#]+)(.*)$")
  if not authority then return nil, "'" .. url .. "' has no host" end
  local host, port = authority:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host or host == "" then return nil, "'" .. url .. "' has no host" end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  if path == "" then path = "/" end
  path = path:gsub("#.*$", "")
  return { scheme = scheme, host = host, port = port, path = path }
end

local function prepare(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("http: options must be a table", 3) end
  local headers = {}
  local has_type = false
  for name, value in pairs(opts.headers or {}) do
    headers[tostring(name)] = tostring(value)
    if tostring(name):lower() == "content-type" then has_type = true end
  end
  local body = opts.body
  if type(body) == "table" then
    body = cjson.encode(body)
    if not has_type then headers["Content-Type"] = "application/json" end
  elseif body ~= nil then
    body = tostring(body)
  end
  local timeout = tonumber(opts.timeout) or M.DEFAULT_TIMEOUT
  return headers, body, timeout
end

local function plain(method, url, headers, body, timeout)
  local host = url.host:find(":") and ("[" .. url.host .. "]") or url.host
  local res, err = client.request(string.format("http://%s:%d", host, url.port), method, url.path, {
    headers = headers, body = body, timeout_ms = math.floor(timeout * 1000) })
  if not res then
    if tostring(err):find("did not answer in time", 1, true) then
      return nil, string.format("timed out after %g s", timeout)
    end
    return nil, tostring(err)
  end
  return res.status, res.body, res.headers
end

local function with_curl(method, url, headers, body, timeout)
  local args = { "-sS", "-X", method, "--max-time", tostring(timeout), "--max-filesize",
    tostring(M.MAX_RESPONSE_BYTES), "-w", "\n%{http_code}", "-o", "-" }
  for name, value in pairs(headers) do
    args[#args + 1] = "-H"
    args[#args + 1] = name .. ": " .. value
  end
  if body then
    args[#args + 1] = "--data-binary"
    args[#args + 1] = "@-"
  end
  args[#args + 1] = "--"
  args[#args + 1] = url
  -- curl itself is bounded by --max-time; this is the backstop.
  local res, err, code = async.capture("curl", args,
    { stdin = body or "", timeout_ms = math.floor(timeout * 1000) + 2000 })
  if not res then
    if code == "ENOENT" then return nil, "https:// needs curl, which is not installed (plain http:// does not)" end
    return nil, tostring(err)
  end
  if res.timed_out then return nil, string.format("timed out after %g s", timeout) end
  local response, status = res.stdout:match("^(.*)\n(%d%d%d)$")
  if res.code ~= 0 or not status or status == "000" then
    local why = res.stderr:gsub("%s+$", "")
    return nil, why ~= "" and why or ("curl exited with " .. tostring(res.code))
  end
  return tonumber(status), response, {}
end

--- Sends a request; see the module header. Raises for misuse (a method or
-- URL that is not a string), returns nil, message for failures.
function M.request(method, url, opts)
  if type(method) ~= "string" or not method:match("^%u+$") then
    error("http.request: the method must be an upper-case word like \"POST\"", 2)
  end
  local parsed, perr = M.parse_url(url)
  if not parsed then return nil, perr end
  local headers, body, timeout = prepare(opts)
  local function go()
    if parsed.scheme == "https" then return with_curl(method, url, headers, body, timeout) end
    return plain(method, parsed, headers, body, timeout)
  end
  -- A hook never runs inside a prisn.async task: this call drives the
  -- child's loop itself until the answer (or the timeout).
  local ok, status, resp, resp_headers = pcall(async.main, go)
  if not ok then return nil, tostring(status) end
  uv.run("nowait") -- let closed handles finish closing
  return status, resp, resp_headers
end

--- The `http` table of a hook's environment.
function M.api()
  return {
    request = M.request,
    get = function(url, opts) return M.request("GET", url, opts) end,
    post = function(url, body, opts)
      local merged = {}
      for k, v in pairs(opts or {}) do merged[k] = v end
      merged.body = body
      return M.request("POST", url, merged)
    end,
  }
end

return M
