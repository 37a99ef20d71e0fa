-- `prisn secret set|list|get|delete|rotate-key`: secrets, through the server.
--
-- Every command talks to the server's API (prisn.client): values are
-- encrypted there, under the master key only the server reads. This file
-- gathers what the user typed and shapes what is printed; the rules (names,
-- keys, sizes) are prisn.secrets and the env-file and KEY=VALUE syntax
-- prisn.envfile (the same as `--env-file` and `-e`), checked here first so
-- a typo is caught without a round trip.
--
-- Values are printed only by `get --reveal`. Errors about what was typed
-- name the argument, file or line, never its content: a value typed in the
-- wrong place must not end up on the screen or in a terminal log.
local envfile = require("prisn.envfile")
local kinds = require("prisn.cli.kinds")
local errors = require("prisn.error")
local rules = require("prisn.secrets")

local function client_module() return require("prisn.client") end

local function namespace(ctx)
  return client_module().namespace(ctx)
end

-- Percent-encoding for a path segment.
local function escape(s)
  return (s:gsub("[^%w%-._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function secret_path(ns, name)
  local path = "/api/v1/namespaces/" .. escape(ns) .. "/secrets"
  if name then path = path .. "/" .. escape(name) end
  return path
end

local function check_name(name)
  if not rules.valid_name(name) then
    errors.usage(string.format("invalid secret name %q: use %s", name:sub(1, 80), rules.NAME_RULE),
      "for example: db, api-keys, stripe-prod")
  end
  return name
end

local function read_file(path, what)
  local f, err = io.open(path, "rb")
  if not f then
    local reason = tostring(err):gsub("^.*: ", "")
    errors.raise("ENOENT", string.format("%s: cannot read %s: %s", what, path, reason),
      { hint = "check the path" })
  end
  local text = f:read("a")
  f:close()
  return text
end

-- The KEY -> value table from --from-env-file, --from-file and the KEY=VALUE
-- words. A key given twice is an error rather than a silent override.
local function gather(ctx)
  local values, origin = {}, {}
  local function add(key, value, where)
    if origin[key] then
      errors.usage(string.format("key %s is given twice (%s and %s)", key, origin[key], where),
        "give each key once")
    end
    values[key], origin[key] = value, where
  end
  for _, file in ipairs(ctx.flags.from_env_file or {}) do
    for _, entry in ipairs(envfile.read(file, "--from-env-file")) do
      add(entry[1], entry[2], file)
    end
  end
  for i, spec in ipairs(ctx.flags.from_file or {}) do
    local key, path = envfile.assignment(spec, string.format("--from-file #%d", i))
    if path == "" then errors.usage(string.format("--from-file %s= needs a path", key)) end
    add(key, read_file(path, "--from-file " .. key), "--from-file")
  end
  for i, word in ipairs(ctx.args.VARS or {}) do
    local what = string.format("argument %d after the name", i)
    local key, value = envfile.assignment(word, what)
    add(key, value, what)
  end
  if next(values) == nil then
    errors.usage("give at least one KEY=VALUE, --from-file KEY=PATH or --from-env-file FILE",
      "e.g. prisn secret set db PASSWORD=...")
  end
  rules.check_values(values, "the secret")
  return values
end

local function set(ctx)
  local name = check_name(ctx.args.NAME)
  local values = gather(ctx)
  local ns = namespace(ctx)
  local c = client_module().connect(ctx)
  local secret = c:request("PUT", secret_path(ns, name), { data = values, merge = ctx.flags.merge })
  if ctx.globals.output ~= "text" then
    ctx.out:emit(secret)
  elseif not ctx.globals.quiet then
    ctx.out:emit(string.format("secret '%s' set in namespace '%s' (keys: %s)", secret.name,
      secret.namespace, table.concat(secret.keys, ", ")))
  end
  return 0
end

local LIST_COLUMNS = {
  { key = "name", header = "NAME" },
  { key = "keys", header = "KEYS" },
  { key = "updated_at", header = "UPDATED" },
}

local function list(ctx)
  local output = require("prisn.output")
  local ns = namespace(ctx)
  local res = client_module().connect(ctx):request("GET", secret_path(ns))
  local items = output.array(res.items or {})
  if ctx.globals.output ~= "text" then
    ctx.out:emit(items)
    return 0
  end
  local rows = output.array({})
  for i, s in ipairs(items) do
    rows[i] = { name = s.name, keys = table.concat(s.keys or {}, ","), updated_at = s.updated_at }
  end
  ctx.out:emit(rows, { columns = LIST_COLUMNS,
    empty = string.format("No secrets in namespace '%s'. Create one with 'prisn secret set NAME KEY=VALUE'.", ns) })
  return 0
end

local function get(ctx)
  local name = check_name(ctx.args.NAME)
  local ns = namespace(ctx)
  local path = secret_path(ns, name) .. (ctx.flags.reveal and "?reveal=1" or "")
  local secret = client_module().connect(ctx):request("GET", path)
  ctx.out:emit(secret, ctx.globals.output == "text"
    and { fields = { "name", "namespace", "keys", "data", "created_at", "updated_at" } } or nil)
  return 0
end

-- Asks on the terminal; false when the answer is not yes.
local function confirm(question)
  io.stderr:write(question, " [y/N] ")
  io.stderr:flush()
  local answer = io.stdin:read("l")
  return answer ~= nil and answer:match("^%s*[yY]") ~= nil
end

local function delete(ctx)
  local name = check_name(ctx.args.NAME)
  local ns = namespace(ctx)
  if not ctx.flags.yes then
    if not require("prisn.core.sys").isatty(0) then
      errors.usage(string.format("refusing to delete secret '%s' without --yes: there is no terminal "
        .. "to confirm on", name), "add --yes to delete without asking")
    end
    if not confirm(string.format("Delete secret '%s' in namespace '%s'?", name, ns)) then
      io.stderr:write("Nothing deleted.\n")
      return 1
    end
  end
  local res = client_module().connect(ctx):request("DELETE", secret_path(ns, name))
  if ctx.globals.output ~= "text" then
    ctx.out:emit(res)
  elseif not ctx.globals.quiet then
    ctx.out:emit(string.format("secret '%s' deleted from namespace '%s'", name, ns))
  end
  return 0
end

local function rotate_key(ctx)
  local res = client_module().connect(ctx):request("POST", "/api/v1/secrets/rotate-key")
  if ctx.globals.output ~= "text" then
    ctx.out:emit(res)
    return 0
  end
  ctx.out:emit(string.format("master key rotated: %s -> %s; %d secret%s re-encrypted",
    res.old_key_id, res.key_id, res.reencrypted, res.reencrypted == 1 and "" or "s"))
  if not ctx.globals.quiet then
    io.stderr:write("Note: back up the server's master.key now; the old key is gone and backups "
      .. "of state.db from now on need the new one.\n")
  end
  return 0
end

local NAME_ARG = { name = "NAME", summary = "The secret's name (lower-case letters, digits, '-')", required = true,
  complete = kinds.completer("secret") }

return {
  {
    name = "secret",
    summary = "Store encrypted secrets and hand them to workloads as environment variables",
    description = "A secret is a named set of environment variables (KEY=VALUE) in a namespace,\n"
      .. "kept by the server encrypted (XChaCha20-Poly1305) under $PRISN_HOME/master.key.\n"
      .. "Workloads get them with '--secret NAME'. Values are never logged, never in\n"
      .. "events, and only shown by 'prisn secret get NAME --reveal' (edit or admin role).",
    subcommands = {
      {
        name = "set",
        summary = "Create or replace a secret from KEY=VALUE pairs, files or an env file",
        description = "Sets secret NAME to the given variables, replacing what it held (with\n"
          .. "--merge, keeping the keys not given). Values come from KEY=VALUE words,\n"
          .. "from files (--from-file KEY=PATH: the file's exact bytes) and from env files\n"
          .. "(--from-env-file FILE, read as 'prisn run --env-file' reads them; the format\n"
          .. "is in docs/RUN.md). A key given twice is an error. Words on the command line stay in\n"
          .. "your shell history: prefer the files for real secrets, or\n"
          .. "--from-file KEY=/dev/stdin. Keys are environment variable names; each value\n"
          .. "is at most 64 KiB.",
        args = {
          NAME_ARG,
          { name = "VARS", summary = "KEY=VALUE pairs", repeatable = true },
        },
        flags = {
          { name = "from-file", type = "string", repeatable = true, placeholder = "KEY=PATH",
            summary = "Set KEY to the content of the file PATH (repeatable)", complete = "file" },
          { name = "from-env-file", type = "string", repeatable = true, placeholder = "FILE",
            summary = "Read KEY=VALUE lines from an env file (repeatable)", complete = "file" },
          { name = "merge", type = "bool",
            summary = "Keep the secret's other keys instead of replacing them all" },
        },
        examples = {
          { "prisn secret set db USER=app --from-file PASSWORD=./db-password.txt",
            "A secret with two keys, the password read from a file" },
          { "prisn secret set stripe --from-env-file .env.production", "Every variable of an env file" },
          { "prisn secret set db --merge HOST=db.internal", "Add or change one key, keeping the others" },
        },
        handler = set,
      },
      {
        name = "list",
        aliases = { "ls" },
        summary = "List the secrets of a namespace and their keys (never values)",
        description = "Lists the secrets in the namespace (-n, default \"default\"): each name, its\n"
          .. "key names and when it was last set. Nothing is decrypted.",
        examples = {
          { "prisn secret list", "The secrets of the default namespace" },
          { "prisn secret list -n prod -o json", "As JSON: [{namespace, name, keys, created_at, updated_at}]" },
        },
        handler = list,
      },
      {
        name = "get",
        summary = "Show a secret's keys, values masked unless --reveal",
        description = "Shows secret NAME: its keys, with every value shown as \"****\". With\n"
          .. "--reveal the values are shown — only to a token with the edit or admin role,\n"
          .. "and the server records who revealed what in its events.",
        args = { NAME_ARG },
        flags = {
          { name = "reveal", type = "bool", summary = "Show the values (edit or admin role)" },
        },
        examples = {
          { "prisn secret get db", "The keys of secret db, values masked" },
          { "prisn secret get db --reveal -o json", "The values, as JSON: {name, namespace, keys, data, ...}" },
        },
        handler = get,
      },
      {
        name = "delete",
        aliases = { "rm" },
        summary = "Delete a secret",
        description = "Deletes secret NAME from the namespace. Asks first when run at a terminal;\n"
          .. "elsewhere --yes is required.",
        args = { NAME_ARG },
        flags = {
          { name = "yes", short = "y", type = "bool", summary = "Delete without asking" },
        },
        examples = {
          { "prisn secret delete db", "Delete secret db after confirming" },
          { "prisn secret delete old-api-key --yes -n staging", "Delete without asking, in namespace staging" },
        },
        handler = delete,
      },
      {
        name = "rotate-key",
        summary = "Re-encrypt every secret under a new master key (admin)",
        description = "Makes a new master key, re-encrypts every secret of every namespace under it\n"
          .. "in one transaction and deletes the old key. Crash-safe: interrupted at any\n"
          .. "point, the server settles on whichever key the database uses at its next\n"
          .. "start. Back up $PRISN_HOME/master.key afterwards: backups of state.db made\n"
          .. "from now on can only be read with the new key.",
        examples = {
          { "prisn secret rotate-key", "Rotate the master key" },
        },
        handler = rotate_key,
      },
    },
  },
}
