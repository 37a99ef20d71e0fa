-- Benchmark of the deployments API with many deployments running (issue 17):
-- this binary against a baseline binary, in the same run.
--
--   build/prisn lua tests/bench/deployments.lua [ROUNDS] [N]
--
-- ROUNDS (default 3) interleaved rounds; N (default 1000) deployments per
-- server. Environment:
--   PRISN_BENCH_BASE=/path/to/prisn   the baseline binary (e.g. the base commit
--                                     built in another folder); without it
--                                     only this binary is measured
--   PRISN_BENCH_PERF=1                `perf record -g` each server during its
--                                     first round's GET runs; top symbols printed
--   PRISN_BENCH_KEEP=1                keep the temporary folder (homes, perf files)
--   PRISN_DEV=/path/to/tree            passed on to the servers (main.c): their
--                                     Lua from that tree, tried without a rebuild
--   PRISN_BENCH_BASE_DEV=/path/to/tree the base server's PRISN_DEV instead (two
--                                     Lua trees, e.g. with a temporary probe, on
--                                     one binary)
--   PRISN_BENCH_HOLD=SECONDS          once all servers run their N, print their
--                                     pids and wait (to look at them by hand)
--
-- Each binary gets its own server in a temporary PRISN_HOME, and N
-- deployments of sleep.sh (`exec sleep`, 1 replica, default isolation) made
-- through the API; both servers then stay up, all 2 x N workloads running,
-- while the rounds alternate between them (a different order each round), so
-- the load of the shared machine falls on both alike. Per server and round:
--
-- 1. GET .../deployments/NAME (a random one of N): 1,000 requests sent at
--    1,000/s on one keep-alive unix-socket connection (p50, p99, max), then
--    1,000 back to back (p50, p99, req/s) and the server's CPU per GET
--    (utime + stime from /proc/PID/stat over that run: steadier than latency
--    on a busy machine).
--    The floor for that p99: GET /health (no auth, no lookup), 1,000 paced
--    at 1,000/s on the same connection, just before.
-- 2. GET .../deployments (all N), LISTS times: median ms, bytes, and the
--    server's CPU per list; with a base, whether both bodies have the same
--    layout (keys, order, indentation, with the values masked).
-- 3. Server RSS: 3 s after all N run (before any GET), and after each round;
--    the helper processes (prisn-init, descendants of the server that are not
--    workloads) as Pss, in total and per instance.
--
-- Loopback only; every process started here is stopped by its pid, and the
-- temporary folder removed.
local uv = require("luv")
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local common = require("common")
local run_until, sleep_ms, finish = common.run_until, common.sleep_ms, common.finish
local sh, write, read, median = common.sh, common.write, common.read, common.median
local cjson = require("cjson")

local ROUNDS = tonumber(arg[1]) or 3
local N = tonumber(arg[2]) or 1000
local GETS = 1000
local LISTS = 5
local PRISN = arg[-1] or uv.exepath()
local BASE = os.getenv("PRISN_BENCH_BASE")
local PERF = os.getenv("PRISN_BENCH_PERF") == "1"
local DEPLOYMENTS = "/api/v1/namespaces/default/deployments"
local TICKS = tonumber(sh("getconf CLK_TCK")) or 100

local tick = common.ticker(1)
local tmp = assert(uv.fs_mkdtemp("/tmp/prisn-bench-dep-XXXXXX"))
uv.fs_chmod(tmp, tonumber("755", 8))
local ENV = { "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" }
-- PRISN_DEV passes on to the servers: a changed Lua file tried without a rebuild.
if os.getenv("PRISN_DEV") then ENV[#ENV + 1] = "PRISN_DEV=" .. os.getenv("PRISN_DEV") end

local function ms_since(t0) return (uv.hrtime() - t0) / 1e6 end

local function pct(list, q)
  if #list == 0 then return 0 / 0 end
  local s = { table.unpack(list) }
  table.sort(s)
  return s[math.max(1, math.ceil(q * #s))]
end

local function status_kb(pid, field)
  return tonumber((read("/proc/" .. pid .. "/status") or ""):match(field .. ":%s*(%d+)"))
end

-- The server's CPU time so far, in ms.
local function cpu_ms(pid)
  local stat = read("/proc/" .. pid .. "/stat") or ""
  local fields = {}
  for f in stat:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = f end
  return (tonumber(fields[12]) + tonumber(fields[13])) * 1000 / TICKS
end

-- Descendants of `root` (pid list), from /proc.
local function descendants(root)
  local kids = {}
  local dir = uv.fs_opendir("/proc", nil, 1024)
  while true do
    local entries = dir:readdir()
    if not entries then break end
    for _, e in ipairs(entries) do
      local pid = tonumber(e.name)
      local ppid = pid and tonumber((read("/proc/" .. pid .. "/stat") or ""):match("%) %a (%d+)"))
      if ppid then
        kids[ppid] = kids[ppid] or {}
        table.insert(kids[ppid], pid)
      end
    end
  end
  dir:closedir()
  local out, stack = {}, { root }
  while #stack > 0 do
    for _, kid in ipairs(kids[table.remove(stack)] or {}) do
      out[#out + 1] = kid
      stack[#stack + 1] = kid
    end
  end
  return out
end

-- Workloads (cmdline holds `marker`) and helpers among the server's
-- descendants: counts and the helpers' Pss in kB.
local function processes(root, marker)
  local workloads, helpers, pss = 0, 0, 0
  for _, pid in ipairs(descendants(root)) do
    local cmd = read("/proc/" .. pid .. "/cmdline") or ""
    if cmd:find(marker, 1, true) then
      workloads = workloads + 1
    elseif cmd ~= "" then
      helpers = helpers + 1
      pss = pss + (tonumber((read("/proc/" .. pid .. "/smaps_rollup") or ""):match("\nPss:%s*(%d+)")) or 0)
    end
  end
  return workloads, helpers, pss
end

-- Servers ---------------------------------------------------------------------

local function start_server(name, binary, index)
  local dir = tmp .. "/" .. name
  local home = dir .. "/home"
  uv.fs_mkdir(dir, tonumber("755", 8))
  uv.fs_mkdir(dir .. "/app", tonumber("755", 8))
  uv.fs_mkdir(home, tonumber("700", 8))
  local marker = string.format("%d", 910000000 + index * 1000000 + math.floor(uv.hrtime() % 999999))
  write(dir .. "/app/sleep.sh", "#!/bin/bash\nexec sleep " .. marker .. "\n", tonumber("755", 8))
  local env = { table.unpack(ENV) }
  env[#env + 1] = "PRISN_HOME=" .. home
  if name == "base" and os.getenv("PRISN_BENCH_BASE_DEV") then
    for i = #env, 1, -1 do if env[i]:match("^PRISN_DEV=") then table.remove(env, i) end end
    env[#env + 1] = "PRISN_DEV=" .. os.getenv("PRISN_BENCH_BASE_DEV")
  end
  local proc = common.spawn(binary, { "server", "start", "--foreground" }, { env = env })
  local info
  assert(run_until(function()
    if proc.done then return true end
    local ok, v = pcall(cjson.decode, read(home .. "/server.json") or "")
    info = ok and type(v) == "table" and v.pid == proc.pid and v or nil
    return info ~= nil
  end, 15) and info, name .. ": the server did not start (see " .. home .. "/server.log)")
  local s = { name = name, binary = binary, proc = proc, pid = proc.pid, home = home, marker = marker,
    rounds = {} }
  s.conn = common.connect(info.socket, read(home .. "/admin.token"):gsub("%s+$", ""))
  s.idle_kb = status_kb(s.pid, "VmRSS")
  local bundle = require("prisn.bundle")
  local blob, hash = assert(bundle.pack(dir .. "/app"))
  local status = s.conn:request("PUT", "/api/v1/bundles/" .. hash, blob, "application/octet-stream")
  assert(status == 200 or status == 201, name .. ": bundle upload answered " .. tostring(status))
  s.hash = hash
  return s
end

local function deploy_all(s)
  local t0, i, errors = uv.hrtime(), 0, 0
  local done = false
  local function nxt()
    i = i + 1
    if i > N then done = true return end
    s.conn:send("POST", DEPLOYMENTS, cjson.encode({ name = string.format("s%04d", i), bundle = s.hash,
      entry = "sleep.sh" }), function(status)
      if status ~= 201 then errors = errors + 1 end
      if status then nxt() else done = true end
    end)
  end
  nxt()
  assert(run_until(function() return done end, 900), s.name .. ": the POSTs did not finish")
  s.post_errors = errors
  local running = 0
  run_until(function()
    running = processes(s.pid, s.marker)
    if running < N then sleep_ms(500) end
    return running >= N
  end, 300)
  s.setup_ms = ms_since(t0)
  sleep_ms(3000)
  s.running = select(1, processes(s.pid, s.marker))
  s.rss_running_kb = status_kb(s.pid, "VmRSS")
  s.rss_parts = { anon = status_kb(s.pid, "RssAnon"), file = status_kb(s.pid, "RssFile"),
    shmem = status_kb(s.pid, "RssShmem") }
  local _, helpers, pss = processes(s.pid, s.marker)
  s.helpers, s.helper_pss_kb = helpers, pss
end

local function stop_server(s)
  if s.conn then s.conn:close() end
  uv.kill(s.pid, "sigterm")
  finish(s.proc, 60)
  local left = sh("pgrep -f 'sleep " .. s.marker .. "'")
  for pid in left:gmatch("%d+") do uv.kill(tonumber(pid), "sigkill") end
end

-- perf ------------------------------------------------------------------------

local perf_reports = {}

local function perf_start(s, what)
  if not PERF or sh("command -v perf") == "" then return nil end
  local file = string.format("%s/%s-%s.perf", tmp, s.name, what:gsub("%W+", "-"))
  local p = common.spawn("perf", { "record", "--no-inherit", "-e", "cpu-clock", "-F", "2000", "-g", "-p",
    tostring(s.pid), "-o", file }, { env = ENV, stdout = true, stderr = "capture" })
  sleep_ms(300)
  return { proc = p, file = file, name = s.name .. ": " .. what }
end

local function perf_finish(perf)
  if not perf then return end
  uv.kill(perf.proc.pid, "sigint")
  finish(perf.proc, 60)
  local out = sh(string.format("perf report -i '%s' --stdio --no-children --sort dso,symbol -g none "
    .. "--percent-limit 1.2", perf.file))
  local lines = {}
  for line in out:gmatch("[^\n]+") do
    if not line:match("^#") and line:match("%%") then lines[#lines + 1] = "  " .. line:gsub("%s+$", "") end
  end
  perf_reports[#perf_reports + 1] = "perf (self time, server pid): " .. perf.name .. "\n"
    .. table.concat(lines, "\n", 1, math.min(#lines, 25))
end

-- The measurements ------------------------------------------------------------

-- GETS requests for one deployment each (or for `path`): paced at 1,000/s
-- or back to back.
local function gets(s, paced, path)
  local lat, errors, i, inflight = {}, 0, 0, 0
  local start, cpu0 = uv.hrtime(), cpu_ms(s.pid)
  local function one()
    i = i + 1
    local sent = uv.hrtime()
    inflight = inflight + 1
    s.conn:send("GET", path or DEPLOYMENTS .. "/" .. string.format("s%04d", math.random(N)), nil, function(status)
      inflight = inflight - 1
      lat[#lat + 1] = ms_since(sent)
      if status ~= 200 then errors = errors + 1 end
      if not paced and i < GETS then one() end
    end)
  end
  if paced then
    run_until(function()
      while i < GETS and uv.hrtime() - start >= i * 1e6 do one() end
      return i >= GETS and inflight == 0
    end, 120)
  else
    one()
    run_until(function() return #lat >= GETS end, 120)
  end
  return { p50 = pct(lat, 0.5), p99 = pct(lat, 0.99), max = pct(lat, 1), errors = errors,
    rps = #lat / (ms_since(start) / 1000), cpu_ms = (cpu_ms(s.pid) - cpu0) / math.max(1, #lat) }
end

local function lists(s)
  local times, bytes, cpu0 = {}, 0, cpu_ms(s.pid)
  for k = 1, LISTS do
    local t0 = uv.hrtime()
    local status, body = s.conn:request("GET", DEPLOYMENTS)
    times[k] = ms_since(t0)
    assert(status == 200, s.name .. ": GET list answered " .. tostring(status))
    bytes = #body
    -- The body's layout with the values masked: keys, order, indentation
    -- (the two servers' values differ: pids, times, usage).
    if k == 1 then s.list_layout = body:gsub('(": )[^\n]*', "%1V") end
  end
  return { ms = median(times), min = math.min(table.unpack(times)), bytes = bytes,
    cpu_ms = (cpu_ms(s.pid) - cpu0) / LISTS }
end

local function round(s, r)
  local res = {}
  gets(s, false) -- warm-up
  res.health = gets(s, true, "/health")
  local perf = r == 1 and perf_start(s, "GET one")
  res.paced = gets(s, true)
  res.unpaced = gets(s, false)
  perf_finish(perf)
  perf = r == 1 and perf_start(s, "GET list")
  res.list = lists(s)
  perf_finish(perf)
  res.rss_kb = status_kb(s.pid, "VmRSS")
  s.rounds[r] = res
end

-- Report ----------------------------------------------------------------------

local function column(s, get)
  local values = {}
  for r, res in ipairs(s.rounds) do values[r] = get(res) end
  return median(values), values
end

local function report(servers)
  local out = {}
  local function put(fmt, ...) out[#out + 1] = string.format(fmt, ...) end
  put("\nmachine: %d CPUs, %s, load %s", #uv.cpu_info(), sh("uname -r"), sh("cut -d' ' -f1-3 /proc/loadavg"))
  put("%d deployments per server, %d round(s); medians of the rounds, each round in brackets", N, ROUNDS)
  local rows = {
    { "GET /health, paced 1,000/s: p99", function(r) return r.health.p99 end, "%.2f" },
    { "GET one, paced 1,000/s: p50 ms", function(r) return r.paced.p50 end, "%.2f" },
    { "GET one, paced 1,000/s: p99 ms", function(r) return r.paced.p99 end, "%.2f" },
    { "GET one, paced 1,000/s: max ms", function(r) return r.paced.max end, "%.1f" },
    { "GET one, back to back: p50 ms", function(r) return r.unpaced.p50 end, "%.2f" },
    { "GET one, back to back: p99 ms", function(r) return r.unpaced.p99 end, "%.2f" },
    { "GET one, back to back: req/s", function(r) return r.unpaced.rps end, "%.0f" },
    { "GET one: server CPU ms per GET", function(r) return r.unpaced.cpu_ms end, "%.3f" },
    { "GET list (all N): ms", function(r) return r.list.ms end, "%.1f" },
    { "GET list: server CPU ms", function(r) return r.list.cpu_ms end, "%.1f" },
    { "server RSS after the round, MB", function(r) return r.rss_kb / 1024 end, "%.1f" },
  }
  for _, row in ipairs(rows) do
    local cells, meds = {}, {}
    for i, s in ipairs(servers) do
      local med, values = column(s, row[2])
      meds[i] = med
      local each = {}
      for k, v in ipairs(values) do each[k] = string.format(row[3], v) end
      cells[i] = string.format("%-8s %-26s", string.format(row[3], med), "[" .. table.concat(each, " ") .. "]")
    end
    local ratio = #servers == 2 and meds[1] > 0 and string.format("x%.2f", meds[2] / meds[1]) or ""
    put("  %-32s %s %s", row[1], table.concat(cells, " "), ratio)
  end
  for _, s in ipairs(servers) do
    put("  %s (%s): setup %.1f s (%d POST errors), %d/%d running; RSS idle %.1f MB, %d running %.1f MB;"
      .. " helpers %d, Pss %.1f MB (%.0f kB each); list %d bytes", s.name, s.binary, s.setup_ms / 1000,
      s.post_errors, s.running, N, s.idle_kb / 1024, N, s.rss_running_kb / 1024, s.helpers, s.helper_pss_kb / 1024,
      s.helper_pss_kb / math.max(1, s.helpers), s.rounds[1] and s.rounds[1].list.bytes or 0)
    put("  %s: RSS with %d running = anon %.1f + file %.1f + shmem %.1f MB", s.name, N, s.rss_parts.anon / 1024,
      s.rss_parts.file / 1024, s.rss_parts.shmem / 1024)
  end
  if #servers == 2 and servers[1].list_layout then
    put("  list layout (keys, order, indentation; values masked): %s", servers[1].list_layout
      == servers[2].list_layout and "the same in both" or "DIFFERENT")
  end
  for _, text in ipairs(perf_reports) do put("\n%s", text) end
  io.write(table.concat(out, "\n"), "\n")
end

local function main()
  local servers = {}
  if BASE then servers[#servers + 1] = { name = "base", binary = BASE } end
  servers[#servers + 1] = { name = "this", binary = PRISN }
  for i, spec in ipairs(servers) do
    io.stderr:write(string.format("%s: starting the server and %d deployments ...\n", spec.name, N))
    servers[i] = start_server(spec.name, spec.binary, i)
    io.stderr:write(string.format("%s: server pid %d\n", spec.name, servers[i].pid))
    deploy_all(servers[i])
  end
  local hold = tonumber(os.getenv("PRISN_BENCH_HOLD") or "")
  if hold then
    for _, s in ipairs(servers) do
      io.stderr:write(string.format("%s: server pid %d, home %s\n", s.name, s.pid, s.home))
    end
    sleep_ms(hold * 1000)
  end
  for r = 1, ROUNDS do
    for k = 0, #servers - 1 do
      local s = servers[(k + r - 1) % #servers + 1]
      io.stderr:write(string.format("round %d: %s\n", r, s.name))
      round(s, r)
    end
  end
  report(servers)
  for _, s in ipairs(servers) do stop_server(s) end
end

local ok, err = xpcall(main, debug.traceback)
common.stop_children(15)
tick:stop()
tick:close()
if os.getenv("PRISN_BENCH_KEEP") == "1" then io.stderr:write("kept ", tmp, "\n") else sh("rm -rf " .. tmp) end
if not ok then error(err, 0) end
