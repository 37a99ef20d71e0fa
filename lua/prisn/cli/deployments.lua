-- prisn.cli.deployments: the CLI side of deployments — `prisn get deploy`,
-- `get instances`, `describe deploy`, `delete deploy`, `scale`, `rollout
-- history|undo`. Everything goes through the API (prisn.client).
local errors = require("prisn.error")
local output = require("prisn.output")
local uv = require("luv")
local jobs = require("prisn.cli.jobs")
local units = require("prisn.units")
local sys = require("prisn.core.sys")

local M = {}

local function client_module() return require("prisn.client") end

M.WAIT_POLL_MS = 100

--- The API path of the deployments of `ns`, of one, or of an action on one.
function M.path_in(ns, name, action)
  return string.format("/api/v1/namespaces/%s/deployments%s%s", ns, name and ("/" .. name) or "",
    action and ("/" .. action) or "")
end

local function path(ctx, name, action)
  return M.path_in(client_module().namespace(ctx), name, action)
end

--- Waits until revision `revision` of deployment ns/name serves, or was
-- rolled back, or failed, or `timeout_s` passed. Returns the outcome
-- ("active", "rolled_back", "failed", "timeout") and the deployment as last
-- seen. `on_poll(d)`, when given, sees the deployment at every look (for
-- a progress line).
function M.wait_rollout(c, ns, name, revision, timeout_s, on_poll)
  local deadline = uv.hrtime() + timeout_s * 1e9
  while true do
    local d = c:request("GET", M.path_in(ns, name))
    if on_poll then on_poll(d) end
    if d.revision ~= revision or d.revision_state == "rolled_back" then return "rolled_back", d end
    if d.revision_state == "active" then return "active", d end
    if d.revision_state == "failed" then return "failed", d end
    if uv.hrtime() > deadline then return "timeout", d end
    uv.sleep(M.WAIT_POLL_MS)
  end
end

local function progress_line(d, elapsed_s)
  return string.format("deployment %s: revision %s %s, %d/%d ready (%ds)", d.name, tostring(d.revision),
    tostring(d.revision_state), d.ready or 0, d.replicas or 0, math.floor(elapsed_s))
end

--- Follows the rollout of deployment ns/name's current revision, as
-- wait_rollout does, showing progress (n/N ready, elapsed) unless -q or
-- -o json/yaml: on a terminal one line redrawn, elsewhere a line per
-- change. Returns the outcome and the deployment as last seen.
function M.follow_rollout(ctx, c, ns, name, revision, timeout_s)
  local show = ctx.globals.output == "text" and not ctx.globals.quiet
  local tty = show and sys.isatty(1)
  local started, last = uv.hrtime(), nil
  local deadline = started + timeout_s * 1e9
  while true do
    local d = c:request("GET", M.path_in(ns, name))
    local outcome
    if d.revision ~= revision or d.revision_state == "rolled_back" then outcome = "rolled_back"
    elseif d.revision_state == "active" then outcome = "active"
    elseif d.revision_state == "failed" then outcome = "failed"
    elseif uv.hrtime() > deadline then outcome = "timeout" end
    local line = progress_line(d, (uv.hrtime() - started) / 1e9)
    if show and (tty or line:gsub("%(%d+s%)$", "") ~= last) then
      io.stdout:write(tty and ("\r\27[K" .. line) or (line .. "\n"))
      io.stdout:flush()
      last = line:gsub("%(%d+s%)$", "")
    end
    if outcome then
      if tty then io.stdout:write("\n") end
      return outcome, d
    end
    uv.sleep(M.WAIT_POLL_MS)
  end
end

local function strip_kind(name)
  return name:match("^deploy/(.+)$") or name:match("^deployments?/(.+)$") or name
end

M.strip_kind = strip_kind

local function age(iso_text)
  if type(iso_text) ~= "string" then return "-" end
  local y, mo, d, h, mi, s = iso_text:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
  if not y then return "-" end
  local t = os.time({ year = y, month = mo, day = d, hour = h, min = mi, sec = s, isdst = false })
  local utc_offset = os.time(os.date("!*t", t)) - t
  return jobs.ago((t - utc_offset) * 1000, os.time() * 1000)
end

local function uptime(seconds)
  if type(seconds) ~= "number" then return "-" end
  return units.format_duration(seconds)
end

-- The columns to show: those marked wide only with -o wide.
local function shown(ctx, columns)
  return output.visible_columns(columns, ctx.globals.wide)
end

local LIST_COLUMNS = {
  { key = "name", header = "NAME" }, { key = "ready", header = "READY" },
  { key = "revision", header = "REVISION" }, { key = "state", header = "ROLLOUT" },
  { key = "port", header = "PORT" }, { key = "route", header = "HOST" }, { key = "script", header = "SCRIPT" },
  { key = "age", header = "AGE" }, { key = "url", header = "URL", wide = true },
  { key = "tls", header = "TLS", wide = true },
  { key = "strategy", header = "STRATEGY", wide = true }, { key = "health", header = "HEALTH", wide = true },
  { key = "restart", header = "RESTART", wide = true }, { key = "autoscale", header = "AUTOSCALE", wide = true },
}

--- A deployment's ingress route as shown: "api.example.com/v1", or "-".
function M.route_text(d)
  if type(d.hostname) ~= "string" then return "-" end
  return d.hostname .. ((type(d.path) == "string" and d.path ~= "/") and d.path or "")
end

--- Where a deployment's TLS certificate comes from (the API's tls object):
-- "self-signed", "file", "secret NAME", or "-".
function M.tls_text(tls)
  if type(tls) ~= "table" then return "-" end
  if tls.source == "secret" then return "secret " .. tostring(tls.secret) end
  return tostring(tls.source or "-")
end

--- The TLS line of `prisn describe deploy`: the source, what is served
-- (until when) and what went wrong: "secret api-tls, CN=api.example.com
-- until 2027-03-01T00:00:00Z".
function M.tls_detail(tls)
  local text = M.tls_text(tls)
  if type(tls.subject) == "string" then
    text = text .. ", " .. tls.subject .. (type(tls.not_after) == "string" and (" until " .. tls.not_after) or "")
  end
  if type(tls.error) == "string" then text = text .. "; cannot load it (" .. tls.error .. "): serving self-signed" end
  if type(tls.warning) == "string" then text = text .. "; " .. tls.warning end
  return text
end

--- `prisn get deploy [NAME]`: the deployments of the namespace, or one.
function M.list(ctx)
  local client = client_module()
  local ns = client.namespace(ctx)
  local c = client.connect(ctx)
  local items
  local all = ctx.flags.all_namespaces
  if all and ctx.args.NAME then
    errors.usage("-A lists every namespace; it takes no NAME", "prisn get deploy NAME -n NS shows one")
  end
  if all then
    items = c:request("GET", "/api/v1/deployments").items or {}
  elseif ctx.args.NAME then
    items = { (c:request("GET", path(ctx, strip_kind(ctx.args.NAME)))) }
    items[1].events, items[1].spec = nil, nil
  else
    items = c:request("GET", path(ctx)).items or {}
  end
  if ctx.globals.output ~= "text" then
    ctx.out:emit(ctx.args.NAME and items[1] or output.array(items))
    return 0
  end
  local rows = output.array({})
  for i, d in ipairs(items) do
    local auto = type(d.autoscale) == "table" and string.format("%d-%d @%d%%", d.autoscale.min, d.autoscale.max,
      d.autoscale.target_cpu) or "-"
    rows[i] = { namespace = d.namespace, name = d.name, ready = string.format("%d/%d", d.ready, d.replicas),
      revision = d.revision, state = d.revision_state, port = type(d.port) == "number" and d.port or "-",
      script = d.script, age = age(d.created_at), strategy = d.strategy, health = d.health, restart = d.restart,
      autoscale = auto, route = M.route_text(d), url = type(d.url) == "string" and d.url or "-",
      tls = M.tls_text(d.tls) }
  end
  -- HOST (the ingress route) only when a deployment has one, or with -o wide.
  local routed = ctx.globals.wide
  for _, d in ipairs(items) do routed = routed or type(d.hostname) == "string" end
  local columns = {}
  for _, col in ipairs(shown(ctx, LIST_COLUMNS)) do
    if routed or col.key ~= "route" then columns[#columns + 1] = col end
  end
  if all then table.insert(columns, 1, { key = "namespace", header = "NAMESPACE" }) end
  ctx.out:emit(rows, { columns = columns, empty = all and "No deployments found in any namespace this token may see."
    or string.format("No deployments found in namespace '%s'. Create one with 'prisn deploy SCRIPT --port 8080'.",
      ns) })
  return 0
end

--- How an instance last exited, for people: "code 3", "signal TERM",
-- "oom_killed", or "-".
local function exit_text(e)
  if type(e) ~= "table" then return "-" end
  if e.reason == "oom_killed" or e.reason == "failed_to_start" then return e.reason end
  if type(e.signal) == "string" then return "signal " .. e.signal end
  if type(e.code) == "number" then return "code " .. e.code end
  return type(e.reason) == "string" and e.reason or "-"
end

M.exit_text = exit_text

local function instance_rows(items, with_deployment)
  local rows = output.array({})
  local size = units.format_size
  for i, inst in ipairs(items) do
    rows[i] = { name = inst.name, deployment = inst.deployment, state = inst.state,
      revision = inst.revision, pid = type(inst.pid) == "number" and inst.pid or "-",
      port = type(inst.port) == "number" and inst.port or "-", restarts = inst.restarts,
      uptime = uptime(inst.uptime_seconds), last_exit = exit_text(inst.last_exit),
      cpu = type(inst.cpu_seconds) == "number" and string.format("%.2fs", inst.cpu_seconds) or "-",
      memory = type(inst.memory_bytes) == "number" and size(inst.memory_bytes) or "-" }
  end
  local columns = { { key = "name", header = "NAME" }, { key = "state", header = "STATE" },
    { key = "revision", header = "REV" }, { key = "pid", header = "PID" }, { key = "port", header = "PORT" },
    { key = "restarts", header = "RESTARTS" }, { key = "uptime", header = "UPTIME" },
    { key = "last_exit", header = "LAST EXIT" }, { key = "cpu", header = "CPU" },
    { key = "memory", header = "MEMORY" } }
  if with_deployment then table.insert(columns, 2, { key = "deployment", header = "DEPLOYMENT" }) end
  return rows, columns
end

--- `prisn get instances [NAME]`: every instance of the namespace, those of
-- deployment NAME, or instance NAME (web-1).
function M.instances(ctx)
  local client = client_module()
  local ns = client.namespace(ctx)
  local c = client.connect(ctx)
  local items = c:request("GET", string.format("/api/v1/namespaces/%s/instances", ns)).items or {}
  local name = ctx.args.NAME and strip_kind(ctx.args.NAME)
  local one
  if name then
    local chosen = {}
    for _, inst in ipairs(items) do
      if inst.name == name then one = inst end
      if inst.deployment == name then chosen[#chosen + 1] = inst end
    end
    if one then
      chosen = { one }
    elseif #chosen == 0 then
      -- Neither: the server's answer names what is missing.
      c:request("GET", string.format("/api/v1/namespaces/%s/instances?deployment=%s", ns, name))
    end
    items = chosen
  end
  if ctx.globals.output ~= "text" then
    ctx.out:emit(one or output.array(items))
    return 0
  end
  local rows, columns = instance_rows(items, not name or one ~= nil)
  ctx.out:emit(rows, { columns = columns,
    empty = name and string.format("No instances found for deployment '%s' in namespace '%s' (scaled to 0?).", name,
      ns) or string.format("No instances found in namespace '%s'.", ns) })
  return 0
end

--- "nobody (65534:65534)" for the API's run_as ({ uid, gid, user }); nil
-- when the server did not say (a spec stored before it pinned the user).
function M.run_as_text(run_as)
  if type(run_as) ~= "table" or type(run_as.uid) ~= "number" then return nil end
  local ids = string.format("%d:%d", math.tointeger(run_as.uid), math.tointeger(run_as.gid or run_as.uid))
  if type(run_as.user) == "string" then return run_as.user .. " (" .. ids .. ")" end
  return ids
end

function M.describe(ctx)
  local name = strip_kind(ctx.args.NAME)
  local res = client_module().connect(ctx):request("GET", path(ctx, name))
  if ctx.globals.output ~= "text" then
    ctx.out:emit(res)
    return 0
  end
  local instances, events, spec = res.instances or {}, res.events or {}, res.spec or {}
  res.instances, res.events, res.spec = nil, nil, nil
  res.args, res.env_keys, res.secrets = spec.args, spec.env_keys, spec.secrets
  res.runner, res.cpu, res.pids, res.isolation = spec.runner, spec.cpu, spec.pids, spec.isolation
  res.run_as = M.run_as_text(spec.run_as)
  res.memory = type(spec.memory) == "number" and units.format_size(spec.memory) or spec.memory
  if type(res.tls) == "table" then res.tls = M.tls_detail(res.tls) end
  ctx.out:emit(res, { fields = { "name", "namespace", "script", "bundle", "replicas", "ready", "revision",
    "revision_state", "revision_message", "port", "host", "hostname", "path", "url", "tls", "strategy", "health",
    "restart", "autoscale", "runner",
    "args", "env_keys", "secrets", "memory", "cpu", "pids", "isolation", "run_as", "created_at", "updated_at" } })
  io.stdout:write("\nInstances:\n")
  if #instances == 0 then
    io.stdout:write("  (none)\n")
  else
    local rows, columns = instance_rows(instances)
    io.stdout:write(output.render(rows, "text", { columns = columns }))
  end
  io.stdout:write("\nRecent events:\n")
  if #events == 0 then io.stdout:write("  (none)\n") end
  for _, ev in ipairs(events) do
    io.stdout:write(string.format("  %s  %-24s %-14s %s\n", tostring(ev.time), ev.action, ev.object,
      type(ev.message) == "string" and ev.message or ""))
  end
  return 0
end

local function confirm(ctx, what)
  if ctx.flags.yes then return true end
  if not sys.isatty(0) then
    errors.usage(string.format("refusing to delete %s without --yes: there is no terminal to confirm on", what),
      "add --yes to delete without asking, or --dry-run to see what would go")
  end
  io.stderr:write(string.format("Delete %s? [y/N] ", what))
  io.stderr:flush()
  local answer = io.stdin:read("l")
  return answer and answer:match("^%s*[yY]") ~= nil
end

function M.delete(ctx)
  local name = strip_kind(ctx.args.NAME)
  local client = client_module()
  local c = client.connect(ctx)
  local ns = client.namespace(ctx)
  local plan = c:request("DELETE", path(ctx, name) .. "?dry_run=1")
  local function describe_plan(res)
    local lines = { string.format("deployment %s/%s", ns, name) }
    if type(res.port) == "number" then lines[#lines + 1] = "port " .. res.port .. " (closed)" end
    for _, inst in ipairs(res.instances or {}) do lines[#lines + 1] = "instance " .. inst .. " (stopped)" end
    lines[#lines + 1] = string.format("%d revision(s)", res.revisions)
    lines[#lines + 1] = "logs in " .. tostring(res.logs)
    return lines
  end
  if ctx.flags.dry_run then
    if ctx.globals.output ~= "text" then ctx.out:emit(plan) return 0 end
    io.stdout:write("Would delete:\n")
    for _, line in ipairs(describe_plan(plan)) do io.stdout:write("  ", line, "\n") end
    return 0
  end
  if not confirm(ctx, string.format("deployment '%s' in namespace '%s' (%d instance(s))", name, ns,
    #(plan.instances or {}))) then
    io.stderr:write("Nothing deleted.\n")
    return 1
  end
  local res = c:request("DELETE", path(ctx, name))
  if ctx.globals.output ~= "text" then
    ctx.out:emit(res)
  elseif not ctx.globals.quiet then
    io.stdout:write(string.format("deployment %s deleted (%d instance(s) stopped)\n", name, #(res.instances or {})))
  end
  return 0
end

-- Scale ---------------------------------------------------------------------

M.SAFE_FORMS = "safe forms: prisn scale NAME 3 | --add 2 | --remove 1 | --multiply 1.5 | --auto --min 1 --max 10"

--- The count `text` means, or raises a usage error naming the safe forms:
-- a plain whole number; -1, +2, 1.5, *2, 00 and the like are refused
-- rather than guessed at.
function M.parse_count(text)
  if not text:match("^%d+$") or (#text > 1 and text:sub(1, 1) == "0") then
    local hint = M.SAFE_FORMS
    if text:match("^%+%d+$") then hint = "to add, write --add " .. text:sub(2) .. "; " .. M.SAFE_FORMS
    elseif text:match("^%-%d+$") then hint = "to remove, write --remove " .. text:sub(2) .. "; " .. M.SAFE_FORMS
    elseif text:match("^[%*xX]") then hint = "to multiply, write --multiply " .. text:sub(2) .. "; " .. M.SAFE_FORMS
    end
    errors.usage(string.format("'%s' is not a count: use a plain whole number like 0 or 3", text), hint)
  end
  return math.tointeger(tonumber(text))
end

--- The scale request body from the CLI's words and flags; raises usage
-- errors for missing, conflicting or hostile forms.
function M.scale_body(count_text, flags)
  local given = {}
  if count_text then given[#given + 1] = "COUNT" end
  for _, f in ipairs({ "add", "remove", "multiply" }) do
    if flags[f] ~= nil then given[#given + 1] = "--" .. f end
  end
  if flags.auto then given[#given + 1] = "--auto" end
  if #given == 0 then errors.usage("missing the count", M.SAFE_FORMS) end
  if #given > 1 then
    errors.usage("give one of COUNT, --add, --remove, --multiply or --auto, not " .. table.concat(given, " and "),
      M.SAFE_FORMS)
  end
  if not flags.auto and (flags.min or flags.max or flags.target_cpu) then
    errors.usage("--min, --max and --target-cpu go with --auto", "e.g. prisn scale api --auto --min 1 --max 10")
  end
  local body = { dry_run = flags.dry_run or nil }
  if count_text then
    body.replicas = M.parse_count(count_text)
  elseif flags.add ~= nil then
    body.add = M.parse_count(flags.add)
  elseif flags.remove ~= nil then
    body.remove = M.parse_count(flags.remove)
  elseif flags.multiply ~= nil then
    local m = flags.multiply
    if not m:match("^%d+%.?%d*$") or tonumber(m) <= 0 then
      errors.usage(string.format("--multiply takes a positive factor like 1.5 or 2, got '%s'", m), M.SAFE_FORMS)
    end
    body.multiply = tonumber(m)
  else
    body.auto = { min = flags.min or 1, max = flags.max or 10, target_cpu = flags.target_cpu or 70 }
    if body.auto.min < 1 or body.auto.min > body.auto.max then
      errors.usage(string.format("--min %d --max %d: need 1 <= min <= max", body.auto.min, body.auto.max),
        "e.g. --auto --min 1 --max 10 (to stop every instance, prisn scale NAME 0)")
    end
    if body.auto.target_cpu < 1 or body.auto.target_cpu > 100 then
      errors.usage("--target-cpu is a percentage from 1 to 100", "e.g. --target-cpu 70")
    end
  end
  return body
end

function M.scale(ctx, name, count_text)
  local body = M.scale_body(count_text, ctx.flags)
  local res = client_module().connect(ctx):request("POST", path(ctx, name, "scale"), body)
  if ctx.globals.output ~= "text" then
    ctx.out:emit(res)
  elseif not ctx.globals.quiet then
    local auto = type(res.autoscale) == "table" and string.format(" (autoscaling %d-%d at %d%% CPU)",
      res.autoscale.min, res.autoscale.max, res.autoscale.target_cpu) or ""
    if res.dry_run then
      io.stdout:write(string.format("deployment %s: %d -> %d replicas%s (dry run: nothing changed)\n", name,
        res.from, res.to, auto))
    else
      io.stdout:write(string.format("deployment %s scaled: %d -> %d replicas%s\n", name, res.from, res.to,
        auto))
    end
  end
  return 0
end

-- Rollout -------------------------------------------------------------------

function M.history(ctx)
  local name = strip_kind(ctx.args.NAME)
  local res = client_module().connect(ctx):request("GET", path(ctx, name, "revisions"))
  local items = res.items or {}
  if ctx.globals.output ~= "text" then
    ctx.out:emit(output.array(items))
    return 0
  end
  local rows = output.array({})
  for i, r in ipairs(items) do
    rows[i] = { revision = r.revision .. (r.current and " *" or ""), state = r.state, created = r.created_at,
      by = type(r.created_by) == "string" and r.created_by or "-", script = r.script,
      message = type(r.message) == "string" and r.message or "" }
  end
  ctx.out:emit(rows, { columns = { { key = "revision", header = "REVISION" }, { key = "state", header = "STATE" },
    { key = "created", header = "CREATED" }, { key = "by", header = "BY" }, { key = "script", header = "SCRIPT" },
    { key = "message", header = "MESSAGE" } } })
  return 0
end

function M.undo(ctx)
  local name = strip_kind(ctx.args.NAME)
  local client = client_module()
  local c = client.connect(ctx)
  local res = c:request("POST", path(ctx, name, "rollback"), { revision = ctx.flags.to_revision })
  local outcome, d = M.wait_rollout(c, client.namespace(ctx), name, res.revision, 300)
  if ctx.globals.output ~= "text" then
    d.outcome = outcome
    ctx.out:emit(d)
  elseif not ctx.globals.quiet and outcome == "active" then
    io.stdout:write(string.format("deployment %s: back to the template of revision %d, serving as revision %d\n",
      name, res.from_revision, res.revision))
  end
  if outcome ~= "active" then
    errors.raise("rollout_failed", string.format("the rollback of %s did not become healthy (%s)", name, outcome),
      { hint = "prisn describe deploy " .. name })
  end
  return 0
end

return M
