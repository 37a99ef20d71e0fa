-- `prisn events`: the audit trail — who did what to which object, and what
-- happened to jobs and the server on their own — read from the server's
-- API (GET /api/v1/namespaces/{ns}/events, or /api/v1/events with -A).
--
-- Text shows the newest events oldest first, like a log; -o json/yaml give
-- the API's event objects (ISO 8601 UTC times, namespace null for
-- cluster-wide events). Arguments are checked here first, so a typo is a
-- usage error (exit 2) without a round trip.
local errors = require("prisn.error")

local MAX_LIMIT = 1000

local COLUMNS = {
  { key = "time", header = "TIME" }, { key = "actor", header = "ACTOR" },
  { key = "action", header = "ACTION" }, { key = "object", header = "OBJECT" },
  { key = "message", header = "MESSAGE" },
}

-- Percent-encoding for a query value or a path segment.
local function escape(s)
  return (s:gsub("[^%w%-._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- The event time `ms` in local time, as short as stays clear: "18:46:03"
-- today, "Nov 26 18:46:03" this year, "2025-11-26 18:46" before.
local function short_time(ms, now_s)
  if not ms then return "-" end
  local t = ms // 1000
  local day, today = os.date("%Y-%m-%d", t), os.date("%Y-%m-%d", now_s)
  if day == today then return os.date("%H:%M:%S", t) end
  if day:sub(1, 4) == today:sub(1, 4) then return os.date("%b %d %H:%M:%S", t) end
  return os.date("%Y-%m-%d %H:%M", t)
end

local function list_events(ctx)
  local events = require("prisn.store.events")
  local output = require("prisn.output")
  local flags = ctx.flags
  if flags.limit < 1 or flags.limit > MAX_LIMIT then
    errors.usage(string.format("--limit must be from 1 to %d, got %d", MAX_LIMIT, flags.limit))
  end
  local query = { "limit=" .. flags.limit }
  if flags.since then
    local ok, err = events.parse_since(flags.since)
    if not ok then errors.usage("--since: " .. err, "e.g. --since 1h or --since 2026-11-26T18:46:00Z") end
    query[#query + 1] = "since=" .. escape(flags.since)
  end
  if flags["for"] then
    if not flags["for"]:match("^[a-z][a-z0-9_]*/.") then
      errors.usage(string.format("--for: '%s' is not KIND/NAME", flags["for"]),
        "e.g. --for job/01kaxq3v2m7r or --for secret/db")
    end
    query[#query + 1] = "for=" .. escape(flags["for"])
  end
  if flags.action then query[#query + 1] = "action=" .. escape(flags.action) end

  local clients = require("prisn.client")
  local client = clients.connect(ctx)
  local ns = clients.namespace(ctx)
  local path
  if flags.all_namespaces then
    path = "/api/v1/events"
  else
    path = "/api/v1/namespaces/" .. escape(ns) .. "/events"
  end
  local body = client:request("GET", path .. "?" .. table.concat(query, "&"))
  local items = output.array({})
  for i, ev in ipairs(type(body) == "table" and body.items or {}) do items[i] = ev end

  if ctx.globals.output ~= "text" then
    ctx.out:emit(items)
    return 0
  end
  local now_s = os.time()
  local rows = output.array({})
  for i, ev in ipairs(items) do
    rows[i] = {
      time = short_time(events.parse_time(ev.time), now_s),
      namespace = ev.namespace, actor = ev.actor, action = ev.action,
      object = ev.object, message = ev.message,
    }
  end
  local columns = COLUMNS
  if flags.all_namespaces then
    columns = { COLUMNS[1], { key = "namespace", header = "NAMESPACE" }, table.unpack(COLUMNS, 2) }
  end
  local with = {}
  for _, f in ipairs({ { "--since", flags.since }, { "--for", flags["for"] }, { "--action", flags.action } }) do
    if f[2] then with[#with + 1] = f[1] .. " " .. f[2] end
  end
  local empty = (flags.all_namespaces and "No events found" or string.format("No events found in namespace '%s'", ns))
    .. (#with > 0 and (" with " .. table.concat(with, ", ")) or "") .. "."
  ctx.out:emit(rows, { columns = columns, empty = empty })
  return 0
end

return {
  {
    name = "events",
    summary = "Show the audit trail: who changed what, and what happened to jobs",
    description = "Lists events, oldest first: every change made through the API (jobs\n"
      .. "submitted or deleted, secrets set, tokens created or revoked: ACTOR is\n"
      .. "the token's name) and every lifecycle change prisn made itself (a job\n"
      .. "started or finished, the server started: ACTOR is \"system\"). Shows the\n"
      .. "newest --limit events of the namespace (-n, default \"default\"); -A shows\n"
      .. "every namespace and the cluster-wide events (token actions, the server),\n"
      .. "and needs an admin token. TIME is local time. Messages name secrets and\n"
      .. "variables, never their values. With -o json or -o yaml each event has\n"
      .. "id, time (ISO 8601, UTC), namespace (null: cluster-wide), actor,\n"
      .. "action, object and message. Needs a running server ('prisn server start').",
    flags = {
      { name = "since", type = "string", placeholder = "WHEN",
        summary = "Only events since WHEN: a duration back from now (30m, 1h, 7d) or an ISO time" },
      { name = "for", type = "string", placeholder = "KIND/NAME",
        summary = "Only events about this object, e.g. job/01kaxq3v2m7r or secret/db" },
      { name = "action", type = "string", placeholder = "PREFIX",
        summary = "Only actions starting with PREFIX, e.g. job. or token.revoked" },
      { name = "limit", type = "int", default = 100, placeholder = "N",
        summary = "Show at most the N newest events (1 to 1000)" },
      { name = "all-namespaces", short = "A", type = "bool",
        summary = "Events of every namespace, and cluster-wide ones (admin token)" },
    },
    examples = {
      { "prisn events", "The latest events of the default namespace" },
      { "prisn events --since 1h", "What happened in the last hour" },
      { "prisn events --for job/01kaxq3v2m7r", "The life of one job" },
      { "prisn events -A --action token.", "Token actions, cluster-wide" },
      { "prisn events -A -o json", "Every namespace's events, as JSON" },
    },
    handler = list_events,
  },
}
