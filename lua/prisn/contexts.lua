-- prisn.contexts: named targets for the CLI, like kubectl's contexts. A
-- context is a server address, a token and a default namespace; the CLI
-- talks to the one in effect (see `resolve`).
--
-- They live in $PRISN_HOME/contexts.json, mode 0600 because it holds tokens,
-- always rewritten whole through a temporary file (prisn.fs.write_atomic):
--
--   { "current": "prod" | null,
--     "contexts": { "prod": { "server": "https://10.0.0.5:7433",
--                             "token": "prisn_...", "namespace": "web",
--                             "fingerprint": "<sha256 of the server's CA>" } } }
--
-- An https context always has a fingerprint: the one given (`#sha256=HEX`
-- after the address, --fingerprint or --ca), else that of this machine's own
-- CA ($PRISN_HOME/ca.crt) — never one learnt from the network (no trust on
-- first use). The connection then proves the server holds that CA's chain.
--
-- The context "local" is built in and never stored: the server on this
-- machine, reached on $PRISN_HOME/prisn.sock with $PRISN_HOME/admin.token.
-- It needs no setup and cannot be deleted or overwritten. "env" is reserved
-- too: it names the ad-hoc context PRISN_SERVER and PRISN_TOKEN make.
--
-- This module decides which target a command uses; it does not connect
-- (prisn.client does) and never prints a token.
local errors = require("prisn.error")
local fs = require("prisn.fs")
local cjson = require("cjson")
local json = require("prisn.output.json")
local tls = require("prisn.net.tls")
local server_tls = require("prisn.server.tls")

local M = {}

M.LOCAL = "local"
M.ENV = "env"
M.FILE = "contexts.json"

local NAME_PATTERN = "^[a-z0-9][a-z0-9._-]*$"
-- The server's rule for namespace names (prisn.store.tokens), without '*':
-- a context works in one namespace.
local NAMESPACE_PATTERN = "^[a-z0-9][a-z0-9-]*$"
local MAX_NAME = 63

local function file_path(home)
  return home .. "/" .. M.FILE
end

local function invalid(message, hint)
  errors.raise("invalid", message, { hint = hint, status = 2 })
end

--- Checks a context name; returns it or raises a prisn.error.
function M.check_name(name)
  if type(name) ~= "string" or #name > MAX_NAME or not name:match(NAME_PATTERN) then
    invalid(string.format("'%s' is not a context name", tostring(name):sub(1, 80)),
      "lower-case letters, digits, '.', '_' and '-', starting with a letter or digit, up to 63 characters")
  end
  return name
end

--- Checks a server address: "https://host:port" (optionally followed by
-- "#sha256=HEX", the CA fingerprint to pin), "http://host:port" (a server
-- started with --insecure-http; without a port 443 and 80) or "unix:/path".
-- Returns it without a trailing '/' or the fragment, and the fingerprint
-- (normalized) when there was one; raises otherwise.
function M.check_server(server)
  local hint = "use https://HOST:PORT (the address 'prisn server start' printed) or unix:/PATH/prisn.sock"
  if type(server) ~= "string" or server == "" then invalid("the server address is empty", hint) end
  local shown = server:sub(1, 120)
  if server:match("^unix:/[^%c]*$") and #server > 6 then return server end
  local base, fragment = server:match("^(https://[^#]*)#(.*)$")
  local fingerprint
  if base then
    fingerprint = tls.normalize_fingerprint(fragment:match("^sha256[=:](.*)$") or fragment)
    if not fingerprint then
      invalid(string.format("'%s': the part after '#' is not a SHA-256 fingerprint", shown),
        "write https://HOST:PORT#sha256=HEX, HEX the 64 hex digits 'prisn server status' shows on the server")
    end
    server = base
  end
  local scheme = server:match("^(https?)://")
  local host, port = server:match("^https?://(%[[%x:.]+%]):(%d+)/?$")
  if not host then host, port = server:match("^https?://([%w.-]+):(%d+)/?$") end
  if not host then
    host = server:match("^https?://([%w.-]+)/?$")
    port = host and (scheme == "https" and "443" or "80")
  end
  local n = tonumber(port)
  if not host or not n or n < 1 or n > 65535 then
    invalid(string.format("'%s' is not a server address", shown), hint)
  end
  return (server:gsub("/$", "")), fingerprint
end

--- The fingerprint an https context pins: `given` (normalized; raises when
-- it is not one), else this machine's CA ($PRISN_HOME/ca.crt). Raises when
-- there is neither: prisn never trusts what the network shows it first.
function M.pin_for(home, server, given)
  if given then
    local fp = tls.normalize_fingerprint(given)
    if not fp then
      invalid(string.format("'%s' is not a SHA-256 fingerprint", tostring(given):sub(1, 80)),
        "64 hex digits (colons allowed), as 'prisn server status' shows after sha256:")
    end
    return fp, "given"
  end
  local fp = server_tls.local_fingerprint(home)
  if fp then return fp, "local" end
  errors.raise("no_pin", string.format("%s speaks HTTPS and no CA fingerprint is given to check it with", server),
    { hint = "on the server, 'prisn server status' (or 'prisn cluster init') prints the CA fingerprint: "
      .. "add it as " .. server .. "#sha256=HEX, or --fingerprint HEX, or --ca FILE with its ca.crt",
      status = 2 })
end

--- Checks a token's shape (never echoing it); returns it or raises.
function M.check_token(token)
  local hint = "use a token printed by 'prisn token create' on the server"
  if type(token) ~= "string" or token == "" then invalid("the token is empty", hint) end
  if token:sub(1, 6) ~= "prisn_" then invalid("the token does not start with 'prisn_'", hint) end
  if not token:match("^prisn_%w+_[%w_-]+$") then
    invalid("the token is not a whole prisn token (prisn_ID_SECRET, no spaces or newlines)", hint)
  end
  return token
end

--- Checks a namespace name; returns it or raises.
function M.check_namespace(ns)
  if type(ns) ~= "string" or #ns > MAX_NAME or not ns:match(NAMESPACE_PATTERN) then
    invalid(string.format("'%s' is not a namespace name", tostring(ns):sub(1, 80)),
      "lower-case letters, digits and '-', up to 63 characters")
  end
  return ns
end

--- A token shown safely: its first characters (at most 10: "prisn_" and
-- the start of the public id, never more than half of it) and an ellipsis.
function M.mask(token)
  if type(token) ~= "string" or token == "" then return nil end
  return token:sub(1, math.min(10, #token // 2)) .. "…"
end

--- Reads contexts.json. Returns { current = NAME or nil, contexts = { NAME =
-- { server, token, namespace } } } (empty when the file does not exist);
-- raises a prisn.error for a file that is not what prisn writes.
function M.load(home)
  local path = file_path(home)
  local text = fs.read_file(path)
  local data = { contexts = {} }
  if not text then return data end
  local function bad(why)
    errors.raise("bad_contexts", string.format("%s: %s", path, why),
      { hint = "fix the file, or remove it and add the contexts again with 'prisn context add'" })
  end
  local ok, decoded = pcall(cjson.decode, text)
  if not ok or type(decoded) ~= "table" then bad("not a JSON object") end
  local current = decoded.current
  if type(current) == "string" and current ~= M.LOCAL then
    data.current = current
  elseif current ~= nil and type(current) ~= "string" and current ~= cjson.null then
    bad("'current' is not a context name")
  end
  if decoded.contexts ~= nil and type(decoded.contexts) ~= "table" then bad("'contexts' is not an object") end
  for name, c in pairs(decoded.contexts or {}) do
    if type(name) ~= "string" or type(c) ~= "table" or type(c.server) ~= "string"
        or type(c.token) ~= "string" then
      bad(string.format("context '%s' needs a server and a token", tostring(name)))
    end
    if name ~= M.LOCAL then
      data.contexts[name] = { server = c.server, token = c.token,
        namespace = type(c.namespace) == "string" and c.namespace or nil,
        fingerprint = type(c.fingerprint) == "string" and c.fingerprint or nil }
    end
  end
  return data
end

local function save(home, data)
  local doc = { current = data.current or cjson.null, contexts = data.contexts }
  local path = file_path(home)
  local ok, err, code = fs.write_atomic(path, json.encode(doc), tonumber("600", 8))
  if not ok then
    errors.raise(code or "EIO", string.format("cannot write %s: %s", path, tostring(err)),
      { hint = "check that PRISN_HOME is writable" })
  end
end

local function names(data)
  local list = { M.LOCAL }
  local stored = {}
  for name in pairs(data.contexts) do stored[#stored + 1] = name end
  table.sort(stored)
  for _, name in ipairs(stored) do list[#list + 1] = name end
  return list
end

local function unknown(data, name, where)
  local known = names(data)
  local hint
  if #known == 1 then
    hint = "the only context is 'local'; add one with 'prisn context add NAME --server URL --token TOKEN'"
  else
    hint = "known contexts: " .. table.concat(known, ", ") .. " (see 'prisn context list')"
  end
  if where then hint = where .. "; " .. hint end
  errors.raise("unknown_context", string.format("unknown context '%s'", tostring(name):sub(1, 80)),
    { hint = hint })
end

local function reserved(name, verb)
  if name == M.LOCAL then
    invalid(string.format("the context 'local' is built in and cannot be %s", verb),
      "'local' is always this machine's server; add a context under another name")
  elseif name == M.ENV then
    invalid(string.format("the context name 'env' is reserved and cannot be %s", verb),
      "'env' is what PRISN_SERVER and PRISN_TOKEN make; choose another name")
  end
end

--- Adds (or replaces) a context. fields: server (may end in #sha256=HEX),
-- token, namespace (default "default"), fingerprint (for https; see
-- pin_for). Returns the stored entry and whether one was replaced.
function M.add(home, name, fields)
  M.check_name(name)
  reserved(name, "overwritten")
  fields = fields or {}
  local server, in_address = M.check_server(fields.server)
  if in_address and fields.fingerprint and tls.normalize_fingerprint(fields.fingerprint) ~= in_address then
    invalid("the address's #sha256= and --fingerprint differ", "give the fingerprint once")
  end
  local entry = {
    server = server,
    token = M.check_token(fields.token),
    namespace = M.check_namespace(fields.namespace or "default"),
  }
  if server:match("^https://") then entry.fingerprint = M.pin_for(home, server, in_address or fields.fingerprint) end
  local data = M.load(home)
  local replaced = data.contexts[name] ~= nil
  data.contexts[name] = entry
  save(home, data)
  return entry, replaced
end

--- Makes `name` the current context ("local" clears it).
function M.use(home, name)
  local data = M.load(home)
  if name == M.LOCAL then
    data.current = nil
  elseif data.contexts[name] then
    data.current = name
  else
    unknown(data, name)
  end
  save(home, data)
  return name
end

--- Deletes a context. Returns true when it was the current one (the current
-- context is then "local" again).
function M.delete(home, name)
  reserved(name, "deleted")
  local data = M.load(home)
  if not data.contexts[name] then unknown(data, name) end
  data.contexts[name] = nil
  local was_current = data.current == name
  if was_current then data.current = nil end
  save(home, data)
  return was_current
end

local function local_entry(home)
  local token = fs.read_file(home .. "/admin.token")
  return { name = M.LOCAL, address = "unix:" .. home .. "/prisn.sock",
    token = token and token:gsub("%s+$", "") or nil, is_local = true }
end

--- The stored current context's name; "local" when none is set.
function M.current(home)
  return M.load(home).current or M.LOCAL
end

--- Every context, "local" first then by name: { name, server, token,
-- namespace, current, builtin }. Callers must mask tokens before showing.
function M.list(home)
  local data = M.load(home)
  local current = data.current or M.LOCAL
  local out = {}
  for _, name in ipairs(names(data)) do
    local c = data.contexts[name]
    if name == M.LOCAL then
      local l = local_entry(home)
      c = { server = l.address, token = l.token, namespace = "default", builtin = true }
    end
    out[#out + 1] = { name = name, server = c.server, token = c.token, namespace = c.namespace or "default",
      current = name == current, builtin = c.builtin == true }
  end
  return out
end

local function nonempty(value)
  if value == nil or value == "" then return nil end
  return value
end

local function named(home, data, name, where)
  if name == M.LOCAL then return local_entry(home) end
  local c = data.contexts[name]
  if not c then unknown(data, name, where) end
  return { name = name, address = c.server, token = c.token, namespace = c.namespace,
    tls = c.fingerprint and { fingerprint = c.fingerprint } or nil }
end

--- The context a command uses: { name, address, token, namespace, is_local,
-- source }. opts: context (--context), env (a getenv function, default
-- os.getenv). Precedence: --context > PRISN_CONTEXT > PRISN_SERVER with
-- PRISN_TOKEN (the ad-hoc context "env") > the current context > "local".
-- PRISN_NAMESPACE overrides the context's namespace; the namespace falls
-- back to "default". (-n overrides both; the caller handles it.) Raises a
-- prisn.error for an unknown context or PRISN_SERVER without PRISN_TOKEN.
function M.resolve(home, opts)
  opts = opts or {}
  local env = opts.env or os.getenv
  local data = M.load(home)
  local resolved, source
  local flag, from_env = nonempty(opts.context), nonempty(env("PRISN_CONTEXT"))
  local server = nonempty(env("PRISN_SERVER"))
  if flag then
    resolved, source = named(home, data, flag), "flag"
  elseif from_env then
    resolved, source = named(home, data, from_env, "PRISN_CONTEXT names it"), "PRISN_CONTEXT"
  elseif server then
    local token = nonempty(env("PRISN_TOKEN"))
    if not token then
      errors.raise("no_token", "PRISN_SERVER is set but PRISN_TOKEN is not",
        { hint = "export PRISN_TOKEN=prisn_... (a token from 'prisn token create'), "
          .. "or save both with 'prisn context add'" })
    end
    local ok, checked, fingerprint = pcall(M.check_server, server)
    if not ok then
      errors.raise("invalid", "PRISN_SERVER: " .. checked.message, { hint = checked.hint })
    end
    local trust
    if checked:match("^https://") then
      local pinned, pin = pcall(M.pin_for, home, checked, fingerprint)
      if not pinned then
        errors.raise("no_pin", "PRISN_SERVER: " .. pin.message, { hint = "end PRISN_SERVER with #sha256=HEX; "
          .. tostring(pin.hint) })
      end
      trust = { fingerprint = pin }
    end
    resolved, source = { name = M.ENV, address = checked, token = token, tls = trust }, "PRISN_SERVER"
  elseif data.current then
    resolved, source = named(home, data, data.current,
      "it is the current context in " .. M.FILE .. " ('prisn context use local' resets it)"), "current"
  else
    resolved, source = local_entry(home), "default"
  end
  resolved.source = source
  resolved.is_local = resolved.is_local == true
  resolved.namespace = nonempty(env("PRISN_NAMESPACE")) or resolved.namespace or "default"
  return resolved
end

return M
