-- Secrets: /api/v1/namespaces/{ns}/secrets and /api/v1/secrets/rotate-key.
--
--   GET    .../secrets               view   names and key names, never values
--   PUT    .../secrets/{name}        edit   {"data": {"KEY": "value"}, "merge": false}
--   GET    .../secrets/{name}        view   keys with values masked as "****";
--                                           ?reveal=1 shows them (edit or admin)
--   DELETE .../secrets/{name}        edit
--   POST   /api/v1/secrets/rotate-key admin  re-encrypt everything under a new key
--
-- The server holds the master key as server.keyring (prisn.secrets.keyring).
-- Each mutation, and each reveal, is an event naming the secret and its KEYS:
-- values never appear in events, logs, errors or any response but a reveal.
local api = require("prisn.server.api")
local keyring = require("prisn.secrets.keyring")
local rules = require("prisn.secrets")
local secrets = require("prisn.store.secrets")

local ROLES = { view = 1, edit = 2, admin = 3 }

local ACTIONS = {
  set = "secret.set",
  delete = "secret.deleted",
  reveal = "secret.revealed",
  rotate = "secret.key_rotated",
}

local function keyring_of(req)
  local kr = req.server.keyring
  if not kr then
    api.fail(503, "unavailable", "secrets are unavailable: the server has no master key loaded",
      "check the server log; the master key is $PRISN_HOME/master.key")
  end
  return kr
end

local function not_found(req)
  api.fail(404, "not_found", string.format("secret '%s' not found in namespace '%s'",
    req.params.name, req.params.ns),
    "list the secrets with 'prisn secret list -n " .. req.params.ns .. "'")
end

local function keys_message(keys)
  return "keys: " .. table.concat(keys, ", ")
end

local function log_info(req, fmt, ...)
  if req.server.log then req.server.log:info(fmt, ...) end
end

-- Runs the mutation fn(), which returns its result and the event describing
-- it; the event is recorded in the same transaction when the server's
-- recorder can (so the change and its audit record commit together).
local function mutate(req, fn)
  local events = req.server.events
  local function run()
    local result, event = fn()
    if events and event then
      event.actor = req.actor
      events:record(event)
    end
    return result
  end
  if events and events.transaction then return events:transaction(run) end
  return run()
end

local function truthy(v)
  return v == "1" or v == "true" or v == "yes" or v == ""
end

local function list(req)
  local items = {}
  for i, info in ipairs(secrets.list(req.server.db, req.params.ns)) do
    items[i] = secrets.to_public(info)
  end
  return 200, { items = api.array(items) }
end

local function show(req)
  local ns, name = req.params.ns, req.params.name
  if req.query.reveal == nil or not truthy(req.query.reveal) then
    local info = secrets.describe(req.server.db, ns, name)
    if not info then not_found(req) end
    return 200, secrets.to_public(info, rules.masked(info.keys))
  end
  local role = req.token and req.token.role
  if (ROLES[role] or 0) < ROLES.edit then
    api.fail(403, "forbidden", string.format("a %s token cannot reveal secret values: it needs the "
      .. "edit or admin role", tostring(role)),
      "leave out reveal to see the key names, or ask an admin for an edit token")
  end
  local values, info = secrets.get(req.server.db, keyring_of(req), ns, name)
  if not values then not_found(req) end
  if req.server.events then
    req.server.events:record({ namespace = ns, actor = req.actor, action = ACTIONS.reveal,
      object = "secret/" .. name, message = keys_message(info.keys) })
  end
  log_info(req, "secret %s/%s revealed to %s", ns, name, tostring(req.actor))
  return 200, secrets.to_public(info, values)
end

local function put(req)
  local ns, name = req.params.ns, req.params.name
  rules.check_name(name)
  local body = api.json_body(req)
  local data = api.field(body, "data", "table")
  local merge = api.field(body, "merge", "boolean", true) or false
  local kr = keyring_of(req)
  local result = mutate(req, function()
    local info, created = secrets.set(req.server.db, kr, ns, name, data, { merge = merge })
    local message = keys_message(info.keys)
    if merge then message = message .. " (merged: " .. table.concat(rules.key_names(data), ", ") .. ")" end
    return { info = info, created = created }, { namespace = ns, action = ACTIONS.set,
      object = "secret/" .. name, message = message }
  end)
  log_info(req, "secret %s/%s set by %s (%s)", ns, name, tostring(req.actor), keys_message(result.info.keys))
  return result.created and 201 or 200, secrets.to_public(result.info)
end

local function delete(req)
  local ns, name = req.params.ns, req.params.name
  local info = mutate(req, function()
    local info = secrets.describe(req.server.db, ns, name)
    if not info then not_found(req) end
    secrets.delete(req.server.db, ns, name)
    return info, { namespace = ns, action = ACTIONS.delete, object = "secret/" .. name,
      message = keys_message(info.keys) }
  end)
  log_info(req, "secret %s/%s deleted by %s", ns, name, tostring(req.actor))
  return 200, { namespace = ns, name = name, deleted = true, keys = api.array(info.keys) }
end

local function rotate(req)
  local result = keyring.rotate(keyring_of(req), req.server.db)
  local message = string.format("master key %s replaced by %s; %d secret%s re-encrypted",
    result.old_key_id, result.key_id, result.secrets, result.secrets == 1 and "" or "s")
  if req.server.events then
    req.server.events:record({ actor = req.actor, action = ACTIONS.rotate, message = message })
  end
  log_info(req, "%s (by %s)", message, tostring(req.actor))
  -- `secrets` is a list of names everywhere else in the API: the count is
  -- `reencrypted`, so a field keeps one type wherever it appears.
  return 200, { key_id = result.key_id, old_key_id = result.old_key_id, reencrypted = result.secrets }
end

return {
  { method = "GET", pattern = "/api/v1/namespaces/{ns}/secrets", auth = "view", handler = list },
  { method = "GET", pattern = "/api/v1/namespaces/{ns}/secrets/{name}", auth = "view", handler = show },
  { method = "PUT", pattern = "/api/v1/namespaces/{ns}/secrets/{name}", auth = "edit", handler = put },
  { method = "DELETE", pattern = "/api/v1/namespaces/{ns}/secrets/{name}", auth = "edit", handler = delete },
  { method = "POST", pattern = "/api/v1/secrets/rotate-key", auth = "admin", handler = rotate },
}
