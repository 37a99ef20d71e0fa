-- `prisn deploy SCRIPT|DIR [flags]` and `prisn deploy -f prisn.lua`: create
-- or change supervised services on the server. The script's folder goes up
-- as a bundle (content-addressed, so only once); the server makes a new
-- revision when the template changed and rolls it out one instance at a
-- time. deploy waits for the rollout and says how it ended: serving, or
-- rolled back (exit 1) with the reason.
local errors = require("prisn.error")

local M = {}

-- Entry points looked for in a directory, in this order.
M.ENTRY_POINTS = { "main.py", "app.py", "server.py", "index.js", "main.js", "server.js", "app.js", "main.sh",
  "run.sh", "start.sh", "main.lua", "main.rb", "index.ts", "main.ts" }

local function client_module() return require("prisn.client") end

-- The flags of `prisn run` a deployment takes too, declared once (prisn.exec.workload).
local RUN_FLAGS = { "env", "env-file", "secret", "memory", "cpu", "pids", "isolation", "disk", "runner", "no-deps",
  "grace", "include" }

local function absolute(path, cwd)
  if path:sub(1, 1) == "/" then return path end
  return (cwd == "/" and "" or cwd) .. "/" .. path
end

--- The script to run for `path`: the file itself, or for a directory its
-- --entry or the first of ENTRY_POINTS it has. Returns the absolute path
-- and the bundle's root (the directory uploaded).
function M.resolve_script(path, entry, cwd)
  local uv = require("luv")
  local full = absolute(path, cwd)
  local st = uv.fs_stat(full)
  if not st then
    errors.raise("ENOENT", "not found: " .. path, { hint = "give a script file or a directory (relative to " .. cwd
      .. ")" })
  end
  if st.type == "directory" then
    full = full:gsub("/+$", "")
    if entry then
      local e = uv.fs_stat(full .. "/" .. entry)
      if not e or e.type ~= "file" then
        errors.raise("ENOENT", string.format("no file %s in %s", entry, path), { hint = "--entry is a path inside "
          .. "the directory" })
      end
      return full .. "/" .. entry, full
    end
    for _, name in ipairs(M.ENTRY_POINTS) do
      local e = uv.fs_stat(full .. "/" .. name)
      if e and e.type == "file" then return full .. "/" .. name, full end
    end
    errors.raise("ENOENT", "no entry point in " .. path .. " (looked for " .. table.concat(M.ENTRY_POINTS, ", ")
      .. ")", { hint = "name the file to run with --entry FILE" })
  end
  if entry then errors.usage("--entry goes with a directory, not a file", "prisn deploy DIR --entry FILE") end
  return full, full:match("^(.*)/[^/]*$")
end

local function upload(c, dir, include)
  return require("prisn.cli.workload").upload(c, dir, "a service", include)
end

local function deployments_path(ns, name, action)
  return require("prisn.cli.deployments").path_in(ns, name, action)
end

local function rolled_back_message(c, ns, name, revision)
  local revs = c:request("GET", deployments_path(ns, name, "revisions"))
  for _, rev in ipairs(revs.items or {}) do
    if rev.revision == revision and type(rev.message) == "string" then return rev.message end
  end
  return "its instances did not become healthy"
end

-- Reports how a deploy ended; returns the exit status.
local function report(ctx, c, ns, res)
  local name, revision = res.name, res.revision
  local wait = not ctx.flags.no_wait and (res.changed or res.created)
  local outcome, d = "submitted", res
  if wait then outcome, d = require("prisn.cli.deployments").wait_rollout(c, ns, name, revision,
    ctx.flags.wait_timeout or 300) end
  if ctx.globals.output ~= "text" then
    d.outcome = outcome
    ctx.out:emit(d)
  elseif not ctx.globals.quiet then
    local where = type(d.port) == "number" and (" on port " .. math.tointeger(d.port)) or ""
    if outcome == "active" then
      io.stdout:write(string.format("deployment %s: revision %d serving, %d/%d ready%s\n", name, revision, d.ready,
        d.replicas, where))
    elseif outcome == "submitted" then
      io.stdout:write(string.format("deployment %s: revision %d, %d replica(s)%s%s\n", name, revision, d.replicas,
        where, res.changed == false and " (unchanged)" or ""))
    end
  end
  if outcome == "rolled_back" then
    errors.raise("rolled_back", string.format("revision %d of %s was rolled back: %s%s", revision, name,
      rolled_back_message(c, ns, name, revision),
      d.revision ~= revision and string.format("; revision %d serves again", d.revision) or ""),
      { hint = "see what it printed: prisn logs " .. name .. " --tail 50" })
  elseif outcome == "failed" then
    errors.raise("deploy_failed", string.format("deployment %s does not start: %s", name,
      type(d.revision_message) == "string" and d.revision_message or "its instances keep exiting"),
      { hint = "see what it printed: prisn logs " .. name .. " --tail 50; it keeps restarting with backoff" })
  elseif outcome == "timeout" then
    errors.raise("timeout", string.format("revision %d of %s is not serving yet (%d/%d ready)", revision, name,
      d.ready or 0, d.replicas or 0), { hint = "it goes on in the background: prisn describe deploy " .. name })
  end
  return 0
end

local function env_of(ctx, cwd)
  return (require("prisn.envfile").collect(ctx.flags.env_file and absolute(ctx.flags.env_file, cwd), ctx.flags.env))
end

-- The health check from --health and its timing flags: the text as given,
-- or the table form when a timing is set (docs/HEALTH.md).
local function health_of(flags, has_port)
  local text = flags.health
  local timing = flags.health_interval or flags.health_timeout or flags.health_threshold or flags.health_grace
  if text == nil and not timing then return nil end
  local health = require("prisn.net.health")
  local spec, err = health.parse(text or (has_port and "tcp" or "none"))
  if not spec then errors.usage("--health: " .. tostring(err), "use --health http:/healthz, tcp or none") end
  if not timing then return text end
  local t = { interval = flags.health_interval, timeout = flags.health_timeout,
    failure_threshold = flags.health_threshold, start_grace = flags.health_grace }
  if spec.kind == "http" then t.http = spec.path else t[spec.kind] = true end
  local _, nerr = health.normalize(t)
  if nerr then errors.usage("health check: " .. tostring(nerr), "see docs/HEALTH.md") end
  return t
end

local function deploy_one(ctx, c, ns, body, dir)
  body.bundle = upload(c, dir, ctx.flags.include)
  local res = c:request("POST", deployments_path(ns), body)
  return report(ctx, c, ns, res)
end

local function from_flags(ctx)
  local uv = require("luv")
  local flags = ctx.flags
  local cwd = uv.cwd()
  local script, dir = M.resolve_script(ctx.args.SCRIPT, flags.entry, cwd)
  local name = flags.name or require("prisn.store.cronjobs").name_from_script(
    (flags.entry == nil and uv.fs_stat(absolute(ctx.args.SCRIPT, cwd)).type == "directory") and dir or script)
  local ok, err = require("prisn.store.deployments").valid_name(name)
  if not ok then errors.usage(err, "choose one with --name NAME") end
  local limits, lerr, lhint = require("prisn.exec.limits").check({ memory = flags.memory, cpu = flags.cpu,
    pids = flags.pids })
  if limits == nil then errors.usage(lerr, lhint) end
  limits = limits or {}
  local isolation = require("prisn.exec.isolation")
  local level = isolation.check_disk(isolation.check(flags.isolation), flags.disk)
  if flags.port and (flags.port < 1 or flags.port > 65535) then
    errors.usage(string.format("--port must be from 1 to 65535, got %d", flags.port), "e.g. --port 8080")
  end
  if flags.replicas and flags.replicas < 0 then
    errors.usage("--replicas cannot be negative", "e.g. -r 3; 0 keeps the deployment without instances")
  end
  local env = env_of(ctx, cwd)
  local client = client_module()
  local c = client.connect(ctx)
  return deploy_one(ctx, c, client.namespace(ctx), {
    name = name, entry = script:sub(#dir + 2), args = ctx.args.ARGS and #ctx.args.ARGS > 0 and ctx.args.ARGS or nil,
    env = next(env) and env or nil, secrets = #flags.secret > 0 and flags.secret or nil,
    runner = flags.runner, no_deps = flags.no_deps or nil, memory = limits.memory, cpu = limits.cpu,
    pids = limits.pids, isolation = level, disk = flags.disk, grace = flags.grace,
    port = flags.port, host = flags.host, replicas = flags.replicas, health = health_of(flags, flags.port ~= nil),
    restart = flags.restart, strategy = flags.strategy,
  }, dir)
end

local function from_manifest(ctx)
  local uv = require("luv")
  local path = absolute(ctx.flags.file, uv.cwd())
  local m, err = require("prisn.manifest").load(path)
  if not m then errors.raise("invalid", err, { hint = "the schema is in docs/MANIFEST.md" }) end
  local client = client_module()
  local c = client.connect(ctx)
  local status = 0
  for _, e in ipairs(m.deployments) do
    local script, dir = M.resolve_script(e.script, e.entry, path:match("^(.*)/[^/]*$"))
    local ns = e.namespace or client.namespace(ctx)
    -- Hook files go up with the bundle: they must live in the script's folder.
    local hooks
    for _, file in ipairs(e.hooks or {}) do
      local full = absolute(file, path:match("^(.*)/[^/]*$"))
      if full:sub(1, #dir + 1) ~= dir .. "/" then
        errors.raise("invalid", string.format("%s: deployment %s: hook %s is outside %s", ctx.flags.file, e.name,
          file, dir), { hint = "keep a deployment's hook files in its folder; they are uploaded with it" })
      end
      hooks = hooks or {}
      hooks[#hooks + 1] = full:sub(#dir + 2)
    end
    local ok, err2 = pcall(deploy_one, ctx, c, ns, {
      hooks = hooks,
      name = e.name, entry = script:sub(#dir + 2), env = e.env and next(e.env) and e.env or nil,
      secrets = #e.secrets > 0 and e.secrets or nil, memory = e.memory, cpu = e.cpu, pids = e.pids,
      isolation = e.isolation, disk = e.disk, port = e.port, replicas = e.replicas,
      health = e.health, restart = e.restart,
    }, dir)
    if not ok then
      if not errors.is(err2) then error(err2, 0) end
      io.stderr:write("Error: deployment ", e.name, ": ", err2.message, "\n")
      if err2.hint then io.stderr:write("Hint: ", err2.hint, "\n") end
      status = 1
    elseif ok and err2 ~= 0 then
      status = err2
    end
  end
  for _, e in ipairs(m.cronjobs) do
    local script, dir = M.resolve_script(e.script, e.entry, path:match("^(.*)/[^/]*$"))
    local ns = e.namespace or client.namespace(ctx)
    local res = c:request("POST", string.format("/api/v1/namespaces/%s/cronjobs", ns), {
      name = e.name, schedule = e.schedule, every = e.every, at = e.at, on = e.on, timezone = e.timezone,
      bundle = upload(c, dir), entry = script:sub(#dir + 2), env = e.env and next(e.env) and e.env or nil,
      secrets = #e.secrets > 0 and e.secrets or nil, memory = e.memory, cpu = e.cpu, pids = e.pids,
      isolation = e.isolation, disk = e.disk, timeout = e.timeout, concurrency = e.concurrency,
      catch_up = e.catch_up or nil, keep_succeeded = e.keep_succeeded, keep_failed = e.keep_failed,
    })
    if ctx.globals.output == "text" and not ctx.globals.quiet then
      io.stdout:write(string.format("cron job %s: %s\n", res.name, res.schedule))
    end
  end
  return status
end

local function handler(ctx)
  if ctx.flags.file then
    if ctx.args.SCRIPT then errors.usage("give either SCRIPT or -f MANIFEST, not both", "prisn deploy -f prisn.lua") end
    return from_manifest(ctx)
  end
  if not ctx.args.SCRIPT then
    errors.usage("missing argument SCRIPT for 'prisn deploy'", "e.g. prisn deploy app.py --port 8080, or "
      .. "prisn deploy -f prisn.lua")
  end
  return from_flags(ctx)
end

M.commands = {
  {
    name = "deploy",
    summary = "Run a script as a supervised service: replicas, a load-balanced port, rolling updates",
    usage = "prisn deploy SCRIPT|DIR [flags] [-- ARGS...] | prisn deploy -f prisn.lua",
    description = "Creates a deployment on the server, or changes the one of that name. Each\n"
      .. "replica is an instance: the script runs with its own port in $PORT (and\n"
      .. "PRISN_DEPLOYMENT, PRISN_NAMESPACE, PRISN_INSTANCE), is restarted when it\n"
      .. "exits (--restart; delays grow 1s, 2s, 4s ... up to 5 minutes while it keeps\n"
      .. "crashing: crash_loop_backoff), and serves behind --port, where prisn spreads\n"
      .. "connections over the healthy instances (--strategy).\n"
      .. "\n"
      .. "A directory is uploaded whole; its entry point is --entry or the first of\n"
      .. "main.py, app.py, server.py, index.js, main.js, server.js, app.js, main.sh,\n"
      .. "run.sh, start.sh, main.lua. Dependencies are found and cached as for\n"
      .. "'prisn run'. The name defaults to the file's (or directory's) name.\n"
      .. "\n"
      .. "Deploying a changed script or flags makes a new revision and replaces the\n"
      .. "instances one at a time: a new one starts, becomes healthy and joins the\n"
      .. "pool before an old one is drained (no new connections, SIGTERM, --grace,\n"
      .. "SIGKILL). deploy waits for that and prints the result; a revision that never\n"
      .. "becomes healthy is rolled back automatically and deploy exits 1 saying why.\n"
      .. "Replicas and port changes apply without a new revision.\n"
      .. "\n"
      .. "Health (--health): http:/PATH (GET answering 2xx/3xx), tcp (a connect to\n"
      .. "$PORT), none (up for a second counts as healthy). Default: tcp with --port,\n"
      .. "none without. Manifests (-f): docs/MANIFEST.md; hooks: docs/HOOKS.md.",
    args = {
      { name = "SCRIPT", summary = "The script, or a directory with an entry point", complete = "file" },
      { name = "ARGS", summary = "Arguments for the script (after -- when they look like flags)", repeatable = true },
    },
    flags = {
      { name = "file", short = "f", type = "string", placeholder = "MANIFEST", complete = "file",
        summary = "Deploy the deployments and cron jobs of a Lua manifest (docs/MANIFEST.md)" },
      { name = "name", type = "string", placeholder = "NAME",
        summary = "The deployment's name (default: from the file)" },
      require("prisn.cli.workload").flag("port"),
      { name = "host", type = "string", placeholder = "ADDR", summary = "Address the port listens on (0.0.0.0)" },
      require("prisn.cli.workload").flag("replicas"),
      { name = "health", type = "string", placeholder = "CHECK",
        summary = "http:/PATH, tcp or none (default: tcp with --port, else none)" },
      { name = "health-interval", type = "duration", placeholder = "DUR",
        summary = "Time between health checks once healthy (2s)" },
      { name = "health-timeout", type = "duration", placeholder = "DUR", summary = "One check's time limit (1s)" },
      { name = "health-threshold", type = "int", placeholder = "N",
        summary = "Failed checks in a row before the instance is restarted (3)" },
      { name = "health-grace", type = "duration", placeholder = "DUR",
        summary = "Start-up time in which failed checks don't count (30s)" },
      require("prisn.cli.workload").flag("restart"),
      { name = "strategy", type = "string", values = { "round-robin", "least-connections" }, placeholder = "S",
        summary = "How the port picks an instance (round-robin)" },
      { name = "entry", type = "string", placeholder = "FILE", summary = "The file to run inside a directory" },
      { name = "no-wait", type = "bool", summary = "Return once the deploy is accepted; don't wait for the rollout" },
      { name = "wait-timeout", type = "duration", placeholder = "DUR",
        summary = "How long to wait for the rollout (5m); it goes on after" },
      table.unpack(require("prisn.cli.workload").run_flags(RUN_FLAGS)),
    },
    examples = {
      { "prisn deploy api.py --port 8080 -r 3", "Three instances of api.py behind port 8080" },
      { "prisn deploy ./web --port 8000 --health http:/healthz", "A directory (web/app.py), checked over HTTP" },
      { "prisn deploy api.py --port 8080 --health http:/ready --health-interval 5s --health-threshold 5",
        "With the check's timing" },
      { "prisn deploy worker.js -r 2 --memory 256M --secret db", "Two workers with a memory limit and a secret" },
      { "prisn deploy ./web --port 8000 --include web/static", "Upload web/static although .prisnignore lists it" },
      { "prisn deploy -f prisn.lua", "Everything a manifest declares" },
    },
    handler = handler,
  },
}

return M.commands
