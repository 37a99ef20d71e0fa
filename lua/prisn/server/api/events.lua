-- prisn.server.api.events: the audit trail over HTTP.
--
--   GET /api/v1/namespaces/{ns}/events   (view)  the events of one namespace
--   GET /api/v1/events                   (admin) every namespace, and the
--                                        cluster-wide events (tokens, server)
--
-- Query parameters, all optional:
--   since   a duration back from now ("1h", "30m", "7d") or an ISO 8601
--           time ("2026-11-26T18:46:00Z"): only events at or after it
--   for     an object, "job/01kaxq3v2m7r": only events about it
--   action  an action prefix, "job." or "token.revoked"
--   after   an event id: only events recorded after it (to follow: pass
--           the last id you saw)
--   limit   1..1000, default 100
--   namespace  (/api/v1/events only) one namespace
--
-- The answer is {"items": [event, ...]} oldest first: the newest `limit`
-- matching events, or with `after`, the first `limit` after that one. An
-- event is {id, time, namespace (null: cluster-wide), actor, action, object,
-- message}. A bad parameter answers 400 "bad_request" naming it.
local api = require("prisn.server.api")
local events = require("prisn.store.events")
local ids = require("prisn.ids")

local MAX_LIMIT = 1000

local function bad(message, hint)
  api.fail(400, "bad_request", message, hint)
end

-- The query parameter `name`, nil when absent or empty.
local function param(req, name)
  local v = req.query and req.query[name]
  if type(v) == "table" then v = v[#v] end -- repeated: the last one
  if v == nil or v == "" then return nil end
  return tostring(v)
end

-- The events.list options for the query of `req` (namespace aside).
-- Raises a 400 for a bad parameter.
local function list_options(req)
  local opts = { limit = events.DEFAULT_LIMIT }
  local since = param(req, "since")
  if since then
    local ms, err = events.parse_since(since)
    if not ms then
      bad("bad 'since': " .. err, "use a duration like since=1h or a time like since=2026-11-26T18:46:00Z")
    end
    opts.since_ms = ms
  end
  local object = param(req, "for")
  if object then
    if not object:match("^[a-z][a-z0-9_]*/.") then
      bad(string.format("bad 'for': '%s' is not KIND/NAME", object), "use for=job/ID, for=secret/NAME, ...")
    end
    opts.object = object
  end
  opts.action_prefix = param(req, "action")
  local after = param(req, "after")
  if after then
    if not ids.valid(after) then bad(string.format("bad 'after': '%s' is not an event id", after)) end
    opts.after = after
  end
  local limit = param(req, "limit")
  if limit then
    local n = limit:match("^%d+$") and math.tointeger(tonumber(limit))
    if not n or n < 1 or n > MAX_LIMIT then
      bad(string.format("bad 'limit': '%s' is not a number from 1 to %d", limit, MAX_LIMIT))
    end
    opts.limit = n
  end
  -- Following (after) reads forwards; otherwise take the newest and turn them round.
  opts.order = opts.after and "asc" or "desc"
  return opts
end

-- The answer for events.list(db, opts): oldest first, public shape.
local function answer(db, opts)
  local list = events.list(db, opts)
  local items = api.array({})
  local n = #list
  for i, ev in ipairs(list) do
    items[opts.order == "asc" and i or n - i + 1] = events.to_public(ev)
  end
  return 200, { items = items }
end

local function list_namespace(req)
  local opts = list_options(req)
  opts.namespace = req.params.ns
  return answer(req.server.db, opts)
end

local function list_all(req)
  local opts = list_options(req)
  opts.namespace = param(req, "namespace")
  return answer(req.server.db, opts)
end

return {
  { method = "GET", pattern = "/api/v1/namespaces/{ns}/events", auth = "view", handler = list_namespace },
  { method = "GET", pattern = "/api/v1/events", auth = "admin", handler = list_all },
}
