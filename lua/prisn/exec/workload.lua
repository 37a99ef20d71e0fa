-- prisn.exec.workload: the fields of a workload spec — what a job, a cron
-- job or a deployment runs and with which limits — declared once. Every way
-- a spec comes in checks it here: the flags of `prisn run`, `prisn cron` and
-- `prisn deploy` (prisn.cli.workload derives their declarations from
-- FIELDS), the API's request bodies (prisn.server.api.workload) and
-- manifests (prisn.manifest derives its shapes), so a bad value gets the
-- same rule and hint whichever way it came, only spelled for its channel:
--
--   --memory must be a size from 1M to 8P, got 64             (flags)
--   memory must be a size from 1M to 8P, got 64               (API, 422)
--   prisn.lua:3: deployments[1].memory: must be a size from 1M to 8P, got 64
--
-- A field is a table: name (the API's and the manifest's), kinds (the specs
-- that take it: job, cron, deployment), manifest (manifests take it), type
-- with its range or values, rule (the message's "must be ..." when the type's
-- own is not right), hint(spell) (spell(name, value) writes a field as the
-- channel does: --pids 100, "pids": 100, pids = 100) and flag (the CLI flag's
-- declaration data; flag-only fields, like --cwd, have no kinds). Text is
-- parsed by type: sizes and durations (prisn.units), numbers, whole numbers.
--
-- Checks are pure: normalize returns the value or a problem, and each
-- channel turns a problem into its own error (M.message).
local units = require("prisn.units")
local envfile = require("prisn.envfile")
local secrets = require("prisn.secrets")

local M = {}

M.MIN_MEMORY = 1024 * 1024 -- a smaller limit is a unit mistake ("--memory 64")
M.MAX_MEMORY = units.MAX_SIZE
M.MIN_CPU = 0.01           -- 1 ms of every 100 ms period, the kernel's floor
M.MAX_CPU = 1024
M.MAX_PIDS = 4194304       -- the kernel's PID_MAX_LIMIT; pids.max refuses more
M.MIN_DISK = 1024 * 1024
M.MAX_DISK = units.MAX_SIZE
-- The longest a job may run, and may take to stop after SIGTERM: past these
-- a value is a mistake or an attempt to break a timer.
M.MAX_TIMEOUT = 365 * 86400
M.MAX_GRACE = 3600
M.MAX_REPLICAS = 1000
M.MAX_KEEP = 10000         -- finished runs kept per cron job and outcome
M.ISOLATION_LEVELS = { 0, 1, 2, 3 }

local CRON, DEPLOYMENT = "cron", "deployment"
local ALL = { job = true, cron = true, deployment = true }

-- The fields, in the order `prisn run --help` lists their flags.
M.FIELDS = {
  { name = "env", kinds = ALL, manifest = true, type = "env",
    flag = { name = "env", short = "e", type = "string", repeatable = true, placeholder = "KEY=VALUE",
      summary = "Set an environment variable for the script (wins over --env-file)" } },
  { flag = { name = "env-file", type = "string", placeholder = "FILE", complete = "file",
      summary = "Read KEY=VALUE lines into the script's environment (format: docs/RUN.md)" } },
  { flag = { name = "cwd", type = "string", placeholder = "DIR", complete = "dir",
      summary = "Run the script in DIR (default: the current directory)" } },
  { name = "timeout", kinds = { job = true, cron = true }, manifest = CRON, type = "duration",
    min = 0.001, max = M.MAX_TIMEOUT,
    flag = { name = "timeout", placeholder = "DURATION",
      summary = "Stop the script after this long (30s, 5m, 1h) and exit 124" } },
  { name = "grace", kinds = ALL, type = "duration", min = 0.001, max = M.MAX_GRACE,
    flag = { name = "grace", placeholder = "DURATION", default = "10s",
      summary = "Time between SIGTERM and SIGKILL when stopping the script" } },
  { name = "memory", kinds = ALL, manifest = true, type = "size", min = M.MIN_MEMORY, max = M.MAX_MEMORY,
    hint = function(spell) return "sizes without a unit are bytes: write " .. spell("memory", "256M") end,
    flag = { name = "memory", placeholder = "SIZE",
      summary = "Limit the script's memory (256M, 1G); over it the kernel kills it (oom_killed)" } },
  { name = "cpu", kinds = ALL, manifest = true, type = "number", min = M.MIN_CPU, max = M.MAX_CPU,
    rule = string.format("is a number of cores from %g to %d", M.MIN_CPU, M.MAX_CPU),
    hint = function(spell) return "for half a core: " .. spell("cpu", 0.5) end,
    flag = { name = "cpu", placeholder = "CORES",
      summary = "Limit the script to this many CPU cores (0.5, 2); it is slowed down, not killed" } },
  { name = "pids", kinds = ALL, manifest = true, type = "integer", min = 1, max = M.MAX_PIDS,
    hint = function(spell) return "the script itself counts: " .. spell("pids", 100) end,
    flag = { name = "pids", placeholder = "N",
      summary = "Limit the number of processes and threads the script may have at once" } },
  { name = "isolation", kinds = ALL, manifest = true, type = "integer", values = M.ISOLATION_LEVELS,
    hint = function() return "0 none, 1 process (default), 2 filesystem, 3 network" end,
    flag = { name = "isolation", placeholder = "LEVEL",
      summary = "Sandbox level: 0 none, 1 process (default where available), 2 filesystem, 3 network" } },
  { name = "disk", kinds = ALL, manifest = true, type = "size", min = M.MIN_DISK, max = M.MAX_DISK,
    hint = function(spell) return "sizes without a unit are bytes: write " .. spell("disk", "100M") end,
    flag = { name = "disk", placeholder = "SIZE",
      summary = "Bound what the script may write (workspace, /tmp) to SIZE; needs isolation 2 or 3" } },
  { flag = { name = "user", type = "string", placeholder = "NAME|UID",
      summary = "Run the script as this user (needs root); default: you" } },
  { name = "runner", kinds = ALL, type = "string",
    flag = { name = "runner", placeholder = "NAME",
      summary = "Use this runner instead of detecting one ('prisn runner list')" } },
  { name = "no_deps", kinds = ALL, type = "boolean",
    flag = { name = "no-deps", summary = "Do not detect or install dependencies; run with the plain interpreter" } },
  { flag = { name = "exec", type = "string", placeholder = "CODE",
      summary = "Run CODE instead of a script file (needs --runner)" } },
  { flag = { name = "detach", short = "d", type = "bool",
      summary = "Hand the job to the server and print its id; follow it with 'prisn logs -f job/ID'" } },
  { name = "secrets", kinds = ALL, manifest = true, type = "strings", item = "a secret name",
    flag = { name = "secret", repeatable = true, placeholder = "NAME",
      summary = "Give the script the keys of secret NAME as environment variables" } },
  { name = "args", kinds = ALL, type = "strings", item = "a string" },
  -- A deployment's own fields (prisn deploy takes their flags).
  { name = "port", kinds = { deployment = true }, manifest = DEPLOYMENT, type = "integer", min = 1, max = 65535,
    flag = { name = "port", short = "p", placeholder = "PORT",
      summary = "Serve on this port, load-balanced over the healthy instances" } },
  { name = "replicas", kinds = { deployment = true }, manifest = DEPLOYMENT, type = "integer", min = 0,
    max = M.MAX_REPLICAS,
    flag = { name = "replicas", short = "r", placeholder = "N", summary = "How many instances (1)" } },
  { name = "restart", kinds = { deployment = true }, manifest = DEPLOYMENT, type = "string",
    values = { "always", "on-failure", "never" },
    flag = { name = "restart", placeholder = "POLICY",
      summary = "When an exited instance is started again (always)" } },
  { name = "hooks", kinds = { deployment = true }, manifest = DEPLOYMENT, type = "strings", item = "a file" },
  -- The ingress route (docs/NETWORKING.md): "hostname" and "path", not "host",
  -- which a deployment body already has for the address its port binds.
  -- hostname is what a URL calls the name without a port (WHATWG URL).
  { name = "hostname", kinds = { deployment = true }, manifest = DEPLOYMENT, type = "hostname",
    rule = "must be a DNS host name like api.example.com (letters, digits, dashes; no port, at most 253)",
    hint = function(spell) return "the name clients put in Host:, e.g. " .. spell("hostname", "api.example.com") end,
    flag = { name = "host", placeholder = "NAME",
      summary = "Serve on the ingress for this host name (Host: header); '' removes it" } },
  { name = "path", kinds = { deployment = true }, manifest = DEPLOYMENT, type = "urlpath",
    rule = "must be a URL path starting with / (no .. segment, no spaces, at most 256 characters)",
    hint = function(spell) return "a prefix of the request paths it serves: " .. spell("path", "/v1") end,
    flag = { name = "path", placeholder = "PREFIX",
      summary = "With --host: serve only requests under this path prefix (/v1 matches /v1 and /v1/x)" } },
  -- The certificate the ingress's TLS listener shows for hostname: files on
  -- the server (an admin's: a namespaced token must not name server paths),
  -- or a secret of the deployment's namespace with keys TLS_CERT and TLS_KEY.
  -- None: a self-signed certificate.
  { name = "tls_cert", kinds = { deployment = true }, manifest = DEPLOYMENT, type = "serverpath",
    flag = { name = "tls-cert", placeholder = "FILE",
      summary = "With --host: the PEM certificate (chain) file on the server for TLS (admin only)" } },
  { name = "tls_key", kinds = { deployment = true }, manifest = DEPLOYMENT, type = "serverpath",
    flag = { name = "tls-key", placeholder = "FILE",
      summary = "With --tls-cert: its PEM private key file on the server" } },
  { name = "tls_secret", kinds = { deployment = true }, manifest = DEPLOYMENT, type = "secretname",
    rule = "must be a secret name (lower-case letters, digits and dashes)",
    hint = function(spell) return "a secret with keys TLS_CERT and TLS_KEY: " .. spell("tls_secret", "api-tls") end,
    flag = { name = "tls-secret", placeholder = "NAME",
      summary = "With --host: the secret (keys TLS_CERT, TLS_KEY) holding the certificate and key for TLS" } },
  -- A cron job's own fields (prisn cron takes their flags).
  { name = "concurrency", kinds = { cron = true }, manifest = CRON, type = "string",
    values = { "allow", "forbid", "replace" },
    flag = { name = "concurrency", placeholder = "POLICY",
      summary = "While a run is in progress: forbid (skip the new one), replace, allow" } },
  { name = "catch_up", kinds = { cron = true }, manifest = CRON, type = "boolean",
    flag = { name = "catch-up", summary = "Run once at server start when runs were missed while it was down" } },
  { name = "keep_succeeded", kinds = { cron = true }, manifest = CRON, type = "integer", min = 0, max = M.MAX_KEEP,
    flag = { name = "keep-succeeded", placeholder = "N", summary = "Keep the last N succeeded runs (10)" } },
  { name = "keep_failed", kinds = { cron = true }, manifest = CRON, type = "integer", min = 0, max = M.MAX_KEEP,
    flag = { name = "keep-failed", placeholder = "N", summary = "Keep the last N failed runs (10)" } },
}

local BY_NAME, BY_FLAG = {}, {}
for _, f in ipairs(M.FIELDS) do
  if f.name then BY_NAME[f.name] = f end
  if f.flag then BY_FLAG[f.flag.name] = f end
end

-- The CLI flag type of each field type (parse.lua turns the text into it).
local FLAG_TYPE = { size = "size", duration = "duration", number = "number", integer = "int", boolean = "bool",
  string = "string", strings = "string", env = "string", hostname = "string", urlpath = "string",
  serverpath = "string", secretname = "string" }

--- The field declared as `name` (its API and manifest name); raises for an
-- unknown name, a mistake in prisn.
function M.field(name)
  return assert(BY_NAME[name], name)
end

--- The declaration of CLI flag `name` (as prisn.cli.declaration has it).
function M.flag(name)
  local f = assert(BY_FLAG[name], name)
  local decl = {}
  for k, v in pairs(f.flag) do decl[k] = v end
  decl.type = decl.type or FLAG_TYPE[f.type]
  if f.values and type(f.values[1]) == "string" then decl.values = f.values end
  return decl
end

--- The names of the flags of `prisn run`, in help order: those of the
-- fields a job takes and the flag-only ones.
function M.flag_names()
  local names = {}
  for _, f in ipairs(M.FIELDS) do
    if f.flag and (not f.kinds or f.kinds.job) then names[#names + 1] = f.flag.name end
  end
  return names
end

--- The names of the fields a `kind` ("job", "cron", "deployment") takes
-- from a request body, or from a manifest with `manifest` true.
function M.names(kind, manifest)
  local names = {}
  for _, f in ipairs(M.FIELDS) do
    local taken = f.kinds and f.kinds[kind]
    if manifest then taken = taken and (f.manifest == true or f.manifest == kind) end
    if taken then names[#names + 1] = f.name end
  end
  return names
end

--- A value as a message shows it: numbers as JSON writes them (NaN and the
-- infinities by name), strings quoted and cut short, others by type.
function M.show(v)
  if type(v) == "number" then
    if v ~= v then return "NaN" end
    if v == math.huge or v == -math.huge then return (v > 0 and "" or "-") .. "Infinity" end
    return math.type(v) == "integer" and tostring(v) or string.format("%.14g", v)
  end
  if type(v) == "string" then return string.format("%q", #v > 40 and (v:sub(1, 40) .. "...") or v) end
  if type(v) == "boolean" then return tostring(v) end
  if v == nil then return "nil" end
  return type(v) == "table" and "an object" or "null"
end

-- "0, 1, 2 or 3"
local function alternatives(values)
  local names = {}
  for i, v in ipairs(values) do names[i] = tostring(v) end
  if #names == 1 then return names[1] end
  return table.concat(names, ", ", 1, #names - 1) .. " or " .. names[#names]
end

-- What a field's values must be: "must be a size from 1M to 8P".
function M.rule(f)
  if f.rule then return f.rule end
  if f.values then return "must be " .. alternatives(f.values) end
  local t = f.type
  if t == "size" then
    return string.format("must be a size from %s to %s", units.format_size(f.min), units.format_size(f.max))
  elseif t == "duration" then
    return string.format("must be a duration from %s to %s, like 30s, 5m or 1h30m", units.format_duration(f.min),
      units.format_duration(f.max))
  elseif t == "integer" then
    return string.format("must be a whole number from %d to %d", f.min, f.max)
  elseif t == "number" then
    return string.format("must be a number from %g to %g", f.min, f.max)
  elseif t == "boolean" then
    return "must be true or false"
  elseif t == "strings" then
    return "must be a list of strings"
  elseif t == "serverpath" then
    return "must be an absolute path on the server"
  elseif t == "env" then
    return "must be an object of variable names and string values"
  end
  return "must be a string"
end

local function in_range(f, n)
  return n == n and (f.min == nil or n >= f.min) and (f.max == nil or n <= f.max)
end

local function one_of(values, v)
  for _, allowed in ipairs(values) do
    if allowed == v then return true end
  end
  return false
end

-- Each type's reading of a value: the normalized value or nil.
local READ = {
  size = function(f, v)
    local n = v
    if type(v) == "string" then n = units.parse_size(v) end
    n = type(n) == "number" and math.tointeger(n)
    return n and in_range(f, n) and n or nil
  end,
  duration = function(f, v)
    local s = (type(v) == "string" or type(v) == "number") and units.parse_duration(v)
    return s and in_range(f, s) and s or nil
  end,
  number = function(f, v)
    local n = type(v) == "string" and v:match("^%s*%-?%d+%.?%d*%s*$") and tonumber(v) or v
    return type(n) == "number" and in_range(f, n) and n or nil
  end,
  integer = function(f, v)
    local n = type(v) == "number" and math.tointeger(v)
    return n and in_range(f, n) and n or nil
  end,
  boolean = function(_, v) if type(v) == "boolean" then return v end end,
  string = function(_, v) if type(v) == "string" then return v end end,
  hostname = function(_, v) return M.hostname(v) end,
  secretname = function(_, v) if secrets.valid_name(v) then return v end end,
  serverpath = function(_, v)
    if type(v) == "string" and v:sub(1, 1) == "/" and #v <= 4096 and not v:find("%z") then return v end
  end,
  urlpath = function(_, v) return M.url_path(v) end,
}

M.MAX_HOSTNAME = 253
M.MAX_PATH = 256

--- `v` as an ingress host name: lower-cased, without a final dot; nil when
-- it is not one. Labels of letters, digits and dashes (not at either end),
-- 1 to 63 long; the last has a letter, so an IP address is never a name.
function M.hostname(v)
  if type(v) ~= "string" then return nil end
  local name = v:lower():gsub("%.$", "")
  if name == "" or #name > M.MAX_HOSTNAME then return nil end
  local last
  for label in (name .. "."):gmatch("([^.]*)%.") do
    if #label < 1 or #label > 63 or not label:match("^[a-z0-9]$") and not label:match("^[a-z0-9][a-z0-9%-]*[a-z0-9]$")
    then
      return nil
    end
    last = label
  end
  if not last or not last:find("%a") then return nil end
  return name
end

--- `v` as an ingress path prefix: "/" or "/a/b" without a final slash; nil
-- when it is not a path (RFC 3986 path characters only: no spaces, query or
-- fragment) or has a "." or ".." segment or an empty one ("//").
function M.url_path(v)
  if type(v) ~= "string" or v:sub(1, 1) ~= "/" or #v > M.MAX_PATH then return nil end
  if v:find("[^%w%-%._~!$&'()*+,;=:@%%/]") then return nil end
  local path = #v > 1 and v:gsub("/$", "") or v
  if path == "/" then return path end
  for segment in path:sub(2):gmatch("[^/]*") do
    if segment == "" or segment == "." or segment == ".." then return nil end
  end
  return path
end

-- A list of strings: the list, or nil and the index of a bad item (0: not
-- a list at all).
local function read_strings(v)
  if type(v) ~= "table" then return nil, 0 end
  local n = #v
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return nil, 0 end
  end
  for i, item in ipairs(v) do
    if type(item) ~= "string" then return nil, i end
  end
  return v
end

-- An env object: a copy with string values (`coerce`: numbers and booleans
-- made strings, as manifests allow), or nil and a problem. A value is never
-- shown: it may be a secret typed in the wrong place.
local function read_env(v, coerce)
  if type(v) ~= "table" then return nil, { rule = M.rule({ type = "env" }), got = M.show(v) } end
  local out = {}
  for k, value in pairs(v) do
    if not envfile.valid_key(k) then
      return nil, { reason = string.format("%s is not a variable name (%s)", envfile.shown_key(k), envfile.KEY_RULE),
        hint = "keys become environment variable names, like DATABASE_URL" }
    end
    local t = type(value)
    if coerce and (t == "number" or t == "boolean") then value, t = tostring(value), "string" end
    if t ~= "string" then
      return nil, { at = "." .. k, rule = "must be a string",
        got = t == "table" and "an object" or t == "userdata" and "null" or ("a " .. t) }
    end
    out[k] = value
  end
  return out
end

--- Checks `value` for field `name` as it comes from a parsed flag, a JSON
-- body (whole numbers may be floats, sizes and durations text) or a
-- manifest (opts.coerce: env values may be numbers or booleans). Returns
-- the normalized value (sizes in bytes, durations in seconds; nil stays
-- nil), or nil and a problem for M.message.
function M.normalize(name, value, opts)
  if value == nil then return nil end
  local f = M.field(name)
  if f.type == "env" then
    local env, problem = read_env(value, opts and opts.coerce)
    if problem then problem.field = f end
    return env, problem
  end
  if f.type == "strings" then
    local list, bad = read_strings(value)
    if list then return list end
    if bad == 0 then return nil, { field = f, rule = M.rule(f), got = M.show(value) } end
    return nil, { field = f, at = "[" .. bad .. "]", rule = "must be " .. f.item, got = M.show(value[bad]) }
  end
  local v = READ[f.type](f, value)
  if v ~= nil and (not f.values or one_of(f.values, v)) then return v end
  return nil, { field = f, rule = M.rule(f), got = M.show(value), value = value }
end

--- The isolation level a checked `disk` (bytes or nil) leaves: --disk bounds
-- the writable places of the level-2 root, so it needs level 2 or 3 and
-- makes the default (nil) 2. Returns the level, or nil and a problem.
function M.disk_level(level, disk)
  if disk == nil then return level end
  if level == nil then return 2 end
  if level < 2 then
    return nil, { field = M.field("disk"), rule = "needs isolation level 2 or 3", needs = { "isolation", level },
      hint = function(spell)
        return "the size bound is a tmpfs in the workload's own root: use " .. spell("isolation", 2)
          .. ", or drop " .. spell("isolation")
      end }
  end
  return level
end

-- How each channel writes a field: as a label (--memory, memory,
-- deployments[1].memory) and with a value (--memory 256M, "memory": "256M",
-- memory = "256M").
local function literal(v)
  return type(v) == "string" and string.format("%q", v) or tostring(v)
end

M.CHANNELS = {
  flag = function(name, v)
    local f = BY_NAME[name]
    local spelled = "--" .. (f and f.flag and f.flag.name or name)
    return v == nil and spelled or (spelled .. " " .. tostring(v))
  end,
  api = function(name, v)
    return v == nil and name or string.format("\"%s\": %s", name, literal(v))
  end,
  manifest = function(name, v)
    return v == nil and name or (name .. " = " .. literal(v))
  end,
}

--- The message and hint of a problem from normalize or disk_level, for
-- `channel` ("flag", "api" or "manifest"). The flag and API messages start
-- with the field's name ("--memory must be ...", "memory must be ...");
-- the manifest's is the rest, for prisn.schema to put after the path
-- ("must be ...").
function M.message(problem, channel, name)
  local spell = M.CHANNELS[channel]
  local label = spell(name or (problem.field and problem.field.name)) .. (problem.at or "")
  local text
  if problem.reason then
    text = problem.reason
  else
    text = problem.rule
    local got = problem.got
    -- A parsed flag holds seconds; said as the user wrote them: "got 2h".
    if channel == "flag" and problem.field.type == "duration" and type(problem.value) == "number"
      and problem.value == problem.value then
      got = units.format_duration(problem.value)
    end
    if got then text = text .. ", got " .. got end
    if problem.needs then text = text .. ", got " .. spell(problem.needs[1]) .. " " .. M.show(problem.needs[2]) end
  end
  local hint = problem.hint
  if type(hint) == "function" then
    hint = hint(spell)
  elseif hint == nil and problem.field and problem.field.hint then
    hint = problem.field.hint(spell)
  end
  if channel == "manifest" then
    -- After the path prisn.schema writes: "item 2 must be ...", "KEY must be ...".
    local at = problem.at and (problem.at:match("^%[(%d+)%]$") and ("item " .. problem.at:match("%d+"))
      or problem.at:gsub("^%.", ""))
    return (at and (at .. " ") or "") .. text, hint
  end
  return label .. (problem.reason and ": " or " ") .. text, hint
end

return M
