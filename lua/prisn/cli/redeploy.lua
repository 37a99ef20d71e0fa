-- prisn.cli.redeploy: the CLI side of a redeploy (#14), shared by `prisn
-- deploy` and `prisn cron`: the -e words split into settings and KEY-
-- removals, the run flags without defaults (a flag not given keeps its
-- value, see prisn.server.api.redeploy), the list of what a redeploy changes
-- (from the API's "changes": env by key only, never a value), and on a
-- terminal a progress line while a rollout goes on (n/N ready, elapsed time,
-- the current step) so a 12-second rollout is not 12 seconds of silence.
--
-- The caller decides whether to show text (never with -q, -o json, and the
-- progress line only when stderr is a terminal, see M.progress_wanted).
local cjson = require("cjson")
local units = require("prisn.units")
local sys = require("prisn.core.sys")

local M = {}

--- The -e words split: KEY=VALUE settings, and KEY- removals (as `kubectl
-- set env` writes them), each in the order given.
function M.split_env(words)
  local set, remove = {}, {}
  for _, word in ipairs(words or {}) do
    local key = word:match("^([%a_][%w_]*)%-$")
    if key then remove[#remove + 1] = key else set[#set + 1] = word end
  end
  return set, remove
end

--- Flag declarations `list` as a redeploying command declares them: without
-- their defaults (--grace 10s), since a redeploy keeps the value a flag
-- that is not given had; the summary says the default instead.
function M.without_defaults(list)
  local out = {}
  for i, f in ipairs(list) do
    local copy = {}
    for k, v in pairs(f) do copy[k] = v end
    if f.default ~= nil then
      copy.summary = string.format("%s (%s unless set; a redeploy keeps the last value)", f.summary, f.default)
    end
    copy.default = nil
    out[i] = copy
  end
  return out
end

-- How a value of a field reads: sizes and durations in units, unset as "-".
local SIZES = { memory = true, disk = true }
local DURATIONS = { grace = true, progress_deadline = true }

local function value_text(field, v)
  if v == nil or v == cjson.null then return "-" end
  if SIZES[field] and type(v) == "number" then return units.format_size(v) end
  if DURATIONS[field] and type(v) == "number" then return units.format_duration(v) end
  if type(v) == "table" then
    if field == "run_as" and type(v.uid) == "number" then
      return string.format("%d:%d", math.tointeger(v.uid), math.tointeger(v.gid or v.uid))
    end
    if #v > 0 or next(v) == nil then
      local parts = {}
      for i, item in ipairs(v) do parts[i] = tostring(item) end
      return #parts > 0 and table.concat(parts, " ") or "(none)"
    end
    return cjson.encode(v)
  end
  if math.type(v) == "float" and math.tointeger(v) then return tostring(math.tointeger(v)) end
  return tostring(v)
end

local function env_text(c)
  local parts = {}
  local function add(label, list)
    if type(list) == "table" and #list > 0 then parts[#parts + 1] = label .. " " .. table.concat(list, ", ") end
  end
  add("added", c.added)
  add("removed", c.removed)
  add("changed", c.changed)
  return table.concat(parts, "; ")
end

--- The lines (without newlines) saying what `changes` (the API's list)
-- change: "  env       added DEBUG; removed COLOR".
function M.change_lines(changes)
  local lines = {}
  for _, c in ipairs(changes or {}) do
    local text = c.field == "env" and env_text(c)
      or (value_text(c.field, c.from) .. " -> " .. value_text(c.field, c.to))
    lines[#lines + 1] = string.format("  %-9s %s", c.field, text)
  end
  return lines
end

--- What deploy (kind "deployment") or cron (kind "cron job") prints about
-- the changes of `res` (the POST's answer): a heading and change_lines;
-- nothing for a new one or a redeploy without changes (deploy's last line
-- says "unchanged") that is not a dry run.
function M.changes_text(res, kind)
  kind = kind or "deployment"
  local lines = M.change_lines(res.changes)
  local revision = res.changed and math.type(res.revision) and string.format(" (revision %d)",
    math.tointeger(res.revision)) or ""
  local head
  if res.dry_run then
    if res.created then
      head = string.format("%s %s (dry run, nothing changed): would be created%s", kind, res.name,
        math.type(res.revision) and " as revision 1" or "")
    elseif #lines == 0 then
      head = string.format("%s %s (dry run, nothing changed): no changes", kind, res.name)
    else
      head = string.format("%s %s (dry run, nothing changed): would change%s:", kind, res.name, revision)
    end
  elseif res.created or #lines == 0 then
    return ""
  else
    head = string.format("%s %s: changes%s:", kind, res.name, revision)
  end
  lines[#lines + 1] = ""
  return head .. "\n" .. table.concat(lines, "\n")
end

--- Whether deploy shows a progress line: text output, no -q, stderr a
-- terminal.
function M.progress_wanted(ctx)
  return ctx.globals.output == "text" and not ctx.globals.quiet and sys.isatty(2)
end

--- The current step of deployment `d` (GET .../deployments/NAME) rolling
-- out `revision`: "starting", "waiting for health", "rolling 1/3" (new
-- instances healthy while old ones still serve), "restarting (crash loop)".
function M.step(d, revision)
  local new, new_healthy, old = 0, 0, 0
  local waiting, starting, crashing = false, false, false
  for _, inst in ipairs(d.instances or {}) do
    if inst.revision == revision then
      new = new + 1
      if inst.healthy then
        new_healthy = new_healthy + 1
      elseif inst.state == "running" then
        waiting = true
      elseif inst.state == "starting" then
        starting = true
      else
        crashing = true
      end
    else
      old = old + 1
    end
  end
  if old > 0 and new > 0 then return string.format("rolling %d/%d", new_healthy, d.replicas or 0) end
  if crashing then return "restarting (it exits)" end
  if waiting then return "waiting for health" end
  if starting or new == 0 then return "starting" end
  return "ready"
end

--- The progress line: "web: 1/3 ready, 4.2s, rolling 1/3".
function M.progress_text(name, d, revision, elapsed_s)
  return string.format("%s: %d/%d ready, %.1fs, %s", name, math.tointeger(d.ready or 0) or 0,
    math.tointeger(d.replicas or 0) or 0, elapsed_s, M.step(d, revision))
end

--- A progress line on `stream` (default io.stderr) that rewrites itself:
-- show(text) replaces it, clear() removes it.
function M.line(stream)
  stream = stream or io.stderr
  local shown = false
  local self = {}
  function self.show(text)
    stream:write("\r\27[K", text)
    stream:flush()
    shown = true
  end
  function self.clear()
    if shown then stream:write("\r\27[K"); stream:flush() end
    shown = false
  end
  return self
end

return M
