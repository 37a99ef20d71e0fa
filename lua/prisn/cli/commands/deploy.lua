-- `prisn deploy SCRIPT|DIR [flags]` and `prisn deploy -f prisn.lua`: create
-- or change supervised services on the server. The script's folder goes up
-- as a bundle (content-addressed, so only once); the server makes a new
-- revision when the template changed and rolls it out one instance at a
-- time. deploy waits for the rollout and says how it ended: serving, or
-- rolled back (exit 1) with the reason.
local errors = require("prisn.error")
local redeploy = require("prisn.cli.redeploy")

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

-- How many of the failing instance's last lines a failed deploy prints.
M.FAILURE_LINES = 10

-- The last lines instance `number` of ns/name printed (the logs API's
-- NDJSON records), or an empty list when they cannot be read.
local function last_lines(c, ns, name, number)
  local body = {}
  local ok = pcall(c.request, c, "GET", deployments_path(ns, name, "logs") .. "?tail=" .. M.FAILURE_LINES
    .. "&instance=" .. math.tointeger(number), nil, { timeout_ms = 10000,
      on_chunk = function(chunk) body[#body + 1] = chunk end })
  local lines = {}
  if not ok then return lines end
  local cjson = require("cjson")
  for text in table.concat(body):gmatch("[^\n]+") do
    local decoded, rec = pcall(cjson.decode, text)
    if decoded and type(rec) == "table" and type(rec.data) == "string" then
      lines[#lines + 1] = (rec.data:gsub("\n$", ""))
    end
  end
  return lines
end

-- The hint of a failed rollout: the failing instance's last lines, printed
-- right there, and the command that shows more of them. Without a failing
-- instance (an old server), the deployment's logs.
local function failure_hint(c, ns, name, d, extra)
  local f = type(d.failed_instance) == "table" and d.failed_instance or nil
  if not f then return "see what it printed: prisn logs " .. name .. " --tail 50" .. (extra or "") end
  local lines = last_lines(c, ns, name, f.number)
  local text = string.format("instance %s failed; %s", f.name, #lines == 0 and "it printed nothing"
    or ("its last lines:\n    " .. table.concat(lines, "\n    ")))
  return text .. string.format("\nmore: prisn logs %s --instance %d --tail 50%s", name, math.tointeger(f.number),
    extra or "")
end

-- Waits for the rollout of `revision`, with a progress line on a terminal.
local function wait(ctx, c, ns, name, revision)
  local line = redeploy.progress_wanted(ctx) and redeploy.line() or nil
  local started = require("luv").hrtime()
  local on_poll = line and function(d)
    line.show(redeploy.progress_text(name, d, revision, (require("luv").hrtime() - started) / 1e9))
  end
  local ok, outcome, d = pcall(require("prisn.cli.deployments").wait_rollout, c, ns, name, revision,
    ctx.flags.wait_timeout or 300, on_poll)
  if line then line.clear() end
  if not ok then error(outcome, 0) end
  return outcome, d
end

-- Reports how a deploy ended; returns the exit status.
local function report(ctx, c, ns, res)
  local name, revision = res.name, res.revision
  local text = ctx.globals.output == "text" and not ctx.globals.quiet
  if text then io.stdout:write(redeploy.changes_text(res)) end
  if res.dry_run then
    if ctx.globals.output ~= "text" then ctx.out:emit(res) end
    return 0
  end
  local wait_for = not ctx.flags.no_wait and (res.changed or res.created)
  local outcome, d = "submitted", res
  if wait_for then outcome, d = wait(ctx, c, ns, name, revision) end
  if ctx.globals.output ~= "text" then
    d.outcome = outcome
    d.changes = res.changes
    ctx.out:emit(d)
  elseif text then
    local where = type(d.port) == "number" and (" on port " .. math.tointeger(d.port)) or ""
    if type(d.url) == "string" then where = where .. " at " .. d.url end
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
      { hint = failure_hint(c, ns, name, d) })
  elseif outcome == "failed" then
    errors.raise("deploy_failed", string.format("deployment %s does not start: %s", name,
      type(d.revision_message) == "string" and d.revision_message or "its instances keep exiting"),
      { hint = failure_hint(c, ns, name, d, "; it keeps restarting with backoff") })
  elseif outcome == "timeout" then
    errors.raise("timeout", string.format("revision %d of %s is not serving yet (%d/%d ready)", revision, name,
      d.ready or 0, d.replicas or 0), { hint = "it goes on in the background: prisn describe deploy " .. name })
  end
  return 0
end

-- The env a deploy sends (KEY=VALUE from --env-file and -e) and the keys
-- it removes (-e KEY-).
local function env_of(ctx, cwd)
  local set, remove = redeploy.split_env(ctx.flags.env)
  if #remove > 0 and ctx.flags.reset then
    errors.usage("-e " .. remove[1] .. "- removes a variable the previous revision had; --reset keeps none",
      "drop the -e KEY- words, or drop --reset")
  end
  local env = require("prisn.envfile").collect(ctx.flags.env_file and absolute(ctx.flags.env_file, cwd), set)
  return env, remove
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

-- Uploads the bundle (content-addressed: a dry run stores at most files the
-- server may already have, and changes no deployment), then deploys.
local function deploy_one(ctx, c, ns, body, dir)
  local line = redeploy.progress_wanted(ctx) and not ctx.flags.dry_run and redeploy.line() or nil
  if line then line.show(body.name .. ": uploading") end
  local ok, hash = pcall(upload, c, dir, ctx.flags.include)
  if line and ok then line.show(body.name .. ": starting") end
  body.bundle = hash
  body.dry_run = ctx.flags.dry_run or nil
  local res
  if ok then ok, res = pcall(c.request, c, "POST", deployments_path(ns), body) end
  if line then line.clear() end
  if not ok then error(res or hash, 0) end
  return report(ctx, c, ns, res)
end

-- The port's address and the ingress host name the flags ask for (--host ''
-- is JSON null: remove it). --host ADDR still means --bind ADDR, with a
-- warning, so that scripts written before the ingress keep working.
local function route_of(flags)
  local bind, hostname = flags.bind, flags.host
  -- An IP address given to --host is the port's address, as --host meant
  -- before the ingress took the name (--bind now).
  if hostname and require("prisn.net.address").is_ip(hostname) then
    io.stderr:write("Warning: --host " .. hostname .. " is an address: the port listens on it; that is --bind "
      .. "now (--host names the ingress host)\n")
    if bind then errors.usage("give the port's address once: --bind " .. bind .. " or --host " .. hostname) end
    return hostname, nil
  end
  if hostname == "" then return bind, require("cjson").null end
  if flags.path == "" and hostname then errors.usage("--path '' removes the path; it goes without --host") end
  for _, name in ipairs({ "hostname", "path", "tls_cert", "tls_key", "tls_secret" }) do
    local field = require("prisn.exec.workload").field(name)
    local key = field.flag.name:gsub("%-", "_")
    if flags[key] ~= nil and flags[key] ~= "" then require("prisn.cli.workload").check_flags(flags, { name }) end
  end
  return bind, hostname
end

-- A flag of the ingress route as sent: '' is null (remove it), and so is
-- one not given when --host '' takes the route away.
local function route_field(value, hostname)
  local null = require("cjson").null
  if value == "" or (value == nil and hostname == null) then return null end
  return value
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
  -- The rules of prisn.exec.workload, as the API and manifests apply them.
  local bind, hostname = route_of(flags)
  require("prisn.cli.workload").check_flags(flags, { "port", "replicas", "grace" })
  local env, env_remove = env_of(ctx, cwd)
  local client = client_module()
  local c = client.connect(ctx)
  -- Without --reset the server lays these over the previous revision: a flag
  -- not given (nil) keeps its value.
  return deploy_one(ctx, c, client.namespace(ctx), {
    merge = not flags.reset or nil, env_remove = #env_remove > 0 and env_remove or nil,
    name = name, entry = script:sub(#dir + 2), args = ctx.args.ARGS and #ctx.args.ARGS > 0 and ctx.args.ARGS or nil,
    env = next(env) and env or nil, secrets = #flags.secret > 0 and flags.secret or nil,
    runner = flags.runner, no_deps = flags.no_deps or nil, memory = limits.memory, cpu = limits.cpu,
    pids = limits.pids, isolation = level, disk = flags.disk, grace = flags.grace,
    port = flags.port, host = bind, replicas = flags.replicas, health = health_of(flags, flags.port ~= nil),
    hostname = hostname, path = route_field(flags.path, hostname), tls_secret = route_field(flags.tls_secret, hostname),
    tls_cert = route_field(flags.tls_cert and absolute(flags.tls_cert, cwd), hostname),
    tls_key = route_field(flags.tls_key and absolute(flags.tls_key, cwd), hostname),
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
      isolation = e.isolation, disk = e.disk, port = e.port, replicas = e.replicas, hostname = e.hostname,
      path = e.path, tls_cert = e.tls_cert, tls_key = e.tls_key, tls_secret = e.tls_secret,
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
    if ctx.flags.dry_run then
      -- The cron API has no dry run: say so rather than change it.
      if ctx.globals.output == "text" and not ctx.globals.quiet then
        io.stdout:write(string.format("cron job %s (dry run, nothing changed): not compared; a deploy sets it "
          .. "as the manifest says\n", e.name))
      end
      goto next_cronjob
    end
    local res = c:request("POST", string.format("/api/v1/namespaces/%s/cronjobs", ns), {
      name = e.name, schedule = e.schedule, every = e.every, at = e.at, on = e.on, timezone = e.timezone,
      bundle = upload(c, dir), entry = script:sub(#dir + 2), env = e.env and next(e.env) and e.env or nil,
      secrets = #e.secrets > 0 and e.secrets or nil, memory = e.memory, cpu = e.cpu, pids = e.pids,
      isolation = e.isolation, disk = e.disk, timeout = e.timeout, concurrency = e.concurrency,
      catch_up = e.catch_up or nil, keep_succeeded = e.keep_succeeded, keep_failed = e.keep_failed,
    })
    if ctx.globals.output == "text" and not ctx.globals.quiet then
      io.stdout:write(redeploy.changes_text(res, "cron job"))
      io.stdout:write(string.format("cron job %s: %s\n", res.name, res.schedule))
    end
    ::next_cronjob::
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
      .. "Redeploying an existing deployment starts from its current revision: only\n"
      .. "the flags given change (-e KEY=VALUE sets a variable, -e KEY- removes one,\n"
      .. "--secret replaces the list); --reset starts from the defaults instead. A\n"
      .. "manifest (-f) is complete: what it leaves out is unset. Every redeploy prints\n"
      .. "what changes (script digest, env keys but never values, limits, replicas,\n"
      .. "port, health, ...); --dry-run prints only that. On a terminal a progress line\n"
      .. "shows the rollout (n/N ready, elapsed, the current step); not with -q.\n"
      .. "\n"
      .. "On the server's ingress (prisn server start --ingress :80), --host NAME\n"
      .. "[--path /PREFIX] routes HTTP requests for that host name (and path prefix) to\n"
      .. "the ready instances, with or without --port; a host name belongs to one\n"
      .. "namespace. --host '' takes the deployment off the ingress. (--host ADDR with\n"
      .. "an IP address is the old spelling of --bind ADDR.)\n"
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
      { name = "bind", type = "string", placeholder = "ADDR", summary = "Address the port listens on (0.0.0.0)" },
      require("prisn.cli.workload").flag("host"),
      require("prisn.cli.workload").flag("path"),
      require("prisn.cli.workload").flag("tls-cert"),
      require("prisn.cli.workload").flag("tls-key"),
      require("prisn.cli.workload").flag("tls-secret"),
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
      { name = "dry-run", type = "bool",
        summary = "Print what the deploy would change (script, env keys, limits, ...) and change nothing" },
      { name = "reset", type = "bool",
        summary = "Start from the defaults, not from the previous revision (flags not given are unset)" },
      { name = "wait-timeout", type = "duration", placeholder = "DUR",
        summary = "How long to wait for the rollout (5m); it goes on after" },
      table.unpack(redeploy.without_defaults(require("prisn.cli.workload").run_flags(RUN_FLAGS))),
    },
    examples = {
      { "prisn deploy api.py --port 8080 -r 3", "Three instances of api.py behind port 8080" },
      { "prisn deploy ./web --port 8000 --health http:/healthz", "A directory (web/app.py), checked over HTTP" },
      { "prisn deploy api.py --port 8080 --health http:/ready --health-interval 5s --health-threshold 5",
        "With the check's timing" },
      { "prisn deploy worker.js -r 2 --memory 256M --secret db", "Two workers with a memory limit and a secret" },
      { "prisn deploy ./web --port 8000 --include web/static", "Upload web/static although .prisnignore lists it" },
      { "prisn deploy -f prisn.lua", "Everything a manifest declares" },
      { "prisn deploy app.py --name web -e COLOR=blue -e DEBUG-", "Redeploy web: set COLOR, remove DEBUG, keep "
        .. "the rest" },
      { "prisn deploy app.py --name web --memory 512M --dry-run", "Show what would change, change nothing" },
      { "prisn deploy api.py --host api.example.com --path /v1", "Serve http://api.example.com/v1 on the server's "
        .. "ingress (prisn server start --ingress :80)" },
    },
    handler = handler,
  },
}

return M.commands
