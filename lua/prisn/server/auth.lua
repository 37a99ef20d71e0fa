-- prisn.server.auth: who is asking, and may they.
--
-- authenticate reads "Authorization: Bearer prisn_..." and returns the token
-- record, or raises 401. authorize compares the token's role with the
-- route's level and, for namespaced routes, its namespaces with the one in
-- the path, or raises 403. Messages say what was missing without echoing the
-- presented token.
local api = require("prisn.server.api")
local tokens = require("prisn.store.tokens")

local M = {}

local WHY = {
  malformed = "the token is malformed",
  unknown = "the token is not valid",
  revoked = "the token has been revoked",
  expired = "the token has expired",
}

--- The token record for the request, or raises 401.
function M.authenticate(server, headers)
  local header = headers["authorization"]
  if not header then
    api.fail(401, "unauthorized", "this endpoint needs a token",
      "send 'Authorization: Bearer prisn_...' (the local admin token is in $PRISN_HOME/admin.token)")
  end
  local presented = header:match("^[Bb]earer%s+(%S+)%s*$")
  if not presented then
    api.fail(401, "unauthorized", "the Authorization header is not 'Bearer <token>'",
      "send 'Authorization: Bearer prisn_...'")
  end
  local token, why = tokens.verify(server.db, server.token_key, presented)
  if not token then
    api.fail(401, "unauthorized", WHY[why] or "the token is not valid",
      "ask an admin for a new token ('prisn token create')")
  end
  return token
end

--- Whether the token may use namespace `ns`.
function M.allows_namespace(token, ns)
  for _, allowed in ipairs(token.namespaces) do
    if allowed == "*" or allowed == ns then return true end
  end
  return false
end

--- Raises 403 unless the token's role reaches `level` and, when `ns` is
-- given, the token holds that namespace.
function M.authorize(token, level, ns)
  if (tokens.ROLES[token.role] or 0) < (tokens.ROLES[level] or 99) then
    api.fail(403, "forbidden", string.format("a %s token cannot do this: it needs the %s role", token.role, level),
      "ask an admin for a token with the " .. level .. " role")
  end
  if ns and not M.allows_namespace(token, ns) then
    api.fail(403, "forbidden", string.format("this token has no access to namespace '%s'", ns),
      "use a token bound to '" .. ns .. "', or ask an admin to create one")
  end
  -- Admin routes outside any namespace (tokens, every namespace's jobs and
  -- events, key rotation) act on the whole cluster: an admin token bound to
  -- some namespaces may not use them.
  if not ns and level == "admin" and not M.allows_namespace(token, "*") then
    api.fail(403, "forbidden", "this needs a cluster-wide admin token (namespaces '*')",
      "use the admin token, or one created with --namespace '*'")
  end
end

return M
