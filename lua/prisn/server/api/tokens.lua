-- Tokens: /api/v1/tokens. Admin only; a new token is in the response once.
local clock = require("prisn.clock")
local api = require("prisn.server.api")
local tokens = require("prisn.store.tokens")

-- A token may be made to expire in up to ten years (or never, without expires_in).
local MAX_EXPIRES_IN = 3650 * 86400

local function record_event(req, action, token, message)
  if req.server.events then
    req.server.events:record({ actor = req.actor, action = action, object = "token/" .. token.id,
      message = message })
  end
end

return {
  { method = "GET", pattern = "/api/v1/tokens", auth = "admin", handler = function(req)
    local items = {}
    for i, t in ipairs(tokens.list(req.server.db)) do items[i] = tokens.to_public(t) end
    return 200, { items = api.array(items) }
  end },
  { method = "POST", pattern = "/api/v1/tokens", auth = "admin", handler = function(req)
    local body = api.json_body(req)
    local name = api.field(body, "name", "string")
    local role = api.field(body, "role", "string")
    local namespaces = api.field(body, "namespaces", "table")
    local expires_at
    local seconds = api.duration_field(body, "expires_in", 1, MAX_EXPIRES_IN)
    if seconds then expires_at = clock.now_ms() + math.floor(seconds * 1000) end
    local record, secret = tokens.create(req.server.db, req.server.token_key, {
      name = name, role = role, namespaces = namespaces, expires_at = expires_at, created_by = req.actor,
    })
    record_event(req, "token.created", record,
      string.format("%s token '%s' for %s", role, name, table.concat(namespaces, ", ")))
    req.server.log:info("token %s (%s, %s) created by %s", record.id, name, role, req.actor)
    local out = tokens.to_public(record)
    out.token = secret
    return 201, out
  end },
  { method = "DELETE", pattern = "/api/v1/tokens/{id}", auth = "admin", handler = function(req)
    local record = tokens.revoke(req.server.db, req.params.id)
    record_event(req, "token.revoked", record, "token '" .. record.name .. "' revoked")
    req.server.log:info("token %s (%s) revoked by %s", record.id, record.name, req.actor)
    return 200, tokens.to_public(record)
  end },
}
