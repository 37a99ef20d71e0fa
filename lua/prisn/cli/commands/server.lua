-- `prisn server start|stop|status`, `prisn cluster init` and `prisn status`.
local output = require("prisn.output")
local errors = require("prisn.error")

-- --min-isolation, checked: 0..3, or nil when not given.
local function min_isolation_of(ctx)
  local n = ctx.flags.min_isolation
  if n == nil then return nil end
  if n < 0 or n > 3 then
    errors.usage("--min-isolation must be 0, 1, 2 or 3, got " .. n,
      "0 none, 1 process (the default), 2 filesystem, 3 network")
  end
  return n
end

-- --dns and --dns-forward, checked: the address (or "off", or nil for the
-- default) and true, false or nil.
local function dns_of(ctx)
  local dns = ctx.flags.dns
  if dns and dns ~= "off" and not require("prisn.server.dns").parse_address(dns) then
    errors.usage("--dns expects HOST:PORT or off, got '" .. dns .. "'", "e.g. --dns 127.0.0.1:7453 or --dns off")
  end
  local forward = ctx.flags.dns_forward
  if forward ~= nil then forward = forward == "on" end
  return dns, forward
end

-- Whether the running server (its server.json `info`) serves the address
-- of --listen `listen`: the same host and port.
local function serves(info, listen)
  local host, port = require("prisn.server").parse_listen(listen)
  if not host then return false end
  local url_host, url_port = tostring(info.address):match("^%a+://%[?([^%]]*)%]?:(%d+)$")
  return url_host == host and tonumber(url_port) == port
end

-- What start, init and stop say: `doc` for -o json/yaml, `text` (lines)
-- for a person unless -q. Nothing of a start is left as text when a script
-- asked for a document.
local function report(ctx, doc, text)
  if ctx.globals.output ~= "text" then
    ctx.out:emit(doc)
  elseif not ctx.globals.quiet then
    io.stdout:write(text)
  end
end

-- --ingress and --ingress-tls, checked (usage errors before a start).
local function ingress_of(ctx)
  for _, flag in ipairs({ "ingress", "ingress_tls" }) do
    local v = ctx.flags[flag]
    if v and not require("prisn.server.ingress").parse_address(v) then
      local name = "--" .. flag:gsub("_", "-")
      errors.usage(string.format("%s expects [HOST:]PORT, got '%s'", name, v),
        "e.g. " .. name .. (flag == "ingress" and " :80" or " :443") .. " or " .. name .. " 127.0.0.1:8080")
    end
  end
  return { ingress = ctx.flags.ingress, ingress_tls = ctx.flags.ingress_tls }
end

local function start(ctx, opts)
  local server = require("prisn.server")
  local min_isolation = min_isolation_of(ctx)
  local dns, dns_forward = dns_of(ctx)
  local ingress = ingress_of(ctx)
  local home = require("prisn.home").ensure()
  local running = server.running(home)
  if running then
    if opts.init then
      errors.raise("already_running", "this machine already runs a prisn server (pid "
        .. math.tointeger(running.pid) .. ")", { hint = "'prisn status' shows it" })
    end
    -- The same request again is done already; another address is not what
    -- the caller asked for, and a script must hear it.
    if ctx.flags.listen and not serves(running, ctx.flags.listen) then
      errors.raise("already_running", string.format("a prisn server already runs for %s (pid %d) on %s, not on %s",
        home, math.tointeger(running.pid), running.address, ctx.flags.listen),
        { hint = "stop it first ('prisn server stop') to serve on another address, "
          .. "or start a second server with another PRISN_HOME" })
    end
    report(ctx, { running = true, started = false, pid = math.tointeger(running.pid), address = running.address,
      home = home }, string.format("prisn server already running (pid %d) on %s\n",
      math.tointeger(running.pid), running.address))
    return 0
  end
  local token = server.setup(home)
  if opts.init and not token then
    errors.raise("already_initialized", "a cluster was already initialized in " .. home,
      { hint = "start it with 'prisn server start'; the admin token is in " .. home .. "/admin.token" })
  end
  if ctx.flags.foreground and not opts.init then
    -- In the foreground stderr is often a journal: the token stays in its file.
    if token then
      io.stderr:write("The first admin token was saved to ", home, "/admin.token (mode 0600).\n")
    end
    return server.run({ home = home, listen = ctx.flags.listen, foreground = not ctx.flags.daemonized,
      min_isolation = min_isolation, dns = dns, dns_forward = dns_forward, insecure_http = ctx.flags.insecure_http,
      ingress = ingress.ingress, ingress_tls = ingress.ingress_tls })
  end
  local info = server.start_background(home, { listen = ctx.flags.listen, min_isolation = min_isolation, dns = dns,
    dns_forward = dns_forward, insecure_http = ctx.flags.insecure_http, ingress = ingress.ingress,
    ingress_tls = ingress.ingress_tls })
  if ctx.flags.insecure_http then
    io.stderr:write("Warning: the TCP API speaks plain HTTP (--insecure-http): tokens and secrets cross the "
      .. "network unencrypted\n")
  end
  local doc = { running = true, started = true, pid = math.tointeger(info.pid), address = info.address,
    socket = info.socket, dns = info.dns or output.null, home = home, admin_token = token or output.null,
    ca_fingerprint = info.ca_fingerprint or output.null, ca_file = info.ca_file or output.null }
  if opts.init then
    local node = require("luv").os_gethostname()
    doc.node = node
    local text = "Cluster initialized. Admin token: " .. token .. "\n"
      .. string.format("Cluster is ready to accept deployments (single node: %s, API %s).\n", node, info.address)
    if info.ca_fingerprint then
      text = text .. "CA fingerprint: sha256:" .. info.ca_fingerprint .. " (the CA is " .. info.ca_file .. ")\n"
        .. "From another machine: prisn context add NAME --server " .. info.address .. "#sha256="
        .. info.ca_fingerprint .. " --token-file FILE\n"
    end
    report(ctx, doc, text)
    return 0
  end
  local text = string.format("prisn server started (pid %d), listening on %s and unix:%s\n",
    math.tointeger(info.pid), info.address, info.socket)
  if token then
    text = "Admin token: " .. token .. "\n(saved to " .. home .. "/admin.token; shown only once)\n" .. text
  end
  report(ctx, doc, text)
  return 0
end

local function stop(ctx)
  local server = require("prisn.server")
  local home = require("prisn.home").path()
  local pid = server.stop(home, math.floor((ctx.flags.timeout or 30) * 1000))
  if not pid then
    report(ctx, { stopped = false, running = false }, "no prisn server is running\n")
    return 0
  end
  report(ctx, { stopped = true, running = false, pid = pid }, string.format("prisn server stopped (pid %d)\n", pid))
  return 0
end

-- The ingress listeners of server.json as shown: "http 0.0.0.0:80, https
-- 0.0.0.0:443", or "off".
local function ingress_text(addresses)
  if type(addresses) ~= "table" then return "off" end
  local parts = {}
  for _, scheme in ipairs({ "http", "https" }) do
    if addresses[scheme] then parts[#parts + 1] = scheme .. " " .. addresses[scheme] end
  end
  return #parts > 0 and table.concat(parts, ", ") or "off"
end

-- Waits until the server of `home` says (server.json) how the upgrade
-- `token` went: returns its server.json once a program that took the token
-- holds the lock in process `pid`. Raises when the exec failed (the old
-- program serves on), when the process ended (what the new program said at
-- its end: server.log from byte `log_from`), or at the deadline.
local function await_upgrade(home, token, pid, log_from, deadline)
  local uv = require("luv")
  local server = require("prisn.server")
  local log_path = home .. "/server.log"
  while true do
    local info = server.info(home)
    local done = info and type(info.upgrade) == "table" and info.upgrade.token == token and info.upgrade
    if done and done.error then
      errors.raise("upgrade_failed", "the server could not run " .. tostring(done.binary) .. ": " .. done.error,
        { hint = "it serves on with its old binary (pid " .. pid .. "); see " .. log_path })
    end
    if done and math.tointeger(info.pid) == pid and server.running(home) then return info end
    if not require("prisn.procfs").alive(pid) then
      local message, hint = server.start_failure(log_path, log_from)
      errors.raise("server_failed", "the new binary's server exited at start: " .. message,
        { hint = (hint and hint .. "; " or "") .. "the old binary is not running either: start the server "
          .. "again ('prisn server start'); its log is " .. log_path })
    end
    if uv.hrtime() > deadline then
      errors.raise("timeout", "the server (pid " .. pid .. ") did not answer after the upgrade",
        { hint = "see " .. log_path })
    end
    uv.sleep(10)
  end
end

-- `prisn server upgrade`: the server hands the data plane over to the new
-- binary and execs it in its own process (prisn.server.api.upgrade); this
-- waits until the new program serves and says what changed.
local function upgrade(ctx)
  local uv = require("luv")
  local server = require("prisn.server")
  local home = require("prisn.home").path()
  local info = server.running(home)
  if not info then
    errors.raise("not_running", "no prisn server is running for " .. home, { hint = "'prisn server start' starts one" })
  end
  local binary = ctx.flags.binary or uv.exepath()
  binary = uv.fs_realpath(binary) or binary
  if not uv.fs_access(binary, "X") then
    errors.usage("--binary " .. binary .. " is not an executable file", "e.g. --binary /usr/local/bin/prisn")
  end
  local st = uv.fs_stat(home .. "/server.log")
  local log_from = st and st.size or 0
  local deadline = uv.hrtime() + math.floor((ctx.flags.timeout or 30) * 1e9)
  local c = require("prisn.client").connect({ globals = { context = "local" } })
  local answer = c:request("POST", "/api/v1/server/upgrade", { binary = binary })
  local pid = math.tointeger(answer.server_pid) or math.tointeger(info.pid)
  local new = await_upgrade(home, answer.token, pid, log_from, deadline)
  local old_version, version = answer.version or info.version, new.version
  report(ctx, { upgraded = true, binary = binary, pid = pid, old_version = old_version, version = version,
    dataplane_pid = math.tointeger(answer.dataplane_pid), address = new.address },
    string.format("prisn server upgraded to %s in place: prisn %s -> %s, pid %d kept; data plane pid %d; "
      .. "instances kept\n", binary, tostring(old_version), tostring(version), pid,
      math.tointeger(answer.dataplane_pid)))
  return 0
end

local function server_status(ctx)
  local server = require("prisn.server")
  local home = require("prisn.home").path()
  local info = server.running(home)
  if not info then
    if ctx.globals.output ~= "text" then
      ctx.out:emit({ running = false, home = home })
    else
      io.stdout:write("prisn server: not running (start it with 'prisn server start')\n")
    end
    return 3
  end
  -- The local server, whatever context is current.
  local c = require("prisn.client").connect({ globals = { context = "local" } })
  local status = c:request("GET", "/api/v1/status")
  ctx.out:emit({
    running = true, pid = math.tointeger(info.pid), version = status.version, health = status.health,
    uptime = require("prisn.units").format_duration(status.uptime_seconds),
    address = info.address, socket = info.socket, dns = info.dns or "off", home = home,
    ca_fingerprint = info.ca_fingerprint and ("sha256:" .. info.ca_fingerprint) or "none (plain HTTP)",
    ca_file = info.ca_file or output.null, ingress = ingress_text(info.ingress),
  }, { fields = { "running", "health", "pid", "version", "uptime", "address", "socket", "dns", "ingress",
    "ca_fingerprint", "ca_file", "home" } })
  return 0
end

-- The running services, one a line: "web 3/3 ready, port 8080", the
-- namespace named when it is not the one asked about, and the state when
-- it is not ready.
local function service_lines(services, ns)
  local lines = {}
  for _, svc in ipairs(services or {}) do
    local port = math.tointeger(svc.port)
    lines[#lines + 1] = string.format("%s%s %d/%d ready%s%s", svc.namespace ~= ns and (svc.namespace .. "/") or "",
      svc.name, math.tointeger(svc.ready) or 0, math.tointeger(svc.replicas) or 0, port and (", port " .. port) or "",
      svc.state == "crash_loop" and ", crash-looping" or "")
  end
  return #lines > 0 and table.concat(lines, "\n") or "none"
end

local function overall_status(ctx)
  local c = require("prisn.client").connect(ctx)
  local status = c:request("GET", "/api/v1/status")
  if ctx.globals.output ~= "text" then
    ctx.out:emit(status)
    return status.health == "ok" and 0 or 1
  end
  local jobs = status.jobs or {}
  ctx.out:emit({
    health = status.health,
    version = status.version,
    uptime = require("prisn.units").format_duration(status.uptime_seconds),
    addresses = status.addresses,
    jobs = string.format("%d running, %d queued, %d succeeded, %d failed",
      jobs.running or 0, (jobs.queued or 0) + (jobs.pending or 0), jobs.succeeded or 0, jobs.failed or 0),
    deployments = (function()
      local d = status.deployments or {}
      local parts = {}
      for state, n in pairs(d.instances or {}) do parts[#parts + 1] = string.format("%d %s", n, state) end
      table.sort(parts)
      return string.format("%d (instances: %s)", math.tointeger(d.count or 0) or 0,
        #parts > 0 and table.concat(parts, ", ") or "none")
    end)(),
    services = service_lines(status.services, require("prisn.client").namespace(ctx)),
    cronjobs = math.tointeger(status.cronjobs or 0),
    problems = #status.problems > 0 and table.concat(status.problems, "\n") or "none",
  }, { fields = { "health", "version", "uptime", "addresses", "jobs", "deployments", "services", "cronjobs",
    "problems" } })
  return status.health == "ok" and 0 or 1
end

local listen_flag = { name = "listen", type = "string", placeholder = "ADDR",
  summary = "Also serve the API on HOST:PORT (default 127.0.0.1:7433, or the next free port)" }
local dns_flag = { name = "dns", type = "string", placeholder = "ADDR",
  summary = "Answer DNS for prisn.local on HOST:PORT (udp and tcp), or 'off' (default 127.0.0.153:53 "
    .. "as root, else 127.0.0.1:7453)" }
local dns_forward_flag = { name = "dns-forward", type = "string", values = { "on", "off" }, placeholder = "on|off",
  summary = "Pass names outside prisn.local to the host's resolvers (default: on for a loopback --dns)" }
-- Off by default: an ingress on :80/:443 needs root, and a listener open to
-- the network should be asked for. A server run as root (systemd) is where
-- `--ingress :80 --ingress-tls :443` belongs.
local ingress_flag = { name = "ingress", type = "string", placeholder = "[HOST:]PORT",
  summary = "Route HTTP by host name (prisn deploy --host) on [HOST:]PORT; a port alone: every interface (off)" }
local ingress_tls_flag = { name = "ingress-tls", type = "string", placeholder = "[HOST:]PORT",
  summary = "The same over TLS, with a certificate per host name (SNI) (off)" }
local insecure_http_flag = { name = "insecure-http", type = "bool",
  summary = "Serve plain HTTP on TCP instead of HTTPS (warned about; only behind a TLS proxy or on a "
    .. "trusted network)" }
local min_isolation_flag = { name = "min-isolation", type = "int", placeholder = "N",
  summary = "The lowest isolation level of a workload asked for by a token that is not a cluster-wide "
    .. "admin (default 1; such a workload that names no level gets it)" }

return {
  {
    name = "server",
    summary = "Start, stop or check the prisn server (the control plane)",
    subcommands = {
      {
        name = "start",
        summary = "Start the server in the background (or --foreground)",
        description = "Starts the control plane: the REST API on the unix socket\n"
          .. "$PRISN_HOME/prisn.sock and on TCP (127.0.0.1:7433, or the next free port;\n"
          .. "--listen to choose), recorded in $PRISN_HOME/server.json. On the first start\n"
          .. "it creates the state database and the first admin token, printed once and\n"
          .. "saved 0600 as $PRISN_HOME/admin.token for the local CLI. No config file.\n"
          .. "--foreground keeps it attached (for systemd and containers) and logs to\n"
          .. "stderr as well as $PRISN_HOME/server.log.\n\n"
          .. "TCP speaks HTTPS: the first start makes a CA and a server certificate in\n"
          .. "$PRISN_HOME/tls/ (docs/SERVER.md) and copies the CA to $PRISN_HOME/ca.crt,\n"
          .. "which clients trust ('curl --cacert') or pin ('prisn server status' shows\n"
          .. "its SHA-256 fingerprint). The unix socket stays plain HTTP.\n\n"
          .. "--ingress [HOST:]PORT (and --ingress-tls) routes HTTP by host name to the\n"
          .. "deployments that have one ('prisn deploy --host', docs/NETWORKING.md); both\n"
          .. "are off by default (ports 80 and 443 need root).\n\n"
          .. "When a server already runs for $PRISN_HOME it says so and exits 0;\n"
          .. "with a --listen address that server does not serve it exits 1. A\n"
          .. "server that fails at start shows its Error: and Hint: lines.\n\n"
          .. "Every workload a token asks for is admitted first (docs/SECURITY.md): a\n"
          .. "token that is not a cluster-wide admin gets isolation --min-isolation or\n"
          .. "above, never root or the server's own user, never a path on the server.",
        flags = {
          { name = "foreground", type = "bool", summary = "Run in this process; log to stderr too" },
          { name = "daemonized", type = "bool", hidden = true,
            summary = "Set by 'prisn server start' for the background server: log to server.log only" },
          listen_flag,
          min_isolation_flag,
          dns_flag,
          dns_forward_flag,
          ingress_flag,
          ingress_tls_flag,
          insecure_http_flag,
        },
        examples = {
          { "prisn server start", "Start the server in the background" },
          { "prisn server start --insecure-http --listen 127.0.0.1:8080",
            "Plain HTTP on TCP, e.g. behind a TLS-terminating proxy (warned about)" },
          { "prisn server start --dns 127.0.0.1:5300", "Answer DNS on port 5300 ('dig @127.0.0.1 -p 5300 "
            .. "web.default.prisn.local')" },
          { "prisn server start --ingress :80 --ingress-tls :443", "As root: serve deployments by host name "
            .. "(prisn deploy app.py --host api.example.com)" },
          { "prisn server start --min-isolation 2", "Other tokens' workloads get at least their own read-only root" },
          { "prisn server start --foreground --listen 0.0.0.0:7433", "Under systemd, reachable from the network" },
        },
        handler = function(ctx) return start(ctx, {}) end,
      },
      {
        name = "stop",
        summary = "Stop the server gracefully",
        description = "Sends SIGTERM to the server and waits until it has stopped: no new\n"
          .. "connections, requests in flight answered, state closed, the process\n"
          .. "gone. Exits 0 when no server was running, 1 when it did not stop in time.",
        flags = {
          { name = "timeout", type = "duration", default = "30s", placeholder = "DURATION",
            summary = "How long to wait for the server to stop" },
        },
        examples = { { "prisn server stop", "Stop the local server" } },
        handler = stop,
      },
      {
        name = "upgrade",
        summary = "Replace the server with another binary in place, keeping every port open",
        description = "Replaces the running server with --binary (default: this prisn) without\n"
          .. "a refused connection on any service port or the DNS: the data plane hands\n"
          .. "its listening sockets to a data plane of the new binary, which accepts\n"
          .. "before the old one stops; then the server stops taking API connections,\n"
          .. "lets those in flight finish (up to 1 s) and execs the new binary in its\n"
          .. "own process: the same pid, command line and options, so a --foreground\n"
          .. "server, a background one and one under systemd ('systemctl reload\n"
          .. "prisn' runs this) all go on. It re-adopts the instances and takes over\n"
          .. "the data plane. Waits until the new binary serves and shows the old and\n"
          .. "new versions. A binary that cannot take over (the data plane's, or the\n"
          .. "exec, fails) leaves the old server serving: exit 1 with the reason.\n"
          .. "Needs the cluster-wide admin token (the local CLI has it).",
        flags = {
          { name = "binary", type = "string", placeholder = "PATH", summary = "The new prisn binary" },
          { name = "timeout", type = "duration", default = "30s", placeholder = "DURATION",
            summary = "How long to wait for the new binary to serve" },
        },
        examples = { { "prisn server upgrade --binary /usr/local/bin/prisn.new", "Run the new build, ports kept" },
          { "prisn server upgrade", "After installing a new build over this prisn: run it, ports kept" },
          { "prisn server upgrade -o json", "Old and new versions as JSON" } },
        handler = upgrade,
      },
      {
        name = "dataplane",
        hidden = true,
        summary = "Run the data plane (the server starts it; docs/SERVER.md)",
        flags = {
          { name = "handover", type = "string", placeholder = "FILE", hidden = true,
            summary = "Take over the listening sockets of the data plane being replaced" },
        },
        handler = function(ctx)
          return require("prisn.dataplane").run({ home = require("prisn.home").path(), handover = ctx.flags.handover })
        end,
      },
      {
        name = "status",
        summary = "Say whether the server runs, and where",
        description = "Shows the server's pid, version, uptime, addresses and the SHA-256\n"
          .. "fingerprint of its CA (what remote clients pin). Exits 0 when it runs\n"
          .. "and answers, 3 when no server is running.",
        examples = { { "prisn server status", "Is the server up?" },
          { "prisn server status -o json", "As JSON, for scripts" } },
        handler = server_status,
      },
    },
  },
  {
    name = "cluster",
    summary = "Set up a prisn cluster (a single node for now)",
    subcommands = {
      {
        name = "init",
        summary = "Initialize this machine as a cluster and start its server",
        description = "On a fresh machine: creates $PRISN_HOME, the state database, the master\n"
          .. "keys and the first admin token, starts the server in the background and\n"
          .. "prints the admin token once, with the fingerprint of the API's CA and the\n"
          .. "'prisn context add' line for other machines. Refuses to run twice.",
        flags = { listen_flag, min_isolation_flag, dns_flag, dns_forward_flag, insecure_http_flag, ingress_flag,
          ingress_tls_flag },
        examples = { { "prisn cluster init", "Make this machine a (single-node) cluster" } },
        handler = function(ctx) return start(ctx, { init = true }) end,
      },
    },
  },
  {
    name = "status",
    summary = "Show the server's health, job counts, running services and what needs attention",
    description = "Asks the server for its health, version, uptime, addresses, counts of\n"
      .. "jobs by state, the running services (ready/wanted instances, port) and\n"
      .. "what needs attention: deployments short of ready instances or\n"
      .. "crash-looping, cron jobs whose last run failed, jobs queued for long\n"
      .. "(PRISN_STUCK_AFTER on the server, 10m) or running past their timeout,\n"
      .. "each with the command that looks further. A token sees the services\n"
      .. "and problems of its own namespaces only. Exits 1 when the server itself\n"
      .. "is unhealthy (its state cannot be written); workload problems are listed\n"
      .. "without changing the exit status.",
    examples = { { "prisn status", "How is the server doing?" }, { "prisn status -o json", "As JSON" } },
    handler = overall_status,
  },
}
