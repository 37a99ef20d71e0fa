-- Benchmark of the control plane's REST API (issue 5, "Performance").
--
--   build/prisn lua tests/bench/api.lua [ROUNDS] [SECONDS] [JOBS]
--
-- ROUNDS (default 3) interleaved rounds of SECONDS (default 4) per load run;
-- JOBS (default 5000) no-op jobs per throughput run. Environment:
--   PRISN_BENCH_RUNNING="1,2,4,8"  the PRISN_MAX_RUNNING_JOBS values to try
--                                  (default: 2 x CPUs, the server's default,
--                                  first, then 1, CPUs and 4 x CPUs)
--   PRISN_BENCH_PARTS=get,jobs     run only these parts (default both; RSS and
--                                  the in-process breakdown always run)
--   PRISN_BENCH_PERF=1             also `perf record -g` the server during the
--                                  first 8-connection GET run, and the server
--                                  with every process it starts during the
--                                  first job run, and print the top symbols
--                                  (by command name for the jobs)
--   PRISN_BENCH_ISOLATION=0        the isolation level of the jobs (default: the
--                                  server's, 1 where namespaces work)
--   TMPDIR=/dev/shm                where the temporary PRISN_HOME goes
--                                  (default /tmp; see the note at mkdtemp)
--   PRISN_BENCH_SERVER_LUA=FILE    run `prisn lua FILE` as the server instead of
--                                  `prisn server start --foreground` (e.g. a
--                                  profiling wrapper around prisn.server.run;
--                                  it gets PRISN_HOME like the server)
--
-- Against a server on loopback in a temporary PRISN_HOME holding 1,000 jobs
-- (written straight into state.db through prisn.store.jobs):
--
-- 1. GET /api/v1/namespaces/default/jobs/{id}: p50/p99 with one keep-alive
--    connection and sequential requests (`wrk -c1 -t1 --latency`), and
--    requests/s at 8 connections (`wrk -c8 -t2`). Baselines in the same run,
--    interleaved: GET /health (no auth, no database) and GET /version (auth,
--    no job lookup), so the ratios show what auth, SQLite and JSON cost.
--    Budget: p99 under 2 ms. Without wrk, a small Lua client does the same.
-- 2. No-op jobs (a `#!/bin/bash` script running `true`) submitted with POST
--    .../jobs {"script": "/abs/noop.sh"} as fast as the server takes them (4
--    keep-alive connections), for each PRISN_MAX_RUNNING_JOBS value: jobs
--    completed per minute (JOBS / time from the first POST to the last job's
--    finished_at), whether every accepted job is recorded succeeded with exit
--    code 0, the POST latency, and the CPU each job cost: the script's (from
--    the baseline), the rest of its processes' (job host, runner, sandbox
--    init) and the server's own (/proc/PID/stat). The rest is counted in a
--    cgroup holding the server and all it starts (as root, cgroup v1 cpuacct
--    or v2), less the server's and the script's; without one, as the
--    machine's busy time in /proc/stat less the server's, this client's and
--    the script's (then run it on an otherwise idle machine).
--    Baseline, just before each run: this process running the same script as
--    many at a time, no server. Target (issue 17): 45,000 a minute at isolation
--    level 1, and the ratio to the baseline.
-- 3. Submit -> process started while slots are free: 200 jobs, one at a
--    time, 20 ms apart, running a script that appends bash's $EPOCHREALTIME
--    to a file. Three readings: the server's prisn_job_scheduling_latency_
--    seconds histogram (from /metrics; p50/p99 interpolated as Prometheus'
--    histogram_quantile does), started_at - created_at in state.db (ms
--    resolution), and POST sent -> the script running (µs; bash's start-up
--    included). Budget p99 < 5 ms.
-- 4. Server RSS (VmRSS in /proc/PID/status), idle: after start, after the GET
--    runs, 2 s after the first job run. Budget 15 MB.
-- 5. In this process: the cost of each step of one GET of a job (route, token
--    check, lookup, public shape, JSON) and of per-job steps (runner
--    registry, detection, spawning and starting a prisn process), for hot
--    spots. The scripts live in a folder readable by all: a root server runs
--    workloads as an unprivileged user.
--
-- Loopback only, offline, bounded in time; every process started here
-- (servers, wrk, perf) is stopped by its pid, and the temporary home removed.
local ISOLATION = math.tointeger(tonumber(os.getenv("PRISN_BENCH_ISOLATION") or ""))
local uv = require("luv")
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local common = require("common")
local run_until, sleep_ms, finish = common.run_until, common.sleep_ms, common.finish
local sh, write, read, median = common.sh, common.write, common.read, common.median
local cjson = require("cjson")

local ROUNDS = tonumber(arg[1]) or 3
local SECONDS = tonumber(arg[2]) or 4
local JOBS = tonumber(arg[3]) or 5000
local SEED_JOBS = 1000
local SUBMIT_CONNECTIONS = 4
local PROBE_JOBS = 200
local PRISN = arg[-1] or uv.exepath()
local CPUS = #uv.cpu_info()
local PERF = os.getenv("PRISN_BENCH_PERF") == "1"
local PARTS = {}
for part in (os.getenv("PRISN_BENCH_PARTS") or "get,jobs"):gmatch("[%w]+") do PARTS[part] = true end

-- Nearest-rank percentile of a sorted list.
local function pct(sorted, q)
  if #sorted == 0 then return 0 / 0 end
  return sorted[math.max(1, math.ceil(q * #sorted))]
end

local function now_us()
  local sec, usec = uv.gettimeofday()
  return sec * 1000000 + usec
end

-- A ticking timer keeps uv.run("once") from sleeping past a deadline (waits
-- nest: a condition may itself wait for an HTTP answer).
local tick = common.ticker(10)

-- TMPDIR=/dev/shm puts PRISN_HOME on tmpfs: on an ext4 without a journal
-- (this project's CI machines) creating a file scans the inodes deleted in
-- the last seconds to minutes, so file creation gets slower the more files
-- earlier runs removed; tmpfs shows the cost without that.
local tmp = assert(uv.fs_mkdtemp((os.getenv("TMPDIR") or "/tmp") .. "/prisn-bench-api-XXXXXX"))
local home = tmp .. "/home"
local base_env = {}
for k, v in pairs(uv.os_environ()) do
  if not (k == "PRISN_DEV" or k == "PRISN_HOME" or k:match("^PRISN_MAX_") or k:match("^PRISN_HTTP_")
      or k == "PRISN_CONTEXT" or k == "PRISN_SERVER" or k == "PRISN_TOKEN") then
    base_env[#base_env + 1] = k .. "=" .. v
  end
end

-- Child processes ------------------------------------------------------------


-- Starts `file` with `args`; returns { pid, done, code, out (with capture) }.
local function spawn(file, args, opts)
  opts = opts or {}
  return common.spawn(file, args, { env = opts.env or base_env, stdout = opts.capture })
end

-- The server and everything it starts go into a cgroup of their own when
-- this process may make one (root, cgroup v1 cpuacct or v2): its CPU counter
-- holds the server's and its jobs' CPU, exited processes included, and none
-- of the other work on the machine. Without one, the machine's busy time
-- less this client's stands in (so the machine must be idle).
local cgroup = (function()
  if uv.getuid() ~= 0 then return nil end
  for _, c in ipairs({
    { dir = "/sys/fs/cgroup/cpuacct", counter = "cpuacct.usage", scale = 1e-9, pattern = "(%d+)" },
    { dir = "/sys/fs/cgroup/unified", counter = "cpu.stat", scale = 1e-6, pattern = "usage_usec (%d+)" },
    { dir = "/sys/fs/cgroup", counter = "cpu.stat", scale = 1e-6, pattern = "usage_usec (%d+)" },
  }) do
    local path = c.dir .. "/prisn-bench-api-" .. uv.os_getpid()
    if uv.fs_stat(c.dir .. "/cgroup.procs") and uv.fs_mkdir(path, tonumber("755", 8)) then
      if uv.fs_stat(path .. "/" .. c.counter) then
        c.path = path
        return c
      end
      uv.fs_rmdir(path)
    end
  end
end)()

-- CPU seconds used in the bench's cgroup so far; nil without one.
local function cgroup_cpu_s()
  if not cgroup then return nil end
  local v = tonumber((read(cgroup.path .. "/" .. cgroup.counter) or ""):match(cgroup.pattern) or "")
  return v and v * cgroup.scale
end

-- Moves `pid` into the bench's cgroup (its children follow it).
local function cgroup_join(pid)
  if cgroup then write(cgroup.path .. "/cgroup.procs", tostring(pid)) end
end

-- Empties and removes the bench's cgroup (whatever is left in it goes back
-- to the root group).
local function cgroup_remove()
  if not cgroup then return end
  local root = cgroup.path:match("^(.*)/[^/]*$")
  for pid in (read(cgroup.path .. "/cgroup.procs") or ""):gmatch("%d+") do
    pcall(write, root .. "/cgroup.procs", pid)
  end
  uv.fs_rmdir(cgroup.path)
end

-- The server -------------------------------------------------------------------

local server -- { proc, pid, host, port, url, token, max_running }

local function start_server(max_running)
  local env = { table.unpack(base_env) }
  env[#env + 1] = "PRISN_HOME=" .. home
  env[#env + 1] = "PRISN_MAX_RUNNING_JOBS=" .. max_running
  env[#env + 1] = "PRISN_MAX_QUEUED_JOBS=" .. (JOBS + 1000)
  uv.fs_unlink(home .. "/server.json")
  local wrapper = os.getenv("PRISN_BENCH_SERVER_LUA")
  -- Plain HTTP on TCP (--insecure-http): the figures are the API's, comparable
  -- with earlier runs; TLS's cost is the handshake per connection plus the
  -- record layer (see docs/SERVER.md).
  local proc = spawn(PRISN, wrapper and { "lua", wrapper } or { "server", "start", "--foreground", "--insecure-http" },
    { env = env })
  local info
  assert(run_until(function()
    if proc.done then return true end
    local ok, v = pcall(cjson.decode, read(home .. "/server.json") or "")
    info = ok and type(v) == "table" and v.pid == proc.pid and v or nil
    return info ~= nil
  end, 10) and info, "the server did not start (see " .. home .. "/server.log)")
  cgroup_join(proc.pid)
  local host, port = info.address:match("^http://([%d.]+):(%d+)$")
  server = { proc = proc, pid = proc.pid, host = host, port = tonumber(port), url = info.address,
    token = read(home .. "/admin.token"):gsub("%s+$", ""), max_running = max_running }
end

local function stop_server()
  if not server then return end
  uv.kill(server.pid, "sigterm")
  finish(server.proc, 20)
  server = nil
end

local function rss_kb(pid)
  local status = read("/proc/" .. pid .. "/status") or ""
  return tonumber(status:match("VmRSS:%s*(%d+)")), tonumber(status:match("VmHWM:%s*(%d+)"))
end

-- CPU seconds of `pid` so far: its own, and its reaped children's (the job
-- runners and, through them, the scripts).
local CLK_TCK = tonumber(sh("getconf CLK_TCK")) or 100
local function cpu_s(pid)
  local stat = read("/proc/" .. pid .. "/stat") or ""
  local rest = stat:match("%) (.*)$") or ""
  local f = {}
  for v in rest:gmatch("%S+") do f[#f + 1] = v end
  -- f[1] is field 3 of proc(5) (state): utime is 14, stime 15, cutime 16, cstime 17
  if not f[15] then return 0, 0 end
  return (tonumber(f[12]) + tonumber(f[13])) / CLK_TCK, (tonumber(f[14]) + tonumber(f[15])) / CLK_TCK
end

-- CPU seconds the whole machine has been busy (/proc/stat: all but idle,
-- iowait and steal).
local function machine_busy_s()
  local f = {}
  for v in ((read("/proc/stat") or ""):match("^cpu%s+([^\n]*)") or ""):gmatch("%d+") do f[#f + 1] = tonumber(v) end
  if not f[7] then return 0 end
  return (f[1] + f[2] + f[3] + f[6] + f[7]) / CLK_TCK
end


-- A small HTTP/1.1 client: keep-alive, pipelining, Content-Length bodies ------

local Conn = {}
Conn.__index = Conn

local function connect()
  local tcp = uv.new_tcp()
  local done, err
  tcp:connect(server.host, server.port, function(e) done, err = true, e end)
  assert(run_until(function() return done end, 5) and not err, "cannot connect: " .. tostring(err))
  tcp:nodelay(true)
  local c = setmetatable({ tcp = tcp, buf = "", pending = {} }, Conn)
  tcp:read_start(function(e, data) c:on_data(e, data) end)
  return c
end

function Conn:on_data(err, data)
  if err or not data then
    for _, cb in ipairs(self.pending) do cb(nil, err or "closed") end
    self.pending = {}
    return
  end
  local answers
  answers, self.buf = common.http_responses(self.buf .. data)
  for _, a in ipairs(answers) do table.remove(self.pending, 1)(a.status, a.body) end
end

-- Sends a request; cb(status, body) gets the answer (status nil: connection lost).
function Conn:send(method, path, body, cb, auth)
  local req = { method .. " " .. path .. " HTTP/1.1", "Host: " .. server.host }
  if auth ~= false then req[#req + 1] = "Authorization: Bearer " .. server.token end
  if body then
    req[#req + 1] = "Content-Type: application/json"
    req[#req + 1] = "Content-Length: " .. #body
  end
  req[#req + 1] = ""
  req[#req + 1] = body or ""
  self.pending[#self.pending + 1] = cb
  self.tcp:write(table.concat(req, "\r\n"))
end

function Conn:request(method, path, body)
  local status, text, done
  self:send(method, path, body, function(s, b) status, text, done = s, b, true end)
  assert(run_until(function() return done end, 30), method .. " " .. path .. ": no answer")
  return status, text
end

function Conn:close()
  if not self.tcp:is_closing() then self.tcp:close() end
end

-- Load runs ----------------------------------------------------------------------

local have_wrk = sh("command -v wrk") ~= ""

local UNIT = { us = 1e-3, ms = 1, s = 1e3 }
local function wrk_ms(out, q)
  local v, unit = out:match("\n%s*" .. q .. "%%%s+([%d.]+)(%a+)")
  return v and tonumber(v) * UNIT[unit]
end

-- One load run on `path` with `conns` connections for SECONDS: { p50, p99 (ms),
-- rps, errors (non-2xx answers, socket errors) }.
local function load(path, conns, auth)
  if have_wrk then
    local args = { "-c" .. conns, "-t" .. math.min(conns, 2), "-d" .. SECONDS .. "s", "--latency" }
    if auth then args[#args + 1] = "-H"; args[#args + 1] = "Authorization: Bearer " .. server.token end
    args[#args + 1] = server.url .. path
    local out = finish(spawn("wrk", args, { capture = true }), SECONDS + 30)
    local errors = tonumber(out:match("Non%-2xx or 3xx responses: (%d+)") or "0")
    if out:match("Socket errors") then errors = errors + 1 end
    return { p50 = wrk_ms(out, 50), p99 = wrk_ms(out, 99), rps = tonumber(out:match("Requests/sec:%s*([%d.]+)")),
      errors = errors }
  end
  local lat, errors, live = {}, 0, conns
  local t0 = uv.hrtime()
  local deadline = t0 + SECONDS * 1e9
  for _ = 1, conns do
    local c = connect()
    local function go()
      if uv.hrtime() >= deadline then live = live - 1; c:close(); return end
      local sent = uv.hrtime()
      c:send("GET", path, nil, function(status)
        if status ~= 200 then errors = errors + 1 end
        lat[#lat + 1] = (uv.hrtime() - sent) / 1e6
        if status then go() else live = live - 1 end
      end, auth)
    end
    go()
  end
  run_until(function() return live == 0 end, SECONDS + 30)
  local elapsed = (uv.hrtime() - t0) / 1e9
  table.sort(lat)
  return { p50 = pct(lat, 0.5), p99 = pct(lat, 0.99), rps = #lat / elapsed, errors = errors }
end

-- `perf record -g` of the server for `seconds` (PRISN_BENCH_PERF=1 only).
-- `inherit`: the processes the server starts from now on (job host,
-- runners, sandboxes, scripts) too, and the report is by command name.
local function perf_start(name, seconds, inherit)
  if not PERF or sh("command -v perf") == "" then return nil end
  local file = tmp .. "/" .. name:gsub("[^%w]+", "-") .. ".perf"
  local args = { "record", "-F", "999", "-g", "-p", tostring(server.pid), "-o", file, "--", "sleep",
    tostring(seconds) }
  if not inherit then table.insert(args, 2, "--no-inherit") end
  local p = spawn("perf", args, { capture = true })
  sleep_ms(300)
  return { proc = p, name = name, file = file, inherit = inherit }
end

local perf_reports = {}
local function perf_finish(perf)
  if not perf then return end
  finish(perf.proc, 60)
  local function top(sort, limit)
    local out = sh(string.format("perf report -i %s --stdio --no-children --sort %s -g none "
      .. "--percent-limit %s 2>/dev/null", perf.file, sort, limit))
    local lines = {}
    for line in out:gmatch("[^\n]+") do
      if not line:match("^#") and line:match("%%") then lines[#lines + 1] = "  " .. line:gsub("%s+$", "") end
    end
    return table.concat(lines, "\n", 1, math.min(#lines, 30))
  end
  if perf.inherit then
    perf_reports[#perf_reports + 1] = "perf (self time, the server and every process it started): " .. perf.name
      .. "\n" .. top("comm", 0.5) .. "\n" .. top("comm,dso,symbol", 0.7)
  else
    perf_reports[#perf_reports + 1] = "perf (self time, server pid): " .. perf.name .. "\n" .. top("dso,symbol", 1.5)
  end
end

-- Server state read through the API and from state.db ------------------------

-- The cumulative buckets of histogram `name` in /metrics text: { {le, count} }.
local function histogram(text, name)
  local buckets = {}
  for le, count in text:gmatch(name .. '_bucket{le="([^"]+)"} (%d+)') do
    buckets[#buckets + 1] = { le = le == "+Inf" and math.huge or tonumber(le), count = tonumber(count) }
  end
  return buckets
end

-- Quantile q (in the unit of le) of the observations between two scrapes,
-- interpolated within the bucket as Prometheus' histogram_quantile does.
local function histogram_quantile(before, after, q)
  local b = {}
  for i, bucket in ipairs(after) do
    b[i] = { le = bucket.le, count = bucket.count - ((before[i] or {}).count or 0) }
  end
  local total = b[#b] and b[#b].count or 0
  if total == 0 then return 0 / 0 end
  local rank = q * total
  local lower, lower_count = 0, 0
  for _, bucket in ipairs(b) do
    if bucket.count >= rank then
      if bucket.le == math.huge then return lower end
      return lower + (bucket.le - lower) * (rank - lower_count) / math.max(bucket.count - lower_count, 1)
    end
    lower, lower_count = bucket.le, bucket.count
  end
  return lower
end

local function scheduling_histogram(c)
  local status, text = c:request("GET", "/metrics")
  assert(status == 200, "/metrics answered " .. tostring(status))
  return histogram(text, "prisn_job_scheduling_latency_seconds")
end

-- Jobs finished (succeeded or failed) and not (queued, running, ...), from
-- GET /api/v1/status.
local function job_counts(c)
  local status, text = c:request("GET", "/api/v1/status")
  assert(status == 200, "/api/v1/status answered " .. tostring(status))
  local final, open = 0, 0
  for state, n in pairs(cjson.decode(text).jobs) do
    if state == "succeeded" or state == "failed" then final = final + n else open = open + n end
  end
  return final, open
end

local store = require("prisn.store")
local jobs = require("prisn.store.jobs")
local clock = require("prisn.clock")

-- The records of the jobs with these ids, read from state.db beside the
-- running server (WAL: readers do not block it). Returns id -> row, and how
-- many rows the id range holds (more than #ids: a duplicate or a stray job).
local function recorded(ids)
  local lo, hi = ids[1], ids[1]
  for _, id in ipairs(ids) do
    if id < lo then lo = id end
    if id > hi then hi = id end
  end
  local db = store.open(home)
  local rows = assert(db:rows("SELECT id, state, exit_code, created_at, started_at, finished_at "
    .. "FROM jobs WHERE id >= ? AND id <= ?", lo, hi))
  db:close()
  local by_id = {}
  for _, row in ipairs(rows) do by_id[row.id] = row end
  return by_id, #rows
end

-- 1. GET of one job ------------------------------------------------------------

-- 1,000 finished jobs; returns the id of the one in the middle.
local function seed()
  local db = store.open(home)
  local middle
  store.transaction(db, function()
    for i = 1, SEED_JOBS do
      local t = clock.now_ms()
      local job = jobs.create(db, { script = tmp .. "/noop.sh", runner = "bash", state = "running", detached = true,
        pid = 4242, started_at = t, cwd = tmp, args = { "a", "b" },
        log_path = home .. "/logs/default/jobs/x.log" })
      jobs.finish(db, job.id, { state = "succeeded", reason = "exited", exit_code = 0, finished_at = t + 7 })
      if i == SEED_JOBS // 2 then middle = job.id end
    end
  end)
  db:close()
  return middle
end

-- Interleaved load runs; returns results[conns][name] = { p50 = {}, p99 = {},
-- rps = {}, errors }.
local function bench_gets(gets)
  local c = connect() -- the job is there; and a warm-up
  local status = c:request("GET", gets[#gets].path)
  assert(status == 200, "GET " .. gets[#gets].path .. " answered " .. tostring(status))
  c:close()
  local results = {}
  for _, conns in ipairs({ 1, 8 }) do
    results[conns] = {}
    for _, g in ipairs(gets) do results[conns][g.name] = { p50 = {}, p99 = {}, rps = {}, errors = 0 } end
    for round = 1, ROUNDS do
      local order = {}
      for i = 1, #gets do order[i] = gets[round % 2 == 1 and i or #gets + 1 - i] end
      for _, g in ipairs(order) do
        local perf = conns == 8 and round == 1 and g == gets[#gets] and perf_start("GET job, 8 connections",
          SECONDS - 0.5)
        local r = load(g.path, conns, g.auth)
        perf_finish(perf)
        local acc = results[conns][g.name]
        acc.p50[#acc.p50 + 1] = r.p50
        acc.p99[#acc.p99 + 1] = r.p99
        acc.rps[#acc.rps + 1] = r.rps
        acc.errors = acc.errors + (r.errors or 0)
      end
    end
  end
  return results
end

-- 2. No-op jobs as fast as the server takes them -------------------------------

-- Submits `n` jobs over SUBMIT_CONNECTIONS connections, waits until all have
-- finished, checks their records.
local function flood(n, perf_name)
  local poll = connect()
  local hist_before = scheduling_histogram(poll)
  local final_before = job_counts(poll)
  local body = cjson.encode({ script = tmp .. "/noop.sh", isolation = ISOLATION })
  local ids, lat, rejected, failed, issued = {}, {}, 0, {}, 0
  local own0 = cpu_s(server.pid)
  local busy0, client0, group0 = machine_busy_s(), cpu_s("self"), cgroup_cpu_s()
  local t0_us, t0 = now_us(), uv.hrtime()
  local perf = perf_name and perf_start(perf_name, math.max(2, n / 1000), true)
  local conns = {}
  for i = 1, SUBMIT_CONNECTIONS do
    local c = connect()
    conns[i] = c
    local function go(retry)
      if not retry then
        if issued >= n then return end
        issued = issued + 1
      end
      local sent = uv.hrtime()
      c:send("POST", "/api/v1/namespaces/default/jobs", body, function(status, text)
        if status == 201 then
          lat[#lat + 1] = (uv.hrtime() - sent) / 1e6
          ids[#ids + 1] = cjson.decode(text).id
          go(false)
        elseif status == 429 then -- the queue is full: the same job again, shortly
          rejected = rejected + 1
          local t = uv.new_timer()
          t:start(5, 0, function() t:close(); go(true) end)
        else
          failed[#failed + 1] = tostring(status) .. " " .. tostring(text)
          if status then go(false) end
        end
      end)
    end
    go(false)
  end
  local bound = 60 + n / 20
  run_until(function() return #ids + #failed >= n end, bound)
  local submit_s = (uv.hrtime() - t0) / 1e9
  for _, c in ipairs(conns) do c:close() end
  local complete = run_until(function()
    local final, open = job_counts(poll)
    if final - final_before >= #ids and open == 0 then return true end
    sleep_ms(50)
    return false
  end, bound)
  perf_finish(perf)
  local own1 = cpu_s(server.pid)
  local busy1, client1, group1 = machine_busy_s(), cpu_s("self"), cgroup_cpu_s()
  local hist_after = scheduling_histogram(poll)
  poll:close()
  local by_id, rows = recorded(ids)
  local succeeded, last_finish, waits = 0, 0, {}
  for _, id in ipairs(ids) do
    local row = by_id[id]
    if row and row.state == "succeeded" and row.exit_code == 0 then succeeded = succeeded + 1 end
    if row and row.finished_at and row.finished_at > last_finish then last_finish = row.finished_at end
    if row and row.started_at then waits[#waits + 1] = row.started_at - row.created_at end
  end
  table.sort(lat)
  table.sort(waits)
  local span_s = (last_finish * 1000 - t0_us) / 1e6
  return {
    accepted = #ids, failed = #failed, first_failure = failed[1], rejected = rejected, succeeded = succeeded,
    all_recorded = complete and #ids == n and succeeded == n and rows == n,
    submit_s = submit_s, span_s = span_s, per_min = #ids / span_s * 60,
    server_cpu_ms = (own1 - own0) * 1000 / math.max(#ids, 1),
    -- Everything but the server and this client: the jobs' processes (all
    -- of the cgroup but the server, when there is one).
    children_cpu_ms = ((group0 and (group1 - group0) or ((busy1 - busy0) - (client1 - client0)))
      - (own1 - own0)) * 1000 / math.max(#ids, 1),
    post_p50 = pct(lat, 0.5), post_p99 = pct(lat, 0.99),
    hist_p50 = histogram_quantile(hist_before, hist_after, 0.5) * 1e3,
    hist_p99 = histogram_quantile(hist_before, hist_after, 0.99) * 1e3,
    db_p50 = pct(waits, 0.5), db_p99 = pct(waits, 0.99),
  }
end

-- The baseline: the same script run `n` times by this process (uv.spawn),
-- `parallel` at a time, no server, no records. Returns runs per minute and
-- the CPU ms each run took.
local function direct(n, parallel)
  local started, finished, failures = 0, 0, 0
  local _, children0 = cpu_s("self")
  local t0 = uv.hrtime()
  local function next_one()
    if started >= n then return end
    started = started + 1
    local handle
    handle = uv.spawn(tmp .. "/noop.sh", { args = {}, env = base_env }, function(code)
      handle:close()
      if code ~= 0 then failures = failures + 1 end
      finished = finished + 1
      next_one()
    end)
    if not handle then failures, finished = failures + 1, finished + 1 end
  end
  for _ = 1, parallel do next_one() end
  run_until(function() return finished >= n end, 60 + n / 20)
  assert(failures == 0, failures .. " direct runs of noop.sh failed")
  local rate = finished / ((uv.hrtime() - t0) / 1e9) * 60
  local _, children1 = cpu_s("self")
  return rate, (children1 - children0) * 1000 / finished
end

-- 3. One job at a time, slots free: submit -> started, three ways ------------

local function probe()
  local c = connect()
  local hist_before = scheduling_histogram(c)
  local sent_at, ids = {}, {}
  for i = 1, PROBE_JOBS do
    sent_at[i] = now_us()
    local status, text = c:request("POST", "/api/v1/namespaces/default/jobs",
      cjson.encode({ script = tmp .. "/stamp.sh", args = { tostring(i) }, isolation = ISOLATION }))
    assert(status == 201, "probe submit answered " .. tostring(status) .. " " .. tostring(text))
    ids[#ids + 1] = cjson.decode(text).id
    sleep_ms(20)
  end
  run_until(function()
    local _, open = job_counts(c)
    if open > 0 then sleep_ms(20) end
    return open == 0
  end, 30)
  local hist_after = scheduling_histogram(c)
  c:close()
  local by_id = recorded(ids)
  local waits, stamps = {}, {}
  for _, id in ipairs(ids) do
    local row = by_id[id]
    if row and row.started_at then waits[#waits + 1] = row.started_at - row.created_at end
  end
  for seq, s, us in (read(tmp .. "/stamps") or ""):gmatch("(%d+) (%d+)[.,](%d+)") do
    stamps[#stamps + 1] = (tonumber(s) * 1000000 + tonumber(us) - sent_at[tonumber(seq)]) / 1e3
  end
  table.sort(waits)
  table.sort(stamps)
  return {
    n = #ids, started = #stamps,
    hist_p50 = histogram_quantile(hist_before, hist_after, 0.5) * 1e3,
    hist_p99 = histogram_quantile(hist_before, hist_after, 0.99) * 1e3,
    db_p50 = pct(waits, 0.5), db_p99 = pct(waits, 0.99),
    e2e_p50 = pct(stamps, 0.5), e2e_p99 = pct(stamps, 0.99),
  }
end

-- 5. In-process costs ------------------------------------------------------------

-- Median over 5 batches of the µs per call of fn; one line per step.
local function breakdown(job_id, token)
  local lines = {}
  local function cost(name, fn, n)
    n = n or 5000
    fn()
    collectgarbage()
    local samples = {}
    for _ = 1, 5 do
      local t0 = uv.hrtime()
      for _ = 1, n do fn() end
      samples[#samples + 1] = (uv.hrtime() - t0) / 1e3 / n
    end
    lines[#lines + 1] = string.format("  %-62s %8.1f µs", name, median(samples))
  end
  local tokens = require("prisn.store.tokens")
  local json = require("prisn.output.json")
  local http = require("prisn.server.http")
  local runners = require("prisn.exec.runners")
  local db = store.open(home)
  local key = tokens.load_key(home)
  local router = require("prisn.server.router").new()
  for _, area in ipairs(require("prisn.server").API_MODULES) do
    for _, route in ipairs(require("prisn.server.api." .. area)) do router:add(route) end
  end
  local path = "/api/v1/namespaces/default/jobs/" .. job_id
  local job = jobs.get(db, "default", job_id)
  local public = jobs.to_public(job)
  local msg = { method = "GET", path = path, headers = { authorization = "Bearer " .. token } }
  local fake = { router = router, db = db, token_key = key, home = home }
  lines[#lines + 1] = "one GET of a job:"
  cost("router:match (split the path, walk every route)", function() router:match("GET", path) end)
  cost("tokens.verify (SELECT the token, BLAKE2b, compare)", function() assert(tokens.verify(db, key, token)) end)
  cost("  of which db:first of a token row (prepare, step, finalize)",
    function() db:first("SELECT * FROM tokens WHERE id = ?", "none") end)
  cost("jobs.get (prefix range query, decode)", function() jobs.get(db, "default", job_id) end)
  local stmt = db:prepare("SELECT * FROM jobs WHERE id = ?")
  cost("  the row through a cached prepared statement",
    function() stmt:bind(job_id); stmt:step(); stmt:reset() end)
  cost("jobs.to_public", function() jobs.to_public(job) end)
  cost("prisn.output.json.encode(public job), pretty, sorted keys", function() json.encode(public) end)
  cost("  of which value.check", function() require("prisn.output.value").check(public, true) end)
  cost("  cjson.encode of the same table, for comparison", function() cjson.encode(public) end)
  cost("http.handle GET job: route + auth + handler (no JSON)", function() http.handle(fake, msg) end)
  cost("http.handle GET /health", function() http.handle(fake, { method = "GET", path = "/health", headers = {} }) end)
  lines[#lines + 1] = "per job (on the server's loop at submit, and again in the job's `prisn __job-run`):"
  cost("runners.load (lists PRISN_HOME/runners, checks every built-in)", function() runners.load({ home = home }) end,
    200)
  local registry = runners.load({ home = home })
  cost("runners.detect (reads the shebang)", function() runners.detect(registry, tmp .. "/noop.sh", {}) end, 1000)
  -- How long a spawn holds the caller: clone, the child's set-up, its exec.
  local proc = require("prisn.core.proc")
  local function spawn_cost(name, file, argv)
    local samples = {}
    for i = 1, 30 do
      local t0 = uv.hrtime()
      local p = assert(proc.spawn({ file = file, argv = argv, env = base_env, stdin = "null", stdout = "null",
        stderr = "null", session = true }))
      samples[i] = (uv.hrtime() - t0) / 1e3
      p:wait()
      p:close()
    end
    lines[#lines + 1] = string.format("  %-62s %8.1f µs", name, median(samples))
  end
  spawn_cost("proc.spawn of `prisn version` (returns once it has exec'd)", PRISN, { PRISN, "version" })
  local wall = {}
  for i = 1, 20 do
    local t0 = uv.hrtime()
    local p = assert(proc.spawn({ file = PRISN, argv = { PRISN, "version" }, env = base_env, stdin = "null",
      stdout = "null", stderr = "null" }))
    p:wait()
    p:close()
    wall[i] = (uv.hrtime() - t0) / 1e3
  end
  lines[#lines + 1] = string.format("  %-62s %8.1f µs", "`prisn version` start to exit (a job runner's floor)",
    median(wall))
  local bash_wall = {}
  for i = 1, 20 do
    local t0 = uv.hrtime()
    local p = assert(proc.spawn({ file = tmp .. "/noop.sh", argv = { tmp .. "/noop.sh" }, env = base_env,
      stdin = "null", stdout = "null", stderr = "null" }))
    p:wait()
    p:close()
    bash_wall[i] = (uv.hrtime() - t0) / 1e3
  end
  lines[#lines + 1] = string.format("  %-62s %8.1f µs", "noop.sh start to exit (the workload)", median(bash_wall))
  stmt:finalize()
  db:close()
  return lines
end

-- Report ---------------------------------------------------------------------------

local function verdict(ok) return ok and "met" or "MISSED" end

local function report(get_results, runs, latency, rss, lines)
  local out = {}
  local function put(fmt, ...) out[#out + 1] = string.format(fmt, ...) end
  local load_avg = string.format("%.2f %.2f %.2f", uv.loadavg())
  put("prisn API benchmark: %d CPUs, load average %s (other work on the machine shows in p99s)", CPUS, load_avg)
  if get_results then
    put("\nGET, medians of %d interleaved rounds of %g s each (%s):", ROUNDS, SECONDS,
      have_wrk and "wrk" or "Lua client")
    put("%-40s %-12s %12s  %12s  %12s  %6s  %s", "case", "baseline", "baseline", "prisn", "diff", "ratio", "budget")
    local function med(conns, name, field) return median(get_results[conns][name][field]) end
    local function row(case, conns, name, field, unit, budget)
      local base, with = med(conns, "GET /health", field), med(conns, name, field)
      put("%-40s %-12s %9.2f %-2s  %9.2f %-2s  %+9.2f %-2s  x%5.2f  %s", case, "GET /health", base, unit, with, unit,
        with - base, unit, with / base, budget or "")
    end
    local job = "GET job"
    row("GET /version, 1 conn, p50", 1, "GET /version", "p50", "ms")
    row("GET /version, 1 conn, p99", 1, "GET /version", "p99", "ms")
    row("GET job (1,000 stored), 1 conn, p50", 1, job, "p50", "ms")
    local p99 = med(1, job, "p99")
    row("GET job (1,000 stored), 1 conn, p99", 1, job, "p99", "ms", "p99 < 2 ms: " .. verdict(p99 < 2))
    row("GET /version, 8 conns, req/s", 8, "GET /version", "rps", "/s")
    row("GET job (1,000 stored), 8 conns, req/s", 8, job, "rps", "/s", "reported")
    row("GET job (1,000 stored), 8 conns, p99", 8, job, "p99", "ms")
    local errors = 0
    for _, by_name in pairs(get_results) do
      for _, acc in pairs(by_name) do errors = errors + acc.errors end
    end
    if errors > 0 then put("WARNING: %d non-2xx answers or socket errors in the load runs", errors) end
  end
  if runs then
    put("\nno-op jobs through the API (%d per run, submitted on %d connections; default PRISN_MAX_RUNNING_JOBS=%d;"
      .. " baseline: this process running noop.sh `running` at a time):", JOBS, SUBMIT_CONNECTIONS, 2 * CPUS)
    put("  %-8s %14s  %10s  %6s  %9s  %9s  %8s  %8s  %5s  %-28s  %-22s  %s", "running", "bash directly", "prisn",
      "ratio", "submit s", "finish s", "POST p50", "POST p99", "429s", "CPU ms/job: script|runner|srv",
      "all recorded succeeded", "budget")
    local best = runs[1]
    for _, run in ipairs(runs) do
      local r = run.r
      if r.per_min > best.r.per_min then best = run end
      put("  %-8d %10d/min  %6d/min  x%5.2f  %9.1f  %9.1f  %5.1f ms  %5.1f ms  %5d  %-28s  %-22s  %s",
        run.max_running, math.floor(run.base), math.floor(r.per_min), r.per_min / run.base, r.submit_s, r.span_s,
        r.post_p50, r.post_p99, r.rejected, string.format("%.1f | %.1f | %.1f", run.base_cpu_ms,
          r.children_cpu_ms - run.base_cpu_ms, r.server_cpu_ms),
        r.all_recorded and "yes" or string.format("NO (%d of %d%s)", r.succeeded, JOBS,
          r.first_failure and (", " .. r.first_failure:sub(1, 60)) or ""),
        "45,000/min: " .. verdict(r.per_min >= 45000))
    end
    put("  best: running=%d, %d jobs/min. CPU per job: the script alone (run directly), the rest of what the job's"
      .. " processes used (runner), the server itself; counted %s", best.max_running, math.floor(best.r.per_min),
      cgroup and "in a cgroup of the server's (" .. cgroup.counter .. ")" or "as the machine's busy time less this"
      .. " client's (no cgroup: only right on an idle machine)")
    local r1 = runs[1].r
    put("  during the first run, submit -> started (queue wait included): histogram p50 %.1f ms p99 %.1f ms; "
      .. "state.db p50 %d ms p99 %d ms", r1.hist_p50, r1.hist_p99, r1.db_p50, r1.db_p99)
  end
  if latency then
    put("\nsubmit -> process started with slots free (%d jobs one at a time, running=%d):", latency.n, 2 * CPUS)
    put("  prisn_job_scheduling_latency_seconds  p50 %6.2f ms  p99 %6.2f ms", latency.hist_p50, latency.hist_p99)
    put("  state.db started_at - created_at      p50 %6d ms  p99 %6d ms   budget p99 < 5 ms: %s", latency.db_p50,
      latency.db_p99, verdict(latency.db_p99 < 5))
    put("  POST sent -> script running (%d/%d)   p50 %6.2f ms  p99 %6.2f ms   (bash's start-up included)",
      latency.started, latency.n, latency.e2e_p50, latency.e2e_p99)
  end
  local worst = 0
  local parts = {}
  for _, r in ipairs(rss) do
    worst = math.max(worst, r.kb or 0)
    parts[#parts + 1] = string.format("%s %.1f MB", r.name, (r.kb or 0) / 1024)
  end
  put("\nidle server RSS: %s%s   budget 15 MB: %s", table.concat(parts, ", "),
    rss.peak and string.format(" (peak while busy %.1f MB)", rss.peak / 1024) or "", verdict(worst < 15 * 1024))
  put("\nin this process (median of 5 batches):")
  for _, line in ipairs(lines) do put("%s", line) end
  for _, text in ipairs(perf_reports) do put("\n%s", text) end
  io.write(table.concat(out, "\n"), "\n")
end

-- Main -------------------------------------------------------------------------------

local function main()
  -- The scripts' folder is readable by all: as root the server runs workloads
  -- as an unprivileged user (isolation), which must reach them and the stamps.
  uv.fs_chmod(tmp, tonumber("755", 8))
  uv.fs_mkdir(home, tonumber("700", 8))
  write(tmp .. "/noop.sh", "#!/bin/bash\ntrue\n", tonumber("755", 8))
  write(tmp .. "/stamps", "", tonumber("666", 8))
  write(tmp .. "/stamp.sh", "#!/bin/bash\nprintf '%s %s\\n' \"$1\" \"$EPOCHREALTIME\" >> " .. tmp .. "/stamps\n",
    tonumber("755", 8))
  local job_id = seed()

  local default_running = 2 * CPUS
  local settings = {}
  for v in (os.getenv("PRISN_BENCH_RUNNING") or ""):gmatch("%d+") do settings[#settings + 1] = tonumber(v) end
  if #settings == 0 then
    local seen = {}
    for _, v in ipairs({ default_running, 1, CPUS, 4 * CPUS }) do
      if not seen[v] then seen[v] = true; settings[#settings + 1] = v end
    end
  end

  start_server(settings[1])
  sleep_ms(1000)
  local rss = { { name = "after start", kb = rss_kb(server.pid) } }
  local get_results
  if PARTS.get then
    get_results = bench_gets({
      { name = "GET /health", path = "/health", auth = false },
      { name = "GET /version", path = "/version", auth = true },
      { name = "GET job", path = "/api/v1/namespaces/default/jobs/" .. job_id, auth = true },
    })
    sleep_ms(1000)
    rss[#rss + 1] = { name = "after the GET runs", kb = rss_kb(server.pid) }
  end
  local runs, latency
  if PARTS.jobs then
    runs = {}
    for i, max_running in ipairs(settings) do
      if max_running ~= server.max_running then
        stop_server()
        start_server(max_running)
        sleep_ms(500)
      end
      local base, base_cpu_ms = direct(JOBS, max_running)
      runs[i] = { max_running = max_running, base = base, base_cpu_ms = base_cpu_ms,
        r = flood(JOBS, i == 1 and ("jobs, running=" .. max_running) or nil) }
      if i == 1 then
        sleep_ms(2000)
        local kb, peak = rss_kb(server.pid)
        rss[#rss + 1] = { name = string.format("2 s after %d jobs", JOBS), kb = kb }
        rss.peak = peak
        if max_running == default_running then latency = probe() end
      end
    end
    if not latency then
      stop_server()
      start_server(default_running)
      latency = probe()
    end
  end
  stop_server()
  local lines = breakdown(job_id, read(home .. "/admin.token"):gsub("%s+$", ""))
  report(get_results, runs, latency, rss, lines)
end

local ok, err = xpcall(main, debug.traceback)
-- Whatever is still running (after a failure): SIGTERM, then SIGKILL, by pid.
common.stop_children(15)
cgroup_remove()
tick:stop()
tick:close()
sh("rm -rf " .. tmp)
if not ok then error(err, 0) end
