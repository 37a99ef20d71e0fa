-- Benchmark of supervised services (prisn deploy) against pm2 and supervisord.
--
--   build/prisn lua tests/bench/services.lua [ROUNDS] [SERVICES] [BIG]
--
-- ROUNDS (default 3) interleaved rounds; SERVICES (default 100) services per
-- round; BIG (default 1000, 0 skips it) deployments for the prisn-only scale
-- part. Environment:
--   PRISN_BENCH_KILLS=10          kill -9 replacements measured per round
--   PRISN_BENCH_TOOLS=a,b         only these variants (names as printed)
--   PRISN_BENCH_PYTHON=/usr/bin/python3   the workload's interpreter
--   PRISN_BENCH_PM2=/path/to/pm2  (else pm2 on PATH, else /tmp/pm2-prefix/bin/pm2)
--   PRISN_BENCH_KEEP=1            keep the temporary folder (server.log) at the end
--   PRISN_BENCH_TMP=/tmp          where the temporary folder (the homes) is made
--   PRISN_BENCH_SCAN_MS=3         /proc scan period while waiting for all to run
--                                 (the kill -9 replacement is scanned every ms)
--   PRISN_BENCH_SERVER_ENV=K=V,.. more environment for the prisn server (the
--                                 PRISN_* of this process are not passed on), e.g.
--                                 PRISN_INIT_FROM=self to A/B the sandbox's init
--
-- The workload: sleeper-RUNID.py (a name unique to the run: other sessions
-- on the machine run app.py services of their own, and only our processes
-- may be counted or killed), `print("up"); time.sleep(1e9)`, run by the same
-- python binary under every tool (prisn gets a PATH where python3 is it; pm2
-- and supervisord name it). Each daemon is started fresh for each round in a
-- temporary home and is already up (idle) when the clock starts. Then:
--
-- 1. start: from the first request (the first POST; the `pm2 start
--    ecosystem.json` / `supervisorctl update` command) until every one of the
--    SERVICES python processes exists. Same definition for every tool: this
--    process scans /proc (about every millisecond) for python processes
--    running the sleeper and tells the services apart by their environment
--    (prisn: PRISN_INSTANCE, supervisord: SUPERVISOR_PROCESS_NAME, pm2:
--    BENCH_SVC set per app in the ecosystem file).
-- 2. kill -9: KILLS different services, one at a time: SIGKILL the python
--    process, then the time until a new python process of that service
--    exists (the same /proc scan). Different services, because prisn and pm2
--    delay the second consecutive restart of the same one.
-- 3. daemon RSS (VmRSS) 2 s after all are running, workloads excluded; for
--    prisn the server's plus its data plane's (`prisn server dataplane`, the
--    process holding the ports; also shown apart). The per-service helper
--    processes (descendants of the daemon that are not the workload:
--    prisn-init with isolation 1) are summed apart, as Pss.
-- 4. CPU time from the first request until all run, per service: the
--    workloads', the daemon's (with its reaped children: prisn __prepare),
--    the data plane's, the helpers', the clients' (`prisn deploy`, reaped by
--    this process) and this process's own (its /proc scans); and (workload +
--    overhead) / workload, which does not swing with the machine's load as
--    the wall-clock start does (see cpu_before).
--
-- prisn variants: "prisn api" (POST .../deployments on the unix socket, one
-- at a time on one keep-alive connection, bundle uploaded once before the
-- clock starts; default isolation: 1 when root), "prisn api iso0" (the same
-- with "isolation": 0, plain processes like pm2's and supervisord's),
-- "prisn cli" (`prisn deploy sleeper.py --name NAME --no-wait`, SERVICES times,
-- one after the other) and "prisn -r N" (one deployment of SERVICES replicas).
--
-- Baseline, same run: "direct spawn", this process starting the same python
-- processes itself one after the other (no daemon): the floor for "start".
--
-- Scale (prisn only): BIG deployments of sleep.sh (`exec sleep 9xxxxxxxx`:
-- python would need about 8 GB for 1,000), 1 replica each, through the API:
-- time until all run, server RSS and open fds, kill -9 of 10 and their
-- replacement, all still running after, and GET .../deployments/NAME latency
-- (1,000 requests paced at 1,000/s, and unpaced) with BIG stored.
--
-- Loopback only; every process started here is stopped by its pid (pm2's
-- daemon, which detaches, by the pid in its pid file) and the temporary
-- folder removed.
local uv = require("luv")
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local common = require("common")
local run_until, sleep_ms, finish = common.run_until, common.sleep_ms, common.finish
local sh, write, read, median = common.sh, common.write, common.read, common.median
local cjson = require("cjson")

local ROUNDS = tonumber(arg[1]) or 3
local SERVICES = tonumber(arg[2]) or 100
local BIG = tonumber(arg[3]) or 1000
local KILLS = tonumber(os.getenv("PRISN_BENCH_KILLS")) or 10
local PYTHON = os.getenv("PRISN_BENCH_PYTHON") or "/usr/bin/python3"
local PRISN = arg[-1] or uv.exepath()
-- Every scan reads /proc (and the cmdline of each new process not yet
-- matched: a prisn-init is read again on every scan for its first 500 ms).
-- Scanned every ms, the bench spent 8-33 ms of CPU per service during a
-- prisn start (2 ms during the direct spawns, which are over sooner), on
-- the same 2 CPUs it measures; every 3 ms it is less (and see new_scanner),
-- for a start time at most 3 ms late.
local SCAN_MS = tonumber(os.getenv("PRISN_BENCH_SCAN_MS")) or 3
local ONLY
if os.getenv("PRISN_BENCH_TOOLS") then
  ONLY = {}
  for t in os.getenv("PRISN_BENCH_TOOLS"):gmatch("[^,]+") do ONLY[t] = true end
end

local function pct(list, q)
  if #list == 0 then return 0 / 0 end
  local s = { table.unpack(list) }
  table.sort(s)
  return s[math.max(1, math.ceil(q * #s))]
end

local function ms_since(t0) return (uv.hrtime() - t0) / 1e6 end

local tick = common.ticker(1)

local tmp = assert(uv.fs_mkdtemp((os.getenv("PRISN_BENCH_TMP") or "/tmp") .. "/prisn-bench-svc-XXXXXX"))
uv.fs_chmod(tmp, tonumber("755", 8))

-- The environment of every tool: no PRISN_* of ours, and a PATH where
-- python3 is PYTHON's folder first (pyenv shims are bash scripts).
local PATH = PYTHON:match("^(.*)/[^/]*$") .. ":/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
local base_env = { "PATH=" .. PATH }
for k, v in pairs(uv.os_environ()) do
  if k ~= "PATH" and not k:match("^PRISN_") and not k:match("^PM2_") and not k:match("^PYENV") then
    base_env[#base_env + 1] = k .. "=" .. v
  end
end
local function env_with(extra)
  local env = { table.unpack(base_env) }
  for _, kv in ipairs(extra) do env[#env + 1] = kv end
  return env
end

-- Child processes ----------------------------------------------------------------

local detached = {} -- pid -> name: daemons that left our process tree (pm2)

local function spawn(file, args, opts)
  opts = opts or {}
  return common.spawn(file, args, { env = opts.env or base_env, stdout = opts.capture,
    stderr = opts.capture and "capture" or nil, on_exit = opts.on_exit })
end

local function alive(pid)
  local stat = read("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %(.-%) Z")
end

local function rss_kb(pid)
  return tonumber((read("/proc/" .. pid .. "/status") or ""):match("VmRSS:%s*(%d+)"))
end

local function pss_kb(pid)
  return tonumber((read("/proc/" .. pid .. "/smaps_rollup") or ""):match("\nPss:%s*(%d+)")) or 0
end

local function fd_count(pid)
  local dir = uv.fs_opendir("/proc/" .. pid .. "/fd", nil, 1024)
  if not dir then return nil end
  local n = 0
  while true do
    local entries = dir:readdir()
    if not entries then break end
    n = n + #entries
  end
  dir:closedir()
  return n
end

-- Every process: pid -> ppid.
local function process_table()
  local t = {}
  local dir = uv.fs_opendir("/proc", nil, 1024)
  while true do
    local entries = dir:readdir()
    if not entries then break end
    for _, e in ipairs(entries) do
      local pid = tonumber(e.name)
      if pid then
        local stat = read("/proc/" .. pid .. "/stat")
        local ppid = stat and tonumber(stat:match("%) %a (%d+)"))
        if ppid then t[pid] = ppid end
      end
    end
  end
  dir:closedir()
  return t
end

-- The data plane among `pids` (descendants of a prisn server), or nil.
local function dataplane_in(pids)
  for _, pid in ipairs(pids) do
    if (read("/proc/" .. pid .. "/cmdline") or ""):find("server\0dataplane", 1, true) then return pid end
  end
end

local function descendants(root)
  local t, kids, out = process_table(), {}, {}
  for pid, ppid in pairs(t) do
    kids[ppid] = kids[ppid] or {}
    table.insert(kids[ppid], pid)
  end
  local stack = { root }
  while #stack > 0 do
    local pid = table.remove(stack)
    for _, kid in ipairs(kids[pid] or {}) do
      out[#out + 1] = kid
      stack[#stack + 1] = kid
    end
  end
  return out
end

-- CPU time ----------------------------------------------------------------------
--
-- Wall-clock start times swing by x2 on a shared 2-CPU machine; the CPU each
-- process spent during the start does not. On-CPU time from
-- /proc/PID/schedstat (ns); what a process's reaped children spent (a
-- `prisn __prepare`, the `prisn deploy` clients) from its stat's cutime and
-- cstime (clock ticks, assumed 100 a second).

local function sched_ms(pid)
  local text = read("/proc/" .. pid .. "/schedstat")
  return text and (tonumber(text:match("^(%d+)")) or 0) / 1e6 or 0
end

local function reaped_ms(pid)
  local rest = (read("/proc/" .. pid .. "/stat") or ""):match("%) (.*)")
  if not rest then return 0 end
  local f = {}
  for w in rest:gmatch("%S+") do f[#f + 1] = w end
  return ((tonumber(f[14]) or 0) + (tonumber(f[15]) or 0)) * 10
end

local function self_ms()
  local r = uv.getrusage()
  return (r.utime.sec + r.stime.sec) * 1e3 + (r.utime.usec + r.stime.usec) / 1e3
end

-- What the CPU counters say before the clock starts (daemon `pid`, or nil).
local function cpu_before(pid)
  local s = { bench = self_ms(), clients = reaped_ms("self"), procs = {} }
  if pid then
    s.daemon, s.reaped = sched_ms(pid), reaped_ms(pid)
    for _, kid in ipairs(descendants(pid)) do s.procs[kid] = sched_ms(kid) end
  end
  return s
end

-- CPU ms spent since `before`: workload (the `found` processes, all born
-- in the window), daemon (with its reaped children), dataplane, helpers
-- (the daemon's other descendants: prisn-init), clients (this process's
-- reaped children: `prisn deploy`), bench (this process: the /proc scans,
-- and the direct spawns).
local function cpu_since(before, pid, found)
  local r = { bench = self_ms() - before.bench, clients = reaped_ms("self") - before.clients, workload = 0,
    daemon = 0, dataplane = 0, helpers = 0 }
  local workloads = {}
  for _, wpid in pairs(found or {}) do
    workloads[wpid] = true
    r.workload = r.workload + sched_ms(wpid)
  end
  if pid then
    r.daemon = sched_ms(pid) - before.daemon + reaped_ms(pid) - before.reaped
    local kids = descendants(pid)
    local plane = dataplane_in(kids)
    for _, kid in ipairs(kids) do
      if not workloads[kid] then
        local used = sched_ms(kid) - (before.procs[kid] or 0)
        if kid == plane then r.dataplane = r.dataplane + used else r.helpers = r.helpers + used end
      end
    end
  end
  r.overhead = r.daemon + r.dataplane + r.helpers + r.clients
  return r
end

-- The /proc scanner -------------------------------------------------------------
--
-- scan() -> { [service] = pid } of the workload processes alive now. A
-- process is a workload when its cmdline holds `marker`; its service is the
-- value of the environment variable `var`, turned into a service name by
-- `name_of`. A new pid may not have exec'd yet (its cmdline is still its
-- parent's), so a non-match is looked at again: on every scan for its first
-- 100 ms, then every 25 ms until it is 2 s old. (Only for 500 ms before: with
-- the load average at 10, a round once counted 98 of 100 services for 120 s,
-- presumably two forked children that exec'd after that.)

local Scanner = {}
Scanner.__index = Scanner

-- Whether to read a process that did not match (k) again at `now` (ns).
local function again(k, now)
  local age = now - k.first
  if age < 1e8 then return true end
  return age < 2e9 and now - k.last >= 2.5e7
end

-- The processes that exist when a scanner is made are not workloads (none
-- is started yet) and are never read: with the other sessions' processes
-- on this machine, reading each of them again for its "first" 500 ms cost
-- the bench more CPU than the daemons it measures.
--
-- Pids are reused: pid_max is 32768 here and the machine's sessions start
-- about 800 processes a second, so a pid comes round again within a minute,
-- inside a round. What is known of a pid is forgotten when a scan does not
-- see it (its process is gone: the next one with that pid is new); before,
-- a stale entry made the bench call an unrelated prisn-init a leftover
-- workload and SIGKILL it.
local function new_scanner(marker, var, name_of)
  local known, seen, old = {}, {}, { no = true, first = uv.hrtime() - 1e11, last = 0 }
  local dir = uv.fs_opendir("/proc", nil, 2048)
  while true do
    local entries = dir:readdir()
    if not entries then break end
    for _, e in ipairs(entries) do
      local pid = tonumber(e.name)
      if pid then known[pid], seen[pid] = old, 0 end
    end
  end
  dir:closedir()
  return setmetatable({ marker = marker, pattern = "%z" .. var .. "=([^%z]*)", name_of = name_of or
    function(v) return v end, known = known, seen = seen, generation = 0 }, Scanner)
end

function Scanner:scan()
  local found, now = {}, uv.hrtime()
  local generation, seen = self.generation + 1, self.seen
  self.generation = generation
  local dir = uv.fs_opendir("/proc", nil, 2048)
  while true do
    local entries = dir:readdir()
    if not entries then break end
    for _, e in ipairs(entries) do
      local pid = tonumber(e.name)
      if pid then
        local k = self.known[pid]
        if seen[pid] ~= generation - 1 then k = nil end -- not there last time: a new process
        seen[pid] = generation
        if k == nil or (k.no and again(k, now)) then
          local cmd = read("/proc/" .. pid .. "/cmdline")
          local first = k and k.first or now
          if cmd and cmd:find(self.marker, 1, true) then
            local v = ("\0" .. (read("/proc/" .. pid .. "/environ") or "")):match(self.pattern)
            k = v and { service = self.name_of(v) } or { no = true, first = first, last = now }
          else
            k = { no = true, first = first, last = now }
          end
          self.known[pid] = k
        end
        if k.service then found[k.service] = pid end
      end
    end
  end
  dir:closedir()
  return found
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- The entries of a scan whose process is alive (not a zombie).
local function living(found)
  local out = {}
  for name, pid in pairs(found) do
    if alive(pid) then out[name] = pid end
  end
  return out
end

-- Waits (scanning every SCAN_MS) until `want` services have a process;
-- returns ms from t0 (nil on timeout) and the last scan.
function Scanner:wait_all(want, t0, seconds)
  local found
  local last, result = 0, false
  local ok = run_until(function()
    if uv.hrtime() - last < SCAN_MS * 1e6 then return result end
    last = uv.hrtime()
    found = self:scan()
    result = count(found) >= want
    return result
  end, seconds)
  return ok and ms_since(t0) or nil, found
end

-- kill -9 of service `name`'s process `pid`; ms until a new process of it
-- exists (nil after 30 s).
function Scanner:replace(name, pid)
  uv.kill(pid, "sigkill")
  local t0 = uv.hrtime()
  local last, result = 0, false
  local ok = run_until(function()
    if uv.hrtime() - last < 1e6 then return result end
    last = uv.hrtime()
    local now = self:scan()[name]
    result = now ~= nil and now ~= pid
    return result
  end, 30)
  if not ok then
    io.stderr:write(string.format("\nno new process for %s (killed %d; scan says %s)\n", name, pid,
      tostring(self:scan()[name])))
  end
  return ok and ms_since(t0) or nil
end

-- HTTP on the prisn server's unix socket (keep-alive, Content-Length) -------------

local connect, Conn = common.connect, common.Conn

-- Sends `bodies` as POSTs to `path` one after the other (each after the
-- previous answer); returns a state { done, errors, first_error, latencies }
-- that fills in as the loop runs.
function Conn:post_all(path, bodies)
  local st = { done = false, errors = 0, latencies = {} }
  local i = 0
  local function nxt()
    i = i + 1
    if i > #bodies then st.done = true return end
    local sent = uv.hrtime()
    self:send("POST", path, bodies[i], function(status, text)
      st.latencies[#st.latencies + 1] = ms_since(sent)
      if status ~= 200 and status ~= 201 then
        st.errors = st.errors + 1
        st.first_error = st.first_error or (tostring(status) .. " " .. tostring(text):sub(1, 300))
      end
      if status then nxt() else st.done = true end
    end)
  end
  nxt()
  return st
end

-- Tools ---------------------------------------------------------------------------

-- Names unique to this run: other prisn sessions on the machine run their
-- own app.py services, and only our own processes may be counted or killed.
local RUN_ID = tmp:match("([^-]+)$"):lower()
local APP_DIR = tmp .. "/app"
local APP_FILE = "sleeper-" .. RUN_ID .. ".py"
local APP = APP_DIR .. "/" .. APP_FILE
local APP_MARKER = APP_FILE -- prisn's instances run .../bundles/<hash>/APP_FILE
local SLEEP_ARG = string.format("%d", 900000000 + math.floor(uv.hrtime() % 99999999))
local function svc_name(i) return string.format("s%03d", i) end

-- prisn ----------------------------------------------------------------------

local function prisn_server(home)
  uv.fs_mkdir(home, tonumber("700", 8))
  local extra = { "PRISN_HOME=" .. home }
  for kv in (os.getenv("PRISN_BENCH_SERVER_ENV") or ""):gmatch("[^,]+") do extra[#extra + 1] = kv end
  local proc = spawn(PRISN, { "server", "start", "--foreground" }, { env = env_with(extra) })
  local info
  assert(run_until(function()
    if proc.done then return true end
    local ok, v = pcall(cjson.decode, read(home .. "/server.json") or "")
    info = ok and type(v) == "table" and v.pid == proc.pid and v or nil
    return info ~= nil
  end, 15) and info, "the prisn server did not start (see " .. home .. "/server.log)")
  local s = { proc = proc, pid = proc.pid, home = home, socket = info.socket,
    token = read(home .. "/admin.token"):gsub("%s+$", "") }
  s.conn = connect(s.socket, s.token)
  return s
end

local function prisn_stop(s)
  if s.conn then s.conn:close() end
  uv.kill(s.pid, "sigterm")
  finish(s.proc, 60)
end

-- Uploads the folder `dir` as a bundle; returns its hash.
local function prisn_upload(s, dir)
  local bundle = require("prisn.bundle")
  local blob, hash = assert(bundle.pack(dir))
  local status, body = s.conn:request("PUT", "/api/v1/bundles/" .. hash, blob, "application/octet-stream")
  assert(status == 200 or status == 201, "bundle upload: " .. tostring(status) .. " " .. tostring(body))
  return hash
end

local DEPLOYMENTS = "/api/v1/namespaces/default/deployments"

local function deploy_bodies(hash, entry, n, extra)
  local bodies = {}
  for i = 1, n do
    local b = { name = svc_name(i), bundle = hash, entry = entry }
    for k, v in pairs(extra or {}) do b[k] = v end
    bodies[i] = cjson.encode(b)
  end
  return bodies
end

-- A prisn variant: mode "api", "cli" or "replicas"; extra POST fields.
local function prisn_tool(name, mode, extra)
  local t = { name = name }
  function t.available() return true end
  function t.start(round_dir)
    t.server = prisn_server(round_dir .. "/home")
    t.pid = t.server.pid
    if mode ~= "cli" then t.hash = prisn_upload(t.server, APP_DIR) end
    if mode == "replicas" then
      t.scanner = new_scanner(APP_MARKER, "PRISN_INSTANCE")
    else
      t.scanner = new_scanner(APP_MARKER, "PRISN_INSTANCE", function(v) return (v:gsub("%-%d+$", "")) end)
    end
  end
  -- Starts creating n services; returns a function telling whether the
  -- requests are all done, and one giving an error (or nil).
  function t.create(n)
    if mode == "api" then
      local st = t.server.conn:post_all(DEPLOYMENTS, deploy_bodies(t.hash, APP_FILE, n, extra))
      t.post_state = st
      return function() return st.done end, function() return st.first_error end
    elseif mode == "replicas" then
      local body = { name = "svc", bundle = t.hash, entry = APP_FILE, replicas = n }
      local st = t.server.conn:post_all(DEPLOYMENTS, { cjson.encode(body) })
      t.service_names = {}
      for i = 1, n do t.service_names[i] = "svc-" .. i end
      return function() return st.done end, function() return st.first_error end
    end
    -- cli: one `prisn deploy` after the other, each started when the last exits
    local i, done, err = 0, false, nil
    local env = env_with({ "PRISN_HOME=" .. t.server.home })
    local function nxt(p)
      if p and p.code ~= 0 and not err then
        err = "prisn deploy exited " .. tostring(p.code) .. ": " .. table.concat(p.out)
      end
      if i == n then done = true return end
      i = i + 1
      spawn(PRISN, { "deploy", APP, "--name", svc_name(i), "--no-wait" }, { env = env, capture = true, on_exit = nxt })
    end
    nxt()
    return function() return done end, function() return err end
  end
  function t.service(i) return t.service_names and t.service_names[i] or svc_name(i) end
  function t.stop() prisn_stop(t.server) end
  return t
end

-- pm2 ------------------------------------------------------------------------------

local PM2 = os.getenv("PRISN_BENCH_PM2") or sh("command -v pm2")
if PM2 == "" and uv.fs_stat("/tmp/pm2-prefix/bin/pm2") then PM2 = "/tmp/pm2-prefix/bin/pm2" end

local function pm2_tool()
  local t = { name = "pm2" }
  function t.available()
    if PM2 == "" then return false, "pm2 not found (npm install -g pm2, or PRISN_BENCH_PM2=/path/to/pm2)" end
    return true
  end
  function t.version() -- `pm2 --version` would start a daemon in ~/.pm2
    local pkg = read((sh("readlink -f " .. PM2):gsub("/bin/[^/]*$", "")) .. "/package.json") or ""
    return pkg:match('"version"%s*:%s*"([^"]+)"')
  end
  local function pm2(args, seconds)
    local p = spawn(PM2, args, { env = t.env, capture = true })
    local out = finish(p, seconds or 60)
    return p.code, out
  end
  function t.start(round_dir)
    t.home = round_dir .. "/pm2"
    t.env = env_with({ "PM2_HOME=" .. t.home })
    local code, out = pm2({ "ping" })
    assert(code == 0, "pm2 ping: " .. out)
    t.pid = tonumber(read(t.home .. "/pm2.pid"))
    assert(t.pid, "pm2: no pid file")
    detached[t.pid] = "pm2 daemon"
    t.scanner = new_scanner(APP_MARKER, "BENCH_SVC")
  end
  function t.create(n)
    local apps = {}
    for i = 1, n do
      apps[i] = { name = svc_name(i), script = APP, interpreter = PYTHON, autorestart = true,
        env = { BENCH_SVC = svc_name(i) } }
    end
    local file = t.home .. "/ecosystem.json"
    write(file, cjson.encode({ apps = apps }))
    local p = spawn(PM2, { "start", file }, { env = t.env, capture = true })
    return function() return p.done end, function()
      if p.done and p.code ~= 0 then return "pm2 start exited " .. tostring(p.code) .. ": " .. table.concat(p.out) end
    end
  end
  function t.service(i) return svc_name(i) end
  function t.stop()
    t.pid = t.pid or tonumber(read(t.home .. "/pm2.pid") or "") -- a failed start may have left one
    if not t.pid then return end
    pm2({ "kill" })
    if not run_until(function() return not alive(t.pid) end, 10) then uv.kill(t.pid, "sigkill") end
    detached[t.pid] = nil
  end
  return t
end

-- supervisord ------------------------------------------------------------------

local SUPERVISORD = sh("command -v supervisord")
local SUPERVISORCTL = sh("command -v supervisorctl")

local function supervisord_tool()
  local t = { name = "supervisord" }
  function t.available()
    if SUPERVISORD == "" or SUPERVISORCTL == "" then
      return false, "supervisord not found (apt-get install supervisor)"
    end
    return true
  end
  function t.version() return sh(SUPERVISORD .. " --version") end
  function t.start(round_dir)
    local dir = round_dir .. "/supervisor"
    uv.fs_mkdir(dir, tonumber("755", 8))
    uv.fs_mkdir(dir .. "/conf.d", tonumber("755", 8))
    uv.fs_mkdir(dir .. "/logs", tonumber("755", 8))
    t.dir = dir
    t.conf = dir .. "/supervisord.conf"
    write(t.conf, table.concat({
      "[unix_http_server]", "file=" .. dir .. "/supervisor.sock", "",
      "[supervisord]", "nodaemon=true", "logfile=" .. dir .. "/supervisord.log",
      "pidfile=" .. dir .. "/supervisord.pid",
      "childlogdir=" .. dir .. "/logs", "", "[rpcinterface:supervisor]",
      "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
      "[supervisorctl]", "serverurl=unix://" .. dir .. "/supervisor.sock", "",
      "[include]", "files = " .. dir .. "/conf.d/*.conf", "" }, "\n"))
    t.proc = spawn(SUPERVISORD, { "-n", "-c", t.conf }, { capture = true })
    t.pid = t.proc.pid
    assert(run_until(function()
      if t.proc.done then return true end
      local p = spawn(SUPERVISORCTL, { "-c", t.conf, "pid" }, { capture = true })
      local out = finish(p, 10)
      return tonumber(out:match("^%d+")) == t.pid
    end, 20) and not t.proc.done, "supervisord did not start: " .. table.concat(t.proc.out))
    t.scanner = new_scanner(APP_MARKER, "SUPERVISOR_PROCESS_NAME")
  end
  function t.create(n)
    for i = 1, n do
      write(string.format("%s/conf.d/%s.conf", t.dir, svc_name(i)), table.concat({
        "[program:" .. svc_name(i) .. "]", "command=" .. PYTHON .. " " .. APP, "autostart=true", "autorestart=true",
        "redirect_stderr=true", "stdout_logfile=" .. t.dir .. "/logs/" .. svc_name(i) .. ".log", "" }, "\n"))
    end
    local p = spawn(SUPERVISORCTL, { "-c", t.conf, "update" }, { capture = true })
    return function() return p.done end, function()
      if p.done and p.code ~= 0 then return "supervisorctl update exited " .. tostring(p.code) end
    end
  end
  function t.service(i) return svc_name(i) end
  function t.stop()
    uv.kill(t.pid, "sigterm")
    finish(t.proc, 60)
  end
  return t
end

-- The baseline: this process spawning the same python processes itself, one
-- after the other, as fast as it can (no supervisor, no daemon).

local function direct_tool()
  local t = { name = "direct spawn", baseline = true }
  function t.available() return true end
  function t.start()
    t.procs = {}
    t.scanner = new_scanner(APP_MARKER, "BENCH_SVC")
  end
  function t.create(n)
    for i = 1, n do
      t.procs[i] = spawn(PYTHON, { APP }, { env = env_with({ "BENCH_SVC=" .. svc_name(i) }) })
    end
    return function() return true end, function() return nil end
  end
  function t.service(i) return svc_name(i) end
  function t.stop()
    for _, p in ipairs(t.procs) do if not p.done then uv.kill(p.pid, "sigkill") end end
    run_until(function()
      for _, p in ipairs(t.procs) do if not p.done then return false end end
      return true
    end, 10)
  end
  return t
end

-- One round of one tool ------------------------------------------------------------

local function one_round(tool, round)
  local round_dir = string.format("%s/%s-%d", tmp, tool.name:gsub("[^%w]+", "-"), round)
  uv.fs_mkdir(round_dir, tonumber("755", 8))
  local r = {}
  tool.start(round_dir)
  sleep_ms(500)
  r.idle_kb = tool.pid and rss_kb(tool.pid)
  local before = cpu_before(tool.pid)
  local t0 = uv.hrtime()
  local requests_done, error_of = tool.create(SERVICES)
  local found
  r.start_ms, found = tool.scanner:wait_all(SERVICES, t0, 120)
  r.cpu = cpu_since(before, tool.pid, found)
  r.load = tonumber(sh("cut -d' ' -f1 /proc/loadavg"))
  run_until(function() return requests_done() end, 300)
  r.requests_ms = ms_since(t0)
  r.error = error_of()
  r.running = count(found or {})
  if not r.start_ms then
    r.error = r.error or string.format("only %d of %d running after 120 s", r.running, SERVICES)
  end
  if tool.post_state then
    r.post_p50, r.post_p99 = pct(tool.post_state.latencies, 0.5), pct(tool.post_state.latencies, 0.99)
  end
  if tool.baseline then
    tool.stop()
    r.kills, r.leftovers = {}, 0
    return r
  end
  sleep_ms(2000)
  r.rss_kb = rss_kb(tool.pid)
  r.fds = fd_count(tool.pid)
  -- prisn's ports live in its data plane: its RSS is the daemon's too
  local plane = dataplane_in(descendants(tool.pid))
  if plane then
    r.dataplane_kb = rss_kb(plane) or 0
    r.rss_kb = (r.rss_kb or 0) + r.dataplane_kb
  end
  -- helpers: descendants of the daemon that are not workloads
  local workloads = {}
  for _, pid in pairs(tool.scanner:scan()) do workloads[pid] = true end
  r.helpers, r.helper_pss_kb = 0, 0
  for _, pid in ipairs(descendants(tool.pid)) do
    if not workloads[pid] and pid ~= plane then
      local cmd = read("/proc/" .. pid .. "/cmdline") or ""
      if not cmd:find(APP_MARKER, 1, true) then
        r.helpers = r.helpers + 1
        r.helper_pss_kb = r.helper_pss_kb + pss_kb(pid)
      end
    end
  end
  r.kills = {}
  if r.start_ms then
    local step = math.max(1, SERVICES // KILLS)
    for k = 1, math.min(KILLS, SERVICES) do
      local name = tool.service(1 + (k - 1) * step)
      local pid = tool.scanner:scan()[name]
      if pid then
        r.kills[#r.kills + 1] = tool.scanner:replace(name, pid) or 30000
        if r.kills[#r.kills] >= 30000 then r.error = r.error or ("no replacement for " .. name .. " within 30 s") end
      end
      sleep_ms(100)
    end
    sleep_ms(300)
    r.running_after = count(living(tool.scanner:scan()))
  end
  tool.stop()
  -- leftovers: any workload still alive is killed by pid and reported
  sleep_ms(200)
  local left = living(tool.scanner:scan())
  r.leftovers = count(left)
  for name, pid in pairs(left) do
    io.stderr:write(string.format("\nleft after stop: %s pid %d: %s", name, pid,
      read("/proc/" .. pid .. "/stat") or "gone"))
    uv.kill(pid, "sigkill")
  end
  return r
end

-- The scale part (prisn only) ------------------------------------------------------

local function scale_part(n)
  local dir = tmp .. "/scale"
  uv.fs_mkdir(dir, tonumber("755", 8))
  uv.fs_mkdir(dir .. "/app", tonumber("755", 8))
  write(dir .. "/app/sleep.sh", "#!/bin/bash\nexec sleep " .. SLEEP_ARG .. "\n", tonumber("755", 8))
  local s = prisn_server(dir .. "/home")
  local r = { n = n }
  local ok, err = pcall(function()
    local hash = prisn_upload(s, dir .. "/app")
    r.idle_kb = rss_kb(s.pid)
    local scanner = new_scanner(SLEEP_ARG, "PRISN_INSTANCE", function(v) return (v:gsub("%-%d+$", "")) end)
    local t0 = uv.hrtime()
    local st = s.conn:post_all(DEPLOYMENTS, deploy_bodies(hash, "sleep.sh", n))
    local found
    r.start_ms, found = scanner:wait_all(n, t0, 300)
    run_until(function() return st.done end, 600)
    r.requests_ms = ms_since(t0)
    r.post_p50, r.post_p99 = pct(st.latencies, 0.5), pct(st.latencies, 0.99)
    r.post_errors, r.post_error = st.errors, st.first_error
    r.running = count(found or scanner:scan())
    sleep_ms(3000)
    r.rss_kb, r.fds = rss_kb(s.pid), fd_count(s.pid)
    local plane = dataplane_in(descendants(s.pid))
    if plane then
      r.dataplane_kb = rss_kb(plane) or 0
      r.rss_kb = (r.rss_kb or 0) + r.dataplane_kb
    end
    local limit = (read("/proc/" .. s.pid .. "/limits") or ""):match("Max open files%s+(%d+)")
    r.nofile = tonumber(limit)
    local helpers, helper_pss = 0, 0
    local workloads = {}
    for _, pid in pairs(scanner:scan()) do workloads[pid] = true end
    for _, pid in ipairs(descendants(s.pid)) do
      if not workloads[pid] and pid ~= plane then helpers = helpers + 1; helper_pss = helper_pss + pss_kb(pid) end
    end
    r.helpers, r.helper_pss_kb = helpers, helper_pss
    -- kill -9 of 10 deployments' processes
    r.kills = {}
    for k = 1, 10 do
      local name = svc_name(1 + (k - 1) * (n // 10))
      local pid = scanner:scan()[name]
      if pid then r.kills[#r.kills + 1] = scanner:replace(name, pid) or 30000 end
      sleep_ms(100)
    end
    sleep_ms(2000)
    r.running_after = count(living(scanner:scan()))
    -- GET one deployment with n stored: paced at 1,000/s, then back to back
    local function gets(paced)
      local lat, errors = {}, 0
      local i, inflight = 0, 0
      local start = uv.hrtime()
      local function one()
        i = i + 1
        local sent = uv.hrtime()
        inflight = inflight + 1
        s.conn:send("GET", DEPLOYMENTS .. "/" .. svc_name(math.random(n)), nil, function(status)
          inflight = inflight - 1
          lat[#lat + 1] = ms_since(sent)
          if status ~= 200 then errors = errors + 1 end
          if not paced and i < 1000 then one() end
        end)
      end
      if paced then
        -- send request k at start + k ms, on one keep-alive connection
        run_until(function()
          while i < 1000 and uv.hrtime() - start >= i * 1e6 do one() end
          return i >= 1000 and inflight == 0
        end, 60)
      else
        one()
        run_until(function() return #lat >= 1000 end, 60)
      end
      return { p50 = pct(lat, 0.5), p99 = pct(lat, 0.99), max = pct(lat, 1), errors = errors,
        rps = #lat / (ms_since(start) / 1000) }
    end
    gets(false) -- warm-up
    r.get_paced = gets(true)
    r.get_unpaced = gets(false)
    local t1 = uv.hrtime()
    local status, body = s.conn:request("GET", DEPLOYMENTS)
    r.list_ms, r.list_status, r.list_bytes = ms_since(t1), status, #body
    r.rss_after_kb = rss_kb(s.pid)
    r.log_errors = tonumber(sh("grep -ci 'error' " .. dir .. "/home/server.log")) or 0
    r.log_sample = sh("grep -i 'error' " .. dir .. "/home/server.log | head -3")
  end)
  if s.proc.done then
    r.server_died = string.format("the server exited by itself (code %s, signal %s); server.log ends:\n    %s",
      tostring(s.proc.code), tostring(s.proc.signal),
      sh("tail -5 " .. dir .. "/home/server.log"):gsub("\n", "\n    "))
  end
  local t_stop = uv.hrtime()
  prisn_stop(s)
  r.stop_ms = ms_since(t_stop)
  local left = living(new_scanner(SLEEP_ARG, "PRISN_INSTANCE"):scan())
  r.leftovers = count(left)
  for _, pid in pairs(left) do uv.kill(pid, "sigkill") end
  if not ok then r.error = tostring(err) end
  return r
end

-- Report ------------------------------------------------------------------------------

local function report(tools, results, scale, skipped)
  local out = {}
  local function put(fmt, ...) out[#out + 1] = string.format(fmt, ...) end
  put("\nmachine: %d CPUs, %s, %s; %s", #uv.cpu_info(), sh("uname -r"), sh("nproc") ~= "" and
    (sh("grep MemTotal /proc/meminfo"):gsub("%s+", " ")) or "", sh(PYTHON .. " --version"))
  put("versions: prisn %s, %s", sh(PRISN .. " version"):match("[%d.]+[^\n]*") or "?", table.concat((function()
    local v = {}
    for _, t in ipairs(tools) do if t.version then v[#v + 1] = t.name .. " " .. (t.version() or "?") end end
    return v
  end)(), ", "))
  for _, line in ipairs(skipped) do put("SKIPPED: %s", line) end
  put("\n%d services of a sleeping python script, %d round(s), medians (all rounds listed in brackets):", SERVICES,
    ROUNDS)
  put("  %-16s %22s %14s %14s %24s %20s %s", "tool", "start: all running", "requests done", "daemon RSS",
    "helpers (Pss total)", "kill -9 -> new pid", "notes")
  local med = {}
  for _, t in ipairs(tools) do
    local rs = results[t.name]
    local function col(field)
      local list = {}
      for _, r in ipairs(rs) do list[#list + 1] = r[field] or 0 / 0 end
      return median(list), list
    end
    local start, starts = col("start_ms")
    local req = col("requests_ms")
    local rss = col("rss_kb")
    local helpers = col("helpers")
    local hpss = col("helper_pss_kb")
    local kills = {}
    for _, r in ipairs(rs) do for _, k in ipairs(r.kills) do kills[#kills + 1] = k end end
    local notes = {}
    local post50 = col("post_p50")
    if post50 == post50 then
      notes[#notes + 1] = string.format("POST p50 %.1f ms p99 %.1f ms", post50, col("post_p99"))
    end
    for i, r in ipairs(rs) do
      if r.error then notes[#notes + 1] = string.format("round %d: %s", i, r.error) end
      if r.leftovers > 0 then
        notes[#notes + 1] = string.format("round %d: %d workloads left after stop", i, r.leftovers)
      end
      if r.running_after and r.running_after < SERVICES then
        notes[#notes + 1] = string.format("round %d: %d/%d running after the kills", i, r.running_after, SERVICES)
      end
    end
    local ss = {}
    for _, v in ipairs(starts) do ss[#ss + 1] = string.format("%.0f", v) end
    med[t.name] = { start = start, rss = rss, kill = median(kills), kill_p90 = pct(kills, 0.9) }
    if t.baseline then
      put("  %-16s %8.0f ms [%s] (this process spawning them, no supervisor: the floor on this machine)", t.name,
        start, table.concat(ss, " "))
      goto continue
    end
    put("  %-16s %8.0f ms [%s] %11.0f ms %11.1f MB %6.0f (%6.1f MB) %9.1f ms (p90 %.0f) %s", t.name, start,
      table.concat(ss, " "), req, rss / 1024, helpers, hpss / 1024, median(kills), pct(kills, 0.9),
      table.concat(notes, "; "))
    ::continue::
  end
  put("  (kill -9: %d per round, different services, median over all rounds; start: from the first request)", KILLS)
  put("\nCPU time from the first request until all run, ms per service (medians of the rounds; load average %s):",
    (function()
      local loads = {}
      for _, t in ipairs(tools) do
        for _, r in ipairs(results[t.name]) do loads[#loads + 1] = string.format("%.1f", r.load or 0 / 0) end
      end
      return table.concat(loads, " ")
    end)())
  put("  %-16s %9s %9s %9s %9s %9s %10s %9s  %s", "tool", "workload", "daemon", "dataplane", "helpers", "clients",
    "overhead", "bench", "(workload + overhead) / workload")
  for _, t in ipairs(tools) do
    local function per(field)
      local list = {}
      for _, r in ipairs(results[t.name]) do
        if r.cpu then list[#list + 1] = r.cpu[field] / SERVICES end
      end
      return median(list)
    end
    local w, o = per("workload"), per("overhead")
    put("  %-16s %9.2f %9.2f %9.2f %9.2f %9.2f %10.2f %9.2f  x%.2f", t.name, w, per("daemon"), per("dataplane"),
      per("helpers"), per("clients"), o, per("bench"), (w + o) / w)
  end
  local base = med["prisn api"]
  if base then
    put("\nratios, prisn api / other (below 1: prisn is faster or smaller):")
    for _, other in ipairs({ "pm2", "supervisord" }) do
      local o = med[other]
      if o then
        put("  vs %-12s start x%.2f   daemon RSS x%.2f   kill -9 replacement x%.3f", other, base.start / o.start,
          base.rss / o.rss, base.kill / o.kill)
      end
    end
    put("  aims: start < 300 ms: %s; RSS < 15 MB: %s; replacement < 20 ms: %s", base.start < 300 and "met" or "MISSED",
      base.rss < 15 * 1024 and "met" or "MISSED", base.kill < 20 and "met" or "MISSED")
  end
  if scale then
    local r = scale
    put("\nscale: %d deployments of sleep.sh (`exec sleep`), 1 replica each, through the API:", r.n)
    if r.error then put("  ERROR: %s", r.error) end
    if r.server_died then put("  ERROR: %s", r.server_died) end
    put("  all running after %s (requests done after %.0f ms; POST p50 %.1f ms p99 %.1f ms; %d errors%s)",
      r.start_ms and string.format("%.0f ms", r.start_ms) or string.format("NEVER (%s running)", tostring(r.running)),
      r.requests_ms or 0, r.post_p50 or 0, r.post_p99 or 0, r.post_errors or 0,
      r.post_error and (": " .. r.post_error) or "")
    put("  server RSS %.1f MB (idle before %.1f MB; after the GET runs %.1f MB); open fds %s (RLIMIT_NOFILE %s);"
      .. " budget 50 MB: %s", (r.rss_kb or 0) / 1024, (r.idle_kb or 0) / 1024, (r.rss_after_kb or 0) / 1024,
      tostring(r.fds), tostring(r.nofile), (r.rss_kb or 1e9) < 50 * 1024 and "met" or "MISSED")
    put("  of which the data plane (ports): %.1f MB", (r.dataplane_kb or 0) / 1024)
    put("  helper processes (not workloads): %s, Pss total %.1f MB", tostring(r.helpers), (r.helper_pss_kb or 0) / 1024)
    if r.kills then
      put("  kill -9 of %d: replaced after median %.1f ms (max %.1f); running after: %s of %d", #r.kills,
        median(r.kills), pct(r.kills, 1), tostring(r.running_after), r.n)
    end
    for _, which in ipairs({ "get_paced", "get_unpaced" }) do
      local g = r[which]
      if g then
        put("  GET .../deployments/NAME %s: p50 %.2f ms p99 %.2f ms max %.2f ms, %.0f req/s, %d errors%s",
          which == "get_paced" and "paced 1,000/s" or "back to back ", g.p50, g.p99, g.max, g.rps, g.errors,
          which == "get_paced" and string.format("   budget p99 < 2 ms: %s", g.p99 < 2 and "met" or "MISSED") or "")
      end
    end
    if r.list_ms then
      put("  GET .../deployments (all %d): %.0f ms, %d bytes, status %s", r.n, r.list_ms, r.list_bytes,
        tostring(r.list_status))
    end
    put("  server stop with %d running: %.0f ms; workloads left after: %d; 'error' lines in server.log: %d%s", r.n,
      r.stop_ms or 0, r.leftovers or 0, r.log_errors or 0,
      (r.log_sample or "") ~= "" and ("\n    " .. r.log_sample) or "")
  end
  io.write(table.concat(out, "\n"), "\n")
end

-- Main -------------------------------------------------------------------------------

local function main()
  uv.fs_mkdir(APP_DIR, tonumber("755", 8))
  write(APP, 'import time\nprint("up", flush=True)\ntime.sleep(1e9)\n', tonumber("644", 8))
  assert(uv.fs_stat(PYTHON), PYTHON .. " not found (PRISN_BENCH_PYTHON)")
  local all = { prisn_tool("prisn api", "api"), prisn_tool("prisn api iso0", "api", { isolation = 0 }),
    prisn_tool("prisn cli", "cli"), prisn_tool("prisn -r N", "replicas"), pm2_tool(), supervisord_tool(),
    direct_tool() }
  local tools, skipped = {}, {}
  for _, t in ipairs(all) do
    local ok, why = t.available()
    if ONLY and not ONLY[t.name] then ok = false end
    if ok then tools[#tools + 1] = t elseif why then skipped[#skipped + 1] = t.name .. ": " .. why end
  end
  for _, line in ipairs(skipped) do io.stderr:write("SKIPPED ", line, "\n") end
  local results = {}
  for _, t in ipairs(tools) do results[t.name] = {} end
  for round = 1, ROUNDS do
    for k = 0, #tools - 1 do
      local t = tools[(k + round - 1) % #tools + 1] -- a different order each round
      io.stderr:write(string.format("round %d: %s ... ", round, t.name))
      local ok, r = xpcall(one_round, debug.traceback, t, round)
      if not ok then
        pcall(t.stop)
        r = { error = tostring(r):match("[^\n]*"), kills = {}, leftovers = 0 }
      end
      table.insert(results[t.name], r)
      io.stderr:write(string.format("%s ms, RSS %.1f MB, kill %s ms%s\n", tostring(r.start_ms and
        math.floor(r.start_ms)), (r.rss_kb or 0) / 1024, tostring(median(r.kills)),
        r.error and (" ERROR " .. r.error) or ""))
      sleep_ms(1000)
    end
  end
  local scale
  if BIG > 0 and (not ONLY or ONLY.scale) then
    io.stderr:write(string.format("scale: %d deployments ...\n", BIG))
    scale = scale_part(BIG)
  end
  report(tools, results, scale, skipped)
end

local ok, err = xpcall(main, debug.traceback)
for pid in pairs(detached) do uv.kill(pid, "sigkill") end
common.stop_children(15)
tick:stop()
tick:close()
if os.getenv("PRISN_BENCH_KEEP") == "1" then io.stderr:write("kept ", tmp, "\n") else sh("rm -rf " .. tmp) end
if not ok then error(err, 0) end
