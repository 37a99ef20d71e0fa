-- Benchmark of the deployment proxy's data path (prisn.net.proxy).
--
--   build/prisn lua tests/bench/proxy.lua [ROUNDS] [SECONDS]
--
-- ROUNDS (default 5) interleaved rounds of SECONDS (default 5) per wrk run.
-- Environment: PRISN_BENCH_RATE (default 5000) requests/s for the paced runs,
-- PRISN_BENCH_CONNS (default 12) connections for them, PRISN_BENCH_BACKENDS
-- (default 1) backend processes behind the proxy.
--
-- Backend: a node `http` server answering "ok" (keep-alive), in its own
-- process. Proxy: `prisn lua tests/bench/proxy.lua --serve PORT...`, this file
-- in a second prisn process, round-robin over the backends. Per round, in
-- alternating order, the same wrk run straight at the backend and through the
-- proxy, and through a reference proxy (node's net module, socket.pipe both
-- ways, TCP_NODELAY: what an extra user-space hop costs in a mature runtime):
--
-- 1. paced: Debian's wrk 4.1 has no fixed-rate mode (wrk2 is not packaged), so
--    each of CONNS connections waits CONNS/RATE s (rounded to ms) before each
--    request (a wrk script's delay()): about RATE requests/s, a little less by
--    the latency and timer slack (12 connections x 2 ms gives ~4,900 here).
--    p50 and p99 from `wrk --latency`; the achieved rate is reported.
-- 2. unpaced, 32 connections: requests/s, as a ceiling.
--
-- Reported: medians over the rounds, and proxy/direct ratios. Also the proxy
-- process's CPU time and RSS. Loopback only; every process started here is
-- stopped by its pid, the temporary folder removed.
local uv = require("luv")
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local common = require("common")
local run_until, finish = common.run_until, common.finish
local median = common.median

-- Proxy mode: listen on a free port, print it, serve until SIGTERM.
if arg[1] == "--serve" then
  local proxy = require("prisn.net.proxy")
  local p = assert(proxy.listen({ host = "127.0.0.1", port = 0, name = "bench" }))
  local backends = {}
  for i = 2, #arg do backends[#backends + 1] = { id = "b" .. (i - 1), host = "127.0.0.1", port = tonumber(arg[i]) } end
  p:set_backends(backends)
  io.stdout:write(p:port(), "\n")
  io.stdout:flush()
  local sig = uv.new_signal()
  sig:start("sigterm", function()
    sig:close()
    p:close(function() end)
  end)
  uv.run()
  return
end

local ROUNDS = tonumber(arg[1]) or 5
local SECONDS = tonumber(arg[2]) or 5
local RATE = tonumber(os.getenv("PRISN_BENCH_RATE")) or 5000
local CONNS = tonumber(os.getenv("PRISN_BENCH_CONNS")) or 12
local BACKENDS = tonumber(os.getenv("PRISN_BENCH_BACKENDS")) or 1
local UNPACED_CONNS = 32
local PRISN = arg[-1] or uv.exepath()
local SELF = debug.getinfo(1, "S").source:sub(2)

local tick = common.ticker(10)

local tmp = assert(uv.fs_mkdtemp("/tmp/prisn-bench-proxy-XXXXXX"))
local env = {}
for k, v in pairs(uv.os_environ()) do env[#env + 1] = k .. "=" .. v end

-- Child processes ------------------------------------------------------------


local function spawn(file, args, capture)
  return common.spawn(file, args, { env = env, stdout = capture, stderr = 2 })
end

local function stop(p)
  if not p.done then uv.kill(p.pid, "sigterm") end
  finish(p, 5)
end

-- A long-running child that prints its port on the first line of stdout.
local function start_listener(file, args, what)
  local p = spawn(file, args, true)
  local port
  assert(run_until(function()
    port = table.concat(p.out):match("^(%d+)\n")
    return port or p.done
  end, 10) and port, what .. " did not start")
  return p, tonumber(port)
end

local function proc_stat(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local fields = {}
  for x in text:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = x end
  local ticks = 100
  return (tonumber(fields[12]) + tonumber(fields[13])) / ticks -- utime + stime, s
end

local function rss_kb(pid)
  local f = io.open("/proc/" .. pid .. "/status")
  if not f then return nil end
  local kb = f:read("a"):match("VmRSS:%s*(%d+)")
  f:close()
  return tonumber(kb)
end

-- wrk ------------------------------------------------------------------------------

local UNIT = { us = 1e-3, ms = 1, s = 1e3 }
local function wrk_ms(out, q)
  local v, unit = out:match("\n%s*" .. q .. "%%%s+([%d.]+)(%a+)")
  return v and tonumber(v) * UNIT[unit]
end

local pace_script = tmp .. "/pace.lua"
do
  local f = assert(io.open(pace_script, "w"))
  -- delay() is in ms; wrk waits that long before each request on a connection
  f:write(string.format("function delay() return %d end\n", math.max(1, math.floor(CONNS * 1000 / RATE + 0.5))))
  f:close()
end

-- One wrk run against port: { p50, p99 (ms), rps, errors }.
local function wrk(port, paced)
  local conns = paced and CONNS or UNPACED_CONNS
  local args = { "-c" .. conns, "-t2", "-d" .. SECONDS .. "s", "--latency" }
  if paced then args[#args + 1] = "-s"; args[#args + 1] = pace_script end
  args[#args + 1] = "http://127.0.0.1:" .. port .. "/"
  local out = finish(spawn("wrk", args, true), SECONDS + 30)
  local errors = tonumber(out:match("Non%-2xx or 3xx responses: (%d+)") or "0")
  local c, r, w, t = out:match("Socket errors: connect (%d+), read (%d+), write (%d+), timeout (%d+)")
  if c then errors = errors + c + r + w + t end
  local rps = tonumber(out:match("Requests/sec:%s*([%d.]+)"))
  assert(rps, "wrk said:\n" .. out)
  return { p50 = wrk_ms(out, 50), p99 = wrk_ms(out, 99), rps = rps, errors = errors }
end

-- Main ------------------------------------------------------------------------------

local function main()
  assert(io.popen("command -v wrk"):read("a") ~= "", "wrk is not installed (apt-get install wrk)")
  local node_src = "const s = require('http').createServer((q, r) => r.end('ok'));"
    .. "s.keepAliveTimeout = 60000; s.listen(0, '127.0.0.1', () => console.log(s.address().port));"
  local backends, ports = {}, {}
  for i = 1, BACKENDS do
    backends[i], ports[i] = start_listener("node", { "-e", node_src }, "the node backend")
  end
  local proxy_args = { "lua", SELF, "--serve" }
  for _, port in ipairs(ports) do proxy_args[#proxy_args + 1] = tostring(port) end
  local proxy, proxy_port = start_listener(PRISN, proxy_args, "the proxy")
  local ref_src = "const net = require('net'); const B = +process.argv[1];"
    .. "const s = net.createServer(c => { const b = net.connect(B, '127.0.0.1'); c.setNoDelay(true);"
    .. " b.setNoDelay(true); c.pipe(b); b.pipe(c); c.on('error', () => b.destroy());"
    .. " b.on('error', () => c.destroy()); });"
    .. "s.listen(0, '127.0.0.1', () => console.log(s.address().port));"
  local ref, ref_port = start_listener("node", { "-e", ref_src, tostring(ports[1]) }, "the reference proxy")
  local rss_start = rss_kb(proxy.pid)

  local cases = {
    { name = "paced", paced = true, direct = {}, proxied = {}, reference = {} },
    { name = "unpaced", paced = false, direct = {}, proxied = {}, reference = {} },
  }
  local errors, proxied_requests = 0, 0
  local cpu_s = 0
  wrk(proxy_port, true) -- warm-up, not counted
  for round = 1, ROUNDS do
    for _, case in ipairs(cases) do
      local order = round % 2 == 1 and { "direct", "proxied", "reference" } or { "reference", "proxied", "direct" }
      for _, which in ipairs(order) do
        local cpu0 = which == "proxied" and proc_stat(proxy.pid)
        local port = ({ direct = ports[1], proxied = proxy_port, reference = ref_port })[which]
        local r = wrk(port, case.paced)
        if cpu0 then
          cpu_s = cpu_s + proc_stat(proxy.pid) - cpu0
          proxied_requests = proxied_requests + r.rps * SECONDS
        end
        errors = errors + r.errors
        table.insert(case[which], r)
        io.stderr:write(string.format("round %d %-7s %-7s p50 %.3f ms  p99 %.3f ms  %.0f req/s  errors %d\n",
          round, case.name, which, r.p50, r.p99, r.rps, r.errors))
      end
    end
  end
  local rss_end = rss_kb(proxy.pid)
  stop(proxy)
  stop(ref)
  for _, b in ipairs(backends) do stop(b) end

  local function med(list, key)
    local xs = {}
    for i, r in ipairs(list) do xs[i] = r[key] end
    return median(xs)
  end
  local out = {}
  local function say(fmt, ...) out[#out + 1] = string.format(fmt, ...) end
  say("prisn.net.proxy: %d rounds of %d s, %d backend(s) (node http), wrk 4.1, %d CPUs, load %.2f",
    ROUNDS, SECONDS, BACKENDS, #uv.cpu_info(), uv.loadavg())
  say("")
  say("| run | metric | direct | prisn proxy | ratio | difference | node net proxy | ratio |")
  say("|---|---|---|---|---|---|---|---|")
  for _, case in ipairs(cases) do
    local label = case.paced and string.format("paced ~%d req/s, %d conns", RATE, CONNS)
      or string.format("unpaced, %d conns", UNPACED_CONNS)
    for _, key in ipairs({ "p50", "p99", "rps" }) do
      local d, p, r = med(case.direct, key), med(case.proxied, key), med(case.reference, key)
      local fmt = key == "rps" and "%.0f" or "%.3f"
      local signed = key == "rps" and "%+.0f" or "%+.3f"
      say("| %s | %s | " .. fmt .. " | " .. fmt .. " | %.2f | " .. signed .. " | " .. fmt .. " | %.2f |",
        label, key == "rps" and "req/s" or key .. " ms", d, p, p / d, p - d, r, r / d)
    end
  end
  say("")
  say("Errors (socket errors + non-2xx, all runs): %d", errors)
  say("Proxy CPU: %.1f µs per request proxied; RSS %d kB at start, %d kB at the end",
    proxied_requests > 0 and cpu_s / proxied_requests * 1e6 or 0 / 0, rss_start or 0, rss_end or 0)
  print(table.concat(out, "\n"))
end

local ok, err = xpcall(main, debug.traceback)
common.stop_children(10)
tick:stop()
tick:close()
os.remove(pace_script)
uv.fs_rmdir(tmp)
if not ok then error(err, 0) end
