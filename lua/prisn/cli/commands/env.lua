-- `prisn env list|prune`: the cached dependency environments.
local function env_home()
  local home = require("prisn.home").path()
  local st = require("luv").fs_stat(home)
  return st and home or nil
end

local function iso(seconds)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", seconds)
end

local function public(env)
  return {
    key = env.key,
    runner = env.runner,
    dependencies = require("prisn.output").array(env.dependencies),
    size_bytes = env.size,
    created_at = iso(env.created_at),
    last_used = iso(env.last_used),
    path = env.path,
  }
end

local function list_handler(ctx)
  local home = env_home()
  local envs = home and require("prisn.exec.envcache").list(home) or {}
  local units = require("prisn.units")
  if ctx.globals.output ~= "text" then
    local out = {}
    for i, env in ipairs(envs) do out[i] = public(env) end
    ctx.out:emit(require("prisn.output").array(out))
    return 0
  end
  local rows = {}
  for i, env in ipairs(envs) do
    rows[i] = {
      key = env.key, runner = env.runner,
      dependencies = table.concat(env.dependencies, ", "),
      size = units.format_size(env.size),
      last_used = units.format_duration(os.time() - env.last_used) .. " ago",
    }
  end
  ctx.out:emit(rows, {
    columns = { { key = "key", header = "KEY" }, { key = "runner", header = "RUNNER" },
      { key = "dependencies", header = "DEPENDENCIES" }, { key = "size", header = "SIZE" },
      { key = "last_used", header = "LAST USED" } },
    empty = "No environments yet: 'prisn run' builds one the first time a script needs dependencies.",
  })
  return 0
end

local function prune_handler(ctx)
  local home = env_home()
  local removed = home and require("prisn.exec.envcache").prune(home, ctx.flags.older_than) or {}
  local total = 0
  for _, env in ipairs(removed) do total = total + env.size end
  if ctx.globals.output ~= "text" then
    local out = {}
    for i, env in ipairs(removed) do out[i] = public(env) end
    ctx.out:emit({ removed = require("prisn.output").array(out), freed_bytes = total })
    return 0
  end
  if not ctx.globals.quiet then
    io.stdout:write(string.format("Removed %d environment%s, freed %s\n", #removed,
      #removed == 1 and "" or "s", require("prisn.units").format_size(total)))
  end
  return 0
end

return {
  {
    name = "env",
    summary = "List or prune the cached dependency environments",
    subcommands = {
      {
        name = "list",
        aliases = { "ls" },
        summary = "List cached environments: key, runner, dependencies, size, last use",
        description = "Lists the dependency environments 'prisn run' has built under\n"
          .. "$PRISN_HOME/envs, most recently used first. An environment is keyed by the\n"
          .. "real interpreter (path and version) and the normalized dependency list,\n"
          .. "so scripts with the same needs share one.",
        examples = {
          { "prisn env list", "Show cached environments" },
          { "prisn env list -o json", "As JSON, sizes in bytes" },
        },
        handler = list_handler,
      },
      {
        name = "prune",
        summary = "Remove environments not used for a while",
        description = "Removes cached environments that no run has used for --older-than\n"
          .. "(default 7d); --older-than 0 removes them all. An environment being built\n"
          .. "or in use under its lock is skipped. The next run that needs a removed\n"
          .. "environment builds it again.",
        flags = {
          { name = "older-than", type = "duration", default = "7d", placeholder = "DURATION",
            summary = "Remove environments unused for at least this long" },
        },
        examples = {
          { "prisn env prune", "Remove environments unused for a week" },
          { "prisn env prune --older-than 0", "Remove every cached environment" },
        },
        handler = prune_handler,
      },
    },
  },
}
