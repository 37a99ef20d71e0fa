-- `prisn cron SCRIPT "EXPR"` / `prisn cron SCRIPT --every TEXT`: create (or
-- change) a cron job on the server; `prisn cron suspend|resume|trigger NAME`
-- act on one. The script's folder is uploaded as a bundle (content-addressed,
-- so once), as for `prisn run --detach`; the run flags are those of
-- `prisn run`. Everything goes through the API (POST .../cronjobs).
local errors = require("prisn.error")
local redeploy = require("prisn.cli.redeploy")

local function client_module() return require("prisn.client") end

local function cron_path(ctx, name, action)
  local client = client_module()
  return string.format("/api/v1/namespaces/%s/cronjobs%s%s", client.namespace(ctx),
    name and ("/" .. name) or "", action and ("/" .. action) or "")
end

-- The flags of `prisn run` a cron job takes too, declared once (prisn.exec.workload).
local RUN_FLAGS = { "env", "env-file", "secret", "timeout", "grace", "memory", "cpu", "pids", "isolation",
  "disk", "runner", "no-deps", "include" }

-- Uploads the folder of `script` unless the server has it; returns the
-- bundle hash and the script's path inside it.
local function upload(c, script, include)
  local dir = script:match("^(.*)/[^/]*$")
  return require("prisn.cli.workload").upload(c, dir, "a cron job's script", include), script:sub(#dir + 2)
end

local function create(ctx)
  local uv = require("luv")
  local flags, args = ctx.flags, ctx.args
  if not args.SCRIPT then
    errors.usage("missing argument SCRIPT for 'prisn cron'", "see 'prisn help cron'")
  end
  if (args.EXPR == nil) == (flags.every == nil) then
    errors.usage(args.EXPR and "give the schedule either as EXPR or with --every, not both"
      or "missing the schedule: a cron expression or --every",
      "e.g. prisn cron " .. args.SCRIPT .. " \"0 * * * *\"  or  prisn cron " .. args.SCRIPT .. " --every hour")
  end
  if (flags.at or flags.on) and not flags.every then
    errors.usage("--at and --on go with --every", "e.g. --every day --at 03:00")
  end
  local cwd = uv.cwd()
  local script = args.SCRIPT:sub(1, 1) == "/" and args.SCRIPT or ((cwd == "/" and "" or cwd) .. "/" .. args.SCRIPT)
  local st = uv.fs_stat(script)
  if not st or st.type ~= "file" then
    errors.raise("ENOENT", "script not found: " .. args.SCRIPT, { hint = "check the path (it is relative to "
      .. cwd .. ")" })
  end
  local name = flags.name or require("prisn.store.cronjobs").name_from_script(script)
  local ok, err = require("prisn.store.cronjobs").valid_name(name)
  if not ok then errors.usage(err, "choose one with --name NAME") end
  local set, env_remove = redeploy.split_env(flags.env)
  if #env_remove > 0 and flags.reset then
    errors.usage("-e " .. env_remove[1] .. "- removes a variable the cron job had; --reset keeps none",
      "drop the -e KEY- words, or drop --reset")
  end
  local env = require("prisn.envfile").collect(flags.env_file
    and (flags.env_file:sub(1, 1) == "/" and flags.env_file or (cwd .. "/" .. flags.env_file)), set)
  local limits, lerr, lhint = require("prisn.exec.limits").check({ memory = flags.memory, cpu = flags.cpu,
    pids = flags.pids })
  if limits == nil then errors.usage(lerr, lhint) end
  limits = limits or {}
  local isolation = require("prisn.exec.isolation")
  local level = isolation.check_disk(isolation.check(flags.isolation), flags.disk)
  local c = client_module().connect(ctx)
  local hash, entry = upload(c, script, flags.include)
  -- Without --reset the server lays these over the cron job of that name: a
  -- flag not given (nil) keeps its value.
  local res = c:request("POST", cron_path(ctx), {
    merge = not flags.reset or nil, env_remove = #env_remove > 0 and env_remove or nil,
    dry_run = flags.dry_run or nil,
    name = name, schedule = args.EXPR, every = flags.every, at = flags.at, on = flags.on, timezone = flags.tz,
    bundle = hash, entry = entry, env = next(env) and env or nil,
    secrets = #flags.secret > 0 and flags.secret or nil, runner = flags.runner, timeout = flags.timeout,
    grace = flags.grace, no_deps = flags.no_deps or nil, memory = limits.memory, cpu = limits.cpu,
    pids = limits.pids, isolation = level, disk = flags.disk,
    concurrency = flags.concurrency, catch_up = flags.catch_up or nil,
    keep_succeeded = flags.keep_succeeded, keep_failed = flags.keep_failed,
  })
  if ctx.globals.output ~= "text" then
    ctx.out:emit(res)
  elseif not ctx.globals.quiet then
    io.stdout:write(redeploy.changes_text(res, "cron job"))
    if res.dry_run then return 0 end
    local first = res.next_fires and res.next_fires[1]
    io.stdout:write(string.format("cron job %s: %s%s%s\n", res.name, res.schedule,
      type(res.timezone) == "string" and (" (" .. res.timezone .. ")") or "",
      res.suspended and ", suspended" or (type(first) == "string" and (", next run " .. first) or "")))
  end
  return 0
end

-- suspend / resume / trigger NAME.
local function action(verb, done)
  return function(ctx)
    local res = client_module().connect(ctx):request("POST", cron_path(ctx, ctx.args.NAME, verb), {})
    if ctx.globals.output ~= "text" then
      ctx.out:emit(res)
    elseif not ctx.globals.quiet then
      io.stdout:write(done(ctx.args.NAME, res), "\n")
    end
    return 0
  end
end

local NAME_ARG = { name = "NAME", summary = "The cron job's name", required = true,
  complete = require("prisn.cli.kinds").completer("cron") }

local subcommands = {
  {
    name = "suspend",
    summary = "Suspend a cron job: no new runs, history kept (also 'prisn scale NAME 0')",
    description = "The cron job stays, with its runs; it fires no more until resumed. A run\n"
      .. "in progress goes on.",
    args = { NAME_ARG },
    examples = { { "prisn cron suspend backup", "Stop scheduling backup until it is resumed" } },
    handler = action("suspend", function(name) return "cron job " .. name .. " suspended" end),
  },
  {
    name = "resume",
    summary = "Resume a suspended cron job from its next fire time (also 'prisn scale NAME 1')",
    description = "Runs missed while the cron job was suspended are not made up for: it\n"
      .. "fires next at the first time of its schedule after now.",
    args = { NAME_ARG },
    examples = { { "prisn cron resume backup", "Schedule backup again" } },
    handler = action("resume", function(name, res)
      return "cron job " .. name .. " resumed" .. (type(res.next_fire) == "string" and (", next run "
        .. res.next_fire) or "")
    end),
  },
  {
    name = "trigger",
    summary = "Run a cron job now, out of schedule (its next run stays)",
    description = "Submits one run now, as the schedule would, concurrency policy included:\n"
      .. "with forbid (the default) a run already in progress makes this fail.\n"
      .. "Prints the new job's id alone on stdout.",
    args = { NAME_ARG },
    examples = { { "prisn cron trigger backup", "Run backup now; prints the job id" } },
    handler = action("trigger", function(_, res) return res.id end),
  },
  (require("prisn.cli.commands.cron_explain")),
}

return {
  {
    name = "cron",
    summary = "Run a script on a schedule: cron expressions or plain words, time zones, history",
    usage = "prisn cron SCRIPT \"EXPR\" [flags] | prisn cron SCRIPT --every TEXT [flags] | "
      .. "prisn cron suspend|resume|trigger NAME | prisn cron explain EXPR",
    description = "Creates a cron job on the server, or changes the one of that name: SCRIPT\n"
      .. "runs as a job (same flags as 'prisn run') at every time of its schedule.\n"
      .. "The script's folder is uploaded once, as for 'prisn run --detach'.\n"
      .. "\n"
      .. "The schedule is a cron expression (five fields, or six with seconds first;\n"
      .. "@hourly, @daily, ...) or plain words with --every: 5m, \"15 minutes\", hour,\n"
      .. "day, weekday, monday, month, with --at and --on or inline: \"day at 03:00\",\n"
      .. "\"monday,friday at 18:00\", \"month on the 1st at 00:00\". Both are stored as\n"
      .. "the normalized expression. --tz picks the IANA time zone (default: the\n"
      .. "server's). The name defaults to the script's file name without extension.\n"
      .. "\n"
      .. "--concurrency: forbid (default) skips a run while the last one still runs\n"
      .. "(event cron.skipped); replace stops it and starts the new one; allow runs\n"
      .. "both. Runs missed while the server was down are skipped (event\n"
      .. "cron.missed), or with --catch-up made up for by ONE run at start. The last\n"
      .. "--keep-succeeded and --keep-failed runs are kept (10 each); see them with\n"
      .. "'prisn get jobs --cron NAME' and 'prisn describe cron NAME'.\n"
      .. "\n"
      .. "Changing an existing cron job keeps what is not given (-e KEY=VALUE sets,\n"
      .. "-e KEY- removes a variable; --reset starts from the defaults) and prints\n"
      .. "what changes (env keys, never values); --dry-run prints only that.",
    args = {
      { name = "SCRIPT", summary = "The script to run on the schedule", complete = "file" },
      { name = "EXPR", summary = "The cron expression, quoted: \"0 * * * *\" (or use --every)" },
    },
    flags = {
      { name = "every", type = "string", placeholder = "TEXT",
        summary = "The schedule in words: hour, 5m, \"day at 03:00\", \"weekday at 9:30am\"" },
      { name = "at", type = "string", placeholder = "TIME", summary = "With --every: the time of day (03:00, 9:30am)" },
      { name = "on", type = "string", placeholder = "DAYS",
        summary = "With --every: the days (monday,friday; \"the 1st\")" },
      { name = "name", type = "string", placeholder = "NAME",
        summary = "The cron job's name (default: the script's file name)" },
      { name = "tz", type = "string", placeholder = "ZONE",
        summary = "IANA time zone of the schedule, e.g. Europe/Berlin (default: the server's)" },
      { name = "dry-run", type = "bool",
        summary = "Print what would change (script, env keys, schedule, limits, ...) and change nothing" },
      { name = "reset", type = "bool",
        summary = "Start from the defaults, not from the cron job of that name (flags not given are unset)" },
      table.unpack(redeploy.without_defaults(require("prisn.cli.workload").run_flags({ "concurrency", "catch-up",
        "keep-succeeded", "keep-failed", table.unpack(RUN_FLAGS) }))),
    },
    examples = {
      { "prisn cron report.py \"0 * * * *\"", "Run report.py at the start of every hour" },
      { "prisn cron backup.sh --every \"day at 03:00\" --tz Europe/Berlin", "Every night at 3, Berlin time" },
      { "prisn cron sync.py --every 5m --name sync --concurrency replace", "Every 5 minutes; a slow run is replaced" },
      { "prisn cron etl/load.py --every 1h --include etl/vendor", "Upload etl/vendor although .prisnignore lists it" },
      { "prisn cron trigger backup", "Run cron job backup now" },
      { "prisn cron sync.py --every 10m --name sync -e DEBUG- --dry-run", "What changing sync would change" },
    },
    handler = create,
    subcommands = subcommands,
  },
}
