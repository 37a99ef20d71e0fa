-- `prisn token create|list|revoke`: API tokens (admin only).
local kinds = require("prisn.cli.kinds")

local function client(ctx)
  return require("prisn.client").connect(ctx)
end

local function create(ctx)
  -- --namespace here is the binding (repeatable); it shadows the global flag.
  local namespaces = ctx.flags.namespace
  if #namespaces == 0 then namespaces = { require("prisn.client").namespace(ctx) } end
  local body = { name = ctx.args.NAME or (ctx.flags.role .. "-token"), role = ctx.flags.role,
    namespaces = namespaces, expires_in = ctx.flags.expires }
  local created = client(ctx):request("POST", "/api/v1/tokens", body)
  if ctx.globals.output ~= "text" then
    ctx.out:emit(created)
  else
    io.stdout:write(created.token, "\n")
    if not ctx.globals.quiet then
      io.stderr:write(string.format("Token %s (%s, %s): shown only once; store it now.\n",
        created.id, created.role, table.concat(created.namespaces, ", ")))
    end
  end
  return 0
end

local function list(ctx)
  local res = client(ctx):request("GET", "/api/v1/tokens")
  local items = res.items or {}
  if ctx.globals.output ~= "text" then
    ctx.out:emit(require("prisn.output").array(items))
    return 0
  end
  local rows = {}
  for i, t in ipairs(items) do
    rows[i] = { id = t.id, name = t.name, role = t.role, namespaces = table.concat(t.namespaces, ","),
      expires = t.expires_at, last_used = t.last_used_at,
      state = t.revoked_at ~= require("cjson").null and "revoked" or "active" }
  end
  ctx.out:emit(rows, { columns = { { key = "id", header = "ID" }, { key = "name", header = "NAME" },
    { key = "role", header = "ROLE" }, { key = "namespaces", header = "NAMESPACES" },
    { key = "state", header = "STATE" }, { key = "expires", header = "EXPIRES" },
    { key = "last_used", header = "LAST USED" } }, empty = "No tokens." })
  return 0
end

local function revoke(ctx)
  local t = client(ctx):request("DELETE", "/api/v1/tokens/" .. ctx.args.ID)
  if ctx.globals.output ~= "text" then
    ctx.out:emit(t)
  elseif not ctx.globals.quiet then
    io.stdout:write(string.format("token %s (%s) revoked\n", t.id, t.name))
  end
  return 0
end

return {
  {
    name = "token",
    summary = "Create, list and revoke API tokens",
    subcommands = {
      {
        name = "create",
        summary = "Create a token and print it (shown only once)",
        description = "Creates an API token with a role — view (read), edit (read and change),\n"
          .. "admin (everything, tokens included) — bound to one or more namespaces\n"
          .. "('*' = all, for view and admin tokens), optionally expiring. The token is\n"
          .. "printed alone on stdout, once: prisn keeps only a keyed hash of it.",
        args = { { name = "NAME", summary = "A name for the token (default: ROLE-token)" } },
        flags = {
          { name = "role", type = "string", values = { "view", "edit", "admin" }, default = "view",
            summary = "What the token may do" },
          { name = "namespace", short = "n", type = "string", repeatable = true, placeholder = "NS",
            summary = "A namespace the token may use; repeat for several (default: default)" },
          { name = "expires", type = "string", placeholder = "DURATION",
            summary = "Make the token expire after this long (e.g. 30d)" },
        },
        examples = {
          { "prisn token create ci --role edit --namespace ns-a --expires 30d",
            "An edit token for namespace ns-a that expires in 30 days" },
          { "prisn token create ops --role admin --namespace '*'", "An admin token for every namespace" },
          { "prisn token create prometheus --role view --namespace '*'",
            "A cluster-wide reader, e.g. for scraping /metrics" },
        },
        handler = create,
      },
      {
        name = "list",
        aliases = { "ls" },
        summary = "List tokens (never their secrets)",
        description = "Lists every token: id, name, role, namespaces, whether it is revoked,\n"
          .. "its expiry and when it was last used.",
        examples = { { "prisn token list", "Show the tokens" } },
        handler = list,
      },
      {
        name = "revoke",
        summary = "Revoke a token; it stops working at once",
        description = "Revokes the token with this id ('prisn token list' shows the ids). The\n"
          .. "record is kept for the audit trail.",
        args = { { name = "ID", summary = "The token id", required = true,
          complete = kinds.completer("token") } },
        examples = { { "prisn token revoke 06h1jdn4hxhr", "Revoke a token" } },
        handler = revoke,
      },
    },
  },
}
