-- prisn.server: the control plane process.
--
-- One process, one libuv loop. `setup` makes a fresh PRISN_HOME usable
-- (state.db, token.key, the first admin token); `run` serves the API on the
-- unix socket $PRISN_HOME/prisn.sock (always, plain HTTP) and on TCP over
-- HTTPS (127.0.0.1 at the default port or the next free one, or --listen;
-- certificates by prisn.server.tls; --insecure-http for plain), writes
-- server.json, and runs until SIGTERM/SIGINT, when it stops gracefully: no new connections,
-- running requests finished, state closed, server.json and the socket
-- removed. Only one server runs per PRISN_HOME (an flock on server.lock).
local uv = require("luv")
local cjson = require("cjson")
local sys = require("prisn.core.sys")
local clock = require("prisn.clock")
local errors = require("prisn.error")
local fs = require("prisn.fs")
local procfs = require("prisn.procfs")
local store = require("prisn.store")
local tokens = require("prisn.store.tokens")
local server_http = require("prisn.server.http")
local server_router = require("prisn.server.router")
local events = require("prisn.store.events")
local metrics = require("prisn.metrics")
local jobs = require("prisn.store.jobs")
local store_writer = require("prisn.store.writer")
local keyring = require("prisn.secrets.keyring")
local server_jobs = require("prisn.server.jobs")
local cron = require("prisn.server.cron")
local supervisor = require("prisn.server.supervisor")
local hooks = require("prisn.hooks")
local server_log = require("prisn.server.log")
local group = require("prisn.exec.group")
local admission = require("prisn.server.admission")
local homes = require("prisn.home")
local checkpointer = require("prisn.store.checkpointer")
local proc = require("prisn.core.proc")
local server_dns = require("prisn.server.dns")
local server_ingress = require("prisn.server.ingress")
local server_tls = require("prisn.server.tls")
local tls = require("prisn.net.tls")
local server_dataplane = require("prisn.server.dataplane")
local server_upgrade = require("prisn.server.upgrade")

local M = {}

M.DEFAULT_PORT = 7433
M.PORT_ATTEMPTS = 20
M.ADMIN_TOKEN_FILE = "admin.token"
M.INFO_FILE = "server.json"
M.SOCKET_FILE = "prisn.sock"
M.LOCK_FILE = "server.lock"

-- The API areas whose routes the server serves, in lua/prisn/server/api/.
M.API_MODULES = { "system", "metrics", "tokens", "jobs", "bundles", "events", "secrets", "cron", "deploy_logs", "logs",
  "deployments", "upgrade" }

--- Makes `home` ready for a server: state database, token key, and the
-- first admin token when there is none. Returns the new admin token string
-- (to print once) or nil when one existed already.
function M.setup(home)
  local db = store.open(home)
  local key = tokens.load_key(home)
  local created
  if not tokens.has_admin(db) then
    local _, token = tokens.create(db, key, { name = "admin", role = "admin", namespaces = { "*" },
      created_by = "system" })
    local ok, err, code = fs.write_atomic(home .. "/" .. M.ADMIN_TOKEN_FILE, token .. "\n", tonumber("600", 8))
    if not ok then
      db:close()
      errors.raise(code or "EIO", "cannot write the admin token: " .. tostring(err))
    end
    created = token
  end
  db:close()
  return created
end

--- What server.json says, or nil when there is no server file.
function M.info(home)
  local text = fs.read_file(home .. "/" .. M.INFO_FILE)
  if not text then return nil end
  local ok, info = pcall(cjson.decode, text)
  return ok and type(info) == "table" and info or nil
end

--- The server.json of the server running for `home`, or nil. A server
-- holds an flock on server.lock for its whole life, so the lock (not the pid,
-- which may be a zombie or reused) says whether one runs.
function M.running(home)
  if not uv.fs_stat(home .. "/" .. M.LOCK_FILE) then return nil end
  local fd = sys.lock(home .. "/" .. M.LOCK_FILE)
  if fd then
    sys.unlock(fd)
    return nil
  end
  if fd == nil then return nil end
  return M.info(home) or { pid = 0, address = "(starting)" }
end

--- "HOST:PORT" or "PORT" (--listen) as the host and the port; nil when it
-- is neither.
local function parse_listen(addr)
  local host, port = addr:match("^%[?([^%]]*)%]?:(%d+)$")
  if not host then
    port = addr:match("^(%d+)$")
    host = "127.0.0.1"
  end
  if not port then return nil end
  if host == "" then host = "0.0.0.0" end
  return host, tonumber(port)
end
M.parse_listen = parse_listen

-- The HTTP limits: defaults, each overridable by an environment variable
-- (PRISN_HTTP_MAX_BODY_BYTES, PRISN_HTTP_REQUEST_TIMEOUT_MS, ...) for
-- operators tuning a busy server, and for tests. A value that is not a
-- whole number of at least 1 is ignored. With `nofile` (the open file
-- limit), each listener's connections are held to a quarter of it, so that
-- connections alone cannot take the descriptors jobs and services need.
function M.limits(nofile, log)
  local limits = {}
  for name, value in pairs(server_http.DEFAULTS) do
    local override = math.tointeger(tonumber(os.getenv("PRISN_HTTP_" .. name:upper()) or ""))
    limits[name] = override and override >= 1 and override or value
  end
  if nofile and nofile > 0 and limits.max_connections > nofile // 4 then
    local room = math.max(16, nofile // 4)
    if log then
      log:warn("open file limit is %d: at most %d connections per listener instead of %d", nofile, room,
        limits.max_connections)
    end
    limits.max_connections = room
  end
  return limits
end

--- The TCP listener's TLS: { context, ca_fingerprint, ca_file } from the
-- certificates of prisn.server.tls (made or renewed as needed and logged),
-- or nil with insecure_http, which is warned about in the log and on stderr.
function M.api_tls(server, home, host, insecure_http)
  if insecure_http then
    local warning = "the TCP API speaks plain HTTP (--insecure-http): tokens and secrets cross the network "
      .. "unencrypted; use it only behind a TLS proxy or on a trusted network"
    server.log:warn("%s", warning)
    io.stderr:write("Warning: ", warning, "\n")
    return nil
  end
  local material = server_tls.ensure(home, server_tls.names(host))
  if material.created then
    server.log:info("TLS: made a new %s certificate (%s); CA fingerprint sha256:%s",
      material.created == "ca" and "CA and server" or "server", material.why or "first start",
      material.ca_fingerprint)
  end
  server.tls_failures = 0
  local context = tls.server_context{ default = material.pair }
  context.on_error = function(message, code, stream)
    server.tls_failures = server.tls_failures + 1
    local now = uv.now()
    if server.tls_warned_at and now - server.tls_warned_at < 10000 then return end
    server.tls_warned_at = now
    local peer = stream and not stream:is_closing() and stream:getpeername()
    server.log:info("TLS handshake%s failed: %s (%s; %d so far)", peer and (" from " .. peer.ip) or "",
      tostring(message), tostring(code), server.tls_failures)
  end
  return { context = context, ca_fingerprint = material.ca_fingerprint, ca_file = material.ca_file }
end

local function build_router()
  local router = server_router.new()
  for _, area in ipairs(M.API_MODULES) do
    for _, route in ipairs(require("prisn.server.api." .. area)) do router:add(route) end
  end
  return router
end

-- Jobs counted by state, for the prisn_jobs gauge.
--- Adds the services routes rely on: the audit trail (server.events), the
-- metrics (server.metrics, server.metrics_registry), the secrets keyring
-- (server.keyring), the job queue (server.queue) and the cron clock
-- (server.cron, started by run after the queue's recovery).
function M.attach_services(server)
  local reg = metrics.registry()
  metrics.process_collector(reg)
  local m = metrics.prisn_metrics(reg, { jobs_by_state = function() return jobs.count_by_state(server.db) end,
    instances_by_state = function()
      if not server.supervisor then return nil end
      return select(2, server.supervisor:counts())
    end,
    state_degraded = function() return server.state_writer.degraded and 1 or 0 end,
    state_pending_writes = function() return server.state_writer:pending() end })
  -- What the loop records (reports, states, events) goes through one
  -- writer that keeps it in order and retries it while state.db cannot be
  -- written; it also says whether the server is degraded (/health).
  server.state_writer = store_writer.new(server.db, { log = server.log,
    transaction = function(fn) return server.events:transaction(fn) end,
    write_errors = m.state_write_errors,
    on_change = function(writer)
      -- Instances that could not be made while degraded are made now.
      if not writer.degraded and server.supervisor then
        for _, d in pairs(server.supervisor.deployments) do server.supervisor:reconcile(d) end
      end
    end })
  store.set_observer(function(...) server.state_writer:observe(...) end)
  server.events = events.recorder(server.db, { log = server.log,
    write = function(...) return server.state_writer:write(...) end })
  server.metrics_registry = reg
  server.metrics = {
    queue_depth = m.queue_depth,
    job_duration = m.job_duration,
    scheduling_latency = m.job_scheduling_latency,
    cron_lateness = m.cron_lateness,
    instance_exits = m.instance_exits,
    instance_restart_latency = m.instance_restart_latency,
    rollouts = m.rollouts,
    admission_denials = m.admission_denials,
    state_checkpoint_duration = m.state_checkpoint_duration,
    state_checkpoint_failures = m.state_checkpoint_failures,
  }
  server.on_request = function(route, method, status, seconds)
    m.api_requests:labels(route, method, tostring(status)):inc()
    m.api_request_duration:labels(route):observe(seconds)
  end
  server.keyring = keyring.load(server.home, { create = true, db = server.db })
  server.queue = server_jobs.new(server)
  server.cron = cron.new(server)
  server.supervisor = supervisor.new(server)

  -- Operator hooks ($PRISN_HOME/hooks, docs/HOOKS.md), each run a child
  -- process of its own; on_job_finish after every job.
  server.hooks = hooks.new({ home = server.home, log = server.log,
    record_event = function(ev) server.events:record(ev) end })
  server.queue.on_finished[#server.queue.on_finished + 1] = function(job)
    server.hooks:fire("on_job_finish", hooks.job_event(job))
  end
end

--- Runs the server in this process until it is stopped. opts: home, listen
-- ("HOST:PORT" or "PORT"), foreground (log to stderr too), min_isolation
-- (see prisn.server.admission; default 1), dns ("HOST:PORT", "off" or nil
-- for the default; see prisn.server.dns), dns_forward (true, false or nil),
-- insecure_http (plain HTTP on TCP instead of HTTPS; warned about).
-- ingress and ingress_tls ("[HOST:]PORT" or nil: off; prisn.server.ingress).
-- Returns the exit status.
function M.run(opts)
  local home = opts.home
  local log = server_log.open(home .. "/server.log", { stderr = opts.foreground })
  local lock = sys.lock(home .. "/" .. M.LOCK_FILE)
  if not lock then
    local info = M.info(home)
    errors.raise("already_running", "a prisn server is already running for " .. home
      .. (info and info.pid and (" (pid " .. math.tointeger(info.pid) .. ")") or ""),
      { hint = "'prisn server status' shows it; 'prisn server stop' stops it" })
  end
  -- This program replaced another in place (prisn.server.upgrade): that
  -- one's children are ours now, to reap before we start any of our own.
  local upgraded = server_upgrade.take_marker()
  server_upgrade.reap_inherited(log)
  M.setup(home)
  -- Generational GC: the server's heap is mostly long-lived (deployments,
  -- instances, handles) and a request's garbage dies young; with 1,000
  -- deployments it cut the API's p99 from 9-14 ms to 3.3 ms (pauses of the
  -- incremental collector's full cycles). PRISN_GC_MODE=incremental for the old.
  local gc_mode = os.getenv("PRISN_GC_MODE") == "incremental" and "incremental" or "generational"
  -- While the heap grows for real (1,000 deploys in a row), generational
  -- major collections find little garbage; after such a "bad" one Lua waits
  -- for the heap to reach `pause` % of what was live (default 200) before
  -- the next, and the heap's high-water mark, which malloc keeps as RSS, went
  -- up to twice the live data: 26-27 MB at 1,000 deployments against 19-20
  -- with a pause of 120 (tests/bench/deployments-report.md, issue 17).
  -- PRISN_GC_MODE=incremental keeps Lua's defaults whole.
  if gc_mode == "generational" then collectgarbage("incremental", 120) end
  collectgarbage(gc_mode)
  local old_nofile, nofile = sys.raise_nofile()
  if not old_nofile then
    log:warn("cannot raise the open file limit: %s", tostring(nofile))
    nofile = nil
  elseif old_nofile ~= nofile then
    log:info("open file limit raised from %d to %d (a service instance holds up to 5)", old_nofile, nofile)
  elseif nofile and nofile >= 0 and nofile < 4096 then
    log:warn("open file limit is %d: at 5 per service instance that is about %d instances; raise the hard "
      .. "limit (LimitNOFILE= under systemd, ulimit -Hn) for more", nofile, nofile // 5 - 50)
  end
  if group.protect_self() then
    log:info("oom_score_adj set to -1000: the OOM killer takes workloads, not the server")
  end
  local server = {
    home = home,
    log = log,
    db = store.open(home),
    token_key = tokens.load_key(home),
    router = build_router(),
    limits = M.limits(nofile, log),
    min_isolation = opts.min_isolation or admission.DEFAULT_MIN_ISOLATION,
    connections = 0,
    started_at = os.time(),
    version = sys.version,
    listeners = {},
  }
  M.current = server
  M.attach_services(server)

  -- Listeners: the unix socket always (a stale one is replaced: we hold the
  -- lock, so nobody else serves it), TCP on loopback or --listen.
  local http = server_http
  local socket_path = home .. "/" .. M.SOCKET_FILE
  local pipe_listener = { kind = "pipe", path = socket_path, address = "unix:" .. socket_path }
  local pipe, err = http.bind(pipe_listener)
  if not pipe then errors.raise("EADDRINUSE", "cannot listen on " .. socket_path .. ": " .. tostring(err)) end
  pipe_listener.handle = pipe
  server.listeners[#server.listeners + 1] = pipe_listener
  local host, port = "127.0.0.1", M.DEFAULT_PORT
  if opts.listen then
    host, port = parse_listen(opts.listen)
    if not host then
      errors.usage("--listen expects HOST:PORT or PORT, got '" .. opts.listen .. "'", "e.g. --listen 0.0.0.0:7433")
    end
  end
  local served, serr, scode = http.serve(server, pipe_listener)
  if not served then
    errors.raise(scode or "EADDRINUSE", "cannot listen on " .. socket_path .. ": " .. tostring(serr),
      { hint = "check that " .. home .. " is writable and that no other process serves it" })
  end
  -- TCP speaks HTTPS with the certificates of prisn.server.tls, unless
  -- --insecure-http; the unix socket stays plain (its mode is its guard).
  local api_tls = M.api_tls(server, home, host, opts.insecure_http)
  -- TCP: the port asked for, or (by default) the first free one from it on.
  local url, last_err
  for p = port, port + (opts.listen and 0 or M.PORT_ATTEMPTS - 1) do
    local listener = { kind = "tcp", host = host, port = p, tls = api_tls and api_tls.context }
    local tcp, berr = http.bind(listener)
    local bound = tcp ~= nil
    if bound then
      listener.handle = tcp
      bound, berr = http.serve(server, listener)
    end
    if bound then
      url = string.format("%s://%s:%d", api_tls and "https" or "http", host:find(":") and ("[" .. host .. "]") or host,
        p)
      listener.address = url
      server.listeners[#server.listeners + 1] = listener
      break
    end
    if tcp then tcp:close() end
    last_err = berr
  end
  if not url then
    errors.raise("EADDRINUSE", string.format("cannot listen on %s:%d: %s", host, port, tostring(last_err)),
      { hint = "choose another address with --listen HOST:PORT" })
  end

  -- The data plane (prisn.dataplane: ports and DNS, a process that outlives
  -- this one): connect to it, or start it.
  server.dataplane = server_dataplane.new(server)
  if not server.dataplane:start_and_wait() then
    log:warn("the data plane did not answer within %d ms: ports and DNS follow when it does (see %s/%s)",
      server_dataplane.START_TIMEOUT_MS, home, "dataplane.log")
  end
  -- DNS for prisn.local, fed by the supervisor (before recover adopts instances).
  server.dns = server_dns.start(server, { address = opts.dns, forward = opts.dns_forward,
    resolv_conf = os.getenv("PRISN_DNS_RESOLV_CONF") })
  -- The ingress (--ingress, --ingress-tls), fed by the supervisor like the DNS.
  server.ingress = server_ingress.start(server, { http = opts.ingress, https = opts.ingress_tls })

  -- options: what it was started with; upgrade: the token of the upgrade
  -- that made this program (what `prisn server upgrade` waits for).
  local info = { pid = uv.os_getpid(), address = url, socket = socket_path, version = server.version,
    started_at = clock.iso_time(server.started_at * 1000), dns = server.dns and server.dns.address or nil,
    ca_fingerprint = api_tls and api_tls.ca_fingerprint or nil, ca_file = api_tls and api_tls.ca_file or nil,
    ingress = server.ingress and server.ingress:addresses() or nil,
    options = { listen = opts.listen, dns = opts.dns, dns_forward = opts.dns_forward,
      min_isolation = opts.min_isolation, ingress = opts.ingress, ingress_tls = opts.ingress_tls,
      insecure_http = opts.insecure_http },
    upgrade = upgraded and { token = upgraded.token, from = upgraded.from } or nil }
  local function write_info()
    return fs.write_atomic(home .. "/" .. M.INFO_FILE, cjson.encode(info) .. "\n", tonumber("600", 8))
  end
  local written, werr, wcode = write_info()
  if not written then
    errors.raise(wcode or "EIO", "cannot write " .. home .. "/" .. M.INFO_FILE .. ": " .. tostring(werr),
      { hint = homes.write_hint(wcode) })
  end
  log:info("prisn %s serving on %s and %s (pid %d)%s", server.version, url, socket_path, info.pid,
    upgraded and (", upgraded in place from prisn " .. upgraded.from) or "")

  server.checkpointer = checkpointer.start(server.db, store.path(home), {
    log = log,
    metrics = { duration = server.metrics.state_checkpoint_duration,
      failures = server.metrics.state_checkpoint_failures } })
  server.events:record({ action = "server.started", message = "prisn " .. server.version .. " on " .. url })
  if upgraded then
    server.events:record({ action = "server.upgraded", message = "in place from prisn " .. upgraded.from
      .. " to " .. server.version .. " (pid " .. math.tointeger(info.pid) .. ")" })
  end
  server.queue:recover()
  server.supervisor:recover()
  server.dataplane:sync()
  server.cron:start()
  -- The audit trail is bounded: prune it once a minute.
  local prune_timer = uv.new_timer()
  prune_timer:start(60000, 60000, function() server.events:prune() end)
  prune_timer:unref()

  -- An upgrade (prisn.server.api.upgrade), once the data plane is handed
  -- over: this process execs `binary` (prisn.server.upgrade). When that
  -- fails it serves on, and server.json says why under the upgrade's token.
  server.replace_for_upgrade = function(binary, token)
    server_upgrade.replace(server, binary, token, function(message, code)
      info.upgrade = { token = token, error = message, code = code, binary = binary }
      local ok, write_err = write_info()
      if not ok then log:error("cannot write %s: %s", M.INFO_FILE, tostring(write_err)) end
      server.events:record({ action = "server.upgrade_failed", message = "to " .. binary .. ": " .. message })
    end)
  end

  local stopped = false
  local function stop(signame)
    if stopped then return end
    stopped = true
    server.stopping = true
    log:info("stopping (%s)", signame)
    for _, l in ipairs(server.listeners) do if not l.handle:is_closing() then l.handle:close() end end
    if server.ingress then server.ingress:close() end
    -- Running jobs are stopped cleanly (SIGTERM, SIGKILL after the grace);
    -- queued ones stay queued for the next start. Then in-flight responses
    -- get a moment to finish and everything left is closed.
    local grace = tonumber(os.getenv("PRISN_STOP_GRACE_SECONDS") or "") or 10
    local waiting = 3 -- the job queue, the services and the data plane
    local function one_done()
      waiting = waiting - 1
      if waiting > 0 then return end
      pcall(server.events.record, server.events, { action = "server.stopped", message = "stopped by " .. signame })
      -- Records still waiting for space get a last try; a job's outcome
      -- that is lost here is read back from its log at the next start.
      server.state_writer:drain()
      local left = server.state_writer:close()
      if left > 0 then log:warn("stopping with %d record(s) state.db could not take", left) end
      local t = uv.new_timer()
      t:start(100, 0, function()
        t:close()
        uv.walk(function(h) if not h:is_closing() then h:close() end end)
      end)
    end
    -- The data plane stops first: its ports close, as the in-server proxies did.
    server.dataplane:stop(one_done)
    server.queue:stop_all(grace, one_done)
    server.supervisor:stop_all(grace, one_done)
    -- Hooks still running are stopped; their callbacks come (as failures).
    server.hooks:close()
  end
  -- A client that hangs up while we write must cost an EPIPE on that
  -- connection, not the server: SIGPIPE is caught and dropped. (Workloads
  -- get default dispositions back in prisn.core.proc.)
  local sigpipe = uv.new_signal()
  sigpipe:start("sigpipe", function() end)
  sigpipe:unref()
  -- luv keeps active handles referenced; nothing to hold on to here.
  for _, name in ipairs({ "sigterm", "sigint" }) do
    uv.new_signal():start(name, function() stop(name) end)
  end
  local sighup = uv.new_signal()
  sighup:start("sighup", function() log:info("SIGHUP: nothing to reload (prisn has no config file)") end)

  uv.run("default")

  uv.fs_unlink(home .. "/" .. M.INFO_FILE)
  uv.fs_unlink(socket_path)
  store.set_observer(nil)
  server.db:close()
  log:info("stopped")
  log:close()
  sys.unlock(lock)
  M.current = nil
  return 0
end

-- Why a server that exited at start did, from what it wrote to its log
-- from byte `from` on: the last "Error:" line and the "Hint:" after it
-- (the CLI's way of reporting), else the last line it wrote. Returns the
-- message and the hint (nil when it gave none).
local function start_failure(log_path, from)
  local text = (fs.read_file(log_path) or ""):sub(from + 1)
  local message, hint, last
  for line in text:gmatch("[^\n]+") do
    local e = line:match("^Error: (.*)$")
    if e then
      message, hint = e, nil
    elseif message and not hint and line:match("^Hint: ") then
      hint = line:sub(7)
    end
    last = line
  end
  return message or last or "it wrote nothing to its log", hint
end
M.start_failure = start_failure

--- Starts the server in the background: a new `prisn server start
-- --foreground` in its own session, output to server.log. Waits until it
-- answers (up to `wait_ms`) and returns its server.json, or raises with
-- what the server said at its end (its Error: and Hint: lines). opts:
-- listen, min_isolation, dns, dns_forward, wait_ms, exe (the binary; default
-- this one).
function M.start_background(home, opts)
  local exe = opts.exe or uv.exepath()
  -- --daemonized: log to server.log only (stderr goes there too, for crashes).
  local argv = { exe, "server", "start", "--foreground", "--daemonized" }
  if opts.listen then argv[#argv + 1] = "--listen"; argv[#argv + 1] = opts.listen end
  if opts.min_isolation then argv[#argv + 1] = "--min-isolation"; argv[#argv + 1] = tostring(opts.min_isolation) end
  if opts.dns then argv[#argv + 1] = "--dns"; argv[#argv + 1] = opts.dns end
  if opts.ingress then argv[#argv + 1] = "--ingress"; argv[#argv + 1] = opts.ingress end
  if opts.ingress_tls then argv[#argv + 1] = "--ingress-tls"; argv[#argv + 1] = opts.ingress_tls end
  if opts.dns_forward ~= nil then
    argv[#argv + 1] = "--dns-forward"; argv[#argv + 1] = opts.dns_forward and "on" or "off"
  end
  if opts.insecure_http then argv[#argv + 1] = "--insecure-http" end
  local env = homes.child_env(home)
  local log_path = home .. "/server.log"
  local st = uv.fs_stat(log_path)
  local log_start = st and st.size or 0
  local p, err = proc.spawn({ file = exe, argv = argv, env = env, stdin = "null",
    stdout = "null", stderr = { file = log_path, mode = "a" }, session = true, cwd = "/" })
  if not p then errors.raise("ESPAWN", "cannot start the server: " .. tostring(err)) end
  local deadline = uv.hrtime() + (opts.wait_ms or 5000) * 1e6
  while uv.hrtime() < deadline do
    local status = p:wait({ nohang = true })
    if status then
      local message, hint = start_failure(log_path, log_start)
      errors.raise("server_failed", "the server exited at start: " .. message,
        { hint = (hint and hint .. "; " or "") .. "the server's log is " .. log_path })
    end
    local info = M.info(home)
    if info and info.pid == p:pid() then
      p:close() -- the daemon lives on; its parent (init) reaps it
      return info
    end
    uv.sleep(10)
  end
  p:kill("TERM")
  errors.raise("timeout", "the server did not start within " .. (opts.wait_ms or 5000) .. " ms",
    { hint = "see " .. home .. "/server.log" })
end

--- How long `stop` waits, once the server has exited, for its parent
-- (init, when it was started in the background) to reap it.
M.REAP_WAIT_MS = 3000

-- Whether process `pid` (`pidfd`, a pidfd of it, or nil) has exited: a
-- zombie or gone.
local function has_exited(pid, pidfd)
  if pidfd then return sys.wait_readable(pidfd, 0) == true end
  return not procfs.alive(pid)
end

--- Stops the server of `home`: SIGTERM, then waits up to timeout_ms until
-- its process has exited and let go of server.lock. Then, for up to
-- M.REAP_WAIT_MS more, until its parent has reaped it, so that its pid is
-- gone when this returns (init may reap late; a zombie holds nothing).
-- Returns the pid it stopped, or nil when none was running; raises when the
-- server does not exit in time.
function M.stop(home, timeout_ms)
  timeout_ms = timeout_ms or 30000
  local info = M.running(home)
  if not info then return nil end
  local pid = math.tointeger(info.pid)
  local deadline = uv.hrtime() + timeout_ms * 1e6
  -- Locked but no server.json yet: a server still starting up.
  while not (pid and pid > 0) and uv.hrtime() < deadline do
    uv.sleep(20)
    info = M.running(home)
    if not info then return nil end
    pid = math.tointeger(info.pid)
  end
  if not (pid and pid > 0) then
    errors.raise("timeout", "the server of " .. home .. " is still starting", { hint = "try again in a moment" })
  end
  -- Taken while the server holds its lock, so it is the server's pid and
  -- not one reused since: the pidfd follows that process and no other.
  local pidfd = sys.pidfd_open(pid)
  uv.kill(pid, "sigterm")
  local stopped = false
  while uv.hrtime() < deadline do
    if has_exited(pid, pidfd) and not M.running(home) then
      stopped = true
      break
    end
    uv.sleep(10)
  end
  if pidfd then uv.fs_close(pidfd) end
  if not stopped then
    errors.raise("timeout", string.format("the server (pid %d) did not stop within %d ms", pid, timeout_ms),
      { hint = "see " .. home .. "/server.log; 'kill -9 " .. pid .. "' forces it" })
  end
  local reaped_by = uv.hrtime() + M.REAP_WAIT_MS * 1e6
  while uv.kill(pid, 0) and uv.hrtime() < reaped_by do uv.sleep(10) end
  return pid
end

return M
