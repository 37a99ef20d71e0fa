-- prisn.cli.kinds: the one registry of the kinds of object the verbs act on
-- (get, describe, delete, scale, rollout, restart), so that every verb
-- takes the same words for a kind ("deploy", "deployment", "deployments"),
-- both as `KIND NAME` and as `KIND/NAME`, and completes the same live names.
--
-- A kind is data: its name (the word help shows), the other words that mean
-- it, the noun messages use, the API path its objects are listed from, the
-- field that names one (`key`) and whether it lives in a namespace. The
-- verbs build their per-kind subcommands with M.words; the parser turns
-- `KIND/NAME` into `KIND NAME` (prisn.cli.parse); completers come from
-- M.completer and ask the server, honouring -n/--namespace and --context
-- wherever they stand on the line.
--
-- Not here: what a verb does with an object (its command file).
--
-- The completers' helpers (the API client, the store, the job CLI) are
-- required inside them: every command loads this module through the global
-- flags' completion, and loading them at the top cost every start ~1 ms
-- (tests/bench/run-report.md; tests/layers.lua lists the exceptions).
local errors = require("prisn.error")

local M = {}

-- How long a completer waits for the server: a shell's TAB must not hang.
M.COMPLETE_TIMEOUT_MS = 1500

M.KINDS = {
  { name = "deploy", words = { "deploy", "deployment", "deployments", "deploys" }, noun = "deployment",
    list = "/api/v1/namespaces/%s/deployments", key = "name", namespaced = true },
  { name = "cron", words = { "cron", "cronjob", "cronjobs", "crons" }, noun = "cron job",
    list = "/api/v1/namespaces/%s/cronjobs", key = "name", namespaced = true },
  { name = "job", words = { "job", "jobs" }, noun = "job",
    list = "/api/v1/namespaces/%s/jobs?limit=200", key = "id", namespaced = true },
  { name = "instance", words = { "instance", "instances", "inst" }, noun = "instance",
    list = "/api/v1/namespaces/%s/instances", key = "name", namespaced = true },
  { name = "secret", words = { "secret", "secrets" }, noun = "secret",
    list = "/api/v1/namespaces/%s/secrets", key = "name", namespaced = true },
  { name = "token", words = { "token", "tokens" }, noun = "token",
    list = "/api/v1/tokens", key = "id", namespaced = false },
  { name = "node", words = { "node", "nodes" }, noun = "node",
    list = "/api/v1/nodes", key = "name", namespaced = false },
}

local by_word = {}
for _, kind in ipairs(M.KINDS) do
  for _, word in ipairs(kind.words) do by_word[word] = kind end
end

--- The kind `word` names ("deployments", "inst", ...), or nil.
function M.find(word)
  return by_word[word]
end

--- "deploy/web" -> the deploy kind, "web"; nil for a word that is not
-- KIND/NAME with a known kind.
function M.split(word)
  local kind_word, name = tostring(word):match("^([%a]+)/(.+)$")
  local kind = kind_word and by_word[kind_word]
  if not kind then return nil end
  return kind, name
end

--- A verb's subcommand for kind `name`: its command name `primary` (one of
-- the kind's words) and every other word of the kind as aliases.
function M.words(name, primary)
  local kind = assert(by_word[name], name)
  local aliases = {}
  for _, word in ipairs(kind.words) do
    if word ~= primary then aliases[#aliases + 1] = word end
  end
  return primary, aliases
end

--- Resolves a verb's target words into a kind and a name, for verbs that
-- take `[KIND] NAME` as plain arguments (restart, rollout): `first` is
-- "web", "deploy/web" or "deploy" (then `second` is the name). `allowed`
-- lists the kind names the verb acts on (the first is the default).
-- Raises a usage error naming what the verb takes.
function M.target(verb, first, second, allowed)
  local kind, name = M.split(first)
  if not kind and second then kind, name = by_word[first], second end
  if not kind then
    if second then
      errors.usage(string.format("'%s' is not a kind of object", first),
        string.format("prisn %s takes %s NAME, %s/NAME or NAME", verb, allowed[1], allowed[1]))
    end
    return by_word[allowed[1]], first
  elseif second and M.split(first) then
    errors.usage(string.format("unexpected argument '%s'", second), "see 'prisn help " .. verb .. "'")
  end
  for _, a in ipairs(allowed) do
    if a == kind.name then return kind, name end
  end
  errors.usage(string.format("prisn %s does not act on %ss", verb, kind.noun),
    string.format("it takes a %s: prisn %s %s/NAME", by_word[allowed[1]].noun, verb, allowed[1]))
end

--- The API path of kind `kind`'s list in namespace `ns`.
function M.list_path(kind, ns)
  if kind.namespaced then return string.format(kind.list, ns) end
  return kind.list
end

-- The words of the line as handlers see globals: -n and --context as typed.
local function line_ctx(ctx)
  return { globals = { namespace = ctx and ctx.globals and ctx.globals.namespace,
    context = ctx and ctx.globals and ctx.globals.context } }
end

--- The live names of kind `kind_name` on the server of the line's context
-- and namespace, starting with `partial`. Never raises: a server that is
-- down or slow completes nothing.
function M.live_names(kind_name, partial, ctx)
  local kind = by_word[kind_name]
  local ok, result = pcall(function()
    local client = require("prisn.client")
    local cctx = line_ctx(ctx)
    local c = client.connect(cctx)
    local res = c:request("GET", M.list_path(kind, client.namespace(cctx)), nil,
      { timeout_ms = M.COMPLETE_TIMEOUT_MS })
    local out = {}
    for _, item in ipairs(type(res) == "table" and res.items or {}) do
      local value = item[kind.key]
      if type(value) == "string" and value:sub(1, #(partial or "")) == (partial or "") then
        out[#out + 1] = value
      end
    end
    return out
  end)
  return ok and result or {}
end

--- A completer (see prisn.cli.declaration) of the live names of a kind;
-- job ids come from this machine's state database (local runs included),
-- with their state and script.
function M.completer(kind_name)
  assert(by_word[kind_name], kind_name)
  if kind_name == "job" then
    return function(partial) return require("prisn.cli.jobs").complete_job_id(partial) end
  end
  return function(partial, ctx) return M.live_names(kind_name, partial, ctx) end
end

--- A completer for a `[KIND] NAME` target: the live names of the default
-- kind, and `KIND/` words (then the names of that kind) for the others.
function M.target_completer(allowed)
  return function(partial, ctx)
    local kind, rest = M.split(partial)
    if kind then
      local out = {}
      for _, name in ipairs(M.live_names(kind.name, rest, ctx)) do out[#out + 1] = kind.name .. "/" .. name end
      return out
    end
    local out = M.live_names(allowed[1], partial, ctx)
    for _, a in ipairs(allowed) do out[#out + 1] = a .. "/" end
    return out
  end
end

--- A completer for the NAME after a `KIND` word in a `[KIND] NAME` target:
-- live names when the word before was a kind, nothing otherwise.
function M.second_completer(first_arg)
  return function(partial, ctx)
    local kind = by_word[ctx.args[first_arg] or ""]
    if not kind then return {} end
    return M.live_names(kind.name, partial, ctx)
  end
end

--- Namespaces to complete after -n: those of the contexts, those with
-- something in this machine's state database, and "default". Never raises.
function M.complete_namespace(partial)
  local seen, out = {}, {}
  local function add(ns)
    if type(ns) == "string" and not seen[ns] and ns:sub(1, #partial) == partial then
      seen[ns] = true
      out[#out + 1] = ns
    end
  end
  add("default")
  pcall(function()
    local contexts, homes = require("prisn.contexts"), require("prisn.home")
    for _, entry in pairs(contexts.load(homes.path()).contexts) do add(entry.namespace) end
  end)
  pcall(function()
    local store = require("prisn.store")
    local deployments, cronjobs = require("prisn.store.deployments"), require("prisn.store.cronjobs")
    local db = store.open(nil, { create = false })
    if not db then return end
    local ok = pcall(function()
      for _, d in ipairs(deployments.list(db, { all_namespaces = true })) do add(d.namespace) end
      for _, c in ipairs(cronjobs.list(db, { all_namespaces = true })) do add(c.namespace) end
    end)
    db:close()
    return ok
  end)
  return out
end

return M
