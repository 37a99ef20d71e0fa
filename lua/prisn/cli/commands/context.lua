-- `prisn context add|use|list|current|delete`: named targets (a server, a
-- token, a default namespace) for the CLI. The store and the precedence
-- rules are prisn.contexts; this file reads what the user typed, keeps
-- tokens off the screen and shapes what is printed.
--
-- Tokens are never printed: list and current show the first characters and
-- an ellipsis. They can come from a file or stdin instead of the command
-- line, so they stay out of shell history and `ps`.
local errors = require("prisn.error")
local output = require("prisn.output")

local function contexts() return require("prisn.contexts") end

local function home_path() return require("prisn.home").path() end

-- What a context looks like on screen and in -o json/yaml: never the token.
local function shown(name, server, namespace, token)
  return { name = name, server = server, namespace = namespace or "default",
    token = contexts().mask(token) or output.null }
end

-- Context names for completion; nothing when the store cannot be read.
local function complete_names()
  local ok, list = pcall(function() return contexts().list(home_path()) end)
  if not ok then return {} end
  local names = {}
  for _, c in ipairs(list) do names[#names + 1] = c.name end
  return names
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- The token from --token, --token - (stdin) or --token-file.
local function read_token(flags)
  if flags.token and flags.token_file then
    errors.usage("--token and --token-file are both given", "give the token one way")
  end
  if flags.token_file then
    local f, err = io.open(flags.token_file, "rb")
    if not f then
      errors.raise("ENOENT", "cannot read the token file: " .. tostring(err), { hint = "check --token-file" })
    end
    local text = f:read("a")
    f:close()
    return trim(text)
  end
  if flags.token == "-" then
    local text
    if require("prisn.core.sys").isatty(0) then
      io.stderr:write("Token: ")
      io.stderr:flush()
      text = io.stdin:read("l")
    else
      text = io.stdin:read("a")
    end
    return trim(text or "")
  end
  if not flags.token then
    errors.usage("a context needs a token: --token TOKEN, --token - (stdin) or --token-file FILE",
      "create one on the server with 'prisn token create NAME --role edit --namespace NS'")
  end
  return flags.token
end

-- The fingerprint --ca FILE stands for: that of the CA certificate in it.
local function ca_fingerprint(flags)
  if not flags.ca then return flags.fingerprint end
  if flags.fingerprint then errors.usage("--ca and --fingerprint are both given", "pin the CA one way") end
  local text = require("prisn.fs").read_file(flags.ca)
  if not text then
    errors.raise("ENOENT", "cannot read the CA file " .. flags.ca, { hint = "check --ca" })
  end
  local info = require("prisn.net.tls").cert_info(text)
  if not info then
    errors.raise("invalid", flags.ca .. " holds no PEM certificate",
      { hint = "--ca takes the server's $PRISN_HOME/ca.crt", status = 2 })
  end
  return info.fingerprint
end

-- Connects once to an https server and checks it proves the pinned CA: a
-- refusal raises (nothing is saved); a server that cannot be reached is
-- only noted, so a context can be prepared before its server runs.
local function check_pin(ctx, server, fingerprint)
  local res, err, code = require("prisn.async").main(function()
    return require("prisn.http.client").request(server, "GET", "/health",
      { tls = { fingerprint = fingerprint }, timeout_ms = 5000 })
  end)
  local hints = require("prisn.client").TLS_HINTS
  if not res and hints[code] then
    errors.raise("tls_" .. code:lower():gsub("^e", ""), string.format("%s: %s", server,
      tostring(err):gsub("^E%u+: ", "")), { hint = hints[code] })
  end
  if not res and not ctx.globals.quiet then
    io.stderr:write(string.format("Note: could not reach %s to check its certificate (%s); saved anyway.\n",
      server, tostring(err)))
  end
end

local function add(ctx)
  local flags = ctx.flags
  if not flags.server then
    errors.usage("a context needs a server: --server https://HOST:PORT",
      "the address 'prisn server start' printed on the server, e.g. https://10.0.0.5:7433")
  end
  local c = contexts()
  local home = require("prisn.home").ensure()
  -- Checked before the token is read, so a typo does not cost a paste.
  c.check_name(ctx.args.NAME)
  local server, in_address = c.check_server(flags.server)
  local fingerprint = ca_fingerprint(flags)
  if server:match("^https://") then
    if in_address and fingerprint and in_address ~= require("prisn.net.tls").normalize_fingerprint(fingerprint) then
      errors.usage("the address's #sha256= and the fingerprint given differ", "give the fingerprint once")
    end
    fingerprint = c.pin_for(home, server, in_address or fingerprint)
    check_pin(ctx, server, fingerprint)
  end
  local entry, replaced = c.add(home, ctx.args.NAME, {
    server = server, token = read_token(flags), namespace = flags.namespace, fingerprint = fingerprint })
  local view = shown(ctx.args.NAME, entry.server, entry.namespace, entry.token)
  if ctx.globals.output ~= "text" then
    view.replaced = replaced
    ctx.out:emit(view)
  elseif not ctx.globals.quiet then
    io.stdout:write(string.format("Context '%s' %s (%s, namespace %s).\n", view.name,
      replaced and "updated" or "added", view.server, view.namespace))
    if c.current(home_path()) ~= view.name then
      io.stdout:write(string.format("Switch to it with 'prisn context use %s', or pass --context %s.\n",
        view.name, view.name))
    end
  end
  return 0
end

-- A note when the environment overrides the stored current context.
local function warn_overridden(ctx)
  if ctx.globals.quiet then return end
  for _, var in ipairs({ "PRISN_CONTEXT", "PRISN_SERVER" }) do
    local value = os.getenv(var)
    if value and value ~= "" then
      io.stderr:write(string.format("Note: %s is set; it takes precedence over the current context.\n", var))
      return
    end
  end
end

local function use(ctx)
  local c = contexts()
  local home = home_path()
  c.use(home, ctx.args.NAME)
  local view
  for _, entry in ipairs(c.list(home)) do
    if entry.name == ctx.args.NAME then view = shown(entry.name, entry.server, entry.namespace, entry.token) end
  end
  if ctx.globals.output ~= "text" then
    ctx.out:emit(view)
  elseif not ctx.globals.quiet then
    io.stdout:write(string.format("Switched to context '%s' (%s, namespace %s).\n",
      view.name, view.server, view.namespace))
  end
  warn_overridden(ctx)
  return 0
end

local function list(ctx)
  local c = contexts()
  local home = home_path()
  local rows = {}
  -- The marker follows the context in effect (--context, PRISN_CONTEXT,
  -- PRISN_SERVER, then contexts.json); a broken environment must not stop
  -- a listing, so it then falls back to the stored current context.
  local ok, effective = pcall(c.resolve, home, { context = ctx.globals.context })
  for _, entry in ipairs(c.list(home)) do
    local row = shown(entry.name, entry.server, entry.namespace, entry.token)
    if ok then row.current = effective.name == entry.name else row.current = entry.current end
    rows[#rows + 1] = row
  end
  if ok and effective.name == c.ENV then
    local row = shown(c.ENV, effective.address, effective.namespace, effective.token)
    row.current = true
    rows[#rows + 1] = row
  end
  if ctx.globals.output ~= "text" then
    ctx.out:emit(output.array(rows))
    return 0
  end
  ctx.out:emit(rows, { columns = {
    { key = "current", header = "CURRENT", format = function(v) return v and "*" or "" end },
    { key = "name", header = "NAME" }, { key = "server", header = "SERVER" },
    { key = "namespace", header = "NAMESPACE" }, { key = "token", header = "TOKEN" },
  } })
  return 0
end

local function current(ctx)
  local client = require("prisn.client")
  local resolved = client.context(ctx)
  if ctx.globals.output ~= "text" then
    local view = shown(resolved.name, resolved.address, client.namespace(ctx), resolved.token)
    view.source = resolved.source
    ctx.out:emit(view)
  else
    io.stdout:write(resolved.name, "\n")
  end
  return 0
end

local function delete(ctx)
  local c = contexts()
  local was_current = c.delete(home_path(), ctx.args.NAME)
  if ctx.globals.output ~= "text" then
    ctx.out:emit({ name = ctx.args.NAME, deleted = true, current = c.current(home_path()) })
  elseif not ctx.globals.quiet then
    io.stdout:write(string.format("Context '%s' deleted.%s\n", ctx.args.NAME,
      was_current and " The current context is 'local' again." or ""))
  end
  return 0
end

local name_arg = { name = "NAME", summary = "The context's name", required = true, complete = complete_names }

return {
  {
    name = "context",
    summary = "Choose which prisn server (and token, and namespace) the CLI talks to",
    subcommands = {
      {
        name = "add",
        summary = "Save a server, a token and a default namespace under a name",
        description = "Saves a context in $PRISN_HOME/contexts.json (mode 0600: it holds the\n"
          .. "token). --server is the address the server listens on: https://HOST:PORT\n"
          .. "(http:// for a server started with --insecure-http), or unix:/PATH for a\n"
          .. "socket. An https context pins the server's CA by its SHA-256 fingerprint:\n"
          .. "https://HOST:PORT#sha256=HEX, --fingerprint HEX or --ca FILE (the server's\n"
          .. "ca.crt); without one, this machine's own $PRISN_HOME/ca.crt is pinned, and\n"
          .. "with none the context is refused. The server is asked once: a certificate\n"
          .. "that does not match is refused and nothing is saved.\n\n"
          .. "The token comes from --token, from stdin with --token -, or from\n"
          .. "--token-file, so it need not appear in shell history. Adding a name that\n"
          .. "exists replaces it. 'local' (this machine's server) is built in and 'env'\n"
          .. "is reserved. Adding does not switch: see 'context use'.",
        args = { { name = "NAME", summary = "A name for the context, e.g. prod", required = true } },
        flags = {
          { name = "server", type = "string", placeholder = "URL",
            summary = "The server's address: https://HOST:PORT[#sha256=HEX] or unix:/PATH (required)" },
          { name = "fingerprint", type = "string", placeholder = "HEX",
            summary = "The SHA-256 fingerprint of the server's CA ('prisn server status' on the server)" },
          { name = "ca", type = "string", placeholder = "FILE", complete = "file",
            summary = "Pin the CA certificate in FILE (the server's $PRISN_HOME/ca.crt)" },
          { name = "token", type = "string", placeholder = "TOKEN",
            summary = "The API token; '-' reads it from stdin" },
          { name = "token-file", type = "string", placeholder = "FILE", complete = "file",
            summary = "Read the API token from this file" },
          { name = "namespace", short = "n", type = "string", placeholder = "NS",
            summary = "The namespace commands act in with this context (default: default)" },
        },
        examples = {
          { "prisn context add prod --server https://10.0.0.5:7433#sha256=HEX --token-file ~/prod.token "
            .. "--namespace web", "A remote server, its CA pinned, its token read from a file, in namespace web" },
          { "prisn context add prod --server https://10.0.0.5:7433 --ca prod-ca.crt --token - < prod.token",
            "The CA from a copy of the server's ca.crt, the token from stdin" },
        },
        handler = add,
      },
      {
        name = "use",
        aliases = { "switch" },
        summary = "Make a context the current one",
        description = "Every later command talks to this context's server, unless --context,\n"
          .. "PRISN_CONTEXT or PRISN_SERVER says otherwise. 'prisn context use local'\n"
          .. "goes back to this machine's server.",
        args = { name_arg },
        examples = { { "prisn context use prod", "Talk to prod from now on" },
          { "prisn context use local", "Back to this machine's server" } },
        handler = use,
      },
      {
        name = "list",
        aliases = { "ls" },
        summary = "List the contexts (tokens masked)",
        description = "Shows every context: '*' marks the one in effect, then its name, server,\n"
          .. "namespace and the first characters of its token (never the whole token).\n"
          .. "'local' is always there.",
        examples = { { "prisn context list", "Which servers can the CLI talk to?" },
          { "prisn context list -o json", "As JSON, for scripts" } },
        handler = list,
      },
      {
        name = "current",
        summary = "Print the name of the context in effect",
        description = "Prints the context commands use now: --context, else PRISN_CONTEXT, else\n"
          .. "'env' when PRISN_SERVER and PRISN_TOKEN are set, else the current context,\n"
          .. "else 'local'. With -o json: its name, server, namespace and where the choice\n"
          .. "came from (source: flag, PRISN_CONTEXT, PRISN_SERVER, current or default).",
        examples = { { "prisn context current", "Which server am I talking to?" },
          { "prisn context current -o json", "The context in effect, with its server, as JSON" } },
        handler = current,
      },
      {
        name = "delete",
        aliases = { "rm" },
        summary = "Delete a context",
        description = "Forgets the context and its token. Deleting the current context makes\n"
          .. "'local' current again. 'local' cannot be deleted. The token stays valid on\n"
          .. "the server: revoke it there with 'prisn token revoke'.",
        args = { name_arg },
        examples = { { "prisn context delete staging", "Forget the staging context" } },
        handler = delete,
      },
    },
  },
}
